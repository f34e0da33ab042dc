//! The networks a container is on: from its settings, in connect order, as
//! [`NetworkView`]s, with each one's endpoint while it runs as inspect and `ps` show them; and
//! the endpoints of a running container, from the state.

use std::collections::BTreeMap;

use super::endpoint::{Endpoint, NetworkView};
use super::networks::NetworkRecord;
use super::{lock, Networking};
use crate::containers::ContainerRecord;
use crate::{Engine, EngineError};

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
        match super::networks::find_network_in(networks, mode).cloned() {
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
        let n = match super::networks::find_network_in(networks, &a.network).cloned() {
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

impl Engine {
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
            if let Ok(n) = super::networks::find_network_in(networks, "none") {
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
        self.net().container_endpoints(id)
    }
}

impl Networking {
    /// Every endpoint of a running container, in interface order.
    pub(super) fn container_endpoints(&self, id: &str) -> Vec<Endpoint> {
        let prefix = format!("{id}/");
        let mut eps: Vec<Endpoint> = lock(&self.state)
            .endpoints
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, e)| e.clone())
            .collect();
        eps.sort_by_key(|e| e.if_index());
        eps
    }
}
