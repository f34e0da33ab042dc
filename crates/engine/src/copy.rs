//! `docker cp`: stat a path in a container, write a path as a tar, extract a tar into a
//! directory, for running and stopped containers.
//!
//! Every path is resolved inside the container's root, never on the host: the work runs on a
//! dedicated thread (never a pooled one) that first gives itself the container's root. For a
//! running container the thread joins its mount namespace through the init's pidfd (its root
//! becomes the container's root). For a stopped one the thread unshares a private mount
//! namespace, mounts the container's overlay and its volumes and binds there, and chroots into
//! it; the namespace and its mounts die with the thread, so the host never holds them. Inside,
//! paths are opened with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` so that `..`,
//! absolute symlinks and /proc magic links cannot lead out, and trees are walked and written
//! through directory fds with `O_NOFOLLOW` (the calls, the tar entry name rules and the
//! extraction loop, `untar` with `Resolve::InRoot`, are `wharf_confined`'s).
//!
//! A copy into a stopped container holds the container's operation lock (the one `start`
//! takes) for its whole length, so the container cannot start on the same upper dir meanwhile.

use std::collections::HashMap;
use std::ffi::CStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use wharf_confined::{self as sys, entry, untar};

use crate::{blocking, Engine, EngineError, MountKind};

/// What `stat` says of a path in a container (Docker's `ContainerPathStat`, before encoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStat {
    /// The base name of the path as asked (`.` for `dir/.`, `/` for the root).
    pub name: String,
    pub size: i64,
    /// The raw `st_mode` (file type and permission bits).
    pub mode: u32,
    pub mtime: SystemTime,
    /// For a symlink: the absolute path it resolves to inside the container; else empty.
    pub link_target: String,
}

/// How `extract` treats what it finds and the ownership it gives.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractOptions {
    /// Refuse to replace a directory by a non-directory or the other way round.
    pub no_overwrite_dir_non_dir: bool,
    /// Keep the uid/gid of the tar entries; otherwise everything is owned by 0:0 (the
    /// container's root), as Docker does without `cp -a`.
    pub copy_uid_gid: bool,
}

/// The container's root as the worker thread sees it.
struct Root {
    fd: OwnedFd,
    proc: Option<OwnedFd>,
}

/// How the worker thread reaches the container's root.
enum Access {
    /// Join the mount namespace of the running init.
    Running { pidfd: OwnedFd },
    /// Mount the overlay (and volumes and binds) in a private namespace.
    Stopped { options: String, writable_upper: bool, readonly: bool, mount_point: PathBuf, binds: Vec<Bind> },
}

struct Bind {
    source: PathBuf,
    destination: String,
    rw: bool,
}

/// The container-side facts the worker needs.
struct Plan {
    id: String,
    name: String,
    access: Access,
    /// Mounts as the container sees them, for the read-only checks of an extraction.
    mounts: Vec<(String, bool)>,
    readonly_rootfs: bool,
    /// The daemon's userns-remap for this container, if any: ids written are shifted into it.
    remap: Option<crate::UsernsRemap>,
    /// A remapped container that never ran, extracted into with the image's ids: its upper
    /// dir is shifted to the remapped ids after (see `copy_plan`).
    shift_upper: Option<(crate::UsernsRemap, PathBuf)>,
    /// The container's operation lock, held while the plan lives (see `hold_op`).
    hold: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Engine {
    /// `HEAD /containers/{id}/archive`: the stat of `path` inside the container.
    pub async fn container_stat_path(&self, name: &str, path: &str) -> Result<PathStat, EngineError> {
        let plan = self.copy_plan(name, false).await?;
        let path = path.to_string();
        run_confined(plan, move |root, plan| stat_path(root, plan, &path)).await
    }

    /// `GET /containers/{id}/archive`: returns the stat of `path` once known; the tar of it is
    /// then written to `out` by the worker thread, which emits `archive-path` when done.
    pub async fn container_archive(
        &self,
        name: &str,
        path: &str,
        out: Box<dyn Write + Send>,
    ) -> Result<PathStat, EngineError> {
        let plan = self.copy_plan(name, false).await?;
        let rec = self.find_container(&plan.id)?;
        // A remapped container's files go out with the ids it sees, as `export` writes them.
        let out: Box<dyn Write + Send> = Box::new(crate::userns::IdShift::new(out, self.unshift_for(&rec)));
        let path = path.to_string();
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<PathStat, EngineError>>();
        let engine = self.clone();
        let id = plan.id.clone();
        let thread = std::thread::Builder::new().name("cp-archive".into()).spawn(move || {
            let mut tx = Some(tx);
            let result = confined(plan, |root, plan| {
                let stat = match stat_path(root, plan, &path) {
                    Ok(s) => s,
                    Err(e) => {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(Err(e));
                        }
                        return Ok(());
                    }
                };
                if let Some(tx) = tx.take() {
                    let _ = tx.send(Ok(stat.clone()));
                }
                engine.container_event(&rec, "archive-path", &[]);
                write_path(root, &path, &stat, out)
                    .map_err(|e| EngineError::io(format!("copy {path} from container {}", plan.id), e))
            });
            match (result, tx.take()) {
                (Err(e), Some(tx)) => {
                    let _ = tx.send(Err(e));
                }
                (Err(e), None) => log::warn!("{e}"),
                _ => {}
            }
        });
        thread.map_err(|e| EngineError::io("cp: start thread", e))?;
        rx.await.map_err(|_| EngineError::Internal(format!("copy from container {id}: worker ended early")))?
    }

