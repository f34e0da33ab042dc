//! A pod's containers: CreateContainer, StartContainer, StopContainer, RemoveContainer,
//! ListContainers, ContainerStatus, ExecSync and ReopenContainerLog, as engine containers that
//! join their sandbox's namespaces (`container:<sandbox id>` network, IPC and, when the pod
//! shares one, pid modes) and get its hostname, DNS settings and cgroup parent.

use std::path::Path;
use std::time::Duration;

use wharf_engine::{
    ContainerRecord, CreateRequest, DeviceMapping, ExecConfig, HostConfig, LogStream, MountKind, MountRequest,
    StreamEvent,
};

use crate::grpc::{Code, Status};
use crate::meta::{self, ContainerMeta, SandboxMeta};
use crate::proto;
use crate::sandbox::{is_not_running, name_conflict};
use crate::Cri;

/// The most ExecSync keeps of each of stdout and stderr (what fits a CRI message).
const EXEC_SYNC_MAX: usize = 8 << 20;

pub fn container_not_found(id: &str) -> Status {
    Status::not_found(format!("container \"{id}\" not found"))
}

impl Cri {
    /// A pod container's record and metadata by id or unique id prefix.
    pub(crate) fn find_cri_container(&self, id: &str) -> Result<(ContainerRecord, ContainerMeta), Status> {
        self.find_cri_record(id, "container", container_not_found, meta::container_meta)
    }

    pub(crate) async fn create_container(
        &self,
        r: proto::CreateContainerRequest,
    ) -> Result<proto::CreateContainerResponse, Status> {
        let config = r.config.ok_or_else(|| Status::invalid("CreateContainer: no container config"))?;
        let cmeta = config.metadata.clone().ok_or_else(|| Status::invalid("container config must include metadata"))?;
        if cmeta.name.is_empty() {
            return Err(Status::invalid("container metadata name is empty"));
        }
        let (sandbox, sm) = self.find_sandbox(&r.pod_sandbox_id)?;
        if !sandbox.state.running {
            return Err(Status::precondition(format!(
                "pod sandbox \"{}\" is not ready (its process is not running)",
                sandbox.id
            )));
        }
        let spec = config.image.clone().unwrap_or_default();
        if spec.image.is_empty() {
            return Err(Status::invalid("container config names no image"));
        }
        let image = self
            .engine
            .find_image(&spec.image)
            .map_err(|_| Status::not_found(format!("image \"{}\" not found", spec.image)))?;
        let name = meta::container_name(&cmeta, &sm.metadata());
        let log_path = if config.log_path.is_empty() {
            String::new()
        } else {
            Path::new(&sm.config.log_directory).join(&config.log_path).display().to_string()
        };
        let m = ContainerMeta {
            sandbox_id: sandbox.id.clone(),
            metadata: cmeta,
            image: spec.clone(),
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
            log_path,
            mounts: config.mounts.clone(),
        };
        let req = create_request(&config, &sandbox.id, &sm, &m, &name, &image.id.to_string())?;
        let _guard = self.sandbox_lock.lock().await;
        let rec = self.engine.create_container(req).await.map_err(|e| name_conflict(e, &name))?;
        Ok(proto::CreateContainerResponse { container_id: rec.id })
    }

    pub(crate) async fn start_container(&self, r: proto::ContainerIdRequest) -> Result<proto::Empty, Status> {
        let (rec, m) = self.find_cri_container(&r.container_id)?;
        if rec.state.status != wharf_engine::Status::Created {
            return Err(Status::precondition(format!(
                "container \"{}\" is in state {}, not created: a CRI container starts once",
                rec.id,
                rec.state.status.as_str()
            )));
        }
        let (sandbox, _) = self.find_sandbox(&m.sandbox_id)?;
        if !sandbox.state.running {
            return Err(Status::precondition(format!("pod sandbox \"{}\" is not running", sandbox.id)));
        }
        if !m.log_path.is_empty() {
            // kubelet makes the directory; a path it did not make is refused before the start.
            self.logs.open(&rec.id, Path::new(&m.log_path))?;
        }
        if let Err(e) = self.engine.start_container(&rec.id).await {
            self.logs.stop(&rec.id);
            return Err(Status::from(e));
        }
        if !m.log_path.is_empty() {
            self.logs.run(&self.engine, &rec.id, None);
        }
        Ok(proto::Empty {})
    }

