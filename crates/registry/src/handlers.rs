//! The distribution protocol over HTTP: routing, request parsing and the handlers. This is
//! the registry's front door; below it `Metadata` and `BlobStore` know nothing of HTTP.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde_json::json;
use wharf_types::oci::MEDIA_OCI_INDEX;
use wharf_types::{Digest, Sha256Writer};

use crate::body::Body;
use crate::error::{ApiError, Code};
use crate::manifest::{self, MAX_MANIFEST_SIZE};
use crate::meta::{now, ManifestRecord, Missing, UploadRecord};
use crate::names;
use crate::server::{Registry, UploadSession};
use crate::store::random_hex;
use crate::verified::{BlobVersion, Verified, VerifyReads};

pub(crate) type Resp = Response<Body>;
pub(crate) type Result<T> = std::result::Result<T, ApiError>;

/// The catalog's page when the client asks for none, and the most it may ask for.
const CATALOG_DEFAULT_PAGE: usize = 100;
const CATALOG_MAX_PAGE: usize = 1000;
/// Upload bytes are written in pieces of this size (and hashed as they are).
const WRITE_CHUNK: usize = 1 << 20;
/// Blob reads go out in pieces of this size.
const READ_CHUNK: usize = 256 << 10;

/// One request: routed, answered, errors in the spec's JSON form, logged at debug level.
pub async fn handle(reg: Arc<Registry>, mut req: Request<Incoming>, peer: SocketAddr) -> Resp {
    req.extensions_mut().insert(crate::login_limit::ClientAddr(peer.ip()));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = match route(reg, req).await {
        Ok(r) => r,
        Err(e) => {
            log::debug!("{peer} {method} {path}: {e}");
            let mut reply = Reply::new(e.status).header("Content-Type", "application/json");
            for (k, v) in e.headers.iter() {
                reply = reply.header(k, v.clone());
            }
            reply.body(e.body()).into_response()
        }
    };
    log::debug!("{peer} {method} {path} {}", resp.status().as_u16());
    resp
}

/// A response under construction. Header values that are not valid (they all derive from
/// validated names, tags and digests) are dropped rather than panicking.
pub(crate) struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Body,
}

impl Reply {
    pub(crate) fn new(status: u16) -> Reply {
        Reply { status, headers: Vec::new(), body: Body::empty() }
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn body(mut self, body: impl Into<Bytes>) -> Reply {
        self.body = Body::from_bytes(body);
        self
    }

    pub(crate) fn json(self, v: serde_json::Value) -> Reply {
        self.header("Content-Type", "application/json").body(v.to_string())
    }

    pub(crate) fn into_response(self) -> Resp {
        let mut r = Response::new(self.body);
        *r.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let h = r.headers_mut();
        h.insert("docker-distribution-api-version", HeaderValue::from_static("registry/2.0"));
        for (k, v) in self.headers {
            if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&v)) {
                h.append(k, v);
            }
        }
        r
    }
}

/// The endpoints of the spec, with the repository name and the last path segment.
#[derive(Debug, PartialEq)]
enum Route<'a> {
    Base,
    Catalog,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    UploadStart(&'a str),
    Upload(&'a str, &'a str),
    Referrers(&'a str, &'a str),
}

/// Splits a request path. Names hold slashes, so the endpoint is found from the end; the
/// name is checked afterwards, which is where `..`, `%2e%2e` and friends are refused.
fn parse_route(path: &str) -> Option<Route<'_>> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Route::Base);
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Route::Tags(name));
    }
    if let Some(name) = rest.strip_suffix("/blobs/uploads/").or_else(|| rest.strip_suffix("/blobs/uploads")) {
        return Some(Route::UploadStart(name));
    }
    let (head, last) = rest.rsplit_once('/')?;
    if let Some(name) = head.strip_suffix("/blobs/uploads") {
        return Some(Route::Upload(name, last));
    }
    if let Some(name) = head.strip_suffix("/manifests") {
        return Some(Route::Manifest(name, last));
    }
    if let Some(name) = head.strip_suffix("/blobs") {
        return Some(Route::Blob(name, last));
    }
    if let Some(name) = head.strip_suffix("/referrers") {
        return Some(Route::Referrers(name, last));
    }
    None
}

fn not_allowed(method: &Method) -> ApiError {
    ApiError::new(Code::Unsupported, format!("method {method} is not allowed here"))
}

async fn route(reg: Arc<Registry>, req: Request<Incoming>) -> Result<Resp> {
    let path = req.uri().path().to_string();
    let mut query = parse_query(req.uri().query().unwrap_or(""));
    let method = req.method().clone();
    if path == "/token" {
        return crate::token_endpoint::token(&reg, req).await;
    }
    if path == "/api/v2.0" || path.starts_with("/api/v2.0/") {
        return Ok(crate::harbor::session::api(&reg, req).await);
    }
    if path.starts_with("/c/") {
        return Ok(crate::harbor::session::handle(&reg, req).await);
    }
    if let Some(page) = crate::ui::page(&path) {
        return Ok(crate::ui::serve(page, &method));
    }
    if path == "/v1/search" {
        if method != Method::GET && method != Method::HEAD {
            return Err(not_allowed(&method));
        }
        let client = crate::login_limit::client_of(&req);
        return Ok(crate::search_v1::search(&reg, header(&req, "authorization"), client, &query)?.into_response());
    }
    let Some(route) = parse_route(&path) else {
        return Err(ApiError::new(Code::Unsupported, format!("no endpoint {path}")).with_status(404));
    };
    let name = match &route {
        Route::Base | Route::Catalog => None,
        Route::Tags(n)
        | Route::Manifest(n, _)
        | Route::Blob(n, _)
        | Route::UploadStart(n)
        | Route::Upload(n, _)
        | Route::Referrers(n, _) => Some(*n),
    };
    if let Some(n) = name {
        if !names::valid_name(n) {
            return Err(ApiError::new(Code::NameInvalid, format!("invalid repository name {n:?}")));
        }
    }
    if let Some(auth) = &reg.auth {
        authorize(&reg, auth, &req, &route, name, &mut query)?;
    }
    // Who to write into the audit log for a manifest pull, push or deletion that succeeds.
    let audit_as = match (&reg.auth, &reg.audit, &route) {
        (Some(auth), Some(_), Route::Manifest(..)) if method != Method::HEAD => {
            Some(crate::harbor::audit::operator(auth, header(&req, "authorization")))
        }
        _ => None,
    };
    let head = method == Method::HEAD;
    if let Some(n) = name {
        let upstream = block(|| reg.proxy.upstream_for(&reg, n))?;
        if let Some(up) = upstream {
            if let Some(reply) = proxied(&reg, &up, &route, &req, head)? {
                if let (Some(who), Some(log), Route::Manifest(name, r)) = (audit_as, &reg.audit, &route) {
                    crate::harbor::audit::manifest_event(log, who, method.as_str(), name, r);
                }
                return Ok(reply.into_response());
            }
        }
    }
    let reply = match (route, &method) {
        (Route::Base, &Method::GET | &Method::HEAD) => Reply::new(200).json(json!({})),
        (Route::Catalog, &Method::GET) => catalog(&reg, &query)?,
        (Route::Tags(name), &Method::GET) => tags_list(&reg, name, &query)?,
        (Route::Manifest(name, r), &Method::GET | &Method::HEAD) => get_manifest(&reg, name, r, head)?,
        (Route::Manifest(name, r), &Method::PUT) => put_manifest(&reg, name, r, req).await?,
        (Route::Manifest(name, r), &Method::DELETE) => delete_manifest(&reg, name, r)?,
        (Route::Blob(name, d), &Method::GET | &Method::HEAD) => get_blob(&reg, name, d, &req, head)?,
        (Route::Blob(name, d), &Method::DELETE) => delete_blob(&reg, name, d)?,
        (Route::UploadStart(name), &Method::POST) => start_upload(&reg, name, &query, req).await?,
        (Route::Upload(name, id), &Method::GET) => upload_status(&reg, name, id).await?,
        (Route::Upload(name, id), &Method::PATCH) => patch_upload(&reg, name, id, req).await?,
        (Route::Upload(name, id), &Method::PUT) => put_upload(&reg, name, id, &query, req).await?,
        (Route::Upload(name, id), &Method::DELETE) => cancel_upload(&reg, name, id).await?,
        (Route::Referrers(name, d), &Method::GET) => referrers(&reg, name, d, &query)?,
        _ => return Err(not_allowed(&method)),
    };
    if let (Some(who), Some(log), Some(Route::Manifest(name, r))) = (audit_as, &reg.audit, parse_route(&path)) {
        crate::harbor::audit::manifest_event(log, who, method.as_str(), name, r);
    }
    Ok(reply.into_response())
}

