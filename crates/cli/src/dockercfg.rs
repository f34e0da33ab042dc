//! The docker CLI's config file, `$DOCKER_CONFIG/config.json` (else `~/.docker/config.json`),
//! read and written as the docker CLI does, so that one login serves both CLIs:
//!
//! - **credentials**: `auths.<server>` entries (`auth` = base64 of `user:password`, and
//!   `identitytoken`), or a credential helper: `credHelpers.<registry host>` names one for a
//!   registry, `credsStore` one for all others. A helper is the program
//!   `docker-credential-<name>` on `PATH`, spoken to with its protocol: the action (`get`,
//!   `store`, `erase`, `list`) as its argument, the server address or a JSON object on stdin,
//!   JSON on stdout. With a helper, `auths` only keeps an empty entry per server, as docker's.
//! - **proxies**: `proxies.default` (`httpProxy`, `httpsProxy`, `noProxy`, `ftpProxy`,
//!   `allProxy`), given to builds as build arguments and to new containers as environment.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use serde_json::{json, Value};

/// Where `docker login` keeps Docker Hub's credentials.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
/// What a helper's `get` says when it has nothing for the server.
const NOT_FOUND: &str = "credentials not found in native keychain";
/// The user name a helper stores an identity (refresh) token under.
const TOKEN_USER: &str = "<token>";

/// One registry's credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// An OAuth2 refresh token a token server gave at login, used instead of the password.
    pub identity_token: String,
}

impl Credentials {
    /// The JSON of an `X-Registry-Auth` header (before base64), as the docker CLI sends it.
    pub fn to_auth_json(&self, server: &str) -> Value {
        let mut v = json!({ "serveraddress": server });
        for (k, val) in
            [("username", &self.username), ("password", &self.password), ("identitytoken", &self.identity_token)]
        {
            if !val.is_empty() {
                v[k] = json!(val);
            }
        }
        v
    }
}

pub fn config_path() -> Result<PathBuf> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
        .ok_or_else(|| anyhow!("neither DOCKER_CONFIG nor HOME is set"))?;
    Ok(dir.join("config.json"))
}

/// The config file, `{}` when there is none.
pub fn read_config() -> Result<Value> {
    let path = config_path()?;
    let v = match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().is_empty() => json!({}),
        Ok(text) => serde_json::from_str(&text).with_context(|| format!("docker config file {}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    if !v.is_object() {
        bail!("docker config file {} is not a JSON object", path.display());
    }
    Ok(v)
}

/// Writes the config atomically with mode 0600: it may hold passwords.
pub fn write_config(config: &Value) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = config_path()?;
    let dir = path.parent().ok_or_else(|| anyhow!("config path {} has no directory", path.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let tmp = dir.join(format!(".config.json.{}", std::process::id()));
    let text = serde_json::to_string_pretty(config)? + "\n";
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("write {}", path.display()));
    }
    Ok(())
}

/// The key docker files a server's credentials under: Docker Hub's index URL, else the
/// address as given without a scheme or trailing slash.
pub fn server_key(server: &str) -> String {
    let s = server.trim();
    let bare = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")).unwrap_or(s).trim_end_matches('/');
    match bare {
        "" | "docker.io" | "index.docker.io" | "index.docker.io/v1" | "registry-1.docker.io" => {
            DOCKER_HUB_KEY.to_string()
        }
        b => b.to_string(),
    }
}

/// The host part of a key (`https://index.docker.io/v1/` → `index.docker.io`), which
/// `credHelpers` is keyed by and which entries of `auths` are compared by.
fn hostname(key: &str) -> &str {
    let s = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    s.split('/').next().unwrap_or(s)
}

/// The helper that holds a server's credentials, if any: its `credHelpers` entry, else
/// `credsStore`.
fn helper_for(config: &Value, key: &str) -> Option<String> {
    let host = hostname(key);
    let named = config.get("credHelpers").and_then(|h| h.get(host)).and_then(Value::as_str);
    named.or_else(|| config.get("credsStore").and_then(Value::as_str)).filter(|h| !h.is_empty()).map(str::to_string)
}

/// The credentials for `registry` (a registry host as in an image reference, or a login
/// server), from its helper or from `auths`. `None` when there are none; an error when the
/// helper fails.
pub fn get(config: &Value, registry: &str) -> Result<Option<Credentials>> {
    let key = server_key(registry);
    match helper_for(config, &key) {
        Some(helper) => helper_get(&helper, &key),
        None => Ok(file_get(config, &key)),
    }
}

fn file_get(config: &Value, key: &str) -> Option<Credentials> {
    let auths = config.get("auths")?.as_object()?;
    let entry = auths.get(key).or_else(|| auths.iter().find(|(k, _)| hostname(k) == hostname(key)).map(|(_, v)| v))?;
    decode_entry(entry)
}

