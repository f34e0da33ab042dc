//! The embedded DNS server of user-defined networks: one per network, listening (UDP and TCP)
//! on the network's gateway address port 53 in the host's namespace, which containers use as
//! their nameserver. Names of the containers on the asker's user networks (name, short id,
//! aliases per network, and the `name.network` forms; the network the query came in on first)
//! are answered from the daemon's live endpoints, so answers follow containers as they come and
//! go and as they are connected and disconnected; everything else is forwarded to the
//! container's `--dns` servers or the host's resolvers. Queries from outside the network's
//! subnet are refused, so a container only learns the names of its own networks.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use wharf_network::dns_wire::{answer, error_reply, parse_query, CLASS_IN, RCODE_REFUSED, RCODE_SERVFAIL};
use wharf_network::Ipv4Net;

use crate::network::{lock, Networking};
use crate::{Engine, EngineError};

const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// Queries of one server answered at once; a packet that finds them all taken is dropped, as
/// a loaded DNS server drops, and the client asks again. Each holds a task and, when
/// forwarded, a socket: without a bound a flood of packets from a container made as many.
const MAX_UDP_IN_FLIGHT: usize = 256;
/// TCP connections of one server served at once; more wait in the listen queue.
const MAX_TCP_CONNECTIONS: usize = 32;
/// How long a TCP client may be idle between queries, or take to send one.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running server; dropping it stops it.
pub(crate) struct DnsServer {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What the daemon knows of a name asked from a container.
pub(crate) enum Lookup {
    /// A container on the network: its addresses (IPv4, and IPv6 on a dual-stack network:
    /// AAAA queries get those).
    Local(Vec<IpAddr>),
    /// Not a container's name: ask these servers.
    Forward(Vec<SocketAddr>),
    /// The asker is not on the network.
    Refused,
}

impl DnsServer {
    /// Binds `addr:53` (UDP and TCP) and serves there until dropped. Must run inside the
    /// daemon's tokio runtime (a blocking task is).
    pub(crate) fn start(
        engine: Engine,
        net_id: String,
        addr: Ipv4Addr,
        subnet: Ipv4Net,
    ) -> Result<DnsServer, EngineError> {
        let bind = SocketAddrV4::new(addr, 53);
        let err = |what: &str, e: std::io::Error| EngineError::Internal(format!("dns server on {bind} ({what}): {e}"));
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|e| EngineError::Internal(format!("dns server on {bind}: no runtime: {e}")))?;
        let _enter = handle.enter();
        let udp = std::net::UdpSocket::bind(bind).map_err(|e| err("udp", e))?;
        udp.set_nonblocking(true).map_err(|e| err("udp", e))?;
        let udp = UdpSocket::from_std(udp).map_err(|e| err("udp", e))?;
        let tcp = std::net::TcpListener::bind(bind).map_err(|e| err("tcp", e))?;
        tcp.set_nonblocking(true).map_err(|e| err("tcp", e))?;
        let tcp = TcpListener::from_std(tcp).map_err(|e| err("tcp", e))?;
        let udp = std::sync::Arc::new(udp);
        let (e1, n1) = (engine.clone(), net_id.clone());
        let udp_task = handle.spawn(async move {
            let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_UDP_IN_FLIGHT));
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, src)) = udp.recv_from(&mut buf).await else { continue };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    log::debug!("dns: {bind}: {MAX_UDP_IN_FLIGHT} queries in flight, dropping one from {src}");
                    continue;
                };
                let Some(query) = buf.get(..n).map(<[u8]>::to_vec) else { continue };
                let (engine, net_id, udp) = (e1.clone(), n1.clone(), udp.clone());
                tokio::spawn(async move {
                    if let Some(reply) = resolve(&engine, &net_id, subnet, src, &query).await {
                        let _ = udp.send_to(&reply, src).await;
                    }
                    drop(slot);
                });
            }
        });
        let tcp_task = handle.spawn(async move {
            let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_TCP_CONNECTIONS));
            loop {
                // Waiting for a slot before accepting leaves further clients in the kernel's
                // listen queue instead of holding a task each.
                let Ok(slot) = slots.clone().acquire_owned().await else { return };
                let Ok((stream, src)) = tcp.accept().await else { continue };
                let (engine, net_id) = (engine.clone(), net_id.clone());
                tokio::spawn(async move {
                    let _ = serve_tcp(&engine, &net_id, subnet, src, stream).await;
                    drop(slot);
                });
            }
        });
        Ok(DnsServer { tasks: vec![udp_task, tcp_task] })
    }
}

async fn serve_tcp(
    engine: &Engine,
    net_id: &str,
    subnet: Ipv4Net,
    src: SocketAddr,
    mut stream: TcpStream,
) -> std::io::Result<()> {
    if let IpAddr::V4(ip) = src.ip() {
        if !subnet.contains(ip) {
            return Ok(());
        }
    }
    loop {
        let mut len = [0u8; 2];
        if tokio::time::timeout(TCP_TIMEOUT, stream.read_exact(&mut len)).await.is_err() {
            return Ok(());
        }
        let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
        // A client that announces a length and never sends the bytes must not hold the
        // connection (and its slot) for ever.
        match tokio::time::timeout(TCP_TIMEOUT, stream.read_exact(&mut query)).await {
            Ok(read) => read?,
            Err(_) => return Ok(()),
        };
        let Some(reply) = resolve(engine, net_id, subnet, src, &query).await else { return Ok(()) };
        stream.write_all(&(reply.len() as u16).to_be_bytes()).await?;
        stream.write_all(&reply).await?;
    }
}

