//! [`PgMetadata`]: the index in PostgreSQL. The schema is made (and later migrated) at start
//! under an advisory lock, its version in `registry_schema`. Every text key is `COLLATE "C"`,
//! so that `ORDER BY` is byte order as the distribution spec's lexical order wants, and every
//! listing is a range scan of a primary key or an index: `WHERE name > $1 ORDER BY name
//! LIMIT $2`.
//!
//! Races between replicas are settled by row locks, not by the registry's in-process locks:
//! a manifest put locks (`FOR KEY SHARE`) the blob and link rows it depends on, and GC locks
//! the blob row it means to forget `FOR UPDATE` before it looks for users, so one waits for
//! the other and sees what it committed. Deadlocks and serialization failures are retried.

use std::sync::Arc;

use wharf_types::Digest;

use super::wire::{ConnConfig, Connection, PgError, Row, StmtResult, TextArray, ToSql, TxStatus};
use super::Pool;
use crate::meta::{
    now, BlobRecord, ManifestRecord, MetaError, MetaLock, Metadata, Missing, Referrer, Result, UploadRecord, UserRecord,
};

/// Advisory lock namespaces (the first key of `pg_advisory_lock(int, int)`), "wha" and a letter.
const LOCK_MIGRATE: i32 = 0x7768_614d;
const LOCK_GC: i32 = 0x7768_6147;
const LOCK_DIGEST: i32 = 0x7768_6144;
const LOCK_QUOTA: i32 = 0x7768_6151;

/// How often a statement is run again after a deadlock, a serialization failure, or a pooled
/// connection that turned out dead.
const TRIES: usize = 5;

/// A blob named by a client is marked young again at most once a second: a blob pulled many
/// times a second must not become as many writes, and a grace period is seconds at least.
const TOUCH_EVERY: u64 = 1;

