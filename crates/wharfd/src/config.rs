//! The daemon's configuration: command-line flags (named as dockerd names them) over a
//! daemon.json. What each dockerd key does here is decided by `keys::KEYS`; unknown keys,
//! refused keys and malformed values stop the daemon with a message naming the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use wharf_engine::CgroupDriver;

use anyhow::{bail, Context};
use clap::Parser;
use serde::Deserialize;

pub const DEFAULT_HOST: &str = "unix:///run/wharf/wharfd.sock";
const DEFAULT_CONFIG: &str = "/etc/wharf/daemon.json";

#[derive(Parser, Debug, Default)]
#[command(
    name = "wharfd",
    version,
    about = "The wharf container engine daemon (the Docker Engine API)",
    after_help = "dockerd's other flags (--live-restore, --storage-driver, --icc, ...) are accepted or refused as their daemon.json keys are: see `wharfd --validate`."
)]
pub struct Flags {
    /// Socket(s) to listen on: unix:///path, tcp://host:port, fd:// or fd://N (repeatable)
    #[arg(short = 'H', long = "host")]
    pub host: Vec<String>,
    /// Root of persistent state
    #[arg(long = "data-root")]
    pub data_root: Option<PathBuf>,
    /// Root of runtime state
    #[arg(long = "exec-root")]
    pub exec_root: Option<PathBuf>,
    /// Daemon configuration file
    #[arg(long = "config-file")]
    pub config_file: Option<PathBuf>,
    /// Check the configuration, print what it warns of, and exit
    #[arg(long = "validate")]
    pub validate: bool,
    /// Log level: debug, info, warn, error, fatal
    #[arg(short = 'l', long = "log-level")]
    pub log_level: Option<String>,
    /// Debug logging
    #[arg(short = 'D', long = "debug")]
    pub debug: bool,
    /// Parent cgroup of every container's cgroup
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    /// Registry mirror to try first (repeatable)
    #[arg(long = "registry-mirror")]
    pub registry_mirror: Vec<String>,
    /// Registry reachable over plain HTTP (repeatable)
    #[arg(long = "insecure-registry")]
    pub insecure_registry: Vec<String>,
    /// Layers downloaded at once per pull
    #[arg(long = "max-concurrent-downloads")]
    pub max_concurrent_downloads: Option<usize>,
    /// Layers uploaded at once per push (default 5)
    #[arg(long = "max-concurrent-uploads")]
    pub max_concurrent_uploads: Option<usize>,
    /// Tries per layer download (default 5)
    #[arg(long = "max-download-attempts")]
    pub max_download_attempts: Option<u32>,
    /// Name of the default bridge (default wharf0)
    #[arg(short = 'b', long = "bridge")]
    pub bridge: Option<String>,
    /// Address and subnet of the default bridge, as 172.17.0.1/16
    #[arg(long = "bip")]
    pub bip: Option<String>,
    /// Write nftables rules (masquerade, published ports): true or false
    #[arg(long = "iptables")]
    pub iptables: Option<bool>,
    /// MTU of the default bridge and its containers' interfaces (default 1500)
    #[arg(long = "mtu")]
    pub mtu: Option<i64>,
    /// Let containers on the default bridge reach each other (default true; without it only links do)
    #[arg(long = "icc", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub icc: Option<bool>,
    /// The host address ports published on the default bridge without one bind (default 0.0.0.0)
    #[arg(long = "ip")]
    pub ip: Option<String>,
    /// Masquerade the default bridge's outgoing traffic (default true)
    #[arg(long = "ip-masq", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub ip_masq: Option<bool>,
    /// Give containers on the default bridge addresses from this subnet of bip's, as 172.17.1.0/24
    #[arg(long = "fixed-cidr")]
    pub fixed_cidr: Option<String>,
    /// Default route of containers on the default bridge, an address of its subnet
    #[arg(long = "default-gateway")]
    pub default_gateway: Option<String>,
    /// Run containers in user namespaces: default, user, user:group or uid:gid
    #[arg(long = "userns-remap")]
    pub userns_remap: Option<String>,
    /// Subnets for networks given none, as base=10.10.0.0/16,size=24 (repeatable)
    #[arg(long = "default-address-pool")]
    pub default_address_pool: Vec<String>,
    /// The most a build may bring in: its context, a remote, each ADD (default 16g)
    #[arg(long = "max-build-context")]
    pub max_build_context: Option<String>,
    /// HTTP proxy for pulls, pushes and builds' downloads (overrides HTTP_PROXY)
    #[arg(long = "http-proxy")]
    pub http_proxy: Option<String>,
    /// HTTPS proxy (overrides HTTPS_PROXY)
    #[arg(long = "https-proxy")]
    pub https_proxy: Option<String>,
    /// Hosts that bypass the proxies (overrides NO_PROXY)
    #[arg(long = "no-proxy")]
    pub no_proxy: Option<String>,
    /// Default log driver (json-file only)
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Default log option, key=value (repeatable)
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// DNS server for containers that give none (repeatable)
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    /// Resolver option for containers that give none (repeatable)
    #[arg(long = "dns-opt")]
    pub dns_opt: Vec<String>,
    /// DNS search domain for containers that give none (repeatable)
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Default ulimit, as nofile=1024:2048 (repeatable)
    #[arg(long = "default-ulimit")]
    pub default_ulimit: Vec<String>,
    /// /dev/shm's size for containers that give none (default 64MiB)
    #[arg(long = "default-shm-size")]
    pub default_shm_size: Option<String>,
    /// Default cgroup namespace of containers: host or private
    #[arg(long = "default-cgroupns-mode")]
    pub default_cgroupns_mode: Option<String>,
    /// Limit the CPU real-time period in microseconds for the parent cgroup for all containers (not supported with cgroups v2)
    #[arg(long = "cpu-rt-period", allow_hyphen_values = true)]
    pub cpu_rt_period: Option<i64>,
    /// Limit the CPU real-time runtime in microseconds for the parent cgroup for all containers (not supported with cgroups v2)
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// A key=value label of the daemon (repeatable)
    #[arg(long = "label")]
    pub label: Vec<String>,
    /// Run an init in containers that do not say
    #[arg(long = "init", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub init: Option<bool>,
    /// no-new-privileges for containers that do not say
    #[arg(long = "no-new-privileges", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub no_new_privileges: Option<bool>,
    /// Seccomp profile file for containers that give none, or "unconfined"
    #[arg(long = "seccomp-profile")]
    pub seccomp_profile: Option<String>,
    /// Another OCI runtime containers may name, as name=path (repeatable)
    #[arg(long = "add-runtime")]
    pub add_runtime: Vec<String>,
    /// The runtime of containers that name none (default runc: wharf's own)
    #[arg(long = "default-runtime")]
    pub default_runtime: Option<String>,
    /// Runtime option: native.cgroupdriver=cgroupfs, or systemd where systemd does not run (repeatable)
    #[arg(long = "exec-opt")]
    pub exec_opt: Vec<String>,
    /// The daemon's PID file (default <exec-root>/wharfd.pid)
    #[arg(short = 'p', long = "pidfile")]
    pub pidfile: Option<PathBuf>,
    /// Group owning the unix socket(s) (default docker, when that group exists)
    #[arg(short = 'G', long = "group")]
    pub group: Option<String>,
    /// Serve TLS on tcp:// hosts (implied by --tlsverify); --tls=false forces plain TCP
    #[arg(long = "tls", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tls: Option<bool>,
    /// Serve TLS and require client certificates signed by --tlscacert
    #[arg(long = "tlsverify", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tlsverify: Option<bool>,
    /// CA whose client certificates are trusted (default $DOCKER_CERT_PATH/ca.pem)
    #[arg(long = "tlscacert")]
    pub tlscacert: Option<PathBuf>,
    /// Server certificate (default $DOCKER_CERT_PATH/cert.pem)
    #[arg(long = "tlscert")]
    pub tlscert: Option<PathBuf>,
    /// Server key (default $DOCKER_CERT_PATH/key.pem)
    #[arg(long = "tlskey")]
    pub tlskey: Option<PathBuf>,
    /// Seconds a stop waits for API requests in flight (default 15; 0 none, -1 without limit)
    #[arg(long = "shutdown-timeout", allow_negative_numbers = true)]
    pub shutdown_timeout: Option<i64>,
    /// Serve Prometheus metrics at http://ADDR/metrics (host:port)
    #[arg(long = "metrics-addr")]
    pub metrics_addr: Option<String>,
    /// Serve the Kubernetes CRI (gRPC) on this unix socket; off when not given
    #[arg(long = "cri-socket")]
    pub cri_socket: Option<PathBuf>,
    /// CNI network configurations for pods (default /etc/cni/net.d)
    #[arg(long = "cni-conf-dir")]
    pub cni_conf_dir: Option<PathBuf>,
    /// CNI plugin executables for pods, a ':'-separated list (default /opt/cni/bin)
    #[arg(long = "cni-bin-dir")]
    pub cni_bin_dir: Option<String>,
    /// Address of the CRI's streaming server for exec, attach and port-forward, IP or IP:PORT
    /// (default 127.0.0.1 on a free port)
    #[arg(long = "cri-streaming-address")]
    pub cri_streaming_address: Option<String>,
    /// Serve the CRI's streams over TLS with this PEM certificate (with --cri-streaming-tlskey)
    #[arg(long = "cri-streaming-tlscert")]
    pub cri_streaming_tlscert: Option<PathBuf>,
    /// The PEM private key of --cri-streaming-tlscert
    #[arg(long = "cri-streaming-tlskey")]
    pub cri_streaming_tlskey: Option<PathBuf>,
    /// Give the default bridge IPv6 (with --fixed-cidr-v6)
    #[arg(long = "ipv6", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub ipv6: Option<bool>,
    /// The default bridge's IPv6 subnet, as fd00:1::/64
    #[arg(long = "fixed-cidr-v6")]
    pub fixed_cidr_v6: Option<String>,
    /// dockerd's flags of keys wharfd does not honour (see `keys::passive_flags`).
    #[arg(skip)]
    pub passive: Vec<crate::keys::FlagValue>,
}

