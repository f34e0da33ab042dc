//! A minimal rtnetlink client over a NETLINK_ROUTE socket: the handful of requests wharf needs
//! (links, bridges, veth pairs, addresses, routes), each acknowledged before it returns.
//!
//! A netlink socket stays bound to the network namespace it was opened in, so a thread that
//! opens one socket before `unshare(CLONE_NEWNET)` and one after can configure both sides.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use wharf_types::ErrorKind;

const NETLINK_ROUTE: i32 = 0;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_REPLACE: u16 = 0x100;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;
/// No duplicate address detection: the address is usable at once, not "tentative" for the
/// second or more DAD takes (Docker adds its containers' IPv6 addresses so too).
const IFA_F_NODAD: u32 = 0x02;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;

const IFF_UP: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink socket: {0}")]
    Socket(std::io::Error),
    #[error("{what}: {source}")]
    Request { what: String, source: std::io::Error },
    #[error("network interface {0} not found")]
    NoSuchLink(String),
}

impl NetlinkError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            NetlinkError::NoSuchLink(_) => ErrorKind::NotFound,
            NetlinkError::Request { source, .. } if source.raw_os_error() == Some(libc::EEXIST) => ErrorKind::Conflict,
            _ => ErrorKind::Internal,
        }
    }

    /// Whether the kernel answered EEXIST (the link or address is already there).
    pub fn is_exists(&self) -> bool {
        matches!(self, NetlinkError::Request { source, .. } if source.raw_os_error() == Some(libc::EEXIST))
    }

    /// Whether the kernel answered ENODEV/ESRCH/ENOENT (nothing to delete).
    pub fn is_gone(&self) -> bool {
        matches!(self, NetlinkError::NoSuchLink(_))
            || matches!(self, NetlinkError::Request { source, .. }
                if matches!(source.raw_os_error(), Some(libc::ENODEV) | Some(libc::ESRCH) | Some(libc::ENOENT)))
    }
}

