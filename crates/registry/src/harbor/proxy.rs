//! Harbor's proxy-cache projects: a project tied to an upstream registry endpoint (Harbor's
//! `/api/v2.0/registries`), through which a pull fetches what the registry has not got, keeps
//! it, and serves what it has when the upstream is down, slow or refusing.
//!
//! A pull of `<project>/<repo>:<tag>`:
//! - with a local copy, asks the upstream (HEAD, short time-outs) whether the tag still names
//!   it; the same digest, or any failure to get an answer (refused, 401, 429, 5xx, time-out),
//!   serves the local copy. Only an upstream that says "not found" makes it a 404.
//! - without one, fetches the manifest from the upstream, serves it, and caches it: its bytes
//!   are indexed as soon as every blob (or child manifest) it names is here. The blobs come as
//!   the client pulls them (each is written to storage while it streams to the client); a
//!   manifest still waiting after [`FILL_GRACE`] has its missing parts fetched by the registry
//!   itself, since a client that already had some layers never asks for them.
//! - Until it is indexed, a served manifest is kept in memory ([`ProxyCache::pending`]) and
//!   served from there when the upstream fails.
//!
//! Pushes and deletes through the registry protocol are refused in a proxy-cache project, as
//! Harbor refuses them.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use wharf_distribution::{AuthConfig, DistributionError, RegistryClient, RegistryConfig};
use wharf_types::{Digest, ImageRef};

use crate::meta::{now, ManifestRecord, Missing};
use crate::server::Registry;
use crate::store::BlobStore;
use wharf_types::Sha256Writer;

/// How long a manifest served from the upstream waits for the client to pull its blobs
/// before the registry fetches the missing ones itself.
pub const FILL_GRACE: Duration = Duration::from_secs(10);
/// Time-outs of the freshness check made when a local copy exists: a slow upstream must not
/// hold up a pull the cache can answer.
const CHECK_CONNECT: Duration = Duration::from_secs(2);
const CHECK_IDLE: Duration = Duration::from_secs(3);
/// Time-outs of a fetch the cache cannot answer itself.
const FETCH_CONNECT: Duration = Duration::from_secs(10);
const FETCH_IDLE: Duration = Duration::from_secs(30);
/// The registry kinds a proxy-cache project may use: they all speak the distribution API.
pub const KINDS: &[&str] = &["docker-registry", "docker-hub", "harbor"];

/// An upstream registry endpoint, as Harbor's `registries` API keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryRecord {
    /// Harbor's `type`: one of [`KINDS`].
    pub kind: String,
    pub url: String,
    #[serde(default)]
    pub description: String,
    /// Skip verification of the upstream's certificate.
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub access_key: Option<String>,
    /// Kept in the index as given (it must be sent to the upstream), never shown by the API.
    #[serde(default)]
    pub access_secret: Option<String>,
    pub created: u64,
    pub updated: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegistryEndpoint {
    pub id: u64,
    pub name: String,
    pub record: RegistryRecord,
}

/// Checks a registry endpoint's fields; the message names the bad one.
pub fn validate(name: &str, r: &RegistryRecord) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(format!("registry name {name:?} is invalid: 1 to 255 printable characters"));
    }
    if !KINDS.contains(&r.kind.as_str()) {
        return Err(format!("registry type {:?} is not supported: one of {}", r.kind, KINDS.join(", ")));
    }
    let url = wharf_http::Url::parse(&r.url).map_err(|e| format!("registry url {:?} is invalid: {e}", r.url))?;
    if url.host.is_empty() {
        return Err(format!("registry url {:?} has no host", r.url));
    }
    Ok(())
}

/// The API's view of an endpoint (the secret masked, as Harbor shows it).
pub fn to_json(e: &RegistryEndpoint, time: impl Fn(u64) -> String) -> Value {
    let r = &e.record;
    let credential = match &r.access_key {
        Some(key) => json!({"type": "basic", "access_key": key, "access_secret": "*****"}),
        None => json!({"type": "basic", "access_key": "", "access_secret": ""}),
    };
    json!({
        "id": e.id,
        "name": e.name,
        "type": r.kind,
        "url": r.url,
        "description": r.description,
        "insecure": r.insecure,
        "credential": credential,
        "status": "healthy",
        "creation_time": time(r.created),
        "update_time": time(r.updated),
    })
}