    pub(crate) async fn stop_container(&self, r: proto::StopContainerRequest) -> Result<proto::Empty, Status> {
        let (rec, _) = self.find_cri_container(&r.container_id)?;
        // The stop signal, then SIGKILL after the timeout (0: at once).
        match self.engine.stop_container(&rec.id, Some(r.timeout.max(0)), None).await {
            Ok(()) => Ok(proto::Empty {}),
            Err(e) if is_not_running(&e) => Ok(proto::Empty {}),
            Err(e) => Err(Status::from(e)),
        }
    }

    pub(crate) async fn remove_container(&self, r: proto::ContainerIdRequest) -> Result<proto::Empty, Status> {
        let rec = match self.find_cri_container(&r.container_id) {
            Ok((rec, _)) => rec,
            // Removing what is gone is no error.
            Err(s) if s.code == Code::NotFound => return Ok(proto::Empty {}),
            Err(s) => return Err(s),
        };
        self.forget_log(&rec.id);
        match self.engine.remove_container(&rec.id, true).await {
            Ok(()) => Ok(proto::Empty {}),
            Err(e) if e.kind() == wharf_types::ErrorKind::NotFound => Ok(proto::Empty {}),
            Err(e) => Err(Status::from(e)),
        }
    }

    pub(crate) async fn list_containers(
        &self,
        r: proto::ListContainersRequest,
    ) -> Result<proto::ListContainersResponse, Status> {
        let f = r.filter.unwrap_or_default();
        let mut containers = Vec::new();
        for rec in self.list_typed(meta::TYPE_CONTAINER)? {
            let Some(m) = meta::container_meta(&rec) else { continue };
            let state = meta::container_state(&rec);
            if (!f.id.is_empty() && !rec.id.starts_with(&f.id))
                || (!f.pod_sandbox_id.is_empty() && !m.sandbox_id.starts_with(&f.pod_sandbox_id))
                || f.state.as_ref().is_some_and(|s| s.state != state)
                || !meta::selects(&f.label_selector, &m.labels)
            {
                continue;
            }
            containers.push(proto::Container {
                id: rec.id.clone(),
                pod_sandbox_id: m.sandbox_id.clone(),
                metadata: Some(m.metadata.clone()),
                image: Some(m.image.clone()),
                image_ref: self.image_ref(&rec),
                state,
                created_at: meta::nanos(&rec.created),
                labels: m.labels.clone(),
                annotations: m.annotations.clone(),
                image_id: rec.image_id.to_string(),
            });
        }
        Ok(proto::ListContainersResponse { containers })
    }

    /// The image a container runs as the CRI names it: a repository digest when it has one,
    /// else its id (containerd's `image_ref`).
    fn image_ref(&self, rec: &ContainerRecord) -> String {
        self.engine
            .find_image(&rec.image_id.to_string())
            .ok()
            .and_then(|img| self.engine.image_summary(img).ok())
            .and_then(|s| s.repo_digests.first().map(|d| d.to_string()))
            .unwrap_or_else(|| rec.image_id.to_string())
    }

    pub(crate) async fn container_status(
        &self,
        r: proto::ContainerIdRequest,
    ) -> Result<proto::ContainerStatusResponse, Status> {
        let (rec, m) = self.find_cri_container(&r.container_id)?;
        let state = meta::container_state(&rec);
        let (reason, message) = match state {
            proto::CONTAINER_EXITED if rec.state.oom_killed => ("OOMKilled", rec.state.error.clone()),
            proto::CONTAINER_EXITED if rec.state.exit_code == 0 => ("Completed", rec.state.error.clone()),
            proto::CONTAINER_EXITED => ("Error", rec.state.error.clone()),
            _ => ("", String::new()),
        };
        let mut info = proto::Map::new();
        if r.verbose {
            let v = serde_json::json!({
                "pid": rec.state.pid,
                "sandboxID": m.sandbox_id,
                "name": rec.name,
                "path": rec.path,
                "args": rec.args,
                "user": rec.config.user,
                "hostname": rec.config.hostname,
                "networkMode": rec.host_config.network_mode,
                "cgroupParent": rec.host_config.cgroup_parent,
            });
            info.insert("info".into(), v.to_string());
        }
        let status = proto::ContainerStatus {
            id: rec.id.clone(),
            metadata: Some(m.metadata.clone()),
            state,
            created_at: meta::nanos(&rec.created),
            started_at: meta::nanos(&rec.state.started_at),
            finished_at: if state == proto::CONTAINER_EXITED { meta::nanos(&rec.state.finished_at) } else { 0 },
            exit_code: if state == proto::CONTAINER_EXITED { rec.state.exit_code } else { 0 },
            image: Some(m.image.clone()),
            image_ref: self.image_ref(&rec),
            reason: reason.to_string(),
            message,
            labels: m.labels.clone(),
            annotations: m.annotations.clone(),
            mounts: m.mounts.clone(),
            log_path: m.log_path.clone(),
            image_id: rec.image_id.to_string(),
        };
        Ok(proto::ContainerStatusResponse { status: Some(status), info })
    }

