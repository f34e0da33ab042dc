//! Forward proxies as Go's `net/http` (and so dockerd) picks them: `HTTP_PROXY`, `HTTPS_PROXY`
//! and `NO_PROXY`, or the same three from a configuration file.
//!
//! `NO_PROXY` is a comma-separated list: `*` (no proxy at all), host names (`corp.example`
//! matches it and its subdomains), `.corp.example` or `*.corp.example` (subdomains only), IP
//! addresses, CIDR ranges (`10.0.0.0/8`, matched against IP literals only, as Go does), each
//! optionally with `:port`. Loopback hosts (`localhost`, 127.0.0.0/8, `::1`) are never proxied,
//! as in Go; the entry `<-loopback>` (Chromium's name for it) takes that exception away, for a
//! proxy that should see loopback traffic too.

use std::fmt;
use std::net::IpAddr;

use base64::Engine;

use crate::{HttpError, Scheme, Url};

/// The proxies to use for `http://` and `https://` URLs, and the hosts that bypass them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    pub http: Option<Proxy>,
    pub https: Option<Proxy>,
    pub no_proxy: NoProxy,
}

/// One proxy: where it listens, and the credentials its URL carried.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    pub host: String,
    pub port: u16,
    user: Option<(String, String)>,
    /// The URL as given, for `docker info` (with the password masked).
    given: String,
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("http", &self.http.as_ref().map(Proxy::masked))
            .field("https", &self.https.as_ref().map(Proxy::masked))
            .field("no_proxy", &self.no_proxy.given)
            .finish()
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proxy({})", self.masked())
    }
}

impl ProxyConfig {
    /// Parses the three settings; empty strings mean unset. A malformed proxy URL is an error
    /// naming it, so a typo does not silently send traffic direct.
    pub fn parse(http: &str, https: &str, no_proxy: &str) -> Result<ProxyConfig, HttpError> {
        let proxy = |s: &str| if s.trim().is_empty() { Ok(None) } else { Proxy::parse(s.trim()).map(Some) };
        Ok(ProxyConfig { http: proxy(http)?, https: proxy(https)?, no_proxy: NoProxy::parse(no_proxy) })
    }

    /// From the environment, upper-case names first, as Go reads them.
    pub fn from_env() -> Result<ProxyConfig, HttpError> {
        let var = |upper: &str, lower: &str| {
            std::env::var(upper)
                .ok()
                .filter(|v| !v.is_empty())
                .or_else(|| std::env::var(lower).ok())
                .unwrap_or_default()
        };
        ProxyConfig::parse(
            &var("HTTP_PROXY", "http_proxy"),
            &var("HTTPS_PROXY", "https_proxy"),
            &var("NO_PROXY", "no_proxy"),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.http.is_none() && self.https.is_none()
    }

    /// The proxy a request to `url` goes through, if any.
    pub fn proxy_for(&self, url: &Url) -> Option<&Proxy> {
        let proxy = match url.scheme {
            Scheme::Http => self.http.as_ref(),
            Scheme::Https => self.https.as_ref(),
        }?;
        if self.no_proxy.bypasses(&url.host, url.port) {
            return None;
        }
        Some(proxy)
    }
}

impl Proxy {
    /// `[http://][user[:password]@]host[:port]`; the port defaults to 80. Only plain-HTTP
    /// proxies are supported: `https://` and `socks5://` proxies are refused by name.
    pub fn parse(s: &str) -> Result<Proxy, HttpError> {
        let bad = |why| HttpError::InvalidUrl(s.to_string(), why);
        let rest = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some(_) => return Err(bad("only http:// proxies are supported")),
            None => s,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => {
                let (name, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                (
                    Some((wharf_types::percent::decode(name, false), wharf_types::percent::decode(password, false))),
                    hostport,
                )
            }
            None => (None, authority),
        };
        let url = Url::parse(&format!("http://{hostport}/")).map_err(|_| bad("malformed proxy host or port"))?;
        Ok(Proxy { host: url.host, port: url.port, user, given: s.to_string() })
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The `Proxy-Authorization` value when the URL carried credentials.
    pub fn authorization(&self) -> Option<String> {
        let (user, password) = self.user.as_ref()?;
        Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))))
    }

    /// The URL as given, with any credentials replaced by `xxxxx:xxxxx`, as `docker info`
    /// shows it.
    pub fn masked(&self) -> String {
        let (prefix, rest) = match self.given.split_once("://") {
            Some((scheme, rest)) => (format!("{scheme}://"), rest),
            None => (String::new(), self.given.as_str()),
        };
        match rest.rsplit_once('@') {
            Some((_, tail)) => format!("{prefix}xxxxx:xxxxx@{tail}"),
            None => self.given.clone(),
        }
    }
}

/// The parsed `NO_PROXY` list.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    all: bool,
    proxy_loopback: bool,
    entries: Vec<Entry>,
    /// The list as given, for `docker info`.
    pub given: String,
}

#[derive(Clone, PartialEq, Eq)]
enum Entry {
    /// `.suffix` (with its leading dot); `exact` also matches the suffix without the dot.
    Domain {
        suffix: String,
        exact: bool,
        port: Option<u16>,
    },
    Ip {
        ip: IpAddr,
        port: Option<u16>,
    },
    Cidr {
        net: IpAddr,
        bits: u8,
    },
}