/// Each entry takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE repos (
    name text COLLATE "C" PRIMARY KEY,
    created bigint NOT NULL
);
-- Every blob the store holds, manifests included; `linked` is when it was last stored,
-- linked or named by a client (GC's grace).
CREATE TABLE blobs (
    digest text COLLATE "C" PRIMARY KEY,
    size bigint NOT NULL,
    linked bigint NOT NULL
);
-- The blob may be read through that repository. Digest first: GC and put_manifest look up
-- a digest's links; the cascade makes forgetting a blob forget its links.
CREATE TABLE links (
    digest text COLLATE "C" NOT NULL REFERENCES blobs ON DELETE CASCADE,
    repo text COLLATE "C" NOT NULL,
    size bigint NOT NULL,
    PRIMARY KEY (digest, repo)
);
-- `record` is the whole ManifestRecord (JSON); `subject` is copied out of it for the
-- referrers index.
CREATE TABLE manifests (
    repo text COLLATE "C" NOT NULL,
    digest text COLLATE "C" NOT NULL,
    subject text COLLATE "C",
    record jsonb NOT NULL,
    PRIMARY KEY (repo, digest)
);
CREATE INDEX manifests_referrers ON manifests (repo, subject, digest) WHERE subject IS NOT NULL;
CREATE TABLE tags (
    repo text COLLATE "C" NOT NULL,
    tag text COLLATE "C" NOT NULL,
    digest text COLLATE "C" NOT NULL,
    PRIMARY KEY (repo, tag),
    FOREIGN KEY (repo, digest) REFERENCES manifests ON DELETE CASCADE
);
CREATE INDEX tags_manifest ON tags (repo, digest);
-- What keeps a blob alive: a manifest uses its config, layers, index children and itself.
CREATE TABLE uses (
    used text COLLATE "C" NOT NULL REFERENCES blobs,
    repo text COLLATE "C" NOT NULL,
    manifest text COLLATE "C" NOT NULL,
    PRIMARY KEY (used, repo, manifest),
    FOREIGN KEY (repo, manifest) REFERENCES manifests ON DELETE CASCADE
);
CREATE INDEX uses_manifest ON uses (repo, manifest);
CREATE TABLE uploads (
    id text COLLATE "C" PRIMARY KEY,
    repo text COLLATE "C" NOT NULL,
    started bigint NOT NULL
);
CREATE TABLE users (
    name text COLLATE "C" PRIMARY KEY,
    salt text NOT NULL,
    hash text NOT NULL,
    iterations integer NOT NULL,
    admin boolean NOT NULL,
    created bigint NOT NULL
);
"#,
    r#"
-- Secrets every replica must agree on: the token signing key ('token').
CREATE TABLE registry_keys (
    name text COLLATE "C" PRIMARY KEY,
    value text NOT NULL
);
"#,
    r#"
-- Harbor's model: user ids and profiles, projects, members with their roles, robot accounts.
ALTER TABLE users ADD COLUMN id bigserial UNIQUE, ADD COLUMN email text NOT NULL DEFAULT '',
    ADD COLUMN realname text NOT NULL DEFAULT '';
CREATE TABLE projects (
    name text COLLATE "C" PRIMARY KEY,
    id bigserial UNIQUE,
    public boolean NOT NULL,
    owner text NOT NULL,
    created bigint NOT NULL,
    updated bigint NOT NULL,
    -- bytes; NULL is unlimited
    storage_limit bigint
);
-- role is Harbor's role id.
CREATE TABLE members (
    project text COLLATE "C" NOT NULL REFERENCES projects ON DELETE CASCADE,
    username text COLLATE "C" NOT NULL REFERENCES users ON DELETE CASCADE,
    id bigserial UNIQUE,
    role integer NOT NULL,
    PRIMARY KEY (project, username)
);
CREATE INDEX members_user ON members (username);
-- `record` is the whole RobotRecord (JSON); `project` copied out of it for the cascade.
CREATE TABLE robots (
    name text COLLATE "C" PRIMARY KEY,
    id bigserial UNIQUE,
    project text COLLATE "C" NOT NULL REFERENCES projects ON DELETE CASCADE,
    record jsonb NOT NULL
);
-- `record` is the whole ImmutableRule (JSON).
CREATE TABLE immutable_rules (
    id bigserial PRIMARY KEY,
    project text COLLATE "C" NOT NULL REFERENCES projects ON DELETE CASCADE,
    record jsonb NOT NULL
);
CREATE INDEX immutable_rules_project ON immutable_rules (project, id);
"#,
    r#"
-- Proxy-cache projects: upstream registry endpoints (`record` the whole RegistryRecord, JSON)
-- and the endpoint a project caches.
CREATE TABLE registries (
    id bigserial PRIMARY KEY,
    name text COLLATE "C" NOT NULL UNIQUE,
    record jsonb NOT NULL
);
ALTER TABLE projects ADD COLUMN registry_id bigint;
"#,
    r#"
-- The policies' jobs (harbor::jobs): retention policies, executions and tasks, GC runs and
-- schedule, each a JSON document of its kind; and the last claimed slot of each schedule,
-- so that one replica runs a scheduled job once.
CREATE TABLE IF NOT EXISTS job_records (
    kind text COLLATE "C" NOT NULL,
    id bigserial,
    record jsonb NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS schedule_claims (
    name text COLLATE "C" PRIMARY KEY,
    due bigint NOT NULL
);
"#,
    r#"
-- Harbor's audit log (project_id 0: no project) and repository descriptions.
CREATE TABLE audit_logs (
    id bigserial PRIMARY KEY,
    project_id bigint NOT NULL,
    username text NOT NULL,
    resource text NOT NULL,
    resource_type text NOT NULL,
    operation text NOT NULL,
    op_time bigint NOT NULL
);
CREATE INDEX audit_logs_project ON audit_logs (project_id, id);
CREATE INDEX audit_logs_time ON audit_logs (op_time);
CREATE TABLE repo_descriptions (
    repo text COLLATE "C" PRIMARY KEY,
    description text NOT NULL
);
"#,
    r#"
-- Logouts and login failures, seen by every replica: the web UI's sessions are signed
-- cookies, not records, yet a logout must end one everywhere; the login rate limit counts
-- the failures of every replica.
CREATE TABLE ended_sessions (
    id text PRIMARY KEY,
    until bigint NOT NULL
);
CREATE TABLE login_failures (
    key text PRIMARY KEY,
    failures bigint NOT NULL,
    last bigint NOT NULL
);
CREATE INDEX login_failures_last ON login_failures (last);
"#,
];

const UPSERT_BLOB: &str = "INSERT INTO blobs (digest, size, linked) VALUES ($1, $2, $3) \
     ON CONFLICT (digest) DO UPDATE SET size = EXCLUDED.size, linked = EXCLUDED.linked";
const UPSERT_LINK: &str = "INSERT INTO links (digest, repo, size) VALUES ($1, $2, $3) \
     ON CONFLICT (digest, repo) DO UPDATE SET size = EXCLUDED.size";
const TOUCH_REPO: &str = "INSERT INTO repos (name, created) VALUES ($1, $2) ON CONFLICT DO NOTHING";

/// The columns [`user_of`] reads, in its order.
pub(crate) const USER_COLUMNS: &str = "salt, hash, iterations, admin, created, id, email, realname";

pub(crate) fn user_of(r: &Row) -> Result<UserRecord> {
    Ok(UserRecord {
        salt: r.text(0).map_err(db)?.to_string(),
        hash: r.text(1).map_err(db)?.to_string(),
        iterations: u32::try_from(r.int(2).map_err(db)?).unwrap_or(0),
        admin: r.boolean(3).map_err(db)?,
        created: r.uint(4).map_err(db)?,
        id: r.uint(5).map_err(db)?,
        email: r.text(6).map_err(db)?.to_string(),
        realname: r.text(7).map_err(db)?.to_string(),
    })
}

pub struct PgMetadata {
    pool: Arc<Pool>,
    /// Connections that hold a digest's advisory lock while the caller works on storage:
    /// a pool of their own, so that lock holders never wait for a query connection held by
    /// another lock holder.
    locks: Arc<Pool>,
}

pub(crate) fn db(e: PgError) -> MetaError {
    MetaError::Db(e.to_string())
}

pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(key: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| MetaError::Decode { key: key.to_string(), message: e.to_string() })
}

fn digest_of(key: &str, text: &str) -> Result<Digest> {
    text.parse()
        .map_err(|e: wharf_types::DigestError| MetaError::Decode { key: key.to_string(), message: e.to_string() })
}

/// A page size as a `LIMIT` (bigint): callers may ask for "everything" with usize::MAX.
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The second key of a digest's advisory lock: its first 32 bits. Two digests that share it
/// only wait for each other.
impl PgMetadata {
    /// A session-level advisory lock on a connection of the lock pool, held until the
    /// returned lock is dropped.
    fn advisory_lock(&self, space: i32, key: i32) -> Result<Option<MetaLock>> {
        let mut tries = 0;
        loop {
            tries += 1;
            let (mut c, reused) = self.locks.take().map_err(db)?;
            match c.query("SELECT pg_advisory_lock($1, $2)", &[&space, &key]) {
                Ok(_) => {
                    let held = DigestLock { pool: self.locks.clone(), conn: Some(c), space, key };
                    return Ok(Some(MetaLock::new(held)));
                }
                Err(e) => {
                    self.locks.discard(c);
                    if !(tries < TRIES && reused && e.connection_lost()) {
                        return Err(db(e));
                    }
                    self.locks.discard_idle();
                }
            }
        }
    }
}