/// Whether an endpoint answers the registry API (`/v2/` with its credentials, a token
/// server's included); the reason when not.
pub fn ping(e: &RegistryEndpoint) -> Result<(), String> {
    let up = Upstream::new(e)?;
    let anonymous = AuthConfig::default();
    up.check.login(&up.registry, up.auth.as_ref().unwrap_or(&anonymous)).map(|_| ()).map_err(|e| e.to_string())
}

/// One upstream registry as the cache talks to it.
pub struct Upstream {
    /// `host[:port]` as an image reference names it (`docker.io` for Docker Hub).
    registry: String,
    hub: bool,
    auth: Option<AuthConfig>,
    check: RegistryClient,
    fetch: RegistryClient,
    pub name: String,
}

impl Upstream {
    fn new(e: &RegistryEndpoint) -> Result<Upstream, String> {
        let url = wharf_http::Url::parse(&e.record.url).map_err(|err| format!("registry {}: {err}", e.name))?;
        let hub = e.record.kind == "docker-hub";
        let registry = if hub { "docker.io".to_string() } else { url.host_port() };
        let mut cfg = RegistryConfig { user_agent: "wharf-registry".to_string(), ..RegistryConfig::default() };
        if e.record.insecure || url.scheme == wharf_http::Scheme::Http {
            cfg.insecure.push(registry.clone());
        }
        let client = |connect, idle| {
            RegistryClient::with_timeouts(cfg.clone(), connect, idle)
                .map_err(|err| format!("registry {}: {err}", e.name))
        };
        let auth = e.record.access_key.as_ref().map(|key| AuthConfig {
            username: Some(key.clone()),
            password: e.record.access_secret.clone(),
            ..AuthConfig::default()
        });
        Ok(Upstream {
            registry,
            hub,
            auth,
            check: client(CHECK_CONNECT, CHECK_IDLE)?,
            fetch: client(FETCH_CONNECT, FETCH_IDLE)?,
            name: e.name.clone(),
        })
    }

    /// The upstream's name for `repo` (the local name without its project): Docker Hub's
    /// official images are `library/<name>`.
    fn image(&self, repo: &str) -> ImageRef {
        let rest = repo.split_once('/').map(|(_, r)| r).unwrap_or(repo);
        let repository = if self.hub && !rest.contains('/') { format!("library/{rest}") } else { rest.to_string() };
        ImageRef { registry: self.registry.clone(), repository, tag: None, digest: None }
    }
}

/// A manifest served from the upstream and not yet indexed (something it names is missing).
struct Pending {
    tag: Option<String>,
    bytes: Bytes,
    record: ManifestRecord,
    /// Whether a filler thread already looks after it.
    filling: bool,
}

/// The proxy cache's state: a client per upstream, the served manifests waiting for their
/// blobs, and the blobs being fetched.
#[derive(Default)]
pub struct ProxyCache {
    /// By endpoint id, with the record it was made from (a changed endpoint gets a new one).
    upstreams: Mutex<HashMap<u64, (RegistryRecord, Arc<Upstream>)>>,
    pending: Mutex<HashMap<(String, Digest), Pending>>,
    fetching: Arc<Mutex<HashSet<Digest>>>,
}

/// What a proxied manifest request answers.
pub struct Served {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
}

/// A blob opened at the upstream, and the size it declares.
pub type UpstreamBlob = (Box<dyn Read + Send>, Option<u64>);

/// Why a proxied request could not be answered.
pub enum ProxyError {
    /// The upstream says it has no such thing.
    NotFound(String),
    /// The upstream failed and nothing is cached.
    Unavailable(String),
    Local(crate::error::ApiError),
}

