//! A container's networks at its start and stop. Before its shim starts: its namespace, an
//! interface with its addresses on each network (the default bridge made on first use), its
//! published ports and the rules, each endpoint recorded in the `endpoints` table. When it
//! stops: the release of all of it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use wharf_metadata::Table;
use wharf_network::sandbox::{self, Attachment, BridgeConfig};
use wharf_network::{Ipv4Net, Ipv6Net};
use wharf_types::digest::short_id;

use super::config::MTU_RANGE;
use super::endpoint::{endpoint_key, parse_link, parse_link_local, parse_mac, Endpoint, NetworkView};
use super::networks::NetworkRecord;
use super::pools::{check_ipv6_configured, choose_bip, default_bridge_subnet6, mac_ipv6, parse_ipv6};
use super::ports::{PublishedPort, Reservation};
use super::{lock, Networking};
use crate::containers::ContainerRecord;
use crate::{blocking, Engine, EngineError};

impl Engine {
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
        wanted.sort_by_cached_key(|w| self.net().view_rank(w));
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
                super::bridge_options::host_ip_option(&w.network.options)
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

    /// Puts the container on one more network: the first one creates its namespace, later ones
    /// add an interface to it (`eth<index>`). The address is held in the state from the moment
    /// it is chosen, so two starts cannot take the same one.
    pub(super) fn attach_one(
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
            let b = self.net().ensure_default_bridge()?;
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
        let mtu = self.net().network_mtu(n)?;
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
        let has_ports = self.net().in_rules(&ep);
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
        if eps.iter().any(|e| self.net().in_rules(e)) {
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

    pub(crate) async fn network_release_async(&self, id: &str) {
        let engine = self.clone();
        let id = id.to_string();
        let r = blocking(move || engine.network_release(&id)).await;
        if let Err(e) = r {
            log::warn!("network release: {e}");
        }
    }
}

impl Networking {
    /// The default bridge's gateway, creating the bridge on first use.
    pub(super) fn ensure_default_bridge(&self) -> Result<BridgeConfig, EngineError> {
        let mut b = lock(&self.bridge);
        if let Some(b) = b.as_ref() {
            return Ok(b.clone());
        }
        let config = &self.config;
        config.check()?;
        let gateway6 = default_bridge_subnet6(config).map(|n| Ipv6Net { addr: n.first_host(), prefix: n.prefix });
        let gateway = choose_bip(config)?;
        config.check_in_bridge_subnet(gateway)?;
        let cfg = BridgeConfig { name: config.bridge.clone(), gateway, gateway6, mtu: config.default_bridge.mtu };
        sandbox::ensure_bridge(&cfg).map_err(EngineError::from)?;
        *b = Some(cfg.clone());
        Ok(cfg)
    }

    /// The default bridge's gateway, configured or as it would be chosen.
    pub(crate) fn default_bridge_gateway(&self) -> Option<Ipv4Net> {
        if let Some(b) = lock(&self.bridge).as_ref() {
            return Some(b.gateway);
        }
        choose_bip(&self.config).ok()
    }

    /// The MTU of a network's interfaces: dockerd's `mtu` on the default bridge, the
    /// `com.docker.network.driver.mtu` option on a user network; None is the kernel's.
    fn network_mtu(&self, n: &NetworkRecord) -> Result<Option<u32>, EngineError> {
        if n.predefined {
            return Ok(self.config.default_bridge.mtu);
        }
        super::bridge_options::mtu_option(&n.options)
    }

    /// Whether containers on the network get IPv6 addresses.
    pub(super) fn network_has_ipv6(&self, n: &NetworkRecord) -> bool {
        if n.predefined {
            return n.name == "bridge" && default_bridge_subnet6(&self.config).is_some();
        }
        n.gateway6_net().is_some()
    }
}
