//! Networking in Docker's JSON: the `/networks` endpoints (create, list, inspect, remove,
//! prune, connect, disconnect), the network parts of a create body (`PortBindings`,
//! `NetworkingConfig`, `Dns*`, `ExtraHosts`, `MacAddress`), and the `NetworkSettings`/`Ports`
//! of inspect and list built from a container's endpoint.

use std::collections::BTreeMap;

use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use wharf_engine::{ContainerRecord, Endpoint, NetAttach, NetOptions, NetworkCreate, NetworkRecord, PortBinding};
use wharf_types::digest::short_id;

use crate::body::Body;
use crate::error::ApiError;
use crate::router::{empty, json, Ctx, Result};

/// The resolver part of a create's `HostConfig`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetHostBody {
    dns: Option<Vec<String>>,
    dns_search: Option<Vec<String>>,
    dns_options: Option<Vec<String>>,
    extra_hosts: Option<Vec<String>>,
    links: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamConfigBody {
    #[serde(rename = "IPv4Address")]
    ipv4_address: Option<String>,
    #[serde(rename = "IPv6Address")]
    ipv6_address: Option<String>,
    #[serde(rename = "LinkLocalIPs")]
    link_local_ips: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointBody {
    aliases: Option<Vec<String>>,
    #[serde(rename = "IPAMConfig")]
    ipam_config: Option<IpamConfigBody>,
    mac_address: Option<String>,
    links: Option<Vec<String>>,
    driver_opts: Option<BTreeMap<String, String>>,
    /// API 1.48; taken at any version (the wharf CLI sends it to this 1.45 daemon).
    gw_priority: Option<i64>,
}

/// An endpoint's settings as the engine keeps them for `network`.
fn attach_of(network: String, e: EndpointBody) -> NetAttach {
    let ipam = e.ipam_config.unwrap_or_default();
    NetAttach {
        network,
        aliases: e.aliases.unwrap_or_default(),
        ipv4_address: ipam.ipv4_address.filter(|a| !a.is_empty()),
        ipv6_address: ipam.ipv6_address.filter(|a| !a.is_empty()),
        links: e.links.unwrap_or_default(),
        mac_address: e.mac_address.filter(|m| !m.is_empty()),
        driver_opts: e.driver_opts.unwrap_or_default(),
        link_local_ips: ipam.link_local_ips.unwrap_or_default(),
        gw_priority: e.gw_priority.unwrap_or(0),
    }
}

/// A create's `NetworkingConfig`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkingConfigBody {
    endpoints_config: Option<BTreeMap<String, Option<EndpointBody>>>,
}

/// The engine's network options of a create: the endpoint settings of the network the
/// container is created on (`NetworkMode`, else the first one given); further
/// `EndpointsConfig` entries (API 1.44: `run --network a --network b`) are networks it is
/// connected to as well.
pub fn net_options(
    hc: NetHostBody,
    mac: Option<String>,
    nc: Option<NetworkingConfigBody>,
    mode: Option<&str>,
) -> NetOptions {
    let mut eps = nc.and_then(|n| n.endpoints_config).unwrap_or_default();
    let ep = match mode.filter(|m| !m.is_empty() && *m != "default") {
        Some(m) => eps.remove(m).flatten(),
        None => eps.pop_first().and_then(|(_, e)| e),
    }
    .unwrap_or_default();
    if mode == Some("default") {
        eps.remove("bridge");
    }
    let networks = eps.into_iter().map(|(network, e)| attach_of(network, e.unwrap_or_default())).collect();
    let ipam = ep.ipam_config.unwrap_or_default();
    NetOptions {
        networks,
        detached: false,
        aliases: ep.aliases.unwrap_or_default(),
        ipv4_address: ipam.ipv4_address.filter(|a| !a.is_empty()),
        ipv6_address: ipam.ipv6_address.filter(|a| !a.is_empty()),
        mac_address: ep.mac_address.or(mac).filter(|m| !m.is_empty()),
        driver_opts: ep.driver_opts.unwrap_or_default(),
        link_local_ips: ipam.link_local_ips.unwrap_or_default(),
        gw_priority: ep.gw_priority.unwrap_or(0),
        dns: hc.dns.unwrap_or_default(),
        dns_search: hc.dns_search.unwrap_or_default(),
        dns_options: hc.dns_options.unwrap_or_default(),
        extra_hosts: hc.extra_hosts.unwrap_or_default(),
        // The docker CLI sends `--link` both in HostConfig and in the network's endpoint.
        links: {
            let mut links = hc.links.unwrap_or_default();
            links.extend(ep.links.unwrap_or_default().into_iter().filter(|l| !links.contains(l)).collect::<Vec<_>>());
            links
        },
    }
}

