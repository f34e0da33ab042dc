//! Container security options (capabilities, privileged, seccomp, no-new-privileges, ulimits,
//! sysctls, shared namespaces, devices, OOM score), checked and resolved per container; the
//! seccomp profile chosen is compiled to BPF once per distinct result. Docker's profile format
//! and its default profile, as data, are in [`seccomp_profile`].

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use wharf_runtime::seccomp::{self, LinuxSeccomp};
use wharf_runtime::spec::{self as oci, Spec};

use crate::containers::ContainerRecord;
use crate::{Engine, EngineError};

mod seccomp_profile;
pub(crate) use seccomp_profile::resolve;
pub use seccomp_profile::{default_profile, DockerProfile};

/// The security part of a container's host config, as the create request gave it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityOptions {
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `seccomp=unconfined|<profile JSON>`, `no-new-privileges[:true|false]`.
    pub security_opt: Vec<String>,
    pub ulimits: Vec<Ulimit>,
    pub sysctls: BTreeMap<String, String>,
    /// Bytes; 0 = Docker's 64 MiB.
    pub shm_size: i64,
    pub group_add: Vec<String>,
    /// `""`/`private`/`shareable`, `host`, `none`, `container:<id>`.
    pub ipc_mode: String,
    /// `""`, `host`, `container:<id>`.
    pub pid_mode: String,
    /// `""`, `host`.
    pub uts_mode: String,
    /// `""`/`private`, `host`.
    pub cgroupns_mode: String,
    pub oom_score_adj: i64,
    pub devices: Vec<DeviceMapping>,
    pub device_cgroup_rules: Vec<String>,
    /// `memory.oom_control` on cgroup v1; on v2 it is dropped with a warning, as Docker does.
    pub oom_kill_disable: bool,
    /// `HostConfig.MaskedPaths`: replaces the default list when given (`[]` masks nothing).
    pub masked_paths: Option<Vec<String>>,
    /// `HostConfig.ReadonlyPaths`: replaces the default list when given.
    pub readonly_paths: Option<Vec<String>>,
    /// `""` or `host` (`--userns=host`: no remapping for this container).
    pub userns_mode: String,
}

/// The paths masked (or made read-only) in /proc and /sys unless `MaskedPaths` (`ReadonlyPaths`)
/// says otherwise or the container is privileged.
pub const DEFAULT_MASKED_PATHS: &[&str] = crate::spec::MASKED_PATHS;
pub const DEFAULT_READONLY_PATHS: &[&str] = crate::spec::READONLY_PATHS;

/// The warnings Docker gives at create time for these options; `memory` is the memory limit.
pub fn security_warnings(o: &SecurityOptions, memory: i64) -> Vec<String> {
    let mut out = Vec::new();
    if o.oom_kill_disable {
        if !oom_kill_disable_supported() {
            out.push("Your kernel does not support OomKillDisable. OomKillDisable discarded.".to_string());
        } else if memory <= 0 {
            out.push(
                "OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources."
                    .to_string(),
            );
        }
    }
    out
}

/// Whether `--oom-kill-disable` takes effect on this host (checked once: the layout is fixed).
pub fn oom_kill_disable_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(wharf_runtime::cgroups::Cgroup::oom_kill_disable_supported)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::Invalid(msg.into())
}

/// Every capability the kernel knows, by Docker's names, indexed by number.
use wharf_runtime::caps::NAMES as ALL_CAPS;

/// Every capability the daemon itself may grant (its bounding set): `--privileged` and
/// `--cap-add ALL` mean these, as with Docker, so a daemon in a restricted sandbox still works.
fn grantable_caps() -> Vec<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let bnd = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(u64::MAX);
    ALL_CAPS.iter().enumerate().filter(|(i, _)| bnd & (1u64 << i) != 0).map(|(_, c)| c.to_string()).collect()
}

/// `net_admin`, `NET_ADMIN` and `CAP_NET_ADMIN` all name CAP_NET_ADMIN; `ALL` stays as is.
fn normalize_cap(c: &str) -> Result<String, EngineError> {
    let up = c.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") { up } else { format!("CAP_{up}") };
    if !ALL_CAPS.contains(&full.as_str()) {
        return Err(invalid(format!("unknown capability: {c:?}")));
    }
    Ok(full)
}

