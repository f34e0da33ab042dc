//! The registry's index: repositories, tags, manifests and what they reference, per-repository
//! blob links, referrers and upload sessions. [`Metadata`] is the role; [`RedbMetadata`] the
//! embedded backend (one redb file, every change one transaction); [`crate::pg::PgMetadata`]
//! the PostgreSQL one, for several replicas sharing a database.
//!
//! Keys are strings built from validated names, tags and digests joined by `\0`, which none of
//! them can contain and which sorts before every character they can: a prefix range is then
//! exactly one repository's (or one subject's) entries, in lexical order, so every listing
//! costs what its page costs.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use wharf_types::Digest;

/// repository name → unix time it was first written
const REPOS: TableDefinition<&str, u64> = TableDefinition::new("repos");
/// `repo\0tag` → manifest digest
const TAGS: TableDefinition<&str, &str> = TableDefinition::new("tags");
/// `repo\0manifest digest` → [`ManifestRecord`] (JSON)
const MANIFESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("manifests");
/// `blob digest\0repo` → blob size: the blob may be read through that repository (it was
/// uploaded or mounted there). Digest first, so that GC finds every link of a blob at once.
const LINKS: TableDefinition<&str, u64> = TableDefinition::new("links");
/// blob digest → [`BlobRecord`] (JSON): every blob the store holds, manifests included
const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("blobs");
/// `used digest\0repo\0manifest digest` → (): what keeps a blob alive. A manifest uses its
/// config, layers and index children, and itself (its bytes are a blob too).
const USES: TableDefinition<&str, ()> = TableDefinition::new("uses");
/// `repo\0subject digest\0referrer digest` → (): the referrers index
const REFERRERS: TableDefinition<&str, ()> = TableDefinition::new("referrers");
/// upload id → [`UploadRecord`] (JSON)
const UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("uploads");
/// user name → [`UserRecord`] (JSON)
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// project name → [`StoredProject`] (JSON)
const PROJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("projects");
/// `project\0user` → [`StoredMember`] (JSON)
const MEMBERS: TableDefinition<&str, &[u8]> = TableDefinition::new("members");
/// robot name (`robot$p+n`) → [`StoredRobot`] (JSON)
const ROBOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("robots");
/// `project\0id` (20 digits, so that key order is id order) → [`ImmutableRule`] (JSON)
const IMMUTABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("immutable_rules");
/// registry endpoint id (20 digits) → [`StoredRegistry`] (JSON)
const REGISTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("registries");
/// kind of record (`user`, `project`, `member`, `robot`, `rule`) → the last id handed out
const SEQ: TableDefinition<&str, u64> = TableDefinition::new("seq");
/// `kind\0id` (20 digits) → a job record (JSON; `harbor::jobs`)
const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("job_records");
/// schedule name → the due time of its last claimed run
const CLAIMS: TableDefinition<&str, u64> = TableDefinition::new("schedule_claims");
/// audit record id (20 digits, so that key order is id order) → [`AuditRecord`] (JSON)
const AUDIT: TableDefinition<&str, &[u8]> = TableDefinition::new("audit_logs");
/// repository name → its description
const REPO_DESCRIPTIONS: TableDefinition<&str, &str> = TableDefinition::new("repo_descriptions");
/// web UI session id → when it would have expired: the sessions logged out
const ENDED_SESSIONS: TableDefinition<&str, u64> = TableDefinition::new("ended_sessions");
/// `crate::login_limit` key → (failures, unix time of the last)
const LOGIN_FAILURES: TableDefinition<&str, (u32, u64)> = TableDefinition::new("login_failures");

const SEP: char = '\0';
/// The character after [`SEP`]: `prefix\0` .. `prefix\x01` is everything under `prefix`.
const SEP_END: char = '\u{1}';

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("registry database: {0}")]
    Db(String),
    #[error("registry database record {key:?}: {message}")]
    Decode { key: String, message: String },
}

fn db<E: Into<redb::Error>>(e: E) -> MetaError {
    MetaError::Db(e.into().to_string())
}

pub type Result<T> = std::result::Result<T, MetaError>;

/// What the index keeps of a manifest; its bytes are in the blob store under its digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestRecord {
    pub media_type: String,
    pub size: u64,
    /// The manifest's `artifactType`, else its config's media type (what referrers report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Digest>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Blobs that must be in the repository: config and layers (foreign layers excepted).
    pub blobs: Vec<Digest>,
    /// Manifests that must be in the repository: an index's children.
    pub manifests: Vec<Digest>,
    pub created: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlobRecord {
    pub size: u64,
    /// When the blob was last stored or linked: GC leaves blobs younger than its grace alone.
    pub linked: u64,
}

/// A user of the registry: a salted PBKDF2-HMAC-SHA256 hash of the password, never the password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    /// Given by the index when the user is created (0 in a record not stored yet; users made
    /// before ids existed keep 0 in the embedded index).
    #[serde(default)]
    pub id: u64,
    pub salt: String,
    /// Hex of the derived key.
    pub hash: String,
    pub iterations: u32,
    pub admin: bool,
    pub created: u64,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub realname: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub repo: String,
    pub started: u64,
}

/// Why a manifest cannot be recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum Missing {
    Blob(Digest),
    Manifest(Digest),
}

/// A referrer as the referrers API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Referrer {
    pub digest: Digest,
    pub record: ManifestRecord,
}

/// A lock taken through the index, held until dropped.
pub struct MetaLock {
    _held: Box<dyn Send>,
}

impl MetaLock {
    pub fn new(held: impl Send + 'static) -> MetaLock {
        MetaLock { _held: Box::new(held) }
    }
}