// ---------------------------------------------------------------------------------------------
// Proxy-cache projects (`harbor::proxy`)

/// A request to a repository of a proxy-cache project: manifests and blobs come through the
/// cache, pushes and deletes are refused; `None` for what is answered as in any repository
/// (tags, referrers, a blob that is here).
fn proxied(
    reg: &Arc<Registry>,
    up: &Arc<crate::harbor::proxy::Upstream>,
    route: &Route<'_>,
    req: &Request<Incoming>,
    head: bool,
) -> Result<Option<Reply>> {
    use crate::harbor::proxy::ProxyError;
    let refuse = |name: &str| {
        ApiError::new(
            Code::Denied,
            format!(
                "{name}: its project is a proxy cache of registry {}: push and delete are not allowed there",
                up.name
            ),
        )
    };
    let failed = |e: ProxyError, code: Code| match e {
        ProxyError::NotFound(m) => ApiError::new(code, m),
        ProxyError::Unavailable(m) => ApiError::new(Code::Unknown, m).with_status(502),
        ProxyError::Local(e) => e,
    };
    let method = req.method();
    match (route, method) {
        (Route::Manifest(name, reference), &Method::GET | &Method::HEAD) => {
            parse_reference(reference)?;
            let served =
                block(|| reg.proxy.manifest(reg, up, name, reference)).map_err(|e| failed(e, Code::ManifestUnknown))?;
            let reply = Reply::new(200)
                .header("Content-Type", served.media_type)
                .header("Docker-Content-Digest", served.digest.to_string())
                .header("Content-Length", served.bytes.len().to_string());
            Ok(Some(if head { reply } else { reply.body(served.bytes) }))
        }
        (Route::Blob(name, digest), &Method::GET | &Method::HEAD) => {
            let digest = parse_digest(digest)?;
            if block(|| reg.meta.blob_in_repo(name, &digest))?.is_some() {
                return Ok(None);
            }
            let Some((reader, size)) =
                block(|| reg.proxy.open_blob(reg, up, name, &digest)).map_err(|e| failed(e, Code::BlobUnknown))?
            else {
                return Ok(None);
            };
            let mut reply = Reply::new(200)
                .header("Docker-Content-Digest", digest.to_string())
                .header("Content-Type", "application/octet-stream");
            if let Some(n) = size {
                reply = reply.header("Content-Length", n.to_string());
            }
            if head {
                return Ok(Some(reply));
            }
            let sink = reg.proxy.keep(reg, name, &digest);
            let (tx, body) = Body::channel();
            let out = Outlet { tx, runtime: tokio::runtime::Handle::current(), timeout: reg.options.idle_timeout };
            let reg = reg.clone();
            tokio::task::spawn_blocking(move || stream_proxied(reader, size, digest, sink, &reg, out));
            reply.body = body;
            Ok(Some(reply))
        }
        (Route::Manifest(name, _), _)
        | (Route::Blob(name, _), _)
        | (Route::UploadStart(name), _)
        | (Route::Upload(name, _), _) => Err(refuse(name)),
        _ => Ok(None),
    }
}

/// Passes a blob from the upstream to the client, keeping it in storage on the way when
/// `sink` is given. The last piece is held back until the digest is checked and the blob
/// committed, so a client that has the whole blob finds it cached. A client that goes away
/// does not stop the keeping.
fn stream_proxied(
    mut reader: Box<dyn Read + Send>,
    size: Option<u64>,
    digest: Digest,
    mut sink: Option<crate::harbor::proxy::BlobSink>,
    reg: &Registry,
    out: Outlet,
) {
    let mut client = true;
    let mut hasher = Sha256Writer::new();
    let mut total = 0u64;
    let mut pending: Option<Bytes> = None;
    let fail = |client: bool, why: String| {
        log::warn!("proxy cache: blob {digest}: {why}");
        if client {
            out.send(Err(io::Error::other(why)));
        }
    };
    loop {
        let mut buf = vec![0u8; READ_CHUNK];
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return fail(client, format!("reading from the upstream: {e}")),
        };
        buf.truncate(n);
        total += n as u64;
        hasher.update(&buf);
        if let Some(s) = &mut sink {
            if let Err(e) = s.write(&buf) {
                log::warn!("proxy cache: not keeping blob {digest}: {e}");
                sink = None;
            }
        }
        if let Some(p) = pending.replace(Bytes::from(buf)) {
            client = client && out.send(Ok(p));
        }
        if !client && sink.is_none() {
            return;
        }
    }
    if size.is_some_and(|want| want != total) {
        return fail(client, format!("the upstream sent {total} bytes of a declared {}", size.unwrap_or(0)));
    }
    let (got, _) = hasher.finish();
    if got != digest {
        return fail(client, format!("the upstream's bytes hash to {got}"));
    }
    if let Some(s) = sink {
        if let Err(e) = s.finish(reg, &got) {
            log::warn!("proxy cache: keeping blob {digest}: {e}");
        }
    }
    if let (true, Some(p)) = (client, pending) {
        out.send(Ok(p));
    }
}