/// The capability set as Docker computes it: defaults, minus drops, plus adds (adds win).
pub(crate) fn capabilities(o: &SecurityOptions) -> Result<Vec<String>, EngineError> {
    if o.privileged {
        return Ok(grantable_caps());
    }
    let add = o.cap_add.iter().map(|c| normalize_cap(c)).collect::<Result<Vec<_>, _>>()?;
    let drop = o.cap_drop.iter().map(|c| normalize_cap(c)).collect::<Result<Vec<_>, _>>()?;
    let mut caps: Vec<String> = if drop.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        crate::spec::DEFAULT_CAPS.iter().map(|s| s.to_string()).filter(|c| !drop.contains(c)).collect()
    };
    let adds: Vec<String> = if add.iter().any(|c| c == "ALL") { grantable_caps() } else { add };
    for c in adds {
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    Ok(caps)
}

enum SeccompChoice {
    Default,
    Unconfined,
    Custom(DockerProfile),
}

pub(crate) struct ParsedOpts {
    seccomp: SeccompChoice,
    no_new_privileges: bool,
    /// `apparmor=NAME`: applied only where the host has AppArmor (see apparmor.rs).
    apparmor: Option<String>,
}

pub(crate) fn parse_security_opts(opts: &[String]) -> Result<ParsedOpts, EngineError> {
    let mut out = ParsedOpts { seccomp: SeccompChoice::Default, no_new_privileges: false, apparmor: None };
    for o in opts {
        let (key, value) = match o.split_once(['=', ':']) {
            Some((k, v)) => (k, Some(v)),
            None => (o.as_str(), None),
        };
        match (key, value) {
            ("no-new-privileges", None) => out.no_new_privileges = true,
            ("no-new-privileges", Some(v)) => {
                out.no_new_privileges = v
                    .parse::<bool>()
                    .map_err(|_| invalid(format!("invalid --security-opt {o:?}: expected true or false")))?
            }
            ("seccomp", Some("unconfined")) => out.seccomp = SeccompChoice::Unconfined,
            ("seccomp", Some("builtin" | "default")) => out.seccomp = SeccompChoice::Default,
            ("seccomp", Some(json)) => {
                // The docker CLI sends the profile file's content, not its path.
                let p: DockerProfile =
                    serde_json::from_str(json).map_err(|e| invalid(format!("decoding seccomp profile failed: {e}")))?;
                out.seccomp = SeccompChoice::Custom(p);
            }
            ("apparmor", Some(name)) => out.apparmor = Some(name.to_string()),
            ("apparmor" | "label", _) => {}
            _ => return Err(invalid(format!("invalid --security-opt: {o:?}"))),
        }
    }
    Ok(out)
}

/// The AppArmor profile a container runs under (`AppArmorProfile` in inspect): empty on a host
/// without AppArmor, as dockerd's.
pub fn apparmor_profile(o: &SecurityOptions) -> String {
    let explicit = parse_security_opts(&o.security_opt).ok().and_then(|p| p.apparmor);
    crate::apparmor::profile_for(explicit.as_deref(), o.privileged).unwrap_or_default()
}

/// Sysctls a container may set: those namespaced by the namespaces it owns.
fn check_sysctl(key: &str, o: &SecurityOptions, host_network: bool) -> Result<(), EngineError> {
    let ipc = ["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax"];
    let ipc_ok = ipc.contains(&key)
        || key == "kernel.shmmni"
        || key == "kernel.shm_rmid_forced"
        || key.starts_with("fs.mqueue.");
    if ipc_ok {
        if o.ipc_mode == "host" {
            return Err(invalid(format!("sysctl {key:?} is not allowed when joining the host's IPC namespace")));
        }
        return Ok(());
    }
    if key.starts_with("net.") {
        if host_network {
            return Err(invalid(format!("sysctl {key:?} is not allowed in host network mode")));
        }
        return Ok(());
    }
    if matches!(key, "kernel.domainname" | "kernel.hostname") {
        return Err(invalid(format!("sysctl {key:?} is not allowed: use --hostname or --domainname")));
    }
    Err(invalid(format!("sysctl {key:?} is not namespaced and cannot be set in a container")))
}