/// The index role. Synchronous (callers on the async runtime run it on a blocking thread);
/// each mutating call is one transaction.
pub trait Metadata: crate::harbor::store::IamStore + Send + Sync + 'static {
    fn repo_exists(&self, repo: &str) -> Result<bool>;
    /// Up to `n` repository names after `last`, in lexical order.
    fn catalog(&self, last: Option<&str>, n: usize) -> Result<Vec<String>>;
    /// Up to `n` tags of `repo` after `last`, in lexical order.
    fn tags(&self, repo: &str, last: Option<&str>, n: usize) -> Result<Vec<String>>;
    fn tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>>;
    fn manifest(&self, repo: &str, digest: &Digest) -> Result<Option<ManifestRecord>>;
    /// Records a manifest (and tags it), after checking in the same transaction that every
    /// blob and child manifest it names is in the repository.
    fn put_manifest(
        &self,
        repo: &str,
        digest: &Digest,
        tag: Option<&str>,
        record: &ManifestRecord,
    ) -> Result<std::result::Result<(), Missing>>;
    /// Removes a manifest, the repository's tags that point at it and its referrer entry.
    fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<bool>;
    fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool>;
    /// The size of a blob when it is linked into `repo`.
    fn blob_in_repo(&self, repo: &str, digest: &Digest) -> Result<Option<u64>>;
    fn blob(&self, digest: &Digest) -> Result<Option<BlobRecord>>;
    /// Records a stored blob and links it into `repo`.
    fn link_blob(&self, repo: &str, digest: &Digest, size: u64) -> Result<()>;
    /// Records a finished upload's blob, links it into `repo` and forgets the upload, in one
    /// transaction.
    fn complete_upload(&self, id: &str, repo: &str, digest: &Digest, size: u64) -> Result<()>;
    /// Links a blob into `repo` if it is linked into `from` (or, with no `from`, stored at
    /// all); the size when it did.
    fn mount_blob(&self, repo: &str, digest: &Digest, from: Option<&str>) -> Result<Option<u64>>;
    fn unlink_blob(&self, repo: &str, digest: &Digest) -> Result<bool>;
    /// The manifests of `repo` whose subject is `subject`, in digest order.
    fn referrers(&self, repo: &str, subject: &Digest) -> Result<Vec<Referrer>>;

    fn user(&self, name: &str) -> Result<Option<UserRecord>>;
    /// Records a user unless one of that name exists; whether it did.
    fn create_user(&self, name: &str, record: &UserRecord) -> Result<bool>;

    fn create_upload(&self, id: &str, record: &UploadRecord) -> Result<()>;
    fn upload(&self, id: &str) -> Result<Option<UploadRecord>>;
    fn delete_upload(&self, id: &str) -> Result<()>;
    fn uploads(&self) -> Result<Vec<(String, UploadRecord)>>;

    /// Every manifest: `(repo, digest, record, tags pointing at it)` (GC's untagged pass).
    fn all_manifests(&self) -> Result<Vec<(String, Digest, ManifestRecord, usize)>>;
    /// Every blob record.
    fn all_blobs(&self) -> Result<Vec<(Digest, BlobRecord)>>;
    /// Forgets a blob (record and links) if nothing uses it and it was last linked before
    /// `cutoff`; checked and done in one transaction so that a manifest put cannot slip in.
    fn forget_unused_blob(&self, digest: &Digest, cutoff: u64) -> Result<bool>;
    /// Whether [`Metadata::forget_unused_blobs`] does several blobs in one transaction. GC
    /// then forgets a stripe's blobs in batches, under the registry's stripe lock and
    /// [`Metadata::lock_digests`] of the batch.
    fn forgets_in_batches(&self) -> bool {
        false
    }
    /// [`Metadata::lock_digest`] of every digest at once (GC's batches).
    fn lock_digests(&self, _digests: &[Digest]) -> Result<Option<MetaLock>> {
        Ok(None)
    }
    /// [`Metadata::forget_unused_blob`] for each digest, each checked as there; whether each
    /// was forgotten.
    fn forget_unused_blobs(&self, digests: &[Digest], cutoff: u64) -> Result<Vec<bool>> {
        digests.iter().map(|d| self.forget_unused_blob(d, cutoff)).collect()
    }

    /// The lock that lets one garbage collection run at a time among every process using
    /// this index; `None` while another holds it.
    fn try_gc_lock(&self) -> Result<Option<MetaLock>>;
    /// Holds `digest` against the other processes using this index, beside the registry's own
    /// in-process lock: "install a blob and record it" and "forget a blob and delete it" must
    /// not interleave between replicas either. `None` where no other process can share the
    /// index (redb's file is locked to one).
    fn lock_digest(&self, _digest: &Digest) -> Result<Option<MetaLock>> {
        Ok(None)
    }
    /// The same for a project's quota check and what it lets in (`Registry::quota_lock`).
    fn lock_quota(&self, _project: &str) -> Result<Option<MetaLock>> {
        Ok(None)
    }
    /// A client named the blob (HEAD, GET, mount): backends shared by several replicas record
    /// it, since the replica that runs GC is not necessarily the one that saw the request.
    fn touch_blob(&self, _digest: &Digest) -> Result<()> {
        Ok(())
    }
    /// The token signing key, where other processes share the index: a token one replica
    /// issued must be good on every other, and their data dirs need not be shared. The first
    /// caller's `candidate` is kept; every caller gets the kept key. `None` where no other
    /// process can share the index: the key is the data dir's.
    fn shared_token_key(&self, _candidate: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn key2(a: &str, b: &str) -> String {
    format!("{a}{SEP}{b}")
}

fn key3(a: &str, b: &str, c: &str) -> String {
    format!("{a}{SEP}{b}{SEP}{c}")
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| MetaError::Decode { key: key.to_string(), message: e.to_string() })
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing these plain records cannot fail (string keys, no floats).
    serde_json::to_vec(v).unwrap_or_default()
}

/// `prefix\0after` (exclusive) .. `prefix\x01` (exclusive): the entries under `prefix`
/// that sort after `after`, or all of them.
fn under(prefix: &str, after: Option<&str>) -> (String, String) {
    (key2(prefix, after.unwrap_or("")), format!("{prefix}{SEP_END}"))
}

/// Forgets a blob (record and links) in `tx` if nothing uses it and it was last linked
/// before `cutoff`; whether it did.
fn forget_in(tx: &redb::WriteTransaction, digest: &Digest, cutoff: u64) -> Result<bool> {
    let d = digest.to_string();
    let (from, to) = under(&d, None);
    let uses = tx.open_table(USES).map_err(db)?;
    if uses.range::<&str>(from.as_str()..to.as_str()).map_err(db)?.next().is_some() {
        return Ok(false);
    }
    let mut blobs = tx.open_table(BLOBS).map_err(db)?;
    let young = match blobs.get(d.as_str()).map_err(db)? {
        None => false,
        Some(v) => decode::<BlobRecord>(&d, v.value())?.linked >= cutoff,
    };
    if young {
        return Ok(false);
    }
    blobs.remove(d.as_str()).map_err(db)?;
    let mut links = tx.open_table(LINKS).map_err(db)?;
    let mut doomed = Vec::new();
    for item in links.range::<&str>(from.as_str()..to.as_str()).map_err(db)? {
        doomed.push(item.map_err(db)?.0.value().to_string());
    }
    for k in doomed {
        links.remove(k.as_str()).map_err(db)?;
    }
    Ok(true)
}

pub struct RedbMetadata {
    pub(crate) db: Database,
    /// The GC lock: the file is this process's alone, so a flag is enough.
    gc_running: Arc<AtomicBool>,
}

/// Clears [`RedbMetadata::gc_running`] when the collection ends.
struct GcFlag(Arc<AtomicBool>);

impl Drop for GcFlag {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// redb's page cache. Its default (1 GiB) lets the index's reads grow the process to the size
/// of the database file; the index of 10,000 repositories is tens of MB, and the kernel's page
/// cache still holds what does not fit here.
const REDB_CACHE: usize = 32 << 20;

impl RedbMetadata {
    pub fn open(path: &Path) -> Result<RedbMetadata> {
        let database = redb::Builder::new().set_cache_size(REDB_CACHE).create(path).map_err(|e| {
            let message = e.to_string();
            if matches!(e, redb::DatabaseError::DatabaseAlreadyOpen) {
                MetaError::Db(format!("{} is in use by another wharf-registry process", path.display()))
            } else {
                MetaError::Db(format!("{}: {message}", path.display()))
            }
        })?;
        let tx = database.begin_write().map_err(db)?;
        {
            tx.open_table(REPOS).map_err(db)?;
            tx.open_table(TAGS).map_err(db)?;
            tx.open_table(MANIFESTS).map_err(db)?;
            tx.open_table(LINKS).map_err(db)?;
            tx.open_table(BLOBS).map_err(db)?;
            tx.open_table(USES).map_err(db)?;
            tx.open_table(REFERRERS).map_err(db)?;
            tx.open_table(UPLOADS).map_err(db)?;
            tx.open_table(USERS).map_err(db)?;
            tx.open_table(PROJECTS).map_err(db)?;
            tx.open_table(MEMBERS).map_err(db)?;
            tx.open_table(ROBOTS).map_err(db)?;
            tx.open_table(SEQ).map_err(db)?;
            tx.open_table(IMMUTABLE).map_err(db)?;
            tx.open_table(REGISTRIES).map_err(db)?;
            tx.open_table(JOBS).map_err(db)?;
            tx.open_table(CLAIMS).map_err(db)?;
            tx.open_table(AUDIT).map_err(db)?;
            tx.open_table(REPO_DESCRIPTIONS).map_err(db)?;
            tx.open_table(ENDED_SESSIONS).map_err(db)?;
            tx.open_table(LOGIN_FAILURES).map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(RedbMetadata { db: database, gc_running: Arc::new(AtomicBool::new(false)) })
    }
}

/// The next id of a kind of record (`user`, `project`, ...), counted in the same transaction.
pub(crate) fn next_id(tx: &redb::WriteTransaction, kind: &str) -> Result<u64> {
    let mut t = tx.open_table(SEQ).map_err(db)?;
    let id = t.get(kind).map_err(db)?.map(|v| v.value()).unwrap_or(0) + 1;
    t.insert(kind, id).map_err(db)?;
    Ok(id)
}

/// Records `repo` if it is new.
fn touch_repo(tx: &redb::WriteTransaction, repo: &str) -> Result<()> {
    let mut t = tx.open_table(REPOS).map_err(db)?;
    if t.get(repo).map_err(db)?.is_none() {
        t.insert(repo, now()).map_err(db)?;
    }
    Ok(())
}

/// Records (or refreshes) a blob and links it into `repo`.
fn link(tx: &redb::WriteTransaction, repo: &str, digest: &Digest, size: u64) -> Result<()> {
    let d = digest.to_string();
    tx.open_table(BLOBS)
        .map_err(db)?
        .insert(d.as_str(), encode(&BlobRecord { size, linked: now() }).as_slice())
        .map_err(db)?;
    tx.open_table(LINKS).map_err(db)?.insert(key2(&d, repo).as_str(), size).map_err(db)?;
    touch_repo(tx, repo)
}

impl Metadata for RedbMetadata {
    fn repo_exists(&self, repo: &str) -> Result<bool> {
        let tx = self.db.begin_read().map_err(db)?;
        Ok(tx.open_table(REPOS).map_err(db)?.get(repo).map_err(db)?.is_some())
    }