    /// `PUT /containers/{id}/archive`: extracts the tar `body` into the directory `path`.
    pub async fn container_extract(
        &self,
        name: &str,
        path: &str,
        options: ExtractOptions,
        body: Box<dyn Read + Send>,
    ) -> Result<(), EngineError> {
        let mut plan = self.copy_plan(name, true).await?;
        let rec = self.find_container(&plan.id)?;
        let path = path.to_string();
        // Kept until the upper dir is shifted too, so that no start sees it half done.
        let hold = plan.hold.take();
        let shift = plan.shift_upper.take();
        let extracted = run_confined(plan, move |root, plan| extract(root, plan, &path, options, body)).await;
        // Whatever the extraction wrote is shifted, even when it failed part way.
        let shifted = match shift {
            Some((remap, upper)) => {
                blocking(move || {
                    crate::userns::shift_tree(&upper, &remap).map_err(|e| {
                        EngineError::io(format!("shift the ids of {} to the remapped ones", upper.display()), e)
                    })
                })
                .await
            }
            None => Ok(()),
        };
        drop(hold);
        // The extraction's failure is the cause when both failed.
        extracted?;
        shifted?;
        self.container_event(&rec, "extract-to-dir", &[]);
        Ok(())
    }

    /// Holds the container's operation lock (the one `start` takes) until the returned sender
    /// is dropped, from a task of its own so that the holder may be a plain thread.
    async fn hold_op(&self, id: &str) -> tokio::sync::oneshot::Sender<()> {
        let live = self.live(id);
        let (locked_tx, locked_rx) = tokio::sync::oneshot::channel::<()>();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _guard = live.op.lock().await;
            let _ = locked_tx.send(());
            let _ = release_rx.await;
        });
        let _ = locked_rx.await;
        release_tx
    }

    /// Resolves how to reach the container's root. The operation lock is taken first and kept
    /// for an extraction, or for any copy of a stopped container (whose overlay is mounted with
    /// the container's own work dir): a start waits until the copy ends.
    async fn copy_plan(&self, name: &str, writable: bool) -> Result<Plan, EngineError> {
        let rec = self.find_container(name)?;
        let hold = self.hold_op(&rec.id).await;
        let rec = self.find_container(&rec.id)?;
        let mut mounts: Vec<(String, bool)> =
            rec.mounts.iter().map(|m| (clean_abs(&m.destination), m.rw || m.kind == MountKind::Tmpfs)).collect();
        mounts.sort_by_key(|(d, _)| std::cmp::Reverse(d.len()));
        let remap = self.remap_for(&rec.host_config.security.userns_mode).cloned();
        let pidfd = self.live(&rec.id).init_pidfd();
        let access = match pidfd {
            Some(pidfd) => Access::Running { pidfd },
            // Recorded as running but not reachable (a shim not yet re-adopted): mounting its
            // overlay a second time on the same upper and work dirs would corrupt it.
            None if rec.state.running => {
                return Err(EngineError::Conflict(format!(
                    "container {} is running but its process cannot be reached yet; try again",
                    rec.id
                )))
            }
            None => {
                let dirs = self.inner.snapshots.container_dirs(&rec.id);
                if !dirs.upper.is_dir() {
                    return Err(EngineError::Conflict(format!("container {} has no file system", rec.id)));
                }
                // Read-write even to read: the mount points of volumes may have to be made,
                // as a start would make them.
                let mut options = self.inner.snapshots.overlay_options(&rec.chain_ids, &rec.id)?;
                if remap.is_some() {
                    // Its opaque dirs are marked as an overlay in a user namespace marks them.
                    options.push_str(",userxattr");
                }
                let mut binds: Vec<Bind> = rec
                    .mounts
                    .iter()
                    .filter(|m| m.kind != MountKind::Tmpfs && !m.source.is_empty())
                    .map(|m| Bind {
                        source: PathBuf::from(&m.source),
                        destination: clean_abs(&m.destination),
                        rw: m.rw,
                    })
                    .collect();
                // Parents before children.
                binds.sort_by_key(|b| b.destination.matches('/').count());
                Access::Stopped {
                    options,
                    writable_upper: writable,
                    readonly: rec.host_config.readonly_rootfs,
                    mount_point: dirs.rootfs,
                    binds,
                }
            }
        };
        let running = matches!(access, Access::Running { .. });
        let mut remap = remap;
        let mut shift_upper = None;
        if !running && writable && remap.is_some() {
            // Its overlay would need the idmapped layers the container mounts in its user
            // namespace: mounted without them, copied-up directories come with the image's ids.
            // One that never ran has nothing in its upper dir but what this copy writes, so
            // the copy writes the image's ids and the whole upper dir is shifted after (a
            // build's COPY through a symlink of the image, or its ADD of an archive).
            if !rec.state.started_at.is_empty() {
                return Err(EngineError::Conflict(format!(
                    "cannot copy into the stopped container {} under userns-remap: start it first",
                    rec.name
                )));
            }
            shift_upper = remap.take().map(|r| (r, self.inner.snapshots.container_dirs(&rec.id).upper));
        }
        Ok(Plan {
            id: rec.id,
            name: rec.name,
            access,
            mounts,
            readonly_rootfs: rec.host_config.readonly_rootfs,
            remap,
            shift_upper,
            hold: if running && !writable { None } else { Some(hold) },
        })
    }
}