fn ulimit_resource(name: &str) -> Option<&'static str> {
    Some(match name {
        "core" => "RLIMIT_CORE",
        "cpu" => "RLIMIT_CPU",
        "data" => "RLIMIT_DATA",
        "fsize" => "RLIMIT_FSIZE",
        "locks" => "RLIMIT_LOCKS",
        "memlock" => "RLIMIT_MEMLOCK",
        "msgqueue" => "RLIMIT_MSGQUEUE",
        "nice" => "RLIMIT_NICE",
        "nofile" => "RLIMIT_NOFILE",
        "nproc" => "RLIMIT_NPROC",
        "rss" => "RLIMIT_RSS",
        "rtprio" => "RLIMIT_RTPRIO",
        "rttime" => "RLIMIT_RTTIME",
        "sigpending" => "RLIMIT_SIGPENDING",
        "stack" => "RLIMIT_STACK",
        _ => return None,
    })
}

/// The daemon's own hard limit for a resource, with the resource's name; a container cannot
/// raise past it (the kernel answers EPERM), so it is refused at create with both numbers.
fn host_hard_limit(name: &str) -> Option<(&'static str, u64)> {
    let (res, resource) = match name {
        "nofile" => (libc::RLIMIT_NOFILE, "RLIMIT_NOFILE"),
        "nproc" => (libc::RLIMIT_NPROC, "RLIMIT_NPROC"),
        "memlock" => (libc::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"),
        _ => return None,
    };
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into a valid struct.
    if unsafe { libc::getrlimit(res, &mut lim) } != 0 || lim.rlim_max == libc::RLIM_INFINITY {
        return None;
    }
    Some((resource, lim.rlim_max))
}

/// Ulimit names, soft against hard, and hard against the daemon's own maximum.
fn validate_ulimits(o: &SecurityOptions) -> Result<(), EngineError> {
    for u in &o.ulimits {
        if ulimit_resource(&u.name).is_none() {
            return Err(invalid(format!("invalid ulimit type: {}", u.name)));
        }
        if u.soft > u.hard && u.hard >= 0 {
            return Err(invalid(format!(
                "ulimit soft limit must be less than or equal to hard limit: {} > {}",
                u.soft, u.hard
            )));
        }
        if let Some((resource, max)) = host_hard_limit(&u.name) {
            if u.hard < 0 || u.hard as u64 > max {
                let asked = if u.hard < 0 { "unlimited".to_string() } else { u.hard.to_string() };
                return Err(invalid(format!(
                    "ulimit {}: hard limit {asked} is above the daemon's maximum {max} ({resource} of wharfd): \
                     a container cannot raise it past the daemon's, ask for at most {max}",
                    u.name
                )));
            }
        }
    }
    Ok(())
}

fn parse_device_rule(rule: &str) -> Result<oci::DeviceRule, EngineError> {
    let bad = || invalid(format!("invalid device cgroup rule {rule:?}: expected '<type> <major>:<minor> <rwm>'"));
    let f: Vec<&str> = rule.split_whitespace().collect();
    let [kind, nums, access] = f.as_slice() else { return Err(bad()) };
    if !matches!(*kind, "a" | "b" | "c") || access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) {
        return Err(bad());
    }
    let (ma, mi) = nums.split_once(':').ok_or_else(bad)?;
    let num = |s: &str| -> Result<Option<i64>, EngineError> {
        if s == "*" {
            Ok(None)
        } else {
            s.parse().map(Some).map_err(|_| bad())
        }
    };
    Ok(oci::DeviceRule {
        allow: true,
        kind: Some(kind.to_string()),
        major: num(ma)?,
        minor: num(mi)?,
        access: Some(access.to_string()),
    })
}

