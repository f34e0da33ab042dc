//! The services of the daemon as a plain Rust API: images, pull, containers.
//!
//! Knows nothing of HTTP or Docker's JSON: the `api` crate turns requests into calls on
//! [`Engine`] and maps [`EngineError::kind`] to status codes.

pub mod apparmor;
mod archive;
mod attach;
mod build_cache;
mod commit;
mod containers;
mod copy;
mod defaults;
mod diff;
mod disk;
mod dns;
mod error;
mod events;
mod exec;
mod export;
mod failpoint;
mod formats;
mod gc;
mod health;
mod history;
mod ids;
mod images;
mod import;
mod init;
mod lifecycle;
mod logrotate;
mod logs;
mod metrics;
mod monitor;
mod network;
mod pgzip;
mod pull;
mod push;
mod resources;
mod restart;
mod runtimes;
mod security;
mod spec;
mod stats;
mod store;
mod sync;
mod transfer;
mod user;
mod userns;
mod volumes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use wharf_content::ContentStore;
use wharf_distribution::{RegistryClient, RegistryConfig};
use wharf_metadata::Db;
use wharf_snapshot::Snapshotter;

pub use archive::{inspect_archive, ArchiveImage, LoadedImage, SavePlan};
pub use attach::{AttachOptions, PendingAttach, ProcessStream, StreamEvent, StreamInput};
pub use build_cache::{CacheEntry, CachePrune, CachePruneReport, CacheUsage};
pub use commit::{CommitImage, CommitRequest, TopLayer};
pub use containers::{
    ContainerConfig, ContainerRecord, ContainerState, CreateRequest, HostConfig, ListOptions, Status, WaitCondition,
};
pub use copy::{ExtractOptions, PathStat};
pub use defaults::{check_seccomp_profile, ContainerDefaults};
pub use diff::{Change, ChangeKind};
pub use disk::{ContainerUsage, DiskUsage, ImagePruneReport, ImageUsage, VolumeUsage};
pub use error::EngineError;
pub use events::Event;
pub use exec::{ExecConfig, ExecRecord};
pub use export::ExportPlan;
pub use health::{Health, HealthConfig, HealthResult};
pub use history::HistoryEntry;
pub use images::{ImageDeleted, ImageRecord, ImageSummary};
pub use import::ImportRequest;
pub use lifecycle::{PruneReport, UpdateRequest};
pub use logrotate::{parse_size as parse_log_size, validate_opts as validate_log_opts, LogConfig};
pub use logs::{LogChunk, LogOptions, LogStream};
pub use metrics::endpoint_pattern;
pub use monitor::parse_signal;
pub use network::{
    find_network_in, parse_link, AddressPool, DefaultBridgeOptions, Endpoint, NetAttach, NetOptions, NetworkConfig,
    NetworkCreate, NetworkRecord, NetworkView, PortBinding, PublishedPort,
};
pub use pull::{PullEvent, PullRequest};
pub use push::{PushRequest, Pushed};
pub use resources::{support as cgroup_support, DeviceRequest, ResourceOptions, ThrottleDevice, WeightDevice};
pub use restart::RestartPolicy;
pub use runtimes::{RuntimeSpec, Runtimes, BUILTIN_NAMES as BUILTIN_RUNTIMES};
pub use security::{
    apparmor_profile, oom_kill_disable_supported, security_warnings, DeviceMapping, SecurityOptions, Ulimit,
    DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS,
};
pub use stats::{StatsSample, TopResult};
pub use user::{PathInfo, PathKind};
pub use userns::{resolve_userns_remap, UsernsRemap, DEFAULT_REMAP_USER};
pub use volumes::{MountKind, MountPoint, MountRequest, VolumeRecord};
pub use wharf_distribution::ProxyConfig;
pub use wharf_distribution::{AuthConfig, SearchAnswer};
// The type of `DefaultBridgeOptions::fixed_cidr`, for the daemon that parses it.
pub use wharf_network::Ipv4Net;
/// A hugepage limit as the OCI spec has it (the CRI's `hugepage_limits`).
pub use wharf_runtime::spec::HugepageLimit;

