//! Containers: records, create, start, stop, kill, wait, remove, list.
//!
//! A container's process lives under its own shim (`wharf-shim`), never under the daemon: the
//! engine starts the shim, reads its one-line handshake, and from then on watches the shim's
//! pidfd to learn of the exit, which the shim records in `exit.json` in the container's dir.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use wharf_types::digest::short_id;
use wharf_types::Digest;

use crate::monitor::{ExitFile, Live};
use crate::{blocking, ids, Engine, EngineError};

/// The systemd driver's scopes are `docker-<id>.scope`, as dockerd names its containers'.
pub(crate) const SCOPE_PREFIX: &str = "docker";
/// What a container runs, merged from the create request and the image: Docker's `Config`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerConfig {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    /// The image as the user named it.
    pub image: String,
    pub working_dir: String,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
    pub tty: bool,
    pub open_stdin: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub exposed_ports: Vec<String>,
    /// Merged from the image's and the request's; `["NONE"]` disables the image's.
    #[serde(default)]
    pub healthcheck: Option<crate::HealthConfig>,
}

/// How the host runs it: Docker's `HostConfig` (the part wharf supports so far).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HostConfig {
    pub auto_remove: bool,
    /// Bytes; 0 = unlimited.
    pub memory: i64,
    /// Memory plus swap in bytes (`update --memory-swap`); 0 = Docker's default, -1 unlimited.
    #[serde(default)]
    pub memory_swap: i64,
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub cpu_quota: i64,
    pub cpu_period: i64,
    pub pids_limit: Option<i64>,
    /// `--cpuset-cpus`/`--cpuset-mems`: the CPUs and memory nodes the container may use
    /// (`0-1,3`); empty for all.
    #[serde(default)]
    pub cpuset_cpus: String,
    #[serde(default)]
    pub cpuset_mems: String,
    /// Reservation, swappiness, kernel memory, real-time CPU, block I/O, storage options
    /// (`resources.rs`).
    #[serde(default)]
    pub resources: crate::ResourceOptions,
    /// `--cgroup-parent`: the cgroup the container's own goes under; empty for the daemon's.
    #[serde(default)]
    pub cgroup_parent: String,
    /// `--volume-driver`: the driver of the volumes that `-v` and the image's `VOLUME`s
    /// create (`--mount` names its own); empty for `local`.
    #[serde(default)]
    pub volume_driver: String,
    /// `--annotation`: passed through to the OCI spec, as dockerd does.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// `--runtime`: the OCI runtime's name, the daemon's default filled in at create; empty
    /// in records made before runtimes could be chosen (wharf's own).
    #[serde(default)]
    pub runtime: String,
    /// `default`/`bridge`, `none`, `host`, `container:<name|id>`.
    pub network_mode: String,
    /// `-p`: `80/tcp` → host bindings.
    #[serde(default)]
    pub port_bindings: BTreeMap<String, Vec<crate::PortBinding>>,
    /// `-P`: every exposed port on a free host port.
    #[serde(default)]
    pub publish_all_ports: bool,
    /// `-v` specs as given: `name:/path[:ro]`, `/host:/path[:ro]`, `/path`.
    #[serde(default)]
    pub binds: Vec<String>,
    #[serde(default)]
    pub mounts: Vec<crate::MountRequest>,
    /// `--tmpfs`: path → options.
    #[serde(default)]
    pub tmpfs: BTreeMap<String, String>,
    #[serde(default)]
    pub readonly_rootfs: bool,
    /// `--init`: wharf's init runs as pid 1 in front of the command (`init.rs`).
    #[serde(default)]
    pub init: bool,
    #[serde(default)]
    pub volumes_from: Vec<String>,
    /// Capabilities, seccomp, ulimits, sysctls, shared namespaces, devices (`security.rs`).
    #[serde(default)]
    pub security: crate::SecurityOptions,
    /// Aliases, `--ip`, `--mac-address`, `--dns*`, `--add-host` (`network/options.rs`).
    #[serde(default)]
    pub net: crate::NetOptions,
    #[serde(default)]
    pub restart_policy: crate::RestartPolicy,
    /// `--log-driver`/`--log-opt`; filled in at create (the daemon's `log-opts` when none given).
    #[serde(default)]
    pub log_config: crate::LogConfig,
    /// The list and map fields of the create request's `HostConfig` that the client left out
    /// or sent as `null`. dockerd echoes what it was sent, so its inspect shows `null` for
    /// those and `[]` for what the docker CLI sends empty; `None` for records made before.
    #[serde(default)]
    pub unset: Option<Vec<String>>,
}

