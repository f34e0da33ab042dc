//! Overlayfs snapshots of image layers and container upper dirs; applying layer tars with whiteouts.
//!
//! Layout under the root (the daemon passes `<data-root>/snapshots`):
//!
//! ```text
//! layers/<chain hex>/fs     one layer's own changes, whiteouts in overlayfs form: a lowerdir
//! layers/<chain hex>/size   the layer's apparent size in bytes, written at apply time
//! l/<16 hex>                -> ../layers/<chain hex>/fs, short names for mount options
//! containers/<id>/{upper,work,rootfs}
//! empty/                    the lowerdir of a container whose image has no layers
//! tmp/                      layers being applied or removed; emptied by `open`
//! ```
//!
//! A layer directory appears by one `rename` of a complete temp directory (data and size file
//! together), so a layer that exists is complete; a crash leaves only `tmp/` entries.
//!
//! Mount options: the kernel takes at most one page (4096 bytes) of mount data. Lower dirs are
//! named by absolute short symlinks (`<root>/l/<first 16 hex of the chain id>`, resolved by
//! the kernel at mount time) rather than by paths relative to a working directory, because a
//! relative path would force the mounting code to `chdir`, which is process-wide in a
//! multi-threaded daemon. With the default root that is 44 bytes a layer, room for about 85
//! layers; `overlay_lowerdirs` gives the list for callers that mount with the new mount API
//! (`fsconfig` `lowerdir+`, one layer at a time, no page limit).

mod apply;
use wharf_confined as sys;

use std::ffi::CString;
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use wharf_types::{Digest, ErrorKind, Sha256Writer};

/// The kernel copies at most one page of mount data, including the terminating NUL.
const MAX_MOUNT_DATA: usize = 4095;
/// Hex digits of a chain id used for its short link name: 64 bits, so a collision among the
/// layers of one machine is out of reach (and detected: links are checked, never overwritten).
const SHORT_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("layer {layer}: entry {entry:?} {reason}")]
    InvalidLayer { layer: Digest, entry: String, reason: String },
    #[error("layer {layer}: cannot read the layer tar: {source}")]
    ReadLayer { layer: Digest, source: io::Error },
    #[error("layer {layer}: diff id mismatch: expected {expected}, got {actual}")]
    DiffIdMismatch { layer: Digest, expected: Digest, actual: Digest },
    #[error("layer {0} not found")]
    LayerNotFound(Digest),
    #[error("invalid container id {0:?}")]
    InvalidContainerId(String),
    #[error("overlay mount options for {layers} layers are {len} bytes, over the kernel's limit of 4095")]
    TooManyLayers { layers: usize, len: usize },
    #[error("snapshot root {0:?} contains a character that mount options cannot carry (',' ':' '\\\\' or whitespace)")]
    UnusableRoot(PathBuf),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

impl SnapshotError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SnapshotError::InvalidLayer { .. }
            | SnapshotError::ReadLayer { .. }
            | SnapshotError::DiffIdMismatch { .. }
            | SnapshotError::InvalidContainerId(_)
            | SnapshotError::TooManyLayers { .. } => ErrorKind::InvalidArgument,
            SnapshotError::LayerNotFound(_) => ErrorKind::NotFound,
            SnapshotError::UnusableRoot(_) | SnapshotError::Io { .. } => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> SnapshotError {
        SnapshotError::Io { context: context.into(), source }
    }
}

/// The result of `apply_layer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedLayer {
    /// sha256 of the uncompressed layer stream.
    pub diff_id: Digest,
    /// Apparent size in bytes of the layer's files and symlinks, hard links counted once.
    pub size: u64,
}

/// The result of `apply_new_layer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLayer {
    pub chain_id: Digest,
    /// sha256 of the uncompressed layer stream.
    pub diff_id: Digest,
    /// Apparent size in bytes of the layer's files and symlinks, hard links counted once.
    pub size: u64,
    /// Whether this call made the layer (false: it was there, or another call made it meanwhile).
    pub fresh: bool,
}

/// The directories of one container's writable layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDirs {
    pub upper: PathBuf,
    pub work: PathBuf,
    /// The (empty) mount point of the container's overlay.
    pub rootfs: PathBuf,
}

/// Layers unpacked once per chain id and container upper dirs, for overlayfs.
#[derive(Debug, Clone)]
pub struct Snapshotter {
    root: PathBuf,
    sync: bool,
}

fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}-{}-{}-{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn cstring(p: &Path) -> Result<CString, SnapshotError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| SnapshotError::io(format!("path {}", p.display()), io::Error::from_raw_os_error(libc::EINVAL)))
}

