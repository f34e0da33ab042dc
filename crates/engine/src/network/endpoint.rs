//! The endpoint model: a container's place on one network as the `endpoints` table records
//! it (its key, and the migration of records of the previous version), a network as inspect
//! shows it for a container, dockerd's order of a container's networks ([`Rank`]) that picks
//! where the default routes go, and the parsing of what an endpoint is given (links, MAC and
//! link-local addresses).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use wharf_metadata::Table;

use super::networks::NetworkRecord;
use super::{lock, Networking, PublishedPort};
use crate::formats::StoredForm;
use crate::EngineError;

/// A `name[:alias]` link as `(name, alias)`, both as DNS compares them; the alias is the name
/// when none is given. A leading `/` of the name (Docker's form) is dropped.
pub fn parse_link(link: &str) -> Option<(String, String)> {
    let (name, alias) = link.split_once(':').unwrap_or((link, link));
    let name = name.trim_start_matches('/').to_ascii_lowercase();
    let alias = alias.rsplit('/').next().unwrap_or(alias).to_ascii_lowercase();
    (!name.is_empty() && !alias.is_empty()).then_some((name, alias))
}

fn default_ifname() -> String {
    "eth0".to_string()
}

/// A running container's place on one network, as recorded in the `endpoints` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The container's id (records of the previous version: filled in from their key).
    #[serde(default)]
    pub container: String,
    /// The interface inside the container (`eth0`, `eth1`, ...); empty for a namespace with
    /// loopback only.
    #[serde(default = "default_ifname")]
    pub ifname: String,
    /// Whether the container's default route goes through this endpoint's gateway.
    #[serde(default)]
    pub routed: bool,
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
    /// Published ports: on the container's first endpoint.
    pub ports: Vec<PublishedPort>,
    /// Links on this network: `(name, alias)`; the alias resolves for this container only.
    #[serde(default)]
    pub links: Vec<(String, String)>,
    /// On a dual-stack network: the IPv6 address, its prefix and the network's IPv6 gateway
    /// (records from before IPv6 have none).
    #[serde(default)]
    pub ip6: Option<Ipv6Addr>,
    #[serde(default)]
    pub prefix6: u8,
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    /// Whether the container's IPv6 default route goes through this endpoint's gateway.
    #[serde(default)]
    pub routed6: bool,
    /// The endpoint's `GwPriority`: the default routes go through the highest.
    #[serde(default)]
    pub gw_priority: i64,
}

impl Endpoint {
    /// The stored endpoint: `Endpoint` as serde writes it under `endpoint_key`, pinned by
    /// `endpoint-record-1.json`. The API builds its own JSON from the fields (network inspect's
    /// `Containers`, a container's `NetworkSettings`), so this form is the stored one alone; see
    /// `formats` for what a change of it takes. (A const of the type: its module is private.)
    /// Format 1 also holds the records of the version before per-network keys (keyed by the
    /// container id alone): `migrate_endpoint` rekeys them at the daemon's start, which alone
    /// knows which containers run and which networks are internal, so that step stays there
    /// rather than in `formats`.
    pub(crate) const STORED: StoredForm =
        StoredForm { table: Table::Endpoints, name: "endpoints", current: 1, steps: &[] };

    /// An endpoint with no interface, address or ports: a namespace with loopback only,
    /// recorded under `network` (`none`, or empty for a container on no network at all).
    pub(super) fn loopback_only(container: &str, network: &str, netns: PathBuf) -> Endpoint {
        Endpoint {
            container: container.to_string(),
            ifname: String::new(),
            routed: false,
            network: network.to_string(),
            network_id: String::new(),
            dns_names: Vec::new(),
            aliases: Vec::new(),
            dns_servers: Vec::new(),
            netns,
            ip: None,
            prefix: 0,
            gateway: None,
            mac: String::new(),
            veth: None,
            ports: Vec::new(),
            links: Vec::new(),
            ip6: None,
            prefix6: 0,
            gateway6: None,
            routed6: false,
            gw_priority: 0,
        }
    }

