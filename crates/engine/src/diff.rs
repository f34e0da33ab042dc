//! `diff`: a container's changes, read from its overlay upper dir. A 0/0 character device is
//! overlayfs' whiteout (deleted), an opaque directory replaced what was below it (added), an
//! entry found in a lower layer was changed, any other one added.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use wharf_confined::overlay::is_opaque;

use crate::{blocking, Engine, EngineError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Modified = 0,
    Added = 1,
    Deleted = 2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Absolute, inside the container.
    pub path: String,
    pub kind: ChangeKind,
}

/// Files wharf itself puts in a container (mount points of its bind mounts), not the user's.
const OWN_FILES: &[&str] = &["/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/dev", "/proc", "/sys"];

impl Engine {
    /// Whether a container changed nothing in its file system: its upper dir holds nothing but
    /// what the runtime made to mount things on (see `runtime_mount_points`). A build step that
    /// did so records no layer, as Docker's.
    pub fn container_changes_empty(&self, name: &str) -> Result<bool, EngineError> {
        let rec = self.find_container(name)?;
        let upper = self.inner.snapshots.container_dirs(&rec.id).upper;
        let skip = self.runtime_mount_points(&rec, &upper);
        let lowers: Vec<std::path::PathBuf> =
            rec.chain_ids.iter().rev().map(|c| self.inner.snapshots.layer_dir(c)).collect();
        fn empty(
            dir: &std::path::Path,
            prefix: &str,
            skip: &std::collections::HashSet<String>,
            lowers: &[std::path::PathBuf],
        ) -> std::io::Result<bool> {
            for e in std::fs::read_dir(dir)? {
                let e = e?;
                let rel = format!("{prefix}{}", e.file_name().to_string_lossy());
                if skip.contains(&rel) {
                    continue;
                }
                // A directory the image has, holding only mount points, is no change either.
                let in_lower = lowers.iter().any(|l| l.join(&rel).is_dir());
                if !(e.file_type()?.is_dir() && in_lower && empty(&e.path(), &format!("{rel}/"), skip, lowers)?) {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        empty(&upper, "", &skip, &lowers).map_err(|e| EngineError::io(format!("read {}", upper.display()), e))
    }

    pub async fn container_changes(&self, name: &str) -> Result<Vec<Change>, EngineError> {
        let rec = self.find_container(name)?;
        let upper = self.inner.snapshots.container_dirs(&rec.id).upper;
        let lowers: Vec<PathBuf> = rec.chain_ids.iter().rev().map(|c| self.inner.snapshots.layer_dir(c)).collect();
        let root = self.inner.snapshots.root().to_path_buf();
        blocking(move || {
            // Lower dirs are relative to the snapshots' containers dir, as overlay options are.
            let lowers: Vec<PathBuf> =
                lowers.into_iter().map(|l| if l.is_relative() { root.join("containers").join(l) } else { l }).collect();
            let mut out = Vec::new();
            walk(&upper, Path::new("/"), &lowers, false, &mut out)
                .map_err(|e| EngineError::io(format!("diff: read {}", upper.display()), e))?;
            Ok(without_own_files(out))
        })
        .await
    }
}

/// The changes less wharf's own files, and less a directory that shows as changed only because
/// one of them is in it (`C /etc` for `/etc/hosts`): Docker keeps those in an init layer below
/// the container's, so its diff never shows them.
fn without_own_files(mut changes: Vec<Change>) -> Vec<Change> {
    changes.retain(|c| !(OWN_FILES.contains(&c.path.as_str()) && c.kind != ChangeKind::Deleted));
    let holds_own_file = |dir: &str| OWN_FILES.iter().any(|f| f.strip_prefix(dir).is_some_and(|r| r.starts_with('/')));
    let users: Vec<String> = changes.iter().map(|c| c.path.clone()).collect();
    let has_user_change_under =
        |dir: &str| users.iter().any(|p| p.strip_prefix(dir).is_some_and(|r| r.starts_with('/')));
    changes.retain(|c| !(c.kind == ChangeKind::Modified && holds_own_file(&c.path) && !has_user_change_under(&c.path)));
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    changes
}

fn walk(dir: &Path, rel: &Path, lowers: &[PathBuf], under_new: bool, out: &mut Vec<Change>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let md = entry.metadata()?;
        let path = rel.join(entry.file_name());
        let inner = path.strip_prefix("/").unwrap_or(&path);
        let in_lower = !under_new && lowers.iter().any(|l| std::fs::symlink_metadata(l.join(inner)).is_ok());
        let text = path.to_string_lossy().into_owned();
        if md.file_type().is_char_device() && md.rdev() == 0 {
            out.push(Change { path: text, kind: ChangeKind::Deleted });
            continue;
        }
        if md.is_dir() {
            let opaque = is_opaque(&entry.path());
            let kind = if opaque || !in_lower { ChangeKind::Added } else { ChangeKind::Modified };
            out.push(Change { path: text, kind });
            walk(&entry.path(), &path, lowers, under_new || opaque || !in_lower, out)?;
            continue;
        }
        let kind = if in_lower { ChangeKind::Modified } else { ChangeKind::Added };
        out.push(Change { path: text, kind });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_files_and_the_dirs_they_touch_are_not_changes() {
        let c = |path: &str, kind| Change { path: path.into(), kind };
        let got = without_own_files(vec![
            c("/etc", ChangeKind::Modified),
            c("/etc/hosts", ChangeKind::Added),
            c("/etc/resolv.conf", ChangeKind::Modified),
            c("/test", ChangeKind::Added),
        ]);
        assert_eq!(got.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(), ["/test"]);
        let got = without_own_files(vec![
            c("/etc", ChangeKind::Modified),
            c("/etc/hosts", ChangeKind::Added),
            c("/etc/passwd", ChangeKind::Modified),
        ]);
        assert_eq!(got.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(), ["/etc", "/etc/passwd"]);
    }

    #[test]
    fn upper_entries_are_classified_against_the_lowers() {
        let tmp = std::env::temp_dir().join(format!("wharf-diff-{}", std::process::id()));
        let lower = tmp.join("lower");
        let upper = tmp.join("upper");
        for d in [lower.join("etc"), upper.join("etc"), upper.join("new/sub")] {
            std::fs::create_dir_all(d).unwrap_or_default();
        }
        std::fs::write(lower.join("etc/passwd"), "x").unwrap_or_default();
        std::fs::write(upper.join("etc/passwd"), "y").unwrap_or_default();
        std::fs::write(upper.join("etc/added"), "z").unwrap_or_default();
        std::fs::write(upper.join("new/sub/f"), "z").unwrap_or_default();
        let mut out = Vec::new();
        walk(&upper, Path::new("/"), std::slice::from_ref(&lower), false, &mut out).unwrap_or_default();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        let got: Vec<(&str, ChangeKind)> = out.iter().map(|c| (c.path.as_str(), c.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("/etc", ChangeKind::Modified),
                ("/etc/added", ChangeKind::Added),
                ("/etc/passwd", ChangeKind::Modified),
                ("/new", ChangeKind::Added),
                ("/new/sub", ChangeKind::Added),
                ("/new/sub/f", ChangeKind::Added),
            ]
        );
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
