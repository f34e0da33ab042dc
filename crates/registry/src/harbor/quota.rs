//! Per-project storage quotas, counted as Harbor counts them: by deduplicated size (a blob
//! held by several repositories of a project counts once, a manifest's bytes count too). A
//! push that would take a project past its limit is refused with the limit and the usage.
//!
//! The check reads the usage when a blob or manifest is about to be added; `handlers` holds
//! the project's quota lock (`Registry::quota_lock`: in process, and a PostgreSQL advisory
//! lock across replicas) from the check until the addition is recorded, so pushes running at
//! the same moment into one project cannot each pass it and together go over.

use wharf_types::Digest;

use super::project_of;
use crate::meta::{Metadata, Result};

/// A project's usage in bytes.
pub fn usage(meta: &dyn Metadata, project: &str) -> Result<u64> {
    Ok(meta.project_storage(project)?.iter().map(|(_, s)| s).sum())
}

/// Whether adding `digest` (`size` bytes) to `repo` keeps its project within its quota;
/// `Err` says by how much it would not.
pub fn check(meta: &dyn Metadata, repo: &str, digest: &Digest, size: u64) -> Result<std::result::Result<(), String>> {
    let Some(project) = project_of(repo) else {
        return Ok(Ok(()));
    };
    let Some(limit) = meta.project(project)?.and_then(|p| p.record.storage_limit) else {
        return Ok(Ok(()));
    };
    let held = meta.project_storage(project)?;
    if held.iter().any(|(d, _)| d == digest) {
        return Ok(Ok(())); // counted already
    }
    let used: u64 = held.iter().map(|(_, s)| s).sum();
    if used.saturating_add(size) <= limit {
        return Ok(Ok(()));
    }
    Ok(Err(format!(
        "quota exceeded: project {project:?} uses {used} of its {limit} bytes of storage, and {digest} would add {size} \
         bytes more"
    )))
}