fn digest_key(digest: &Digest) -> i32 {
    u32::from_str_radix(digest.hex_prefix(8), 16).unwrap_or(0) as i32
}

impl PgMetadata {
    /// Connects (a clear error when the server cannot be reached or refuses the login),
    /// then creates or migrates the schema. `pool_size` bounds the query connections; as
    /// many again may hold digest locks.
    pub fn open(cfg: ConnConfig, pool_size: usize) -> Result<PgMetadata> {
        let target = cfg.to_string();
        let m = PgMetadata {
            pool: Arc::new(Pool::new(cfg.clone(), pool_size)),
            locks: Arc::new(Pool::new(cfg, pool_size)),
        };
        let (mut c, _) = m.pool.take().map_err(|e| MetaError::Db(format!("{target}: {e}")))?;
        let r = migrate(&mut c);
        if r.is_err() && c.status() != TxStatus::Idle && !c.is_broken() {
            let _ = c.simple("ROLLBACK");
        }
        m.pool.give_back(c);
        r.map_err(|e| MetaError::Db(format!("{target}: schema: {e}")))?;
        Ok(m)
    }

    /// Runs `f` on a pooled connection; again on a fresh one when the pooled one had died,
    /// and again after a deadlock or serialization failure. A transaction `f` left open
    /// (it returned early, or failed) is rolled back.
    pub(crate) fn run<T>(&self, mut f: impl FnMut(&mut Connection) -> std::result::Result<T, PgError>) -> Result<T> {
        let mut tries = 0;
        loop {
            tries += 1;
            let (mut c, reused) = self.pool.take().map_err(db)?;
            let r = f(&mut c);
            if c.status() != TxStatus::Idle && !c.is_broken() {
                let _ = c.simple("ROLLBACK");
            }
            self.pool.give_back(c);
            match r {
                Ok(v) => return Ok(v),
                Err(e) if tries < TRIES && e.connection_lost() && reused => self.pool.discard_idle(),
                Err(e) if tries < TRIES && e.retryable() => {
                    // Two transactions that deadlocked once will again if both retry at once:
                    // a short pause that differs between them (and grows) lets one go first.
                    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                    let jitter = u64::from(nanos.subsec_nanos()) % 7;
                    std::thread::sleep(std::time::Duration::from_millis((tries as u64) * (2 + jitter)));
                }
                Err(e) => return Err(db(e)),
            }
        }
    }

    pub(crate) fn one<T>(&self, sql: &str, params: &[&dyn ToSql], f: impl Fn(&Row) -> Result<T>) -> Result<Option<T>> {
        let rows = self.run(|c| c.query(sql, params))?;
        rows.first().map(f).transpose()
    }
}

fn migrate(c: &mut Connection) -> std::result::Result<(), PgError> {
    // The lock makes replicas that start together take turns; the first one migrates.
    c.batch(&[("BEGIN", &[]), ("SELECT pg_advisory_xact_lock($1, 0)", &[&LOCK_MIGRATE])])?;
    c.simple("CREATE TABLE IF NOT EXISTS registry_schema (version integer NOT NULL)")?;
    let rows = c.query("SELECT version FROM registry_schema", &[])?;
    let version = match rows.first() {
        Some(r) => usize::try_from(r.int(0)?).unwrap_or(0),
        None => 0,
    };
    if version > MIGRATIONS.len() {
        return Err(PgError::Config(format!(
            "the schema is at version {version}, newer than this wharf-registry knows ({}): upgrade it",
            MIGRATIONS.len()
        )));
    }
    for m in MIGRATIONS.iter().skip(version) {
        c.simple(m)?;
    }
    let latest = MIGRATIONS.len() as i64;
    if rows.is_empty() {
        c.execute("INSERT INTO registry_schema (version) VALUES ($1)", &[&latest])?;
    } else {
        c.execute("UPDATE registry_schema SET version = $1", &[&latest])?;
    }
    c.simple("COMMIT")
}

/// Holds a digest's advisory lock on a connection of the lock pool until dropped.
struct DigestLock {
    pool: Arc<Pool>,
    conn: Option<Connection>,
    space: i32,
    key: i32,
}

impl Drop for DigestLock {
    fn drop(&mut self) {
        let Some(mut c) = self.conn.take() else { return };
        let unlocked = c.query("SELECT pg_advisory_unlock($1, $2)", &[&self.space, &self.key]);
        match unlocked {
            Ok(rows) if rows.first().and_then(|r| r.opt(0)) == Some("t") => self.pool.give_back(c),
            // Closing the session releases whatever it still holds.
            _ => self.pool.discard(c),
        }
    }
}

/// A batch's digest locks: everything the session holds goes at once.
struct DigestLocks {
    pool: Arc<Pool>,
    conn: Option<Connection>,
}

impl Drop for DigestLocks {
    fn drop(&mut self) {
        let Some(mut c) = self.conn.take() else { return };
        match c.query("SELECT pg_advisory_unlock_all()", &[]) {
            Ok(_) => self.pool.give_back(c),
            _ => self.pool.discard(c),
        }
    }
}

