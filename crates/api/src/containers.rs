//! Container endpoints: create, start, stop, restart, kill, wait, logs, attach, inspect, list, remove.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use wharf_engine::{
    ContainerRecord, CreateRequest, HostConfig, ListOptions, LogChunk, LogOptions, LogStream, NetworkRecord,
    WaitCondition,
};

use crate::body::Body;
use crate::error::ApiError;
use crate::human;
use crate::router::{empty, json, Ctx, Result};

/// Docker's "strslice": a JSON string or an array of strings (or null).
fn strslice(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => Some(a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()),
        _ => None,
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    image: String,
    cmd: Value,
    entrypoint: Value,
    env: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
    hostname: Option<String>,
    domainname: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    stop_signal: Option<String>,
    stop_timeout: Option<i64>,
    tty: bool,
    open_stdin: bool,
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    exposed_ports: Option<BTreeMap<String, Value>>,
    host_config: Option<HostConfigBody>,
    /// Anonymous volumes (`docker run -v /path` sends them here, not in `Binds`).
    volumes: Option<BTreeMap<String, Value>>,
    mac_address: Option<String>,
    networking_config: Option<crate::networks::NetworkingConfigBody>,
    healthcheck: Option<HealthcheckBody>,
}

/// `Config.Healthcheck`: durations in nanoseconds.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct HealthcheckBody {
    test: Option<Vec<String>>,
    interval: i64,
    timeout: i64,
    retries: i64,
    start_period: i64,
    start_interval: i64,
}

/// `HostConfig.LogConfig`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct LogConfigBody {
    r#type: String,
    config: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct HostConfigBody {
    auto_remove: bool,
    memory: Option<i64>,
    memory_swap: Option<i64>,
    nano_cpus: Option<i64>,
    cpu_shares: Option<i64>,
    cpu_quota: Option<i64>,
    cpu_period: Option<i64>,
    pids_limit: Option<i64>,
    cpuset_cpus: Option<String>,
    cpuset_mems: Option<String>,
    #[serde(flatten)]
    resources: crate::resources::ResourcesBody,
    cgroup_parent: Option<String>,
    volume_driver: Option<String>,
    runtime: Option<String>,
    annotations: Option<BTreeMap<String, String>>,
    network_mode: Option<String>,
    port_bindings: Option<BTreeMap<String, Option<Vec<crate::networks::PortBindingBody>>>>,
    publish_all_ports: bool,
    binds: Option<Vec<String>>,
    mounts: Option<Vec<crate::volumes::MountBody>>,
    tmpfs: Option<BTreeMap<String, String>>,
    readonly_rootfs: bool,
    init: Option<bool>,
    volumes_from: Option<Vec<String>>,
    restart_policy: Option<RestartPolicyBody>,
    log_config: Option<LogConfigBody>,
    #[serde(flatten)]
    security: crate::security::SecurityBody,
    #[serde(flatten)]
    net: crate::networks::NetHostBody,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct RestartPolicyBody {
    name: String,
    maximum_retry_count: i64,
}

impl RestartPolicyBody {
    pub(crate) fn into_policy(self) -> wharf_engine::RestartPolicy {
        wharf_engine::RestartPolicy { name: self.name, maximum_retry_count: self.maximum_retry_count }
    }
}

/// `Binds` plus the anonymous volumes of `Config.Volumes` whose destination nothing else
/// mounts: docker-compose sends a named volume both as a bind and in `Config.Volumes`, and
/// dockerd skips such an entry rather than calling it a duplicate.
fn with_anonymous_volumes(
    binds: Vec<String>,
    volumes: Option<BTreeMap<String, Value>>,
    mounts: &[wharf_engine::MountRequest],
    tmpfs: Option<&BTreeMap<String, String>>,
) -> Vec<String> {
    let norm = |p: &str| p.trim_end_matches('/').to_string();
    let mut taken: Vec<String> = binds
        .iter()
        .map(|b| {
            let parts: Vec<&str> = b.split(':').collect();
            norm(if parts.len() == 1 { parts[0] } else { parts[1] })
        })
        .collect();
    taken.extend(mounts.iter().map(|m| norm(&m.target)));
    taken.extend(tmpfs.into_iter().flat_map(|t| t.keys().map(|k| norm(k))));
    let anonymous: Vec<String> =
        volumes.unwrap_or_default().into_keys().filter(|v| !taken.contains(&norm(v))).collect();
    binds.into_iter().chain(anonymous).collect()
}

/// `POST /containers/create?name=`.
/// `create?platform=` (API 1.41): as dockerd 20.10, a local image of another platform is
/// not found (the docker CLI then pulls the platform asked for); one of it, or no platform
/// asked, goes on.
fn check_platform(ctx: &Ctx, image: &str) -> Result<()> {
    let Some(p) = ctx.query.get("platform").filter(|p| !p.is_empty()) else { return Ok(()) };
    let want = wharf_types::oci::Platform::parse(p)
        .ok_or_else(|| ApiError::bad_request(format!("invalid platform {p:?}: want os/arch[/variant]")))?;
    let Ok(rec) = ctx.engine.find_image(image) else { return Ok(()) };
    let cfg = ctx.engine.image_config(&rec)?;
    let have = wharf_types::oci::Platform {
        architecture: cfg.architecture.clone(),
        os: cfg.os.clone(),
        os_version: None,
        variant: cfg.variant.clone(),
    };
    if want.matches(&have) {
        return Ok(());
    }
    let actual = match &have.variant {
        Some(v) => format!("{}/{}/{v}", have.os, have.architecture),
        None => format!("{}/{}", have.os, have.architecture),
    };
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        format!("image with reference {image} was found but does not match the specified platform: wanted {p}, actual: {actual}"),
    ))
}

