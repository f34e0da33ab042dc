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
//! The files, by concern:
//! - this one: the state, [`Networking`], and its locks (what needs only the state is a method
//!   of `Networking`, in the file of its concern; what needs more of the engine, of `Engine`);
//! - `config`: the daemon's network settings (`NetworkConfig`, dockerd's default-bridge
//!   options) and the checks dockerd makes of them;
//! - `options`: a container's network settings as created and connected (`NetOptions`,
//!   `NetAttach`) and their check at create;
//! - `views`: the networks a container is on, in connect order, as inspect shows them, and
//!   the endpoints of a running container;
//! - `attach`: at a container's start, its namespace, an interface with its addresses on each
//!   network (the default bridge made on first use) and its published ports; at its stop, the
//!   release of all of it;
//! - `networks`: user-defined networks (their record, create, remove, prune, restore at
//!   start) and the list and lookup of every network, the predefined ones made from the
//!   daemon's configuration; `bridge_options`: a network's bridge driver options as dockerd
//!   parses them;
//! - `connect`: the `network connect` and `disconnect` requests (and `rm --link`), connect and
//!   disconnect while it runs, and the default routes' moves;
//! - `reconcile`: at daemon start, what a daemon before this one left; at its stop, the
//!   teardown;
//! - `pools` (where subnets and addresses come from), `endpoint` (the stored record, its
//!   migration and dockerd's order), `ports` (host port reservations and the proxies), `rules`
//!   (the nftables table) and `etc_files` (hostname, hosts, resolv.conf, link env).
//!
//! What the embedded DNS answers is decided in `crate::dns`, beside its server.
//!
//! Lock order (ARCHITECTURE.md's Locks has the whole of it): `create_lock` (network create and
//! remove, in `networks`), then `apply_lock` (from the snapshot of the state to the nftables
//! write, in `rules`), then the leaves `bridge` (held across the default bridge's creation),
//! `state`, `networks` and `dns`: never two of them at once, and nothing taken under one.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use wharf_network::sandbox::BridgeConfig;

use crate::dns::DnsServer;
use crate::Engine;

mod attach;
mod bridge_options;
mod config;
mod connect;
mod endpoint;
mod etc_files;
mod networks;
mod options;
mod pools;
mod ports;
mod reconcile;
mod rules;
mod views;

pub use config::{DefaultBridgeOptions, NetworkConfig};
pub(crate) use endpoint::parse_mac;
pub use endpoint::{parse_link, Endpoint, NetworkView};
pub(crate) use networks::NETWORKS;
pub use networks::{find_network_in, NetworkCreate, NetworkRecord};
pub use options::{NetAttach, NetOptions};
pub use pools::AddressPool;
pub(crate) use pools::{candidate_subnets, check_ipv6_configured, default_bridge_subnet6, parse_ipv6};
use ports::{parse_port_proto, Reservation};
pub use ports::{PortBinding, PublishedPort};

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

pub(crate) use crate::sync::lock;

impl Engine {
    fn net(&self) -> &Networking {
        &self.inner.network
    }
}
