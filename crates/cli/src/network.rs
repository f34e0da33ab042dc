//! Networking flags: `-p [ip:][hostPort:]containerPort[/proto]` with ranges, and `--expose`.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use wharf_client::PortBinding;

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
