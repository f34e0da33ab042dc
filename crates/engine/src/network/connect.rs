//! The `network connect` and `disconnect` requests (and `rm --link`): Docker's checks and the
//! change of the container's host config; and connecting a running container to one more
//! network and disconnecting it from one: an interface added to its namespace or deleted, its
//! /etc/hosts updated, and the default routes and published ports moved when the interface
//! that should hold them changes (`reroute`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use wharf_metadata::Table;
use wharf_network::sandbox;

use super::endpoint::{endpoint_key, gateway_choice, Endpoint, NetworkView};
use super::lock;
use super::networks::NetworkRecord;
use super::options::NetAttach;
use crate::containers::{ContainerRecord, HostConfig};
use crate::{blocking, Engine, EngineError};

impl Engine {
    /// Connects a container to a network: a running one gets its interface right away, a
    /// created or stopped one at its next start. A container on the host's network, on
    /// `none`, or sharing another's namespace cannot be connected (Docker's errors).
    /// `endpoint` says how (its `network` is not read).
    pub async fn connect_network(
        &self,
        network: &str,
        container: &str,
        endpoint: NetAttach,
    ) -> Result<(), EngineError> {
        let NetAttach {
            aliases,
            ipv4_address: ip,
            ipv6_address: ip6,
            links,
            mac_address,
            driver_opts,
            link_local_ips,
            gw_priority,
            ..
        } = endpoint;
        if let Some(m) = mac_address.as_deref().filter(|m| !m.is_empty()) {
            crate::network::parse_mac(m).ok_or_else(|| EngineError::Invalid(format!("invalid MAC address: {m}")))?;
        }
        let n = self.find_network(network)?;
        let c = self.find_container(container)?;
        let live = self.live(&c.id);
        let _op = live.op.lock().await;
        let c = self.find_container(&c.id)?;
        let mode = c.host_config.network_mode.clone();
        let views = self.container_networks(&c, false)?;
        let already =
            views.iter().any(|v| v.network.id == n.id) || (mode == n.name && (mode == "host" || mode == "none"));
        if already {
            return Err(EngineError::Forbidden(format!(
                "endpoint with name {} already exists in network {}",
                c.name, n.name
            )));
        }
        if mode == "host" || n.name == "host" {
            return Err(EngineError::Invalid(
                "container cannot be disconnected from host network or connected to host network".to_string(),
            ));
        }
        if mode.starts_with("container:") {
            return Err(EngineError::Invalid(
                "container sharing network namespace with another container or host cannot be connected to any other network"
                    .to_string(),
            ));
        }
        if mode == "none" || n.name == "none" {
            return Err(EngineError::Invalid(
                "container cannot be connected to multiple networks with one of the networks in private (none) mode"
                    .to_string(),
            ));
        }
        if n.predefined && !aliases.is_empty() {
            return Err(EngineError::Invalid(
                "network-scoped alias is supported only for containers in user defined networks".to_string(),
            ));
        }
        if let Some(a) = ip.as_deref() {
            if n.predefined {
                return Err(EngineError::Invalid(
                    "user specified IP address is supported on user defined networks only".to_string(),
                ));
            }
            a.parse::<Ipv4Addr>().map_err(|_| EngineError::Invalid(format!("invalid IPv4 address: {a}")))?;
        }
        if let Some(a) = ip6.as_deref() {
            if n.predefined {
                return Err(EngineError::Invalid(
                    "user specified IP address is supported on user defined networks only".to_string(),
                ));
            }
            crate::network::parse_ipv6(a)?;
            crate::network::check_ipv6_configured(&n)?;
        }
        let want = NetworkView {
            network: n.clone(),
            aliases: aliases.clone(),
            ipv4_address: ip.clone(),
            ipv6_address: ip6.clone(),
            links: links.clone(),
            mac_address: mac_address.clone(),
            driver_opts: driver_opts.clone(),
            link_local_ips: link_local_ips.clone(),
            gw_priority,
            endpoint: None,
        };
        if c.state.running {
            let engine = self.clone();
            let (rec, w) = (c.clone(), want.clone());
            blocking(move || engine.connect_running(&rec, &w)).await?;
            // It exited meanwhile (its exit is recorded, then released, outside the op lock):
            // what was just attached must not outlive a release that already ran.
            if !self.find_container(&c.id).is_ok_and(|r| r.state.running) {
                self.network_release_async(&c.id).await;
            }
        }
        let recorded = self.update_host_config(&c.id, |hc| {
            if hc.net.detached {
                hc.network_mode = n.name.clone();
                hc.net.detached = false;
                hc.net.aliases = aliases;
                hc.net.ipv4_address = ip;
                hc.net.ipv6_address = ip6;
                hc.net.links = links;
                hc.net.mac_address = mac_address;
                hc.net.driver_opts = driver_opts;
                hc.net.link_local_ips = link_local_ips;
                hc.net.gw_priority = gw_priority;
            } else {
                let key = if n.predefined { n.name.clone() } else { n.id.clone() };
                hc.net.networks.push(NetAttach {
                    network: key,
                    aliases,
                    ipv4_address: ip,
                    ipv6_address: ip6,
                    links,
                    mac_address,
                    driver_opts,
                    link_local_ips,
                    gw_priority,
                });
            }
        });
        if let Err(e) = recorded {
            if c.state.running {
                let engine = self.clone();
                let (rec, n) = (c.clone(), n.clone());
                let _ = blocking(move || engine.disconnect_running(&rec, &n)).await;
            }
            return Err(e);
        }
        let attrs = BTreeMap::from([
            ("container".to_string(), c.id.clone()),
            ("name".to_string(), n.name.clone()),
            ("type".to_string(), n.driver.clone()),
        ]);
        self.publish_event("network", "connect", &n.id, attrs);
        Ok(())
    }

