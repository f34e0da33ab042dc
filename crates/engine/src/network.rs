//! Container networking in the daemon: the default bridge, one network namespace per
//! container (bind-mounted under `<exec-root>/netns/<id>`), addresses from the bridge's IPAM,
//! published ports (a bound socket reserves each host port, an nftables DNAT rule carries the
//! traffic) and the reconciliation of all of it at daemon start.
//!
//! A container's endpoint is recorded in the `endpoints` table when it starts and removed when
//! it stops, so a crashed daemon knows at the next start what to keep and what to remove.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use wharf_metadata::Table;
use wharf_network::nft::{NetRules, PortRule, Ruleset};
use wharf_network::sandbox::{self, Attachment, BridgeConfig};
use wharf_network::Ipv4Net;

use crate::containers::{ContainerRecord, HostConfig};
use crate::dns::{DnsServer, Lookup};
use crate::usernet::NetworkRecord;
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

/// A container's per-network settings and its resolver configuration: Docker's
/// `EndpointsConfig` (aliases, IPv4 address), `MacAddress`, `Dns*` and `ExtraHosts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetOptions {
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub ipv4_address: Option<String>,
    #[serde(default)]
    pub mac_address: Option<String>,
    #[serde(default)]
    pub dns: Vec<String>,
    #[serde(default)]
    pub dns_search: Vec<String>,
    #[serde(default)]
    pub dns_options: Vec<String>,
    /// `host:ip`
    #[serde(default)]
    pub extra_hosts: Vec<String>,
}

/// A running container's place on the network, as recorded in the `endpoints` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `bridge`, `none`, a user network's name, or `container:<id>` (then no namespace of its
    /// own).
    pub network: String,
    /// The user network's id; empty on the predefined networks.
    #[serde(default)]
    pub network_id: String,
    /// What the network's DNS answers with this endpoint's address (lowercase): the
    /// container's name, short id and aliases.
    #[serde(default)]
    pub dns_names: Vec<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The container's `--dns` servers, asked in place of the host's for names not local.
    #[serde(default)]
    pub dns_servers: Vec<IpAddr>,
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
    pub(crate) state: Mutex<NetState>,
    /// User-defined networks by id.
    pub(crate) networks: Mutex<BTreeMap<String, NetworkRecord>>,
    /// The DNS server of each user network, by network id.
    pub(crate) dns: Mutex<HashMap<String, DnsServer>>,
    /// Serializes network create and remove (name and subnet checks, then the change).
    pub(crate) create_lock: Mutex<()>,
}

#[derive(Default)]
pub(crate) struct NetState {
    pub(crate) endpoints: BTreeMap<String, Endpoint>,
    reservations: HashMap<String, Vec<Reservation>>,
}

