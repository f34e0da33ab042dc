//! Container networking in the daemon: the default bridge, one network namespace per
//! container (bind-mounted under `<exec-root>/netns/<id>`), addresses from the bridge's IPAM,
//! published ports (a bound socket reserves each host port, an nftables DNAT rule carries the
//! traffic) and the reconciliation of all of it at daemon start.
//!
//! A container has one endpoint per network it is on, recorded in the `endpoints` table under
//! `<container id>/<network id>` (`bridge`, `none` for the predefined ones) when it starts or
//! is connected, and removed when it stops or is disconnected, so a crashed daemon knows at
//! the next start what to keep and what to remove. Records of the previous version, keyed by
//! the container id alone, are migrated at that start.
//!
//! A container's networks are in dockerd's order (libnetwork's endpoint order,
//! [`Rank`](endpoint::Rank)): the highest `GwPriority` first, networks with a route out before
//! `--internal` ones, dual-stack before IPv4-only, then by name. At a start the interfaces
//! are `eth0`, `eth1`, ... in that order; a network connected to a running container gets the
//! next free number. The default routes and the published ports are on the first network of
//! that order that has a gateway, and move when a connect or disconnect changes which one that
//! is, as with dockerd (the IPv6 route, the same way, among the dual-stack networks).
//!
//! On a dual-stack network (`--ipv6`) an endpoint has an IPv6 address too, from the network's
//! IPv6 subnet (`--ip6`, or the lowest free one, as dockerd's IPAM; on the default bridge with
//! `fixed-cidr-v6`, the subnet plus the MAC address, as dockerd). A port published on every
//! address is published on `::` as well, at the same host port, as dockerd 20.10 does: to a
//! dual-stack endpoint DNAT in the `ip6` table carries it, and what DNAT cannot (`[::1]`: the
//! kernel lets no loopback-addressed packet off the loopback device; anything, to an
//! IPv4-only endpoint) the daemon proxies to the container, as docker-proxy.
//!
//! This file has the daemon's network settings, the state and its locks, and the
//! orchestration: attach at a start, connect and disconnect while running, the default
//! routes' moves, release, reconcile and shutdown. The rest is by concern: `pools` (where
//! subnets and addresses come from), `endpoint` (the stored record, its migration and
//! dockerd's order), `ports` (host port reservations and the proxies), `rules` (the nftables
//! table) and `etc_files` (hostname, hosts, resolv.conf, link env). What the embedded DNS
//! answers is decided in `crate::dns`, beside its server.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use wharf_metadata::Table;
use wharf_network::sandbox::{self, Attachment, BridgeConfig};
use wharf_network::{Ipv4Net, Ipv6Net};
use wharf_types::digest::short_id;

use crate::containers::{ContainerRecord, HostConfig};
use crate::dns::DnsServer;
use crate::usernet::NetworkRecord;
use crate::{blocking, Engine, EngineError};

mod endpoint;
mod etc_files;
mod pools;
mod ports;
mod rules;

pub(crate) use endpoint::parse_mac;
use endpoint::{endpoint_key, gateway_choice, migrate_endpoint, parse_link_local};
pub use endpoint::{parse_link, Endpoint, NetworkView};
use etc_files::extra_host_line;
pub use pools::AddressPool;
pub(crate) use pools::{candidate_subnets, check_ipv6_configured, default_bridge_subnet6, parse_ipv6};
use pools::{choose_bip, mac_ipv6};
use ports::{bind_port, parse_port_proto, Reservation};
pub use ports::{PortBinding, PublishedPort};

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
    /// dockerd's `default-address-pools`: where the default bridge (without `bip`) and user
    /// networks (without `--subnet`) get their subnets; empty means Docker's built-in pools.
    pub address_pools: Vec<AddressPool>,
    /// dockerd's `ipv6`: the default bridge is dual-stack (with `fixed_cidr_v6`).
    pub ipv6: bool,
    /// dockerd's `fixed-cidr-v6` (`fd00:1::/64`): the default bridge's IPv6 subnet; its first
    /// address is the bridge's, containers get the subnet plus their MAC address (a prefix of
    /// /80 or shorter) or the lowest free address. Without it, `ipv6` gives no addresses.
    pub fixed_cidr_v6: Option<String>,
    /// dockerd's settings that apply to the default bridge only (a user network takes the
    /// same as its driver options).
    pub default_bridge: DefaultBridgeOptions,
}

/// dockerd's `mtu`, `icc`, `ip`, `ip-masq`, `fixed-cidr` and `default-gateway`: what its
/// default bridge shows as the options `com.docker.network.driver.mtu`,
/// `com.docker.network.bridge.enable_icc`, `...host_binding_ipv4` and
/// `...enable_ip_masquerade`, and as the IPAM range and `DefaultGatewayIPv4` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultBridgeOptions {
    /// The bridge's and its containers' interfaces' MTU; None is the kernel's 1500.
    pub mtu: Option<u32>,
    /// Containers on the default bridge may reach each other (otherwise only through links).
    pub icc: bool,
    /// The address ports published without one bind (None: every address).
    pub host_ip: Option<Ipv4Addr>,
    pub masquerade: bool,
    /// Where containers' addresses come from, inside the bridge's subnet.
    pub fixed_cidr: Option<Ipv4Net>,
    /// The containers' default route, instead of the bridge's address.
    pub default_gateway: Option<Ipv4Addr>,
}

impl Default for DefaultBridgeOptions {
    fn default() -> Self {
        DefaultBridgeOptions {
            mtu: None,
            icc: true,
            host_ip: None,
            masquerade: true,
            fixed_cidr: None,
            default_gateway: None,
        }
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            bridge: "wharf0".to_string(),
            bip: None,
            iptables: true,
            address_pools: Vec::new(),
            ipv6: false,
            fixed_cidr_v6: None,
            default_bridge: DefaultBridgeOptions::default(),
        }
    }
}

