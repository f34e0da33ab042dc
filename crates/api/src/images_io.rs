//! Image transport endpoints: push (`POST /images/{name}/push`), the credential check of
//! `docker login` (`POST /auth`), and an image's history (`GET /images/{name}/history`).

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use wharf_engine::{AuthConfig, PullEvent, PushRequest, Pushed};
use wharf_types::ImageRef;

use crate::body::Body;
use crate::error::{status_of, ApiError};
use crate::images::{progress_json, registry_auth};
use crate::router::{json, json_response, read_body, Ctx, Result};

/// The registry Docker Hub logins name (`https://index.docker.io/v1/`) and what it means.
const DOCKER_HUB_INDEX: &str = "https://index.docker.io/v1/";

/// `POST /images/{name}/push?tag=T`: streamed as JSON progress lines. Errors before any blob
/// work (no such image, registry unreachable, unauthorized) get a proper status.
pub async fn push(ctx: &Ctx, name: &str, req: Request<Incoming>) -> Result<Response<Body>> {
    let tag = ctx.query.get("tag").unwrap_or("");
    // No tag (in `tag` or in the name): every tag of the repository, as dockerd does (`push
    // --all-tags`); `parse` would have made it `latest`.
    let reference =
        if tag.is_empty() { ImageRef::parse_any(name)? } else { ImageRef::parse(&format!("{name}:{tag}"))? };
    if reference.digest.is_some() {
        return Err(ApiError::bad_request(format!("cannot push a digest reference: {name}")));
    }
    let chunk_size = match ctx.query.int("chunk-size")? {
        Some(n) if n > 0 => Some(n as u64),
        Some(_) => return Err(ApiError::bad_request("chunk-size must be positive")),
        None => None,
    };
    let auth = registry_auth(&req);
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let engine = ctx.engine.clone();
    let mut push = tokio::spawn(async move { engine.push(PushRequest { reference, auth, chunk_size }, ev_tx).await });

    let mut early: Vec<PullEvent> = Vec::new();
    loop {
        tokio::select! {
            ev = ev_rx.recv() => match ev {
                Some(ev) => {
                    let is_blob_work = matches!(&ev, PullEvent::Progress { .. });
                    early.push(ev);
                    if is_blob_work { break; }
                }
                None => break,
            },
            res = &mut push => {
                let res = res.map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
                let pushed = res.map_err(|e| ApiError::new(status_of(e.kind()), e.to_string()))?;
                while let Ok(ev) = ev_rx.try_recv() { early.push(ev); }
                let mut body: String = early.iter().map(|e| progress_json(e) + "\r\n").collect();
                body.extend(pushed.iter().map(|p| aux_json(p) + "\r\n"));
                return Ok(json_response(StatusCode::OK, body));
            }
        }
    }
    let (tx, body) = Body::channel();
    tokio::spawn(async move {
        for ev in early {
            let _ = tx.send(Bytes::from(progress_json(&ev) + "\r\n")).await;
        }
        while let Some(ev) = ev_rx.recv().await {
            let _ = tx.send(Bytes::from(progress_json(&ev) + "\r\n")).await;
        }
        let line = match push.await {
            Ok(Ok(pushed)) => pushed.iter().map(|p| aux_json(p) + "\r\n").collect(),
            Ok(Err(e)) => error_line(&e.to_string()),
            Err(e) => error_line(&e.to_string()),
        };
        let _ = tx.send(Bytes::from(line)).await;
    });
    let mut r = Response::new(body);
    r.headers_mut().insert("Content-Type", hyper::header::HeaderValue::from_static("application/json"));
    Ok(r)
}

/// Docker's closing message of a pushed tag, which the CLI uses for content trust.
fn aux_json(p: &Pushed) -> String {
    json!({"progressDetail": {}, "aux": {"Tag": p.tag, "Digest": p.digest.to_string(), "Size": p.size}}).to_string()
}

fn error_line(msg: &str) -> String {
    json!({"errorDetail": {"message": msg}, "error": msg}).to_string() + "\r\n"
}

/// `GET /images/{name}/history`: newest first, `Created` in Unix seconds.
pub fn history(ctx: &Ctx, name: &str) -> Result<Response<Body>> {
    let entries = ctx.engine.image_history(name)?;
    let out: Vec<serde_json::Value> = entries
        .iter()
        .map(|h| {
            let created = h
                .created
                .as_deref()
                .and_then(wharf_types::time::parse_rfc3339)
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            json!({
                "Id": h.id.clone().unwrap_or_else(|| "<missing>".to_string()),
                "Created": created,
                "CreatedBy": h.created_by,
                "Tags": if h.tags.is_empty() { serde_json::Value::Null } else { json!(h.tags) },
                "Size": h.size,
                "Comment": h.comment,
            })
        })
        .collect();
    json(StatusCode::OK, &out)
}

