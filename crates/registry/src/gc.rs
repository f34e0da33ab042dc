//! Garbage collection: untagged manifests (when asked), then blobs nothing uses, files the
//! index does not know, and abandoned uploads. It runs offline (`wharf-registry gc`) or inside
//! a serving registry (`serve --gc-interval`) with no read-only window: a blob is forgotten
//! only in a transaction that finds nothing using it, under the digest's lock that every
//! upload commit and manifest put also takes, and never when it is younger than the grace
//! period or was named by a client within it (a push that found it present). With a shared
//! index (PostgreSQL) one collection runs at a time (a lock in the database), the digest's
//! lock is the database's too, and "named by a client" is recorded there.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, SystemTime};

use wharf_types::Digest;

use crate::meta::{now, MetaError};
use crate::server::{digest_stripe, Registry};

/// The most blobs GC forgets in one transaction (where the index batches them).
const GC_BATCH: usize = 256;

#[derive(Debug, Clone)]
pub struct GcOptions {
    pub dry_run: bool,
    /// Also delete manifests no tag reaches (directly, as an index's child or as a referrer
    /// of a kept manifest).
    pub delete_untagged: bool,
    /// Blobs and manifests younger than this are left alone.
    pub grace: Duration,
    /// Uploads untouched for longer than this are removed.
    pub upload_max_age: Duration,
}

#[derive(Debug, Default)]
pub struct GcReport {
    pub manifests: Vec<(String, Digest)>,
    pub blobs: Vec<Digest>,
    pub bytes: u64,
    pub orphan_files: usize,
    pub orphan_bytes: u64,
    pub uploads: usize,
}

impl GcReport {
    pub fn is_empty(&self) -> bool {
        self.manifests.is_empty() && self.blobs.is_empty() && self.orphan_files == 0 && self.uploads == 0
    }
}

impl std::fmt::Display for GcReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} untagged manifests, {} blobs ({} bytes), {} unindexed files ({} bytes), {} stale uploads",
            self.manifests.len(),
            self.blobs.len(),
            self.bytes,
            self.orphan_files,
            self.orphan_bytes,
            self.uploads
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("another garbage collection is running (it holds the GC lock in the registry's database)")]
    Busy,
}

