//! The registry's shared state ([`Registry`]) and the HTTP/1.1 server loop on a TCP socket.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use wharf_types::{Digest, Sha256Writer};

use crate::config::DatabaseConfig;
use crate::meta::{MetaError, MetaLock, Metadata, RedbMetadata};
use crate::pg::wire::ConnConfig;
use crate::pg::PgMetadata;
use crate::store::{BlobStore, FsBlobStore};

/// Query connections to PostgreSQL when the config does not say.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// How a registry serves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How long a request body may stall (no bytes at all) before the request is given up,
    /// and how long a client may take to send a request's headers.
    pub idle_timeout: Duration,
    /// Which whole-blob reads are hashed as they go out, the connection cut before the last
    /// bytes when the digest does not match (storage corrupted since the blob was pushed).
    pub verify_reads: crate::verified::VerifyReads,
    /// Whether blob reads are remembered for the online GC's grace period.
    pub track_use: bool,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            idle_timeout: Duration::from_secs(60),
            verify_reads: crate::verified::VerifyReads::Once,
            track_use: false,
        }
    }
}

/// An upload's hash state, kept between its requests. `None` (or absent after a restart)
/// means it is rebuilt from the bytes stored so far.
#[derive(Default)]
pub struct UploadSession {
    pub hasher: Option<Sha256Writer>,
}

/// Everything a request may need. Cheap to share (`Arc`).
pub struct Registry {
    pub meta: Arc<dyn Metadata>,
    /// Authentication; `None` lets anyone pull and push (loopback, or `--open`).
    pub auth: Option<crate::auth::Auth>,
    /// Whether this registry is served over TLS (the token realm's scheme).
    pub https: bool,
    pub store: Arc<dyn BlobStore>,
    pub options: ServeOptions,
    /// What a GC started from the REST API or its schedule runs with (serve's grace and
    /// upload age); each run chooses `delete_untagged` and `dry_run`.
    pub gc_options: crate::gc::GcOptions,
    /// Harbor's audit log, written with auth on.
    pub audit: Option<crate::harbor::audit::AuditLog>,
    sessions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<UploadSession>>>>,
    /// Stripes of a lock that makes "install a blob and record it" and "forget a blob and
    /// delete it" exclusive for one digest, so that GC never deletes what a push just stored.
    digest_locks: Vec<Mutex<()>>,
    /// Blobs recently named by a client (HEAD, GET, mount, upload), for the online GC:
    /// a push that found a blob present must not lose it before its manifest arrives.
    touched: Mutex<HashMap<Digest, Instant>>,
    /// Projects with a storage limit whose "check the quota, then add" runs now (see
    /// [`Registry::quota_lock`]), and the signal that one finished.
    quota_busy: Mutex<std::collections::HashSet<String>>,
    quota_freed: Condvar,
    /// Proxy-cache projects' upstream clients and the manifests waiting for their blobs.
    pub proxy: crate::harbor::proxy::ProxyCache,
    /// The blobs whose stored bytes this process checked (for `VerifyReads::Once`).
    pub verified: Arc<crate::verified::Verified>,
}

const DIGEST_LOCK_STRIPES: usize = 64;

/// Upload hash states kept before the idle ones are dropped.
const MAX_SESSIONS: usize = 4096;

