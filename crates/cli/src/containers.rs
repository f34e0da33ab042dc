//! Container commands other than run/create/start: `ps`, `stop`, `kill`, `rm`, `logs`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use wharf_client::{copy_raw, Client, ContainerInspectBrief, ContainerSummary, Demuxer, LogsOptions, Port};

use crate::human;
use crate::table::Table;
use crate::Exit;

#[derive(Debug, Args)]
pub struct PsFlags {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", default_value_t = -1, allow_hyphen_values = true)]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Filter output based on conditions provided (key=value)
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Display total file sizes
    #[arg(short = 's', long)]
    pub size: bool,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', or a Go template)
    #[arg(long)]
    pub format: Option<String>,
}

/// Filters as the docker CLI sends them: `{"key":{"value":true}}`.
pub fn filters_json(filters: &[String]) -> Result<String> {
    let mut map: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for f in filters {
        let (k, v) = f.split_once('=').ok_or_else(|| anyhow!("bad format of filter (expected name=value): {f}"))?;
        map.entry(k.trim().to_ascii_lowercase()).or_default().insert(v.to_string(), true);
    }
    Ok(serde_json::to_string(&map)?)
}

/// The `filters` parameter of `filters`: empty (not sent) when there are none.
pub fn filters_param(filters: &[String]) -> Result<String> {
    if filters.is_empty() {
        return Ok(String::new());
    }
    filters_json(filters)
}

pub fn ps(client: &Client, f: &PsFlags) -> Result<()> {
    let limit = if f.latest { 1 } else { f.last };
    let list: Vec<ContainerSummary> = client.containers_list(f.all, f.size, limit, &filters_param(&f.filter)?)?;
    let now = now_unix();
    match f.format.as_deref() {
        Some(format) if !f.quiet && format != "table" => print!("{}", ps_format(&list, f, now, format)?),
        _ => print!("{}", ps_output(&list, f, now)),
    }
    Ok(())
}

/// `docker ps --format`: the fields of the docker CLI's container context, as text.
fn ps_format(list: &[ContainerSummary], f: &PsFlags, now: i64, format: &str) -> Result<String> {
    let rows: Vec<serde_json::Value> = list
        .iter()
        .map(|c| {
            let names: Vec<&str> = c.names.iter().map(|n| n.strip_prefix('/').unwrap_or(n)).collect();
            let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let size = match (c.size_rw, c.size_root_fs) {
                (Some(rw), Some(v)) if v > 0 => format!("{} (virtual {})", human::size(rw), human::size(v)),
                (Some(rw), _) => human::size(rw),
                _ => "0B".to_string(),
            };
            serde_json::json!({
                "ID": if f.no_trunc { c.id.as_str() } else { short_id(&c.id) },
                "Image": if f.no_trunc { c.image.clone() } else { short_image(&c.image) },
                "Command": quote(&if f.no_trunc { c.command.clone() } else { ellipsis(&c.command, 20) }),
                "CreatedAt": go_time(c.created),
                "RunningFor": human::ago(c.created, now),
                "Ports": ports(&c.ports),
                "State": c.state,
                "Status": c.status,
                "Size": size,
                "Names": names.join(","),
                "Labels": labels.join(","),
                "Mounts": mounts(c, !f.no_trunc),
                "Networks": c.network_settings.as_ref().map(|n| n.networks.keys().cloned().collect::<Vec<_>>().join(",")).unwrap_or_default(),
                "LocalVolumes": c.mounts.iter().filter(|m| m.driver == "local").count().to_string(),
            })
        })
        .collect();
    let headers = serde_json::json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
        "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
        "LocalVolumes": "LOCAL VOLUMES",
    });
    crate::template::format_list(format, &rows, &headers)
}

/// `{{.Mounts}}`: volume names, or the source of binds, shortened as the docker CLI does.
fn mounts(c: &ContainerSummary, trunc: bool) -> String {
    let names: Vec<String> = c
        .mounts
        .iter()
        .map(|m| {
            let name = if m.name.is_empty() { &m.source } else { &m.name };
            if trunc {
                ellipsis(name, 15)
            } else {
                name.clone()
            }
        })
        .collect();
    names.join(",")
}

