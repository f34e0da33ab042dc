//! `wharf-registry scrub`: re-hashes every stored blob and compares it with its name, and
//! (when the database is free) reports indexed blobs whose bytes are gone.

use std::io;

use wharf_types::{Digest, Sha256Writer};

use crate::meta::{MetaError, Metadata};
use crate::store::BlobStore;

#[derive(Debug, Default)]
pub struct ScrubReport {
    pub checked: usize,
    pub bytes: u64,
    /// `(name, what the bytes hash to)`.
    pub corrupt: Vec<(Digest, Digest)>,
    /// Indexed, but missing from storage.
    pub missing: Vec<Digest>,
    /// Files that vanished while scrub ran (deleted by a concurrent GC).
    pub vanished: usize,
}

impl ScrubReport {
    pub fn clean(&self) -> bool {
        self.corrupt.is_empty() && self.missing.is_empty()
    }
}

pub fn scrub(store: &dyn BlobStore, meta: Option<&dyn Metadata>) -> Result<ScrubReport, ScrubError> {
    let mut report = ScrubReport::default();
    for blob in store.list()? {
        let Some((mut reader, _)) = store.open(&blob.digest, 0)? else {
            report.vanished += 1;
            continue;
        };
        let mut h = Sha256Writer::new();
        io::copy(&mut reader, &mut h)?;
        let (got, len) = h.finish();
        report.checked += 1;
        report.bytes += len;
        if got != blob.digest {
            report.corrupt.push((blob.digest, got));
        }
    }
    if let Some(meta) = meta {
        for (digest, _) in meta.all_blobs()? {
            if store.stat(&digest)?.is_none() {
                report.missing.push(digest);
            }
        }
    }
    Ok(report)
}

#[derive(Debug, thiserror::Error)]
pub enum ScrubError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("storage: {0}")]
    Io(#[from] io::Error),
}