impl Flags {
    /// The command line, with dockerd's flags of keys wharfd does not honour taken out first.
    pub fn from_args(args: Vec<String>) -> Result<Flags, clap::Error> {
        let (rest, passive) = crate::keys::passive_flags(args)
            .map_err(|e| clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("{e}\n")))?;
        let mut flags = Flags::try_parse_from(rest)?;
        flags.passive = passive;
        Ok(flags)
    }
}

/// daemon.json's honoured keys (every other key is checked by `keys::check` and not read).
/// `Serialize` only so the tests can list the fields against the table.
#[derive(Deserialize, Default, Debug)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(rename_all = "kebab-case")]
pub(crate) struct FileConfig {
    data_root: Option<PathBuf>,
    exec_root: Option<PathBuf>,
    hosts: Option<Vec<String>>,
    registry_mirrors: Option<Vec<String>>,
    insecure_registries: Option<Vec<String>>,
    max_concurrent_downloads: Option<usize>,
    max_concurrent_uploads: Option<usize>,
    max_download_attempts: Option<u32>,
    log_level: Option<String>,
    debug: Option<bool>,
    cgroup_parent: Option<String>,
    bridge: Option<String>,
    bip: Option<String>,
    iptables: Option<bool>,
    mtu: Option<i64>,
    icc: Option<bool>,
    ip: Option<String>,
    ip_masq: Option<bool>,
    fixed_cidr: Option<String>,
    default_gateway: Option<String>,
    log_driver: Option<String>,
    /// json-file options every container gets unless it sets its own (`max-size`, `max-file`).
    log_opts: Option<BTreeMap<String, String>>,
    /// `default`, `user`, `user:group` or `uid:gid`: containers' root is that user's range.
    userns_remap: Option<String>,
    default_address_pools: Option<Vec<PoolConfig>>,
    /// A size (`512m`, `16g`): see the flag.
    max_build_context: Option<String>,
    dns: Option<Vec<String>>,
    dns_opts: Option<Vec<String>>,
    dns_search: Option<Vec<String>>,
    default_ulimits: Option<BTreeMap<String, UlimitConfig>>,
    /// A size: `"64M"` as dockerd writes it, or a number of bytes.
    default_shm_size: Option<serde_json::Value>,
    labels: Option<Vec<String>>,
    init: Option<bool>,
    ipv6: Option<bool>,
    fixed_cidr_v6: Option<String>,
    no_new_privileges: Option<bool>,
    seccomp_profile: Option<String>,
    default_cgroupns_mode: Option<String>,
    cpu_rt_period: Option<i64>,
    cpu_rt_runtime: Option<i64>,
    exec_opts: Option<Vec<String>>,
    pidfile: Option<PathBuf>,
    group: Option<String>,
    tls: Option<bool>,
    tlsverify: Option<bool>,
    tlscacert: Option<PathBuf>,
    tlscert: Option<PathBuf>,
    tlskey: Option<PathBuf>,
    /// `{"http-proxy", "https-proxy", "no-proxy"}`, as dockerd 23 reads them.
    proxies: Option<ProxiesFile>,
    metrics_addr: Option<String>,
    /// Seconds, as dockerd's: negative waits without limit.
    shutdown_timeout: Option<serde_json::Value>,
    cri_socket: Option<PathBuf>,
    cni_conf_dir: Option<PathBuf>,
    cni_bin_dir: Option<String>,
    cri_streaming_address: Option<String>,
    cri_streaming_tlscert: Option<PathBuf>,
    cri_streaming_tlskey: Option<PathBuf>,
    /// Other OCI runtimes by name: `{"path": ..., "runtimeArgs": [...]}`.
    runtimes: Option<BTreeMap<String, RuntimeFile>>,
    default_runtime: Option<String>,
}

/// One `runtimes` entry of daemon.json, as dockerd reads it.
#[derive(Deserialize, Default, Debug)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuntimeFile {
    #[serde(default)]
    path: String,
    #[serde(default)]
    runtime_args: Vec<String>,
    /// A containerd shim (`io.containerd.runsc.v1`) with its options: wharf has no containerd.
    runtime_type: Option<String>,
    options: Option<serde_json::Value>,
}

#[derive(Deserialize, Default, Debug)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ProxiesFile {
    http_proxy: Option<String>,
    https_proxy: Option<String>,
    no_proxy: Option<String>,
}

/// One `default-address-pools` entry of daemon.json.
#[derive(Deserialize, Debug)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
struct PoolConfig {
    base: String,
    size: u8,
}

/// One `default-ulimits` entry, as dockerd writes it: `{"Name": "nofile", "Soft": 1024, "Hard": 2048}`.
#[derive(Deserialize, Debug)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct UlimitConfig {
    name: Option<String>,
    soft: i64,
    hard: i64,
}

/// The runtimes of daemon.json and of `--add-runtime name=path` together (dockerd refuses
/// the same name in both); `--default-runtime` over `default-runtime`.
fn runtimes(flags: &Flags, file: &FileConfig) -> anyhow::Result<wharf_engine::Runtimes> {
    let mut all = BTreeMap::new();
    for (name, r) in file.runtimes.iter().flatten() {
        if let Some(t) = &r.runtime_type {
            bail!("runtimes: {name}: runtimeType {t:?}: containerd shims are not supported; give the path of a runc-compatible runtime");
        }
        if r.options.is_some() {
            bail!("runtimes: {name}: options apply to containerd shims, which are not supported");
        }
        if r.path.is_empty() {
            bail!("runtimes: {name}: a runtime needs a path");
        }
        all.insert(name.clone(), wharf_engine::RuntimeSpec { path: r.path.clone(), args: r.runtime_args.clone() });
    }
    for arg in &flags.add_runtime {
        let Some((name, path)) = arg.split_once('=').filter(|(n, p)| !n.is_empty() && !p.is_empty()) else {
            bail!("invalid argument {arg:?} for \"--add-runtime\" flag: invalid runtime argument: {arg}");
        };
        if wharf_engine::BUILTIN_RUNTIMES.contains(&name) {
            bail!("invalid argument {arg:?} for \"--add-runtime\" flag: runtime name '{name}' is reserved");
        }
        if all.contains_key(name) {
            bail!("runtime {name:?} is given both in the configuration file and by --add-runtime");
        }
        all.insert(name.to_string(), wharf_engine::RuntimeSpec { path: path.to_string(), args: Vec::new() });
    }
    let default = flags.default_runtime.clone().or_else(|| file.default_runtime.clone()).unwrap_or_default();
    wharf_engine::Runtimes::new(all, &default).map_err(anyhow::Error::msg)
}

