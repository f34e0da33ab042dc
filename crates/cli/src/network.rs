//! Networking on the command line: `-p [ip:][hostPort:]containerPort[/proto]` with ranges and
//! `--expose`; `wharf network create|ls|inspect|rm|prune|connect|disconnect` and `wharf port`.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use clap::Subcommand;
use serde_json::{json, Value};
use wharf_client::{Client, PortBinding};

use crate::containers::{each, filters_param};
use crate::table::Table;

#[derive(Debug, Subcommand)]
pub enum NetCommand {
    /// Manage networks
    Network {
        #[command(subcommand)]
        command: NetworkCommand,
    },
    /// List port mappings or a specific mapping for the container
    Port {
        container: String,
        /// PRIVATE_PORT[/PROTO]
        port: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network
    Create {
        /// Driver to manage the Network
        #[arg(short = 'd', long, default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR format that represents a network segment
        #[arg(long)]
        subnet: Vec<String>,
        /// IPv4 or IPv6 Gateway for the master subnet
        #[arg(long)]
        gateway: Vec<String>,
        /// Allocate container ip from a sub-range
        #[arg(long = "ip-range")]
        ip_range: Vec<String>,
        /// Auxiliary IPv4 or IPv6 addresses used by Network driver
        #[arg(long = "aux-address")]
        aux_address: Vec<String>,
        /// Set IPAM driver specific options
        #[arg(long = "ipam-opt")]
        ipam_opt: Vec<String>,
        /// Restrict external access to the network
        #[arg(long)]
        internal: bool,
        /// Enable manual container attachment
        #[arg(long)]
        attachable: bool,
        /// Set metadata on a network
        #[arg(long)]
        label: Vec<String>,
        /// Set driver specific options
        #[arg(short = 'o', long = "opt")]
        opt: Vec<String>,
        /// Enable IPv6 networking
        #[arg(long)]
        ipv6: bool,
        /// Enable IPv4 networking (sent only when given, as the docker CLI does)
        #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
        ipv4: Option<bool>,
        /// IP Address Management Driver
        #[arg(long = "ipam-driver", default_value = "default")]
        ipam_driver: String,
        name: String,
    },
    /// List networks
    #[command(alias = "list")]
    Ls {
        /// Only display network IDs
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Provide filter values (e.g. "driver=bridge")
        #[arg(short = 'f', long = "filter")]
        filter: Vec<String>,
        /// Do not truncate the output
        #[arg(long = "no-trunc")]
        no_trunc: bool,
        /// Format output using a (small subset of a) Go template
        #[arg(long)]
        format: Option<String>,
    },
    /// Display detailed information on one or more networks
    Inspect {
        /// Format output using a (small subset of a) Go template
        #[arg(short = 'f', long)]
        format: Option<String>,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm {
        /// Do not error if the network does not exist
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove all unused networks
    Prune {
        /// Do not prompt for confirmation
        #[arg(short = 'f', long)]
        force: bool,
        /// Provide filter values (e.g. "label=<label>")
        #[arg(long = "filter")]
        filter: Vec<String>,
    },
    /// Connect a container to a network
    Connect {
        /// Add network-scoped alias for the container
        #[arg(long)]
        alias: Vec<String>,
        /// IPv4 address (e.g., "172.30.100.104")
        #[arg(long)]
        ip: Option<String>,
        /// IPv6 address (e.g., "2001:db8::33")
        #[arg(long)]
        ip6: Option<String>,
        /// driver options for the network
        #[arg(long = "driver-opt")]
        driver_opt: Vec<String>,
        /// Add link to another container
        #[arg(long)]
        link: Vec<String>,
        /// Add a link-local address for the container
        #[arg(long = "link-local-ip", value_delimiter = ',')]
        link_local_ip: Vec<String>,
        /// Highest gw-priority provides the default gateway. Accepts positive and negative values.
        #[arg(long = "gw-priority", allow_negative_numbers = true)]
        gw_priority: Option<i64>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network
    Disconnect {
        /// Force the container to disconnect from a network
        #[arg(short = 'f', long)]
        force: bool,
        network: String,
        container: String,
    },
}

fn key_values(items: &[String], what: &str) -> Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            None if !s.is_empty() => Ok((s.clone(), String::new())),
            _ => Err(anyhow!("invalid {what}: {s:?}")),
        })
        .collect()
}

/// Whether `data` (an address, or a CIDR whose address is taken) lies in `subnet`, as the
/// docker CLI's `subnetMatches`.
fn subnet_matches(subnet: &str, data: &str) -> Result<bool> {
    let bad = || anyhow!("invalid subnet: invalid CIDR address: {subnet}");
    let (net, prefix) = subnet.split_once('/').ok_or_else(bad)?;
    let net: std::net::IpAddr = net.parse().map_err(|_| bad())?;
    let prefix: u32 = prefix.parse().map_err(|_| bad())?;
    let addr = data.split_once('/').map(|(a, _)| a).unwrap_or(data);
    let Ok(ip) = addr.parse::<std::net::IpAddr>() else {
        if data.contains('/') {
            bail!("invalid CIDR address: {data}");
        }
        return Ok(false);
    };
    let bits = |ip: std::net::IpAddr| -> (u128, u32) {
        match ip {
            std::net::IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
            std::net::IpAddr::V6(v) => (u128::from(v), 128),
        }
    };
    let ((n, width), (a, width_a)) = (bits(net), bits(ip));
    if width != width_a || prefix > width {
        return Ok(false);
    }
    let mask = if prefix == 0 { 0 } else { (u128::MAX << (width - prefix)) & (u128::MAX >> (128 - width)) };
    Ok(n & mask == a & mask)
}

/// The IPAM configs of `network create`'s `--subnet`, `--gateway`, `--ip-range` and
/// `--aux-address` flags, as the docker CLI's `consolidateIpam` pairs them: each gateway, range
/// and auxiliary address with the subnet that holds it.
fn ipam_configs(subnets: &[String], gateways: &[String], ranges: &[String], aux: &[String]) -> Result<Vec<Value>> {
    if subnets.len() < ranges.len() || subnets.len() < gateways.len() {
        bail!("every ip-range or gateway must have a corresponding subnet");
    }
    let mut configs: Vec<(String, Value)> = Vec::new();
    for s in subnets {
        for (k, _) in &configs {
            if subnet_matches(s, k)? || subnet_matches(k, s)? {
                bail!("multiple overlapping subnet configuration is not supported");
            }
        }
        configs.push((s.clone(), json!({"Subnet": s})));
    }
    for (flag, key, values) in [("range", "IPRange", ranges), ("gateway", "Gateway", gateways)] {
        for v in values {
            let mut matched = false;
            for (s, c) in configs.iter_mut() {
                if !subnet_matches(s, v)? {
                    continue;
                }
                if let Some(old) = c[key].as_str() {
                    let what = if flag == "range" { "ranges" } else { "gateways" };
                    let on = if flag == "range" { "on" } else { "for" };
                    bail!("cannot configure multiple {what} ({v}, {old}) {on} the same subnet ({s})");
                }
                c[key] = json!(v);
                matched = true;
            }
            if !matched {
                bail!("no matching subnet for {flag} {v}");
            }
        }
    }
    for (name, addr) in key_values(aux, "auxiliary address")? {
        let mut matched = false;
        for (s, c) in configs.iter_mut() {
            if subnet_matches(s, &addr)? {
                c["AuxiliaryAddresses"][&name] = json!(addr);
                matched = true;
            }
        }
        if !matched {
            bail!("no matching subnet for aux-address {addr}");
        }
    }
    Ok(configs.into_iter().map(|(_, c)| c).collect())
}

pub fn run(client: &Client, cmd: NetCommand) -> Result<()> {
    match cmd {
        NetCommand::Network { command } => network(client, command),
        NetCommand::Port { container, port: p } => port(client, &container, p.as_deref()),
    }
}

fn network(client: &Client, cmd: NetworkCommand) -> Result<()> {
    match cmd {
        NetworkCommand::Create {
            driver,
            subnet,
            gateway,
            ip_range,
            aux_address,
            ipam_opt,
            internal,
            attachable,
            label,
            opt,
            ipv6,
            ipv4,
            ipam_driver,
            name,
        } => {
            let config = ipam_configs(&subnet, &gateway, &ip_range, &aux_address)?;
            let mut body = json!({
                "Name": name,
                "Driver": driver,
                "Internal": internal,
                "Attachable": attachable,
                "EnableIPv6": ipv6,
                "IPAM": {"Driver": ipam_driver, "Config": config, "Options": key_values(&ipam_opt, "IPAM option")?},
                "Options": key_values(&opt, "option")?,
                "Labels": key_values(&label, "label")?,
            });
            if let Some(v4) = ipv4 {
                body["EnableIPv4"] = json!(v4);
            }
            let v: Value = client.network_create(&body)?;
            println!("{}", v["Id"].as_str().unwrap_or_default());
            Ok(())
        }
        NetworkCommand::Ls { quiet, filter, no_trunc, format } => {
            let list: Vec<Value> = client.networks_list(&filters_param(&filter)?)?;
            let id = |n: &Value| {
                let id = n["Id"].as_str().unwrap_or_default().to_string();
                if no_trunc {
                    id
                } else {
                    id.chars().take(12).collect()
                }
            };
            let mut out = String::new();
            if quiet {
                for n in &list {
                    out.push_str(&format!("{}\n", id(n)));
                }
            } else if let Some(f) = format {
                for n in &list {
                    out.push_str(&format!("{}\n", crate::inspect::render_template(&f, n)?));
                }
            } else {
                let mut t = Table::new(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"]);
                for n in &list {
                    let s = |k: &str| n[k].as_str().unwrap_or_default().to_string();
                    t.row(vec![id(n), s("Name"), s("Driver"), s("Scope")]);
                }
                out = t.render();
            }
            print!("{out}");
            Ok(())
        }
        NetworkCommand::Inspect { format, networks } => {
            let mut found = Vec::new();
            let mut failed = false;
            for n in &networks {
                match client.network_inspect::<Value>(n) {
                    Ok(j) => found.push(j),
                    Err(e) => {
                        eprintln!("Error: {e}");
                        failed = true;
                    }
                }
            }
            match format {
                Some(f) => {
                    for n in &found {
                        println!("{}", crate::inspect::render_template(&f, n)?);
                    }
                }
                None => println!("{}", serde_json::to_string_pretty(&found)?),
            }
            if failed {
                return Err(crate::Exit::silent(1).into());
            }
            Ok(())
        }
        NetworkCommand::Rm { force, networks } => each(&networks, |n| match client.network_remove(n) {
            Err(e) if force && e.to_string().contains("not found") => Ok(()),
            Err(e) => Err(e.into()),
            Ok(()) => {
                println!("{n}");
                Ok(())
            }
        }),
        NetworkCommand::Prune { force: _, filter } => {
            let v: Value = client.networks_prune(&filters_param(&filter)?)?;
            let names: Vec<&str> = v["NetworksDeleted"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            if !names.is_empty() {
                println!("Deleted Networks:");
                for n in names {
                    println!("{n}");
                }
            }
            Ok(())
        }
        NetworkCommand::Connect {
            alias,
            ip,
            ip6,
            driver_opt,
            link,
            link_local_ip,
            gw_priority,
            network,
            container,
        } => {
            let mut ep = json!({"Aliases": alias});
            if !link.is_empty() {
                ep["Links"] = json!(link);
            }
            if !driver_opt.is_empty() {
                ep["DriverOpts"] = json!(driver_opts(&driver_opt)?);
            }
            if let Some(ipam) = ipam_config(ip.as_deref(), ip6.as_deref(), &link_local_ip) {
                ep["IPAMConfig"] = ipam;
            }
            if let Some(p) = gw_priority {
                ep["GwPriority"] = json!(p);
            }
            let body = json!({"Container": container, "EndpointConfig": ep});
            client.network_connect(&network, &body)?;
            Ok(())
        }
        NetworkCommand::Disconnect { force, network, container } => {
            let body = json!({"Container": container, "Force": force});
            client.network_disconnect(&network, &body)?;
            Ok(())
        }
    }
}

/// `network connect --driver-opt K=V`s; the docker CLI refuses one without `=` so.
fn driver_opts(items: &[String]) -> Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_string(), v.trim().to_string())),
            None => bail!("invalid key/value pair format in driver options"),
        })
        .collect()
}