impl Engine {
    /// Checks the options at create time, so mistakes are a 400 then and not a failed start.
    pub(crate) fn validate_security(&self, o: &SecurityOptions, host_network: bool) -> Result<(), EngineError> {
        capabilities(o)?;
        parse_security_opts(&o.security_opt)?;
        for k in o.sysctls.keys() {
            check_sysctl(k, o, host_network)?;
        }
        validate_ulimits(o)?;
        if o.shm_size < 0 {
            return Err(invalid("SHM size can not be less than 0"));
        }
        if !(-1000..=1000).contains(&o.oom_score_adj) {
            return Err(invalid(format!(
                "Invalid value {}, range for oom score adj is [-1000, 1000]",
                o.oom_score_adj
            )));
        }
        for (what, mode, allowed) in [
            ("ipc", &o.ipc_mode, &["", "private", "shareable", "host", "none"][..]),
            ("pid", &o.pid_mode, &["", "host"][..]),
            ("uts", &o.uts_mode, &["", "host"][..]),
            ("cgroupns", &o.cgroupns_mode, &["", "private", "host"][..]),
        ] {
            if allowed.contains(&mode.as_str()) {
                continue;
            }
            match mode.strip_prefix("container:") {
                // `uts` joins only for the CRI's pod containers: the Docker API refuses it, as dockerd.
                Some(other) if what == "ipc" || what == "pid" || what == "uts" => {
                    self.find_container(other)?;
                }
                _ => return Err(invalid(format!("invalid {what} mode: {mode}"))),
            }
        }
        for r in &o.device_cgroup_rules {
            parse_device_rule(r)?;
        }
        for d in &o.devices {
            device_node(d)?;
        }
        for g in &o.group_add {
            if g.is_empty() {
                return Err(invalid("--group-add: empty group"));
            }
        }
        for (what, paths) in [("masked", &o.masked_paths), ("read-only", &o.readonly_paths)] {
            if let Some(p) = paths.iter().flatten().find(|p| !p.starts_with('/')) {
                return Err(invalid(format!("invalid {what} path {p:?}: it must be absolute")));
            }
        }
        Ok(())
    }

