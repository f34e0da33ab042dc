//! The Docker Engine API's JSON bodies that the CLI reads or sends, with only the fields it
//! uses; unknown fields are ignored and missing ones default, so newer or older daemons work.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `POST /containers/create` body, as the docker CLI sends it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub hostname: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub domainname: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub user: String,
    #[serde(default)]
    pub attach_stdin: bool,
    #[serde(default)]
    pub attach_stdout: bool,
    #[serde(default)]
    pub attach_stderr: bool,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub open_stdin: bool,
    #[serde(default)]
    pub stdin_once: bool,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub env: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cmd: Option<Vec<String>>,
    pub image: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub working_dir: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub stop_signal: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stop_timeout: Option<i64>,
    /// `{"80/tcp": {}}`
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    /// `{"Test": [...], "Interval": ns, "Timeout": ns, "Retries": n, "StartPeriod": ns}`
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub healthcheck: Option<serde_json::Value>,
    pub host_config: HostConfig,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub mac_address: String,
    /// `{"EndpointsConfig": {"net": {"Aliases": [..], "IPAMConfig": {"IPv4Address": ..}}}}`
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub networking_config: Option<serde_json::Value>,
}

/// The resource and runtime part of a create request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    #[serde(default)]
    pub auto_remove: bool,
    #[serde(default)]
    pub memory: i64,
    #[serde(default)]
    pub nano_cpus: i64,
    #[serde(default)]
    pub cpu_shares: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pids_limit: Option<i64>,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub network_mode: String,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub binds: Vec<String>,
    /// `--mount` entries as Docker's JSON (`{"Type","Source","Target","ReadOnly",...}`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub mounts: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub tmpfs: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub readonly_rootfs: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub init: bool,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub volumes_from: Vec<String>,
    /// `{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub publish_all_ports: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub dns: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub dns_search: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub dns_options: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub extra_hosts: Vec<String>,
    /// `--link name[:alias]`
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub links: Vec<String>,
    /// `--cgroup-parent`: the container's cgroup goes under it instead of the daemon's parent.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub cgroup_parent: String,
    /// `--runtime`: the daemon's name of an OCI runtime.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub runtime: String,
    /// `--volume-driver`: the driver of the volumes `-v` creates.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub volume_driver: String,
    /// `--annotation`: passed to the OCI runtime.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub annotations: BTreeMap<String, String>,
    /// `{"Type": "json-file", "Config": {"max-size": "10k"}}`
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub log_config: Option<serde_json::Value>,
    /// Capabilities, seccomp, ulimits, namespaces, devices: at the HostConfig's own level.
    #[serde(flatten)]
    pub security: SecurityConfig,
    /// The other resource controls (`MemoryReservation`, `CpusetCpus`, `Blkio*`, ...) as
    /// Docker names them, at the HostConfig's own level.
    #[serde(flatten)]
    pub resources: serde_json::Map<String, serde_json::Value>,
}

/// The security fields of `HostConfig`, as Docker names them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct SecurityConfig {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// `seccomp=unconfined`, `seccomp=<profile JSON>`, `no-new-privileges`, ...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<UlimitConfig>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub shm_size: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ipc_mode: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pid_mode: String,
    #[serde(rename = "UTSMode", skip_serializing_if = "String::is_empty")]
    pub uts_mode: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cgroupns_mode: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub userns_mode: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub oom_score_adj: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_kill_disable: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    /// `Some(vec![])` unmasks everything (`--security-opt systempaths=unconfined`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masked_paths: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readonly_paths: Option<Vec<String>>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// One `HostConfig.Ulimits` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct UlimitConfig {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// One `HostConfig.Devices` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceConfig {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

/// `HostConfig.RestartPolicy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicy {
    pub name: String,
    #[serde(default)]
    pub maximum_retry_count: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    #[serde(default)]
    pub host_ip: String,
    #[serde(default)]
    pub host_port: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateResponse {
    pub id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub warnings: Vec<String>,
}

/// `POST /containers/{id}/wait` answer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WaitResponse {
    pub status_code: i64,
    #[serde(default)]
    pub error: Option<WaitError>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WaitError {
    #[serde(default)]
    pub message: String,
}

/// One entry of `GET /containers/json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSummary {
    pub id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub names: Vec<String>,
    #[serde(default)]
    pub image: String,
    #[serde(rename = "ImageID", default)]
    pub image_id: String,
    #[serde(default)]
    pub command: String,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub ports: Vec<Port>,
    #[serde(default)]
    pub size_rw: Option<i64>,
    #[serde(default)]
    pub size_root_fs: Option<i64>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub mounts: Vec<SummaryMount>,
    #[serde(default)]
    pub network_settings: Option<SummaryNetworks>,
}

/// A mount as the container list reports it (what `ps --format '{{.Mounts}}'` shows).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SummaryMount {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub driver: String,
}