impl Metadata for PgMetadata {
    fn repo_exists(&self, repo: &str) -> Result<bool> {
        Ok(self.one("SELECT 1 FROM repos WHERE name = $1", &[&repo], |_| Ok(()))?.is_some())
    }

    fn catalog(&self, last: Option<&str>, n: usize) -> Result<Vec<String>> {
        let rows = self.run(|c| {
            c.query("SELECT name FROM repos WHERE name > $1 ORDER BY name LIMIT $2", &[&last.unwrap_or(""), &limit(n)])
        })?;
        rows.iter().map(|r| r.text(0).map(str::to_string).map_err(db)).collect()
    }

    fn tags(&self, repo: &str, last: Option<&str>, n: usize) -> Result<Vec<String>> {
        let rows = self.run(|c| {
            c.query(
                "SELECT tag FROM tags WHERE repo = $1 AND tag > $2 ORDER BY tag LIMIT $3",
                &[&repo, &last.unwrap_or(""), &limit(n)],
            )
        })?;
        rows.iter().map(|r| r.text(0).map(str::to_string).map_err(db)).collect()
    }

    fn tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>> {
        self.one("SELECT digest FROM tags WHERE repo = $1 AND tag = $2", &[&repo, &tag], |r| {
            digest_of(tag, r.text(0).map_err(db)?)
        })
    }

    fn manifest(&self, repo: &str, digest: &Digest) -> Result<Option<ManifestRecord>> {
        self.one("SELECT record FROM manifests WHERE repo = $1 AND digest = $2", &[&repo, digest], |r| {
            decode_json(&format!("{repo}@{digest}"), r.text(0).map_err(db)?)
        })
    }

    fn put_manifest(
        &self,
        repo: &str,
        digest: &Digest,
        tag: Option<&str>,
        record: &ManifestRecord,
    ) -> Result<std::result::Result<(), Missing>> {
        let json = serde_json::to_string(record).map_err(|e| MetaError::Db(format!("encode manifest record: {e}")))?;
        let mut used: Vec<&Digest> = vec![digest];
        for d in record.blobs.iter().chain(&record.manifests) {
            if !used.contains(&d) {
                used.push(d);
            }
        }
        let t = now();
        self.run(|c| {
            // The rows this manifest depends on, locked so that GC (which locks a blob row
            // FOR UPDATE before it looks for users) waits for this transaction or is waited for.
            let found = c.batch(&[
                ("BEGIN", &[]),
                (
                    "SELECT l.digest FROM links l JOIN blobs b ON b.digest = l.digest \
                     WHERE l.repo = $1 AND l.digest = ANY($2::text[]) FOR KEY SHARE",
                    &[&repo, &TextArray(&record.blobs)],
                ),
                (
                    "SELECT digest FROM manifests WHERE repo = $1 AND digest = ANY($2::text[]) FOR KEY SHARE",
                    &[&repo, &TextArray(&record.manifests)],
                ),
            ])?;
            // One result per statement: BEGIN's, then the linked blobs, then the children.
            let (blobs, children) = (found.get(1), found.get(2));
            let present = |result: Option<&StmtResult>, d: &Digest| {
                let d = d.to_string();
                result.is_some_and(|r| r.rows.iter().any(|row| row.opt(0) == Some(d.as_str())))
            };
            if let Some(b) = record.blobs.iter().find(|b| !present(blobs, b)) {
                c.simple("ROLLBACK")?;
                return Ok(Err(Missing::Blob(b.clone())));
            }
            if let Some(m) = record.manifests.iter().find(|m| !present(children, m)) {
                c.simple("ROLLBACK")?;
                return Ok(Err(Missing::Manifest(m.clone())));
            }
            let used = TextArray(&used);
            let blob: [&dyn ToSql; 3] = [digest, &record.size, &t];
            let repo_row: [&dyn ToSql; 2] = [&repo, &t];
            let manifest: [&dyn ToSql; 4] = [&repo, digest, &record.subject, &json];
            let uses: [&dyn ToSql; 3] = [&used, &repo, digest];
            let tag_row: [&dyn ToSql; 3] = [&repo, &tag, digest];
            let mut stmts: Vec<(&str, &[&dyn ToSql])> = vec![
                (UPSERT_BLOB, &blob),
                (TOUCH_REPO, &repo_row),
                (
                    "INSERT INTO manifests (repo, digest, subject, record) VALUES ($1, $2, $3, $4::jsonb) \
                     ON CONFLICT (repo, digest) DO UPDATE SET subject = EXCLUDED.subject, record = EXCLUDED.record",
                    &manifest,
                ),
                (
                    "INSERT INTO uses (used, repo, manifest) SELECT u, $2, $3 FROM unnest($1::text[]) AS u \
                     ON CONFLICT DO NOTHING",
                    &uses,
                ),
            ];
            if tag.is_some() {
                stmts.push((
                    "INSERT INTO tags (repo, tag, digest) VALUES ($1, $2, $3) \
                     ON CONFLICT (repo, tag) DO UPDATE SET digest = EXCLUDED.digest",
                    &tag_row,
                ));
            }
            stmts.push(("COMMIT", &[]));
            c.batch(&stmts)?;
            Ok(Ok(()))
        })
    }

    fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<bool> {
        // Its tags and uses go with it (ON DELETE CASCADE), its referrer entry is its row.
        let n = self.run(|c| c.execute("DELETE FROM manifests WHERE repo = $1 AND digest = $2", &[&repo, digest]))?;
        Ok(n > 0)
    }

    fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool> {
        Ok(self.run(|c| c.execute("DELETE FROM tags WHERE repo = $1 AND tag = $2", &[&repo, &tag]))? > 0)
    }

