//! The records of Harbor's model and [`IamStore`], the role of the index that keeps them:
//! projects, members, robots, and the users beyond [`crate::meta::Metadata`]'s lookup. Both
//! index backends implement it (redb in `meta.rs`, PostgreSQL in `pg/iam.rs`) and run
//! [`suite`]. Ids are numbers the index hands out (Harbor's API addresses members and robots
//! by id), never reused.

use serde::{Deserialize, Serialize};

use super::audit::AuditRecord;
use super::immutable::ImmutableRule;
use super::proxy::{RegistryEndpoint, RegistryRecord};
use super::rbac::{RobotPermission, Role};
use wharf_types::Digest;

use crate::meta::{ManifestRecord, Result, UserRecord};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectRecord {
    pub public: bool,
    /// The user who created it (Harbor's `owner_name`).
    pub owner: String,
    pub created: u64,
    pub updated: u64,
    /// The project's storage quota in bytes (deduplicated: a blob counts once however many
    /// of its repositories hold it); `None` is unlimited.
    #[serde(default)]
    pub storage_limit: Option<u64>,
    /// The upstream registry endpoint of a proxy-cache project (Harbor's `registry_id`).
    #[serde(default)]
    pub registry_id: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub id: u64,
    pub name: String,
    pub record: ProjectRecord,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: u64,
    pub project: String,
    pub user: String,
    pub role: Role,
}

/// A robot account of one project. Its secret is kept as a salted HMAC-SHA256, not a slow
/// KDF: the secret is 128 random bits the registry made, so no dictionary reaches it and
/// stretching would only slow down every `docker login` and token request of a CI job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobotRecord {
    pub project: String,
    #[serde(default)]
    pub description: String,
    pub salt: String,
    pub hash: String,
    /// Unix time it stops working; `None` never.
    pub expires_at: Option<u64>,
    pub disabled: bool,
    pub permissions: Vec<RobotPermission>,
    pub created: u64,
    pub updated: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Robot {
    pub id: u64,
    /// The full name, `robot$<project>+<name>`.
    pub name: String,
    pub record: RobotRecord,
}

/// The model's part of the index. Each mutating call is one transaction.
pub trait IamStore {
    /// Records a project and, when given, its creator as its ProjectAdmin, together; its id,
    /// or `None` when a project of that name exists.
    fn create_project(&self, name: &str, record: &ProjectRecord, admin: Option<&str>) -> Result<Option<u64>>;
    fn project(&self, name: &str) -> Result<Option<Project>>;
    /// Every project, in name order.
    fn projects(&self) -> Result<Vec<Project>>;
    fn update_project(&self, name: &str, record: &ProjectRecord) -> Result<bool>;
    /// Removes a project with its members and robots (its repositories are the caller's to
    /// check: Harbor refuses to delete a project that has any).
    fn delete_project(&self, name: &str) -> Result<bool>;

    /// Makes `user` a member of `project` with `role`, or changes its role; the member's id.
    /// `None` when the project or the user does not exist.
    fn put_member(&self, project: &str, user: &str, role: Role) -> Result<Option<u64>>;
    fn member(&self, project: &str, user: &str) -> Result<Option<Member>>;
    /// A project's members, in user-name order.
    fn members(&self, project: &str) -> Result<Vec<Member>>;
    fn delete_member(&self, project: &str, user: &str) -> Result<bool>;

    /// Every user, in name order.
    fn users(&self) -> Result<Vec<(String, UserRecord)>>;
    /// Replaces a user's record (password, admin flag, profile); its id stays.
    fn update_user(&self, name: &str, record: &UserRecord) -> Result<bool>;
    /// Removes a user and its memberships.
    fn delete_user(&self, name: &str) -> Result<bool>;

    /// Records a robot; its id, or `None` when one of that name exists or its project does not.
    fn create_robot(&self, name: &str, record: &RobotRecord) -> Result<Option<u64>>;
    fn robot(&self, name: &str) -> Result<Option<Robot>>;
    /// Every robot, in name order.
    fn robots(&self) -> Result<Vec<Robot>>;
    fn update_robot(&self, name: &str, record: &RobotRecord) -> Result<bool>;
    fn delete_robot(&self, name: &str) -> Result<bool>;

