//! `RUN --mount`: what each mount becomes for the step's container. A cache mount is a
//! directory under `<data-root>/build-cache-mounts/`, kept across builds and daemon restarts and
//! bind-mounted, so its content never reaches the image; a bind mount shows the context (or a
//! stage's or image's file system) read-only, or a throw-away copy with `rw`; tmpfs is a tmpfs.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest as _, Sha256};

use crate::instructions::{Mount, Sharing};

/// What the container gets, and what must live until it is gone.
#[derive(Default)]
pub struct Prepared {
    /// `host:container[:ro]`, as `-v` takes them.
    pub binds: Vec<String>,
    pub tmpfs: BTreeMap<String, String>,
    /// Locks of the cache mounts in use: read for `shared`, write for `locked` and `private`
    /// (and a prune takes the write lock before it removes a cache directory).
    pub reads: Vec<tokio::sync::OwnedRwLockReadGuard<()>>,
    pub writes: Vec<tokio::sync::OwnedRwLockWriteGuard<()>>,
    /// Copies made for `rw` binds and private caches, removed after the step.
    pub scratch: Vec<PathBuf>,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        for d in &self.scratch {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// One lock per cache directory (by its name under `build-cache-mounts/`), for the whole daemon.
fn cache_lock(name: &str) -> Arc<tokio::sync::RwLock<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<tokio::sync::RwLock<()>>>>> = OnceLock::new();
    let mut map = match LOCKS.get_or_init(Default::default).lock() {
        Ok(m) => m,
        Err(p) => p.into_inner(),
    };
    map.entry(name.to_string()).or_default().clone()
}

fn hex(s: &str) -> String {
    format!("{:x}", Sha256::digest(s.as_bytes()))
}

/// The absolute target of a mount, relative ones taken from the working directory.
fn target_of(target: &str, workdir: &str) -> Result<String, String> {
    if target.is_empty() {
        return Err("mount target is required".into());
    }
    let t = if target.starts_with('/') {
        target.to_string()
    } else {
        format!("{}/{target}", workdir.trim_end_matches('/'))
    };
    if t == "/" {
        return Err("mount target can not be /".into());
    }
    Ok(t)
}

/// `rel` below `root` with every symlink on the way resolved as if `root` were `/` (an
/// absolute target starts again at `root`, `..` stops at it); `None` when it does not exist
/// or loops. The result has no symlink in it.
pub fn resolve_in_root(root: &Path, rel: &str) -> Option<PathBuf> {
    let mut todo: std::collections::VecDeque<String> =
        rel.split('/').filter(|c| !c.is_empty() && *c != ".").map(str::to_string).collect();
    let mut cur: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            cur.pop();
            continue;
        }
        let path = cur.iter().fold(root.to_path_buf(), |p, c| p.join(c)).join(&c);
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > 40 {
                return None;
            }
            let target = std::fs::read_link(&path).ok()?.to_string_lossy().to_string();
            if target.starts_with('/') {
                cur.clear();
            }
            for t in target.split('/').rev().filter(|t| !t.is_empty() && *t != ".") {
                todo.push_front(t.to_string());
            }
            continue;
        }
        if !meta.is_dir() && !todo.is_empty() {
            return None;
        }
        cur.push(c);
    }
    Some(cur.iter().fold(root.to_path_buf(), |p, c| p.join(c)))
}

/// Copies a tree (`rw` binds): `cp -a`, which keeps modes, owners, links and times.
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("create {}: {e}", to.display()))?;
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .map_err(|e| format!("cp: {e}"))?;
    if !status.success() {
        return Err(format!("copy {} for a rw bind mount failed", from.display()));
    }
    Ok(())
}

/// Removes the cache mount directories no step uses now (`builder prune -a`); returns the
/// bytes they held. One in use is left, and said so in the log.
pub fn prune_cache_mounts(data_root: &Path) -> u64 {
    let root = data_root.join("build-cache-mounts");
    let mut freed = 0;
    for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let lock = cache_lock(&name);
        let Ok(_guard) = lock.try_write_owned() else {
            log::info!("build cache prune: cache mount {name} is in use, kept");
            continue;
        };
        freed += du(&e.path());
        if let Err(err) = std::fs::remove_dir_all(e.path()) {
            log::warn!("build cache prune: remove {}: {err}", e.path().display());
        }
    }
    freed
}

