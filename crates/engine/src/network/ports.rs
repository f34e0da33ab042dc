//! Published ports on the host's side: the sockets that reserve each host port while a
//! container publishes it (IPv4, and IPv6-only ones on `::` beside them), and the userland
//! proxies that carry to the container what DNAT does not (`[::1]`; anything, to an
//! IPv4-only endpoint), as docker-proxy.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener, UdpSocket};
use std::os::fd::{FromRawFd, OwnedFd};

use serde::{Deserialize, Serialize};

use super::lock;
use crate::containers::ContainerRecord;
use crate::{Engine, EngineError};

/// A published port: Docker's `PortBinding` under `HostConfig.PortBindings["80/tcp"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    pub host_ip: String,
    /// Empty or `0`: any free port.
    pub host_port: String,
}

/// A port as it is published while the container runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    /// `80/tcp`
    pub container_port: String,
    pub host_ip: String,
    pub host_port: u16,
}

/// Parses `80`, `80/tcp`, `53/udp` into port and protocol.
pub(super) fn parse_port_proto(s: &str) -> Result<(u16, String), EngineError> {
    let (p, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if proto != "tcp" && proto != "udp" {
        return Err(EngineError::Invalid(format!("invalid proto: {proto}")));
    }
    match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok((n, proto)),
        _ => Err(EngineError::Invalid(format!("invalid containerPort: {p}"))),
    }
}

/// A host port held by the daemon while a container publishes it.
pub(super) enum Reservation {
    // Held only so no one else binds the port.
    #[allow(dead_code)]
    Tcp(TcpListener),
    #[allow(dead_code)]
    Udp(UdpSocket),
    /// An IPv6 TCP port, until its proxy starts: the container port it goes to.
    Tcp6(TcpListener, u16),
    /// An IPv6 UDP port, until its proxy starts: the container port it goes to.
    Udp6(UdpSocket, u16),
    /// The proxy of an IPv6 port: what DNAT leaves to it (`[::1]`; all of it to an IPv4-only
    /// endpoint, or without rules) it carries to the container. Dropped, it stops.
    #[allow(dead_code)]
    Proxy(Proxy),
}

/// A running proxy task; dropping it stops it and its connections.
pub(super) struct Proxy(tokio::task::JoinHandle<()>);

impl Drop for Proxy {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Whether binding `::` failed because the host has no IPv6 (the kernel built without it,
/// or it is turned off): the port is then published on IPv4 only.
fn no_ipv6(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL))
}

/// Holds a host TCP port. The listener never sees a connection: DNAT rewrites the
/// destination before the kernel looks for a local socket.
fn bind_tcp(addr: SocketAddrV4) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
}

/// Holds a host port of either family; returns the reservation and the port bound (`port` 0:
/// a free one). IPv6 sockets are IPv6-only, so that `::` and `0.0.0.0` hold the same port
/// side by side; an IPv6 port is `Tcp6` or `Udp6`, for its proxy.
pub(super) fn bind_port(
    ip: IpAddr,
    port: u16,
    proto: &str,
    container_port: u16,
) -> std::io::Result<(Reservation, u16)> {
    let udp = proto == "udp";
    match ip {
        IpAddr::V4(v4) => {
            let addr = SocketAddrV4::new(v4, port);
            if udp {
                let s = UdpSocket::bind(addr)?;
                let p = s.local_addr().map(|a| a.port()).unwrap_or(port);
                Ok((Reservation::Udp(s), p))
            } else {
                let s = bind_tcp(addr)?;
                let p = s.local_addr().map(|a| a.port()).unwrap_or(port);
                Ok((Reservation::Tcp(s), p))
            }
        }
        IpAddr::V6(v6) => {
            let fd = bind_v6only(SocketAddrV6::new(v6, port, 0, 0), !udp)?;
            if udp {
                let s = UdpSocket::from(fd);
                let p = s.local_addr().map(|a| a.port()).unwrap_or(port);
                Ok((Reservation::Udp6(s, container_port), p))
            } else {
                let s = TcpListener::from(fd);
                let p = s.local_addr().map(|a| a.port()).unwrap_or(port);
                Ok((Reservation::Tcp6(s, container_port), p))
            }
        }
    }
}

