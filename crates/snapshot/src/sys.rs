//! Thin safe wrappers around the `*at` system calls that layer extraction and snapshot
//! bookkeeping need: every path operation is relative to an open directory fd, never a joined
//! string, so a symlink planted by a layer can never redirect it.

use std::ffi::CStr;
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

pub fn dup(fd: &OwnedFd) -> io::Result<OwnedFd> {
    fd.try_clone()
}

pub fn mkdirat(dir: RawFd, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: `name` is a valid NUL-terminated string.
    check(unsafe { libc::mkdirat(dir, name.as_ptr(), mode) })
}

/// `lstat` of `name` in `dir`; `None` when it does not exist.
pub fn lstat_at(dir: RawFd, name: &CStr) -> io::Result<Option<libc::stat>> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `name` is NUL-terminated and `st` is a writable stat buffer of the right size.
    let ret = unsafe { libc::fstatat(dir, name.as_ptr(), st.as_mut_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    if ret < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENOENT) { Ok(None) } else { Err(e) };
    }
    // SAFETY: fstatat succeeded, so it filled the buffer.
    Ok(Some(unsafe { st.assume_init() }))
}

pub fn unlinkat(dir: RawFd, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: `name` is a valid NUL-terminated string.
    check(unsafe { libc::unlinkat(dir, name.as_ptr(), flags) })
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
/// a symlink, and fchmodat would follow it).
pub fn chmod_at(dir: RawFd, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: `name` is a valid NUL-terminated string.
    check(unsafe { libc::fchmodat(dir, name.as_ptr(), mode, 0) })
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
    let path = std::ffi::CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: both strings are NUL-terminated and `value` is a valid buffer of the given length.
    check(unsafe { libc::lsetxattr(path.as_ptr(), xattr.as_ptr(), value.as_ptr().cast(), value.len(), 0) })
}

fn times(mtime: libc::timespec) -> [libc::timespec; 2] {
    [mtime, mtime]
}

pub fn futimens(fd: RawFd, mtime: libc::timespec) -> io::Result<()> {
    let t = times(mtime);
    // SAFETY: `t` is an array of two timespecs, as futimens requires.
    check(unsafe { libc::futimens(fd, t.as_ptr()) })
}

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
