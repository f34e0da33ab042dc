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
                "Labels": ctx.engine.find_image(&i.id.to_string()).ok().and_then(|r| ctx.engine.image_config(&r).ok())
                    .and_then(|c| c.config).and_then(|c| c.labels).filter(|l| !l.is_empty()),
                "Containers": i.containers,
            })
        })
        .collect();
    let networks = ctx.engine.list_networks();
    let containers: Vec<Value> = usage
        .containers
        .iter()
        .filter_map(|c| {
            // As in the container list, with the sizes; gone since the count, it is left out.
            let rec = ctx.engine.find_container(&c.id).ok()?;
            let mut s = crate::containers::Summary::new(ctx, &rec, &networks);
            s.add_sizes(c.size_rw, c.size_root_fs);
            serde_json::to_value(s).ok()
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
                "Labels": crate::volumes::null_if_empty(&v.volume.labels),
                "Options": crate::volumes::null_if_empty(&v.volume.options),
                "Scope": "local",
                "UsageData": { "Size": v.size, "RefCount": v.ref_count },
            })
        })
        .collect();
    let build_cache = crate::build::df_entries(ctx)?;
    let builder_size: u64 = build_cache.iter().filter_map(|e| e["Size"].as_u64()).sum();
    json(
        StatusCode::OK,
        &json!({
            "LayersSize": usage.layers_size,
            "Images": images,
            "Containers": containers,
            "Volumes": volumes,
            "BuildCache": if build_cache.is_empty() { Value::Null } else { json!(build_cache) },
            "BuilderSize": builder_size,
        }),
    )
}
