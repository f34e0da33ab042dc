//! Images made from containers and tars: `GET /containers/{id}/export` (the merged rootfs as a
//! tar), `POST /images/create?fromSrc=-` (import a tar from the request body) and
//! `POST /commit` (a container's changes as a new image).

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use wharf_engine::{CommitRequest, ImportRequest};
use wharf_types::ImageRef;

use crate::archive::{body_reader, ChannelWriter};
use crate::body::Body;
use crate::error::ApiError;
use crate::router::{json_response, Ctx, Result};

/// `GET /containers/{id}/export`: streamed; a failure midway can only cut the tar.
pub fn export(ctx: &Ctx, id: &str) -> Result<Response<Body>> {
    let plan = ctx.engine.export_plan(id)?;
    let (tx, body) = Body::channel();
    let engine = ctx.engine.clone();
    let name = id.to_string();
    std::thread::Builder::new()
        .name("export-wait".into())
        .spawn(move || {
            if let Err(e) = engine.export_blocking(plan, ChannelWriter::new(tx)) {
                log::warn!("export {name}: {e}");
            }
        })
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("export: {e}")))?;
    let mut r = Response::new(body);
    r.headers_mut().insert("Content-Type", hyper::header::HeaderValue::from_static("application/x-tar"));
    Ok(r)
}

/// The image name of `repo` and `tag` as the docker CLI sends them (the tag may be in `repo`).
pub(crate) fn repo_tag(repo: Option<&str>, tag: Option<&str>) -> Result<Option<ImageRef>> {
    let repo = repo.unwrap_or("").trim();
    let tag = tag.unwrap_or("").trim();
    if repo.is_empty() {
        if !tag.is_empty() {
            return Err(ApiError::bad_request("a tag needs a repository"));
        }
        return Ok(None);
    }
    let r = if tag.is_empty() { ImageRef::parse(repo)? } else { ImageRef::parse(&format!("{repo}:{tag}"))? };
    if r.digest.is_some() {
        return Err(ApiError::bad_request(format!("cannot name an image with a digest: {repo}")));
    }
    Ok(Some(r))
}

/// `POST /images/create?fromSrc=-&repo=&tag=&changes=&message=` with the tar as the body.
pub async fn import(ctx: &Ctx, req: Request<Incoming>) -> Result<Response<Body>> {
    let q = &ctx.query;
    let src = q.get("fromSrc").unwrap_or("");
    if src != "-" {
        return Err(ApiError::bad_request(format!(
            "import from {src:?} is not supported: send the archive as the request body (fromSrc=-)"
        )));
    }
    let reference = repo_tag(q.get("repo"), q.get("tag"))?;
    let platform = match q.get("platform").filter(|p| !p.is_empty()) {
        Some(p) => match wharf_types::oci::Platform::parse(p) {
            Some(p) => Some(p),
            None => {
                // Read the archive away first: a client still sending it would see a broken
                // pipe, not the answer.
                let _ = crate::router::read_body(req).await;
                return Err(ApiError::bad_request(format!("invalid platform {p:?}: want os/arch[/variant]")));
            }
        },
        None => None,
    };
    let request = ImportRequest {
        reference,
        changes: q.get_all("changes"),
        message: q.get("message").filter(|m| !m.is_empty()).map(str::to_string),
        platform,
    };
    let id = ctx.engine.import(request, Box::new(body_reader(req))).await?;
    Ok(json_response(StatusCode::OK, json!({"status": id.to_string()}).to_string() + "\r\n"))
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&changes=&pause=`: 201 `{"Id"}`. A
/// config in the body (as API clients may send) is not merged: `changes` carry the edits.
pub async fn commit(ctx: &Ctx, req: Request<Incoming>) -> Result<Response<Body>> {
    let q = &ctx.query;
    let container = q
        .get("container")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("container is required"))?
        .to_string();
    let reference = repo_tag(q.get("repo"), q.get("tag"))?;
    let pause = !matches!(q.get("pause"), Some("0" | "false" | "False"));
    let _ = crate::router::read_body(req).await?;
    let request = CommitRequest {
        container,
        reference,
        comment: q.get("comment").map(str::to_string),
        author: q.get("author").map(str::to_string),
        changes: q.get_all("changes"),
        pause,
    };
    let id = ctx.engine.commit(request).await?;
    crate::router::json(StatusCode::CREATED, &json!({"Id": id.to_string()}))
}