/// Checks a request's credentials against what its endpoint needs: pull for GET and HEAD,
/// delete for DELETE, push for the rest, `registry:catalog:*` for the catalog, and only a
/// valid caller for `/v2/`. A cross-repository mount from a repository the caller may not pull
/// from becomes a plain upload, as distribution does.
fn authorize(
    reg: &Registry,
    auth: &crate::auth::Auth,
    req: &Request<Incoming>,
    route: &Route<'_>,
    name: Option<&str>,
    query: &mut HashMap<String, String>,
) -> Result<()> {
    let method = req.method();
    let (need, scope) = match (route, name) {
        (Route::Catalog, _) => (Some(("registry", "catalog", "*")), Some("registry:catalog:*".to_string())),
        (_, Some(n)) => {
            let (action, asked) = match *method {
                Method::GET | Method::HEAD => ("pull", "pull"),
                Method::DELETE => ("delete", "delete"),
                _ => ("push", "pull,push"),
            };
            (Some(("repository", n, action)), Some(format!("repository:{n}:{asked}")))
        }
        _ => (None, None),
    };
    let authorization = header(req, "authorization");
    let client = crate::login_limit::client_of(req);
    let decision = block(|| auth.check_from(reg.meta.as_ref(), authorization, need, client))?;
    match decision {
        crate::auth::Decision::Allow => {}
        crate::auth::Decision::Deny(detail) => return Err(ApiError::new(Code::Denied, detail)),
        crate::auth::Decision::Limited { detail, retry_after } => {
            return Err(ApiError::new(Code::TooManyRequests, detail)
                .with_status(429)
                .with_header("Retry-After", retry_after.to_string()))
        }
        crate::auth::Decision::Challenge { detail, insufficient_scope } => {
            let realm = crate::token_endpoint::realm(reg, auth, req);
            let mut challenge = format!("Bearer realm=\"{realm}\",service=\"{}\"", auth.signer.service);
            if let Some(s) = scope {
                challenge.push_str(&format!(",scope=\"{s}\""));
            }
            if insufficient_scope {
                challenge.push_str(",error=\"insufficient_scope\"");
            }
            return Err(ApiError::new(Code::Unauthorized, detail).with_header("WWW-Authenticate", challenge));
        }
    }
    if let (Route::UploadStart(_), Some(from)) = (route, query.get("from").cloned()) {
        if query.contains_key("mount") {
            let may = names::valid_name(&from)
                && block(|| {
                    auth.check_from(reg.meta.as_ref(), authorization, Some(("repository", &from, "pull")), client)
                })? == crate::auth::Decision::Allow;
            if !may {
                query.remove("mount");
                query.remove("from");
            }
        }
    }
    Ok(())
}

/// With the Harbor model on, refuses adding `digest` to `name` past its project's quota
/// (a 403 `DENIED` giving the limit and the usage, as Harbor answers).
fn check_quota(reg: &Registry, name: &str, digest: &Digest, size: u64) -> Result<()> {
    if reg.auth.is_none() {
        return Ok(());
    }
    match block(|| crate::harbor::quota::check(reg.meta.as_ref(), name, digest, size))? {
        Ok(()) => Ok(()),
        Err(why) => Err(ApiError::new(Code::Denied, why)),
    }
}

/// With the Harbor model on, refuses moving or deleting `tag` of `name` when an immutability
/// rule of its project selects it (a 403 `DENIED` naming the rule).
fn check_immutable(reg: &Registry, name: &str, tag: &str) -> Result<()> {
    if reg.auth.is_none() {
        return Ok(());
    }
    match block(|| crate::harbor::immutable::protected(reg.meta.as_ref(), name, tag))? {
        None => Ok(()),
        Some(why) => Err(ApiError::new(Code::Denied, why)),
    }
}

/// Runs storage or database work (synchronous, may fsync) without stalling other tasks.
pub(crate) fn block<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// `a=b&c=d` with percent-decoding. `+` stays `+`: media types in `artifactType` hold it.
pub(crate) fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub(crate) fn percent_decode(s: &str) -> String {
    wharf_types::percent::decode(s, false)
}

enum Reference {
    Tag(String),
    Digest(Digest),
}

fn parse_digest(s: &str) -> Result<Digest> {
    s.parse().map_err(|e: wharf_types::DigestError| ApiError::new(Code::DigestInvalid, e.to_string()))
}

fn parse_reference(s: &str) -> Result<Reference> {
    if s.contains(':') {
        parse_digest(s).map(Reference::Digest)
    } else if names::valid_tag(s) {
        Ok(Reference::Tag(s.to_string()))
    } else {
        Err(ApiError::new(Code::TagInvalid, format!("invalid tag {s:?}: a tag is [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")))
    }
}

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// `n` of a listing: absent, or a non-negative integer.
fn page_size(query: &HashMap<String, String>) -> Result<Option<usize>> {
    match query.get("n") {
        None => Ok(None),
        Some(n) => n.parse().map(Some).map_err(|_| {
            ApiError::new(Code::PaginationNumberInvalid, format!("n={n:?} is not a non-negative integer"))
        }),
    }
}

/// A `Range: bytes=...` of a blob of `size` bytes: `Ok(None)` serves it whole (no header,
/// or one the RFC lets a server ignore: several ranges, bad syntax), `Err` is a 416.
fn parse_range(value: Option<&str>, size: u64) -> Result<Option<(u64, u64)>> {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let unsatisfiable = || {
        ApiError::new(Code::RangeInvalid, format!("range {spec:?} is outside the blob's {size} bytes"))
            .with_header("Content-Range", format!("bytes */{size}"))
    };
    let (start, end) = match (a.trim(), b.trim()) {
        ("", "") => return Ok(None),
        ("", suffix) => match suffix.parse::<u64>() {
            Ok(0) => return Err(unsatisfiable()),
            Ok(n) => (size.saturating_sub(n), size.saturating_sub(1)),
            Err(_) => return Ok(None),
        },
        (a, "") => match a.parse::<u64>() {
            Ok(a) => (a, size.saturating_sub(1)),
            Err(_) => return Ok(None),
        },
        (a, b) => match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(a), Ok(b)) if a <= b => (a, b.min(size.saturating_sub(1))),
            _ => return Ok(None),
        },
    };
    if start >= size {
        return Err(unsatisfiable());
    }
    Ok(Some((start, end)))
}