/// `HostConfig` fields of inspect for the network options.
pub fn host_config_json(into: &mut Value, o: &NetOptions) {
    into["Dns"] = json!(o.dns);
    into["DnsSearch"] = json!(o.dns_search);
    into["DnsOptions"] = json!(o.dns_options);
    into["ExtraHosts"] = if o.extra_hosts.is_empty() { Value::Null } else { json!(o.extra_hosts) };
}

/// `HostConfig.Links` as dockerd shows them: `/name:/container/alias`.
pub fn links_json(container: &str, o: &NetOptions) -> Value {
    let links: Vec<String> = o
        .links
        .iter()
        .filter_map(|l| wharf_engine::parse_link(l))
        .map(|(name, alias)| format!("/{name}:/{container}/{alias}"))
        .collect();
    if links.is_empty() {
        Value::Null
    } else {
        json!(links)
    }
}

fn network_json(ctx: &Ctx, n: &NetworkRecord, with_containers: bool) -> Value {
    let mut containers = serde_json::Map::new();
    if with_containers {
        for (id, ep) in ctx.engine.network_endpoints(n) {
            let name = ctx.engine.find_container(&id).map(|c| c.name).unwrap_or_default();
            containers.insert(
                id.clone(),
                json!({
                    "Name": name,
                    "EndpointID": ep.endpoint_id(),
                    "MacAddress": ep.mac,
                    "IPv4Address": ep.ip.map(|ip| format!("{ip}/{}", ep.prefix)).unwrap_or_default(),
                    "IPv6Address": ep.ip6.map(|ip| format!("{ip}/{}", ep.prefix6)).unwrap_or_default(),
                }),
            );
        }
    }
    let mut ipam_config: Vec<Value> = if n.subnet.is_empty() {
        Vec::new()
    } else {
        let mut c = json!({"Subnet": n.subnet});
        if n.show_gateway {
            c["Gateway"] = json!(n.gateway);
        }
        if let Some(r) = &n.ip_range {
            c["IPRange"] = json!(r);
        }
        if let Some(aux) = aux_of(n, false) {
            c["AuxiliaryAddresses"] = aux;
        }
        vec![c]
    };
    // The IPv6 pool as dockerd shows it: as given, a gateway only when one was.
    if let Some(s6) = &n.subnet6 {
        let mut c = json!({"Subnet": s6});
        if let Some(r) = &n.ip_range6 {
            c["IPRange"] = json!(r);
        }
        if let Some(g) = &n.gateway6 {
            c["Gateway"] = json!(g);
        }
        if let Some(aux) = aux_of(n, true) {
            c["AuxiliaryAddresses"] = aux;
        }
        ipam_config.push(c);
    }
    // dockerd's default IPAM shows `Options` as given, and null for none.
    let ipam_options = if n.ipam_options.is_empty() { Value::Null } else { json!(n.ipam_options) };
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": if n.created.is_empty() { "0001-01-01T00:00:00Z" } else { n.created.as_str() },
        "Scope": n.scope,
        "Driver": n.driver,
        "EnableIPv6": n.enable_ipv6,
        "IPAM": {"Driver": "default", "Options": ipam_options, "Config": ipam_config},
        "Internal": n.internal,
        "Attachable": n.attachable,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": n.options,
        "Labels": n.labels,
    })
}

