//! Container introspection and adjustment: `pause`, `unpause`, `update`, `top`, `stats`,
//! `diff`, and `container prune`.

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use wharf_client::Client;

use crate::containers::{each, filters_param};

#[derive(Debug, Subcommand)]
pub enum ExtrasCommand {
    /// Pause all processes within one or more containers
    Pause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Unpause all processes within one or more containers
    Unpause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Update configuration of one or more containers
    Update(Box<UpdateFlags>),
    /// Display the running processes of a container
    Top {
        container: String,
        /// Options for ps (default -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Display a live stream of container(s) resource usage statistics
    Stats {
        /// Show all containers (default shows just running)
        #[arg(short = 'a', long)]
        all: bool,
        /// Disable streaming stats and only pull the first result
        #[arg(long = "no-stream")]
        no_stream: bool,
        /// Do not truncate output
        #[arg(long = "no-trunc")]
        no_trunc: bool,
        /// Format output using a custom template ('table', 'table TEMPLATE', 'json', or a Go template)
        #[arg(long)]
        format: Option<String>,
        containers: Vec<String>,
    },
    /// Inspect changes to files or directories on a container's filesystem
    Diff { container: String },
}

#[derive(Debug, Args)]
pub struct UpdateFlags {
    /// Memory, CPU, block I/O weight, pids (`resources.rs`).
    #[command(flatten)]
    resources: crate::resources::ResourceFlags,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    restart: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `container prune`.
#[derive(Debug, Args)]
pub struct PruneFlags {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long)]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
}

pub fn run(client: &Client, cmd: ExtrasCommand) -> Result<()> {
    match cmd {
        ExtrasCommand::Pause { containers } => each(&containers, |c| Ok(client.container_pause(c)?)),
        ExtrasCommand::Unpause { containers } => each(&containers, |c| Ok(client.container_unpause(c)?)),
        ExtrasCommand::Update(f) => update(client, &f),
        ExtrasCommand::Top { container, ps_args } => top(client, &container, &ps_args),
        ExtrasCommand::Stats { all, no_stream, no_trunc, format, containers } => {
            crate::stats::stats(client, all, no_stream, no_trunc, format.as_deref(), &containers)
        }
        ExtrasCommand::Diff { container } => diff(client, &container),
    }
}

fn update(client: &Client, f: &UpdateFlags) -> Result<()> {
    let mut body = f.resources.update_body()?;
    if let Some(r) = &f.restart {
        let (name, max) = match r.split_once(':') {
            Some((n, m)) => (n, m.parse::<i64>().map_err(|_| anyhow!("invalid restart policy format: {r}"))?),
            None => (r.as_str(), 0),
        };
        body.insert("RestartPolicy".into(), json!({"Name": name, "MaximumRetryCount": max}));
    }
    if body.is_empty() {
        return Err(anyhow!("you must provide one or more flags when using this command"));
    }
    let body = Value::Object(body);
    each(&f.containers, |c| {
        let _: Value = client.container_update(c, &body)?;
        Ok(())
    })
}

pub fn prune(client: &Client, f: &PruneFlags) -> Result<()> {
    let _ = f.force;
    let v: Value = client.containers_prune(&filters_param(&f.filter)?)?;
    let deleted = v["ContainersDeleted"].as_array().cloned().unwrap_or_default();
    if !deleted.is_empty() {
        println!("Deleted Containers:");
        for d in deleted {
            println!("{}", d.as_str().unwrap_or_default());
        }
        println!();
    }
    println!("Total reclaimed space: {}", crate::human::size(v["SpaceReclaimed"].as_i64().unwrap_or(0)));
    Ok(())
}

fn top(client: &Client, container: &str, ps_args: &[String]) -> Result<()> {
    let v: Value = client.container_top(container, &ps_args.join(" "))?;
    let titles: Vec<&str> =
        v["Titles"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let mut t = crate::table::Table::new(&titles);
    for p in v["Processes"].as_array().cloned().unwrap_or_default() {
        t.row(
            p.as_array()
                .map(|r| r.iter().map(|c| c.as_str().unwrap_or_default().to_string()).collect())
                .unwrap_or_default(),
        );
    }
    print!("{}", t.render());
    Ok(())
}

fn diff(client: &Client, container: &str) -> Result<()> {
    let v: Value = client.container_changes(container)?;
    for c in v.as_array().cloned().unwrap_or_default() {
        let kind = match c["Kind"].as_i64() {
            Some(0) => "C",
            Some(1) => "A",
            Some(2) => "D",
            _ => "?",
        };
        println!("{kind} {}", c["Path"].as_str().unwrap_or_default());
    }
    Ok(())
}
