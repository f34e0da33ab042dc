//! Thin safe wrappers around the system calls the confined walks need. Names are `&CStr` (one
//! path element, or a path resolved by `openat2` inside a root); fds come back owned. Every fd
//! opened here is `O_CLOEXEC`.

use std::ffi::{CStr, CString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `name` as a C string; a NUL byte in it is `InvalidInput`.
pub fn cstring(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// `openat`, always with `O_CLOEXEC`. Without `O_NOFOLLOW` in `flags` a symlink at `name` is
/// followed: callers that walk untrusted trees pass it.
pub fn openat(dir: RawFd, name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string; the returned fd is checked and owned.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the directory `name` in `dir` without following a symlink in its place.
pub fn open_dir_at(dir: RawFd, name: &CStr) -> io::Result<OwnedFd> {
    openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)
}

/// `openat2` with `root` as the root of the walk (`RESOLVE_IN_ROOT`): `..` and absolute
/// symlinks in `path` stay below it; /proc magic links are refused (`RESOLVE_NO_MAGICLINKS`).
/// Symlinks are followed, as the container or image that made them means them.
pub fn openat2_in_root(root: RawFd, path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    openat2(root, path, flags, libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS)
}

/// `openat2` with the given `RESOLVE_*` flags (and `O_CLOEXEC`).
pub fn openat2(dir: RawFd, path: &CStr, flags: libc::c_int, resolve: u64) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain integers; all zero is valid (and what unused fields must be).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    // With RESOLVE_IN_ROOT the kernel answers EAGAIN when a rename or mount anywhere on the
    // host raced the walk (it cannot prove `..` stayed inside): retry, as openat2(2) says.
    // A full test run beside parallel builds hit it in `docker cp`.
    let mut attempts = 0;
    loop {
        // SAFETY: a valid NUL-terminated path and an open_how of the size passed.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir,
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: fd was just returned by the kernel and nothing else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
        let e = io::Error::last_os_error();
        attempts += 1;
        match e.raw_os_error() {
            Some(libc::EAGAIN) if attempts < 100 => std::thread::yield_now(),
            Some(libc::EINTR) => {}
            _ => return Err(e),
        }
    }
}

pub fn dup(fd: &OwnedFd) -> io::Result<OwnedFd> {
    fd.try_clone()
}

pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: a stat buffer of the right size for fstat to fill.
    check(unsafe { libc::fstat(fd, st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so it filled the buffer.
    Ok(unsafe { st.assume_init() })
}

/// `lstat` of `name` in `dir` (a symlink there is not followed).
pub fn lstat_at(dir: RawFd, name: &CStr) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `name` is NUL-terminated and `st` is a writable stat buffer of the right size.
    check(unsafe { libc::fstatat(dir, name.as_ptr(), st.as_mut_ptr(), libc::AT_SYMLINK_NOFOLLOW) })?;
    // SAFETY: fstatat succeeded, so it filled the buffer.
    Ok(unsafe { st.assume_init() })
}

/// [`lstat_at`], with `None` when `name` does not exist.
pub fn lstat_at_if_exists(dir: RawFd, name: &CStr) -> io::Result<Option<libc::stat>> {
    match lstat_at(dir, name) {
        Ok(st) => Ok(Some(st)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn readlink_at(dir: RawFd, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: a valid name and a buffer of the length passed.
    let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// The names in the directory `dir`, without `.` and `..`, in the order the file system gives.
pub fn list_dir(dir: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    // A fresh open description: the stream reads from offset 0 and owns its fd.
    let fd = openat(dir.as_raw_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    // SAFETY: fdopendir takes ownership of a valid directory fd on success.
    let d = unsafe { libc::fdopendir(fd.as_raw_fd()) };
    if d.is_null() {
        return Err(io::Error::last_os_error());
    }
    // Owned by the stream now, closed by closedir.
    std::mem::forget(fd);
    let mut names = Vec::new();
    loop {
        // SAFETY: d is a valid DIR stream until closedir below.
        let ent = unsafe { libc::readdir(d) };
        if ent.is_null() {
            break;
        }
        // SAFETY: readdir returned a valid dirent whose d_name is NUL-terminated.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    // SAFETY: d is valid and closed once (this also closes the fd).
    unsafe { libc::closedir(d) };
    Ok(names)
}

pub fn mkdirat(dir: RawFd, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: `name` is a valid NUL-terminated string.
    check(unsafe { libc::mkdirat(dir, name.as_ptr(), mode) })
}

pub fn unlinkat(dir: RawFd, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: `name` is a valid NUL-terminated string.
    check(unsafe { libc::unlinkat(dir, name.as_ptr(), flags) })
}

/// Removes `name` in `dir`; a directory (`is_dir`) with everything below it, walked through
/// fds opened with `O_NOFOLLOW`, so a symlink inside is removed, never followed.
pub fn remove_tree_at(dir: RawFd, name: &CStr, is_dir: bool) -> io::Result<()> {
    if !is_dir {
        return unlinkat(dir, name, 0);
    }
    match unlinkat(dir, name, libc::AT_REMOVEDIR) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {
            let sub = open_dir_at(dir, name)?;
            for child in list_dir(&sub)? {
                let c = cstring(&child)?;
                let st = lstat_at(sub.as_raw_fd(), &c)?;
                remove_tree_at(sub.as_raw_fd(), &c, st.st_mode & libc::S_IFMT == libc::S_IFDIR)?;
            }
            unlinkat(dir, name, libc::AT_REMOVEDIR)
        }
        r => r,
    }
}

pub fn symlinkat(target: &CStr, dir: RawFd, name: &CStr) -> io::Result<()> {
    // SAFETY: both strings are valid and NUL-terminated.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir, name.as_ptr()) })
}

/// Hard-links `old_name` in `old_dir` as `new_name` in `new_dir`; a symlink is linked itself,
/// not followed.
pub fn linkat(old_dir: RawFd, old_name: &CStr, new_dir: RawFd, new_name: &CStr) -> io::Result<()> {
    // SAFETY: both strings are valid and NUL-terminated; flags 0 does not follow symlinks.
    check(unsafe { libc::linkat(old_dir, old_name.as_ptr(), new_dir, new_name.as_ptr(), 0) })
}

pub fn mknodat(dir: RawFd, name: &CStr, mode: libc::mode_t, dev: libc::dev_t) -> io::Result<()> {
    // SAFETY: `name` is a valid NUL-terminated string.
    check(unsafe { libc::mknodat(dir, name.as_ptr(), mode, dev) })
}

/// chown of `name` in `dir`; a symlink there is changed itself.
pub fn lchown_at(dir: RawFd, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated; AT_SYMLINK_NOFOLLOW changes a symlink itself.
    check(unsafe { libc::fchownat(dir, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) })
}

pub fn fchown(fd: RawFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain syscall on an fd the caller owns.
    check(unsafe { libc::fchown(fd, uid, gid) })
}

pub fn fchmod(fd: RawFd, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: plain syscall on an fd the caller owns.
    check(unsafe { libc::fchmod(fd, mode) })
}

/// chmod of `name` in `dir`. The caller makes sure `name` is not a symlink (Linux cannot chmod
/// a symlink, and fchmodat would follow it); where another process may swap one in meanwhile,
/// [`chmod_at_nofollow`] refuses it instead.
pub fn chmod_at(dir: RawFd, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: `name` is a valid NUL-terminated string.
    check(unsafe { libc::fchmodat(dir, name.as_ptr(), mode, 0) })
}

/// `fchmodat2` (Linux 6.6) with `AT_SYMLINK_NOFOLLOW`: a name swapped for a symlink meanwhile
/// is refused instead of followed.
pub fn chmod_at_nofollow(dir: RawFd, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    const SYS_FCHMODAT2: libc::c_long = 452;
    // SAFETY: a valid NUL-terminated name; the call reads nothing else.
    let r = unsafe { libc::syscall(SYS_FCHMODAT2, dir, name.as_ptr(), mode, libc::AT_SYMLINK_NOFOLLOW) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn fsetxattr(fd: RawFd, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and `value` is a valid buffer of the given length.
    check(unsafe { libc::fsetxattr(fd, name.as_ptr(), value.as_ptr().cast(), value.len(), 0) })
}

/// setxattr on `name` in `dir` without following a symlink there. There is no fd-based call for
/// a symlink or a device node (opening a device could have side effects), so this goes through
/// the `/proc/self/fd` magic link of the directory, which pins the directory itself.
pub fn lsetxattr_at(dir: RawFd, name: &CStr, xattr: &CStr, value: &[u8]) -> io::Result<()> {
    let mut path = format!("/proc/self/fd/{dir}/").into_bytes();
    path.extend_from_slice(name.to_bytes());
    let path = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: both strings are NUL-terminated and `value` is a valid buffer of the given length.
    check(unsafe { libc::lsetxattr(path.as_ptr(), xattr.as_ptr(), value.as_ptr().cast(), value.len(), 0) })
}

/// The value of the xattr `name` of `path` (a symlink there is not followed), read into `buf`:
/// the length of the value, or ERANGE when it is longer than `buf`.
pub fn lgetxattr(path: &CStr, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: both strings are NUL-terminated; the buffer's length is passed with it, so the
    // kernel writes at most that many bytes.
    let n = unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

fn times(mtime: libc::timespec) -> [libc::timespec; 2] {
    [mtime, mtime]
}

/// Sets the access and modification times of `fd` to `mtime`.
pub fn futimens(fd: RawFd, mtime: libc::timespec) -> io::Result<()> {
    let t = times(mtime);
    // SAFETY: `t` is an array of two timespecs, as futimens requires.
    check(unsafe { libc::futimens(fd, t.as_ptr()) })
}

/// Sets the access and modification times of `name` in `dir` (a symlink itself) to `mtime`.
pub fn lutimens_at(dir: RawFd, name: &CStr, mtime: libc::timespec) -> io::Result<()> {
    let t = times(mtime);
    // SAFETY: `name` is NUL-terminated and `t` is an array of two timespecs.
    check(unsafe { libc::utimensat(dir, name.as_ptr(), t.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
}

/// Renames, failing with EEXIST (or ENOTEMPTY) when the target exists, instead of replacing it.
pub fn rename_noreplace(old_dir: RawFd, old: &CStr, new_dir: RawFd, new: &CStr) -> io::Result<()> {
    // SAFETY: both strings are valid and NUL-terminated.
    check(unsafe { libc::renameat2(old_dir, old.as_ptr(), new_dir, new.as_ptr(), libc::RENAME_NOREPLACE) })
}

pub fn syncfs(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: plain syscall on an fd we own.
    check(unsafe { libc::syncfs(fd.as_raw_fd()) })
}

/// Detaches the mount at `path`, if any. "Not a mount point" and "missing" are not errors.
pub fn umount_detach(path: &CStr) -> io::Result<()> {
    // SAFETY: `path` is a valid NUL-terminated string.
    match check(unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) }) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) => Ok(()),
        other => other,
    }
}