/// An upload chunk's `Content-Range: <start>-<end>` (inclusive; `bytes ` prefix and a
/// `/total` suffix tolerated, as clients send them).
fn parse_content_range(value: Option<&str>) -> Result<Option<(u64, u64)>> {
    let Some(v) = value else {
        return Ok(None);
    };
    let s = v.trim().trim_start_matches("bytes").trim_start_matches(['=', ' ']);
    let s = s.split('/').next().unwrap_or(s);
    let parsed =
        s.split_once('-').and_then(|(a, b)| Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?)));
    match parsed {
        Some((a, b)) if a <= b => Ok(Some((a, b))),
        _ => Err(ApiError::new(Code::RangeInvalid, format!("invalid Content-Range {v:?}: expected <start>-<end>"))),
    }
}

/// The `Range` header of an upload holding `size` bytes, as distribution writes it.
fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

// ---------------------------------------------------------------------------------------------
// Listings

fn catalog(reg: &Registry, query: &HashMap<String, String>) -> Result<Reply> {
    let n = page_size(query)?.unwrap_or(CATALOG_DEFAULT_PAGE).min(CATALOG_MAX_PAGE);
    let last = query.get("last").map(String::as_str);
    let mut repos = block(|| reg.meta.catalog(last, n + 1))?;
    let more = repos.len() > n;
    repos.truncate(n);
    let mut reply = Reply::new(200);
    if let (true, Some(l)) = (more, repos.last()) {
        reply = reply.header("Link", format!("</v2/_catalog?n={n}&last={l}>; rel=\"next\""));
    }
    Ok(reply.json(json!({ "repositories": repos })))
}

fn tags_list(reg: &Registry, name: &str, query: &HashMap<String, String>) -> Result<Reply> {
    if !block(|| reg.meta.repo_exists(name))? {
        return Err(ApiError::new(Code::NameUnknown, format!("repository {name:?} is not known")));
    }
    // Without `n` the spec wants every tag.
    let n = page_size(query)?;
    let last = query.get("last").map(String::as_str);
    let want = n.map(|n| n.saturating_add(1)).unwrap_or(usize::MAX);
    let mut tags = block(|| reg.meta.tags(name, last, want))?;
    let mut reply = Reply::new(200);
    if let Some(n) = n {
        let more = tags.len() > n;
        tags.truncate(n);
        if let (true, Some(l)) = (more, tags.last()) {
            reply = reply.header("Link", format!("</v2/{name}/tags/list?n={n}&last={l}>; rel=\"next\""));
        }
    }
    Ok(reply.json(json!({ "name": name, "tags": tags })))
}

fn referrers(reg: &Registry, name: &str, subject: &str, query: &HashMap<String, String>) -> Result<Reply> {
    let subject = parse_digest(subject)?;
    let filter = query.get("artifactType").filter(|f| !f.is_empty());
    let found = block(|| reg.meta.referrers(name, &subject))?;
    let manifests: Vec<serde_json::Value> = found
        .into_iter()
        .filter(|r| filter.is_none_or(|f| r.record.artifact_type.as_deref() == Some(f.as_str())))
        .map(|r| {
            let mut d = json!({ "mediaType": r.record.media_type, "digest": r.digest, "size": r.record.size });
            if let Some(t) = &r.record.artifact_type {
                d["artifactType"] = json!(t);
            }
            if !r.record.annotations.is_empty() {
                d["annotations"] = json!(r.record.annotations);
            }
            d
        })
        .collect();
    let body = json!({ "schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": manifests });
    let mut reply = Reply::new(200).header("Content-Type", MEDIA_OCI_INDEX).body(body.to_string());
    if filter.is_some() {
        reply = reply.header("OCI-Filters-Applied", "artifactType");
    }
    Ok(reply)
}

// ---------------------------------------------------------------------------------------------
// Manifests

fn unknown_manifest(reg: &Registry, name: &str, what: &str) -> ApiError {
    match block(|| reg.meta.repo_exists(name)) {
        Ok(false) => ApiError::new(Code::NameUnknown, format!("repository {name:?} is not known")),
        _ => ApiError::new(Code::ManifestUnknown, format!("manifest {what} is not in repository {name:?}")),
    }
}

fn get_manifest(reg: &Registry, name: &str, reference: &str, head: bool) -> Result<Reply> {
    let digest = match parse_reference(reference)? {
        Reference::Digest(d) => d,
        Reference::Tag(t) => block(|| reg.meta.tag(name, &t))?.ok_or_else(|| unknown_manifest(reg, name, &t))?,
    };
    let record =
        block(|| reg.meta.manifest(name, &digest))?.ok_or_else(|| unknown_manifest(reg, name, &digest.to_string()))?;
    let reply = Reply::new(200)
        .header("Content-Type", record.media_type.clone())
        .header("Docker-Content-Digest", digest.to_string())
        .header("Content-Length", record.size.to_string());
    if head {
        return Ok(reply);
    }
    let bytes = block(|| read_small(reg, &digest, record.size))?;
    Ok(reply.body(bytes))
}

/// A manifest's bytes, checked against its digest (they are small).
fn read_small(reg: &Registry, digest: &Digest, size: u64) -> Result<Vec<u8>> {
    let Some((reader, _)) = reg.store.open(digest, 0)? else {
        return Err(ApiError::internal(format!("manifest {digest} is indexed but missing from storage")));
    };
    let mut bytes = Vec::with_capacity(size.min(MAX_MANIFEST_SIZE as u64) as usize);
    reader.take(MAX_MANIFEST_SIZE as u64 + 1).read_to_end(&mut bytes)?;
    if Digest::of(&bytes) != *digest {
        return Err(ApiError::internal(format!("manifest {digest} is corrupted in storage")));
    }
    Ok(bytes)
}

/// Reads a request body of at most `limit` bytes; over it (declared or sent) is a 413.
/// A body somewhat over the limit is read to its end first (and dropped): answering while the
/// client still sends would make the kernel reset the connection, and the client lose the 413.
async fn read_limited(req: Request<Incoming>, limit: usize, reg: &Registry) -> Result<Vec<u8>> {
    const DRAIN_MAX: u64 = 8 << 20;
    let too_big = |n: u64| {
        ApiError::new(Code::ManifestInvalid, format!("manifest of {n} bytes is over the limit of {limit} bytes"))
            .with_status(413)
    };
    let declared = header(&req, "content-length").and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > limit as u64 + DRAIN_MAX) {
        return Err(too_big(n));
    }
    let mut body = req.into_body();
    let mut out = Vec::new();
    let mut total: u64 = 0;
    loop {
        match tokio::time::timeout(reg.options.idle_timeout, body.frame()).await {
            Err(_) => return Err(ApiError::new(Code::ManifestInvalid, "the client stopped sending the manifest")),
            Ok(None) if total > limit as u64 => return Err(too_big(total)),
            Ok(None) => return Ok(out),
            Ok(Some(Err(e))) => return Err(ApiError::new(Code::ManifestInvalid, format!("reading the manifest: {e}"))),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    total += data.len() as u64;
                    if total > limit as u64 + DRAIN_MAX {
                        return Err(too_big(total));
                    }
                    if total <= limit as u64 {
                        out.extend_from_slice(&data);
                    } else {
                        out = Vec::new();
                    }
                }
            }
        }
    }
}