    /// A repository's manifests (Harbor's artifacts), in digest order.
    fn repo_manifests(&self, repo: &str) -> Result<Vec<(Digest, ManifestRecord)>>;
    /// A repository's tags and what they point at, in tag order.
    fn repo_tags(&self, repo: &str) -> Result<Vec<(String, Digest)>>;
    /// The repositories of `project` (named `<project>/...`) that hold at least one manifest,
    /// in name order: one range scan of the manifests, for listings of thousands.
    fn project_repos(&self, project: &str) -> Result<Vec<String>>;
    /// Every blob and manifest a project's repositories hold, each digest once with its size:
    /// what its quota counts.
    fn project_storage(&self, project: &str) -> Result<Vec<(Digest, u64)>>;

    /// Records a tag immutability rule of `project`; its id, `None` when there is no such
    /// project.
    fn create_immutable_rule(&self, project: &str, rule: &ImmutableRule) -> Result<Option<u64>>;
    /// A project's immutability rules, in id order.
    fn immutable_rules(&self, project: &str) -> Result<Vec<(u64, ImmutableRule)>>;
    fn update_immutable_rule(&self, project: &str, id: u64, rule: &ImmutableRule) -> Result<bool>;
    fn delete_immutable_rule(&self, project: &str, id: u64) -> Result<bool>;

    /// Records an upstream registry endpoint (for proxy-cache projects); its id, `None` when
    /// the name is taken.
    fn create_registry(&self, name: &str, record: &RegistryRecord) -> Result<Option<u64>>;
    /// Every registry endpoint, in id order.
    fn registries(&self) -> Result<Vec<RegistryEndpoint>>;
    /// Renames and changes one; `false` when there is no such id. (The API refuses a name
    /// another endpoint has before it calls this.)
    fn update_registry(&self, id: u64, name: &str, record: &RegistryRecord) -> Result<bool>;
    fn delete_registry(&self, id: u64) -> Result<bool>;
    /// The policies' job records (retention policies, their executions and tasks, GC runs
    /// and the GC schedule; `harbor::jobs` says which kinds): JSON documents by kind, each
    /// with an id the index hands out, never reused. Records the document; its id.
    fn create_job_record(&self, kind: &str, doc: &[u8]) -> Result<u64>;
    fn job_record(&self, kind: &str, id: u64) -> Result<Option<Vec<u8>>>;
    /// Every record of a kind, in id order.
    fn job_records(&self, kind: &str) -> Result<Vec<(u64, Vec<u8>)>>;
    /// Replaces a record; whether there was one.
    fn update_job_record(&self, kind: &str, id: u64, doc: &[u8]) -> Result<bool>;
    fn delete_job_record(&self, kind: &str, id: u64) -> Result<bool>;
    /// Claims the run of schedule `name` due at `due` (Unix seconds): true for exactly one
    /// caller among every replica sharing the index, and only when no later or equal run of
    /// that schedule was claimed before (a restart does not run a slot again).
    fn claim_scheduled_run(&self, name: &str, due: u64) -> Result<bool>;
    /// Removes every manifest and tag of `repo` and its description, in one transaction; how
    /// many manifests went.
    fn delete_repository(&self, repo: &str) -> Result<usize>;
    /// A repository's description (Harbor's `description`), `None` when it has none.
    fn repo_description(&self, repo: &str) -> Result<Option<String>>;
    fn set_repo_description(&self, repo: &str, description: &str) -> Result<()>;

    /// Appends audit records (ids handed out in their order) and, in the same transaction,
    /// drops the oldest beyond `max_records` and those older than `keep_from` (unix seconds).
    fn append_audit(&self, records: &[AuditRecord], max_records: u64, keep_from: Option<u64>) -> Result<()>;
    /// The audit log, of one project (by id) when given, oldest first.
    fn audit_records(&self, project_id: Option<u64>) -> Result<Vec<(u64, AuditRecord)>>;

