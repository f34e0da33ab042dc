//! `POST /build`: the context tar is streamed into a private directory, the build runs in the
//! builder (`wharf-build`), and its events go back as the classic builder's JSON lines.
//! `POST /build/prune` forgets the build cache.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use wharf_build::context::Context;
use wharf_build::executor::{self, BuildError, BuildEvent, BuildRequest};
use wharf_types::ImageRef;

use crate::archive::body_reader;
use crate::body::Body;
use crate::error::ApiError;
use crate::images::{progress_json, registry_auth};
use crate::router::Result;
use crate::router::{json as json_response, Ctx};

/// Removes the build's scratch directory, whatever way the build ends.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::warn!("build: remove {}: {e}", self.0.display());
            }
        }
    }
}

/// The context the daemon received last (while it is worth comparing the next one with).
fn last_context() -> &'static std::sync::Mutex<Option<Arc<Context>>> {
    static LAST: std::sync::OnceLock<std::sync::Mutex<Option<Arc<Context>>>> = std::sync::OnceLock::new();
    LAST.get_or_init(|| std::sync::Mutex::new(None))
}

/// Builds that were running when the daemon stopped left their contexts: removed at start.
pub fn clear_scratch(engine: &wharf_engine::Engine) {
    let root = engine.config().data_root.join("build");
    if let Err(e) = std::fs::remove_dir_all(&root) {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("build: clear {}: {e}", root.display());
        }
    }
}

fn parse_request(ctx: &Ctx, req: &Request<Incoming>) -> Result<BuildRequest> {
    let q = &ctx.query;
    let mut tags = Vec::new();
    for t in q.get_all("t").into_iter().filter(|t| !t.is_empty()) {
        let r = ImageRef::parse(&t).map_err(|e| ApiError::bad_request(format!("invalid tag {t:?}: {e}")))?;
        if r.digest.is_some() {
            return Err(ApiError::bad_request(format!("invalid tag {t:?}: a tag cannot contain a digest")));
        }
        tags.push(if r.tag.is_none() { r.with_tag("latest") } else { r });
    }
    let map = |key: &str| -> Result<BTreeMap<String, Option<String>>> {
        match q.get(key).filter(|s| !s.is_empty()) {
            None => Ok(BTreeMap::new()),
            Some(raw) => {
                serde_json::from_str(raw).map_err(|e| ApiError::bad_request(format!("invalid value for {key}: {e}")))
            }
        }
    };
    let build_args = map("buildargs")?;
    let labels = map("labels")?.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect();
    let int = |key: &str| -> Result<i64> { Ok(q.int(key)?.unwrap_or(0)) };
    // `--security-opt`: dockerd's classic builder takes them only on Windows (credential
    // specs), and refuses any elsewhere before it reads the context; in the words of the
    // dockerd the tests compare with (20.10; dockerd 28 says "security options are not
    // supported on linux").
    if !q.get_all("securityopt").is_empty() {
        return Err(ApiError::bad_request(
            "The daemon on this platform does not support setting security options on build",
        ));
    }
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        let host = wharf_types::oci::Platform::host();
        let wanted = wharf_types::oci::Platform::parse(p)
            .ok_or_else(|| ApiError::bad_request(format!("invalid platform {p:?}")))?;
        if wanted.os != host.os || wanted.architecture != host.architecture {
            return Err(ApiError::bad_request(format!(
                "platform {p:?} is not supported: this builder builds for {}/{}",
                host.os, host.architecture
            )));
        }
    }
    let target = q.get("target").filter(|t| !t.is_empty()).map(|t| t.to_ascii_lowercase());
    Ok(BuildRequest {
        scratch: std::path::PathBuf::new(),
        dockerfile: q.get("dockerfile").unwrap_or("").to_string(),
        tags,
        build_args,
        labels,
        target,
        no_cache: q.bool("nocache"),
        pull: q.bool("pull"),
        remove: q.get("rm").is_none() || q.bool("rm"),
        force_remove: q.bool("forcerm"),
        quiet: q.bool("q"),
        network_mode: q.get("networkmode").filter(|n| !n.is_empty()).unwrap_or("default").to_string(),
        memory: int("memory")?,
        memory_swap: int("memswap")?,
        cpu_shares: int("cpushares")?,
        cpu_period: int("cpuperiod")?,
        cpu_quota: int("cpuquota")?,
        auth: registry_auth(req),
        auths: registry_config(req)?,
        cpuset_cpus: q.get("cpusetcpus").unwrap_or("").to_string(),
        cpuset_mems: q.get("cpusetmems").unwrap_or("").to_string(),
        cgroup_parent: q.get("cgroupparent").unwrap_or("").to_string(),
        max_input: ctx.engine.config().max_build_context,
        cache_from: match q.get("cachefrom").filter(|c| !c.is_empty()) {
            None => Vec::new(),
            Some(raw) => serde_json::from_str(raw)
                .map_err(|e| ApiError::bad_request(format!("invalid value for cachefrom: {e}")))?,
        },
        extra_hosts: q.get_all("extrahosts").into_iter().filter(|h| !h.is_empty()).collect(),
        shm_size: int("shmsize")?,
        ulimits: match q.get("ulimits").filter(|u| !u.is_empty()) {
            None => Vec::new(),
            Some(raw) => {
                #[derive(serde::Deserialize)]
                #[serde(rename_all = "PascalCase")]
                struct U {
                    name: String,
                    soft: i64,
                    hard: i64,
                }
                let list: Vec<U> = serde_json::from_str(raw)
                    .map_err(|e| ApiError::bad_request(format!("invalid value for ulimits: {e}")))?;
                list.into_iter().map(|u| wharf_engine::Ulimit { name: u.name, soft: u.soft, hard: u.hard }).collect()
            }
        },
    })
}

