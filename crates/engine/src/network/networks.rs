//! User-defined networks (`docker network create`): a bridge of its own per network, an IPAM
//! subnet (and with `--ipv6` an IPv6 one beside it), an embedded DNS server on its gateway,
//! and its record in the `networks` table so it comes back at the next daemon start. The predefined `bridge`, `host` and `none` networks are
//! not stored: they are derived from the daemon's configuration.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use wharf_metadata::Table;
use wharf_network::sandbox::{self, BridgeConfig};
use wharf_network::{Ipv4Net, Ipv6Net};
use wharf_types::digest::short_id;

use super::bridge_options::{check_options, default_bridge_options, OPT_BRIDGE_NAME};
use super::{lock, Endpoint};
use crate::formats::StoredForm;
use crate::{blocking, ids, Engine, EngineError};

const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];

/// A network: what the `networks` table stores for a user-defined one, and what `network
/// inspect` is made from (the API builds its own JSON from the fields, so the serde form is the
/// stored one alone; see `NETWORKS`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub created: String,
    /// `local`
    pub scope: String,
    /// Empty for `host` and `none`.
    pub subnet: String,
    pub gateway: String,
    /// Whether inspect shows the IPv4 gateway: dockerd shows it for a subnet it chose, and for
    /// a subnet of the user's only when the user gave the gateway too. (Records from before
    /// this field show it, as they did.)
    #[serde(default = "shown")]
    pub show_gateway: bool,
    #[serde(default)]
    pub ip_range: Option<String>,
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    /// The bridge device (empty for `host` and `none`).
    pub bridge: String,
    /// The predefined networks are not stored and cannot be removed.
    #[serde(default)]
    pub predefined: bool,
    /// `--ipv6`: containers get an IPv6 address from `subnet6` too. (A network may have an
    /// IPv6 subnet without it, as in dockerd: kept and shown, not used.)
    #[serde(default)]
    pub enable_ipv6: bool,
    /// The IPv6 subnet as given (`fd00:1::/64`; dockerd shows it so, host bits and all).
    #[serde(default)]
    pub subnet6: Option<String>,
    /// The IPv6 gateway as given; none given: the subnet's first address (`::1`).
    #[serde(default)]
    pub gateway6: Option<String>,
    #[serde(default)]
    pub ip_range6: Option<String>,
    /// `--aux-address NAME=IP` (IPv4 and IPv6 together): addresses dockerd's IPAM reserves at
    /// create, so that no endpoint is given one.
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, String>,
    /// `--ipam-opt`: kept and shown as dockerd does; the default IPAM driver acts on none.
    #[serde(default)]
    pub ipam_options: BTreeMap<String, String>,
}

/// The stored network record: `NetworkRecord` as serde writes it, pinned by
/// `network-record-1.json`; see `formats` for what a change of it takes. (The predefined
/// networks are made at start, never stored.)
pub(crate) const NETWORKS: StoredForm = StoredForm { table: Table::Networks, name: "networks", current: 1, steps: &[] };

fn shown() -> bool {
    true
}

impl NetworkRecord {
    pub(crate) fn gateway_net(&self) -> Option<Ipv4Net> {
        let subnet: Ipv4Net = self.subnet.parse().ok()?;
        let gw: Ipv4Addr = self.gateway.parse().ok()?;
        Some(Ipv4Net { addr: gw, prefix: subnet.prefix })
    }

    /// The range addresses are handed out from: `--ip-range`, else the subnet.
    pub(crate) fn pool(&self) -> Option<Ipv4Net> {
        match &self.ip_range {
            Some(r) => r.parse().ok(),
            None => self.subnet.parse().ok(),
        }
    }

    /// The IPv6 subnet (host bits cleared), whether or not IPv6 is enabled.
    pub(crate) fn subnet6_net(&self) -> Option<Ipv6Net> {
        self.subnet6.as_deref()?.parse::<Ipv6Net>().ok().map(|n| n.network())
    }