    fn blob_in_repo(&self, repo: &str, digest: &Digest) -> Result<Option<u64>> {
        self.one("SELECT size FROM links WHERE digest = $1 AND repo = $2", &[digest, &repo], |r| r.uint(0).map_err(db))
    }

    fn blob(&self, digest: &Digest) -> Result<Option<BlobRecord>> {
        self.one("SELECT size, linked FROM blobs WHERE digest = $1", &[digest], |r| {
            Ok(BlobRecord { size: r.uint(0).map_err(db)?, linked: r.uint(1).map_err(db)? })
        })
    }

    fn link_blob(&self, repo: &str, digest: &Digest, size: u64) -> Result<()> {
        let t = now();
        self.run(|c| {
            c.batch(&[
                (UPSERT_BLOB, &[digest, &size, &t]),
                (UPSERT_LINK, &[digest, &repo, &size]),
                (TOUCH_REPO, &[&repo, &t]),
            ])
        })?;
        Ok(())
    }

    fn complete_upload(&self, id: &str, repo: &str, digest: &Digest, size: u64) -> Result<()> {
        let t = now();
        self.run(|c| {
            c.batch(&[
                (UPSERT_BLOB, &[digest, &size, &t]),
                (UPSERT_LINK, &[digest, &repo, &size]),
                (TOUCH_REPO, &[&repo, &t]),
                ("DELETE FROM uploads WHERE id = $1", &[&id]),
            ])
        })?;
        Ok(())
    }

    fn mount_blob(&self, repo: &str, digest: &Digest, from: Option<&str>) -> Result<Option<u64>> {
        let t = now();
        self.run(|c| {
            // The blob row is locked as GC would lock it: a mount waits for a GC that is
            // forgetting the blob (and then finds nothing), or GC waits and finds it young.
            let found = match from {
                Some(from) => c.batch(&[
                    ("BEGIN", &[]),
                    (
                        "SELECT l.size FROM links l JOIN blobs b ON b.digest = l.digest \
                         WHERE l.digest = $1 AND l.repo = $2 FOR UPDATE OF b",
                        &[digest, &from],
                    ),
                ])?,
                None => {
                    c.batch(&[("BEGIN", &[]), ("SELECT size FROM blobs WHERE digest = $1 FOR UPDATE", &[digest])])?
                }
            };
            // found[0] is BEGIN's.
            let size = match found.get(1).and_then(|r| r.rows.first()) {
                Some(row) => row.uint(0)?,
                None => {
                    c.simple("ROLLBACK")?;
                    return Ok(None);
                }
            };
            c.batch(&[
                (UPSERT_BLOB, &[digest, &size, &t]),
                (UPSERT_LINK, &[digest, &repo, &size]),
                (TOUCH_REPO, &[&repo, &t]),
                ("COMMIT", &[]),
            ])?;
            Ok(Some(size))
        })
    }

    fn unlink_blob(&self, repo: &str, digest: &Digest) -> Result<bool> {
        Ok(self.run(|c| c.execute("DELETE FROM links WHERE digest = $1 AND repo = $2", &[digest, &repo]))? > 0)
    }