async fn put_manifest(reg: &Registry, name: &str, reference: &str, req: Request<Incoming>) -> Result<Reply> {
    let reference = parse_reference(reference)?;
    let content_type = header(&req, "content-type").unwrap_or("").split(';').next().unwrap_or("").trim().to_string();
    let bytes = read_limited(req, MAX_MANIFEST_SIZE, reg).await?;
    let digest = Digest::of(&bytes);
    if let Reference::Digest(d) = &reference {
        if *d != digest {
            return Err(ApiError::new(Code::DigestInvalid, format!("the manifest's digest is {digest}, not {d}")));
        }
    }
    let parsed = manifest::parse(&content_type, &bytes).map_err(|e| ApiError::new(Code::ManifestInvalid, e))?;
    let _quota = block(|| reg.quota_lock(name))?;
    check_quota(reg, name, &digest, bytes.len() as u64)?;
    let record = ManifestRecord {
        media_type: parsed.media_type,
        size: bytes.len() as u64,
        artifact_type: parsed.artifact_type,
        subject: parsed.subject.clone(),
        annotations: parsed.annotations,
        blobs: parsed.blobs,
        manifests: parsed.manifests,
        created: now(),
    };
    let tag = match &reference {
        Reference::Tag(t) => Some(t.as_str()),
        Reference::Digest(_) => None,
    };
    if let Some(t) = tag {
        // Pushing an immutable tag again with the same manifest changes nothing and is let be.
        if block(|| reg.meta.tag(name, t))?.is_some_and(|old| old != digest) {
            check_immutable(reg, name, t)?;
        }
    }
    let outcome = block(|| -> Result<std::result::Result<(), Missing>> {
        let _guard = reg.digest_lock(&digest)?;
        let known = reg.meta.blob(&digest)?.is_some();
        reg.store.put(&digest, &bytes)?;
        let outcome = reg.meta.put_manifest(name, &digest, tag, &record)?;
        if outcome.is_err() && !known {
            // A refused manifest leaves nothing behind.
            reg.store.delete(&digest)?;
        }
        Ok(outcome)
    })?;
    match outcome {
        Err(Missing::Blob(b)) => {
            return Err(ApiError::new(Code::ManifestBlobUnknown, format!("blob {b} is not in repository {name:?}")));
        }
        Err(Missing::Manifest(m)) => {
            return Err(ApiError::new(
                Code::ManifestBlobUnknown,
                format!("manifest {m} is not in repository {name:?}"),
            ));
        }
        Ok(()) => {}
    }
    let mut reply = Reply::new(201)
        .header("Location", format!("/v2/{name}/manifests/{digest}"))
        .header("Docker-Content-Digest", digest.to_string());
    if let Some(s) = &parsed.subject {
        reply = reply.header("OCI-Subject", s.to_string());
    }
    Ok(reply)
}

fn delete_manifest(reg: &Registry, name: &str, reference: &str) -> Result<Reply> {
    let (found, what) = match parse_reference(reference)? {
        Reference::Tag(t) => {
            check_immutable(reg, name, &t)?;
            (block(|| reg.meta.delete_tag(name, &t))?, t)
        }
        Reference::Digest(d) => {
            // Its tags go with it: none of them may be immutable.
            if reg.auth.is_some() {
                for (t, _) in block(|| reg.meta.repo_tags(name))?.into_iter().filter(|(_, to)| *to == d) {
                    check_immutable(reg, name, &t)?;
                }
            }
            (block(|| reg.meta.delete_manifest(name, &d))?, d.to_string())
        }
    };
    if !found {
        return Err(unknown_manifest(reg, name, &what));
    }
    Ok(Reply::new(202))
}

// ---------------------------------------------------------------------------------------------
// Blobs

fn get_blob(reg: &Registry, name: &str, digest: &str, req: &Request<Incoming>, head: bool) -> Result<Reply> {
    let digest = parse_digest(digest)?;
    let Some(size) = block(|| reg.meta.blob_in_repo(name, &digest))? else {
        return Err(ApiError::new(Code::BlobUnknown, format!("blob {digest} is not in repository {name:?}")));
    };
    reg.touch(&digest);
    let base = Reply::new(200)
        .header("Docker-Content-Digest", digest.to_string())
        .header("Accept-Ranges", "bytes")
        .header("Content-Type", "application/octet-stream");
    if head {
        return Ok(base.header("Content-Length", size.to_string()));
    }
    let range = parse_range(header(req, "range"), size)?;
    let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
    let Some(opened) = block(|| reg.store.open_versioned(&digest, start))? else {
        return Err(ApiError::internal(format!("blob {digest} is indexed but missing from storage")));
    };
    let (reader, stored) = (opened.reader, opened.size);
    if stored != size {
        return Err(ApiError::internal(format!(
            "blob {digest} has {stored} bytes in storage but {size} in the index (run wharf-registry scrub)"
        )));
    }
    let len = if size == 0 { 0 } else { end - start + 1 };
    let verify = range.is_none().then(|| read_check(reg, &digest, opened.version)).flatten();
    let mut reply = base.header("Content-Length", len.to_string());
    if range.is_some() {
        reply.status = 206;
        reply = reply.header("Content-Range", format!("bytes {start}-{end}/{size}"));
    }
    if len <= READ_CHUNK as u64 {
        // A small blob (a config, a small layer) is read and checked here and sent whole:
        // no streaming thread and channel for it, which cost more than the read.
        let data = block(|| read_whole(reader, len))?;
        if let Some(check) = verify {
            let got = Digest::of(&data);
            let want = check.want.clone();
            if !check.finish(&got) {
                return Err(ApiError::internal(format!(
                    "blob {want} in storage hashes to {got}: not served (run wharf-registry scrub)"
                )));
            }
        }
        return Ok(reply.body(data));
    }
    let (tx, body) = Body::channel();
    let out = Outlet { tx, runtime: tokio::runtime::Handle::current(), timeout: reg.options.idle_timeout };
    tokio::task::spawn_blocking(move || stream_blob(reader, len, verify, out));
    reply.body = body;
    Ok(reply)
}