    pub(crate) async fn exec_sync(&self, r: proto::ExecSyncRequest) -> Result<proto::ExecSyncResponse, Status> {
        let (rec, _) = self.find_cri_container(&r.container_id)?;
        if r.cmd.is_empty() {
            return Err(Status::invalid("ExecSync: no command"));
        }
        if !rec.state.running {
            return Err(Status::precondition(format!("container \"{}\" is not running", rec.id)));
        }
        let config = ExecConfig { cmd: r.cmd.clone(), attach_stdout: true, attach_stderr: true, ..Default::default() };
        let exec_id = self.engine.create_exec(&rec.id, config)?;
        let stream = match self.engine.start_exec(&exec_id, false, Some(false)).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err(Status::internal("exec started detached")),
            Err(wharf_engine::EngineError::Exec { message, exit_code }) => {
                return Ok(proto::ExecSyncResponse { stdout: Vec::new(), stderr: message.into_bytes(), exit_code })
            }
            Err(e) => return Err(Status::from(e)),
        };
        let mut events = stream.events;
        let mut out = proto::ExecSyncResponse { stdout: Vec::new(), stderr: Vec::new(), exit_code: -1 };
        let collect = async {
            while let Some(ev) = events.recv().await {
                match ev {
                    StreamEvent::Output(chunk) => {
                        let buf = if chunk.stream == LogStream::Stderr { &mut out.stderr } else { &mut out.stdout };
                        let room = EXEC_SYNC_MAX.saturating_sub(buf.len());
                        buf.extend_from_slice(chunk.data.get(..room.min(chunk.data.len())).unwrap_or_default());
                    }
                    StreamEvent::Exit(code) => out.exit_code = code,
                    _ => {}
                }
            }
        };
        if r.timeout > 0 {
            if tokio::time::timeout(Duration::from_secs(r.timeout as u64), collect).await.is_err() {
                // The command is killed, as containerd does, and kubelet's probe sees the
                // deadline (its probes look for this code).
                if let Err(e) = self.engine.kill_exec(&exec_id) {
                    log::warn!("cri: kill timed-out exec {exec_id}: {e}");
                }
                return Err(Status::new(
                    Code::DeadlineExceeded,
                    format!("command {:?} timed out after {}s", r.cmd, r.timeout),
                ));
            }
        } else {
            collect.await;
        }
        if out.exit_code < 0 {
            out.exit_code = self.engine.inspect_exec(&exec_id).ok().and_then(|e| e.exit_code).unwrap_or(-1);
        }
        Ok(out)
    }

    pub(crate) async fn reopen_container_log(&self, r: proto::ContainerIdRequest) -> Result<proto::Empty, Status> {
        let (rec, m) = self.find_cri_container(&r.container_id)?;
        if !rec.state.running {
            return Err(Status::precondition(format!("container \"{}\" is not running", rec.id)));
        }
        if m.log_path.is_empty() {
            return Err(Status::precondition(format!("container \"{}\" has no log path", rec.id)));
        }
        let mark = crate::logs::mark_path(&self.state_dir(), &rec.id);
        self.logs.reopen(&rec.id, Path::new(&m.log_path), &mark).await
    }
}

