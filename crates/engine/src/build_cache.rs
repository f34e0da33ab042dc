//! The build cache as storage: which image a build step made from which inputs. The builder
//! (`wharf-build`) computes the keys; the engine keeps the table, answers only with images that
//! still exist, and prunes entries whose image is gone.

use serde::{Deserialize, Serialize};
use wharf_metadata::Table;
use wharf_types::Digest;

use crate::formats::StoredForm;
use crate::{Engine, EngineError};

/// The stored cache entry: `CacheEntry` as serde writes it, pinned by
/// `build-cache-entry-1.json`. The builder makes entries and `system df` shows them through
/// the API's own JSON, so this form is the stored one alone; see `formats`.
pub(crate) const BUILD_CACHE: StoredForm =
    StoredForm { table: Table::BuildCache, name: "build_cache", current: 1, steps: &[] };

/// The builder's notes: the engine keeps them as JSON it does not read, in the form of the
/// builder's `Note` (`wharf-build`'s test `the_stored_note_is_pinned` pins it with
/// `build-note-1.json`). A note the builder cannot read only loses its cache miss's
/// explanation; a newer format is refused all the same, as for every table.
pub(crate) const BUILD_NOTES: StoredForm =
    StoredForm { table: Table::BuildNotes, name: "build_notes", current: 1, steps: &[] };

/// One cached step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheEntry {
    pub image: Digest,
    /// What the step was, for `system df` and the miss explanations (`RUN echo hi`).
    pub description: String,
    /// RFC 3339.
    pub created: String,
    /// The image the step ran on (its size is what the step added above it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Digest>,
}

/// One cache entry as `system df` shows it.
#[derive(Debug, Clone)]
pub struct CacheUsage {
    pub key: String,
    pub entry: CacheEntry,
    /// Bytes the step's layer holds (0 for a config-only step).
    pub size: u64,
    /// A container uses the image.
    pub in_use: bool,
    /// The image is tagged or under a tagged image: its layer is counted with the images too.
    pub shared: bool,
}

/// What `POST /build/prune` asks for.
#[derive(Debug, Clone, Default)]
pub struct CachePrune {
    /// Shared entries too (`docker builder prune -a`).
    pub all: bool,
    /// Only entries made before this time.
    pub until: Option<std::time::SystemTime>,
    /// Keep the newest entries up to this many bytes.
    pub keep_storage: u64,
}

/// What a cache prune removed.
#[derive(Debug, Clone, Default)]
pub struct CachePruneReport {
    pub deleted: Vec<String>,
    pub space_reclaimed: u64,
}

impl Engine {
    /// The image a step with this key made, if it still exists.
    pub fn build_cache_get(&self, key: &str) -> Result<Option<CacheEntry>, EngineError> {
        let Some(entry) = self.inner.db.get::<CacheEntry>(Table::BuildCache, key)? else { return Ok(None) };
        if self.find_image(&entry.image.to_string()).is_err() {
            self.write_db(|tx| tx.delete(Table::BuildCache, key))?;
            return Ok(None);
        }
        Ok(Some(entry))
    }

    pub fn build_cache_put(&self, key: &str, entry: &CacheEntry) -> Result<(), EngineError> {
        self.write_db(|tx| tx.put(Table::BuildCache, key, entry))?;
        Ok(())
    }

    /// Every entry, dropping those whose image is gone.
    pub fn build_cache_list(&self) -> Result<Vec<(String, CacheEntry)>, EngineError> {
        let all: Vec<(String, CacheEntry)> = self.inner.db.list(Table::BuildCache)?;
        let (live, dead): (Vec<_>, Vec<_>) =
            all.into_iter().partition(|(_, e)| self.find_image(&e.image.to_string()).is_ok());
        if !dead.is_empty() {
            self.write_db(|tx| {
                for (k, _) in &dead {
                    tx.delete(Table::BuildCache, k)?;
                }
                Ok::<_, EngineError>(())
            })?;
        }
        Ok(live)
    }

    /// The builder's note for a step's place (its own format; the engine only keeps it).
    pub fn build_note_get(&self, key: &str) -> Result<Option<serde_json::Value>, EngineError> {
        Ok(self.inner.db.get::<serde_json::Value>(Table::BuildNotes, key)?)
    }

    pub fn build_note_put(&self, key: &str, note: &serde_json::Value) -> Result<(), EngineError> {
        self.write_db(|tx| tx.put(Table::BuildNotes, key, note))?;
        Ok(())
    }