fn decode_entry(entry: &Value) -> Option<Credentials> {
    let mut c = Credentials::default();
    if let Some(encoded) = entry.get("auth").and_then(Value::as_str).filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        c.username = user.to_string();
        c.password = password.to_string();
    }
    if let Some(t) = entry.get("identitytoken").and_then(Value::as_str) {
        c.identity_token = t.to_string();
    }
    (c != Credentials::default()).then_some(c)
}

/// Every credential the config knows, by server: what a build sends (`X-Registry-Config`), so
/// that the daemon has them for each `FROM`. Helpers are asked through `list` and `get`.
pub fn all(config: &Value) -> Result<BTreeMap<String, Credentials>> {
    let mut out = BTreeMap::new();
    if let Some(auths) = config.get("auths").and_then(Value::as_object) {
        for (k, entry) in auths {
            if let Some(c) = decode_entry(entry) {
                out.insert(k.clone(), c);
            }
        }
    }
    if let Some(store) = config.get("credsStore").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        let listed = helper_call(store, "list", b"")?;
        let servers: BTreeMap<String, Value> = serde_json::from_slice(&listed)
            .with_context(|| format!("credential helper docker-credential-{store} list: malformed answer"))?;
        for server in servers.keys() {
            if let Some(c) = helper_get(store, server)? {
                out.insert(server.clone(), c);
            }
        }
    }
    if let Some(helpers) = config.get("credHelpers").and_then(Value::as_object) {
        for (host, helper) in helpers {
            let Some(helper) = helper.as_str() else { continue };
            if let Some(c) = helper_get(helper, host)? {
                out.insert(host.clone(), c);
            }
        }
    }
    Ok(out)
}

/// Keeps a login's credentials where docker would: with the server's helper (leaving an empty
/// `auths` entry), else in `auths`.
pub fn store(config: &mut Value, server: &str, creds: &Credentials) -> Result<()> {
    let key = server_key(server);
    let entry = match helper_for(config, &key) {
        Some(helper) => {
            let (user, secret) = if creds.identity_token.is_empty() {
                (creds.username.as_str(), creds.password.as_str())
            } else {
                (TOKEN_USER, creds.identity_token.as_str())
            };
            let input = json!({ "ServerURL": key, "Username": user, "Secret": secret }).to_string();
            helper_call(&helper, "store", input.as_bytes())?;
            json!({})
        }
        None => {
            let mut e = json!({});
            // As docker: `auth` keeps the user name even when a token replaced the password.
            if !creds.username.is_empty() || !creds.password.is_empty() {
                let pair = format!("{}:{}", creds.username, creds.password);
                e["auth"] = json!(base64::engine::general_purpose::STANDARD.encode(pair));
            }
            if !creds.identity_token.is_empty() {
                e["identitytoken"] = json!(creds.identity_token);
            }
            e
        }
    };
    auths_mut(config)?.insert(key, entry);
    Ok(())
}

/// Forgets a server's credentials, with its helper too. Returns whether the config knew the
/// server.
pub fn erase(config: &mut Value, server: &str) -> Result<bool> {
    let key = server_key(server);
    let known = auths_mut(config)?.remove(&key).is_some();
    if let Some(helper) = helper_for(config, &key) {
        // The helper may hold it even when `auths` does not (a login by another tool).
        match helper_call(&helper, "erase", key.as_bytes()) {
            Ok(_) => return Ok(true),
            Err(e) if e.to_string().contains(NOT_FOUND) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(known)
}

fn auths_mut(config: &mut Value) -> Result<&mut serde_json::Map<String, Value>> {
    let obj = config.as_object_mut().ok_or_else(|| anyhow!("docker config file is not a JSON object"))?;
    obj.entry("auths")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| anyhow!("docker config: \"auths\" is not an object"))
}

fn helper_get(helper: &str, server: &str) -> Result<Option<Credentials>> {
    let out = match helper_call(helper, "get", server.as_bytes()) {
        Ok(out) => out,
        Err(e) if e.to_string().contains(NOT_FOUND) => return Ok(None),
        Err(e) => return Err(e),
    };
    let v: Value = serde_json::from_slice(&out)
        .with_context(|| format!("credential helper docker-credential-{helper} get: malformed answer"))?;
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (user, secret) = (field("Username"), field("Secret"));
    if user.is_empty() && secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if user == TOKEN_USER {
        Credentials { identity_token: secret, ..Credentials::default() }
    } else {
        Credentials { username: user, password: secret, ..Credentials::default() }
    }))
}

/// Runs `docker-credential-<helper> <action>` with `input` on its stdin; its stdout on
/// success. A helper that is missing or fails is an error naming it, with what it printed.
fn helper_call(helper: &str, action: &str, input: &[u8]) -> Result<Vec<u8>> {
    if helper.is_empty() || helper.contains('/') {
        bail!("invalid credential helper name {helper:?}");
    }
    let program = format!("docker-credential-{helper}");
    let mut child = match Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("credential helper {program} not found in PATH (named by the docker config's credsStore or credHelpers)")
        }
        Err(e) => return Err(e).with_context(|| format!("run credential helper {program}")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input is judged by its exit status below.
        let _ = stdin.write_all(input);
    }
    let out = child.wait_with_output().with_context(|| format!("run credential helper {program}"))?;
    if !out.status.success() {
        let said =
            String::from_utf8_lossy(if out.stdout.is_empty() { &out.stderr } else { &out.stdout }).trim().to_string();
        let said = if said.is_empty() { format!("exited with {}", out.status) } else { said };
        bail!("credential helper {program} {action}: {said}");
    }
    Ok(out.stdout)
}

