//! Generating a container's OCI runtime `config.json` from its record and its image, with
//! Docker's defaults (mounts, masked paths, capabilities, environment).

use std::path::PathBuf;

use wharf_runtime::spec::{self as oci, Spec};

use crate::containers::ContainerRecord;
use crate::{user, Engine, EngineError};

pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capability set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

pub(crate) const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub(crate) const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

fn mount(dest: &str, kind: &str, source: &str, options: &[&str]) -> oci::Mount {
    oci::Mount {
        destination: dest.to_string(),
        kind: Some(kind.to_string()),
        source: Some(source.to_string()),
        options: options.iter().map(|s| s.to_string()).collect(),
    }
}

impl Engine {
    pub(crate) fn generate_spec(&self, rec: &ContainerRecord) -> Result<Spec, EngineError> {
        let dirs = self.inner.snapshots.container_dirs(&rec.id);
        let overlay = self.inner.snapshots.overlay_options(&rec.chain_ids, &rec.id)?;
        let layers_top_first: Vec<PathBuf> =
            rec.chain_ids.iter().rev().map(|c| self.inner.snapshots.layer_dir(c)).collect();
        let upper_first: Vec<PathBuf> = std::iter::once(dirs.upper.clone()).chain(layers_top_first).collect();
        let passwd = user::read_from_layers(&upper_first, "etc/passwd")?;
        let group = user::read_from_layers(&upper_first, "etc/group")?;
        let u = user::resolve(&rec.config.user, passwd.as_deref(), group.as_deref())?;

        let host_network = rec.host_config.network_mode == "host";
        let joins_uts = rec.host_config.security.uts_mode.starts_with("container:");
        let hostname = if host_network { host_hostname() } else { rec.config.hostname.clone() };

        // Environment: Docker puts PATH first when the image has none, then HOSTNAME, HOME, TERM.
        let mut env: Vec<String> = Vec::new();
        if !rec.config.env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(DEFAULT_PATH.to_string());
        }
        env.push(format!("HOSTNAME={hostname}"));
        if rec.config.tty {
            env.push("TERM=xterm".to_string());
        }
        // Legacy links' variables come before the container's own, which may override them.
        env.extend(self.link_env(rec));
        env.extend(rec.config.env.iter().cloned());
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", u.home));
        }

        let dir = self.container_dir(&rec.id);
        self.write_etc_files(rec, &hostname, host_network)?;
        let mut mounts = vec![
            mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
            mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
            mount(
                "/dev/pts",
                "devpts",
                "devpts",
                &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
            ),
            mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
            mount("/sys/fs/cgroup", "cgroup", "cgroup", &["nosuid", "noexec", "nodev", "relatime", "ro"]),
            mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
            mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
        ];
        for (name, dest) in
            [("hostname", "/etc/hostname"), ("hosts", "/etc/hosts"), ("resolv.conf", "/etc/resolv.conf")]
        {
            let src = dir.join(name);
            mounts.push(oci::Mount {
                destination: dest.to_string(),
                kind: Some("bind".to_string()),
                source: Some(src.display().to_string()),
                options: vec!["rbind".to_string(), "rprivate".to_string()],
            });
        }

        mounts.extend(self.volume_mounts(rec));
        let mut namespaces: Vec<oci::Namespace> =
            ["pid", "ipc", "uts", "mount"].iter().map(|k| oci::Namespace { kind: k.to_string(), path: None }).collect();
        if let Some(path) = self.spec_netns(rec)? {
            namespaces.push(oci::Namespace { kind: "network".to_string(), path: Some(path) });
        }

        let hc = &rec.host_config;
        let mut resources = crate::resources::oci_resources(hc)?;
        // Deny every device but Docker's standard ones (a container's root has CAP_MKNOD).
        resources.devices = oci::DeviceRule::docker_defaults();

        let caps: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
        // The user's first; wharf's own (create refuses their prefix) always win.
        let mut annotations = rec.host_config.annotations.clone();
        annotations.insert(oci::ANNOTATION_OVERLAY.to_string(), overlay);
        let mut spec = Spec {
            oci_version: "1.0.2".to_string(),
            process: Some(oci::Process {
                terminal: rec.config.tty,
                console_size: None,
                user: oci::User { uid: u.uid, gid: u.gid, umask: None, additional_gids: u.additional_gids },
                args: std::iter::once(rec.path.clone()).chain(rec.args.iter().cloned()).collect(),
                env,
                cwd: if rec.config.working_dir.is_empty() { "/".to_string() } else { rec.config.working_dir.clone() },
                capabilities: Some(oci::Capabilities {
                    bounding: caps.clone(),
                    effective: caps.clone(),
                    inheritable: Vec::new(),
                    permitted: caps,
                    ambient: Vec::new(),
                }),
                rlimits: Vec::new(),
                no_new_privileges: false,
                oom_score_adj: None,
                apparmor_profile: None,
            }),
            root: Some(oci::Root {
                path: dirs.rootfs.display().to_string(),
                readonly: rec.host_config.readonly_rootfs,
            }),
            // A joined UTS namespace (a pod's) has its name already: the container must not set it.
            hostname: if joins_uts { None } else { Some(hostname) },
            domainname: if joins_uts || rec.config.domainname.is_empty() {
                None
            } else {
                Some(rec.config.domainname.clone())
            },
            mounts,
            linux: Some(oci::Linux {
                namespaces,
                cgroups_path: Some(self.cgroup_for(&rec.id, &rec.host_config.cgroup_parent)),
                resources: Some(resources),
                masked_paths: MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
                readonly_paths: READONLY_PATHS.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }),
            annotations,
        };
        // As dockerd's spec: the daemon's real-time budget on the way down to the parent.
        let defaults = &self.inner.config.container_defaults;
        if defaults.cpu_rt_period != 0 || defaults.cpu_rt_runtime != 0 {
            let path = wharf_runtime::cgroups::fs_path(&self.cgroup_for(&rec.id, &rec.host_config.cgroup_parent))
                .map_err(|e| EngineError::Internal(e.to_string()))?;
            let parent = path.rsplit_once('/').map_or("/", |(p, _)| if p.is_empty() { "/" } else { p });
            wharf_runtime::cgroups::set_realtime_budget(parent, defaults.cpu_rt_period, defaults.cpu_rt_runtime)
                .map_err(|e| EngineError::Internal(format!("unable to init CPU RT controller: {e}")))?;
        }
        self.apply_security(rec, &mut spec)?;
        self.apply_init(rec, &mut spec)?;
        self.apply_userns(rec, &mut spec)?;
        Ok(spec)
    }
}