/// A unix time as Go's `time.Time.String()` prints it in UTC, which `CreatedAt` shows.
pub fn go_time(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    let text = wharf_types::time::rfc3339_secs(t);
    format!("{} +0000 UTC", text.trim_end_matches('Z').replacen('T', " ", 1))
}

fn ps_output(list: &[ContainerSummary], f: &PsFlags, now: i64) -> String {
    if f.quiet {
        return list
            .iter()
            .map(|c| format!("{}\n", if f.no_trunc { c.id.as_str() } else { short_id(&c.id) }))
            .collect();
    }
    let mut header = vec!["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"];
    if f.size {
        header.push("SIZE");
    }
    let mut t = Table::new(&header);
    for c in list {
        let command = if f.no_trunc { c.command.clone() } else { ellipsis(&c.command, 20) };
        let names: Vec<&str> = c
            .names
            .iter()
            .map(|n| n.strip_prefix('/').unwrap_or(n))
            // Docker lists legacy links as extra names with a slash; ps shows only the own name.
            .filter(|n| f.no_trunc || !n.contains('/'))
            .collect();
        let mut row = vec![
            if f.no_trunc { c.id.clone() } else { short_id(&c.id).to_string() },
            if f.no_trunc { c.image.clone() } else { short_image(&c.image) },
            quote(&command),
            human::ago(c.created, now),
            c.status.clone(),
            ports(&c.ports),
            names.join(","),
        ];
        if f.size {
            let rw = c.size_rw.unwrap_or(0);
            row.push(match c.size_root_fs {
                Some(v) if v > 0 => format!("{} (virtual {})", human::size(rw), human::size(v)),
                _ => human::size(rw),
            });
        }
        t.row(row);
    }
    t.render()
}

/// A 64-hex id shortened to 12, with any `sha256:` prefix dropped.
pub fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.get(..12).unwrap_or(id)
}

fn short_image(image: &str) -> String {
    if image.starts_with("sha256:") {
        short_id(image).to_string()
    } else {
        image.to_string()
    }
}

/// Docker's `Ellipsis`: at most `max` characters, the last one `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Go's `strconv.Quote` for the characters a command holds.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn ports(ports: &[Port]) -> String {
    let mut parts: Vec<String> = ports
        .iter()
        .map(|p| {
            let kind = if p.kind.is_empty() { "tcp" } else { p.kind.as_str() };
            if p.public_port != 0 {
                let ip = if p.ip.contains(':') { format!("[{}]", p.ip) } else { p.ip.clone() };
                format!("{ip}:{}->{}/{kind}", p.public_port, p.private_port)
            } else {
                format!("{}/{kind}", p.private_port)
            }
        })
        .collect();
    parts.dedup();
    parts.join(", ")
}

fn now_unix() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Runs `op` on each container, printing the name on success and the error otherwise; exit
/// status 1 when any failed, as docker does for stop, kill and rm.
pub fn each(containers: &[String], mut op: impl FnMut(&str) -> Result<()>) -> Result<()> {
    let mut failed = false;
    for c in containers {
        match op(c) {
            Ok(()) => println!("{c}"),
            Err(e) => {
                failed = true;
                crate::print_error(&e);
            }
        }
    }
    if failed {
        return Err(Exit::silent(1).into());
    }
    Ok(())
}

pub fn stop(client: &Client, containers: &[String], time: Option<i64>, signal: Option<&str>) -> Result<()> {
    each(containers, |c| Ok(client.container_stop(c, time, signal)?))
}

pub fn kill(client: &Client, containers: &[String], signal: Option<&str>) -> Result<()> {
    each(containers, |c| Ok(client.container_kill(c, signal.unwrap_or(""))?))
}

/// `rm`; with `link`, each name is a legacy link (`parent/alias`) to remove, not a container.
/// Slashes around a name go, as the docker CLI trims them: `rm --link /web/db` is `web/db`.
pub fn rm(client: &Client, containers: &[String], force: bool, volumes: bool, link: bool) -> Result<()> {
    each(containers, |c| {
        let name = c.trim_matches('/');
        if name.is_empty() {
            anyhow::bail!("container name cannot be empty");
        }
        Ok(client.container_remove(name, force, volumes, link)?)
    })
}

