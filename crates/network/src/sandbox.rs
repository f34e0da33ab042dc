//! A container's network sandbox: its namespace file with loopback up and, when attached to
//! a bridge, a veth pair whose inside end is `eth0` with the container's address and default
//! route (an IPv6 address and route too on a dual-stack network; IPv6 addresses are added
//! without duplicate address detection, so none is "tentative" when the container starts). All of it is done from one short-lived thread with two netlink sockets, one opened
//! before leaving the host's namespace and one after, so a start costs no process spawns.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use wharf_types::ErrorKind;

use crate::netlink::{link_index, Netlink, NetlinkError};
use crate::netns::{self, NetnsError};
use crate::{Ipv4Net, Ipv6Net};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("network sandbox {path}: {message}")]
    Setup { path: String, message: String },
    #[error("bridge {bridge}: {what}: {source}")]
    Sysctl { bridge: String, what: String, source: std::io::Error },
}

impl SandboxError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SandboxError::Netns(e) => e.kind(),
            SandboxError::Netlink(e) => e.kind(),
            _ => ErrorKind::Internal,
        }
    }
}

/// A bridge and the gateway address it holds (`10.1.2.1/24`), and on a dual-stack network its
/// IPv6 gateway (`fd00:1::1/64`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    pub name: String,
    pub gateway: Ipv4Net,
    pub gateway6: Option<Ipv6Net>,
    /// The bridge's own MTU (dockerd sets the default bridge's from its `mtu`); None leaves
    /// the kernel's, which follows the smallest of the bridge's ports.
    pub mtu: Option<u32>,
}

/// The link-local address of a bridge with IPv6 (dockerd's `fe80::1`).
pub const BRIDGE_LINK_LOCAL: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

