//! Networking in Docker's JSON: `HostConfig.PortBindings` in a create body, and the
//! `NetworkSettings`/`Ports` of inspect and list built from a container's endpoint.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};
use wharf_engine::{ContainerRecord, Endpoint, PortBinding};

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
    if ep.is_none() {
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

/// `NetworkSettings` of inspect.
pub fn settings_json(c: &ContainerRecord, ep: Option<&Endpoint>) -> Value {
    let ip = ep.and_then(|e| e.ip).map(|i| i.to_string()).unwrap_or_default();
    let gw = ep.and_then(|e| e.gateway).map(|i| i.to_string()).unwrap_or_default();
    let prefix = ep.filter(|e| e.ip.is_some()).map(|e| e.prefix).unwrap_or(0);
    let mac = ep.map(|e| e.mac.clone()).unwrap_or_default();
    let mode = c.host_config.network_mode.as_str();
    let net_name = if mode == "default" { "bridge" } else { mode };
    let mut networks = serde_json::Map::new();
    if !mode.starts_with("container:") {
        networks.insert(
            net_name.to_string(),
            json!({
                "IPAMConfig": null,
                "Links": null,
                "Aliases": null,
                "NetworkID": net_name,
                "EndpointID": if ep.is_some() { c.id.clone() } else { String::new() },
                "Gateway": gw,
                "IPAddress": ip,
                "IPPrefixLen": prefix,
                "IPv6Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "MacAddress": mac,
            }),
        );
    }
    json!({
        "Bridge": "",
        "SandboxID": if ep.is_some() { c.id.clone() } else { String::new() },
        "Ports": ports_map(c, ep),
        "SandboxKey": ep.map(|e| e.netns.display().to_string()).unwrap_or_default(),
        "IPAddress": ip,
        "IPPrefixLen": prefix,
        "Gateway": gw,
        "MacAddress": mac,
        "Networks": networks,
    })
}

/// `Ports` of a container list entry.
pub fn list_ports_json(c: &ContainerRecord, ep: Option<&Endpoint>) -> Value {
    let mut out = Vec::new();
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