impl From<crate::meta::MetaError> for ProxyError {
    fn from(e: crate::meta::MetaError) -> ProxyError {
        ProxyError::Local(e.into())
    }
}

impl From<io::Error> for ProxyError {
    fn from(e: io::Error) -> ProxyError {
        ProxyError::Local(e.into())
    }
}

fn upstream_error(up: &Upstream, what: &str, e: &DistributionError) -> ProxyError {
    match e.kind() {
        wharf_types::ErrorKind::NotFound => ProxyError::NotFound(format!("{what} is not in upstream {}: {e}", up.name)),
        _ => ProxyError::Unavailable(format!("upstream registry {} failed and {what} is not cached: {e}", up.name)),
    }
}

impl ProxyCache {
    /// The upstream of `repo` when its project is a proxy cache (Harbor model on only).
    pub fn upstream_for(&self, reg: &Registry, repo: &str) -> crate::meta::Result<Option<Arc<Upstream>>> {
        if reg.auth.is_none() {
            return Ok(None);
        }
        let Some(project) = super::project_of(repo) else { return Ok(None) };
        let Some(p) = reg.meta.project(project)? else { return Ok(None) };
        let Some(id) = p.record.registry_id else { return Ok(None) };
        let Some(e) = reg.meta.registries()?.into_iter().find(|e| e.id == id) else {
            return Err(crate::meta::MetaError::Db(format!(
                "project {project} is a proxy cache of registry {id}, which no longer exists"
            )));
        };
        let mut ups = self.upstreams.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((made_from, up)) = ups.get(&id) {
            if *made_from == e.record {
                return Ok(Some(up.clone()));
            }
        }
        let up = Arc::new(Upstream::new(&e).map_err(crate::meta::MetaError::Db)?);
        ups.insert(id, (e.record.clone(), up.clone()));
        Ok(Some(up))
    }

    fn pending_copy(&self, repo: &str, digest: &Digest) -> Option<Served> {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.get(&(repo.to_string(), digest.clone())).map(|p| Served {
            digest: digest.clone(),
            media_type: p.record.media_type.clone(),
            bytes: p.bytes.clone(),
        })
    }

    fn pending_tag(&self, repo: &str, tag: &str) -> Option<Served> {
        let digest = {
            let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.iter().find(|((r, _), p)| r == repo && p.tag.as_deref() == Some(tag)).map(|((_, d), _)| d.clone())
        }?;
        self.pending_copy(repo, &digest)
    }