/// A create request, after the API layer parsed it: `None` means "not given, use the image's".
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub name: Option<String>,
    pub image: String,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
    pub tty: bool,
    pub open_stdin: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub exposed_ports: Vec<String>,
    /// `None`: the image's healthcheck.
    pub healthcheck: Option<crate::HealthConfig>,
    pub host_config: HostConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerState {
    pub status: Status,
    pub running: bool,
    pub paused: bool,
    pub oom_killed: bool,
    /// The init's pid in the host's pid namespace while running, else 0.
    pub pid: i32,
    pub shim_pid: i32,
    pub exit_code: i32,
    pub error: String,
    /// RFC 3339; empty when never.
    pub started_at: String,
    pub finished_at: String,
    /// The user stopped it (stop, or kill with SIGKILL or the stop signal): no restart policy
    /// applies until it is started again.
    #[serde(default)]
    pub manually_stopped: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub created: String,
    /// The command: the first word and the rest, as Docker reports `Path` and `Args`.
    pub path: String,
    pub args: Vec<String>,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub image_id: Digest,
    pub chain_ids: Vec<Digest>,
    pub state: ContainerState,
    pub restart_count: u64,
    /// Volumes, binds and tmpfs mounts, resolved at create.
    #[serde(default)]
    pub mounts: Vec<crate::MountPoint>,
}

#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub all: bool,
    /// Only the newest `limit` (Docker's `-n`); implies all.
    pub limit: Option<usize>,
    pub filters: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

/// What the shim writes on its stdout once the container's command runs (or failed to).
#[derive(Debug, Deserialize)]
struct Handshake {
    #[serde(default)]
    pid: i32,
    #[serde(default)]
    shim_pid: i32,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    exit_code: Option<i32>,
    /// When each phase of the start ended (`wharf_runtime::phases`): the shim's and its
    /// child's, then those added here.
    #[serde(default)]
    phases: wharf_runtime::phases::Phases,
    /// The pipe from the shim, kept open by it until the container's exit is recorded.
    #[serde(skip)]
    exit_notify: Option<std::os::fd::OwnedFd>,
}

impl Engine {
    pub(crate) fn container_dir(&self, id: &str) -> PathBuf {
        self.inner.config.data_root.join("containers").join(id)
    }