    fn catalog(&self, last: Option<&str>, n: usize) -> Result<Vec<String>> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(REPOS).map_err(db)?;
        let start = match last {
            Some(l) => Bound::Excluded(l),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for item in t.range::<&str>((start, Bound::Unbounded)).map_err(db)?.take(n) {
            out.push(item.map_err(db)?.0.value().to_string());
        }
        Ok(out)
    }

    fn tags(&self, repo: &str, last: Option<&str>, n: usize) -> Result<Vec<String>> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(TAGS).map_err(db)?;
        let (from, to) = under(repo, last);
        let from = if last.is_some() { Bound::Excluded(from.as_str()) } else { Bound::Included(from.as_str()) };
        let mut out = Vec::new();
        for item in t.range::<&str>((from, Bound::Excluded(to.as_str()))).map_err(db)?.take(n) {
            let (k, _) = item.map_err(db)?;
            let k = k.value();
            out.push(k.split_once(SEP).map(|(_, tag)| tag).unwrap_or(k).to_string());
        }
        Ok(out)
    }

    fn tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(TAGS).map_err(db)?;
        let key = key2(repo, tag);
        match t.get(key.as_str()).map_err(db)? {
            None => Ok(None),
            Some(v) => v
                .value()
                .parse()
                .map(Some)
                .map_err(|e: wharf_types::DigestError| MetaError::Decode { key, message: e.to_string() }),
        }
    }