fn du(path: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(path) else { return 0 };
    if !md.is_dir() {
        return md.len();
    }
    std::fs::read_dir(path).into_iter().flatten().flatten().map(|e| du(&e.path())).sum()
}

/// Turns the mounts of one RUN into binds and tmpfs mounts. `roots` holds the directory of each
/// `from=` a bind mount names (a stage's or image's file system), and the context under `None`.
pub async fn prepare(
    mounts: &[Mount],
    data_root: &Path,
    scratch_dir: &Path,
    workdir: &str,
    roots: &HashMap<Option<String>, PathBuf>,
) -> Result<Prepared, String> {
    let mut p = Prepared::default();
    for (n, m) in mounts.iter().enumerate() {
        match m {
            Mount::Cache { id, target, sharing, from, source, mode, uid, gid, ro } => {
                if from.is_some() || source.is_some() {
                    return Err("cache mounts with from= or source= are not supported by this builder yet".into());
                }
                let target = target_of(target, workdir)?;
                let id = id.clone().unwrap_or_else(|| target.clone());
                let name = hex(&id);
                let base = data_root.join("build-cache-mounts");
                if !base.exists() {
                    // Root's only: a RUN as root may leave setuid files in a cache.
                    use std::os::unix::fs::DirBuilderExt;
                    let _ = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&base);
                }
                let dir = base.join(&name);
                // The lock first: a prune holds it while it removes the directory.
                let lock = cache_lock(&name);
                let mut private_copy = false;
                match sharing {
                    Sharing::Shared => p.reads.push(lock.read_owned().await),
                    Sharing::Locked => p.writes.push(lock.write_owned().await),
                    Sharing::Private => match lock.try_write_owned() {
                        Ok(guard) => p.writes.push(guard),
                        Err(_) => private_copy = true,
                    },
                }
                let fresh = !dir.exists();
                if fresh {
                    std::fs::create_dir_all(&dir).map_err(|e| format!("create cache mount {id}: {e}"))?;
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode.unwrap_or(0o755)))
                        .map_err(|e| format!("cache mount {id}: {e}"))?;
                    std::os::unix::fs::chown(&dir, Some(uid.unwrap_or(0)), Some(gid.unwrap_or(0)))
                        .map_err(|e| format!("cache mount {id}: {e}"))?;
                }
                let host = if private_copy {
                    // In use by another step: this one gets a cache of its own, thrown away.
                    let own = scratch_dir.join(format!("cache-private-{n}"));
                    std::fs::create_dir_all(&own).map_err(|e| format!("cache mount {id}: {e}"))?;
                    p.scratch.push(own.clone());
                    own
                } else {
                    dir
                };
                p.binds.push(format!("{}:{target}{}", host.display(), if *ro { ":ro" } else { "" }));
            }
            Mount::Bind { target, source, from, rw } => {
                let target = target_of(target, workdir)?;
                let root = roots.get(from).ok_or_else(|| format!("bind mount from {from:?}: not prepared"))?;
                let rel = crate::context::clean_rel(source.as_deref().unwrap_or("/"));
                // Symlinks are followed inside the root only: the path mount(2) gets has none.
                let src = resolve_in_root(root, &rel)
                    .ok_or_else(|| format!("bind mount source {:?} not found", source.as_deref().unwrap_or("/")))?;
                if *rw {
                    let copy = scratch_dir.join(format!("bind-rw-{n}"));
                    copy_tree(&src, &copy)?;
                    p.scratch.push(copy.clone());
                    p.binds.push(format!("{}:{target}", copy.display()));
                } else {
                    p.binds.push(format!("{}:{target}:ro", src.display()));
                }
            }
            Mount::Tmpfs { target, size } => {
                let target = target_of(target, workdir)?;
                let opts = size.map(|s| format!("size={s}")).unwrap_or_default();
                p.tmpfs.insert(target, opts);
            }
            // Their contents come from the client over BuildKit's session, which the classic
            // build API has no way to carry.
            Mount::Secret { .. } => {
                return Err("RUN --mount=type=secret is not supported: secrets come through BuildKit's session, which the classic build API (DOCKER_BUILDKIT=0) cannot carry".into())
            }
            Mount::Ssh { .. } => {
                return Err("RUN --mount=type=ssh is not supported: the ssh agent comes through BuildKit's session, which the classic build API (DOCKER_BUILDKIT=0) cannot carry".into())
            }
        }
    }
    Ok(p)
}