    /// The endpoint's addresses, IPv4 first.
    pub fn addrs(&self) -> Vec<IpAddr> {
        self.ip.map(IpAddr::V4).into_iter().chain(self.ip6.map(IpAddr::V6)).collect()
    }

    /// The key of the endpoint in the `endpoints` table and the daemon's state.
    pub fn key(&self) -> String {
        endpoint_key(&self.container, if self.network_id.is_empty() { &self.network } else { &self.network_id })
    }

    /// Docker's `EndpointID`: stable for the container on the network.
    pub fn endpoint_id(&self) -> String {
        wharf_types::Digest::of(format!("wharf endpoint {}", self.key()).as_bytes()).hex().to_string()
    }

    /// The interface's position (`eth1` → 1); loopback-only endpoints sort last.
    pub(super) fn if_index(&self) -> u32 {
        self.ifname.strip_prefix("eth").and_then(|n| n.parse().ok()).unwrap_or(u32::MAX)
    }
}

pub(super) fn endpoint_key(container: &str, network: &str) -> String {
    format!("{container}/{network}")
}

/// A network a container is on (or will be at its start), as inspect shows it.
#[derive(Debug, Clone)]
pub struct NetworkView {
    pub network: NetworkRecord,
    pub aliases: Vec<String>,
    pub ipv4_address: Option<String>,
    pub ipv6_address: Option<String>,
    /// `name[:alias]` links of the container on this network.
    pub links: Vec<String>,
    pub mac_address: Option<String>,
    pub driver_opts: BTreeMap<String, String>,
    pub link_local_ips: Vec<String>,
    pub gw_priority: i64,
    /// While the container runs.
    pub endpoint: Option<Endpoint>,
}

/// The endpoint a default route goes through among `candidates` (the endpoints with a route
/// out; for the IPv6 route those with IPv6): the first in dockerd's order.
pub(super) fn gateway_choice<'a>(candidates: impl Iterator<Item = &'a Endpoint>) -> Option<&'a Endpoint> {
    candidates.min_by_key(|e| Rank::new(e.gw_priority, false, e.gateway6.is_some(), &e.network))
}

/// dockerd's order of a container's networks (libnetwork's order of a sandbox's endpoints,
/// which picks the gateway endpoint and, at a start, numbers the interfaces): the highest
/// `GwPriority` first, then those with a route out before `--internal` ones, then dual-stack
/// before IPv4-only, then by network name.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Rank {
    priority: std::cmp::Reverse<i64>,
    internal: bool,
    /// IPv4 gateway 1, IPv6 gateway 2, added up (none on an internal network).
    gateways: std::cmp::Reverse<u8>,
    name: String,
}

impl Rank {
    pub(super) fn new(priority: i64, internal: bool, ipv6: bool, name: &str) -> Rank {
        let gateways = if internal { 0 } else { 1 + 2 * u8::from(ipv6) };
        Rank {
            priority: std::cmp::Reverse(priority),
            internal,
            gateways: std::cmp::Reverse(gateways),
            name: name.to_string(),
        }
    }
}

/// `IPAMConfig.LinkLocalIPs` as dockerd adds them to the interface: IPv4 ones with a /16,
/// IPv6 ones with a /64. As dockerd 20.10 checks them at the start: first that each is an
/// address (the message names the whole list), then that each is link-local (169.254.0.0/16,
/// fe80::/10).
pub(super) fn parse_link_local(ips: &[String]) -> Result<Vec<(IpAddr, u8)>, EngineError> {
    let parsed = ips
        .iter()
        .filter(|a| !a.is_empty())
        .map(|a| a.parse::<IpAddr>().map(|ip| ip.to_canonical()))
        .collect::<Result<Vec<IpAddr>, _>>()
        .map_err(|_| EngineError::Invalid(format!("Invalid link-local IP address: [{}]", ips.join(" "))))?;
    parsed
        .into_iter()
        .map(|ip| match ip {
            IpAddr::V4(a) if a.is_link_local() => Ok((ip, 16)),
            IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80 => Ok((ip, 64)),
            _ => Err(EngineError::Invalid(format!("invalid link local IP address: {ip}"))),
        })
        .collect()
}

