//! Image endpoints: pull (`POST /images/create`), list, inspect, tag, remove.

use std::time::SystemTime;
use wharf_types::pattern::path_match;

use base64::Engine as _;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use wharf_engine::{AuthConfig, ImageRecord, ImageSummary, PullEvent, PullRequest};
use wharf_types::oci::Platform;
use wharf_types::ImageRef;

use crate::body::Body;
use crate::error::{status_of, ApiError};
use crate::router::{json, json_response, Ctx, Result};

/// Decodes the `X-Registry-Auth` header: base64url (padded or not) JSON of an auth config.
pub(crate) fn registry_auth(req: &Request<Incoming>) -> Option<AuthConfig> {
    let raw = req.headers().get("X-Registry-Auth")?.to_str().ok()?.trim();
    if raw.is_empty() {
        return None;
    }
    let engines = [
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    let bytes = engines.iter().find_map(|e| e.decode(raw).ok())?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    if v.as_object().is_none_or(|o| o.is_empty()) {
        return None;
    }
    serde_json::from_value(v).ok()
}

pub(crate) fn progress_json(ev: &PullEvent) -> String {
    match ev {
        PullEvent::Status(s) => json!({ "status": s }).to_string(),
        PullEvent::Progress { id, status, current: Some(c), total: Some(t) } => json!({
            "status": status,
            "progressDetail": {"current": c, "total": t},
            "progress": progress_bar(*c, *t),
            "id": id,
        })
        .to_string(),
        PullEvent::Progress { id, status, .. } => {
            json!({ "status": status, "progressDetail": {}, "id": id }).to_string()
        }
    }
}

/// Docker's text bar: `[=====>        ]  1.2MB/4.5MB`.
fn progress_bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    if total == 0 {
        return human_size(current);
    }
    let filled = (current.min(total) * WIDTH / total) as usize;
    let mut bar = "=".repeat(filled);
    if filled < WIDTH as usize {
        bar.push('>');
    }
    format!("[{bar:<50}] {:>8}/{}", human_size(current), human_size(total))
}

pub fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    // Docker prints sizes with Go's "%.4g": four significant digits, no trailing zeros.
    let int_digits = if v >= 100.0 {
        3
    } else if v >= 10.0 {
        2
    } else {
        1
    };
    let mut s = format!("{v:.prec$}", prec = 4 - int_digits);
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", units[i])
}