fn host_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Checks a cpuset list (`0-2,4`) against what the host has, with dockerd's messages: the
/// CPUs (`cpuset.cpus`) or memory nodes (`cpuset.mems`) of the root cpuset.
/// `--cgroup-parent` as a cgroup path: absolute, without `..` or empty components. A relative
/// parent is taken from the root of the hierarchies (dockerd's runc takes it from its own
/// cgroup, which is the root for a daemon that runs there).
///
/// With the systemd driver the parent is a slice's name, which dockerd checks the same way.
pub(crate) fn check_cgroup_parent(parent: &str, driver: crate::CgroupDriver) -> Result<String, crate::EngineError> {
    if parent.is_empty() {
        return Ok(String::new());
    }
    if driver == crate::CgroupDriver::Systemd {
        wharf_runtime::systemd::expand_slice(parent).map_err(|e| crate::EngineError::Invalid(e.to_string()))?;
        return Ok(parent.to_string());
    }
    let parts: Vec<&str> = parent.split('/').filter(|c| !c.is_empty()).collect();
    if parts.iter().any(|c| *c == "." || *c == "..") || parent.contains('\0') {
        return Err(crate::EngineError::Invalid(format!(
            "invalid cgroup parent {parent:?}: it must be a cgroup path without '.' or '..'"
        )));
    }
    Ok(format!("/{}", parts.join("/")))
}

pub(crate) fn check_cpuset(list: &str, file: &str) -> Result<(), crate::EngineError> {
    if list.is_empty() {
        return Ok(());
    }
    // dockerd's words: "cpuset cpus" for the file cpuset.cpus, and the parser's reason.
    let invalid = || {
        crate::EngineError::Invalid(format!(
            "Invalid value {list} for {}: invalid format: {list}",
            file.replace('.', " ")
        ))
    };
    let parse = |l: &str| -> Option<Vec<u32>> {
        let mut out = Vec::new();
        for part in l.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?);
                    if b < a || b - a > 4096 {
                        return None;
                    }
                    out.extend(a..=b);
                }
                None => out.push(part.parse().ok()?),
            }
        }
        Some(out)
    };
    let wanted = parse(list).ok_or_else(invalid)?;
    let available = ["/sys/fs/cgroup/cpuset", "/sys/fs/cgroup"]
        .iter()
        .find_map(|d| {
            std::fs::read_to_string(format!("{d}/{file}.effective"))
                .ok()
                .or_else(|| std::fs::read_to_string(format!("{d}/{file}")).ok())
        })
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    if let Some(have) = parse(&available).filter(|h| !h.is_empty()) {
        if wanted.iter().any(|w| !have.contains(w)) {
            let what = if file == "cpuset.cpus" { "CPUs" } else { "memory nodes" };
            return Err(crate::EngineError::Invalid(format!(
                "Requested {what} are not available - requested {list}, available: {available}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_cgroup_parent;

    #[test]
    fn cgroup_parents_are_normalized_or_refused() {
        for (given, want) in [
            ("", Some("")),
            ("/", Some("/")),
            ("/a/b/", Some("/a/b")),
            ("a//b", Some("/a/b")),
            ("/a/../etc", None),
            ("./a", None),
            ("a\0b", None),
        ] {
            assert_eq!(check_cgroup_parent(given, crate::CgroupDriver::Cgroupfs).ok().as_deref(), want, "{given:?}");
        }
        let systemd = |p: &str| check_cgroup_parent(p, crate::CgroupDriver::Systemd).map_err(|e| e.to_string());
        assert_eq!(systemd("user-1000.slice").unwrap(), "user-1000.slice");
        let e = systemd("/wharf").unwrap_err();
        assert!(e.contains("should be a valid slice named as \"xxx.slice\""), "{e}");
    }
}