pub async fn create(ctx: &Ctx, body: Bytes) -> Result<Response<Body>> {
    let raw = crate::decode::raw(&body, "invalid container config")?;
    let unset = crate::decode::unset_keys(raw.get("HostConfig"), ECHOED_LISTS);
    let b: CreateBody = crate::decode::from_value(raw, "invalid container config")?;
    if b.image.is_empty() {
        return Err(ApiError::bad_request("config: image is required"));
    }
    check_platform(ctx, &b.image)?;
    let hc = b.host_config.unwrap_or_default();
    // The engine lets the CRI's pod containers join a UTS namespace; dockerd's API does not.
    if let Some(mode) = hc.security.uts_mode.as_deref().filter(|m| m.starts_with("container:")) {
        return Err(ApiError::bad_request(format!("invalid UTS mode: {mode}")));
    }
    let annotations = hc.annotations.clone().unwrap_or_default();
    for k in annotations.keys() {
        if k.is_empty() {
            return Err(ApiError::bad_request(
                "invalid Annotations: the empty string is not permitted as an annotation key",
            ));
        }
        // wharf passes its own settings to the runtime as annotations under this prefix.
        if k.starts_with("io.wharf.") {
            return Err(ApiError::bad_request(format!("invalid Annotations: {k:?}: the prefix io.wharf. is reserved")));
        }
    }
    let mounts = crate::volumes::mount_requests(hc.mounts.unwrap_or_default())?;
    let binds = with_anonymous_volumes(hc.binds.unwrap_or_default(), b.volumes, &mounts, hc.tmpfs.as_ref());
    let req = CreateRequest {
        name: ctx.query.get("name").filter(|n| !n.is_empty()).map(str::to_string),
        image: b.image,
        cmd: strslice(&b.cmd),
        entrypoint: strslice(&b.entrypoint),
        env: b.env.unwrap_or_default(),
        working_dir: b.working_dir,
        user: b.user,
        hostname: b.hostname,
        domainname: b.domainname,
        labels: b.labels.unwrap_or_default(),
        stop_signal: b.stop_signal.filter(|s| !s.is_empty()),
        stop_timeout: b.stop_timeout,
        tty: b.tty,
        open_stdin: b.open_stdin,
        attach_stdin: b.attach_stdin,
        attach_stdout: b.attach_stdout,
        attach_stderr: b.attach_stderr,
        exposed_ports: b.exposed_ports.unwrap_or_default().into_keys().collect(),
        healthcheck: b.healthcheck.map(|h| wharf_engine::HealthConfig {
            test: h.test.unwrap_or_default(),
            interval: h.interval,
            timeout: h.timeout,
            start_period: h.start_period,
            retries: h.retries,
            start_interval: h.start_interval,
        }),
        host_config: HostConfig {
            auto_remove: hc.auto_remove,
            memory: hc.memory.unwrap_or(0),
            memory_swap: hc.memory_swap.unwrap_or(0),
            nano_cpus: hc.nano_cpus.unwrap_or(0),
            cpu_shares: hc.cpu_shares.unwrap_or(0),
            cpu_quota: hc.cpu_quota.unwrap_or(0),
            cpu_period: hc.cpu_period.unwrap_or(0),
            pids_limit: hc.pids_limit.filter(|p| *p > 0),
            cpuset_cpus: hc.cpuset_cpus.clone().unwrap_or_default(),
            cpuset_mems: hc.cpuset_mems.clone().unwrap_or_default(),
            resources: hc.resources.into_options(),
            cgroup_parent: hc.cgroup_parent.clone().unwrap_or_default(),
            volume_driver: hc.volume_driver.clone().unwrap_or_default(),
            annotations,
            // The engine fills in the default and refuses a name it does not know.
            runtime: hc.runtime.clone().unwrap_or_default(),
            network_mode: hc.network_mode.clone().unwrap_or_default(),
            port_bindings: crate::networks::port_bindings(hc.port_bindings),
            publish_all_ports: hc.publish_all_ports,
            binds,
            mounts,
            tmpfs: hc.tmpfs.unwrap_or_default(),
            readonly_rootfs: hc.readonly_rootfs,
            init: hc.init.unwrap_or(false),
            volumes_from: hc.volumes_from.unwrap_or_default(),
            security: hc.security.into_options(),
            net: crate::networks::net_options(hc.net, b.mac_address, b.networking_config, hc.network_mode.as_deref()),
            restart_policy: hc.restart_policy.unwrap_or_default().into_policy(),
            log_config: hc
                .log_config
                .map(|l| wharf_engine::LogConfig { driver: l.r#type, config: l.config.unwrap_or_default() })
                .unwrap_or_default(),
            unset: Some(unset),
        },
    };
    let (rec, warnings) = ctx.engine.create_container_warned(req).await?;
    json(StatusCode::CREATED, &json!({ "Id": rec.id, "Warnings": warnings }))
}

pub async fn start(ctx: &Ctx, id: &str) -> Result<Response<Body>> {
    ctx.engine.start_container(id).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn stop(ctx: &Ctx, id: &str) -> Result<Response<Body>> {
    let t = ctx.query.int("t")?.or(ctx.query.int("timeout")?);
    ctx.engine.stop_container(id, t, ctx.query.get("signal").filter(|s| !s.is_empty())).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn restart(ctx: &Ctx, id: &str) -> Result<Response<Body>> {
    let t = ctx.query.int("t")?.or(ctx.query.int("timeout")?);
    ctx.engine.restart_container(id, t, ctx.query.get("signal").filter(|s| !s.is_empty())).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn kill(ctx: &Ctx, id: &str) -> Result<Response<Body>> {
    // dockerd's router wraps the kill's error so ("Cannot kill container: x: No such container: x").
    ctx.engine.kill_container(id, ctx.query.get("signal").filter(|s| !s.is_empty())).await.map_err(|e| {
        let mut e = ApiError::from(e);
        // A bad signal is refused before the kill, unwrapped.
        if e.status != StatusCode::BAD_REQUEST {
            e.message = format!("Cannot kill container: {id}: {}", e.message);
        }
        e
    })?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn remove(ctx: &Ctx, id: &str) -> Result<Response<Body>> {
    let mounts = ctx.engine.find_container(id)?.mounts;
    ctx.engine.remove_container(id, ctx.query.bool("force")).await?;
    if ctx.query.bool("v") {
        ctx.engine.remove_anonymous_volumes(&mounts);
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/wait?condition=`: headers at once (the client starts the container
/// meanwhile), the status when the condition is met.
pub async fn wait(ctx: &Ctx, id: &str) -> Result<Response<Body>> {
    let condition = match ctx.query.get("condition").unwrap_or("") {
        "" | "not-running" => WaitCondition::NotRunning,
        "next-exit" => WaitCondition::NextExit,
        "removed" => WaitCondition::Removed,
        other => return Err(ApiError::bad_request(format!("invalid condition: {other:?}"))),
    };
    let fut = ctx.engine.wait_future(id, condition)?;
    let (tx, body) = Body::channel();
    tokio::spawn(async move {
        let (code, error) = fut.await;
        let err = if error.is_empty() { Value::Null } else { json!({ "Message": error }) };
        let _ = tx.send(Bytes::from(json!({ "StatusCode": code, "Error": err }).to_string() + "\n")).await;
    });
    let mut r = Response::new(body);
    r.headers_mut().insert("Content-Type", hyper::header::HeaderValue::from_static("application/json"));
    Ok(r)
}

/// One frame of Docker's multiplexed stream: `[stream, 0, 0, 0, len(u32 BE)] + payload`.
fn frame(chunk: &LogChunk, timestamps: bool, multiplexed: bool) -> Bytes {
    let mut payload = Vec::with_capacity(chunk.data.len() + 32);
    if timestamps {
        payload.extend_from_slice(chunk.time.as_bytes());
        payload.push(b' ');
    }
    payload.extend_from_slice(&chunk.data);
    if !multiplexed {
        return Bytes::from(payload);
    }
    let mut b = BytesMut::with_capacity(payload.len() + 8);
    b.put_u8(match chunk.stream {
        LogStream::Stdout => 1,
        LogStream::Stderr => 2,
    });
    b.put_slice(&[0, 0, 0]);
    b.put_u32(payload.len() as u32);
    b.put_slice(&payload);
    b.freeze()
}

fn stream_content_type(ctx: &Ctx, multiplexed: bool) -> &'static str {
    if multiplexed && ctx.version_at_least("1.42") {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    }
}

/// `GET /containers/{id}/logs?follow&stdout&stderr&since&until&timestamps&tail`.
pub fn logs(ctx: &Ctx, id: &str) -> Result<Response<Body>> {
    let q = &ctx.query;
    let (stdout, stderr) = (q.bool("stdout"), q.bool("stderr"));
    if !stdout && !stderr {
        return Err(ApiError::bad_request("Bad parameters: you must choose at least one stream"));
    }
    let now = SystemTime::now();
    let time_arg = |key: &str| -> Result<Option<SystemTime>> {
        match q.get(key).filter(|s| !s.is_empty() && *s != "0") {
            None => Ok(None),
            Some(s) => wharf_types::time::parse_time_arg(s, now)
                .map(Some)
                .ok_or_else(|| ApiError::bad_request(format!("invalid value for {key}: {s:?}"))),
        }
    };
    let tail = match q.get("tail").unwrap_or("all") {
        "all" | "" => None,
        n => Some(n.parse::<i64>().map_err(|_| ApiError::bad_request(format!("invalid value for tail: {n:?}")))?),
    };
    let opts = LogOptions {
        follow: q.bool("follow"),
        stdout,
        stderr,
        since: time_arg("since")?,
        until: time_arg("until")?,
        tail: tail.filter(|n| *n >= 0).map(|n| n as usize),
    };
    let rec = ctx.engine.find_container(id)?;
    let multiplexed = !rec.config.tty;
    let timestamps = q.bool("timestamps");
    let mut rx = ctx.engine.logs(id, opts)?;
    let (tx, body) = Body::channel();
    tokio::spawn(async move {
        while let Some(c) = rx.recv().await {
            if tx.send(frame(&c, timestamps, multiplexed)).await.is_err() {
                return;
            }
        }
    });
    let mut r = Response::new(body);
    r.headers_mut()
        .insert("Content-Type", hyper::header::HeaderValue::from_static(stream_content_type(ctx, multiplexed)));
    Ok(r)
}

/// `POST /containers/{id}/attach`: the docker CLI asks to upgrade the connection (101) and
/// then reads frames from it and writes the container's stdin into it; other clients read the
/// body of a plain 200. Registered before the answer, so a start that follows is not missed.
pub fn attach(ctx: &Ctx, id: &str, mut req: Request<Incoming>) -> Result<Response<Body>> {
    let q = &ctx.query;
    let rec = ctx.engine.find_container(id)?;
    let multiplexed = !rec.config.tty;
    let opts = wharf_engine::AttachOptions {
        stdin: q.bool("stdin"),
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        detach_keys: q.get("detachKeys").map(str::to_string),
    };
    let ctype = stream_content_type(ctx, multiplexed);
    // Docker's default is no live stream; a request asking for neither is taken as a live
    // attach, which is what clients that leave both out mean.
    let live = q.bool("stream") || !q.bool("logs");
    if !q.bool("logs") {
        let pending = ctx.engine.attach(id, opts)?;
        return Ok(crate::exec::hijack(&mut req, ctype, multiplexed, pending.connect()));
    }
    let replay = ctx
        .engine
        .logs(id, wharf_engine::LogOptions { stdout: opts.stdout, stderr: opts.stderr, ..Default::default() })?;
    let live = if live {
        let pending = ctx.engine.attach(id, opts)?;
        Some(Box::pin(pending.connect()) as _)
    } else {
        None
    };
    let session = crate::exec::replay_then(replay, live);
    Ok(crate::exec::hijack(&mut req, ctype, multiplexed, async move { Ok(session) }))
}

fn unix_secs(rfc: &str) -> i64 {
    wharf_types::time::parse_rfc3339(rfc)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn since(rfc: &str) -> Duration {
    wharf_types::time::parse_rfc3339(rfc).and_then(|t| SystemTime::now().duration_since(t).ok()).unwrap_or_default()
}

/// Docker's human `Status` column: `Up 3 seconds`, `Up 1 minute (healthy)`,
/// `Exited (0) 2 minutes ago`, `Created`.
fn status_text(c: &ContainerRecord, health: Option<&wharf_engine::Health>) -> String {
    let text = status_base(c);
    match health {
        Some(h) if c.state.running && !c.state.paused => match h.status.as_str() {
            "starting" => format!("{text} (health: starting)"),
            s => format!("{text} ({s})"),
        },
        _ => text,
    }
}

fn status_base(c: &ContainerRecord) -> String {
    use wharf_engine::Status;
    match c.state.status {
        Status::Running if c.state.paused => format!("Up {} (Paused)", human::duration(since(&c.state.started_at))),
        Status::Running => format!("Up {}", human::duration(since(&c.state.started_at))),
        Status::Exited => {
            format!("Exited ({}) {} ago", c.state.exit_code, human::duration(since(&c.state.finished_at)))
        }
        Status::Created => "Created".to_string(),
        Status::Removing => "Removal In Progress".to_string(),
        Status::Dead => "Dead".to_string(),
        Status::Restarting => {
            format!("Restarting ({}) {} ago", c.state.exit_code, human::duration(since(&c.state.finished_at)))
        }
        Status::Paused => format!("Up {} (Paused)", human::duration(since(&c.state.started_at))),
    }
}

fn command_text(c: &ContainerRecord) -> String {
    std::iter::once(c.path.as_str()).chain(c.args.iter().map(String::as_str)).collect::<Vec<_>>().join(" ")
}

/// `GET /containers/json?all&limit&filters`.
pub fn list(ctx: &Ctx) -> Result<Response<Body>> {
    let q = &ctx.query;
    let opts = ListOptions {
        all: q.bool("all"),
        limit: q.int("limit")?.filter(|n| *n > 0).map(|n| n as usize),
        filters: q.filters()?,
    };
    let size = q.bool("size");
    // Taken once: each entry names its networks.
    let networks = ctx.engine.list_networks();
    let containers = ctx.engine.list_containers(&opts)?;
    let out: Vec<Summary<'_>> = containers
        .iter()
        .map(|c| {
            let mut s = Summary::new(ctx, c, &networks);
            if size {
                let (rw, root) = ctx.engine.container_sizes(c);
                s.add_sizes(rw, root);
            }
            s
        })
        .collect();
    json(StatusCode::OK, &out)
}

/// One container as `GET /containers/json` (and `/system/df`) lists it, in dockerd's field
/// order. Serialized straight from the record: with thousands of containers, building a
/// `Value` tree per entry was most of the list's time.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Summary<'a> {
    id: &'a str,
    names: [String; 1],
    image: &'a str,
    #[serde(rename = "ImageID")]
    image_id: String,
    command: String,
    created: i64,
    ports: Value,
    /// For `?size=1`; left out when 0, as dockerd's `omitempty`.
    #[serde(skip_serializing_if = "Option::is_none")]
    size_rw: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size_root_fs: Option<u64>,
    labels: &'a BTreeMap<String, String>,
    state: &'static str,
    status: String,
    host_config: SummaryHostConfig<'a>,
    network_settings: crate::networks::ListSettings,
    mounts: Value,
}

#[derive(Serialize)]
struct SummaryHostConfig<'a> {
    #[serde(rename = "NetworkMode")]
    network_mode: &'a str,
}

impl<'a> Summary<'a> {
    /// `networks`: the engine's `list_networks`, taken once for the whole list.
    pub fn new(ctx: &Ctx, c: &'a ContainerRecord, networks: &[NetworkRecord]) -> Summary<'a> {
        // Only a running container with a healthcheck shows its health; asking for the others
        // would read a file per container.
        let health = if c.state.running && !c.state.paused && c.config.healthcheck.is_some() {
            ctx.engine.container_health(&c.id)
        } else {
            None
        };
        Summary {
            id: &c.id,
            names: [format!("/{}", c.name)],
            image: &c.config.image,
            image_id: c.image_id.to_string(),
            command: command_text(c),
            created: unix_secs(&c.created),
            ports: crate::networks::list_ports_json(c, ctx.engine.ports_endpoint(&c.id).as_ref()),
            size_rw: None,
            size_root_fs: None,
            labels: &c.config.labels,
            state: c.state.status.as_str(),
            status: status_text(c, health.as_ref()),
            host_config: SummaryHostConfig { network_mode: &c.host_config.network_mode },
            network_settings: crate::networks::list_settings(ctx, c, networks),
            mounts: crate::volumes::mounts_json(&c.mounts),
        }
    }

    pub fn add_sizes(&mut self, rw: u64, root_fs: u64) {
        self.size_rw = Some(rw).filter(|n| *n > 0);
        self.size_root_fs = Some(root_fs);
    }
}

fn or_zero(s: &str) -> &str {
    if s.is_empty() {
        wharf_types::time::ZERO_TIME
    } else {
        s
    }
}

/// `GET /containers/{id}/json`.
pub fn inspect(ctx: &Ctx, id: &str) -> Result<Response<Body>> {
    let c = ctx.engine.find_container(id)?;
    let dir = ctx.engine.config().data_root.join("containers").join(&c.id);
    let exposed: BTreeMap<&str, Value> = c.config.exposed_ports.iter().map(|p| (p.as_str(), json!({}))).collect();
    let hc = &c.host_config;
    let graph_data = match ctx.engine.find_image(&c.image_id.to_string()) {
        Ok(image) => json!(ctx.engine.graph_driver_data(&image, Some(&c.id))),
        Err(_) => Value::Null,
    };
    let mut v = json!({
        "Id": c.id,
        "Created": c.created,
        "Path": c.path,
        "Args": c.args,
        "State": {
            "Status": c.state.status.as_str(),
            "Running": c.state.running,
            "Paused": c.state.paused,
            "Restarting": c.state.status == wharf_engine::Status::Restarting,
            "OOMKilled": c.state.oom_killed,
            "Dead": false,
            "Pid": c.state.pid,
            "ExitCode": c.state.exit_code,
            "Error": c.state.error,
            "StartedAt": or_zero(&c.state.started_at),
            "FinishedAt": or_zero(&c.state.finished_at),
        },
        "Image": c.image_id.to_string(),
        "ResolvConfPath": dir.join("resolv.conf"),
        "HostnamePath": dir.join("hostname"),
        "HostsPath": dir.join("hosts"),
        "LogPath": if hc.log_config.driver == "none" { String::new() } else { dir.join(format!("{}-json.log", c.id)).display().to_string() },
        "Name": format!("/{}", c.name),
        "RestartCount": c.restart_count,
        "Driver": "overlayfs",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": wharf_engine::apparmor_profile(&hc.security),
        "ExecIDs": null,
        "HostConfig": {
            "NetworkMode": hc.network_mode,
            "AutoRemove": hc.auto_remove,
            "Memory": hc.memory,
            "MemorySwap": hc.memory_swap,
            "NanoCpus": hc.nano_cpus,
            "CpuShares": hc.cpu_shares,
            "CpuQuota": hc.cpu_quota,
            "CpuPeriod": hc.cpu_period,
            "CpusetCpus": hc.cpuset_cpus,
            "CpusetMems": hc.cpuset_mems,
            "CgroupParent": hc.cgroup_parent,
            "PidsLimit": hc.pids_limit,
            "RestartPolicy": {
                // As stored: the docker CLI sends "no", docker-py and compose nothing ("").
                "Name": hc.restart_policy.name,
                "MaximumRetryCount": hc.restart_policy.maximum_retry_count,
            },
            "LogConfig": {
                "Type": if hc.log_config.driver.is_empty() { "json-file" } else { hc.log_config.driver.as_str() },
                "Config": hc.log_config.config,
            },
            "Binds": if hc.binds.is_empty() { Value::Null } else { json!(hc.binds) },
            "Tmpfs": hc.tmpfs,
            "ReadonlyRootfs": hc.readonly_rootfs,
            "Init": hc.init,
            "VolumesFrom": if hc.volumes_from.is_empty() { Value::Null } else { json!(hc.volumes_from) },
            "PortBindings": crate::networks::port_bindings_json(&c),
            "PublishAllPorts": hc.publish_all_ports,
            // Windows-only controls, at dockerd's zero values.
            "CpuCount": 0,
            "CpuPercent": 0,
            "IOMaximumBandwidth": 0,
            "IOMaximumIOps": 0,
            "Cgroup": "",
            "ConsoleSize": [0, 0],
            "ContainerIDFile": "",
            "Isolation": "",
            // Records made before runtimes could be chosen ran under wharf's own, `runc`.
            "Runtime": if hc.runtime.is_empty() { wharf_engine::BUILTIN_RUNTIMES[0] } else { hc.runtime.as_str() },
            "VolumeDriver": hc.volume_driver,
        },
        "GraphDriver": {"Name": "overlayfs", "Data": graph_data},
        "Mounts": crate::volumes::mounts_json(&c.mounts),
        "Config": {
            "Hostname": c.config.hostname,
            "Domainname": c.config.domainname,
            "User": c.config.user,
            "AttachStdin": c.config.attach_stdin,
            "AttachStdout": c.config.attach_stdout,
            "AttachStderr": c.config.attach_stderr,
            "ExposedPorts": if exposed.is_empty() { Value::Null } else { json!(exposed) },
            "Tty": c.config.tty,
            "OpenStdin": c.config.open_stdin,
            "StdinOnce": false,
            "Env": c.config.env,
            "Cmd": c.config.cmd,
            "Image": c.config.image,
            "Volumes": config_volumes(&c),
            "WorkingDir": c.config.working_dir,
            "Entrypoint": if c.config.entrypoint.is_empty() { Value::Null } else { json!(c.config.entrypoint) },
            "OnBuild": null,
            "Labels": c.config.labels,
        },
        "NetworkSettings": crate::networks::settings_json(ctx, &c),
    });
    // dockerd leaves these out when unset (`omitempty`).
    if let Some(s) = c.config.stop_signal.as_deref().filter(|s| !s.is_empty()) {
        v["Config"]["StopSignal"] = json!(s);
    }
    if let Some(t) = c.config.stop_timeout {
        v["Config"]["StopTimeout"] = json!(t);
    }
    if let Some(h) = &c.config.healthcheck {
        let mut check = json!({"Test": h.test});
        for (key, n) in [
            ("Interval", h.interval),
            ("Timeout", h.timeout),
            ("StartPeriod", h.start_period),
            ("Retries", h.retries),
            ("StartInterval", h.start_interval),
        ] {
            if n != 0 {
                check[key] = json!(n);
            }
        }
        v["Config"]["Healthcheck"] = check;
    }
    if let Some(h) = ctx.engine.container_health(&c.id) {
        let log: Vec<Value> = h
            .log
            .iter()
            .map(|r| json!({"Start": r.start, "End": r.end, "ExitCode": r.exit_code, "Output": r.output}))
            .collect();
        v["State"]["Health"] = json!({"Status": h.status, "FailingStreak": h.failing_streak, "Log": log});
    }
    crate::resources::inspect_into(&mut v["HostConfig"], &hc.resources);
    crate::security::inspect_into(&mut v["HostConfig"], &hc.security);
    crate::networks::host_config_json(&mut v["HostConfig"], &hc.net);
    v["HostConfig"]["Links"] = crate::networks::links_json(&c.name, &hc.net);
    if !hc.annotations.is_empty() {
        v["HostConfig"]["Annotations"] = json!(hc.annotations);
    }
    echo_as_sent(&mut v["HostConfig"], hc);
    if ctx.query.bool("size") {
        // As in the list: `SizeRw` left out when 0 (dockerd's `omitempty`).
        let (rw, root) = ctx.engine.container_sizes(&c);
        if rw > 0 {
            v["SizeRw"] = json!(rw);
        }
        v["SizeRootFs"] = json!(root);
    }
    json(StatusCode::OK, &v)
}

/// `HostConfig` lists and maps that dockerd shows as the client sent them: `null` when left
/// out (docker-py), empty when sent empty (the docker CLI).
const ECHOED_LISTS: &[&str] = &[
    "Binds",
    "PortBindings",
    "VolumesFrom",
    "CapAdd",
    "CapDrop",
    "Dns",
    "DnsOptions",
    "DnsSearch",
    "ExtraHosts",
    "GroupAdd",
    "SecurityOpt",
    "Ulimits",
    "Devices",
    "DeviceCgroupRules",
    "DeviceRequests",
    "BlkioWeightDevice",
    "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps",
    "BlkioDeviceReadIOps",
    "BlkioDeviceWriteIOps",
    "Init",
];

/// Fields dockerd leaves out of `HostConfig` when empty (`omitempty`).
const OMITTED_WHEN_EMPTY: &[&str] = &["Tmpfs", "Sysctls", "StorageOpt", "Mounts"];

fn echo_as_sent(host_config: &mut Value, hc: &HostConfig) {
    let Some(m) = host_config.as_object_mut() else { return };
    let empty = |v: &Value| match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Null => true,
        Value::Bool(b) => !b,
        _ => false,
    };
    for key in OMITTED_WHEN_EMPTY {
        if m.get(*key).is_some_and(empty) {
            m.remove(*key);
        }
    }
    match &hc.unset {
        Some(unset) => {
            for key in ECHOED_LISTS {
                let left_out = unset.iter().any(|u| u == key);
                match m.get(*key) {
                    // `Init` is a `*bool`: absent unless sent.
                    Some(Value::Bool(false)) if *key == "Init" && left_out => {
                        m.remove(*key);
                    }
                    Some(v) if left_out && empty(v) => {
                        m.insert(key.to_string(), Value::Null);
                    }
                    Some(Value::Null) if !left_out => {
                        m.insert(key.to_string(), if *key == "PortBindings" { json!({}) } else { json!([]) });
                    }
                    _ => {}
                }
            }
        }
        // A record from before wharf kept what was sent: `Init` only when on.
        None => {
            if m.get("Init").is_some_and(empty) {
                m.remove("Init");
            }
        }
    }
}

/// `Config.Volumes`: the anonymous volumes (from the request's `Volumes` or the image's), not
/// the named ones and binds of `HostConfig`.
fn config_volumes(c: &ContainerRecord) -> Value {
    let named: Vec<&str> = c
        .host_config
        .binds
        .iter()
        .filter_map(|b| b.split(':').nth(1))
        .chain(c.host_config.mounts.iter().map(|m| m.target.as_str()))
        .collect();
    let anonymous: BTreeMap<&str, Value> = c
        .mounts
        .iter()
        .filter(|m| m.kind == wharf_engine::MountKind::Volume && !named.contains(&m.destination.as_str()))
        .map(|m| (m.destination.as_str(), json!({})))
        .collect();
    if anonymous.is_empty() {
        Value::Null
    } else {
        json!(anonymous)
    }
}
