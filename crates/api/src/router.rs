//! Routing: strips the optional `/v1.xx` prefix (refusing versions outside what wharf speaks),
//! then dispatches on method and path to the handlers.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use wharf_engine::Engine;

use crate::body::Body;
use crate::error::ApiError;
use crate::query::Query;
use crate::{
    archive, build, containers, copy, disk, events, exec, images, images_io, lifecycle, networks, stats, swarm, system,
    transfer, volumes, API_VERSION, MIN_API_VERSION,
};

/// The largest request body wharf reads whole (create bodies, tag requests).
const MAX_BODY: usize = 16 << 20;

pub type Result<T> = std::result::Result<T, ApiError>;

pub async fn route(engine: Engine, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    log::debug!("api: {method} {}", req.uri());
    let metrics_engine = engine.clone();
    let mut resp = match dispatch(engine, req).await {
        Ok(r) => r,
        Err(e) => {
            if e.status.is_server_error() {
                log::warn!("api: {method} {path}: {}", e.message);
            } else {
                log::debug!("api: {method} {path}: {} {}", e.status.as_u16(), e.message);
            }
            e.into_response()
        }
    };
    let h = resp.headers_mut();
    h.insert("Api-Version", hyper::header::HeaderValue::from_static(API_VERSION));
    h.insert("Server", hyper::header::HeaderValue::from_static(concat!("wharf/", env!("CARGO_PKG_VERSION"))));
    h.insert("Docker-Experimental", hyper::header::HeaderValue::from_static("false"));
    h.insert("Ostype", hyper::header::HeaderValue::from_static("linux"));
    let unversioned = split_version(&path).map(|(_, p)| p).unwrap_or(path);
    metrics_engine.record_request(method.as_str(), &unversioned, resp.status().as_u16());
    resp
}

/// Splits `/v1.41/containers/json` into version `1.41` and path `/containers/json`.
fn split_version(path: &str) -> Result<(Option<String>, String)> {
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some((v, path)) = rest.split_once('/') {
            if v.split('.').count() == 2 && v.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            {
                return Ok((Some(v.to_string()), format!("/{path}")));
            }
        }
    }
    Ok((None, path.to_string()))
}

/// A request's path without its `/v1.xx` prefix.
pub(crate) fn unversioned(path: &str) -> String {
    split_version(path).map(|(_, p)| p).unwrap_or_else(|_| path.to_string())
}