/// The `AuxiliaryAddresses` of a network's IPv4 or IPv6 pool (omitted when none, as dockerd).
fn aux_of(n: &NetworkRecord, v6: bool) -> Option<Value> {
    let aux: BTreeMap<&String, &String> = n.aux_addresses.iter().filter(|(_, a)| a.contains(':') == v6).collect();
    (!aux.is_empty()).then(|| json!(aux))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IpamPoolBody {
    #[serde(rename = "Subnet")]
    subnet: Option<String>,
    #[serde(rename = "Gateway")]
    gateway: Option<String>,
    #[serde(rename = "IPRange")]
    ip_range: Option<String>,
    #[serde(rename = "AuxiliaryAddresses")]
    aux_addresses: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct IpamBody {
    driver: Option<String>,
    config: Option<Vec<IpamPoolBody>>,
    options: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct NetworkCreateBody {
    name: String,
    driver: Option<String>,
    internal: bool,
    attachable: bool,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: bool,
    /// API 1.47 (the docker 28 CLI sends it only with `--ipv4`).
    #[serde(rename = "EnableIPv4")]
    enable_ipv4: Option<bool>,
    #[serde(rename = "IPAM")]
    ipam: Option<IpamBody>,
    options: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

impl IpamPoolBody {
    /// Whether the pool is an IPv6 one: its subnet (or, without one, its gateway or range)
    /// is written as IPv6.
    fn is_v6(&self) -> bool {
        [&self.subnet, &self.gateway, &self.ip_range]
            .into_iter()
            .find_map(|f| f.as_deref().filter(|v| !v.is_empty()))
            .is_some_and(|v| v.contains(':'))
    }
}

/// `POST /networks/create`.
pub async fn create(ctx: &Ctx, body: Bytes) -> Result<Response<Body>> {
    let b: NetworkCreateBody = crate::decode::json_body(&body, "invalid network config")?;
    // dockerd 20.10 (API 1.41) knows no `EnableIPv4` and would make an IPv4 network anyway;
    // wharf says so rather than ignore an explicit `--ipv4=false`.
    if b.enable_ipv4 == Some(false) {
        return Err(ApiError::bad_request(
            "IPv6-only networks (EnableIPv4=false, API 1.47) are not supported: every network has an IPv4 subnet",
        ));
    }
    let ipam = b.ipam.unwrap_or_default();
    if ipam.driver.as_deref().is_some_and(|d| !d.is_empty() && d != "default") {
        return Err(ApiError::bad_request(format!(
            "IPAM driver {:?} is not supported",
            ipam.driver.unwrap_or_default()
        )));
    }
    // One IPv4 pool and one IPv6 pool at most (dockerd's bridge driver takes no more).
    let (mut pools6, mut pools): (Vec<IpamPoolBody>, Vec<IpamPoolBody>) =
        ipam.config.unwrap_or_default().into_iter().partition(IpamPoolBody::is_v6);
    if pools.len() > 1 {
        return Err(ApiError::bad_request("only one IPv4 subnet per network is supported"));
    }
    if pools6.len() > 1 {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "bridge driver doesn't support multiple subnets"));
    }
    let mut pool = pools.pop().unwrap_or_default();
    let mut pool6 = pools6.pop().unwrap_or_default();
    let mut aux_addresses = pool.aux_addresses.take().unwrap_or_default();
    aux_addresses.extend(pool6.aux_addresses.take().unwrap_or_default());
    for p in [&pool, &pool6] {
        if p.subnet.as_deref().is_none_or(str::is_empty) && (p.gateway.is_some() || p.ip_range.is_some()) {
            return Err(ApiError::bad_request("gateway and ip-range need a subnet"));
        }
    }
    let req = NetworkCreate {
        name: b.name,
        driver: b.driver,
        subnet: pool.subnet.filter(|s| !s.is_empty()),
        gateway: pool.gateway.filter(|s| !s.is_empty()),
        ip_range: pool.ip_range.filter(|s| !s.is_empty()),
        internal: b.internal,
        attachable: b.attachable,
        labels: b.labels.unwrap_or_default(),
        options: b.options.unwrap_or_default(),
        enable_ipv6: b.enable_ipv6,
        subnet6: pool6.subnet.filter(|s| !s.is_empty()),
        gateway6: pool6.gateway.filter(|s| !s.is_empty()),
        ip_range6: pool6.ip_range.filter(|s| !s.is_empty()),
        aux_addresses,
        ipam_options: ipam.options.unwrap_or_default(),
    };
    let n = ctx.engine.create_network(req).await?;
    json(StatusCode::CREATED, &json!({"Id": n.id, "Warning": ""}))
}

fn label_matches(n: &NetworkRecord, f: &str) -> bool {
    match f.split_once('=') {
        Some((k, v)) => n.labels.get(k).is_some_and(|x| x == v),
        None => n.labels.contains_key(f),
    }
}

/// `GET /networks` with filters `name`, `id`, `label`, `driver`, `type` (`custom`, `builtin`).
pub fn list(ctx: &Ctx) -> Result<Response<Body>> {
    let filters = ctx.query.filters()?;
    for k in filters.keys() {
        if !["name", "id", "label", "driver", "type", "scope", "dangling"].contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!("Invalid filter '{k}'")));
        }
    }
    let any = |k: &str, pred: &dyn Fn(&str) -> bool| filters.get(k).is_none_or(|vs| vs.iter().any(|v| pred(v)));
    let out: Vec<Value> = ctx
        .engine
        .list_networks()
        .iter()
        .filter(|n| any("name", &|v| n.name.contains(v)))
        .filter(|n| any("id", &|v| n.id.starts_with(v)))
        .filter(|n| filters.get("label").is_none_or(|vs| vs.iter().all(|v| label_matches(n, v))))
        .filter(|n| any("driver", &|v| n.driver == v))
        .filter(|n| any("scope", &|v| n.scope == v))
        .filter(|n| any("type", &|v| (v == "builtin") == n.predefined))
        .filter(|n| {
            any("dangling", &|v| {
                let unused = !n.predefined && ctx.engine.network_endpoints(n).is_empty();
                (v == "true" || v == "1") == unused
            })
        })
        .map(|n| network_json(ctx, n, false))
        .collect();
    json(StatusCode::OK, &out)
}

