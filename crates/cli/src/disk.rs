//! `image prune`, `system df` and `system prune`: what the daemon's storage holds, and
//! removing what nothing uses.

use std::io::{BufRead, Read, Write};

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::Value;
use wharf_client::Client;

use crate::containers::filters_param;
use crate::human::size;
use crate::table::Table;

/// `image prune`.
#[derive(Debug, Args)]
pub struct ImagePruneFlags {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long)]
    all: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long)]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    force: bool,
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show docker disk usage
    Df {
        /// Show detailed information on space usage
        #[arg(short = 'v', long)]
        verbose: bool,
        /// Format output using a custom template ('table', 'table TEMPLATE', 'json', or a Go template)
        #[arg(long)]
        format: Option<String>,
    },
    /// Remove unused data
    Prune {
        /// Remove all unused images not just dangling ones
        #[arg(short = 'a', long)]
        all: bool,
        /// Prune anonymous volumes
        #[arg(long)]
        volumes: bool,
        /// Provide filter values (e.g. "label=<key>=<value>")
        #[arg(long)]
        filter: Vec<String>,
        /// Do not prompt for confirmation
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Proxy the stdio stream to the daemon connection (what `DOCKER_HOST=ssh://` runs remotely)
    #[command(name = "dial-stdio")]
    DialStdio,
}

#[derive(Debug, Subcommand)]
pub enum BuilderCommand {
    /// Remove build cache
    Prune {
        /// Remove all unused build cache, not just dangling ones
        #[arg(short = 'a', long)]
        all: bool,
        /// Provide filter values (e.g. "until=24h")
        #[arg(long)]
        filter: Vec<String>,
        /// Amount of disk space to keep for cache (bytes)
        #[arg(long = "keep-storage", default_value_t = 0)]
        keep_storage: u64,
        /// Do not prompt for confirmation
        #[arg(short = 'f', long)]
        force: bool,
    },
}