/// Runs `f` on a dedicated thread inside the container's root and waits for it.
async fn run_confined<T: Send + 'static>(
    plan: Plan,
    f: impl FnOnce(&Root, &Plan) -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let id = plan.id.clone();
    std::thread::Builder::new()
        .name("cp".into())
        .spawn(move || {
            let _ = tx.send(confined(plan, f));
        })
        .map_err(|e| EngineError::io("cp: start thread", e))?;
    rx.await.map_err(|_| EngineError::Internal(format!("copy in container {id}: worker thread panicked")))?
}

/// On the calling (dedicated) thread: enters the container's root and runs `f` with an fd of it.
fn confined<T>(plan: Plan, f: impl FnOnce(&Root, &Plan) -> Result<T, EngineError>) -> Result<T, EngineError> {
    let ctx = |what: &str| format!("cp in container {}: {what}", plan.id);
    if let Some(r) = &plan.remap {
        act_as(r.root_uid(), r.root_gid()).map_err(|e| EngineError::io(ctx("act as the container's root"), e))?;
    }
    // The host's /proc, opened before the root changes: only to name fds (`fd_path`).
    let proc = sys::openat(libc::AT_FDCWD, c"/proc", libc::O_PATH | libc::O_DIRECTORY, 0).ok();
    match &plan.access {
        Access::Running { pidfd } => {
            // SAFETY: unshare only changes this thread's fs attributes (root, cwd), which a thread
            // must own alone before it may join a mount namespace.
            if unsafe { libc::unshare(libc::CLONE_FS) } != 0 {
                return Err(EngineError::io(ctx("unshare fs"), io::Error::last_os_error()));
            }
            // SAFETY: a valid pidfd; joining the mount namespace sets this thread's root and cwd
            // to the container's root.
            if unsafe { libc::setns(pidfd.as_raw_fd(), libc::CLONE_NEWNS) } != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ESRCH) {
                    return Err(EngineError::Conflict(format!("container {} is not running", plan.id)));
                }
                return Err(EngineError::io(ctx("join mount namespace"), e));
            }
        }
        Access::Stopped { options, writable_upper, readonly, mount_point, binds } => {
            mount_stopped(options, *writable_upper, *readonly, mount_point, binds)
                .map_err(|e| EngineError::io(ctx(&format!("mount file system at {}", mount_point.display())), e))?;
        }
    }
    let root = sys::openat(libc::AT_FDCWD, c"/", libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| EngineError::io(ctx("open root"), e))?;
    f(&Root { fd: root, proc }, &plan)
}

