//! Container networking in the daemon: the default bridge, one network namespace per
//! container (bind-mounted under `<exec-root>/netns/<id>`), addresses from the bridge's IPAM,
//! published ports (a bound socket reserves each host port, an nftables DNAT rule carries the
//! traffic) and the reconciliation of all of it at daemon start.
//!
//! A container's endpoint is recorded in the `endpoints` table when it starts and removed when
//! it stops, so a crashed daemon knows at the next start what to keep and what to remove.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use wharf_metadata::Table;
use wharf_network::nft::{NetRules, PortRule, Ruleset};
use wharf_network::sandbox::{self, Attachment, BridgeConfig};
use wharf_network::Ipv4Net;

use crate::containers::ContainerRecord;
use crate::{blocking, Engine, EngineError};

/// The daemon's network settings (dockerd's `bridge`, `bip`, `iptables`).
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// The default bridge's name.
    pub bridge: String,
    /// The bridge's address and subnet (`172.17.0.1/16`); chosen among free private ranges
    /// when not given.
    pub bip: Option<String>,
    /// Whether wharf writes nftables rules (masquerade, published ports).
    pub iptables: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig { bridge: "wharf0".to_string(), bip: None, iptables: true }
    }
}

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

/// A running container's place on the network, as recorded in the `endpoints` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `bridge`, `none`, or `container:<id>` (then no namespace of its own).
    pub network: String,
    pub netns: PathBuf,
    pub ip: Option<Ipv4Addr>,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mac: String,
    pub veth: Option<String>,
    pub ports: Vec<PublishedPort>,
}

/// A host port held by the daemon while a container publishes it.
enum Reservation {
    // Held only so no one else binds the port.
    #[allow(dead_code)]
    Tcp(TcpListener),
    #[allow(dead_code)]
    Udp(UdpSocket),
}

pub(crate) struct Networking {
    config: NetworkConfig,
    bridge: Mutex<Option<BridgeConfig>>,
    table: String,
    /// Per running container: its endpoint and reserved ports.
    state: Mutex<NetState>,
}

#[derive(Default)]
struct NetState {
    endpoints: BTreeMap<String, Endpoint>,
    reservations: HashMap<String, Vec<Reservation>>,
}