/// How tcp:// hosts are served.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsConfig {
    /// Serve TLS on tcp:// hosts.
    pub enabled: bool,
    /// Require a client certificate signed by `ca`.
    pub verify: bool,
    /// `--tls=false` given: plain TCP on any address, with a loud warning.
    pub forced_plain: bool,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug)]
pub struct DaemonConfig {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub hosts: Vec<String>,
    pub registry_mirrors: Vec<String>,
    pub insecure_registries: Vec<String>,
    pub max_concurrent_downloads: usize,
    pub max_concurrent_uploads: usize,
    pub max_download_attempts: u32,
    pub log_level: String,
    pub cgroup_parent: String,
    pub cgroup_driver: wharf_engine::CgroupDriver,
    pub bridge: String,
    pub bip: Option<String>,
    pub iptables: bool,
    pub log_opts: BTreeMap<String, String>,
    pub userns_remap: Option<String>,
    pub address_pools: Vec<wharf_engine::AddressPool>,
    pub max_build_context: u64,
    pub labels: Vec<String>,
    pub container_defaults: wharf_engine::ContainerDefaults,
    pub pidfile: PathBuf,
    /// The socket's group and whether it was asked for (a missing default `docker` is fine).
    pub group: (String, bool),
    pub tls: TlsConfig,
    /// `host:port` where `/metrics` is served.
    pub metrics_addr: Option<String>,
    /// How long a stop waits for API requests in flight; `None`: until they finish.
    pub shutdown_timeout: Option<std::time::Duration>,
    /// Whether a flag or the file gave shutdown-timeout: a reload keeps the running value of a
    /// key that went from the file, as dockerd.
    pub shutdown_timeout_set: bool,
    /// `runtimes`/`--add-runtime` and `default-runtime`.
    pub runtimes: wharf_engine::Runtimes,
    /// The CRI's socket and CNI dirs; `None` when the CRI is off.
    pub cri: Option<wharf_cri::CriConfig>,
    /// The default bridge's IPv6: `ipv6` and `fixed-cidr-v6`.
    pub ipv6: bool,
    pub fixed_cidr_v6: Option<String>,
    /// `mtu`, `icc`, `ip`, `ip-masq`, `fixed-cidr` and `default-gateway`.
    pub default_bridge: wharf_engine::DefaultBridgeOptions,
    /// One line per accepted-but-not-honoured key, logged at start.
    pub warnings: Vec<String>,
    /// The proxy settings of the flags or the file, each replacing the environment's.
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
}

/// dockerd's reading of shutdown-timeout: 15 s when unset, 0 no wait, negative no limit.
fn shutdown_timeout(seconds: Option<i64>) -> Option<std::time::Duration> {
    match seconds {
        None => Some(std::time::Duration::from_secs(15)),
        Some(s) if s < 0 => None,
        Some(s) => Some(std::time::Duration::from_secs(s.unsigned_abs())),
    }
}