    /// Applies the security options to a generated spec.
    pub(crate) fn apply_security(&self, rec: &ContainerRecord, spec: &mut Spec) -> Result<(), EngineError> {
        let o = &rec.host_config.security;
        let mut opts = parse_security_opts(&o.security_opt)?;
        let defaults = &self.inner.config.container_defaults;
        // The daemon's no-new-privileges and seccomp profile, unless the container chose.
        if defaults.no_new_privileges && !o.security_opt.iter().any(|s| s.starts_with("no-new-privileges")) {
            opts.no_new_privileges = true;
        }
        if let (Some(p), false) = (&defaults.seccomp_profile, o.security_opt.iter().any(|s| s.starts_with("seccomp"))) {
            opts.seccomp = parse_security_opts(&[format!("seccomp={p}")])?.seccomp;
        }
        let caps = capabilities(o)?;
        let process = spec.process.get_or_insert_with(Default::default);
        process.capabilities = Some(oci::Capabilities {
            bounding: caps.clone(),
            effective: caps.clone(),
            inheritable: Vec::new(),
            permitted: caps.clone(),
            ambient: Vec::new(),
        });
        process.no_new_privileges = opts.no_new_privileges;
        if let Some(profile) = crate::apparmor::profile_for(opts.apparmor.as_deref(), o.privileged) {
            crate::apparmor::prepare(&profile)?;
            process.apparmor_profile = Some(profile);
        }
        if o.oom_score_adj != 0 {
            process.oom_score_adj = Some(o.oom_score_adj as i32);
        }
        for u in &o.ulimits {
            let kind = ulimit_resource(&u.name).ok_or_else(|| invalid(format!("invalid ulimit type: {}", u.name)))?;
            process.rlimits.push(oci::Rlimit { kind: kind.to_string(), hard: u.hard as u64, soft: u.soft as u64 });
        }
        for g in &o.group_add {
            let gid = self.resolve_group(rec, g)?;
            if !process.user.additional_gids.contains(&gid) {
                process.user.additional_gids.push(gid);
            }
        }

        if o.shm_size > 0 {
            for m in spec.mounts.iter_mut().filter(|m| m.destination == "/dev/shm") {
                m.options.retain(|x| !x.starts_with("size="));
                m.options.push(format!("size={}k", o.shm_size / 1024));
            }
        }
        let linux = spec.linux.get_or_insert_with(Default::default);
        linux.sysctl.extend(o.sysctls.clone());
        self.shared_namespaces(o, linux)?;
        if o.cgroupns_mode == "private" {
            linux.namespaces.push(oci::Namespace { kind: "cgroup".to_string(), path: None });
        }
        if let Some(p) = &o.masked_paths {
            linux.masked_paths = p.clone();
        }
        if let Some(p) = &o.readonly_paths {
            linux.readonly_paths = p.clone();
        }
        let resources = linux.resources.get_or_insert_with(Default::default);
        if o.oom_kill_disable && oom_kill_disable_supported() {
            resources.memory.get_or_insert_with(Default::default).disable_oom_killer = Some(true);
        }
        for r in &o.device_cgroup_rules {
            resources.devices.push(parse_device_rule(r)?);
        }
        for d in &o.devices {
            let (dev, rule) = device_node(d)?;
            linux.devices.push(dev);
            resources.devices.push(rule);
        }

        if o.privileged {
            // All host devices, writable sysfs, nothing masked, no filter: Docker's --privileged.
            linux.masked_paths.clear();
            linux.readonly_paths.clear();
            linux.seccomp = None;
            resources.devices = vec![oci::DeviceRule {
                allow: true,
                kind: Some("a".to_string()),
                major: None,
                minor: None,
                access: Some("rwm".to_string()),
            }];
            linux.devices.extend(host_devices());
            for m in spec.mounts.iter_mut().filter(|m| matches!(m.destination.as_str(), "/sys" | "/sys/fs/cgroup")) {
                m.options.retain(|x| x != "ro");
                m.options.push("rw".to_string());
            }
            return Ok(());
        }
        let profile = match opts.seccomp {
            SeccompChoice::Unconfined => return Ok(()),
            SeccompChoice::Default => default_profile(),
            SeccompChoice::Custom(p) => p,
        };
        let resolved = resolve(&profile, &caps)?;
        let bpf = self.compiled_seccomp(&resolved)?;
        linux.seccomp = Some(serde_json::to_value(&resolved).map_err(|e| EngineError::Internal(e.to_string()))?);
        spec.annotations.insert(seccomp::ANNOTATION_BPF.to_string(), bpf.display().to_string());
        Ok(())
    }

    fn shared_namespaces(&self, o: &SecurityOptions, linux: &mut oci::Linux) -> Result<(), EngineError> {
        for (kind, mode) in [("ipc", &o.ipc_mode), ("pid", &o.pid_mode), ("uts", &o.uts_mode)] {
            if mode == "host" {
                linux.namespaces.retain(|n| n.kind != kind);
            } else if let Some(other) = mode.strip_prefix("container:") {
                let c = self.find_container(other)?;
                if !c.state.running || c.state.pid <= 0 {
                    return Err(EngineError::Conflict(format!("container {other} is not running")));
                }
                let path = format!("/proc/{}/ns/{kind}", c.state.pid);
                for n in linux.namespaces.iter_mut().filter(|n| n.kind == kind) {
                    n.path = Some(path.clone());
                }
            }
        }
        Ok(())
    }