/// The MTUs a veth takes (the kernel's ETH_MIN_MTU and its maximum).
const MTU_RANGE: std::ops::RangeInclusive<u32> = 68..=65535;

impl NetworkConfig {
    /// Checks what dockerd checks at its start: `fixed_cidr_v6` is an IPv6 subnet, the MTU one a
    /// veth can have, and, with `bip` given, `fixed_cidr` and `default_gateway` inside its subnet.
    pub fn check(&self) -> Result<(), EngineError> {
        if let Some(c) = &self.fixed_cidr_v6 {
            c.parse::<Ipv6Net>().map_err(|_| EngineError::Invalid(format!("invalid fixed-cidr-v6: {c}")))?;
        }
        if let Some(m) = self.default_bridge.mtu.filter(|m| !MTU_RANGE.contains(m)) {
            return Err(EngineError::Invalid(format!(
                "invalid mtu {m}: it must be from {} to {} (0 for the default, 1500)",
                MTU_RANGE.start(),
                MTU_RANGE.end()
            )));
        }
        if let Some(bip) = &self.bip {
            let net: Ipv4Net =
                bip.parse().map_err(|e: wharf_network::ParseNetError| EngineError::Invalid(e.to_string()))?;
            self.check_in_bridge_subnet(net)?;
        }
        Ok(())
    }

    /// `fixed-cidr` and `default-gateway` must lie in the default bridge's subnet.
    fn check_in_bridge_subnet(&self, bip: Ipv4Net) -> Result<(), EngineError> {
        let subnet = bip.network();
        if let Some(c) = self.default_bridge.fixed_cidr {
            if c.prefix < subnet.prefix || !subnet.contains(c.addr) {
                return Err(EngineError::Invalid(format!(
                    "fixed-cidr {c} is not inside the default bridge's subnet {subnet} (set bip to an address of a \
                     subnet that holds it)"
                )));
            }
        }
        if let Some(g) = self.default_bridge.default_gateway {
            if !subnet.contains(g) {
                return Err(EngineError::Invalid(format!(
                    "auxiliary address: (DefaultGatewayIPv4:{g}) must belong to the master pool: {subnet}"
                )));
            }
        }
        Ok(())
    }
}

/// A container's per-network settings and its resolver configuration: Docker's
/// `EndpointsConfig` (aliases, IPv4 address), `MacAddress`, `Dns*` and `ExtraHosts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetOptions {
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub ipv4_address: Option<String>,
    /// `--ip6`: the first network's `IPAMConfig.IPv6Address`.
    #[serde(default)]
    pub ipv6_address: Option<String>,
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
    /// `--link name[:alias]` (`HostConfig.Links` and the first network's endpoint `Links`): on
    /// a user-defined network the alias is a name of that container for this one only.
    #[serde(default)]
    pub links: Vec<String>,
    /// The first network's endpoint `DriverOpts`.
    #[serde(default)]
    pub driver_opts: BTreeMap<String, String>,
    /// `--link-local-ip`: the first network's `IPAMConfig.LinkLocalIPs`.
    #[serde(default)]
    pub link_local_ips: Vec<String>,
    /// The first network's `GwPriority`.
    #[serde(default)]
    pub gw_priority: i64,
    /// The networks connected after the one `network_mode` names, in connect order (`network
    /// connect`, further `EndpointsConfig` entries of a create).
    #[serde(default)]
    pub networks: Vec<NetAttach>,
    /// Disconnected from the network `network_mode` names and from every other: the container
    /// has loopback only until it is connected again.
    #[serde(default)]
    pub detached: bool,
}

/// A further network of a container, as connected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetAttach {
    /// The network's id (its name where given so at create).
    pub network: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub ipv4_address: Option<String>,
    /// `network connect --ip6`.
    #[serde(default)]
    pub ipv6_address: Option<String>,
    /// The endpoint's `Links` (`name[:alias]`).
    #[serde(default)]
    pub links: Vec<String>,
    /// `network connect --mac-address`.
    #[serde(default)]
    pub mac_address: Option<String>,
    /// `network connect --driver-opt`: kept and shown (the bridge driver uses none of them).
    #[serde(default)]
    pub driver_opts: BTreeMap<String, String>,
    /// `network connect --link-local-ip`.
    #[serde(default)]
    pub link_local_ips: Vec<String>,
    /// `network connect --gw-priority`.
    #[serde(default)]
    pub gw_priority: i64,
}

pub(crate) struct Networking {
    pub(crate) config: NetworkConfig,
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
    /// Serializes writing the nftables table: each write is built from a snapshot of the
    /// state, so two at once (`rm -f a b c`) could end with the older snapshot on top, and a
    /// removed container's port rule back in the table.
    apply_lock: Mutex<()>,
    /// Whether the `ip6` table may be there (written since the start, or left by a daemon
    /// before this one): when no network has IPv6 any more, it is removed.
    ip6_table: AtomicBool,
    /// The same for the `bridge` table (networks without inter-container traffic).
    bridge_table: AtomicBool,
}

#[derive(Default)]
pub(crate) struct NetState {
    pub(crate) endpoints: BTreeMap<String, Endpoint>,
    reservations: HashMap<String, Vec<Reservation>>,
    /// Per running container, the number its next connected interface gets: as in dockerd, a
    /// number is not given again while the container runs, even when its interface went. (Lost
    /// with a daemon restart: then the next after the highest there.)
    next_ifindex: HashMap<String, u32>,
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
            apply_lock: Mutex::new(()),
            ip6_table: AtomicBool::new(true),
            bridge_table: AtomicBool::new(true),
        }
    }
}

