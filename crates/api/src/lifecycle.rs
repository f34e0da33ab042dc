//! Container lifecycle extras: rename, pause, unpause, update, prune.

use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;
use wharf_engine::UpdateRequest;

use crate::body::Body;
use crate::containers::RestartPolicyBody;
use crate::router::{empty, json, Ctx, Result};

/// `POST /containers/{id}/rename?name=`.
pub async fn rename(ctx: &Ctx, id: &str) -> Result<Response<Body>> {
    let name = ctx.query.get("name").unwrap_or("");
    ctx.engine.rename_container(id, name).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/pause`.
pub async fn pause(ctx: &Ctx, id: &str) -> Result<Response<Body>> {
    ctx.engine.pause_container(id).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/unpause`.
pub async fn unpause(ctx: &Ctx, id: &str) -> Result<Response<Body>> {
    ctx.engine.unpause_container(id).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct UpdateBody {
    memory: Option<i64>,
    memory_swap: Option<i64>,
    nano_cpus: Option<i64>,
    cpu_shares: Option<i64>,
    cpu_quota: Option<i64>,
    cpu_period: Option<i64>,
    pids_limit: Option<i64>,
    restart_policy: Option<RestartPolicyBody>,
    cpuset_cpus: Option<String>,
    cpuset_mems: Option<String>,
    memory_reservation: Option<i64>,
    kernel_memory: Option<i64>,
    blkio_weight: Option<u16>,
    cpu_realtime_period: Option<i64>,
    cpu_realtime_runtime: Option<i64>,
}

/// `POST /containers/{id}/update`.
pub async fn update(ctx: &Ctx, id: &str, body: Bytes) -> Result<Response<Body>> {
    let b: UpdateBody =
        if body.is_empty() { UpdateBody::default() } else { crate::decode::json_body(&body, "invalid update body")? };
    let req = UpdateRequest {
        memory: b.memory,
        memory_swap: b.memory_swap,
        nano_cpus: b.nano_cpus,
        cpu_shares: b.cpu_shares,
        cpu_quota: b.cpu_quota,
        cpu_period: b.cpu_period,
        pids_limit: b.pids_limit,
        // The docker CLI sends an empty policy when --restart was not given.
        restart_policy: b.restart_policy.map(RestartPolicyBody::into_policy).filter(|p| !p.name.is_empty()),
        cpuset_cpus: b.cpuset_cpus,
        cpuset_mems: b.cpuset_mems,
        memory_reservation: b.memory_reservation,
        kernel_memory: b.kernel_memory,
        blkio_weight: b.blkio_weight,
        cpu_rt_period: b.cpu_realtime_period,
        cpu_rt_runtime: b.cpu_realtime_runtime,
    };
    let warnings = ctx.engine.update_container(id, req).await?;
    // dockerd's update answers `null` when it has nothing to say.
    let warnings = if warnings.is_empty() { serde_json::Value::Null } else { json!(warnings) };
    json(StatusCode::OK, &json!({ "Warnings": warnings }))
}

/// `POST /containers/prune?filters=`.
pub async fn prune(ctx: &Ctx) -> Result<Response<Body>> {
    let filters = ctx.query.filters()?;
    let report = ctx.engine.prune_containers(&filters).await?;
    json(StatusCode::OK, &json!({ "ContainersDeleted": report.deleted, "SpaceReclaimed": report.space_reclaimed }))
}
