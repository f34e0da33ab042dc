//! Volume endpoints (`/volumes`: create, list, inspect, remove, prune) and the JSON of a
//! container's mounts (`HostConfig.Mounts` in, `Mounts` out).

use std::collections::BTreeMap;

use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use wharf_engine::{MountKind, MountPoint, MountRequest, VolumeRecord};

use crate::body::Body;
use crate::error::ApiError;
use crate::router::{empty, json, Ctx, Result};

/// A volume's labels or options: `null` when it has none, as dockerd shows a volume made
/// without any (implicitly by a container, or by docker-py).
pub fn null_if_empty(m: &std::collections::BTreeMap<String, String>) -> Value {
    if m.is_empty() {
        Value::Null
    } else {
        json!(m)
    }
}

fn volume_json(v: &VolumeRecord) -> Value {
    json!({
        "CreatedAt": v.created_at,
        "Driver": v.driver,
        "Labels": null_if_empty(&v.labels),
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": null_if_empty(&v.options),
        "Scope": "local",
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: String,
    driver: String,
    driver_opts: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

/// `POST /volumes/create`.
pub fn create(ctx: &Ctx, body: Bytes) -> Result<Response<Body>> {
    let b: CreateBody =
        if body.is_empty() { CreateBody::default() } else { crate::decode::json_body(&body, "invalid volume config")? };
    let v = ctx.engine.create_volume(
        Some(b.name.as_str()).filter(|n| !n.is_empty()),
        &b.driver,
        b.labels.unwrap_or_default(),
        b.driver_opts.unwrap_or_default(),
    )?;
    json(StatusCode::CREATED, &volume_json(&v))
}

/// `GET /volumes`.
pub fn list(ctx: &Ctx) -> Result<Response<Body>> {
    let filters = ctx.query.filters()?;
    let vols: Vec<Value> = ctx.engine.list_volumes(&filters)?.iter().map(volume_json).collect();
    json(StatusCode::OK, &json!({ "Volumes": vols, "Warnings": [] }))
}

/// `GET /volumes/{name}`.
pub fn inspect(ctx: &Ctx, name: &str) -> Result<Response<Body>> {
    json(StatusCode::OK, &volume_json(&ctx.engine.find_volume(name)?))
}

/// `DELETE /volumes/{name}?force=`.
pub fn remove(ctx: &Ctx, name: &str) -> Result<Response<Body>> {
    ctx.engine.remove_volume(name, ctx.query.bool("force"))?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /volumes/prune`.
pub fn prune(ctx: &Ctx) -> Result<Response<Body>> {
    let filters = ctx.query.filters()?;
    let (deleted, bytes) = ctx.engine.prune_volumes(&filters)?;
    json(StatusCode::OK, &json!({ "VolumesDeleted": deleted, "SpaceReclaimed": bytes }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountBody {
    #[serde(rename = "Type")]
    kind: String,
    source: String,
    target: String,
    read_only: bool,
    bind_options: Option<BindOptions>,
    volume_options: Option<VolumeOptions>,
    tmpfs_options: Option<TmpfsOptions>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct BindOptions {
    propagation: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct VolumeOptions {
    no_copy: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct TmpfsOptions {
    size_bytes: Option<i64>,
    mode: Option<u32>,
}

/// `HostConfig.Mounts` entries, typed; unknown types are refused.
pub fn mount_requests(mounts: Vec<MountBody>) -> Result<Vec<MountRequest>> {
    mounts
        .into_iter()
        .map(|m| {
            let kind = match m.kind.as_str() {
                "bind" => MountKind::Bind,
                "volume" | "" => MountKind::Volume,
                "tmpfs" => MountKind::Tmpfs,
                other => {
                    return Err(ApiError::bad_request(format!("invalid mount config: mount type unknown: {other:?}")))
                }
            };
            Ok(MountRequest {
                kind,
                source: m.source,
                target: m.target,
                read_only: m.read_only,
                no_copy: m.volume_options.map(|o| o.no_copy).unwrap_or(false),
                propagation: m.bind_options.map(|o| o.propagation).unwrap_or_default(),
                tmpfs_size: m.tmpfs_options.as_ref().and_then(|o| o.size_bytes),
                tmpfs_mode: m.tmpfs_options.as_ref().and_then(|o| o.mode),
            })
        })
        .collect()
}

/// A container's `Mounts` as Docker reports them.
pub fn mounts_json(mounts: &[MountPoint]) -> Value {
    Value::Array(
        mounts
            .iter()
            .map(|m| {
                let mut v = json!({
                    "Type": m.kind.as_str(),
                    "Source": m.source,
                    "Destination": m.destination,
                    "Mode": m.mode,
                    "RW": m.rw,
                    "Propagation": m.propagation,
                });
                if m.kind == MountKind::Volume {
                    v["Name"] = json!(m.name);
                    v["Driver"] = json!("local");
                }
                v
            })
            .collect(),
    )
}