    /// Disconnects a container from a network: a running one loses that interface now. The
    /// first network's place goes to the next one connected; a container disconnected from
    /// all of them keeps loopback only until it is connected again.
    pub async fn disconnect_network(&self, network: &str, container: &str, _force: bool) -> Result<(), EngineError> {
        let n = self.find_network(network)?;
        let c = self.find_container(container)?;
        let live = self.live(&c.id);
        let _op = live.op.lock().await;
        let c = self.find_container(&c.id)?;
        let mode = c.host_config.network_mode.clone();
        if mode == "host" || n.name == "host" {
            return Err(EngineError::Invalid(
                "container cannot be disconnected from host network or connected to host network".to_string(),
            ));
        }
        let views = self.container_networks(&c, false)?;
        if !views.iter().any(|v| v.network.id == n.id) {
            return Err(EngineError::Forbidden(format!("container {} is not connected to network {}", c.name, n.name)));
        }
        if c.state.running {
            let engine = self.clone();
            let (rec, net) = (c.clone(), n.clone());
            blocking(move || engine.disconnect_running(&rec, &net)).await?;
        }
        let primary = !c.host_config.net.detached && self.find_network(&mode).is_ok_and(|m| m.id == n.id);
        let next_name = c.host_config.net.networks.first().map(|a| self.find_network(&a.network).map(|m| m.name));
        self.update_host_config(&c.id, |hc| {
            if primary {
                if hc.net.networks.is_empty() {
                    hc.net.detached = true;
                    hc.net.aliases.clear();
                    hc.net.ipv4_address = None;
                    hc.net.ipv6_address = None;
                    hc.net.link_local_ips.clear();
                    hc.net.gw_priority = 0;
                    hc.net.mac_address = None;
                    hc.net.driver_opts.clear();
                } else {
                    let next = hc.net.networks.remove(0);
                    hc.network_mode = match next_name {
                        Some(Ok(name)) => name,
                        _ => next.network,
                    };
                    hc.net.aliases = next.aliases;
                    hc.net.ipv4_address = next.ipv4_address;
                    hc.net.ipv6_address = next.ipv6_address;
                    hc.net.link_local_ips = next.link_local_ips;
                    hc.net.gw_priority = next.gw_priority;
                    // The next network's own MAC address and driver options come with it.
                    // (Its endpoint links do not: the first slot's links are also
                    // HostConfig.Links, which a disconnect leaves as they are, as dockerd.)
                    hc.net.mac_address = next.mac_address;
                    hc.net.driver_opts = next.driver_opts;
                }
            } else {
                hc.net.networks.retain(|a| !(a.network == n.id || a.network == n.name));
            }
        })?;
        let attrs = BTreeMap::from([
            ("container".to_string(), c.id.clone()),
            ("name".to_string(), n.name.clone()),
            ("type".to_string(), n.driver.clone()),
        ]);
        self.publish_event("network", "disconnect", &n.id, attrs);
        Ok(())
    }

    /// `rm --link parent/alias` (`DELETE /containers/parent/alias?link=1`): the parent keeps
    /// running and forgets the link; its /etc/hosts line goes at its next start.
    pub async fn remove_link(&self, link: &str) -> Result<(), EngineError> {
        let link = link.trim_start_matches('/');
        let Some((parent, alias)) = link.rsplit_once('/') else {
            return Err(EngineError::Conflict("Conflict, cannot remove the default link name".into()));
        };
        let c = self
            .find_container(parent)
            .map_err(|_| EngineError::NotFound(format!("Cannot get parent /{parent} for link name /{link}")))?;
        let alias = alias.to_ascii_lowercase();
        let mut found = false;
        self.update_host_config(&c.id, |hc| {
            let before = hc.net.links.len();
            hc.net.links.retain(|l| crate::network::parse_link(l).is_none_or(|(_, a)| a != alias));
            found = hc.net.links.len() != before;
        })?;
        if found {
            Ok(())
        } else {
            Err(EngineError::NotFound(format!("Could not find container for entity id /{link}")))
        }
    }

    /// Changes a container's network settings in one transaction that reads the record too, so
    /// an exit recorded meanwhile (outside the container's op lock) is not overwritten.
    fn update_host_config(&self, id: &str, f: impl FnOnce(&mut HostConfig)) -> Result<ContainerRecord, EngineError> {
        self.inner.containers.write(|tx| {
            let mut rec = tx.get(id).ok_or_else(|| EngineError::NotFound(format!("No such container: {id}")))?;
            f(&mut rec.host_config);
            tx.put(&rec);
            Ok(rec)
        })
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
                .or_else(|| rest.iter().min_by_key(|e| self.net().endpoint_rank(e)));
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
        if self.net().in_rules(&ep) {
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
    pub(super) fn reroute(&self, id: &str) {
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
}