/// The proxy settings of `proxies.default`, by the names docker gives them as build arguments
/// and container environment (`HTTP_PROXY` and `http_proxy`, …), set ones only.
pub fn proxy_env(config: &Value) -> Vec<(String, String)> {
    let Some(p) = config.get("proxies").and_then(|p| p.get("default")) else { return Vec::new() };
    let mut out = Vec::new();
    for (field, name) in [
        ("httpProxy", "HTTP_PROXY"),
        ("httpsProxy", "HTTPS_PROXY"),
        ("ftpProxy", "FTP_PROXY"),
        ("noProxy", "NO_PROXY"),
        ("allProxy", "ALL_PROXY"),
    ] {
        if let Some(v) = p.get(field).and_then(Value::as_str).filter(|v| !v.is_empty()) {
            out.push((name.to_string(), v.to_string()));
            out.push((name.to_ascii_lowercase(), v.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_keys() {
        for (input, want) in [
            ("", DOCKER_HUB_KEY),
            ("docker.io", DOCKER_HUB_KEY),
            ("https://index.docker.io/v1/", DOCKER_HUB_KEY),
            ("127.0.0.1:5000", "127.0.0.1:5000"),
            ("http://127.0.0.1:5000/", "127.0.0.1:5000"),
        ] {
            assert_eq!(server_key(input), want, "{input:?}");
        }
        assert_eq!(hostname(DOCKER_HUB_KEY), "index.docker.io");
    }

    #[test]
    fn file_credentials() {
        let c = json!({"auths": {
            "https://reg.example:5000": {"auth": "dXNlcjpwYTpzcw=="},
            "tok.example": {"identitytoken": "refresh"},
            "empty.example": {},
        }});
        let creds = get(&c, "reg.example:5000").unwrap().unwrap();
        assert_eq!((creds.username.as_str(), creds.password.as_str()), ("user", "pa:ss"));
        assert_eq!(get(&c, "tok.example").unwrap().unwrap().identity_token, "refresh");
        assert_eq!(get(&c, "empty.example").unwrap(), None);
        assert_eq!(get(&c, "other.example").unwrap(), None);
        assert_eq!(
            creds.to_auth_json("reg.example:5000"),
            json!({"username": "user", "password": "pa:ss", "serveraddress": "reg.example:5000"})
        );
    }

    #[test]
    fn file_store_keeps_the_rest_of_the_file() {
        let mut c = json!({"credHelpers": {"other.example": "x"}, "auths": {"a:1": {"auth": "old"}}});
        let creds = Credentials { username: "u".into(), password: "p".into(), ..Credentials::default() };
        store(&mut c, "http://b:2/", &creds).unwrap();
        assert!(erase(&mut c, "a:1").unwrap());
        assert!(!erase(&mut c, "a:1").unwrap());
        assert_eq!(c, json!({"credHelpers": {"other.example": "x"}, "auths": {"b:2": {"auth": "dTpw"}}}));
    }

    #[test]
    fn helpers_are_chosen_per_registry() {
        let c = json!({"credsStore": "all", "credHelpers": {"index.docker.io": "hub", "r.example:5000": "r"}});
        assert_eq!(helper_for(&c, DOCKER_HUB_KEY).as_deref(), Some("hub"));
        assert_eq!(helper_for(&c, "r.example:5000").as_deref(), Some("r"));
        assert_eq!(helper_for(&c, "s.example").as_deref(), Some("all"));
        assert_eq!(helper_for(&json!({"credsStore": ""}), "s.example"), None);
    }

    #[test]
    fn a_missing_helper_is_named() {
        let c = json!({"credsStore": "wharf-test-no-such-helper"});
        let e = get(&c, "r.example").unwrap_err().to_string();
        assert!(e.contains("docker-credential-wharf-test-no-such-helper not found in PATH"), "{e}");
        assert!(get(&json!({"credsStore": "../x"}), "r.example").is_err());
    }

    #[test]
    fn proxies_become_both_cases() {
        let c = json!({"proxies": {"default": {"httpProxy": "http://p:3128", "noProxy": "*.corp", "ftpProxy": ""}}});
        assert_eq!(
            proxy_env(&c),
            [
                ("HTTP_PROXY".to_string(), "http://p:3128".to_string()),
                ("http_proxy".to_string(), "http://p:3128".to_string()),
                ("NO_PROXY".to_string(), "*.corp".to_string()),
                ("no_proxy".to_string(), "*.corp".to_string()),
            ]
        );
        assert!(proxy_env(&json!({})).is_empty());
    }
}