/// A label that marks a container made for one operation of the daemon (a build step): it is
/// removed when the daemon starts, since the operation died with the daemon before it.
pub const EPHEMERAL_LABEL: &str = "io.wharf.ephemeral";

/// How containers' cgroups are made, as dockerd's `native.cgroupdriver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupDriver {
    /// wharf makes `<parent>/<id>` in the cgroup file system.
    #[default]
    Cgroupfs,
    /// Each container is a transient scope `docker-<id>.scope` in a slice, which systemd
    /// makes on wharf's request (D-Bus) and delegates; wharf writes the limits in it.
    Systemd,
}

impl CgroupDriver {
    /// The name `docker info` gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupDriver::Cgroupfs => "cgroupfs",
            CgroupDriver::Systemd => "systemd",
        }
    }
}

/// Everything the engine needs to know about where it lives and how it talks to registries.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub registry_mirrors: Vec<String>,
    pub insecure_registries: Vec<String>,
    pub max_concurrent_downloads: usize,
    /// Layers pushed at once per push (daemon.json `max-concurrent-uploads`, dockerd's 5).
    pub max_concurrent_uploads: usize,
    /// Tries per layer download, the first included (`max-download-attempts`, dockerd's 5).
    pub max_download_attempts: u32,
    /// The cgroup under which every container gets its own (`<parent>/<id>`), or with the
    /// systemd driver the slice that holds each container's scope (`docker-<id>.scope`).
    pub cgroup_parent: String,
    /// Who makes containers' cgroups: wharf itself, or systemd (daemon.json
    /// `exec-opts: native.cgroupdriver=systemd`, where systemd runs).
    pub cgroup_driver: CgroupDriver,
    /// The `wharf-shim` executable.
    pub shim_path: PathBuf,
    /// Where per-registry CA certificates live (`<dir>/<host:port>/ca.crt`).
    pub certs_dir: PathBuf,
    /// The default bridge, its subnet, and whether wharf writes nftables rules.
    pub network: NetworkConfig,
    /// daemon.json `log-opts`: json-file options for containers that set none.
    pub log_opts: std::collections::BTreeMap<String, String>,
    /// daemon.json `userns-remap`, resolved: containers run in a user namespace with these maps.
    pub userns_remap: Option<UsernsRemap>,
    /// The most bytes a build may bring in: its context (unpacked), a `remote=` download, each
    /// `ADD` download and archive. Kept here for the builder, which the engine does not know.
    pub max_build_context: u64,
    /// Forward proxies for registries (and builds' downloads).
    pub proxy: wharf_distribution::ProxyConfig,
    /// daemon.json `labels` / `--label`: `key=value`, shown by `docker info`.
    pub labels: Vec<String>,
    /// What containers get unless they set it (daemon.json `dns`, `default-ulimits`, ...).
    pub container_defaults: ContainerDefaults,
    /// The OCI runtimes containers may name (`runtimes`, `default-runtime`) at the start;
    /// a reload replaces them ([`Engine::set_runtimes`]).
    pub runtimes: Runtimes,
}

/// What a configuration reload (SIGHUP) changes while the engine runs, as dockerd reloads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySettings {
    pub registry_mirrors: Vec<String>,
    pub insecure_registries: Vec<String>,
    pub max_concurrent_downloads: usize,
    pub max_concurrent_uploads: usize,
    pub max_download_attempts: u32,
}

/// The one place the registry client is made, at open and at each reload.
fn registry_client(config: &EngineConfig, settings: &RegistrySettings) -> Result<RegistryClient, EngineError> {
    Ok(RegistryClient::new(RegistryConfig {
        mirrors: settings.registry_mirrors.clone(),
        insecure: settings.insecure_registries.clone(),
        certs_dir: Some(config.certs_dir.clone()),
        user_agent: format!("wharf/{}", env!("CARGO_PKG_VERSION")),
        proxy: config.proxy.clone(),
    })?)
}