/// `X-Registry-Config`: base64 of a JSON object of credentials by registry, as the docker CLI
/// and docker-py send it with a build.
fn registry_config(req: &Request<Incoming>) -> Result<BTreeMap<String, wharf_engine::AuthConfig>> {
    use base64::Engine as _;
    let Some(raw) = req.headers().get("X-Registry-Config").and_then(|v| v.to_str().ok()).map(str::trim) else {
        return Ok(BTreeMap::new());
    };
    if raw.is_empty() {
        return Ok(BTreeMap::new());
    }
    let engines = [
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    let bytes = engines
        .iter()
        .find_map(|e| e.decode(raw).ok())
        .ok_or_else(|| ApiError::bad_request("invalid X-Registry-Config: not base64"))?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("invalid X-Registry-Config: {e}")))
}

fn line(v: Value) -> Bytes {
    Bytes::from(v.to_string() + "\r\n")
}

fn event_json(ev: &BuildEvent) -> Bytes {
    match ev {
        BuildEvent::Stream(s) => line(json!({ "stream": s })),
        // The classic builder sends RUN's stderr in the same stream, marked in red as dockerd
        // does; the CLI prints it as it is.
        BuildEvent::Stderr(s) => line(json!({ "stream": format!("\u{1b}[91m{s}\u{1b}[0m") })),
        BuildEvent::Pull(p) => Bytes::from(progress_json(p) + "\r\n"),
        BuildEvent::Aux(id) => line(json!({ "aux": { "ID": id.to_string() } })),
    }
}

fn error_line(msg: &str) -> Bytes {
    line(json!({ "errorDetail": { "message": msg }, "error": msg }))
}