fn version_tuple(v: &str) -> (u32, u32) {
    let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// The API version a request asks for (the newest when it names none) and its path without
/// the version; a version wharf does not speak is a 400.
fn versioned(path: &str) -> Result<(String, String)> {
    let (version, path) = split_version(path)?;
    if let Some(v) = &version {
        if version_tuple(v) > version_tuple(API_VERSION) {
            return Err(ApiError::bad_request(format!(
                "client version {v} is too new. Maximum supported API version is {API_VERSION}"
            )));
        }
        if version_tuple(v) < version_tuple(MIN_API_VERSION) {
            return Err(ApiError::bad_request(format!(
                "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
            )));
        }
    }
    Ok((version.unwrap_or_else(|| API_VERSION.to_string()), path))
}

/// The path's segments, as `dispatch` matches them, each percent-decoded (the docker CLI
/// escapes names: `/networks/my%20net`).
fn segments(path: &str) -> Vec<String> {
    path.trim_end_matches('/').split('/').skip(1).map(crate::query::decode_path).collect()
}

/// Everything of a request's target that is parsed before a handler runs, without an engine:
/// the version, the segments (and an image name between them), the query and its `filters`.
/// What `fuzz/` drives; the number of filter values, or the 400 a client would get.
pub fn parse_target(path: &str, query: Option<&str>) -> std::result::Result<usize, String> {
    let (_, path) = versioned(path).map_err(|e| e.message)?;
    let owned = segments(&path);
    let segs: Vec<&str> = owned.iter().map(String::as_str).collect();
    if segs.len() > 1 {
        let _ = middle(&segs, 1, 1);
        let _ = middle(&segs, 1, 0);
    }
    let q = Query::parse(query);
    for key in ["all", "force", "stream", "follow"] {
        q.bool(key);
    }
    q.int("limit").map_err(|e| e.message)?;
    let filters = q.filters().map_err(|e| e.message)?;
    Ok(filters.values().map(Vec::len).sum())
}

async fn dispatch(engine: Engine, req: Request<Incoming>) -> Result<Response<Body>> {
    let (version, path) = versioned(req.uri().path())?;
    let query = Query::parse(req.uri().query());
    let method = req.method().clone();
    let owned = segments(&path);
    let segs: Vec<&str> = owned.iter().map(String::as_str).collect();
    let ctx = Ctx { engine, version, query };

    if let Some(e) = swarm::answer(&method, &segs) {
        // Take the body first (bounded, as every body): a client still sending it would see
        // the connection close under it, a broken pipe instead of the answer.
        let _ = read_body(req).await;
        return Err(e);
    }
    match (&method, segs.as_slice()) {
        (&Method::GET | &Method::HEAD, ["_ping"]) => Ok(system::ping(&method)),
        (&Method::GET, ["version"]) => system::version(&ctx),
        (&Method::GET, ["info"]) => system::info(&ctx).await,
        (&Method::GET, ["system", "df"]) => disk::df(&ctx).await,
        (&Method::POST, ["build", "prune"]) => build::prune(&ctx).await,
        (&Method::POST, ["build"]) => build::build(&ctx, req).await,
        (&Method::POST, ["build", "cancel"]) => build::cancel(&ctx),
        (_, ["grpc", ..]) | (_, ["session", ..]) => Err(ApiError::bad_request(
            "BuildKit's API (/grpc, /session) is not served by wharfd: build with the classic builder (DOCKER_BUILDKIT=0)",
        )),
        (&Method::POST, ["auth"]) => images_io::auth(&ctx, req).await,
        (&Method::POST, ["commit"]) => transfer::commit(&ctx, req).await,
        (&Method::GET, ["events"]) => events::events(&ctx),
        (&Method::POST, ["networks", "create"]) => networks::create(&ctx, read_body(req).await?).await,
        (&Method::POST, ["networks", "prune"]) => networks::prune(&ctx).await,
        (&Method::GET, ["networks"]) => networks::list(&ctx),
        (&Method::GET, ["networks", name]) => networks::inspect(&ctx, name),
        (&Method::DELETE, ["networks", name]) => networks::remove(&ctx, name).await,
        (&Method::POST, ["networks", name, "connect"]) => networks::connect(&ctx, name, read_body(req).await?).await,
        (&Method::POST, ["networks", name, "disconnect"]) => {
            networks::disconnect(&ctx, name, read_body(req).await?).await
        }
        (&Method::POST, ["volumes", "create"]) => volumes::create(&ctx, read_body(req).await?),
        (&Method::POST, ["volumes", "prune"]) => volumes::prune(&ctx),
        (&Method::GET, ["volumes"]) => volumes::list(&ctx),
        (&Method::GET, ["volumes", name]) => volumes::inspect(&ctx, name),
        (&Method::DELETE, ["volumes", name]) => volumes::remove(&ctx, name),

        (&Method::POST, ["images", "create"]) => images::create(&ctx, req).await,
        (&Method::GET, ["images", "json"]) => images::list(&ctx),
        (&Method::GET, ["images", "search"]) => images_io::search(&ctx, req).await,
        (&Method::GET, ["images", "get"]) => archive::save(&ctx, ctx.query.get_all("names")),
        (&Method::POST, ["images", "load"]) => archive::load(&ctx, req).await,
        (&Method::POST, ["images", "prune"]) => disk::prune(&ctx).await,
        (&Method::POST, ["containers", "create"]) => containers::create(&ctx, read_body(req).await?).await,
        (&Method::GET, ["containers", "json"]) => containers::list(&ctx),
        (&Method::POST, ["containers", "prune"]) => lifecycle::prune(&ctx).await,
        (&Method::POST, ["containers", id, "rename"]) => lifecycle::rename(&ctx, id).await,
        (&Method::POST, ["containers", id, "pause"]) => lifecycle::pause(&ctx, id).await,
        (&Method::POST, ["containers", id, "unpause"]) => lifecycle::unpause(&ctx, id).await,
        (&Method::POST, ["containers", id, "update"]) => lifecycle::update(&ctx, id, read_body(req).await?).await,
        (&Method::GET, ["containers", id, "top"]) => stats::top(&ctx, id).await,
        (&Method::GET, ["containers", id, "stats"]) => stats::stats(&ctx, id).await,
        (&Method::GET, ["containers", id, "changes"]) => stats::changes(&ctx, id).await,
        (&Method::GET, ["containers", id, "json"]) => containers::inspect(&ctx, id),
        (&Method::POST, ["containers", id, "start"]) => containers::start(&ctx, id).await,
        (&Method::POST, ["containers", id, "stop"]) => containers::stop(&ctx, id).await,
        (&Method::POST, ["containers", id, "restart"]) => containers::restart(&ctx, id).await,
        (&Method::POST, ["containers", id, "kill"]) => containers::kill(&ctx, id).await,
        (&Method::POST, ["containers", id, "wait"]) => containers::wait(&ctx, id).await,
        (&Method::GET, ["containers", id, "export"]) => transfer::export(&ctx, id),
        (&Method::HEAD, ["containers", id, "archive"]) => copy::head(&ctx, id).await,
        (&Method::GET, ["containers", id, "archive"]) => copy::get(&ctx, id).await,
        (&Method::PUT, ["containers", id, "archive"]) => copy::put(&ctx, id, req).await,
        (&Method::GET, ["containers", id, "logs"]) => containers::logs(&ctx, id),
        (&Method::POST, ["containers", id, "attach"]) => containers::attach(&ctx, id, req),
        (&Method::POST, ["containers", id, "resize"]) => {
            let (h, w) = exec::size_query(&ctx)?;
            ctx.engine.resize_container(id, h, w).await?;
            Ok(empty(StatusCode::OK))
        }
        (&Method::POST, ["containers", id, "exec"]) => exec::create(&ctx, id, &read_body(req).await?),
        (&Method::POST, ["exec", id, "start"]) => exec::start(&ctx, id, req).await,
        (&Method::POST, ["exec", id, "resize"]) => exec::resize(&ctx, id).await,
        (&Method::GET, ["exec", id, "json"]) => exec::inspect(&ctx, id),
        (&Method::DELETE, ["containers", id]) => containers::remove(&ctx, id).await,
        (&Method::DELETE, ["containers", parent, alias]) if ctx.query.bool("link") => {
            ctx.engine.remove_link(&format!("{parent}/{alias}")).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }

        // Image names contain slashes: match these on the path's ends.
        (&Method::GET, ["images", .., "json"]) => images::inspect(&ctx, &middle(&segs, 1, 1)),
        (&Method::POST, ["images", .., "tag"]) => images::tag(&ctx, &middle(&segs, 1, 1)),
        (&Method::POST, ["images", .., "push"]) => images_io::push(&ctx, &middle(&segs, 1, 1), req).await,
        (&Method::GET, ["images", .., "get"]) => archive::save(&ctx, vec![middle(&segs, 1, 1)]),
        (&Method::GET, ["images", .., "history"]) => images_io::history(&ctx, &middle(&segs, 1, 1)),
        (&Method::DELETE, ["images", ..]) if segs.len() > 1 => images::remove(&ctx, &middle(&segs, 1, 0)).await,

        _ => Err(ApiError::new(StatusCode::NOT_FOUND, format!("page not found: {method} {path}"))),
    }
}

/// The segments between the first `skip_front` and the last `skip_back` (an image name with
/// slashes), empty when there are none.
fn middle(segs: &[&str], skip_front: usize, skip_back: usize) -> String {
    segs.get(skip_front..segs.len().saturating_sub(skip_back)).unwrap_or_default().join("/")
}

pub struct Ctx {
    pub engine: Engine,
    /// The API version the client asked for (or the newest).
    pub version: String,
    pub query: Query,
}

impl Ctx {
    pub fn version_at_least(&self, v: &str) -> bool {
        version_tuple(&self.version) >= version_tuple(v)
    }
}

pub async fn read_body(req: Request<Incoming>) -> Result<Bytes> {
    read_limited(req.into_body(), MAX_BODY).await
}

/// How long a client may take to send a body read whole; a client that stops half-way must
/// not hold a task and its buffer for ever.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Reads a body whole, stopping at `limit` bytes (413) rather than after collecting all a
/// client sends: a declared `Content-Length` over the limit is refused before any byte is
/// read, and a chunked body is cut off as soon as it passes the limit.
pub async fn read_limited(body: Incoming, limit: usize) -> Result<Bytes> {
    use hyper::body::Body as _;
    let too_large =
        || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body too large (limit {limit} bytes)"));
    if body.size_hint().lower() > limit as u64 {
        return Err(too_large());
    }
    let collected = tokio::time::timeout(BODY_TIMEOUT, http_body_util::Limited::new(body, limit).collect())
        .await
        .map_err(|_| ApiError::new(StatusCode::REQUEST_TIMEOUT, "timed out reading the request body"))?;
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::bad_request(format!("reading request body: {e}"))),
    }
}