/// A message under construction: header, fixed part, then attributes (nested ones by offset).
struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    fn new(kind: u16, flags: u16, fixed: &[u8]) -> Msg {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        buf.extend_from_slice(&1u32.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(fixed);
        Msg { buf }
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Self {
        self.pad();
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    fn attr_str(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut d = s.as_bytes().to_vec();
        d.push(0);
        self.attr(kind, &d)
    }

    fn attr_u32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// Opens a nested attribute; returns its offset for `end_nest`.
    fn begin_nest(&mut self, kind: u16) -> usize {
        self.pad();
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn end_nest(&mut self, at: usize) {
        self.pad();
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn raw(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

fn ifinfomsg(index: i32, flags: u32, change: u32) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[0] = libc::AF_UNSPEC as u8;
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m[8..12].copy_from_slice(&flags.to_ne_bytes());
    m[12..16].copy_from_slice(&change.to_ne_bytes());
    m
}

/// An rtnetlink socket in the network namespace of the thread that opened it.
pub struct Netlink {
    fd: OwnedFd,
}

impl Netlink {
    pub fn open() -> Result<Netlink, NetlinkError> {
        // SAFETY: socket(2) with constant arguments; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_ROUTE) };
        if fd < 0 {
            return Err(NetlinkError::Socket(std::io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // Bound now, so the socket has its port id in the namespace it was opened in.
        let addr = kernel_addr();
        // SAFETY: addr is a valid sockaddr_nl of the size given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc != 0 {
            return Err(NetlinkError::Socket(std::io::Error::last_os_error()));
        }
        Ok(Netlink { fd })
    }

    /// Sends one request and waits for its acknowledgement.
    fn request(&self, msg: Msg, what: impl FnOnce() -> String) -> Result<(), NetlinkError> {
        let buf = msg.finish();
        let addr = kernel_addr();
        // SAFETY: buf is a valid slice for its length, addr a valid sockaddr_nl.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if n < 0 {
            return Err(NetlinkError::Request { what: what(), source: std::io::Error::last_os_error() });
        }
        let mut resp = [0u8; 4096];
        loop {
            // SAFETY: resp is a writable buffer of the length given.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), resp.as_mut_ptr().cast(), resp.len(), 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(NetlinkError::Request { what: what(), source: e });
            }
            let n = n as usize;
            let mut off = 0;
            while off + 16 <= n {
                let len = u32::from_ne_bytes([resp[off], resp[off + 1], resp[off + 2], resp[off + 3]]) as usize;
                let kind = u16::from_ne_bytes([resp[off + 4], resp[off + 5]]);
                if kind == NLMSG_ERROR && off + 20 <= n {
                    let code = i32::from_ne_bytes([resp[off + 16], resp[off + 17], resp[off + 18], resp[off + 19]]);
                    if code == 0 {
                        return Ok(());
                    }
                    return Err(NetlinkError::Request {
                        what: what(),
                        source: std::io::Error::from_raw_os_error(-code),
                    });
                }
                if len < 16 {
                    break;
                }
                off += (len + 3) & !3;
            }
        }
    }

    /// Creates a bridge (EEXIST when it is there already).
    pub fn create_bridge(&self, name: &str, mtu: Option<u32>) -> Result<(), NetlinkError> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifinfomsg(0, IFF_UP, IFF_UP));
        m.attr_str(IFLA_IFNAME, name);
        if let Some(mtu) = mtu {
            m.attr_u32(IFLA_MTU, mtu);
        }
        let li = m.begin_nest(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "bridge");
        m.end_nest(li);
        self.request(m, || format!("create bridge {name}"))
    }

    /// Creates a veth pair: `host` in this namespace, attached to `master` and up; the peer,
    /// named `peer`, with `mac`, down, in the namespace `peer_netns` refers to. Both ends get
    /// `mtu` when it is given (the kernel's default, 1500, otherwise).
    pub fn create_veth(
        &self,
        host: &str,
        master: u32,
        peer: &str,
        peer_netns: RawFd,
        mac: [u8; 6],
        mtu: Option<u32>,
    ) -> Result<(), NetlinkError> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifinfomsg(0, IFF_UP, IFF_UP));
        m.attr_str(IFLA_IFNAME, host);
        if let Some(mtu) = mtu {
            m.attr_u32(IFLA_MTU, mtu);
        }
        if master != 0 {
            m.attr_u32(IFLA_MASTER, master);
        }
        let li = m.begin_nest(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "veth");
        let data = m.begin_nest(IFLA_INFO_DATA);
        let p = m.begin_nest(VETH_INFO_PEER);
        // The peer cannot be brought up here: veth refuses to open before both ends are
        // linked (ENOTCONN), which happens after the peer is configured.
        m.raw(&ifinfomsg(0, 0, 0));
        m.attr_str(IFLA_IFNAME, peer);
        m.attr_u32(IFLA_NET_NS_FD, peer_netns as u32);
        m.attr(IFLA_ADDRESS, &mac);
        if let Some(mtu) = mtu {
            m.attr_u32(IFLA_MTU, mtu);
        }
        m.end_nest(p);
        m.end_nest(data);
        m.end_nest(li);
        self.request(m, || format!("create veth pair {host}/{peer}"))
    }

    /// Sets a link's MTU.
    pub fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), NetlinkError> {
        let mut m = Msg::new(RTM_NEWLINK, 0, &ifinfomsg(index as i32, 0, 0));
        m.attr_u32(IFLA_MTU, mtu);
        self.request(m, || format!("set the MTU of link {index} to {mtu}"))
    }

    pub fn set_up(&self, index: u32) -> Result<(), NetlinkError> {
        let m = Msg::new(RTM_NEWLINK, 0, &ifinfomsg(index as i32, IFF_UP, IFF_UP));
        self.request(m, || format!("set link {index} up"))
    }

    /// Deletes a link by name in this socket's network namespace (which need not be the
    /// calling thread's: `sandbox::create` calls this from inside the new namespace).
    pub fn delete_link(&self, name: &str) -> Result<(), NetlinkError> {
        let mut m = Msg::new(RTM_DELLINK, 0, &ifinfomsg(0, 0, 0));
        m.attr_str(IFLA_IFNAME, name);
        match self.request(m, || format!("delete link {name}")) {
            Err(NetlinkError::Request { source, .. }) if source.raw_os_error() == Some(libc::ENODEV) => {
                Err(NetlinkError::NoSuchLink(name.to_string()))
            }
            r => r,
        }
    }

    /// Deletes a link by index: indexes are not reused while the host runs, so a late delete
    /// cannot hit a newer link that took the same name.
    pub fn delete_link_index(&self, index: u32) -> Result<(), NetlinkError> {
        let m = Msg::new(RTM_DELLINK, 0, &ifinfomsg(index as i32, 0, 0));
        self.request(m, || format!("delete link {index}"))
    }

    /// Adds `addr/prefix` to the link (EEXIST when present).
    pub fn add_address(&self, index: u32, addr: Ipv4Addr, prefix: u8) -> Result<(), NetlinkError> {
        let mut fixed = [0u8; 8];
        fixed[0] = libc::AF_INET as u8;
        fixed[1] = prefix;
        fixed[3] = RT_SCOPE_UNIVERSE;
        fixed[4..8].copy_from_slice(&index.to_ne_bytes());
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &fixed);
        m.attr(IFA_LOCAL, &addr.octets());
        m.attr(IFA_ADDRESS, &addr.octets());
        let bcast = u32::from(addr) | (u32::MAX.checked_shr(prefix as u32).unwrap_or(0));
        m.attr(IFA_BROADCAST, &Ipv4Addr::from(bcast).octets());
        self.request(m, || format!("add address {addr}/{prefix} to link {index}"))
    }

    /// Adds `addr/prefix` to the link without duplicate address detection (EEXIST when
    /// present), so that it is usable as soon as this returns.
    pub fn add_address6(&self, index: u32, addr: Ipv6Addr, prefix: u8) -> Result<(), NetlinkError> {
        self.new_address6(index, addr, prefix, IFA_F_NODAD)
    }

    /// Adds `addr/prefix` to the link with duplicate address detection, the kernel's default
    /// (the address is "tentative" until it is done), as dockerd adds `--link-local-ip`s.
    pub fn add_address6_dad(&self, index: u32, addr: Ipv6Addr, prefix: u8) -> Result<(), NetlinkError> {
        self.new_address6(index, addr, prefix, 0)
    }

    fn new_address6(&self, index: u32, addr: Ipv6Addr, prefix: u8, flags: u32) -> Result<(), NetlinkError> {
        let mut fixed = [0u8; 8];
        fixed[0] = libc::AF_INET6 as u8;
        fixed[1] = prefix;
        // ifa_flags holds the low 8 bits; IFA_FLAGS the whole word (newer kernels read it).
        fixed[2] = flags as u8;
        fixed[3] = RT_SCOPE_UNIVERSE;
        fixed[4..8].copy_from_slice(&index.to_ne_bytes());
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &fixed);
        m.attr(IFA_LOCAL, &addr.octets());
        m.attr(IFA_ADDRESS, &addr.octets());
        m.attr_u32(IFA_FLAGS, flags);
        self.request(m, || format!("add address {addr}/{prefix} to link {index}"))
    }

    /// Adds (or replaces) the IPv6 default route through `gateway` on link `index`.
    pub fn add_default_route6(&self, index: u32, gateway: Ipv6Addr) -> Result<(), NetlinkError> {
        let mut fixed = [0u8; 12];
        fixed[0] = libc::AF_INET6 as u8;
        fixed[4] = RT_TABLE_MAIN;
        fixed[5] = RTPROT_BOOT;
        fixed[6] = RT_SCOPE_UNIVERSE;
        fixed[7] = RTN_UNICAST;
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, &fixed);
        m.attr(RTA_GATEWAY, &gateway.octets());
        m.attr_u32(RTA_OIF, index);
        self.request(m, || format!("add default route via {gateway}"))
    }

    /// Adds (or replaces) the default route through `gateway` on link `index`.
    pub fn add_default_route(&self, index: u32, gateway: Ipv4Addr) -> Result<(), NetlinkError> {
        let mut fixed = [0u8; 12];
        fixed[0] = libc::AF_INET as u8;
        fixed[4] = RT_TABLE_MAIN;
        fixed[5] = RTPROT_BOOT;
        fixed[6] = RT_SCOPE_UNIVERSE;
        fixed[7] = RTN_UNICAST;
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, &fixed);
        m.attr(RTA_DST, &[0, 0, 0, 0]);
        m.attr(RTA_GATEWAY, &gateway.octets());
        m.attr_u32(RTA_OIF, index);
        self.request(m, || format!("add default route via {gateway}"))
    }
}