/// The daemon's services. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    config: EngineConfig,
    /// Images, tags, endpoints, volumes, networks and the build cache; the container records
    /// and names are `containers`' (which writes them here too).
    db: Arc<Db>,
    /// The container records and their names, in memory and written through to `db`.
    containers: store::ContainerStore,
    content: ContentStore,
    snapshots: Snapshotter,
    /// The registry client and the settings it was made from, replaced together by a reload
    /// (apart, a pull could take a new client and the old limits); a pull in flight keeps the
    /// client it took.
    registry: RwLock<Arc<RegistryState>>,
    /// Per-container live state: exit notifications, the init's pidfd.
    live: Mutex<HashMap<String, Arc<monitor::Live>>>,
    /// Exec instances, in memory only as Docker's.
    execs: Arc<exec::Execs>,
    /// Serializes changes of names and container records that must be checked and written together.
    containers_lock: tokio::sync::Mutex<()>,
    /// Pulls hold it shared, removals of images and layers exclusively: garbage collection never
    /// removes a layer an in-flight pull has just found present.
    gc_lock: RwLock<()>,
    /// Layer downloads in flight, shared by the pulls that need them.
    transfers: transfer::Transfers,
    network: network::Networking,
    /// The event ring and its subscribers (`GET /events`).
    events: events::EventBus,
    /// Pending restarts by policy and their back-off.
    restarts: restart::Restarts,
    /// The daemon's labels (`docker info`), replaced when the daemon reloads its configuration.
    labels: Mutex<Vec<String>>,
    /// The runtimes as last (re)loaded.
    runtimes: RwLock<Runtimes>,
    /// Counters for `metrics-addr`.
    metrics: metrics::Metrics,
}

impl Engine {
    /// Opens the data root, the database and the stores, and re-adopts the containers that were
    /// running when the daemon last stopped (their shims kept them alive).
    pub async fn open(config: EngineConfig) -> Result<Engine, EngineError> {
        std::fs::create_dir_all(&config.data_root)
            .map_err(|e| EngineError::io(format!("create data root {}", config.data_root.display()), e))?;
        std::fs::create_dir_all(config.data_root.join("containers"))
            .map_err(|e| EngineError::io("create containers dir", e))?;
        std::fs::create_dir_all(&config.exec_root)
            .map_err(|e| EngineError::io(format!("create exec root {}", config.exec_root.display()), e))?;
        let db = Arc::new(Db::open(&config.data_root.join("wharf.db"))?);
        // Before anything reads a table: every one in the form this wharfd reads, or a refusal.
        formats::migrate(&db, &formats::ALL)?;
        let containers = store::ContainerStore::load(db.clone())?;
        let content = ContentStore::open(&config.data_root.join("content"))?;
        let snapshots = Snapshotter::open(&config.data_root.join("snapshots"))?;
        if let Some(remap) = &config.userns_remap {
            userns::prepare_data_root(&config.data_root, remap)?;
        }
        let settings = RegistrySettings {
            registry_mirrors: config.registry_mirrors.clone(),
            insecure_registries: config.insecure_registries.clone(),
            max_concurrent_downloads: config.max_concurrent_downloads,
            max_concurrent_uploads: config.max_concurrent_uploads,
            max_download_attempts: config.max_download_attempts,
        };
        let registry = registry_client(&config, &settings)?;
        let networking = network::Networking::new(config.network.clone());
        let engine = Engine {
            inner: Arc::new(Inner {
                labels: Mutex::new(config.labels.clone()),
                runtimes: RwLock::new(config.runtimes.clone()),
                metrics: metrics::Metrics::default(),
                config,
                db,
                containers,
                content,
                snapshots,
                registry: RwLock::new(Arc::new(RegistryState { client: Arc::new(registry), settings })),
                live: Mutex::new(HashMap::new()),
                execs: Arc::default(),
                containers_lock: tokio::sync::Mutex::new(()),
                gc_lock: RwLock::new(()),
                transfers: transfer::Transfers::default(),
                network: networking,
                events: events::EventBus::new(),
                restarts: restart::Restarts::default(),
            }),
        };
        engine.recover().await?;
        engine.reconcile_network().await?;
        engine.inner.restarts.set_ready();
        engine.restart_on_daemon_start();
        Ok(engine)
    }