    /// The IPv6 gateway with the subnet's prefix (`fd00:1::1/64`) on a network with IPv6
    /// enabled; `None` on one without.
    pub fn gateway6_net(&self) -> Option<Ipv6Net> {
        if !self.enable_ipv6 {
            return None;
        }
        let subnet = self.subnet6_net()?;
        let gw = match &self.gateway6 {
            Some(g) => g.parse::<Ipv6Addr>().ok()?,
            None => subnet.first_host(),
        };
        Some(Ipv6Net { addr: gw, prefix: subnet.prefix })
    }

    /// The range IPv6 addresses are handed out from: the IPv6 `--ip-range`, else the subnet.
    pub(crate) fn pool6(&self) -> Option<Ipv6Net> {
        match &self.ip_range6 {
            Some(r) => r.parse::<Ipv6Net>().ok().map(|n| n.network()),
            None => self.subnet6_net(),
        }
    }
}

/// `POST /networks/create`, parsed.
#[derive(Debug, Clone, Default)]
pub struct NetworkCreate {
    pub name: String,
    pub driver: Option<String>,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    pub internal: bool,
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    /// `EnableIPv6`.
    pub enable_ipv6: bool,
    /// The IPv6 pool of the IPAM config: subnet, gateway, range.
    pub subnet6: Option<String>,
    pub gateway6: Option<String>,
    pub ip_range6: Option<String>,
    /// The IPAM config's `AuxiliaryAddresses`, of both pools.
    pub aux_addresses: BTreeMap<String, String>,
    /// `IPAM.Options`.
    pub ipam_options: BTreeMap<String, String>,
}

/// A network's IPv6 subnet, gateway and range, as given.
type Ipv6Pool = (Option<String>, Option<String>, Option<String>);

/// Checks `--aux-address`es as dockerd's IPAM does when it reserves them: each an address of
/// the subnet of its family (dockerd's message), and not its network address.
fn check_aux_addresses(
    aux: &BTreeMap<String, String>,
    subnet: Ipv4Net,
    subnet6: Option<&str>,
) -> Result<(), EngineError> {
    let subnet6 = subnet6.and_then(|s| s.parse::<Ipv6Net>().ok()).map(|n| n.network());
    for (name, a) in aux {
        let ip: IpAddr =
            a.parse().map_err(|_| EngineError::Invalid(format!("invalid auxiliary address {name}={a}")))?;
        let (inside, pool) = match ip {
            IpAddr::V4(v4) => (subnet.contains(v4) && v4 != subnet.addr, subnet.to_string()),
            IpAddr::V6(v6) => match subnet6 {
                Some(s6) => (s6.contains(v6) && v6 != s6.addr, s6.to_string()),
                None => (false, String::new()),
            },
        };
        if !inside {
            return Err(EngineError::Forbidden(format!(
                "auxiliary address: ({name}:{a}) must belong to the master pool: {pool}"
            )));
        }
    }
    Ok(())
}

/// A network name: dockerd takes any non-empty one (spaces included). wharf also refuses
/// control characters (they would corrupt logs and tables) and `/` (the API names a network in
/// the request path, where a `/` makes it a different path).
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_control() || c == '/')
}

fn parse_net(what: &str, s: &str) -> Result<Ipv4Net, EngineError> {
    s.parse::<Ipv4Net>().map_err(|_| EngineError::Invalid(format!("invalid {what}: {s}")))
}

/// A network of `all` by name, full id or unique id prefix (Docker's lookup order); `default`
/// is the default bridge.
pub fn find_network_in<'a>(all: &'a [NetworkRecord], name: &str) -> Result<&'a NetworkRecord, EngineError> {
    if let Some(n) = all.iter().find(|n| n.name == name || n.id == name) {
        return Ok(n);
    }
    if name == "default" {
        return find_network_in(all, "bridge");
    }
    let by_prefix: Vec<&NetworkRecord> = all.iter().filter(|n| !name.is_empty() && n.id.starts_with(name)).collect();
    match by_prefix.as_slice() {
        [one] => Ok(one),
        [] => Err(EngineError::NotFound(format!("network {name} not found"))),
        _ => Err(EngineError::Invalid(format!(
            "network {name} is ambiguous ({} matches found based on ID prefix)",
            by_prefix.len()
        ))),
    }
}