impl Networking {
    pub(crate) fn new(config: NetworkConfig) -> Networking {
        let table = if config.bridge == "wharf0" {
            "wharf".to_string()
        } else {
            format!("wharf_{}", config.bridge.replace(|c: char| !c.is_ascii_alphanumeric(), "_"))
        };
        Networking { config, bridge: Mutex::new(None), table, state: Mutex::new(NetState::default()) }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn net_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Internal(e.to_string())
}

/// Picks the default bridge's address: the configured one, else the first of Docker's default
/// pools that the host does not route.
fn choose_bip(config: &NetworkConfig) -> Result<Ipv4Net, EngineError> {
    let routes = wharf_network::ipam::host_routes(&config.bridge);
    if let Some(bip) = &config.bip {
        let net: Ipv4Net =
            bip.parse().map_err(|e: wharf_network::ParseNetError| EngineError::Invalid(e.to_string()))?;
        if net.addr == net.network().addr || net.prefix > 30 {
            return Err(EngineError::Invalid(format!("bip {bip}: give the bridge's address, as 172.17.0.1/16")));
        }
        return Ok(net);
    }
    let candidates = (17..=31u8)
        .map(|b| Ipv4Net { addr: Ipv4Addr::new(172, b, 0, 1), prefix: 16 })
        .chain((0..=240u8).step_by(16).map(|c| Ipv4Net { addr: Ipv4Addr::new(192, 168, c, 1), prefix: 20 }));
    for c in candidates {
        if !routes.iter().any(|r| r.overlaps(&c)) {
            return Ok(c);
        }
    }
    Err(EngineError::Internal("no free private subnet for the default bridge: set bip".to_string()))
}

/// Parses `80`, `80/tcp`, `53/udp` into port and protocol.
pub fn parse_port_proto(s: &str) -> Result<(u16, String), EngineError> {
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

impl Engine {
    fn net(&self) -> &Networking {
        &self.inner.network
    }

    pub(crate) fn netns_path(&self, id: &str) -> PathBuf {
        self.inner.config.exec_root.join("netns").join(id)
    }

    /// The network namespace file a container's spec joins, `None` for the host's.
    pub(crate) fn spec_netns(&self, rec: &ContainerRecord) -> Result<Option<String>, EngineError> {
        let mode = rec.host_config.network_mode.as_str();
        if mode == "host" {
            return Ok(None);
        }
        if let Some(other) = mode.strip_prefix("container:") {
            let o = self.find_container(other)?;
            return Ok(Some(self.netns_path(&o.id).display().to_string()));
        }
        Ok(Some(self.netns_path(&rec.id).display().to_string()))
    }

    /// The endpoint of a running container.
    pub fn container_endpoint(&self, id: &str) -> Option<Endpoint> {
        lock(&self.net().state).endpoints.get(id).cloned()
    }

    /// The default bridge's gateway, creating the bridge on first use.
    fn ensure_default_bridge(&self) -> Result<BridgeConfig, EngineError> {
        let mut b = lock(&self.net().bridge);
        if let Some(b) = b.as_ref() {
            return Ok(b.clone());
        }
        let cfg = BridgeConfig { name: self.net().config.bridge.clone(), gateway: choose_bip(&self.net().config)? };
        sandbox::ensure_bridge(&cfg).map_err(net_err)?;
        *b = Some(cfg.clone());
        Ok(cfg)
    }

    /// Before a container's shim starts: creates its namespace (loopback up and, on the
    /// bridge, its veth and address), reserves its published ports and writes the rules.
    /// On failure nothing of it is left.
    pub(crate) fn network_attach(&self, rec: &ContainerRecord) -> Result<(), EngineError> {
        let mode = rec.host_config.network_mode.as_str();
        if mode == "host" {
            return Ok(());
        }
        if let Some(other) = mode.strip_prefix("container:") {
            let o = self.find_container(other)?;
            if !o.state.running || !wharf_network::netns::is_mounted(&self.netns_path(&o.id)) {
                return Err(EngineError::Conflict(format!("cannot join network of a non running container: {other}")));
            }
            return Ok(());
        }
        let path = self.netns_path(&rec.id);
        // A namespace left by a crash between start and exit record.
        let _ = sandbox::remove(&path, None);
        if mode == "none" {
            sandbox::create(&path, None).map_err(net_err)?;
            let ep = Endpoint {
                network: "none".to_string(),
                netns: path,
                ip: None,
                prefix: 0,
                gateway: None,
                mac: String::new(),
                veth: None,
                ports: Vec::new(),
            };
            return self.record_endpoint(&rec.id, ep, Vec::new());
        }
        let bridge = self.ensure_default_bridge()?;
        let (reservations, ports) = self.reserve_ports(rec)?;
        let ip = {
            let mut st = lock(&self.net().state);
            let mut taken: BTreeSet<Ipv4Addr> = st.endpoints.values().filter_map(|e| e.ip).collect();
            taken.insert(bridge.gateway.addr);
            let ip = bridge.gateway.allocate(&taken).map_err(|e| EngineError::Conflict(e.to_string()))?;
            // Hold the address while the namespace is made.
            st.endpoints.insert(
                rec.id.clone(),
                Endpoint {
                    network: "bridge".to_string(),
                    netns: path.clone(),
                    ip: Some(ip),
                    prefix: bridge.gateway.prefix,
                    gateway: Some(bridge.gateway.addr),
                    mac: String::new(),
                    veth: None,
                    ports: Vec::new(),
                },
            );
            ip
        };
        let mac = sandbox::mac_for(ip);
        let veth = format!("veth{}", &rec.id[..7]);
        let attach = Attachment {
            bridge: bridge.name.clone(),
            veth: veth.clone(),
            ip,
            prefix: bridge.gateway.prefix,
            gateway: Some(bridge.gateway.addr),
            mac,
        };
        if let Err(e) = sandbox::create(&path, Some(attach)) {
            lock(&self.net().state).endpoints.remove(&rec.id);
            return Err(net_err(e));
        }
        let ep = Endpoint {
            network: "bridge".to_string(),
            netns: path.clone(),
            ip: Some(ip),
            prefix: bridge.gateway.prefix,
            gateway: Some(bridge.gateway.addr),
            mac: sandbox::format_mac(&mac),
            veth: Some(veth.clone()),
            ports,
        };
        if let Err(e) = self.record_endpoint(&rec.id, ep, reservations) {
            let _ = sandbox::remove(&path, Some(&veth));
            return Err(e);
        }
        Ok(())
    }

    fn record_endpoint(&self, id: &str, ep: Endpoint, res: Vec<Reservation>) -> Result<(), EngineError> {
        let has_ports = !ep.ports.is_empty();
        self.inner.db.write(|tx| tx.put(Table::Endpoints, id, &ep))?;
        {
            let mut st = lock(&self.net().state);
            st.endpoints.insert(id.to_string(), ep);
            st.reservations.insert(id.to_string(), res);
        }
        if has_ports {
            if let Err(e) = self.apply_rules() {
                let _ = self.network_release(id);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Binds every published host port (so a taken one fails now, naming it, and no one else
    /// can take it while the container runs).
    fn reserve_ports(&self, rec: &ContainerRecord) -> Result<(Vec<Reservation>, Vec<PublishedPort>), EngineError> {
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
            let (_, proto) = parse_port_proto(&cport)?;
            let cport = if cport.contains('/') { cport } else { format!("{cport}/tcp") };
            let host_ip: Ipv4Addr = if b.host_ip.is_empty() {
                Ipv4Addr::UNSPECIFIED
            } else {
                b.host_ip.parse().map_err(|_| EngineError::Invalid(format!("invalid host IP: {}", b.host_ip)))?
            };
            let port: u16 = if b.host_port.is_empty() {
                0
            } else {
                b.host_port.parse().map_err(|_| EngineError::Invalid(format!("invalid hostPort: {}", b.host_port)))?
            };
            let addr = SocketAddrV4::new(host_ip, port);
            let taken = |e: std::io::Error| {
                EngineError::Conflict(format!("Bind for {host_ip}:{port} failed: port is already allocated ({e})"))
            };
            let (r, bound) = if proto == "udp" {
                let s = UdpSocket::bind(addr).map_err(taken)?;
                let p = s.local_addr().map(|a| a.port()).unwrap_or(port);
                (Reservation::Udp(s), p)
            } else {
                let s = bind_tcp(addr).map_err(taken)?;
                let p = s.local_addr().map(|a| a.port()).unwrap_or(port);
                (Reservation::Tcp(s), p)
            };
            res.push(r);
            out.push(PublishedPort { container_port: cport, host_ip: host_ip.to_string(), host_port: bound });
        }
        Ok((res, out))
    }

    /// Writes wharf's nftables table from the current state.
    fn apply_rules(&self) -> Result<(), EngineError> {
        if !self.net().config.iptables {
            return Ok(());
        }
        let Some(bridge) = lock(&self.net().bridge).clone() else { return Ok(()) };
        let mut rules = Ruleset {
            networks: vec![NetRules {
                bridge: bridge.name.clone(),
                subnet: bridge.gateway,
                internal: false,
                masquerade: true,
            }],
            ports: Vec::new(),
        };
        for ep in lock(&self.net().state).endpoints.values() {
            let Some(ip) = ep.ip else { continue };
            for p in &ep.ports {
                let Ok((cport, proto)) = parse_port_proto(&p.container_port) else { continue };
                rules.ports.push(PortRule {
                    proto,
                    host_ip: p.host_ip.parse().ok(),
                    host_port: p.host_port,
                    container_ip: ip,
                    container_port: cport,
                });
            }
        }
        rules.apply(&self.net().table).map_err(net_err)
    }

    /// When a container stops: removes its namespace, veth, address, ports and rules.
    /// Idempotent; goes on after a failure and reports the first.
    pub(crate) fn network_release(&self, id: &str) -> Result<(), EngineError> {
        let ep = {
            let mut st = lock(&self.net().state);
            st.reservations.remove(id);
            st.endpoints.remove(id)
        };
        let stored: Option<Endpoint> = self.inner.db.get(Table::Endpoints, id).ok().flatten();
        let ep = ep.or(stored);
        let mut first = None;
        let veth = ep.as_ref().and_then(|e| e.veth.clone());
        if let Err(e) = sandbox::remove(&self.netns_path(id), veth.as_deref()) {
            first = Some(net_err(e));
        }
        if let Err(e) = self.inner.db.write(|tx| tx.delete(Table::Endpoints, id)) {
            first.get_or_insert(e.into());
        }
        if ep.is_some_and(|e| !e.ports.is_empty()) {
            if let Err(e) = self.apply_rules() {
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub(crate) async fn network_release_async(&self, id: &str) {
        let engine = self.clone();
        let id = id.to_string();
        let r = blocking(move || engine.network_release(&id)).await;
        if let Err(e) = r {
            log::warn!("network release: {e}");
        }
    }

    /// At daemon start: keeps the endpoints of running containers (their addresses and ports
    /// stay theirs), removes every other namespace, veth and record, and rewrites the rules.
    pub(crate) fn network_reconcile(&self, running: &BTreeSet<String>) -> Result<(), EngineError> {
        let stored: Vec<(String, Endpoint)> = self.inner.db.list(Table::Endpoints)?;
        let mut keep = Vec::new();
        for (id, ep) in stored {
            if running.contains(&id) {
                keep.push((id, ep));
            } else {
                log::info!("container {id}: removing network left from before");
                if let Err(e) = self.network_release(&id) {
                    log::warn!("{e}");
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(self.inner.config.exec_root.join("netns")) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().to_string();
                if !keep.iter().any(|(k, _)| *k == id) {
                    let _ = sandbox::remove(&e.path(), None);
                }
            }
        }
        let any_bridge = keep.iter().any(|(_, e)| e.network == "bridge");
        if any_bridge {
            self.ensure_default_bridge()?;
        }
        {
            let mut st = lock(&self.net().state);
            for (id, ep) in keep {
                let mut res = Vec::new();
                for p in &ep.ports {
                    let addr = SocketAddrV4::new(p.host_ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED), p.host_port);
                    let r = if p.container_port.ends_with("/udp") {
                        UdpSocket::bind(addr).map(Reservation::Udp)
                    } else {
                        bind_tcp(addr).map(Reservation::Tcp)
                    };
                    match r {
                        Ok(r) => res.push(r),
                        Err(e) => log::warn!("container {id}: reserve port {addr} again: {e}"),
                    }
                }
                st.reservations.insert(id.clone(), res);
                st.endpoints.insert(id, ep);
            }
        }
        if any_bridge {
            self.apply_rules()?;
        }
        Ok(())
    }

    pub(crate) async fn reconcile_network(&self) -> Result<(), EngineError> {
        let running: BTreeSet<String> = self
            .inner
            .db
            .list::<ContainerRecord>(Table::Containers)?
            .into_iter()
            .filter(|(_, r)| r.state.running)
            .map(|(id, _)| id)
            .collect();
        let engine = self.clone();
        blocking(move || engine.network_reconcile(&running)).await
    }

    /// At daemon stop with no container running: the bridge and the rules go too.
    pub(crate) fn network_shutdown(&self) {
        if self.net().config.iptables {
            if let Err(e) = wharf_network::nft::delete_table(&self.net().table) {
                log::warn!("{e}");
            }
        }
        if let Err(e) = sandbox::remove_bridge(&self.net().config.bridge) {
            log::warn!("{e}");
        }
        let _ = std::fs::remove_dir(self.inner.config.exec_root.join("netns"));
    }
}

/// Holds a host TCP port. The listener never sees a connection: DNAT rewrites the
/// destination before the kernel looks for a local socket.
fn bind_tcp(addr: SocketAddrV4) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
}