/// The engine's create request for a pod container.
fn create_request(
    config: &proto::ContainerConfig,
    sandbox_id: &str,
    sm: &SandboxMeta,
    m: &ContainerMeta,
    name: &str,
    image_id: &str,
) -> Result<CreateRequest, Status> {
    let ns = sm.namespaces();
    let linux = config.linux.clone().unwrap_or_default();
    let sc = linux.security_context.clone().unwrap_or_default();
    let res = linux.resources.clone().unwrap_or_default();
    let cns = sc.namespace_options.clone().unwrap_or(ns.clone());
    let join = format!("container:{sandbox_id}");
    let mut hc = HostConfig {
        network_mode: if ns.network == proto::NS_NODE { "host".into() } else { join.clone() },
        cgroup_parent: sm.cgroup_parent(),
        readonly_rootfs: sc.readonly_rootfs,
        memory: res.memory_limit_in_bytes,
        memory_swap: res.memory_swap_limit_in_bytes,
        cpu_shares: res.cpu_shares,
        cpu_quota: res.cpu_quota,
        cpu_period: res.cpu_period,
        cpuset_cpus: res.cpuset_cpus.clone(),
        cpuset_mems: res.cpuset_mems.clone(),
        ..Default::default()
    };
    hc.resources.hugepage_limits = hugepages(&res);
    hc.resources.unified = res.unified.clone();
    let s = &mut hc.security;
    s.ipc_mode = if ns.ipc == proto::NS_NODE { "host".into() } else { join.clone() };
    s.pid_mode = match cns.pid {
        proto::NS_NODE => "host".into(),
        proto::NS_POD => join.clone(),
        proto::NS_TARGET if !cns.target_id.is_empty() => format!("container:{}", cns.target_id),
        _ => String::new(),
    };
    // The pod's UTS namespace, as its network and IPC: one hostname for the whole pod.
    s.uts_mode = if ns.network == proto::NS_NODE { "host".into() } else { join.clone() };
    s.privileged = sc.privileged;
    if let Some(c) = &sc.capabilities {
        s.cap_add = c.add_capabilities.clone();
        s.cap_drop = c.drop_capabilities.clone();
    }
    if sc.no_new_privs {
        s.security_opt.push("no-new-privileges".into());
    }
    match seccomp_choice(&sc)? {
        Seccomp::Default => {}
        Seccomp::Unconfined => s.security_opt.push("seccomp=unconfined".into()),
        Seccomp::Localhost(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Status::invalid(format!("seccomp profile {path:?}: {e}")))?;
            s.security_opt.push(format!("seccomp={text}"));
        }
    }
    if !sc.privileged {
        match apparmor_choice(&sc, wharf_engine::apparmor::host_supports())? {
            AppArmor::Default => {}
            AppArmor::Unconfined => s.security_opt.push("apparmor=unconfined".into()),
            AppArmor::Localhost(name) => {
                wharf_engine::apparmor::prepare(&name).map_err(|e| Status::invalid(e.to_string()))?;
                s.security_opt.push(format!("apparmor={name}"));
            }
        }
    }
    // kubelet sends the default lists unless the pod asks for an unmasked /proc.
    if !sc.masked_paths.is_empty() || !sc.readonly_paths.is_empty() {
        s.masked_paths = Some(sc.masked_paths.clone());
        s.readonly_paths = Some(sc.readonly_paths.clone());
    }
    s.group_add = sc.supplemental_groups.iter().map(|g| g.to_string()).collect();
    s.oom_score_adj = meta::clamp_oom_score_adj(res.oom_score_adj);
    s.devices = config
        .devices
        .iter()
        .map(|d| DeviceMapping {
            path_on_host: d.host_path.clone(),
            path_in_container: d.container_path.clone(),
            cgroup_permissions: if d.permissions.is_empty() { "rwm".into() } else { d.permissions.clone() },
        })
        .collect();
    if let Some(dns) = &sm.config.dns_config {
        hc.net.dns = dns.servers.clone();
        hc.net.dns_search = dns.searches.clone();
        hc.net.dns_options = dns.options.clone();
    }
    for mt in &config.mounts {
        if mt.container_path.is_empty() || mt.host_path.is_empty() {
            return Err(Status::invalid(format!(
                "mount {:?} -> {:?}: both paths are needed",
                mt.host_path, mt.container_path
            )));
        }
        let propagation = match mt.propagation {
            proto::PROPAGATION_HOST_TO_CONTAINER => "rslave",
            proto::PROPAGATION_BIDIRECTIONAL => "rshared",
            _ => "rprivate",
        };
        hc.mounts.push(MountRequest {
            kind: MountKind::Bind,
            source: mt.host_path.clone(),
            target: mt.container_path.clone(),
            read_only: mt.readonly,
            propagation: propagation.into(),
            ..Default::default()
        });
    }
    let user = match (&sc.run_as_user, &sc.run_as_group, sc.run_as_username.as_str()) {
        (Some(u), Some(g), _) => Some(format!("{}:{}", u.value, g.value)),
        (Some(u), None, _) => Some(u.value.to_string()),
        (None, _, name) if !name.is_empty() => Some(name.to_string()),
        _ => None,
    };
    let hostname = sm.config.hostname.clone();
    Ok(CreateRequest {
        name: Some(name.to_string()),
        // The image by id, so that a tag moved meanwhile changes nothing.
        image: image_id.to_string(),
        entrypoint: if config.command.is_empty() { None } else { Some(config.command.clone()) },
        cmd: if config.args.is_empty() { None } else { Some(config.args.clone()) },
        env: config.envs.iter().map(|kv| format!("{}={}", kv.key, kv.value)).collect(),
        working_dir: if config.working_dir.is_empty() { None } else { Some(config.working_dir.clone()) },
        user,
        hostname: if ns.network == proto::NS_NODE || hostname.is_empty() { None } else { Some(hostname) },
        labels: meta::record_labels(&config.labels, meta::TYPE_CONTAINER, Some(sandbox_id), m)?,
        tty: config.tty,
        open_stdin: config.stdin,
        // StdinOnce: the stdin closes when the first attach that brought it ends.
        attach_stdin: config.stdin && config.stdin_once,
        attach_stdout: true,
        attach_stderr: true,
        host_config: hc,
        ..Default::default()
    })
}