    /// `--group-add`: a number, or a name from the image's /etc/group.
    fn resolve_group(&self, rec: &ContainerRecord, g: &str) -> Result<u32, EngineError> {
        if let Ok(n) = g.parse::<u32>() {
            return Ok(n);
        }
        let dirs = self.inner.snapshots.container_dirs(&rec.id);
        let layers: Vec<PathBuf> = std::iter::once(dirs.upper)
            .chain(rec.chain_ids.iter().rev().map(|c| self.inner.snapshots.layer_dir(c)))
            .collect();
        let group = crate::user::read_from_layers(&layers, "etc/group")?.unwrap_or_default();
        group
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 3 && f[0] == g).then(|| f[2].parse::<u32>().ok()).flatten()
            })
            .ok_or_else(|| invalid(format!("unable to find group {g}: no matching entries in group file")))
    }

    /// Compiles a resolved profile once per daemon and keeps the program under the data root;
    /// containers with the same capability set share one file.
    fn compiled_seccomp(&self, profile: &LinuxSeccomp) -> Result<PathBuf, EngineError> {
        static CACHE: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
        let key = serde_json::to_string(profile).map_err(|e| EngineError::Internal(e.to_string()))?;
        let dir = self.inner.config.data_root.join("seccomp");
        let cache_key = format!("{}\n{key}", dir.display());
        let cache = CACHE.get_or_init(Default::default);
        if let Some(p) = crate::sync::lock(cache).get(&cache_key) {
            if p.exists() {
                return Ok(p.clone());
            }
        }
        let prog = seccomp::compile(profile).map_err(|e| invalid(e.to_string()))?;
        let digest = wharf_types::Digest::of(key.as_bytes());
        std::fs::create_dir_all(&dir).map_err(|e| EngineError::io(format!("create {}", dir.display()), e))?;
        let path = dir.join(format!("{}.bpf", digest.hex()));
        if !path.exists() {
            // Starts run concurrently (e.g. restart policies at daemon start): each writer gets its
            // own temp file, and the rename makes the same content appear once, atomically.
            static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = dir.join(format!(".{}.{}.{n}.tmp", digest.hex(), std::process::id()));
            std::fs::write(&tmp, prog.to_bytes())
                .map_err(|e| EngineError::io(format!("write {}", tmp.display()), e))?;
            if let Err(e) = std::fs::rename(&tmp, &path) {
                let _ = std::fs::remove_file(&tmp);
                return Err(EngineError::io(format!("rename {}", path.display()), e));
            }
        }
        {
            let mut c = crate::sync::lock(cache);
            c.insert(cache_key, path.clone());
        }
        Ok(path)
    }
}

fn device_node(d: &DeviceMapping) -> Result<(oci::Device, oci::DeviceRule), EngineError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let host = &d.path_on_host;
    let meta = std::fs::metadata(host)
        .map_err(|e| invalid(format!("error gathering device information while adding custom device {host:?}: {e}")))?;
    let ft = meta.file_type();
    let kind = if ft.is_char_device() {
        "c"
    } else if ft.is_block_device() {
        "b"
    } else {
        return Err(invalid(format!("{host:?} is not a device node")));
    };
    let rdev = meta.rdev();
    let (major, minor) = (libc::major(rdev) as i64, libc::minor(rdev) as i64);
    let perms = if d.cgroup_permissions.is_empty() { "rwm".to_string() } else { d.cgroup_permissions.clone() };
    if !perms.chars().all(|c| "rwm".contains(c)) {
        return Err(invalid(format!("invalid device permissions {perms:?}")));
    }
    let dest = if d.path_in_container.is_empty() { host.clone() } else { d.path_in_container.clone() };
    let dev = oci::Device {
        kind: kind.to_string(),
        path: dest,
        major,
        minor,
        file_mode: Some(meta.mode() & 0o777),
        uid: Some(0),
        gid: Some(0),
    };
    let rule = oci::DeviceRule {
        allow: true,
        kind: Some(kind.to_string()),
        major: Some(major),
        minor: Some(minor),
        access: Some(perms),
    };
    Ok((dev, rule))
}

