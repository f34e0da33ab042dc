//! The wharf daemon: reads its configuration (flags over daemon.json), opens the engine and
//! serves the Docker Engine API on its `-H` hosts (unix sockets, TCP with TLS, systemd's).

mod config;
mod keys;
mod listen;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use wharf_engine::{Engine, EngineConfig};

use crate::config::{DaemonConfig, Flags};

fn main() {
    let flags = match Flags::from_args(std::env::args().collect()) {
        Ok(f) => f,
        // clap's --help and --version too, each with its own exit status.
        Err(e) => e.exit(),
    };
    if let Err(e) = run(flags) {
        eprintln!("wharfd: {e:#}");
        std::process::exit(1);
    }
}

fn run(flags: Flags) -> anyhow::Result<()> {
    let cfg = DaemonConfig::load(&flags)?;
    if flags.validate {
        for h in &cfg.hosts {
            listen::parse_host(h, cfg.tls.enabled)?;
        }
        for w in &cfg.warnings {
            println!("warning: {w}");
        }
        println!("configuration OK");
        return Ok(());
    }
    init_logging(&cfg.log_level);
    for w in &cfg.warnings {
        log::warn!("{w}");
    }
    // Before any thread or descriptor: see wharf_runtime::rlimit for why, and what containers get.
    match wharf_runtime::rlimit::raise_nofile() {
        Ok(Some((old, new))) => log::debug!("open-file limit raised from {old} to {new}; containers keep {old}"),
        Ok(None) => {}
        Err(e) => log::warn!("raise the open-file limit: {e}; wharfd may run out of descriptors with many containers"),
    }
    let shim_path = find_shim()?;
    // As dockerd: configured proxies replace the environment's, so that what the daemon runs
    // (git, for a build from a repository) uses them too. No other thread runs yet.
    for (names, value) in [
        (["HTTP_PROXY", "http_proxy"], &cfg.http_proxy),
        (["HTTPS_PROXY", "https_proxy"], &cfg.https_proxy),
        (["NO_PROXY", "no_proxy"], &cfg.no_proxy),
    ] {
        if let Some(v) = value {
            for name in names {
                std::env::set_var(name, v);
            }
        }
    }
    let proxy = wharf_engine::ProxyConfig::from_env().context("proxy settings of the environment")?;
    if !proxy.is_empty() {
        log::info!("using proxies {proxy:?}");
    }
    let userns_remap = match &cfg.userns_remap {
        Some(setting) => Some(wharf_engine::resolve_userns_remap(setting)?),
        None => None,
    };
    let engine_config = EngineConfig {
        data_root: cfg.data_root.clone(),
        exec_root: cfg.exec_root.clone(),
        registry_mirrors: cfg.registry_mirrors.clone(),
        insecure_registries: cfg.insecure_registries.clone(),
        max_concurrent_downloads: cfg.max_concurrent_downloads,
        max_concurrent_uploads: cfg.max_concurrent_uploads,
        max_download_attempts: cfg.max_download_attempts,
        cgroup_parent: cfg.cgroup_parent.clone(),
        cgroup_driver: cfg.cgroup_driver,
        shim_path,
        certs_dir: PathBuf::from("/etc/wharf/certs.d"),
        network: wharf_engine::NetworkConfig {
            bridge: cfg.bridge.clone(),
            bip: cfg.bip.clone(),
            iptables: cfg.iptables,
            address_pools: cfg.address_pools.clone(),
            ipv6: cfg.ipv6,
            fixed_cidr_v6: cfg.fixed_cidr_v6.clone(),
            default_bridge: cfg.default_bridge.clone(),
        },
        log_opts: cfg.log_opts.clone(),
        userns_remap,
        max_build_context: cfg.max_build_context,
        proxy,
        labels: cfg.labels.clone(),
        container_defaults: cfg.container_defaults.clone(),
        runtimes: cfg.runtimes.clone(),
    };
    let pidfile = PidFile::create(&cfg.pidfile)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the async runtime")?;
    let result = rt.block_on(async move {
        let listeners = listen::open_all(&cfg.hosts, &cfg.tls, &cfg.group)?;
        let metrics = cfg.metrics_addr.as_deref().map(listen::open_metrics).transpose()?;
        let engine = Engine::open(engine_config).await.context("open the engine")?;
        wharf_api::prepare(&engine);
        let drain = wharf_api::Drain::new();
        let mut sockets = Vec::new();
        let mut serving = Vec::new();
        for l in listeners {
            log::info!("wharfd {} listening on {}", env!("CARGO_PKG_VERSION"), l.describe());
            sockets.extend(l.socket_file().map(Path::to_path_buf));
            serving.push(tokio::spawn(listen::serve(l, engine.clone(), drain.clone())));
        }
        let cri = match cfg.cri.clone() {
            Some(c) => {
                let socket = c.socket.clone();
                let task = wharf_cri::start(engine.clone(), c).await.map_err(anyhow::Error::msg)?;
                sockets.push(socket);
                Some(task)
            }
            None => None,
        };
        if let Some(m) = metrics {
            log::info!("metrics on http://{}/metrics", m.local_addr().map(|a| a.to_string()).unwrap_or_default());
            serving.push(tokio::spawn(listen::serve_metrics(m, engine.clone())));
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let mut running = cfg;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = hup.recv() => reload(&flags, &mut running, &engine),
            }
        }
        // Stop taking connections, everywhere, before waiting for anything.
        let in_flight = drain.start();
        for task in serving {
            task.abort();
            let _ = task.await;
        }
        if let Some(t) = cri {
            t.abort();
        }
        // Containers keep running under their shims; only the sockets go away.
        for s in &sockets {
            let _ = std::fs::remove_file(s);
        }
        let finished = wait_for_requests(&drain, in_flight, running.shutdown_timeout, &mut term).await;
        if !finished {
            // What the cut requests left is what a crash leaves: the next start cleans it.
            return Ok(());
        }
        engine.shutdown().await;
        log::info!("wharfd stopping; containers keep running");
        Ok(())
    });
    drop(pidfile);
    // Work the drain cut (a blocking layer write, a build step) is not waited for: the process
    // ends as after a crash, which the engine recovers from at its next start.
    rt.shutdown_background();
    result
}

