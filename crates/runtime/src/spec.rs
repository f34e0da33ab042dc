//! The subset of the OCI runtime-spec `config.json` that wharf writes and reads. Field names
//! follow the spec exactly, so `runc run` accepts the same bundle; unknown fields are ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Annotation carrying the overlay mount options for the rootfs
/// (`lowerdir=...,upperdir=...,workdir=...`). wharf's init mounts it inside the container's own
/// mount namespace, so no rootfs mount ever exists in the host's namespace (nothing to leak on a
/// crash). Other runtimes ignore it and expect `root.path` to be mounted already.
pub const ANNOTATION_OVERLAY: &str = "io.wharf.rootfs.overlay";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Spec {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<Root>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux: Option<Linux>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Process {
    #[serde(default)]
    pub terminal: bool,
    #[serde(rename = "consoleSize", default, skip_serializing_if = "Option::is_none")]
    pub console_size: Option<ConsoleSize>,
    pub user: User,
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    pub cwd: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rlimits: Vec<Rlimit>,
    #[serde(rename = "noNewPrivileges", default)]
    pub no_new_privileges: bool,
    #[serde(rename = "oomScoreAdj", default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    #[serde(rename = "apparmorProfile", default, skip_serializing_if = "Option::is_none")]
    pub apparmor_profile: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ConsoleSize {
    pub height: u32,
    pub width: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umask: Option<u32>,
    #[serde(rename = "additionalGids", default, skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Capabilities {
    #[serde(default)]
    pub bounding: Vec<String>,
    #[serde(default)]
    pub effective: Vec<String>,
    #[serde(default)]
    pub inheritable: Vec<String>,
    #[serde(default)]
    pub permitted: Vec<String>,
    #[serde(default)]
    pub ambient: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    #[serde(rename = "type")]
    pub kind: String,
    pub hard: u64,
    pub soft: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Root {
    pub path: String,
    #[serde(default)]
    pub readonly: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Mount {
    pub destination: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Linux {
    #[serde(default)]
    pub namespaces: Vec<Namespace>,
    #[serde(rename = "uidMappings", default, skip_serializing_if = "Vec::is_empty")]
    pub uid_mappings: Vec<IdMapping>,
    #[serde(rename = "gidMappings", default, skip_serializing_if = "Vec::is_empty")]
    pub gid_mappings: Vec<IdMapping>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    #[serde(rename = "cgroupsPath", default, skip_serializing_if = "Option::is_none")]
    pub cgroups_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(rename = "maskedPaths", default, skip_serializing_if = "Vec::is_empty")]
    pub masked_paths: Vec<String>,
    #[serde(rename = "readonlyPaths", default, skip_serializing_if = "Vec::is_empty")]
    pub readonly_paths: Vec<String>,
    #[serde(rename = "rootfsPropagation", default, skip_serializing_if = "Option::is_none")]
    pub rootfs_propagation: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctl: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// `pid`, `network`, `mount`, `ipc`, `uts`, `user`, `cgroup`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Join this namespace instead of creating a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    #[serde(rename = "containerID")]
    pub container_id: u32,
    #[serde(rename = "hostID")]
    pub host_id: u32,
    pub size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    #[serde(rename = "type")]
    pub kind: String,
    pub path: String,
    #[serde(default)]
    pub major: i64,
    #[serde(default)]
    pub minor: i64,
    #[serde(rename = "fileMode", default, skip_serializing_if = "Option::is_none")]
    pub file_mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<Pids>,
    #[serde(rename = "blockIO", default, skip_serializing_if = "Option::is_none")]
    pub block_io: Option<BlockIo>,
    #[serde(rename = "hugepageLimits", default, skip_serializing_if = "Vec::is_empty")]
    pub hugepage_limits: Vec<HugepageLimit>,
    /// cgroup v2 files by name, written as given (kubelet's memory QoS, for one).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unified: BTreeMap<String, String>,
}

/// `linux.resources.hugepageLimits[]`: bytes of pages of one size (`2MB`, `1GB`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct HugepageLimit {
    pub page_size: String,
    pub limit: u64,
}

/// `linux.resources.blockIO`: weights and throttles; devices by number, as the spec has them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct BlockIo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weight_device: Vec<WeightDevice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throttle_read_bps_device: Vec<ThrottleDevice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throttle_write_bps_device: Vec<ThrottleDevice>,
    #[serde(rename = "throttleReadIOPSDevice", default, skip_serializing_if = "Vec::is_empty")]
    pub throttle_read_iops_device: Vec<ThrottleDevice>,
    #[serde(rename = "throttleWriteIOPSDevice", default, skip_serializing_if = "Vec::is_empty")]
    pub throttle_write_iops_device: Vec<ThrottleDevice>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightDevice {
    pub major: i64,
    pub minor: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleDevice {
    pub major: i64,
    pub minor: i64,
    pub rate: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRule {
    pub allow: bool,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Memory {
    /// Bytes; -1 for unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<i64>,
    /// cgroup v1 only (`memory.oom_control`); v2 has no way to turn the OOM killer off.
    #[serde(rename = "disableOOMKiller", default, skip_serializing_if = "Option::is_none")]
    pub disable_oom_killer: Option<bool>,
    /// cgroup v1 only (`memory.swappiness`), 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swappiness: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Cpu {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shares: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mems: Option<String>,
    /// cgroup v1 only (`cpu.rt_period_us`, `cpu.rt_runtime_us`), microseconds.
    #[serde(rename = "realtimePeriod", default, skip_serializing_if = "Option::is_none")]
    pub realtime_period: Option<u64>,
    #[serde(rename = "realtimeRuntime", default, skip_serializing_if = "Option::is_none")]
    pub realtime_runtime: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Pids {
    pub limit: i64,
}

impl DeviceRule {
    /// Docker's default device cgroup rules for a non-privileged container: deny everything,
    /// then allow mknod of any node and use of the standard devices, pseudo-terminals and tun.
    pub fn docker_defaults() -> Vec<DeviceRule> {
        let rule = |allow: bool, kind: &str, major: Option<i64>, minor: Option<i64>, access: &str| DeviceRule {
            allow,
            kind: Some(kind.to_string()),
            major,
            minor,
            access: Some(access.to_string()),
        };
        vec![
            rule(false, "a", None, None, "rwm"),
            rule(true, "c", None, None, "m"),
            rule(true, "b", None, None, "m"),
            rule(true, "c", Some(1), Some(3), "rwm"),
            rule(true, "c", Some(1), Some(5), "rwm"),
            rule(true, "c", Some(1), Some(7), "rwm"),
            rule(true, "c", Some(1), Some(8), "rwm"),
            rule(true, "c", Some(1), Some(9), "rwm"),
            rule(true, "c", Some(5), Some(0), "rwm"),
            rule(true, "c", Some(5), Some(1), "rwm"),
            rule(true, "c", Some(5), Some(2), "rwm"),
            rule(true, "c", Some(136), None, "rwm"),
            rule(true, "c", Some(10), Some(200), "rwm"),
        ]
    }
}

impl Spec {
    /// A spec close to what `runc spec` writes: root, `rootfs` as the root path, namespaces
    /// pid/mount/uts/ipc/network, the standard mounts, masked and read-only paths, RLIMIT_NOFILE
    /// 1024, Docker's device cgroup rules, running `args` as root in `/` with a default PATH.
    pub fn example(args: &[&str]) -> Spec {
        let mount = |dest: &str, kind: &str, source: &str, options: &[&str]| Mount {
            destination: dest.to_string(),
            kind: Some(kind.to_string()),
            source: Some(source.to_string()),
            options: options.iter().map(|o| o.to_string()).collect(),
        };
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Spec {
            oci_version: "1.0.2".to_string(),
            process: Some(Process {
                terminal: false,
                console_size: None,
                user: User::default(),
                args: strings(args),
                env: strings(&["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"]),
                cwd: "/".to_string(),
                capabilities: None,
                rlimits: vec![Rlimit { kind: "RLIMIT_NOFILE".to_string(), hard: 1024, soft: 1024 }],
                no_new_privileges: true,
                oom_score_adj: None,
                apparmor_profile: None,
            }),
            root: Some(Root { path: "rootfs".to_string(), readonly: false }),
            hostname: Some("wharf".to_string()),
            domainname: None,
            mounts: vec![
                mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
                mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
                mount(
                    "/dev/pts",
                    "devpts",
                    "devpts",
                    &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
                ),
                mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
                mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
                mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
            ],
            linux: Some(Linux {
                namespaces: ["pid", "network", "ipc", "uts", "mount"]
                    .iter()
                    .map(|k| Namespace { kind: k.to_string(), path: None })
                    .collect(),
                masked_paths: strings(&[
                    "/proc/acpi",
                    "/proc/asound",
                    "/proc/kcore",
                    "/proc/keys",
                    "/proc/latency_stats",
                    "/proc/timer_list",
                    "/proc/timer_stats",
                    "/proc/sched_debug",
                    "/sys/firmware",
                    "/proc/scsi",
                ]),
                readonly_paths: strings(&["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]),
                resources: Some(Resources { devices: DeviceRule::docker_defaults(), ..Resources::default() }),
                ..Linux::default()
            }),
            annotations: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_round_trips() {
        let spec = Spec::example(&["sh"]);
        let json = serde_json::to_string(&spec).unwrap();
        assert!(json.contains("\"ociVersion\":\"1.0.2\""));
        assert!(json.contains("\"maskedPaths\""));
        let back: Spec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn runc_style_config_parses() {
        let json = r#"{"ociVersion":"1.0.2","process":{"user":{"uid":0,"gid":0},"args":["sh"],
            "cwd":"/","capabilities":{"bounding":["CAP_KILL"]}},"root":{"path":"rootfs","readonly":true},
            "linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/proc/1/ns/net"}],
            "cgroupsPath":"/wharf/x","resources":{"memory":{"limit":1048576},"pids":{"limit":10}}},
            "unknownField":1}"#;
        let spec: Spec = serde_json::from_str(json).unwrap();
        let linux = spec.linux.unwrap();
        assert_eq!(linux.cgroups_path.as_deref(), Some("/wharf/x"));
        assert_eq!(linux.namespaces[1].path.as_deref(), Some("/proc/1/ns/net"));
        assert_eq!(linux.resources.unwrap().pids.unwrap().limit, 10);
        assert!(spec.root.unwrap().readonly);
    }
}