/// A stored endpoint as this version keeps it, and whether it was written by the previous
/// version (one record per container, keyed by its id, always `eth0`, routed unless on an
/// internal network), which must then be stored again under its per-network key.
pub(super) fn migrate_endpoint(key: &str, mut ep: Endpoint, internal: bool) -> (Endpoint, bool) {
    let (id, legacy) = match key.split_once('/') {
        Some((id, _)) => (id, false),
        None => (key, true),
    };
    if ep.container.is_empty() {
        ep.container = id.to_string();
    }
    if legacy {
        ep.ifname = if ep.veth.is_some() { "eth0".to_string() } else { String::new() };
        ep.routed = ep.veth.is_some() && !internal;
    }
    (ep, legacy)
}

/// `02:42:ac:11:00:02` → bytes.
pub(crate) fn parse_mac(s: &str) -> Option<[u8; 6]> {
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

impl Networking {
    /// Where a network a container is to start on comes in dockerd's order.
    pub(super) fn view_rank(&self, w: &NetworkView) -> Rank {
        Rank::new(w.gw_priority, w.network.internal, self.network_has_ipv6(&w.network), &w.network.name)
    }

    /// Where an endpoint of a running container comes in dockerd's order.
    pub(super) fn endpoint_rank(&self, e: &Endpoint) -> Rank {
        let internal = lock(&self.networks).get(&e.network_id).is_some_and(|n| n.internal);
        Rank::new(e.gw_priority, internal, e.gateway6.is_some(), &e.network)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::NetOptions;

    /// A dual-stack endpoint with ports, links and `--dns`, every field set, under its key, as
    /// format 1 stores it: it is not migrated again.
    #[test]
    fn the_stored_endpoint_is_pinned() {
        let stored: BTreeMap<String, Endpoint> =
            crate::formats::tests::assert_pinned(include_str!("../../testdata/endpoint-record-1.json"));
        for (key, ep) in stored {
            assert_eq!(ep.key(), key);
            assert_eq!(migrate_endpoint(&key, ep.clone(), false), (ep, false));
        }
        assert_eq!(Endpoint::STORED.current, 1, "a new format needs a fixture of its own and a test of its step");
    }

    /// Records as the previous version wrote them (one per container, keyed by its id).
    #[test]
    fn endpoint_records_of_the_previous_version() {
        let id = "a".repeat(64);
        let user = r#"{"network":"appnet","network_id":"ffff","dns_names":["web"],"aliases":[],"dns_servers":[],
            "netns":"/run/wharf/netns/x","ip":"10.5.0.2","prefix":24,"gateway":"10.5.0.1",
            "mac":"02:42:0a:05:00:02","veth":"vethaaaaaaa","ports":[{"container_port":"80/tcp","host_ip":"0.0.0.0","host_port":8080}]}"#;
        let none = r#"{"network":"none","network_id":"","netns":"/run/wharf/netns/x","ip":null,"prefix":0,
            "gateway":null,"mac":"","veth":null,"ports":[]}"#;
        let cases: &[(&str, bool, &str, &str, bool)] = &[
            (user, false, "ffff", "eth0", true),
            (user, true, "ffff", "eth0", false),
            (none, false, "none", "", false),
        ];
        for (json, internal, net_key, ifname, routed) in cases {
            let ep: Endpoint = serde_json::from_str(json).unwrap();
            let (ep, legacy) = migrate_endpoint(&id, ep, *internal);
            assert!(legacy);
            assert_eq!(ep.container, id);
            assert_eq!(ep.key(), format!("{id}/{net_key}"));
            assert_eq!((ep.ifname.as_str(), ep.routed), (*ifname, *routed), "{json}");
            // Stored again under the new key, it is not migrated twice.
            let again = serde_json::from_str(&serde_json::to_string(&ep).unwrap()).unwrap();
            assert_eq!(migrate_endpoint(&ep.key(), again, *internal), (ep.clone(), false));
        }
    }

    /// Records written before IPv6 load as IPv4-only endpoints; with the fields they keep them.
    #[test]
    fn endpoint_records_without_and_with_ipv6() {
        let old = r#"{"container":"c","ifname":"eth0","routed":true,"network":"appnet","network_id":"ffff",
            "netns":"/run/wharf/netns/x","ip":"10.5.0.2","prefix":24,"gateway":"10.5.0.1",
            "mac":"02:42:0a:05:00:02","veth":"vethaaaaaaa","ports":[]}"#;
        let ep: Endpoint = serde_json::from_str(old).unwrap();
        assert_eq!((ep.ip6, ep.prefix6, ep.gateway6, ep.routed6), (None, 0, None, false));
        assert_eq!(ep.addrs(), vec![IpAddr::V4(Ipv4Addr::new(10, 5, 0, 2))]);
        let mut dual = ep.clone();
        dual.ip6 = Some("fd00:5::2".parse().unwrap());
        dual.prefix6 = 64;
        dual.gateway6 = Some("fd00:5::1".parse().unwrap());
        dual.routed6 = true;
        let again: Endpoint = serde_json::from_str(&serde_json::to_string(&dual).unwrap()).unwrap();
        assert_eq!(again, dual);
        assert_eq!(again.addrs().len(), 2);
        let opts: NetOptions = serde_json::from_str(r#"{"aliases":[],"ipv4_address":"10.5.0.9"}"#).unwrap();
        assert_eq!(opts.ipv6_address, None);
    }

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
    fn link_local_addresses_as_dockerd_checks_them() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let ok = |v: &[&str]| parse_link_local(&s(v)).map_err(|e| e.to_string());
        let ip = |a: &str| a.parse::<IpAddr>().unwrap();
        assert_eq!(
            ok(&["169.254.1.2", "fe80::1", "febf::5"]),
            Ok(vec![(ip("169.254.1.2"), 16), (ip("fe80::1"), 64), (ip("febf::5"), 64)])
        );
        assert_eq!(ok(&["::ffff:169.254.0.9"]), Ok(vec![(ip("169.254.0.9"), 16)]));
        assert!(ok(&["fd00::1", "x"]).unwrap_err().contains("Invalid link-local IP address: [fd00::1 x]"));
        assert!(ok(&["169.254.1.1", "10.0.0.1"]).unwrap_err().contains("invalid link local IP address: 10.0.0.1"));
        assert!(ok(&["fec0::1"]).unwrap_err().contains("invalid link local IP address: fec0::1"));
    }

    #[test]
    fn the_default_route_goes_as_dockerd_orders_networks() {
        let ep = |network: &str, prio: i64, ipv6: bool| {
            let mut e = Endpoint::loopback_only("c", network, PathBuf::new());
            e.gw_priority = prio;
            e.gateway6 = ipv6.then_some(Ipv6Addr::LOCALHOST);
            e
        };
        let pick = |eps: &[Endpoint]| gateway_choice(eps.iter()).map(|e| e.network.clone());
        // The highest priority; then dual-stack; then the name, whatever the order given.
        assert_eq!(pick(&[ep("alpha", 0, true), ep("zeta", 5, false)]).as_deref(), Some("zeta"));
        assert_eq!(pick(&[ep("alpha", 0, false), ep("zeta", 0, true)]).as_deref(), Some("zeta"));
        assert_eq!(pick(&[ep("zeta", 0, false), ep("mid", 0, false), ep("alpha", 0, false)]).as_deref(), Some("alpha"));
        assert_eq!(pick(&[ep("b", -1, false), ep("c", 0, false)]).as_deref(), Some("c"));
        assert_eq!(pick(&[]), None);
        // The priority first; then internal networks after those with a route out.
        let mut order = [
            Rank::new(9, true, false, "aaa"),
            Rank::new(0, false, false, "bbb"),
            Rank::new(0, false, true, "zzz"),
            Rank::new(0, true, true, "abc"),
        ];
        order.sort();
        let names: Vec<&str> = order.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["aaa", "zzz", "bbb", "abc"]);
    }
}