/// The check a whole-blob read of `digest` needs, if any (`ServeOptions::verify_reads`).
fn read_check(reg: &Registry, digest: &Digest, version: Option<BlobVersion>) -> Option<ReadCheck> {
    let remember = match reg.options.verify_reads {
        VerifyReads::Never => return None,
        VerifyReads::Always => None,
        VerifyReads::Once => match version {
            Some(v) if reg.verified.holds(digest, &v) => return None,
            Some(v) => Some((reg.verified.clone(), v)),
            None => None,
        },
    };
    Some(ReadCheck { want: digest.clone(), remember })
}

/// A digest a read must match, and where to remember that it did.
struct ReadCheck {
    want: Digest,
    remember: Option<(Arc<Verified>, BlobVersion)>,
}

impl ReadCheck {
    /// Whether the bytes read hashed to `got`; remembers the answer.
    fn finish(self, got: &Digest) -> bool {
        let ok = *got == self.want;
        if let Some((verified, version)) = self.remember {
            if ok {
                verified.insert(self.want, version);
            } else {
                verified.forget(&self.want);
            }
        }
        ok
    }
}

/// Reads exactly `len` bytes of a blob.
fn read_whole(reader: Box<dyn Read + Send>, len: u64) -> Result<Vec<u8>> {
    let mut data = Vec::with_capacity(len as usize);
    reader.take(len).read_to_end(&mut data)?;
    if (data.len() as u64) < len {
        return Err(ApiError::internal(format!("blob shorter than indexed: {} of {len} bytes", data.len())));
    }
    Ok(data)
}

/// Where a blob read sends its pieces: a client that takes none for the idle time-out is
/// given up (the body ends short of its length and hyper drops the connection), so that a
/// reader that never reads cannot hold a blocking thread for ever.
struct Outlet {
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    runtime: tokio::runtime::Handle,
    timeout: std::time::Duration,
}

impl Outlet {
    /// `false` when the client is gone or stalled.
    fn send(&self, item: io::Result<Bytes>) -> bool {
        self.runtime.block_on(self.tx.send_timeout(item, self.timeout)).is_ok()
    }
}

/// Feeds `len` bytes of `reader` to a response body. With `verify`, the bytes are hashed on
/// the way, on a thread of their own so that reading and sending do not wait for the hash, and
/// the last piece is held back until the digest is known: on a mismatch the body ends in an
/// error, hyper cuts the connection and the client never has the whole blob.
fn stream_blob(mut reader: Box<dyn Read + Send>, len: u64, verify: Option<ReadCheck>, out: Outlet) {
    let hashing = verify.map(|check| {
        // Bounded: the hash keeps up within a few pieces, or reading waits for it.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(8);
        let thread = std::thread::spawn(move || {
            let mut hasher = Sha256Writer::new();
            for piece in rx {
                hasher.update(&piece);
            }
            hasher.finish().0
        });
        (tx, thread, check)
    });
    let mut left = len;
    let mut pending: Option<Bytes> = None;
    while left > 0 {
        let mut buf = vec![0u8; READ_CHUNK.min(left as usize)];
        let n = match reader.read(&mut buf) {
            Ok(0) => {
                out.send(Err(io::Error::new(io::ErrorKind::UnexpectedEof, "blob shorter than indexed")));
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::error!("reading a blob: {e}");
                out.send(Err(e));
                return;
            }
        };
        buf.truncate(n);
        left -= n as u64;
        let piece = Bytes::from(buf);
        if let Some((tx, _, _)) = &hashing {
            // A clone of a `Bytes` shares the buffer.
            if tx.send(piece.clone()).is_err() {
                out.send(Err(io::Error::other("the blob's digest check stopped")));
                return;
            }
        }
        if let Some(p) = pending.replace(piece) {
            if !out.send(Ok(p)) {
                log::debug!("a blob read was given up: the client took nothing for {:?}", out.timeout);
                return;
            }
        }
    }
    if let Some((tx, thread, check)) = hashing {
        drop(tx);
        let got = match thread.join() {
            Ok(got) => got,
            Err(_) => {
                out.send(Err(io::Error::other("the blob's digest check failed")));
                return;
            }
        };
        let want = check.want.clone();
        if !check.finish(&got) {
            log::error!("blob {want} is corrupted in storage: its bytes hash to {got}; run wharf-registry scrub");
            out.send(Err(io::Error::other(format!("blob {want} failed its digest check"))));
            return;
        }
    }
    if let Some(p) = pending {
        out.send(Ok(p));
    }
}

fn delete_blob(reg: &Registry, name: &str, digest: &str) -> Result<Reply> {
    let digest = parse_digest(digest)?;
    if !block(|| reg.meta.unlink_blob(name, &digest))? {
        return Err(ApiError::new(Code::BlobUnknown, format!("blob {digest} is not in repository {name:?}")));
    }
    Ok(Reply::new(202))
}

// ---------------------------------------------------------------------------------------------
// Uploads

fn blob_created(name: &str, digest: &Digest) -> Reply {
    Reply::new(201)
        .header("Location", format!("/v2/{name}/blobs/{digest}"))
        .header("Docker-Content-Digest", digest.to_string())
        .header("Content-Length", "0")
}

