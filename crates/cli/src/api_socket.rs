//! `run`/`create --use-api-socket`, as the docker CLI does it: the daemon's API socket
//! bind-mounted at `/var/run/docker.sock`, and the caller's registry credentials written into
//! the new container as `/run/secrets/docker/config.json` with `DOCKER_CONFIG` pointing there
//! (unless the container's environment already sets `DOCKER_CONFIG`). The socket is the one
//! this CLI talks to (docker's hard-codes `/var/run/docker.sock`).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use base64::Engine;
use serde_json::{json, Value};
use wharf_client::{Body, Client, ContainerConfig, Query};

use crate::dockercfg::Credentials;

/// Where the socket appears in the container.
const SOCKET_IN_CONTAINER: &str = "/var/run/docker.sock";
/// The credentials file in the container, and its directory as `DOCKER_CONFIG`.
const CONFIG_IN_CONTAINER: &str = "run/secrets/docker/config.json";
const CONFIG_DIR_IN_CONTAINER: &str = "/run/secrets/docker";

/// Adds the socket's mount and `DOCKER_CONFIG` to the create body; returns the credentials
/// to write into the container once it exists (none when there are none, or the caller set
/// `DOCKER_CONFIG` itself). Credentials are resolved now, so that a failure refuses the
/// create before anything is made.
pub fn prepare(client: &Client, config: &mut ContainerConfig) -> Result<Option<BTreeMap<String, Credentials>>> {
    let host = client.host();
    let path = host.strip_prefix("unix://").unwrap_or(host);
    if path.contains("://") {
        bail!("flag --use-api-socket needs a daemon on a unix socket, not {host}");
    }
    let socket =
        std::fs::canonicalize(path).with_context(|| format!("--use-api-socket: the daemon's socket {path}"))?;
    config.host_config.mounts.push(json!({
        "Type": "bind",
        "Source": socket.to_string_lossy(),
        "Target": SOCKET_IN_CONTAINER,
        "BindOptions": {},
    }));
    if config.env.iter().any(|e| e.starts_with("DOCKER_CONFIG=")) {
        // The caller knows where its configuration is: no credentials are injected.
        return Ok(None);
    }
    let creds = credentials().context("resolving credentials failed")?;
    if creds.is_empty() {
        return Ok(None);
    }
    config.env.push(format!("DOCKER_CONFIG={CONFIG_DIR_IN_CONTAINER}"));
    Ok(Some(creds))
}

/// The caller's credentials: `DOCKER_AUTH_CONFIG` (a config file's JSON) when it holds any,
/// else every credential of the config file and its helpers.
fn credentials() -> Result<BTreeMap<String, Credentials>> {
    if let Some(raw) = std::env::var("DOCKER_AUTH_CONFIG").ok().filter(|v| !v.is_empty()) {
        let v: Value = serde_json::from_str(&raw).context("failed to read credentials from DOCKER_AUTH_CONFIG")?;
        let from_env = crate::dockercfg::all(&json!({ "auths": v.get("auths").cloned().unwrap_or(json!({})) }))?;
        if !from_env.is_empty() {
            return Ok(from_env);
        }
    }
    let config = crate::dockercfg::read_config()?;
    crate::dockercfg::all(&config)
}

/// The config file written into the container: only `auths`, each as the docker CLI saves
/// it (`auth` = base64 of `user:password`, and `identitytoken`), tab-indented.
pub fn config_json(creds: &BTreeMap<String, Credentials>) -> Vec<u8> {
    let mut auths = serde_json::Map::new();
    for (server, c) in creds {
        let mut entry = serde_json::Map::new();
        if !c.username.is_empty() || !c.password.is_empty() {
            let pair = format!("{}:{}", c.username, c.password);
            entry.insert("auth".into(), json!(base64::engine::general_purpose::STANDARD.encode(pair)));
        }
        if !c.identity_token.is_empty() {
            entry.insert("identitytoken".into(), json!(c.identity_token));
        }
        auths.insert(server.clone(), Value::Object(entry));
    }
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(&json!({ "auths": auths }), &mut ser).unwrap_or_default();
    out
}

/// Writes the credentials into the created container (mode 0600, owned by root).
pub fn inject(client: &Client, id: &str, creds: &BTreeMap<String, Credentials>) -> Result<()> {
    let text = config_json(creds);
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(text.len() as u64);
    h.set_mode(0o600);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    tar.append_data(&mut h, CONFIG_IN_CONTAINER, &text[..]).context("tar of the credentials")?;
    let bytes = tar.into_inner().context("tar of the credentials")?;
    let req = wharf_client::ops::container_archive_put(id, &Query::new().set("path", "/"), Body::Bytes(bytes));
    const WHAT: &str = "injecting docker config.json into container failed";
    client.request(req).context(WHAT)?.read_body(1 << 20).context(WHAT)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_is_the_docker_clis() {
        let mut creds = BTreeMap::new();
        creds.insert(
            "reg.example:5000".to_string(),
            Credentials { username: "u".into(), password: "p".into(), identity_token: String::new() },
        );
        creds.insert(
            "tok.example".to_string(),
            Credentials { username: String::new(), password: String::new(), identity_token: "rt".into() },
        );
        let text = String::from_utf8(config_json(&creds)).unwrap();
        assert_eq!(
            text,
            "{\n\t\"auths\": {\n\t\t\"reg.example:5000\": {\n\t\t\t\"auth\": \"dTpw\"\n\t\t},\n\t\t\"tok.example\": {\n\t\t\t\"identitytoken\": \"rt\"\n\t\t}\n\t}\n}"
        );
    }
}
