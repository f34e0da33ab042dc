//! `wharf context`: named daemon endpoints, stored as the docker CLI stores them, so that both
//! CLIs see the same contexts: `$DOCKER_CONFIG/contexts/meta/<sha256 of the name>/meta.json`,
//! TLS files under `contexts/tls/<same>/docker/`, the current one as `currentContext` in
//! `config.json`. `default` is not stored: it is `-H`/`DOCKER_HOST`, else the default socket.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context as _, Result};
use clap::Subcommand;
use serde_json::{json, Value};
use wharf_client::TlsOptions;

use crate::dockercfg;

pub const DEFAULT: &str = "default";

#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// Create a context
    Create {
        /// Description of the context
        #[arg(long)]
        description: Option<String>,
        /// set the docker endpoint ("host=...,ca=...,cert=...,key=...,skip-tls-verify=...")
        #[arg(long, value_name = "STRINGTOSTRING")]
        docker: Option<String>,
        /// create context from a named context
        #[arg(long)]
        from: Option<String>,
        name: String,
    },
    /// Set the current docker context
    Use { name: String },
    /// List contexts
    #[command(alias = "list")]
    Ls {
        /// Format output using a custom template ('table', 'table TEMPLATE', 'json', or a Go template)
        #[arg(long)]
        format: Option<String>,
        /// Only show context names
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Display detailed information on one or more contexts
    Inspect {
        /// Format output using a custom template ('json', or a Go template)
        #[arg(short = 'f', long)]
        format: Option<String>,
        names: Vec<String>,
    },
    /// Remove one or more contexts
    #[command(alias = "remove")]
    Rm {
        /// Force the removal of a context in use
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Print the name of the current context
    Show,
    /// Export a context to a tar archive FILE or a tar stream on STDOUT ("-")
    Export { name: String, file: Option<String> },
    /// Import a context from a tar or zip file
    Import { name: String, file: String },
    /// Update a context
    Update {
        /// Description of the context
        #[arg(long)]
        description: Option<String>,
        /// set the docker endpoint ("host=...,ca=...,cert=...,key=...,skip-tls-verify=...")
        #[arg(long, value_name = "STRINGTOSTRING")]
        docker: Option<String>,
        name: String,
    },
}

/// Which context a command uses, as the docker CLI decides: `--context`; else `default` when
/// `-H` or `DOCKER_HOST` names a host; else `DOCKER_CONTEXT`; else the config's
/// `currentContext`; else `default`.
pub fn resolve(flag: Option<&str>, host_flag: bool) -> Result<String> {
    if let Some(c) = flag {
        if host_flag {
            bail!("conflicting options: either specify --host or --context, not both");
        }
        return Ok(c.to_string());
    }
    if host_flag || std::env::var("DOCKER_HOST").is_ok_and(|h| !h.is_empty()) {
        return Ok(DEFAULT.to_string());
    }
    if let Ok(c) = std::env::var("DOCKER_CONTEXT") {
        if !c.is_empty() {
            return Ok(c);
        }
    }
    let config = dockercfg::read_config()?;
    Ok(config["currentContext"].as_str().filter(|c| !c.is_empty()).unwrap_or(DEFAULT).to_string())
}

/// The host and TLS of a stored context; `None` for `default`.
pub fn endpoint(name: &str) -> Result<Option<(String, Option<TlsOptions>)>> {
    if name == DEFAULT {
        return Ok(None);
    }
    let meta = load(name)?;
    let docker = &meta["Endpoints"]["docker"];
    let host = docker["Host"].as_str().unwrap_or("").to_string();
    if host.is_empty() {
        bail!("context {name:?} has no docker endpoint");
    }
    let tls = tls_dir(name)?.join("docker");
    let skip = docker["SkipTLSVerify"].as_bool().unwrap_or(false);
    let has_tls = ["ca.pem", "cert.pem", "key.pem"].iter().any(|f| tls.join(f).is_file());
    let tls = (has_tls || skip).then(|| TlsOptions {
        verify: !skip,
        ca: tls.join("ca.pem"),
        cert: tls.join("cert.pem"),
        key: tls.join("key.pem"),
    });
    Ok(Some((host, tls)))
}

fn contexts_dir() -> Result<PathBuf> {
    let config = dockercfg::config_path()?;
    Ok(config.parent().map(|d| d.join("contexts")).unwrap_or_else(|| PathBuf::from("contexts")))
}

/// The docker CLI's directory name for a context: the hex SHA-256 of its name.
fn id(name: &str) -> String {
    wharf_types::Digest::of(name.as_bytes()).hex().to_string()
}

fn meta_dir(name: &str) -> Result<PathBuf> {
    Ok(contexts_dir()?.join("meta").join(id(name)))
}

fn tls_dir(name: &str) -> Result<PathBuf> {
    Ok(contexts_dir()?.join("tls").join(id(name)))
}

fn load(name: &str) -> Result<Value> {
    let path = meta_dir(name)?.join("meta.json");
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("context {name:?}: {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(anyhow!("context {name:?} does not exist (context not found: {})", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

fn save(meta: &Value) -> Result<()> {
    let name = meta["Name"].as_str().unwrap_or_default();
    let dir = meta_dir(name)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let tmp = dir.join(format!(".meta.json.{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec(meta)?).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join("meta.json")).with_context(|| format!("write {}", dir.display()))
}

/// The stored contexts, sorted by name (unreadable entries are skipped, as docker does).
fn stored() -> Result<Vec<Value>> {
    let dir = contexts_dir()?.join("meta");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if let Ok(bytes) = std::fs::read(e.path().join("meta.json")) {
            if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                out.push(v);
            }
        }
    }
    out.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
    Ok(out)
}

/// The `default` context as docker shows it: the environment's host, not stored.
fn default_meta() -> Value {
    let host = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| wharf_client::DEFAULT_HOST.to_string());
    json!({
        "Name": DEFAULT,
        "Metadata": {"Description": "Current DOCKER_HOST based configuration"},
        "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}},
    })
}

fn load_any(name: &str) -> Result<Value> {
    if name == DEFAULT {
        Ok(default_meta())
    } else {
        load(name)
    }
}

/// Docker's rule for context names.
fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.clone().count() >= 1 && chars.all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c));
    if !first_ok || !rest_ok {
        bail!("context name {name:?} is invalid, names are validated against regexp \"^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$\"");
    }
    if name == DEFAULT {
        bail!("\"default\" is a reserved context name");
    }
    Ok(())
}