/// `wharf port CONTAINER [PORT[/PROTO]]`: `80/tcp -> 0.0.0.0:8080` lines, or the addresses
/// of one port.
fn port(client: &Client, container: &str, port: Option<&str>) -> Result<()> {
    let v: Value = client.container_inspect(container, false)?;
    let ports = v["NetworkSettings"]["Ports"].as_object().cloned().unwrap_or_default();
    let mut lines = Vec::new();
    let want = port.map(|p| if p.contains('/') { p.to_string() } else { format!("{p}/tcp") });
    for (cport, bindings) in &ports {
        if want.as_ref().is_some_and(|w| w != cport) {
            continue;
        }
        for b in bindings.as_array().map(Vec::as_slice).unwrap_or_default() {
            let ip = b["HostIp"].as_str().unwrap_or_default();
            // An IPv6 address in brackets, as the docker CLI writes it (`[::]:8080`).
            let ip = if ip.contains(':') { format!("[{ip}]") } else { ip.to_string() };
            let addr = format!("{ip}:{}", b["HostPort"].as_str().unwrap_or_default());
            lines.push(if want.is_some() { addr } else { format!("{cport} -> {addr}") });
        }
    }
    if let (Some(w), true) = (&want, lines.is_empty()) {
        bail!("No public port '{w}' published for {container}");
    }
    for l in lines {
        println!("{l}");
    }
    Ok(())
}