/// Waits for the API requests in flight when the stop began, at most `timeout` (`None`:
/// until they finish); a second SIGTERM or SIGINT ends the wait at once. Whether they all
/// finished.
async fn wait_for_requests(
    drain: &wharf_api::Drain,
    in_flight: usize,
    timeout: Option<std::time::Duration>,
    term: &mut tokio::signal::unix::Signal,
) -> bool {
    if in_flight > 0 {
        let limit = timeout.map_or("no limit".to_string(), |t| format!("at most {}s", t.as_secs()));
        log::info!("stopping: waiting for {in_flight} API request(s) in flight ({limit}; SIGTERM again to stop now)");
    }
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let why = tokio::select! {
        _ = drain.finished() => None,
        _ = deadline => Some("shutdown-timeout passed"),
        _ = tokio::signal::ctrl_c() => Some("second signal"),
        _ = term.recv() => Some("second signal"),
    };
    let cut = if why.is_some() { drain.remaining() } else { 0 };
    let finished = in_flight.saturating_sub(cut);
    match why {
        Some(why) if cut > 0 => {
            log::info!("stopping: {in_flight} request(s) waited for, {finished} finished, {cut} cut ({why})");
            false
        }
        _ => {
            log::info!("stopping: {in_flight} request(s) waited for, {finished} finished, 0 cut");
            true
        }
    }
}

