//! The files a container's namespace is given about its network, rendered here only:
//! /etc/hostname, /etc/hosts (loopback names, its own addresses, legacy links on the default
//! bridge, `--add-host` lines) and /etc/resolv.conf (the embedded DNS, `--dns*` or the
//! host's), written at its start and updated in place as it is connected and disconnected;
//! and the environment variables of legacy links.

use std::net::{IpAddr, Ipv4Addr};

use wharf_types::digest::short_id;

use super::{parse_link, NetOptions};
use crate::containers::ContainerRecord;
use crate::{Engine, EngineError};

/// A container's /etc/hostname.
fn render_hostname(hostname: &str) -> String {
    format!("{hostname}\n")
}

/// The head of a container's /etc/hosts, before [`Engine::extra_hosts`]' lines: the loopback
/// names, then the hostname on the first network's IPv4 address (loopback's when it has none).
fn render_hosts(hostname: &str, first: Option<Ipv4Addr>) -> String {
    format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n{}\t{hostname}\n",
        first.map(|ip| ip.to_string()).unwrap_or_else(|| "127.0.0.1".to_string())
    )
}

/// The variables of one legacy link (see [`Engine::link_env`]).
fn link_variables(container: &str, alias: &str, ip: Ipv4Addr, exposed: &[String], env: &[String]) -> Vec<String> {
    let prefix: String =
        alias.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    let mut ports: Vec<(u16, String)> = exposed
        .iter()
        .filter_map(|p| {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            Some((port.parse().ok()?, proto.to_ascii_lowercase()))
        })
        .collect();
    ports.sort();
    let mut out = vec![format!("{prefix}_NAME=/{container}/{alias}")];
    if let Some((port, proto)) = ports.first() {
        out.push(format!("{prefix}_PORT={proto}://{ip}:{port}"));
    }
    for (port, proto) in &ports {
        let key = format!("{prefix}_PORT_{port}_{}", proto.to_ascii_uppercase());
        out.push(format!("{key}={proto}://{ip}:{port}"));
        out.push(format!("{key}_ADDR={ip}"));
        out.push(format!("{key}_PORT={port}"));
        out.push(format!("{key}_PROTO={proto}"));
    }
    for e in env {
        if let Some((k, v)) = e.split_once('=') {
            if k != "HOME" && k != "PATH" {
                out.push(format!("{prefix}_ENV_{k}={v}"));
            }
        }
    }
    out
}

/// `--add-host name:ip` (also `name=ip`) → an /etc/hosts line; `host-gateway` is the given
/// gateway.
pub(super) fn extra_host_line(spec: &str, gateway: Option<Ipv4Addr>) -> Result<String, EngineError> {
    let (name, ip) = spec.split_once('=').or_else(|| spec.split_once(':')).ok_or_else(|| {
        EngineError::Invalid(format!("invalid argument \"{spec}\" for \"--add-host\" flag: bad format"))
    })?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let ip = if ip == "host-gateway" {
        gateway
            .map(|g| g.to_string())
            .ok_or_else(|| EngineError::Invalid("host-gateway needs a network with a gateway".to_string()))?
    } else {
        ip.parse::<IpAddr>()
            .map_err(|_| EngineError::Invalid(format!("invalid IP address in add-host: \"{ip}\"")))?
            .to_string()
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(EngineError::Invalid(format!(
            "invalid argument \"{spec}\" for \"--add-host\" flag: bad host name"
        )));
    }
    Ok(format!("{ip}\t{name}\n"))
}