/// Makes this thread create files as a remapped container's root: its file system user and
/// group become the container root's host ids (a file system mounted in the container's user
/// namespace refuses creators it cannot map), and the file capabilities the kernel then drops
/// from the effective set are raised again from the permitted set.
fn act_as(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: setfsgid and setfsuid change only this thread's file system ids.
    unsafe {
        libc::syscall(libc::SYS_setfsgid, gid);
        libc::syscall(libc::SYS_setfsuid, uid);
    }
    // SAFETY: an invalid id changes nothing and returns the current one.
    let now = unsafe { libc::syscall(libc::SYS_setfsuid, u32::MAX) };
    if now as u32 != uid {
        return Err(io::Error::other(format!("setfsuid {uid} did not take")));
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header { version: 0x2008_0522, pid: 0 };
    let mut data = [Data::default(); 2];
    // SAFETY: a version 3 header (pid 0: this thread) and the two data words it wants.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header as *mut Header, data.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    for d in &mut data {
        d.effective = d.permitted;
    }
    // SAFETY: as above; only this thread's effective set changes, within its permitted set.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// Private namespace, the overlay, chroot into it, then the binds at their destinations
/// (resolved inside the new root, so a symlinked destination cannot point out).
fn mount_stopped(
    options: &str,
    writable_upper: bool,
    readonly: bool,
    mount_point: &std::path::Path,
    binds: &[Bind],
) -> io::Result<()> {
    // SAFETY: unshare only changes this thread's namespaces; CLONE_NEWNS implies CLONE_FS.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: valid NUL-terminated strings; every mount of the new namespace becomes private so
    // nothing below propagates back to the host.
    if unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    let target = sys::cstring(mount_point.as_os_str().as_bytes())?;
    let data = sys::cstring(options.as_bytes())?;
    // SAFETY: valid NUL-terminated strings; the mount lives in this thread's namespace only.
    if unsafe { libc::mount(c"overlay".as_ptr(), target.as_ptr(), c"overlay".as_ptr(), 0, data.as_ptr().cast()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // Detached copies of the sources, taken while host paths still mean the host's.
    let mut trees = Vec::new();
    for b in binds {
        let src = sys::cstring(b.source.as_os_str().as_bytes())?;
        // SAFETY: valid path; open_tree returns a new fd we own.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_open_tree,
                libc::AT_FDCWD,
                src.as_ptr(),
                OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("open mount source {}: {e}", b.source.display())));
        }
        // SAFETY: fd was just returned by the kernel and is owned by nobody else.
        trees.push(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
    }
    // SAFETY: valid path; chroot confines this thread's (unshared) root.
    if unsafe { libc::chroot(target.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: valid path.
    if unsafe { libc::chdir(c"/".as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let root = sys::openat(libc::AT_FDCWD, c"/", libc::O_PATH | libc::O_DIRECTORY, 0)?;
    for (b, tree) in binds.iter().zip(trees) {
        let is_dir = sys::fstat(tree.as_raw_fd()).map(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR).unwrap_or(true);
        let dest = open_dir_creating(&root, &b.destination, is_dir)?;
        // SAFETY: a valid mount fd and a valid destination fd; attaches the copied tree there.
        let r = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                tree.as_raw_fd(),
                c"".as_ptr(),
                dest.as_raw_fd(),
                c"".as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("mount {} at {}: {e}", b.source.display(), b.destination)));
        }
        if !b.rw {
            let d = sys::cstring(b.destination.as_bytes())?;
            // SAFETY: valid path inside the chroot; only this namespace's mount changes.
            let r = unsafe {
                libc::mount(
                    std::ptr::null(),
                    d.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC,
                    std::ptr::null(),
                )
            };
            // A read-only volume left writable would let the copy write into it.
            if r != 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::new(e.kind(), format!("make {} read-only: {e}", b.destination)));
            }
        }
    }
    if !writable_upper || readonly {
        // SAFETY: valid path; only this namespace's root mount becomes read-only (the volumes
        // below keep their own flags).
        if unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                std::ptr::null(),
            )
        } != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Opens `dest` resolved inside `root`, creating what is missing (directories; the last element
/// as an empty file when `is_dir` is false, for a file bind's mount point).
fn open_dir_creating(root: &OwnedFd, dest: &str, is_dir: bool) -> io::Result<OwnedFd> {
    let comps: Vec<&str> = dest.split('/').filter(|c| !c.is_empty()).collect();
    let mut cur = sys::openat(root.as_raw_fd(), c".", libc::O_PATH | libc::O_DIRECTORY, 0)?;
    for (i, comp) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let c = sys::cstring(comp.as_bytes())?;
        let sub = format!("/{}", comps[..=i].join("/"));
        let subc = sys::cstring(sub.as_bytes())?;
        let flags = if last && !is_dir { libc::O_PATH } else { libc::O_PATH | libc::O_DIRECTORY };
        match sys::openat2_in_root(root.as_raw_fd(), &subc, flags) {
            Ok(fd) => cur = fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                if last && !is_dir {
                    let fd =
                        sys::openat(cur.as_raw_fd(), &c, libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW, 0o644)?;
                    drop(fd);
                } else {
                    sys::mkdirat(cur.as_raw_fd(), &c, 0o755)?;
                }
                cur = sys::openat2_in_root(root.as_raw_fd(), &subc, flags)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(cur)
}

/// `/a//b/` → `/a/b`, and `/` for the root.
fn clean_abs(p: &str) -> String {
    let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    format!("/{}", parts.join("/"))
}

/// Splits a container path as Docker does: the directory (resolved with symlinks followed) and
/// the last element (not followed), which is empty when the path names a directory itself
/// (`/`, a trailing `/`, `/.` or `/..`).
fn split_path(path: &str) -> (String, String) {
    let abs = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    match abs.rsplit_once('/') {
        Some((_, "" | "." | "..")) | None => (abs, String::new()),
        Some((dir, base)) => (if dir.is_empty() { "/".to_string() } else { dir.to_string() }, base.to_string()),
    }
}

/// The name Docker reports for a path: its last element, trailing `/.` kept as `.`.
fn base_name(path: &str) -> String {
    if path.ends_with("/.") || path == "." {
        return ".".into();
    }
    match path.trim_end_matches('/').rsplit('/').next() {
        Some("") | None => "/".into(),
        Some(b) => b.to_string(),
    }
}

fn not_found(path: &str, plan: &Plan) -> EngineError {
    EngineError::NotFound(format!("Could not find the file {path} in container {}", plan.name))
}

/// Opens the directory of `path` (symlinks followed, inside the root) and stats the last element
/// without following it.
fn lookup(root: &Root, plan: &Plan, path: &str) -> Result<(OwnedFd, String, libc::stat), EngineError> {
    let (dir, base) = split_path(path);
    let dirc = sys::cstring(dir.as_bytes()).map_err(|_| EngineError::Invalid(format!("invalid path {path:?}")))?;
    let dirfd = sys::openat2_in_root(root.fd.as_raw_fd(), &dirc, libc::O_PATH | libc::O_DIRECTORY)
        .map_err(|e| lookup_error(e, path, plan))?;
    let st = if base.is_empty() {
        sys::fstat(dirfd.as_raw_fd())
    } else {
        let b = sys::cstring(base.as_bytes()).map_err(|_| EngineError::Invalid(format!("invalid path {path:?}")))?;
        sys::lstat_at(dirfd.as_raw_fd(), &b)
    }
    .map_err(|e| lookup_error(e, path, plan))?;
    Ok((dirfd, base, st))
}

fn lookup_error(e: io::Error, path: &str, plan: &Plan) -> EngineError {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => not_found(path, plan),
        Some(libc::ELOOP | libc::EXDEV) => {
            EngineError::Invalid(format!("cannot resolve {path} in container {}: {e}", plan.name))
        }
        _ => EngineError::io(format!("resolve {path} in container {}", plan.name), e),
    }
}

fn stat_path(root: &Root, plan: &Plan, path: &str) -> Result<PathStat, EngineError> {
    let (_, _, st) = lookup(root, plan, path)?;
    let mut link_target = String::new();
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        let abs = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
        let c = sys::cstring(abs.as_bytes()).map_err(|_| EngineError::Invalid(format!("invalid path {path:?}")))?;
        // A dangling link resolves to nothing: Docker reports the stat and no target then.
        if let Ok(fd) = sys::openat2_in_root(root.fd.as_raw_fd(), &c, libc::O_PATH) {
            link_target = fd_path(root, &fd).unwrap_or_default();
        }
    }
    Ok(PathStat {
        name: base_name(path),
        size: st.st_size,
        mode: st.st_mode,
        mtime: SystemTime::UNIX_EPOCH
            + Duration::new(st.st_mtime.max(0) as u64, st.st_mtime_nsec.clamp(0, 999_999_999) as u32),
        link_target,
    })
}