fn upload_location(name: &str, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

fn upload_unknown(id: &str) -> ApiError {
    ApiError::new(Code::BlobUploadUnknown, format!("upload {id:?} is not known"))
}

/// Where an upload stands, for a 202/204 or a 416.
fn upload_headers(reply: Reply, name: &str, id: &str, size: u64) -> Reply {
    reply
        .header("Location", upload_location(name, id))
        .header("Range", upload_range(size))
        .header("Docker-Upload-UUID", id.to_string())
        .header("Content-Length", "0")
}

async fn start_upload(
    reg: &Registry,
    name: &str,
    query: &HashMap<String, String>,
    req: Request<Incoming>,
) -> Result<Reply> {
    if let Some(m) = query.get("mount") {
        let digest = parse_digest(m)?;
        // With no `from` the spec lets the registry mount from any repository that holds
        // the blob; a `from` that is no valid name cannot hold it.
        let from = query.get("from").map(String::as_str);
        let quota = block(|| reg.quota_lock(name))?;
        if let Some(b) = block(|| reg.meta.blob(&digest))? {
            check_quota(reg, name, &digest, b.size)?;
        }
        if from.is_none_or(names::valid_name) && block(|| reg.meta.mount_blob(name, &digest, from))?.is_some() {
            drop(quota);
            reg.touch(&digest);
            return Ok(blob_created(name, &digest));
        }
        drop(quota);
    }
    let monolithic = query.get("digest").map(|d| parse_digest(d)).transpose()?;
    let id = random_hex(16)?;
    block(|| -> Result<()> {
        reg.store.create_upload(&id)?;
        reg.meta.create_upload(&id, &UploadRecord { repo: name.to_string(), started: now() })?;
        Ok(())
    })?;
    let Some(digest) = monolithic else {
        return Ok(upload_headers(Reply::new(202), name, &id, 0));
    };
    let result = finish_upload(reg, name, &id, digest, req).await;
    if result.is_err() {
        // The client never learnt this upload's id, so nobody can continue it.
        block(|| drop_upload(reg, &id))?;
        reg.end_session(&id);
    }
    result
}

/// Checks that `id` is an upload of `name`.
fn check_upload(reg: &Registry, name: &str, id: &str) -> Result<()> {
    if !names::valid_upload_id(id) {
        return Err(upload_unknown(id));
    }
    match block(|| reg.meta.upload(id))? {
        Some(r) if r.repo == name => Ok(()),
        _ => Err(upload_unknown(id)),
    }
}

/// The upload's size and hash state: kept from its last request, or rebuilt from the bytes on
/// disk (after a restart, or when the last request failed to write).
fn resume(reg: &Registry, id: &str, session: &mut UploadSession) -> Result<(u64, Sha256Writer)> {
    let Some(size) = block(|| reg.store.upload_size(id))? else {
        return Err(upload_unknown(id));
    };
    match session.hasher.take() {
        Some(h) if h.len() == size => Ok((size, h)),
        _ => {
            let h = block(|| -> io::Result<Sha256Writer> {
                let mut r = reg.store.upload_reader(id)?;
                let mut h = Sha256Writer::new();
                io::copy(&mut r, &mut h)?;
                Ok(h)
            })?;
            Ok((h.len(), h))
        }
    }
}

async fn upload_status(reg: &Registry, name: &str, id: &str) -> Result<Reply> {
    check_upload(reg, name, id)?;
    // The store's size, not this process's hash state: with replicas, the upload's later
    // chunks may have gone to another. The session's lock waits out a chunk in flight here.
    let session = reg.session(id);
    let _session = session.lock().await;
    let size = block(|| reg.store.upload_size(id))?.ok_or_else(|| upload_unknown(id))?;
    Ok(upload_headers(Reply::new(204), name, id, size))
}

enum ReceiveError {
    /// The client broke off, sent something wrong or stalled: what arrived is kept.
    Client(String),
    /// Writing failed: the hash state may be out of step with the bytes on disk.
    Storage(io::Error),
}

/// Streams a request body onto an upload at `offset`, hashing it as it is written.
async fn receive(
    reg: &Registry,
    id: &str,
    offset: u64,
    hasher: &mut Sha256Writer,
    body: Incoming,
) -> std::result::Result<u64, ReceiveError> {
    let mut body = body;
    let mut writer: Option<Box<dyn io::Write + Send>> = None;
    let mut buf: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
    let mut total = 0u64;
    // A store may hold bytes back until `flush` (S3 writes whole objects): the last call
    // flushes, and only then are the bytes counted stored.
    let mut flush =
        |buf: &mut Vec<u8>, hasher: &mut Sha256Writer, last: bool| -> std::result::Result<(), ReceiveError> {
            if buf.is_empty() && !(last && writer.is_some()) {
                return Ok(());
            }
            block(|| -> io::Result<()> {
                if !buf.is_empty() {
                    let w = match &mut writer {
                        Some(w) => w,
                        None => writer.insert(reg.store.upload_writer(id, offset)?),
                    };
                    w.write_all(buf)?;
                }
                match &mut writer {
                    Some(w) if last => w.flush(),
                    _ => Ok(()),
                }
            })
            .map_err(ReceiveError::Storage)?;
            hasher.update(buf);
            total += buf.len() as u64;
            buf.clear();
            Ok(())
        };
    let idle = reg.options.idle_timeout;
    loop {
        let broke = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => Some(format!("no data for {}s", idle.as_secs())),
            Ok(None) => break,
            Ok(Some(Err(e))) => Some(format!("reading the body: {e}")),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                    if buf.len() >= WRITE_CHUNK {
                        flush(&mut buf, hasher, false)?;
                    }
                }
                None
            }
        };
        if let Some(why) = broke {
            flush(&mut buf, hasher, true)?;
            return Err(ReceiveError::Client(why));
        }
    }
    flush(&mut buf, hasher, true)?;
    Ok(total)
}

/// Receives one chunk (or the whole rest) of an upload into `session`, checking its
/// `Content-Range` against where the upload stands. Returns the new size.
async fn receive_chunk(
    reg: &Registry,
    name: &str,
    id: &str,
    session: &mut UploadSession,
    req: Request<Incoming>,
) -> Result<(u64, Sha256Writer)> {
    let content_range = parse_content_range(header(&req, "content-range"))?;
    let (offset, mut hasher) = resume(reg, id, session)?;
    if let Some((start, _)) = content_range {
        if start != offset {
            session.hasher = Some(hasher);
            let e =
                ApiError::new(Code::RangeInvalid, format!("chunk starts at {start}, the upload holds {offset} bytes"));
            return Err(e
                .with_header("Location", upload_location(name, id))
                .with_header("Range", upload_range(offset))
                .with_header("Docker-Upload-UUID", id.to_string()));
        }
    }
    let before = hasher.clone();
    match receive(reg, id, offset, &mut hasher, req.into_body()).await {
        Ok(n) => {
            if let Some((start, end)) = content_range {
                if n != end - start + 1 {
                    // The chunk was not what it said it was: undo it whole.
                    block(|| reg.store.upload_writer(id, offset))?;
                    session.hasher = Some(before);
                    return Err(ApiError::new(
                        Code::SizeInvalid,
                        format!("Content-Range {start}-{end} announced {} bytes, the body had {n}", end - start + 1),
                    ));
                }
            }
            Ok((offset + n, hasher))
        }
        Err(ReceiveError::Client(why)) => {
            session.hasher = Some(hasher);
            Err(ApiError::new(Code::BlobUploadInvalid, format!("upload {id}: {why}")))
        }
        Err(ReceiveError::Storage(e)) => {
            session.hasher = None;
            Err(ApiError::internal(format!("upload {id}: writing: {e}")))
        }
    }
}

async fn patch_upload(reg: &Registry, name: &str, id: &str, req: Request<Incoming>) -> Result<Reply> {
    check_upload(reg, name, id)?;
    let session = reg.session(id);
    let mut session = session.lock().await;
    let (size, hasher) = receive_chunk(reg, name, id, &mut session, req).await?;
    session.hasher = Some(hasher);
    Ok(upload_headers(Reply::new(202), name, id, size))
}

async fn put_upload(
    reg: &Registry,
    name: &str,
    id: &str,
    query: &HashMap<String, String>,
    req: Request<Incoming>,
) -> Result<Reply> {
    check_upload(reg, name, id)?;
    let Some(digest) = query.get("digest") else {
        return Err(ApiError::new(Code::DigestInvalid, "the closing PUT of an upload needs ?digest="));
    };
    let digest = parse_digest(digest)?;
    finish_upload(reg, name, id, digest, req).await
}