/// An IPv6-only socket bound to `addr` (listening, for TCP), as std has no way to ask for
/// `IPV6_V6ONLY` before the bind.
fn bind_v6only(addr: SocketAddrV6, tcp: bool) -> std::io::Result<OwnedFd> {
    let kind = if tcp { libc::SOCK_STREAM } else { libc::SOCK_DGRAM };
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET6, kind | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    let one: libc::c_int = 1;
    let set = |level: libc::c_int, name: libc::c_int| -> std::io::Result<()> {
        // SAFETY: `one` is a valid c_int for the length given; raw is open.
        let rc = unsafe {
            libc::setsockopt(
                raw,
                level,
                name,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    set(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY)?;
    if tcp {
        // As std's TcpListener::bind: a port in TIME_WAIT can be held again.
        set(libc::SOL_SOCKET, libc::SO_REUSEADDR)?;
    }
    let sa = libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: addr.port().to_be(),
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr { s6_addr: addr.ip().octets() },
        sin6_scope_id: 0,
    };
    // SAFETY: sa is a valid sockaddr_in6 of the size given.
    let rc = unsafe {
        libc::bind(
            raw,
            (&sa as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: listen(2) on a bound stream socket we own.
    if tcp && unsafe { libc::listen(raw, 128) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// How long the proxy waits for the container to take a connection.
const PROXY_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Where a proxy of container `id` sends what reaches it: `container_port` on the address of
/// the endpoint that carries the ports now, IPv6 when it has one, else IPv4.
fn proxy_target(engine: &Engine, id: &str, container_port: u16) -> Option<SocketAddr> {
    let ep = engine.container_endpoints(id).into_iter().find(|e| !e.ports.is_empty())?;
    let ip = ep.ip6.map(IpAddr::V6).or(ep.ip.map(IpAddr::V4))?;
    Some(SocketAddr::new(ip, container_port))
}

/// The proxy of one published IPv6 TCP port of container `id`: each connection it accepts
/// goes to the container (see [`proxy_target`]). Its connections end with it (aborted, the
/// set drops them).
async fn proxy_tcp(engine: Engine, id: String, container_port: u16, listener: tokio::net::TcpListener) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let mut inbound = match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        // Out of descriptors, say: not a busy loop.
                        log::debug!("container {id}: proxy accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Some(target) = proxy_target(&engine, &id, container_port) else { continue };
                conns.spawn(async move {
                    let Ok(Ok(mut outbound)) =
                        tokio::time::timeout(PROXY_CONNECT_TIMEOUT, tokio::net::TcpStream::connect(target)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// How long a UDP flow of the proxy lives without an answer from the container (docker-proxy's).
const UDP_FLOW_IDLE: std::time::Duration = std::time::Duration::from_secs(90);

/// The most UDP flows (client addresses) one proxied port keeps at once; datagrams of further
/// clients are dropped until one ends.
const UDP_FLOWS_MAX: usize = 1024;

/// The proxy of one published IPv6 UDP port of container `id`: each client address gets a
/// socket of its own towards the container (see [`proxy_target`]), and what the container
/// answers on it goes back to that client from the published port, until the flow has been
/// idle for [`UDP_FLOW_IDLE`].
async fn proxy_udp(engine: Engine, id: String, container_port: u16, socket: tokio::net::UdpSocket) {
    let socket = std::sync::Arc::new(socket);
    let mut flows: HashMap<SocketAddr, std::sync::Arc<tokio::net::UdpSocket>> = HashMap::new();
    // Each flow's answering task; it returns its client when it ends.
    let mut answering: tokio::task::JoinSet<SocketAddr> = tokio::task::JoinSet::new();
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (n, client) = match received {
                    Ok(r) => r,
                    Err(e) => {
                        log::debug!("container {id}: proxy receive: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let upstream = match flows.get(&client) {
                    Some(u) => u.clone(),
                    None => {
                        if flows.len() >= UDP_FLOWS_MAX {
                            continue;
                        }
                        let Some(target) = proxy_target(&engine, &id, container_port) else { continue };
                        let local: SocketAddr = if target.is_ipv4() {
                            (Ipv4Addr::UNSPECIFIED, 0).into()
                        } else {
                            (Ipv6Addr::UNSPECIFIED, 0).into()
                        };
                        let up = match tokio::net::UdpSocket::bind(local).await {
                            Ok(u) => u,
                            Err(e) => {
                                log::debug!("container {id}: proxy socket: {e}");
                                continue;
                            }
                        };
                        if let Err(e) = up.connect(target).await {
                            log::debug!("container {id}: proxy to {target}: {e}");
                            continue;
                        }
                        let up = std::sync::Arc::new(up);
                        flows.insert(client, up.clone());
                        let (back, from) = (socket.clone(), up.clone());
                        answering.spawn(async move {
                            let mut buf = vec![0u8; 65536];
                            while let Ok(Ok(n)) = tokio::time::timeout(UDP_FLOW_IDLE, from.recv(&mut buf)).await {
                                if back.send_to(&buf[..n], client).await.is_err() {
                                    break;
                                }
                            }
                            client
                        });
                        up
                    }
                };
                // A lost datagram is UDP's to lose.
                let _ = upstream.send(&buf[..n]).await;
            }
            Some(ended) = answering.join_next(), if !answering.is_empty() => {
                if let Ok(client) = ended {
                    flows.remove(&client);
                }
            }
        }
    }
}

impl Engine {
    /// Binds every published host port (so a taken one fails now, naming it, and no one else
    /// can take it while the container runs).
    /// A port published on every address is published on `::` too, at the same host port (an
    /// unspecified one is chosen free in both families), as dockerd does; on a host without
    /// IPv6, on `0.0.0.0` only.
    pub(super) fn reserve_ports(
        &self,
        rec: &ContainerRecord,
        host_default: Option<Ipv4Addr>,
    ) -> Result<(Vec<Reservation>, Vec<PublishedPort>), EngineError> {
        let hc = &rec.host_config;
        let mut wanted: Vec<(String, PortBinding)> = Vec::new();
        for (cport, bindings) in &hc.port_bindings {
            if bindings.is_empty() {
                wanted.push((cport.clone(), PortBinding::default()));
            }
            for b in bindings {
                wanted.push((cport.clone(), b.clone()));
            }
        }
        if hc.publish_all_ports {
            for p in &rec.config.exposed_ports {
                if !hc.port_bindings.contains_key(p) {
                    wanted.push((p.clone(), PortBinding::default()));
                }
            }
        }
        let mut res = Vec::new();
        let mut out = Vec::new();
        for (cport, b) in wanted {
            let (cport_n, proto) = parse_port_proto(&cport)?;
            let cport = if cport.contains('/') { cport } else { format!("{cport}/tcp") };
            let invalid = || EngineError::Invalid(format!("invalid host IP: {}", b.host_ip));
            let host_ip: IpAddr = if b.host_ip.is_empty() {
                IpAddr::V4(host_default.unwrap_or(Ipv4Addr::UNSPECIFIED))
            } else {
                b.host_ip.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().map_err(|_| invalid())?
            };
            let port: u16 = if b.host_port.is_empty() {
                0
            } else {
                b.host_port.parse().map_err(|_| EngineError::Invalid(format!("invalid hostPort: {}", b.host_port)))?
            };
            let taken = |ip: IpAddr, port: u16| {
                move |e: std::io::Error| {
                    EngineError::Conflict(format!("Bind for {ip}:{port} failed: port is already allocated ({e})"))
                }
            };
            let also_v6 = b.host_ip.is_empty() && host_default.is_none();
            let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
            let mut tries = 0;
            loop {
                let (r, bound) = bind_port(host_ip, port, &proto, cport_n).map_err(taken(host_ip, port))?;
                if !also_v6 {
                    res.push(r);
                    out.push(PublishedPort {
                        container_port: cport.clone(),
                        host_ip: host_ip.to_string(),
                        host_port: bound,
                    });
                    break;
                }
                match bind_port(any6, bound, &proto, cport_n) {
                    Ok((r6, _)) => {
                        res.push(r);
                        res.push(r6);
                        for ip in [host_ip, any6] {
                            out.push(PublishedPort {
                                container_port: cport.clone(),
                                host_ip: ip.to_string(),
                                host_port: bound,
                            });
                        }
                        break;
                    }
                    Err(e) if no_ipv6(&e) => {
                        res.push(r);
                        out.push(PublishedPort {
                            container_port: cport.clone(),
                            host_ip: host_ip.to_string(),
                            host_port: bound,
                        });
                        break;
                    }
                    // A free IPv4 port that is taken on IPv6: another one (the first is freed
                    // as `r` drops).
                    Err(_) if port == 0 && tries < 20 => tries += 1,
                    Err(e) => return Err(taken(any6, bound)(e)),
                }
            }
        }
        Ok((res, out))
    }

    /// Starts the proxies of a container's IPv6 ports, each sending what reaches it to the
    /// container's address (IPv6, else IPv4) on the endpoint that holds the ports (looked up
    /// per connection or UDP flow: the ports move with the default route).
    pub(super) fn start_proxies(&self, id: &str) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            log::warn!("container {id}: no runtime for the proxies of its IPv6 ports");
            return;
        };
        let mut st = lock(&self.net().state);
        let Some(res) = st.reservations.get_mut(id) else { return };
        let _enter = handle.enter();
        *res = std::mem::take(res)
            .into_iter()
            .filter_map(|r| match r {
                Reservation::Tcp6(listener, cport) => {
                    if let Err(e) = listener.set_nonblocking(true) {
                        log::warn!("container {id}: proxy of IPv6 port {cport}: {e}");
                        return Some(Reservation::Tcp(listener));
                    }
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => {
                            let task = handle.spawn(proxy_tcp(self.clone(), id.to_string(), cport, l));
                            Some(Reservation::Proxy(Proxy(task)))
                        }
                        Err(e) => {
                            log::warn!("container {id}: proxy of IPv6 port {cport}: {e}");
                            None
                        }
                    }
                }
                Reservation::Udp6(socket, cport) => {
                    if let Err(e) = socket.set_nonblocking(true) {
                        log::warn!("container {id}: proxy of IPv6 port {cport}/udp: {e}");
                        return Some(Reservation::Udp(socket));
                    }
                    match tokio::net::UdpSocket::from_std(socket) {
                        Ok(s) => {
                            let task = handle.spawn(proxy_udp(self.clone(), id.to_string(), cport, s));
                            Some(Reservation::Proxy(Proxy(task)))
                        }
                        Err(e) => {
                            log::warn!("container {id}: proxy of IPv6 port {cport}/udp: {e}");
                            None
                        }
                    }
                }
                r => Some(r),
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `::` and `0.0.0.0` hold the same port side by side (IPv6-only sockets), and a port
    /// taken in one family is refused in it only.
    #[test]
    fn ports_of_both_families_side_by_side() {
        if !std::path::Path::new("/proc/sys/net/ipv6").exists() {
            return;
        }
        let any4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        for proto in ["tcp", "udp"] {
            let (_r4, port) = bind_port(any4, 0, proto, 80).unwrap();
            let (r6, p6) = bind_port(any6, port, proto, 80).unwrap();
            assert_eq!(p6, port);
            assert!(matches!((&r6, proto), (Reservation::Tcp6(_, 80), "tcp") | (Reservation::Udp6(_, 80), "udp")));
            assert!(bind_port(any6, port, proto, 80).is_err(), "{proto} {port} twice");
            drop(r6);
            assert!(bind_port(any6, port, proto, 80).is_ok(), "{proto} {port} free again");
        }
    }
}
