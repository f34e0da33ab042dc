//! `wharf build`: sends a directory as the build context (a tar streamed while it is written)
//! to `POST /build` and prints the builder's progress, as `docker build` does with the classic
//! builder.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use wharf_client::{ops::build_request, Body, Client, JsonMessage, Query, Request};

use crate::Exit;

#[derive(Debug, Args)]
pub struct BuildFlags {
    /// Name and optionally a tag in the 'name:tag' format
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
    /// Name of the Dockerfile (default: 'PATH/Dockerfile')
    #[arg(short = 'f', long = "file")]
    file: Option<String>,
    /// Set build-time variables
    #[arg(long = "build-arg")]
    build_args: Vec<String>,
    /// Set metadata for an image
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pull: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Remove intermediate containers after a successful build
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    rm: bool,
    /// Always remove intermediate containers
    #[arg(long = "force-rm")]
    force_rm: bool,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long)]
    network: Option<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    add_host: Vec<String>,
    /// Size of /dev/shm (e.g. 64m)
    #[arg(long = "shm-size")]
    shm_size: Option<String>,
    /// Ulimit options (name=soft[:hard])
    #[arg(long = "ulimit")]
    ulimits: Vec<String>,
    /// Images to consider as cache sources
    #[arg(long = "cache-from")]
    cache_from: Vec<String>,
    /// Set the parent cgroup for the "RUN" instructions during build
    #[arg(long = "cgroup-parent")]
    cgroup_parent: Option<String>,
    /// Compress the build context using gzip
    #[arg(long)]
    compress: bool,
    /// Limit the CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period", value_name = "INT")]
    cpu_period: Option<i64>,
    /// Limit the CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", value_name = "INT", allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "INT")]
    cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long, value_name = "BYTES")]
    memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "BYTES", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Security options
    #[arg(long = "security-opt", value_delimiter = ',')]
    security_opt: Vec<String>,
    /// Write the image ID to the file
    #[arg(long)]
    iidfile: Option<String>,
    /// Set platform if server is multi-platform capable (default: $DOCKER_DEFAULT_PLATFORM)
    #[arg(long)]
    platform: Option<String>,
    /// Build context directory
    path: String,
}

pub fn run(client: &Client, f: &BuildFlags) -> Result<()> {
    if let Some(path) = f.iidfile.as_deref().filter(|p| !p.is_empty()) {
        // As the docker CLI: no stale ID is left behind if the build fails.
        if let Err(e) = std::fs::remove_file(path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                bail!("Removing image ID file: {e}");
            }
        }
    }
    let id = build(client, f)?;
    if let Some(path) = f.iidfile.as_deref().filter(|p| !p.is_empty()) {
        let Some(id) = id.filter(|id| !id.is_empty()) else {
            bail!("Server did not provide an image ID. Cannot write {path}");
        };
        std::fs::write(path, id).with_context(|| format!("write the image ID file {path}"))?;
    }
    Ok(())
}