impl DaemonConfig {
    pub fn load(flags: &Flags) -> anyhow::Result<DaemonConfig> {
        let (path, explicit) = match &flags.config_file {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG), false),
        };
        let raw = read_file(&path, explicit)?;
        DaemonConfig::parse(flags, &raw).with_context(|| format!("config file {}", path.display()))
    }

    /// The configuration from `flags` over the daemon.json text `raw` (what fuzz/ drives).
    pub fn parse(flags: &Flags, raw: &[u8]) -> anyhow::Result<DaemonConfig> {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(raw)?;
        let mut warnings = Vec::new();
        let mut refused = Vec::new();
        let passive = flags.passive.iter().map(|(k, v)| (format!("--{k}"), *k, v));
        let keys = map.iter().map(|(k, v)| (k.clone(), k.as_str(), v));
        for (shown, name, value) in keys.chain(passive) {
            match crate::keys::check(name, value) {
                Ok(Some(w)) if !warnings.iter().any(|x: &String| x == w) => warnings.push(w.to_string()),
                Ok(_) => {}
                Err(e) if shown.starts_with("--") => refused.push(format!("flag {shown}: {e}")),
                Err(e) => refused.push(e),
            }
        }
        if !refused.is_empty() {
            bail!("{}", refused.join("; "));
        }
        let honoured: serde_json::Map<_, _> = map
            .into_iter()
            .filter(|(k, _)| crate::keys::find(k).is_some_and(|k| k.support == crate::keys::Support::Honoured))
            .collect();
        let file: FileConfig = serde_json::from_value(serde_json::Value::Object(honoured))?;
        let mut cfg = DaemonConfig::resolve(flags, file)?;
        warnings.append(&mut cfg.warnings);
        cfg.warnings = warnings;
        Ok(cfg)
    }

    fn resolve(flags: &Flags, file: FileConfig) -> anyhow::Result<DaemonConfig> {
        // These borrow the file before the fields below move out of it.
        let container_defaults = container_defaults(flags, &file)?;
        let tls = tls_config(flags, &file)?;
        let runtimes = runtimes(flags, &file)?;
        let default_bridge = default_bridge_options(flags, &file)?;
        let log_level = flags.log_level.clone().or(file.log_level).unwrap_or_else(|| {
            if flags.debug || file.debug == Some(true) {
                "debug".into()
            } else {
                "info".into()
            }
        });
        if !["debug", "info", "warn", "error", "fatal", "trace"].contains(&log_level.as_str()) {
            bail!("invalid log level {log_level:?}: use debug, info, warn, error or fatal");
        }
        let max = flags.max_concurrent_downloads.or(file.max_concurrent_downloads).unwrap_or(3);
        if max == 0 {
            bail!("max-concurrent-downloads must be at least 1");
        }
        let max_up = flags.max_concurrent_uploads.or(file.max_concurrent_uploads).unwrap_or(5);
        if max_up == 0 {
            bail!("max-concurrent-uploads must be at least 1");
        }
        let attempts = flags.max_download_attempts.or(file.max_download_attempts).unwrap_or(5);
        if attempts == 0 {
            bail!("max-download-attempts must be at least 1");
        }
        let mut mirrors = file.registry_mirrors.unwrap_or_default();
        mirrors.extend(flags.registry_mirror.iter().cloned());
        for m in &mirrors {
            if !(m.starts_with("http://") || m.starts_with("https://")) {
                bail!("invalid registry-mirrors entry {m:?}: a mirror must be an http:// or https:// URL");
            }
        }
        let mut insecure = file.insecure_registries.unwrap_or_default();
        insecure.extend(flags.insecure_registry.iter().cloned());
        let bridge = flags.bridge.clone().or(file.bridge).unwrap_or_else(|| "wharf0".into());
        if bridge.is_empty()
            || bridge.len() > 15
            || !bridge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            bail!("invalid bridge name {bridge:?}: up to 15 letters, digits, '-', '_' or '.'");
        }
        let bip = flags.bip.clone().or(file.bip);
        let iptables = flags.iptables.or(file.iptables).unwrap_or(true);
        let ipv6 = flags.ipv6.or(file.ipv6).unwrap_or(false);
        let fixed_cidr_v6 = flags.fixed_cidr_v6.clone().or(file.fixed_cidr_v6).filter(|c| !c.is_empty());
        wharf_engine::NetworkConfig {
            bip: bip.clone(),
            ipv6,
            fixed_cidr_v6: fixed_cidr_v6.clone(),
            default_bridge: default_bridge.clone(),
            ..Default::default()
        }
        .check()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(d) = flags.log_driver.as_deref().or(file.log_driver.as_deref()).filter(|d| *d != "json-file") {
            bail!("log-driver {d:?} is not supported: wharf writes json-file logs only");
        }
        let mut log_opts = file.log_opts.unwrap_or_default();
        for o in &flags.log_opt {
            match o.split_once('=') {
                Some((k, v)) => log_opts.insert(k.to_string(), v.to_string()),
                None => bail!("--log-opt {o:?}: expected key=value"),
            };
        }
        wharf_engine::validate_log_opts(&log_opts).map_err(|e| anyhow::anyhow!("log-opts: {e}"))?;
        // As dockerd: pools given as flags replace those of the file.
        let pools = if flags.default_address_pool.is_empty() {
            file.default_address_pools.unwrap_or_default()
        } else {
            flags.default_address_pool.iter().map(|p| parse_pool_flag(p)).collect::<anyhow::Result<_>>()?
        };
        let address_pools = pools
            .iter()
            .map(|p| wharf_engine::AddressPool::new(&p.base, p.size))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("default-address-pools: {e}"))?;
        let max_build_context = match flags.max_build_context.clone().or(file.max_build_context) {
            None => 16 << 30,
            Some(s) => match wharf_engine::parse_log_size(&s) {
                Some(n) if n > 0 => n,
                _ => bail!("invalid max-build-context {s:?}: a size such as 512m or 16g"),
            },
        };
        // As dockerd: hosts from both places is an error, not one silently winning (a unit's
        // `-H fd://` would otherwise hide daemon.json's tcp:// host).
        if !flags.host.is_empty() && file.hosts.as_ref().is_some_and(|h| !h.is_empty()) {
            bail!(
                "hosts are given both as -H flags and in the configuration file ({:?}): give them in one place \
                 (with wharfd.service, override its ExecStart)",
                file.hosts.unwrap_or_default()
            );
        }
        let file_shutdown_timeout = match &file.shutdown_timeout {
            None => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| {
                anyhow::anyhow!("invalid shutdown-timeout {v}: a whole number of seconds (-1: no limit)")
            })?),
        };
        let hosts = if flags.host.is_empty() { file.hosts.unwrap_or_default() } else { flags.host.clone() };
        let proxies = file.proxies.unwrap_or_default();
        let http_proxy = flags.http_proxy.clone().or(proxies.http_proxy);
        let https_proxy = flags.https_proxy.clone().or(proxies.https_proxy);
        let no_proxy = flags.no_proxy.clone().or(proxies.no_proxy);
        // Checked here so that a typo stops the daemon instead of sending traffic direct.
        wharf_engine::ProxyConfig::parse(
            http_proxy.as_deref().unwrap_or(""),
            https_proxy.as_deref().unwrap_or(""),
            no_proxy.as_deref().unwrap_or(""),
        )
        .map_err(|e| anyhow::anyhow!("proxies: {e}"))?;
        let exec_root = flags.exec_root.clone().or(file.exec_root).unwrap_or_else(|| "/run/wharf".into());
        let labels = if flags.label.is_empty() { file.labels.unwrap_or_default() } else { flags.label.clone() };
        for l in &labels {
            if l.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
                bail!("invalid label {l:?}: expected key=value");
            }
        }
        let exec_opts =
            if flags.exec_opt.is_empty() { file.exec_opts.unwrap_or_default() } else { flags.exec_opt.clone() };
        let mut warnings = Vec::new();
        let mut cgroup_driver = None;
        for o in &exec_opts {
            match o.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                Some(("native.cgroupdriver", "cgroupfs")) => cgroup_driver = Some(CgroupDriver::Cgroupfs),
                Some(("native.cgroupdriver", "systemd")) if wharf_runtime::systemd::runs() => {
                    cgroup_driver = Some(CgroupDriver::Systemd)
                }
                Some(("native.cgroupdriver", "systemd")) => {
                    warnings.push(format!(
                        "exec-opts {o}: systemd does not run on this host, so containers' cgroups are managed \
                         directly (cgroupfs), as with native.cgroupdriver=cgroupfs"
                    ));
                    cgroup_driver = Some(CgroupDriver::Cgroupfs);
                }
                _ => bail!("exec-opts {o:?} is not supported: wharf knows native.cgroupdriver=cgroupfs and systemd"),
            }
        }
        // As dockerd: systemd's driver by default where systemd runs on a pure cgroup v2 host.
        let cgroup_driver = cgroup_driver.unwrap_or(
            if wharf_runtime::systemd::runs()
                && wharf_runtime::cgroups::Layout::detect() == wharf_runtime::cgroups::Layout::V2
            {
                CgroupDriver::Systemd
            } else {
                CgroupDriver::Cgroupfs
            },
        );
        let cgroup_parent = flags.cgroup_parent.clone().or(file.cgroup_parent);
        let cgroup_parent = match cgroup_driver {
            CgroupDriver::Cgroupfs => {
                let parent = cgroup_parent.unwrap_or_else(|| "/wharf".into());
                if !parent.starts_with('/') || parent.split('/').any(|c| c == "..") {
                    bail!("cgroup-parent {parent:?} must be an absolute cgroup path without '..'");
                }
                parent
            }
            CgroupDriver::Systemd => {
                let parent = cgroup_parent.unwrap_or_else(|| "system.slice".into());
                if let Err(e) = wharf_runtime::systemd::expand_slice(&parent) {
                    bail!("{e}");
                }
                parent
            }
        };
        Ok(DaemonConfig {
            data_root: flags.data_root.clone().or(file.data_root).unwrap_or_else(|| "/var/lib/wharf".into()),
            pidfile: flags.pidfile.clone().or(file.pidfile).unwrap_or_else(|| exec_root.join("wharfd.pid")),
            exec_root,
            hosts: if hosts.is_empty() { vec![DEFAULT_HOST.to_string()] } else { hosts },
            registry_mirrors: mirrors,
            insecure_registries: insecure,
            max_concurrent_downloads: max,
            max_concurrent_uploads: max_up,
            max_download_attempts: attempts,
            log_level,
            cgroup_parent,
            cgroup_driver,
            bridge,
            bip,
            iptables,
            log_opts,
            userns_remap: flags.userns_remap.clone().or(file.userns_remap).filter(|s| !s.is_empty()),
            address_pools,
            max_build_context,
            labels,
            container_defaults,
            group: match flags.group.clone().or(file.group) {
                Some(g) => (g, true),
                None => ("docker".to_string(), false),
            },
            tls,
            metrics_addr: flags.metrics_addr.clone().or(file.metrics_addr).filter(|a| !a.is_empty()),
            shutdown_timeout: shutdown_timeout(flags.shutdown_timeout.or(file_shutdown_timeout)),
            shutdown_timeout_set: flags.shutdown_timeout.is_some() || file_shutdown_timeout.is_some(),
            runtimes,
            cri: cri_config(
                flags.cri_socket.clone().or(file.cri_socket),
                flags.cni_conf_dir.clone().or(file.cni_conf_dir),
                flags.cni_bin_dir.clone().or(file.cni_bin_dir),
                flags.cri_streaming_address.clone().or(file.cri_streaming_address),
                (
                    flags.cri_streaming_tlscert.clone().or(file.cri_streaming_tlscert),
                    flags.cri_streaming_tlskey.clone().or(file.cri_streaming_tlskey),
                ),
            )?,
            ipv6,
            fixed_cidr_v6,
            default_bridge,
            warnings,
            http_proxy,
            https_proxy,
            no_proxy,
        })
    }
}
/// dockerd's settings of the default bridge, each flag replacing the file's key.
fn default_bridge_options(flags: &Flags, file: &FileConfig) -> anyhow::Result<wharf_engine::DefaultBridgeOptions> {
    let mtu = match flags.mtu.or(file.mtu) {
        None | Some(0) => None,
        Some(m) => match u32::try_from(m) {
            Ok(m) => Some(m),
            Err(_) => bail!("invalid mtu {m}: it must be from 68 to 65535 (0 for the default, 1500)"),
        },
    };
    let host_ip = match flags.ip.clone().or(file.ip.clone()).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match s.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) => Some(a).filter(|a| !a.is_unspecified()),
            Ok(std::net::IpAddr::V6(_)) => {
                bail!("ip {s:?} is not supported: wharf binds ports published on the default bridge to an IPv4 address")
            }
            Err(_) => bail!("invalid ip {s:?}: an IPv4 address, as 127.0.0.1"),
        },
    };
    let fixed_cidr = match flags.fixed_cidr.clone().or(file.fixed_cidr.clone()).filter(|s| !s.is_empty()) {
        None => None,
        Some(c) => Some(
            c.parse::<wharf_engine::Ipv4Net>()
                .map_err(|_| anyhow::anyhow!("invalid fixed-cidr {c:?}: an IPv4 subnet, as 172.17.1.0/24"))?
                .network(),
        ),
    };
    let default_gateway = match flags.default_gateway.clone().or(file.default_gateway.clone()).filter(|s| !s.is_empty())
    {
        None => None,
        Some(g) => Some(
            g.parse::<std::net::Ipv4Addr>()
                .map_err(|_| anyhow::anyhow!("invalid default-gateway {g:?}: an IPv4 address"))?,
        ),
    };
    Ok(wharf_engine::DefaultBridgeOptions {
        mtu,
        icc: flags.icc.or(file.icc).unwrap_or(true),
        host_ip,
        masquerade: flags.ip_masq.or(file.ip_masq).unwrap_or(true),
        fixed_cidr,
        default_gateway,
    })
}

