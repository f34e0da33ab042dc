//! Network namespaces kept alive by a bind mount of their nsfs file (as `ip netns` does), and
//! running code inside one. Namespace changes happen only on short-lived threads made for
//! that purpose, never on a thread of a pool that would carry the namespace to other work.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use wharf_types::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("network namespace {path}: {what}: {source}")]
    Io { path: PathBuf, what: &'static str, source: std::io::Error },
    #[error("network namespace thread failed")]
    Thread,
}

impl NetnsError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            NetnsError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            _ => ErrorKind::Internal,
        }
    }
}

fn io<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> NetnsError + 'a {
    move |source| NetnsError::Io { path: path.to_path_buf(), what, source }
}

/// Runs `f` on a new thread that first leaves for a new network namespace, after `before`
/// ran on that thread still in the caller's namespace; the new namespace is bind-mounted on
/// `path` before `f` runs. When anything fails the mount and the file are removed again.
pub fn create<B, T>(
    path: &Path,
    before: impl FnOnce() -> B + Send + 'static,
    f: impl FnOnce(B) -> Result<T, String> + Send + 'static,
) -> Result<Result<T, String>, NetnsError>
where
    B: Send + 'static,
    T: Send + 'static,
{
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent, "create directory"))?;
    }
    File::create(path).map_err(io(path, "create mount point"))?;
    let target = path.to_path_buf();
    let handle = std::thread::spawn(move || -> Result<Result<T, String>, NetnsError> {
        let b = before();
        // SAFETY: unshare only changes this thread's network namespace; the thread ends
        // when this closure returns, so no other work ever runs in it.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(io(&target, "unshare")(std::io::Error::last_os_error()));
        }
        bind_mount(Path::new("/proc/thread-self/ns/net"), &target)?;
        Ok(f(b))
    });
    let result = handle.join().map_err(|_| NetnsError::Thread).and_then(|r| r);
    match result {
        Ok(Ok(v)) => Ok(Ok(v)),
        Ok(Err(msg)) => {
            let _ = remove(path);
            Ok(Err(msg))
        }
        Err(e) => {
            let _ = remove(path);
            Err(e)
        }
    }
}

fn bind_mount(src: &Path, dst: &Path) -> Result<(), NetnsError> {
    let s = cstr(src)?;
    let d = cstr(dst)?;
    // SAFETY: both strings are valid C strings; a bind mount has no data argument.
    let rc = unsafe { libc::mount(s.as_ptr(), d.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null()) };
    if rc != 0 {
        return Err(io(dst, "bind mount")(std::io::Error::last_os_error()));
    }
    Ok(())
}

fn cstr(p: &Path) -> Result<std::ffi::CString, NetnsError> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io(p, "path")(std::io::Error::from(std::io::ErrorKind::InvalidInput)))
}

/// Unmounts and unlinks a namespace file; a file that is not there is not an error.
pub fn remove(path: &Path) -> Result<(), NetnsError> {
    let c = cstr(path)?;
    // SAFETY: c is a valid C string; MNT_DETACH never blocks on users of the mount.
    let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) {
            return Err(io(path, "unmount")(e));
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path, "remove")(e)),
    }
}

/// Whether `path` is a mounted network namespace (and not just the empty mount point).
pub fn is_mounted(path: &Path) -> bool {
    // nsfs files report st_dev of the nsfs; an empty file on the exec root does not.
    match (std::fs::metadata(path), std::fs::metadata("/proc/self/ns/net")) {
        (Ok(a), Ok(b)) => {
            use std::os::unix::fs::MetadataExt;
            a.dev() == b.dev()
        }
        _ => false,
    }
}

/// Runs `f` on a new thread inside the network namespace of `path`.
pub fn run_in<T: Send + 'static>(path: &Path, f: impl FnOnce() -> T + Send + 'static) -> Result<T, NetnsError> {
    let file = File::open(path).map_err(io(path, "open"))?;
    let target = path.to_path_buf();
    std::thread::spawn(move || {
        // SAFETY: setns on an fd we hold, changing only this thread, which ends right after.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io(&target, "setns")(std::io::Error::last_os_error()));
        }
        Ok(f())
    })
    .join()
    .map_err(|_| NetnsError::Thread)?
}