/// A container's resolv.conf from the host's: the nameservers are the embedded DNS (user
/// networks), the `--dns` servers, or the host's minus loopback ones (unreachable from the
/// container's namespace), falling back to Google's public resolvers as Docker does when none
/// is left; `--dns-search` and `--dns-option` replace the host's `search` and `options`.
fn render_resolv_conf(host: &str, opts: &NetOptions, embedded: Option<Ipv4Addr>) -> String {
    let mut servers: Vec<String> = Vec::new();
    let mut search: Vec<String> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    for l in host.lines() {
        let mut f = l.split_whitespace();
        match f.next() {
            Some("nameserver") => {
                if let Some(a) = f.next() {
                    let loopback = a.parse::<IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false);
                    if !loopback {
                        servers.push(a.to_string());
                    }
                }
            }
            Some("search") | Some("domain") => search = f.map(str::to_string).collect(),
            Some("options") => options.extend(f.map(str::to_string)),
            _ => {}
        }
    }
    if let Some(gw) = embedded {
        servers = vec![gw.to_string()];
        // Single names go to the embedded server first, as Docker's ndots:0.
        options.retain(|o| !o.starts_with("ndots:"));
        options.push("ndots:0".to_string());
    } else if !opts.dns.is_empty() {
        servers = opts.dns.clone();
    } else if servers.is_empty() {
        servers = vec!["8.8.8.8".to_string(), "8.8.4.4".to_string()];
    }
    if !opts.dns_search.is_empty() {
        search = opts.dns_search.iter().filter(|s| s.as_str() != ".").cloned().collect();
    }
    if !opts.dns_options.is_empty() {
        options = opts.dns_options.clone();
        if embedded.is_some() && !options.iter().any(|o| o.starts_with("ndots:")) {
            options.push("ndots:0".to_string());
        }
    }
    let mut out = String::new();
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

impl Engine {
    /// Writes the container's /etc/hostname, /etc/hosts and /etc/resolv.conf, bind-mounted in.
    pub(crate) fn write_etc_files(
        &self,
        rec: &ContainerRecord,
        hostname: &str,
        host_network: bool,
    ) -> Result<(), EngineError> {
        let dir = self.container_dir(&rec.id);
        let write = |name: &str, content: String| {
            std::fs::write(dir.join(name), content).map_err(|e| EngineError::io(format!("write {name}"), e))
        };
        write("hostname", render_hostname(hostname))?;
        let hosts = if host_network {
            std::fs::read_to_string("/etc/hosts").unwrap_or_default()
        } else {
            render_hosts(hostname, self.container_endpoint(&rec.id).and_then(|e| e.ip))
        };
        write("hosts", hosts + &self.extra_hosts(rec)?)?;
        write("resolv.conf", self.container_resolv_conf(rec, host_network))?;
        Ok(())
    }

    /// The container's /etc/resolv.conf content.
    fn container_resolv_conf(&self, rec: &ContainerRecord, host_network: bool) -> String {
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        if host_network
            && rec.host_config.net.dns.is_empty()
            && rec.host_config.net.dns_search.is_empty()
            && rec.host_config.net.dns_options.is_empty()
        {
            return host;
        }
        // The embedded DNS of the first user network answers for all of them.
        let embedded = self
            .container_endpoints(&rec.id)
            .into_iter()
            .find(|e| !e.network_id.is_empty() && e.ip.is_some())
            .and_then(|e| e.gateway);
        render_resolv_conf(&host, &rec.host_config.net, embedded)
    }

