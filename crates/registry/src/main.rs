//! The `wharf-registry` binary: `serve`, `gc` and `scrub` over one data directory.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use wharf_registry::gc::{self, GcOptions};
use wharf_registry::meta::{Metadata, RedbMetadata};
use wharf_registry::server::{self, Registry, ServeOptions};
use wharf_registry::store::FsBlobStore;

const DEFAULT_DATA_DIR: &str = "/var/lib/wharf-registry";

#[derive(Parser)]
#[command(name = "wharf-registry", version, about = "An OCI distribution (v1.1) registry server")]
struct Cli {
    /// error, warn, info or debug (debug logs every request).
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the registry.
    Serve {
        /// HOST:PORT to listen on.
        #[arg(long, default_value = "127.0.0.1:5000")]
        addr: String,
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// Serve on a non-loopback address with no authentication: anyone who reaches it may
        /// pull, push and delete.
        #[arg(long)]
        open: bool,
        /// How long a client may stall (sending headers or body) before it is cut off.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        idle_timeout: Duration,
        /// Run the garbage collector this often while serving (e.g. 1h); off by default.
        #[arg(long, value_parser = parse_duration)]
        gc_interval: Option<Duration>,
        /// The online GC's grace period: younger or recently named blobs are kept.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        gc_grace: Duration,
        /// Let the online GC delete untagged manifests too.
        #[arg(long)]
        gc_delete_untagged: bool,
        /// Do not hash whole-blob reads on the way out.
        #[arg(long)]
        no_verify_reads: bool,
    },
    /// Collect garbage while no server uses the data dir.
    Gc {
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// Report what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Delete manifests that no tag reaches.
        #[arg(long)]
        delete_untagged: bool,
        /// Leave blobs and manifests younger than this.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        grace: Duration,
        /// Remove uploads untouched for this long.
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        upload_max_age: Duration,
    },
    /// Re-hash every stored blob; exit 1 when one does not match its digest.
    Scrub {
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
}

/// `90`, `90s`, `15m`, `2h`, `7d`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?}: expected a number and s, m, h or d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("invalid duration {s:?}: the unit is s, m, h or d")),
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

fn main() {
    let cli = Cli::parse();
    init_logging(&cli.log_level);
    let code = match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wharf-registry: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn run(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Serve {
            addr,
            data_dir,
            open,
            idle_timeout,
            gc_interval,
            gc_grace,
            gc_delete_untagged,
            no_verify_reads,
        } => {
            let addrs: Vec<SocketAddr> =
                addr.to_socket_addrs().with_context(|| format!("invalid --addr {addr:?}"))?.collect();
            if !open && !server::is_loopback(&addrs) {
                bail!(
                    "refusing to listen on {addr}: it is not a loopback address and no authentication is \
                     configured, so anyone who can reach it could pull, push and delete images; listen on \
                     127.0.0.1 (or ::1), or pass --open to serve it unauthenticated anyway"
                );
            }
            let options =
                ServeOptions { idle_timeout, verify_reads: !no_verify_reads, track_use: gc_interval.is_some() };
            let registry =
                Arc::new(Registry::open(&data_dir, options).with_context(|| format!("open {}", data_dir.display()))?);
            let listener = std::net::TcpListener::bind(&addrs[..]).with_context(|| format!("listen on {addr}"))?;
            listener.set_nonblocking(true)?;
            let local = listener.local_addr()?;
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the runtime")?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                log::info!("wharf-registry listening on {local}, data in {}", data_dir.display());
                if let Some(every) = gc_interval {
                    let opts = GcOptions {
                        dry_run: false,
                        delete_untagged: gc_delete_untagged,
                        grace: gc_grace,
                        upload_max_age: Duration::from_secs(7 * 86400),
                    };
                    tokio::spawn(online_gc(registry.clone(), every, opts));
                }
                let server = tokio::spawn(server::serve(listener, registry));
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                    _ = server => {}
                }
                log::info!("wharf-registry stopping");
                anyhow::Ok(0)
            })
        }
        Command::Gc { data_dir, dry_run, delete_untagged, grace, upload_max_age } => {
            let registry = Registry::open(&data_dir, ServeOptions::default())
                .with_context(|| format!("open {} (gc needs the registry stopped)", data_dir.display()))?;
            let opts = GcOptions { dry_run, delete_untagged, grace, upload_max_age };
            let report = gc::collect(&registry, &opts)?;
            for (repo, d) in &report.manifests {
                println!("manifest {repo}@{d}");
            }
            for d in &report.blobs {
                println!("blob {d}");
            }
            let verb = if dry_run { "would delete" } else { "deleted" };
            println!("{verb} {report}");
            Ok(0)
        }
        Command::Scrub { data_dir } => {
            let store = FsBlobStore::open(&data_dir).with_context(|| format!("open {}", data_dir.display()))?;
            // The index is checked too when no server holds it.
            let meta = match RedbMetadata::open(&data_dir.join("registry.db")) {
                Ok(m) => Some(m),
                Err(e) => {
                    eprintln!("wharf-registry: not checking the index: {e}");
                    None
                }
            };
            let report = wharf_registry::scrub::scrub(&store, meta.as_ref().map(|m| m as &dyn Metadata))?;
            for (want, got) in &report.corrupt {
                println!("corrupt {want}: its bytes hash to {got}");
            }
            for d in &report.missing {
                println!("missing {d}: indexed but not in storage");
            }
            println!("checked {} blobs ({} bytes)", report.checked, report.bytes);
            Ok(if report.clean() { 0 } else { 1 })
        }
    }
}

async fn online_gc(registry: Arc<Registry>, every: Duration, opts: GcOptions) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await; // the first tick is immediate; wait a whole period first
    loop {
        tick.tick().await;
        let reg = registry.clone();
        let opts = opts.clone();
        match tokio::task::spawn_blocking(move || gc::collect(&reg, &opts)).await {
            Ok(Ok(report)) if report.is_empty() => log::debug!("gc: nothing to delete"),
            Ok(Ok(report)) => log::info!("gc: deleted {report}"),
            Ok(Err(e)) => log::error!("gc: {e}"),
            Err(e) => log::error!("gc: {e}"),
        }
    }
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
            eprintln!("{} {}", r.level().as_str().to_lowercase(), r.args());
        }
    }
    fn flush(&self) {}
}

fn init_logging(level: &str) {
    let level = match level {
        "debug" => log::LevelFilter::Debug,
        "warn" => log::LevelFilter::Warn,
        "error" => log::LevelFilter::Error,
        "trace" => log::LevelFilter::Trace,
        _ => log::LevelFilter::Info,
    };
    let logger = Box::leak(Box::new(StderrLogger { level }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}
