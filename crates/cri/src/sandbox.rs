//! Pod sandboxes: RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus and
//! ListPodSandbox over engine containers running the pause process.
//!
//! A sandbox on the pod network is an engine container of network mode `none` (the engine
//! makes its namespace, loopback up, bind-mounted at `<exec-root>/netns/<id>`), which CNI
//! then configures; with host networking it is of mode `host` and CNI is not run. It is ready
//! while its pause process runs and, on the pod network, while it has its CNI attachment.

use std::collections::BTreeMap;
use std::sync::Arc;

use wharf_engine::{ContainerRecord, CreateRequest, EngineError, HostConfig, ListOptions};

use crate::cni::{self, PodArgs};
use crate::grpc::{Code, Status};
use crate::meta::{self, SandboxMeta};
use crate::proto::{self, PodSandbox, PodSandboxConfig};
use crate::Cri;

/// kubelet's (and containerd's) score for sandboxes: the last thing the OOM killer takes.
const SANDBOX_OOM_SCORE_ADJ: i64 = -998;

/// A sandbox id that does not exist.
pub fn sandbox_not_found(id: &str) -> Status {
    Status::not_found(format!("pod sandbox \"{id}\" not found"))
}

impl Cri {
    /// The sandbox's record and metadata by id or unique id prefix.
    pub(crate) fn find_sandbox(&self, id: &str) -> Result<(ContainerRecord, SandboxMeta), Status> {
        self.find_cri_record(id, "pod sandbox", sandbox_not_found, meta::sandbox_meta)
    }

    /// A CRI object's engine record and its metadata (`meta` reads it; `None` when the record
    /// is not of that kind) by id or unique id prefix; `not_found` names the missing object.
    pub(crate) fn find_cri_record<M>(
        &self,
        id: &str,
        what: &str,
        not_found: fn(&str) -> Status,
        meta: fn(&ContainerRecord) -> Option<M>,
    ) -> Result<(ContainerRecord, M), Status> {
        if id.is_empty() {
            return Err(Status::invalid(format!("{what} id is empty")));
        }
        let rec = self.engine.find_container(id).map_err(|_| not_found(id))?;
        // A name is no CRI id: only ids (or their prefixes) name CRI objects.
        if !rec.id.starts_with(id) {
            return Err(not_found(id));
        }
        let m = meta(&rec).ok_or_else(|| not_found(id))?;
        Ok((rec, m))
    }

    /// Every sandbox record with its metadata, newest first.
    pub(crate) fn sandboxes(&self) -> Result<Vec<(Arc<ContainerRecord>, SandboxMeta)>, Status> {
        Ok(self
            .list_typed(meta::TYPE_SANDBOX)?
            .into_iter()
            .filter_map(|r| meta::sandbox_meta(&r).map(|m| (r, m)))
            .collect())
    }

    /// Every engine container with dockershim's type label `kind`.
    pub(crate) fn list_typed(&self, kind: &str) -> Result<Vec<Arc<ContainerRecord>>, Status> {
        let mut filters = BTreeMap::new();
        filters.insert("label".to_string(), vec![format!("{}={kind}", meta::TYPE_LABEL)]);
        Ok(self.engine.list_containers(&ListOptions { all: true, limit: None, filters })?)
    }

    /// Ready: the pause process runs and, on the pod network, CNI attached it.
    pub(crate) fn sandbox_state(&self, rec: &ContainerRecord, m: &SandboxMeta) -> i32 {
        let running = rec.state.running;
        let networked = m.host_network() || cni::load_attachment(&self.state_dir(), &rec.id).is_some();
        if running && networked {
            proto::SANDBOX_READY
        } else {
            proto::SANDBOX_NOTREADY
        }
    }