    /// Every entry with its size and whether images or containers still use what it made.
    pub fn build_cache_usage(&self) -> Result<Vec<CacheUsage>, EngineError> {
        let entries = self.build_cache_list()?;
        let images: Vec<(String, crate::ImageRecord)> = self.inner.db.list(Table::Images)?;
        let by_id: std::collections::HashMap<String, &crate::ImageRecord> =
            images.iter().map(|(k, r)| (k.clone(), r)).collect();
        let tagged: std::collections::HashSet<String> =
            self.inner.db.list::<String>(Table::Tags)?.into_iter().map(|(_, id)| id).collect();
        // The images under a tagged one, following parents.
        let mut shared = std::collections::HashSet::new();
        for id in &tagged {
            let mut cur = Some(id.clone());
            while let Some(c) = cur {
                if !shared.insert(c.clone()) {
                    break;
                }
                cur = by_id.get(&c).and_then(|r| r.parent.as_ref()).map(|p| p.to_string());
            }
        }
        let used: std::collections::HashSet<String> =
            self.all_containers().iter().map(|c| c.image_id.to_string()).collect();
        Ok(entries
            .into_iter()
            .map(|(key, entry)| {
                let id = entry.image.to_string();
                let size_of = |d: &str| by_id.get(d).map(|r| r.size).unwrap_or(0);
                let parent = entry.parent.as_ref().map(|p| size_of(&p.to_string())).unwrap_or(0);
                CacheUsage {
                    size: size_of(&id).saturating_sub(parent),
                    in_use: used.contains(&id),
                    shared: shared.contains(&id),
                    key,
                    entry,
                }
            })
            .collect())
    }

    /// Forgets cache entries (`POST /build/prune`): those nothing tagged builds on, or with
    /// `all` every one no container uses; the untagged images only they kept are removed too.
    pub async fn build_cache_prune(&self, opts: &CachePrune) -> Result<CachePruneReport, EngineError> {
        let mut usage = self.build_cache_usage()?;
        // Newest first: `keep_storage` keeps from the newest down.
        usage.sort_by(|a, b| b.entry.created.cmp(&a.entry.created));
        let mut kept_bytes = 0u64;
        let mut doomed = Vec::new();
        for u in usage {
            let old_enough =
                opts.until.is_none_or(|t| wharf_types::time::parse_rfc3339(&u.entry.created).is_some_and(|c| c < t));
            let removable = !u.in_use && (opts.all || !u.shared) && old_enough;
            // `keep_storage` 0 keeps nothing, as Docker's.
            if removable && (opts.keep_storage == 0 || kept_bytes + u.size > opts.keep_storage) {
                doomed.push(u);
            } else {
                kept_bytes += u.size;
            }
        }
        let notes: Vec<(String, serde_json::Value)> =
            if opts.all { self.inner.db.list(Table::BuildNotes)? } else { Vec::new() };
        self.write_db(|tx| {
            for u in &doomed {
                tx.delete(Table::BuildCache, &u.key)?;
            }
            for (k, _) in &notes {
                tx.delete(Table::BuildNotes, k)?;
            }
            Ok::<_, EngineError>(())
        })?;
        let mut report = CachePruneReport::default();
        // Images the removed entries made, leaves first, while nothing else needs them.
        let mut left: Vec<&CacheUsage> = doomed.iter().filter(|u| !u.shared && !u.in_use).collect();
        loop {
            let images: Vec<(String, crate::ImageRecord)> = self.inner.db.list(Table::Images)?;
            let parents: std::collections::HashSet<String> =
                images.iter().filter_map(|(_, r)| r.parent.as_ref().map(|p| p.to_string())).collect();
            let (leaves, rest): (Vec<&CacheUsage>, Vec<&CacheUsage>) =
                left.into_iter().partition(|u| !parents.contains(&u.entry.image.to_string()));
            if leaves.is_empty() {
                break;
            }
            for u in leaves {
                let id = u.entry.image.to_string();
                let still_cached =
                    self.inner.db.list::<CacheEntry>(Table::BuildCache)?.iter().any(|(_, e)| e.image == u.entry.image);
                if still_cached
                    || self.refs_of(&u.entry.image).map(|(t, d)| !t.is_empty() || !d.is_empty()).unwrap_or(true)
                {
                    continue;
                }
                match self.remove_image(&id, false).await {
                    Ok(_) => report.space_reclaimed += u.size,
                    Err(e) => log::debug!("build cache prune: keep image {id}: {e}"),
                }
            }
            left = rest;
        }
        report.deleted = doomed.into_iter().map(|u| u.key).collect();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `RUN` step's entry with its parent, every field set, as format 1 stores it.
    #[test]
    fn the_stored_cache_entry_is_pinned() {
        let entry: CacheEntry =
            crate::formats::tests::assert_pinned(include_str!("../testdata/build-cache-entry-1.json"));
        assert!(entry.parent.is_some());
        assert_eq!(BUILD_CACHE.current, 1, "a new format needs a fixture of its own and a test of its step");
        assert_eq!(BUILD_NOTES.current, 1, "wharf-build's note fixture is of format 1");
    }
}