/// `GET /networks/{id}`.
pub fn inspect(ctx: &Ctx, name: &str) -> Result<Response<Body>> {
    let n = ctx.engine.find_network(name)?;
    json(StatusCode::OK, &network_json(ctx, &n, true))
}

/// `DELETE /networks/{id}`.
pub async fn remove(ctx: &Ctx, name: &str) -> Result<Response<Body>> {
    ctx.engine.remove_network(name).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /networks/prune` with `label` / `label!` filters.
pub async fn prune(ctx: &Ctx) -> Result<Response<Body>> {
    let filters = ctx.query.filters()?;
    let mut labels = Vec::new();
    for (k, vs) in &filters {
        match k.as_str() {
            "label" => labels.extend(vs.iter().map(|v| (v.clone(), true))),
            "label!" => labels.extend(vs.iter().map(|v| (v.clone(), false))),
            other => return Err(ApiError::bad_request(format!("Invalid filter '{other}'"))),
        }
    }
    let removed = ctx.engine.prune_networks(labels).await?;
    json(StatusCode::OK, &json!({"NetworksDeleted": removed}))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: String,
    endpoint_config: Option<EndpointBody>,
    force: bool,
}

/// `POST /networks/{id}/connect`.
pub async fn connect(ctx: &Ctx, name: &str, body: Bytes) -> Result<Response<Body>> {
    let b: ConnectBody = crate::decode::json_body(&body, "invalid connect request")?;
    let endpoint = attach_of(name.to_string(), b.endpoint_config.unwrap_or_default());
    ctx.engine.connect_network(name, &b.container, endpoint).await?;
    Ok(empty(StatusCode::OK))
}

/// `POST /networks/{id}/disconnect`.
pub async fn disconnect(ctx: &Ctx, name: &str, body: Bytes) -> Result<Response<Body>> {
    let b: ConnectBody = crate::decode::json_body(&body, "invalid disconnect request")?;
    ctx.engine.disconnect_network(name, &b.container, b.force).await?;
    Ok(empty(StatusCode::OK))
}

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBindingBody {
    host_ip: String,
    host_port: String,
}

/// `{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}` → the engine's bindings.
pub fn port_bindings(
    body: Option<BTreeMap<String, Option<Vec<PortBindingBody>>>>,
) -> BTreeMap<String, Vec<PortBinding>> {
    body.unwrap_or_default()
        .into_iter()
        .map(|(port, bs)| {
            let bs = bs
                .unwrap_or_default()
                .into_iter()
                .map(|b| PortBinding { host_ip: b.host_ip, host_port: b.host_port })
                .collect();
            (port, bs)
        })
        .collect()
}

/// `HostConfig.PortBindings` of inspect.
pub fn port_bindings_json(c: &ContainerRecord) -> Value {
    let m: BTreeMap<&str, Vec<Value>> = c
        .host_config
        .port_bindings
        .iter()
        .map(|(p, bs)| (p.as_str(), bs.iter().map(|b| json!({"HostIp": b.host_ip, "HostPort": b.host_port})).collect()))
        .collect();
    json!(m)
}

/// `NetworkSettings.Ports`: every exposed port, with its host bindings while it runs or null.
fn ports_map(c: &ContainerRecord, ep: Option<&Endpoint>) -> Value {
    let mut m: BTreeMap<String, Value> = BTreeMap::new();
    // A container without networking has no ports, exposed or not, as in dockerd.
    if ep.is_none() || c.host_config.network_mode == "none" {
        return json!(m);
    }
    for p in &c.config.exposed_ports {
        let p = if p.contains('/') { p.clone() } else { format!("{p}/tcp") };
        m.insert(p, Value::Null);
    }
    for p in ep.map(|e| e.ports.as_slice()).unwrap_or_default() {
        let entry = m.entry(p.container_port.clone()).or_insert(Value::Null);
        if entry.is_null() {
            *entry = json!([]);
        }
        if let Value::Array(a) = entry {
            a.push(json!({"HostIp": p.host_ip, "HostPort": p.host_port.to_string()}));
        }
    }
    json!(m)
}

/// `NetworkSettings` of inspect: every network the container is on, with its address
/// while it runs; the top-level address fields are those on the default bridge (empty on
/// user networks, as dockerd has them), the ports those of the endpoint that carries them.
pub fn settings_json(ctx: &Ctx, c: &ContainerRecord) -> Value {
    let ep = ctx.engine.ports_endpoint(&c.id);
    let ep = ep.as_ref();
    let on_bridge =
        ctx.engine.container_endpoints(&c.id).into_iter().find(|e| e.network == "bridge" && e.network_id.is_empty());
    let first = on_bridge.as_ref().filter(|e| e.ip.is_some());
    let ip = first.and_then(|e| e.ip).map(|i| i.to_string()).unwrap_or_default();
    let gw = first.and_then(|e| e.gateway).map(|i| i.to_string()).unwrap_or_default();
    let prefix = first.map(|e| e.prefix).unwrap_or(0);
    let mac = first.map(|e| e.mac.clone()).unwrap_or_default();
    let ip6 = first.and_then(|e| e.ip6);
    json!({
        "Bridge": "",
        "SandboxID": if ep.is_some() { c.id.clone() } else { String::new() },
        "Ports": ports_map(c, ep),
        "SandboxKey": ep.map(|e| e.netns.display().to_string()).unwrap_or_default(),
        "IPAddress": ip,
        "IPPrefixLen": prefix,
        "Gateway": gw,
        "MacAddress": mac,
        "Networks": networks_map(ctx, c, &ctx.engine.list_networks()),
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": first.map(|e| e.endpoint_id()).unwrap_or_default(),
        "GlobalIPv6Address": ip6.map(|i| i.to_string()).unwrap_or_default(),
        "GlobalIPv6PrefixLen": if ip6.is_some() { first.map(|e| e.prefix6).unwrap_or(0) } else { 0 },
        "IPv6Gateway": first.filter(|_| ip6.is_some()).and_then(|e| e.gateway6).map(|g| g.to_string()).unwrap_or_default(),
    })
}

/// `NetworkSettings` of a container list entry: its networks.
pub fn list_settings(ctx: &Ctx, c: &ContainerRecord, networks: &[NetworkRecord]) -> ListSettings {
    ListSettings { networks: networks_map(ctx, c, networks) }
}

/// `NetworkSettings` of a container list entry.
#[derive(Serialize)]
pub struct ListSettings {
    #[serde(rename = "Networks")]
    networks: BTreeMap<String, EndpointSettings>,
}

/// `NetworkSettings.Networks`: every network the container is on, by name.
/// `all`: the engine's `list_networks`.
fn networks_map(ctx: &Ctx, c: &ContainerRecord, all: &[NetworkRecord]) -> BTreeMap<String, EndpointSettings> {
    let mut networks = BTreeMap::new();
    if c.host_config.network_mode == "host" {
        if let Ok(n) = wharf_engine::find_network_in(all, "host") {
            networks
                .insert(n.name.clone(), EndpointSettings::new(c, n, &[], &[], &BTreeMap::new(), (None, None), None));
        }
    }
    for v in ctx.engine.container_network_views_among(c, all) {
        let ipam = (v.ipv4_address.as_deref(), v.ipv6_address.as_deref());
        let mut entry =
            EndpointSettings::new(c, &v.network, &v.aliases, &v.links, &v.driver_opts, ipam, v.endpoint.as_ref());
        if !v.link_local_ips.is_empty() {
            entry.ipam_config.get_or_insert_with(IpamConfig::default).link_local_ips = v.link_local_ips.clone();
        }
        entry.gw_priority = v.gw_priority;
        networks.insert(v.network.name.clone(), entry);
    }
    networks
}

/// One entry of `NetworkSettings.Networks`: dockerd's `EndpointSettings`, in its field order.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EndpointSettings {
    /// Go's `omitempty` inside: only the addresses given; `null` when none is.
    #[serde(rename = "IPAMConfig")]
    ipam_config: Option<IpamConfig>,
    links: Option<Vec<String>>,
    aliases: Option<Vec<String>>,
    mac_address: String,
    driver_opts: Option<BTreeMap<String, String>>,
    gw_priority: i64,
    #[serde(rename = "NetworkID")]
    network_id: String,
    #[serde(rename = "EndpointID")]
    endpoint_id: String,
    gateway: String,
    #[serde(rename = "IPAddress")]
    ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    ip_prefix_len: u8,
    #[serde(rename = "IPv6Gateway")]
    ipv6_gateway: String,
    #[serde(rename = "GlobalIPv6Address")]
    global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    global_ipv6_prefix_len: u8,
}

#[derive(Serialize, Default)]
struct IpamConfig {
    #[serde(rename = "IPv4Address", skip_serializing_if = "Option::is_none")]
    ipv4_address: Option<String>,
    #[serde(rename = "IPv6Address", skip_serializing_if = "Option::is_none")]
    ipv6_address: Option<String>,
    #[serde(rename = "LinkLocalIPs", skip_serializing_if = "Vec::is_empty")]
    link_local_ips: Vec<String>,
}

impl EndpointSettings {
    fn new(
        c: &ContainerRecord,
        n: &NetworkRecord,
        aliases: &[String],
        links: &[String],
        driver_opts: &BTreeMap<String, String>,
        (ipv4, ipv6): (Option<&str>, Option<&str>),
        ep: Option<&Endpoint>,
    ) -> EndpointSettings {
        let aliases = if n.predefined {
            None
        } else {
            let mut a = aliases.to_vec();
            // Compose passes the short id itself when it connects a network: listed once, as
            // dockerd lists it.
            let short = short_id(&c.id).to_string();
            if !a.contains(&short) {
                a.push(short);
            }
            Some(a)
        };
        let ipam_config = (ipv4.is_some() || ipv6.is_some()).then(|| IpamConfig {
            ipv4_address: ipv4.map(str::to_string),
            ipv6_address: ipv6.map(str::to_string),
            link_local_ips: Vec::new(),
        });
        let on = ep.filter(|e| e.ip.is_some());
        let ip6 = on.and_then(|e| e.ip6);
        EndpointSettings {
            ipam_config,
            links: (!links.is_empty() && !n.predefined).then(|| links.to_vec()),
            aliases,
            mac_address: on.map(|e| e.mac.clone()).unwrap_or_default(),
            driver_opts: (!driver_opts.is_empty()).then(|| driver_opts.clone()),
            gw_priority: 0,
            network_id: n.id.clone(),
            endpoint_id: ep.map(|e| e.endpoint_id()).unwrap_or_default(),
            gateway: on.and_then(|e| e.gateway).map(|g| g.to_string()).unwrap_or_default(),
            ip_address: on.and_then(|e| e.ip).map(|g| g.to_string()).unwrap_or_default(),
            ip_prefix_len: on.map(|e| e.prefix).unwrap_or(0),
            ipv6_gateway: on
                .filter(|_| ip6.is_some())
                .and_then(|e| e.gateway6)
                .map(|g| g.to_string())
                .unwrap_or_default(),
            global_ipv6_address: ip6.map(|i| i.to_string()).unwrap_or_default(),
            global_ipv6_prefix_len: if ip6.is_some() { on.map(|e| e.prefix6).unwrap_or(0) } else { 0 },
        }
    }
}

/// `Ports` of a container list entry.
pub fn list_ports_json(c: &ContainerRecord, ep: Option<&Endpoint>) -> Value {
    let mut out = Vec::new();
    if c.host_config.network_mode == "none" {
        return json!(out);
    }
    for p in ep.map(|e| e.ports.as_slice()).unwrap_or_default() {
        let (port, proto) = p.container_port.split_once('/').unwrap_or((&p.container_port, "tcp"));
        out.push(json!({
            "IP": p.host_ip,
            "PrivatePort": port.parse::<u16>().unwrap_or(0),
            "PublicPort": p.host_port,
            "Type": proto,
        }));
    }
    for p in &c.config.exposed_ports {
        let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
        if !ep.is_some_and(|e| e.ports.iter().any(|q| q.container_port == format!("{port}/{proto}"))) {
            out.push(json!({"PrivatePort": port.parse::<u16>().unwrap_or(0), "Type": proto}));
        }
    }
    json!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_bindings_from_body() {
        let body: BTreeMap<String, Option<Vec<PortBindingBody>>> =
            serde_json::from_str(r#"{"80/tcp":[{"HostIp":"","HostPort":"8080"}],"53/udp":null}"#).unwrap();
        let got = port_bindings(Some(body));
        assert_eq!(got["80/tcp"], vec![PortBinding { host_ip: String::new(), host_port: "8080".into() }]);
        assert!(got["53/udp"].is_empty());
    }
}
