//! A container's network settings as it was created and connected, kept in its host config
//! (`NetOptions`, and a `NetAttach` per further network), and their check at create.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use super::endpoint::parse_mac;
use super::etc_files::extra_host_line;
use super::pools::parse_ipv6;
use crate::containers::HostConfig;
use crate::{Engine, EngineError};

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

impl Engine {
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