    fn manifest(&self, repo: &str, digest: &Digest) -> Result<Option<ManifestRecord>> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(MANIFESTS).map_err(db)?;
        let key = key2(repo, &digest.to_string());
        match t.get(key.as_str()).map_err(db)? {
            None => Ok(None),
            Some(v) => decode(&key, v.value()).map(Some),
        }
    }

    fn put_manifest(
        &self,
        repo: &str,
        digest: &Digest,
        tag: Option<&str>,
        record: &ManifestRecord,
    ) -> Result<std::result::Result<(), Missing>> {
        let d = digest.to_string();
        let tx = self.db.begin_write().map_err(db)?;
        {
            let links = tx.open_table(LINKS).map_err(db)?;
            for b in &record.blobs {
                if links.get(key2(&b.to_string(), repo).as_str()).map_err(db)?.is_none() {
                    return Ok(Err(Missing::Blob(b.clone())));
                }
            }
            let mut manifests = tx.open_table(MANIFESTS).map_err(db)?;
            for m in &record.manifests {
                if manifests.get(key2(repo, &m.to_string()).as_str()).map_err(db)?.is_none() {
                    return Ok(Err(Missing::Manifest(m.clone())));
                }
            }
            manifests.insert(key2(repo, &d).as_str(), encode(record).as_slice()).map_err(db)?;
            let mut uses = tx.open_table(USES).map_err(db)?;
            uses.insert(key3(&d, repo, &d).as_str(), ()).map_err(db)?;
            for used in record.blobs.iter().chain(&record.manifests) {
                uses.insert(key3(&used.to_string(), repo, &d).as_str(), ()).map_err(db)?;
            }
            let blob = BlobRecord { size: record.size, linked: now() };
            tx.open_table(BLOBS).map_err(db)?.insert(d.as_str(), encode(&blob).as_slice()).map_err(db)?;
            if let Some(subject) = &record.subject {
                let key = key3(repo, &subject.to_string(), &d);
                tx.open_table(REFERRERS).map_err(db)?.insert(key.as_str(), ()).map_err(db)?;
            }
            if let Some(tag) = tag {
                tx.open_table(TAGS).map_err(db)?.insert(key2(repo, tag).as_str(), d.as_str()).map_err(db)?;
            }
        }
        touch_repo(&tx, repo)?;
        tx.commit().map_err(db)?;
        Ok(Ok(()))
    }

    fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<bool> {
        let d = digest.to_string();
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut manifests = tx.open_table(MANIFESTS).map_err(db)?;
            let key = key2(repo, &d);
            let Some(old) = manifests.remove(key.as_str()).map_err(db)? else {
                return Ok(false);
            };
            let record: ManifestRecord = decode(&key, old.value())?;
            drop(old);
            let mut uses = tx.open_table(USES).map_err(db)?;
            uses.remove(key3(&d, repo, &d).as_str()).map_err(db)?;
            for used in record.blobs.iter().chain(&record.manifests) {
                uses.remove(key3(&used.to_string(), repo, &d).as_str()).map_err(db)?;
            }
            if let Some(subject) = &record.subject {
                tx.open_table(REFERRERS)
                    .map_err(db)?
                    .remove(key3(repo, &subject.to_string(), &d).as_str())
                    .map_err(db)?;
            }
            // Tags of this repository that point at it go with it, as in distribution.
            let mut tags = tx.open_table(TAGS).map_err(db)?;
            let (from, to) = under(repo, None);
            let mut doomed = Vec::new();
            for item in tags.range::<&str>(from.as_str()..to.as_str()).map_err(db)? {
                let (k, v) = item.map_err(db)?;
                if v.value() == d {
                    doomed.push(k.value().to_string());
                }
            }
            for k in doomed {
                tags.remove(k.as_str()).map_err(db)?;
            }
        }
        tx.commit().map_err(db)?;
        Ok(true)
    }

    fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool> {
        let tx = self.db.begin_write().map_err(db)?;
        let removed = tx.open_table(TAGS).map_err(db)?.remove(key2(repo, tag).as_str()).map_err(db)?.is_some();
        tx.commit().map_err(db)?;
        Ok(removed)
    }

    fn blob_in_repo(&self, repo: &str, digest: &Digest) -> Result<Option<u64>> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(LINKS).map_err(db)?;
        Ok(t.get(key2(&digest.to_string(), repo).as_str()).map_err(db)?.map(|v| v.value()))
    }

    fn blob(&self, digest: &Digest) -> Result<Option<BlobRecord>> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(BLOBS).map_err(db)?;
        let key = digest.to_string();
        match t.get(key.as_str()).map_err(db)? {
            None => Ok(None),
            Some(v) => decode(&key, v.value()).map(Some),
        }
    }

    fn link_blob(&self, repo: &str, digest: &Digest, size: u64) -> Result<()> {
        let tx = self.db.begin_write().map_err(db)?;
        link(&tx, repo, digest, size)?;
        tx.commit().map_err(db)
    }

    fn complete_upload(&self, id: &str, repo: &str, digest: &Digest, size: u64) -> Result<()> {
        let tx = self.db.begin_write().map_err(db)?;
        link(&tx, repo, digest, size)?;
        tx.open_table(UPLOADS).map_err(db)?.remove(id).map_err(db)?;
        tx.commit().map_err(db)
    }

    fn mount_blob(&self, repo: &str, digest: &Digest, from: Option<&str>) -> Result<Option<u64>> {
        let d = digest.to_string();
        let tx = self.db.begin_write().map_err(db)?;
        let size = match from {
            Some(from) => {
                tx.open_table(LINKS).map_err(db)?.get(key2(&d, from).as_str()).map_err(db)?.map(|v| v.value())
            }
            None => match tx.open_table(BLOBS).map_err(db)?.get(d.as_str()).map_err(db)? {
                None => None,
                Some(v) => Some(decode::<BlobRecord>(&d, v.value())?.size),
            },
        };
        let Some(size) = size else {
            return Ok(None);
        };
        link(&tx, repo, digest, size)?;
        tx.commit().map_err(db)?;
        Ok(Some(size))
    }

    fn unlink_blob(&self, repo: &str, digest: &Digest) -> Result<bool> {
        let tx = self.db.begin_write().map_err(db)?;
        let removed =
            tx.open_table(LINKS).map_err(db)?.remove(key2(&digest.to_string(), repo).as_str()).map_err(db)?.is_some();
        tx.commit().map_err(db)?;
        Ok(removed)
    }

    fn referrers(&self, repo: &str, subject: &Digest) -> Result<Vec<Referrer>> {
        let tx = self.db.begin_read().map_err(db)?;
        let refs = tx.open_table(REFERRERS).map_err(db)?;
        let manifests = tx.open_table(MANIFESTS).map_err(db)?;
        let (from, to) = under(&key2(repo, &subject.to_string()), None);
        let mut out = Vec::new();
        for item in refs.range::<&str>(from.as_str()..to.as_str()).map_err(db)? {
            let (k, _) = item.map_err(db)?;
            let k = k.value();
            let Some(digest) = k.rsplit(SEP).next().and_then(|d| d.parse::<Digest>().ok()) else {
                continue;
            };
            let key = key2(repo, &digest.to_string());
            if let Some(v) = manifests.get(key.as_str()).map_err(db)? {
                out.push(Referrer { digest, record: decode(&key, v.value())? });
            }
        }
        Ok(out)
    }

    fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(USERS).map_err(db)?;
        match t.get(name).map_err(db)? {
            None => Ok(None),
            Some(v) => decode(name, v.value()).map(Some),
        }
    }

    fn create_user(&self, name: &str, record: &UserRecord) -> Result<bool> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut t = tx.open_table(USERS).map_err(db)?;
            if t.get(name).map_err(db)?.is_some() {
                return Ok(false);
            }
            let record = UserRecord { id: next_id(&tx, "user")?, ..record.clone() };
            t.insert(name, encode(&record).as_slice()).map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(true)
    }

    fn create_upload(&self, id: &str, record: &UploadRecord) -> Result<()> {
        let tx = self.db.begin_write().map_err(db)?;
        tx.open_table(UPLOADS).map_err(db)?.insert(id, encode(record).as_slice()).map_err(db)?;
        tx.commit().map_err(db)
    }

    fn upload(&self, id: &str) -> Result<Option<UploadRecord>> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(UPLOADS).map_err(db)?;
        match t.get(id).map_err(db)? {
            None => Ok(None),
            Some(v) => decode(id, v.value()).map(Some),
        }
    }

    fn delete_upload(&self, id: &str) -> Result<()> {
        let tx = self.db.begin_write().map_err(db)?;
        tx.open_table(UPLOADS).map_err(db)?.remove(id).map_err(db)?;
        tx.commit().map_err(db)
    }

    fn uploads(&self) -> Result<Vec<(String, UploadRecord)>> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(UPLOADS).map_err(db)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(db)? {
            let (k, v) = item.map_err(db)?;
            out.push((k.value().to_string(), decode(k.value(), v.value())?));
        }
        Ok(out)
    }

    fn all_manifests(&self) -> Result<Vec<(String, Digest, ManifestRecord, usize)>> {
        let tx = self.db.begin_read().map_err(db)?;
        let mut tag_count: BTreeMap<(String, String), usize> = BTreeMap::new();
        for item in tx.open_table(TAGS).map_err(db)?.iter().map_err(db)? {
            let (k, v) = item.map_err(db)?;
            let repo = k.value().split_once(SEP).map(|(r, _)| r).unwrap_or_default().to_string();
            *tag_count.entry((repo, v.value().to_string())).or_default() += 1;
        }
        let mut out = Vec::new();
        for item in tx.open_table(MANIFESTS).map_err(db)?.iter().map_err(db)? {
            let (k, v) = item.map_err(db)?;
            let key = k.value();
            let Some((repo, d)) = key.split_once(SEP) else {
                continue;
            };
            let Ok(digest) = d.parse::<Digest>() else {
                continue;
            };
            let tags = tag_count.get(&(repo.to_string(), d.to_string())).copied().unwrap_or(0);
            out.push((repo.to_string(), digest, decode(key, v.value())?, tags));
        }
        Ok(out)
    }

    fn all_blobs(&self) -> Result<Vec<(Digest, BlobRecord)>> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(BLOBS).map_err(db)?;
        let mut out = Vec::with_capacity(t.len().map_err(db)? as usize);
        for item in t.iter().map_err(db)? {
            let (k, v) = item.map_err(db)?;
            if let Ok(d) = k.value().parse::<Digest>() {
                out.push((d, decode(k.value(), v.value())?));
            }
        }
        Ok(out)
    }

    fn forget_unused_blob(&self, digest: &Digest, cutoff: u64) -> Result<bool> {
        let tx = self.db.begin_write().map_err(db)?;
        if !forget_in(&tx, digest, cutoff)? {
            return Ok(false);
        }
        tx.commit().map_err(db)?;
        Ok(true)
    }

    fn forgets_in_batches(&self) -> bool {
        true
    }

    /// One transaction (one commit, one fsync) for the whole batch.
    fn forget_unused_blobs(&self, digests: &[Digest], cutoff: u64) -> Result<Vec<bool>> {
        let tx = self.db.begin_write().map_err(db)?;
        let gone = digests.iter().map(|d| forget_in(&tx, d, cutoff)).collect::<Result<Vec<bool>>>()?;
        if gone.contains(&true) {
            tx.commit().map_err(db)?;
        }
        Ok(gone)
    }

    fn try_gc_lock(&self) -> Result<Option<MetaLock>> {
        if self.gc_running.swap(true, Ordering::SeqCst) {
            return Ok(None);
        }
        Ok(Some(MetaLock::new(GcFlag(self.gc_running.clone()))))
    }
}

// ---------------------------------------------------------------------------------------------
// Harbor's model in redb

use crate::harbor::audit::AuditRecord;
use crate::harbor::immutable::ImmutableRule;

#[derive(Serialize, Deserialize)]
struct StoredProject {
    id: u64,
    #[serde(flatten)]
    record: crate::harbor::store::ProjectRecord,
}

#[derive(Serialize, Deserialize)]
struct StoredMember {
    id: u64,
    role: crate::harbor::rbac::Role,
}

#[derive(Serialize, Deserialize)]
struct StoredRegistry {
    name: String,
    #[serde(flatten)]
    record: crate::harbor::proxy::RegistryRecord,
}

#[derive(Serialize, Deserialize)]
struct StoredRobot {
    id: u64,
    #[serde(flatten)]
    record: crate::harbor::store::RobotRecord,
}