/// `container_networks` against a list of the networks (`list_networks`), taken once by
/// callers that look at many containers.
pub(crate) fn container_networks_in(
    networks: &[NetworkRecord],
    rec: &ContainerRecord,
    strict: bool,
) -> Result<Vec<NetworkView>, EngineError> {
    let hc = &rec.host_config;
    let mode = hc.network_mode.as_str();
    if mode == "host" || mode == "none" || mode.starts_with("container:") {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    if !hc.net.detached {
        match crate::usernet::find_network_in(networks, mode).cloned() {
            Ok(network) => out.push(NetworkView {
                network,
                aliases: hc.net.aliases.clone(),
                ipv4_address: hc.net.ipv4_address.clone(),
                ipv6_address: hc.net.ipv6_address.clone(),
                links: hc.net.links.clone(),
                mac_address: hc.net.mac_address.clone(),
                driver_opts: hc.net.driver_opts.clone(),
                link_local_ips: hc.net.link_local_ips.clone(),
                gw_priority: hc.net.gw_priority,
                endpoint: None,
            }),
            Err(e) if strict => return Err(e),
            Err(_) => {}
        }
    }
    for a in &hc.net.networks {
        let n = match crate::usernet::find_network_in(networks, &a.network).cloned() {
            Ok(n) => n,
            Err(e) if strict => return Err(e),
            Err(_) => continue,
        };
        if out.iter().any(|o| o.network.id == n.id) {
            continue;
        }
        out.push(NetworkView {
            network: n,
            aliases: a.aliases.clone(),
            ipv4_address: a.ipv4_address.clone(),
            ipv6_address: a.ipv6_address.clone(),
            links: a.links.clone(),
            mac_address: a.mac_address.clone(),
            driver_opts: a.driver_opts.clone(),
            link_local_ips: a.link_local_ips.clone(),
            gw_priority: a.gw_priority,
            endpoint: None,
        });
    }
    Ok(out)
}

pub(crate) use crate::sync::lock;

impl Engine {
    fn net(&self) -> &Networking {
        &self.inner.network
    }

    pub(crate) fn netns_path(&self, id: &str) -> PathBuf {
        self.inner.config.exec_root.join("netns").join(id)
    }

    /// The file of a container's own network namespace while it runs (not for `host` or
    /// `container:` modes): what the CRI hands CNI plugins as `CNI_NETNS`.
    pub fn container_netns_path(&self, id: &str) -> PathBuf {
        self.netns_path(id)
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

    /// The first endpoint of a running container (its `eth0`).
    pub fn container_endpoint(&self, id: &str) -> Option<Endpoint> {
        self.container_endpoints(id).into_iter().next()
    }

    /// The endpoint of a running container that carries its published ports (the one with the
    /// default route), else its first.
    pub fn ports_endpoint(&self, id: &str) -> Option<Endpoint> {
        let eps = self.container_endpoints(id);
        eps.iter().find(|e| !e.ports.is_empty()).or(eps.first()).cloned()
    }

    /// Every endpoint of a running container, in interface order.
    pub fn container_endpoints(&self, id: &str) -> Vec<Endpoint> {
        let prefix = format!("{id}/");
        let mut eps: Vec<Endpoint> = lock(&self.net().state)
            .endpoints
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, e)| e.clone())
            .collect();
        eps.sort_by_key(|e| e.if_index());
        eps
    }

    /// The default bridge's gateway, creating the bridge on first use.
    fn ensure_default_bridge(&self) -> Result<BridgeConfig, EngineError> {
        let mut b = lock(&self.net().bridge);
        if let Some(b) = b.as_ref() {
            return Ok(b.clone());
        }
        let config = &self.net().config;
        config.check()?;
        let gateway6 = default_bridge_subnet6(config).map(|n| Ipv6Net { addr: n.first_host(), prefix: n.prefix });
        let gateway = choose_bip(config)?;
        config.check_in_bridge_subnet(gateway)?;
        let cfg = BridgeConfig { name: config.bridge.clone(), gateway, gateway6, mtu: config.default_bridge.mtu };
        sandbox::ensure_bridge(&cfg).map_err(EngineError::from)?;
        *b = Some(cfg.clone());
        Ok(cfg)
    }

    /// Before a container's shim starts: creates its namespace (loopback up and, on the
    /// bridge or user networks, a veth per network with its address), reserves its published
    /// ports and writes the rules. On failure nothing of it is left.
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
        let mut wanted = if mode == "none" { Vec::new() } else { self.container_networks(rec, true)? };
        wanted.sort_by_cached_key(|w| self.view_rank(w));
        if wanted.is_empty() {
            sandbox::create(&path, None).map_err(EngineError::from)?;
            // A container disconnected from every network is on none of them, not on `none`.
            let ep = Endpoint::loopback_only(&rec.id, if mode == "none" { "none" } else { "" }, path);
            return self.record_endpoint(ep, Some(Vec::new()));
        }
        // The ports go with the default route: to the first network with a gateway.
        let holder = wanted.iter().position(|w| !w.network.internal).unwrap_or(0);
        // Published on its `host_binding_ipv4` (dockerd's `ip` on the default bridge) when
        // given no address.
        let host_default = wanted.get(holder).and_then(|w| {
            if w.network.predefined {
                self.net().config.default_bridge.host_ip
            } else {
                crate::usernet::host_ip_option(&w.network.options)
            }
        });
        let (reservations, ports) = self.reserve_ports(rec, host_default)?;
        let mut reservations = Some(reservations);
        let mut ports = Some(ports);
        for (i, w) in wanted.into_iter().enumerate() {
            let these = if i == holder { ports.take().unwrap_or_default() } else { Vec::new() };
            let r = self.attach_one(rec, &w, i as u32, i == 0, these, reservations.take());
            if let Err(e) = r {
                if i > 0 {
                    if let Err(e) = self.network_release(&rec.id) {
                        log::warn!("{e}");
                    }
                }
                return Err(e);
            }
        }
        self.reroute(&rec.id);
        self.start_proxies(&rec.id);
        for ep in self.container_endpoints(&rec.id) {
            self.endpoint_event(&ep, "connect");
        }
        Ok(())
    }

    /// The MTU of a network's interfaces: dockerd's `mtu` on the default bridge, the
    /// `com.docker.network.driver.mtu` option on a user network; None is the kernel's.
    fn network_mtu(&self, n: &NetworkRecord) -> Result<Option<u32>, EngineError> {
        if n.predefined {
            return Ok(self.net().config.default_bridge.mtu);
        }
        crate::usernet::mtu_option(&n.options)
    }

    /// Whether containers on the network get IPv6 addresses.
    fn network_has_ipv6(&self, n: &NetworkRecord) -> bool {
        if n.predefined {
            return n.name == "bridge" && default_bridge_subnet6(&self.net().config).is_some();
        }
        n.gateway6_net().is_some()
    }

    /// Docker's `network connect`/`disconnect` event of an endpoint, naming its container.
    pub(crate) fn endpoint_event(&self, ep: &Endpoint, action: &str) {
        if ep.network.is_empty() {
            return;
        }
        let id = if ep.network_id.is_empty() {
            self.find_network(&ep.network).map(|n| n.id).unwrap_or_default()
        } else {
            ep.network_id.clone()
        };
        let kind = if ep.network == "none" { "null" } else { "bridge" };
        let attrs = BTreeMap::from([
            ("container".to_string(), ep.container.clone()),
            ("name".to_string(), ep.network.clone()),
            ("type".to_string(), kind.to_string()),
        ]);
        self.publish_event("network", action, &id, attrs);
    }

    /// The networks a container is on, in connect order: the one its mode names (unless it
    /// was disconnected from it), then those connected later. `strict` (a start): a network
    /// removed since is an error; otherwise it is left out.
    pub(crate) fn container_networks(
        &self,
        rec: &ContainerRecord,
        strict: bool,
    ) -> Result<Vec<NetworkView>, EngineError> {
        container_networks_in(&self.list_networks(), rec, strict)
    }

    /// The networks of a container for inspect, each with its endpoint while it runs.
    pub fn container_network_views(&self, rec: &ContainerRecord) -> Vec<NetworkView> {
        self.container_network_views_among(rec, &self.list_networks())
    }

    /// `container_network_views` against a list of the networks (`list_networks`), for a
    /// caller that looks at many containers (`ps`) and takes the list once.
    pub fn container_network_views_among(&self, rec: &ContainerRecord, networks: &[NetworkRecord]) -> Vec<NetworkView> {
        let eps = self.container_endpoints(&rec.id);
        let mut views = container_networks_in(networks, rec, false).unwrap_or_default();
        if rec.host_config.network_mode == "none" {
            if let Ok(n) = crate::usernet::find_network_in(networks, "none") {
                views.push(NetworkView {
                    network: n.clone(),
                    aliases: Vec::new(),
                    ipv4_address: None,
                    ipv6_address: None,
                    links: Vec::new(),
                    mac_address: None,
                    driver_opts: BTreeMap::new(),
                    link_local_ips: Vec::new(),
                    gw_priority: 0,
                    endpoint: None,
                });
            }
        }
        for v in &mut views {
            v.endpoint = eps
                .iter()
                .find(|e| e.network_id == v.network.id || (v.network.predefined && e.network == v.network.name))
                .cloned();
        }
        views
    }

    /// Puts the container on one more network: the first one creates its namespace, later ones
    /// add an interface to it (`eth<index>`). The address is held in the state from the moment
    /// it is chosen, so two starts cannot take the same one.
    fn attach_one(
        &self,
        rec: &ContainerRecord,
        want: &NetworkView,
        index: u32,
        fresh: bool,
        ports: Vec<PublishedPort>,
        reservations: Option<Vec<Reservation>>,
    ) -> Result<(), EngineError> {
        let path = self.netns_path(&rec.id);
        let n = &want.network;
        // The bridge, its gateway, where addresses come from, and whether it has a route out.
        let (net_name, net_id, bridge, gateway, pool, internal) = if n.predefined {
            if n.name != "bridge" {
                return Err(EngineError::Invalid(format!("container cannot be connected to the {} network", n.name)));
            }
            let b = self.ensure_default_bridge()?;
            let pool = self.net().config.default_bridge.fixed_cidr.unwrap_or(b.gateway.network());
            ("bridge".to_string(), String::new(), b.name.clone(), b.gateway, pool, false)
        } else {
            let gw = n.gateway_net().ok_or_else(|| EngineError::Internal(format!("network {}: bad subnet", n.name)))?;
            if !std::path::Path::new(&format!("/sys/class/net/{}", n.bridge)).exists() {
                // The bridge went away under the daemon (removed by hand): bring it back.
                self.bring_up_network(n)?;
            }
            let pool = n.pool().unwrap_or(gw.network());
            (n.name.clone(), n.id.clone(), n.bridge.clone(), gw, pool, n.internal)
        };
        // IPv6: the gateway and the range addresses come from, and on the default bridge
        // whether they are the subnet plus the MAC address (dockerd's, for a prefix of /80 or
        // shorter).
        let v6: Option<(Ipv6Net, Ipv6Net, bool)> = if n.predefined {
            default_bridge_subnet6(&self.net().config)
                .map(|s| (Ipv6Net { addr: s.first_host(), prefix: s.prefix }, s, s.prefix <= 80))
        } else {
            n.gateway6_net().map(|gw| (gw, n.pool6().unwrap_or(gw.network()), false))
        };
        let want6 = match want.ipv6_address.as_deref().filter(|a| !a.is_empty()) {
            Some(a) => {
                let ip = parse_ipv6(a)?;
                if !n.predefined {
                    check_ipv6_configured(n)?;
                }
                // An IPv6 subnet without `--ipv6`: dockerd takes the address and gives none.
                v6.map(|_| ip)
            }
            None => None,
        };
        let link_local = parse_link_local(&want.link_local_ips)?;
        let ifname = format!("eth{index}");
        // Seven hex digits of the id leave room for `_<index>` in the kernel's 15 bytes.
        let short = rec.id.get(..7).unwrap_or(&rec.id);
        let veth = if index == 0 { format!("veth{short}") } else { format!("veth{short}_{index}") };
        let mtu = self.network_mtu(n)?;
        if let Some(m) = mtu.filter(|m| !MTU_RANGE.contains(m)) {
            return Err(EngineError::Invalid(format!(
                "failed to create endpoint {} on network {net_name}: failed to set MTU {m} on host interface {veth}: \
                 invalid argument",
                rec.name
            )));
        }
        // The route out: the bridge's address, or dockerd's `default-gateway` on the default bridge.
        let route_via = match self.net().config.default_bridge.default_gateway {
            Some(g) if n.predefined => g,
            _ => gateway.addr,
        };
        let key = endpoint_key(&rec.id, if net_id.is_empty() { &net_name } else { &net_id });
        let opts = &rec.host_config.net;
        let (ip, routed, mac, ip6, routed6) = {
            let mut st = lock(&self.net().state);
            let mut taken: BTreeSet<Ipv4Addr> = st
                .endpoints
                .values()
                .filter(|e| e.network_id == net_id && e.network == net_name)
                .filter_map(|e| e.ip)
                .collect();
            taken.insert(gateway.addr);
            // `--aux-address`es are reserved: neither handed out nor taken by `--ip`.
            taken.extend(n.aux_addresses.values().filter_map(|a| a.parse::<Ipv4Addr>().ok()));
            let ip = match want.ipv4_address.as_deref().filter(|a| !a.is_empty()) {
                Some(a) => {
                    let ip: Ipv4Addr =
                        a.parse().map_err(|_| EngineError::Invalid(format!("invalid IPv4 address: {a}")))?;
                    if !gateway.contains(ip) || ip == gateway.network().addr || ip == gateway.broadcast() {
                        // dockerd's words (its status is 500; a mistake of the caller's is a
                        // 400 here).
                        return Err(EngineError::Invalid(format!(
                            "Invalid address {ip}: It does not belong to any of this network's subnets (network \
                             {net_name} is {})",
                            gateway.network()
                        )));
                    }
                    // 403, as dockerd answers it.
                    if taken.contains(&ip) {
                        return Err(EngineError::Forbidden(format!(
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
            // A MAC address given for this network (`--mac-address` is the first one's,
            // `network connect --mac-address` another's); otherwise one derived from the address.
            let mac = match want.mac_address.as_deref().filter(|m| !m.is_empty()) {
                Some(m) => parse_mac(m).ok_or_else(|| EngineError::Invalid(format!("invalid MAC address: {m}")))?,
                None => sandbox::mac_for(ip),
            };
            let ip6 = match v6 {
                None => None,
                Some((gw6, pool6, by_mac)) => {
                    let subnet6 = gw6.network();
                    let mut taken6: BTreeSet<Ipv6Addr> = st
                        .endpoints
                        .values()
                        .filter(|e| e.network_id == net_id && e.network == net_name)
                        .filter_map(|e| e.ip6)
                        .collect();
                    taken6.insert(gw6.addr);
                    taken6.extend(n.aux_addresses.values().filter_map(|a| a.parse::<Ipv6Addr>().ok()));
                    Some(match want6 {
                        Some(a) => {
                            if !subnet6.contains(a) {
                                return Err(EngineError::Invalid(format!(
                                    "Invalid address {a}: It does not belong to any of this network's subnets"
                                )));
                            }
                            if a == subnet6.addr || taken6.contains(&a) {
                                return Err(EngineError::Forbidden(format!(
                                    "Address already in use: {a} on network {net_name}"
                                )));
                            }
                            a
                        }
                        None => {
                            let from_mac = by_mac.then(|| mac_ipv6(subnet6, &mac)).filter(|a| !taken6.contains(a));
                            match from_mac {
                                Some(a) => a,
                                None => subnet6.allocate(&pool6, &taken6).map_err(|_| {
                                    EngineError::Conflict(format!(
                                        "no available IPv6 addresses on this network's address pools: {net_name} ({})",
                                        n.id
                                    ))
                                })?,
                            }
                        }
                    })
                }
            };
            let prefix = format!("{}/", rec.id);
            let mine = || st.endpoints.iter().filter(|(k, _)| k.starts_with(&prefix)).map(|(_, e)| e);
            let routed = !internal && !mine().any(|e| e.routed);
            let routed6 = ip6.is_some() && !internal && !mine().any(|e| e.routed6);
            // Hold the addresses while the interface is made.
            st.endpoints.insert(
                key.clone(),
                Endpoint {
                    container: rec.id.clone(),
                    ifname: ifname.clone(),
                    routed,
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
                    links: Vec::new(),
                    ip6,
                    prefix6: v6.map(|(g, _, _)| g.prefix).unwrap_or(0),
                    gateway6: v6.filter(|_| ip6.is_some()).map(|(g, _, _)| g.addr),
                    routed6,
                    gw_priority: want.gw_priority,
                },
            );
            (ip, routed, mac, ip6, routed6)
        };
        let unhold = || {
            lock(&self.net().state).endpoints.remove(&key);
        };
        let gw6 = v6.map(|(g, _, _)| g);
        let attach = Attachment {
            bridge: bridge.clone(),
            veth: veth.clone(),
            ip,
            prefix: gateway.prefix,
            gateway: if routed { Some(route_via) } else { None },
            mac,
            ip6: ip6.zip(gw6).map(|(a, g)| Ipv6Net { addr: a, prefix: g.prefix }),
            gateway6: gw6.filter(|_| routed6).map(|g| g.addr),
            mtu,
        };
        let made = if fresh { sandbox::create(&path, Some(attach)) } else { sandbox::attach(&path, attach, &ifname) };
        if let Err(e) = made {
            unhold();
            return Err(EngineError::from(e));
        }
        // `--link-local-ip`: further addresses on the interface.
        if let Err(e) = sandbox::add_addresses(&path, &ifname, &link_local) {
            unhold();
            let _ = if fresh { sandbox::remove(&path, Some(&veth)) } else { sandbox::detach(&veth) };
            return Err(EngineError::from(e));
        }
        let mut dns_names = Vec::new();
        if !net_id.is_empty() {
            dns_names.push(rec.name.to_ascii_lowercase());
            dns_names.push(short_id(&rec.id).to_string());
            dns_names.extend(want.aliases.iter().map(|a| a.to_ascii_lowercase()));
        }
        // Links are names on user-defined networks only (on the default bridge they were
        // /etc/hosts entries, which wharf does not write).
        let links =
            if net_id.is_empty() { Vec::new() } else { want.links.iter().filter_map(|l| parse_link(l)).collect() };
        let ep = Endpoint {
            container: rec.id.clone(),
            ifname,
            routed,
            network: net_name,
            network_id: net_id,
            dns_names,
            aliases: want.aliases.clone(),
            dns_servers: opts.dns.iter().filter_map(|d| d.parse().ok()).collect(),
            netns: path.clone(),
            ip: Some(ip),
            prefix: gateway.prefix,
            gateway: Some(route_via),
            mac: sandbox::format_mac(&mac),
            veth: Some(veth.clone()),
            ports,
            links,
            ip6,
            prefix6: gw6.map(|g| g.prefix).unwrap_or(0),
            gateway6: gw6.filter(|_| ip6.is_some()).map(|g| g.addr),
            routed6,
            gw_priority: want.gw_priority,
        };
        if let Err(e) = self.record_endpoint(ep, reservations) {
            if fresh {
                let _ = sandbox::remove(&path, Some(&veth));
            } else {
                let _ = sandbox::detach(&veth);
            }
            return Err(e);
        }
        Ok(())
    }

    fn record_endpoint(&self, ep: Endpoint, res: Option<Vec<Reservation>>) -> Result<(), EngineError> {
        let has_ports = self.in_rules(&ep);
        let key = ep.key();
        let id = ep.container.clone();
        if let Err(e) = self.write_db(|tx| tx.put(Table::Endpoints, &key, &ep)) {
            lock(&self.net().state).endpoints.remove(&key);
            return Err(e.into());
        }
        {
            let mut st = lock(&self.net().state);
            st.endpoints.insert(key, ep);
            if let Some(res) = res {
                st.reservations.insert(id.clone(), res);
            }
        }
        if has_ports {
            if let Err(e) = self.apply_rules() {
                let _ = self.network_release(&id);
                return Err(e);
            }
        }
        Ok(())
    }
    /// When a container stops: removes its namespace, veths, addresses, ports and rules on
    /// every network. Idempotent; goes on after a failure and reports the first.
    pub(crate) fn network_release(&self, id: &str) -> Result<(), EngineError> {
        let prefix = format!("{id}/");
        let mine = |k: &str| k == id || k.starts_with(&prefix);
        let mut eps: Vec<Endpoint> = {
            let mut st = lock(&self.net().state);
            st.reservations.remove(id);
            st.next_ifindex.remove(id);
            let keys: Vec<String> = st.endpoints.keys().filter(|k| mine(k)).cloned().collect();
            keys.iter().filter_map(|k| st.endpoints.remove(k)).collect()
        };
        let mut first = None;
        let stored: Vec<(String, Endpoint)> = match self.inner.db.list(Table::Endpoints) {
            Ok(all) => all.into_iter().filter(|(k, _)| mine(k)).collect(),
            Err(e) => {
                first = Some(EngineError::from(e));
                Vec::new()
            }
        };
        for (_, e) in &stored {
            if !eps.iter().any(|x| x.veth == e.veth) {
                eps.push(e.clone());
            }
        }
        let veths: Vec<String> = eps.iter().filter_map(|e| e.veth.clone()).collect();
        if let Err(e) = sandbox::remove(&self.netns_path(id), veths.first().map(String::as_str)) {
            first.get_or_insert(EngineError::from(e));
        }
        // The namespace is gone: the kernel takes the other pairs with it; `remove` checks.
        for v in veths.iter().skip(1) {
            let _ = sandbox::remove(&self.netns_path(id), Some(v));
        }
        if !stored.is_empty() {
            let r = self.write_db(|tx| -> Result<(), wharf_metadata::MetadataError> {
                for (k, _) in &stored {
                    tx.delete(Table::Endpoints, k)?;
                }
                Ok(())
            });
            if let Err(e) = r {
                first.get_or_insert(e.into());
            }
        }
        if eps.iter().any(|e| self.in_rules(e)) {
            if let Err(e) = self.apply_rules() {
                first.get_or_insert(e);
            }
        }
        for ep in &mut eps {
            if ep.container.is_empty() {
                ep.container = id.to_string();
            }
            self.endpoint_event(ep, "disconnect");
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Connects a running container to one more network: a new interface in its namespace
    /// (the lowest free `eth<n>`), its address in DNS, a line in its /etc/hosts.
    pub(crate) fn connect_running(&self, rec: &ContainerRecord, want: &NetworkView) -> Result<(), EngineError> {
        let path = self.netns_path(&rec.id);
        if !wharf_network::netns::is_mounted(&path) {
            return Err(EngineError::Conflict(format!("container {} has no network namespace of its own", rec.name)));
        }
        let after_highest = self
            .container_endpoints(&rec.id)
            .iter()
            .filter(|e| e.veth.is_some())
            .map(|e| e.if_index() + 1)
            .max()
            .unwrap_or(0);
        let index = lock(&self.net().state).next_ifindex.get(&rec.id).copied().unwrap_or(0).max(after_highest);
        self.attach_one(rec, want, index, false, Vec::new(), None)?;
        lock(&self.net().state).next_ifindex.insert(rec.id.clone(), index + 1);
        self.reroute(&rec.id);
        // A namespace that had no network has one now.
        let placeholder = endpoint_key(&rec.id, "");
        if lock(&self.net().state).endpoints.remove(&placeholder).is_some() {
            if let Err(e) = self.write_db(|tx| tx.delete(Table::Endpoints, &placeholder)) {
                log::warn!("container {}: {e}", rec.id);
            }
        }
        let added = self
            .container_endpoints(&rec.id)
            .into_iter()
            .find(|e| e.ifname == format!("eth{index}"))
            .map(|e| e.addrs())
            .unwrap_or_default();
        self.update_etc_files(rec, &added, &[]);
        Ok(())
    }

    /// Disconnects a running container from a network: its interface is deleted, its address
    /// and DNS names released; published ports and the default route move to the next
    /// interface when they were on this one. Returns whether it was on the network.
    pub(crate) fn disconnect_running(&self, rec: &ContainerRecord, net: &NetworkRecord) -> Result<bool, EngineError> {
        let key = endpoint_key(&rec.id, if net.predefined { &net.name } else { &net.id });
        let Some(ep) = lock(&self.net().state).endpoints.remove(&key) else { return Ok(false) };
        let mut first = None;
        if let Some(v) = &ep.veth {
            if let Err(e) = sandbox::detach(v) {
                first = Some(EngineError::from(e));
            }
        }
        let rest: Vec<Endpoint> = self.container_endpoints(&rec.id).into_iter().filter(|e| e.ip.is_some()).collect();
        let internal = |e: &Endpoint| lock(&self.net().networks).get(&e.network_id).is_some_and(|n| n.internal);
        let mut changed: Vec<Endpoint> = Vec::new();
        if !ep.ports.is_empty() {
            // To the next gateway endpoint, else the first left in dockerd's order.
            let next = gateway_choice(rest.iter().filter(|e| !internal(e)))
                .or_else(|| rest.iter().min_by_key(|e| self.endpoint_rank(e)));
            if let Some(next) = next {
                let mut next = next.clone();
                next.ports = ep.ports.clone();
                changed.push(next);
            }
        }
        if ep.routed {
            if let Some(next) = gateway_choice(rest.iter().filter(|e| !internal(e))) {
                let mut next = changed.iter().find(|c| c.key() == next.key()).cloned().unwrap_or_else(|| next.clone());
                if let Some(gw) = next.gateway {
                    match sandbox::set_default_route(&ep.netns, &next.ifname, gw) {
                        Ok(()) => next.routed = true,
                        Err(e) => log::warn!("container {}: default route through {}: {e}", rec.id, next.ifname),
                    }
                }
                changed.retain(|c| c.key() != next.key());
                changed.push(next);
            }
        }
        if ep.routed6 {
            if let Some(next) = gateway_choice(rest.iter().filter(|e| e.ip6.is_some() && !internal(e))) {
                let mut next = changed.iter().find(|c| c.key() == next.key()).cloned().unwrap_or_else(|| next.clone());
                if let Some(gw) = next.gateway6 {
                    match sandbox::set_default_route6(&ep.netns, &next.ifname, gw) {
                        Ok(()) => next.routed6 = true,
                        Err(e) => log::warn!("container {}: IPv6 default route through {}: {e}", rec.id, next.ifname),
                    }
                }
                changed.retain(|c| c.key() != next.key());
                changed.push(next);
            }
        }
        let placeholder = rest.is_empty().then(|| Endpoint::loopback_only(&rec.id, "", ep.netns.clone()));
        {
            let mut st = lock(&self.net().state);
            for c in changed.iter().chain(placeholder.iter()) {
                st.endpoints.insert(c.key(), c.clone());
            }
        }
        let r = self.write_db(|tx| -> Result<(), wharf_metadata::MetadataError> {
            tx.delete(Table::Endpoints, &key)?;
            for c in changed.iter().chain(placeholder.iter()) {
                tx.put(Table::Endpoints, &c.key(), c)?;
            }
            Ok(())
        });
        if let Err(e) = r {
            first.get_or_insert(e.into());
        }
        if !ep.ports.is_empty() && rest.is_empty() {
            // No interface left to carry them: the ports are free again.
            lock(&self.net().state).reservations.remove(&rec.id);
        }
        if self.in_rules(&ep) {
            if let Err(e) = self.apply_rules() {
                first.get_or_insert(e);
            }
        }
        self.update_etc_files(rec, &[], &ep.addrs());
        match first {
            Some(e) => Err(e),
            None => Ok(true),
        }
    }

    /// Moves each default route of a running container (IPv4, IPv6) to the endpoint with the
    /// highest `GwPriority` when the one holding it has a lower one (see [`gateway_choice`]);
    /// run after a network is attached. A route that cannot move stays where it is.
    fn reroute(&self, id: &str) {
        let internal = |e: &Endpoint| lock(&self.net().networks).get(&e.network_id).is_some_and(|n| n.internal);
        let mut eps: Vec<Endpoint> = self.container_endpoints(id).into_iter().filter(|e| e.ip.is_some()).collect();
        let mut dirty: BTreeSet<String> = BTreeSet::new();
        let mut ports_moved = false;
        for v6 in [false, true] {
            let candidates = eps.iter().filter(|e| !internal(e) && (!v6 || e.ip6.is_some()));
            let Some(best) = gateway_choice(candidates).cloned() else { continue };
            if if v6 { best.routed6 } else { best.routed } {
                continue;
            }
            let moved = match (v6, best.gateway, best.gateway6) {
                (false, Some(gw), _) => sandbox::set_default_route(&best.netns, &best.ifname, gw),
                (true, _, Some(gw)) => sandbox::set_default_route6(&best.netns, &best.ifname, gw),
                _ => continue,
            };
            if let Err(e) = moved {
                log::warn!("container {id}: default route through {}: {e}", best.ifname);
                continue;
            }
            let mut ports = Vec::new();
            for e in &mut eps {
                let mine = e.key() == best.key();
                if v6 {
                    e.routed6 = mine;
                } else {
                    e.routed = mine;
                    // The published ports go with the IPv4 route, as dockerd moves a
                    // container's external connectivity to its new gateway endpoint.
                    if !mine && !e.ports.is_empty() {
                        ports.append(&mut e.ports);
                    }
                }
                dirty.insert(e.key());
            }
            if !ports.is_empty() {
                if let Some(e) = eps.iter_mut().find(|e| e.key() == best.key()) {
                    e.ports.append(&mut ports);
                    ports_moved = true;
                }
            }
        }
        let changed: Vec<Endpoint> = eps.into_iter().filter(|e| dirty.contains(&e.key())).collect();
        if changed.is_empty() {
            return;
        }
        {
            let mut st = lock(&self.net().state);
            for c in &changed {
                st.endpoints.insert(c.key(), c.clone());
            }
        }
        let r = self.write_db(|tx| -> Result<(), wharf_metadata::MetadataError> {
            for c in &changed {
                tx.put(Table::Endpoints, &c.key(), c)?;
            }
            Ok(())
        });
        if let Err(e) = r {
            log::warn!("container {id}: {e}");
        }
        if ports_moved {
            if let Err(e) = self.apply_rules() {
                log::warn!("container {id}: rules for its published ports: {e}");
            }
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
    /// Records of the previous version (one per container, keyed by its id) are rewritten
    /// under their per-network key.
    pub(crate) fn network_reconcile(&self, running: &BTreeSet<String>) -> Result<(), EngineError> {
        self.restore_networks()?;
        let stored: Vec<(String, Endpoint)> = self.inner.db.list(Table::Endpoints)?;
        let mut keep: Vec<Endpoint> = Vec::new();
        let mut migrate: Vec<(String, Endpoint)> = Vec::new();
        let mut gone: BTreeSet<String> = BTreeSet::new();
        for (key, ep) in stored {
            let internal = lock(&self.net().networks).get(&ep.network_id).is_some_and(|n| n.internal);
            let (ep, legacy) = migrate_endpoint(&key, ep, internal);
            if !running.contains(&ep.container) {
                gone.insert(ep.container);
                continue;
            }
            if legacy {
                migrate.push((key, ep.clone()));
            }
            keep.push(ep);
        }
        for id in gone {
            log::info!("container {id}: removing network left from before");
            if let Err(e) = self.network_release(&id) {
                log::warn!("{e}");
            }
        }
        if !migrate.is_empty() {
            self.write_db(|tx| -> Result<(), wharf_metadata::MetadataError> {
                for (old, ep) in &migrate {
                    tx.delete(Table::Endpoints, old)?;
                    tx.put(Table::Endpoints, &ep.key(), ep)?;
                }
                Ok(())
            })?;
            log::info!("migrated {} network endpoint records to one per network", migrate.len());
        }
        if let Ok(entries) = std::fs::read_dir(self.inner.config.exec_root.join("netns")) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().to_string();
                if !keep.iter().any(|k| k.container == id) {
                    let _ = sandbox::remove(&e.path(), None);
                }
            }
        }
        let any_bridge = keep.iter().any(|e| e.network == "bridge");
        if any_bridge {
            self.ensure_default_bridge()?;
        }
        {
            let mut st = lock(&self.net().state);
            for ep in keep {
                let id = ep.container.clone();
                let mut res = Vec::new();
                for p in &ep.ports {
                    let ip: IpAddr = p.host_ip.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                    let Ok((cport, proto)) = parse_port_proto(&p.container_port) else { continue };
                    match bind_port(ip, p.host_port, &proto, cport) {
                        Ok((r, _)) => res.push(r),
                        Err(e) => log::warn!("container {id}: reserve port {ip}:{} again: {e}", p.host_port),
                    }
                }
                st.reservations.entry(id).or_default().extend(res);
                st.endpoints.insert(ep.key(), ep);
            }
        }
        let ids: BTreeSet<String> = lock(&self.net().state).reservations.keys().cloned().collect();
        for id in ids {
            self.start_proxies(&id);
        }
        if any_bridge || !lock(&self.net().networks).is_empty() {
            self.apply_rules()?;
        } else {
            // A table left by a daemon before this one, whose networks are all gone.
            self.remove_ip6_table();
            self.remove_bridge_table();
        }
        Ok(())
    }

    pub(crate) async fn reconcile_network(&self) -> Result<(), EngineError> {
        let running: BTreeSet<String> =
            self.all_containers().iter().filter(|r| r.state.running).map(|r| r.id.clone()).collect();
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
            self.remove_ip6_table();
            self.remove_bridge_table();
        }
        if let Err(e) = sandbox::remove_bridge(&self.net().config.bridge) {
            log::warn!("{e}");
        }
        let _ = std::fs::remove_dir(self.inner.config.exec_root.join("netns"));
    }
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
            other => match other.strip_prefix("container:") {
                Some(container) => {
                    self.find_container(container)?;
                    false
                }
                None => !self.find_network(other)?.predefined,
            },
        };
        let o = &hc.net;
        let given = |a: &Option<String>| a.as_deref().is_some_and(|a| !a.is_empty());
        if !user && (given(&o.ipv4_address) || given(&o.ipv6_address)) {
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
        if let Some(a) = o.ipv6_address.as_deref().filter(|a| !a.is_empty()) {
            parse_ipv6(a)?;
        }
        if let Some(m) = o.mac_address.as_deref().filter(|m| !m.is_empty()) {
            parse_mac(m).ok_or_else(|| EngineError::Invalid(format!("invalid MAC address: {m}")))?;
        }
        for d in &o.dns {
            d.parse::<IpAddr>().map_err(|_| EngineError::Invalid(format!("{d} is not an ip address")))?;
        }
        for a in &o.networks {
            let n = self.find_network(&a.network)?;
            if n.predefined && n.name != "bridge" {
                return Err(EngineError::Invalid(format!(
                    "container cannot be connected to multiple networks with one of the networks in {} mode",
                    n.name
                )));
            }
            if let Some(a) = a.ipv6_address.as_deref().filter(|a| !a.is_empty()) {
                parse_ipv6(a)?;
            }
        }
        for h in &o.extra_hosts {
            extra_host_line(h, None)
                .or_else(|e| if h.ends_with("host-gateway") { Ok(String::new()) } else { Err(e) })?;
        }
        Ok(())
    }
}
