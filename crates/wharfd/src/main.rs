//! The wharf daemon: reads its configuration (flags over daemon.json), opens the engine and
//! serves the Docker Engine API on a unix socket.

mod config;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Parser;
use wharf_engine::{Engine, EngineConfig};

use crate::config::{DaemonConfig, Flags};

fn main() {
    let flags = Flags::parse();
    if let Err(e) = run(flags) {
        eprintln!("wharfd: {e:#}");
        std::process::exit(1);
    }
}

fn run(flags: Flags) -> anyhow::Result<()> {
    let cfg = DaemonConfig::load(&flags)?;
    init_logging(&cfg.log_level);
    let socket = socket_path(&cfg.hosts)?;
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
        cgroup_parent: cfg.cgroup_parent.clone(),
        shim_path,
        certs_dir: PathBuf::from("/etc/wharf/certs.d"),
        network: wharf_engine::NetworkConfig {
            bridge: cfg.bridge.clone(),
            bip: cfg.bip.clone(),
            iptables: cfg.iptables,
            address_pools: cfg.address_pools.clone(),
            ..Default::default()
        },
        log_opts: cfg.log_opts.clone(),
        userns_remap,
        max_build_context: cfg.max_build_context,
        proxy,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the async runtime")?;
    rt.block_on(async move {
        let engine = Engine::open(engine_config).await.context("open the engine")?;
        let listener = bind(&socket)?;
        log::info!("wharfd {} listening on unix://{}", env!("CARGO_PKG_VERSION"), socket.display());
        let server = tokio::spawn(wharf_api::serve(listener, engine.clone()));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = server => {}
        }
        // Containers keep running under their shims; only the socket goes away.
        let _ = std::fs::remove_file(&socket);
        engine.shutdown().await;
        log::info!("wharfd stopping; containers keep running");
        Ok(())
    })
}

fn socket_path(hosts: &[String]) -> anyhow::Result<PathBuf> {
    let host = hosts.first().map(String::as_str).unwrap_or(config::DEFAULT_HOST);
    match host.strip_prefix("unix://") {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ if host.starts_with('/') => Ok(PathBuf::from(host)),
        _ => bail!("host {host:?} is not supported: wharfd listens on unix sockets only (unix:///path)"),
    }
}

/// Binds the API socket (mode 0660), replacing a stale socket file from a crashed daemon but
/// refusing to start beside a live one.
fn bind(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("another daemon is already listening on {}", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("remove stale socket {}", path.display()))?;
    }
    let listener = tokio::net::UnixListener::bind(path).with_context(|| format!("listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(listener)
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

struct StderrLogger {
    level: log::LevelFilter,
}

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= self.level
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            let t = wharf_types::time::rfc3339_nanos(std::time::SystemTime::now());
            eprintln!("{t} {:<5} {}", r.level(), r.args());
        }
    }
    fn flush(&self) {}
}

fn init_logging(level: &str) {
    let level = match level {
        "debug" => log::LevelFilter::Debug,
        "warn" => log::LevelFilter::Warn,
        "error" | "fatal" => log::LevelFilter::Error,
        "trace" => log::LevelFilter::Trace,
        _ => log::LevelFilter::Info,
    };
    let logger = Box::leak(Box::new(StderrLogger { level }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}