impl RedbMetadata {
    fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(table).map_err(db)?;
        match t.get(key).map_err(db)? {
            None => Ok(None),
            Some(v) => decode(key, v.value()).map(Some),
        }
    }

    fn all_json<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
    ) -> Result<Vec<(String, T)>> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(table).map_err(db)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(db)? {
            let (k, v) = item.map_err(db)?;
            out.push((k.value().to_string(), decode(k.value(), v.value())?));
        }
        Ok(out)
    }

    /// Replaces the value under `key` when there is one; whether there was.
    fn replace_json<T: Serialize>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        f: impl FnOnce(&[u8]) -> Result<T>,
    ) -> Result<bool> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut t = tx.open_table(table).map_err(db)?;
            let new = match t.get(key).map_err(db)? {
                None => return Ok(false),
                Some(v) => f(v.value())?,
            };
            t.insert(key, encode(&new).as_slice()).map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(true)
    }
}

/// Removes every key of `table` in `from..to`.
fn remove_range(t: &mut redb::Table<&str, &[u8]>, from: &str, to: &str) -> Result<()> {
    let mut doomed = Vec::new();
    for item in t.range::<&str>(from..to).map_err(db)? {
        doomed.push(item.map_err(db)?.0.value().to_string());
    }
    for k in doomed {
        t.remove(k.as_str()).map_err(db)?;
    }
    Ok(())
}