/// The path of `fd` relative to this thread's root, through the host's /proc.
fn fd_path(root: &Root, fd: &OwnedFd) -> Option<String> {
    let proc = root.proc.as_ref()?;
    let name = sys::cstring(format!("thread-self/fd/{}", fd.as_raw_fd()).as_bytes()).ok()?;
    let target = sys::readlink_at(proc.as_raw_fd(), &name).ok()?;
    let s = String::from_utf8(target).ok()?;
    s.starts_with('/').then_some(s)
}

/// Writes `path` as a tar: a directory as `name/` and its tree below, anything else as one entry
/// named `name` (the stat's name, so `dir/.` gives `./...`).
fn write_path(root: &Root, path: &str, stat: &PathStat, out: Box<dyn Write + Send>) -> io::Result<()> {
    let mut tar = tar::Builder::new(out);
    let mut links = HashMap::new();
    let (dir, base) = split_path(path);
    let name = if stat.name == "/" { ".".to_string() } else { stat.name.clone() };
    let dirc = sys::cstring(dir.as_bytes())?;
    if base.is_empty() {
        let fd = sys::openat2_in_root(root.fd.as_raw_fd(), &dirc, libc::O_RDONLY | libc::O_DIRECTORY)?;
        let st = sys::fstat(fd.as_raw_fd())?;
        append_entry(&mut tar, &fd, None, &st, name.as_bytes(), &mut links)?;
    } else {
        let dirfd = sys::openat2_in_root(root.fd.as_raw_fd(), &dirc, libc::O_PATH | libc::O_DIRECTORY)?;
        let b = sys::cstring(base.as_bytes())?;
        let st = sys::lstat_at(dirfd.as_raw_fd(), &b)?;
        append_entry(&mut tar, &dirfd, Some(&b), &st, name.as_bytes(), &mut links)?;
    }
    tar.into_inner()?.flush()
}

