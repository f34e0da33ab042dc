//! The open-file limit of the daemon and of what it starts.
//!
//! wharfd holds a few descriptors per running container (the init's and the shim's pidfds, the
//! exit pipe), so the usual soft limit of 1024 stops a host at a few hundred containers. Go
//! programs raise their soft limit to the hard one at start and give children the original
//! back, and dockerd (a Go program) inherits that; wharfd does the same: it raises its own
//! limit once, and each shim puts the original soft limit back before the container starts,
//! so a container sees the limit it would have seen without the raise.

use std::sync::OnceLock;

static INHERITED_SOFT: OnceLock<u64> = OnceLock::new();

fn get() -> std::io::Result<libc::rlimit> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(lim)
}

fn set(lim: &libc::rlimit) -> std::io::Result<()> {
    // SAFETY: setrlimit reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit, remembering the soft limit it
/// had for [`inherited_soft`]. Returns (old soft, new soft) when it raised it.
pub fn raise_nofile() -> std::io::Result<Option<(u64, u64)>> {
    let lim = get()?;
    if lim.rlim_cur >= lim.rlim_max {
        return Ok(None);
    }
    set(&libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max })?;
    let _ = INHERITED_SOFT.set(lim.rlim_cur);
    Ok(Some((lim.rlim_cur, lim.rlim_max)))
}

/// The soft limit this process had before [`raise_nofile`], for the processes it starts.
pub fn inherited_soft() -> Option<u64> {
    INHERITED_SOFT.get().copied()
}

/// Sets this process's soft RLIMIT_NOFILE (at most the hard limit), keeping the hard limit.
pub fn set_nofile_soft(soft: u64) -> std::io::Result<()> {
    let lim = get()?;
    set(&libc::rlimit { rlim_cur: soft.min(lim.rlim_max), rlim_max: lim.rlim_max })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowering_the_soft_limit_keeps_the_hard_one() {
        let before = get().unwrap();
        let soft = before.rlim_cur.min(512);
        set_nofile_soft(soft).unwrap();
        let after = get().unwrap();
        assert_eq!((after.rlim_cur, after.rlim_max), (soft, before.rlim_max));
        set(&before).unwrap();
    }
}