    pub(crate) fn log_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join(format!("{id}-json.log"))
    }

    /// Finds a container by name (with or without `/`), full id, or unique id prefix.
    pub fn find_container(&self, name: &str) -> Result<ContainerRecord, EngineError> {
        self.find_container_arc(name).map(|r| (*r).clone())
    }

    /// `find_container` without the copy, for readers.
    pub(crate) fn find_container_arc(&self, name: &str) -> Result<Arc<ContainerRecord>, EngineError> {
        let store = &self.inner.containers;
        let bare = name.strip_prefix('/').unwrap_or(name);
        if let Some(rec) = store.get(bare) {
            return Ok(rec);
        }
        if let Some(rec) = store.holder_of(bare).and_then(|id| store.get(&id)) {
            return Ok(rec);
        }
        if !bare.is_empty() && bare.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found = store.with_id_prefix(bare);
            if found.len() == 1 {
                return Ok(found.remove(0));
            }
            if found.len() > 1 {
                return Err(EngineError::Invalid(format!("multiple containers found with provided prefix: {bare}")));
            }
        }
        Err(EngineError::NotFound(format!("No such container: {name}")))
    }

    /// Every container record, in no particular order.
    pub(crate) fn all_containers(&self) -> Vec<Arc<ContainerRecord>> {
        self.inner.containers.list()
    }

    pub fn list_containers(&self, opts: &ListOptions) -> Result<Vec<Arc<ContainerRecord>>, EngineError> {
        let mut all = self.inner.containers.list();
        all.sort_by(|a, b| b.created.cmp(&a.created));
        let show_all = opts.all || opts.limit.is_some() || opts.filters.contains_key("status");
        let mut out = Vec::new();
        for c in all {
            if !show_all && !c.state.running && c.state.status != Status::Restarting {
                continue;
            }
            if !self.matches_filters(&c, &opts.filters)? {
                continue;
            }
            out.push(c);
            if opts.limit.is_some_and(|n| out.len() >= n) {
                break;
            }
        }
        Ok(out)
    }

    fn matches_filters(
        &self,
        c: &ContainerRecord,
        filters: &BTreeMap<String, Vec<String>>,
    ) -> Result<bool, EngineError> {
        for (key, values) in filters {
            if values.is_empty() {
                continue;
            }
            let ok = match key.as_str() {
                "status" => values.iter().any(|v| v == c.state.status.as_str()),
                "name" => values.iter().any(|v| wharf_types::pattern::name_filter_matches(v, &c.name)),
                "id" => values.iter().any(|v| c.id.starts_with(v.as_str())),
                // Every label given must match, as dockerd's MatchKVList: docker-compose finds a
                // service's containers by project, service and oneoff labels together.
                "label" => values.iter().all(|v| match v.split_once('=') {
                    Some((k, val)) => c.config.labels.get(k).is_some_and(|x| x == val),
                    None => c.config.labels.contains_key(v.as_str()),
                }),
                "ancestor" => {
                    let mut any = false;
                    for v in values {
                        if let Ok(img) = self.find_image(v) {
                            any |= img.id == c.image_id;
                        }
                    }
                    any
                }
                "health" => {
                    if let Some(v) =
                        values.iter().find(|v| !["starting", "healthy", "unhealthy", "none"].contains(&v.as_str()))
                    {
                        return Err(EngineError::Invalid(format!("Unrecognised filter value for health: {v}")));
                    }
                    let status = self.container_health(&c.id).map(|h| h.status);
                    let status = if c.state.running { status } else { None };
                    values.iter().any(|v| match &status {
                        Some(s) => v == s,
                        None => v == "none",
                    })
                }
                "exited" => {
                    c.state.status == Status::Exited
                        && values.iter().any(|v| v.parse::<i32>().ok() == Some(c.state.exit_code))
                }
                other => return Err(EngineError::Invalid(format!("Invalid filter '{other}'"))),
            };
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Creates a container from an image that is present locally (the client pulls first).
    pub async fn create_container(&self, req: CreateRequest) -> Result<ContainerRecord, EngineError> {
        self.create_container_warned(req).await.map(|(rec, _)| rec)
    }

    /// `create_container`, with dockerd's warnings for the create response (controls the host
    /// cannot apply, which were dropped, and deprecated ones).
    pub async fn create_container_warned(
        &self,
        req: CreateRequest,
    ) -> Result<(ContainerRecord, Vec<String>), EngineError> {
        // A start usually follows: its cgroup join then finds the kernel's lock ready.
        wharf_runtime::cgroups::warm_attach();
        let mut req = req;
        req.host_config.runtime = self.runtimes().resolve(&req.host_config.runtime)?;
        self.check_runtime_userns(&req.host_config)?;
        req.host_config.restart_policy.validate()?;
        if req.host_config.auto_remove && !req.host_config.restart_policy.is_none() {
            return Err(EngineError::Invalid(
                "conflicting options: cannot specify both --restart and --rm".to_string(),
            ));
        }
        let image = self.find_image(&req.image)?;
        let image_config = self.image_config(&image)?.config.unwrap_or_default();
        let name = match &req.name {
            Some(n) => {
                let n = n.strip_prefix('/').unwrap_or(n).to_string();
                if !ids::valid_name(&n) {
                    return Err(EngineError::Invalid(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                Some(n)
            }
            None => None,
        };

        // Docker's merge: the image's Cmd only when the user gave neither Entrypoint nor Cmd...
        let user_ep_empty = req.entrypoint.as_ref().is_none_or(|e| e.is_empty());
        let mut cmd = req.cmd.clone().unwrap_or_default();
        let mut entrypoint = req.entrypoint.clone().unwrap_or_default();
        if user_ep_empty {
            if cmd.is_empty() {
                cmd = image_config.cmd.clone().unwrap_or_default();
            }
            if req.entrypoint.is_none() {
                entrypoint = image_config.entrypoint.clone().unwrap_or_default();
            }
        }
        // ... and `--entrypoint ""` resets the image's entrypoint.
        if entrypoint.len() == 1 && entrypoint[0].is_empty() {
            entrypoint.clear();
        }
        let argv: Vec<String> = entrypoint.iter().chain(cmd.iter()).cloned().collect();
        if argv.is_empty() {
            return Err(EngineError::Invalid("No command specified".to_string()));
        }

        let mut env = image_config.env.clone().unwrap_or_default();
        for e in &req.env {
            let key = e.split('=').next().unwrap_or(e);
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(e.clone());
        }
        let mut labels = image_config.labels.clone().unwrap_or_default();
        labels.extend(req.labels.clone());
        let mut exposed: Vec<String> = image_config.exposed_ports.clone().unwrap_or_default().into_keys().collect();
        for p in &req.exposed_ports {
            if !exposed.contains(p) {
                exposed.push(p.clone());
            }
        }
        let healthcheck =
            crate::health::merge(req.healthcheck.clone(), crate::health::from_image(image_config.healthcheck.as_ref()));
        if let Some(h) = &healthcheck {
            crate::health::validate(h)?;
        }
        let mut host_config = req.host_config.clone();
        self.inner.config.container_defaults.apply(&mut host_config);
        if host_config.network_mode.is_empty() {
            host_config.network_mode = "default".to_string();
        }
        self.validate_network(&host_config)?;
        let warnings = crate::resources::check_create(&mut host_config, &crate::resources::support())?;
        crate::resources::check_storage_opt(&host_config.resources.storage_opt, &self.inner.config.data_root)?;
        host_config.cgroup_parent =
            crate::spec::check_cgroup_parent(&host_config.cgroup_parent, self.inner.config.cgroup_driver)?;
        self.validate_security(&host_config.security, host_config.network_mode == "host")?;
        let s = &host_config.security;
        self.check_userns_conflicts(&s.userns_mode, s.privileged, &host_config.network_mode, &s.pid_mode)?;
        host_config.log_config = crate::logrotate::resolve(&host_config.log_config, &self.inner.config.log_opts)?;

        let id = ids::random_id();
        let config = ContainerConfig {
            hostname: req.hostname.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| short_id(&id).to_string()),
            domainname: req.domainname.clone().unwrap_or_default(),
            user: req.user.clone().filter(|u| !u.is_empty()).or(image_config.user.clone()).unwrap_or_default(),
            env,
            cmd,
            entrypoint,
            image: req.image.clone(),
            working_dir: req
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
                .or(image_config.working_dir.clone().filter(|w| !w.is_empty()))
                .unwrap_or_default(),
            labels,
            stop_signal: req.stop_signal.clone().or(image_config.stop_signal.clone()),
            stop_timeout: req.stop_timeout,
            tty: req.tty,
            open_stdin: req.open_stdin,
            attach_stdin: req.attach_stdin,
            attach_stdout: req.attach_stdout,
            attach_stderr: req.attach_stderr,
            exposed_ports: exposed,
            healthcheck,
        };
        if !config.working_dir.is_empty() && !config.working_dir.starts_with('/') {
            return Err(EngineError::Invalid(format!(
                "the working directory '{}' is invalid, it needs to be an absolute path",
                config.working_dir
            )));
        }
        if let Some(s) = &config.stop_signal {
            crate::monitor::parse_signal(s)?;
        }
        let record = ContainerRecord {
            id: id.clone(),
            name: String::new(),
            created: wharf_types::time::rfc3339_nanos(SystemTime::now()),
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            config,
            host_config,
            image_id: image.id.clone(),
            chain_ids: image.chain_ids.clone(),
            state: ContainerState::default(),
            restart_count: 0,
            mounts: Vec::new(),
        };
        let mut record = record;
        let image_volumes: Vec<String> = image_config.volumes.clone().unwrap_or_default().into_keys().collect();
        record.mounts = self.resolve_mounts(&record.host_config, &image_volumes, &record.chain_ids)?;

        let engine = self.clone();
        let dir_id = id.clone();
        blocking(move || {
            std::fs::create_dir_all(engine.container_dir(&dir_id))
                .map_err(|e| EngineError::io(format!("create container dir for {dir_id}"), e))?;
            engine.inner.snapshots.prepare_container(&dir_id)?;
            crate::failpoint::hit("create-after-files");
            Ok(())
        })
        .await?;

        let _guard = self.inner.containers_lock.lock().await;
        let result = self.inner.containers.write(|tx| {
            let name = match &name {
                Some(n) => {
                    if let Some(holder) = tx.holder_of(n) {
                        return Err(EngineError::Conflict(format!(
                            "Conflict. The container name \"/{n}\" is already in use by container \"{holder}\". You have to remove (or rename) that container to be able to reuse that name."
                        )));
                    }
                    n.clone()
                }
                None => ids::pick_name(&record.id, |n| Ok::<_, EngineError>(tx.holder_of(n).is_some()))?,
            };
            let mut rec = record.clone();
            rec.name = name.clone();
            tx.put_name(&name, &rec.id);
            tx.put(&rec);
            Ok(rec)
        });
        match result {
            Ok(rec) => {
                crate::failpoint::hit("create-after-record");
                self.live(&rec.id);
                self.container_event(&rec, "create", &[]);
                Ok((rec, warnings))
            }
            Err(e) => {
                let _ = self.inner.snapshots.remove_container(&id);
                let _ = std::fs::remove_dir_all(self.container_dir(&id));
                Err(e)
            }
        }
    }

    /// Starts a created or exited container: writes its OCI bundle, starts its shim, and waits
    /// until its command has been exec'd (or failed to be).
    pub async fn start_container(&self, name: &str) -> Result<(), EngineError> {
        let began = std::time::Instant::now();
        let r = self.start_inner(name, false).await.map(|_| ());
        self.metrics().start_done(r.is_ok(), began.elapsed());
        r
    }

    /// Starts a container; `policy` when its restart policy asks for it, which happens only if
    /// it is still waiting for that restart (`Ok(false)` otherwise).
    pub(crate) async fn start_inner(&self, name: &str, policy: bool) -> Result<bool, EngineError> {
        // The shim's cgroup join is about 10 ms away: start the kernel's wait for it now.
        wharf_runtime::cgroups::warm_attach();
        let rec = self.find_container(name)?;
        let live = self.live(&rec.id);
        let _op = live.op.lock().await;
        let mut rec = self.find_container(&rec.id)?;
        if policy && (rec.state.status != Status::Restarting || rec.state.manually_stopped) {
            return Ok(false);
        }
        if rec.state.running {
            return Err(EngineError::NotModified(format!("container {} is already running", rec.id)));
        }
        self.wait_exited_shim(&live).await;
        if policy {
            rec.restart_count += 1;
        } else {
            rec.restart_count = 0;
            self.inner.restarts.reset(&rec.id);
        }
        let engine = self.clone();
        let spawn_rec = rec.clone();
        let t0 = wharf_runtime::phases::now_ns();
        let spawned = blocking(move || {
            engine.network_attach(&spawn_rec)?;
            let t_network = wharf_runtime::phases::now_ns();
            crate::failpoint::hit("start-after-network");
            let r = engine.spawn_shim(&spawn_rec).map(|mut h| {
                h.phases.push(("network".to_string(), t_network));
                h
            });
            if r.is_ok() {
                crate::failpoint::hit("start-after-spawn");
            }
            if r.is_err() {
                if let Err(e) = engine.network_release(&spawn_rec.id) {
                    log::warn!("{e}");
                }
            }
            r
        })
        .await;
        match spawned {
            Ok(mut h) => {
                rec.state = ContainerState {
                    status: Status::Running,
                    running: true,
                    pid: h.pid,
                    shim_pid: h.shim_pid,
                    started_at: wharf_types::time::rfc3339_nanos(SystemTime::now()),
                    finished_at: rec.state.finished_at.clone(),
                    ..Default::default()
                };
                self.put_container(&rec)?;
                h.phases.push(("record".to_string(), wharf_runtime::phases::now_ns()));
                log::debug!(
                    "container {}: start phases (ms): {}",
                    rec.id,
                    wharf_runtime::phases::describe(t0, &h.phases)
                );
                // The record knows the start now: `shim.json` stays only for starts it does not.
                let _ = std::fs::remove_file(self.container_dir(&rec.id).join("shim.json"));
                live.started(h.pid);
                self.container_event(&rec, "start", &[]);
                if policy {
                    self.container_event(&rec, "restart", &[]);
                }
                self.watch_shim(rec.id.clone(), h.shim_pid, h.exit_notify.take());
                self.start_health(&rec);
                Ok(true)
            }
            Err(e) => {
                let code = match &e {
                    EngineError::Exec { exit_code, .. } => *exit_code,
                    _ => 128,
                };
                rec.state.status = if rec.state.started_at.is_empty() { Status::Created } else { Status::Exited };
                rec.state.exit_code = code;
                rec.state.error = e.to_string();
                self.put_container(&rec)?;
                if rec.host_config.auto_remove {
                    drop(_op);
                    let _ = self.remove_container(&rec.id, true).await;
                }
                Err(e)
            }
        }
    }

    fn spawn_shim(&self, rec: &ContainerRecord) -> Result<Handshake, EngineError> {
        let runtime_args = self.shim_runtime_args(rec)?;
        let dir = self.container_dir(&rec.id);
        let spec = self.generate_spec(rec)?;
        let spec_json =
            serde_json::to_vec_pretty(&spec).map_err(|e| EngineError::Internal(format!("encode config.json: {e}")))?;
        std::fs::write(dir.join("config.json"), spec_json).map_err(|e| EngineError::io("write config.json", e))?;
        let t_spec = wharf_runtime::phases::now_ns();
        let _ = std::fs::remove_file(dir.join("exit.json"));
        let _ = std::fs::remove_file(dir.join("shim.json"));
        let shim_log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("shim.log"))
            .map_err(|e| EngineError::io("open shim.log", e))?;
        let mut child = Command::new(&self.inner.config.shim_path)
            .arg("--id")
            .arg(&rec.id)
            .arg("--bundle")
            .arg(&dir)
            .args(self.shim_stdio_args(rec))
            .args(runtime_args)
            .args(crate::logrotate::shim_args(&rec.host_config.log_config))
            .args(wharf_runtime::rlimit::inherited_soft().map(|n| format!("--nofile-soft={n}")))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(shim_log)
            .spawn()
            .map_err(|e| EngineError::io(format!("start shim {}", self.inner.config.shim_path.display()), e))?;
        let t_shim_spawned = wharf_runtime::phases::now_ns();
        let mut line = String::new();
        let mut notify = None;
        let read = match child.stdout.take() {
            Some(out) => {
                let mut reader = BufReader::new(out);
                let r = reader.read_line(&mut line);
                notify = Some(std::os::fd::OwnedFd::from(reader.into_inner()));
                r
            }
            None => Ok(0),
        };
        let _ = child.wait();
        read.map_err(|e| EngineError::io("read shim handshake", e))?;
        if line.trim().is_empty() {
            let log = std::fs::read_to_string(dir.join("shim.log")).unwrap_or_default();
            let last = log.lines().last().unwrap_or("no output").to_string();
            return Err(EngineError::Internal(format!(
                "shim for container {} exited before starting it: {last}",
                rec.id
            )));
        }
        let mut h: Handshake = serde_json::from_str(line.trim())
            .map_err(|e| EngineError::Internal(format!("shim handshake {line:?}: {e}")))?;
        h.exit_notify = notify;
        h.phases.push(("spec".to_string(), t_spec));
        h.phases.push(("shim-spawned".to_string(), t_shim_spawned));
        h.phases.push(("handshake".to_string(), wharf_runtime::phases::now_ns()));
        if let Some(message) = h.error {
            return Err(EngineError::Exec { message, exit_code: h.exit_code.unwrap_or(125) });
        }
        Ok(h)
    }

    /// The shim's `--runtime` arguments when another OCI runtime runs the container. Checked
    /// before the spec is written: a runtime the daemon no longer has is dockerd's 400.
    fn shim_runtime_args(&self, rec: &ContainerRecord) -> Result<Vec<std::ffi::OsString>, EngineError> {
        let runtimes = self.runtimes();
        let Some(rt) = runtimes.oci(&rec.host_config.runtime)? else { return Ok(Vec::new()) };
        self.check_runtime_userns(&rec.host_config)?;
        let root = self.inner.config.exec_root.join(format!("runtime-{}", rec.host_config.runtime));
        let mut args: Vec<std::ffi::OsString> =
            vec!["--runtime".into(), rt.path.clone().into(), "--runtime-root".into(), root.into()];
        for a in &rt.args {
            args.push("--runtime-arg".into());
            args.push(a.into());
        }
        // runc reads a `slice:prefix:name` cgroupsPath only with its systemd driver.
        if self.inner.config.cgroup_driver == crate::CgroupDriver::Systemd {
            args.push("--runtime-arg".into());
            args.push("--systemd-cgroup".into());
        }
        Ok(args)
    }

    /// Another OCI runtime cannot run a remapped container: the remapped root reads the
    /// image's layers through idmapped mounts that only wharf's own runtime takes from the shim.
    fn check_runtime_userns(&self, hc: &HostConfig) -> Result<(), EngineError> {
        if self.runtimes().oci(&hc.runtime)?.is_some() && self.remap_for(&hc.security.userns_mode).is_some() {
            return Err(EngineError::Invalid(format!(
                "runtime {:?} cannot run containers under userns-remap: use --runtime runc (wharf's own) or --userns host",
                hc.runtime
            )));
        }
        Ok(())
    }

    pub(crate) fn put_container(&self, rec: &ContainerRecord) -> Result<(), EngineError> {
        self.inner.containers.put(rec)
    }

    /// Sends the stop signal, waits up to the timeout, then kills. Returns `NotModified` when the
    /// container was not running.
    pub async fn stop_container(
        &self,
        name: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<(), EngineError> {
        let rec = self.find_container(name)?;
        let live = self.live(&rec.id);
        let _op = live.op.lock().await;
        if !live.is_running() {
            if self.find_container(&rec.id)?.state.status == Status::Restarting
                && self.mark_manually_stopped(&rec.id)?
            {
                self.container_event(&rec, "stop", &[]);
                return Ok(());
            }
            return Err(EngineError::NotModified(format!("container {} is not running", rec.id)));
        }
        self.mark_manually_stopped(&rec.id)?;
        self.thaw_if_paused(&rec.id).await?;
        let sig_name =
            signal.map(str::to_string).or(rec.config.stop_signal.clone()).unwrap_or_else(|| "SIGTERM".into());
        let sig = crate::monitor::parse_signal(&sig_name)?;
        let secs = timeout.or(rec.config.stop_timeout).unwrap_or(10);
        let _ = live.signal(sig);
        self.container_event(&rec, "kill", &[("signal", sig.to_string())]);
        let waited = if secs < 0 {
            live.wait_exit(None).await
        } else {
            live.wait_exit(Some(Duration::from_secs(secs as u64))).await
        };
        if !waited {
            let _ = live.signal(libc::SIGKILL);
            self.container_event(&rec, "kill", &[("signal", libc::SIGKILL.to_string())]);
            if !live.wait_exit(Some(Duration::from_secs(30))).await {
                return Err(EngineError::Internal(format!("container {} did not exit after SIGKILL", rec.id)));
            }
        }
        self.container_event(&rec, "stop", &[]);
        Ok(())
    }

    /// Sends a signal (SIGKILL by default) to the container's init.
    pub async fn kill_container(&self, name: &str, signal: Option<&str>) -> Result<(), EngineError> {
        let rec = self.find_container(name)?;
        let live = self.live(&rec.id);
        let sig = crate::monitor::parse_signal(signal.unwrap_or("SIGKILL"))?;
        if !live.is_running() {
            return Err(EngineError::Conflict(format!("Container {} is not running", rec.id)));
        }
        let stop_sig = rec.config.stop_signal.as_deref().map(crate::monitor::parse_signal).transpose()?;
        if sig == libc::SIGKILL || Some(sig) == stop_sig || (stop_sig.is_none() && sig == libc::SIGTERM) {
            self.mark_manually_stopped(&rec.id)?;
        }
        self.thaw_if_paused(&rec.id).await?;
        live.signal(sig).map_err(|e| EngineError::io(format!("signal container {}", rec.id), e))?;
        self.container_event(&rec, "kill", &[("signal", sig.to_string())]);
        if sig == libc::SIGKILL && !live.wait_exit(Some(Duration::from_secs(10))).await {
            return Err(EngineError::Internal(format!("container {} did not exit after SIGKILL", rec.id)));
        }
        Ok(())
    }

    /// Registers a wait now and returns the future that completes with the exit code and the
    /// error text when the condition is met (the API sends headers in between).
    pub fn wait_future(
        &self,
        name: &str,
        condition: WaitCondition,
    ) -> Result<impl std::future::Future<Output = (i32, String)> + Send + 'static, EngineError> {
        let rec = self.find_container(name)?;
        let live = self.live(&rec.id);
        let mark = live.mark();
        Ok(async move { live.wait_since(condition, mark).await })
    }

    /// Removes a container; `force` kills it first when it runs.
    pub async fn remove_container(&self, name: &str, force: bool) -> Result<(), EngineError> {
        let rec = self.find_container(name)?;
        let live = self.live(&rec.id);
        let op = live.op.lock().await;
        // A container its restart policy is about to start again counts as running (dockerd).
        let restarting = rec.state.status == Status::Restarting;
        if (live.is_running() || restarting) && !force {
            let state = if rec.state.paused {
                "paused"
            } else if restarting && !live.is_running() {
                "restarting"
            } else {
                "running"
            };
            return Err(EngineError::Conflict(format!(
                "You cannot remove a {state} container {}. Stop the container before attempting removal or force remove",
                rec.id
            )));
        }
        // No restart may start it again while it goes.
        self.inner.restarts.reset(&rec.id);
        if live.is_running() {
            self.thaw_if_paused(&rec.id).await?;
            let _ = live.signal(libc::SIGKILL);
            if !live.wait_exit(Some(Duration::from_secs(30))).await {
                return Err(EngineError::Internal(format!("container {} did not exit after SIGKILL", rec.id)));
            }
        }
        // The cgroup, not the record, says what runs: a start that the daemon never recorded or
        // a process that outlived its shim is killed here, and the record stays while anything
        // of the container is left running.
        let engine = self.clone();
        let id = rec.id.clone();
        blocking(move || engine.kill_leftovers(&id)).await?;
        crate::failpoint::hit("remove-after-kill");
        let rec = self.find_container(&rec.id)?;
        self.inner.restarts.reset(&rec.id);
        self.inner.containers.write(|tx| {
            tx.delete(&rec.id);
            if tx.holder_of(&rec.name).as_deref() == Some(rec.id.as_str()) {
                tx.delete_name(&rec.name);
            }
            Ok(())
        })?;
        crate::failpoint::hit("remove-after-record");
        self.inner.execs.remove_container(&rec.id);
        live.removed(rec.state.exit_code);
        if rec.host_config.auto_remove {
            self.remove_anonymous_volumes(&rec.mounts);
        }
        self.container_event(&rec, "destroy", &[]);
        drop(op);
        {
            let mut map = crate::sync::lock(&self.inner.live);
            map.remove(&rec.id);
        }
        // The record is gone, so nothing can see the files any more: remove them off the
        // request's path. A crash before this finishes is caught by `sweep_orphans` at start.
        let engine = self.clone();
        let id = rec.id.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = engine.remove_container_files(&id) {
                log::warn!("{e}");
            }
        });
        Ok(())
    }

    /// The container's cgroup. Once started, it is the path its bundle names (a container
    /// keeps it across a change of the daemon's `cgroup-parent`, and a container whose record
    /// is gone still has it); before, where its next start puts it.
    pub(crate) fn container_cgroup(&self, id: &str) -> String {
        #[derive(Deserialize)]
        struct Bundle {
            linux: Option<BundleLinux>,
        }
        #[derive(Deserialize)]
        struct BundleLinux {
            #[serde(rename = "cgroupsPath")]
            cgroups_path: Option<String>,
        }
        let started = std::fs::read(self.container_dir(id).join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Bundle>(&b).ok())
            .and_then(|b| b.linux?.cgroups_path)
            .filter(|p| !p.is_empty());
        if let Some(path) = started {
            return path;
        }
        let own = self.inner.containers.get(id);
        self.cgroup_for(id, own.as_ref().map_or("", |r| r.host_config.cgroup_parent.as_str()))
    }

    /// `<parent>/<id>`, with the daemon's parent where the container names none; with the
    /// systemd driver runc's `<slice>:docker:<id>`, the scope `docker-<id>.scope` in the slice.
    pub(crate) fn cgroup_for(&self, id: &str, own_parent: &str) -> String {
        let parent = if own_parent.is_empty() { self.inner.config.cgroup_parent.as_str() } else { own_parent };
        match self.inner.config.cgroup_driver {
            crate::CgroupDriver::Cgroupfs => format!("{}/{id}", parent.trim_end_matches('/')),
            crate::CgroupDriver::Systemd => format!("{parent}:{SCOPE_PREFIX}:{id}"),
        }
    }

    /// Kills whatever still runs in the container's cgroup and removes the cgroup; an error
    /// while anything is left (the caller keeps the container's record then).
    pub(crate) fn kill_leftovers(&self, id: &str) -> Result<(), EngineError> {
        let path = self.container_cgroup(id);
        let cg = match wharf_runtime::cgroups::Cgroup::open(&path) {
            Ok(cg) => cg,
            Err(e) if e.kind() == wharf_types::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(EngineError::Internal(format!("container {id}: {e}"))),
        };
        let left = cg.all_procs();
        if !left.is_empty() {
            log::warn!("container {id}: killing {} processes left in its cgroup: {left:?}", left.len());
        }
        cg.kill_all(Duration::from_secs(10))
            .and_then(|()| cg.remove())
            .map_err(|e| EngineError::Internal(format!("remove container {id}: {e}")))
    }

    /// Removes everything a container left on disk and in the cgroup tree; reports every
    /// failure, after trying all of it.
    pub(crate) fn remove_container_files(&self, id: &str) -> Result<(), EngineError> {
        let mut errors = Vec::new();
        let cgroup = self.container_cgroup(id);
        // The shim removes the cgroup when the container exits; this catches a shim that died.
        let cgroup_gone = match wharf_runtime::cgroups::Cgroup::open(&cgroup) {
            Ok(cg) => match cg.remove() {
                Ok(()) => true,
                Err(e) => {
                    errors.push(e.to_string());
                    false
                }
            },
            Err(e) if e.kind() == wharf_types::ErrorKind::NotFound => true,
            Err(e) => {
                errors.push(e.to_string());
                false
            }
        };
        if let Err(e) = self.inner.snapshots.remove_container(id) {
            errors.push(e.to_string());
        }
        // Another runtime's record of it (`runtime-<name>/<id>`), left by a shim that died
        // before its `delete`.
        for entry in std::fs::read_dir(&self.inner.config.exec_root).into_iter().flatten().flatten() {
            let state = entry.path().join(id);
            if entry.file_name().to_string_lossy().starts_with("runtime-") && state.is_dir() {
                if let Err(e) = std::fs::remove_dir_all(&state) {
                    errors.push(format!("remove {}: {e}", state.display()));
                }
            }
        }
        // The bundle says where the cgroup is (it may be under a parent of the container's
        // own): it stays while the cgroup does, so that the sweep at the next start finds both.
        let dir = self.container_dir(id);
        if cgroup_gone {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    errors.push(format!("remove {}: {e}", dir.display()));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Internal(format!("remove container {id}: {}", errors.join("; "))))
        }
    }

    /// The live state of a container, created on first use.
    pub(crate) fn live(&self, id: &str) -> Arc<Live> {
        let mut map = crate::sync::lock(&self.inner.live);
        map.entry(id.to_string()).or_insert_with(|| Arc::new(Live::new(None))).clone()
    }

    /// Records an exit reported by the shim, then removes the container if it asked for that.
    pub(crate) async fn on_exit(&self, id: &str, exit: Option<ExitFile>) {
        let Ok(mut rec) = self.find_container(id) else {
            // Removed meanwhile (`rm -f`): whoever still waits on it hears of the exit, and no
            // live state is made again for a container that is gone (it would stay forever).
            if let Some(live) = crate::sync::lock(&self.inner.live).get(id).cloned() {
                live.exited(0);
            }
            return;
        };
        let live = self.live(id);
        if exit.is_none() {
            // The shim died without recording an exit (it was killed): the container's init
            // outlives it in its pid namespace, unwatched. Nothing of a container the record
            // calls exited may run on, so whatever is left in its cgroup is killed first.
            let (engine, cid) = (self.clone(), id.to_string());
            if let Err(e) = blocking(move || engine.kill_leftovers(&cid)).await {
                log::error!("container {id}: after its shim died: {e}");
            }
        }
        let mut phases = exit.as_ref().map(|x| x.phases.clone()).unwrap_or_default();
        let stamp = |phases: &mut wharf_runtime::phases::Phases, name: &str| {
            phases.push((name.to_string(), wharf_runtime::phases::now_ns()));
        };
        let (code, oom, finished, error) = match exit {
            Some(x) => (x.exit_code, x.oom_killed, x.finished_at, String::new()),
            None => (
                255,
                false,
                wharf_types::time::rfc3339_nanos(SystemTime::now()),
                "container monitor (shim) exited without recording an exit status".to_string(),
            ),
        };
        // Read, changed and written in one step, so that a stop or an update that came in
        // since `rec` was read is kept. A container its policy restarts goes straight to
        // `restarting`, as dockerd's: written `exited` first, `ps` (which lists running and
        // restarting ones) lost it for as long as the network release took.
        let recorded = self.inner.containers.write(|tx| {
            let Some(mut r) = tx.get(id) else { return Ok(None) };
            let restarts = !r.host_config.auto_remove
                && r.host_config.restart_policy.should_restart(code, r.state.manually_stopped, r.restart_count);
            r.state.status = if restarts { Status::Restarting } else { Status::Exited };
            r.state.running = false;
            r.state.paused = false;
            r.state.pid = 0;
            r.state.shim_pid = 0;
            r.state.exit_code = code;
            r.state.oom_killed = oom;
            r.state.finished_at = finished.clone();
            r.state.error = error.clone();
            tx.put(&r);
            Ok(Some(r))
        });
        match recorded {
            Ok(Some(r)) => rec = r,
            Ok(None) => {}
            Err(e) => log::error!("container {id}: record exit: {e}"),
        }
        stamp(&mut phases, "exit-recorded");
        self.network_release_async(id).await;
        stamp(&mut phases, "network-released");
        // dockerd reports the OOM killer's kill as an event of its own, before the `die`.
        if oom {
            self.container_event(&rec, "oom", &[]);
        }
        self.container_event(&rec, "die", &[("exitCode", code.to_string())]);
        live.exited(code);
        stamp(&mut phases, "waiters-told");
        log::debug!("container {id}: exited with {code}");
        self.after_exit(&rec);
        if rec.host_config.auto_remove {
            if let Err(e) = self.remove_container(id, true).await {
                log::error!("container {id}: auto-remove: {e}");
            }
            stamp(&mut phases, "auto-removed");
        }
        if let Some(&(_, base)) = phases.first() {
            log::debug!("container {id}: exit phases (ms): {}", wharf_runtime::phases::describe(base, &phases));
        }
    }
}