    /// Called when the daemon stops. Containers keep running under their shims; when none
    /// runs, the daemon's parent cgroup is removed so that the host looks as before.
    pub async fn shutdown(&self) {
        let any_running = sync::lock(&self.inner.live).values().any(|l| l.is_running());
        if any_running {
            return;
        }
        let net = self.clone();
        let _ = blocking(move || {
            net.network_shutdown();
            Ok(())
        })
        .await;
        // A slice is systemd's: it goes when systemd lets it.
        if self.inner.config.cgroup_driver == CgroupDriver::Systemd {
            return;
        }
        let parent = self.inner.config.cgroup_parent.clone();
        let _ = blocking(move || {
            if let Ok(cg) = wharf_runtime::cgroups::Cgroup::open(&parent) {
                if cg.procs().map(|p| p.is_empty()).unwrap_or(false) {
                    if let Err(e) = cg.remove() {
                        log::debug!("remove cgroup parent {parent}: {e}");
                    }
                }
            }
            Ok(())
        })
        .await;
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// One redb write transaction on the metadata database, its commit (an fsync) kept off the
    /// async worker when called on one (see `sync::blocking_section`).
    pub(crate) fn write_db<R, E>(
        &self,
        f: impl FnOnce(&mut wharf_metadata::WriteTx<'_>) -> Result<R, E>,
    ) -> Result<R, E>
    where
        E: From<wharf_metadata::MetadataError>,
    {
        sync::blocking_section(|| self.inner.db.write(f))
    }

    /// The registry client as now configured.
    pub(crate) fn registry(&self) -> Arc<RegistryClient> {
        sync::read(&self.inner.registry).client.clone()
    }

    /// Mirrors, insecure registries and transfer limits as now configured.
    pub fn registry_settings(&self) -> RegistrySettings {
        sync::read(&self.inner.registry).settings.clone()
    }

    /// A configuration reload: pulls and pushes that start from now on use these; those in
    /// flight finish as they began. A bad mirror URL changes nothing.
    pub fn reload_registry_settings(&self, settings: RegistrySettings) -> Result<(), EngineError> {
        let client = Arc::new(registry_client(&self.inner.config, &settings)?);
        *crate::sync::write(&self.inner.registry) = Arc::new(RegistryState { client, settings });
        Ok(())
    }

    /// The daemon's labels, as `docker info` shows them (`key=value`).
    pub fn labels(&self) -> Vec<String> {
        crate::sync::lock(&self.inner.labels).clone()
    }

    /// The OCI runtimes as `docker info` lists them, and the default.
    pub fn runtimes(&self) -> Runtimes {
        sync::read(&self.inner.runtimes).clone()
    }

    /// Replaces the runtimes (a configuration reload, as dockerd reloads them): containers
    /// created or started from now on see the new ones; running ones keep theirs.
    pub fn set_runtimes(&self, runtimes: Runtimes) {
        *crate::sync::write(&self.inner.runtimes) = runtimes;
    }

    /// Replaces the daemon's labels (a configuration reload).
    pub fn set_labels(&self, labels: Vec<String>) {
        *crate::sync::lock(&self.inner.labels) = labels;
    }
}

/// What a reload of the registry settings replaces, in one piece.
struct RegistryState {
    client: Arc<RegistryClient>,
    settings: RegistrySettings,
}

/// Runs blocking work (file system, registry I/O) off the async worker threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| EngineError::Internal(format!("background task failed: {e}")))?
}