/// dns, ulimits, shm size, init, no-new-privileges, seccomp and cgroupns for containers that
/// set none; flags replace the file's lists, as dockerd's do.
fn container_defaults(flags: &Flags, file: &FileConfig) -> anyhow::Result<wharf_engine::ContainerDefaults> {
    let list = |flag: &Vec<String>, key: &Option<Vec<String>>| {
        if flag.is_empty() {
            key.clone().unwrap_or_default()
        } else {
            flag.clone()
        }
    };
    let dns = list(&flags.dns, &file.dns);
    for d in &dns {
        if d.parse::<std::net::IpAddr>().is_err() {
            bail!("invalid dns {d:?}: a name server's IP address");
        }
    }
    let mut ulimits = Vec::new();
    if flags.default_ulimit.is_empty() {
        for (name, u) in file.default_ulimits.iter().flatten() {
            if u.name.as_deref().is_some_and(|n| n != name) {
                bail!("default-ulimits {name:?}: its Name says {:?}", u.name.as_deref().unwrap_or_default());
            }
            ulimits.push(check_ulimit(name, u.soft, u.hard)?);
        }
    } else {
        for f in &flags.default_ulimit {
            ulimits.push(parse_ulimit_flag(f)?);
        }
    }
    let shm_size = match (&flags.default_shm_size, &file.default_shm_size) {
        (Some(s), _) => parse_size(s, "default-shm-size")?,
        (None, Some(serde_json::Value::String(s))) => parse_size(s, "default-shm-size")?,
        (None, Some(serde_json::Value::Number(n))) => match n.as_i64() {
            Some(n) if n > 0 => n,
            _ => bail!("invalid default-shm-size {n}: a size in bytes greater than 0"),
        },
        (None, Some(serde_json::Value::Null) | None) => 0,
        (None, Some(other)) => bail!("invalid default-shm-size {other}: a size such as \"64M\""),
    };
    let seccomp_profile = match flags.seccomp_profile.clone().or(file.seccomp_profile.clone()).as_deref() {
        None | Some("" | "builtin") => None,
        Some("unconfined") => Some("unconfined".to_string()),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("seccomp-profile {path}"))?;
            wharf_engine::check_seccomp_profile(&text).map_err(|e| anyhow::anyhow!("seccomp-profile {path}: {e}"))?;
            Some(text)
        }
    };
    let cgroupns_mode = flags.default_cgroupns_mode.clone().or(file.default_cgroupns_mode.clone()).unwrap_or_default();
    if !["", "host", "private"].contains(&cgroupns_mode.as_str()) {
        bail!("invalid default-cgroupns-mode {cgroupns_mode:?}: host or private");
    }
    Ok(wharf_engine::ContainerDefaults {
        dns,
        dns_search: list(&flags.dns_search, &file.dns_search),
        dns_options: list(&flags.dns_opt, &file.dns_opts),
        ulimits,
        shm_size,
        init: flags.init.or(file.init).unwrap_or(false),
        no_new_privileges: flags.no_new_privileges.or(file.no_new_privileges).unwrap_or(false),
        seccomp_profile,
        cgroupns_mode,
        cpu_rt_period: flags.cpu_rt_period.or(file.cpu_rt_period).unwrap_or(0),
        cpu_rt_runtime: flags.cpu_rt_runtime.or(file.cpu_rt_runtime).unwrap_or(0),
    })
}

fn check_ulimit(name: &str, soft: i64, hard: i64) -> anyhow::Result<wharf_engine::Ulimit> {
    const NAMES: &[&str] = &[
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
        "as",
    ];
    if !NAMES.contains(&name) {
        bail!("invalid ulimit {name:?}: not a resource limit's name");
    }
    if soft > hard && hard >= 0 {
        bail!("invalid ulimit {name}: soft limit {soft} is greater than hard limit {hard}");
    }
    Ok(wharf_engine::Ulimit { name: name.to_string(), soft, hard })
}

/// `--default-ulimit nofile=1024:2048` (or `nofile=1024` for both).
fn parse_ulimit_flag(s: &str) -> anyhow::Result<wharf_engine::Ulimit> {
    let Some((name, limits)) = s.split_once('=') else {
        bail!("invalid --default-ulimit {s:?}: expected name=soft[:hard]")
    };
    let num =
        |v: &str| v.parse::<i64>().with_context(|| format!("invalid --default-ulimit {s:?}: {v:?} is not a number"));
    let (soft, hard) = match limits.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(limits)?, num(limits)?),
    };
    check_ulimit(name, soft, hard)
}

/// A size as dockerd reads one: `64m`, `64M`, `64MB`, `1g`, `65536` (bytes).
fn parse_size(s: &str, what: &str) -> anyhow::Result<i64> {
    match wharf_engine::parse_log_size(s.trim_end_matches(['b', 'B'])).and_then(|n| i64::try_from(n).ok()) {
        Some(n) if n > 0 => Ok(n),
        _ => bail!("invalid {what} {s:?}: a size such as 64m or 1g"),
    }
}

/// dockerd's TLS settings: `--tlsverify` implies `--tls`; files default to
/// `$DOCKER_CERT_PATH` (else `~/.docker`) `/ca.pem`, `/cert.pem`, `/key.pem`.
fn tls_config(flags: &Flags, file: &FileConfig) -> anyhow::Result<TlsConfig> {
    let verify = flags.tlsverify.or(file.tlsverify).unwrap_or(false);
    let tls_flag = flags.tls.or(file.tls);
    if verify && tls_flag == Some(false) {
        bail!("tls=false and tlsverify=true contradict each other: tlsverify serves TLS");
    }
    let dir = std::env::var_os("DOCKER_CERT_PATH")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
        .unwrap_or_else(|| PathBuf::from("/root/.docker"));
    let pick = |flag: &Option<PathBuf>, key: &Option<PathBuf>, name: &str| {
        flag.clone().or_else(|| key.clone()).unwrap_or_else(|| dir.join(name))
    };
    Ok(TlsConfig {
        enabled: verify || tls_flag == Some(true),
        verify,
        forced_plain: tls_flag == Some(false),
        ca: pick(&flags.tlscacert, &file.tlscacert, "ca.pem"),
        cert: pick(&flags.tlscert, &file.tlscert, "cert.pem"),
        key: pick(&flags.tlskey, &file.tlskey, "key.pem"),
    })
}

/// `--default-address-pool base=10.10.0.0/16,size=24`.
fn parse_pool_flag(s: &str) -> anyhow::Result<PoolConfig> {
    let (mut base, mut size) = (None, None);
    for field in s.split(',') {
        match field.split_once('=') {
            Some(("base", v)) => base = Some(v.to_string()),
            Some(("size", v)) => {
                size = Some(v.parse::<u8>().with_context(|| format!("default-address-pool {s:?}: size {v:?}"))?)
            }
            _ => bail!("default-address-pool {s:?}: expected base=<subnet>,size=<prefix length>"),
        }
    }
    match (base, size) {
        (Some(base), Some(size)) => Ok(PoolConfig { base, size }),
        _ => bail!("default-address-pool {s:?}: both base and size are needed"),
    }
}

/// Reads daemon.json. A missing default file is an empty configuration; a missing explicit one
/// is an error.
/// Whether systemd is the host's init (what `sd_booted()` checks).
fn read_file(path: &Path, explicit: bool) -> anyhow::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(r) => Ok(r),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(b"{}".to_vec()),
        Err(e) => Err(e).with_context(|| format!("read config file {}", path.display())),
    }
}

