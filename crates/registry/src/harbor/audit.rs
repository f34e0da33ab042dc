//! Harbor's audit log: who (a user, a robot, or `anonymous`) did what (`operation`) to which
//! `resource` of which `resource_type`, and when (`op_time`), as Harbor records it: pushes
//! (`create` of an `artifact`, `repo:tag` or `repo@digest`), pulls (`pull`), deletions of
//! artifacts, tags and repositories, and the create/update/delete of projects, members,
//! robots, users and immutability rules.
//!
//! Records are written in batches by one background thread ([`AuditLog`]): a request only
//! hands its record to a bounded queue, so pulls do not wait for the index; the thread
//! writes what has gathered (up to [`BATCH`] records, after at most [`LINGER`]) in one
//! transaction of the index, which in that same transaction drops what the [`Retention`] no
//! longer keeps (older than its age, beyond its count), so the log never grows without bound.
//! A reader of the log asks for a [`AuditLog::flush`] first, so it sees this process's
//! records; a replica's are visible once its thread wrote them (within [`LINGER`]).
//!
//! [`Query`] is Harbor's `q` for the log (`operation=create`, `resource=~foo`,
//! `op_time=[a~b]`, `username={a b}`) and its `sort`. Nothing here knows HTTP.

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::auth::{Auth, Subject};
use crate::meta::{now, Metadata};

/// At most this many records go into one transaction.
pub const BATCH: usize = 500;
/// How long the writer waits for more records after the first of a batch.
pub const LINGER: Duration = Duration::from_millis(200);
/// Records waiting for the writer before a request has to wait for room.
const QUEUE: usize = 10_000;

/// The name Harbor gives an unauthenticated caller.
pub const ANONYMOUS: &str = "anonymous";

/// One entry of the log, as the index keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The project's id (Harbor's `project_id`); 0 for what belongs to no project (users).
    pub project_id: u64,
    pub username: String,
    pub resource: String,
    pub resource_type: String,
    pub operation: String,
    /// Unix seconds.
    pub op_time: u64,
}

/// How much of the log is kept: at most `max_records` entries, none older than `max_age`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retention {
    pub max_records: u64,
    pub max_age: Option<Duration>,
}

/// 100,000 entries (some 20 MB) and 90 days.
pub const DEFAULT_MAX_RECORDS: u64 = 100_000;
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(90 * 86400);

impl Default for Retention {
    fn default() -> Retention {
        Retention { max_records: DEFAULT_MAX_RECORDS, max_age: Some(DEFAULT_MAX_AGE) }
    }
}

impl Retention {
    /// The oldest `op_time` kept at `now`, when there is an age limit.
    pub fn keep_from(&self, now: u64) -> Option<u64> {
        self.max_age.map(|a| now.saturating_sub(a.as_secs()))
    }
}

/// A record before its project id is known: events of the registry protocol name the project
/// only; the writer looks it up (once per batch and project).
#[derive(Debug, Clone)]
pub struct Event {
    pub project: Option<String>,
    pub project_id: Option<u64>,
    pub username: String,
    pub resource: String,
    pub resource_type: &'static str,
    pub operation: &'static str,
    pub op_time: u64,
}

enum Msg {
    Event(Event),
    Flush(SyncSender<()>),
}

/// The writer: a queue and the thread that empties it into the index.
pub struct AuditLog {
    tx: SyncSender<Msg>,
    pub retention: Retention,
}

impl AuditLog {
    pub fn start(meta: Arc<dyn Metadata>, retention: Retention) -> std::io::Result<AuditLog> {
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new().name("audit-log".into()).spawn(move || writer(meta.as_ref(), &rx, retention))?;
        Ok(AuditLog { tx, retention })
    }

    /// Queues a record; waits only when the queue is full (the index far behind).
    pub fn record(&self, event: Event) {
        match self.tx.try_send(Msg::Event(event)) {
            Ok(()) => {}
            Err(TrySendError::Full(m)) => {
                if !crate::handlers::block(|| self.tx.send(m).is_ok()) {
                    log::error!("audit log: the writer is gone, a record is lost");
                }
            }
            Err(TrySendError::Disconnected(_)) => log::error!("audit log: the writer is gone, a record is lost"),
        }
    }