/// What Go's server does with a body its handler left unread: up to 256 KiB is read and
/// dropped before the answer, so that a client still sending (a build context refused before
/// it was read) gets the answer instead of a broken pipe. A longer body, or one slower than
/// a few seconds, is left and the connection closed.
pub async fn discard_unread(body: Incoming) {
    const MAX: usize = 256 << 10;
    let limited = http_body_util::Limited::new(body, MAX).collect();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), limited).await;
}

pub fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from_bytes(body));
    *r.status_mut() = status;
    r.headers_mut().insert("Content-Type", hyper::header::HeaderValue::from_static("application/json"));
    r
}

pub fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> Result<Response<Body>> {
    let s = serde_json::to_string(v).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(json_response(status, s))
}

pub fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_versions() {
        assert_eq!(split_version("/v1.41/containers/json").unwrap(), (Some("1.41".into()), "/containers/json".into()));
        assert_eq!(split_version("/containers/json").unwrap(), (None, "/containers/json".into()));
        assert_eq!(split_version("/version").unwrap(), (None, "/version".into()));
        assert_eq!(split_version("/vé/x").unwrap(), (None, "/vé/x".into()));
        assert_eq!(split_version("/v1.é/x").unwrap(), (None, "/v1.é/x".into()));
        assert!(version_tuple("1.9") < version_tuple("1.24"));
    }

    /// The targets wharf-client's operations build (`crates/client/src/ops.rs`) reach the
    /// handlers with the names as typed: an image reference keeps its `/` (a `%2F` is served
    /// the same), any other name is one segment whatever it holds.
    #[test]
    fn routes_names_as_the_client_encodes_them() {
        let image = |path: &str| {
            let owned = segments(path);
            let segs: Vec<&str> = owned.iter().map(String::as_str).collect();
            middle(&segs, 1, 1)
        };
        let images = [
            ("/images/busybox:1.36/json", "busybox:1.36"),
            ("/images/127.0.0.1:5000/a/b/json", "127.0.0.1:5000/a/b"),
            ("/images/a%20b%3Fc%23d%25e/f%20%C3%A9/json", "a b?c#d%e/f é"),
            ("/images/a%2Fb/json", "a/b"),
            ("/images/a/b@sha256:0123/history", "a/b@sha256:0123"),
        ];
        for (path, want) in images {
            assert_eq!(image(path), want, "{path}");
        }
        assert_eq!(
            segments("/containers/a%20b%3Fc%23d%25e%2Ff%20%C3%A9/json"),
            ["containers", "a b?c#d%e/f é", "json"]
        );
        assert_eq!(segments("/networks/my%20net%2Bx"), ["networks", "my net+x"]);
        // `rm --link web/db`: the link's `/` stays a separator, for the link route.
        assert_eq!(segments("/containers/web/db"), ["containers", "web", "db"]);
    }
}
