//! Absolute `http://` and `https://` URLs, and resolving `Location` headers against them.

use std::fmt;

use crate::HttpError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// An absolute URL. `host` has no brackets even for IPv6; `target` is the path and query,
/// always starting with `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Url {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    pub target: String,
}

impl Url {
    /// Parses `scheme://host[:port][/path][?query]`. A fragment is dropped; user info is refused.
    pub fn parse(s: &str) -> Result<Url, HttpError> {
        let bad = |why| HttpError::InvalidUrl(s.to_string(), why);
        let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("missing scheme"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(bad("scheme must be http or https")),
        };
        let rest = rest.split('#').next().unwrap_or("");
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        if authority.contains('@') {
            return Err(bad("user info is not supported"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("malformed host or port"))?;
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let target = match target.chars().next() {
            None => "/".to_string(),
            Some('?') => format!("/{target}"),
            Some(_) => target.to_string(),
        };
        if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("spaces or control characters in path"));
        }
        Ok(Url { scheme, host: host.to_ascii_lowercase(), port: port.unwrap_or(scheme.default_port()), target })
    }

    /// `host[:port]` as the `Host` header wants it: brackets around IPv6, the port only when it
    /// is not the scheme's default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == self.scheme.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// `host:port`, always with the port (the key Docker uses for `certs.d/<host:port>`).
    pub fn host_port(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("{host}:{}", self.port)
    }

    /// `scheme://host[:port]`, without a path.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme.as_str(), self.host_header())
    }

    /// The same origin with another target (`/v2/...`).
    pub fn with_target(&self, target: &str) -> Url {
        let target = if target.starts_with('/') { target.to_string() } else { format!("/{target}") };
        Url { target, ..self.clone() }
    }

    /// Resolves a `Location` header: absolute, scheme-relative (`//host/x`), absolute-path or
    /// relative to this URL's path.
    pub fn join(&self, location: &str) -> Result<Url, HttpError> {
        let location = location.trim();
        if location.contains("://") {
            return Url::parse(location);
        }
        if let Some(rest) = location.strip_prefix("//") {
            return Url::parse(&format!("{}://{rest}", self.scheme.as_str()));
        }
        if location.is_empty() {
            return Ok(self.clone());
        }
        if location.starts_with('/') {
            return Url::parse(&format!("{}{location}", self.origin()));
        }
        let path = self.target.split('?').next().unwrap_or("/");
        if location.starts_with('?') {
            return Url::parse(&format!("{}{path}{location}", self.origin()));
        }
        // The directory of the path, without its last '/' (added back below).
        let dir = path.rsplit_once('/').map_or("", |(dir, _)| dir);
        Url::parse(&format!("{}{dir}/{location}", self.origin()))
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.origin(), self.target)
    }
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`. `None` when the port is not a number.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port.parse().ok()?))),
        Some(_) => None,
        None => Some((authority, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        type Parsed<'a> = Option<(Scheme, &'a str, u16, &'a str)>;
        let cases: &[(&str, Parsed)] = &[
            ("https://host:5000/v2/x?y", Some((Scheme::Https, "host", 5000, "/v2/x?y"))),
            ("http://127.0.0.1:5000", Some((Scheme::Http, "127.0.0.1", 5000, "/"))),
            ("https://Registry-1.Docker.io", Some((Scheme::Https, "registry-1.docker.io", 443, "/"))),
            ("http://[::1]:8080/a", Some((Scheme::Http, "::1", 8080, "/a"))),
            ("http://[::1]/a", Some((Scheme::Http, "::1", 80, "/a"))),
            ("http://h?q=1", Some((Scheme::Http, "h", 80, "/?q=1"))),
            ("http://h/p#frag", Some((Scheme::Http, "h", 80, "/p"))),
            ("ftp://h/", None),
            ("h:5000/x", None),
            ("http://h:abc/", None),
            ("http://u:p@h/", None),
            ("http:///x", None),
            ("http://h/a b", None),
            ("http://h:99999/", None),
        ];
        for (input, want) in cases {
            let got = Url::parse(input).ok().map(|u| (u.scheme, u.host, u.port, u.target));
            let want = want.map(|(s, h, p, t)| (s, h.to_string(), p, t.to_string()));
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn join_table() {
        let base = Url::parse("https://reg:5000/v2/repo/blobs/sha256:ab?x=1").unwrap();
        let cases = [
            ("http://other/path", "http://other/path"),
            ("//cdn.example/blob", "https://cdn.example/blob"),
            ("/v2/repo/blobs/uploads/1?_state=z", "https://reg:5000/v2/repo/blobs/uploads/1?_state=z"),
            ("uploads/2", "https://reg:5000/v2/repo/blobs/uploads/2"),
            ("?y=2", "https://reg:5000/v2/repo/blobs/sha256:ab?y=2"),
        ];
        for (loc, want) in cases {
            assert_eq!(base.join(loc).unwrap().to_string(), want, "{loc}");
        }
    }

    #[test]
    fn host_header_omits_default_port() {
        assert_eq!(Url::parse("https://h:443/").unwrap().host_header(), "h");
        assert_eq!(Url::parse("http://[::1]:5000/").unwrap().host_header(), "[::1]:5000");
        assert_eq!(Url::parse("https://h/").unwrap().host_port(), "h:443");
    }
}
