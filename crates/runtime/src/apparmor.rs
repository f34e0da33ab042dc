//! AppArmor: the profile a container's process is confined by from its exec on
//! (`process.apparmorProfile`), set as runc does, by writing `exec <profile>` to the task's
//! exec attribute just before the exec.

use std::ffi::CString;

use crate::init::{ChildFailure, ChildResult};

/// Where the kernel takes the profile for the next exec: the AppArmor-specific file of 5.8 and
/// later kernels (stacked LSMs), then the older shared one.
const EXEC_ATTRS: [&str; 2] = ["/proc/thread-self/attr/apparmor/exec", "/proc/thread-self/attr/exec"];

/// Whether the kernel has AppArmor enabled (its module parameter, as runc and containerd read it).
pub fn enabled() -> bool {
    std::fs::read("/sys/module/apparmor/parameters/enabled").is_ok_and(|b| b.first() == Some(&b'Y'))
}

/// Asks the kernel to confine the next exec by `profile`. Runs in the container's child, after
/// pivot_root: the paths are the container's own /proc.
pub(crate) fn change_onexec(profile: &CString) -> ChildResult<()> {
    let name = profile.to_string_lossy();
    let mut line = b"exec ".to_vec();
    line.extend_from_slice(profile.as_bytes());
    let mut last = libc::ENOENT;
    for attr in EXEC_ATTRS {
        let path = CString::new(attr).map_err(|_| ChildFailure::other("apparmor attribute path", libc::EINVAL))?;
        // SAFETY: open on a NUL-terminated path; the fd is closed below.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            last = crate::init::last_errno();
            continue;
        }
        // SAFETY: writes line.len() bytes from a live buffer to the fd just opened.
        let n = unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
        let errno = crate::init::last_errno();
        // SAFETY: closes the fd opened above, once.
        unsafe { libc::close(fd) };
        if n == line.len() as isize {
            return Ok(());
        }
        // The kernel answers ENOENT for a profile it has not loaded.
        if errno == libc::ENOENT {
            return Err(ChildFailure::other(format!("apparmor profile {name:?} is not loaded"), errno));
        }
        return Err(ChildFailure::other(format!("apply apparmor profile {name:?}"), errno));
    }
    Err(ChildFailure::other(format!("apply apparmor profile {name:?}: AppArmor is not enabled on this host"), last))
}
