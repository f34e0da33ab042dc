//! Commands for a container's life beyond create/start/stop, and for volumes and events:
//! `events`, `volume ...`, `restart`, `rename`, `wait`, `pause`, `unpause`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context, Result};
use clap::Subcommand;
use serde::Deserialize;
use serde_json::Value;
use wharf_client::Client;

use crate::containers::{api_timestamp, each, filters_param};

#[derive(Debug, Subcommand)]
pub enum LifecycleCommand {
    /// Get real time events from the server
    Events {
        /// Filter output based on conditions provided
        #[arg(short = 'f', long = "filter")]
        filter: Vec<String>,
        /// Format the output using the given Go template
        #[arg(long)]
        format: Option<String>,
        /// Show all events created since timestamp
        #[arg(long)]
        since: Option<String>,
        /// Stream events until this timestamp
        #[arg(long)]
        until: Option<String>,
    },
    /// Manage volumes
    Volume {
        #[command(subcommand)]
        command: VolumeCommand,
    },
    /// Restart one or more containers
    Restart {
        /// Seconds to wait before killing the container (`--time` is docker's old name)
        #[arg(short = 't', long = "timeout", alias = "time", allow_hyphen_values = true)]
        time: Option<i64>,
        /// Signal to send to the container
        #[arg(short = 's', long)]
        signal: Option<String>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Rename a container
    Rename { container: String, new_name: String },
    /// Block until one or more containers stop, then print their exit codes
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create {
        /// Specify volume driver name
        #[arg(short = 'd', long, default_value = "local")]
        driver: String,
        /// Set metadata for a volume
        #[arg(long)]
        label: Vec<String>,
        /// Set driver specific options
        #[arg(short = 'o', long = "opt")]
        opt: Vec<String>,
        /// Specify volume name
        #[arg(long = "name")]
        name_flag: Option<String>,
        name: Option<String>,
    },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        /// Only display volume names
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Provide filter values (e.g. "dangling=true")
        #[arg(short = 'f', long = "filter")]
        filter: Vec<String>,
        /// Format output using a Go template
        #[arg(long)]
        format: Option<String>,
    },
    /// Display detailed information on one or more volumes
    Inspect {
        /// Format output using a Go template
        #[arg(short = 'f', long)]
        format: Option<String>,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm {
        /// Force the removal of one or more volumes
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove unused local volumes
    Prune {
        /// Remove all unused volumes, not just anonymous ones
        #[arg(short = 'a', long)]
        all: bool,
        /// Provide filter values
        #[arg(long)]
        filter: Vec<String>,
        /// Do not prompt for confirmation
        #[arg(short = 'f', long)]
        force: bool,
    },
}

pub fn run(client: &Client, cmd: LifecycleCommand) -> Result<()> {
    match cmd {
        LifecycleCommand::Events { filter, format, since, until } => {
            events(client, &filter, format.as_deref(), since.as_deref(), until.as_deref())
        }
        LifecycleCommand::Volume { command } => volume(client, command),
        LifecycleCommand::Restart { time, signal, containers } => each(&containers, |c| {
            client.container_restart(c, time, signal.as_deref().filter(|s| !s.is_empty()))?;
            println!("{c}");
            Ok(())
        }),
        LifecycleCommand::Rename { container, new_name } => {
            client.container_rename(&container, &new_name).with_context(|| format!("rename container {container}"))?;
            Ok(())
        }
        LifecycleCommand::Wait { containers } => each(&containers, |c| {
            let v: Value = client.container_wait(c)?;
            println!("{}", v["StatusCode"].as_i64().unwrap_or(0));
            Ok(())
        }),
    }
}

#[derive(Deserialize)]
struct EventMessage {
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(rename = "Action", default)]
    action: String,
    #[serde(rename = "Actor", default)]
    actor: Actor,
    #[serde(rename = "timeNano", default)]
    time_nano: i64,
}

#[derive(Deserialize, Default)]
struct Actor {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Attributes", default)]
    attributes: BTreeMap<String, String>,
}

/// One event as `docker events` prints it:
/// `<time> <type> <action> <id> (k=v, k=v)`.
fn event_line(raw: &Value) -> Result<String> {
    let m: EventMessage = serde_json::from_value(raw.clone()).context("decode event")?;
    let t = SystemTime::UNIX_EPOCH + Duration::from_nanos(m.time_nano.max(0) as u64);
    let attrs: Vec<String> = m.attributes_sorted();
    let mut line = format!("{} {} {} {}", wharf_types::time::rfc3339_nanos(t), m.kind, m.action, m.actor.id);
    if !attrs.is_empty() {
        line.push_str(&format!(" ({})", attrs.join(", ")));
    }
    Ok(line)
}

impl EventMessage {
    fn attributes_sorted(&self) -> Vec<String> {
        self.actor.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

fn events(
    client: &Client,
    filter: &[String],
    format: Option<&str>,
    since: Option<&str>,
    until: Option<&str>,
) -> Result<()> {
    let now = SystemTime::now();
    let since = since.map(|s| api_timestamp(s, now)).transpose()?;
    let until = until.map(|u| api_timestamp(u, now)).transpose()?;
    let stream = client.events::<Value>(since.as_deref(), until.as_deref(), &filters_param(filter)?)?;
    let mut out = std::io::stdout();
    for ev in stream {
        let ev = ev?;
        let line = match format.map(str::trim) {
            Some("{{json .}}") | Some("json") => ev.to_string(),
            Some(other) => return Err(anyhow!("unsupported --format {other:?}: use '{{{{json .}}}}'")),
            None => event_line(&ev)?,
        };
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VolumeBrief {
    name: String,
    driver: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VolumeList {
    #[serde(default)]
    volumes: Option<Vec<VolumeBrief>>,
}

fn key_values(items: &[String], what: &str) -> Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None if what == "label" => Ok((s.to_string(), String::new())),
            None => Err(anyhow!("invalid {what} {s:?}: expected key=value")),
        })
        .collect()
}

fn volume(client: &Client, cmd: VolumeCommand) -> Result<()> {
    match cmd {
        VolumeCommand::Create { driver, label, opt, name_flag, name } => {
            if name_flag.is_some() && name.is_some() && name_flag != name {
                return Err(crate::Exit::new(
                    1,
                    "conflicting options: either specify --name or provide positional arg, not both".to_string(),
                )
                .into());
            }
            let body = serde_json::json!({
                "Name": name.or(name_flag).unwrap_or_default(),
                "Driver": driver,
                "DriverOpts": key_values(&opt, "option")?,
                "Labels": key_values(&label, "label")?,
            });
            let v: Value = client.volume_create(&body)?;
            println!("{}", v["Name"].as_str().unwrap_or_default());
            Ok(())
        }
        VolumeCommand::Ls { quiet, filter, format } => {
            let list: VolumeList = client.volumes_list(&filters_param(&filter)?)?;
            let mut vols = list.volumes.unwrap_or_default();
            vols.sort_by(|a, b| a.name.cmp(&b.name));
            let mut out = String::new();
            match (quiet, format.as_deref().map(str::trim)) {
                (true, _) | (false, Some("{{.Name}}")) => {
                    for v in &vols {
                        out.push_str(&format!("{}\n", v.name));
                    }
                }
                (false, Some(other)) => return Err(anyhow!("unsupported --format {other:?}")),
                (false, None) => {
                    out.push_str(&format!("{:<16}{}\n", "DRIVER", "VOLUME NAME"));
                    for v in &vols {
                        out.push_str(&format!("{:<16}{}\n", v.driver, v.name));
                    }
                }
            }
            print!("{out}");
            Ok(())
        }
        VolumeCommand::Inspect { format, volumes } => {
            let mut found = Vec::new();
            let mut failed = false;
            for v in &volumes {
                match client.volume_inspect::<Value>(v) {
                    Ok(j) => found.push(j),
                    Err(e) => {
                        eprintln!("Error: {e}");
                        failed = true;
                    }
                }
            }
            match format {
                Some(f) => {
                    for v in &found {
                        println!("{}", crate::inspect::render_template(&f, v)?);
                    }
                }
                None => println!("{}", serde_json::to_string_pretty(&found)?),
            }
            if failed {
                return Err(crate::Exit::silent(1).into());
            }
            Ok(())
        }
        VolumeCommand::Rm { force, volumes } => each(&volumes, |v| {
            client.volume_remove(v, force)?;
            println!("{v}");
            Ok(())
        }),
        VolumeCommand::Prune { all, filter, force: _ } => {
            let mut filter = filter;
            if all {
                filter.push("all=true".to_string());
            }
            let v: Value = client.volumes_prune(&filters_param(&filter)?)?;
            let deleted = v["VolumesDeleted"].as_array().cloned().unwrap_or_default();
            if !deleted.is_empty() {
                println!("Deleted Volumes:");
                for d in deleted {
                    println!("{}", d.as_str().unwrap_or_default());
                }
                println!();
            }
            println!("Total reclaimed space: {}", crate::human::size(v["SpaceReclaimed"].as_i64().unwrap_or(0)));
            Ok(())
        }
    }
}

/// `--mount type=bind,source=/x,target=/y,readonly` as Docker's JSON mount.
pub fn parse_mount(spec: &str) -> Result<Value> {
    let mut m = serde_json::Map::new();
    let mut kind = "volume".to_string();
    let mut ro = false;
    let (mut vol, mut bind, mut tmpfs) = (serde_json::Map::new(), serde_json::Map::new(), serde_json::Map::new());
    for field in crate::csv::fields(spec)?.iter().filter(|f| !f.is_empty()) {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim().to_string()),
            None => (field.trim().to_ascii_lowercase(), String::new()),
        };
        let truthy = |v: &str| matches!(v, "" | "1" | "true");
        match k.as_str() {
            "type" => kind = v,
            "source" | "src" => {
                m.insert("Source".into(), Value::String(v));
            }
            "target" | "destination" | "dst" => {
                m.insert("Target".into(), Value::String(v));
            }
            "readonly" | "ro" => ro = truthy(&v),
            "volume-nocopy" => {
                vol.insert("NoCopy".into(), Value::Bool(truthy(&v)));
            }
            "bind-propagation" => {
                bind.insert("Propagation".into(), Value::String(v));
            }
            "tmpfs-size" => {
                let n = crate::human::parse_memory(&v).map_err(|e| anyhow!("invalid tmpfs-size {v:?}: {e}"))?;
                tmpfs.insert("SizeBytes".into(), Value::from(n));
            }
            "tmpfs-mode" => {
                let n = u32::from_str_radix(&v, 8).map_err(|_| anyhow!("invalid tmpfs-mode {v:?}"))?;
                tmpfs.insert("Mode".into(), Value::from(n));
            }
            _ => {
                return Err(anyhow!(
                    "invalid argument \"{spec}\" for \"--mount\" flag: unexpected key '{k}' in '{field}'"
                ))
            }
        }
    }
    if !["bind", "volume", "tmpfs"].contains(&kind.as_str()) {
        return Err(anyhow!("invalid argument \"{spec}\" for \"--mount\" flag: invalid mount type {kind:?}"));
    }
    if !m.contains_key("Target") {
        return Err(anyhow!("invalid argument \"{spec}\" for \"--mount\" flag: target is required"));
    }
    m.insert("Type".into(), Value::String(kind));
    if ro {
        m.insert("ReadOnly".into(), Value::Bool(true));
    }
    for (key, map) in [("VolumeOptions", vol), ("BindOptions", bind), ("TmpfsOptions", tmpfs)] {
        if !map.is_empty() {
            m.insert(key.into(), Value::Object(map));
        }
    }
    Ok(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mounts() {
        let m = parse_mount("type=bind,source=/x,target=/y,readonly").unwrap();
        assert_eq!(m, serde_json::json!({"Type": "bind", "Source": "/x", "Target": "/y", "ReadOnly": true}));
        let m = parse_mount("type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1777").unwrap();
        assert_eq!(m["TmpfsOptions"], serde_json::json!({"SizeBytes": 1 << 20, "Mode": 0o1777}));
        let m = parse_mount("src=data,target=/d,volume-nocopy").unwrap();
        assert_eq!(m["Type"], "volume");
        assert_eq!(m["VolumeOptions"]["NoCopy"], true);
        assert!(parse_mount("type=bind,source=/x").is_err());
        assert!(parse_mount("type=nfs,target=/x").is_err());
        assert!(parse_mount("target=/x,bogus=1").is_err());
    }

    #[test]
    fn prints_events_as_docker() {
        let raw = serde_json::json!({
            "Type": "container", "Action": "die",
            "Actor": {"ID": "abc", "Attributes": {"name": "web", "exitCode": "3"}},
            "timeNano": 1_700_000_000_000_000_001i64
        });
        assert_eq!(
            event_line(&raw).unwrap(),
            "2023-11-14T22:13:20.000000001Z container die abc (exitCode=3, name=web)"
        );
    }
}