    /// Ends the web UI session `id` for every replica (a logout): [`IamStore::session_ended`]
    /// says so until `until` (unix seconds, when the session would have expired anyway).
    /// Ended sessions past their time are dropped on the way.
    fn end_session(&self, id: &str, until: u64, now: u64) -> Result<()>;
    fn session_ended(&self, id: &str) -> Result<bool>;
    /// Counts a failed login under `key` (`crate::login_limit`'s account or address key) at
    /// `now` (unix milliseconds), from zero when the last failure was before `stale_before`, and
    /// drops every other key whose last failure was; the count now.
    fn add_login_failure(&self, key: &str, now: u64, stale_before: u64) -> Result<u32>;
    /// A key's failures and the time of the last one (as given to `add_login_failure`).
    fn login_failures(&self, key: &str) -> Result<Option<(u32, u64)>>;
    fn clear_login_failures(&self, key: &str) -> Result<()>;
}

/// The behaviour every `IamStore` must show; both backends run it.
#[cfg(test)]
pub(crate) mod suite {
    use super::*;
    use crate::meta::Metadata;

    fn user(admin: bool) -> UserRecord {
        UserRecord {
            id: 0,
            salt: "s".into(),
            hash: "h".into(),
            iterations: 1,
            admin,
            created: 1,
            email: String::new(),
            realname: String::new(),
        }
    }

    fn robot(project: &str) -> RobotRecord {
        RobotRecord {
            project: project.into(),
            description: "ci".into(),
            salt: "salt".into(),
            hash: "hash".into(),
            expires_at: None,
            disabled: false,
            permissions: vec![RobotPermission::Pull, RobotPermission::Push],
            created: 5,
            updated: 5,
        }
    }

    /// Logouts and login failures are kept for every replica, and what is stale goes.
    fn sessions_and_login_failures(m: &dyn Metadata) {
        // Names of this run's own: another suite may have run on the same index before.
        let run = crate::store::random_hex(4).unwrap();
        let (s1, s2, s3) = (format!("{run}-s1"), format!("{run}-s2"), format!("{run}-s3"));
        assert!(!m.session_ended(&s1).unwrap());
        m.end_session(&s1, 4_000_000_000, 100).unwrap();
        m.end_session(&s2, 150, 100).unwrap();
        assert!(m.session_ended(&s1).unwrap() && m.session_ended(&s2).unwrap());
        m.end_session(&s3, 4_000_000_000, 160).unwrap(); // s2's time is over: it goes
        assert!(!m.session_ended(&s2).unwrap());
        assert!(m.session_ended(&s1).unwrap() && m.session_ended(&s3).unwrap());

        let (alice, addr, nobody) = (format!("u - {run}alice"), format!("a {run}"), format!("u - {run}nobody"));
        assert_eq!(m.login_failures(&alice).unwrap(), None);
        assert_eq!(m.add_login_failure(&alice, 100, 0).unwrap(), 1);
        assert_eq!(m.add_login_failure(&alice, 105, 0).unwrap(), 2);
        assert_eq!(m.add_login_failure(&addr, 106, 0).unwrap(), 1);
        assert_eq!(m.login_failures(&alice).unwrap(), Some((2, 105)));
        // After a quiet spell the count starts over, and other stale keys go.
        assert_eq!(m.add_login_failure(&alice, 1000, 900).unwrap(), 1);
        assert_eq!(m.login_failures(&addr).unwrap(), None);
        m.clear_login_failures(&alice).unwrap();
        assert_eq!(m.login_failures(&alice).unwrap(), None);
        m.clear_login_failures(&nobody).unwrap();
    }

