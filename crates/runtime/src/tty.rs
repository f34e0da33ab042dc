//! Pseudo-terminals for container processes: the process opens one in the container's own
//! devpts, makes the slave its controlling terminal and stdio, and hands the master to its
//! monitor over a unix socket (SCM_RIGHTS), as runc's console socket does.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::init::ChildFailure;

/// Rows and columns of a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WinSize {
    pub rows: u16,
    pub cols: u16,
}

/// Sets the size of the terminal whose master (or slave) is `fd`; the foreground process
/// group gets SIGWINCH from the kernel.
pub fn resize(fd: RawFd, size: WinSize) -> std::io::Result<()> {
    let ws = libc::winsize { ws_row: size.rows, ws_col: size.cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sends one fd over a unix socket.
pub fn send_fd(sock: RawFd, fd: RawFd) -> std::io::Result<()> {
    let mut byte = [b'm'];
    let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
    // u64 keeps the control buffer aligned for cmsghdr.
    let mut control = [0u64; 4];
    // SAFETY: msghdr is plain data; every pointer set below refers to a live local buffer.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    // SAFETY: the control buffer is large enough for one cmsghdr carrying one fd (checked by
    // CMSG_SPACE above being at most 32 bytes), and CMSG_FIRSTHDR points into it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        if libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Receives one fd sent with [`send_fd`]; `None` when the peer closed without sending one.
pub fn recv_fd(sock: RawFd) -> std::io::Result<Option<OwnedFd>> {
    let mut byte = [0u8];
    let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
    let mut control = [0u64; 4];
    // SAFETY: msghdr is plain data; every pointer set below refers to a live local buffer.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    loop {
        // SAFETY: recvmsg fills the buffers msg points to, within their given sizes.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        break;
    }
    // SAFETY: walks the control messages recvmsg wrote, within msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
                return Ok(Some(OwnedFd::from_raw_fd(fd)));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(None)
}

/// In the container process, after its root is in place: opens a pty in the container's
/// devpts, gives the slave to `uid`/`gid`, makes it the controlling terminal and fds 0-2, and
/// sends the master to `console`.
pub(crate) fn setup_in_child(console: RawFd, size: Option<WinSize>, uid: u32, gid: u32) -> Result<(), ChildFailure> {
    // SAFETY: open/ioctl/dup2/close on fds this process owns; every pointer is to a local.
    unsafe {
        let master = libc::open(c"/dev/ptmx".as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if master < 0 {
            return Err(ChildFailure::last("open /dev/ptmx"));
        }
        let unlock: libc::c_int = 0;
        if libc::ioctl(master, libc::TIOCSPTLCK, &unlock) != 0 {
            return Err(ChildFailure::last("unlock pty"));
        }
        // TIOCGPTPEER opens the slave from the master itself: no path lookup in the container.
        let slave = libc::ioctl(master, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY);
        if slave < 0 {
            return Err(ChildFailure::last("open pty slave"));
        }
        if libc::fchown(slave, uid, gid) != 0 {
            return Err(ChildFailure::last("chown pty slave"));
        }
        if let Some(size) = size {
            resize(master, size).map_err(|e| ChildFailure::other("set pty size", e.raw_os_error().unwrap_or(0)))?;
        }
        send_fd(console, master).map_err(|e| ChildFailure::other("send pty master", e.raw_os_error().unwrap_or(0)))?;
        libc::close(master);
        libc::close(console);
        if libc::ioctl(slave, libc::TIOCSCTTY, 0) != 0 {
            return Err(ChildFailure::last("make pty the controlling terminal"));
        }
        for target in 0..3 {
            if libc::dup2(slave, target) < 0 {
                return Err(ChildFailure::last(format!("dup2 pty to {target}")));
            }
        }
        if slave > 2 {
            libc::close(slave);
        }
    }
    Ok(())
}

/// A connected pair of unix sockets (close-on-exec): the console socket.
pub fn socketpair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair fills two fresh fds that we then own.
    unsafe {
        if libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn passes_an_fd_and_reports_a_close() {
        let (a, b) = socketpair().unwrap();
        let f = std::fs::File::open("/dev/null").unwrap();
        send_fd(a.as_raw_fd(), f.as_raw_fd()).unwrap();
        let got = recv_fd(b.as_raw_fd()).unwrap().unwrap();
        assert_ne!(got.as_raw_fd(), f.as_raw_fd());
        drop(a);
        assert!(recv_fd(b.as_raw_fd()).unwrap().is_none());
    }
}