    /// A manifest of a proxy-cache repository by tag or digest (blocking: call off the runtime).
    pub fn manifest(
        &self,
        reg: &Arc<Registry>,
        up: &Arc<Upstream>,
        repo: &str,
        reference: &str,
    ) -> Result<Served, ProxyError> {
        let by_digest = reference.parse::<Digest>().ok();
        let local = match &by_digest {
            Some(d) => reg.meta.manifest(repo, d)?.map(|_| d.clone()),
            None => reg.meta.tag(repo, reference)?,
        };
        let image = up.image(repo);
        if let Some(d) = &by_digest {
            // A digest names the same bytes everywhere: what is here needs no upstream.
            if local.is_some() {
                return self.local(reg, repo, d);
            }
            if let Some(s) = self.pending_copy(repo, d) {
                return Ok(s);
            }
        } else {
            let fresh = up.check.manifest_digest(&image, reference, up.auth.as_ref());
            let cached = local.clone().map(Ok).or_else(|| self.pending_tag(repo, reference).map(Err));
            match (fresh, cached) {
                (Ok(Some(now)), Some(Ok(d))) if now == d => return self.local(reg, repo, &d),
                (Ok(Some(now)), Some(Err(s))) if now == s.digest => return Ok(s),
                (Err(e), cached) if e.kind() != wharf_types::ErrorKind::NotFound => match cached {
                    Some(Ok(d)) => {
                        log::warn!(
                            "proxy {repo}:{reference}: upstream {} failed ({e}); serving the cached copy",
                            up.name
                        );
                        return self.local(reg, repo, &d);
                    }
                    Some(Err(s)) => return Ok(s),
                    None => {
                        return Err(upstream_error(up, &format!("manifest {repo}:{reference}"), &e));
                    }
                },
                (Err(e), _) => return Err(upstream_error(up, &format!("manifest {repo}:{reference}"), &e)),
                _ => {}
            }
        }
        let (raw, content_type) = match up.fetch.raw_manifest(&image, reference, up.auth.as_ref()) {
            Ok(m) => m,
            Err(e) => {
                // The check answered but the fetch failed: what is cached still beats an error.
                if e.kind() != wharf_types::ErrorKind::NotFound {
                    if let Some(d) = local {
                        return self.local(reg, repo, &d);
                    }
                }
                return Err(upstream_error(up, &format!("manifest {repo}:{reference}"), &e));
            }
        };
        let digest = Digest::of(&raw);
        let parsed = crate::manifest::parse(&content_type, &raw).map_err(|e| {
            ProxyError::Unavailable(format!(
                "upstream {} served an invalid manifest for {repo}:{reference}: {e}",
                up.name
            ))
        })?;
        let record = ManifestRecord {
            media_type: parsed.media_type,
            size: raw.len() as u64,
            artifact_type: parsed.artifact_type,
            subject: parsed.subject,
            annotations: parsed.annotations,
            blobs: parsed.blobs,
            manifests: parsed.manifests,
            created: now(),
        };
        let served = Served { digest: digest.clone(), media_type: record.media_type.clone(), bytes: Bytes::from(raw) };
        let tag = by_digest.is_none().then(|| reference.to_string());
        let entry = Pending { tag, bytes: served.bytes.clone(), record, filling: false };
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert((repo.to_string(), digest.clone()), entry);
        if !self.try_index(reg, repo, &digest)? {
            self.start_filler(reg, up, repo, &digest);
        }
        Ok(served)
    }

    fn local(&self, reg: &Registry, repo: &str, digest: &Digest) -> Result<Served, ProxyError> {
        let Some(record) = reg.meta.manifest(repo, digest)? else {
            return Err(ProxyError::NotFound(format!("manifest {digest} is not in repository {repo:?}")));
        };
        let Some((mut reader, _)) = reg.store.open(digest, 0)? else {
            return Err(ProxyError::Local(crate::error::ApiError::internal(format!(
                "manifest {digest} is indexed but missing from storage"
            ))));
        };
        let mut bytes = Vec::with_capacity(record.size as usize);
        reader.by_ref().take(crate::manifest::MAX_MANIFEST_SIZE as u64 + 1).read_to_end(&mut bytes)?;
        if Digest::of(&bytes) != *digest {
            return Err(ProxyError::Local(crate::error::ApiError::internal(format!(
                "manifest {digest} is corrupted in storage"
            ))));
        }
        Ok(Served { digest: digest.clone(), media_type: record.media_type, bytes: Bytes::from(bytes) })
    }

    /// Indexes a pending manifest when everything it names is here; whether it is indexed
    /// (or gone from the pending set).
    fn try_index(&self, reg: &Registry, repo: &str, digest: &Digest) -> crate::meta::Result<bool> {
        let key = (repo.to_string(), digest.clone());
        let (tag, bytes, record) = {
            let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let Some(p) = pending.get(&key) else { return Ok(true) };
            (p.tag.clone(), p.bytes.clone(), p.record.clone())
        };
        let outcome = {
            let _guard = reg.digest_lock(digest)?;
            let known = reg.meta.blob(digest)?.is_some();
            reg.store.put(digest, &bytes).map_err(|e| crate::meta::MetaError::Db(format!("storing {digest}: {e}")))?;
            let outcome = reg.meta.put_manifest(repo, digest, tag.as_deref(), &record)?;
            if outcome.is_err() && !known {
                reg.store.delete(digest).ok();
            }
            outcome
        };
        match outcome {
            Ok(()) => {
                self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                log::info!("proxy cache: {repo}@{digest} cached");
                // An index waiting for this manifest may be complete now.
                self.blob_arrived(reg, repo);
                Ok(true)
            }
            Err(Missing::Blob(_) | Missing::Manifest(_)) => Ok(false),
        }
    }