    pub fn run(m: &dyn Metadata) {
        sessions_and_login_failures(m);
        // Users get distinct ids; a record's other fields are kept as given.
        assert!(m.create_user("alice", &user(false)).unwrap());
        assert!(m.create_user("bob", &user(false)).unwrap());
        let alice = m.user("alice").unwrap().unwrap();
        let bob = m.user("bob").unwrap().unwrap();
        assert!(alice.id > 0 && bob.id > 0 && alice.id != bob.id, "{} {}", alice.id, bob.id);
        assert_eq!(UserRecord { id: 0, ..alice.clone() }, user(false));
        let changed = UserRecord { hash: "new".into(), admin: true, email: "a@x".into(), ..alice.clone() };
        assert!(m.update_user("alice", &changed).unwrap());
        assert_eq!(m.user("alice").unwrap(), Some(changed.clone()), "the id stays");
        assert!(!m.update_user("nobody", &changed).unwrap());
        // (Another suite may have made users before: only the order of these two is ours.)
        let names: Vec<String> =
            m.users().unwrap().into_iter().map(|(n, _)| n).filter(|n| n == "alice" || n == "bob").collect();
        assert_eq!(names, ["alice", "bob"]);

        // Projects: one per name, the creator its admin in the same transaction.
        let rec = ProjectRecord {
            public: false,
            owner: "alice".into(),
            created: 1,
            updated: 1,
            storage_limit: None,
            registry_id: None,
        };
        let p = m.create_project("proj", &rec, Some("alice")).unwrap().expect("a new project");
        assert_eq!(m.create_project("proj", &rec, None).unwrap(), None);
        let q = m.create_project("other", &ProjectRecord { public: true, ..rec.clone() }, None).unwrap().unwrap();
        assert_ne!(p, q);
        assert_eq!(m.project("proj").unwrap(), Some(Project { id: p, name: "proj".into(), record: rec.clone() }));
        assert_eq!(m.project("nope").unwrap(), None);
        let names: Vec<String> = m.projects().unwrap().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["other", "proj"]);
        let public = ProjectRecord { public: true, updated: 2, storage_limit: Some(1 << 40), ..rec.clone() };
        assert!(m.update_project("proj", &public).unwrap());
        assert_eq!(m.project("proj").unwrap().unwrap().record, public);
        assert!(!m.update_project("nope", &public).unwrap());

        // Members.
        let admin = m.member("proj", "alice").unwrap().expect("the creator is a member");
        assert_eq!(admin.role, Role::ProjectAdmin);
        let mid = m.put_member("proj", "bob", Role::Guest).unwrap().expect("bob joins");
        assert_eq!(m.put_member("proj", "bob", Role::Developer).unwrap(), Some(mid), "a role change keeps the id");
        assert_eq!(m.member("proj", "bob").unwrap().map(|b| b.role), Some(Role::Developer));
        assert_eq!(m.put_member("proj", "nobody", Role::Guest).unwrap(), None, "no such user");
        assert_eq!(m.put_member("nope", "bob", Role::Guest).unwrap(), None, "no such project");
        let ms: Vec<(String, Role)> = m.members("proj").unwrap().into_iter().map(|m| (m.user, m.role)).collect();
        assert_eq!(ms, [("alice".to_string(), Role::ProjectAdmin), ("bob".to_string(), Role::Developer)]);
        assert!(m.members("other").unwrap().is_empty());
        assert!(m.delete_member("proj", "bob").unwrap());
        assert!(!m.delete_member("proj", "bob").unwrap());
        m.put_member("other", "bob", Role::Maintainer).unwrap().unwrap();

