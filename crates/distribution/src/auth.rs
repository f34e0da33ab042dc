//! Registry authentication: the credentials Docker clients send, `WWW-Authenticate` challenges,
//! and the token cache.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;

/// The decoded `X-Registry-Auth` JSON, with Docker's field names. Every field is optional.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
pub struct AuthConfig {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// base64 of `user:password`, as in `~/.docker/config.json`.
    #[serde(default)]
    pub auth: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub serveraddress: Option<String>,
    /// An OAuth2 refresh token, exchanged at the token server.
    #[serde(default)]
    pub identitytoken: Option<String>,
    /// A bearer token sent to the registry as is.
    #[serde(default)]
    pub registrytoken: Option<String>,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |o: &Option<String>| if o.as_deref().is_some_and(|s| !s.is_empty()) { "<set>" } else { "<unset>" };
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("password", &set(&self.password))
            .field("auth", &set(&self.auth))
            .field("serveraddress", &self.serveraddress)
            .field("identitytoken", &set(&self.identitytoken))
            .field("registrytoken", &set(&self.registrytoken))
            .finish()
    }
}

impl AuthConfig {
    /// User name and password, from the explicit fields or else the `auth` field.
    pub fn basic_credentials(&self) -> Option<(String, String)> {
        let nonempty = |o: &Option<String>| o.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
        if let (Some(u), Some(p)) = (nonempty(&self.username), nonempty(&self.password)) {
            return Some((u, p));
        }
        let decoded = base64::engine::general_purpose::STANDARD.decode(nonempty(&self.auth)?.trim()).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (u, p) = decoded.split_once(':')?;
        Some((u.to_string(), p.to_string()))
    }

    pub(crate) fn identity_token(&self) -> Option<&str> {
        self.identitytoken.as_deref().filter(|s| !s.is_empty())
    }

    pub(crate) fn registry_token(&self) -> Option<&str> {
        self.registrytoken.as_deref().filter(|s| !s.is_empty())
    }
}

/// The value of an `Authorization: Basic` header.
pub(crate) fn basic_header(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// One `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// Lowercased: `bearer`, `basic`.
    pub scheme: String,
    pub params: HashMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// The challenges of a 401 answer, one per `WWW-Authenticate` header.
pub(crate) fn challenges_of(headers: &[(String, String)]) -> Vec<Challenge> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("WWW-Authenticate"))
        .filter_map(|(_, v)| parse_challenge(v))
        .collect()
}

/// Parses a `WWW-Authenticate` value: `Bearer realm="..",service="..",scope=".."`. Only the
/// first challenge of a header is read (registries send one per header).
fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, mut rest) = match value.split_once([' ', '\t']) {
        Some((s, r)) => (s, r.trim_start()),
        None => (value, ""),
    };
    if scheme.is_empty() || scheme.contains(['=', ',', '"']) {
        return None;
    }
    let mut params = HashMap::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        rest = after.trim_start();
        let val;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.chars();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next()),
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => out.push(c),
                }
            }
            if !closed {
                return None;
            }
            val = out;
            rest = chars.as_str();
        } else {
            // Up to the next ',', which stays in `rest` for the separator step below.
            let (plain, after) = rest.split_at(rest.find(',').unwrap_or(rest.len()));
            val = plain.trim().to_string();
            rest = after;
        }
        params.insert(key, val);
        rest = rest.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Some(Challenge { scheme: scheme.to_ascii_lowercase(), params })
}

/// The token server's answer (`token` or `access_token`, per the Docker token spec).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// Given for `offline_token=true` (a login): what clients keep as their identity token.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl TokenResponse {
    pub fn bearer(&self) -> Option<&str> {
        self.token.as_deref().filter(|t| !t.is_empty()).or(self.access_token.as_deref().filter(|t| !t.is_empty()))
    }

    /// How long to reuse the token: the server's lifetime less a margin; the spec's default of
    /// 60 seconds when it gives none.
    pub fn lifetime(&self) -> Duration {
        let secs = self.expires_in.unwrap_or(60).max(10);
        Duration::from_secs(secs - 5)
    }
}

