//! The security fields of a create request's HostConfig (CapAdd, Privileged, SecurityOpt,
//! Ulimits, Sysctls, namespaces modes, Devices, ...) and their inspect form.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};
use wharf_engine::{DeviceMapping, SecurityOptions, Ulimit};

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct SecurityBody {
    privileged: bool,
    cap_add: Option<Vec<String>>,
    cap_drop: Option<Vec<String>>,
    security_opt: Option<Vec<String>>,
    ulimits: Option<Vec<UlimitBody>>,
    sysctls: Option<BTreeMap<String, String>>,
    shm_size: Option<i64>,
    group_add: Option<Vec<String>>,
    ipc_mode: Option<String>,
    pid_mode: Option<String>,
    #[serde(rename = "UTSMode")]
    pub(crate) uts_mode: Option<String>,
    cgroupns_mode: Option<String>,
    oom_score_adj: Option<i64>,
    devices: Option<Vec<DeviceBody>>,
    device_cgroup_rules: Option<Vec<String>>,
    oom_kill_disable: Option<bool>,
    masked_paths: Option<Vec<String>>,
    readonly_paths: Option<Vec<String>>,
    userns_mode: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct UlimitBody {
    name: String,
    soft: i64,
    hard: i64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct DeviceBody {
    path_on_host: String,
    path_in_container: String,
    cgroup_permissions: String,
}

impl SecurityBody {
    pub fn into_options(self) -> SecurityOptions {
        SecurityOptions {
            privileged: self.privileged,
            cap_add: self.cap_add.unwrap_or_default(),
            cap_drop: self.cap_drop.unwrap_or_default(),
            security_opt: self.security_opt.unwrap_or_default(),
            ulimits: self
                .ulimits
                .unwrap_or_default()
                .into_iter()
                .map(|u| Ulimit { name: u.name, soft: u.soft, hard: u.hard })
                .collect(),
            sysctls: self.sysctls.unwrap_or_default(),
            shm_size: self.shm_size.unwrap_or(0),
            group_add: self.group_add.unwrap_or_default(),
            ipc_mode: self.ipc_mode.unwrap_or_default(),
            pid_mode: self.pid_mode.unwrap_or_default(),
            uts_mode: self.uts_mode.unwrap_or_default(),
            cgroupns_mode: self.cgroupns_mode.unwrap_or_default(),
            oom_score_adj: self.oom_score_adj.unwrap_or(0),
            devices: self
                .devices
                .unwrap_or_default()
                .into_iter()
                .map(|d| DeviceMapping {
                    path_on_host: d.path_on_host,
                    path_in_container: d.path_in_container,
                    cgroup_permissions: d.cgroup_permissions,
                })
                .collect(),
            device_cgroup_rules: self.device_cgroup_rules.unwrap_or_default(),
            oom_kill_disable: self.oom_kill_disable.unwrap_or(false),
            masked_paths: self.masked_paths,
            readonly_paths: self.readonly_paths,
            userns_mode: self.userns_mode.unwrap_or_default(),
        }
    }
}

fn list(v: &[String]) -> Value {
    if v.is_empty() {
        Value::Null
    } else {
        json!(v)
    }
}

/// The default list, or none for a privileged container (which masks nothing).
fn paths_or_none(privileged: bool, defaults: &[&str]) -> Vec<String> {
    if privileged {
        Vec::new()
    } else {
        defaults.iter().map(|s| s.to_string()).collect()
    }
}

/// Adds the security fields to inspect's HostConfig object.
pub fn inspect_into(host_config: &mut Value, o: &SecurityOptions) {
    let Some(m) = host_config.as_object_mut() else { return };
    let shm = if o.shm_size > 0 { o.shm_size } else { 64 * 1024 * 1024 };
    let ipc = if o.ipc_mode.is_empty() { "private" } else { o.ipc_mode.as_str() };
    let cgroupns = if o.cgroupns_mode.is_empty() { "host" } else { o.cgroupns_mode.as_str() };
    let fields = json!({
        "Privileged": o.privileged,
        "CapAdd": list(&o.cap_add),
        "CapDrop": list(&o.cap_drop),
        "SecurityOpt": list(&o.security_opt),
        "Ulimits": o.ulimits.iter().map(|u| json!({"Name": u.name, "Soft": u.soft, "Hard": u.hard})).collect::<Vec<_>>(),
        "Sysctls": o.sysctls,
        "ShmSize": shm,
        "GroupAdd": list(&o.group_add),
        "IpcMode": ipc,
        "PidMode": o.pid_mode,
        "UTSMode": o.uts_mode,
        "CgroupnsMode": cgroupns,
        "UsernsMode": o.userns_mode,
        "OomScoreAdj": o.oom_score_adj,
        "Devices": o.devices.iter().map(|d| json!({
            "PathOnHost": d.path_on_host,
            "PathInContainer": d.path_in_container,
            "CgroupPermissions": d.cgroup_permissions,
        })).collect::<Vec<_>>(),
        "DeviceCgroupRules": list(&o.device_cgroup_rules),
        // Dropped on hosts that cannot honour it, as dockerd records it.
        "OomKillDisable": o.oom_kill_disable && wharf_engine::oom_kill_disable_supported(),
        "MaskedPaths": o.masked_paths.clone().unwrap_or_else(|| paths_or_none(o.privileged, wharf_engine::DEFAULT_MASKED_PATHS)),
        "ReadonlyPaths": o.readonly_paths.clone().unwrap_or_else(|| paths_or_none(o.privileged, wharf_engine::DEFAULT_READONLY_PATHS)),
    });
    if let Value::Object(f) = fields {
        m.extend(f);
    }
}
