//! Garbage collection of layers and blobs: what images and containers reference, and the
//! sweeps that remove the rest under the exclusive gc lock.

use std::collections::HashSet;

use wharf_metadata::Table;
use wharf_types::Digest;

use crate::images::ImageRecord;
use crate::{Engine, EngineError};

/// What an operation wrote to the stores (so that a failure can take it back).
#[derive(Debug, Default)]
pub(crate) struct Stored {
    pub blobs: HashSet<Digest>,
    pub layers: HashSet<Digest>,
}

/// Every chain id and blob that some image or container needs.
#[derive(Debug, Default)]
pub(crate) struct Referenced {
    pub chains: HashSet<Digest>,
    pub blobs: HashSet<Digest>,
}

impl Engine {
    /// The layers and blobs in use: each image's config, manifest, layer blobs and snapshots,
    /// and each container's snapshots (a container keeps its layers after its image is gone).
    pub(crate) fn referenced(&self) -> Result<Referenced, EngineError> {
        let mut refs = Referenced::default();
        for (_, img) in self.inner.db.list::<ImageRecord>(Table::Images)? {
            refs.chains.extend(img.chain_ids.iter().cloned());
            refs.blobs.insert(img.id.clone());
            refs.blobs.extend(img.layers.iter().map(|l| l.digest.clone()));
            refs.blobs.extend(img.manifest_digest.iter().cloned());
        }
        for c in self.all_containers() {
            refs.chains.extend(c.chain_ids.iter().cloned());
        }
        Ok(refs)
    }

    /// Removes every layer and blob of the stores that nothing references (also what failed
    /// pulls or loads left behind); returns the bytes freed. The caller holds the gc lock
    /// exclusively, so no pull, load, import or commit is writing meanwhile.
    pub(crate) fn sweep_unreferenced(&self) -> Result<u64, EngineError> {
        let refs = self.referenced()?;
        let layers: HashSet<Digest> = self.inner.snapshots.list_layers()?.into_iter().collect();
        let blobs: HashSet<Digest> = self.inner.content.list()?.into_iter().collect();
        // Partial downloads are kept for a resume only for so long.
        let stale = self.inner.content.remove_partials(wharf_content::PARTIAL_MAX_AGE)?;
        Ok(self.remove_unreferenced(&refs, &layers, &blobs)? + stale)
    }

    /// Takes back what `stored` names and nothing references; takes the gc lock exclusively.
    pub(crate) fn discard_unreferenced(&self, stored: &Stored) -> Result<(), EngineError> {
        if stored.blobs.is_empty() && stored.layers.is_empty() {
            return Ok(());
        }
        let _gc = crate::sync::write(&self.inner.gc_lock);
        let refs = self.referenced()?;
        self.remove_unreferenced(&refs, &stored.layers, &stored.blobs)?;
        Ok(())
    }

    /// Removes the candidates that `refs` does not name; returns the bytes freed. Tries every
    /// candidate and reports the failures together.
    fn remove_unreferenced(
        &self,
        refs: &Referenced,
        layers: &HashSet<Digest>,
        blobs: &HashSet<Digest>,
    ) -> Result<u64, EngineError> {
        let mut freed = 0;
        let mut errors = Vec::new();
        for chain in layers.iter().filter(|c| !refs.chains.contains(*c)) {
            let size = self.inner.snapshots.layer_size(chain).unwrap_or(0);
            match self.inner.snapshots.remove_layer(chain) {
                Ok(()) => freed += size,
                Err(e) => errors.push(e.to_string()),
            }
        }
        for blob in blobs.iter().filter(|b| !refs.blobs.contains(*b)) {
            let size = self.inner.content.size(blob).unwrap_or(0);
            match self.inner.content.delete(blob) {
                Ok(()) => freed += size,
                Err(e) => errors.push(e.to_string()),
            }
        }
        if errors.is_empty() {
            Ok(freed)
        } else {
            Err(EngineError::Internal(format!("garbage collection: {}", errors.join("; "))))
        }
    }
}