impl NoProxy {
    pub fn parse(s: &str) -> NoProxy {
        let mut n = NoProxy { given: s.trim().to_string(), ..NoProxy::default() };
        for raw in s.split(',') {
            let item = raw.trim().to_ascii_lowercase();
            if item.is_empty() {
                continue;
            }
            if item == "*" {
                n.all = true;
                continue;
            }
            if item == "<-loopback>" {
                n.proxy_loopback = true;
                continue;
            }
            if let Some((addr, bits)) = item.split_once('/') {
                match (addr.parse::<IpAddr>(), bits.parse::<u8>()) {
                    (Ok(net), Ok(bits)) if bits <= max_bits(&net) => n.entries.push(Entry::Cidr { net, bits }),
                    _ => log::warn!("NO_PROXY: ignoring malformed range {item:?}"),
                }
                continue;
            }
            let (host, port) = split_port(&item);
            if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
                n.entries.push(Entry::Ip { ip, port });
                continue;
            }
            let host = host.strip_prefix('*').unwrap_or(host);
            let entry = match host.strip_prefix('.') {
                Some(_) => Entry::Domain { suffix: host.to_string(), exact: false, port },
                None => Entry::Domain { suffix: format!(".{host}"), exact: true, port },
            };
            n.entries.push(entry);
        }
        n
    }

    /// Whether a request to `host:port` goes direct.
    pub fn bypasses(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        if !self.proxy_loopback
            && (host == "localhost" || host.ends_with(".localhost") || ip.is_some_and(|ip| ip.is_loopback()))
        {
            return true;
        }
        if self.all {
            return true;
        }
        let port_ok = |p: &Option<u16>| p.is_none_or(|p| p == port);
        self.entries.iter().any(|e| match e {
            Entry::Domain { suffix, exact, port: p } => {
                port_ok(p)
                    && (host.ends_with(suffix.as_str()) || (*exact && suffix.strip_prefix('.') == Some(host.as_str())))
            }
            Entry::Ip { ip: want, port: p } => port_ok(p) && ip == Some(*want),
            Entry::Cidr { net, bits } => ip.is_some_and(|ip| in_range(ip, *net, *bits)),
        })
    }
}

fn max_bits(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn in_range(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let (a, b, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32u32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128u32),
        _ => return false,
    };
    if bits == 0 {
        return true;
    }
    let shift = width - u32::from(bits);
    (a >> shift) == (b >> shift)
}

/// `host:port` → (host, Some(port)); a bare IPv6 address or a host without port → (s, None).
fn split_port(s: &str) -> (&str, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((host, tail)) = rest.split_once(']') {
            return (host, tail.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(p) => (host, Some(p)),
            Err(_) => (s, None),
        },
        _ => (s, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn proxy_urls() {
        let p = Proxy::parse("http://u%40corp:p%3Ass@proxy.corp:3128").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.corp", 3128));
        assert_eq!(
            p.authorization().unwrap(),
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("u@corp:p:ss"))
        );
        assert_eq!(p.masked(), "http://xxxxx:xxxxx@proxy.corp:3128");
        let p = Proxy::parse("proxy.corp").unwrap();
        assert_eq!((p.host.as_str(), p.port, p.authorization()), ("proxy.corp", 80, None));
        assert_eq!(p.masked(), "proxy.corp");
        assert_eq!(Proxy::parse("http://[::1]:8888/").unwrap().addr(), "[::1]:8888");
        for bad in ["socks5://p:1080", "https://p:443", "http://", "http://p:99999"] {
            assert!(Proxy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_proxy_matching() {
        let n = NoProxy::parse(
            " corp.example, .sub.test,*.star.test, 10.0.0.0/8, 192.168.1.5, reg.io:5000, [fd00::1]:443 , fd12::/16",
        );
        let cases = [
            ("corp.example", 443, true),
            ("a.corp.example", 443, true),
            ("xcorp.example", 443, false),
            ("sub.test", 443, false),
            ("a.sub.test", 443, true),
            ("star.test", 443, false),
            ("a.star.test", 80, true),
            ("10.2.3.4", 443, true),
            ("11.2.3.4", 443, false),
            ("192.168.1.5", 1, true),
            ("192.168.1.6", 1, false),
            ("reg.io", 5000, true),
            ("reg.io", 443, false),
            ("fd00::1", 443, true),
            ("fd00::1", 80, false),
            ("fd12::9", 80, true),
            ("example.com", 443, false),
            // Loopback is never proxied.
            ("127.0.0.1", 5000, true),
            ("127.1.2.3", 5000, true),
            ("localhost", 5000, true),
            ("::1", 5000, true),
        ];
        for (host, port, want) in cases {
            assert_eq!(n.bypasses(host, port), want, "{host}:{port}");
        }
        assert!(NoProxy::parse("*").bypasses("example.com", 443));
        assert!(!NoProxy::parse("<-loopback>").bypasses("127.0.0.1", 5000));
        assert!(NoProxy::parse("<-loopback>,127.0.0.1:5001").bypasses("127.0.0.1", 5001));
        assert!(!NoProxy::parse("").bypasses("example.com", 443));
    }

    #[test]
    fn scheme_picks_the_proxy() {
        let c = ProxyConfig::parse("http://hp:1", "http://sp:2", "skip.me").unwrap();
        assert_eq!(c.proxy_for(&url("http://example.com/")).unwrap().host, "hp");
        assert_eq!(c.proxy_for(&url("https://example.com/")).unwrap().host, "sp");
        assert!(c.proxy_for(&url("https://skip.me/")).is_none());
        assert!(c.proxy_for(&url("https://127.0.0.1:5000/")).is_none());
        let only_http = ProxyConfig::parse("http://hp:1", "", "").unwrap();
        assert!(only_http.proxy_for(&url("https://example.com/")).is_none());
        assert!(ProxyConfig::parse("", "", "").unwrap().is_empty());
        assert!(ProxyConfig::parse("ftp://x", "", "").is_err());
    }
}