/// `POST /build`.
pub async fn build(ctx: &Ctx, req: Request<Incoming>) -> Result<Response<Body>> {
    let mut request = match parse_request(ctx, &req) {
        Ok(r) => r,
        Err(e) => {
            crate::router::discard_unread(req.into_body()).await;
            return Err(e);
        }
    };
    let root = ctx.engine.config().data_root.join("build");
    if !root.exists() {
        // Root's only: contexts and stages unpacked here may hold setuid files.
        use std::os::unix::fs::DirBuilderExt;
        let _ = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&root);
    }
    let dir = root.join(format!("ctx-{}", wharf_types::digest::to_hex(&random_bytes())));
    std::fs::create_dir_all(&dir).map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("build: create {}: {e}", dir.display()))
    })?;
    let scratch = Scratch(dir.clone());
    // The context is kept as it arrives: one spool file and an index (never unpacked).
    let spool = dir.join("context.spool");
    let started = std::time::Instant::now();
    let remote = ctx.query.get("remote").filter(|r| !r.is_empty()).map(str::to_string);
    let limit = request.max_input;
    let received = match remote {
        // `remote=` a git URL: the daemon clones it, and the checkout is the context.
        Some(url) if wharf_build::git::is_git_url(&url) => {
            let checkout = dir.join("git");
            tokio::task::spawn_blocking(move || -> std::result::Result<Context, String> {
                let context_dir = wharf_build::git::clone(&url, &checkout)?;
                let context = Context::from_dir(&context_dir).map_err(|e| e.to_string())?;
                if context.size() > limit {
                    return Err(wharf_build::context::ContextError::TooLarge { limit }.to_string());
                }
                Ok(context)
            })
            .await
            .map(|r| r.map(Arc::new))
        }
        // `remote=URL`: a tarball is the context; any other file is the Dockerfile, alone.
        Some(url) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ApiError::bad_request(format!(
                    "remote {url:?} is not supported: give a git URL, or an http(s) URL of a tarball or a Dockerfile"
                )));
            }
            let download = dir.join("remote");
            let alone = dir.join("remote-context");
            tokio::task::spawn_blocking(move || -> std::result::Result<Context, String> {
                wharf_build::fetch::fetch(&url, &download, limit)?;
                if wharf_build::context::looks_like_archive(&download) {
                    let file = std::fs::File::open(&download).map_err(|e| e.to_string())?;
                    Context::receive(file, &spool, limit).map_err(|e| e.to_string())
                } else {
                    // Not an archive: the Dockerfile itself, alone in the context.
                    std::fs::create_dir_all(&alone).map_err(|e| e.to_string())?;
                    std::fs::rename(&download, alone.join("Dockerfile")).map_err(|e| e.to_string())?;
                    Context::from_dir(&alone).map_err(|e| e.to_string())
                }
            })
            .await
            .map(|r| r.map(Arc::new))
        }
        // The request body: received after the last body received, whose unchanged files it
        // then shares (a rebuild neither writes nor hashes them again).
        None => {
            let reader = body_reader(req);
            let previous = last_context().lock().ok().and_then(|last| last.clone());
            let received = tokio::task::spawn_blocking(move || match previous {
                Some(p) => Context::receive_after(reader, &spool, limit, &p).map_err(|e| e.to_string()),
                None => Context::receive(reader, &spool, limit).map_err(|e| e.to_string()),
            })
            .await
            .map(|r| r.map(Arc::new));
            if let (Ok(Ok(c)), Ok(mut last)) = (&received, last_context().lock()) {
                *last = c.worth_keeping().then(|| c.clone());
            }
            received
        }
    };
    let context = received
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::bad_request)?;
    log::debug!("build: context received in {:?}", started.elapsed());
    request.scratch = dir.clone();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let engine = ctx.engine.clone();
    let quiet = request.quiet;
    let run = tokio::spawn(async move {
        let built = executor::build(&engine, &request, context, tx).await;
        (built, scratch)
    });
    let (body_tx, body) = Body::channel();
    let build_id = ctx.query.get("buildid").filter(|b| !b.is_empty()).map(str::to_string);
    let cancelled = std::sync::Arc::new(tokio::sync::Notify::new());
    if let (Some(id), Ok(mut m)) = (&build_id, running().lock()) {
        m.insert(id.clone(), cancelled.clone());
    }
    tokio::spawn(async move {
        let mut client_gone = false;
        loop {
            tokio::select! {
                _ = cancelled.notified() => {
                    let _ = body_tx.send(error_line("the build was cancelled")).await;
                    client_gone = true;
                    break;
                }
                ev = rx.recv() => match ev {
                    Some(ev) => {
                        if body_tx.send(event_json(&ev)).await.is_err() {
                            client_gone = true;
                            break;
                        }
                    }
                    None => break,
                },
                _ = body_tx.closed() => {
                    client_gone = true;
                    break;
                }
            }
        }
        // Dropping the receiver tells the build that its client went away: it stops the
        // step's container, removes it and ends.
        drop(rx);
        let (result, scratch) = match run.await {
            Ok((built, scratch)) => (Ok(built), Some(scratch)),
            Err(e) => (Err(e), None),
        };
        if let (Some(id), Ok(mut m)) = (&build_id, running().lock()) {
            m.remove(id);
        }
        // The scratch (the context's spool: as large as the context) goes after the client
        // has its answer, off the async threads.
        let remove_scratch = move || {
            tokio::task::spawn_blocking(move || drop(scratch));
        };
        if client_gone {
            remove_scratch();
            return;
        }
        match result {
            Ok(Ok(id)) => {
                if quiet {
                    let _ = body_tx.send(line(json!({ "stream": format!("{id}\n") }))).await;
                }
            }
            Ok(Err(e)) => {
                let _ = body_tx.send(error_line(&build_message(&e))).await;
            }
            Err(e) => {
                let _ = body_tx.send(error_line(&format!("build: {e}"))).await;
            }
        }
        drop(body_tx);
        remove_scratch();
    });
    let mut r = Response::new(body);
    r.headers_mut().insert("Content-Type", hyper::header::HeaderValue::from_static("application/json"));
    Ok(r)
}