fn header_for(st: &libc::stat) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(u64::from(st.st_uid));
    h.set_gid(u64::from(st.st_gid));
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

/// Appends one entry: `name` in `dir` (or `dir` itself when `name` is `None`, always a
/// directory), recursing into directories through fds opened with `O_NOFOLLOW`.
fn append_entry<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: &OwnedFd,
    name: Option<&CStr>,
    st: &libc::stat,
    rel: &[u8],
    links: &mut HashMap<(u64, u64), Vec<u8>>,
) -> io::Result<()> {
    let mut h = header_for(st);
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => {
            let sub = match name {
                Some(n) => sys::openat(dir.as_raw_fd(), n, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)?,
                None => sys::openat(dir.as_raw_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?,
            };
            h.set_entry_type(tar::EntryType::Directory);
            let mut dirname = rel.to_vec();
            dirname.push(b'/');
            append_named(tar, &mut h, &dirname, None, io::empty())?;
            let mut names = sys::list_dir(&sub)?;
            names.sort();
            for child in names {
                let c = sys::cstring(&child)?;
                let cst = match sys::lstat_at(sub.as_raw_fd(), &c) {
                    Ok(s) => s,
                    // Removed while we walk: not part of the copy.
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                    Err(e) => return Err(e),
                };
                let mut crel = dirname.clone();
                crel.extend_from_slice(&child);
                append_entry(tar, &sub, Some(&c), &cst, &crel, links)?;
            }
        }
        libc::S_IFLNK => {
            let Some(n) = name else { return Ok(()) };
            let target = sys::readlink_at(dir.as_raw_fd(), n)?;
            h.set_entry_type(tar::EntryType::Symlink);
            append_named(tar, &mut h, rel, Some(&target), io::empty())?;
        }
        libc::S_IFREG => {
            let Some(n) = name else { return Ok(()) };
            let key = (st.st_dev, st.st_ino);
            if st.st_nlink > 1 {
                if let Some(first) = links.get(&key) {
                    h.set_entry_type(tar::EntryType::Link);
                    append_named(tar, &mut h, rel, Some(first), io::empty())?;
                    return Ok(());
                }
                links.insert(key, rel.to_vec());
            }
            let fd = sys::openat(dir.as_raw_fd(), n, libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK, 0)?;
            let fst = sys::fstat(fd.as_raw_fd())?;
            if fst.st_ino != st.st_ino || fst.st_mode & libc::S_IFMT != libc::S_IFREG {
                return Err(io::Error::other(format!("{} changed while it was copied", String::from_utf8_lossy(rel))));
            }
            let size = fst.st_size.max(0) as u64;
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(size);
            let file = std::fs::File::from(fd);
            append_named(tar, &mut h, rel, None, crate::export::PaddedReader::new(file.take(size), size))?;
        }
        libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
            h.set_entry_type(match st.st_mode & libc::S_IFMT {
                libc::S_IFCHR => tar::EntryType::Char,
                libc::S_IFBLK => tar::EntryType::Block,
                _ => tar::EntryType::Fifo,
            });
            h.set_device_major(libc::major(st.st_rdev))?;
            h.set_device_minor(libc::minor(st.st_rdev))?;
            append_named(tar, &mut h, rel, None, io::empty())?;
        }
        // Sockets cannot be archived: skipped, as Docker does.
        _ => {}
    }
    Ok(())
}

/// Appends an entry named exactly `name` (the tar crate would drop a leading `./`, which the
/// docker CLI relies on for `dir/.`), with GNU long-name entries for what does not fit.
fn append_named<W: Write>(
    tar: &mut tar::Builder<W>,
    h: &mut tar::Header,
    name: &[u8],
    link: Option<&[u8]>,
    data: impl Read,
) -> io::Result<()> {
    const FIELD: usize = 100;
    if name.len() > FIELD {
        append_long(tar, tar::EntryType::GNULongName, name)?;
    }
    let old = h.as_old_mut();
    old.name.fill(0);
    let n = name.len().min(FIELD);
    old.name[..n].copy_from_slice(&name[..n]);
    if let Some(link) = link {
        if link.len() > FIELD {
            append_long(tar, tar::EntryType::GNULongLink, link)?;
        }
        let old = h.as_old_mut();
        old.linkname.fill(0);
        let n = link.len().min(FIELD);
        old.linkname[..n].copy_from_slice(&link[..n]);
    }
    h.set_cksum();
    tar.append(h, data)
}

