//! Moving images to registries: `push`, and `login`/`logout`, which keep credentials in
//! `~/.docker/config.json` (`auths.<server>.auth`) exactly where docker keeps them.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use clap::Subcommand;
use serde_json::{json, Value};
use wharf_client::{Client, JsonMessage, Query, Request};
use wharf_types::ImageRef;

use crate::pull::{registry_auth, Progress};
use crate::Exit;

/// Where `docker login` stores Docker Hub credentials.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

#[derive(Debug, Subcommand)]
pub enum TransportCommand {
    /// Upload an image to a registry
    Push {
        /// Push all tags of an image to the repository
        #[arg(short = 'a', long = "all-tags")]
        all_tags: bool,
        /// Suppress verbose output
        #[arg(short = 'q', long)]
        quiet: bool,
        image: String,
    },
    /// Log in to a registry
    Login {
        /// Username
        #[arg(short = 'u', long)]
        username: Option<String>,
        /// Password
        #[arg(short = 'p', long)]
        password: Option<String>,
        /// Take the password from stdin
        #[arg(long = "password-stdin")]
        password_stdin: bool,
        server: Option<String>,
    },
    /// Log out from a registry
    Logout { server: Option<String> },
    /// Show the history of an image
    History {
        /// Print sizes and dates in human readable format
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        human: bool,
        /// Don't truncate output
        #[arg(long = "no-trunc")]
        no_trunc: bool,
        /// Only show image IDs
        #[arg(short = 'q', long)]
        quiet: bool,
        image: String,
    },
}

pub fn run(client: &Client, cmd: TransportCommand) -> Result<()> {
    match cmd {
        TransportCommand::Push { all_tags, quiet, image } => {
            push(client, &image, all_tags, quiet, &mut std::io::stdout())
        }
        TransportCommand::Login { username, password, password_stdin, server } => {
            login(client, username, password, password_stdin, server.as_deref())
        }
        TransportCommand::Logout { server } => logout(server.as_deref()),
        TransportCommand::History { human, no_trunc, quiet, image } => history(client, &image, human, no_trunc, quiet),
    }
}

/// `push NAME[:TAG]`: streams the daemon's progress; `-a` (or no tag with `--all-tags`)
/// pushes every tag of the repository.
pub fn push(client: &Client, image: &str, all_tags: bool, quiet: bool, out: &mut dyn Write) -> Result<()> {
    let what = format!("push {image}");
    let r = ImageRef::parse(image).map_err(|e| Exit::new(crate::run::EXIT_FAILED, format!("wharf: {what}: {e}")))?;
    if r.digest.is_some() {
        return Err(Exit::new(crate::run::EXIT_FAILED, format!("wharf: {what}: cannot push a digest reference")).into());
    }
    let explicit_tag = image.rsplit('/').next().is_some_and(|last| last.contains(':'));
    if all_tags && explicit_tag {
        return Err(Exit::new(crate::run::EXIT_FAILED, "wharf: tag can't be used with --all-tags/-a".into()).into());
    }
    let tag = if all_tags { String::new() } else { r.tag.clone().unwrap_or_else(|| "latest".into()) };
    let q = Query::new().set_nonempty("tag", &tag);
    let target = q.to_target(&format!("/images/{}/push", r.familiar_name()));
    // Docker always sends the header; `{}` when it holds no credentials.
    let auth = registry_auth(&r.registry).unwrap_or_else(|| base64::engine::general_purpose::URL_SAFE.encode("{}"));
    let req = Request::new("POST", &target).header("X-Registry-Auth", &auth);
    let messages = client.json_stream::<JsonMessage>(req).context(what.clone())?;
    let mut display = Progress::new(std::io::stdout().is_terminal() && !quiet);
    for m in messages {
        let m = m.context(what.clone())?;
        if let Some(e) = m.error_message() {
            if e.starts_with(&what) {
                bail!("{e}");
            }
            bail!("{what}: {e}");
        }
        // The closing `aux` message carries no text.
        if quiet || (m.status.is_none() && m.stream.is_none()) {
            continue;
        }
        display.show(&m, out)?;
    }
    if quiet {
        writeln!(out, "{}", if tag.is_empty() { r.familiar_name() } else { format!("{}:{tag}", r.familiar_name()) })?;
    }
    Ok(())
}