impl crate::harbor::store::IamStore for RedbMetadata {
    fn create_project(
        &self,
        name: &str,
        record: &crate::harbor::store::ProjectRecord,
        admin: Option<&str>,
    ) -> Result<Option<u64>> {
        let tx = self.db.begin_write().map_err(db)?;
        let id = {
            let mut t = tx.open_table(PROJECTS).map_err(db)?;
            if t.get(name).map_err(db)?.is_some() {
                return Ok(None);
            }
            let id = next_id(&tx, "project")?;
            t.insert(name, encode(&StoredProject { id, record: record.clone() }).as_slice()).map_err(db)?;
            id
        };
        if let Some(user) = admin {
            let mid = next_id(&tx, "member")?;
            let m = StoredMember { id: mid, role: crate::harbor::rbac::Role::ProjectAdmin };
            tx.open_table(MEMBERS).map_err(db)?.insert(key2(name, user).as_str(), encode(&m).as_slice()).map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(Some(id))
    }

    fn project(&self, name: &str) -> Result<Option<crate::harbor::store::Project>> {
        Ok(self.get_json::<StoredProject>(PROJECTS, name)?.map(|p| crate::harbor::store::Project {
            id: p.id,
            name: name.to_string(),
            record: p.record,
        }))
    }

    fn projects(&self) -> Result<Vec<crate::harbor::store::Project>> {
        Ok(self
            .all_json::<StoredProject>(PROJECTS)?
            .into_iter()
            .map(|(name, p)| crate::harbor::store::Project { id: p.id, name, record: p.record })
            .collect())
    }

    fn update_project(&self, name: &str, record: &crate::harbor::store::ProjectRecord) -> Result<bool> {
        self.replace_json(PROJECTS, name, |old| {
            let old: StoredProject = decode(name, old)?;
            Ok(StoredProject { id: old.id, record: record.clone() })
        })
    }

    fn delete_project(&self, name: &str) -> Result<bool> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            if tx.open_table(PROJECTS).map_err(db)?.remove(name).map_err(db)?.is_none() {
                return Ok(false);
            }
            let (from, to) = under(name, None);
            remove_range(&mut tx.open_table(MEMBERS).map_err(db)?, &from, &to)?;
            let prefix = format!("{}{name}+", crate::harbor::ROBOT_PREFIX);
            let end = format!("{}{name},", crate::harbor::ROBOT_PREFIX); // ',' follows '+'
            remove_range(&mut tx.open_table(ROBOTS).map_err(db)?, &prefix, &end)?;
            remove_range(&mut tx.open_table(IMMUTABLE).map_err(db)?, &from, &to)?;
        }
        tx.commit().map_err(db)?;
        Ok(true)
    }

    fn put_member(&self, project: &str, user: &str, role: crate::harbor::rbac::Role) -> Result<Option<u64>> {
        let tx = self.db.begin_write().map_err(db)?;
        let id = {
            if tx.open_table(PROJECTS).map_err(db)?.get(project).map_err(db)?.is_none()
                || tx.open_table(USERS).map_err(db)?.get(user).map_err(db)?.is_none()
            {
                return Ok(None);
            }
            let key = key2(project, user);
            let mut t = tx.open_table(MEMBERS).map_err(db)?;
            let existing = match t.get(key.as_str()).map_err(db)? {
                Some(v) => Some(decode::<StoredMember>(&key, v.value())?.id),
                None => None,
            };
            let id = match existing {
                Some(id) => id,
                None => next_id(&tx, "member")?,
            };
            t.insert(key.as_str(), encode(&StoredMember { id, role }).as_slice()).map_err(db)?;
            id
        };
        tx.commit().map_err(db)?;
        Ok(Some(id))
    }

    fn member(&self, project: &str, user: &str) -> Result<Option<crate::harbor::store::Member>> {
        Ok(self.get_json::<StoredMember>(MEMBERS, &key2(project, user))?.map(|m| crate::harbor::store::Member {
            id: m.id,
            project: project.to_string(),
            user: user.to_string(),
            role: m.role,
        }))
    }

    fn members(&self, project: &str) -> Result<Vec<crate::harbor::store::Member>> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(MEMBERS).map_err(db)?;
        let (from, to) = under(project, None);
        let mut out = Vec::new();
        for item in t.range::<&str>(from.as_str()..to.as_str()).map_err(db)? {
            let (k, v) = item.map_err(db)?;
            let Some((_, user)) = k.value().split_once(SEP) else { continue };
            let m: StoredMember = decode(k.value(), v.value())?;
            out.push(crate::harbor::store::Member {
                id: m.id,
                project: project.to_string(),
                user: user.to_string(),
                role: m.role,
            });
        }
        Ok(out)
    }

    fn delete_member(&self, project: &str, user: &str) -> Result<bool> {
        let tx = self.db.begin_write().map_err(db)?;
        let removed = tx.open_table(MEMBERS).map_err(db)?.remove(key2(project, user).as_str()).map_err(db)?.is_some();
        tx.commit().map_err(db)?;
        Ok(removed)
    }

    fn users(&self) -> Result<Vec<(String, UserRecord)>> {
        self.all_json(USERS)
    }

    fn update_user(&self, name: &str, record: &UserRecord) -> Result<bool> {
        self.replace_json(USERS, name, |old| {
            let old: UserRecord = decode(name, old)?;
            Ok(UserRecord { id: old.id, ..record.clone() })
        })
    }

    fn delete_user(&self, name: &str) -> Result<bool> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            if tx.open_table(USERS).map_err(db)?.remove(name).map_err(db)?.is_none() {
                return Ok(false);
            }
            let mut members = tx.open_table(MEMBERS).map_err(db)?;
            let mut doomed = Vec::new();
            for item in members.iter().map_err(db)? {
                let k = item.map_err(db)?.0.value().to_string();
                if k.split_once(SEP).is_some_and(|(_, u)| u == name) {
                    doomed.push(k);
                }
            }
            for k in doomed {
                members.remove(k.as_str()).map_err(db)?;
            }
        }
        tx.commit().map_err(db)?;
        Ok(true)
    }

    fn create_robot(&self, name: &str, record: &crate::harbor::store::RobotRecord) -> Result<Option<u64>> {
        let tx = self.db.begin_write().map_err(db)?;
        let id = {
            if tx.open_table(PROJECTS).map_err(db)?.get(record.project.as_str()).map_err(db)?.is_none() {
                return Ok(None);
            }
            let mut t = tx.open_table(ROBOTS).map_err(db)?;
            if t.get(name).map_err(db)?.is_some() {
                return Ok(None);
            }
            let id = next_id(&tx, "robot")?;
            t.insert(name, encode(&StoredRobot { id, record: record.clone() }).as_slice()).map_err(db)?;
            id
        };
        tx.commit().map_err(db)?;
        Ok(Some(id))
    }

    fn robot(&self, name: &str) -> Result<Option<crate::harbor::store::Robot>> {
        Ok(self.get_json::<StoredRobot>(ROBOTS, name)?.map(|r| crate::harbor::store::Robot {
            id: r.id,
            name: name.to_string(),
            record: r.record,
        }))
    }

    fn robots(&self) -> Result<Vec<crate::harbor::store::Robot>> {
        Ok(self
            .all_json::<StoredRobot>(ROBOTS)?
            .into_iter()
            .map(|(name, r)| crate::harbor::store::Robot { id: r.id, name, record: r.record })
            .collect())
    }

    fn update_robot(&self, name: &str, record: &crate::harbor::store::RobotRecord) -> Result<bool> {
        self.replace_json(ROBOTS, name, |old| {
            let old: StoredRobot = decode(name, old)?;
            Ok(StoredRobot { id: old.id, record: record.clone() })
        })
    }

    fn delete_robot(&self, name: &str) -> Result<bool> {
        let tx = self.db.begin_write().map_err(db)?;
        let removed = tx.open_table(ROBOTS).map_err(db)?.remove(name).map_err(db)?.is_some();
        tx.commit().map_err(db)?;
        Ok(removed)
    }

    fn repo_manifests(&self, repo: &str) -> Result<Vec<(Digest, ManifestRecord)>> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(MANIFESTS).map_err(db)?;
        let (from, to) = under(repo, None);
        let mut out = Vec::new();
        for item in t.range::<&str>(from.as_str()..to.as_str()).map_err(db)? {
            let (k, v) = item.map_err(db)?;
            let Some(d) = k.value().split_once(SEP).and_then(|(_, d)| d.parse::<Digest>().ok()) else { continue };
            out.push((d, decode(k.value(), v.value())?));
        }
        Ok(out)
    }

    fn project_repos(&self, project: &str) -> Result<Vec<String>> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(MANIFESTS).map_err(db)?;
        // `project/` up to `project0` ('0' follows '/'): every name under the project. Keys are
        // `repo\0digest`, and `\0` sorts first, so one repository's keys come together and in
        // name order.
        let (from, to) = (format!("{project}/"), format!("{project}0"));
        let mut out: Vec<String> = Vec::new();
        for item in t.range::<&str>(from.as_str()..to.as_str()).map_err(db)? {
            let (k, _) = item.map_err(db)?;
            let Some((repo, _)) = k.value().split_once(SEP) else { continue };
            if out.last().map(String::as_str) != Some(repo) {
                out.push(repo.to_string());
            }
        }
        Ok(out)
    }

    fn create_immutable_rule(&self, project: &str, rule: &ImmutableRule) -> Result<Option<u64>> {
        let tx = self.db.begin_write().map_err(db)?;
        let id = {
            if tx.open_table(PROJECTS).map_err(db)?.get(project).map_err(db)?.is_none() {
                return Ok(None);
            }
            let id = next_id(&tx, "rule")?;
            let key = key2(project, &format!("{id:020}"));
            tx.open_table(IMMUTABLE).map_err(db)?.insert(key.as_str(), encode(rule).as_slice()).map_err(db)?;
            id
        };
        tx.commit().map_err(db)?;
        Ok(Some(id))
    }

    fn immutable_rules(&self, project: &str) -> Result<Vec<(u64, ImmutableRule)>> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(IMMUTABLE).map_err(db)?;
        let (from, to) = under(project, None);
        let mut out = Vec::new();
        for item in t.range::<&str>(from.as_str()..to.as_str()).map_err(db)? {
            let (k, v) = item.map_err(db)?;
            let Some(id) = k.value().split_once(SEP).and_then(|(_, id)| id.parse::<u64>().ok()) else { continue };
            out.push((id, decode(k.value(), v.value())?));
        }
        Ok(out)
    }

    fn update_immutable_rule(&self, project: &str, id: u64, rule: &ImmutableRule) -> Result<bool> {
        self.replace_json(IMMUTABLE, &key2(project, &format!("{id:020}")), |_| Ok(rule.clone()))
    }

    fn delete_immutable_rule(&self, project: &str, id: u64) -> Result<bool> {
        let tx = self.db.begin_write().map_err(db)?;
        let key = key2(project, &format!("{id:020}"));
        let removed = tx.open_table(IMMUTABLE).map_err(db)?.remove(key.as_str()).map_err(db)?.is_some();
        tx.commit().map_err(db)?;
        Ok(removed)
    }

    fn create_registry(&self, name: &str, record: &crate::harbor::proxy::RegistryRecord) -> Result<Option<u64>> {
        // The name check and the insert are one write transaction: redb has one writer at a time.
        let tx = self.db.begin_write().map_err(db)?;
        let id = {
            let mut t = tx.open_table(REGISTRIES).map_err(db)?;
            for item in t.iter().map_err(db)? {
                let (k, v) = item.map_err(db)?;
                if decode::<StoredRegistry>(k.value(), v.value())?.name == name {
                    return Ok(None);
                }
            }
            let id = next_id(&tx, "registry")?;
            let stored = StoredRegistry { name: name.to_string(), record: record.clone() };
            t.insert(format!("{id:020}").as_str(), encode(&stored).as_slice()).map_err(db)?;
            id
        };
        tx.commit().map_err(db)?;
        Ok(Some(id))
    }

    fn registries(&self) -> Result<Vec<crate::harbor::proxy::RegistryEndpoint>> {
        let mut out = Vec::new();
        for (key, r) in self.all_json::<StoredRegistry>(REGISTRIES)? {
            let id = key.parse::<u64>().map_err(|e| MetaError::Decode { key, message: e.to_string() })?;
            out.push(crate::harbor::proxy::RegistryEndpoint { id, name: r.name, record: r.record });
        }
        Ok(out)
    }

    fn create_job_record(&self, kind: &str, doc: &[u8]) -> Result<u64> {
        let tx = self.db.begin_write().map_err(db)?;
        let id = next_id(&tx, "job")?;
        let key = key2(kind, &format!("{id:020}"));
        tx.open_table(JOBS).map_err(db)?.insert(key.as_str(), doc).map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(id)
    }

    fn job_record(&self, kind: &str, id: u64) -> Result<Option<Vec<u8>>> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(JOBS).map_err(db)?;
        let key = key2(kind, &format!("{id:020}"));
        Ok(t.get(key.as_str()).map_err(db)?.map(|v| v.value().to_vec()))
    }

    fn job_records(&self, kind: &str) -> Result<Vec<(u64, Vec<u8>)>> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(JOBS).map_err(db)?;
        let (from, to) = under(kind, None);
        let mut out = Vec::new();
        for item in t.range::<&str>(from.as_str()..to.as_str()).map_err(db)? {
            let (k, v) = item.map_err(db)?;
            let Some(id) = k.value().split_once(SEP).and_then(|(_, id)| id.parse::<u64>().ok()) else { continue };
            out.push((id, v.value().to_vec()));
        }
        Ok(out)
    }

    fn update_registry(&self, id: u64, name: &str, record: &crate::harbor::proxy::RegistryRecord) -> Result<bool> {
        let stored = StoredRegistry { name: name.to_string(), record: record.clone() };
        self.replace_json(REGISTRIES, &format!("{id:020}"), |_| Ok(stored))
    }

    fn delete_registry(&self, id: u64) -> Result<bool> {
        let tx = self.db.begin_write().map_err(db)?;
        let removed =
            tx.open_table(REGISTRIES).map_err(db)?.remove(format!("{id:020}").as_str()).map_err(db)?.is_some();
        tx.commit().map_err(db)?;
        Ok(removed)
    }

    fn update_job_record(&self, kind: &str, id: u64, doc: &[u8]) -> Result<bool> {
        let tx = self.db.begin_write().map_err(db)?;
        let key = key2(kind, &format!("{id:020}"));
        let found = {
            let mut t = tx.open_table(JOBS).map_err(db)?;
            let found = t.get(key.as_str()).map_err(db)?.is_some();
            if found {
                t.insert(key.as_str(), doc).map_err(db)?;
            }
            found
        };
        tx.commit().map_err(db)?;
        Ok(found)
    }

    fn delete_job_record(&self, kind: &str, id: u64) -> Result<bool> {
        let tx = self.db.begin_write().map_err(db)?;
        let key = key2(kind, &format!("{id:020}"));
        let removed = tx.open_table(JOBS).map_err(db)?.remove(key.as_str()).map_err(db)?.is_some();
        tx.commit().map_err(db)?;
        Ok(removed)
    }

    fn claim_scheduled_run(&self, name: &str, due: u64) -> Result<bool> {
        let tx = self.db.begin_write().map_err(db)?;
        let claimed = {
            let mut t = tx.open_table(CLAIMS).map_err(db)?;
            let last = t.get(name).map_err(db)?.map(|v| v.value());
            let claimed = last.is_none_or(|l| l < due);
            if claimed {
                t.insert(name, due).map_err(db)?;
            }
            claimed
        };
        tx.commit().map_err(db)?;
        Ok(claimed)
    }

    fn project_storage(&self, project: &str) -> Result<Vec<(Digest, u64)>> {
        // `p/` .. `p0` ('0' follows '/') is every repository of project `p`.
        let (from, to) = (format!("{project}/"), format!("{project}0"));
        let tx = self.db.begin_read().map_err(db)?;
        let mut seen: BTreeMap<String, u64> = BTreeMap::new();
        // Links are keyed digest first: the project's are found by a walk of them all.
        for item in tx.open_table(LINKS).map_err(db)?.iter().map_err(db)? {
            let (k, v) = item.map_err(db)?;
            if let Some((d, repo)) = k.value().split_once(SEP) {
                if repo >= from.as_str() && repo < to.as_str() {
                    seen.insert(d.to_string(), v.value());
                }
            }
        }
        for item in tx.open_table(MANIFESTS).map_err(db)?.range::<&str>(from.as_str()..to.as_str()).map_err(db)? {
            let (k, v) = item.map_err(db)?;
            if let Some((_, d)) = k.value().split_once(SEP) {
                if !seen.contains_key(d) {
                    let record: ManifestRecord = decode(k.value(), v.value())?;
                    seen.insert(d.to_string(), record.size);
                }
            }
        }
        Ok(seen.into_iter().filter_map(|(d, size)| d.parse::<Digest>().ok().map(|d| (d, size))).collect())
    }

    fn repo_tags(&self, repo: &str) -> Result<Vec<(String, Digest)>> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(TAGS).map_err(db)?;
        let (from, to) = under(repo, None);
        let mut out = Vec::new();
        for item in t.range::<&str>(from.as_str()..to.as_str()).map_err(db)? {
            let (k, v) = item.map_err(db)?;
            let (Some((_, tag)), Ok(d)) = (k.value().split_once(SEP), v.value().parse::<Digest>()) else { continue };
            out.push((tag.to_string(), d));
        }
        Ok(out)
    }

    fn delete_repository(&self, repo: &str) -> Result<usize> {
        let tx = self.db.begin_write().map_err(db)?;
        let n = {
            let (from, to) = under(repo, None);
            let mut manifests = tx.open_table(MANIFESTS).map_err(db)?;
            let mut doomed = Vec::new();
            for item in manifests.range::<&str>(from.as_str()..to.as_str()).map_err(db)? {
                let (k, v) = item.map_err(db)?;
                doomed.push((k.value().to_string(), decode::<ManifestRecord>(k.value(), v.value())?));
            }
            let mut uses = tx.open_table(USES).map_err(db)?;
            let mut referrers = tx.open_table(REFERRERS).map_err(db)?;
            for (key, record) in &doomed {
                manifests.remove(key.as_str()).map_err(db)?;
                let Some((_, d)) = key.split_once(SEP) else { continue };
                uses.remove(key3(d, repo, d).as_str()).map_err(db)?;
                for used in record.blobs.iter().chain(&record.manifests) {
                    uses.remove(key3(&used.to_string(), repo, d).as_str()).map_err(db)?;
                }
                if let Some(subject) = &record.subject {
                    referrers.remove(key3(repo, &subject.to_string(), d).as_str()).map_err(db)?;
                }
            }
            let mut tags = tx.open_table(TAGS).map_err(db)?;
            let mut gone = Vec::new();
            for item in tags.range::<&str>(from.as_str()..to.as_str()).map_err(db)? {
                gone.push(item.map_err(db)?.0.value().to_string());
            }
            for k in gone {
                tags.remove(k.as_str()).map_err(db)?;
            }
            tx.open_table(REPO_DESCRIPTIONS).map_err(db)?.remove(repo).map_err(db)?;
            doomed.len()
        };
        tx.commit().map_err(db)?;
        Ok(n)
    }

    fn repo_description(&self, repo: &str) -> Result<Option<String>> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(REPO_DESCRIPTIONS).map_err(db)?;
        Ok(t.get(repo).map_err(db)?.map(|v| v.value().to_string()))
    }

    fn set_repo_description(&self, repo: &str, description: &str) -> Result<()> {
        let tx = self.db.begin_write().map_err(db)?;
        tx.open_table(REPO_DESCRIPTIONS).map_err(db)?.insert(repo, description).map_err(db)?;
        tx.commit().map_err(db)
    }

    fn append_audit(&self, records: &[AuditRecord], max_records: u64, keep_from: Option<u64>) -> Result<()> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            for r in records {
                let id = next_id(&tx, "audit")?;
                tx.open_table(AUDIT)
                    .map_err(db)?
                    .insert(format!("{id:020}").as_str(), encode(r).as_slice())
                    .map_err(db)?;
            }
            // Keys are ids in order, and ids follow time: the oldest are first.
            let mut t = tx.open_table(AUDIT).map_err(db)?;
            let mut excess = t.len().map_err(db)?.saturating_sub(max_records);
            let mut doomed = Vec::new();
            for item in t.iter().map_err(db)? {
                let (k, v) = item.map_err(db)?;
                let old = excess > 0
                    || keep_from.is_some_and(|from| {
                        decode::<AuditRecord>(k.value(), v.value()).is_ok_and(|r| r.op_time < from)
                    });
                if !old {
                    break;
                }
                excess = excess.saturating_sub(1);
                doomed.push(k.value().to_string());
            }
            for k in doomed {
                t.remove(k.as_str()).map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    fn audit_records(&self, project_id: Option<u64>) -> Result<Vec<(u64, AuditRecord)>> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = tx.open_table(AUDIT).map_err(db)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(db)? {
            let (k, v) = item.map_err(db)?;
            let r: AuditRecord = decode(k.value(), v.value())?;
            if project_id.is_none_or(|p| p == r.project_id) {
                out.push((k.value().parse().unwrap_or(0), r));
            }
        }
        Ok(out)
    }

    fn end_session(&self, id: &str, until: u64, now: u64) -> Result<()> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut t = tx.open_table(ENDED_SESSIONS).map_err(db)?;
            t.retain(|_, until| until > now).map_err(db)?;
            t.insert(id, until).map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(())
    }

    fn session_ended(&self, id: &str) -> Result<bool> {
        let tx = self.db.begin_read().map_err(db)?;
        Ok(tx.open_table(ENDED_SESSIONS).map_err(db)?.get(id).map_err(db)?.is_some())
    }

    fn add_login_failure(&self, key: &str, now: u64, stale_before: u64) -> Result<u32> {
        let tx = self.db.begin_write().map_err(db)?;
        let count = {
            let mut t = tx.open_table(LOGIN_FAILURES).map_err(db)?;
            let before = t.get(key).map_err(db)?.map(|v| v.value()).filter(|(_, last)| *last >= stale_before);
            t.retain(|_, (_, last)| last >= stale_before).map_err(db)?;
            let count = before.map_or(0, |(n, _)| n).saturating_add(1);
            t.insert(key, (count, now)).map_err(db)?;
            count
        };
        tx.commit().map_err(db)?;
        Ok(count)
    }

    fn login_failures(&self, key: &str) -> Result<Option<(u32, u64)>> {
        let tx = self.db.begin_read().map_err(db)?;
        Ok(tx.open_table(LOGIN_FAILURES).map_err(db)?.get(key).map_err(db)?.map(|v| v.value()))
    }

    fn clear_login_failures(&self, key: &str) -> Result<()> {
        let tx = self.db.begin_write().map_err(db)?;
        tx.open_table(LOGIN_FAILURES).map_err(db)?.remove(key).map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(())
    }
}