impl Networking {
    pub(crate) fn new(config: NetworkConfig) -> Networking {
        let table = if config.bridge == "wharf0" {
            "wharf".to_string()
        } else {
            format!("wharf_{}", config.bridge.replace(|c: char| !c.is_ascii_alphanumeric(), "_"))
        };
        Networking {
            config,
            bridge: Mutex::new(None),
            table,
            state: Mutex::new(NetState::default()),
            networks: Mutex::new(BTreeMap::new()),
            dns: Mutex::new(HashMap::new()),
            create_lock: Mutex::new(()),
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

pub(crate) fn net_err(e: impl std::fmt::Display) -> EngineError {
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
                network_id: String::new(),
                dns_names: Vec::new(),
                aliases: Vec::new(),
                dns_servers: Vec::new(),
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
        // The bridge, its gateway, where addresses come from, and whether it has a route out.
        let (net_name, net_id, bridge, gateway, pool, internal) = if mode == "default" || mode == "bridge" {
            let b = self.ensure_default_bridge()?;
            ("bridge".to_string(), String::new(), b.name, b.gateway, b.gateway.network(), false)
        } else {
            let n = self.find_network(mode)?;
            let gw = n.gateway_net().ok_or_else(|| EngineError::Internal(format!("network {}: bad subnet", n.name)))?;
            if !wharf_network::netns::is_mounted(&path)
                && !std::path::Path::new(&format!("/sys/class/net/{}", n.bridge)).exists()
            {
                // The bridge went away under the daemon (removed by hand): bring it back.
                self.bring_up_network(&n)?;
            }
            let pool = n.pool().unwrap_or(gw.network());
            (n.name.clone(), n.id.clone(), n.bridge.clone(), gw, pool, n.internal)
        };
        let opts = &rec.host_config.net;
        let (reservations, ports) = self.reserve_ports(rec)?;
        let ip = {
            let mut st = lock(&self.net().state);
            let mut taken: BTreeSet<Ipv4Addr> = st
                .endpoints
                .values()
                .filter(|e| e.network_id == net_id && e.network == net_name)
                .filter_map(|e| e.ip)
                .collect();
            taken.insert(gateway.addr);
            let ip = match opts.ipv4_address.as_deref().filter(|a| !a.is_empty()) {
                Some(a) => {
                    let ip: Ipv4Addr =
                        a.parse().map_err(|_| EngineError::Invalid(format!("invalid IPv4 address: {a}")))?;
                    if !gateway.contains(ip) || ip == gateway.network().addr || ip == gateway.broadcast() {
                        return Err(EngineError::Invalid(format!(
                            "no configured subnet contains IP address {ip} (network {net_name} is {})",
                            gateway.network()
                        )));
                    }
                    if taken.contains(&ip) {
                        return Err(EngineError::Conflict(format!(
                            "Address already in use: {ip} on network {net_name}"
                        )));
                    }
                    ip
                }
                None => {
                    // Every address of the range counts (its first one too, as Docker's
                    // `--ip-range`), except the subnet's own network and broadcast addresses.
                    let (first, last) = (u32::from(pool.network().addr), u32::from(pool.broadcast()));
                    (first..=last)
                        .map(Ipv4Addr::from)
                        .find(|a| !taken.contains(a) && *a != gateway.network().addr && *a != gateway.broadcast())
                        .ok_or_else(|| EngineError::Conflict(format!("no free address left on network {net_name}")))?
                }
            };
            // Hold the address while the namespace is made.
            st.endpoints.insert(
                rec.id.clone(),
                Endpoint {
                    network: net_name.clone(),
                    network_id: net_id.clone(),
                    dns_names: Vec::new(),
                    aliases: Vec::new(),
                    dns_servers: Vec::new(),
                    netns: path.clone(),
                    ip: Some(ip),
                    prefix: gateway.prefix,
                    gateway: Some(gateway.addr),
                    mac: String::new(),
                    veth: None,
                    ports: Vec::new(),
                },
            );
            ip
        };
        let mac = match opts.mac_address.as_deref().filter(|m| !m.is_empty()) {
            Some(m) => match parse_mac(m) {
                Some(m) => m,
                None => {
                    lock(&self.net().state).endpoints.remove(&rec.id);
                    return Err(EngineError::Invalid(format!("invalid MAC address: {m}")));
                }
            },
            None => sandbox::mac_for(ip),
        };
        let veth = format!("veth{}", &rec.id[..7]);
        let attach = Attachment {
            bridge: bridge.clone(),
            veth: veth.clone(),
            ip,
            prefix: gateway.prefix,
            gateway: if internal { None } else { Some(gateway.addr) },
            mac,
        };
        if let Err(e) = sandbox::create(&path, Some(attach)) {
            lock(&self.net().state).endpoints.remove(&rec.id);
            return Err(net_err(e));
        }
        let mut dns_names = Vec::new();
        if !net_id.is_empty() {
            dns_names.push(rec.name.to_ascii_lowercase());
            dns_names.push(rec.id[..12].to_string());
            dns_names.extend(opts.aliases.iter().map(|a| a.to_ascii_lowercase()));
        }
        let ep = Endpoint {
            network: net_name,
            network_id: net_id,
            dns_names,
            aliases: opts.aliases.clone(),
            dns_servers: opts.dns.iter().filter_map(|d| d.parse().ok()).collect(),
            netns: path.clone(),
            ip: Some(ip),
            prefix: gateway.prefix,
            gateway: Some(gateway.addr),
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
    pub(crate) fn apply_rules(&self) -> Result<(), EngineError> {
        if !self.net().config.iptables {
            return Ok(());
        }
        let mut rules = Ruleset::default();
        if let Some(bridge) = lock(&self.net().bridge).clone() {
            rules.networks.push(NetRules {
                bridge: bridge.name.clone(),
                subnet: bridge.gateway,
                internal: false,
                masquerade: true,
            });
        }
        for n in lock(&self.net().networks).values() {
            let Some(gw) = n.gateway_net() else { continue };
            let masquerade =
                n.options.get("com.docker.network.bridge.enable_ip_masquerade").is_none_or(|v| v != "false");
            rules.networks.push(NetRules { bridge: n.bridge.clone(), subnet: gw, internal: n.internal, masquerade });
        }
        if rules.networks.is_empty() {
            // The last network went (compose's `down` with no default-bridge container ever
            // started): its masquerade rules must not outlive it.
            return wharf_network::nft::delete_table(&self.net().table).map_err(net_err);
        }
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
        self.restore_networks()?;
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
        if any_bridge || !lock(&self.net().networks).is_empty() {
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
        let user: Vec<NetworkRecord> = lock(&self.net().networks).values().cloned().collect();
        for n in user {
            self.tear_down_network(&n);
        }
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

/// `02:42:ac:11:00:02` → bytes.
fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        if p.len() != 2 {
            return None;
        }
        *m = u8::from_str_radix(p, 16).ok()?;
    }
    // A multicast address cannot be an interface's.
    if mac[0] & 1 != 0 {
        return None;
    }
    Some(mac)
}

/// `--add-host name:ip` (also `name=ip`) → an /etc/hosts line; `host-gateway` is the given
/// gateway.
fn extra_host_line(spec: &str, gateway: Option<Ipv4Addr>) -> Result<String, EngineError> {
    let (name, ip) = spec.split_once('=').or_else(|| spec.split_once(':')).ok_or_else(|| {
        EngineError::Invalid(format!("invalid argument \"{spec}\" for \"--add-host\" flag: bad format"))
    })?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let ip = if ip == "host-gateway" {
        gateway
            .map(|g| g.to_string())
            .ok_or_else(|| EngineError::Invalid("host-gateway needs a network with a gateway".to_string()))?
    } else {
        ip.parse::<IpAddr>()
            .map_err(|_| EngineError::Invalid(format!("invalid IP address in add-host: \"{ip}\"")))?
            .to_string()
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(EngineError::Invalid(format!(
            "invalid argument \"{spec}\" for \"--add-host\" flag: bad host name"
        )));
    }
    Ok(format!("{ip}\t{name}\n"))
}

/// A container's resolv.conf from the host's: the nameservers are the embedded DNS (user
/// networks), the `--dns` servers, or the host's minus loopback ones (unreachable from the
/// container's namespace), falling back to Google's public resolvers as Docker does when none
/// is left; `--dns-search` and `--dns-option` replace the host's `search` and `options`.
fn render_resolv_conf(host: &str, opts: &NetOptions, embedded: Option<Ipv4Addr>) -> String {
    let mut servers: Vec<String> = Vec::new();
    let mut search: Vec<String> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    for l in host.lines() {
        let mut f = l.split_whitespace();
        match f.next() {
            Some("nameserver") => {
                if let Some(a) = f.next() {
                    let loopback = a.parse::<IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false);
                    if !loopback {
                        servers.push(a.to_string());
                    }
                }
            }
            Some("search") | Some("domain") => search = f.map(str::to_string).collect(),
            Some("options") => options.extend(f.map(str::to_string)),
            _ => {}
        }
    }
    if let Some(gw) = embedded {
        servers = vec![gw.to_string()];
        // Single names go to the embedded server first, as Docker's ndots:0.
        options.retain(|o| !o.starts_with("ndots:"));
        options.push("ndots:0".to_string());
    } else if !opts.dns.is_empty() {
        servers = opts.dns.clone();
    } else if servers.is_empty() {
        servers = vec!["8.8.8.8".to_string(), "8.8.4.4".to_string()];
    }
    if !opts.dns_search.is_empty() {
        search = opts.dns_search.iter().filter(|s| s.as_str() != ".").cloned().collect();
    }
    if !opts.dns_options.is_empty() {
        options = opts.dns_options.clone();
        if embedded.is_some() && !options.iter().any(|o| o.starts_with("ndots:")) {
            options.push("ndots:0".to_string());
        }
    }
    let mut out = String::new();
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

impl Engine {
    /// The default bridge's gateway, configured or as it would be chosen.
    pub(crate) fn default_bridge_gateway(&self) -> Option<Ipv4Net> {
        if let Some(b) = lock(&self.net().bridge).as_ref() {
            return Some(b.gateway);
        }
        choose_bip(&self.net().config).ok()
    }

    /// Checks a create's network settings: the mode names a known network, and per-network
    /// options are only given where Docker allows them.
    pub(crate) fn validate_network(&self, hc: &HostConfig) -> Result<(), EngineError> {
        let mode = hc.network_mode.as_str();
        let user = match mode {
            "default" | "bridge" | "none" | "host" => false,
            m if m.starts_with("container:") => {
                self.find_container(&m["container:".len()..])?;
                false
            }
            other => !self.find_network(other)?.predefined,
        };
        let o = &hc.net;
        if !user && o.ipv4_address.as_deref().is_some_and(|a| !a.is_empty()) {
            return Err(EngineError::Invalid(
                "user specified IP address is supported on user defined networks only".to_string(),
            ));
        }
        if !user && !o.aliases.is_empty() {
            return Err(EngineError::Invalid(
                "network-scoped alias is supported only for containers in user defined networks".to_string(),
            ));
        }
        if let Some(a) = o.ipv4_address.as_deref().filter(|a| !a.is_empty()) {
            a.parse::<Ipv4Addr>().map_err(|_| EngineError::Invalid(format!("invalid IPv4 address: {a}")))?;
        }
        if let Some(m) = o.mac_address.as_deref().filter(|m| !m.is_empty()) {
            parse_mac(m).ok_or_else(|| EngineError::Invalid(format!("invalid MAC address: {m}")))?;
        }
        for d in &o.dns {
            d.parse::<IpAddr>().map_err(|_| EngineError::Invalid(format!("{d} is not an ip address")))?;
        }
        for h in &o.extra_hosts {
            extra_host_line(h, None)
                .or_else(|e| if h.ends_with("host-gateway") { Ok(String::new()) } else { Err(e) })?;
        }
        Ok(())
    }

    /// The container's /etc/resolv.conf content.
    pub(crate) fn container_resolv_conf(&self, rec: &ContainerRecord, host_network: bool) -> String {
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        if host_network
            && rec.host_config.net.dns.is_empty()
            && rec.host_config.net.dns_search.is_empty()
            && rec.host_config.net.dns_options.is_empty()
        {
            return host;
        }
        let embedded = self.container_endpoint(&rec.id).filter(|e| !e.network_id.is_empty()).and_then(|e| e.gateway);
        render_resolv_conf(&host, &rec.host_config.net, embedded)
    }

    /// The `--add-host` lines of a container's /etc/hosts.
    pub(crate) fn extra_hosts(&self, rec: &ContainerRecord) -> Result<String, EngineError> {
        let gw = self
            .container_endpoint(&rec.id)
            .and_then(|e| e.gateway)
            .or_else(|| self.default_bridge_gateway().map(|g| g.addr));
        rec.host_config.net.extra_hosts.iter().map(|h| extra_host_line(h, gw)).collect()
    }

    /// Resolves a name asked by `src` through network `net_id`'s DNS server.
    pub(crate) fn dns_lookup(&self, net_id: &str, src: Ipv4Addr, name: &str) -> Lookup {
        let st = lock(&self.net().state);
        let on_net: Vec<&Endpoint> = st.endpoints.values().filter(|e| e.network_id == net_id).collect();
        if !on_net.iter().any(|e| e.ip == Some(src)) {
            return Lookup::Refused;
        }
        let net_name = on_net.first().map(|e| e.network.to_ascii_lowercase()).unwrap_or_default();
        let bare = name.strip_suffix(&format!(".{net_name}")).filter(|_| !net_name.is_empty()).unwrap_or(name);
        let addrs: Vec<Ipv4Addr> =
            on_net.iter().filter(|e| e.dns_names.iter().any(|n| n == bare)).filter_map(|e| e.ip).collect();
        if !addrs.is_empty() {
            return Lookup::Local(addrs);
        }
        let servers = on_net.iter().find(|e| e.ip == Some(src)).map(|e| e.dns_servers.clone()).unwrap_or_default();
        drop(st);
        if servers.is_empty() {
            Lookup::Forward(crate::dns::host_nameservers())
        } else {
            Lookup::Forward(servers.into_iter().map(|ip| SocketAddr::new(ip, 53)).collect())
        }
    }

    /// The servers names not known locally are forwarded to for a container at `src`.
    pub(crate) fn dns_upstreams(&self, src: Ipv4Addr) -> Vec<SocketAddr> {
        let servers: Vec<IpAddr> = lock(&self.net().state)
            .endpoints
            .values()
            .find(|e| e.ip == Some(src))
            .map(|e| e.dns_servers.clone())
            .unwrap_or_default();
        if servers.is_empty() {
            crate::dns::host_nameservers()
        } else {
            servers.into_iter().map(|ip| SocketAddr::new(ip, 53)).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        let cases = [
            ("02:42:ac:11:00:02", Some([2, 0x42, 0xac, 0x11, 0, 2])),
            ("02-42-AC-11-00-02", Some([2, 0x42, 0xac, 0x11, 0, 2])),
            ("01:42:ac:11:00:02", None),
            ("02:42:ac:11:00", None),
            ("zz:42:ac:11:00:02", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_mac(s), want, "{s}");
        }
    }

    #[test]
    fn add_host_lines() {
        let gw = Some(Ipv4Addr::new(10, 0, 0, 1));
        let cases: &[(&str, Option<&str>)] = &[
            ("db:10.1.2.3", Some("10.1.2.3\tdb\n")),
            ("db=10.1.2.3", Some("10.1.2.3\tdb\n")),
            ("v6:::1", Some("::1\tv6\n")),
            ("gw:host-gateway", Some("10.0.0.1\tgw\n")),
            ("db", None),
            ("db:notanip", None),
        ];
        for (spec, want) in cases {
            assert_eq!(extra_host_line(spec, gw).ok().as_deref(), *want, "{spec}");
        }
    }

    #[test]
    fn resolv_conf_table() {
        let host = "nameserver 127.0.0.53\nsearch corp.example\noptions edns0\n";
        let none = NetOptions::default();
        assert_eq!(
            render_resolv_conf(host, &none, None),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\nsearch corp.example\noptions edns0\n"
        );
        assert_eq!(render_resolv_conf("nameserver 10.9.9.9\n", &none, None), "nameserver 10.9.9.9\n");
        assert_eq!(
            render_resolv_conf(host, &none, Some(Ipv4Addr::new(10, 5, 0, 1))),
            "nameserver 10.5.0.1\nsearch corp.example\noptions edns0 ndots:0\n"
        );
        let opts = NetOptions {
            dns: vec!["1.1.1.1".into()],
            dns_search: vec!["a.test".into()],
            dns_options: vec!["timeout:1".into()],
            ..Default::default()
        };
        assert_eq!(render_resolv_conf(host, &opts, None), "nameserver 1.1.1.1\nsearch a.test\noptions timeout:1\n");
        assert_eq!(
            render_resolv_conf(host, &opts, Some(Ipv4Addr::new(10, 5, 0, 1))),
            "nameserver 10.5.0.1\nsearch a.test\noptions timeout:1 ndots:0\n"
        );
    }
}