    /// After a blob of `repo` arrived: indexes the pending manifests it completes.
    fn blob_arrived(&self, reg: &Registry, repo: &str) {
        let waiting: Vec<Digest> = {
            let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.keys().filter(|(r, _)| r == repo).map(|(_, d)| d.clone()).collect()
        };
        for d in waiting {
            if let Err(e) = self.try_index(reg, repo, &d) {
                log::warn!("proxy cache: indexing {repo}@{d}: {e}");
            }
        }
    }

    /// A thread that, after [`FILL_GRACE`], fetches what a pending manifest still misses.
    fn start_filler(&self, reg: &Arc<Registry>, up: &Arc<Upstream>, repo: &str, digest: &Digest) {
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            match pending.get_mut(&(repo.to_string(), digest.clone())) {
                Some(p) if !p.filling => p.filling = true,
                _ => return,
            }
        }
        let (reg, up, repo, digest) = (reg.clone(), up.clone(), repo.to_string(), digest.clone());
        let spawned = std::thread::Builder::new().name("proxy-fill".into()).spawn(move || {
            std::thread::sleep(FILL_GRACE);
            if let Err(e) = reg.proxy.fill(&reg, &up, &repo, &digest) {
                log::warn!("proxy cache: filling {repo}@{digest} from {}: {e}", up.name);
            }
            // Whatever happened, a later pull may try again.
            if let Some(p) = reg.proxy.pending.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&(repo, digest)) {
                p.filling = false;
            }
        });
        if let Err(e) = spawned {
            log::warn!("proxy cache: cannot start a filler thread: {e}");
        }
    }

    fn fill(&self, reg: &Arc<Registry>, up: &Arc<Upstream>, repo: &str, digest: &Digest) -> Result<(), String> {
        if self.try_index(reg, repo, digest).map_err(|e| e.to_string())? {
            return Ok(());
        }
        let record = {
            let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            match pending.get(&(repo.to_string(), digest.clone())) {
                Some(p) => p.record.clone(),
                None => return Ok(()),
            }
        };
        for b in &record.blobs {
            if reg.meta.blob_in_repo(repo, b).map_err(|e| e.to_string())?.is_some() {
                continue;
            }
            if self.link_known(reg, repo, b).map_err(|e| e.to_string())? {
                continue;
            }
            // A blob another request is fetching arrives without this one (and indexes what
            // it completes when it does).
            let Ok(mut sink) = BlobSink::start(reg, repo, b) else { continue };
            let (reader, size) =
                up.fetch.open_blob_sized(&up.image(repo), b, up.auth.as_ref()).map_err(|e| e.to_string())?;
            let mut reader = reader.take(size.unwrap_or(u64::MAX));
            let mut buf = vec![0u8; 256 << 10];
            let mut hasher = Sha256Writer::new();
            loop {
                let n = reader.read(&mut buf).map_err(|e| format!("reading blob {b}: {e}"))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                sink.write(&buf[..n]).map_err(|e| format!("storing blob {b}: {e}"))?;
            }
            sink.finish(reg, &hasher.finish().0).map_err(|e| e.to_string())?;
        }
        for m in &record.manifests {
            if reg.meta.manifest(repo, m).map_err(|e| e.to_string())?.is_some() {
                continue;
            }
            // A child manifest goes through the same path: fetched, then filled at once.
            match self.manifest(reg, up, repo, &m.to_string()) {
                Ok(_) => {
                    if !self.try_index(reg, repo, m).map_err(|e| e.to_string())? {
                        self.fill(reg, up, repo, m)?;
                    }
                }
                Err(ProxyError::NotFound(e) | ProxyError::Unavailable(e)) => return Err(e),
                Err(ProxyError::Local(e)) => return Err(e.to_string()),
            }
        }
        self.try_index(reg, repo, digest).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Links a blob another repository already holds into `repo`; whether it could.
    fn link_known(&self, reg: &Registry, repo: &str, digest: &Digest) -> crate::meta::Result<bool> {
        match reg.meta.blob(digest)? {
            Some(b) => {
                reg.meta.link_blob(repo, digest, b.size)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Where a proxied blob that is not here comes from: it is linked from another repository
    /// when the registry holds it, or opened at the upstream. `None`: it is here now.
    pub fn open_blob(
        &self,
        reg: &Registry,
        up: &Upstream,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<UpstreamBlob>, ProxyError> {
        if self.link_known(reg, repo, digest)? {
            self.blob_arrived(reg, repo);
            return Ok(None);
        }
        match up.fetch.open_blob_sized(&up.image(repo), digest, up.auth.as_ref()) {
            Ok(opened) => Ok(Some(opened)),
            Err(e) => Err(upstream_error(up, &format!("blob {digest} of {repo}"), &e)),
        }
    }

    /// Starts keeping a blob that streams from the upstream to a client, unless another
    /// request keeps it already (`None`: then this one only passes it on).
    pub fn keep(&self, reg: &Registry, repo: &str, digest: &Digest) -> Option<BlobSink> {
        match BlobSink::start(reg, repo, digest) {
            Ok(s) => Some(s),
            Err(e) => {
                log::debug!("proxy cache: not keeping {digest}: {e}");
                None
            }
        }
    }
}

/// A blob being written to storage as it comes from the upstream: checked against its digest
/// at the end, then committed and linked to its repository. Dropped unfinished, its upload goes.
pub struct BlobSink {
    id: String,
    repo: String,
    digest: Digest,
    writer: Option<Box<dyn Write + Send>>,
    size: u64,
    committed: bool,
    store: Arc<dyn BlobStore>,
    fetching: Arc<Mutex<HashSet<Digest>>>,
}

impl BlobSink {
    fn start(reg: &Registry, repo: &str, digest: &Digest) -> io::Result<BlobSink> {
        let fetching = reg.proxy.fetching.clone();
        if !fetching.lock().unwrap_or_else(|p| p.into_inner()).insert(digest.clone()) {
            return Err(io::Error::other("another request is fetching it"));
        }
        let mut sink = BlobSink {
            id: format!("proxy-{}", crate::store::random_hex(16)?),
            repo: repo.to_string(),
            digest: digest.clone(),
            writer: None,
            size: 0,
            committed: false,
            store: reg.store.clone(),
            fetching,
        };
        reg.store.create_upload(&sink.id)?;
        sink.writer = Some(reg.store.upload_writer(&sink.id, 0)?);
        Ok(sink)
    }

    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.size += data.len() as u64;
        match &mut self.writer {
            Some(w) => w.write_all(data),
            None => Err(io::Error::other("blob sink already finished")),
        }
    }

    /// Commits the blob when its bytes hashed to its digest (`got`: the caller hashes what it
    /// writes, once for the client and the store); indexes what it completes.
    pub fn finish(mut self, reg: &Registry, got: &Digest) -> Result<(), crate::error::ApiError> {
        if let Some(mut w) = self.writer.take() {
            w.flush()?;
        }
        if *got != self.digest {
            return Err(crate::error::ApiError::internal(format!(
                "the upstream's blob {} hashes to {got}; not kept",
                self.digest
            )));
        }
        {
            let _guard = reg.digest_lock(&self.digest)?;
            reg.store.commit_upload(&self.id, &self.digest)?;
            self.committed = true;
            reg.meta.link_blob(&self.repo, &self.digest, self.size)?;
        }
        reg.touch(&self.digest);
        reg.proxy.blob_arrived(reg, &self.repo);
        Ok(())
    }
}

impl Drop for BlobSink {
    fn drop(&mut self) {
        self.fetching.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.digest);
        if !self.committed {
            self.writer = None;
            if let Err(e) = self.store.delete_upload(&self.id) {
                log::debug!("proxy cache: removing upload {}: {e}", self.id);
            }
        }
    }
}