/// The reply to one query, `None` when it is not worth one.
async fn resolve(engine: &Engine, net_id: &str, subnet: Ipv4Net, src: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let src_ip = match src.ip() {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(_) => return Some(error_reply(query, RCODE_REFUSED)),
    };
    if !subnet.contains(src_ip) {
        return Some(error_reply(query, RCODE_REFUSED));
    }
    let q = parse_query(query)?;
    let lookup = if q.qclass == CLASS_IN {
        engine.inner.network.dns_lookup(net_id, src_ip, &q.name)
    } else {
        Lookup::Forward(engine.inner.network.dns_upstreams(src_ip))
    };
    match lookup {
        Lookup::Local(addrs) => Some(answer(query, &q, &addrs)),
        Lookup::Refused => Some(error_reply(query, RCODE_REFUSED)),
        Lookup::Forward(servers) => {
            for s in servers {
                if let Some(r) = forward(s, query).await {
                    return Some(r);
                }
            }
            Some(error_reply(query, RCODE_SERVFAIL))
        }
    }
}

// The answering policy is the server's own concern (its only caller is `resolve`), so it is
// here rather than in `network/`; it reads nothing of the network state but the live endpoints.
impl Networking {
    /// Resolves a name asked by `src` through network `net_id`'s DNS server: the names of
    /// the containers on every user network the asker is on (that network's first), and only
    /// those; other names go to the asker's `--dns` servers or the host's.
    fn dns_lookup(&self, net_id: &str, src: Ipv4Addr, name: &str) -> Lookup {
        let st = lock(&self.state);
        let Some(asker) = st.endpoints.values().find(|e| e.network_id == net_id && e.ip == Some(src)) else {
            return Lookup::Refused;
        };
        let mut nets: Vec<(&str, &str)> = vec![(asker.network_id.as_str(), asker.network.as_str())];
        for e in st.endpoints.values().filter(|e| e.container == asker.container && !e.network_id.is_empty()) {
            if !nets.iter().any(|(id, _)| *id == e.network_id) {
                nets.push((e.network_id.as_str(), e.network.as_str()));
            }
        }
        // A link's alias, for the container that made the link: its target on this network.
        let lower = name.to_ascii_lowercase();
        if let Some((target, _)) = asker.links.iter().find(|(_, alias)| *alias == lower) {
            let addrs: Vec<IpAddr> = st
                .endpoints
                .values()
                .filter(|e| e.network_id == net_id && e.dns_names.iter().any(|n| n == target))
                .flat_map(|e| e.addrs())
                .collect();
            if !addrs.is_empty() {
                return Lookup::Local(addrs);
            }
        }
        for (id, net_name) in nets {
            let net_name = net_name.to_ascii_lowercase();
            let bare = name.strip_suffix(&format!(".{net_name}")).filter(|_| !net_name.is_empty()).unwrap_or(name);
            let addrs: Vec<IpAddr> = st
                .endpoints
                .values()
                .filter(|e| e.network_id == id && e.dns_names.iter().any(|n| n == bare))
                .flat_map(|e| e.addrs())
                .collect();
            if !addrs.is_empty() {
                return Lookup::Local(addrs);
            }
        }
        let servers = asker.dns_servers.clone();
        drop(st);
        if servers.is_empty() {
            Lookup::Forward(host_nameservers())
        } else {
            Lookup::Forward(servers.into_iter().map(|ip| SocketAddr::new(ip, 53)).collect())
        }
    }

    /// The servers names not known locally are forwarded to for a container at `src`.
    fn dns_upstreams(&self, src: Ipv4Addr) -> Vec<SocketAddr> {
        let servers: Vec<IpAddr> = lock(&self.state)
            .endpoints
            .values()
            .find(|e| e.ip == Some(src))
            .map(|e| e.dns_servers.clone())
            .unwrap_or_default();
        if servers.is_empty() {
            host_nameservers()
        } else {
            servers.into_iter().map(|ip| SocketAddr::new(ip, 53)).collect()
        }
    }
}

/// Asks one upstream server over UDP; its reply, or `None` after the time-out.
async fn forward(server: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let local: SocketAddr = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().ok()?;
    let sock = UdpSocket::bind(local).await.ok()?;
    sock.connect(server).await.ok()?;
    sock.send(query).await.ok()?;
    let mut buf = vec![0u8; 65535];
    let deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
    loop {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await.ok()?.ok()?;
        // Only the answer to this query (same id).
        if n >= 2 && buf[..2] == query[..2] {
            return Some(buf[..n].to_vec());
        }
    }
}

/// The host's nameservers from its resolv.conf (loopback ones included: the daemon runs in
/// the host's namespace).
pub(crate) fn host_nameservers() -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    nameservers_of(&text)
}

pub(crate) fn nameservers_of(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            if f.next() != Some("nameserver") {
                return None;
            }
            let ip: IpAddr = f.next()?.split('%').next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# x\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nsearch a.b\nnameserver bad\n";
        let got = nameservers_of(text);
        assert_eq!(got, vec!["127.0.0.53:53".parse().unwrap(), "[fe80::1]:53".parse().unwrap()]);
    }
}