fn open_dir(p: &Path) -> Result<OwnedFd, SnapshotError> {
    fs::File::open(p).map(OwnedFd::from).map_err(|e| SnapshotError::io(format!("open {}", p.display()), e))
}

/// Removes a directory tree that may hold read-only directories and files of any owner. As root
/// permission bits do not matter; otherwise directories are made writable and it is retried.
/// `remove_dir_all` does not follow symlinks inside the tree.
fn remove_tree(path: &Path) -> Result<(), SnapshotError> {
    match fs::remove_dir_all(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
        Err(e) => return Err(SnapshotError::io(format!("remove {}", path.display()), e)),
    }
    make_dirs_writable(path);
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SnapshotError::io(format!("remove {}", path.display()), e)),
    }
}

fn make_dirs_writable(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else { return };
    if !meta.is_dir() {
        return;
    }
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            make_dirs_writable(&entry.path());
        }
    }
}

/// The apparent size of a tree, hard links counted once; used when a size file is missing.
fn measure(path: &Path) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() || meta.file_type().is_symlink() {
                if meta.nlink() > 1 && !seen.insert((meta.dev(), meta.ino())) {
                    continue;
                }
                total += meta.len();
            }
        }
    }
    Ok(total)
}

fn check_container_id(id: &str) -> Result<(), SnapshotError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(SnapshotError::InvalidContainerId(id.to_string()))
    }
}

