//! Connecting a running container to one more network and disconnecting it from one: an
//! interface added to its namespace or deleted, its /etc/hosts updated, and the default routes
//! and published ports moved when the interface that should hold them changes (`reroute`).

use std::collections::BTreeSet;

use wharf_metadata::Table;
use wharf_network::sandbox;

use super::endpoint::{endpoint_key, gateway_choice, Endpoint, NetworkView};
use super::lock;
use crate::containers::ContainerRecord;
use crate::usernet::NetworkRecord;
use crate::{Engine, EngineError};

impl Engine {
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
