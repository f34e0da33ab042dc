//! The `wharf-registry` binary: `serve`, `gc` and `scrub` over one data directory.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use wharf_registry::auth;
use wharf_registry::config::{self, DatabaseConfig, FileConfig};
use wharf_registry::gc::{self, GcOptions};
use wharf_registry::harbor::audit;
use wharf_registry::meta::{Metadata, RedbMetadata};
use wharf_registry::s3::{Credentials, S3BlobStore, S3Options};
use wharf_registry::server::{self, Registry, ServeOptions};
use wharf_registry::store::{BlobStore, FsBlobStore};

const DEFAULT_DATA_DIR: &str = "/var/lib/wharf-registry";
const DEFAULT_ADDR: &str = "127.0.0.1:5000";

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
    /// Serve the registry. Flags override the config file, which overrides the defaults.
    Serve {
        /// A YAML config file (see the README for the keys and the YAML subset it is read as).
        #[arg(long)]
        config: Option<PathBuf>,
        /// HOST:PORT to listen on [default: 127.0.0.1:5000].
        #[arg(long)]
        addr: Option<String>,
        /// [default: /var/lib/wharf-registry]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Keep the index in PostgreSQL instead of the data dir's embedded database, e.g.
        /// postgres://user:password@host:5432/dbname (replicas that share it and the data
        /// dir serve the same registry).
        #[arg(long, env = "WHARF_REGISTRY_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Serve on a non-loopback address with no authentication: anyone who reaches it may
        /// pull, push and delete.
        #[arg(long)]
        open: bool,
        /// Require authentication (token auth, Docker's registry token spec); on whenever the
        /// config file has an `auth:` section.
        #[arg(long)]
        auth: bool,
        /// With authentication, let anyone pull from every project without credentials (public
        /// projects are pulled anonymously anyway).
        #[arg(long)]
        anonymous_pull: bool,
        /// With authentication, let anyone sign up for an account through the REST API.
        #[arg(long)]
        self_registration: bool,
        /// The admin user's password on first start (else WHARF_REGISTRY_ADMIN_PASSWORD, else
        /// a generated one, printed once).
        #[arg(long, env = "WHARF_REGISTRY_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: Option<String>,
        /// The certificate chain (PEM) to serve TLS with; needs --tls-key.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// How long a client may stall (sending headers or body) before it is cut off [default: 60s].
        #[arg(long, value_parser = parse_duration)]
        idle_timeout: Option<Duration>,
        /// Run the garbage collector this often while serving (e.g. 1h); off by default.
        #[arg(long, value_parser = parse_duration)]
        gc_interval: Option<Duration>,
        /// The online GC's grace period: younger or recently named blobs are kept [default: 1h].
        #[arg(long, value_parser = parse_duration)]
        gc_grace: Option<Duration>,
        /// Let the online GC delete untagged manifests too.
        #[arg(long)]
        gc_delete_untagged: bool,
        /// Which whole-blob reads are hashed on the way out: `always`, `once` (a blob's stored
        /// bytes are hashed at their first read, or trusted from their upload, until the file
        /// changes) or `never` [default: once].
        #[arg(long, value_parser = wharf_registry::verified::VerifyReads::parse, conflicts_with = "no_verify_reads")]
        verify_reads: Option<wharf_registry::verified::VerifyReads>,
        /// Do not hash whole-blob reads on the way out (`--verify-reads never`).
        #[arg(long)]
        no_verify_reads: bool,
        /// With authentication, how long a web UI session may go unused before it ends
        /// [default: 60m].
        #[arg(long, value_parser = parse_duration)]
        session_timeout: Option<Duration>,
        /// With authentication, the most audit log entries kept; the oldest go first [default: 100000].
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        audit_max_records: Option<u64>,
        /// With authentication, how long audit log entries are kept (e.g. 720h; 0 keeps them
        /// whatever their age, bounded by the count alone) [default: 90d].
        #[arg(long, value_parser = parse_duration)]
        audit_max_age: Option<Duration>,
    },
    /// Collect garbage: with the embedded index while no server uses the data dir; with
    /// PostgreSQL at any time, one collection at a time.
    Gc {
        /// The server's config file: its data_dir, storage and database are used.
        #[arg(long)]
        config: Option<PathBuf>,
        /// [default: /var/lib/wharf-registry]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The PostgreSQL index the servers use (see `serve --database-url`).
        #[arg(long, env = "WHARF_REGISTRY_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
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
        /// The server's config file: its data_dir, storage and database are used.
        #[arg(long)]
        config: Option<PathBuf>,
        /// [default: /var/lib/wharf-registry]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The PostgreSQL index the servers use (see `serve --database-url`).
        #[arg(long, env = "WHARF_REGISTRY_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    config::parse_duration(s)
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
            config,
            addr,
            data_dir,
            database_url,
            open,
            auth,
            anonymous_pull,
            self_registration,
            admin_password,
            tls_cert,
            tls_key,
            idle_timeout,
            gc_interval,
            gc_grace,
            gc_delete_untagged,
            verify_reads,
            no_verify_reads,
            session_timeout,
            audit_max_records,
            audit_max_age,
        } => {
            let file = match &config {
                Some(path) => config::load(path)?,
                None => FileConfig::default(),
            };
            let addr = addr.or(file.addr).unwrap_or_else(|| DEFAULT_ADDR.to_string());
            let data_dir = data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
            let pool_size = file.database.as_ref().and_then(|d| d.pool_size);
            let database = match database_url {
                Some(postgres) => Some(DatabaseConfig { postgres, pool_size }),
                None => file.database,
            };
            let open = open || file.open.unwrap_or(false);
            let idle_timeout = idle_timeout.or(file.idle_timeout).unwrap_or(Duration::from_secs(60));
            let verify_reads = match (no_verify_reads, verify_reads) {
                (true, _) => wharf_registry::verified::VerifyReads::Never,
                (false, Some(mode)) => mode,
                (false, None) => file.verify_reads.unwrap_or(wharf_registry::verified::VerifyReads::Once),
            };
            let gc_interval = gc_interval.or(file.gc.interval);
            let gc_opts = GcOptions {
                dry_run: false,
                delete_untagged: gc_delete_untagged || file.gc.delete_untagged.unwrap_or(false),
                grace: gc_grace.or(file.gc.grace).unwrap_or(Duration::from_secs(3600)),
                upload_max_age: file.gc.upload_max_age.unwrap_or(Duration::from_secs(7 * 86400)),
            };
            let tls_files = match (tls_cert, tls_key) {
                (Some(certificate), Some(key)) => Some(config::TlsConfig { certificate, key }),
                _ => file.tls,
            };
            let auth_cfg = match (auth || anonymous_pull, file.auth) {
                (_, Some(a)) => Some(a),
                (true, None) => Some(config::AuthConfig::default()),
                (false, None) => None,
            };

            let addrs: Vec<SocketAddr> =
                addr.to_socket_addrs().with_context(|| format!("invalid --addr {addr:?}"))?.collect();
            if !open && auth_cfg.is_none() && !server::is_loopback(&addrs) {
                bail!(
                    "refusing to listen on {addr}: it is not a loopback address and no authentication is \
                     configured, so anyone who can reach it could pull, push and delete images; listen on \
                     127.0.0.1 (or ::1), configure auth (--auth, or auth: in the config file), or pass --open \
                     to serve it unauthenticated anyway"
                );
            }
            let tls = match &tls_files {
                Some(t) => Some(wharf_tls::server_config(&t.certificate, &t.key)?),
                None => None,
            };
            let options = ServeOptions { idle_timeout, verify_reads, track_use: gc_interval.is_some() };
            let store = open_store(file.s3.as_ref(), &data_dir, true)?;
            let mut registry = Registry::open_with(&data_dir, store, database.as_ref(), options)
                .with_context(|| format!("open {}", data_dir.display()))?;
            let index = match &database {
                Some(d) => wharf_registry::pg::wire::ConnConfig::parse(&d.postgres)?.to_string(),
                None => "the data dir".to_string(),
            };
            registry.https = tls.is_some();
            registry.gc_options = gc_opts.clone();
            if let Some(a) = auth_cfg {
                if let Some(generated) = auth::ensure_admin(registry.meta.as_ref(), admin_password.as_deref())? {
                    if admin_password.is_none() {
                        // Printed once, on the first start; only its hash is kept.
                        println!("wharf-registry: created user admin with password {generated}");
                    } else {
                        log::info!("created user admin");
                    }
                }
                wharf_registry::harbor::access::ensure_library(registry.meta.as_ref(), auth::ADMIN)
                    .context("create the library project")?;
                let key = auth::TokenSigner::key_for(registry.meta.as_ref(), &data_dir)
                    .with_context(|| format!("token key (index, or {})", data_dir.display()))?;
                let signer = auth::TokenSigner::new(
                    key,
                    a.issuer.unwrap_or_else(|| "wharf-registry".to_string()),
                    a.service.unwrap_or_else(|| "wharf-registry".to_string()),
                    a.token_lifetime.unwrap_or(Duration::from_secs(300)),
                );
                registry.auth = Some(auth::Auth {
                    signer,
                    anonymous_pull: anonymous_pull || a.anonymous_pull.unwrap_or(false),
                    realm: a.realm,
                    self_registration: self_registration || a.self_registration.unwrap_or(false),
                    project_creation_admin_only: a.project_creation_admin_only.unwrap_or(false),
                    session_idle: session_timeout
                        .or(a.session_timeout)
                        .unwrap_or(Duration::from_secs(wharf_registry::harbor::session::IDLE_TIMEOUT)),
                });
                let max_age = audit_max_age.or(file.audit_log.max_age).unwrap_or(audit::DEFAULT_MAX_AGE);
                let retention = audit::Retention {
                    max_records: audit_max_records.or(file.audit_log.max_records).unwrap_or(audit::DEFAULT_MAX_RECORDS),
                    max_age: (!max_age.is_zero()).then_some(max_age),
                };
                registry.audit = Some(
                    audit::AuditLog::start(registry.meta.clone(), retention).context("start the audit log writer")?,
                );
            }
            let registry = Arc::new(registry);
            let listener = std::net::TcpListener::bind(&addrs[..]).with_context(|| format!("listen on {addr}"))?;
            listener.set_nonblocking(true)?;
            let local = listener.local_addr()?;
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the runtime")?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                log::info!(
                    "wharf-registry listening on {local} ({}{}), data in {}, index in {index}",
                    if registry.https { "https" } else { "http" },
                    if registry.auth.is_some() { ", token auth" } else { ", no auth" },
                    data_dir.display()
                );
                if let Some(every) = gc_interval {
                    tokio::spawn(online_gc(registry.clone(), every, gc_opts));
                }
                if registry.auth.is_some() {
                    // Retention policies' and the GC's schedules, and the runs the API asks for.
                    tokio::spawn(wharf_registry::harbor::scheduler::run(registry.clone()));
                }
                let server = tokio::spawn(server::serve(listener, registry, tls));
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
        Command::Gc { config, data_dir, database_url, dry_run, delete_untagged, grace, upload_max_age } => {
            let (file, data_dir) = tool_config(config.as_deref(), data_dir)?;
            let database = tool_database(&file, database_url, 2);
            let store = open_store(file.s3.as_ref(), &data_dir, true)?;
            let registry = Registry::open_with(&data_dir, store, database.as_ref(), ServeOptions::default())
                .with_context(|| match database {
                    None => format!("open {} (gc needs the registry stopped)", data_dir.display()),
                    Some(_) => format!("open {}", data_dir.display()),
                })?;
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
        Command::Scrub { config, data_dir, database_url } => {
            let (file, data_dir) = tool_config(config.as_deref(), data_dir)?;
            let store = open_store(file.s3.as_ref(), &data_dir, false)?;
            let meta: Option<Box<dyn Metadata>> = match tool_database(&file, database_url, 1) {
                Some(db) => Some(Box::new(server::open_postgres(&db)?)),
                // The embedded index is checked too when no server holds it.
                None => match RedbMetadata::open(&data_dir.join("registry.db")) {
                    Ok(m) => Some(Box::new(m)),
                    Err(e) => {
                        eprintln!("wharf-registry: not checking the index: {e}");
                        None
                    }
                },
            };
            let report = wharf_registry::scrub::scrub(store.as_ref(), meta.as_deref())?;
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

/// The config file (if any) of `gc` and `scrub`, and their data dir: the flag, else the file's.
fn tool_config(config: Option<&Path>, data_dir: Option<PathBuf>) -> anyhow::Result<(FileConfig, PathBuf)> {
    let file = match config {
        Some(path) => config::load(path)?,
        None => FileConfig::default(),
    };
    let data_dir = data_dir.or(file.data_dir.clone()).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    Ok((file, data_dir))
}

/// The PostgreSQL index of `gc` and `scrub`: the flag (or its environment variable), else the
/// config file's `database:`. They need few connections: `pool_size` of them.
fn tool_database(file: &FileConfig, database_url: Option<String>, pool_size: usize) -> Option<DatabaseConfig> {
    let postgres = database_url.or_else(|| file.database.as_ref().map(|d| d.postgres.clone()))?;
    Some(DatabaseConfig { postgres, pool_size: Some(pool_size) })
}

/// The blob store the config names: an S3 bucket with `storage: s3:`, else the data dir.
/// With `sweep` (serve, gc), multipart uploads that crashed commits left are aborted.
fn open_store(s3: Option<&config::S3Config>, data_dir: &Path, sweep: bool) -> anyhow::Result<Arc<dyn BlobStore>> {
    let Some(s3) = s3 else {
        std::fs::create_dir_all(data_dir).with_context(|| format!("create {}", data_dir.display()))?;
        let store = FsBlobStore::open(data_dir).with_context(|| format!("open {}", data_dir.display()))?;
        return Ok(Arc::new(store));
    };
    let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some(access_key) = s3.access_key.clone().or_else(|| from_env("AWS_ACCESS_KEY_ID")) else {
        bail!("storage.s3 needs access_key in the config file, or AWS_ACCESS_KEY_ID in the environment");
    };
    let Some(secret_key) = s3.secret_key.clone().or_else(|| from_env("AWS_SECRET_ACCESS_KEY")) else {
        bail!("storage.s3 needs secret_key in the config file, or AWS_SECRET_ACCESS_KEY in the environment");
    };
    let opts = S3Options {
        endpoint: s3.endpoint.clone(),
        region: s3.region.clone().or_else(|| from_env("AWS_REGION")).unwrap_or_else(|| "us-east-1".to_string()),
        bucket: s3.bucket.clone(),
        prefix: s3.prefix.clone().unwrap_or_default(),
        credentials: Credentials { access_key, secret_key },
        ca_file: s3.ca_file.clone(),
    };
    let store = S3BlobStore::open(&opts)?;
    log::info!("blobs in S3 bucket {:?} at {}", opts.bucket, opts.endpoint);
    if sweep {
        match store.abort_stale_commits(Duration::from_secs(86400)) {
            Ok(0) => {}
            Ok(n) => log::info!("aborted {n} multipart uploads that commits left unfinished"),
            Err(e) => log::warn!("listing unfinished multipart uploads: {e}"),
        }
    }
    Ok(Arc::new(store))
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
            Ok(Err(gc::GcError::Busy)) => log::info!("gc: skipped: another replica is collecting"),
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