/// A container's seccomp profile as the CRI asks for it.
#[derive(Debug, PartialEq, Eq)]
enum Seccomp {
    /// The runtime's default profile (the engine's, Docker's).
    Default,
    Unconfined,
    Localhost(String),
}

/// `seccomp` when set, else the deprecated `seccomp_profile_path`; neither is `Unconfined`,
/// as containerd and dockershim read it (kubelet sends `Unconfined` for pods that name no
/// profile, `RuntimeDefault` for those that ask for it).
fn seccomp_choice(sc: &proto::LinuxContainerSecurityContext) -> Result<Seccomp, Status> {
    if let Some(p) = &sc.seccomp {
        return match p.profile_type {
            proto::PROFILE_UNCONFINED => Ok(Seccomp::Unconfined),
            proto::PROFILE_LOCALHOST if p.localhost_ref.starts_with('/') => {
                Ok(Seccomp::Localhost(p.localhost_ref.clone()))
            }
            proto::PROFILE_LOCALHOST => {
                Err(Status::invalid(format!("seccomp localhost_ref {:?} is not an absolute path", p.localhost_ref)))
            }
            _ => Ok(Seccomp::Default),
        };
    }
    match sc.seccomp_profile_path.as_str() {
        "" | "unconfined" => Ok(Seccomp::Unconfined),
        "runtime/default" | "docker/default" => Ok(Seccomp::Default),
        p => match p.strip_prefix("localhost/") {
            Some(path) if path.starts_with('/') => Ok(Seccomp::Localhost(path.to_string())),
            _ => Err(Status::invalid(format!(
                "seccomp profile path {p:?} is none of runtime/default, unconfined, localhost/<absolute path>"
            ))),
        },
    }
}

/// The CRI's hugepage limits as the engine keeps them (the OCI spec's form).
pub(crate) fn hugepages(res: &proto::LinuxContainerResources) -> Vec<wharf_engine::HugepageLimit> {
    res.hugepage_limits
        .iter()
        .map(|h| wharf_engine::HugepageLimit { page_size: h.page_size.clone(), limit: h.limit })
        .collect()
}

/// A container's AppArmor profile, as the CRI asks for it. A privileged container runs
/// unconfined whatever it asks (as containerd).
#[derive(Debug, PartialEq)]
enum AppArmor {
    /// The engine's default profile where the host has AppArmor.
    Default,
    Unconfined,
    /// A profile the administrator loaded, by name.
    Localhost(String),
}