/// The behaviour every `Metadata` backend must show; a second backend runs the same suite.
#[cfg(test)]
pub(crate) mod suite {
    use super::*;

    fn d(s: &str) -> Digest {
        Digest::of(s.as_bytes())
    }

    fn record(blobs: &[&Digest], manifests: &[&Digest], subject: Option<&Digest>) -> ManifestRecord {
        ManifestRecord {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 10,
            artifact_type: Some("application/x".into()),
            subject: subject.cloned(),
            annotations: BTreeMap::new(),
            blobs: blobs.iter().map(|b| (*b).clone()).collect(),
            manifests: manifests.iter().map(|m| (*m).clone()).collect(),
            created: now(),
        }
    }

    pub fn run(m: &dyn Metadata) {
        let (layer, man, child) = (d("layer"), d("manifest"), d("child"));
        // A manifest needs its blobs linked into its own repository.
        assert_eq!(
            m.put_manifest("r", &man, Some("t"), &record(&[&layer], &[], None)).unwrap(),
            Err(Missing::Blob(layer.clone()))
        );
        m.link_blob("other", &layer, 5).unwrap();
        assert!(m.put_manifest("r", &man, Some("t"), &record(&[&layer], &[], None)).unwrap().is_err());
        assert_eq!(m.mount_blob("r", &layer, Some("nowhere")).unwrap(), None);
        assert_eq!(m.mount_blob("r", &layer, Some("other")).unwrap(), Some(5));
        assert_eq!(m.put_manifest("r", &man, Some("t"), &record(&[&layer], &[], None)).unwrap(), Ok(()));
        assert_eq!(m.tag("r", "t").unwrap(), Some(man.clone()));
        // An index needs its children in the repository.
        let index = record(&[], &[&child], None);
        assert_eq!(m.put_manifest("r", &d("index"), None, &index).unwrap(), Err(Missing::Manifest(child.clone())));
        assert!(m.manifest("r", &d("index")).unwrap().is_none());

        // Tags in lexical order, paged; another repository's never mix in.
        for t in ["b", "a", "c"] {
            m.put_manifest("r", &man, Some(t), &record(&[&layer], &[], None)).unwrap().unwrap();
        }
        m.link_blob("r2", &layer, 5).unwrap();
        m.put_manifest("r2", &man, Some("zz"), &record(&[&layer], &[], None)).unwrap().unwrap();
        assert_eq!(m.tags("r", None, 10).unwrap(), ["a", "b", "c", "t"]);
        assert_eq!(m.tags("r", Some("b"), 1).unwrap(), ["c"]);
        assert_eq!(m.catalog(None, 10).unwrap(), ["other", "r", "r2"]);
        assert_eq!(m.catalog(Some("other"), 1).unwrap(), ["r"]);

        // Referrers of a subject.
        let sig = d("sig");
        m.put_manifest("r", &sig, None, &record(&[&layer], &[], Some(&man))).unwrap().unwrap();
        let refs = m.referrers("r", &man).unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].digest, sig);
        assert!(m.referrers("r2", &man).unwrap().is_empty());

        // A used blob is never forgotten; once unused (and old enough) it is. In a batch, each
        // one is as it would be alone.
        let loose = d("loose");
        m.link_blob("other", &loose, 3).unwrap();
        let both = [layer.clone(), loose.clone()];
        assert_eq!(m.forget_unused_blobs(&both, 0).unwrap(), [false, false], "used; younger than the cutoff");
        assert!(m.blob(&loose).unwrap().is_some());
        assert_eq!(m.forget_unused_blobs(&both, u64::MAX).unwrap(), [false, true]);
        assert!(m.blob(&loose).unwrap().is_none());
        assert_eq!(m.blob_in_repo("other", &loose).unwrap(), None, "its links go with it");
        assert!(m.blob(&layer).unwrap().is_some());
        assert!(!m.forget_unused_blob(&layer, u64::MAX).unwrap());
        assert!(m.delete_manifest("r", &sig).unwrap());
        assert!(m.referrers("r", &man).unwrap().is_empty());
        assert!(m.delete_manifest("r", &man).unwrap());
        assert!(m.tags("r", None, 10).unwrap().is_empty(), "a manifest's tags go with it");
        assert!(!m.forget_unused_blob(&layer, u64::MAX).unwrap(), "r2 still uses it");
        assert!(m.delete_manifest("r2", &man).unwrap());
        assert!(!m.forget_unused_blob(&layer, 0).unwrap(), "younger than the cutoff");
        assert!(m.forget_unused_blob(&layer, u64::MAX).unwrap());
        assert!(m.blob(&layer).unwrap().is_none());
        assert_eq!(m.blob_in_repo("other", &layer).unwrap(), None, "its links go with it");

        // Uploads.
        let u = UploadRecord { repo: "r".into(), started: 1 };
        m.create_upload("0123456789abcdef0123456789abcdef", &u).unwrap();
        assert_eq!(m.upload("0123456789abcdef0123456789abcdef").unwrap(), Some(u));
        m.complete_upload("0123456789abcdef0123456789abcdef", "r", &layer, 5).unwrap();
        assert!(m.uploads().unwrap().is_empty());
        assert_eq!(m.blob_in_repo("r", &layer).unwrap(), Some(5));
        assert!(m.unlink_blob("r", &layer).unwrap());
        assert!(!m.unlink_blob("r", &layer).unwrap());

        // Users: created once, never overwritten.
        assert_eq!(m.user("admin").unwrap(), None);
        let u = UserRecord {
            id: 0,
            salt: "s".into(),
            hash: "h".into(),
            iterations: 1,
            admin: true,
            created: 1,
            email: String::new(),
            realname: String::new(),
        };
        assert!(m.create_user("admin", &u).unwrap());
        let other = UserRecord { hash: "other".into(), ..u.clone() };
        assert!(!m.create_user("admin", &other).unwrap());
        assert_eq!(m.user("admin").unwrap().map(|a| UserRecord { id: 0, ..a }), Some(u));

        // One garbage collection at a time.
        let gc = m.try_gc_lock().unwrap().expect("the GC lock is free");
        assert!(m.try_gc_lock().unwrap().is_none(), "a second GC is refused while the first runs");
        drop(gc);
        assert!(m.try_gc_lock().unwrap().is_some(), "and may run once the first ended");

        // Lexical order is byte order (`-` < `.` < `/` < `2`), whatever a database's collation.
        for r in ["r/sub", "r-dash", "r.dot"] {
            m.link_blob(r, &layer, 5).unwrap();
        }
        assert_eq!(m.catalog(Some("r"), 10).unwrap(), ["r-dash", "r.dot", "r/sub", "r2"]);
        m.touch_blob(&layer).unwrap();
        drop(m.lock_digest(&layer).unwrap());
    }

    #[test]
    fn redb_backend() {
        let dir = std::env::temp_dir().join(format!("wharf-registry-meta-{}", crate::store::random_hex(8).unwrap()));
        std::fs::create_dir_all(&dir).unwrap();
        let m = RedbMetadata::open(&dir.join("registry.db")).unwrap();
        run(&m);
        crate::harbor::store::suite::run(&m);
        // A second opener is refused while the first holds the file.
        assert!(RedbMetadata::open(&dir.join("registry.db")).is_err());
        drop(m);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