/// A stable id for a predefined network, derived from its name and the daemon's bridge.
fn predefined_id(name: &str, bridge: &str) -> String {
    wharf_types::Digest::of(format!("wharf predefined network {name} {bridge}").as_bytes()).hex().to_string()
}

impl Engine {
    /// The predefined networks as records.
    fn predefined_networks(&self) -> Vec<NetworkRecord> {
        let bridge = self.inner.config.network.bridge.clone();
        let opts = &self.inner.config.network.default_bridge;
        let default_gw = self.inner.network.default_bridge_gateway();
        let default_v6 = crate::network::default_bridge_subnet6(&self.inner.config.network);
        PREDEFINED
            .iter()
            .map(|name| {
                let is_bridge = *name == "bridge";
                NetworkRecord {
                    id: predefined_id(name, &bridge),
                    name: name.to_string(),
                    driver: if is_bridge { "bridge" } else { name }.to_string(),
                    created: String::new(),
                    scope: "local".to_string(),
                    subnet: default_gw.filter(|_| is_bridge).map(|g| g.network().to_string()).unwrap_or_default(),
                    gateway: default_gw.filter(|_| is_bridge).map(|g| g.addr.to_string()).unwrap_or_default(),
                    show_gateway: true,
                    ip_range: opts.fixed_cidr.filter(|_| is_bridge).map(|c| c.network().to_string()),
                    internal: false,
                    attachable: false,
                    labels: BTreeMap::new(),
                    options: if is_bridge { default_bridge_options(&bridge, opts) } else { BTreeMap::new() },
                    bridge: if is_bridge { bridge.clone() } else { String::new() },
                    predefined: true,
                    enable_ipv6: is_bridge && default_v6.is_some(),
                    subnet6: default_v6.filter(|_| is_bridge).map(|n| n.to_string()),
                    gateway6: None,
                    ip_range6: None,
                    aux_addresses: match opts.default_gateway {
                        Some(g) if is_bridge => BTreeMap::from([("DefaultGatewayIPv4".to_string(), g.to_string())]),
                        _ => BTreeMap::new(),
                    },
                    ipam_options: BTreeMap::new(),
                }
            })
            .collect()
    }

    /// Every network, predefined first, then user networks by name.
    pub fn list_networks(&self) -> Vec<NetworkRecord> {
        let mut out = self.predefined_networks();
        let mut user: Vec<NetworkRecord> = lock(&self.inner.network.networks).values().cloned().collect();
        user.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend(user);
        out
    }

    /// A network by name, full id or unique id prefix (Docker's lookup order).
    pub fn find_network(&self, name: &str) -> Result<NetworkRecord, EngineError> {
        find_network_in(&self.list_networks(), name).cloned()
    }

    /// The running containers on a network (by container id) and their endpoints on it.
    pub fn network_endpoints(&self, net: &NetworkRecord) -> Vec<(String, Endpoint)> {
        lock(&self.inner.network.state)
            .endpoints
            .values()
            .filter(|e| !e.network.is_empty())
            .filter(|e| e.network_id == net.id || (net.predefined && e.network_id.is_empty() && e.network == net.name))
            .map(|e| (e.container.clone(), e.clone()))
            .collect()
    }

    pub async fn create_network(&self, req: NetworkCreate) -> Result<NetworkRecord, EngineError> {
        let engine = self.clone();
        blocking(move || engine.create_network_blocking(req)).await
    }