/// `POST /auth` with `{"username","password","serveraddress"}`: checks the credentials
/// against the registry. Nothing is stored: the client keeps them, or the identity token a
/// token server gave instead of the password.
pub async fn auth(ctx: &Ctx, req: Request<Incoming>) -> Result<Response<Body>> {
    let body = read_body(req).await?;
    let cfg: AuthConfig = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid authentication request: {e}")))?;
    let registry = registry_of(cfg.serveraddress.as_deref().unwrap_or(""))?;
    let identity_token = ctx.engine.login(registry, cfg).await?;
    json(StatusCode::OK, &json!({"Status": "Login Succeeded", "IdentityToken": identity_token.unwrap_or_default()}))
}

/// `GET /images/search?term=&limit=&filters=`: the registry named by the term's first part
/// (docker's rule: one with a `.` or `:`, or `localhost`; else Docker Hub) is asked, and its
/// results are filtered by `is-official`, `is-automated` and `stars` as dockerd filters them.
pub async fn search(ctx: &Ctx, req: Request<Incoming>) -> Result<Response<Body>> {
    let q = &ctx.query;
    let term = q.get("term").unwrap_or("").to_string();
    if term.is_empty() {
        return Err(ApiError::bad_request("search term is required"));
    }
    let limit = match q.int("limit")? {
        None | Some(0) => 25,
        Some(n) if (1..=100).contains(&n) => n as u32,
        Some(n) => return Err(ApiError::bad_request(format!("limit {n} is outside the range of [1, 100]"))),
    };
    let filters = q.filters()?;
    for key in filters.keys() {
        if !matches!(key.as_str(), "is-official" | "is-automated" | "stars") {
            return Err(ApiError::bad_request(format!("invalid filter '{key}'")));
        }
    }
    let flag = |key: &str| -> Result<Option<bool>> {
        match filters.get(key).and_then(|v| v.first()) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| ApiError::bad_request(format!("invalid filter '{key}={v}'"))),
        }
    };
    let (official, automated) = (flag("is-official")?, flag("is-automated")?);
    let stars = match filters.get("stars").and_then(|v| v.first()) {
        None => 0,
        Some(v) => v.parse::<i64>().map_err(|_| ApiError::bad_request(format!("invalid filter 'stars={v}'")))?,
    };
    let (registry, remote) = match term.split_once('/') {
        Some((index, rest)) if index.contains(['.', ':']) || index == "localhost" => {
            (index.to_string(), rest.to_string())
        }
        _ => ("docker.io".to_string(), term.clone()),
    };
    let auth = crate::images::registry_auth(&req);
    let answer = ctx.engine.search(registry, remote, limit, auth).await?;
    let body = match answer {
        wharf_engine::SearchAnswer::Results(b) => b,
        // dockerd's words for a registry without the search API (distribution's answers 404).
        wharf_engine::SearchAnswer::Status(s) => {
            return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("Unexpected status code {s}")))
        }
    };
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, format!("invalid search answer from the registry: {e}")))?;
    let results: Vec<Value> = v["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| official.is_none_or(|o| r["is_official"].as_bool().unwrap_or(false) == o))
        .filter(|r| automated.is_none_or(|a| r["is_automated"].as_bool().unwrap_or(false) == a))
        .filter(|r| r["star_count"].as_i64().unwrap_or(0) >= stars)
        .take(limit as usize)
        .map(|r| {
            json!({
                "star_count": r["star_count"].as_i64().unwrap_or(0),
                "is_official": r["is_official"].as_bool().unwrap_or(false),
                "name": r["name"].as_str().unwrap_or(""),
                "is_automated": r["is_automated"].as_bool().unwrap_or(false),
                "description": r["description"].as_str().unwrap_or(""),
            })
        })
        .collect();
    json(StatusCode::OK, &results)
}

/// `host[:port]` of a server address as `docker login` sends it: empty or Docker Hub's index
/// URL for Docker Hub, `https://host:port/...`, or a bare `host:port`.
fn registry_of(address: &str) -> Result<String> {
    let a = address.trim();
    if a.is_empty() || a == DOCKER_HUB_INDEX || a.trim_end_matches('/') == "https://index.docker.io/v1" {
        return Ok("docker.io".to_string());
    }
    let rest = a.strip_prefix("https://").or_else(|| a.strip_prefix("http://")).unwrap_or(a);
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(ApiError::bad_request(format!("invalid registry address {address:?}")));
    }
    Ok(match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_addresses() {
        for (input, want) in [
            ("", Some("docker.io")),
            ("https://index.docker.io/v1/", Some("docker.io")),
            ("127.0.0.1:5000", Some("127.0.0.1:5000")),
            ("http://127.0.0.1:5000/v2/", Some("127.0.0.1:5000")),
            ("https://registry.example:443", Some("registry.example:443")),
            ("registry-1.docker.io", Some("docker.io")),
            ("https:///x", None),
        ] {
            assert_eq!(registry_of(input).ok().as_deref(), want, "{input}");
        }
    }
}