/// One collection. Synchronous: run it on a blocking thread.
pub fn collect(reg: &Registry, opts: &GcOptions) -> Result<GcReport, GcError> {
    // One collection at a time, among every replica sharing the index.
    let Some(_gc_lock) = reg.meta.try_gc_lock()? else {
        return Err(GcError::Busy);
    };
    let mut report = GcReport::default();
    let cutoff = now().saturating_sub(opts.grace.as_secs());
    let manifests = reg.meta.all_manifests()?;

    // Which manifests stay: tagged or young ones, what kept indexes name, what refers to a
    // kept manifest; grown to a fixed point.
    let mut doomed: HashSet<(String, Digest)> = HashSet::new();
    if opts.delete_untagged {
        let mut kept: HashSet<(String, Digest)> = manifests
            .iter()
            .filter(|(_, _, rec, tags)| *tags > 0 || rec.created >= cutoff)
            .map(|(repo, d, _, _)| (repo.clone(), d.clone()))
            .collect();
        loop {
            let before = kept.len();
            for (repo, d, rec, _) in &manifests {
                let key = (repo.clone(), d.clone());
                if kept.contains(&key) {
                    for child in &rec.manifests {
                        kept.insert((repo.clone(), child.clone()));
                    }
                } else if rec.subject.as_ref().is_some_and(|s| kept.contains(&(repo.clone(), s.clone()))) {
                    kept.insert(key);
                }
            }
            if kept.len() == before {
                break;
            }
        }
        for (repo, d, _, _) in &manifests {
            let key = (repo.clone(), d.clone());
            if !kept.contains(&key) {
                if opts.dry_run || reg.meta.delete_manifest(repo, d)? {
                    report.manifests.push(key.clone());
                }
                doomed.insert(key);
            }
        }
    }

    let mut used: HashSet<&Digest> = HashSet::new();
    for (repo, d, rec, _) in &manifests {
        if !doomed.contains(&(repo.clone(), d.clone())) {
            used.insert(d);
            used.extend(rec.blobs.iter());
            used.extend(rec.manifests.iter());
        }
    }
    let touched = reg.touched_within(opts.grace);
    let mut known: BTreeSet<Digest> = BTreeSet::new();
    let mut unused: Vec<(Digest, u64)> = Vec::new();
    for (digest, rec) in reg.meta.all_blobs()? {
        let keep = used.contains(&digest) || rec.linked >= cutoff || touched.contains(&digest);
        if keep {
            known.insert(digest);
        } else if opts.dry_run {
            report.bytes += rec.size;
            report.blobs.push(digest);
        } else {
            unused.push((digest, rec.size));
        }
    }
    if reg.meta.forgets_in_batches() {
        // A stripe's blobs a batch at a time: one set of locks, one transaction, then the files.
        unused.sort_by_key(|(d, _)| digest_stripe(d));
        for stripe in unused.chunk_by(|a, b| digest_stripe(&a.0) == digest_stripe(&b.0)) {
            for batch in stripe.chunks(GC_BATCH) {
                let _guard = reg.stripe_lock(digest_stripe(&batch[0].0));
                let digests: Vec<Digest> = batch.iter().map(|(d, _)| d.clone()).collect();
                let _shared = reg.meta.lock_digests(&digests)?;
                let gone = reg.meta.forget_unused_blobs(&digests, cutoff)?;
                for ((digest, size), gone) in batch.iter().zip(gone) {
                    if gone {
                        reg.store.delete(digest)?;
                        report.bytes += size;
                        report.blobs.push(digest.clone());
                    } else {
                        known.insert(digest.clone());
                    }
                }
            }
        }
    } else {
        for (digest, size) in unused {
            let _guard = reg.digest_lock(&digest)?;
            if reg.meta.forget_unused_blob(&digest, cutoff)? {
                reg.store.delete(&digest)?;
                report.bytes += size;
                report.blobs.push(digest);
            } else {
                known.insert(digest);
            }
        }
    }

    // Files with no record: a crash between a rename and its transaction, or a forgotten
    // blob whose delete failed. Old ones only, and rechecked under the digest's lock.
    let file_cutoff = SystemTime::now() - opts.grace;
    let collected: HashSet<&Digest> = report.blobs.iter().collect();
    for blob in reg.store.list()? {
        if known.contains(&blob.digest) || collected.contains(&blob.digest) || blob.modified > file_cutoff {
            continue;
        }
        let _guard = reg.digest_lock(&blob.digest)?;
        if reg.meta.blob(&blob.digest)?.is_none() {
            if !opts.dry_run {
                reg.store.delete(&blob.digest)?;
            }
            report.orphan_files += 1;
            report.orphan_bytes += blob.size;
        }
    }

    // Uploads nobody touched for upload_max_age, and records or directories without the other.
    let upload_cutoff = SystemTime::now() - opts.upload_max_age;
    let records: HashSet<String> = reg.meta.uploads()?.into_iter().map(|(id, _)| id).collect();
    let mut on_disk: HashSet<String> = HashSet::new();
    for (id, modified) in reg.store.list_uploads()? {
        on_disk.insert(id.clone());
        if modified < upload_cutoff || (!records.contains(&id) && modified < file_cutoff) {
            if !opts.dry_run {
                reg.store.delete_upload(&id)?;
                reg.meta.delete_upload(&id)?;
                reg.end_session(&id);
            }
            report.uploads += 1;
        }
    }
    for id in records.difference(&on_disk) {
        if !opts.dry_run {
            reg.meta.delete_upload(id)?;
        }
    }
    Ok(report)
}
