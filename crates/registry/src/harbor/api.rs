//! Harbor's REST API, `/api/v2.0`, in Harbor's shapes for what wharf-registry has: projects
//! (list with paging and `q`, create, get, update, delete, summary), members, robots,
//! repositories, artifacts and their tags, users, `systeminfo`, `health` and `ping`. Callers
//! authenticate with Basic credentials (a user's password or a robot's secret) or come
//! anonymous; every handler checks the permission it needs through [`super::access`] and
//! answers a refusal with Harbor's error body `{"errors":[{"code","message"}]}` naming it.
//! This module and the protocol's `handlers` are the only ones that know HTTP.

use std::collections::HashMap;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request};
use serde_json::{json, Value};
use wharf_types::Digest;

use super::access::{self, describe, ProjectAccess};
use super::immutable::ImmutableRule;
use super::proxy::{RegistryEndpoint, RegistryRecord};
use super::rbac::{Action, Resource, RobotPermission, Role};
use super::store::{Project, ProjectRecord, Robot, RobotRecord};
use crate::auth::{self, Auth, Subject};
use crate::handlers::{block, Reply, Resp};
use crate::meta::{now, ManifestRecord, MetaError, UserRecord};
use crate::server::Registry;
use crate::store::random_hex;
use crate::token_endpoint::rfc3339;

mod audit_logs;
mod permissions;
mod policies;
mod repository;
mod search;

/// A request body of the API is a small JSON document.
const MAX_BODY: usize = 1 << 20;
const DEFAULT_PAGE_SIZE: usize = 10;
const MAX_PAGE_SIZE: usize = 100;

/// An error in Harbor's form; the code follows from the status as Harbor's do.
#[derive(Debug)]
pub struct HarborError {
    pub status: u16,
    pub message: String,
}

impl HarborError {
    pub(crate) fn new(status: u16, message: impl Into<String>) -> HarborError {
        HarborError { status, message: message.into() }
    }

    fn code(&self) -> &'static str {
        match self.status {
            400 => "BAD_REQUEST",
            401 => "UNAUTHORIZED",
            403 => "FORBIDDEN",
            404 => "NOT_FOUND",
            405 => "METHOD_NOT_ALLOWED",
            409 => "CONFLICT",
            412 => "PRECONDITION",
            413 => "PAYLOAD_TOO_LARGE",
            429 => "TOO_MANY_REQUESTS",
            _ => "INTERNAL_SERVER_ERROR",
        }
    }

    pub(crate) fn into_response(self) -> Resp {
        let body = json!({ "errors": [{ "code": self.code(), "message": self.message }] });
        Reply::new(self.status).json(body).into_response()
    }
}

impl From<MetaError> for HarborError {
    fn from(e: MetaError) -> HarborError {
        log::error!("internal error: {e}");
        HarborError::new(500, e.to_string())
    }
}

type Result<T> = std::result::Result<T, HarborError>;

fn bad(message: impl Into<String>) -> HarborError {
    HarborError::new(400, message)
}

fn not_found(message: impl Into<String>) -> HarborError {
    HarborError::new(404, message)
}

pub async fn handle(reg: &Registry, req: Request<Incoming>) -> Resp {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    match serve(reg, req).await {
        Ok(r) => r.into_response(),
        Err(e) => {
            log::debug!("{method} {path}: {} {}", e.status, e.message);
            e.into_response()
        }
    }
}

/// One request, parsed: who asks, the path's segments (percent-decoded), the query.
struct Call<'a> {
    reg: &'a Registry,
    auth: &'a Auth,
    subject: Subject,
    method: Method,
    query: HashMap<String, String>,
    /// `X-Is-Resource-Name: true`: a project given by a number is a name, not an id.
    by_name: bool,
    host: String,
}

async fn serve(reg: &Registry, req: Request<Incoming>) -> Result<Reply> {
    let Some(auth) = &reg.auth else {
        return Err(not_found("the REST API needs authentication on (serve --auth)"));
    };
    let path = req.uri().path().to_string();
    let rest = path.strip_prefix("/api/v2.0").unwrap_or("").trim_matches('/');
    let segs: Vec<String> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').map(|s| wharf_types::percent::decode(s, false)).collect()
    };
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let client = crate::login_limit::client_of(&req);
    let subject = match header("authorization") {
        // A UI session's subject, put there by `session::api` (CSRF already checked).
        None => req.extensions().get::<super::session::SessionSubject>().map_or(Subject::Anonymous, |s| s.0.clone()),
        Some(h) => match block(|| auth::basic_user_from(reg.meta.as_ref(), &h, client))? {
            Some((_, auth::LoginOutcome::Subject(s))) => s,
            Some((user, auth::LoginOutcome::Limited(wait))) => {
                return Err(HarborError::new(429, auth::LoginOutcome::limited_message(&user, wait)))
            }
            _ => return Err(HarborError::new(401, "invalid username or password")),
        },
    };
    let call = Call {
        reg,
        auth,
        subject,
        method: req.method().clone(),
        query: crate::handlers::parse_query(req.uri().query().unwrap_or("")),
        by_name: header("x-is-resource-name").is_some_and(|v| v.eq_ignore_ascii_case("true")),
        host: header("host").unwrap_or_default(),
    };
    let body = match call.method {
        Method::POST | Method::PUT | Method::PATCH => read_json(reg, req).await?,
        _ => Value::Null,
    };
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    block(|| call.route(&s, &body))
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes; an empty one is `null`.
async fn read_json(reg: &Registry, req: Request<Incoming>) -> Result<Value> {
    let mut body = req.into_body();
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(reg.options.idle_timeout, body.frame()).await {
            Err(_) => return Err(bad("the request body stalled")),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(bad(format!("reading the request body: {e}"))),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                    if out.len() > MAX_BODY {
                        return Err(HarborError::new(413, format!("the request body is over {MAX_BODY} bytes")));
                    }
                }
            }
        }
    }
    if out.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&out).map_err(|e| bad(format!("the request body is not valid JSON: {e}")))
}

fn time(secs: u64) -> String {
    rfc3339(secs)
}

/// A field of a JSON body: absent (or null) is `None`; the wrong type is a 400 naming it.
fn opt_str<'v>(body: &'v Value, key: &str) -> Result<Option<&'v str>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(format!("{key} must be a string"))),
    }
}

fn opt_bool(body: &Value, key: &str) -> Result<Option<bool>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(bad(format!("{key} must be true or false"))),
    }
}

fn opt_int(body: &Value, key: &str) -> Result<Option<i64>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| bad(format!("{key} must be an integer"))),
    }
}

/// `metadata.public` ("true"/"false", as Harbor keeps project metadata) or `public` (bool).
fn public_of(body: &Value) -> Result<Option<bool>> {
    if let Some(m) = body.get("metadata").filter(|m| !m.is_null()) {
        match m.get("public") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s == "true" => return Ok(Some(true)),
            Some(Value::String(s)) if s == "false" => return Ok(Some(false)),
            Some(Value::Bool(b)) => return Ok(Some(*b)),
            Some(v) => return Err(bad(format!("metadata.public must be \"true\" or \"false\", not {v}"))),
        }
    }
    opt_bool(body, "public")
}

/// A storage limit in bytes as Harbor's API gives it: -1 (or absent) is unlimited.
fn storage_limit_of(v: Option<i64>) -> Result<Option<u64>> {
    match v {
        None | Some(-1) => Ok(None),
        Some(n) if n > 0 => Ok(Some(n as u64)),
        Some(n) => Err(bad(format!("storage limit {n} is invalid: bytes, or -1 for unlimited"))),
    }
}

/// Harbor's `q`: `key=value` (exact) and `key=~value` (contains), comma-separated.
fn parse_q(q: &str) -> Vec<(String, bool, String)> {
    q.split(',')
        .filter_map(|part| {
            let (k, v) = part.split_once('=')?;
            let (fuzzy, v) = match v.strip_prefix('~') {
                Some(v) => (true, v),
                None => (false, v),
            };
            Some((k.trim().to_string(), fuzzy, v.trim().to_string()))
        })
        .collect()
}

fn matches(value: &str, fuzzy: bool, want: &str) -> bool {
    if fuzzy {
        value.contains(want)
    } else {
        value == want
    }
}