/// `POST /images/create?fromImage=NAME&tag=TAG`: a pull, streamed as JSON progress lines.
/// An error before any layer work is answered with a proper status; later ones go in-stream.
pub async fn create(ctx: &Ctx, req: Request<Incoming>) -> Result<Response<Body>> {
    let q = &ctx.query;
    if q.get("fromSrc").is_some() {
        return crate::transfer::import(ctx, req).await;
    }
    let from =
        q.get("fromImage").filter(|s| !s.is_empty()).ok_or_else(|| ApiError::bad_request("fromImage is required"))?;
    let tag = q.get("tag").unwrap_or("");
    // No tag or digest at all, in `tag` or in `fromImage`: every tag of the repository, as
    // dockerd does (`pull --all-tags`; the docker CLI sends `latest` otherwise).
    let all_tags = tag.is_empty() && {
        let r = ImageRef::parse_any(from)?;
        r.digest.is_none() && r.tag.is_none()
    };
    let reference = if tag.is_empty() {
        ImageRef::parse(from)?
    } else if tag.contains(':') {
        ImageRef::parse(&format!("{from}@{tag}"))?
    } else {
        ImageRef::parse(&format!("{from}:{tag}"))?
    };
    let platform = match q.get("platform").filter(|s| !s.is_empty()) {
        Some(p) => Some(Platform::parse(p).ok_or_else(|| ApiError::bad_request(format!("invalid platform {p:?}")))?),
        None => None,
    };
    let auth = registry_auth(&req);
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let engine = ctx.engine.clone();
    let mut pull = tokio::spawn(async move {
        if !all_tags {
            return engine.pull(PullRequest { reference, platform, auth }, ev_tx).await.map(|_| ());
        }
        let tags = engine.remote_tags(reference.clone(), auth.clone()).await?;
        for t in tags {
            let reference = ImageRef { tag: Some(t), ..reference.clone() };
            let req = PullRequest { reference, platform: platform.clone(), auth: auth.clone() };
            engine.pull(req, ev_tx.clone()).await?;
        }
        Ok(())
    });

    // Hold the first lines back until the registry has answered, so "not found" and
    // "unauthorized" get a real status code.
    let mut early: Vec<PullEvent> = Vec::new();
    loop {
        tokio::select! {
            ev = ev_rx.recv() => match ev {
                Some(ev) => {
                    let is_layer_work = matches!(&ev, PullEvent::Progress { status, .. } if !status.starts_with("Pulling from"));
                    early.push(ev);
                    if is_layer_work { break; }
                }
                None => break,
            },
            res = &mut pull => {
                let res = res.map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
                if let Err(e) = res {
                    return Err(ApiError::new(status_of(e.kind()), e.to_string()));
                }
                while let Ok(ev) = ev_rx.try_recv() { early.push(ev); }
                let body: String = early.iter().map(|e| progress_json(e) + "\r\n").collect();
                return Ok(json_response(StatusCode::OK, body));
            }
        }
    }
    let (tx, body) = Body::channel();
    tokio::spawn(async move {
        // When the client goes away, dropping `ev_rx` tells the pull (it stops what no other
        // pull waits for); the pull task itself runs on to that end, detached.
        for ev in early {
            if tx.send(Bytes::from(progress_json(&ev) + "\r\n")).await.is_err() {
                return;
            }
        }
        loop {
            tokio::select! {
                ev = ev_rx.recv() => match ev {
                    Some(ev) => {
                        if tx.send(Bytes::from(progress_json(&ev) + "\r\n")).await.is_err() {
                            return;
                        }
                    }
                    None => break,
                },
                _ = tx.closed() => return,
            }
        }
        let res = match pull.await {
            Ok(r) => r.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(msg) = res {
            let line = json!({"errorDetail": {"message": msg}, "error": msg}).to_string() + "\r\n";
            let _ = tx.send(Bytes::from(line)).await;
        }
    });
    let mut r = Response::new(body);
    r.headers_mut().insert("Content-Type", hyper::header::HeaderValue::from_static("application/json"));
    Ok(r)
}

fn created_unix(s: &Option<String>) -> i64 {
    s.as_deref()
        .and_then(wharf_types::time::parse_rfc3339)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn summary_json(s: &ImageSummary, legacy_none: bool) -> Value {
    let mut tags: Vec<String> = s.repo_tags.iter().map(|r| r.familiar()).collect();
    let mut digests: Vec<String> = s.repo_digests.iter().map(|r| r.familiar()).collect();
    if legacy_none && tags.is_empty() {
        tags.push("<none>:<none>".to_string());
        if digests.is_empty() {
            digests.push("<none>@<none>".to_string());
        }
    }
    let labels = s.config.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
    json!({
        "Id": s.record.id.to_string(),
        "ParentId": s.record.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        "RepoTags": tags,
        "RepoDigests": digests,
        "Created": created_unix(&s.record.created),
        "Size": s.record.size,
        "SharedSize": -1,
        "VirtualSize": s.record.size,
        "Labels": if labels.is_empty() { Value::Null } else { json!(labels) },
        "Containers": -1,
    })
}

/// `GET /images/json?all&filters&digests`.
pub fn list(ctx: &Ctx) -> Result<Response<Body>> {
    let filters = ctx.query.filters()?;
    // `before`/`since` name images; compared by creation time, then by when they were stored.
    let mut bounds = Vec::new();
    for key in ["before", "since"] {
        for v in filters.get(key).into_iter().flatten() {
            bounds.push((key, age_key(&ctx.engine.find_image(v)?)));
        }
    }
    let images = ctx.engine.list_images()?;
    // Without `all`, untagged images that others were built on (a build's intermediate steps)
    // are left out, as Docker does.
    let parents: std::collections::HashSet<String> =
        images.iter().filter_map(|s| s.record.parent.as_ref().map(|p| p.to_string())).collect();
    let all = ctx.query.bool("all");
    let mut out = Vec::new();
    for mut s in images {
        if !all && s.repo_tags.is_empty() && parents.contains(&s.record.id.to_string()) {
            continue;
        }
        // As dockerd: with `reference`, an image lists only the tags that matched.
        if let Some(patterns) = filters.get("reference") {
            s.repo_tags.retain(|t| patterns.iter().any(|p| reference_matches(p, t)));
            s.repo_digests.retain(|t| patterns.iter().any(|p| reference_matches(p, t)));
            if s.repo_tags.is_empty() && s.repo_digests.is_empty() {
                continue;
            }
        }
        let mut keep = true;
        let age = age_key(&s.record);
        for (key, bound) in &bounds {
            keep &= if *key == "before" { age < *bound } else { age > *bound };
        }
        for (key, values) in &filters {
            keep &= match key.as_str() {
                "before" | "since" => true,
                "dangling" => values.iter().any(|v| (v == "true" || v == "1") == s.repo_tags.is_empty()),
                "reference" => values.iter().any(|pattern| s.repo_tags.iter().any(|t| reference_matches(pattern, t))),
                "label" => {
                    let labels = s.config.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
                    values.iter().any(|v| match v.split_once('=') {
                        Some((k, val)) => labels.get(k).is_some_and(|x| x == val),
                        None => labels.contains_key(v.as_str()),
                    })
                }
                other => return Err(ApiError::bad_request(format!("Invalid filter '{other}'"))),
            };
        }
        if keep {
            out.push(summary_json(&s, !ctx.version_at_least("1.44")));
        }
    }
    json(StatusCode::OK, &out)
}

fn age_key(rec: &ImageRecord) -> (Option<SystemTime>, Option<SystemTime>) {
    (
        rec.created.as_deref().and_then(wharf_types::time::parse_rfc3339),
        wharf_types::time::parse_rfc3339(&rec.stored_at),
    )
}

/// `reference` filter: `busybox`, `busybox:1.36`, and simple `*` globs on the familiar name.
fn reference_matches(pattern: &str, r: &ImageRef) -> bool {
    let familiar = r.familiar();
    let name = r.familiar_name();
    path_match(pattern, &familiar) || path_match(pattern, &name) || path_match(pattern, &r.to_string())
}

/// `GET /images/{name}/json`.
pub fn inspect(ctx: &Ctx, name: &str) -> Result<Response<Body>> {
    let rec = ctx.engine.find_image(name)?;
    let raw = ctx.engine.image_config_raw(&rec)?;
    let cfg: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let graph_data = ctx.engine.graph_driver_data(&rec, None);
    let s = ctx.engine.image_summary(rec)?;
    let mut v = json!({
        "Id": s.record.id.to_string(),
        "RepoTags": s.repo_tags.iter().map(|r| r.familiar()).collect::<Vec<_>>(),
        "RepoDigests": s.repo_digests.iter().map(|r| r.familiar()).collect::<Vec<_>>(),
        "Parent": s.record.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        "Comment": cfg.get("comment").cloned().unwrap_or(json!("")),
        "Created": s.record.created.clone().unwrap_or_else(|| wharf_types::time::ZERO_TIME.to_string()),
        "Container": "",
        "ContainerConfig": if ctx.version_at_least("1.45") {
            cfg.get("container_config").cloned().unwrap_or(json!({}))
        } else {
            docker_config(cfg.get("container_config"))
        },
        "DockerVersion": cfg.get("docker_version").cloned().unwrap_or(json!("")),
        "Author": cfg.get("author").cloned().unwrap_or(json!("")),
        "Config": docker_config(cfg.get("config")),
        "Architecture": s.config.architecture,
        "Os": s.config.os,
        "Size": s.record.size,
        "VirtualSize": s.record.size,
        "GraphDriver": {"Name": "overlayfs", "Data": graph_data},
        "RootFS": {"Type": "layers", "Layers": s.record.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
        "Metadata": {"LastTagTime": wharf_types::time::ZERO_TIME},
    });
    // `omitempty` in dockerd.
    if let Some(variant) = s.config.variant.as_deref().filter(|v| !v.is_empty()) {
        v["Variant"] = json!(variant);
    }
    json(StatusCode::OK, &v)
}

/// An image's `Config` as dockerd shows it: its Go struct, so the fields that are not
/// `omitempty` are there even when the image's JSON leaves them out.
fn docker_config(cfg: Option<&Value>) -> Value {
    let mut out = json!({
        "Hostname": "", "Domainname": "", "User": "",
        "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
        "Tty": false, "OpenStdin": false, "StdinOnce": false,
        "Env": null, "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "",
        "Entrypoint": null, "OnBuild": null, "Labels": null,
    });
    if let (Some(Value::Object(given)), Value::Object(o)) = (cfg, &mut out) {
        for (k, v) in given {
            o.insert(k.clone(), v.clone());
        }
    }
    out
}

/// `POST /images/{name}/tag?repo=R&tag=T`.
pub fn tag(ctx: &Ctx, name: &str) -> Result<Response<Body>> {
    let repo =
        ctx.query.get("repo").filter(|s| !s.is_empty()).ok_or_else(|| ApiError::bad_request("repo is required"))?;
    let target = match ctx.query.get("tag").filter(|s| !s.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_string(),
    };
    ctx.engine.tag_image(name, &target)?;
    Ok(crate::router::empty(StatusCode::CREATED))
}

/// `DELETE /images/{name}?force&noprune`.
pub async fn remove(ctx: &Ctx, name: &str) -> Result<Response<Body>> {
    let items = ctx.engine.remove_image(name, ctx.query.bool("force")).await?;
    let out: Vec<Value> = items
        .into_iter()
        .map(|i| match i {
            wharf_engine::ImageDeleted::Untagged(s) => json!({ "Untagged": s }),
            wharf_engine::ImageDeleted::Deleted(s) => json!({ "Deleted": s }),
        })
        .collect();
    json(StatusCode::OK, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_globs() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_260_000), "4.26MB");
        assert_eq!(human_size(1_000_000), "1MB");
        assert_eq!(human_size(123_456), "123.5kB");
        let bb = ImageRef::parse("busybox:1.36").unwrap();
        assert!(reference_matches("busy*", &bb));
        assert!(reference_matches("busybox", &bb));
        assert!(!reference_matches("busy", &bb));
        assert!(!reference_matches("*/busybox", &bb));
        let r = ImageRef::parse("127.0.0.1:5000/library/busybox:1").unwrap();
        assert!(reference_matches("127.0.0.1:5000/library/busybox", &r));
        assert!(reference_matches("127.0.0.1:5000/library/busybox:1", &r));
    }
}