/// An endpoint's `IPAMConfig` from `--ip`, `--ip6` and `--link-local-ip`; none when none is
/// given.
fn ipam_config(ip: Option<&str>, ip6: Option<&str>, link_local: &[String]) -> Option<Value> {
    let mut c = serde_json::Map::new();
    if let Some(ip) = ip {
        c.insert("IPv4Address".to_string(), json!(ip));
    }
    if let Some(ip6) = ip6 {
        c.insert("IPv6Address".to_string(), json!(ip6));
    }
    if !link_local.is_empty() {
        c.insert("LinkLocalIPs".to_string(), json!(link_local));
    }
    (!c.is_empty()).then_some(Value::Object(c))
}

/// One `--network` of `run`/`create`: a network's name, or the docker CLI's long form of
/// comma-separated `key=value`s (`name=N,alias=A,ip=..,ip6=..,mac-address=..,link-local-ip=..,
/// driver-opt=K=V,gw-priority=N`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct NetworkOpt {
    pub name: String,
    pub aliases: Vec<String>,
    pub ip: Option<String>,
    pub ip6: Option<String>,
    pub mac_address: Option<String>,
    pub link_local_ips: Vec<String>,
    pub driver_opts: BTreeMap<String, String>,
    pub gw_priority: i64,
}