/// A GNU `././@LongLink` entry carrying the full name (or link target) of the next entry.
fn append_long<W: Write>(tar: &mut tar::Builder<W>, kind: tar::EntryType, value: &[u8]) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    let marker = b"././@LongLink";
    h.as_old_mut().name[..marker.len()].copy_from_slice(marker);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(kind);
    let mut data = value.to_vec();
    data.push(0);
    h.set_size(data.len() as u64);
    h.set_cksum();
    tar.append(&h, &data[..])
}

fn extract(
    root: &Root,
    plan: &Plan,
    path: &str,
    options: ExtractOptions,
    body: Box<dyn Read + Send>,
) -> Result<(), EngineError> {
    let abs = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    let c = sys::cstring(abs.as_bytes()).map_err(|_| EngineError::Invalid(format!("invalid path {path:?}")))?;
    let dest = match sys::openat2_in_root(root.fd.as_raw_fd(), &c, libc::O_PATH) {
        Ok(fd) => fd,
        Err(e) => return Err(lookup_error(e, path, plan)),
    };
    if sys::fstat(dest.as_raw_fd()).map_err(|e| lookup_error(e, path, plan))?.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(EngineError::Invalid("extraction point is not a directory".into()));
    }
    let dest_abs = fd_path(root, &dest).unwrap_or_else(|| clean_abs(&abs));
    check_writable(plan, &dest_abs)?;

    let ctx = |what: String, full: &str, e: io::Error| -> EngineError {
        match e.raw_os_error() {
            // The entry went below the destination into a read-only volume, or the rootfs.
            Some(libc::EROFS) => match check_writable(plan, full) {
                Err(refused) => refused,
                Ok(()) => EngineError::Forbidden(format!("{full} is on a read-only file system")),
            },
            _ => EngineError::io(format!("copy to {dest_abs} in container {}: {what}", plan.name), e),
        }
    };
    let copy_ids = options.copy_uid_gid;
    // A remapped container sees host ids through its maps: write the ones it will see as asked
    // (ids outside the maps are refused rather than left unmapped).
    let remapped = |uid: u32, gid: u32| {
        let (uid, gid) = if copy_ids { (uid, gid) } else { (0, 0) };
        let r = plan.remap.as_ref()?;
        Some((r.host_uid(uid)?, r.host_gid(gid)?))
    };
    let policy = untar::Policy {
        resolve: untar::Resolve::InRoot { root: root.fd.as_raw_fd(), path: dest_abs.as_bytes() },
        root_entry: false,
        // Without `cp -a` everything is owned by the container's root, as Docker does.
        owner: match (&plan.remap, copy_ids) {
            (Some(_), _) => untar::Owner::Mapped(&remapped),
            (None, true) => untar::Owner::AsGiven,
            (None, false) => untar::Owner::Fixed(0, 0),
        },
        replace: if options.no_overwrite_dir_non_dir { untar::Replace::NoDirNonDir } else { untar::Replace::Always },
        pax_times: false,
        xattrs: false,
        refuse_unknown: false,
        nodes: true,
        whiteouts: false,
        lenient_header: true,
        rename: None,
    };
    // The entry's path in the container, for messages and the read-only check.
    let full = |entry: &str| {
        let rel = entry::components(entry.as_bytes())
            .map(|c| c.iter().map(|c| String::from_utf8_lossy(c)).collect::<Vec<_>>().join("/"))
            .unwrap_or_else(|_| entry.to_string());
        format!("{}/{rel}", dest_abs.trim_end_matches('/'))
    };
    let mut archive = tar::Archive::new(decompressed(body)?);
    untar::extract(&dest, &mut archive, &policy).map_err(|e| match e {
        untar::Error::Invalid { entry, problem } => EngineError::Invalid(match problem {
            untar::Problem::Name(refusal) => format!("tar entry {entry:?} {}", refusal.reason()),
            untar::Problem::Overwrite { dir: false } => {
                format!("cannot overwrite directory \"{}\" with non-directory \"{entry}\"", full(&entry))
            }
            untar::Problem::Overwrite { dir: true } => {
                format!("cannot overwrite non-directory \"{}\" with directory \"{entry}\"", full(&entry))
            }
            untar::Problem::OwnerUnmapped(uid, gid) => {
                let (uid, gid) = if copy_ids { (uid, gid) } else { (0, 0) };
                format!("tar entry {entry:?}: owner {uid}:{gid} is outside the container's user namespace")
            }
            untar::Problem::Blocked(parent) => {
                format!("tar entry {entry:?}: parent {parent:?} is not a directory")
            }
            problem => format!("tar entry {entry:?} {}", problem.reason("archive")),
        }),
        untar::Error::Io { entry, what, source } => {
            let full = full(&entry);
            ctx(format!("{what} {full}"), &full, source)
        }
        untar::Error::Read(e) => EngineError::Invalid(format!("invalid tar: {e}")),
    })?;
    Ok(())
}