    pub(crate) async fn run_pod_sandbox(
        &self,
        r: proto::RunPodSandboxRequest,
    ) -> Result<proto::RunPodSandboxResponse, Status> {
        let config = r.config.ok_or_else(|| Status::invalid("RunPodSandbox: no sandbox config"))?;
        let md = config.metadata.clone().ok_or_else(|| Status::invalid("sandbox config must include metadata"))?;
        for (what, v) in [("name", &md.name), ("namespace", &md.namespace), ("uid", &md.uid)] {
            if v.is_empty() {
                return Err(Status::invalid(format!("sandbox metadata {what} is empty")));
            }
        }
        if !r.runtime_handler.is_empty() && r.runtime_handler != "wharf" {
            return Err(Status::not_found(format!(
                "no runtime for \"{}\" is configured (wharf has one: \"wharf\", the default)",
                r.runtime_handler
            )));
        }
        let m = SandboxMeta { config: config.clone(), runtime_handler: r.runtime_handler.clone() };
        let image = self.pause_image().await?;
        let name = meta::sandbox_name(&md);
        let req = self.sandbox_create_request(&m, &config, &image, &name)?;
        // No lock: nobody knows the new sandbox's id before this call answers.
        let rec = self.engine.create_container(req).await.map_err(|e| name_conflict(e, &name))?;
        let id = rec.id.clone();
        if let Err(e) = self.engine.start_container(&id).await {
            let s = Status::from(e);
            self.discard(&id).await;
            return Err(Status::new(s.code, format!("start sandbox {name}: {}", s.message)));
        }
        if !m.host_network() {
            if let Err(e) = self.attach_network(&id, &m).await {
                self.discard(&id).await;
                return Err(Status::new(Code::Unknown, format!("failed to set up network for sandbox \"{id}\": {e}")));
            }
        }
        log::info!("cri: ran pod sandbox {name} as {id}");
        Ok(proto::RunPodSandboxResponse { pod_sandbox_id: id })
    }

    fn sandbox_create_request(
        &self,
        m: &SandboxMeta,
        config: &PodSandboxConfig,
        image: &str,
        name: &str,
    ) -> Result<CreateRequest, Status> {
        let ns = m.namespaces();
        let linux = config.linux.clone().unwrap_or_default();
        let mut hc = HostConfig {
            network_mode: if ns.network == proto::NS_NODE { "host".into() } else { "none".into() },
            cgroup_parent: linux.cgroup_parent.clone(),
            ..Default::default()
        };
        let s = &mut hc.security;
        s.ipc_mode = if ns.ipc == proto::NS_NODE { "host".into() } else { "shareable".into() };
        if ns.pid == proto::NS_NODE {
            s.pid_mode = "host".into();
        }
        if ns.network == proto::NS_NODE {
            s.uts_mode = "host".into();
        }
        s.sysctls = linux.sysctls.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        s.oom_score_adj = meta::clamp_oom_score_adj(SANDBOX_OOM_SCORE_ADJ);
        if let Some(dns) = &config.dns_config {
            hc.net.dns = dns.servers.clone();
            hc.net.dns_search = dns.searches.clone();
            hc.net.dns_options = dns.options.clone();
        }
        let hostname = if config.hostname.is_empty() { None } else { Some(config.hostname.clone()) };
        Ok(CreateRequest {
            name: Some(name.to_string()),
            image: image.to_string(),
            entrypoint: Some(crate::pause::ENTRYPOINT.iter().map(|s| s.to_string()).collect()),
            cmd: Some(Vec::new()),
            hostname: if ns.network == proto::NS_NODE { None } else { hostname },
            labels: meta::record_labels(&config.labels, meta::TYPE_SANDBOX, None, m)?,
            host_config: hc,
            ..Default::default()
        })
    }