/// The host's device nodes directly under /dev, which a privileged container gets.
fn host_devices() -> Vec<oci::Device> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(rd) = std::fs::read_dir("/dev") else { return Vec::new() };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else { continue };
        let ft = meta.file_type();
        let kind = if ft.is_char_device() {
            "c"
        } else if ft.is_block_device() {
            "b"
        } else {
            continue;
        };
        let name = e.file_name().to_string_lossy().to_string();
        // The container has its own console, ptmx and standard nodes.
        if matches!(name.as_str(), "console" | "ptmx" | "tty" | "null" | "zero" | "full" | "random" | "urandom") {
            continue;
        }
        let rdev = meta.rdev();
        out.push(oci::Device {
            kind: kind.to_string(),
            path: format!("/dev/{name}"),
            major: libc::major(rdev) as i64,
            minor: libc::minor(rdev) as i64,
            file_mode: Some(meta.mode() & 0o777),
            uid: Some(meta.uid()),
            gid: Some(meta.gid()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> SecurityOptions {
        SecurityOptions::default()
    }

    #[test]
    fn capability_sets() {
        type Case<'a> = (&'a [&'a str], &'a [&'a str], bool, usize, &'a [&'a str], &'a [&'a str]);
        let table: &[Case] = &[
            (&[], &[], false, 14, &["CAP_CHOWN"], &["CAP_SYS_ADMIN"]),
            (&["sys_admin"], &[], false, 15, &["CAP_SYS_ADMIN"], &[]),
            (&["NET_ADMIN"], &["chown"], false, 14, &["CAP_NET_ADMIN"], &["CAP_CHOWN"]),
            (&["CAP_KILL"], &["ALL"], false, 1, &["CAP_KILL"], &["CAP_CHOWN"]),
            (&["ALL"], &[], false, grantable_caps().len(), &["CAP_SYS_ADMIN"], &[]),
            (&[], &[], true, grantable_caps().len(), &["CAP_SYS_ADMIN"], &[]),
        ];
        for (add, drop, privileged, n, has, lacks) in table {
            let o = SecurityOptions {
                cap_add: add.iter().map(|s| s.to_string()).collect(),
                cap_drop: drop.iter().map(|s| s.to_string()).collect(),
                privileged: *privileged,
                ..opts()
            };
            let caps = capabilities(&o).unwrap();
            assert_eq!(caps.len(), *n, "{add:?} {drop:?}");
            for c in *has {
                assert!(caps.iter().any(|x| x == c), "{c} in {caps:?}");
            }
            for c in *lacks {
                assert!(!caps.iter().any(|x| x == c), "{c} not in {caps:?}");
            }
        }
        let bad = SecurityOptions { cap_add: vec!["CAP_FLY".into()], ..opts() };
        assert!(capabilities(&bad).is_err());
    }

    #[test]
    fn sysctls_namespaced_only() {
        let o = opts();
        for (k, ok) in [
            ("net.ipv4.ip_forward", true),
            ("kernel.msgmax", true),
            ("kernel.shm_rmid_forced", true),
            ("fs.mqueue.msg_max", true),
            ("kernel.pid_max", false),
            ("vm.swappiness", false),
            ("kernel.hostname", false),
        ] {
            assert_eq!(check_sysctl(k, &o, false).is_ok(), ok, "{k}");
        }
        assert!(check_sysctl("net.ipv4.ip_forward", &o, true).is_err());
    }

    #[test]
    fn security_opts_parse() {
        assert!(parse_security_opts(&["no-new-privileges".into()]).unwrap().no_new_privileges);
        assert!(!parse_security_opts(&["no-new-privileges:false".into()]).unwrap().no_new_privileges);
        assert!(matches!(
            parse_security_opts(&["seccomp=unconfined".into()]).unwrap().seccomp,
            SeccompChoice::Unconfined
        ));
        let custom = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#;
        assert!(matches!(
            parse_security_opts(&[format!("seccomp={custom}")]).unwrap().seccomp,
            SeccompChoice::Custom(_)
        ));
        assert!(parse_security_opts(&["seccomp={not json".into()]).is_err());
        assert!(parse_security_opts(&["bogus=1".into()]).is_err());
    }

    #[test]
    fn default_profile_never_opens_the_keyring() {
        // The kernel keyring is not namespaced: no capability set may open it (Docker's rule).
        let sets: Vec<Vec<String>> = vec![
            crate::spec::DEFAULT_CAPS.iter().map(|s| s.to_string()).collect(),
            ALL_CAPS.iter().map(|s| s.to_string()).collect(),
        ];
        for caps in sets {
            let p = resolve(&default_profile(), &caps).unwrap();
            assert_eq!(p.default_action, "SCMP_ACT_ERRNO");
            for name in ["keyctl", "add_key", "request_key", "kexec_load", "userfaultfd"] {
                assert!(
                    !p.syscalls.iter().any(|s| s.action == "SCMP_ACT_ALLOW" && s.names.iter().any(|n| n == name)),
                    "{name} allowed with {} caps",
                    caps.len()
                );
            }
        }
    }

    #[test]
    fn ulimit_above_the_daemon_names_both_limits() {
        let (resource, max) = host_hard_limit("nofile").expect("a finite RLIMIT_NOFILE hard limit");
        assert_eq!(resource, "RLIMIT_NOFILE");
        let o = SecurityOptions {
            ulimits: vec![Ulimit { name: "nofile".into(), soft: 1024, hard: max as i64 + 1 }],
            ..opts()
        };
        let e = validate_ulimits(&o).unwrap_err().to_string();
        assert!(e.contains(&format!("hard limit {}", max + 1)), "{e}");
        assert!(e.contains(&format!("daemon's maximum {max} (RLIMIT_NOFILE")), "{e}");
        let ok =
            SecurityOptions { ulimits: vec![Ulimit { name: "nofile".into(), soft: 10, hard: max as i64 }], ..opts() };
        assert!(validate_ulimits(&ok).is_ok());
        let unlimited =
            SecurityOptions { ulimits: vec![Ulimit { name: "nofile".into(), soft: -1, hard: -1 }], ..opts() };
        assert!(validate_ulimits(&unlimited).unwrap_err().to_string().contains("hard limit unlimited"));
        let bad = SecurityOptions { ulimits: vec![Ulimit { name: "files".into(), soft: 1, hard: 1 }], ..opts() };
        assert!(validate_ulimits(&bad).unwrap_err().to_string().contains("invalid ulimit type: files"));
    }

    #[test]
    fn device_rules_parse() {
        let r = parse_device_rule("c 1:3 mr").unwrap();
        assert_eq!((r.major, r.minor, r.access.as_deref()), (Some(1), Some(3), Some("mr")));
        let r = parse_device_rule("b *:* rwm").unwrap();
        assert_eq!((r.major, r.minor), (None, None));
        for bad in ["x 1:3 r", "c 1 r", "c 1:3 q", "c a:3 r", ""] {
            assert!(parse_device_rule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_profile_follows_capabilities() {
        let dflt: Vec<String> = crate::spec::DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
        let p = resolve(&default_profile(), &dflt).unwrap();
        let allowed = |p: &LinuxSeccomp, name: &str| {
            p.syscalls
                .iter()
                .any(|s| s.action == "SCMP_ACT_ALLOW" && s.args.is_empty() && s.names.iter().any(|n| n == name))
        };
        assert!(allowed(&p, "read"));
        assert!(!allowed(&p, "mount"));
        assert!(!allowed(&p, "unshare"));
        assert!(!allowed(&p, "clone"));
        assert!(!allowed(&p, "reboot"));
        assert!(p.architectures.contains(&"SCMP_ARCH_X86".to_string()) || cfg!(target_arch = "aarch64"));
        let mut admin = dflt.clone();
        admin.push("CAP_SYS_ADMIN".to_string());
        let p = resolve(&default_profile(), &admin).unwrap();
        assert!(allowed(&p, "mount"));
        assert!(allowed(&p, "clone"));
        assert!(!p.syscalls.iter().any(|s| s.names.iter().any(|n| n == "clone3") && s.action != "SCMP_ACT_ALLOW"));
    }

    /// The libseccomp comparison in wharf-runtime reads a copy of this profile: the copy must
    /// be what the engine builds, or that test checks a profile nobody runs.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_runtime_tests_copy_of_the_default_profile_is_current() {
        let dflt: Vec<String> = crate::spec::DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
        let built = serde_json::to_value(resolve(&default_profile(), &dflt).unwrap()).unwrap();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../runtime/src/seccomp/testdata/default_profile.json");
        let copy: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert!(
            built == copy,
            "{path} is not the engine's default profile any more: write it again from\n{}",
            serde_json::to_string_pretty(&built).unwrap()
        );
    }
}
