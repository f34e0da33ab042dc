//! Disk usage and image pruning: `GET /system/df` and `POST /images/prune`.

use std::time::SystemTime;

use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use wharf_engine::ImageDeleted;

use crate::body::Body;
use crate::router::{json, Ctx, Result};

fn unix_seconds(rfc3339: &str) -> i64 {
    wharf_types::time::parse_rfc3339(rfc3339)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `POST /images/prune?filters=`: dangling images, or every unused one with `dangling=false`.
pub async fn prune(ctx: &Ctx) -> Result<Response<Body>> {
    let filters = ctx.query.filters()?;
    let report = ctx.engine.prune_images(&filters).await?;
    let deleted: Vec<Value> = report
        .deleted
        .iter()
        .map(|d| match d {
            ImageDeleted::Untagged(r) => json!({ "Untagged": r }),
            ImageDeleted::Deleted(id) => json!({ "Deleted": id }),
        })
        .collect();
    let deleted = if deleted.is_empty() { Value::Null } else { Value::Array(deleted) };
    json(StatusCode::OK, &json!({ "ImagesDeleted": deleted, "SpaceReclaimed": report.space_reclaimed }))
}

/// `GET /system/df`.
pub async fn df(ctx: &Ctx) -> Result<Response<Body>> {
    let usage = ctx.engine.disk_usage().await?;
    let images: Vec<Value> = usage
        .images
        .iter()
        .map(|i| {
            json!({
                "Id": i.id.to_string(),
                "ParentId": "",
                "RepoTags": i.repo_tags,
                "RepoDigests": i.repo_digests,
                "Created": i.created.as_deref().map(unix_seconds).unwrap_or(0),
                "Size": i.size,
                "SharedSize": i.shared_size,
                "VirtualSize": i.size,
                "Labels": {},
                "Containers": i.containers,
            })
        })
        .collect();
    let containers: Vec<Value> = usage
        .containers
        .iter()
        .map(|c| {
            json!({
                "Id": c.id,
                "Names": [format!("/{}", c.name)],
                "Image": c.image,
                "ImageID": c.image_id.to_string(),
                "Command": c.command,
                "Created": unix_seconds(&c.created),
                "State": c.state,
                "Status": c.state,
                "SizeRw": c.size_rw,
                "SizeRootFs": c.size_root_fs,
                "Labels": {},
                "Mounts": [],
            })
        })
        .collect();
    let volumes: Vec<Value> = usage
        .volumes
        .iter()
        .map(|v| {
            json!({
                "Name": v.volume.name,
                "Driver": v.volume.driver,
                "Mountpoint": v.volume.mountpoint,
                "CreatedAt": v.volume.created_at,
                "Labels": v.volume.labels,
                "Options": v.volume.options,
                "Scope": "local",
                "UsageData": { "Size": v.size, "RefCount": v.ref_count },
            })
        })
        .collect();
    json(
        StatusCode::OK,
        &json!({
            "LayersSize": usage.layers_size,
            "Images": images,
            "Containers": containers,
            "Volumes": volumes,
            "BuildCache": crate::build::df_entries(ctx)?,
        }),
    )
}
