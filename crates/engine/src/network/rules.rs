//! wharf's nftables table, written whole from the daemon's state: each network's masquerade
//! and isolation rules, the published ports' DNAT, the default bridge's legacy link rules
//! without icc, and the removal of the `ip6` and `bridge` tables once nothing needs them.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;

use wharf_network::nft::{LinkRule, NetRules, PortRule, Ruleset};

use super::{lock, parse_link, parse_port_proto, Endpoint, Networking};
use crate::{Engine, EngineError};

impl Engine {
    /// Writes wharf's nftables table from the current state.
    pub(crate) fn apply_rules(&self) -> Result<(), EngineError> {
        if !self.net().config.iptables {
            return Ok(());
        }
        // Held from the snapshot to the write: the last write is of the newest state.
        let _writing = lock(&self.net().apply_lock);
        let mut rules = Ruleset::default();
        let defaults = &self.net().config.default_bridge;
        let default_bridge = lock(&self.net().bridge).clone();
        // The veths of each network (the default bridge's under ""), for those without icc.
        let mut members: HashMap<String, Vec<String>> = HashMap::new();
        for ep in lock(&self.net().state).endpoints.values() {
            if let Some(v) = &ep.veth {
                members.entry(ep.network_id.clone()).or_default().push(v.clone());
            }
        }
        if let Some(bridge) = &default_bridge {
            rules.networks.push(NetRules {
                bridge: bridge.name.clone(),
                subnet: bridge.gateway,
                subnet6: bridge.gateway6,
                internal: false,
                masquerade: defaults.masquerade,
                icc: defaults.icc,
                members: members.remove("").unwrap_or_default(),
            });
        }
        for n in lock(&self.net().networks).values() {
            let Some(gw) = n.gateway_net() else { continue };
            rules.networks.push(NetRules {
                bridge: n.bridge.clone(),
                subnet: gw,
                subnet6: n.gateway6_net(),
                internal: n.internal,
                masquerade: super::bridge_options::masquerade_option(&n.options),
                icc: super::bridge_options::icc_option(&n.options),
                members: members.remove(&n.id).unwrap_or_default(),
            });
        }
        if let (Some(bridge), false) = (&default_bridge, defaults.icc) {
            rules.links = self.link_rules(&bridge.name);
        }
        if rules.networks.is_empty() {
            // The last network went (compose's `down` with no default-bridge container ever
            // started): its masquerade rules must not outlive it.
            self.net().remove_ip6_table();
            self.net().remove_bridge_table();
            return wharf_network::nft::delete_table(&self.net().table).map_err(EngineError::from);
        }
        for ep in lock(&self.net().state).endpoints.values() {
            for p in &ep.ports {
                let Ok((cport, proto)) = parse_port_proto(&p.container_port) else { continue };
                let host_ip: Option<IpAddr> = p.host_ip.parse().ok();
                // A port on an IPv6 host address goes to the container's IPv6 address.
                let container_ip = match host_ip {
                    Some(IpAddr::V6(_)) => ep.ip6.map(IpAddr::V6),
                    _ => ep.ip.map(IpAddr::V4),
                };
                let Some(container_ip) = container_ip else { continue };
                rules.ports.push(PortRule {
                    proto,
                    host_ip,
                    host_port: p.host_port,
                    container_ip,
                    container_port: cport,
                });
            }
        }
        let has_ipv6 = rules.has_ipv6();
        if has_ipv6 {
            self.net().ip6_table.store(true, Ordering::SeqCst);
        }
        let has_bridge = rules.has_bridge_rules();
        if has_bridge {
            self.net().bridge_table.store(true, Ordering::SeqCst);
        }
        rules.apply(&self.net().table).map_err(EngineError::from)?;
        if !has_ipv6 {
            self.net().remove_ip6_table();
        }
        if !has_bridge {
            self.net().remove_bridge_table();
        }
        Ok(())
    }

    /// What legacy links open on the default bridge without `icc`: for each running container
    /// on it that links another one there, the linked container's exposed ports, as dockerd.
    fn link_rules(&self, bridge: &str) -> Vec<LinkRule> {
        let on_bridge: HashMap<String, Ipv4Addr> = lock(&self.net().state)
            .endpoints
            .values()
            .filter(|e| e.network_id.is_empty() && e.network == "bridge")
            .filter_map(|e| Some((e.container.clone(), e.ip?)))
            .collect();
        let mut out = Vec::new();
        for (id, client) in &on_bridge {
            let Ok(rec) = self.find_container(id) else { continue };
            for (name, _) in rec.host_config.net.links.iter().filter_map(|l| parse_link(l)) {
                let Ok(target) = self.find_container(&name) else { continue };
                let Some(server) = on_bridge.get(&target.id) else { continue };
                for p in &target.config.exposed_ports {
                    let Ok((port, proto)) = parse_port_proto(p) else { continue };
                    out.push(LinkRule { bridge: bridge.to_string(), client: *client, server: *server, proto, port });
                }
            }
        }
        out.sort_by(|a, b| (a.client, a.server, a.port, &a.proto).cmp(&(b.client, b.server, b.port, &b.proto)));
        out
    }
}

impl Networking {
    /// Whether the rules change with this endpoint: it carries published ports, or it is on a
    /// network without inter-container traffic (whose rules name every veth).
    pub(super) fn in_rules(&self, ep: &Endpoint) -> bool {
        if !ep.ports.is_empty() {
            return true;
        }
        if ep.veth.is_none() {
            return false;
        }
        if ep.network_id.is_empty() {
            return !self.config.default_bridge.icc;
        }
        lock(&self.networks).get(&ep.network_id).is_some_and(|n| !super::bridge_options::icc_option(&n.options))
    }

    /// Removes the `ip6` table when it may be there (no network needs it any more). Best
    /// effort: a kernel without IPv6 tables has none to remove.
    pub(super) fn remove_ip6_table(&self) {
        if self.ip6_table.swap(false, Ordering::SeqCst) {
            if let Err(e) = wharf_network::nft::delete_table6(&self.table) {
                log::debug!("{e}");
            }
        }
    }

    /// Removes the `bridge` table when it may be there (no network without icc any more).
    pub(super) fn remove_bridge_table(&self) {
        if self.bridge_table.swap(false, Ordering::SeqCst) {
            if let Err(e) = wharf_network::nft::delete_table_bridge(&self.table) {
                log::debug!("{e}");
            }
        }
    }
}