    fn create_network_blocking(&self, req: NetworkCreate) -> Result<NetworkRecord, EngineError> {
        if req.name.is_empty() {
            return Err(EngineError::Invalid("network name is required".to_string()));
        }
        if !valid_name(&req.name) {
            return Err(EngineError::Invalid(format!(
                "invalid network name {:?}: a name may not contain '/' or control characters",
                req.name
            )));
        }
        let driver = req.driver.clone().filter(|d| !d.is_empty()).unwrap_or_else(|| "bridge".to_string());
        if driver != "bridge" {
            return Err(EngineError::NotFound(format!(
                "plugin \"{driver}\" not found: only the bridge driver is supported"
            )));
        }
        check_options(&req.options)?;
        let _guard = lock(&self.inner.network.create_lock);
        if PREDEFINED.contains(&req.name.as_str()) || req.name == "default" {
            return Err(EngineError::Forbidden(format!("{} is a pre-defined network and cannot be created", req.name)));
        }
        if self.list_networks().iter().any(|n| n.name == req.name) {
            return Err(EngineError::Conflict(format!("network with name {} already exists", req.name)));
        }
        let used: Vec<Ipv4Net> = self.list_networks().iter().filter_map(|n| n.subnet.parse().ok()).collect();
        let subnet = match &req.subnet {
            Some(s) => {
                let net = parse_net("subnet", s)?.network();
                if let Some(o) = used.iter().find(|u| u.overlaps(&net)) {
                    return Err(EngineError::Forbidden(format!(
                        "invalid pool request: Pool overlaps with other one on this address space ({o})"
                    )));
                }
                net
            }
            None => self.free_subnet(&used)?,
        };
        if subnet.prefix > 30 {
            return Err(EngineError::Invalid(format!("subnet {subnet} is too small")));
        }
        let gateway = match &req.gateway {
            Some(g) => {
                let g: Ipv4Addr = g.parse().map_err(|_| EngineError::Invalid(format!("invalid gateway: {g}")))?;
                if !subnet.contains(g) || g == subnet.addr || g == subnet.broadcast() {
                    return Err(EngineError::Invalid(format!("gateway {g} is not a host address of subnet {subnet}")));
                }
                g
            }
            None => subnet.first_host(),
        };
        let ip_range = match &req.ip_range {
            Some(r) => {
                let r = parse_net("ip-range", r)?.network();
                if r.prefix < subnet.prefix || !subnet.contains(r.addr) {
                    return Err(EngineError::Invalid(format!("ip-range {r} is not inside subnet {subnet}")));
                }
                Some(r.to_string())
            }
            None => None,
        };
        let (subnet6, gateway6, ip_range6) = self.check_ipv6_pool(&req)?;
        check_aux_addresses(&req.aux_addresses, subnet, req.subnet6.as_deref())?;
        let id = ids::random_id();
        let bridge = match req.options.get(OPT_BRIDGE_NAME) {
            Some(b) if !b.is_empty() => {
                wharf_network::nft::check_ifname(b)
                    .map_err(|e| EngineError::Invalid(format!("invalid {OPT_BRIDGE_NAME} option: {e}")))?;
                b.clone()
            }
            _ => format!("br-{}", short_id(&id)),
        };
        let rec = NetworkRecord {
            id: id.clone(),
            name: req.name.clone(),
            driver,
            created: wharf_types::time::rfc3339_nanos(SystemTime::now()),
            scope: "local".to_string(),
            subnet: subnet.to_string(),
            gateway: gateway.to_string(),
            show_gateway: req.subnet.is_none() || req.gateway.is_some(),
            ip_range,
            internal: req.internal,
            attachable: req.attachable,
            labels: req.labels,
            options: req.options,
            bridge,
            predefined: false,
            enable_ipv6: req.enable_ipv6,
            subnet6,
            gateway6,
            ip_range6,
            aux_addresses: req.aux_addresses,
            ipam_options: req.ipam_options,
        };
        // The record first, then the bridge: a crash between them leaves a network that the
        // next start brings up, never a bridge that no record names (which no start would
        // know to remove).
        self.write_db(|tx| tx.put(Table::Networks, &id, &rec))?;
        crate::failpoint::hit("network-create-after-record");
        // A bridge that was there before (named by `com.docker.network.bridge.name`) is not
        // this create's to remove when it fails.
        let existed = std::path::Path::new("/sys/class/net").join(&rec.bridge).exists();
        if let Err(e) = self.bring_up_network(&rec) {
            if existed {
                lock(&self.inner.network.dns).remove(&rec.id);
            } else {
                self.tear_down_network(&rec);
            }
            if let Err(e) = self.write_db(|tx| tx.delete(Table::Networks, &id)) {
                log::warn!("network {}: {e}", rec.name);
            }
            return Err(e);
        }
        lock(&self.inner.network.networks).insert(id, rec.clone());
        if let Err(e) = self.apply_rules() {
            log::warn!("network {}: {e}", rec.name);
        }
        self.network_event(&rec, "create");
        Ok(rec)
    }