/// `Authorization` header values per (registry, scope), each with its expiry.
#[derive(Default)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<(String, String), (String, Instant)>>,
}

impl TokenCache {
    pub fn get(&self, registry: &str, scope: &str) -> Option<String> {
        let entries = self.entries.lock().ok()?;
        let (value, expiry) = entries.get(&(registry.to_string(), scope.to_string()))?;
        (Instant::now() < *expiry).then(|| value.clone())
    }

    pub fn put(&self, registry: &str, scope: &str, value: String, lifetime: Duration) {
        if let Ok(mut entries) = self.entries.lock() {
            let now = Instant::now();
            entries.retain(|_, (_, expiry)| *expiry > now);
            entries.insert((registry.to_string(), scope.to_string()), (value, now + lifetime));
        }
    }

    pub fn forget(&self, registry: &str, scope: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&(registry.to_string(), scope.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_table() {
        type Want<'a> = Option<(&'a str, &'a [(&'a str, &'a str)])>;
        let cases: &[(&str, Want)] = &[
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
                Some((
                    "bearer",
                    &[
                        ("realm", "https://auth.docker.io/token"),
                        ("service", "registry.docker.io"),
                        ("scope", "repository:library/busybox:pull"),
                    ],
                )),
            ),
            (r#"Basic realm="Registry Realm""#, Some(("basic", &[("realm", "Registry Realm")]))),
            ("basic", Some(("basic", &[]))),
            (
                r#"Bearer realm = "http://h/t" , error="insufficient_scope", scope=repo:a:pull"#,
                Some(("bearer", &[("realm", "http://h/t"), ("error", "insufficient_scope"), ("scope", "repo:a:pull")])),
            ),
            (r#"Bearer realm="a\"b""#, Some(("bearer", &[("realm", "a\"b")]))),
            (r#"Bearer realm="unterminated"#, None),
            (r#"Bearer novalue"#, None),
            ("", None),
            // Multibyte text around every separator is read as text, never cut inside a character.
            (
                r#"Bearer réalm="é\é",sérvice=ü ,scope="€""#,
                Some(("bearer", &[("réalm", "éé"), ("sérvice", "ü"), ("scope", "€")])),
            ),
            (r#"Bearer realm="é"#, None),
        ];
        for (input, want) in cases {
            let got = parse_challenge(input);
            let want = want.map(|(s, ps)| Challenge {
                scheme: s.to_string(),
                params: ps.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            });
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn credentials_from_fields_or_auth() {
        let json = r#"{"username":"u","password":"p","serveraddress":"127.0.0.1:5000"}"#;
        let a: AuthConfig = serde_json::from_str(json).unwrap();
        assert_eq!(a.basic_credentials(), Some(("u".into(), "p".into())));
        let a: AuthConfig = serde_json::from_str(r#"{"auth":"dXNlcjpwYTpzcw=="}"#).unwrap();
        assert_eq!(a.basic_credentials(), Some(("user".into(), "pa:ss".into())));
        let a: AuthConfig = serde_json::from_str(r#"{"identitytoken":"s3cret","email":""}"#).unwrap();
        assert_eq!(a.basic_credentials(), None);
        assert_eq!(a.identity_token(), Some("s3cret"));
        assert!(!format!("{a:?}").contains("s3cret"));
        assert_eq!(basic_header("user", "pa:ss"), "Basic dXNlcjpwYTpzcw==");
    }

    #[test]
    fn token_cache_expires() {
        let c = TokenCache::default();
        c.put("r", "s", "Bearer x".into(), Duration::from_secs(60));
        c.put("r", "old", "Bearer y".into(), Duration::ZERO);
        assert_eq!(c.get("r", "s").as_deref(), Some("Bearer x"));
        assert_eq!(c.get("r", "old"), None);
        assert_eq!(c.get("other", "s"), None);
        c.forget("r", "s");
        assert_eq!(c.get("r", "s"), None);
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(wharf_types::percent::encode("repository:a/b:pull"), "repository%3Aa%2Fb%3Apull");
        assert_eq!(wharf_types::percent::encode("x y&z"), "x%20y%26z");
    }
}