#[derive(Debug, Args)]
pub struct LogsFlags {
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)
    #[arg(long)]
    pub until: Option<String>,
    /// Show extra details provided to logs
    #[arg(long)]
    pub details: bool,
    pub container: String,
}

/// A `--since`/`--until` value as the API takes it: `seconds.nanoseconds` since the epoch.
pub fn api_timestamp(arg: &str, now: SystemTime) -> Result<String> {
    let t = wharf_types::time::parse_time_arg(arg, now).ok_or_else(|| anyhow!("invalid time value {arg:?}"))?;
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    Ok(format!("{}.{:09}", d.as_secs(), d.subsec_nanos()))
}

pub fn logs(client: &Client, f: &LogsFlags) -> Result<()> {
    let c = &f.container;
    let info: ContainerInspectBrief = client.container_inspect(c, false)?;
    let tty = info.config.map(|c| c.tty).unwrap_or(false);
    let now = SystemTime::now();
    let opts = LogsOptions {
        follow: f.follow,
        timestamps: f.timestamps,
        details: f.details,
        tail: f.tail.clone(),
        since: f.since.as_deref().map(|s| api_timestamp(s, now)).transpose()?,
        until: f.until.as_deref().map(|u| api_timestamp(u, now)).transpose()?,
    };
    let body = client.container_logs(c, &opts)?;
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    if tty {
        copy_raw(body, &mut out).context("read logs")?;
    } else {
        Demuxer::new(body).copy_to(&mut out, &mut err).context("read logs")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn container(json: &str) -> ContainerSummary {
        serde_json::from_str(json).unwrap()
    }

    fn flags() -> PsFlags {
        PsFlags {
            all: false,
            quiet: false,
            no_trunc: false,
            last: -1,
            latest: false,
            filter: vec![],
            size: false,
            format: None,
        }
    }

    #[test]
    fn ps_table() {
        let list = vec![
            container(
                r#"{"Id":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","Names":["/web"],
                "Image":"busybox","Command":"sh -c 'while true; do sleep 1; done'","Created":1000,
                "Status":"Up 3 seconds","Ports":[{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"}]}"#,
            ),
            container(
                r#"{"Id":"fedcba9876543210","Names":["/old"],"Image":"sha256:abcdefabcdef0011","Command":"true",
                "Created":880,"Status":"Exited (0) 2 minutes ago","Ports":[]}"#,
            ),
        ];
        let want = "\
CONTAINER ID   IMAGE          COMMAND                  CREATED         STATUS                     PORTS                  NAMES
0123456789ab   busybox        \"sh -c 'while true; …\"   5 seconds ago   Up 3 seconds               0.0.0.0:8080->80/tcp   web
fedcba987654   abcdefabcdef   \"true\"                   2 minutes ago   Exited (0) 2 minutes ago                          old
";
        assert_eq!(ps_output(&list, &flags(), 1005), want);
        let quiet = PsFlags { quiet: true, ..flags() };
        assert_eq!(ps_output(&list, &quiet, 1005), "0123456789ab\nfedcba987654\n");
    }

    #[test]
    fn filters_like_the_docker_cli() {
        let f = filters_json(&["status=exited".into(), "label=a=b".into(), "status=created".into()]).unwrap();
        assert_eq!(f, r#"{"label":{"a=b":true},"status":{"created":true,"exited":true}}"#);
        assert!(filters_json(&["nonsense".into()]).is_err());
    }

    #[test]
    fn ellipsis_and_quote_table() {
        let cases = [("true", "\"true\""), ("sh -c 'echo \"hi\"'", "\"sh -c 'echo \\\"hi\\\"'\"")];
        for (input, want) in cases {
            assert_eq!(quote(&ellipsis(input, 20)), want);
        }
        assert_eq!(ellipsis("abcdefghijklmnopqrstuvwxyz", 20), "abcdefghijklmnopqrs…");
    }

    #[test]
    fn api_timestamps_table() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let cases = [
            ("10m", Some("999400.000000000")),
            ("1700000000.5", Some("1700000000.500000000")),
            ("2026-11-23T09:00:00Z", Some("1795424400.000000000")),
            ("yesterday", None),
        ];
        for (arg, want) in cases {
            assert_eq!(api_timestamp(arg, now).ok().as_deref(), want, "{arg}");
        }
    }
}