    /// The lines of a container's /etc/hosts after its first address: its hostname on each of
    /// its other networks' addresses, then the `--add-host` lines.
    fn extra_hosts(&self, rec: &ContainerRecord) -> Result<String, EngineError> {
        let eps = self.container_endpoints(&rec.id);
        let gw = eps.first().and_then(|e| e.gateway).or_else(|| self.net().default_bridge_gateway().map(|g| g.addr));
        let mut out = String::new();
        // The first network's IPv6 address (its IPv4 one is the line before), then every
        // address of the others, as dockerd writes them.
        let first6 = eps.first().and_then(|e| e.ip6).map(IpAddr::V6);
        for ip in first6.into_iter().chain(eps.iter().skip(1).flat_map(|e| e.addrs())) {
            out.push_str(&format!("{ip}\t{}\n", rec.config.hostname));
        }
        // Legacy links on the default bridge are /etc/hosts lines (on a user-defined network
        // they are names the embedded DNS answers): `IP alias id name`, as dockerd writes them.
        let on_default_bridge = eps.first().is_some_and(|e| e.network_id.is_empty() && e.network == "bridge");
        if on_default_bridge {
            for (name, alias) in rec.host_config.net.links.iter().filter_map(|l| parse_link(l)) {
                let target = self.find_container(&name).ok().filter(|t| t.state.running).ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "Cannot link to a non running container: /{name} AS /{}/{alias}",
                        rec.name
                    ))
                })?;
                let ip = self.container_endpoints(&target.id).into_iter().find_map(|e| e.ip).ok_or_else(|| {
                    EngineError::Invalid(format!("Cannot link to /{name}: it has no address on the default bridge"))
                })?;
                out.push_str(&format!("{ip}\t{alias} {} {}\n", short_id(&target.id), target.name));
            }
        }
        for h in &rec.host_config.net.extra_hosts {
            out.push_str(&extra_host_line(h, gw)?);
        }
        Ok(out)
    }

    /// The environment legacy links give a container on the default bridge, as dockerd's:
    /// for `--link db:web`, `WEB_NAME=/self/web`, `WEB_PORT=tcp://IP:PORT` (the lowest exposed
    /// port), `WEB_PORT_80_TCP=…` with `_ADDR`, `_PORT`, `_PROTO` for each exposed port, and
    /// `WEB_ENV_X=…` for the target's own variables (not HOME or PATH).
    pub(crate) fn link_env(&self, rec: &ContainerRecord) -> Vec<String> {
        let eps = self.container_endpoints(&rec.id);
        if !eps.first().is_some_and(|e| e.network_id.is_empty() && e.network == "bridge") {
            return Vec::new();
        }
        let mut env = Vec::new();
        for (name, alias) in rec.host_config.net.links.iter().filter_map(|l| parse_link(l)) {
            let Ok(target) = self.find_container(&name) else { continue };
            let Some(ip) = self.container_endpoints(&target.id).into_iter().find_map(|e| e.ip) else { continue };
            env.extend(link_variables(&rec.name, &alias, ip, &target.config.exposed_ports, &target.config.env));
        }
        env
    }

    /// After a running container was connected or disconnected: its /etc/hosts gains or loses
    /// the lines of those addresses (written in place: the file is bind-mounted), and its
    /// /etc/resolv.conf follows when its embedded DNS server changed.
    pub(super) fn update_etc_files(&self, rec: &ContainerRecord, added: &[IpAddr], removed: &[IpAddr]) {
        let dir = self.container_dir(&rec.id);
        let hosts_path = dir.join("hosts");
        if let Ok(hosts) = std::fs::read_to_string(&hosts_path) {
            let hostname = rec.config.hostname.as_str();
            let mut out: String = hosts
                .lines()
                .filter(|l| {
                    let mut f = l.split_whitespace();
                    let ip = f.next().and_then(|a| a.parse::<IpAddr>().ok());
                    !(ip.is_some_and(|ip| removed.contains(&ip)) && f.any(|n| n == hostname))
                })
                .map(|l| format!("{l}\n"))
                .collect();
            for ip in added {
                out.push_str(&format!("{ip}\t{hostname}\n"));
            }
            if out != hosts {
                if let Err(e) = std::fs::write(&hosts_path, out) {
                    log::warn!("container {}: update /etc/hosts: {e}", rec.id);
                }
            }
        }
        let resolv_path = dir.join("resolv.conf");
        let resolv = self.container_resolv_conf(rec, false);
        if std::fs::read_to_string(&resolv_path).ok().as_deref() != Some(resolv.as_str()) {
            if let Err(e) = std::fs::write(&resolv_path, resolv) {
                log::warn!("container {}: update /etc/resolv.conf: {e}", rec.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_link_variables_as_dockerd_sets_them() {
        let ip = Ipv4Addr::new(172, 17, 0, 2);
        let got = link_variables(
            "web",
            "my-db",
            ip,
            &["5432/tcp".into(), "53/udp".into()],
            &["PATH=/bin".into(), "POSTGRES_DB=app".into()],
        );
        assert_eq!(
            got,
            [
                "MY_DB_NAME=/web/my-db",
                "MY_DB_PORT=udp://172.17.0.2:53",
                "MY_DB_PORT_53_UDP=udp://172.17.0.2:53",
                "MY_DB_PORT_53_UDP_ADDR=172.17.0.2",
                "MY_DB_PORT_53_UDP_PORT=53",
                "MY_DB_PORT_53_UDP_PROTO=udp",
                "MY_DB_PORT_5432_TCP=tcp://172.17.0.2:5432",
                "MY_DB_PORT_5432_TCP_ADDR=172.17.0.2",
                "MY_DB_PORT_5432_TCP_PORT=5432",
                "MY_DB_PORT_5432_TCP_PROTO=tcp",
                "MY_DB_ENV_POSTGRES_DB=app",
            ]
        );
        assert_eq!(parse_link("/db:/web/alias"), Some(("db".into(), "alias".into())));
        assert_eq!(parse_link("db"), Some(("db".into(), "db".into())));
    }

    /// The bytes dockerd writes: a container's own name on its first address, else loopback's.
    #[test]
    fn hostname_and_hosts_files() {
        let head = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
                    ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";
        assert_eq!(render_hostname("web"), "web\n");
        assert_eq!(render_hosts("web", Some(Ipv4Addr::new(172, 17, 0, 2))), format!("{head}172.17.0.2\tweb\n"));
        assert_eq!(render_hosts("web", None), format!("{head}127.0.0.1\tweb\n"));
    }

    #[test]
    fn add_host_lines() {
        let gw = Some(Ipv4Addr::new(10, 0, 0, 1));
        let cases: &[(&str, Option<&str>)] = &[
            ("db:10.1.2.3", Some("10.1.2.3\tdb\n")),
            ("db=10.1.2.3", Some("10.1.2.3\tdb\n")),
            ("v6:::1", Some("::1\tv6\n")),
            ("gw:host-gateway", Some("10.0.0.1\tgw\n")),
            ("db", None),
            ("db:notanip", None),
        ];
        for (spec, want) in cases {
            assert_eq!(extra_host_line(spec, gw).ok().as_deref(), *want, "{spec}");
        }
    }

    #[test]
    fn resolv_conf_table() {
        let host = "nameserver 127.0.0.53\nsearch corp.example\noptions edns0\n";
        let none = NetOptions::default();
        assert_eq!(
            render_resolv_conf(host, &none, None),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\nsearch corp.example\noptions edns0\n"
        );
        assert_eq!(render_resolv_conf("nameserver 10.9.9.9\n", &none, None), "nameserver 10.9.9.9\n");
        assert_eq!(
            render_resolv_conf(host, &none, Some(Ipv4Addr::new(10, 5, 0, 1))),
            "nameserver 10.5.0.1\nsearch corp.example\noptions edns0 ndots:0\n"
        );
        let opts = NetOptions {
            dns: vec!["1.1.1.1".into()],
            dns_search: vec!["a.test".into()],
            dns_options: vec!["timeout:1".into()],
            ..Default::default()
        };
        assert_eq!(render_resolv_conf(host, &opts, None), "nameserver 1.1.1.1\nsearch a.test\noptions timeout:1\n");
        assert_eq!(
            render_resolv_conf(host, &opts, Some(Ipv4Addr::new(10, 5, 0, 1))),
            "nameserver 10.5.0.1\nsearch a.test\noptions timeout:1 ndots:0\n"
        );
    }
}