/// Sends the build and prints its progress; returns the image ID the daemon gave.
fn build(client: &Client, f: &BuildFlags) -> Result<Option<String>> {
    // A URL (a tarball, a Dockerfile, or a git repository with `#ref:dir`) is the daemon's to
    // fetch; a local directory wins over `github.com/...`, as with the docker CLI.
    let remote = ["http://", "https://", "git://", "git@"].iter().any(|p| f.path.starts_with(p))
        || (f.path.starts_with("github.com/") && !Path::new(&f.path).is_dir());
    let stdin = f.path == "-";
    let dir = if remote || stdin { std::env::temp_dir() } else { PathBuf::from(&f.path) };
    if !dir.is_dir() {
        bail!("unable to prepare context: path {:?} not found", f.path);
    }
    // A Dockerfile outside the context travels inside it under a name of its own, as the
    // docker CLI does.
    let mut extra: Option<(String, Vec<u8>)> = None;
    let dockerfile = match &f.file {
        None => String::new(),
        Some(file) => {
            let p = Path::new(file);
            let inside = std::fs::canonicalize(p)
                .ok()
                .zip(std::fs::canonicalize(&dir).ok())
                .and_then(|(p, d)| p.strip_prefix(&d).ok().map(|r| r.to_string_lossy().to_string()));
            match inside {
                Some(rel) => rel,
                None => {
                    let text = std::fs::read(p).with_context(|| format!("unable to read Dockerfile {file}"))?;
                    let name = format!(".dockerfile.{:x}", std::process::id() as u64 * 2654435761 % (1 << 40));
                    extra = Some((name.clone(), text));
                    name
                }
            }
        }
    };
    let mut args = BTreeMap::new();
    for a in &f.build_args {
        match a.split_once('=') {
            Some((k, v)) => args.insert(k.to_string(), Some(v.to_string())),
            // `--build-arg NAME` takes the value from the environment, or leaves it unset.
            None => args.insert(a.clone(), std::env::var(a).ok()),
        };
    }
    // As the docker CLI: the config file's proxies reach RUN steps as build arguments
    // (predefined ones, which the Dockerfile need not declare), unless given explicitly.
    if let Ok(config) = crate::dockercfg::read_config() {
        for (k, v) in crate::dockercfg::proxy_env(&config) {
            args.entry(k).or_insert(Some(v));
        }
    }
    let mut labels = BTreeMap::new();
    for l in &f.labels {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let mut q = Query::new()
        .set_nonempty("dockerfile", &dockerfile)
        .set("buildargs", serde_json::to_string(&args)?)
        .set("labels", serde_json::to_string(&labels)?)
        .set_nonempty("target", f.target.as_deref().unwrap_or(""))
        .flag("nocache", f.no_cache)
        .flag("pull", f.pull)
        .flag("q", f.quiet)
        .set("rm", if f.rm { "1" } else { "0" })
        .flag("forcerm", f.force_rm)
        .set_nonempty("networkmode", f.network.as_deref().unwrap_or(""));
    for t in &f.tags {
        q = q.set("t", t.as_str());
    }
    // The resources of RUN's containers, as `run`'s flags of the same names.
    let bytes = |flag: &str, v: &str| {
        crate::human::parse_memory(v).map_err(|e| anyhow::anyhow!("invalid argument {v:?} for \"{flag}\" flag: {e}"))
    };
    if let Some(m) = &f.memory {
        q = q.set("memory", bytes("-m, --memory", m)?.to_string());
    }
    if let Some(s) = &f.memory_swap {
        q = q.set("memswap", if s == "-1" { -1 } else { bytes("--memory-swap", s)? }.to_string());
    }
    for (key, v) in [("cpushares", f.cpu_shares), ("cpuperiod", f.cpu_period), ("cpuquota", f.cpu_quota)] {
        if let Some(v) = v.filter(|v| *v != 0) {
            q = q.set(key, v.to_string());
        }
    }
    q = q
        .set_nonempty("cpusetcpus", f.cpuset_cpus.as_deref().unwrap_or(""))
        .set_nonempty("cpusetmems", f.cpuset_mems.as_deref().unwrap_or(""))
        .set_nonempty("cgroupparent", f.cgroup_parent.as_deref().unwrap_or(""));
    // Sent as the docker CLI sends them (the daemon decides: dockerd refuses them on Linux).
    for o in f.security_opt.iter().filter(|o| !o.is_empty()) {
        q = q.set("securityopt", o.as_str());
    }
    let platform = f.platform.clone().or_else(|| std::env::var("DOCKER_DEFAULT_PLATFORM").ok());
    if let Some(p) = platform.filter(|p| !p.is_empty()) {
        q = q.set("platform", p.to_ascii_lowercase());
    }
    if !f.cache_from.is_empty() {
        q = q.set("cachefrom", serde_json::to_string(&f.cache_from)?);
    }
    for h in &f.add_host {
        q = q.set("extrahosts", h.as_str());
    }
    if let Some(s) = &f.shm_size {
        let bytes = crate::human::parse_memory(s)
            .map_err(|e| anyhow::anyhow!("invalid argument {s:?} for \"--shm-size\" flag: {e}"))?;
        q = q.set("shmsize", bytes.to_string());
    }
    if !f.ulimits.is_empty() {
        let mut list = Vec::new();
        for u in &f.ulimits {
            let (name, values) =
                u.split_once('=').with_context(|| format!("invalid --ulimit {u:?}: want name=soft[:hard]"))?;
            let (soft, hard) = values.split_once(':').unwrap_or((values, values));
            let num = |v: &str| v.parse::<i64>().with_context(|| format!("invalid --ulimit {u:?}"));
            list.push(serde_json::json!({ "Name": name, "Soft": num(soft)?, "Hard": num(hard)? }));
        }
        q = q.set("ulimits", serde_json::Value::Array(list).to_string());
    }
    let registry_config = crate::pull::registry_config().context("build: registry credentials")?;
    let with_auth = |req: Request| match &registry_config {
        Some(auths) => req.header("X-Registry-Config", auths),
        None => req,
    };
    if stdin {
        // `-`: the context (a tar, compressed or not) as it comes on standard input.
        let body: Box<dyn std::io::Read + Send> =
            if f.compress { gzip(Box::new(std::io::stdin()))? } else { Box::new(std::io::stdin()) };
        let req = build_request(&q).header("Content-Type", "application/x-tar").body(Body::Reader(body, None));
        return print_progress(client, with_auth(req), f.quiet);
    }
    if remote {
        // The daemon downloads the context (a tarball) or the Dockerfile itself.
        q = q.set("remote", f.path.as_str());
        let req = build_request(&q).header("Content-Type", "application/x-tar");
        return print_progress(client, with_auth(req), f.quiet);
    }
    let (reader, writer) = std::io::pipe().context("pipe")?;
    let tar_dir = dir.clone();
    let compress = f.compress;
    let producer = std::thread::spawn(move || -> std::io::Result<()> {
        // The tar is written in headers and 8 KiB pieces: buffered, the pipe sees few large
        // writes instead of several per file. `--compress`: gzip, as the docker CLI sends it.
        let writer = std::io::BufWriter::with_capacity(256 << 10, writer);
        let mut writer: Box<dyn Write> = if compress {
            Box::new(flate2::write::GzEncoder::new(writer, flate2::Compression::default()))
        } else {
            Box::new(writer)
        };
        let mut tar = tar::Builder::new(&mut writer);
        tar.follow_symlinks(false);
        tar.mode(tar::HeaderMode::Complete);
        tar.append_dir_all(".", &tar_dir)?;
        if let Some((name, text)) = extra {
            let mut h = tar::Header::new_gnu();
            h.set_size(text.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            tar.append_data(&mut h, name, &text[..])?;
        }
        tar.finish()?;
        drop(tar);
        writer.flush()
    });
    let req = with_auth(
        build_request(&q).header("Content-Type", "application/x-tar").body(Body::Reader(Box::new(reader), None)),
    );
    let printed = print_progress(client, req, f.quiet);
    match producer.join() {
        Ok(Err(e)) if printed.is_ok() => bail!("send the build context: {e}"),
        _ => printed,
    }
}

/// A context stream gzipped on its way (`--compress` of a context from standard input).
fn gzip(mut input: Box<dyn std::io::Read + Send>) -> Result<Box<dyn std::io::Read + Send>> {
    let (reader, writer) = std::io::pipe().context("pipe")?;
    std::thread::spawn(move || {
        let mut gz = flate2::write::GzEncoder::new(writer, flate2::Compression::default());
        // A failure closes the pipe early: the daemon sees a truncated context and says so.
        if std::io::copy(&mut input, &mut gz).is_ok() {
            let _ = gz.finish();
        }
    });
    Ok(Box::new(reader))
}

/// Prints the builder's progress; a failed build is an error with its message. Returns the
/// image ID as the docker CLI learns it: the last `aux` ID, or with `-q` what the daemon
/// printed (the ID and its newline).
fn print_progress(client: &Client, req: Request, quiet: bool) -> Result<Option<String>> {
    let messages = client.json_stream::<JsonMessage>(req).context("build")?;
    let mut out = std::io::stdout().lock();
    let mut failed = None;
    let mut aux_id = None;
    let mut printed = String::new();
    for m in messages {
        let m = m.context("build")?;
        if let Some(e) = m.error_message() {
            failed = Some(e.to_string());
            break;
        }
        if let Some(id) = m.aux.as_ref().and_then(|a| a.get("ID")).and_then(|v| v.as_str()) {
            aux_id = Some(id.to_string());
        }
        if let Some(s) = &m.stream {
            if quiet {
                printed.push_str(s);
            }
            write!(out, "{s}")?;
            out.flush()?;
        } else if let Some(status) = &m.status {
            match &m.id {
                Some(id) => writeln!(out, "{id}: {status} {}", m.progress.as_deref().unwrap_or(""))?,
                None => writeln!(out, "{status}")?,
            }
        }
    }
    if let Some(e) = failed {
        return Err(Exit::new(1, e).into());
    }
    Ok(if quiet { Some(printed) } else { aux_id })
}