/// The kernel's netlink address (port id 0); binding to it lets the kernel pick our port id.
fn kernel_addr() -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain data for which all zeroes is valid.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    addr
}

/// The index of a link in the calling thread's network namespace.
pub fn link_index(name: &str) -> Result<u32, NetlinkError> {
    let c = std::ffi::CString::new(name).map_err(|_| NetlinkError::NoSuchLink(name.to_string()))?;
    // SAFETY: c is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        // if_nametoindex opens a socket, and glibc leaves ENOENT when it cannot: out of file
        // descriptors is not a missing link, so a socket of our own tells which it was.
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENODEV) {
            return Err(NetlinkError::NoSuchLink(name.to_string()));
        }
        // SAFETY: a plain socket call; the fd is closed at once.
        let probe = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if probe < 0 {
            let source = std::io::Error::last_os_error();
            return Err(NetlinkError::Request { what: format!("look up network interface {name}"), source });
        }
        // SAFETY: closing the socket made above.
        unsafe { libc::close(probe) };
        return Err(NetlinkError::Request { what: format!("look up network interface {name}"), source: e });
    }
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_link_is_not_found() {
        assert!(matches!(link_index("nosuchlink0"), Err(NetlinkError::NoSuchLink(_))));
        assert!(link_index("lo").is_ok());
    }

    #[test]
    fn attributes_are_padded_and_nests_sized() {
        let mut m = Msg::new(RTM_NEWLINK, 0, &ifinfomsg(0, 0, 0));
        let n = m.begin_nest(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "veth");
        m.end_nest(n);
        let buf = m.finish();
        assert!(buf.len().is_multiple_of(4));
        assert_eq!(u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize, buf.len());
        // nest: 4 header + attr(4 + "veth\0" = 9, padded 12) = 16
        assert_eq!(u16::from_ne_bytes([buf[32], buf[33]]), 16);
        assert_eq!(u16::from_ne_bytes([buf[34], buf[35]]), IFLA_LINKINFO | NLA_F_NESTED);
    }
}