    /// Returns once every record queued before the call is written (or failed to be).
    pub fn flush(&self) {
        let (done, wait) = sync_channel(1);
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}

fn writer(meta: &dyn Metadata, rx: &Receiver<Msg>, retention: Retention) {
    let mut batch: Vec<Event> = Vec::new();
    let mut waiting: Vec<SyncSender<()>> = Vec::new();
    while let Ok(first) = rx.recv() {
        let started = Instant::now();
        let mut next = Some(first);
        loop {
            match next.take() {
                Some(Msg::Event(e)) => batch.push(e),
                Some(Msg::Flush(done)) => {
                    waiting.push(done);
                    break;
                }
                None => {}
            }
            if batch.len() >= BATCH {
                break;
            }
            let left = LINGER.saturating_sub(started.elapsed());
            match rx.recv_timeout(left) {
                Ok(m) => next = Some(m),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if !batch.is_empty() {
            let n = batch.len();
            if let Err(e) = write(meta, std::mem::take(&mut batch), &retention) {
                log::error!("audit log: writing {n} records: {e}");
            }
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

fn write(meta: &dyn Metadata, events: Vec<Event>, retention: &Retention) -> crate::meta::Result<()> {
    let mut ids: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut records = Vec::with_capacity(events.len());
    for e in events {
        let project_id = match (e.project_id, &e.project) {
            (Some(id), _) => id,
            (None, None) => 0,
            (None, Some(p)) => match ids.get(p) {
                Some(id) => *id,
                None => {
                    let id = meta.project(p)?.map(|p| p.id).unwrap_or(0);
                    ids.insert(p.clone(), id);
                    id
                }
            },
        };
        records.push(AuditRecord {
            project_id,
            username: e.username,
            resource: e.resource,
            resource_type: e.resource_type.to_string(),
            operation: e.operation.to_string(),
            op_time: e.op_time,
        });
    }
    meta.append_audit(&records, retention.max_records, retention.keep_from(now()))
}

/// The name the log gives a subject.
pub fn username(subject: &Subject) -> String {
    match subject {
        Subject::Anonymous => ANONYMOUS.to_string(),
        s => s.name().to_string(),
    }
}

/// Who a registry request that [`Auth::check`] let through comes from: a token's subject, the
/// user of Basic credentials, or anonymous. (The request was checked already: this only reads
/// the name.)
pub fn operator(auth: &Auth, authorization: Option<&str>) -> String {
    let Some(header) = authorization else {
        return ANONYMOUS.to_string();
    };
    if let Some((scheme, token)) = header.trim().split_once(' ') {
        if scheme.eq_ignore_ascii_case("bearer") {
            return match auth.signer.verify(token.trim(), "access") {
                Ok(c) if !c.sub.is_empty() => c.sub,
                _ => ANONYMOUS.to_string(),
            };
        }
    }
    crate::auth::parse_basic(header).map(|(u, _)| u).unwrap_or_else(|| ANONYMOUS.to_string())
}

/// `repo:tag`, or `repo@digest` for a reference that is a digest.
pub fn artifact_resource(repo: &str, reference: &str) -> String {
    if reference.contains(':') {
        format!("{repo}@{reference}")
    } else {
        format!("{repo}:{reference}")
    }
}

/// A manifest request of the registry protocol that succeeded: a pull (GET), a push (PUT),
/// or a deletion (DELETE, of a tag or of a manifest by digest).
pub fn manifest_event(log: &AuditLog, who: String, method: &str, repo: &str, reference: &str) {
    let (operation, resource_type) = match method {
        "GET" => ("pull", "artifact"),
        "PUT" => ("create", "artifact"),
        "DELETE" if reference.contains(':') => ("delete", "artifact"),
        "DELETE" => ("delete", "tag"),
        _ => return,
    };
    log.record(Event {
        project: super::project_of(repo).map(str::to_string),
        project_id: None,
        username: who,
        resource: artifact_resource(repo, reference),
        resource_type,
        operation,
        op_time: now(),
    });
}

// ---------------------------------------------------------------------------------------------
// Queries

/// How a field must match.
#[derive(Debug, Clone, PartialEq)]
pub enum Match {
    Exact(String),
    /// `=~v`: contains `v`.
    Fuzzy(String),
    /// `={a b}`: any of them.
    AnyOf(Vec<String>),
}

impl Match {
    fn test(&self, value: &str) -> bool {
        match self {
            Match::Exact(v) => value == v,
            Match::Fuzzy(v) => value.contains(v.as_str()),
            Match::AnyOf(vs) => vs.iter().any(|v| v == value),
        }
    }
}

/// A sort key and whether it is descending.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SortKey {
    Id,
    OpTime,
    Username,
    Resource,
    ResourceType,
    Operation,
}

/// Harbor's `q` and `sort` for the audit log.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    pub fields: Vec<(&'static str, Match)>,
    /// `op_time=[from~to]`, both ends included; either may be open.
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub sort: Vec<(SortKey, bool)>,
}

const FIELDS: [&str; 4] = ["username", "resource", "resource_type", "operation"];

impl Query {
    /// Parses `q` (`k=v`, `k=~v`, `k={a b}`, `op_time=[a~b]`, comma-separated) and `sort`
    /// (`op_time`, `-op_time`, comma-separated). The error names what is wrong.
    pub fn parse(q: &str, sort: Option<&str>) -> Result<Query, String> {
        let mut out = Query::default();
        for part in q.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(format!("q: {part:?} is not key=value"));
            };
            let (k, v) = (k.trim(), v.trim());
            if k == "op_time" {
                let Some(range) = v.strip_prefix('[').and_then(|r| r.strip_suffix(']')) else {
                    let t = parse_time(v).map_err(|e| format!("q: op_time: {e}"))?;
                    (out.from, out.to) = (Some(t), Some(t));
                    continue;
                };
                let (a, b) = range.split_once('~').ok_or_else(|| format!("q: op_time=[{range}] needs from~to"))?;
                let end = |s: &str| -> Result<Option<u64>, String> {
                    let s = s.trim();
                    if s.is_empty() {
                        Ok(None)
                    } else {
                        parse_time(s).map(Some).map_err(|e| format!("q: op_time: {e}"))
                    }
                };
                (out.from, out.to) = (end(a)?, end(b)?);
                continue;
            }
            let Some(key) = FIELDS.iter().find(|f| **f == k) else {
                return Err(format!("q: unknown key {k:?} (known: {}, op_time)", FIELDS.join(", ")));
            };
            let m = if let Some(f) = v.strip_prefix('~') {
                Match::Fuzzy(f.to_string())
            } else if let Some(list) = v.strip_prefix('{').and_then(|l| l.strip_suffix('}')) {
                Match::AnyOf(list.split_whitespace().map(str::to_string).collect())
            } else {
                Match::Exact(v.to_string())
            };
            out.fields.push((key, m));
        }
        for s in sort.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (desc, name) = match s.strip_prefix('-') {
                Some(n) => (true, n),
                None => (false, s),
            };
            let key = match name {
                "id" => SortKey::Id,
                "op_time" => SortKey::OpTime,
                "username" => SortKey::Username,
                "resource" => SortKey::Resource,
                "resource_type" => SortKey::ResourceType,
                "operation" => SortKey::Operation,
                _ => {
                    return Err(format!(
                        "sort: unknown key {name:?} (known: id, op_time, username, resource, resource_type, operation)"
                    ))
                }
            };
            out.sort.push((key, desc));
        }
        Ok(out)
    }

    pub fn matches(&self, r: &AuditRecord) -> bool {
        if self.from.is_some_and(|f| r.op_time < f) || self.to.is_some_and(|t| r.op_time > t) {
            return false;
        }
        self.fields.iter().all(|(k, m)| match *k {
            "username" => m.test(&r.username),
            "resource" => m.test(&r.resource),
            "resource_type" => m.test(&r.resource_type),
            // Harbor 1.x called a push `push`: it is an artifact's `create`.
            "operation" if *m == Match::Exact("push".into()) => {
                r.operation == "create" && r.resource_type == "artifact"
            }
            "operation" => m.test(&r.operation),
            _ => true,
        })
    }

    /// Filters and sorts `(id, record)`s: newest first unless `sort` says otherwise (Harbor's
    /// default, `-op_time`), ties broken by id the same way.
    pub fn apply(&self, records: Vec<(u64, AuditRecord)>) -> Vec<(u64, AuditRecord)> {
        let mut out: Vec<(u64, AuditRecord)> = records.into_iter().filter(|(_, r)| self.matches(r)).collect();
        let sort = if self.sort.is_empty() { vec![(SortKey::OpTime, true)] } else { self.sort.clone() };
        let last_desc = sort.last().map(|(_, d)| *d).unwrap_or(true);
        out.sort_by(|(ia, a), (ib, b)| {
            for (key, desc) in &sort {
                let o = match key {
                    SortKey::Id => ia.cmp(ib),
                    SortKey::OpTime => a.op_time.cmp(&b.op_time),
                    SortKey::Username => a.username.cmp(&b.username),
                    SortKey::Resource => a.resource.cmp(&b.resource),
                    SortKey::ResourceType => a.resource_type.cmp(&b.resource_type),
                    SortKey::Operation => a.operation.cmp(&b.operation),
                };
                let o = if *desc { o.reverse() } else { o };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            if last_desc {
                ib.cmp(ia)
            } else {
                ia.cmp(ib)
            }
        });
        out
    }
}

/// A time as Harbor's `q` gives it: `2006-01-02 15:04:05` (UTC), RFC 3339 (`…T…Z`), a date,
/// or unix seconds.
pub fn parse_time(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| format!("{s:?} is too large"));
    }
    let bad = || format!("{s:?} is not a time (YYYY-MM-DD HH:MM:SS, RFC 3339, or unix seconds)");
    let s2 = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = match s2.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t)),
        None => (s2, None),
    };
    let d: Vec<&str> = date.split('-').collect();
    let [y, m, dd] = d.as_slice() else { return Err(bad()) };
    let num = |v: &str| v.parse::<u64>().map_err(|_| bad());
    let (y, m, dd) = (num(y)?, num(m)?, num(dd)?);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&dd) {
        return Err(bad());
    }
    let mut secs = 0;
    if let Some(t) = time {
        let t = t.split(['.', '+']).next().unwrap_or(t);
        let parts: Vec<&str> = t.split(':').collect();
        let [h, mi, se] = parts.as_slice() else { return Err(bad()) };
        let (h, mi, se) = (num(h)?, num(mi)?, num(se)?);
        if h > 23 || mi > 59 || se > 60 {
            return Err(bad());
        }
        secs = h * 3600 + mi * 60 + se;
    }
    // The year is 1970 or later (checked above): the day count is not negative.
    Ok(wharf_types::time::days_from_civil(y as i64, m as u32, dd as u32) as u64 * 86400 + secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(user: &str, resource: &str, rtype: &str, op: &str, t: u64) -> AuditRecord {
        AuditRecord {
            project_id: 1,
            username: user.into(),
            resource: resource.into(),
            resource_type: rtype.into(),
            operation: op.into(),
            op_time: t,
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01 00:00:00"), Ok(0));
        assert_eq!(parse_time("2020-03-01T12:00:01Z"), Ok(1_583_064_001));
        assert_eq!(parse_time("2000-02-29"), Ok(951_782_400));
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000));
        assert!(parse_time("yesterday").unwrap_err().contains("is not a time"));
        assert!(parse_time("2020-13-01").is_err());
    }

    #[test]
    fn queries_filter_and_sort() {
        let q =
            Query::parse("operation=create,resource=~lib,op_time=[1970-01-01 00:00:10~20]", Some("op_time")).unwrap();
        assert_eq!(q.from, Some(10));
        assert_eq!(q.to, Some(20));
        let rs = vec![
            (1, rec("a", "library/x:1", "artifact", "create", 10)),
            (2, rec("b", "library/x:1", "artifact", "pull", 15)),
            (3, rec("a", "other/x:1", "artifact", "create", 15)),
            (4, rec("b", "library/y:1", "artifact", "create", 12)),
            (5, rec("a", "library/z:1", "artifact", "create", 21)),
        ];
        let ids: Vec<u64> = q.apply(rs.clone()).into_iter().map(|(i, _)| i).collect();
        assert_eq!(ids, [1, 4]);
        let newest: Vec<u64> = Query::default().apply(rs.clone()).into_iter().map(|(i, _)| i).collect();
        assert_eq!(newest, [5, 3, 2, 4, 1]);
        let any = Query::parse("username={b c}", None).unwrap();
        assert_eq!(any.apply(rs.clone()).len(), 2);
        let push = Query::parse("operation=push", None).unwrap();
        assert_eq!(push.apply(rs).len(), 4);
        assert!(Query::parse("colour=red", None).unwrap_err().contains("unknown key \"colour\""));
        assert!(Query::parse("", Some("-size")).unwrap_err().contains("sort: unknown key \"size\""));
        assert!(Query::parse("op_time=[1~]", None).is_ok_and(|q| q.from == Some(1) && q.to.is_none()));
    }

    #[test]
    fn resources() {
        assert_eq!(artifact_resource("p/r", "v1"), "p/r:v1");
        assert_eq!(artifact_resource("p/r", "sha256:ab"), "p/r@sha256:ab");
    }
}
