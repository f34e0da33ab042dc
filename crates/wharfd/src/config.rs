//! The daemon's configuration: command-line flags (named as dockerd names them) over a
//! daemon.json. Unknown keys and malformed values are refused, naming the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Parser;
use serde::Deserialize;

pub const DEFAULT_HOST: &str = "unix:///run/wharf/wharfd.sock";
const DEFAULT_CONFIG: &str = "/etc/wharf/daemon.json";

#[derive(Parser, Debug)]
#[command(name = "wharfd", version, about = "The wharf container engine daemon (Docker Engine API on a unix socket)")]
pub struct Flags {
    /// Socket to listen on (unix:///path)
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
    /// Name of the default bridge (default wharf0)
    #[arg(short = 'b', long = "bridge")]
    pub bridge: Option<String>,
    /// Address and subnet of the default bridge, as 172.17.0.1/16
    #[arg(long = "bip")]
    pub bip: Option<String>,
    /// Write nftables rules (masquerade, published ports): true or false
    #[arg(long = "iptables")]
    pub iptables: Option<bool>,
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
}

/// daemon.json, as far as wharf understands it.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    data_root: Option<PathBuf>,
    exec_root: Option<PathBuf>,
    hosts: Option<Vec<String>>,
    registry_mirrors: Option<Vec<String>>,
    insecure_registries: Option<Vec<String>>,
    max_concurrent_downloads: Option<usize>,
    log_level: Option<String>,
    debug: Option<bool>,
    cgroup_parent: Option<String>,
    bridge: Option<String>,
    bip: Option<String>,
    iptables: Option<bool>,
    log_driver: Option<String>,
    /// json-file options every container gets unless it sets its own (`max-size`, `max-file`).
    log_opts: Option<BTreeMap<String, String>>,
    /// `default`, `user`, `user:group` or `uid:gid`: containers' root is that user's range.
    userns_remap: Option<String>,
    default_address_pools: Option<Vec<PoolConfig>>,
    /// A size (`512m`, `16g`): see the flag.
    max_build_context: Option<String>,
    /// `{"http-proxy", "https-proxy", "no-proxy"}`, as dockerd 23 reads them.
    proxies: Option<ProxiesFile>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ProxiesFile {
    http_proxy: Option<String>,
    https_proxy: Option<String>,
    no_proxy: Option<String>,
}

/// One `default-address-pools` entry of daemon.json.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct PoolConfig {
    base: String,
    size: u8,
}

#[derive(Debug)]
pub struct DaemonConfig {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub hosts: Vec<String>,
    pub registry_mirrors: Vec<String>,
    pub insecure_registries: Vec<String>,
    pub max_concurrent_downloads: usize,
    pub log_level: String,
    pub cgroup_parent: String,
    pub bridge: String,
    pub bip: Option<String>,
    pub iptables: bool,
    pub log_opts: BTreeMap<String, String>,
    pub userns_remap: Option<String>,
    pub address_pools: Vec<wharf_engine::AddressPool>,
    pub max_build_context: u64,
    /// The proxy settings of the flags or the file, each replacing the environment's.
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
}

impl DaemonConfig {
    pub fn load(flags: &Flags) -> anyhow::Result<DaemonConfig> {
        let (path, explicit) = match &flags.config_file {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG), false),
        };
        let raw = read_file(&path, explicit)?;
        let file = serde_json::from_slice(&raw).with_context(|| format!("config file {}", path.display()))?;
        DaemonConfig::resolve(flags, file)
    }

    /// The configuration from `flags` over the daemon.json text `raw` (what fuzz/ drives).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn parse(flags: &Flags, raw: &[u8]) -> anyhow::Result<DaemonConfig> {
        DaemonConfig::resolve(flags, serde_json::from_slice(raw)?)
    }

    fn resolve(flags: &Flags, file: FileConfig) -> anyhow::Result<DaemonConfig> {
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
        let cgroup_parent = flags.cgroup_parent.clone().or(file.cgroup_parent).unwrap_or_else(|| "/wharf".into());
        if !cgroup_parent.starts_with('/') || cgroup_parent.split('/').any(|c| c == "..") {
            bail!("cgroup-parent {cgroup_parent:?} must be an absolute cgroup path without '..'");
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
        if let Some(d) = file.log_driver.as_deref().filter(|d| *d != "json-file") {
            bail!("log-driver {d:?} is not supported: wharf writes json-file logs only");
        }
        let log_opts = file.log_opts.unwrap_or_default();
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
        Ok(DaemonConfig {
            data_root: flags.data_root.clone().or(file.data_root).unwrap_or_else(|| "/var/lib/wharf".into()),
            exec_root: flags.exec_root.clone().or(file.exec_root).unwrap_or_else(|| "/run/wharf".into()),
            hosts: if hosts.is_empty() { vec![DEFAULT_HOST.to_string()] } else { hosts },
            registry_mirrors: mirrors,
            insecure_registries: insecure,
            max_concurrent_downloads: max,
            log_level,
            cgroup_parent,
            bridge,
            bip,
            iptables,
            log_opts,
            userns_remap: flags.userns_remap.clone().or(file.userns_remap).filter(|s| !s.is_empty()),
            address_pools,
            max_build_context,
            http_proxy,
            https_proxy,
            no_proxy,
        })
    }
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
fn read_file(path: &Path, explicit: bool) -> anyhow::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(r) => Ok(r),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(b"{}".to_vec()),
        Err(e) => Err(e).with_context(|| format!("read config file {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(e.to_string().contains("max-size"), "{e}");
        std::fs::write(&path, r#"{"log-driver": "syslog"}"#).unwrap();
        assert!(DaemonConfig::load(&flags(&path)).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
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
}