impl Registry {
    pub fn new(meta: Arc<dyn Metadata>, store: Arc<dyn BlobStore>, options: ServeOptions) -> Registry {
        Registry {
            meta,
            auth: None,
            https: false,
            store,
            options,
            gc_options: crate::gc::GcOptions {
                dry_run: false,
                delete_untagged: false,
                grace: Duration::from_secs(3600),
                upload_max_age: Duration::from_secs(7 * 86400),
            },
            audit: None,
            sessions: Mutex::new(HashMap::new()),
            proxy: crate::harbor::proxy::ProxyCache::default(),
            quota_busy: Mutex::new(std::collections::HashSet::new()),
            quota_freed: Condvar::new(),
            digest_locks: (0..DIGEST_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            touched: Mutex::new(HashMap::new()),
            verified: Arc::default(),
        }
    }

    /// Opens the filesystem store and the embedded database under `data_dir`.
    pub fn open(data_dir: &Path, options: ServeOptions) -> Result<Registry, OpenError> {
        std::fs::create_dir_all(data_dir).map_err(|e| OpenError::Io(data_dir.to_path_buf(), e))?;
        let store = FsBlobStore::open(data_dir).map_err(|e| OpenError::Io(data_dir.to_path_buf(), e))?;
        Registry::open_with(data_dir, Arc::new(store), None, options)
    }

    /// Blobs in `store` (the data dir's filesystem or S3) and the index in `database` when
    /// given (PostgreSQL, shared with other replicas), else the embedded file in `data_dir`.
    pub fn open_with(
        data_dir: &Path,
        store: Arc<dyn BlobStore>,
        database: Option<&DatabaseConfig>,
        options: ServeOptions,
    ) -> Result<Registry, OpenError> {
        std::fs::create_dir_all(data_dir).map_err(|e| OpenError::Io(data_dir.to_path_buf(), e))?;
        let meta: Arc<dyn Metadata> = match database {
            None => Arc::new(RedbMetadata::open(&data_dir.join("registry.db"))?),
            Some(db) => Arc::new(open_postgres(db)?),
        };
        Ok(Registry::new(meta, store, options))
    }

    pub fn session(&self, id: &str) -> Arc<tokio::sync::Mutex<UploadSession>> {
        let mut map = lock(&self.sessions);
        // Replicas: only the one that closes an upload ends its session, so the others' would
        // pile up. A hash state is only a cache (`resume` rebuilds it from the stored bytes),
        // so past a bound the ones no request holds are dropped.
        if map.len() >= MAX_SESSIONS && !map.contains_key(id) {
            map.retain(|_, s| Arc::strong_count(s) > 1);
        }
        map.entry(id.to_string()).or_default().clone()
    }

    pub fn end_session(&self, id: &str) {
        lock(&self.sessions).remove(id);
    }

    /// The lock stripe of one digest, and the index's lock of it where other processes share
    /// the index (the stripes only order this process's threads).
    /// Makes "check the quota, then add the blob or manifest" one step for the project of
    /// `repo` when it has a storage limit: in this process and, with PostgreSQL, across
    /// replicas, so that pushes running together cannot each pass the check and together go
    /// past the limit. `None` (no lock) for a repository with no project or no limit. Taken
    /// before a digest lock, never while holding one.
    pub fn quota_lock(&self, repo: &str) -> Result<Option<QuotaGuard<'_>>, MetaError> {
        if self.auth.is_none() {
            return Ok(None);
        }
        let Some(project) = crate::harbor::project_of(repo) else { return Ok(None) };
        if self.meta.project(project)?.and_then(|p| p.record.storage_limit).is_none() {
            return Ok(None);
        }
        let mut busy = lock(&self.quota_busy);
        while busy.contains(project) {
            busy = self.quota_freed.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        busy.insert(project.to_string());
        drop(busy);
        let mut guard = QuotaGuard { reg: self, project: project.to_string(), shared: None };
        guard.shared = self.meta.lock_quota(project)?;
        Ok(Some(guard))
    }

    pub fn digest_lock(&self, digest: &Digest) -> Result<DigestGuard<'_>, MetaError> {
        let local = self.stripe_lock(digest_stripe(digest));
        let shared = self.meta.lock_digest(digest)?;
        Ok(DigestGuard { _shared: shared, _local: local })
    }

    /// The in-process lock of every digest in `stripe` (see [`digest_stripe`]): the whole of
    /// [`Registry::digest_lock`] for each of them where the index's `lock_digest` locks
    /// nothing (GC's batches, `Metadata::forgets_in_batches`).
    pub(crate) fn stripe_lock(&self, stripe: usize) -> MutexGuard<'_, ()> {
        lock(&self.digest_locks[stripe % DIGEST_LOCK_STRIPES])
    }

    /// A client named the blob. Called on the async runtime: the index's part (a shared
    /// index records it for the replica that runs GC) runs as blocking work.
    pub fn touch(&self, digest: &Digest) {
        if self.options.track_use {
            lock(&self.touched).insert(digest.clone(), Instant::now());
        }
        if let Err(e) = crate::handlers::block(|| self.meta.touch_blob(digest)) {
            log::warn!("recording a use of blob {digest}: {e}");
        }
    }

    /// Whether a blob was named by a client within `grace`; forgets older entries.
    pub fn touched_within(&self, grace: Duration) -> std::collections::HashSet<Digest> {
        let mut map = lock(&self.touched);
        map.retain(|_, at| at.elapsed() < grace);
        map.keys().cloned().collect()
    }
}