/// `--docker host=...,ca=...,cert=...,key=...,skip-tls-verify=...`: the endpoint, and the
/// TLS files to copy into the context's store.
struct DockerSpec {
    host: Option<String>,
    skip_tls_verify: Option<bool>,
    files: Vec<(&'static str, String)>,
}

fn parse_docker(spec: &str) -> Result<DockerSpec> {
    let mut d = DockerSpec { host: None, skip_tls_verify: None, files: Vec::new() };
    for part in crate::csv::fields(spec)?.iter().filter(|p| !p.is_empty()) {
        let (k, v) =
            part.split_once('=').ok_or_else(|| anyhow!("invalid docker endpoint option {part:?}: use key=value"))?;
        let v = v.trim_matches('"').to_string();
        match k {
            "host" => d.host = Some(v),
            "ca" => d.files.push(("ca.pem", v)),
            "cert" => d.files.push(("cert.pem", v)),
            "key" => d.files.push(("key.pem", v)),
            "skip-tls-verify" => {
                d.skip_tls_verify =
                    Some(v.parse().map_err(|_| anyhow!("invalid value {v:?} for skip-tls-verify: use true or false"))?)
            }
            other => bail!("unable to create docker endpoint config: unrecognized config key: {other}"),
        }
    }
    Ok(d)
}

/// Applies `--docker` to `meta` and stores its TLS files.
fn apply_docker(meta: &mut Value, name: &str, spec: &str) -> Result<()> {
    let d = parse_docker(spec)?;
    let endpoint = &mut meta["Endpoints"]["docker"];
    if let Some(h) = d.host {
        wharf_client::Client::new(&h).map_err(|e| anyhow!("unable to parse docker host {h:?}: {e}"))?;
        endpoint["Host"] = json!(h);
    }
    endpoint["SkipTLSVerify"] = json!(d.skip_tls_verify.unwrap_or(false));
    if !d.files.is_empty() {
        let dir = tls_dir(name)?.join("docker");
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        for (file, from) in d.files {
            let bytes = std::fs::read(&from).with_context(|| format!("read {from}"))?;
            std::fs::write(dir.join(file), bytes).with_context(|| format!("write {}", dir.join(file).display()))?;
        }
    }
    Ok(())
}

/// Runs a context command; `current` is the context this invocation resolved to.
pub fn run(cmd: ContextCommand, current: &str) -> Result<()> {
    match cmd {
        ContextCommand::Create { description, docker, from, name } => {
            check_name(&name)?;
            if meta_dir(&name)?.join("meta.json").exists() {
                bail!("context {name:?} already exists");
            }
            if docker.is_some() && from.is_some() {
                bail!("conflicting options: --from cannot be combined with --docker");
            }
            // Without --docker, the endpoint comes from --from, else the current context.
            let source = load_any(from.as_deref().unwrap_or(current))?;
            let mut meta = json!({
                "Name": name,
                "Metadata": {},
                "Endpoints": {"docker": source["Endpoints"]["docker"].clone()},
            });
            if let Some(d) = description {
                meta["Metadata"]["Description"] = json!(d);
            }
            if let Some(spec) = &docker {
                meta["Endpoints"]["docker"] = json!({"Host": "", "SkipTLSVerify": false});
                apply_docker(&mut meta, &name, spec)?;
                if meta["Endpoints"]["docker"]["Host"].as_str().unwrap_or("").is_empty() {
                    meta["Endpoints"]["docker"]["Host"] = default_meta()["Endpoints"]["docker"]["Host"].clone();
                }
            } else if let Some(from) = from.as_deref().filter(|f| *f != DEFAULT) {
                // The source's TLS files come along.
                let src = tls_dir(from)?;
                if src.is_dir() {
                    copy_dir(&src, &tls_dir(&name)?)?;
                }
            }
            save(&meta)?;
            println!("{name}");
            eprintln!("Successfully created context {name:?}");
            Ok(())
        }
        ContextCommand::Update { description, docker, name } => {
            if name == DEFAULT {
                bail!("context \"default\" cannot be updated");
            }
            let mut meta = load(&name)?;
            if let Some(d) = description {
                meta["Metadata"]["Description"] = json!(d);
            }
            if let Some(spec) = &docker {
                apply_docker(&mut meta, &name, spec)?;
            }
            save(&meta)?;
            println!("{name}");
            eprintln!("Successfully updated context {name:?}");
            Ok(())
        }
        ContextCommand::Use { name } => {
            load_any(&name)?;
            let mut config = dockercfg::read_config()?;
            if let Some(o) = config.as_object_mut() {
                // `default` is the absence of a choice, as docker writes it.
                if name == DEFAULT {
                    o.remove("currentContext");
                } else {
                    o.insert("currentContext".into(), json!(name));
                }
            }
            dockercfg::write_config(&config)?;
            println!("{name}");
            eprintln!("Current context is now {name:?}");
            if std::env::var("DOCKER_HOST").is_ok_and(|h| !h.is_empty()) && name != DEFAULT {
                eprintln!(
                    "Warning: DOCKER_HOST environment variable overrides the active context. To use {name:?}, either set the global --context flag, or unset DOCKER_HOST environment variable."
                );
            }
            Ok(())
        }
        ContextCommand::Export { name, file } => {
            if name == DEFAULT {
                bail!("context \"default\" cannot be exported");
            }
            let meta = load(&name)?;
            let file = file.unwrap_or_else(|| format!("{name}.dockercontext"));
            let mut out: Box<dyn std::io::Write> = if file == "-" {
                Box::new(std::io::stdout())
            } else {
                if std::path::Path::new(&file).exists() {
                    bail!("file {file:?} already exists");
                }
                Box::new(std::fs::File::create(&file).with_context(|| format!("create {file}"))?)
            };
            // The docker CLI's layout: meta.json, then tls/<endpoint>/<file>.
            let mut tar = tar::Builder::new(&mut out);
            let mut add = |path: &str, bytes: &[u8]| -> Result<()> {
                let mut h = tar::Header::new_gnu();
                h.set_size(bytes.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                tar.append_data(&mut h, path, bytes)?;
                Ok(())
            };
            add("meta.json", &serde_json::to_vec(&meta)?)?;
            let tls = tls_dir(&name)?;
            for ep in std::fs::read_dir(&tls).into_iter().flatten().flatten() {
                for f in std::fs::read_dir(ep.path())?.flatten() {
                    let rel = format!("tls/{}/{}", ep.file_name().to_string_lossy(), f.file_name().to_string_lossy());
                    add(&rel, &std::fs::read(f.path())?)?;
                }
            }
            tar.finish()?;
            drop(tar);
            if file != "-" {
                eprintln!("Written file {file:?}");
            }
            Ok(())
        }
        ContextCommand::Import { name, file } => {
            check_name(&name)?;
            if meta_dir(&name)?.join("meta.json").exists() {
                bail!("context {name:?} already exists");
            }
            let input: Box<dyn std::io::Read> = if file == "-" {
                Box::new(std::io::stdin())
            } else {
                Box::new(std::fs::File::open(&file).with_context(|| format!("open {file}"))?)
            };
            let mut meta = None;
            let mut tls_files = Vec::new();
            for entry in tar::Archive::new(input).entries()? {
                let mut entry = entry?;
                let path = entry.path()?.to_string_lossy().to_string();
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut std::io::Read::take(&mut entry, 1 << 20), &mut bytes)?;
                if path == "meta.json" {
                    meta = Some(serde_json::from_slice::<Value>(&bytes).context("meta.json")?);
                } else if let Some(rel) = path.strip_prefix("tls/") {
                    // Only `endpoint/file`, nothing that climbs out of the context's directory.
                    let parts: Vec<&str> = rel.split('/').collect();
                    if parts.len() != 2 || parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..") {
                        bail!("invalid context archive: unexpected file {path:?}");
                    }
                    tls_files.push((parts[0].to_string(), parts[1].to_string(), bytes));
                }
            }
            let mut meta = meta.ok_or_else(|| anyhow!("invalid context archive: no meta.json"))?;
            meta["Name"] = json!(name);
            save(&meta)?;
            for (ep, f, bytes) in tls_files {
                let dir = tls_dir(&name)?.join(ep);
                std::fs::create_dir_all(&dir)?;
                std::fs::write(dir.join(f), bytes)?;
            }
            println!("{name}");
            eprintln!("Successfully imported context {name:?}");
            Ok(())
        }
        ContextCommand::Show => {
            println!("{current}");
            Ok(())
        }
        ContextCommand::Ls { format, quiet } => {
            let mut all = vec![default_meta()];
            all.extend(stored()?);
            if quiet {
                for c in &all {
                    println!("{}", c["Name"].as_str().unwrap_or(""));
                }
                return Ok(());
            }
            let rows: Vec<Value> = all
                .iter()
                .map(|c| {
                    json!({
                        "Name": c["Name"],
                        "Description": c["Metadata"]["Description"].as_str().unwrap_or(""),
                        "DockerEndpoint": c["Endpoints"]["docker"]["Host"].as_str().unwrap_or(""),
                        "Current": c["Name"].as_str() == Some(current),
                        "Error": "",
                    })
                })
                .collect();
            match format.as_deref().filter(|f| *f != "table") {
                Some(f) => print!("{}", crate::template::format_list(f, &rows, &ls_headers())?),
                None => {
                    let mut t = crate::table::Table::new(&["NAME", "DESCRIPTION", "DOCKER ENDPOINT", "ERROR"]);
                    for r in &rows {
                        let mark = if r["Current"] == true { " *" } else { "" };
                        t.row(vec![
                            format!("{}{mark}", r["Name"].as_str().unwrap_or("")),
                            r["Description"].as_str().unwrap_or("").to_string(),
                            r["DockerEndpoint"].as_str().unwrap_or("").to_string(),
                            String::new(),
                        ]);
                    }
                    print!("{}", t.render());
                }
            }
            Ok(())
        }
        ContextCommand::Inspect { format, names } => {
            let names = if names.is_empty() { vec![current.to_string()] } else { names };
            let mut out = Vec::new();
            let mut texts = Vec::new();
            for n in &names {
                let meta = load_any(n)?;
                let storage = if n == DEFAULT {
                    json!({"MetadataPath": "<IN MEMORY>", "TLSPath": "<IN MEMORY>"})
                } else {
                    json!({"MetadataPath": meta_dir(n)?, "TLSPath": tls_dir(n)?})
                };
                // Written by hand so that the keys come in docker's order.
                texts.push(format!(
                    "{{\"Name\":{},\"Metadata\":{},\"Endpoints\":{},\"TLSMaterial\":{{}},\"Storage\":{}}}",
                    meta["Name"], meta["Metadata"], meta["Endpoints"], storage
                ));
                let mut v = meta;
                v["TLSMaterial"] = json!({});
                v["Storage"] = storage;
                out.push(v);
            }
            match format {
                Some(f) => print!("{}", crate::template::format_list(&f, &out, &json!({}))?),
                None => println!("{}", crate::inspect::indent_json(format!("[{}]", texts.join(",")).as_bytes(), 0)),
            }
            Ok(())
        }
        ContextCommand::Rm { force, names } => {
            let mut failed = false;
            for n in &names {
                let removed = (|| -> Result<()> {
                    if n == DEFAULT {
                        bail!("context \"default\" cannot be removed");
                    }
                    load(n)?;
                    if n == current {
                        if !force {
                            bail!("context {n:?} is in use, set -f flag to force remove");
                        }
                        let mut config = dockercfg::read_config()?;
                        if let Some(o) = config.as_object_mut() {
                            o.remove("currentContext");
                        }
                        dockercfg::write_config(&config)?;
                    }
                    std::fs::remove_dir_all(meta_dir(n)?)?;
                    let tls = tls_dir(n)?;
                    if tls.exists() {
                        std::fs::remove_dir_all(tls)?;
                    }
                    Ok(())
                })();
                match removed {
                    Ok(()) => println!("{n}"),
                    Err(e) => {
                        failed = true;
                        eprintln!("wharf: {e:#}");
                    }
                }
            }
            if failed {
                return Err(crate::Exit::silent(1).into());
            }
            Ok(())
        }
    }
}

fn ls_headers() -> Value {
    json!({"Name": "NAME", "Description": "DESCRIPTION", "DockerEndpoint": "DOCKER ENDPOINT", "Current": "CURRENT", "Error": "ERROR"})
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("create {}", to.display()))?;
    for e in std::fs::read_dir(from)?.flatten() {
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target).with_context(|| format!("copy to {}", target.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_endpoint_specs() {
        for ok in ["prod", "a1", "my-ctx_2.x+y"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "a", "-x", "has space", "a/b", "default"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        let d = parse_docker("host=tcp://10.0.0.1:2376,ca=/c/ca.pem,skip-tls-verify=true").unwrap();
        assert_eq!(d.host.as_deref(), Some("tcp://10.0.0.1:2376"));
        assert_eq!(d.skip_tls_verify, Some(true));
        assert_eq!(d.files, [("ca.pem", "/c/ca.pem".to_string())]);
        assert!(parse_docker("hots=x").is_err());
        assert!(parse_docker("skip-tls-verify=maybe").is_err());
        // The docker CLI's directory name for "default-ish" names: sha256 hex.
        assert_eq!(id("prod").len(), 64);
    }
}