impl NetworkOpt {
    /// Parses one `--network` value with the docker CLI's checks and messages.
    pub fn parse(value: &str) -> Result<NetworkOpt> {
        if !value.contains('=') {
            return Ok(NetworkOpt { name: value.to_string(), ..Default::default() });
        }
        let mut o = NetworkOpt::default();
        for field in crate::csv::fields(value)? {
            let field = field.as_str();
            let Some((key, val)) = field.split_once('=').filter(|(k, _)| !k.trim().is_empty()) else {
                bail!("invalid field {field}");
            };
            let val = val.trim().to_string();
            match key.trim().to_ascii_lowercase().as_str() {
                "name" => o.name = val,
                "alias" => o.aliases.push(val),
                "ip" => o.ip = Some(val),
                "ip6" => o.ip6 = Some(val),
                "mac-address" => o.mac_address = Some(val),
                "link-local-ip" => o.link_local_ips.push(val),
                "driver-opt" => {
                    let (k, v) = val
                        .split_once('=')
                        .ok_or_else(|| anyhow!("invalid key value pair format in driver options"))?;
                    o.driver_opts.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
                "gw-priority" => {
                    o.gw_priority = val
                        .parse()
                        .map_err(|_| anyhow!("invalid gw-priority: strconv.Atoi: parsing {val:?}: invalid syntax"))?
                }
                k => bail!("invalid field key {k}"),
            }
        }
        if o.name.is_empty() {
            bail!("network name/id is not specified");
        }
        Ok(o)
    }

    /// Whether anything beyond the name is set.
    fn has_settings(&self) -> bool {
        *self != NetworkOpt { name: self.name.clone(), ..Default::default() }
    }

    /// The endpoint's settings in a create body (`Aliases` always on the first network).
    fn endpoint(&self, first: bool) -> Value {
        let mut ep = json!({});
        if first || !self.aliases.is_empty() {
            ep["Aliases"] = json!(self.aliases);
        }
        if let Some(ipam) = ipam_config(self.ip.as_deref(), self.ip6.as_deref(), &self.link_local_ips) {
            ep["IPAMConfig"] = ipam;
        }
        if let Some(m) = &self.mac_address {
            ep["MacAddress"] = json!(m);
        }
        if !self.driver_opts.is_empty() {
            ep["DriverOpts"] = json!(self.driver_opts);
        }
        if self.gw_priority != 0 {
            ep["GwPriority"] = json!(self.gw_priority);
        }
        ep
    }
}

/// The create body's per-network settings from `run`/`create` flags: `legacy` (the name-less
/// `--network-alias`, `--ip`, `--ip6` and `--link-local-ip`) goes to the first `--network`,
/// which must not set them too (the docker CLI's conflicts); further ones are networks the
/// container is on as well (API 1.44's several `EndpointsConfig`).
pub fn networking_config(networks: &[NetworkOpt], legacy: &NetworkOpt) -> Result<Option<Value>> {
    let mut first = networks.first().cloned().unwrap_or_default();
    let conflict =
        |flag: &str, what: &str| anyhow!("conflicting options: cannot specify both {flag} and per-network {what}");
    if !legacy.aliases.is_empty() {
        if !first.aliases.is_empty() {
            return Err(conflict("--network-alias", "alias"));
        }
        first.aliases = legacy.aliases.clone();
    }
    if legacy.ip.is_some() {
        if first.ip.is_some() {
            return Err(conflict("--ip", "IPv4 address"));
        }
        first.ip = legacy.ip.clone();
    }
    if legacy.ip6.is_some() {
        if first.ip6.is_some() {
            return Err(conflict("--ip6", "IPv6 address"));
        }
        first.ip6 = legacy.ip6.clone();
    }
    if !legacy.link_local_ips.is_empty() {
        if !first.link_local_ips.is_empty() {
            return Err(conflict("--link-local-ip", "link-local IP addresses"));
        }
        first.link_local_ips = legacy.link_local_ips.clone();
    }
    if !first.has_settings() && networks.len() < 2 {
        return Ok(None);
    }
    let name = if first.name.is_empty() { "default".to_string() } else { first.name.clone() };
    let mut eps = serde_json::Map::new();
    eps.insert(name, first.endpoint(true));
    for n in networks.iter().skip(1) {
        if eps.contains_key(&n.name) {
            bail!("network {:?} is specified multiple times", n.name);
        }
        eps.insert(n.name.clone(), n.endpoint(false));
    }
    Ok(Some(json!({"EndpointsConfig": eps})))
}

/// The create body's `ExposedPorts` and `HostConfig.PortBindings` from `-p` and `--expose`.
#[derive(Debug, Default, PartialEq)]
pub struct Ports {
    pub exposed: BTreeMap<String, serde_json::Value>,
    pub bindings: BTreeMap<String, Vec<PortBinding>>,
}

fn range(s: &str, what: &str) -> Result<(u16, u16)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    match (a.parse::<u16>(), b.parse::<u16>()) {
        (Ok(a), Ok(b)) if a <= b => Ok((a, b)),
        _ => bail!("invalid {what}: {s}"),
    }
}