    /// Checks a create's IPv6 pool as dockerd's IPAM does, with its messages: `--ipv6` needs
    /// a subnet (there are no default IPv6 pools), which must not overlap another network's;
    /// the gateway and range must lie in it. Returns the subnet, gateway and range to store,
    /// as given.
    fn check_ipv6_pool(&self, req: &NetworkCreate) -> Result<Ipv6Pool, EngineError> {
        let Some(s) = &req.subnet6 else {
            if req.enable_ipv6 {
                return Err(EngineError::NotFound(
                    "could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network"
                        .to_string(),
                ));
            }
            if req.gateway6.is_some() || req.ip_range6.is_some() {
                return Err(EngineError::Invalid("gateway and ip-range need a subnet".to_string()));
            }
            return Ok((None, None, None));
        };
        let subnet = s
            .parse::<Ipv6Net>()
            .map_err(|_| EngineError::Invalid(format!("Invalid subnet {s} : invalid CIDR address: {s}")))?
            .network();
        let used: Vec<Ipv6Net> = self.list_networks().iter().filter_map(|n| n.subnet6_net()).collect();
        if let Some(o) = used.iter().find(|u| u.overlaps(&subnet)) {
            return Err(EngineError::Forbidden(format!(
                "invalid pool request: Pool overlaps with other one on this address space ({o})"
            )));
        }
        if let Some(g) = &req.gateway6 {
            let ip: Ipv6Addr = g.parse().map_err(|_| EngineError::Invalid(format!("invalid gateway: {g}")))?;
            if !subnet.contains(ip) {
                return Err(EngineError::Internal(format!(
                    "failed to allocate gateway ({g}): Requested address is out of range"
                )));
            }
            if ip == subnet.addr {
                return Err(EngineError::Internal(format!("failed to allocate gateway ({g}): Address already in use")));
            }
        } else if !subnet.contains(subnet.first_host()) {
            return Err(EngineError::Internal(format!(
                "failed to allocate gateway ({}): Requested address is out of range",
                subnet.first_host()
            )));
        }
        if let Some(r) = &req.ip_range6 {
            let range =
                r.parse::<Ipv6Net>().map_err(|_| EngineError::Invalid(format!("invalid ip-range: {r}")))?.network();
            if range.prefix < subnet.prefix || !subnet.contains(range.addr) {
                return Err(EngineError::Invalid(format!("ip-range {range} is not inside subnet {subnet}")));
            }
        }
        Ok((Some(s.clone()), req.gateway6.clone(), req.ip_range6.clone()))
    }

    /// The first of Docker's default pools that neither the host routes nor another network
    /// uses.
    fn free_subnet(&self, used: &[Ipv4Net]) -> Result<Ipv4Net, EngineError> {
        let routes = wharf_network::ipam::host_routes("");
        // The default bridge's subnet counts as used even before its bridge exists.
        let bridge = self.inner.network.default_bridge_gateway().map(|g| g.network());
        for c in crate::network::candidate_subnets(&self.inner.network.config.address_pools) {
            if !routes.iter().chain(used.iter()).chain(bridge.iter()).any(|r| r.overlaps(&c)) {
                return Ok(c);
            }
        }
        Err(EngineError::Forbidden(
            "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"
                .to_string(),
        ))
    }

    /// The bridge with its gateway address and the DNS server on it.
    pub(super) fn bring_up_network(&self, rec: &NetworkRecord) -> Result<(), EngineError> {
        let gw = rec.gateway_net().ok_or_else(|| EngineError::Internal(format!("network {}: bad subnet", rec.name)))?;
        let cfg = BridgeConfig { name: rec.bridge.clone(), gateway: gw, gateway6: rec.gateway6_net(), mtu: None };
        sandbox::ensure_bridge(&cfg).map_err(EngineError::from)?;
        let subnet: Ipv4Net = gw.network();
        match crate::dns::DnsServer::start(self.clone(), rec.id.clone(), gw.addr, subnet) {
            Ok(server) => {
                lock(&self.inner.network.dns).insert(rec.id.clone(), server);
                Ok(())
            }
            Err(e) => {
                let _ = sandbox::remove_bridge(&rec.bridge);
                Err(e)
            }
        }
    }