/// The request body as a tar: plain or gzip (what the API accepts; the docker CLI sends plain).
fn decompressed(body: Box<dyn Read + Send>) -> Result<Box<dyn Read>, EngineError> {
    let mut input = io::BufReader::with_capacity(1 << 16, body);
    let head = io::BufRead::fill_buf(&mut input).map_err(|e| EngineError::Invalid(format!("invalid tar: {e}")))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Box::new(flate2::read::MultiGzDecoder::new(input)));
    }
    if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z']) {
        return Err(EngineError::Invalid("bzip2 and xz archives are not supported, use gzip or none".into()));
    }
    Ok(Box::new(input))
}

/// Refuses an extraction into a read-only volume, or into a read-only rootfs outside volumes.
fn check_writable(plan: &Plan, dest_abs: &str) -> Result<(), EngineError> {
    let volume = plan.mounts.iter().find(|(d, _)| dest_abs == d || dest_abs.starts_with(&format!("{d}/")));
    match volume {
        Some((_, false)) => Err(EngineError::Invalid("mounted volume is marked read-only".into())),
        Some((_, true)) => Ok(()),
        None if plan.readonly_rootfs => Err(EngineError::Forbidden("container rootfs is marked read-only".into())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_paths_as_docker() {
        let cases = [
            ("/etc/hostname", ("/etc", "hostname")),
            ("etc/hostname", ("/etc", "hostname")),
            ("/hostname", ("/", "hostname")),
            ("/etc/", ("/etc/", "")),
            ("/etc/.", ("/etc/.", "")),
            ("/", ("/", "")),
            ("/etc/..", ("/etc/..", "")),
        ];
        for (input, (dir, base)) in cases {
            assert_eq!(split_path(input), (dir.to_string(), base.to_string()), "{input}");
        }
    }

    #[test]
    fn names_as_docker() {
        let cases = [("/etc/hostname", "hostname"), ("/etc/", "etc"), ("/etc/.", "."), ("/", "/"), ("etc", "etc")];
        for (input, want) in cases {
            assert_eq!(base_name(input), want, "{input}");
        }
    }

    #[test]
    fn names_are_kept_exactly() {
        let mut tar = tar::Builder::new(Vec::new());
        let long = format!("./{}", "d/".repeat(80));
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        append_named(&mut tar, &mut h, b"./", None, io::empty()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(2);
        append_named(&mut tar, &mut h, b"./hosts", None, &b"ab"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        append_named(&mut tar, &mut h, long.as_bytes(), Some(long.as_bytes()), io::empty()).unwrap();
        let bytes = tar.into_inner().unwrap();
        let mut a = tar::Archive::new(&bytes[..]);
        let got: Vec<(Vec<u8>, Option<Vec<u8>>)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path_bytes().into_owned(), e.link_name_bytes().map(|l| l.into_owned()))
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (b"./".to_vec(), None),
                (b"./hosts".to_vec(), None),
                (long.as_bytes().to_vec(), Some(long.as_bytes().to_vec())),
            ]
        );
    }

    #[test]
    fn read_only_checks() {
        let plan = |ro_root: bool| Plan {
            id: "x".into(),
            name: "c".into(),
            access: Access::Stopped {
                options: String::new(),
                writable_upper: false,
                readonly: ro_root,
                mount_point: PathBuf::new(),
                binds: Vec::new(),
            },
            mounts: vec![("/data/ro".into(), false), ("/data".into(), true)],
            readonly_rootfs: ro_root,
            remap: None,
            shift_upper: None,
            hold: None,
        };
        assert!(check_writable(&plan(false), "/etc").is_ok());
        assert!(check_writable(&plan(false), "/data/x").is_ok());
        assert!(matches!(check_writable(&plan(false), "/data/ro/x"), Err(EngineError::Invalid(_))));
        assert!(matches!(check_writable(&plan(true), "/etc"), Err(EngineError::Forbidden(_))));
        assert!(check_writable(&plan(true), "/data").is_ok());
        assert!(matches!(check_writable(&plan(true), "/datax"), Err(EngineError::Forbidden(_))));
    }
}