/// Makes sure the bridge exists, holds its gateway address and is up; enables forwarding
/// and, on the bridge, routing of loopback sources (published ports on 127.0.0.1). With an
/// IPv6 gateway, IPv6 on the bridge and IPv6 forwarding too, as dockerd's bridge driver does
/// (`net.ipv6.conf.all.forwarding` and `default.forwarding`).
pub fn ensure_bridge(b: &BridgeConfig) -> Result<(), SandboxError> {
    let nl = Netlink::open()?;
    let created = match nl.create_bridge(&b.name, b.mtu) {
        Ok(()) => true,
        Err(e) if e.is_exists() => false,
        Err(e) => return Err(e.into()),
    };
    let index = link_index(&b.name)?;
    if let (false, Some(mtu)) = (created, b.mtu) {
        // A bridge kept from a daemon started with another `mtu`.
        nl.set_mtu(index, mtu)?;
    }
    match nl.add_address(index, b.gateway.addr, b.gateway.prefix) {
        Ok(()) => {}
        Err(e) if e.is_exists() => {}
        Err(e) => return Err(e.into()),
    }
    let sysctl = |key: String, value: &str, what: &str| {
        crate::sysctl(&key, value).map_err(|source| SandboxError::Sysctl {
            bridge: b.name.clone(),
            what: what.to_string(),
            source,
        })
    };
    if let Some(gw6) = b.gateway6 {
        sysctl(format!("net/ipv6/conf/{}/disable_ipv6", b.name), "0", "enable IPv6")?;
        // And `fe80::1/64`, as dockerd's bridge driver gives every IPv6 bridge: a link-local
        // gateway that stays the same whatever the bridge's MAC address.
        for (addr, prefix) in [(gw6.addr, gw6.prefix), (BRIDGE_LINK_LOCAL, 64)] {
            match nl.add_address6(index, addr, prefix) {
                Ok(()) => {}
                Err(e) if e.is_exists() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    nl.set_up(index)?;
    sysctl("net/ipv4/ip_forward".to_string(), "1", "enable ip_forward")?;
    sysctl(format!("net/ipv4/conf/{}/route_localnet", b.name), "1", "enable route_localnet")?;
    if b.gateway6.is_some() {
        sysctl("net/ipv6/conf/default/forwarding".to_string(), "1", "enable IPv6 forwarding")?;
        sysctl("net/ipv6/conf/all/forwarding".to_string(), "1", "enable IPv6 forwarding")?;
    }
    Ok(())
}

/// Deletes a bridge; one that is not there is not an error.
pub fn remove_bridge(name: &str) -> Result<(), SandboxError> {
    match Netlink::open()?.delete_link(name) {
        Err(e) if !e.is_gone() => Err(e.into()),
        _ => Ok(()),
    }
}

/// A container's place on a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub bridge: String,
    /// The host end of the veth pair.
    pub veth: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    /// None on an internal network without a gateway route.
    pub gateway: Option<Ipv4Addr>,
    pub mac: [u8; 6],
    /// The IPv6 address and prefix on a dual-stack network.
    pub ip6: Option<Ipv6Net>,
    /// The IPv6 default route's gateway, when this interface carries it.
    pub gateway6: Option<Ipv6Addr>,
    /// Both ends' MTU (the network's `com.docker.network.driver.mtu`); None is the kernel's.
    pub mtu: Option<u32>,
}

/// The interface's IPv6 address and default route, after its IPv4 ones; run inside the
/// namespace. IPv6 is switched on for the interface first (a namespace whose `default`
/// settings have it off would refuse the address).
fn configure_ipv6(inside: &Netlink, ifname: &str, index: u32, a: &Attachment) -> Result<(), NetlinkError> {
    let Some(ip6) = a.ip6 else { return Ok(()) };
    for conf in [ifname, "lo"] {
        set_ipv6(conf, true)?;
    }
    inside.add_address6(index, ip6.addr, ip6.prefix)?;
    Ok(())
}

/// Turns IPv6 on or off for an interface of the calling thread's namespace (`all` and
/// `default` too); a kernel without IPv6 has nothing to turn.
pub(crate) fn set_ipv6(conf: &str, on: bool) -> Result<(), NetlinkError> {
    let key = format!("net/ipv6/conf/{conf}/disable_ipv6");
    match crate::sysctl(&key, if on { "0" } else { "1" }) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NetlinkError::Request {
            what: format!("{} IPv6 on {conf}", if on { "enable" } else { "disable" }),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn route_ipv6(inside: &Netlink, index: u32, a: &Attachment) -> Result<(), NetlinkError> {
    match (a.ip6, a.gateway6) {
        (Some(_), Some(gw6)) => inside.add_default_route6(index, gw6),
        _ => Ok(()),
    }
}

/// Docker's MAC for an address: 02:42 then the four bytes of the IPv4 address.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Creates the namespace at `path` with loopback up and the given attachment.
pub fn create(path: &Path, attach: Option<Attachment>) -> Result<(), SandboxError> {
    let where_ = path.display().to_string();
    let result = netns::create(
        path,
        move || -> Result<(Netlink, Option<(u32, Attachment)>), String> {
            let host = Netlink::open().map_err(|e| e.to_string())?;
            let attach = match attach {
                Some(a) => Some((link_index(&a.bridge).map_err(|e| e.to_string())?, a)),
                None => None,
            };
            Ok((host, attach))
        },
        move |before| -> Result<(), String> {
            let (host, attach) = before?;
            let inside = Netlink::open().map_err(|e| e.to_string())?;
            // As dockerd: no IPv6 in a container until a network of it has IPv6, whose interface
            // then turns it on for itself and for `lo` (`configure_ipv6`). Before `lo` is up,
            // so that it never gets `::1` only to lose it.
            for conf in ["all", "default", "lo"] {
                set_ipv6(conf, false).map_err(|e| e.to_string())?;
            }
            inside.set_up(1).map_err(|e| e.to_string())?;
            let Some((bridge_index, a)) = attach else { return Ok(()) };
            let ns = std::fs::File::open("/proc/thread-self/ns/net").map_err(|e| format!("open own netns: {e}"))?;
            // The pair of this container's previous run may still be going with its namespace
            // (`remove` leaves that to the kernel): it is stale, take its name.
            create_taking_name(&host, &a.veth, || {
                host.create_veth(&a.veth, bridge_index, "eth0", ns.as_raw_fd(), a.mac, a.mtu)
            })
            .map_err(|e| e.to_string())?;
            let configure = || -> Result<(), NetlinkError> {
                let eth0 = link_index("eth0")?;
                inside.add_address(eth0, a.ip, a.prefix)?;
                configure_ipv6(&inside, "eth0", eth0, &a)?;
                inside.set_up(eth0)?;
                if let Some(gw) = a.gateway {
                    inside.add_default_route(eth0, gw)?;
                }
                route_ipv6(&inside, eth0, &a)?;
                Ok(())
            };
            if let Err(e) = configure() {
                let _ = host.delete_link(&a.veth);
                return Err(e.to_string());
            }
            Ok(())
        },
    )?;
    result.map_err(|message| SandboxError::Setup { path: where_, message })
}

/// Adds a further interface to an existing namespace (a running container connected to one
/// more network): a veth pair whose inside end is `ifname` (`eth1`, ...) with its address and,
/// when `a.gateway` is given, the default route. On failure the pair is deleted again.
/// Creates a link whose name a stale link may still hold: that one is deleted and the create
/// tried again. The kernel also deletes such a link by itself, when the namespace its peer was
/// in goes away (asynchronously): a delete that finds it gone already is that, not an error.
fn create_taking_name(
    host: &Netlink,
    name: &str,
    create: impl Fn() -> Result<(), NetlinkError>,
) -> Result<(), NetlinkError> {
    let mut tries = 0;
    loop {
        match create() {
            Err(e) if e.is_exists() && tries < 50 => {
                tries += 1;
                match host.delete_link(name) {
                    Ok(()) | Err(NetlinkError::NoSuchLink(_)) => {}
                    Err(NetlinkError::Request { source, .. }) if source.raw_os_error() == Some(libc::ENODEV) => {}
                    Err(e) => return Err(e),
                }
                if tries > 1 {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
            r => return r,
        }
    }
}

pub fn attach(path: &Path, a: Attachment, ifname: &str) -> Result<(), SandboxError> {
    let where_ = path.display().to_string();
    let setup = |message: String| SandboxError::Setup { path: where_.clone(), message };
    let host = Netlink::open()?;
    let bridge_index = link_index(&a.bridge)?;
    let ns = std::fs::File::open(path).map_err(|e| setup(format!("open: {e}")))?;
    // A pair left by an earlier connect whose namespace is gone: stale, take its name.
    create_taking_name(&host, &a.veth, || {
        host.create_veth(&a.veth, bridge_index, ifname, ns.as_raw_fd(), a.mac, a.mtu)
    })?;
    let ifname = ifname.to_string();
    let veth = a.veth.clone();
    let configured = netns::run_in(path, move || -> Result<(), NetlinkError> {
        let inside = Netlink::open()?;
        let index = link_index(&ifname)?;
        inside.add_address(index, a.ip, a.prefix)?;
        configure_ipv6(&inside, &ifname, index, &a)?;
        inside.set_up(index)?;
        if let Some(gw) = a.gateway {
            inside.add_default_route(index, gw)?;
        }
        route_ipv6(&inside, index, &a)?;
        Ok(())
    });
    let failed = match configured {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => SandboxError::from(e),
        Err(e) => SandboxError::from(e),
    };
    let _ = host.delete_link(&veth);
    Err(failed)
}

/// Removes one interface of a namespace by deleting its host end (the pair goes together);
/// one that is not there is not an error.
pub fn detach(veth: &str) -> Result<(), SandboxError> {
    match Netlink::open()?.delete_link(veth) {
        Err(e) if !e.is_gone() => Err(e.into()),
        _ => Ok(()),
    }
}

/// Points the namespace's default route through `gateway` on `ifname` (after the interface
/// that held it went away).
pub fn set_default_route(path: &Path, ifname: &str, gateway: Ipv4Addr) -> Result<(), SandboxError> {
    let ifname = ifname.to_string();
    netns::run_in(path, move || -> Result<(), NetlinkError> {
        let inside = Netlink::open()?;
        inside.add_default_route(link_index(&ifname)?, gateway)
    })?
    .map_err(SandboxError::from)
}

/// Points the namespace's IPv6 default route through `gateway` on `ifname`.
pub fn set_default_route6(path: &Path, ifname: &str, gateway: Ipv6Addr) -> Result<(), SandboxError> {
    let ifname = ifname.to_string();
    netns::run_in(path, move || -> Result<(), NetlinkError> {
        let inside = Netlink::open()?;
        inside.add_default_route6(link_index(&ifname)?, gateway)
    })?
    .map_err(SandboxError::from)
}

/// How long the kernel gets to destroy a released namespace's veth before it is deleted by hand.
const VETH_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// Removes the namespace file and, with it, the veth (when there is one).
///
/// Deleting a veth waits for an RCU grace period (about 20 ms, most of what a bridge adds to a
/// container's start and removal), while the namespace's end deletes both ends in the kernel's
/// own cleanup work, off this path. So the namespace goes first and a detached thread only
/// checks that the veth went with it, deleting it by index if something still holds the
/// namespace after `VETH_GRACE`.
pub fn remove(path: &Path, veth: Option<&str>) -> Result<(), SandboxError> {
    let index = veth.and_then(|v| link_index(v).ok());
    let unmounted = netns::remove(path);
    if let (Some(name), Some(index)) = (veth, index) {
        let name = name.to_string();
        let reap = move || {
            let deadline = std::time::Instant::now() + VETH_GRACE;
            while std::time::Instant::now() < deadline {
                if link_index(&name).ok() != Some(index) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            match Netlink::open().and_then(|nl| nl.delete_link_index(index)) {
                Err(e) if !e.is_gone() => log::warn!("veth {name}: {e}"),
                _ => {}
            }
        };
        if unmounted.is_ok() {
            if let Err(e) = std::thread::Builder::new().name("veth-reap".into()).spawn(reap) {
                log::warn!("veth {veth:?}: no thread to check its removal: {e}");
            }
        } else {
            // The namespace stays, and the veth with it unless deleted now.
            match Netlink::open().and_then(|nl| nl.delete_link_index(index)) {
                Err(e) if !e.is_gone() => log::warn!("veth {veth:?}: {e}"),
                _ => {}
            }
        }
    }
    unmounted.map_err(SandboxError::from)
}

/// Adds further addresses (`--link-local-ip`: each with its prefix length) to `ifname` inside
/// the namespace; IPv6 is switched on for the interface first when one is IPv6, and IPv6 ones
/// go through duplicate address detection, as dockerd adds them. Nothing to add, nothing done.
pub fn add_addresses(path: &Path, ifname: &str, addrs: &[(std::net::IpAddr, u8)]) -> Result<(), SandboxError> {
    if addrs.is_empty() {
        return Ok(());
    }
    let (ifname, addrs) = (ifname.to_string(), addrs.to_vec());
    netns::run_in(path, move || -> Result<(), NetlinkError> {
        let inside = Netlink::open()?;
        let index = link_index(&ifname)?;
        for (addr, prefix) in addrs {
            match addr {
                std::net::IpAddr::V4(a) => inside.add_address(index, a, prefix)?,
                std::net::IpAddr::V6(a) => {
                    set_ipv6(&ifname, true)?;
                    inside.add_address6_dad(index, a, prefix)?
                }
            }
        }
        Ok(())
    })?
    .map_err(SandboxError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_from_address() {
        assert_eq!(format_mac(&mac_for(Ipv4Addr::new(172, 17, 0, 2))), "02:42:ac:11:00:02");
    }

    /// Needs root: a second interface added to a namespace on another bridge, the default
    /// route moved to it, then removed again.
    #[test]
    fn second_interface_attached_and_detached() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let pid = std::process::id() % 100000;
        let (b1, b2) = (format!("wha{pid}"), format!("whb{pid}"));
        let (v1, v2) = (format!("vha{pid}"), format!("vhb{pid}"));
        ensure_bridge(&BridgeConfig {
            name: b1.clone(),
            gateway: "10.251.78.1/24".parse().unwrap(),
            gateway6: None,
            mtu: None,
        })
        .unwrap();
        ensure_bridge(&BridgeConfig {
            name: b2.clone(),
            gateway: "10.251.79.1/24".parse().unwrap(),
            gateway6: None,
            mtu: None,
        })
        .unwrap();
        let dir = std::env::temp_dir().join(format!("wharf-netns-test2-{pid}"));
        let path = dir.join("ns");
        // Whatever an assertion below leaves is removed on the way out, so a failing run
        // does not leave bridges, veths or a bound namespace on the host.
        struct Cleanup {
            veths: [String; 2],
            bridges: [String; 2],
            dir: std::path::PathBuf,
        }
        impl Drop for Cleanup {
            fn drop(&mut self) {
                let _ = remove(&self.dir.join("ns"), None);
                self.veths.iter().for_each(|v| drop(detach(v)));
                self.bridges.iter().for_each(|b| drop(remove_bridge(b)));
                let _ = std::fs::remove_dir(&self.dir);
            }
        }
        let _cleanup = Cleanup { veths: [v1.clone(), v2.clone()], bridges: [b1.clone(), b2.clone()], dir: dir.clone() };
        let a = |bridge: &str, veth: &str, ip: Ipv4Addr, gw: Option<Ipv4Addr>| Attachment {
            bridge: bridge.to_string(),
            veth: veth.to_string(),
            ip,
            prefix: 24,
            gateway: gw,
            mac: mac_for(ip),
            ip6: None,
            gateway6: None,
            mtu: None,
        };
        let ip1 = Ipv4Addr::new(10, 251, 78, 2);
        let ip2 = Ipv4Addr::new(10, 251, 79, 2);
        create(&path, Some(a(&b1, &v1, ip1, None))).unwrap();
        attach(&path, a(&b2, &v2, ip2, Some(Ipv4Addr::new(10, 251, 79, 1))), "eth1").unwrap();
        let routes = || {
            netns::run_in(&path, || std::fs::read_to_string("/proc/thread-self/net/route").unwrap_or_default()).unwrap()
        };
        // Default route (destination 00000000) through eth1.
        let r = routes();
        assert!(r.lines().any(|l| l.starts_with("eth1\t00000000")), "{r}");
        // A bridge that is not there: an error, and the namespace is as it was.
        assert!(attach(&path, a("nosuchbridge", &v1, ip2, None), "eth2").is_err());
        set_default_route(&path, "eth0", Ipv4Addr::new(10, 251, 78, 1)).unwrap();
        let r = routes();
        assert!(r.lines().any(|l| l.starts_with("eth0\t00000000")), "{r}");
        detach(&v2).unwrap();
        detach(&v2).unwrap();
        assert!(link_index(&v2).is_err());
        let r = routes();
        assert!(!r.contains("eth1"), "{r}");
        remove(&path, Some(&v1)).unwrap();
        let deadline = std::time::Instant::now() + VETH_GRACE * 3;
        while link_index(&v1).is_ok() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(link_index(&v1).is_err());
        remove_bridge(&b1).unwrap();
        remove_bridge(&b2).unwrap();
    }

    /// Needs root and IPv6: a dual-stack namespace whose IPv6 address is usable the moment
    /// `create` returns (no duplicate address detection holding it "tentative"), reached from
    /// the host through the bridge's IPv6 gateway, with its IPv6 default route.
    #[test]
    fn dual_stack_sandbox_is_usable_at_once() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 || !Path::new("/proc/sys/net/ipv6").exists() {
            return;
        }
        let pid = std::process::id() % 100000;
        let (bridge, veth) = (format!("wh6{pid}"), format!("vh6{pid}"));
        let dir = std::env::temp_dir().join(format!("wharf-netns-test6-{pid}"));
        struct Cleanup(String, String, std::path::PathBuf);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                let _ = remove(&self.2.join("ns"), None);
                let _ = detach(&self.1);
                let _ = remove_bridge(&self.0);
                let _ = std::fs::remove_dir(&self.2);
            }
        }
        let _cleanup = Cleanup(bridge.clone(), veth.clone(), dir.clone());
        let gw6: Ipv6Net = "fd57:fffe:0:1::1/64".parse().unwrap();
        ensure_bridge(&BridgeConfig {
            name: bridge.clone(),
            gateway: "10.251.76.1/24".parse().unwrap(),
            gateway6: Some(gw6),
            mtu: None,
        })
        .unwrap();
        let ip = Ipv4Addr::new(10, 251, 76, 2);
        let ip6: Ipv6Addr = "fd57:fffe:0:1::2".parse().unwrap();
        let path = dir.join("ns");
        let a = Attachment {
            bridge: bridge.clone(),
            veth: veth.clone(),
            ip,
            prefix: 24,
            gateway: Some(Ipv4Addr::new(10, 251, 76, 1)),
            mac: mac_for(ip),
            ip6: Some(Ipv6Net { addr: ip6, prefix: 64 }),
            gateway6: Some(gw6.addr),
            mtu: None,
        };
        create(&path, Some(a)).unwrap();
        // Binding fails on a tentative address (EADDRNOTAVAIL): this one is not.
        let listener = netns::run_in(&path, move || std::net::TcpListener::bind((ip6, 0))).unwrap().unwrap();
        let port = listener.local_addr().unwrap().port();
        let conn = std::net::TcpStream::connect_timeout(&(ip6, port).into(), std::time::Duration::from_secs(5));
        assert!(conn.is_ok(), "{conn:?}");
        let routes =
            netns::run_in(&path, || std::fs::read_to_string("/proc/thread-self/net/ipv6_route").unwrap()).unwrap();
        let default = format!("{} 00 {} 00 fd57fffe000000010000000000000001", "0".repeat(32), "0".repeat(32));
        assert!(routes.lines().any(|l| l.starts_with(&default) && l.ends_with("eth0")), "{routes}");
        let flags =
            netns::run_in(&path, || std::fs::read_to_string("/proc/thread-self/net/if_inet6").unwrap()).unwrap();
        let line = flags.lines().find(|l| l.starts_with("fd57fffe000000010000000000000002")).unwrap_or_default();
        // The fifth field is the address's flags: NODAD (0x02) and not TENTATIVE (0x40).
        let f = u32::from_str_radix(line.split_whitespace().nth(4).unwrap_or("40"), 16).unwrap();
        assert!(f & 0x02 != 0 && f & 0x40 == 0, "{flags}");
    }

    /// Needs root: a namespace with a veth on a scratch bridge, then everything removed.
    #[test]
    fn sandbox_on_a_bridge_and_back() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let pid = std::process::id();
        let bridge = format!("wht{}", pid % 100000);
        let veth = format!("vht{}", pid % 100000);
        let b = BridgeConfig {
            name: bridge.clone(),
            gateway: "10.251.77.1/24".parse().unwrap(),
            gateway6: None,
            mtu: Some(1400),
        };
        ensure_bridge(&b).unwrap();
        let dir = std::env::temp_dir().join(format!("wharf-netns-test-{pid}"));
        let path = dir.join("ns");
        let ip = Ipv4Addr::new(10, 251, 77, 2);
        let a = Attachment {
            bridge: bridge.clone(),
            veth: veth.clone(),
            ip,
            prefix: 24,
            gateway: Some(Ipv4Addr::new(10, 251, 77, 1)),
            mac: mac_for(ip),
            ip6: None,
            gateway6: None,
            mtu: Some(1400),
        };
        create(&path, Some(a)).unwrap();
        assert!(netns::is_mounted(&path));
        assert!(link_index(&veth).is_ok());
        let mtu = std::fs::read_to_string(format!("/sys/class/net/{veth}/mtu")).unwrap_or_default();
        assert_eq!(mtu.trim(), "1400");
        let inside =
            netns::run_in(&path, || std::fs::read_to_string("/proc/thread-self/net/route").unwrap_or_default())
                .unwrap();
        assert!(inside.contains("eth0"), "{inside}");
        remove(&path, Some(&veth)).unwrap();
        // The veth goes with the namespace, in the kernel's time.
        let deadline = std::time::Instant::now() + VETH_GRACE * 3;
        while link_index(&veth).is_ok() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(link_index(&veth).is_err());
        assert!(!path.exists());
        remove_bridge(&bridge).unwrap();
        assert!(link_index(&bridge).is_err());
        let _ = std::fs::remove_dir(&dir);
    }
}
