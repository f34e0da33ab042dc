//! The build cache as storage: which image a build step made from which inputs. The builder
//! (`wharf-build`) computes the keys; the engine keeps the table, answers only with images that
//! still exist, and prunes entries whose image is gone.

use serde::{Deserialize, Serialize};
use wharf_metadata::Table;
use wharf_types::Digest;

use crate::{Engine, EngineError};

/// One cached step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheEntry {
    pub image: Digest,
    /// What the step was, for `system df` and the miss explanations (`RUN echo hi`).
    pub description: String,
    /// RFC 3339.
    pub created: String,
}

impl Engine {
    /// The image a step with this key made, if it still exists.
    pub fn build_cache_get(&self, key: &str) -> Result<Option<CacheEntry>, EngineError> {
        let Some(entry) = self.inner.db.get::<CacheEntry>(Table::BuildCache, key)? else { return Ok(None) };
        if self.find_image(&entry.image.to_string()).is_err() {
            self.inner.db.write(|tx| tx.delete(Table::BuildCache, key))?;
            return Ok(None);
        }
        Ok(Some(entry))
    }

    pub fn build_cache_put(&self, key: &str, entry: &CacheEntry) -> Result<(), EngineError> {
        self.inner.db.write(|tx| tx.put(Table::BuildCache, key, entry))?;
        Ok(())
    }

    /// Every entry, dropping those whose image is gone.
    pub fn build_cache_list(&self) -> Result<Vec<(String, CacheEntry)>, EngineError> {
        let all: Vec<(String, CacheEntry)> = self.inner.db.list(Table::BuildCache)?;
        let (live, dead): (Vec<_>, Vec<_>) =
            all.into_iter().partition(|(_, e)| self.find_image(&e.image.to_string()).is_ok());
        if !dead.is_empty() {
            self.inner.db.write(|tx| {
                for (k, _) in &dead {
                    tx.delete(Table::BuildCache, k)?;
                }
                Ok::<_, EngineError>(())
            })?;
        }
        Ok(live)
    }

    /// Forgets every cache entry (`POST /build/prune`); returns how many there were. The
    /// images stay while something names or uses them; untagged ones go with `image prune`.
    pub fn build_cache_prune(&self) -> Result<usize, EngineError> {
        let all: Vec<(String, CacheEntry)> = self.inner.db.list(Table::BuildCache)?;
        self.inner.db.write(|tx| {
            for (k, _) in &all {
                tx.delete(Table::BuildCache, k)?;
            }
            Ok::<_, EngineError>(())
        })?;
        Ok(all.len())
    }
}
