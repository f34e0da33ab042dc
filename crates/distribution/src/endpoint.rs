//! Which base URLs serve a registry: mirrors first, then the origin over HTTPS, and for
//! insecure registries (loopback ones always are) HTTPS without verification, then plain HTTP.

use std::net::IpAddr;

use wharf_http::{Scheme, Url};

use crate::DistributionError;

/// Where the docker.io registry really lives.
pub const DOCKER_HUB_ORIGIN: &str = "https://registry-1.docker.io";

/// A base URL serving `/v2/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// e.g. `http://127.0.0.1:5000`; the target is `/`.
    pub base: Url,
    pub mirror: bool,
}

impl Endpoint {
    /// The URL of an API path (`/v2/...`) on this endpoint, under its base path.
    pub fn url_for(&self, target: &str) -> Url {
        let prefix = self.base.target.trim_end_matches('/');
        self.base.with_target(&format!("{prefix}{target}"))
    }
}

/// The `insecure-registries` setting: `host[:port]` names and CIDR ranges.
#[derive(Debug, Default)]
pub(crate) struct InsecureList {
    names: Vec<String>,
    cidrs: Vec<(IpAddr, u8)>,
}

impl InsecureList {
    pub fn parse(entries: &[String]) -> Result<InsecureList, DistributionError> {
        let mut list = InsecureList::default();
        for e in entries {
            // Docker accepts a scheme in front of the entry and ignores it.
            let e = e.trim().trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/');
            if e.is_empty() {
                continue;
            }
            match e.split_once('/') {
                Some((ip, bits)) => {
                    let bad = || DistributionError::Config(format!("insecure registry {e:?} is not a valid CIDR"));
                    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
                    let bits: u8 = bits.parse().map_err(|_| bad())?;
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    if bits > max {
                        return Err(bad());
                    }
                    list.cidrs.push((ip, bits));
                }
                None => list.names.push(e.to_ascii_lowercase()),
            }
        }
        Ok(list)
    }

    /// Whether `registry` (`host[:port]`, as in an image reference) may be reached over HTTP.
    /// A name entry covers that exact `host[:port]` only (the HTTPS port written or not), as
    /// Docker's: `myreg` does not make `myreg:5000`, another server, insecure.
    pub fn allows(&self, registry: &str) -> bool {
        if is_loopback(registry) {
            return true;
        }
        let registry = registry.to_ascii_lowercase();
        let host = host_of(&registry);
        let wanted = without_https_port(&registry);
        if self.names.iter().any(|n| without_https_port(n) == wanted) {
            return true;
        }
        match host.parse::<IpAddr>() {
            Ok(ip) => self.cidrs.iter().any(|&(net, bits)| in_cidr(ip, net, bits)),
            Err(_) => false,
        }
    }
}

/// `host:443` as `host` (the same HTTPS endpoint), anything else as it is.
fn without_https_port(registry: &str) -> &str {
    match registry.strip_suffix(":443") {
        Some(rest) if host_of(registry) != registry => rest,
        _ => registry,
    }
}

/// The host of `host[:port]` or `[v6]:port`, without brackets.
pub(crate) fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match registry.rsplit_once(':') {
        Some((h, _)) if !h.contains(':') => h,
        _ => registry,
    }
}

/// `localhost`, 127.0.0.0/8 and ::1: always insecure, as Docker has them (HTTPS without
/// verifying the certificate, then plain HTTP).
pub(crate) fn is_loopback(registry: &str) -> bool {
    let host = host_of(registry);
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32u32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128u32),
        (IpAddr::V6(a), IpAddr::V4(b)) => match a.to_ipv4_mapped() {
            Some(a) => (u32::from(a) as u128, u32::from(b) as u128, 32),
            None => return false,
        },
        _ => return false,
    };
    let bits = u32::from(bits).min(width);
    if bits == 0 {
        return true;
    }
    let shift = width - bits;
    (ip >> shift) == (net >> shift)
}

/// The origin URLs for a registry in the order to try them: `https` alone, `http` alone (an
/// insecure host already known to speak HTTP), or `https` then `http` (an insecure one, which
/// loopback registries always are: a TLS registry on localhost works as with Docker).
pub(crate) fn origin_urls(
    registry: &str,
    insecure: &InsecureList,
    known: Option<Scheme>,
) -> Result<Vec<Url>, DistributionError> {
    let bad = |e: wharf_http::HttpError| DistributionError::Config(format!("registry {registry:?}: {e}"));
    if matches!(registry, "docker.io" | "index.docker.io" | "registry-1.docker.io") {
        return Ok(vec![Url::parse(DOCKER_HUB_ORIGIN).map_err(bad)?]);
    }
    let https = Url::parse(&format!("https://{registry}")).map_err(bad)?;
    let http = Url::parse(&format!("http://{registry}")).map_err(bad)?;
    if !insecure.allows(registry) {
        return Ok(vec![https]);
    }
    Ok(match known {
        Some(Scheme::Http) => vec![http],
        Some(Scheme::Https) => vec![https],
        None => vec![https, http],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_table() {
        let list = InsecureList::parse(&[
            "myreg:5000".to_string(),
            "other.example".to_string(),
            "10.0.0.0/8".to_string(),
            "fd00::/8".to_string(),
            "http://schemed:1".to_string(),
            "port443:443".to_string(),
        ])
        .unwrap();
        let cases = [
            ("myreg:5000", true),
            ("myreg:5001", false),
            ("other.example", true),
            ("other.example:443", true),
            ("other.example:5000", false),
            ("myreg", false),
            ("myreg:443", false),
            ("10.1.2.3:5000", true),
            ("11.1.2.3:5000", false),
            ("[fd12::1]:5000", true),
            ("[fe80::1]:5000", false),
            ("schemed:1", true),
            ("port443", true),
            ("port443:443", true),
            ("docker.io", false),
        ];
        for (reg, want) in cases {
            assert_eq!(list.allows(reg), want, "{reg}");
        }
        assert!(InsecureList::parse(&["10.0.0.0/33".to_string()]).is_err());
        assert!(InsecureList::parse(&["nonsense/8".to_string()]).is_err());
    }

    #[test]
    fn loopback_table() {
        for (reg, want) in [
            ("localhost:5000", true),
            ("LOCALHOST", true),
            ("127.0.0.1:5000", true),
            ("127.9.9.9", true),
            ("[::1]:5000", true),
            ("128.0.0.1:5000", false),
            ("localhost.example:5000", false),
        ] {
            assert_eq!(is_loopback(reg), want, "{reg}");
        }
    }

    #[test]
    fn origin_order() {
        let list = InsecureList::parse(&["insec:5000".to_string()]).unwrap();
        let urls = |reg, known| origin_urls(reg, &list, known).unwrap().iter().map(|u| u.origin()).collect::<Vec<_>>();
        assert_eq!(urls("docker.io", None), ["https://registry-1.docker.io"]);
        assert_eq!(urls("127.0.0.1:5000", None), ["https://127.0.0.1:5000", "http://127.0.0.1:5000"]);
        assert_eq!(urls("localhost:5000", Some(Scheme::Http)), ["http://localhost:5000"]);
        assert_eq!(urls("[::1]:5000", Some(Scheme::Https)), ["https://[::1]:5000"]);
        assert_eq!(urls("secure.example", None), ["https://secure.example"]);
        assert_eq!(urls("insec:5000", None), ["https://insec:5000", "http://insec:5000"]);
        assert_eq!(urls("insec:5000", Some(Scheme::Http)), ["http://insec:5000"]);
    }
}