        // Robots belong to an existing project; names are unique.
        let r = robot("proj");
        let rid = m.create_robot("robot$proj+ci", &r).unwrap().expect("a new robot");
        assert_eq!(m.create_robot("robot$proj+ci", &r).unwrap(), None);
        assert_eq!(m.create_robot("robot$nope+ci", &robot("nope")).unwrap(), None);
        let got = m.robot("robot$proj+ci").unwrap().unwrap();
        assert_eq!((got.id, got.record), (rid, r.clone()));
        let off = RobotRecord { disabled: true, expires_at: Some(99), permissions: vec![], ..r.clone() };
        assert!(m.update_robot("robot$proj+ci", &off).unwrap());
        assert_eq!(m.robot("robot$proj+ci").unwrap().unwrap().record, off);
        m.create_robot("robot$other+x", &robot("other")).unwrap().unwrap();
        let names: Vec<String> = m.robots().unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["robot$other+x", "robot$proj+ci"]);

        // Immutability rules, per project, in id order.
        let rule = ImmutableRule {
            disabled: false,
            priority: 0,
            repo_pattern: "**".into(),
            repo_excludes: false,
            tag_pattern: "v*".into(),
            tag_excludes: false,
        };
        let r1 = m.create_immutable_rule("proj", &rule).unwrap().expect("a rule");
        let r2 = m
            .create_immutable_rule("proj", &ImmutableRule { tag_pattern: "rc".into(), ..rule.clone() })
            .unwrap()
            .unwrap();
        assert_eq!(m.create_immutable_rule("nope", &rule).unwrap(), None);
        m.create_immutable_rule("other", &rule).unwrap().unwrap();
        let ids: Vec<u64> = m.immutable_rules("proj").unwrap().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, [r1, r2]);
        let off = ImmutableRule { disabled: true, ..rule.clone() };
        assert!(m.update_immutable_rule("proj", r1, &off).unwrap());
        assert!(!m.update_immutable_rule("other", r1, &off).unwrap(), "a rule is its project's");
        assert_eq!(m.immutable_rules("proj").unwrap()[0], (r1, off));
        assert!(m.delete_immutable_rule("proj", r2).unwrap());
        assert!(!m.delete_immutable_rule("proj", r2).unwrap());
        assert_eq!(m.immutable_rules("other").unwrap().len(), 1);

        // A user's removal takes its memberships; a project's its members, robots and rules.
        assert!(m.delete_user("bob").unwrap());
        assert!(!m.delete_user("bob").unwrap());
        assert_eq!(m.user("bob").unwrap(), None);
        assert!(m.members("other").unwrap().is_empty());
        assert!(m.delete_project("proj").unwrap());
        assert!(!m.delete_project("proj").unwrap());
        assert_eq!(m.member("proj", "alice").unwrap(), None);
        assert_eq!(m.robot("robot$proj+ci").unwrap(), None);
        assert!(m.immutable_rules("proj").unwrap().is_empty());
        assert!(m.delete_robot("robot$other+x").unwrap());
        assert!(!m.delete_robot("robot$other+x").unwrap());
        // A repository's manifests and tags (the meta suite left `r2` empty and `r` with one
        // untagged manifest).
        let layer = Digest::of(b"iam layer");
        m.link_blob("iam/repo", &layer, 3).unwrap();
        let rec_m = ManifestRecord {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 7,
            artifact_type: None,
            subject: None,
            annotations: Default::default(),
            blobs: vec![layer.clone()],
            manifests: vec![],
            created: 9,
        };
        let (m1, m2) = (Digest::of(b"iam m1"), Digest::of(b"iam m2"));
        m.put_manifest("iam/repo", &m1, Some("b"), &rec_m).unwrap().unwrap();
        m.put_manifest("iam/repo", &m1, Some("a"), &rec_m).unwrap().unwrap();
        m.put_manifest("iam/repo", &m2, None, &rec_m).unwrap().unwrap();
        let mut want = vec![m1.clone(), m2.clone()];
        want.sort_by_key(|d| d.to_string());
        let got: Vec<Digest> = m.repo_manifests("iam/repo").unwrap().into_iter().map(|(d, _)| d).collect();
        assert_eq!(got, want);
        assert_eq!(m.repo_manifests("iam/repo").unwrap()[0].1, rec_m);
        assert_eq!(m.repo_tags("iam/repo").unwrap(), [("a".to_string(), m1.clone()), ("b".to_string(), m1)]);
        assert!(m.repo_tags("iam/rep").unwrap().is_empty() && m.repo_manifests("iam").unwrap().is_empty());
        // A project's storage counts each blob once, however many repositories hold it, and
        // its manifests; another project's (`iam-x`, `iamx`, whose names sort close) never.
        m.link_blob("iam/other", &layer, 3).unwrap();
        m.link_blob("iam-x/repo", &Digest::of(b"elsewhere"), 100).unwrap();
        m.link_blob("iamx/repo", &Digest::of(b"elsewhere too"), 100).unwrap();
        let mut storage = m.project_storage("iam").unwrap();
        storage.sort_by_key(|(d, _)| d.to_string());
        let mut want = vec![(layer.clone(), 3), (Digest::of(b"iam m1"), 7), (Digest::of(b"iam m2"), 7)];
        want.sort_by_key(|(d, _)| d.to_string());
        assert_eq!(storage, want);
        assert!(m.project_storage("nothing").unwrap().is_empty());
        // Repositories with manifests only (iam/other holds a blob and nothing else), of this
        // project only.
        m.link_blob("iam-x/repo", &layer, 3).unwrap();
        m.put_manifest("iam-x/repo", &m2, None, &rec_m).unwrap().unwrap();
        assert_eq!(m.project_repos("iam").unwrap(), ["iam/repo"]);
        assert_eq!(m.project_repos("iam-x").unwrap(), ["iam-x/repo"]);
        assert!(m.project_repos("ia").unwrap().is_empty() && m.project_repos("nothing").unwrap().is_empty());

        // A project made again under an old name is a new one.
        let again = m.create_project("proj", &rec, None).unwrap().unwrap();
        assert!(again > q && m.members("proj").unwrap().is_empty());

        // Registry endpoints: one per name, ids in order, a project may name one.
        let up = RegistryRecord {
            kind: "docker-registry".into(),
            url: "http://127.0.0.1:5999".into(),
            description: String::new(),
            insecure: false,
            access_key: Some("k".into()),
            access_secret: Some("s".into()),
            created: 1,
            updated: 1,
        };
        let r1 = m.create_registry("up1", &up).unwrap().expect("a new endpoint");
        assert_eq!(m.create_registry("up1", &up).unwrap(), None);
        let r2 = m.create_registry("up2", &RegistryRecord { access_key: None, ..up.clone() }).unwrap().unwrap();
        assert!(r2 > r1);
        let all = m.registries().unwrap();
        assert_eq!(all.iter().map(|e| (e.id, e.name.as_str())).collect::<Vec<_>>(), [(r1, "up1"), (r2, "up2")]);
        assert_eq!(all[0].record, up);
        let moved = RegistryRecord { url: "https://127.0.0.1:6000".into(), updated: 2, ..up.clone() };
        assert!(m.update_registry(r1, "renamed", &moved).unwrap());
        assert_eq!(m.registries().unwrap()[0], RegistryEndpoint { id: r1, name: "renamed".into(), record: moved });
        assert!(!m.update_registry(r2 + 100, "x", &up).unwrap());
        let proxy = ProjectRecord { registry_id: Some(r1), ..rec.clone() };
        m.create_project("cache", &proxy, None).unwrap().unwrap();
        assert_eq!(m.project("cache").unwrap().unwrap().record.registry_id, Some(r1));
        assert!(m.delete_registry(r2).unwrap());
        assert!(!m.delete_registry(r2).unwrap());
        assert_eq!(m.registries().unwrap().len(), 1);
        // Job records: ids per index, never reused, listed by kind in id order.
        let a = m.create_job_record("test_kind", b"{\"n\":1}").unwrap();
        let b = m.create_job_record("test_kind", b"{\"n\":2}").unwrap();
        let c = m.create_job_record("other_kind", b"{\"n\":3}").unwrap();
        assert!(a < b && a != c && b != c);
        let doc = m.job_record("test_kind", a).unwrap().expect("the record");
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&doc).unwrap(), serde_json::json!({"n": 1}));
        assert_eq!(m.job_record("other_kind", a).unwrap(), None, "a record is its kind's");
        assert!(m.update_job_record("test_kind", a, b"{\"n\":9}").unwrap());
        assert!(!m.update_job_record("test_kind", c, b"{}").unwrap());
        let ids: Vec<u64> = m.job_records("test_kind").unwrap().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, [a, b]);
        let docs: Vec<serde_json::Value> =
            m.job_records("test_kind").unwrap().into_iter().map(|(_, d)| serde_json::from_slice(&d).unwrap()).collect();
        assert_eq!(docs, [serde_json::json!({"n": 9}), serde_json::json!({"n": 2})]);
        assert!(m.delete_job_record("test_kind", a).unwrap());
        assert!(!m.delete_job_record("test_kind", a).unwrap());
        assert!(m.create_job_record("test_kind", b"{}").unwrap() > b);
        // A scheduled run is claimed once; a later slot again; an earlier one never.
        assert!(m.claim_scheduled_run("gc", 100).unwrap());
        assert!(!m.claim_scheduled_run("gc", 100).unwrap());
        assert!(!m.claim_scheduled_run("gc", 99).unwrap());
        assert!(m.claim_scheduled_run("retention/1", 100).unwrap(), "schedules are claimed apart");
        assert!(m.claim_scheduled_run("gc", 101).unwrap());
        // A repository goes with its manifests, tags and description, others' stay.
        m.set_repo_description("iam/repo", "first").unwrap();
        m.set_repo_description("iam/repo", "the repo").unwrap();
        assert_eq!(m.repo_description("iam/repo").unwrap().as_deref(), Some("the repo"));
        assert_eq!(m.repo_description("iam/other").unwrap(), None);
        m.put_manifest(
            "iam/repo2",
            &Digest::of(b"iam m3"),
            Some("x"),
            &ManifestRecord { blobs: vec![], ..rec_m.clone() },
        )
        .unwrap()
        .unwrap();
        assert_eq!(m.delete_repository("iam/repo").unwrap(), 2);
        assert!(m.repo_manifests("iam/repo").unwrap().is_empty() && m.repo_tags("iam/repo").unwrap().is_empty());
        assert_eq!(m.repo_description("iam/repo").unwrap(), None);
        assert_eq!(m.repo_tags("iam/repo2").unwrap().len(), 1);
        assert_eq!(m.delete_repository("iam/repo").unwrap(), 0);

        // The audit log: appended in order, per project, bounded by count and by age.
        let entry = |pid: u64, t: u64| AuditRecord {
            project_id: pid,
            username: "alice".into(),
            resource: format!("p/r:{t}"),
            resource_type: "artifact".into(),
            operation: "create".into(),
            op_time: t,
        };
        m.append_audit(&[entry(1, 10), entry(2, 11), entry(1, 12)], 100, None).unwrap();
        let all = m.audit_records(None).unwrap();
        assert_eq!(all.iter().map(|(_, r)| r.op_time).collect::<Vec<_>>(), [10, 11, 12]);
        assert!(all[0].0 < all[1].0 && all[1].0 < all[2].0);
        assert_eq!(all[2].1, entry(1, 12));
        assert_eq!(m.audit_records(Some(1)).unwrap().iter().map(|(_, r)| r.op_time).collect::<Vec<_>>(), [10, 12]);
        m.append_audit(&[entry(1, 13), entry(1, 14)], 4, None).unwrap();
        assert_eq!(m.audit_records(None).unwrap().iter().map(|(_, r)| r.op_time).collect::<Vec<_>>(), [11, 12, 13, 14]);
        m.append_audit(&[entry(3, 15)], 10, Some(13)).unwrap();
        assert_eq!(m.audit_records(None).unwrap().iter().map(|(_, r)| r.op_time).collect::<Vec<_>>(), [13, 14, 15]);
        m.append_audit(&[], 1, None).unwrap();
        assert_eq!(m.audit_records(None).unwrap().iter().map(|(_, r)| r.op_time).collect::<Vec<_>>(), [15]);
    }
}