    fn referrers(&self, repo: &str, subject: &Digest) -> Result<Vec<Referrer>> {
        let rows = self.run(|c| {
            c.query(
                "SELECT digest, record FROM manifests WHERE repo = $1 AND subject = $2 ORDER BY digest",
                &[&repo, subject],
            )
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let d = r.text(0).map_err(db)?;
            out.push(Referrer { digest: digest_of(d, d)?, record: decode_json(d, r.text(1).map_err(db)?)? });
        }
        Ok(out)
    }

    fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        self.one(&format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1"), &[&name], user_of)
    }

    fn create_user(&self, name: &str, u: &UserRecord) -> Result<bool> {
        let n = self.run(|c| {
            c.execute(
                "INSERT INTO users (name, salt, hash, iterations, admin, created, email, realname) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO NOTHING",
                &[&name, &u.salt, &u.hash, &u.iterations, &u.admin, &u.created, &u.email, &u.realname],
            )
        })?;
        Ok(n == 1)
    }

    fn create_upload(&self, id: &str, record: &UploadRecord) -> Result<()> {
        self.run(|c| {
            c.execute(
                "INSERT INTO uploads (id, repo, started) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET repo = EXCLUDED.repo, started = EXCLUDED.started",
                &[&id, &record.repo, &record.started],
            )
        })?;
        Ok(())
    }

    fn upload(&self, id: &str) -> Result<Option<UploadRecord>> {
        self.one("SELECT repo, started FROM uploads WHERE id = $1", &[&id], |r| {
            Ok(UploadRecord { repo: r.text(0).map_err(db)?.to_string(), started: r.uint(1).map_err(db)? })
        })
    }

    fn delete_upload(&self, id: &str) -> Result<()> {
        self.run(|c| c.execute("DELETE FROM uploads WHERE id = $1", &[&id]))?;
        Ok(())
    }

    fn uploads(&self) -> Result<Vec<(String, UploadRecord)>> {
        let rows = self.run(|c| c.query("SELECT id, repo, started FROM uploads ORDER BY id", &[]))?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.text(0).map_err(db)?.to_string(),
                    UploadRecord { repo: r.text(1).map_err(db)?.to_string(), started: r.uint(2).map_err(db)? },
                ))
            })
            .collect()
    }

    fn all_manifests(&self) -> Result<Vec<(String, Digest, ManifestRecord, usize)>> {
        let rows = self.run(|c| {
            c.query(
                "SELECT m.repo, m.digest, m.record, \
                 (SELECT count(*) FROM tags t WHERE t.repo = m.repo AND t.digest = m.digest) \
                 FROM manifests m ORDER BY m.repo, m.digest",
                &[],
            )
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let (repo, d) = (r.text(0).map_err(db)?, r.text(1).map_err(db)?);
            let key = format!("{repo}@{d}");
            let tags = usize::try_from(r.uint(3).map_err(db)?).unwrap_or(usize::MAX);
            out.push((repo.to_string(), digest_of(&key, d)?, decode_json(&key, r.text(2).map_err(db)?)?, tags));
        }
        Ok(out)
    }

    fn all_blobs(&self) -> Result<Vec<(Digest, BlobRecord)>> {
        let rows = self.run(|c| c.query("SELECT digest, size, linked FROM blobs ORDER BY digest", &[]))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let d = r.text(0).map_err(db)?;
            out.push((digest_of(d, d)?, BlobRecord { size: r.uint(1).map_err(db)?, linked: r.uint(2).map_err(db)? }));
        }
        Ok(out)
    }

    fn forget_unused_blob(&self, digest: &Digest, cutoff: u64) -> Result<bool> {
        self.run(|c| {
            // The row lock first: a manifest put that holds the blob's row commits before the
            // check below, which (a new statement, a new snapshot) then sees its uses.
            let found = c.batch(&[
                ("BEGIN", &[]),
                ("SELECT linked FROM blobs WHERE digest = $1 FOR UPDATE", &[digest]),
                ("SELECT EXISTS (SELECT 1 FROM uses WHERE used = $1)", &[digest]),
            ])?;
            // found[0] is BEGIN's, then the blob's row (if any), then whether anything uses it.
            let young = match found.get(1).and_then(|r| r.rows.first()) {
                Some(row) => row.uint(0)? >= cutoff,
                None => false,
            };
            let used = found.get(2).and_then(|r| r.rows.first()).map(|row| row.boolean(0)).transpose()?.unwrap_or(true);
            if young || used {
                c.simple("ROLLBACK")?;
                return Ok(false);
            }
            c.batch(&[
                ("DELETE FROM links WHERE digest = $1", &[digest]),
                ("DELETE FROM blobs WHERE digest = $1", &[digest]),
                ("COMMIT", &[]),
            ])?;
            Ok(true)
        })
    }

    fn forgets_in_batches(&self) -> bool {
        true
    }

    /// One transaction (one durable commit) for the whole batch, each blob checked as in
    /// [`Metadata::forget_unused_blob`]: rows locked first, then its uses read in a new
    /// statement (a new snapshot).
    fn forget_unused_blobs(&self, digests: &[Digest], cutoff: u64) -> Result<Vec<bool>> {
        let list = digests.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",");
        self.run(|c| {
            let found = c.batch(&[
                ("BEGIN", &[]),
                (
                    "SELECT digest, linked FROM blobs WHERE digest = ANY(string_to_array($1, ',')) \
                     ORDER BY digest FOR UPDATE",
                    &[&list],
                ),
                ("SELECT DISTINCT used FROM uses WHERE used = ANY(string_to_array($1, ','))", &[&list]),
            ])?;
            let mut linked = std::collections::HashMap::new();
            for row in found.get(1).map(|r| r.rows.as_slice()).unwrap_or_default() {
                linked.insert(row.text(0)?.to_string(), row.uint(1)?);
            }
            let mut used = std::collections::HashSet::new();
            for row in found.get(2).map(|r| r.rows.as_slice()).unwrap_or_default() {
                used.insert(row.text(0)?.to_string());
            }
            let gone: Vec<bool> = digests
                .iter()
                .map(|d| {
                    let d = d.to_string();
                    // No row: forgotten already, as forget_unused_blob has it.
                    !used.contains(&d) && linked.get(&d).is_none_or(|l| *l < cutoff)
                })
                .collect();
            let doomed: Vec<String> =
                digests.iter().zip(&gone).filter(|(_, g)| **g).map(|(d, _)| d.to_string()).collect();
            if doomed.is_empty() {
                c.simple("ROLLBACK")?;
                return Ok(gone);
            }
            let doomed = doomed.join(",");
            c.batch(&[
                ("DELETE FROM links WHERE digest = ANY(string_to_array($1, ','))", &[&doomed]),
                ("DELETE FROM blobs WHERE digest = ANY(string_to_array($1, ','))", &[&doomed]),
                ("COMMIT", &[]),
            ])?;
            Ok(gone)
        })
    }

    fn try_gc_lock(&self) -> Result<Option<MetaLock>> {
        // A session lock on a connection of its own, held for the whole collection: if this
        // process dies the server closes the session and the lock is free again.
        let mut c = Connection::connect(self.pool.config()).map_err(db)?;
        let rows = c.query("SELECT pg_try_advisory_lock($1, 0)", &[&LOCK_GC]).map_err(db)?;
        if rows.first().and_then(|r| r.opt(0)) == Some("t") {
            Ok(Some(MetaLock::new(c)))
        } else {
            Ok(None)
        }
    }

    fn lock_digest(&self, digest: &Digest) -> Result<Option<MetaLock>> {
        self.advisory_lock(LOCK_DIGEST, digest_key(digest))
    }

    /// Every digest's lock on one session, taken in one statement in key order (so two such
    /// batches cannot deadlock), released together.
    fn lock_digests(&self, digests: &[Digest]) -> Result<Option<MetaLock>> {
        let mut keys: Vec<i32> = digests.iter().map(digest_key).collect();
        keys.sort_unstable();
        keys.dedup();
        let list = keys.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(",");
        let (mut c, _) = self.locks.take().map_err(db)?;
        let sql = "SELECT pg_advisory_lock($1, k) FROM \
                   (SELECT unnest(string_to_array($2, ','))::int AS k ORDER BY 1) AS keys";
        match c.query(sql, &[&LOCK_DIGEST, &list]) {
            Ok(_) => Ok(Some(MetaLock::new(DigestLocks { pool: self.locks.clone(), conn: Some(c) }))),
            Err(e) => {
                self.locks.discard(c);
                Err(db(e))
            }
        }
    }

    fn lock_quota(&self, project: &str) -> Result<Option<MetaLock>> {
        self.advisory_lock(LOCK_QUOTA, digest_key(&Digest::of(project.as_bytes())))
    }

    fn shared_token_key(&self, candidate: &[u8]) -> Result<Option<Vec<u8>>> {
        let candidate = std::str::from_utf8(candidate).map_err(|e| MetaError::Db(format!("token key: {e}")))?;
        self.run(|c| {
            c.execute(
                "INSERT INTO registry_keys (name, value) VALUES ('token', $1) ON CONFLICT (name) DO NOTHING",
                &[&candidate],
            )
        })?;
        let key = self.one("SELECT value FROM registry_keys WHERE name = 'token'", &[], |r| {
            Ok(r.text(0).map_err(db)?.as_bytes().to_vec())
        })?;
        Ok(Some(key.ok_or_else(|| MetaError::Db("the token key vanished after it was stored".into()))?))
    }

    fn touch_blob(&self, digest: &Digest) -> Result<()> {
        let t = now();
        self.run(|c| {
            c.execute(
                "UPDATE blobs SET linked = $2 WHERE digest = $1 AND linked < $3",
                &[digest, &t, &t.saturating_sub(TOUCH_EVERY)],
            )
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::pg::test_cluster::Cluster;

    #[test]
    fn conformance_suite() {
        let cluster = Cluster::start();
        let m = PgMetadata::open(cluster.tcp("postgres"), 4).unwrap();
        crate::meta::suite::run(&m);
        crate::harbor::store::suite::run(&m);
        // Reopening finds the schema at its version and keeps the data.
        drop(m);
        let m = PgMetadata::open(cluster.socket("postgres"), 2).unwrap();
        assert!(m.repo_exists("r2").unwrap());
    }

    #[test]
    fn replicas_agree_on_one_token_key_and_version_1_migrates() {
        let cluster = Cluster::start();
        let a = PgMetadata::open(cluster.tcp("postgres"), 1).unwrap();
        let b = PgMetadata::open(cluster.socket("postgres"), 1).unwrap();
        assert_eq!(a.shared_token_key(b"first").unwrap().as_deref(), Some(&b"first"[..]));
        assert_eq!(b.shared_token_key(b"second").unwrap().as_deref(), Some(&b"first"[..]));
        drop((a, b));
        // A database made by the first schema gets the keys table, its data kept.
        let mut c = Connection::connect(&cluster.socket("postgres")).unwrap();
        c.simple(
            "DROP TABLE registry_keys, robots, members, immutable_rules, projects, registries, audit_logs, \
             repo_descriptions, ended_sessions, login_failures; \
             ALTER TABLE users DROP COLUMN id, DROP COLUMN email, DROP COLUMN realname; \
             UPDATE registry_schema SET version = 1",
        )
        .unwrap();
        let m = PgMetadata::open(cluster.socket("postgres"), 1).unwrap();
        assert_eq!(m.shared_token_key(b"third").unwrap().as_deref(), Some(&b"third"[..]));
        let latest = MIGRATIONS.len() as i64;
        assert_eq!(c.query("SELECT version FROM registry_schema", &[]).unwrap()[0].int(0).unwrap(), latest);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let cluster = Cluster::start();
        drop(PgMetadata::open(cluster.socket("postgres"), 1).unwrap());
        let mut c = Connection::connect(&cluster.socket("postgres")).unwrap();
        c.simple("UPDATE registry_schema SET version = 99").unwrap();
        let e = PgMetadata::open(cluster.socket("postgres"), 1).err().unwrap().to_string();
        assert!(e.contains("version 99, newer than this wharf-registry knows"), "{e}");
    }

    #[test]
    fn login_methods_and_errors() {
        let cluster = Cluster::start();
        let mut su = Connection::connect(&cluster.socket("postgres")).unwrap();
        su.simple(
            "SET password_encryption = 'md5'; CREATE ROLE wharf_md5 LOGIN PASSWORD 'md5 pw'; \
             RESET password_encryption; CREATE ROLE wharf_plain LOGIN PASSWORD 'plain pw'; \
             CREATE ROLE wharf_trust LOGIN; CREATE ROLE wharf_scram LOGIN PASSWORD 'scram pw'",
        )
        .unwrap();
        let url = |user: &str, pw: &str| {
            ConnConfig::parse(&format!("postgres://{user}:{pw}@127.0.0.1:{}/postgres", cluster.port)).unwrap()
        };
        for (user, pw) in [
            ("wharf_md5", "md5%20pw"),
            ("wharf_plain", "plain%20pw"),
            ("wharf_trust", "x"),
            ("wharf_scram", "scram%20pw"),
            ("wharf", "wharf"),
        ] {
            let mut c = Connection::connect(&url(user, pw)).unwrap_or_else(|e| panic!("{user}: {e}"));
            let rows = c.query("SELECT current_user, $1::int + 1", &[&41i64]).unwrap();
            assert_eq!(rows[0].0, [Some(user.to_string()), Some("42".to_string())]);
        }
        for user in ["wharf_md5", "wharf_plain", "wharf_scram"] {
            let e = Connection::connect(&url(user, "wrong")).err().unwrap();
            assert_eq!(e.code(), Some("28P01"), "{user}: {e}");
        }
        let no_password =
            ConnConfig::parse(&format!("postgres://wharf_scram@127.0.0.1:{}/postgres", cluster.port)).unwrap();
        let e = Connection::connect(&no_password).err().unwrap().to_string();
        assert!(e.contains("none is configured"), "{e}");
        // A server error names its SQLSTATE and leaves the connection usable.
        let mut c = Connection::connect(&cluster.tcp("postgres")).unwrap();
        let e = c.query("SELECT * FROM no_such_table", &[]).err().unwrap();
        assert_eq!(e.code(), Some("42P01"), "{e}");
        assert_eq!(c.query("SELECT NULL, 'é'", &[]).unwrap()[0].0, [None, Some("é".to_string())]);
        let odd = ["a", "b\"c", "d\\e", "{,}", ""];
        let rows = c
            .query("SELECT array_length($1::text[], 1), ($1::text[])[2], ($1::text[])[3]", &[&TextArray(&odd)])
            .unwrap();
        assert_eq!(rows[0].0, [Some("5".to_string()), Some("b\"c".to_string()), Some("d\\e".to_string())]);
        // Nobody listening.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let e = PgMetadata::open(ConnConfig::parse(&format!("postgres://u:p@127.0.0.1:{closed}/d")).unwrap(), 1)
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("registry database: postgres://u@127.0.0.1:") && e.contains("refused"), "{e}");
    }

    #[test]
    fn survives_a_server_restart() {
        let cluster = Cluster::start();
        let m = PgMetadata::open(cluster.tcp("postgres"), 3).unwrap();
        m.link_blob("r", &Digest::of(b"x"), 1).unwrap();
        cluster.restart();
        // Every pooled connection died with the old server; the call reconnects.
        assert!(m.repo_exists("r").unwrap());
        assert_eq!(m.catalog(None, 10).unwrap(), ["r"]);
    }

    /// The digest lock holds across processes (two PgMetadata are two replicas' pools).
    #[test]
    fn a_digest_lock_excludes_another_replica() {
        let cluster = Cluster::start();
        let (a, b) = (
            PgMetadata::open(cluster.tcp("postgres"), 2).unwrap(),
            PgMetadata::open(cluster.tcp("postgres"), 2).unwrap(),
        );
        let d = Digest::of(b"contended");
        let held = a.lock_digest(&d).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                let _second = b.lock_digest(&d).unwrap();
                tx.send(()).unwrap();
            });
            assert!(rx.recv_timeout(std::time::Duration::from_millis(500)).is_err(), "both held the lock");
            drop(held);
            rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the lock is free once dropped");
        });
        // Another digest's lock is another lock (unless its first 32 bits collide).
        let _a = a.lock_digest(&Digest::of(b"one")).unwrap();
        let _b = b.lock_digest(&Digest::of(b"two")).unwrap();
        drop((_a, _b));
        // A batch's locks (GC's) hold each of its digests, and go together.
        let batch: Vec<Digest> = (0..20).map(|i| Digest::of(format!("batch {i}").as_bytes())).collect();
        let held = a.lock_digests(&batch).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                let _one = b.lock_digest(&batch[13]).unwrap();
                tx.send(()).unwrap();
            });
            assert!(rx.recv_timeout(std::time::Duration::from_millis(500)).is_err(), "a batch's lock was not held");
            drop(held);
            rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the batch's locks are free once dropped");
        });
        let _again = b.lock_digests(&batch).unwrap();
    }

    /// GC and pushes on separate connections, as on two replicas: a blob that a manifest
    /// came to use is never forgotten, whichever transaction runs first.
    #[test]
    fn forgetting_never_races_a_manifest_put() {
        let cluster = Cluster::start();
        let m = Arc::new(PgMetadata::open(cluster.tcp("postgres"), 8).unwrap());
        let rounds = 40;
        let layers: Vec<Digest> = (0..rounds).map(|i| Digest::of(format!("layer {i}").as_bytes())).collect();
        for l in &layers {
            m.link_blob("r", l, 3).unwrap();
        }
        let pusher = {
            let (m, layers) = (m.clone(), layers.clone());
            std::thread::spawn(move || {
                let mut put = Vec::new();
                for (i, l) in layers.iter().enumerate() {
                    let record = ManifestRecord {
                        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                        size: 2,
                        artifact_type: None,
                        subject: None,
                        annotations: BTreeMap::new(),
                        blobs: vec![l.clone()],
                        manifests: vec![],
                        created: now(),
                    };
                    let digest = Digest::of(format!("manifest {i}").as_bytes());
                    if m.put_manifest("r", &digest, Some(&format!("t{i}")), &record).unwrap().is_ok() {
                        put.push(l.clone());
                    }
                }
                put
            })
        };
        let mut forgotten = Vec::new();
        for l in &layers {
            if m.forget_unused_blob(l, u64::MAX).unwrap() {
                forgotten.push(l.clone());
            }
        }
        let put = pusher.join().unwrap();
        for l in &put {
            assert!(!forgotten.contains(l), "{l} was forgotten although a manifest uses it");
            assert!(m.blob(l).unwrap().is_some());
        }
        assert_eq!(put.len() + forgotten.len(), rounds, "each layer was either used or forgotten");
    }
}