/// `cri-socket`, `cni-conf-dir`, `cni-bin-dir`, `cri-streaming-address` and the streaming
/// server's `cri-streaming-tlscert`/`-tlskey`: the CRI runs only with a socket; the other
/// settings without one are refused, since nothing would read them.
fn cri_config(
    socket: Option<PathBuf>,
    conf_dir: Option<PathBuf>,
    bin_dir: Option<String>,
    streaming: Option<String>,
    streaming_tls: (Option<PathBuf>, Option<PathBuf>),
) -> anyhow::Result<Option<wharf_cri::CriConfig>> {
    let socket = socket.filter(|s| !s.as_os_str().is_empty());
    let streaming = streaming.filter(|s| !s.is_empty());
    let nonempty = |p: Option<PathBuf>| p.filter(|p| !p.as_os_str().is_empty());
    let streaming_tls = match (nonempty(streaming_tls.0), nonempty(streaming_tls.1)) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => bail!("cri-streaming-tlscert and cri-streaming-tlskey go together: give both or neither"),
    };
    let Some(socket) = socket else {
        if conf_dir.is_some() || bin_dir.is_some() {
            bail!("cni-conf-dir and cni-bin-dir need cri-socket: the CNI settings are the CRI's");
        }
        if streaming.is_some() || streaming_tls.is_some() {
            bail!("cri-streaming-address and cri-streaming-tls* need cri-socket: the streaming server is the CRI's");
        }
        return Ok(None);
    };
    if !socket.is_absolute() {
        bail!("cri-socket {} is not an absolute path", socket.display());
    }
    let mut c = wharf_cri::CriConfig::new(socket);
    if let Some(d) = conf_dir {
        if !d.is_absolute() {
            bail!("cni-conf-dir {} is not an absolute path", d.display());
        }
        c.cni_conf_dir = d;
    }
    if let Some(b) = bin_dir {
        let dirs: Vec<PathBuf> = b.split(':').filter(|d| !d.is_empty()).map(PathBuf::from).collect();
        if dirs.is_empty() || dirs.iter().any(|d| !d.is_absolute()) {
            bail!("cni-bin-dir {b:?} must be absolute paths separated by ':'");
        }
        c.cni_bin_dirs = dirs;
    }
    if let Some(a) = streaming {
        c.streaming_addr = streaming_address(&a)?;
    }
    c.streaming_tls = streaming_tls;
    Ok(Some(c))
}