pub fn builder(client: &Client, cmd: BuilderCommand) -> Result<()> {
    let BuilderCommand::Prune { all, filter, keep_storage, force } = cmd;
    let warning = if all {
        "WARNING! This will remove all build cache."
    } else {
        "WARNING! This will remove all dangling build cache."
    };
    if !force && !confirm(warning)? {
        return Ok(());
    }
    let (ids, reclaimed) = prune_build_cache(client, all, &filter, keep_storage)?;
    if !ids.is_empty() {
        println!("Deleted build cache objects:");
        for id in ids {
            println!("{id}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", size(reclaimed));
    Ok(())
}

fn prune_build_cache(client: &Client, all: bool, filter: &[String], keep_storage: u64) -> Result<(Vec<String>, i64)> {
    let v: Value = client.build_prune(all, keep_storage, &filters_param(filter)?)?;
    let ids = v["CachesDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(|s| s.strip_prefix("sha256:").unwrap_or(s).chars().take(25).collect()))
        .collect();
    Ok((ids, v["SpaceReclaimed"].as_i64().unwrap_or(0)))
}

pub fn run(client: &Client, cmd: SystemCommand) -> Result<()> {
    match cmd {
        SystemCommand::Df { verbose, format } => df(client, verbose, format.as_deref()),
        SystemCommand::Prune { all, volumes, filter, force } => system_prune(client, all, volumes, &filter, force),
        SystemCommand::DialStdio => dial_stdio(client),
    }
}

/// Carries stdin to the daemon and the daemon's answers to stdout, as `docker system
/// dial-stdio`: stdin's end half-closes the connection (the daemon may still answer); the
/// daemon closing its side ends the command.
fn dial_stdio(client: &Client) -> Result<()> {
    let conn = client.dial()?;
    let mut reader = conn.try_clone_stream()?;
    let mut writer = conn;
    let to_daemon = std::thread::spawn(move || {
        let r = std::io::copy(&mut std::io::stdin().lock(), &mut writer).and_then(|_| writer.flush());
        let _ = writer.shutdown_write();
        r
    });
    // Each piece flushed as it comes: stdout is line-buffered, and on a kept-alive connection
    // an answer that does not end in a newline would wait there for the next one.
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        out.write_all(&buf[..n])?;
        out.flush()?;
    }
    // The daemon is done; a stdin copy still blocked in read ends with the process.
    if to_daemon.is_finished() {
        if let Ok(Err(e)) = to_daemon.join() {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// Asks on the terminal, as docker does; anything but y/yes declines.
fn confirm(warning: &str) -> Result<bool> {
    print!("{warning}\nAre you sure you want to continue? [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

fn prune_images(client: &Client, all: bool, filter: &[String]) -> Result<(Vec<String>, i64)> {
    let mut filter = filter.to_vec();
    if all {
        filter.push("dangling=false".to_string());
    }
    let v: Value = client.images_prune(&filters_param(&filter)?)?;
    let mut lines = Vec::new();
    for d in v["ImagesDeleted"].as_array().into_iter().flatten() {
        if let Some(u) = d["Untagged"].as_str() {
            lines.push(format!("untagged: {u}"));
        }
        if let Some(id) = d["Deleted"].as_str() {
            lines.push(format!("deleted: {id}"));
        }
    }
    Ok((lines, v["SpaceReclaimed"].as_i64().unwrap_or(0)))
}

pub fn image_prune(client: &Client, f: &ImagePruneFlags) -> Result<()> {
    let warning = if f.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !f.force && !confirm(warning)? {
        return Ok(());
    }
    let (lines, reclaimed) = prune_images(client, f.all, &f.filter)?;
    if !lines.is_empty() {
        println!("Deleted Images:");
        for l in lines {
            println!("{l}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", size(reclaimed));
    Ok(())
}

fn system_prune(client: &Client, all: bool, volumes: bool, filter: &[String], force: bool) -> Result<()> {
    if !force {
        let mut w = String::from(
            "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n",
        );
        if volumes {
            w.push_str("  - all anonymous volumes not used by at least one container\n");
        }
        w.push_str(if all {
            "  - all images without at least one container associated to them\n  - all build cache"
        } else {
            "  - all dangling images\n  - all dangling build cache"
        });
        if !confirm(&w)? {
            return Ok(());
        }
    }
    let filters = filters_param(filter)?;
    let mut reclaimed = 0;
    let print_list = |title: &str, items: &[String]| {
        if !items.is_empty() {
            println!("{title}:");
            for i in items {
                println!("{i}");
            }
            println!();
        }
    };
    let names = |v: &Value, key: &str| -> Vec<String> {
        v[key].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect()
    };

    let v: Value = client.containers_prune(&filters)?;
    print_list("Deleted Containers", &names(&v, "ContainersDeleted"));
    reclaimed += v["SpaceReclaimed"].as_i64().unwrap_or(0);

    let v: Value = client.networks_prune(&filters)?;
    print_list("Deleted Networks", &names(&v, "NetworksDeleted"));

    if volumes {
        let v: Value = client.volumes_prune(&filters)?;
        print_list("Deleted Volumes", &names(&v, "VolumesDeleted"));
        reclaimed += v["SpaceReclaimed"].as_i64().unwrap_or(0);
    }

    let (lines, space) = prune_images(client, all, filter)?;
    print_list("Deleted Images", &lines);
    reclaimed += space;

    // The build cache knows the time filter only.
    let until: Vec<String> = filter.iter().filter(|f| f.starts_with("until=")).cloned().collect();
    let (ids, space) = prune_build_cache(client, all, &until, 0)?;
    print_list("Deleted build cache objects", &ids);
    reclaimed += space;
    println!("Total reclaimed space: {}", size(reclaimed));
    Ok(())
}

fn percent(part: i64, total: i64) -> String {
    if total <= 0 {
        return format!("{} (0%)", size(part));
    }
    format!("{} ({}%)", size(part), part * 100 / total)
}

fn df(client: &Client, verbose: bool, format: Option<&str>) -> Result<()> {
    let format = format.filter(|f| *f != "table");
    if verbose && format.is_some() {
        bail!("--format applies to the summary only; it cannot be combined with --verbose");
    }
    let v: Value = client.system_df()?;
    let list = |key: &str| v[key].as_array().cloned().unwrap_or_default();
    let (images, containers, volumes) = (list("Images"), list("Containers"), list("Volumes"));
    let cache = list("BuildCache");
    let cache_size: i64 = cache.iter().map(|c| c["Size"].as_i64().unwrap_or(0)).sum();
    let cache_active = cache.iter().filter(|c| c["InUse"].as_bool() == Some(true)).count();
    // As the docker CLI counts it: what is neither in use nor shared with an image.
    let cache_reclaimable: i64 = cache
        .iter()
        .filter(|c| c["InUse"].as_bool() != Some(true) && c["Shared"].as_bool() != Some(true))
        .map(|c| c["Size"].as_i64().unwrap_or(0))
        .sum();
    let int = |x: &Value, key: &str| x[key].as_i64().unwrap_or(0);

    let layers = int(&v, "LayersSize");
    let active_images: Vec<&Value> = images.iter().filter(|i| int(i, "Containers") > 0).collect();
    let used: i64 = active_images.iter().map(|i| int(i, "Size") - int(i, "SharedSize").max(0)).sum::<i64>()
        + active_images.iter().map(|i| int(i, "SharedSize").max(0)).max().unwrap_or(0);
    let running = |c: &Value| matches!(c["State"].as_str(), Some("running" | "paused" | "restarting"));
    let rw: i64 = containers.iter().map(|c| int(c, "SizeRw")).sum();
    let rw_idle: i64 = containers.iter().filter(|c| !running(c)).map(|c| int(c, "SizeRw")).sum();
    let vol = |x: &Value, key: &str| x["UsageData"][key].as_i64().unwrap_or(0);
    let vol_size: i64 = volumes.iter().map(|x| vol(x, "Size")).sum();
    let vol_idle: i64 = volumes.iter().filter(|x| vol(x, "RefCount") == 0).map(|x| vol(x, "Size")).sum();

    if !verbose {
        let mut t = Table::new(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
        let rows = vec![
            vec![
                "Images".into(),
                images.len().to_string(),
                active_images.len().to_string(),
                size(layers),
                percent((layers - used).max(0), layers),
            ],
            vec![
                "Containers".into(),
                containers.len().to_string(),
                containers.iter().filter(|c| running(c)).count().to_string(),
                size(rw),
                percent(rw_idle, rw),
            ],
            vec![
                "Local Volumes".into(),
                volumes.len().to_string(),
                volumes.iter().filter(|x| vol(x, "RefCount") > 0).count().to_string(),
                size(vol_size),
                percent(vol_idle, vol_size),
            ],
            vec![
                "Build Cache".into(),
                cache.len().to_string(),
                cache_active.to_string(),
                size(cache_size),
                size(cache_reclaimable),
            ],
        ];
        if let Some(format) = format {
            // The fields of the docker CLI's disk usage context.
            let keys = ["Type", "TotalCount", "Active", "Size", "Reclaimable"];
            let objects: Vec<Value> = rows
                .iter()
                .map(|r| {
                    Value::Object(keys.iter().zip(r).map(|(k, v)| (k.to_string(), Value::from(v.as_str()))).collect())
                })
                .collect();
            let headers = serde_json::json!({
                "Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE",
            });
            print!("{}", crate::template::format_list(format, &objects, &headers)?);
            return Ok(());
        }
        for r in rows {
            t.row(r);
        }
        print!("{}", t.render());
        return Ok(());
    }

    println!("Images space usage:\n");
    let mut t = Table::new(&["REPOSITORY", "TAG", "IMAGE ID", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"]);
    for i in &images {
        let id = i["Id"].as_str().unwrap_or_default();
        let short = id.strip_prefix("sha256:").unwrap_or(id).chars().take(12).collect::<String>();
        let tags: Vec<String> =
            i["RepoTags"].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect();
        let tags = if tags.is_empty() { vec!["<none>:<none>".to_string()] } else { tags };
        for tag in tags {
            let (repo, t_) = tag.rsplit_once(':').unwrap_or((tag.as_str(), "<none>"));
            t.row(vec![
                repo.to_string(),
                t_.to_string(),
                short.clone(),
                size(int(i, "Size")),
                size(int(i, "SharedSize").max(0)),
                size(int(i, "Size") - int(i, "SharedSize").max(0)),
                int(i, "Containers").to_string(),
            ]);
        }
    }
    print!("{}", t.render());
    println!("\nContainers space usage:\n");
    let mut t = Table::new(&["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "STATUS", "NAMES"]);
    for c in &containers {
        let id: String = c["Id"].as_str().unwrap_or_default().chars().take(12).collect();
        let name = c["Names"][0].as_str().unwrap_or_default().trim_start_matches('/').to_string();
        t.row(vec![
            id,
            c["Image"].as_str().unwrap_or_default().to_string(),
            format!("\"{}\"", c["Command"].as_str().unwrap_or_default()),
            "0".into(),
            size(int(c, "SizeRw")),
            c["State"].as_str().unwrap_or_default().to_string(),
            name,
        ]);
    }
    print!("{}", t.render());
    println!("\nLocal Volumes space usage:\n");
    let mut t = Table::new(&["VOLUME NAME", "LINKS", "SIZE"]);
    for x in &volumes {
        t.row(vec![
            x["Name"].as_str().unwrap_or_default().to_string(),
            vol(x, "RefCount").to_string(),
            size(vol(x, "Size")),
        ]);
    }
    print!("{}", t.render());
    println!("\nBuild cache usage: {}\n", size(cache_size));
    let mut t = Table::new(&["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"]);
    for c in &cache {
        t.row(vec![
            c["ID"].as_str().unwrap_or_default().chars().take(12).collect(),
            c["Type"].as_str().unwrap_or_default().to_string(),
            size(c["Size"].as_i64().unwrap_or(0)),
            c["CreatedAt"].as_str().unwrap_or_default().to_string(),
            c["LastUsedAt"].as_str().unwrap_or_default().to_string(),
            c["UsageCount"].as_i64().unwrap_or(0).to_string(),
            c["Shared"].as_bool().unwrap_or(false).to_string(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}