/// SIGHUP: reads the configuration again and applies what dockerd applies without a restart
/// (log level, labels, registry mirrors, insecure registries, download and upload limits),
/// saying what changed and what waits for the next start; a broken file changes nothing.
fn reload(flags: &Flags, running: &mut DaemonConfig, engine: &Engine) {
    let new = match DaemonConfig::load(flags) {
        Ok(c) => c,
        Err(e) => {
            log::error!("reload: {e:#}; the running configuration stays");
            return;
        }
    };
    let mut changed = Vec::new();
    let registry = |c: &DaemonConfig| wharf_engine::RegistrySettings {
        registry_mirrors: c.registry_mirrors.clone(),
        insecure_registries: c.insecure_registries.clone(),
        max_concurrent_downloads: c.max_concurrent_downloads,
        max_concurrent_uploads: c.max_concurrent_uploads,
        max_download_attempts: c.max_download_attempts,
    };
    let (old_reg, new_reg) = (registry(running), registry(&new));
    if old_reg != new_reg {
        match engine.reload_registry_settings(new_reg.clone()) {
            Ok(()) => changed.push(format!("registry settings {old_reg:?} -> {new_reg:?}")),
            Err(e) => {
                log::error!("reload: {e}; the running registry settings stay");
                return;
            }
        }
    }
    if new.log_level != running.log_level {
        set_log_level(&new.log_level);
        changed.push(format!("log-level {} -> {}", running.log_level, new.log_level));
    }
    if new.labels != running.labels {
        engine.set_labels(new.labels.clone());
        changed.push(format!("labels {:?} -> {:?}", running.labels, new.labels));
    }
    if new.runtimes != running.runtimes {
        engine.set_runtimes(new.runtimes.clone());
        changed.push("runtimes or default-runtime".to_string());
    }
    let shutdown_timeout = if new.shutdown_timeout_set { new.shutdown_timeout } else { running.shutdown_timeout };
    if shutdown_timeout != running.shutdown_timeout {
        changed.push(format!("shutdown-timeout {:?} -> {:?}", running.shutdown_timeout, shutdown_timeout));
    }
    // What the engine fixed when it opened (paths, networks, container defaults) waits.
    let mut later = Vec::new();
    if new.container_defaults != running.container_defaults {
        later.push("container defaults (dns, ulimits, shm size, init, ...)");
    }
    if new.hosts != running.hosts || new.tls != running.tls || new.group != running.group {
        later.push("hosts, tls or group");
    }
    if new.cgroup_parent != running.cgroup_parent || new.cgroup_driver != running.cgroup_driver {
        later.push("cgroup-parent or exec-opts");
    }
    if new.metrics_addr != running.metrics_addr {
        later.push("metrics-addr");
    }
    if new.cri != running.cri {
        later.push("cri-socket, cni-conf-dir, cni-bin-dir or cri-streaming-address");
    }
    if new.data_root != running.data_root || new.exec_root != running.exec_root {
        later.push("data-root or exec-root");
    }
    if (&new.bridge, &new.bip, new.iptables) != (&running.bridge, &running.bip, running.iptables) {
        later.push("bridge, bip or iptables");
    }
    for w in new.warnings.iter().filter(|w| !running.warnings.contains(w)) {
        log::warn!("{w}");
    }
    if changed.is_empty() {
        log::info!("reload: nothing that applies while running changed");
    } else {
        log::info!("reload: {}", changed.join("; "));
    }
    if !later.is_empty() {
        log::warn!("reload: {} changed; wharfd applies that when it next starts", later.join(", "));
    }
    // What was applied now is the running configuration; the rest is kept as it runs.
    running.log_level = new.log_level;
    running.labels = new.labels;
    running.shutdown_timeout = shutdown_timeout;
    running.runtimes = new.runtimes;
    running.registry_mirrors = new.registry_mirrors;
    running.insecure_registries = new.insecure_registries;
    running.max_concurrent_downloads = new.max_concurrent_downloads;
    running.max_concurrent_uploads = new.max_concurrent_uploads;
    running.max_download_attempts = new.max_download_attempts;
    running.warnings = new.warnings;
}

/// The daemon's PID file: refuses to start while another live process's pid is in it, and is
/// removed when the daemon stops.
struct PidFile(PathBuf);

impl PidFile {
    fn create(path: &Path) -> anyhow::Result<PidFile> {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(pid) = text.trim().parse::<u32>() {
                if pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists() {
                    bail!("pid file {} names a running process ({pid}): is another wharfd running?", path.display());
                }
            }
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        std::fs::write(path, format!("{}", std::process::id()))
            .with_context(|| format!("write pid file {}", path.display()))?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The shim ships beside the daemon's executable.
fn find_shim() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("find the daemon's own executable")?;
    let beside = exe.with_file_name("wharf-shim");
    if beside.is_file() {
        return Ok(beside);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("wharf-shim");
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("wharf-shim not found beside {} or on PATH", exe.display())
}

/// Writes every record the global max level lets through (which a reload may change).
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            let t = wharf_types::time::rfc3339_nanos(std::time::SystemTime::now());
            eprintln!("{t} {:<5} {}", r.level(), r.args());
        }
    }
    fn flush(&self) {}
}

fn level_filter(level: &str) -> log::LevelFilter {
    match level {
        "debug" => log::LevelFilter::Debug,
        "warn" => log::LevelFilter::Warn,
        "error" | "fatal" => log::LevelFilter::Error,
        "trace" => log::LevelFilter::Trace,
        _ => log::LevelFilter::Info,
    }
}

fn set_log_level(level: &str) {
    log::set_max_level(level_filter(level));
}

fn init_logging(level: &str) {
    static LOGGER: StderrLogger = StderrLogger;
    if log::set_logger(&LOGGER).is_ok() {
        set_log_level(level);
    }
}