/// As containerd: on a host without AppArmor, asking for any profile but `unconfined` is an
/// error rather than a container that runs with less confinement than it asked for.
fn apparmor_choice(sc: &proto::LinuxContainerSecurityContext, supported: bool) -> Result<AppArmor, Status> {
    let choice = match &sc.apparmor {
        Some(p) => match p.profile_type {
            proto::PROFILE_UNCONFINED => AppArmor::Unconfined,
            proto::PROFILE_LOCALHOST => {
                let name = p.localhost_ref.strip_prefix("localhost/").unwrap_or(&p.localhost_ref);
                if name.is_empty() {
                    return Err(Status::invalid("apparmor profile type Localhost needs a localhost_ref"));
                }
                AppArmor::Localhost(name.to_string())
            }
            _ => AppArmor::Default,
        },
        None => match sc.apparmor_profile.as_str() {
            "" => return Ok(AppArmor::Default),
            "runtime/default" => AppArmor::Default,
            "unconfined" => AppArmor::Unconfined,
            p => match p.strip_prefix("localhost/") {
                Some(name) if !name.is_empty() => AppArmor::Localhost(name.to_string()),
                _ => {
                    return Err(Status::invalid(format!(
                        "apparmor profile {p:?} is none of runtime/default, unconfined, localhost/<name>"
                    )))
                }
            },
        },
    };
    if !supported && choice != AppArmor::Unconfined {
        return Err(Status::invalid(
            "apparmor is not supported on this host: only an unconfined profile can be asked for",
        ));
    }
    Ok(choice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apparmor_follows_containerd() {
        let sc = |apparmor: Option<(i32, &str)>, old: &str| proto::LinuxContainerSecurityContext {
            apparmor: apparmor.map(|(t, r)| proto::SecurityProfile { profile_type: t, localhost_ref: r.into() }),
            apparmor_profile: old.into(),
            ..Default::default()
        };
        let local = |n: &str| AppArmor::Localhost(n.into());
        // A host with AppArmor.
        assert_eq!(apparmor_choice(&sc(None, ""), true).unwrap(), AppArmor::Default);
        assert_eq!(apparmor_choice(&sc(Some((0, "")), ""), true).unwrap(), AppArmor::Default);
        assert_eq!(apparmor_choice(&sc(Some((1, "")), "localhost/x"), true).unwrap(), AppArmor::Unconfined);
        assert_eq!(apparmor_choice(&sc(Some((2, "p")), ""), true).unwrap(), local("p"));
        assert_eq!(apparmor_choice(&sc(Some((2, "localhost/p")), ""), true).unwrap(), local("p"));
        assert!(apparmor_choice(&sc(Some((2, "")), ""), true).is_err());
        assert_eq!(apparmor_choice(&sc(None, "runtime/default"), true).unwrap(), AppArmor::Default);
        assert_eq!(apparmor_choice(&sc(None, "unconfined"), true).unwrap(), AppArmor::Unconfined);
        assert_eq!(apparmor_choice(&sc(None, "localhost/p"), true).unwrap(), local("p"));
        assert!(apparmor_choice(&sc(None, "p"), true).is_err());
        // A host without: nothing asked, or unconfined, runs; a profile asked for does not.
        assert_eq!(apparmor_choice(&sc(None, ""), false).unwrap(), AppArmor::Default);
        assert_eq!(apparmor_choice(&sc(Some((1, "")), ""), false).unwrap(), AppArmor::Unconfined);
        assert!(apparmor_choice(&sc(Some((0, "")), ""), false).is_err());
        assert!(apparmor_choice(&sc(None, "localhost/p"), false).is_err());
    }

    #[test]
    fn seccomp_follows_the_cri() {
        let sc = |seccomp: Option<(i32, &str)>, path: &str| proto::LinuxContainerSecurityContext {
            seccomp: seccomp.map(|(t, r)| proto::SecurityProfile { profile_type: t, localhost_ref: r.into() }),
            seccomp_profile_path: path.into(),
            ..Default::default()
        };
        assert_eq!(seccomp_choice(&sc(None, "")).unwrap(), Seccomp::Unconfined);
        assert_eq!(seccomp_choice(&sc(Some((0, "")), "")).unwrap(), Seccomp::Default);
        assert_eq!(seccomp_choice(&sc(Some((1, "")), "runtime/default")).unwrap(), Seccomp::Unconfined);
        assert_eq!(seccomp_choice(&sc(Some((2, "/p.json")), "")).unwrap(), Seccomp::Localhost("/p.json".into()));
        assert!(seccomp_choice(&sc(Some((2, "p.json")), "")).is_err());
        assert_eq!(seccomp_choice(&sc(None, "docker/default")).unwrap(), Seccomp::Default);
        assert_eq!(seccomp_choice(&sc(None, "localhost//x.json")).unwrap(), Seccomp::Localhost("/x.json".into()));
        assert!(seccomp_choice(&sc(None, "bogus")).is_err());
    }
}