fn build_message(e: &BuildError) -> String {
    e.to_string()
}

fn random_bytes() -> [u8; 8] {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b
}

/// `POST /build/prune?all&keep-storage&filters`: forgets cached steps (and the images only
/// they kept).
pub async fn prune(ctx: &Ctx) -> Result<Response<Body>> {
    // The last context's spool is build cache too.
    if let Ok(mut last) = last_context().lock() {
        *last = None;
    }
    let q = &ctx.query;
    let mut opts = wharf_engine::CachePrune {
        all: q.bool("all"),
        keep_storage: q.int("keep-storage")?.unwrap_or(0).max(0) as u64,
        ..Default::default()
    };
    for (key, values) in q.filters()? {
        match key.as_str() {
            "until" => {
                for v in values {
                    opts.until = Some(until_time(&v).ok_or_else(|| {
                        ApiError::bad_request(format!("Invalid filter 'until={v}': a duration (24h) or a time stamp"))
                    })?);
                }
            }
            other => return Err(ApiError::bad_request(format!("Invalid filter '{other}'"))),
        }
    }
    let mut report = ctx.engine.build_cache_prune(&opts).await?;
    if opts.all && opts.until.is_none() && opts.keep_storage == 0 {
        // Everything unused goes, the RUN --mount=type=cache directories too (as Docker's).
        let data_root = ctx.engine.config().data_root.clone();
        report.space_reclaimed +=
            tokio::task::spawn_blocking(move || wharf_build::mounts::prune_cache_mounts(&data_root)).await.unwrap_or(0);
    }
    json_response(StatusCode::OK, &json!({ "CachesDeleted": report.deleted, "SpaceReclaimed": report.space_reclaimed }))
}

/// `until=24h` (that long ago), a Unix time stamp, or RFC 3339.
fn until_time(v: &str) -> Option<std::time::SystemTime> {
    if let Some(d) = wharf_types::time::parse_duration(v) {
        return std::time::SystemTime::now().checked_sub(d);
    }
    if let Ok(secs) = v.parse::<u64>() {
        return std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs));
    }
    wharf_types::time::parse_rfc3339(v)
}

/// The `BuildCache` list of `GET /system/df`.
pub fn df_entries(ctx: &Ctx) -> Result<Vec<Value>> {
    Ok(ctx
        .engine
        .build_cache_usage()?
        .into_iter()
        .map(|u| {
            json!({
                "ID": u.key.strip_prefix("sha256:").unwrap_or(&u.key).chars().take(25).collect::<String>(),
                "Parent": "",
                "Parents": [],
                "Type": "regular",
                "Description": u.entry.description,
                "InUse": u.in_use,
                "Shared": u.shared,
                "Size": u.size,
                "CreatedAt": u.entry.created,
                "LastUsedAt": u.entry.created,
                "UsageCount": 1,
            })
        })
        .collect())
}

/// Builds that can be cancelled by `POST /build/cancel?id=`, by the `buildid` they were given.
fn running() -> &'static std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Notify>>> {
    static RUNNING: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Notify>>>,
    > = std::sync::OnceLock::new();
    RUNNING.get_or_init(Default::default)
}

/// `POST /build/cancel?id=`: stops the build started with that `buildid`; like dockerd, an id
/// that is not running is not an error.
pub fn cancel(ctx: &Ctx) -> Result<Response<Body>> {
    let id = ctx.query.get("id").unwrap_or("");
    let found = running().lock().ok().and_then(|m| m.get(id).cloned());
    match found {
        Some(n) => n.notify_one(),
        None => log::debug!("build cancel: no running build {id:?}"),
    }
    Ok(crate::router::empty(StatusCode::OK))
}