    pub(super) fn tear_down_network(&self, rec: &NetworkRecord) {
        lock(&self.inner.network.dns).remove(&rec.id);
        if let Err(e) = sandbox::remove_bridge(&rec.bridge) {
            log::warn!("network {}: {e}", rec.name);
        }
    }

    pub async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        let engine = self.clone();
        let name = name.to_string();
        blocking(move || engine.remove_network_blocking(&name)).await
    }

    fn remove_network_blocking(&self, name: &str) -> Result<(), EngineError> {
        let rec = self.find_network(name)?;
        if rec.predefined {
            return Err(EngineError::Forbidden(format!("{} is a pre-defined network and cannot be removed", rec.name)));
        }
        let _guard = lock(&self.inner.network.create_lock);
        let active = self.network_endpoints(&rec);
        if !active.is_empty() {
            // Docker's message, naming the containers.
            let names: Vec<String> = active
                .iter()
                .map(|(id, _)| {
                    let name = self.find_container(id).map(|c| c.name).unwrap_or_default();
                    format!("(name:\"{name}\" id:\"{}\")", short_id(id))
                })
                .collect();
            return Err(EngineError::Forbidden(format!(
                "error while removing network: network {} id {} has active endpoints {}",
                rec.name,
                rec.id,
                names.join(", ")
            )));
        }
        // The bridge first, then the record (the reverse of a create): a crash between them
        // leaves the network, which the next start brings up again and a second rm removes.
        self.tear_down_network(&rec);
        crate::failpoint::hit("network-rm-after-bridge");
        if let Err(e) = self.write_db(|tx| tx.delete(Table::Networks, &rec.id)) {
            if let Err(up) = self.bring_up_network(&rec) {
                log::warn!("network {}: {up}", rec.name);
            }
            return Err(e.into());
        }
        lock(&self.inner.network.networks).remove(&rec.id);
        if let Err(e) = self.apply_rules() {
            log::warn!("network {}: {e}", rec.name);
        }
        self.network_event(&rec, "destroy");
        Ok(())
    }

    /// Removes the user networks no running container uses and that match the label filters
    /// (`label=k`, `label=k=v`, `label!=...`); returns their names.
    pub async fn prune_networks(&self, labels: Vec<(String, bool)>) -> Result<Vec<String>, EngineError> {
        let mut removed = Vec::new();
        let all: Vec<NetworkRecord> = lock(&self.inner.network.networks).values().cloned().collect();
        for n in all {
            let matches = labels.iter().all(|(f, want)| {
                let has = match f.split_once('=') {
                    Some((k, v)) => n.labels.get(k).is_some_and(|x| x == v),
                    None => n.labels.contains_key(f),
                };
                has == *want
            });
            if !matches || !self.network_endpoints(&n).is_empty() {
                continue;
            }
            match self.remove_network(&n.id).await {
                Ok(()) => removed.push(n.name),
                Err(e) => log::warn!("prune network {}: {e}", n.name),
            }
        }
        Ok(removed)
    }

    /// At daemon start: every stored network comes back with its bridge and DNS server.
    pub(super) fn restore_networks(&self) -> Result<(), EngineError> {
        let stored: Vec<(String, NetworkRecord)> = self.inner.db.list(Table::Networks)?;
        for (id, rec) in stored {
            if let Err(e) = self.bring_up_network(&rec) {
                log::warn!("network {}: {e}", rec.name);
            }
            lock(&self.inner.network.networks).insert(id, rec);
        }
        Ok(())
    }

    fn network_event(&self, rec: &NetworkRecord, action: &str) {
        let attrs = BTreeMap::from([("name".to_string(), rec.name.clone()), ("type".to_string(), rec.driver.clone())]);
        self.publish_event("network", action, &rec.id, attrs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dual-stack user network with every field set, as format 1 stores it.
    #[test]
    fn the_stored_network_record_is_pinned() {
        let rec: NetworkRecord =
            crate::formats::tests::assert_pinned(include_str!("../../testdata/network-record-1.json"));
        assert!(rec.enable_ipv6 && rec.gateway6_net().is_some() && rec.pool().is_some() && !rec.predefined);
        assert_eq!(NETWORKS.current, 1, "a new format needs a fixture of its own and a test of its step");
    }

    #[test]
    fn names() {
        let cases = [
            ("net1", true),
            ("a.b-c_d", true),
            ("-x", true),
            ("my net", true),
            ("", false),
            ("a/b", false),
            ("a\nb", false),
        ];
        for (n, want) in cases {
            assert_eq!(valid_name(n), want, "{n}");
        }
    }

    #[test]
    fn aux_addresses_must_be_in_their_pool() {
        let subnet: Ipv4Net = "10.5.0.0/24".parse().unwrap();
        let aux = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(check_aux_addresses(&aux("a", "10.5.0.9"), subnet, None).is_ok());
        assert!(check_aux_addresses(&aux("a", "fd00::9"), subnet, Some("fd00::/64")).is_ok());
        for (v, s6, want) in [
            ("10.6.0.9", None, "(a:10.6.0.9) must belong to the master pool: 10.5.0.0/24"),
            ("10.5.0.0", None, "must belong to the master pool"),
            ("fd00::9", None, "must belong to the master pool"),
            ("fd01::9", Some("fd00::/64"), "must belong to the master pool: fd00::/64"),
            ("nonsense", None, "invalid auxiliary address a=nonsense"),
        ] {
            let e = check_aux_addresses(&aux("a", v), subnet, s6).unwrap_err().to_string();
            assert!(e.contains(want), "{v}: {e}");
        }
    }

    #[test]
    fn pool_is_the_range_or_the_subnet() {
        let mut r = NetworkRecord {
            id: "x".into(),
            name: "n".into(),
            driver: "bridge".into(),
            created: String::new(),
            scope: "local".into(),
            subnet: "10.5.0.0/16".into(),
            gateway: "10.5.0.1".into(),
            show_gateway: true,
            ip_range: None,
            internal: false,
            attachable: false,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            bridge: "br-x".into(),
            predefined: false,
            enable_ipv6: false,
            subnet6: None,
            gateway6: None,
            ip_range6: None,
            aux_addresses: BTreeMap::new(),
            ipam_options: BTreeMap::new(),
        };
        assert_eq!(r.pool().unwrap().to_string(), "10.5.0.0/16");
        assert_eq!(r.gateway_net().unwrap().to_string(), "10.5.0.1/16");
        r.ip_range = Some("10.5.3.0/24".into());
        assert_eq!(r.pool().unwrap().to_string(), "10.5.3.0/24");
        // An IPv6 subnet without --ipv6: kept, not used.
        r.subnet6 = Some("fd00:5::7/64".into());
        assert_eq!(r.gateway6_net(), None);
        assert_eq!(r.pool6().unwrap().to_string(), "fd00:5::/64");
        r.enable_ipv6 = true;
        assert_eq!(r.gateway6_net().unwrap().to_string(), "fd00:5::1/64");
        r.gateway6 = Some("fd00:5::fe".into());
        r.ip_range6 = Some("fd00:5::100/120".into());
        assert_eq!(r.gateway6_net().unwrap().to_string(), "fd00:5::fe/64");
        assert_eq!(r.pool6().unwrap().to_string(), "fd00:5::100/120");
    }

    /// Records written before IPv6 (no such fields) still load, as IPv4-only networks.
    #[test]
    fn records_without_ipv6_fields_load() {
        let old = r#"{"id":"x","name":"n","driver":"bridge","created":"","scope":"local","subnet":"10.5.0.0/16",
            "gateway":"10.5.0.1","internal":false,"labels":{},"options":{},"bridge":"br-x"}"#;
        let r: NetworkRecord = serde_json::from_str(old).unwrap();
        assert!(!r.enable_ipv6 && r.subnet6.is_none() && r.gateway6_net().is_none());
    }
}