impl Snapshotter {
    /// Opens (creating if needed) the snapshotter at `root`, and removes the temp directories a
    /// crash left behind. The root is made absolute (mount options need absolute paths) and mode
    /// 0700: layers hold setuid binaries of arbitrary images, which no host user may reach.
    pub fn open(root: &Path) -> Result<Snapshotter, SnapshotError> {
        fs::create_dir_all(root).map_err(|e| SnapshotError::io(format!("create {}", root.display()), e))?;
        let root = fs::canonicalize(root).map_err(|e| SnapshotError::io(format!("resolve {}", root.display()), e))?;
        if root.as_os_str().as_bytes().iter().any(|&b| b == b',' || b == b':' || b == b'\\' || b.is_ascii_whitespace())
        {
            return Err(SnapshotError::UnusableRoot(root));
        }
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700))
            .map_err(|e| SnapshotError::io(format!("chmod {}", root.display()), e))?;
        for sub in ["layers", "l", "containers", "empty", "tmp"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(|e| SnapshotError::io(format!("create {}", p.display()), e))?;
        }
        let tmp = root.join("tmp");
        let entries = fs::read_dir(&tmp).map_err(|e| SnapshotError::io(format!("read {}", tmp.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| SnapshotError::io(format!("read {}", tmp.display()), e))?;
            log::info!("removing stale snapshot temp dir {}", entry.path().display());
            remove_tree(&entry.path())?;
        }
        Ok(Snapshotter { root, sync: false })
    }

    /// Whether `apply_layer` syncs the filesystem before a layer becomes visible, so that a power
    /// loss cannot leave a layer that exists but whose files lost their data. Off by default:
    /// measured here, `syncfs` after unpacking 50k files (585 MB) took 15 s against 3.7 s for the
    /// unpack itself, Docker does not sync layers either, and a kill -9 of the daemon loses
    /// nothing from the page cache. A damaged layer can be removed and unpacked again from the
    /// content store, whose blobs are fsynced.
    pub fn set_sync(&mut self, sync: bool) {
        self.sync = sync;
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn layer_home(&self, chain_id: &Digest) -> PathBuf {
        self.root.join("layers").join(chain_id.hex())
    }

    fn link_path(&self, chain_id: &Digest) -> PathBuf {
        self.root.join("l").join(chain_id.hex_prefix(SHORT_LEN))
    }

    fn link_target(chain_id: &Digest) -> PathBuf {
        Path::new("../layers").join(chain_id.hex()).join("fs")
    }

    pub fn has_layer(&self, chain_id: &Digest) -> bool {
        fs::symlink_metadata(self.layer_home(chain_id)).map(|m| m.is_dir()).unwrap_or(false)
    }

    /// The directory to use as an overlayfs lowerdir for this layer.
    pub fn layer_dir(&self, chain_id: &Digest) -> PathBuf {
        self.layer_home(chain_id).join("fs")
    }

    /// Reads an *uncompressed* layer tar from `tar`, applies it into a fresh temp dir while
    /// computing the diff id, checks it against `expected_diff_id` when given, and renames the
    /// dir into place atomically. On any error the partial dir is removed. If the layer exists
    /// already (a concurrent pull), the existing one is kept; if it existed before the call, the
    /// stream is only hashed.
    pub fn apply_layer(
        &self,
        chain_id: &Digest,
        expected_diff_id: Option<&Digest>,
        tar: impl Read,
    ) -> Result<AppliedLayer, SnapshotError> {
        if self.has_layer(chain_id) {
            let diff_id = hash_stream(chain_id, tar)?;
            check_diff_id(chain_id, expected_diff_id, &diff_id)?;
            return Ok(AppliedLayer { diff_id, size: self.layer_size(chain_id)? });
        }
        let temp = TempDir::create(self.root.join("tmp").join(unique_name(chain_id.hex_prefix(12))))?;
        let fs_dir = temp.path.join("fs");
        fs::create_dir(&fs_dir).map_err(|e| SnapshotError::io(format!("create {}", fs_dir.display()), e))?;
        fs::set_permissions(&fs_dir, fs::Permissions::from_mode(0o755))
            .map_err(|e| SnapshotError::io(format!("chmod {}", fs_dir.display()), e))?;
        let applied = apply::apply(chain_id, &fs_dir, tar)?;
        check_diff_id(chain_id, expected_diff_id, &applied.diff_id)?;
        Ok(self.install(temp, chain_id, applied)?.0)
    }

    /// Applies a layer this daemon makes (a build step, a commit, an import) on top of the
    /// layer `parent` (a chain id; none for a first layer) while its tar is still being
    /// written: the chain id is known only once the whole stream was hashed, so the temp dir
    /// gets a name of its own and the layer is renamed into place under its chain id at the
    /// end. Returns the chain id. If that layer exists already, it is kept and the new copy
    /// dropped.
    pub fn apply_new_layer(&self, parent: Option<&Digest>, tar: impl Read) -> Result<NewLayer, SnapshotError> {
        // Errors name the layer below until the new one has an id.
        let named = parent.cloned().unwrap_or_else(|| Digest::of(b""));
        let temp = TempDir::create(self.root.join("tmp").join(unique_name("new")))?;
        let fs_dir = temp.path.join("fs");
        fs::create_dir(&fs_dir).map_err(|e| SnapshotError::io(format!("create {}", fs_dir.display()), e))?;
        fs::set_permissions(&fs_dir, fs::Permissions::from_mode(0o755))
            .map_err(|e| SnapshotError::io(format!("chmod {}", fs_dir.display()), e))?;
        let applied = apply::apply(&named, &fs_dir, tar)?;
        let chain_id = match parent {
            Some(p) => Digest::of(format!("{p} {}", applied.diff_id).as_bytes()),
            None => applied.diff_id.clone(),
        };
        if self.has_layer(&chain_id) {
            drop(temp);
            self.ensure_link(&chain_id)?;
            let size = self.layer_size(&chain_id)?;
            return Ok(NewLayer { chain_id, diff_id: applied.diff_id, size, fresh: false });
        }
        let (layer, fresh) = self.install(temp, &chain_id, applied)?;
        Ok(NewLayer { chain_id, diff_id: layer.diff_id, size: layer.size, fresh })
    }

    /// Writes the size file of a layer applied into `temp` and renames it into place as
    /// `chain_id` (keeping an existing one that appeared meanwhile: then not fresh).
    fn install(
        &self,
        temp: TempDir,
        chain_id: &Digest,
        applied: apply::Applied,
    ) -> Result<(AppliedLayer, bool), SnapshotError> {
        let size_file = temp.path.join("size");
        fs::write(&size_file, applied.size.to_string())
            .map_err(|e| SnapshotError::io(format!("write {}", size_file.display()), e))?;

        let temp_fd = open_dir(&temp.path)?;
        if self.sync {
            sys::syncfs(&temp_fd).map_err(|e| SnapshotError::io(format!("layer {chain_id}: syncfs"), e))?;
        }
        let layers = open_dir(&self.root.join("layers"))?;
        let tmp = open_dir(&self.root.join("tmp"))?;
        let temp_name =
            CString::new(temp.name()).map_err(|e| SnapshotError::io("temp dir name", io::Error::other(e)))?;
        let target =
            CString::new(chain_id.hex()).map_err(|e| SnapshotError::io("layer dir name", io::Error::other(e)))?;
        let (size, fresh) = match sys::rename_noreplace(tmp.as_raw_fd(), &temp_name, layers.as_raw_fd(), &target) {
            Ok(()) => {
                temp.keep();
                if self.sync {
                    sys::syncfs(&layers).map_err(|e| SnapshotError::io(format!("layer {chain_id}: syncfs"), e))?;
                }
                (applied.size, true)
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY)) => {
                log::debug!("layer {chain_id} appeared while applying it; keeping the existing one");
                drop(temp);
                (self.layer_size(chain_id)?, false)
            }
            Err(e) => return Err(SnapshotError::io(format!("layer {chain_id}: rename into place"), e)),
        };
        self.ensure_link(chain_id)?;
        Ok((AppliedLayer { diff_id: applied.diff_id, size }, fresh))
    }

    fn ensure_link(&self, chain_id: &Digest) -> Result<(), SnapshotError> {
        let link = self.link_path(chain_id);
        let want = Self::link_target(chain_id);
        match std::os::unix::fs::symlink(&want, &link) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match fs::read_link(&link) {
                Ok(have) if have == want => Ok(()),
                Ok(have) => Err(SnapshotError::io(
                    format!("layer {chain_id}: short link {} points to {}", link.display(), have.display()),
                    io::Error::from_raw_os_error(libc::EEXIST),
                )),
                Err(e) => Err(SnapshotError::io(format!("read link {}", link.display()), e)),
            },
            Err(e) => Err(SnapshotError::io(format!("create link {}", link.display()), e)),
        }
    }

    /// Removes a layer; a missing layer is not an error. The caller makes sure no container
    /// uses it.
    pub fn remove_layer(&self, chain_id: &Digest) -> Result<(), SnapshotError> {
        let home = self.layer_home(chain_id);
        let doomed = self.root.join("tmp").join(unique_name("rm"));
        // Renamed away first, so the layer disappears at once and a crash midway leaves only tmp.
        match fs::rename(&home, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(SnapshotError::io(format!("remove layer {chain_id}"), e)),
        }
        let link = self.link_path(chain_id);
        if fs::read_link(&link).map(|t| t == Self::link_target(chain_id)).unwrap_or(false) {
            if let Err(e) = fs::remove_file(&link) {
                if e.kind() != io::ErrorKind::NotFound {
                    return Err(SnapshotError::io(format!("remove {}", link.display()), e));
                }
            }
        }
        remove_tree(&doomed)
    }

    /// The layer's apparent size in bytes, from the size file written at apply time.
    pub fn layer_size(&self, chain_id: &Digest) -> Result<u64, SnapshotError> {
        let home = self.layer_home(chain_id);
        match fs::read_to_string(home.join("size")) {
            Ok(s) => {
                if let Ok(n) = s.trim().parse() {
                    return Ok(n);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !self.has_layer(chain_id) {
                    return Err(SnapshotError::LayerNotFound(chain_id.clone()));
                }
            }
            Err(e) => return Err(SnapshotError::io(format!("read size of layer {chain_id}"), e)),
        }
        let fs_dir = home.join("fs");
        measure(&fs_dir).map_err(|e| SnapshotError::io(format!("measure layer {chain_id}"), e))
    }

    /// Creates `containers/<id>/{upper,work,rootfs}`; existing ones (a container being started
    /// again) are kept with their content.
    pub fn prepare_container(&self, id: &str) -> Result<ContainerDirs, SnapshotError> {
        check_container_id(id)?;
        let dirs = self.container_dirs(id);
        for (dir, mode) in [(&dirs.upper, 0o755), (&dirs.work, 0o700), (&dirs.rootfs, 0o755)] {
            match fs::create_dir_all(dir) {
                Ok(()) => {}
                Err(e) => return Err(SnapshotError::io(format!("create {}", dir.display()), e)),
            }
            fs::set_permissions(dir, fs::Permissions::from_mode(mode))
                .map_err(|e| SnapshotError::io(format!("chmod {}", dir.display()), e))?;
        }
        Ok(dirs)
    }

    /// The lower dirs of an overlay over `layers` (chain ids, bottom first), top first as
    /// overlayfs wants them, as short link paths; the empty dir for an image without layers.
    pub fn overlay_lowerdirs(&self, layers: &[Digest]) -> Result<Vec<PathBuf>, SnapshotError> {
        if layers.is_empty() {
            return Ok(vec![self.root.join("empty")]);
        }
        let mut out = Vec::with_capacity(layers.len());
        for chain_id in layers.iter().rev() {
            if !self.has_layer(chain_id) {
                return Err(SnapshotError::LayerNotFound(chain_id.clone()));
            }
            self.ensure_link(chain_id)?;
            out.push(self.link_path(chain_id));
        }
        Ok(out)
    }

    /// The overlayfs mount options for container `id` over `layers` (chain ids, bottom first):
    /// `lowerdir=<top>:...:<bottom>,upperdir=...,workdir=...`.
    pub fn overlay_options(&self, layers: &[Digest], id: &str) -> Result<String, SnapshotError> {
        check_container_id(id)?;
        let lowers = self.overlay_lowerdirs(layers)?;
        let dirs = self.container_dirs(id);
        let mut s = String::from("lowerdir=");
        for (i, l) in lowers.iter().enumerate() {
            if i > 0 {
                s.push(':');
            }
            s.push_str(&l.to_string_lossy());
        }
        s.push_str(",upperdir=");
        s.push_str(&dirs.upper.to_string_lossy());
        s.push_str(",workdir=");
        s.push_str(&dirs.work.to_string_lossy());
        if s.len() > MAX_MOUNT_DATA {
            return Err(SnapshotError::TooManyLayers { layers: layers.len(), len: s.len() });
        }
        Ok(s)
    }

    /// Removes a container's dirs (detaching its rootfs mount first, if still mounted). Missing
    /// dirs are not an error.
    pub fn remove_container(&self, id: &str) -> Result<(), SnapshotError> {
        check_container_id(id)?;
        let home = self.root.join("containers").join(id);
        if fs::symlink_metadata(&home).is_err() {
            return Ok(());
        }
        let rootfs = self.container_dirs(id).rootfs;
        sys::umount_detach(&cstring(&rootfs)?)
            .map_err(|e| SnapshotError::io(format!("unmount {}", rootfs.display()), e))?;
        let doomed = self.root.join("tmp").join(unique_name("rm"));
        match fs::rename(&home, &doomed) {
            Ok(()) => remove_tree(&doomed),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SnapshotError::io(format!("remove container dirs {}", home.display()), e)),
        }
    }

    /// The dirs of container `id`. The id is not checked here: pass one that
    /// `prepare_container` accepted.
    pub fn container_dirs(&self, id: &str) -> ContainerDirs {
        let home = self.root.join("containers").join(id);
        ContainerDirs { upper: home.join("upper"), work: home.join("work"), rootfs: home.join("rootfs") }
    }

    /// The chain ids of every applied layer, in no particular order.
    pub fn list_layers(&self) -> Result<Vec<Digest>, SnapshotError> {
        let dir = self.root.join("layers");
        let entries = fs::read_dir(&dir).map_err(|e| SnapshotError::io(format!("read {}", dir.display()), e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| SnapshotError::io(format!("read {}", dir.display()), e))?;
            match entry.file_name().to_str().map(Digest::from_hex) {
                Some(Ok(d)) => out.push(d),
                _ => log::warn!("ignoring unexpected entry {:?} in {}", entry.file_name(), dir.display()),
            }
        }
        Ok(out)
    }
}