/// Which of the digest lock stripes holds `digest`.
pub(crate) fn digest_stripe(digest: &Digest) -> usize {
    let first = digest.hex().as_bytes().first().copied().unwrap_or(0) as usize;
    let second = digest.hex().as_bytes().get(1).copied().unwrap_or(0) as usize;
    (first * 31 + second) % DIGEST_LOCK_STRIPES
}

/// Held while a blob is installed and recorded, or forgotten and deleted.
/// A project's quota lock (see [`Registry::quota_lock`]); `Send`, so that it may be held in a
/// request's future.
pub struct QuotaGuard<'a> {
    reg: &'a Registry,
    project: String,
    shared: Option<MetaLock>,
}

impl Drop for QuotaGuard<'_> {
    fn drop(&mut self) {
        drop(self.shared.take());
        lock(&self.reg.quota_busy).remove(&self.project);
        self.reg.quota_freed.notify_all();
    }
}

pub struct DigestGuard<'a> {
    _shared: Option<MetaLock>,
    _local: MutexGuard<'a, ()>,
}

/// The PostgreSQL index a `database:` section (or `--database-url`) names.
pub fn open_postgres(db: &DatabaseConfig) -> Result<PgMetadata, OpenError> {
    let cfg = ConnConfig::parse(&db.postgres).map_err(|e| OpenError::Meta(MetaError::Db(e.to_string())))?;
    Ok(PgMetadata::open(cfg, db.pool_size.unwrap_or(DEFAULT_POOL_SIZE))?)
}

/// A poisoned lock only means another request panicked while holding it; the data it guards
/// (maps of sessions and times) stays usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("data dir {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// Serves the registry on `listener` until the process ends, over TLS when `tls` is given;
/// one task per connection.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>, tls: Option<Arc<rustls::ServerConfig>>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                log::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let registry = registry.clone();
        match &tls {
            None => {
                tokio::spawn(serve_connection(TokioIo::new(stream), registry, peer));
            }
            Some(config) => match wharf_tls::TlsStream::new(stream, config.clone()) {
                Ok(s) => {
                    tokio::spawn(serve_connection(TokioIo::new(s), registry, peer));
                }
                Err(e) => log::warn!("TLS connection from {peer}: {e}"),
            },
        }
    }
}

/// HTTP/1.1 on one connection. The header time-out also bounds a TLS handshake that never
/// finishes: no request arrives in time.
async fn serve_connection<I>(io: I, registry: Arc<Registry>, peer: SocketAddr)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let header_timeout = registry.options.idle_timeout;
    let service = service_fn(move |req| {
        let registry = registry.clone();
        async move { Ok::<_, Infallible>(crate::handlers::handle(registry, req, peer).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(io, service);
    if let Err(e) = conn.await {
        log::debug!("connection from {peer}: {e}");
    }
}

/// Whether every address `addr` resolves to is a loopback address.
pub fn is_loopback(addrs: &[SocketAddr]) -> bool {
    !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_upload_sessions_are_dropped_past_the_bound() {
        let dir =
            std::env::temp_dir().join(format!("wharf-registry-sessions-{}", crate::store::random_hex(8).unwrap()));
        let reg = Registry::open(&dir, ServeOptions::default()).unwrap();
        let held = reg.session("held");
        for i in 0..MAX_SESSIONS - 1 {
            drop(reg.session(&format!("idle-{i}")));
        }
        assert_eq!(lock(&reg.sessions).len(), MAX_SESSIONS);
        // The next new one sweeps the idle ones; the one a request holds stays, and so does
        // its state.
        drop(reg.session("new"));
        let ids: std::collections::BTreeSet<String> = lock(&reg.sessions).keys().cloned().collect();
        assert_eq!(ids, ["held", "new"].iter().map(|s| s.to_string()).collect());
        assert!(Arc::ptr_eq(&held, &reg.session("held")));
        drop(reg);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