pub fn parse_ports(publish: &[String], expose: &[String]) -> Result<Ports> {
    let mut out = Ports::default();
    for e in expose {
        let (p, proto) = e.split_once('/').unwrap_or((e, "tcp"));
        let (a, b) = range(p, "range format for --expose specification")?;
        for port in a..=b {
            out.exposed.insert(format!("{port}/{proto}"), serde_json::json!({}));
        }
    }
    for spec in publish {
        let (rest, proto) = spec.rsplit_once('/').unwrap_or((spec, "tcp"));
        if proto != "tcp" && proto != "udp" && proto != "sctp" {
            bail!("invalid proto: {proto}");
        }
        // ip:hostPort:containerPort, hostPort:containerPort, or containerPort.
        let parts: Vec<&str> = rest.rsplitn(3, ':').collect();
        let (ip, host, cport) = match parts.as_slice() {
            [c] => ("", "", *c),
            [c, h] => ("", *h, *c),
            [c, h, ip] => (*ip, *h, *c),
            _ => bail!("invalid port specification: {spec:?}"),
        };
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
            bail!("invalid IP address: {ip}");
        }
        let (ca, cb) = range(cport, "containerPort")?;
        if ca == 0 {
            bail!("invalid containerPort: {cport}");
        }
        let hosts = if host.is_empty() { None } else { Some(range(host, "hostPort")?) };
        if let Some((ha, hb)) = hosts {
            if hb - ha != cb - ca && ha != hb {
                bail!("invalid ranges specified for container and host Ports: {cport} and {host}");
            }
        }
        for (i, port) in (ca..=cb).enumerate() {
            let key = format!("{port}/{proto}");
            let host_port = match hosts {
                None => String::new(),
                Some((ha, hb)) if ha == hb => ha.to_string(),
                Some((ha, _)) => (ha + i as u16).to_string(),
            };
            out.exposed.insert(key.clone(), serde_json::json!({}));
            out.bindings.entry(key).or_default().push(PortBinding { host_ip: ip.to_string(), host_port });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// container port, host ip, host port
    type Want = &'static [(&'static str, &'static str, &'static str)];

    #[test]
    fn networking_config_table() {
        let net = |v: &str| NetworkOpt::parse(v).unwrap();
        let nets = |v: &[&str]| v.iter().map(|x| net(x)).collect::<Vec<_>>();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let legacy = |aliases: &[&str], ip: Option<&str>, ip6: Option<&str>, ll: &[&str]| NetworkOpt {
            aliases: s(aliases),
            ip: ip.map(str::to_string),
            ip6: ip6.map(str::to_string),
            link_local_ips: s(ll),
            ..Default::default()
        };
        type Case = (Vec<NetworkOpt>, NetworkOpt, Option<serde_json::Value>);
        let cases: Vec<Case> = vec![
            (nets(&["a"]), legacy(&[], None, None, &[]), None),
            (
                vec![],
                legacy(&["x"], None, None, &[]),
                Some(json!({"EndpointsConfig": {"default": {"Aliases": ["x"]}}})),
            ),
            (
                nets(&["a", "b"]),
                legacy(&[], Some("10.0.0.9"), None, &[]),
                Some(
                    json!({"EndpointsConfig": {"a": {"Aliases": [], "IPAMConfig": {"IPv4Address": "10.0.0.9"}}, "b": {}}}),
                ),
            ),
            (
                nets(&["a"]),
                legacy(&[], None, Some("fd00::9"), &[]),
                Some(json!({"EndpointsConfig": {"a": {"Aliases": [], "IPAMConfig": {"IPv6Address": "fd00::9"}}}})),
            ),
            (
                nets(&["a"]),
                legacy(&[], Some("10.0.0.9"), Some("fd00::9"), &["169.254.1.1", "fe80::1"]),
                Some(json!({"EndpointsConfig": {"a": {"Aliases": [], "IPAMConfig": {
                    "IPv4Address": "10.0.0.9", "IPv6Address": "fd00::9", "LinkLocalIPs": ["169.254.1.1", "fe80::1"]}}}})),
            ),
            (
                nets(&[
                    "name=a,gw-priority=-2,alias=x,link-local-ip=169.254.0.9",
                    "name=b,gw-priority=3,driver-opt=K=v",
                ]),
                legacy(&[], None, None, &[]),
                Some(json!({"EndpointsConfig": {
                    "a": {"Aliases": ["x"], "IPAMConfig": {"LinkLocalIPs": ["169.254.0.9"]}, "GwPriority": -2},
                    "b": {"DriverOpts": {"k": "v"}, "GwPriority": 3}}})),
            ),
        ];
        for (nets, legacy, want) in &cases {
            assert_eq!(&networking_config(nets, legacy).unwrap(), want, "{nets:?}");
        }
        let err = |nets: &[NetworkOpt], l: &NetworkOpt| networking_config(nets, l).unwrap_err().to_string();
        assert_eq!(
            err(&nets(&["name=a,link-local-ip=169.254.0.9"]), &legacy(&[], None, None, &["169.254.0.8"])),
            "conflicting options: cannot specify both --link-local-ip and per-network link-local IP addresses"
        );
        assert_eq!(err(&nets(&["a", "a"]), &legacy(&[], None, None, &[])), "network \"a\" is specified multiple times");
        assert_eq!(NetworkOpt::parse("alias=x").unwrap_err().to_string(), "network name/id is not specified");
        assert_eq!(NetworkOpt::parse("name=a,foo=1").unwrap_err().to_string(), "invalid field key foo");
        assert!(NetworkOpt::parse("name=a,gw-priority=x").is_err());
        // Read as one CSV record, as the docker CLI reads it: a quoted field may hold commas.
        let quoted = NetworkOpt::parse(r#"name=a,"driver-opt=com.example.list=x,y",alias=b"#).unwrap();
        assert_eq!(quoted.driver_opts.get("com.example.list").map(String::as_str), Some("x,y"));
        assert_eq!(quoted.aliases, ["b"]);
        assert!(NetworkOpt::parse(r#"name=a"b"#).unwrap_err().to_string().contains("bare \" in non-quoted-field"));
    }

    #[test]
    fn ipam_configs_pair_gateways_and_ranges_with_their_subnets() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let got = ipam_configs(
            &s(&["10.1.0.0/24", "fd00:1::/64"]),
            &s(&["fd00:1::fe", "10.1.0.254"]),
            &s(&["fd00:1::100/120"]),
            &s(&["a=10.1.0.7", "b=fd00:1::7"]),
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                json!({"Subnet": "10.1.0.0/24", "Gateway": "10.1.0.254", "AuxiliaryAddresses": {"a": "10.1.0.7"}}),
                json!({"Subnet": "fd00:1::/64", "Gateway": "fd00:1::fe", "IPRange": "fd00:1::100/120",
                       "AuxiliaryAddresses": {"b": "fd00:1::7"}}),
            ]
        );
        assert!(ipam_configs(&[], &[], &[], &[]).unwrap().is_empty());
        let e = ipam_configs(&s(&["10.1.0.0/24"]), &[], &[], &s(&["a=10.2.0.7"])).unwrap_err().to_string();
        assert_eq!(e, "no matching subnet for aux-address 10.2.0.7");
        type Bad = (&'static [&'static str], &'static [&'static str], &'static [&'static str], &'static str);
        let bad: &[Bad] = &[
            (&[], &["10.1.0.1"], &[], "every ip-range or gateway must have a corresponding subnet"),
            (&["fd00:1::/64"], &["fd00:2::1"], &[], "no matching subnet for gateway fd00:2::1"),
            (&["10.1.0.0/24"], &[], &["10.2.0.0/25"], "no matching subnet for range 10.2.0.0/25"),
            (&["fd00:1::/64", "fd00:1::/48"], &[], &[], "multiple overlapping subnet configuration is not supported"),
            (&["fd00:1::/64", "fd00:2::/64"], &["fd00:1::1", "fd00:1::2"], &[], "cannot configure multiple gateways"),
            (&["nonsense"], &["10.1.0.1"], &[], "invalid subnet"),
        ];
        for (subnets, gws, ranges, want) in bad {
            let e = ipam_configs(&s(subnets), &s(gws), &s(ranges), &[]).unwrap_err().to_string();
            assert!(e.contains(want), "{subnets:?} {gws:?} {ranges:?}: {e}");
        }
    }

    #[test]
    fn publish_table() {
        let cases: &[(&str, Option<Want>)] = &[
            ("80", Some(&[("80/tcp", "", "")])),
            ("8080:80", Some(&[("80/tcp", "", "8080")])),
            ("127.0.0.1:8080:80/udp", Some(&[("80/udp", "127.0.0.1", "8080")])),
            ("127.0.0.1::80", Some(&[("80/tcp", "127.0.0.1", "")])),
            ("8000-8001:80-81", Some(&[("80/tcp", "", "8000"), ("81/tcp", "", "8001")])),
            ("80/xyz", None),
            ("a:80", None),
            ("8000-8002:80-81", None),
            ("0", None),
        ];
        for (spec, want) in cases {
            let got = parse_ports(&[spec.to_string()], &[]);
            match want {
                None => assert!(got.is_err(), "{spec}: {got:?}"),
                Some(w) => {
                    let got = got.unwrap();
                    for (k, ip, hp) in *w {
                        assert_eq!(
                            got.bindings[*k],
                            vec![PortBinding { host_ip: ip.to_string(), host_port: hp.to_string() }],
                            "{spec}"
                        );
                    }
                }
            }
        }
    }
}
