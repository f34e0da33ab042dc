//! What the CRI keeps in the engine's records: dockershim's names and labels, and the CRI's own
//! metadata of a sandbox or container as JSON in one label (`io.wharf.cri`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wharf_engine::{ContainerRecord, Status as EngineStatus};

use crate::grpc::Status;
use crate::proto::{self, ContainerMetadata, ImageSpec, Map, Mount, PodSandboxConfig};

/// dockershim's label saying what an engine container is to Kubernetes.
pub const TYPE_LABEL: &str = "io.kubernetes.docker.type";
pub const TYPE_SANDBOX: &str = "podsandbox";
pub const TYPE_CONTAINER: &str = "container";
/// dockershim's label naming a container's sandbox.
pub const SANDBOX_ID_LABEL: &str = "io.kubernetes.sandbox.id";
/// The CRI's metadata of the object, JSON.
pub const META_LABEL: &str = "io.wharf.cri";

/// A sandbox as the CRI was asked for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxMeta {
    pub config: PodSandboxConfig,
    #[serde(default)]
    pub runtime_handler: String,
}

/// A container as the CRI was asked for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerMeta {
    pub sandbox_id: String,
    pub metadata: ContainerMetadata,
    pub image: ImageSpec,
    pub labels: Map,
    pub annotations: Map,
    /// `log_directory` of the sandbox joined with the container's `log_path`; empty for none.
    pub log_path: String,
    pub mounts: Vec<Mount>,
}

impl SandboxMeta {
    pub fn metadata(&self) -> proto::PodSandboxMetadata {
        self.config.metadata.clone().unwrap_or_default()
    }

    /// The pod's network, IPC and pid modes (`POD`, `NODE`, ...), as kubelet set them.
    pub fn namespaces(&self) -> proto::NamespaceOption {
        self.config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.clone())
            .unwrap_or_default()
    }

    pub fn host_network(&self) -> bool {
        self.namespaces().network == proto::NS_NODE
    }

    pub fn cgroup_parent(&self) -> String {
        self.config.linux.as_ref().map(|l| l.cgroup_parent.clone()).unwrap_or_default()
    }
}

/// dockershim's name of a sandbox's container: `k8s_POD_<pod>_<namespace>_<uid>_<attempt>`.
pub fn sandbox_name(m: &proto::PodSandboxMetadata) -> String {
    format!("k8s_POD_{}_{}_{}_{}", m.name, m.namespace, m.uid, m.attempt)
}

/// dockershim's name of a pod's container: `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`.
pub fn container_name(c: &ContainerMetadata, pod: &proto::PodSandboxMetadata) -> String {
    format!("k8s_{}_{}_{}_{}_{}", c.name, pod.name, pod.namespace, pod.uid, c.attempt)
}

/// The labels an engine record gets: the caller's, dockershim's type (and sandbox id), and the
/// CRI's metadata.
pub fn record_labels(
    user: &Map,
    kind: &str,
    sandbox: Option<&str>,
    meta: &impl Serialize,
) -> Result<BTreeMap<String, String>, Status> {
    let mut labels: BTreeMap<String, String> = user.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    labels.insert(TYPE_LABEL.to_string(), kind.to_string());
    if let Some(id) = sandbox {
        labels.insert(SANDBOX_ID_LABEL.to_string(), id.to_string());
    }
    let json = serde_json::to_string(meta).map_err(|e| Status::internal(format!("encode cri metadata: {e}")))?;
    labels.insert(META_LABEL.to_string(), json);
    Ok(labels)
}

fn is_kind(rec: &ContainerRecord, kind: &str) -> bool {
    rec.config.labels.get(TYPE_LABEL).map(String::as_str) == Some(kind) && rec.config.labels.contains_key(META_LABEL)
}

/// The CRI metadata of a sandbox's record; `None` for any other container.
pub fn sandbox_meta(rec: &ContainerRecord) -> Option<SandboxMeta> {
    if !is_kind(rec, TYPE_SANDBOX) {
        return None;
    }
    serde_json::from_str(rec.config.labels.get(META_LABEL)?).ok()
}

/// The CRI metadata of a pod container's record; `None` for any other container.
pub fn container_meta(rec: &ContainerRecord) -> Option<ContainerMeta> {
    if !is_kind(rec, TYPE_CONTAINER) {
        return None;
    }
    serde_json::from_str(rec.config.labels.get(META_LABEL)?).ok()
}

/// Nanoseconds since the epoch of an engine time stamp (RFC 3339); 0 for none.
pub fn nanos(rfc3339: &str) -> i64 {
    wharf_types::time::parse_rfc3339(rfc3339)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The CRI state of an engine container.
pub fn container_state(rec: &ContainerRecord) -> i32 {
    match rec.state.status {
        EngineStatus::Created => proto::CONTAINER_CREATED,
        EngineStatus::Running | EngineStatus::Paused | EngineStatus::Restarting => proto::CONTAINER_RUNNING,
        EngineStatus::Exited | EngineStatus::Dead => proto::CONTAINER_EXITED,
        EngineStatus::Removing => proto::CONTAINER_UNKNOWN,
    }
}

/// Whether every `key=value` of the selector is among the labels.
pub fn selects(selector: &Map, labels: &Map) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The least `oom_score_adj` a CRI object may get: wharfd's own, so that the kernel's OOM
/// killer never picks wharfd before a pod (kubelet asks -998 for sandboxes).
pub fn clamp_oom_score_adj(asked: i64) -> i64 {
    let own = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(0);
    asked.clamp(own, 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dockershims() {
        let pod = proto::PodSandboxMetadata {
            name: "web".into(),
            uid: "0f1e".into(),
            namespace: "default".into(),
            attempt: 2,
        };
        assert_eq!(sandbox_name(&pod), "k8s_POD_web_default_0f1e_2");
        let c = ContainerMetadata { name: "nginx".into(), attempt: 0 };
        assert_eq!(container_name(&c, &pod), "k8s_nginx_web_default_0f1e_0");
    }

    #[test]
    fn selectors_need_every_pair() {
        let labels: Map = [("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())].into();
        assert!(selects(&Map::new(), &labels));
        assert!(selects(&[("a".to_string(), "1".to_string())].into(), &labels));
        assert!(!selects(&[("a".to_string(), "2".to_string())].into(), &labels));
        assert!(!selects(&[("c".to_string(), "1".to_string())].into(), &labels));
    }

    #[test]
    fn times_are_nanoseconds() {
        assert_eq!(nanos("1970-01-01T00:00:01.5Z"), 1_500_000_000);
        assert_eq!(nanos(""), 0);
    }
}