/// The closing step of an upload (PUT, or a single POST with `?digest=`): receives what the
/// body holds, checks the digest, moves the bytes into place and records the blob. A wrong
/// digest ends the upload and leaves nothing behind.
async fn finish_upload(reg: &Registry, name: &str, id: &str, want: Digest, req: Request<Incoming>) -> Result<Reply> {
    let session = reg.session(id);
    let mut session = session.lock().await;
    let (_, hasher) = receive_chunk(reg, name, id, &mut session, req).await?;
    let (digest, size) = hasher.finish();
    if digest != want {
        block(|| drop_upload(reg, id))?;
        reg.end_session(id);
        return Err(ApiError::new(
            Code::DigestInvalid,
            format!("the uploaded content has digest {digest}, not {want}"),
        ));
    }
    let quota = block(|| reg.quota_lock(name))?;
    if let Err(e) = check_quota(reg, name, &digest, size) {
        drop(quota);
        block(|| drop_upload(reg, id))?;
        reg.end_session(id);
        return Err(e);
    }
    block(|| -> Result<()> {
        let _guard = reg.digest_lock(&digest)?;
        // The bytes were just hashed on their way in: a blob this commit installs needs no
        // check at its first read. One already stored was not these bytes.
        let installs = reg.options.verify_reads == VerifyReads::Once && reg.store.stat(&digest)?.is_none();
        reg.store.commit_upload(id, &digest)?;
        if installs {
            if let Some(version) = reg.store.version(&digest)? {
                reg.verified.insert(digest.clone(), version);
            }
        }
        reg.meta.complete_upload(id, name, &digest, size)?;
        Ok(())
    })?;
    drop(quota);
    reg.end_session(id);
    reg.touch(&digest);
    Ok(blob_created(name, &digest))
}

fn drop_upload(reg: &Registry, id: &str) -> Result<()> {
    reg.store.delete_upload(id)?;
    reg.meta.delete_upload(id)?;
    Ok(())
}

async fn cancel_upload(reg: &Registry, name: &str, id: &str) -> Result<Reply> {
    check_upload(reg, name, id)?;
    let session = reg.session(id);
    let _session = session.lock().await;
    block(|| drop_upload(reg, id))?;
    reg.end_session(id);
    Ok(Reply::new(204).header("Content-Length", "0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_checked_as_the_mode_says() {
        use crate::server::ServeOptions;
        let dir = std::env::temp_dir().join(format!("wharf-read-check-{}", std::process::id()));
        let open = |mode| {
            let data = dir.join(format!("{mode:?}"));
            Registry::open(&data, ServeOptions { verify_reads: mode, ..ServeOptions::default() }).unwrap()
        };
        let bytes = b"some layer".to_vec();
        let d = Digest::of(&bytes);

        let reg = open(VerifyReads::Once);
        reg.store.put(&d, &bytes).unwrap();
        let version = reg.store.version(&d).unwrap().expect("files have versions");
        let first = read_check(&reg, &d, Some(version)).expect("a first read is checked");
        assert!(first.finish(&d));
        assert!(read_check(&reg, &d, Some(version)).is_none(), "the checked bytes are trusted");
        let rewritten = BlobVersion { ctime_ns: version.ctime_ns + 1, ..version };
        let again = read_check(&reg, &d, Some(rewritten)).expect("other bytes are checked again");
        assert!(!again.finish(&Digest::of(b"rotted")), "a mismatch is a mismatch");
        assert!(read_check(&reg, &d, Some(version)).is_some(), "a blob that failed is not trusted");
        assert!(read_check(&reg, &d, None).is_some(), "a backend with no versions has every read checked");

        let always = open(VerifyReads::Always);
        let check = read_check(&always, &d, Some(version)).expect("checked");
        assert!(check.finish(&d));
        assert!(read_check(&always, &d, Some(version)).is_some(), "always means always");
        assert!(read_check(&open(VerifyReads::Never), &d, Some(version)).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn routes() {
        assert_eq!(parse_route("/v2/"), Some(Route::Base));
        assert_eq!(parse_route("/v2"), Some(Route::Base));
        assert_eq!(parse_route("/v2/_catalog"), Some(Route::Catalog));
        assert_eq!(parse_route("/v2/a/b/tags/list"), Some(Route::Tags("a/b")));
        assert_eq!(parse_route("/v2/a/manifests/latest"), Some(Route::Manifest("a", "latest")));
        assert_eq!(parse_route("/v2/a/blobs/uploads/"), Some(Route::UploadStart("a")));
        assert_eq!(parse_route("/v2/a/blobs/uploads/x"), Some(Route::Upload("a", "x")));
        assert_eq!(parse_route("/v2/blobs/blobs/sha256:1"), Some(Route::Blob("blobs", "sha256:1")));
        assert_eq!(parse_route("/v2/a/referrers/sha256:1"), Some(Route::Referrers("a", "sha256:1")));
        assert_eq!(parse_route("/v2/../manifests/x"), Some(Route::Manifest("..", "x")));
        assert_eq!(parse_route("/v3/a"), None);
        assert_eq!(parse_route("/v2/a"), None);
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10).unwrap(), None);
        assert_eq!(parse_range(Some("bytes=0-4"), 10).unwrap(), Some((0, 4)));
        assert_eq!(parse_range(Some("bytes=5-"), 10).unwrap(), Some((5, 9)));
        assert_eq!(parse_range(Some("bytes=-3"), 10).unwrap(), Some((7, 9)));
        assert_eq!(parse_range(Some("bytes=8-100"), 10).unwrap(), Some((8, 9)));
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10).unwrap(), None);
        assert_eq!(parse_range(Some("bytes=4-2"), 10).unwrap(), None);
        assert_eq!(parse_range(Some("items=0-1"), 10).unwrap(), None);
        assert!(parse_range(Some("bytes=10-"), 10).is_err());
        assert!(parse_range(Some("bytes=-0"), 10).is_err());
        assert!(parse_range(Some("bytes=0-0"), 0).is_err());
    }

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range(Some("0-9")).unwrap(), Some((0, 9)));
        assert_eq!(parse_content_range(Some("bytes 10-19/100")).unwrap(), Some((10, 19)));
        assert_eq!(parse_content_range(None).unwrap(), None);
        assert!(parse_content_range(Some("9-0")).is_err());
        assert!(parse_content_range(Some("x")).is_err());
    }

    #[test]
    fn queries() {
        let q = parse_query("artifactType=application%2Fvnd.x%2Bjson&n=2&last=a+b&bad=%zz&x");
        assert_eq!(q["artifactType"], "application/vnd.x+json");
        assert_eq!(q["last"], "a+b");
        assert_eq!(q["bad"], "%zz");
        assert_eq!(q["x"], "");
    }
}