    /// CNI ADD for a running sandbox; the attachment is recorded only once ADD succeeded.
    async fn attach_network(&self, id: &str, m: &SandboxMeta) -> Result<(), String> {
        let netns = self.engine.container_netns_path(id);
        let md = m.metadata();
        let ports: Vec<serde_json::Value> = m
            .config
            .port_mappings
            .iter()
            .filter(|p| p.host_port > 0)
            .map(|p| {
                let proto = match p.protocol {
                    proto::PROTO_UDP => "udp",
                    proto::PROTO_SCTP => "sctp",
                    _ => "tcp",
                };
                serde_json::json!({
                    "hostPort": p.host_port, "containerPort": p.container_port,
                    "protocol": proto, "hostIP": p.host_ip,
                })
            })
            .collect();
        let state_dir = self.state_dir();
        let cni = self.cni.clone();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || {
            let pod = PodArgs { name: &md.name, namespace: &md.namespace, uid: &md.uid };
            let att = cni.add(&id, &netns, &pod, ports)?;
            if let Err(e) = cni::save(&state_dir, &id, &att) {
                let _ = cni.del(&id, &att);
                return Err(e);
            }
            Ok(())
        })
        .await
        .map_err(|e| format!("cni task: {e}"))?
    }

    /// CNI DEL of a sandbox that has an attachment; the record goes only once DEL succeeded
    /// (kubelet retries StopPodSandbox until it does).
    async fn detach_network(&self, id: &str) -> Result<(), Status> {
        let state_dir = self.state_dir();
        let Some(att) = cni::load_attachment(&state_dir, id) else { return Ok(()) };
        let cni = self.cni.clone();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || {
            cni.del(&id, &att)?;
            cni::forget(&state_dir, &id);
            Ok::<(), String>(())
        })
        .await
        .map_err(|e| Status::internal(format!("cni task: {e}")))?
        .map_err(|e| Status::new(Code::Unknown, format!("failed to destroy network for sandbox: {e}")))
    }

    /// Removes a sandbox container that failed on its way up, reporting what could not go.
    async fn discard(&self, id: &str) {
        if let Err(e) = self.engine.remove_container(id, true).await {
            log::warn!("cri: removing failed sandbox {id}: {e}");
        }
    }

    pub(crate) async fn stop_pod_sandbox(&self, r: proto::PodSandboxIdRequest) -> Result<proto::Empty, Status> {
        let (rec, _m) = self.find_sandbox(&r.pod_sandbox_id)?;
        let _guard = self.sandbox_lock.lock().await;
        // Its containers first, at once (kubelet stopped them gracefully before, if it could).
        for c in self.pod_containers(&rec.id)? {
            match self.engine.stop_container(&c.id, Some(0), None).await {
                Ok(()) => {}
                Err(e) if is_not_running(&e) => {}
                Err(e) => return Err(Status::from(e)),
            }
        }
        self.detach_network(&rec.id).await?;
        match self.engine.stop_container(&rec.id, Some(0), None).await {
            Ok(()) => Ok(proto::Empty {}),
            Err(e) if is_not_running(&e) => Ok(proto::Empty {}),
            Err(e) => Err(Status::from(e)),
        }
    }

    pub(crate) async fn remove_pod_sandbox(&self, r: proto::PodSandboxIdRequest) -> Result<proto::Empty, Status> {
        // Removing what is gone is no error (the CRI's contract: kubelet retries removals).
        let rec = match self.find_sandbox(&r.pod_sandbox_id) {
            Ok((rec, _)) => rec,
            Err(s) if s.code == Code::NotFound => return Ok(proto::Empty {}),
            Err(s) => return Err(s),
        };
        let _guard = self.sandbox_lock.lock().await;
        let mut errors = Vec::new();
        for c in self.pod_containers(&rec.id)? {
            self.forget_log(&c.id);
            if let Err(e) = self.engine.remove_container(&c.id, true).await {
                if e.kind() != wharf_types::ErrorKind::NotFound {
                    errors.push(format!("remove container {}: {e}", c.id));
                }
            }
        }
        if let Err(s) = self.detach_network(&rec.id).await {
            errors.push(s.message);
        }
        if errors.is_empty() {
            if let Err(e) = self.engine.remove_container(&rec.id, true).await {
                if e.kind() != wharf_types::ErrorKind::NotFound {
                    errors.push(format!("remove sandbox container: {e}"));
                }
            }
        }
        if errors.is_empty() {
            Ok(proto::Empty {})
        } else {
            Err(Status::new(Code::Unknown, format!("remove pod sandbox {}: {}", rec.id, errors.join("; "))))
        }
    }

    pub(crate) async fn pod_sandbox_status(
        &self,
        r: proto::PodSandboxIdRequest,
    ) -> Result<proto::PodSandboxStatusResponse, Status> {
        let (rec, m) = self.find_sandbox(&r.pod_sandbox_id)?;
        let state = self.sandbox_state(&rec, &m);
        let network = if m.host_network() {
            None
        } else {
            let ips = cni::load_attachment(&self.state_dir(), &rec.id).map(|a| a.ips()).unwrap_or_default();
            let mut ips = ips.into_iter();
            Some(proto::PodSandboxNetworkStatus {
                ip: ips.next().unwrap_or_default(),
                additional_ips: ips.map(|ip| proto::PodIp { ip }).collect(),
            })
        };
        let mut info = proto::Map::new();
        if r.verbose {
            let v = serde_json::json!({
                "pid": rec.state.pid,
                "name": rec.name,
                "image": rec.config.image,
                "netns": if m.host_network() { String::new() } else {
                    self.engine.container_netns_path(&rec.id).display().to_string()
                },
                "config": m.config,
            });
            info.insert("info".into(), v.to_string());
        }
        let status = proto::PodSandboxStatus {
            id: rec.id.clone(),
            metadata: Some(m.metadata()),
            state,
            created_at: meta::nanos(&rec.created),
            network,
            linux: Some(proto::LinuxPodSandboxStatus {
                namespaces: Some(proto::Namespace { options: Some(m.namespaces()) }),
            }),
            labels: m.config.labels.clone(),
            annotations: m.config.annotations.clone(),
            runtime_handler: m.runtime_handler.clone(),
        };
        Ok(proto::PodSandboxStatusResponse {
            status: Some(status),
            info,
            containers_statuses: Vec::new(),
            timestamp: 0,
        })
    }

    pub(crate) async fn list_pod_sandbox(
        &self,
        r: proto::ListPodSandboxRequest,
    ) -> Result<proto::ListPodSandboxResponse, Status> {
        let f = r.filter.unwrap_or_default();
        let mut items = Vec::new();
        for (rec, m) in self.sandboxes()? {
            if !f.id.is_empty() && !rec.id.starts_with(&f.id) {
                continue;
            }
            let state = self.sandbox_state(&rec, &m);
            if f.state.as_ref().is_some_and(|s| s.state != state) {
                continue;
            }
            if !meta::selects(&f.label_selector, &m.config.labels) {
                continue;
            }
            items.push(PodSandbox {
                id: rec.id.clone(),
                metadata: Some(m.metadata()),
                state,
                created_at: meta::nanos(&rec.created),
                labels: m.config.labels.clone(),
                annotations: m.config.annotations.clone(),
                runtime_handler: m.runtime_handler.clone(),
            });
        }
        Ok(proto::ListPodSandboxResponse { items })
    }

    /// The engine records of a sandbox's containers.
    pub(crate) fn pod_containers(&self, sandbox_id: &str) -> Result<Vec<Arc<ContainerRecord>>, Status> {
        let mut filters = BTreeMap::new();
        filters.insert(
            "label".to_string(),
            vec![
                format!("{}={}", meta::TYPE_LABEL, meta::TYPE_CONTAINER),
                format!("{}={sandbox_id}", meta::SANDBOX_ID_LABEL),
            ],
        );
        Ok(self.engine.list_containers(&ListOptions { all: true, limit: None, filters })?)
    }
}

/// The engine's answer for stopping what is not running.
pub fn is_not_running(e: &EngineError) -> bool {
    e.kind() == wharf_types::ErrorKind::NotModified
}

/// A name already taken is `AlreadyExists`, naming the holder, as containerd's "name is
/// reserved" error; everything else keeps its kind.
pub fn name_conflict(e: EngineError, name: &str) -> Status {
    if e.kind() == wharf_types::ErrorKind::Conflict && e.to_string().contains("is already in use") {
        return Status::new(Code::AlreadyExists, format!("name \"{name}\" is reserved: {e}"));
    }
    Status::from(e)
}