/// `IP:PORT`, `[IPv6]:PORT`, or an IP alone (the kernel picks the port).
fn streaming_address(a: &str) -> anyhow::Result<std::net::SocketAddr> {
    if let Ok(sa) = a.parse::<std::net::SocketAddr>() {
        return Ok(sa);
    }
    let ip = a.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(a);
    match ip.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(std::net::SocketAddr::new(ip, 0)),
        Err(_) => bail!("cri-streaming-address {a:?} is not an IP address or IP:PORT"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cri_config` without the streaming server's TLS pair.
    fn cri4(
        socket: Option<PathBuf>,
        conf_dir: Option<PathBuf>,
        bin_dir: Option<String>,
        streaming: Option<String>,
    ) -> anyhow::Result<Option<wharf_cri::CriConfig>> {
        cri_config(socket, conf_dir, bin_dir, streaming, (None, None))
    }

    #[test]
    fn cri_streaming_tls_takes_a_cert_and_a_key() {
        let pair = |c: Option<&str>, k: Option<&str>| (c.map(PathBuf::from), k.map(PathBuf::from));
        let c = cri_config(Some("/c.sock".into()), None, None, None, pair(Some("/t/cert.pem"), Some("/t/key.pem")));
        assert_eq!(c.unwrap().unwrap().streaming_tls, Some(("/t/cert.pem".into(), "/t/key.pem".into())));
        let e = cri_config(Some("/c.sock".into()), None, None, None, pair(Some("/t/cert.pem"), None)).unwrap_err();
        assert!(e.to_string().contains("go together"), "{e}");
        let e = cri_config(None, None, None, None, pair(Some("/c"), Some("/k"))).unwrap_err();
        assert!(e.to_string().contains("need cri-socket"), "{e}");
    }

    #[test]
    fn proxies_from_file_and_flags() {
        let raw = br#"{"proxies": {"http-proxy": "http://p:3128", "no-proxy": "corp.example"}}"#;
        let cfg = DaemonConfig::parse(&Flags::parse_from(["wharfd"]), raw).unwrap();
        assert_eq!(cfg.http_proxy.as_deref(), Some("http://p:3128"));
        assert_eq!((cfg.https_proxy, cfg.no_proxy.as_deref()), (None, Some("corp.example")));
        let flags = Flags::parse_from(["wharfd", "--https-proxy", "http://q:8080"]);
        assert_eq!(DaemonConfig::parse(&flags, raw).unwrap().https_proxy.as_deref(), Some("http://q:8080"));
        let e = DaemonConfig::parse(&Flags::parse_from(["wharfd"]), br#"{"proxies": {"http-proxy": "socks5://p:1"}}"#)
            .unwrap_err();
        assert!(format!("{e:#}").contains("only http:// proxies"), "{e:#}");
        let e = DaemonConfig::parse(&Flags::parse_from(["wharfd"]), br#"{"proxies": {"ftp-proxy": "x"}}"#).unwrap_err();
        assert!(format!("{e:#}").contains("ftp-proxy"), "{e:#}");
    }

    #[test]
    fn shutdown_timeout_from_file_and_flag() {
        use std::time::Duration;
        let none = Flags::parse_from(["wharfd"]);
        let t = |flags: &Flags, raw: &[u8]| DaemonConfig::parse(flags, raw).map(|c| c.shutdown_timeout);
        assert_eq!(t(&none, b"{}").unwrap(), Some(Duration::from_secs(15)));
        assert_eq!(t(&none, br#"{"shutdown-timeout": 30}"#).unwrap(), Some(Duration::from_secs(30)));
        assert_eq!(t(&none, br#"{"shutdown-timeout": 0}"#).unwrap(), Some(Duration::ZERO));
        assert_eq!(t(&none, br#"{"shutdown-timeout": -1}"#).unwrap(), None);
        let flag = Flags::from_args(["wharfd", "--shutdown-timeout", "3"].map(String::from).to_vec()).unwrap();
        assert_eq!(t(&flag, br#"{"shutdown-timeout": 30}"#).unwrap(), Some(Duration::from_secs(3)));
        let flag = Flags::from_args(["wharfd", "--shutdown-timeout", "-1"].map(String::from).to_vec()).unwrap();
        assert_eq!(t(&flag, b"{}").unwrap(), None);
        for bad in [&br#"{"shutdown-timeout": "10s"}"#[..], br#"{"shutdown-timeout": 1.5}"#] {
            let e = t(&none, bad).unwrap_err();
            assert!(format!("{e:#}").contains("shutdown"), "{e:#}");
        }
        let e = Flags::from_args(["wharfd", "--shutdown-timeout", "ten"].map(String::from).to_vec()).unwrap_err();
        assert!(e.to_string().contains("--shutdown-timeout"), "{e}");
    }

    #[test]
    fn the_honoured_keys_are_the_fields_read() {
        let fields = serde_json::to_value(FileConfig::default()).unwrap();
        let mut fields: Vec<String> = fields.as_object().unwrap().keys().cloned().collect();
        let mut honoured: Vec<String> = crate::keys::KEYS
            .iter()
            .filter(|k| k.support == crate::keys::Support::Honoured)
            .map(|k| k.name.to_string())
            .collect();
        fields.sort();
        honoured.sort();
        assert_eq!(fields, honoured);
    }

    #[test]
    fn passive_flags_are_not_clap_flags() {
        use clap::CommandFactory;
        let cmd = Flags::command();
        for k in crate::keys::KEYS {
            if let Some((f, _)) = k.flag {
                assert!(cmd.get_arguments().all(|a| a.get_long() != Some(f)), "--{f} is both");
            }
        }
    }

    #[test]
    fn warned_keys_warn_once_and_refused_ones_are_all_named() {
        let flags = Flags::from_args(["wharfd", "--live-restore", "--userland-proxy=false"].map(String::from).to_vec())
            .unwrap();
        let raw = br#"{"live-restore": true, "storage-driver": "overlay2", "features": {"buildkit": true},
                      "ipv6": true, "fixed-cidr-v6": "fd00::/80", "ip6tables": false, "bip6": "fd00:1::1/64",
                      "icc": true, "dns": ["192.0.2.1"]}"#;
        let cfg = DaemonConfig::parse(&flags, raw).unwrap();
        assert_eq!(cfg.warnings.iter().filter(|w| w.contains("live-restore")).count(), 1);
        assert_eq!(cfg.warnings.iter().filter(|w| w.contains("IPv6")).count(), 1);
        assert!(cfg.ipv6 && cfg.fixed_cidr_v6.as_deref() == Some("fd00::/80"));
        assert!(DaemonConfig::parse(&Flags::parse_from(["wharfd"]), br#"{"fixed-cidr-v6": "fd00::/300"}"#).is_err());
        assert!(cfg.warnings.iter().any(|w| w.contains("storage-driver")));
        assert!(cfg.warnings.iter().any(|w| w.contains("userland-proxy")));
        assert_eq!(cfg.container_defaults.dns, vec!["192.0.2.1".to_string()]);
        let e = DaemonConfig::parse(&flags, br#"{"ip-forward": false, "graph": "/x", "selinux-enabled": false}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"ip-forward\"") && e.contains("\"graph\"") && !e.contains("selinux"), "{e}");
        let flags = Flags::from_args(["wharfd", "--storage-driver", "zfs"].map(String::from).to_vec()).unwrap();
        let e = DaemonConfig::parse(&flags, b"{}").unwrap_err().to_string();
        assert!(e.contains("--storage-driver") && e.contains("zfs"), "{e}");
    }

    #[test]
    fn default_bridge_settings_from_file_and_flags() {
        let flags = Flags::from_args(["wharfd", "--icc=false", "--mtu", "1400"].map(String::from).to_vec()).unwrap();
        let raw = br#"{"icc": true, "mtu": 9000, "ip": "127.0.0.1", "ip-masq": false, "bip": "10.66.0.1/24",
                      "fixed-cidr": "10.66.0.128/25", "default-gateway": "10.66.0.254"}"#;
        let b = DaemonConfig::parse(&flags, raw).unwrap().default_bridge;
        let want = wharf_engine::DefaultBridgeOptions {
            mtu: Some(1400),
            icc: false,
            host_ip: Some(std::net::Ipv4Addr::new(127, 0, 0, 1)),
            masquerade: false,
            fixed_cidr: Some("10.66.0.128/25".parse().unwrap()),
            default_gateway: Some(std::net::Ipv4Addr::new(10, 66, 0, 254)),
        };
        assert_eq!(b, want);
        let none = Flags::parse_from(["wharfd"]);
        let d = DaemonConfig::parse(&none, br#"{"mtu": 0, "ip": "0.0.0.0"}"#).unwrap().default_bridge;
        assert_eq!(d, wharf_engine::DefaultBridgeOptions::default());
        for (bad, says) in [
            (&br#"{"mtu": 40}"#[..], "mtu 40"),
            (br#"{"mtu": -1}"#, "mtu -1"),
            (br#"{"ip": "localhost"}"#, "ip"),
            (br#"{"fixed-cidr": "10.1.0.0"}"#, "fixed-cidr"),
            (br#"{"bip": "10.66.0.1/24", "fixed-cidr": "10.67.0.0/24"}"#, "not inside"),
            (br#"{"bip": "10.66.0.1/24", "default-gateway": "10.67.0.1"}"#, "DefaultGatewayIPv4:10.67.0.1"),
        ] {
            let e = DaemonConfig::parse(&none, bad).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn container_defaults_from_file_and_flags() {
        let flags = Flags::parse_from(["wharfd"]);
        let raw = br#"{"dns": ["192.0.2.1"], "dns-search": ["a.test"], "dns-opts": ["ndots:2"],
            "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048}},
            "default-shm-size": "128M", "init": true, "no-new-privileges": true,
            "default-cgroupns-mode": "private", "labels": ["site=x"],
            "max-concurrent-uploads": 2, "max-download-attempts": 3}"#;
        let cfg = DaemonConfig::parse(&flags, raw).unwrap();
        let d = &cfg.container_defaults;
        assert_eq!(d.dns_search, vec!["a.test".to_string()]);
        assert_eq!(d.dns_options, vec!["ndots:2".to_string()]);
        assert_eq!(d.ulimits, vec![wharf_engine::Ulimit { name: "nofile".into(), soft: 1024, hard: 2048 }]);
        assert_eq!(d.shm_size, 128 << 20);
        assert!(d.init && d.no_new_privileges);
        assert_eq!(d.cgroupns_mode, "private");
        assert_eq!(cfg.labels, vec!["site=x".to_string()]);
        assert_eq!((cfg.max_concurrent_uploads, cfg.max_download_attempts), (2, 3));
        let flags =
            Flags::parse_from(["wharfd", "--dns", "192.0.2.9", "--default-ulimit", "nproc=10:20", "--init=false"]);
        let cfg = DaemonConfig::parse(&flags, raw).unwrap();
        assert_eq!(cfg.container_defaults.dns, vec!["192.0.2.9".to_string()]);
        assert_eq!(cfg.container_defaults.ulimits[0].name, "nproc");
        assert!(!cfg.container_defaults.init);
        for bad in [
            r#"{"dns": ["not-an-ip"]}"#,
            r#"{"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 10, "Hard": 5}}}"#,
            r#"{"default-ulimits": {"bogus": {"Soft": 1, "Hard": 1}}}"#,
            r#"{"default-shm-size": "lots"}"#,
            r#"{"default-cgroupns-mode": "shared"}"#,
            r#"{"labels": ["novalue"]}"#,
            r#"{"max-download-attempts": 0}"#,
            r#"{"seccomp-profile": "/nonexistent/profile.json"}"#,
        ] {
            assert!(DaemonConfig::parse(&Flags::parse_from(["wharfd"]), bad.as_bytes()).is_err(), "{bad}");
        }
        let cfg =
            DaemonConfig::parse(&Flags::parse_from(["wharfd"]), br#"{"exec-opts": ["native.cgroupdriver=cgroupfs"]}"#);
        assert!(cfg.is_ok());
        // systemd's driver: where systemd runs, with system.slice for the parent; else cgroupfs
        // with a warning.
        let cfg =
            DaemonConfig::parse(&Flags::parse_from(["wharfd"]), br#"{"exec-opts": ["native.cgroupdriver=systemd"]}"#);
        if wharf_runtime::systemd::runs() {
            let cfg = cfg.unwrap();
            assert_eq!((cfg.cgroup_driver, cfg.cgroup_parent.as_str()), (CgroupDriver::Systemd, "system.slice"));
            let bad = DaemonConfig::parse(
                &Flags::parse_from(["wharfd", "--cgroup-parent", "/wharf"]),
                br#"{"exec-opts": ["native.cgroupdriver=systemd"]}"#,
            );
            assert!(bad.is_err_and(|e| format!("{e:#}").contains("valid slice named as")));
        } else {
            let cfg = cfg.unwrap();
            assert!(cfg.warnings.iter().any(|w| w.contains("managed directly (cgroupfs)")), "{:?}", cfg.warnings);
            assert_eq!((cfg.cgroup_driver, cfg.cgroup_parent.as_str()), (CgroupDriver::Cgroupfs, "/wharf"));
        }
        assert!(DaemonConfig::parse(
            &Flags::parse_from(["wharfd"]),
            br#"{"exec-opts": ["native.cgroupdriver=other"]}"#
        )
        .is_err());
    }

    #[test]
    fn hosts_from_flags_and_file_conflict_as_in_dockerd() {
        let raw = br#"{"hosts": ["tcp://127.0.0.1:2376"]}"#;
        let e = DaemonConfig::parse(&Flags::parse_from(["wharfd", "-H", "fd://"]), raw).unwrap_err();
        assert!(e.to_string().contains("both"), "{e}");
        let cfg = DaemonConfig::parse(&Flags::parse_from(["wharfd"]), raw).unwrap();
        assert_eq!(cfg.hosts, vec!["tcp://127.0.0.1:2376".to_string()]);
    }

    #[test]
    fn tls_settings_as_dockerd() {
        let cfg = DaemonConfig::parse(&Flags::parse_from(["wharfd", "--tlsverify", "--tlscacert", "/c/ca.pem"]), b"{}")
            .unwrap();
        assert!(cfg.tls.enabled && cfg.tls.verify && !cfg.tls.forced_plain);
        assert_eq!(cfg.tls.ca, PathBuf::from("/c/ca.pem"));
        let cfg = DaemonConfig::parse(&Flags::parse_from(["wharfd", "--tls=false"]), b"{}").unwrap();
        assert!(!cfg.tls.enabled && cfg.tls.forced_plain);
        let cfg =
            DaemonConfig::parse(&Flags::parse_from(["wharfd"]), br#"{"tls": true, "tlscert": "/s/c.pem"}"#).unwrap();
        assert!(cfg.tls.enabled && !cfg.tls.verify);
        assert_eq!(cfg.tls.cert, PathBuf::from("/s/c.pem"));
        assert!(DaemonConfig::parse(&Flags::parse_from(["wharfd"]), br#"{"tls": false, "tlsverify": true}"#).is_err());
    }

    #[test]
    fn unknown_keys_are_named() {
        let flags = Flags::parse_from(["wharfd"]);
        let e = DaemonConfig::parse(&flags, br#"{"data-root": "/x", "bogus-key": 1}"#).unwrap_err();
        assert!(e.to_string().contains("bogus-key"), "{e}");
        let e = DaemonConfig::parse(&flags, br#"{"max-concurrent-downloads": "three"}"#).unwrap_err();
        assert!(e.to_string().contains("invalid type"), "{e}");
        let e = DaemonConfig::parse(&flags, br#"{"bridge": "a;b"}"#).unwrap_err();
        assert!(e.to_string().contains("invalid bridge name"), "{e}");
    }

    #[test]
    fn log_opts_are_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("wharfd-logopts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("daemon.json");
        let flags = |p: &Path| Flags::parse_from(["wharfd", "--config-file", p.to_str().unwrap()]);
        std::fs::write(&path, r#"{"log-driver": "json-file", "log-opts": {"max-size": "10k", "max-file": "3"}}"#)
            .unwrap();
        let cfg = DaemonConfig::load(&flags(&path)).unwrap();
        assert_eq!(cfg.log_opts.get("max-size").map(String::as_str), Some("10k"));
        std::fs::write(&path, r#"{"log-opts": {"max-size": "huge"}}"#).unwrap();
        let e = DaemonConfig::load(&flags(&path)).unwrap_err();
        assert!(format!("{e:#}").contains("max-size"), "{e:#}");
        std::fs::write(&path, r#"{"log-driver": "syslog"}"#).unwrap();
        assert!(DaemonConfig::load(&flags(&path)).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn runtimes_from_file_and_flags() {
        let parse = |args: &[&str], json: &str| {
            let flags = Flags::parse_from(std::iter::once("wharfd").chain(args.iter().copied()));
            DaemonConfig::parse(&flags, json.as_bytes()).map_err(|e| format!("{e:#}"))
        };
        let json = r#"{"runtimes": {"myrunc": {"path": "/usr/sbin/runc", "runtimeArgs": ["--debug"]}},
                       "default-runtime": "myrunc"}"#;
        let cfg = parse(&["--add-runtime", "other=/usr/bin/crun"], json).unwrap();
        assert_eq!(cfg.runtimes.default_name(), "myrunc");
        let rt = cfg.runtimes.oci("myrunc").unwrap().unwrap();
        assert_eq!((rt.path.as_str(), rt.args.as_slice()), ("/usr/sbin/runc", &["--debug".to_string()][..]));
        assert_eq!(cfg.runtimes.oci("other").unwrap().unwrap().path, "/usr/bin/crun");
        // The flag wins over the file for the default; none given is wharf's own, `runc`.
        assert_eq!(parse(&["--default-runtime", "wharf"], json).unwrap().runtimes.default_name(), "wharf");
        assert_eq!(parse(&[], "{}").unwrap().runtimes.default_name(), "runc");
        for (args, json, want) in [
            (&["--add-runtime", "runc=/x"][..], "{}", "runtime name 'runc' is reserved"),
            (&["--add-runtime", "x"][..], "{}", "invalid runtime argument: x"),
            (&["--add-runtime", "myrunc=/x"][..], json, "both in the configuration file and by --add-runtime"),
            (&[][..], r#"{"default-runtime": "nosuch"}"#, "specified default runtime 'nosuch' does not exist"),
            (
                &[][..],
                r#"{"runtimes": {"x": {"path": "/x", "runtimeType": "io.containerd.kata.v2"}}}"#,
                "containerd shims",
            ),
            (&[][..], r#"{"runtimes": {"x": {"runtimeArgs": []}}}"#, "needs a path"),
            (&[][..], r#"{"runtimes": {"x": {"path": "/x", "extra": 1}}}"#, "unknown field"),
        ] {
            let e = parse(args, json).unwrap_err();
            assert!(e.contains(want), "{args:?} {json}: {e}");
        }
    }

    #[test]
    fn userns_remap_from_file_or_flag() {
        let dir = std::env::temp_dir().join(format!("wharfd-userns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("daemon.json");
        std::fs::write(&path, r#"{"userns-remap": "default"}"#).unwrap();
        let p = path.to_str().unwrap();
        let cfg = DaemonConfig::load(&Flags::parse_from(["wharfd", "--config-file", p])).unwrap();
        assert_eq!(cfg.userns_remap.as_deref(), Some("default"));
        let flags = Flags::parse_from(["wharfd", "--config-file", p, "--userns-remap", "alice:staff"]);
        assert_eq!(DaemonConfig::load(&flags).unwrap().userns_remap.as_deref(), Some("alice:staff"));
        std::fs::write(&path, "{}").unwrap();
        assert_eq!(DaemonConfig::load(&Flags::parse_from(["wharfd", "--config-file", p])).unwrap().userns_remap, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn address_pools_from_file_and_flags() {
        let dir = std::env::temp_dir().join(format!("wharfd-pools-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("daemon.json");
        let p = path.to_str().unwrap();
        std::fs::write(&path, r#"{"default-address-pools": [{"base": "10.77.0.0/16", "size": 24}]}"#).unwrap();
        let cfg = DaemonConfig::load(&Flags::parse_from(["wharfd", "--config-file", p])).unwrap();
        assert_eq!(cfg.address_pools.len(), 1);
        assert_eq!(cfg.address_pools[0].size, 24);
        let flags =
            Flags::parse_from(["wharfd", "--config-file", p, "--default-address-pool", "base=10.88.0.0/16,size=20"]);
        let cfg = DaemonConfig::load(&flags).unwrap();
        assert_eq!(cfg.address_pools[0].base.to_string(), "10.88.0.0/16");
        for bad in [
            r#"{"default-address-pools": [{"base": "10.77.0.0/16", "size": 8}]}"#,
            r#"{"default-address-pools": [{"base": "10.77.0.0/16", "size": 31}]}"#,
            r#"{"default-address-pools": [{"base": "nonsense", "size": 24}]}"#,
            r#"{"default-address-pools": [{"base": "10.77.0.0/16", "size": 24, "extra": 1}]}"#,
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = DaemonConfig::load(&Flags::parse_from(["wharfd", "--config-file", p])).unwrap_err();
            assert!(format!("{e:#}").contains("pool") || format!("{e:#}").contains("extra"), "{bad}: {e:#}");
        }
        std::fs::write(&path, "{}").unwrap();
        for bad in ["base=10.1.0.0/16", "size=24", "base=10.1.0.0/16,size=x", "10.1.0.0/16"] {
            let flags = Flags::parse_from(["wharfd", "--config-file", p, "--default-address-pool", bad]);
            assert!(DaemonConfig::load(&flags).is_err(), "{bad}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cri_settings_need_the_socket_and_absolute_paths() {
        assert_eq!(cri4(None, None, None, None).unwrap(), None);
        let c = cri4(Some("/run/w/cri.sock".into()), None, Some("/usr/lib/cni:/opt/cni/bin".into()), None)
            .unwrap()
            .unwrap();
        assert_eq!(c.cni_conf_dir, PathBuf::from("/etc/cni/net.d"));
        assert_eq!(c.cni_bin_dirs, vec![PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")]);
        assert_eq!(c.streaming_addr, "127.0.0.1:0".parse().unwrap());
        assert!(cri4(None, Some("/etc/cni/net.d".into()), None, None)
            .unwrap_err()
            .to_string()
            .contains("need cri-socket"));
        assert!(cri4(Some("cri.sock".into()), None, None, None).is_err());
        assert!(cri4(Some("/c.sock".into()), Some("net.d".into()), None, None).is_err());
        assert!(cri4(Some("/c.sock".into()), None, Some("bin".into()), None).is_err());
    }

    #[test]
    fn cri_streaming_address_is_an_ip_with_or_without_a_port() {
        let at = |a: &str| cri4(Some("/c.sock".into()), None, None, Some(a.into())).map(|c| c.unwrap().streaming_addr);
        assert_eq!(at("10.0.0.5:10010").unwrap(), "10.0.0.5:10010".parse().unwrap());
        assert_eq!(at("0.0.0.0").unwrap(), "0.0.0.0:0".parse().unwrap());
        assert_eq!(at("[::1]").unwrap(), "[::1]:0".parse().unwrap());
        assert_eq!(at("[::1]:7").unwrap(), "[::1]:7".parse().unwrap());
        assert!(at("localhost:1").unwrap_err().to_string().contains("not an IP address"));
        assert!(cri4(None, None, None, Some("127.0.0.1".into())).unwrap_err().to_string().contains("need cri-socket"));
    }
}