impl Call<'_> {
    fn meta(&self) -> &dyn crate::meta::Metadata {
        self.reg.meta.as_ref()
    }

    fn sysadmin(&self) -> bool {
        matches!(self.subject, Subject::User { admin: true, .. })
    }

    fn logged_in_user(&self) -> Result<&str> {
        match &self.subject {
            Subject::User { name, .. } => Ok(name),
            Subject::Anonymous => Err(HarborError::new(401, "authentication required: log in first")),
            Subject::Robot { name, .. } => {
                Err(HarborError::new(403, format!("robot {name:?} may not do this: users only")))
            }
        }
    }

    fn route(&self, s: &[&str], body: &Value) -> Result<Reply> {
        let m = self.method.clone();
        match (s, &m) {
            (["ping"], &Method::GET) => Ok(Reply::new(200).header("Content-Type", "text/plain").body("Pong")),
            (["health"], &Method::GET) => self.health(),
            (["systeminfo"], &Method::GET) => self.systeminfo(),
            (["openapi.json"], &Method::GET) => Ok(Reply::new(200).json(super::openapi::document(&self.host))),
            (["swagger.json"], &Method::GET) => Ok(Reply::new(200).json(super::openapi::document(&self.host))),
            (["projects"], &Method::GET) => self.list_projects(),
            (["projects"], &Method::HEAD) => self.project_exists(),
            (["projects"], &Method::POST) => self.create_project(body),
            (["projects", p], &Method::GET) => self.get_project(p),
            (["projects", p], &Method::PUT) => self.update_project(p, body),
            (["projects", p], &Method::DELETE) => self.delete_project(p),
            (["projects", p, "summary"], &Method::GET) => self.summary(p),
            (["projects", p, "members"], &Method::GET) => self.list_members(p),
            (["projects", p, "members"], &Method::POST) => self.add_member(p, body),
            (["projects", p, "members", mid], &Method::GET) => self.get_member(p, mid),
            (["projects", p, "members", mid], &Method::PUT) => self.update_member(p, mid, body),
            (["projects", p, "members", mid], &Method::DELETE) => self.delete_member(p, mid),
            (["projects", p, "robots"], &Method::GET) => self.project_robots(p),
            (["projects", p, "immutabletagrules"], &Method::GET) => self.list_rules(p),
            (["projects", p, "immutabletagrules"], &Method::POST) => self.create_rule(p, body),
            (["projects", p, "immutabletagrules", id], &Method::PUT) => self.update_rule(p, id, body),
            (["projects", p, "immutabletagrules", id], &Method::DELETE) => self.delete_rule(p, id),
            (["projects", p, "repositories"], &Method::GET) => self.list_repositories(p),
            (["projects", p, "repositories", r], &Method::GET) => self.get_repository(p, r),
            (["projects", p, "repositories", r, "artifacts"], &Method::GET) => self.list_artifacts(p, r),
            (["projects", p, "repositories", r, "artifacts", a], &Method::GET) => self.get_artifact(p, r, a),
            (["projects", p, "repositories", r, "artifacts", a], &Method::DELETE) => self.delete_artifact(p, r, a),
            (["projects", p, "repositories", r, "artifacts", a, "tags"], &Method::GET) => self.list_tags(p, r, a),
            (["projects", p, "repositories", r, "artifacts", a, "tags"], &Method::POST) => {
                self.create_tag(p, r, a, body)
            }
            (["projects", p, "repositories", r, "artifacts", a, "tags", t], &Method::DELETE) => {
                self.delete_tag(p, r, a, t)
            }
            (["users"], &Method::GET) => self.list_users(),
            (["users"], &Method::POST) => self.create_user(body),
            (["users", "current"], &Method::GET) => self.current_user(),
            (["users", "search"], &Method::GET) => self.search_users(),
            (["users", id], &Method::GET) => self.get_user(id),
            (["users", id], &Method::PUT) => self.update_user(id, body),
            (["users", id], &Method::DELETE) => self.delete_user(id),
            (["users", id, "password"], &Method::PUT) => self.set_password(id, body),
            (["users", id, "sysadmin"], &Method::PUT) => self.set_sysadmin(id, body),
            (["quotas"], &Method::GET) => self.list_quotas(),
            (["quotas", id], &Method::GET) => self.get_quota(id),
            (["quotas", id], &Method::PUT) => self.set_quota(id, body),
            (["robots"], &Method::GET) => self.list_robots(),
            (["robots"], &Method::POST) => self.create_robot(body),
            (["robots", id], &Method::GET) => self.get_robot(id),
            (["robots", id], &Method::PUT) => self.update_robot(id, body),
            (["robots", id], &Method::PATCH) => self.refresh_robot(id, body),
            (["robots", id], &Method::DELETE) => self.delete_robot(id),
            (["registries"], &Method::GET) => self.list_registries(),
            (["registries"], &Method::POST) => self.create_registry(body),
            (["registries", "ping"], &Method::POST) => self.ping_registry(body),
            (["registries", id], &Method::GET) => self.get_registry(id),
            (["registries", id], &Method::PUT) => self.update_registry(id, body),
            (["registries", id], &Method::DELETE) => self.delete_registry(id),
            (["retentions"], &Method::POST) => self.create_retention(body),
            (["retentions", "metadatas"], &Method::GET) => self.retention_metadatas(),
            (["retentions", id], &Method::GET) => self.get_retention(id),
            (["retentions", id], &Method::PUT) => self.update_retention(id, body),
            (["retentions", id], &Method::DELETE) => self.delete_retention(id),
            (["retentions", id, "executions"], &Method::POST) => self.trigger_retention(id, body),
            (["retentions", id, "executions"], &Method::GET) => self.list_retention_executions(id),
            (["retentions", id, "executions", e], &Method::PATCH) => self.stop_retention_execution(id, e, body),
            (["retentions", id, "executions", e, "tasks"], &Method::GET) => self.list_retention_tasks(id, e),
            (["retentions", id, "executions", e, "tasks", t], &Method::GET) => self.retention_task_log(id, e, t),
            (["system", "gc", "schedule"], &Method::GET) => self.get_gc_schedule(),
            (["system", "gc", "schedule"], &Method::POST) => self.kick_gc(body, 201),
            (["system", "gc", "schedule"], &Method::PUT) => self.kick_gc(body, 200),
            (["system", "gc"], &Method::GET) => self.gc_history(),
            (["system", "gc", id], &Method::GET) => self.get_gc(id),
            (["system", "gc", id, "log"], &Method::GET) => self.gc_log(id),
            (["audit-logs"], &Method::GET) => self.list_audit_logs(),
            (["projects", p, "logs"], &Method::GET) => self.project_logs(p),
            (["search"], &Method::GET) => self.search(),
            (["projects", p, "repositories", r], &Method::DELETE) => self.delete_repository(p, r),
            (["projects", p, "repositories", r], &Method::PUT) => self.update_repository(p, r, body),
            (["users", "current", "permissions"], &Method::GET) => self.current_user_permissions(),
            _ => Err(not_found(format!("no API endpoint {} /api/v2.0/{}", self.method, s.join("/")))),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Registry endpoints (the upstreams of proxy-cache projects): system admins only

    fn registry_by_id(&self, id: &str) -> Result<RegistryEndpoint> {
        let n = id.parse::<u64>().map_err(|_| bad(format!("registry id {id:?} is not a number")))?;
        self.meta()
            .registries()?
            .into_iter()
            .find(|e| e.id == n)
            .ok_or_else(|| not_found(format!("registry {n} not found")))
    }

    /// A registry endpoint from a create (`base` None) or update body, checked. Create takes
    /// `credential: {access_key, access_secret}`, update the same fields at the top level.
    fn registry_from(&self, body: &Value, base: Option<&RegistryEndpoint>) -> Result<(String, RegistryRecord)> {
        let t = now();
        let mut name = base.map(|b| b.name.clone()).unwrap_or_default();
        let mut r = base.map(|b| b.record.clone()).unwrap_or(RegistryRecord {
            kind: String::new(),
            url: String::new(),
            description: String::new(),
            insecure: false,
            access_key: None,
            access_secret: None,
            created: t,
            updated: t,
        });
        r.updated = t;
        if let Some(v) = opt_str(body, "name")? {
            name = v.to_string();
        }
        if let Some(v) = opt_str(body, "type")? {
            if base.is_some() && v != r.kind {
                return Err(bad("a registry's type cannot be changed"));
            }
            r.kind = v.to_string();
        }
        if let Some(v) = opt_str(body, "url")? {
            r.url = v.trim_end_matches('/').to_string();
        }
        if let Some(v) = opt_str(body, "description")? {
            r.description = v.to_string();
        }
        if let Some(v) = opt_bool(body, "insecure")? {
            r.insecure = v;
        }
        let cred = body.get("credential").filter(|c| c.is_object()).unwrap_or(body);
        if let Some(k) = opt_str(cred, "access_key")? {
            r.access_key = (!k.is_empty()).then(|| k.to_string());
        }
        if let Some(secret) = opt_str(cred, "access_secret")? {
            // The masked value the API shows means "unchanged".
            if secret != "*****" {
                r.access_secret = (!secret.is_empty()).then(|| secret.to_string());
            }
        }
        if r.url.is_empty() {
            return Err(bad("url is required"));
        }
        super::proxy::validate(&name, &r).map_err(bad)?;
        Ok((name, r))
    }

    fn name_taken(&self, name: &str, except: Option<u64>) -> Result<()> {
        if self.meta().registries()?.iter().any(|e| e.name == name && Some(e.id) != except) {
            return Err(HarborError::new(409, format!("registry {name:?} already exists")));
        }
        Ok(())
    }

    fn list_registries(&self) -> Result<Reply> {
        self.require_sysadmin()?;
        let filters = parse_q(self.query.get("q").map(String::as_str).unwrap_or(""));
        let items = self
            .meta()
            .registries()?
            .iter()
            .filter(|e| {
                filters.iter().all(|(k, fuzzy, v)| match k.as_str() {
                    "name" => matches(&e.name, *fuzzy, v),
                    "type" => e.record.kind == *v,
                    "url" => matches(&e.record.url, *fuzzy, v),
                    _ => true,
                })
            })
            .map(|e| super::proxy::to_json(e, time))
            .collect();
        self.paged("/api/v2.0/registries", items)
    }

    fn create_registry(&self, body: &Value) -> Result<Reply> {
        self.require_sysadmin()?;
        let (name, record) = self.registry_from(body, None)?;
        self.name_taken(&name, None)?;
        let Some(id) = self.meta().create_registry(&name, &record)? else {
            return Err(HarborError::new(409, format!("registry {name:?} already exists")));
        };
        Ok(Reply::new(201).header("Location", format!("/api/v2.0/registries/{id}")))
    }

    fn get_registry(&self, id: &str) -> Result<Reply> {
        self.require_sysadmin()?;
        Ok(Reply::new(200).json(super::proxy::to_json(&self.registry_by_id(id)?, time)))
    }

    fn update_registry(&self, id: &str, body: &Value) -> Result<Reply> {
        self.require_sysadmin()?;
        let old = self.registry_by_id(id)?;
        let (name, record) = self.registry_from(body, Some(&old))?;
        self.name_taken(&name, Some(old.id))?;
        if !self.meta().update_registry(old.id, &name, &record)? {
            return Err(not_found(format!("registry {id} not found")));
        }
        Ok(Reply::new(200))
    }

    fn delete_registry(&self, id: &str) -> Result<Reply> {
        self.require_sysadmin()?;
        let e = self.registry_by_id(id)?;
        let users: Vec<String> = self
            .meta()
            .projects()?
            .into_iter()
            .filter(|p| p.record.registry_id == Some(e.id))
            .map(|p| p.name)
            .collect();
        if !users.is_empty() {
            return Err(HarborError::new(
                412,
                format!(
                    "registry {} is the upstream of proxy cache project(s) {}: delete them first",
                    e.name,
                    users.join(", ")
                ),
            ));
        }
        self.meta().delete_registry(e.id)?;
        Ok(Reply::new(200))
    }

    /// Whether an endpoint (by `id`, or described in the body as for a create) answers the
    /// registry API with its credentials.
    fn ping_registry(&self, body: &Value) -> Result<Reply> {
        self.require_sysadmin()?;
        let endpoint = match opt_int(body, "id")? {
            Some(id) => self.registry_by_id(&id.to_string())?,
            None => {
                let mut b = body.clone();
                if b.get("name").is_none() {
                    b["name"] = json!("ping");
                }
                let (name, record) = self.registry_from(&b, None)?;
                RegistryEndpoint { id: 0, name, record }
            }
        };
        super::proxy::ping(&endpoint)
            .map_err(|e| bad(format!("registry {} cannot be reached: {e}", endpoint.record.url)))?;
        Ok(Reply::new(200))
    }

    // -----------------------------------------------------------------------------------------
    // Paging

    /// `page` (from 1) and `page_size` (at most 100).
    fn page(&self) -> Result<(usize, usize)> {
        let num = |key: &str, default: usize| -> Result<usize> {
            match self.query.get(key) {
                None => Ok(default),
                Some(v) => v.parse::<usize>().map_err(|_| bad(format!("{key}={v:?} is not a positive integer"))),
            }
        };
        let page = num("page", 1)?.max(1);
        let size = num("page_size", DEFAULT_PAGE_SIZE)?;
        if size == 0 || size > MAX_PAGE_SIZE {
            return Err(bad(format!("page_size must be 1 to {MAX_PAGE_SIZE}")));
        }
        Ok((page, size))
    }

    /// One page of `items` with Harbor's `X-Total-Count` and `Link` headers.
    fn paged(&self, path: &str, items: Vec<Value>) -> Result<Reply> {
        self.paged_map(path, items, Ok)
    }

    /// [`Call::paged`] where only the page's items are turned into JSON (by `f`): a listing
    /// of thousands costs the work of one page, not of every item.
    fn paged_map<T>(&self, path: &str, items: Vec<T>, f: impl FnMut(T) -> Result<Value>) -> Result<Reply> {
        self.paged_keeping(path, "", items, f)
    }

    /// [`Call::paged_map`] whose `Link` URLs also carry `keep` (`&q=…`, already encoded).
    pub(super) fn paged_keeping<T>(
        &self,
        path: &str,
        keep: &str,
        items: Vec<T>,
        f: impl FnMut(T) -> Result<Value>,
    ) -> Result<Reply> {
        let (page, size) = self.page()?;
        let total = items.len();
        let start = (page - 1).saturating_mul(size).min(total);
        let end = start.saturating_add(size).min(total);
        let mut links = Vec::new();
        if page > 1 {
            links.push(format!("<{path}?page={}&page_size={size}{keep}>; rel=\"prev\"", page - 1));
        }
        if end < total {
            links.push(format!("<{path}?page={}&page_size={size}{keep}>; rel=\"next\"", page + 1));
        }
        let mut reply = Reply::new(200).header("X-Total-Count", total.to_string());
        if !links.is_empty() {
            reply = reply.header("Link", links.join(" , "));
        }
        let page: Vec<Value> = items.into_iter().skip(start).take(end - start).map(f).collect::<Result<_>>()?;
        Ok(reply.json(Value::Array(page)))
    }

    // -----------------------------------------------------------------------------------------
    // Projects and permissions

    /// The project a path names: by id when it is a number (unless `X-Is-Resource-Name`).
    fn resolve_project(&self, p: &str) -> Result<Option<Project>> {
        if !self.by_name && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
            let id: u64 = p.parse().map_err(|_| bad(format!("project id {p:?} is too large")))?;
            return Ok(self.meta().projects()?.into_iter().find(|x| x.id == id));
        }
        Ok(self.meta().project(p)?)
    }

    fn access(&self, project: &str) -> Result<ProjectAccess> {
        Ok(access::evaluate(self.meta(), &self.subject, project, self.auth.anonymous_pull)?)
    }

    /// The project and the subject's access, when the subject holds `resource:action` there.
    /// A project the subject may not even see is a 404 to anonymous... as Harbor: 401 when not
    /// logged in, 403 when logged in, each naming the permission.
    fn require(&self, p: &str, resource: Resource, action: Action) -> Result<(Project, ProjectAccess)> {
        let project = self.resolve_project(p)?.ok_or_else(|| not_found(format!("project {p} not found")))?;
        self.require_in(project, resource, action)
    }

    /// [`Call::require`] for a project already found.
    fn require_in(&self, project: Project, resource: Resource, action: Action) -> Result<(Project, ProjectAccess)> {
        let access = self.access(&project.name)?;
        if access.allows(resource, action) {
            return Ok((project, access));
        }
        let standing = match (&self.subject, access.role) {
            (Subject::Robot { project: own, .. }, _) if *own != project.name => format!("a robot of project {own:?}"),
            (Subject::Robot { .. }, _) => "a robot without that permission".to_string(),
            (_, Some(role)) => format!("{} of project {:?}", role.name(), project.name),
            (Subject::Anonymous, None) => "not logged in".to_string(),
            (_, None) => format!("no member of project {:?}", project.name),
        };
        let message = format!(
            "{} ({standing}) lacks the {}:{} permission",
            describe(&self.subject),
            resource.name(),
            action.name()
        );
        let status = if self.subject == Subject::Anonymous { 401 } else { 403 };
        Err(HarborError::new(status, message))
    }

    /// The repositories of a project that hold at least one artifact (as in Harbor, where
    /// deleting a repository's last artifact removes it), in name order.
    fn project_repos(&self, project: &str) -> Result<Vec<String>> {
        Ok(self.meta().project_repos(project)?)
    }

    fn user_ids(&self) -> Result<HashMap<String, u64>> {
        Ok(self.meta().users()?.into_iter().map(|(n, u)| (n, u.id)).collect())
    }

    fn project_json(&self, p: &Project, ids: &HashMap<String, u64>) -> Result<Value> {
        let access = self.access(&p.name)?;
        let role = access.role.map(Role::id).unwrap_or(0);
        let mut metadata = json!({ "public": p.record.public.to_string() });
        if let Some(id) = self.retention_id(p.id)? {
            metadata["retention_id"] = json!(id.to_string());
        }
        Ok(json!({
            "project_id": p.id,
            "name": p.name,
            "owner_id": ids.get(&p.record.owner).copied().unwrap_or(0),
            "owner_name": p.record.owner,
            "creation_time": time(p.record.created),
            "update_time": time(p.record.updated),
            "deleted": false,
            "registry_id": p.record.registry_id.unwrap_or(0),
            "repo_count": self.project_repos(&p.name)?.len(),
            "current_user_role_id": role,
            "current_user_role_ids": if role == 0 { json!([]) } else { json!([role]) },
            "togglable": true,
            "metadata": metadata,
        }))
    }

    fn list_projects(&self) -> Result<Reply> {
        let mut filters = parse_q(self.query.get("q").map(String::as_str).unwrap_or(""));
        if let Some(n) = self.query.get("name") {
            filters.push(("name".into(), true, n.clone()));
        }
        if let Some(p) = self.query.get("public") {
            filters.push(("public".into(), false, p.clone()));
        }
        let ids = self.user_ids()?;
        let mut items = Vec::new();
        for p in self.meta().projects()? {
            if !self.access(&p.name)?.visible() {
                continue;
            }
            let keep = filters.iter().all(|(k, fuzzy, v)| match k.as_str() {
                "name" => matches(&p.name, *fuzzy, v),
                "public" => p.record.public.to_string() == *v,
                "owner" => matches(&p.record.owner, *fuzzy, v),
                _ => true,
            });
            if keep {
                items.push(p);
            }
        }
        self.paged_map("/api/v2.0/projects", items, |p| self.project_json(&p, &ids))
    }

    fn project_exists(&self) -> Result<Reply> {
        let Some(name) = self.query.get("project_name") else {
            return Err(bad("HEAD /projects needs ?project_name="));
        };
        match self.meta().project(name)? {
            Some(_) => Ok(Reply::new(200)),
            None => Err(not_found(format!("project {name} not found"))),
        }
    }

    fn create_project(&self, body: &Value) -> Result<Reply> {
        let user = self.logged_in_user()?.to_string();
        if self.auth.project_creation_admin_only && !self.sysadmin() {
            return Err(HarborError::new(
                403,
                format!("user {user:?} may not create projects: project creation is restricted to system admins"),
            ));
        }
        let name = opt_str(body, "project_name")?.ok_or_else(|| bad("project_name is required"))?;
        if !super::valid_project_name(name) {
            return Err(bad(format!(
                "project name {name:?} is invalid: lower-case letters and digits, separated by single . _ or -, \
                 at most 255 characters"
            )));
        }
        let storage_limit = storage_limit_of(opt_int(body, "storage_limit")?)?;
        if storage_limit.is_some() && !self.sysadmin() {
            return Err(HarborError::new(
                403,
                format!("user {user:?} may not set a storage limit: system admins only"),
            ));
        }
        let t = now();
        let public = public_of(body)?.unwrap_or(false);
        let registry_id = match opt_int(body, "registry_id")? {
            None | Some(0) => None,
            Some(id) => {
                if !self.sysadmin() {
                    return Err(HarborError::new(
                        403,
                        format!("user {user:?} may not create a proxy cache project: system admins only"),
                    ));
                }
                let known = self.meta().registries()?.iter().any(|e| i64::try_from(e.id) == Ok(id));
                if !known {
                    return Err(bad(format!("registry_id {id}: no such registry endpoint")));
                }
                Some(id as u64)
            }
        };
        let record = ProjectRecord { public, owner: user.clone(), created: t, updated: t, storage_limit, registry_id };
        let Some(id) = self.meta().create_project(name, &record, Some(&user))? else {
            return Err(HarborError::new(409, format!("project {name} already exists")));
        };
        self.audit(Some(&Project { id, name: name.to_string(), record }), "project", name, "create");
        Ok(Reply::new(201).header("Location", format!("/api/v2.0/projects/{id}")))
    }

    fn get_project(&self, p: &str) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::Project, Action::Read)?;
        let ids = self.user_ids()?;
        Ok(Reply::new(200).json(self.project_json(&project, &ids)?))
    }

    fn update_project(&self, p: &str, body: &Value) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::Project, Action::Update)?;
        let mut record = project.record.clone();
        if let Some(public) = public_of(body)? {
            record.public = public;
        }
        record.updated = now();
        self.meta().update_project(&project.name, &record)?;
        self.audit(Some(&project), "project", &project.name, "update");
        Ok(Reply::new(200))
    }

    fn delete_project(&self, p: &str) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::Project, Action::Delete)?;
        let repos = self.project_repos(&project.name)?;
        if !repos.is_empty() {
            return Err(HarborError::new(
                412,
                format!(
                    "project {} has {} repositories (first {}): delete them before the project",
                    project.name,
                    repos.len(),
                    repos[0]
                ),
            ));
        }
        self.meta().delete_project(&project.name)?;
        // Its retention policy goes with it, as in Harbor.
        if let Some(id) = self.retention_id(project.id)? {
            self.meta().delete_job_record(super::jobs::RETENTION_POLICY, id)?;
        }
        self.audit(Some(&project), "project", &project.name, "delete");
        Ok(Reply::new(200))
    }

    fn summary(&self, p: &str) -> Result<Reply> {
        let (project, access) = self.require(p, Resource::Project, Action::Read)?;
        let mut out = json!({ "repo_count": self.project_repos(&project.name)?.len() });
        if access.allows(Resource::Member, Action::List) {
            let members = self.meta().members(&project.name)?;
            let count = |r: Role| members.iter().filter(|m| m.role == r).count();
            out["project_admin_count"] = json!(count(Role::ProjectAdmin));
            out["maintainer_count"] = json!(count(Role::Maintainer));
            out["developer_count"] = json!(count(Role::Developer));
            out["guest_count"] = json!(count(Role::Guest));
            out["limited_guest_count"] = json!(count(Role::LimitedGuest));
        }
        if access.allows(Resource::Quota, Action::Read) {
            out["quota"] = self.quota_json(&project)?;
        }
        Ok(Reply::new(200).json(out))
    }

    // -----------------------------------------------------------------------------------------
    // Quotas: one per project, its id the project's.

    fn quota_json(&self, p: &Project) -> Result<Value> {
        let hard = p.record.storage_limit.map(|l| l as i64).unwrap_or(-1);
        Ok(json!({
            "hard": { "storage": hard },
            "used": { "storage": super::quota::usage(self.meta(), &p.name)? },
        }))
    }

    fn quota_item(&self, p: &Project) -> Result<Value> {
        let mut q = self.quota_json(p)?;
        q["id"] = json!(p.id);
        q["ref"] = json!({ "id": p.id, "name": p.name, "owner_name": p.record.owner });
        q["creation_time"] = json!(time(p.record.created));
        q["update_time"] = json!(time(p.record.updated));
        Ok(q)
    }

    fn list_quotas(&self) -> Result<Reply> {
        self.require_sysadmin()?;
        let want = self.query.get("reference_id");
        let mut items = Vec::new();
        for p in self.meta().projects()? {
            if want.is_none_or(|w| *w == p.id.to_string()) {
                items.push(self.quota_item(&p)?);
            }
        }
        self.paged("/api/v2.0/quotas", items)
    }

    fn quota_project(&self, id: &str) -> Result<Project> {
        let n: u64 = id.parse().map_err(|_| bad(format!("quota id {id:?} is not a number")))?;
        self.meta().projects()?.into_iter().find(|p| p.id == n).ok_or_else(|| not_found(format!("quota {n} not found")))
    }

    fn get_quota(&self, id: &str) -> Result<Reply> {
        self.require_sysadmin()?;
        let p = self.quota_project(id)?;
        Ok(Reply::new(200).json(self.quota_item(&p)?))
    }

    /// `{"hard": {"storage": N}}`: a new limit (bytes, -1 unlimited); system admins only.
    fn set_quota(&self, id: &str, body: &Value) -> Result<Reply> {
        self.require_sysadmin()?;
        let p = self.quota_project(id)?;
        let hard = body.get("hard").filter(|h| !h.is_null()).ok_or_else(|| bad("hard is required"))?;
        let limit = storage_limit_of(Some(opt_int(hard, "storage")?.ok_or_else(|| bad("hard.storage is required"))?))?;
        let record = ProjectRecord { storage_limit: limit, updated: now(), ..p.record.clone() };
        self.meta().update_project(&p.name, &record)?;
        self.audit(Some(&p), "quota", &p.name, "update");
        Ok(Reply::new(200))
    }

    // -----------------------------------------------------------------------------------------
    // Members

    fn member_json(&self, project: &Project, m: &super::store::Member, ids: &HashMap<String, u64>) -> Value {
        json!({
            "id": m.id,
            "project_id": project.id,
            "entity_name": m.user,
            "entity_id": ids.get(&m.user).copied().unwrap_or(0),
            "entity_type": "u",
            "role_id": m.role.id(),
            "role_name": m.role.name(),
        })
    }

    fn list_members(&self, p: &str) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::Member, Action::List)?;
        let ids = self.user_ids()?;
        let want = self.query.get("entityname");
        let items: Vec<Value> = self
            .meta()
            .members(&project.name)?
            .iter()
            .filter(|m| want.is_none_or(|w| m.user.contains(w.as_str())))
            .map(|m| self.member_json(&project, m, &ids))
            .collect();
        self.paged(&format!("/api/v2.0/projects/{}/members", project.name), items)
    }

    fn role_of(body: &Value) -> Result<Role> {
        let id = opt_int(body, "role_id")?.ok_or_else(|| bad("role_id is required"))?;
        Role::from_id(id).ok_or_else(|| {
            bad(format!(
                "role_id {id} is not a role: 1 projectAdmin, 2 developer, 3 guest, 4 maintainer, 5 limitedGuest"
            ))
        })
    }

    fn add_member(&self, p: &str, body: &Value) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::Member, Action::Create)?;
        let role = Call::role_of(body)?;
        let user = body.get("member_user").filter(|u| !u.is_null()).ok_or_else(|| bad("member_user is required"))?;
        let name = match (opt_str(user, "username")?, opt_int(user, "user_id")?) {
            (Some(n), _) => n.to_string(),
            (None, Some(id)) => self
                .meta()
                .users()?
                .into_iter()
                .find(|(_, u)| u.id == id as u64)
                .map(|(n, _)| n)
                .ok_or_else(|| not_found(format!("user id {id} not found")))?,
            (None, None) => return Err(bad("member_user needs username or user_id")),
        };
        if self.meta().user(&name)?.is_none() {
            return Err(not_found(format!("user {name} not found")));
        }
        if self.meta().member(&project.name, &name)?.is_some() {
            return Err(HarborError::new(409, format!("user {name} is already a member of project {}", project.name)));
        }
        let id = self
            .meta()
            .put_member(&project.name, &name, role)?
            .ok_or_else(|| not_found(format!("user {name} or project {} is gone", project.name)))?;
        self.audit(Some(&project), "member", &name, "create");
        Ok(Reply::new(201).header("Location", format!("/api/v2.0/projects/{}/members/{id}", project.id)))
    }

    fn find_member(&self, project: &Project, mid: &str) -> Result<super::store::Member> {
        let id: u64 = mid.parse().map_err(|_| bad(format!("member id {mid:?} is not a number")))?;
        self.meta()
            .members(&project.name)?
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| not_found(format!("member {id} of project {} not found", project.name)))
    }

    fn get_member(&self, p: &str, mid: &str) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::Member, Action::Read)?;
        let m = self.find_member(&project, mid)?;
        Ok(Reply::new(200).json(self.member_json(&project, &m, &self.user_ids()?)))
    }

    fn update_member(&self, p: &str, mid: &str, body: &Value) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::Member, Action::Update)?;
        let m = self.find_member(&project, mid)?;
        let role = Call::role_of(body)?;
        self.meta().put_member(&project.name, &m.user, role)?;
        self.audit(Some(&project), "member", &m.user, "update");
        Ok(Reply::new(200))
    }

    fn delete_member(&self, p: &str, mid: &str) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::Member, Action::Delete)?;
        let m = self.find_member(&project, mid)?;
        self.meta().delete_member(&project.name, &m.user)?;
        self.audit(Some(&project), "member", &m.user, "delete");
        Ok(Reply::new(200))
    }

    // -----------------------------------------------------------------------------------------
    // Repositories, artifacts, tags

    /// A repository of a path: `{project}/{name}`, the name as Harbor's clients send it,
    /// percent-encoded once more (`a%252Fb` for `a/b`).
    fn repo_name(project: &Project, r: &str) -> Result<String> {
        let r = wharf_types::percent::decode(r, false);
        let full = format!("{}/{r}", project.name);
        if !crate::names::valid_name(&full) {
            return Err(bad(format!("repository name {full:?} is invalid")));
        }
        Ok(full)
    }

    fn repository_json(&self, project: &Project, repo: &str) -> Result<Value> {
        let manifests = self.meta().repo_manifests(repo)?;
        let created = manifests.iter().map(|(_, m)| m.created).min().unwrap_or(project.record.created);
        let updated = manifests.iter().map(|(_, m)| m.created).max().unwrap_or(created);
        Ok(json!({
            "name": repo,
            "project_id": project.id,
            "artifact_count": manifests.len(),
            "description": self.meta().repo_description(repo)?.unwrap_or_default(),
            "pull_count": 0,
            "creation_time": time(created),
            "update_time": time(updated),
        }))
    }

    fn list_repositories(&self, p: &str) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::Repository, Action::List)?;
        let filters = parse_q(self.query.get("q").map(String::as_str).unwrap_or(""));
        let mut items = Vec::new();
        for r in self.project_repos(&project.name)? {
            if filters.iter().all(|(k, fuzzy, v)| k != "name" || matches(&r, *fuzzy, v)) {
                items.push(r);
            }
        }
        let path = format!("/api/v2.0/projects/{}/repositories", project.name);
        self.paged_map(&path, items, |r| self.repository_json(&project, &r))
    }

    fn get_repository(&self, p: &str, r: &str) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::Repository, Action::Read)?;
        let repo = Call::repo_name(&project, r)?;
        if self.meta().repo_manifests(&repo)?.is_empty() {
            return Err(not_found(format!("repository {repo} not found")));
        }
        Ok(Reply::new(200).json(self.repository_json(&project, &repo)?))
    }

    /// The digest an artifact reference names: a digest, or a tag of the repository.
    fn artifact_digest(&self, repo: &str, reference: &str) -> Result<Digest> {
        if reference.contains(':') {
            return reference.parse().map_err(|e: wharf_types::DigestError| bad(format!("digest {reference:?}: {e}")));
        }
        if !crate::names::valid_tag(reference) {
            return Err(bad(format!("{reference:?} is neither a digest nor a valid tag")));
        }
        self.meta().tag(repo, reference)?.ok_or_else(|| not_found(format!("artifact {repo}:{reference} not found")))
    }

    fn artifact_json(
        &self,
        project: &Project,
        repo: &str,
        d: &Digest,
        m: &ManifestRecord,
        tags: &[(String, Digest)],
    ) -> Result<Value> {
        // Harbor's size: the manifest and every blob it names.
        let mut size = m.size;
        for b in &m.blobs {
            size += self.meta().blob_in_repo(repo, b)?.unwrap_or(0);
        }
        let tag_list: Vec<Value> = tags
            .iter()
            .filter(|(_, t)| t == d)
            .map(|(name, _)| json!({ "name": name, "push_time": time(m.created), "immutable": self.immutable(repo, name) }))
            .collect();
        let kind = if m.manifests.is_empty() { "IMAGE" } else { "INDEX" };
        let mut out = json!({
            "digest": d.to_string(),
            "size": size,
            "manifest_media_type": m.media_type,
            "media_type": m.artifact_type.clone().unwrap_or_else(|| m.media_type.clone()),
            "type": kind,
            "project_id": project.id,
            "repository_name": repo,
            "push_time": time(m.created),
            "pull_time": "0001-01-01T00:00:00Z",
            "tags": tag_list,
            "references": m.manifests.iter().map(|c| json!({ "child_digest": c.to_string() })).collect::<Vec<_>>(),
        });
        if let Some(platform) = self.platform(m)? {
            out["extra_attrs"] = platform;
        }
        Ok(out)
    }

    /// An image's OS and architecture, from its config blob (small; read only when it is an
    /// image config by media type).
    fn platform(&self, m: &ManifestRecord) -> Result<Option<Value>> {
        let image = m.artifact_type.as_deref().is_none_or(|t| {
            t == wharf_types::oci::MEDIA_OCI_CONFIG || t == "application/vnd.docker.container.image.v1+json"
        });
        let Some(config) = m.blobs.first().filter(|_| image && m.manifests.is_empty()) else {
            return Ok(None);
        };
        let Ok(Some((reader, size))) = self.reg.store.open(config, 0) else {
            return Ok(None);
        };
        if size > 1 << 20 {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        if std::io::Read::read_to_end(&mut std::io::Read::take(reader, 1 << 20), &mut bytes).is_err()
            || Digest::of(&bytes) != *config
        {
            return Ok(None);
        }
        let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
            return Ok(None);
        };
        Ok(Some(json!({ "architecture": v["architecture"], "os": v["os"] })))
    }

    fn list_artifacts(&self, p: &str, r: &str) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::Artifact, Action::List)?;
        let repo = Call::repo_name(&project, r)?;
        let tags = self.meta().repo_tags(&repo)?;
        let mut manifests = self.meta().repo_manifests(&repo)?;
        // Harbor lists the last pushed first.
        manifests.sort_by(|a, b| b.1.created.cmp(&a.1.created).then(a.0.to_string().cmp(&b.0.to_string())));
        let mut items = Vec::new();
        for (d, m) in &manifests {
            items.push(self.artifact_json(&project, &repo, d, m, &tags)?);
        }
        self.paged(&format!("/api/v2.0/projects/{}/repositories/{r}/artifacts", project.name), items)
    }

    fn get_artifact(&self, p: &str, r: &str, a: &str) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::Artifact, Action::Read)?;
        let repo = Call::repo_name(&project, r)?;
        let d = self.artifact_digest(&repo, a)?;
        let m = self.meta().manifest(&repo, &d)?.ok_or_else(|| not_found(format!("artifact {repo}@{d} not found")))?;
        let tags = self.meta().repo_tags(&repo)?;
        Ok(Reply::new(200).json(self.artifact_json(&project, &repo, &d, &m, &tags)?))
    }

    fn delete_artifact(&self, p: &str, r: &str, a: &str) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::Artifact, Action::Delete)?;
        let repo = Call::repo_name(&project, r)?;
        let d = self.artifact_digest(&repo, a)?;
        for (t, _) in self.meta().repo_tags(&repo)?.into_iter().filter(|(_, to)| *to == d) {
            self.refuse_immutable(&repo, &t)?;
        }
        if !self.meta().delete_manifest(&repo, &d)? {
            return Err(not_found(format!("artifact {repo}@{d} not found")));
        }
        self.audit(Some(&project), "artifact", format!("{repo}@{d}"), "delete");
        Ok(Reply::new(200))
    }

    fn list_tags(&self, p: &str, r: &str, a: &str) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::Tag, Action::List)?;
        let repo = Call::repo_name(&project, r)?;
        let d = self.artifact_digest(&repo, a)?;
        let m = self.meta().manifest(&repo, &d)?.ok_or_else(|| not_found(format!("artifact {repo}@{d} not found")))?;
        let items: Vec<Value> = self
            .meta()
            .repo_tags(&repo)?
            .into_iter()
            .filter(|(_, t)| *t == d)
            .map(|(name, _)| json!({ "name": name, "push_time": time(m.created), "immutable": self.immutable(&repo, &name) }))
            .collect();
        self.paged(&format!("/api/v2.0/projects/{}/repositories/{r}/artifacts/{a}/tags", project.name), items)
    }

    fn create_tag(&self, p: &str, r: &str, a: &str, body: &Value) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::Tag, Action::Create)?;
        let repo = Call::repo_name(&project, r)?;
        let d = self.artifact_digest(&repo, a)?;
        let tag = opt_str(body, "name")?.ok_or_else(|| bad("name is required"))?;
        if !crate::names::valid_tag(tag) {
            return Err(bad(format!("tag {tag:?} is invalid: [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")));
        }
        if self.meta().tag(&repo, tag)?.is_some() {
            return Err(HarborError::new(409, format!("tag {tag} already exists in {repo}")));
        }
        let m = self.meta().manifest(&repo, &d)?.ok_or_else(|| not_found(format!("artifact {repo}@{d} not found")))?;
        match self.meta().put_manifest(&repo, &d, Some(tag), &m)? {
            Ok(()) => {
                self.audit(Some(&project), "tag", format!("{repo}:{tag}"), "create");
                Ok(Reply::new(201))
            }
            Err(missing) => Err(HarborError::new(412, format!("artifact {repo}@{d} is incomplete: {missing:?}"))),
        }
    }

    fn delete_tag(&self, p: &str, r: &str, a: &str, t: &str) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::Tag, Action::Delete)?;
        let repo = Call::repo_name(&project, r)?;
        let d = self.artifact_digest(&repo, a)?;
        if self.meta().tag(&repo, t)? != Some(d.clone()) {
            return Err(not_found(format!("tag {t} of artifact {repo}@{d} not found")));
        }
        self.refuse_immutable(&repo, t)?;
        self.meta().delete_tag(&repo, t)?;
        self.audit(Some(&project), "tag", format!("{repo}:{t}"), "delete");
        Ok(Reply::new(200))
    }

    /// Whether an immutability rule protects `tag` of `repo` (a failed lookup shows as not).
    fn immutable(&self, repo: &str, tag: &str) -> bool {
        super::immutable::protected(self.meta(), repo, tag).ok().flatten().is_some()
    }

    /// Harbor answers an attempt on an immutable tag with 412.
    fn refuse_immutable(&self, repo: &str, tag: &str) -> Result<()> {
        match super::immutable::protected(self.meta(), repo, tag)? {
            None => Ok(()),
            Some(why) => Err(HarborError::new(412, why)),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Tag immutability rules

    fn rule_json(id: u64, r: &ImmutableRule) -> Value {
        json!({
            "id": id,
            "priority": r.priority,
            "disabled": r.disabled,
            "action": "immutable",
            "template": "immutable_template",
            "params": {},
            "tag_selectors": [{
                "kind": "doublestar",
                "decoration": if r.tag_excludes { "excludes" } else { "matches" },
                "pattern": r.tag_pattern,
            }],
            "scope_selectors": { "repository": [{
                "kind": "doublestar",
                "decoration": if r.repo_excludes { "repoExcludes" } else { "repoMatches" },
                "pattern": r.repo_pattern,
            }]},
        })
    }

    /// A rule from Harbor's body: one tag selector and one repository selector, doublestar.
    fn rule_of(body: &Value, old: Option<&ImmutableRule>) -> Result<ImmutableRule> {
        let selector = |v: Option<&Value>, what: &str, plain: &str, negated: &str| -> Result<Option<(String, bool)>> {
            let Some(list) = v.filter(|v| !v.is_null()) else {
                return Ok(None);
            };
            let (pattern, excludes, _) = policies::selector(Some(list), what, plain, negated)?;
            Ok(Some((pattern, excludes)))
        };
        let tag = selector(body.get("tag_selectors"), "tag_selectors", "matches", "excludes")?;
        let repo = selector(
            body.get("scope_selectors").and_then(|s| s.get("repository")),
            "scope_selectors.repository",
            "repoMatches",
            "repoExcludes",
        )?;
        let (tag, repo) = match old {
            Some(o) => (
                tag.unwrap_or((o.tag_pattern.clone(), o.tag_excludes)),
                repo.unwrap_or((o.repo_pattern.clone(), o.repo_excludes)),
            ),
            None => (tag.ok_or_else(|| bad("tag_selectors is required"))?, repo.unwrap_or(("**".to_string(), false))),
        };
        Ok(ImmutableRule {
            disabled: opt_bool(body, "disabled")?.or(old.map(|o| o.disabled)).unwrap_or(false),
            priority: opt_int(body, "priority")?.or(old.map(|o| o.priority)).unwrap_or(0),
            repo_pattern: repo.0,
            repo_excludes: repo.1,
            tag_pattern: tag.0,
            tag_excludes: tag.1,
        })
    }

    fn list_rules(&self, p: &str) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::ImmutableTag, Action::List)?;
        let items: Vec<Value> =
            self.meta().immutable_rules(&project.name)?.iter().map(|(id, r)| Call::rule_json(*id, r)).collect();
        self.paged(&format!("/api/v2.0/projects/{}/immutabletagrules", project.name), items)
    }

    fn create_rule(&self, p: &str, body: &Value) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::ImmutableTag, Action::Create)?;
        let rule = Call::rule_of(body, None)?;
        let id = self
            .meta()
            .create_immutable_rule(&project.name, &rule)?
            .ok_or_else(|| not_found(format!("project {} is gone", project.name)))?;
        self.audit(Some(&project), "immutable_rule", format!("{}/immutabletagrules/{id}", project.name), "create");
        Ok(Reply::new(201).header("Location", format!("/api/v2.0/projects/{}/immutabletagrules/{id}", project.id)))
    }

    fn find_rule(&self, project: &Project, id: &str) -> Result<(u64, ImmutableRule)> {
        let n: u64 = id.parse().map_err(|_| bad(format!("rule id {id:?} is not a number")))?;
        self.meta()
            .immutable_rules(&project.name)?
            .into_iter()
            .find(|(i, _)| *i == n)
            .ok_or_else(|| not_found(format!("immutability rule {n} of project {} not found", project.name)))
    }

    fn update_rule(&self, p: &str, id: &str, body: &Value) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::ImmutableTag, Action::Update)?;
        let (n, old) = self.find_rule(&project, id)?;
        let rule = Call::rule_of(body, Some(&old))?;
        self.meta().update_immutable_rule(&project.name, n, &rule)?;
        self.audit(Some(&project), "immutable_rule", format!("{}/immutabletagrules/{n}", project.name), "update");
        Ok(Reply::new(200))
    }

    fn delete_rule(&self, p: &str, id: &str) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::ImmutableTag, Action::Delete)?;
        let (n, _) = self.find_rule(&project, id)?;
        self.meta().delete_immutable_rule(&project.name, n)?;
        self.audit(Some(&project), "immutable_rule", format!("{}/immutabletagrules/{n}", project.name), "delete");
        Ok(Reply::new(200))
    }

    // -----------------------------------------------------------------------------------------
    // Users

    fn user_json(name: &str, u: &UserRecord) -> Value {
        json!({
            "user_id": u.id,
            "username": name,
            "email": u.email,
            "realname": u.realname,
            "comment": "",
            "sysadmin_flag": u.admin,
            "admin_role_in_auth": false,
            "creation_time": time(u.created),
            "update_time": time(u.created),
        })
    }

    fn find_user(&self, id: &str) -> Result<(String, UserRecord)> {
        let n: u64 = id.parse().map_err(|_| bad(format!("user id {id:?} is not a number")))?;
        self.meta()
            .users()?
            .into_iter()
            .find(|(_, u)| u.id == n)
            .ok_or_else(|| not_found(format!("user {n} not found")))
    }

    /// The user `id` when the caller is that user or a system admin.
    fn own_or_admin(&self, id: &str) -> Result<(String, UserRecord)> {
        let me = self.logged_in_user()?.to_string();
        let (name, u) = self.find_user(id)?;
        if name != me && !self.sysadmin() {
            return Err(HarborError::new(403, format!("user {me:?} may not change user {name:?}: system admins only")));
        }
        Ok((name, u))
    }

    fn require_sysadmin(&self) -> Result<()> {
        let me = self.logged_in_user()?;
        if self.sysadmin() {
            Ok(())
        } else {
            Err(HarborError::new(403, format!("user {me:?} is not a system admin")))
        }
    }

    fn current_user(&self) -> Result<Reply> {
        let me = self.logged_in_user()?;
        let u = self.meta().user(me)?.ok_or_else(|| not_found(format!("user {me} not found")))?;
        Ok(Reply::new(200).json(Call::user_json(me, &u)))
    }

    fn list_users(&self) -> Result<Reply> {
        self.require_sysadmin()?;
        let mut filters = parse_q(self.query.get("q").map(String::as_str).unwrap_or(""));
        if let Some(n) = self.query.get("username") {
            filters.push(("username".into(), true, n.clone()));
        }
        let items: Vec<Value> = self
            .meta()
            .users()?
            .iter()
            .filter(|(n, u)| {
                filters.iter().all(|(k, fuzzy, v)| match k.as_str() {
                    "username" => matches(n, *fuzzy, v),
                    "email" => matches(&u.email, *fuzzy, v),
                    _ => true,
                })
            })
            .map(|(n, u)| Call::user_json(n, u))
            .collect();
        self.paged("/api/v2.0/users", items)
    }

    fn search_users(&self) -> Result<Reply> {
        self.logged_in_user()?;
        let want = self.query.get("username").ok_or_else(|| bad("users/search needs ?username="))?;
        let items: Vec<Value> = self
            .meta()
            .users()?
            .iter()
            .filter(|(n, _)| n.contains(want.as_str()))
            .map(|(n, u)| json!({ "user_id": u.id, "username": n }))
            .collect();
        self.paged("/api/v2.0/users/search", items)
    }

    fn create_user(&self, body: &Value) -> Result<Reply> {
        match &self.subject {
            Subject::Anonymous if self.auth.self_registration => {}
            Subject::Anonymous => return Err(HarborError::new(401, "sign-up is off: a system admin creates users")),
            _ => self.require_sysadmin()?,
        }
        let name = opt_str(body, "username")?.ok_or_else(|| bad("username is required"))?;
        if !super::valid_user_name(name) {
            return Err(bad(format!("username {name:?} is invalid")));
        }
        let password = opt_str(body, "password")?.ok_or_else(|| bad("password is required"))?;
        super::check_password_policy(password).map_err(bad)?;
        let mut record = auth::hash_password(password).map_err(|e| HarborError::new(500, e.to_string()))?;
        record.email = opt_str(body, "email")?.unwrap_or_default().to_string();
        record.realname = opt_str(body, "realname")?.unwrap_or_default().to_string();
        if !self.meta().create_user(name, &record)? {
            return Err(HarborError::new(409, format!("user {name} already exists")));
        }
        let id = self.meta().user(name)?.map(|u| u.id).unwrap_or(0);
        self.audit(None, "user", name, "create");
        Ok(Reply::new(201).header("Location", format!("/api/v2.0/users/{id}")))
    }

    fn get_user(&self, id: &str) -> Result<Reply> {
        let (name, u) = self.own_or_admin(id)?;
        Ok(Reply::new(200).json(Call::user_json(&name, &u)))
    }

    fn update_user(&self, id: &str, body: &Value) -> Result<Reply> {
        let (name, mut u) = self.own_or_admin(id)?;
        if let Some(e) = opt_str(body, "email")? {
            u.email = e.to_string();
        }
        if let Some(r) = opt_str(body, "realname")? {
            u.realname = r.to_string();
        }
        self.meta().update_user(&name, &u)?;
        self.audit(None, "user", &name, "update");
        Ok(Reply::new(200))
    }

    fn delete_user(&self, id: &str) -> Result<Reply> {
        self.require_sysadmin()?;
        let (name, _) = self.find_user(id)?;
        if name == self.subject.name() {
            return Err(HarborError::new(403, format!("user {name:?} may not delete itself")));
        }
        self.meta().delete_user(&name)?;
        self.audit(None, "user", &name, "delete");
        Ok(Reply::new(200))
    }

    fn set_password(&self, id: &str, body: &Value) -> Result<Reply> {
        let me = self.logged_in_user()?.to_string();
        let (name, u) = self.own_or_admin(id)?;
        let new = opt_str(body, "new_password")?.ok_or_else(|| bad("new_password is required"))?;
        // Users changing their own password prove they know it; admins reset others'.
        if name == me || !self.sysadmin() {
            let old = opt_str(body, "old_password")?.ok_or_else(|| bad("old_password is required"))?;
            if !auth::verify_password(&u, old) {
                return Err(HarborError::new(403, "old_password is wrong"));
            }
        }
        super::check_password_policy(new).map_err(bad)?;
        if auth::verify_password(&u, new) {
            return Err(bad("the new password is the same as the old one"));
        }
        let fresh = auth::hash_password(new).map_err(|e| HarborError::new(500, e.to_string()))?;
        let record = UserRecord { salt: fresh.salt, hash: fresh.hash, iterations: fresh.iterations, ..u };
        self.meta().update_user(&name, &record)?;
        self.audit(None, "user", &name, "update");
        Ok(Reply::new(200))
    }

    fn set_sysadmin(&self, id: &str, body: &Value) -> Result<Reply> {
        self.require_sysadmin()?;
        let (name, u) = self.find_user(id)?;
        let flag = opt_bool(body, "sysadmin_flag")?.ok_or_else(|| bad("sysadmin_flag is required"))?;
        if name == self.subject.name() && !flag {
            return Err(HarborError::new(403, format!("user {name:?} may not take its own admin flag")));
        }
        self.meta().update_user(&name, &UserRecord { admin: flag, ..u })?;
        self.audit(None, "user", &name, "update");
        Ok(Reply::new(200))
    }

    // -----------------------------------------------------------------------------------------
    // Robots

    fn robot_json(&self, r: &Robot, project_id: u64) -> Value {
        let access: Vec<Value> = r
            .record
            .permissions
            .iter()
            .map(|p| json!({ "resource": "repository", "action": p.name(), "effect": "allow" }))
            .collect();
        let duration = match r.record.expires_at {
            None => -1,
            Some(t) => (t.saturating_sub(r.record.created) / 86400) as i64,
        };
        json!({
            "id": r.id,
            "name": r.name,
            "description": r.record.description,
            "secret": "",
            "level": "project",
            "duration": duration,
            "editable": true,
            "disable": r.record.disabled,
            "expires_at": r.record.expires_at.map(|t| t as i64).unwrap_or(-1),
            "creation_time": time(r.record.created),
            "update_time": time(r.record.updated),
            "permissions": [{ "kind": "project", "namespace": r.record.project, "access": access }],
            "project_id": project_id,
        })
    }

    fn find_robot(&self, id: &str) -> Result<Robot> {
        let n: u64 = id.parse().map_err(|_| bad(format!("robot id {id:?} is not a number")))?;
        self.meta().robots()?.into_iter().find(|r| r.id == n).ok_or_else(|| not_found(format!("robot {n} not found")))
    }

    /// The project and permissions of a create or update body: one `kind: project` entry
    /// whose accesses are repository pull/push and (repository, artifact or tag) delete.
    fn robot_spec(body: &Value) -> Result<(String, Vec<RobotPermission>)> {
        match opt_str(body, "level")? {
            None | Some("project") => {}
            Some(l) => return Err(bad(format!("robot level {l:?} is not supported: project robots only"))),
        }
        let perms = body.get("permissions").and_then(Value::as_array).ok_or_else(|| bad("permissions is required"))?;
        let [one] = perms.as_slice() else {
            return Err(bad("a project robot has exactly one permissions entry, for its project"));
        };
        if opt_str(one, "kind")?.unwrap_or("project") != "project" {
            return Err(bad("permissions[0].kind must be project"));
        }
        let project = opt_str(one, "namespace")?.ok_or_else(|| bad("permissions[0].namespace is required"))?;
        let mut out = Vec::new();
        for a in one.get("access").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
            let resource = opt_str(a, "resource")?.unwrap_or("");
            let action = opt_str(a, "action")?.unwrap_or("");
            let p = match (resource, action) {
                ("repository", "pull") => RobotPermission::Pull,
                ("repository", "push") => RobotPermission::Push,
                ("repository" | "artifact" | "tag", "delete") => RobotPermission::Delete,
                _ => {
                    return Err(bad(format!(
                        "robot access {resource}:{action} is not supported: repository:pull, repository:push, \
                         artifact:delete"
                    )))
                }
            };
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out.sort();
        Ok((project.to_string(), out))
    }

    /// `duration` in days, -1 (or 0) for never, as an expiry time from `from`.
    fn expiry(body: &Value, from: u64) -> Result<Option<u64>> {
        match opt_int(body, "duration")? {
            None | Some(-1) | Some(0) => Ok(None),
            Some(d) if d > 0 => Ok(Some(from.saturating_add((d as u64).saturating_mul(86400)))),
            Some(d) => Err(bad(format!("duration {d} is invalid: days, or -1 for never"))),
        }
    }

    fn create_robot(&self, body: &Value) -> Result<Reply> {
        let (project_name, permissions) = Call::robot_spec(body)?;
        let (project, _) = self.require(&project_name, Resource::Robot, Action::Create)?;
        let audited = project.clone();
        let name = opt_str(body, "name")?.ok_or_else(|| bad("name is required"))?;
        if !super::valid_robot_name(name) {
            return Err(bad(format!(
                "robot name {name:?} is invalid: lower-case letters and digits, separated by . _ or -"
            )));
        }
        let full = format!("{}{}+{name}", super::ROBOT_PREFIX, project.name);
        let secret = random_hex(16).map_err(|e| HarborError::new(500, e.to_string()))?;
        let salt = random_hex(16).map_err(|e| HarborError::new(500, e.to_string()))?;
        let t = now();
        let record = RobotRecord {
            project: project.name.clone(),
            description: opt_str(body, "description")?.unwrap_or_default().to_string(),
            hash: auth::robot_secret_hash(&salt, &secret),
            salt,
            expires_at: Call::expiry(body, t)?,
            disabled: opt_bool(body, "disable")?.unwrap_or(false),
            permissions,
            created: t,
            updated: t,
        };
        let Some(id) = self.meta().create_robot(&full, &record)? else {
            return Err(HarborError::new(409, format!("robot {full} already exists")));
        };
        self.audit(Some(&audited), "robot", &full, "create");
        // The secret is shown here once; only its hash is kept.
        let out = json!({
            "id": id,
            "name": full,
            "secret": secret,
            "creation_time": time(t),
            "expires_at": record.expires_at.map(|t| t as i64).unwrap_or(-1),
        });
        Ok(Reply::new(201).header("Location", format!("/api/v2.0/robots/{id}")).json(out))
    }

    fn list_robots(&self) -> Result<Reply> {
        let filters = parse_q(self.query.get("q").map(String::as_str).unwrap_or(""));
        let want_project =
            filters.iter().find(|(k, _, _)| k.eq_ignore_ascii_case("ProjectID")).map(|(_, _, v)| v.clone());
        let projects: HashMap<String, u64> = self.meta().projects()?.into_iter().map(|p| (p.name, p.id)).collect();
        let mut items = Vec::new();
        for r in self.meta().robots()? {
            let pid = projects.get(&r.record.project).copied().unwrap_or(0);
            if want_project.as_ref().is_some_and(|w| *w != pid.to_string()) {
                continue;
            }
            if self.access(&r.record.project)?.allows(Resource::Robot, Action::List) {
                items.push(self.robot_json(&r, pid));
            }
        }
        if self.subject == Subject::Anonymous && items.is_empty() {
            return Err(HarborError::new(401, "authentication required: log in first"));
        }
        self.paged("/api/v2.0/robots", items)
    }

    fn project_robots(&self, p: &str) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::Robot, Action::List)?;
        let items: Vec<Value> = self
            .meta()
            .robots()?
            .iter()
            .filter(|r| r.record.project == project.name)
            .map(|r| self.robot_json(r, project.id))
            .collect();
        self.paged(&format!("/api/v2.0/projects/{}/robots", project.name), items)
    }

    fn get_robot(&self, id: &str) -> Result<Reply> {
        let r = self.find_robot(id)?;
        let (project, _) = self.require(&r.record.project, Resource::Robot, Action::Read)?;
        Ok(Reply::new(200).json(self.robot_json(&r, project.id)))
    }

    fn update_robot(&self, id: &str, body: &Value) -> Result<Reply> {
        let r = self.find_robot(id)?;
        let (project, _) = self.require(&r.record.project, Resource::Robot, Action::Update)?;
        let mut record = r.record.clone();
        if body.get("permissions").is_some() {
            let (ns, permissions) = Call::robot_spec(body)?;
            if ns != project.name {
                return Err(bad(format!("robot {} belongs to project {}, not {ns}", r.name, project.name)));
            }
            record.permissions = permissions;
        }
        if let Some(d) = opt_str(body, "description")? {
            record.description = d.to_string();
        }
        if let Some(off) = opt_bool(body, "disable")? {
            record.disabled = off;
        }
        if body.get("duration").is_some() {
            record.expires_at = Call::expiry(body, record.created)?;
        }
        record.updated = now();
        self.meta().update_robot(&r.name, &record)?;
        self.audit(Some(&project), "robot", &r.name, "update");
        Ok(Reply::new(200))
    }

    /// A new secret (`{"secret": ""}` or none: a random one; else the one given, if it passes
    /// the password policy), shown once.
    fn refresh_robot(&self, id: &str, body: &Value) -> Result<Reply> {
        let r = self.find_robot(id)?;
        let (project, _) = self.require(&r.record.project, Resource::Robot, Action::Update)?;
        let secret = match opt_str(body, "secret")? {
            None | Some("") => random_hex(16).map_err(|e| HarborError::new(500, e.to_string()))?,
            Some(s) => {
                super::check_password_policy(s).map_err(|e| bad(e.replace("password", "secret")))?;
                s.to_string()
            }
        };
        let salt = random_hex(16).map_err(|e| HarborError::new(500, e.to_string()))?;
        let record =
            RobotRecord { hash: auth::robot_secret_hash(&salt, &secret), salt, updated: now(), ..r.record.clone() };
        self.meta().update_robot(&r.name, &record)?;
        self.audit(Some(&project), "robot", &r.name, "update");
        Ok(Reply::new(200).json(json!({ "secret": secret })))
    }

    fn delete_robot(&self, id: &str) -> Result<Reply> {
        let r = self.find_robot(id)?;
        let (project, _) = self.require(&r.record.project, Resource::Robot, Action::Delete)?;
        self.meta().delete_robot(&r.name)?;
        self.audit(Some(&project), "robot", &r.name, "delete");
        Ok(Reply::new(200))
    }

    // -----------------------------------------------------------------------------------------
    // System

    fn systeminfo(&self) -> Result<Reply> {
        Ok(Reply::new(200).json(json!({
            "auth_mode": "db_auth",
            "primary_auth_mode": false,
            "self_registration": self.auth.self_registration,
            "project_creation_restriction": if self.auth.project_creation_admin_only { "adminonly" } else { "everyone" },
            "registry_url": self.host,
            "external_url": format!("{}://{}", if self.reg.https { "https" } else { "http" }, self.host),
            "harbor_version": format!("wharf-registry {}", env!("CARGO_PKG_VERSION")),
            "has_ca_root": false,
            "read_only": false,
            "with_chartmuseum": false,
            "notification_enable": false,
        })))
    }

    fn health(&self) -> Result<Reply> {
        let db = match self.meta().project(super::LIBRARY) {
            Ok(_) => json!({ "name": "database", "status": "healthy" }),
            Err(e) => json!({ "name": "database", "status": "unhealthy", "error": e.to_string() }),
        };
        let healthy = db["status"] == "healthy";
        let body = json!({
            "status": if healthy { "healthy" } else { "unhealthy" },
            "components": [
                { "name": "core", "status": "healthy" },
                db,
                { "name": "registry", "status": "healthy" },
            ],
        });
        Ok(Reply::new(if healthy { 200 } else { 503 }).json(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_bodies() {
        assert_eq!(
            parse_q("name=~lib,public=true"),
            vec![("name".into(), true, "lib".into()), ("public".into(), false, "true".into())]
        );
        assert!(parse_q("").is_empty());
        assert_eq!(public_of(&json!({"metadata": {"public": "true"}})).unwrap(), Some(true));
        assert_eq!(public_of(&json!({"public": false})).unwrap(), Some(false));
        assert_eq!(public_of(&json!({})).unwrap(), None);
        assert_eq!(public_of(&json!({"metadata": {"public": "yes"}})).unwrap_err().status, 400);
        let spec = json!({"name": "ci", "level": "project", "permissions": [{"kind": "project", "namespace": "p",
            "access": [{"resource": "repository", "action": "push"}, {"resource": "repository", "action": "pull"},
                       {"resource": "artifact", "action": "delete"}]}]});
        assert_eq!(
            Call::robot_spec(&spec).unwrap(),
            ("p".to_string(), vec![RobotPermission::Pull, RobotPermission::Push, RobotPermission::Delete])
        );
        let system = json!({"level": "system", "permissions": []});
        assert!(Call::robot_spec(&system).unwrap_err().message.contains("project robots only"));
        let odd = json!({"permissions": [{"namespace": "p", "access": [{"resource": "member", "action": "create"}]}]});
        assert!(Call::robot_spec(&odd).unwrap_err().message.contains("member:create is not supported"));
        assert_eq!(Call::expiry(&json!({"duration": 2}), 100).unwrap(), Some(100 + 2 * 86400));
        assert_eq!(Call::expiry(&json!({"duration": -1}), 100).unwrap(), None);
        assert!(Call::expiry(&json!({"duration": -5}), 100).is_err());
    }
}
