//! Moving images to registries: `push`, and `login`/`logout`, which keep credentials where
//! docker keeps them: in the docker config's `auths`, or with its credential helper
//! (`dockercfg`).

use std::io::{IsTerminal, Read, Write};

use anyhow::{bail, Context, Result};
use base64::Engine;
use clap::Subcommand;
use serde_json::{json, Value};

use crate::dockercfg::{self, Credentials};
use wharf_client::Client;
use wharf_types::ImageRef;

use crate::pull::{registry_auth, Progress};
use crate::Exit;

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
        /// Push only the given platform (API 1.46; refused by older daemons, as docker does)
        #[arg(long)]
        platform: Option<String>,
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
        #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
        human: bool,
        /// Format output using a custom template ('table', 'table TEMPLATE', 'json', or a Go template)
        #[arg(long)]
        format: Option<String>,
        /// Don't truncate output
        #[arg(long = "no-trunc")]
        no_trunc: bool,
        /// Only show image IDs
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Show history for the given platform (API 1.48; refused by older daemons, as docker does)
        #[arg(long)]
        platform: Option<String>,
        image: String,
    },
}

pub fn run(client: &Client, cmd: TransportCommand) -> Result<()> {
    match cmd {
        TransportCommand::Push { all_tags, quiet, platform, image } => {
            crate::images::refuse_platform(client, platform.as_deref(), "1.46")?;
            push(client, &image, all_tags, quiet, &mut std::io::stdout())
        }
        TransportCommand::Login { username, password, password_stdin, server } => {
            login(client, username, password, password_stdin, server.as_deref())
        }
        TransportCommand::Logout { server } => logout(server.as_deref()),
        TransportCommand::History { human, format, no_trunc, quiet, platform, image } => {
            crate::images::refuse_platform(client, platform.as_deref(), "1.48")?;
            history(client, &image, human, format.as_deref(), no_trunc, quiet)
        }
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
    // Docker always sends the header; `{}` when it holds no credentials.
    let auth = registry_auth(&r.registry)
        .with_context(|| what.clone())?
        .unwrap_or_else(|| base64::engine::general_purpose::URL_SAFE.encode("{}"));
    let messages = client.image_push(&r.familiar_name(), &tag, &auth).context(what.clone())?;
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

fn history(client: &Client, image: &str, human: bool, format: Option<&str>, no_trunc: bool, quiet: bool) -> Result<()> {
    let entries: Vec<Value> = client.image_history(image).with_context(|| format!("history {image}"))?;
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
    if let Some(format) = format.filter(|f| *f != "table") {
        // The fields of the docker CLI's history context.
        let rows: Vec<Value> = entries
            .iter()
            .map(|e| {
                let created = e["Created"].as_i64().unwrap_or(0);
                let size = e["Size"].as_i64().unwrap_or(0);
                let by = e["CreatedBy"].as_str().unwrap_or("").replace('\t', " ");
                serde_json::json!({
                    "ID": id_of(e),
                    "CreatedSince": if human { crate::human::ago(created, now) } else { crate::containers::go_time(created) },
                    "CreatedAt": crate::containers::go_time(created),
                    "CreatedBy": if !no_trunc && by.chars().count() > 45 { by.chars().take(44).collect::<String>() + "…" } else { by },
                    "Size": if human { crate::human::size(size) } else { size.to_string() },
                    "Comment": e["Comment"].as_str().unwrap_or(""),
                })
            })
            .collect();
        let headers = serde_json::json!({
            "ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
            "Size": "SIZE", "Comment": "COMMENT",
        });
        print!("{}", crate::template::format_list(format, &rows, &headers)?);
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
    let key = dockercfg::server_key(server.unwrap_or(""));
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
    let answer: Value = client.auth(&body).with_context(|| format!("login to {key}"))?;
    // A token server's refresh token replaces the password, as docker keeps it.
    let creds = match answer.get("IdentityToken").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        Some(token) => Credentials { username: user, identity_token: token.to_string(), ..Credentials::default() },
        None => Credentials { username: user, password, ..Credentials::default() },
    };
    let mut config = dockercfg::read_config()?;
    dockercfg::store(&mut config, &key, &creds).with_context(|| format!("login to {key}: store the credentials"))?;
    dockercfg::write_config(&config)?;
    println!("{}", answer.get("Status").and_then(Value::as_str).unwrap_or("Login Succeeded"));
    Ok(())
}

fn logout(server: Option<&str>) -> Result<()> {
    let key = dockercfg::server_key(server.unwrap_or(""));
    let mut config = dockercfg::read_config()?;
    if !dockercfg::erase(&mut config, &key).with_context(|| format!("logout from {key}"))? {
        println!("Not logged in to {key}");
        return Ok(());
    }
    println!("Removing login credentials for {key}");
    dockercfg::write_config(&config)
}