fn history(client: &Client, image: &str, human: bool, no_trunc: bool, quiet: bool) -> Result<()> {
    let path = format!("/images/{image}/history");
    let entries: Vec<Value> = client.get_json(&path).with_context(|| format!("history {image}"))?;
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let id_of = |e: &Value| {
        let id = e["Id"].as_str().unwrap_or("<missing>").to_string();
        match (no_trunc, id.strip_prefix("sha256:")) {
            (false, Some(hex)) => hex.chars().take(12).collect(),
            _ => id,
        }
    };
    if quiet {
        for e in &entries {
            println!("{}", id_of(e));
        }
        return Ok(());
    }
    let mut t = crate::table::Table::new(&["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]);
    for e in &entries {
        let created = e["Created"].as_i64().unwrap_or(0);
        let size = e["Size"].as_i64().unwrap_or(0);
        let mut by = e["CreatedBy"].as_str().unwrap_or("").replace('\t', " ");
        if !no_trunc && by.chars().count() > 45 {
            by = by.chars().take(44).collect::<String>() + "…";
        }
        t.row(vec![
            id_of(e),
            if human { crate::human::ago(created, now) } else { created.to_string() },
            by,
            if human { crate::human::size(size) } else { size.to_string() },
            e["Comment"].as_str().unwrap_or("").to_string(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

fn login(
    client: &Client,
    username: Option<String>,
    password: Option<String>,
    password_stdin: bool,
    server: Option<&str>,
) -> Result<()> {
    let key = config_key(server);
    let usage = |m: &str| -> anyhow::Error { Exit::new(crate::run::EXIT_FAILED, format!("wharf: {m}")).into() };
    if password.is_some() && password_stdin {
        return Err(usage("--password and --password-stdin are mutually exclusive"));
    }
    let password = if password_stdin {
        if username.is_none() {
            return Err(usage("must provide --username with --password-stdin"));
        }
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("read password from stdin")?;
        Some(s.trim_end_matches(['\n', '\r']).to_string())
    } else {
        if password.is_some() {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        }
        password
    };
    let (Some(user), Some(password)) = (username, password) else {
        return Err(usage("login needs a username and a password: use -u and -p or --password-stdin"));
    };
    if user.is_empty() || password.is_empty() {
        return Err(usage("username and password must not be empty"));
    }
    let body = json!({"username": user, "password": password, "serveraddress": key});
    let answer: Value = client.post_json("/auth", Some(&body)).with_context(|| format!("login to {key}"))?;
    let mut config = read_config()?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    set_auth(&mut config, &key, Some(&encoded))?;
    write_config(&config)?;
    println!("{}", answer.get("Status").and_then(Value::as_str).unwrap_or("Login Succeeded"));
    Ok(())
}

fn logout(server: Option<&str>) -> Result<()> {
    let key = config_key(server);
    let mut config = read_config()?;
    if !set_auth(&mut config, &key, None)? {
        println!("Not logged in to {key}");
        return Ok(());
    }
    println!("Removing login credentials for {key}");
    write_config(&config)
}

/// The `auths` key of a server as docker writes it: Docker Hub's index URL, else the address
/// as given without a scheme or trailing slash.
fn config_key(server: Option<&str>) -> String {
    let s = server.unwrap_or("").trim();
    let bare = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")).unwrap_or(s).trim_end_matches('/');
    match bare {
        "" | "docker.io" | "index.docker.io" | "index.docker.io/v1" | "registry-1.docker.io" => {
            DOCKER_HUB_KEY.to_string()
        }
        b => b.to_string(),
    }
}

/// Sets (`Some`) or removes (`None`) `auths.<key>.auth`, keeping everything else in the file.
/// Returns whether there was an entry before.
fn set_auth(config: &mut Value, key: &str, auth: Option<&str>) -> Result<bool> {
    let obj = config.as_object_mut().ok_or_else(|| anyhow!("docker config file is not a JSON object"))?;
    let auths = obj.entry("auths").or_insert_with(|| json!({}));
    let auths = auths.as_object_mut().ok_or_else(|| anyhow!("docker config: \"auths\" is not an object"))?;
    let existed = auths.contains_key(key);
    match auth {
        Some(a) => {
            auths.insert(key.to_string(), json!({ "auth": a }));
        }
        None => {
            auths.remove(key);
        }
    }
    Ok(existed)
}

fn config_path() -> Result<PathBuf> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
        .ok_or_else(|| anyhow!("neither DOCKER_CONFIG nor HOME is set"))?;
    Ok(dir.join("config.json"))
}

fn read_config() -> Result<Value> {
    let path = config_path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().is_empty() => Ok(json!({})),
        Ok(text) => serde_json::from_str(&text).with_context(|| format!("docker config file {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

/// Writes the config atomically with mode 0600: it holds passwords.
fn write_config(config: &Value) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys() {
        for (input, want) in [
            (None, DOCKER_HUB_KEY),
            (Some("docker.io"), DOCKER_HUB_KEY),
            (Some("https://index.docker.io/v1/"), DOCKER_HUB_KEY),
            (Some("127.0.0.1:5000"), "127.0.0.1:5000"),
            (Some("http://127.0.0.1:5000/"), "127.0.0.1:5000"),
        ] {
            assert_eq!(config_key(input), want, "{input:?}");
        }
    }

    #[test]
    fn auth_entries_keep_the_rest_of_the_file() {
        let mut c = json!({"credsStore": "x", "auths": {"a:1": {"auth": "old"}}});
        assert!(!set_auth(&mut c, "b:2", Some("new")).unwrap());
        assert!(set_auth(&mut c, "a:1", None).unwrap());
        assert_eq!(c, json!({"credsStore": "x", "auths": {"b:2": {"auth": "new"}}}));
        assert!(set_auth(&mut json!([]), "a", None).is_err());
    }
}