/// The networks a listed container is on, by name (their details are not needed by `ps`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SummaryNetworks {
    #[serde(rename = "Networks", default, deserialize_with = "null_as_default")]
    /// Skipped unparsed: with thousands of containers, building a `Value` of each endpoint
    /// was a third of `wharf ps`.
    pub networks: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Port {
    #[serde(rename = "IP", default)]
    pub ip: String,
    #[serde(rename = "PrivatePort", default)]
    pub private_port: u16,
    #[serde(rename = "PublicPort", default)]
    pub public_port: u16,
    #[serde(rename = "Type", default)]
    pub kind: String,
}

/// One entry of `GET /images/json`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    pub id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub repo_tags: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub repo_digests: Vec<String>,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub size: i64,
}

/// One entry of `DELETE /images/{name}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageDeleteItem {
    #[serde(default)]
    pub untagged: Option<String>,
    #[serde(default)]
    pub deleted: Option<String>,
}

/// The few fields of `GET /containers/{id}/json` the CLI needs for itself.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspectBrief {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub config: Option<ContainerConfigBrief>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfigBrief {
    #[serde(default)]
    pub tty: bool,
}

/// `GET /version`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Version {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub min_api_version: String,
    #[serde(default)]
    pub git_commit: String,
    #[serde(default)]
    pub go_version: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub arch: String,
    #[serde(default)]
    pub kernel_version: String,
    #[serde(default)]
    pub build_time: String,
    #[serde(default)]
    pub platform: Option<PlatformName>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlatformName {
    #[serde(default)]
    pub name: String,
}

/// `GET /info`, the fields `wharf info` prints.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Info {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(default)]
    pub http_proxy: String,
    #[serde(default)]
    pub https_proxy: String,
    #[serde(default)]
    pub no_proxy: String,
    #[serde(default)]
    pub containers: i64,
    #[serde(default)]
    pub containers_running: i64,
    #[serde(default)]
    pub containers_paused: i64,
    #[serde(default)]
    pub containers_stopped: i64,
    #[serde(default)]
    pub images: i64,
    #[serde(default)]
    pub server_version: String,
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub logging_driver: String,
    #[serde(default)]
    pub cgroup_driver: String,
    #[serde(default)]
    pub cgroup_version: String,
    #[serde(default)]
    pub kernel_version: String,
    #[serde(default)]
    pub operating_system: String,
    #[serde(rename = "OSType", default)]
    pub os_type: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(rename = "NCPU", default)]
    pub ncpu: i64,
    #[serde(default)]
    pub mem_total: i64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub docker_root_dir: String,
    #[serde(default)]
    pub default_runtime: String,
    /// The OCI runtimes by name (`{"path", "runtimeArgs"}` each).
    #[serde(default)]
    pub runtimes: std::collections::BTreeMap<String, serde_json::Value>,
}

/// One message of a JSON progress stream (pull, push, build).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JsonMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<ProgressDetail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<ErrorDetail>,
    /// A build's `{"ID": "sha256:..."}` of each finished stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct ProgressDetail {
    #[serde(default)]
    pub current: Option<i64>,
    #[serde(default)]
    pub total: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct ErrorDetail {
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub message: String,
}

impl JsonMessage {
    /// The error this message carries, if it is an error message.
    pub fn error_message(&self) -> Option<&str> {
        match (&self.error_detail, &self.error) {
            (Some(d), _) if !d.message.is_empty() => Some(&d.message),
            (_, Some(e)) => Some(e),
            _ => None,
        }
    }
}

// Go daemons write `null` for empty arrays; treat it as empty.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_go_style_nulls_and_unknown_fields() {
        let c: ContainerSummary = serde_json::from_str(
            r#"{"Id":"abc","Names":null,"Ports":null,"Image":"busybox","Command":"sh","Created":5,"Extra":1}"#,
        )
        .unwrap();
        assert!(c.names.is_empty() && c.ports.is_empty());
        let m: JsonMessage =
            serde_json::from_str(r#"{"errorDetail":{"message":"manifest unknown"},"error":"x"}"#).unwrap();
        assert_eq!(m.error_message(), Some("manifest unknown"));
    }

    #[test]
    fn writes_create_body_like_docker() {
        let cfg = ContainerConfig {
            image: "busybox".into(),
            cmd: Some(vec!["ls".into(), "-l".into()]),
            attach_stdout: true,
            host_config: HostConfig { memory: 1024, ..Default::default() },
            ..Default::default()
        };
        let v = serde_json::to_value(&cfg).unwrap();
        assert_eq!(v["Image"], "busybox");
        assert_eq!(v["Cmd"][1], "-l");
        assert_eq!(v["AttachStdout"], true);
        assert_eq!(v["HostConfig"]["Memory"], 1024);
        assert!(v.get("Entrypoint").is_none());
    }
}