fn check_diff_id(layer: &Digest, expected: Option<&Digest>, actual: &Digest) -> Result<(), SnapshotError> {
    match expected {
        Some(expected) if expected != actual => Err(SnapshotError::DiffIdMismatch {
            layer: layer.clone(),
            expected: expected.clone(),
            actual: actual.clone(),
        }),
        _ => Ok(()),
    }
}

fn hash_stream(layer: &Digest, mut tar: impl Read) -> Result<Digest, SnapshotError> {
    let mut hasher = Sha256Writer::new();
    io::copy(&mut tar, &mut hasher).map_err(|e| SnapshotError::ReadLayer { layer: layer.clone(), source: e })?;
    Ok(hasher.finish().0)
}

/// A temp dir under `tmp/`, removed on drop unless kept.
struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    fn create(path: PathBuf) -> Result<TempDir, SnapshotError> {
        fs::create_dir(&path).map_err(|e| SnapshotError::io(format!("create {}", path.display()), e))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700))
            .map_err(|e| SnapshotError::io(format!("chmod {}", path.display()), e))?;
        Ok(TempDir { path, keep: false })
    }

    fn name(&self) -> Vec<u8> {
        self.path.file_name().map(|n| n.as_bytes().to_vec()).unwrap_or_default()
    }

    fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = remove_tree(&self.path) {
                log::warn!("{e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids() {
        for ok in ["abc", "a1b2c3", "my_container-1.2", &"f".repeat(64)] {
            assert!(check_container_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "a/b", ".hidden", "a b", &"f".repeat(129)] {
            assert!(check_container_id(bad).is_err(), "{bad}");
        }
    }
}
