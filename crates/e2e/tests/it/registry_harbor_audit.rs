//! wharf-registry's Harbor audit log, search and repository REST calls (`serve --auth`):
//! pushes, pulls (skopeo and plain HTTP clients, a robot, anonymous) and deletions show up in
//! `/audit-logs` and `/projects/{p}/logs` with Harbor's fields, `q` filters, sort and paging;
//! who may read a project's log; the retention bound; search hiding private projects; and
//! repository delete (permissions, immutability) and description. Each runs on the embedded
//! index and on PostgreSQL.

use serde_json::json;

use crate::registry_harbor::{
    add_member, admin, admin_authz, api, basic, harbor_error, make_project, make_robot, make_user, push_image_as, Who,
    PW,
};
use crate::registry_pg::Postgres;
use crate::registry_server::{auth_server, http, skopeo, Resp, Server};

/// `q` percent-encoded for a query string.
fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn logs(reg: &Server, who: &Who, path: &str, q: &str, extra: &str) -> Resp {
    api(reg, who, "GET", &format!("{path}?q={}&page_size=100{extra}", enc(q)), None)
}

/// `(username, operation, resource_type, resource)` of every entry of an answer.
fn entries(r: &Resp) -> Vec<(String, String, String, String)> {
    assert_eq!(r.status, 200, "{r}");
    let v = r.json();
    let list = v.as_array().cloned().unwrap_or_default();
    list.iter()
        .map(|e| {
            for k in ["id", "op_time"] {
                assert!(!e[k].is_null(), "an entry without {k}: {e}");
            }
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("username"), s("operation"), s("resource_type"), s("resource"))
        })
        .collect()
}

fn e(user: &str, op: &str, rtype: &str, resource: &str) -> (String, String, String, String) {
    (user.into(), op.into(), rtype.into(), resource.into())
}

/// A manifest GET as `authz`; with none, anonymous as clients do it: a token from `/token`
/// without credentials first.
fn pull(reg: &Server, authz: Option<&str>, repo: &str, reference: &str) {
    let anonymous = match authz {
        Some(_) => String::new(),
        None => {
            let path = format!("/token?service=wharf-registry&scope=repository:{repo}:pull");
            let t = http(&reg.addr, "GET", &path, &[], b"");
            assert_eq!(t.status, 200, "anonymous token: {t}");
            format!("Bearer {}", t.json()["token"].as_str().unwrap_or_default())
        }
    };
    let h = [("Authorization", authz.unwrap_or(&anonymous))];
    let r = http(&reg.addr, "GET", &format!("/v2/{repo}/manifests/{reference}"), &h, b"");
    assert_eq!(r.status, 200, "pull {repo}:{reference}: {r}");
}

#[test]
fn harbor_audit_log_search_and_repository_delete() {
    audit_search_and_repositories(&auth_server(&[]));
}

#[test]
fn pg_harbor_audit_log_search_and_repository_delete() {
    let pg = Postgres::start();
    audit_search_and_repositories(&auth_server(&["--database-url", &pg.url()]));
}

fn audit_search_and_repositories(reg: &Server) {
    let anon = Who { label: "anonymous".into(), creds: None };
    for u in ["alice", "guest", "lguest", "outsider"] {
        make_user(reg, u);
    }
    make_project(reg, &admin(), "audited", false);
    add_member(reg, "audited", "alice", 2); // developer
    add_member(reg, "audited", "guest", 3);
    add_member(reg, "audited", "lguest", 5);
    let (robot, secret, _) = make_robot(reg, &admin(), "audited", "ci", &["pull"]);

    // A push by tag (a developer), pulls by a guest (tag), the admin (digest), skopeo as alice
    // and the robot, an anonymous pull of a public project.
    let alice = basic("alice", PW);
    let d1 = push_image_as(reg, &alice, "audited/app", "v1", b"audited layer one");
    pull(reg, Some(&basic("guest", PW)), "audited/app", "v1");
    pull(reg, Some(&admin_authz()), "audited/app", &d1);
    let creds = format!("alice:{PW}");
    skopeo(&["inspect", "--tls-verify=false", "--creds", &creds, &format!("docker://{}", reg.image("audited/app:v1"))])
        .ok();
    let robot_creds = format!("{robot}:{secret}");
    skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &robot_creds,
        &format!("docker://{}", reg.image("audited/app:v1")),
    ])
    .ok();
    push_image_as(reg, &admin_authz(), "library/pub", "latest", b"public layer");
    pull(reg, None, "library/pub", "latest");
    // A second tag, deleted through the registry protocol.
    let d2 = push_image_as(reg, &alice, "audited/app", "v2", b"audited layer two");
    let h = [("Authorization", admin_authz())];
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(http(&reg.addr, "DELETE", "/v2/audited/app/manifests/v2", &h, b"").status, 202);

    // The project's log, newest first (Harbor's default sort).
    let all = entries(&logs(reg, &admin(), "/projects/audited/logs", "", ""));
    let want_in = [
        e("admin", "create", "project", "audited"),
        e("admin", "create", "member", "alice"),
        e("admin", "create", "robot", &robot),
        e("alice", "create", "artifact", "audited/app:v1"),
        e("guest", "pull", "artifact", "audited/app:v1"),
        e("admin", "pull", "artifact", &format!("audited/app@{d1}")),
        e("alice", "pull", "artifact", "audited/app:v1"),
        e(&robot, "pull", "artifact", "audited/app:v1"),
        e("alice", "create", "artifact", "audited/app:v2"),
        e("admin", "delete", "tag", "audited/app:v2"),
    ];
    for w in &want_in {
        assert!(all.contains(w), "{w:?} missing from {all:?}");
    }
    assert_eq!(all.first(), Some(&e("admin", "delete", "tag", "audited/app:v2")), "newest first: {all:?}");
    assert!(all.iter().all(|(_, _, _, r)| !r.starts_with("library/")), "another project's entries: {all:?}");
    let _ = d2;

    // Filters: operation, fuzzy resource, username, resource_type, time ranges, Harbor 1.x's push.
    let pushes = entries(&logs(reg, &admin(), "/projects/audited/logs", "operation=create,resource_type=artifact", ""));
    assert_eq!(
        pushes,
        [e("alice", "create", "artifact", "audited/app:v2"), e("alice", "create", "artifact", "audited/app:v1")]
    );
    assert_eq!(entries(&logs(reg, &admin(), "/projects/audited/logs", "operation=push", "")), pushes);
    let mut pulls = entries(&logs(reg, &admin(), "/projects/audited/logs", "operation=pull,username=alice", ""));
    pulls.dedup(); // skopeo may fetch the manifest more than once
    assert_eq!(pulls, [e("alice", "pull", "artifact", "audited/app:v1")]);
    let fuzzy = entries(&logs(reg, &admin(), "/projects/audited/logs", "resource=~app@sha256", ""));
    assert_eq!(fuzzy, [e("admin", "pull", "artifact", &format!("audited/app@{d1}"))]);
    let any = entries(&logs(reg, &admin(), "/projects/audited/logs", "username={guest lguest},operation=pull", ""));
    assert_eq!(any, [e("guest", "pull", "artifact", "audited/app:v1")]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let recent = format!("op_time=[{}~{}]", now - 3600, now + 3600);
    assert_eq!(entries(&logs(reg, &admin(), "/projects/audited/logs", &recent, "")).len(), all.len());
    let old = "op_time=[2000-01-01 00:00:00~2000-01-02 00:00:00]";
    assert!(entries(&logs(reg, &admin(), "/projects/audited/logs", old, "")).is_empty());
    let r = logs(reg, &admin(), "/projects/audited/logs", "colour=red", "");
    assert_eq!(r.status, 400, "{r}");
    assert!(harbor_error(&r).1.contains("unknown key \"colour\""), "{r}");
    assert_eq!(logs(reg, &admin(), "/projects/audited/logs", "op_time=[soon~later]", "").status, 400);

    // Sort and paging: oldest first, two a page, X-Total-Count and a Link that keeps q and sort.
    let r = api(reg, &admin(), "GET", "/projects/audited/logs?sort=op_time&page=1&page_size=2", None);
    let first = entries(&r);
    assert_eq!(first.len(), 2);
    assert_eq!(first[0], e("admin", "create", "project", "audited"), "{first:?}");
    assert_eq!(r.header("X-Total-Count"), Some(all.len().to_string().as_str()), "{r}");
    let link = r.header("Link").unwrap_or_default().to_string();
    assert!(
        link.contains("page=2&page_size=2") && link.contains("rel=\"next\"") && link.contains("sort=op_time"),
        "{link}"
    );
    let r = api(reg, &admin(), "GET", "/projects/audited/logs?sort=op_time&page=2&page_size=2", None);
    assert_eq!(entries(&r)[0], e("admin", "create", "member", "guest"), "{r}");
    assert!(r.header("Link").unwrap_or_default().contains("rel=\"prev\""), "{r}");

    // Who may read the project's log: members whose role has log:list (a Guest does in
    // Harbor's table, a LimitedGuest does not); not an outsider, not anonymous.
    let guest = Who::user("guest", "guest", PW);
    assert_eq!(entries(&logs(reg, &guest, "/projects/audited/logs", "", "")).len(), all.len());
    for who in [Who::user("lguest", "lguest", PW), Who::user("outsider", "outsider", PW)] {
        let r = logs(reg, &who, "/projects/audited/logs", "", "");
        assert_eq!(r.status, 403, "{}: {r}", who.label);
        assert!(harbor_error(&r).1.contains("lacks the log:list permission"), "{}: {r}", who.label);
    }
    assert_eq!(logs(reg, &anon, "/projects/audited/logs", "", "").status, 401);
    // The system-wide log: everything for the admin (users' entries too), a member's projects
    // for anyone else, nothing of audited for an outsider.
    let sys = entries(&logs(reg, &admin(), "/audit-logs", "", ""));
    assert!(sys.contains(&e("admin", "create", "user", "outsider")), "{sys:?}");
    assert!(sys.contains(&e("anonymous", "pull", "artifact", "library/pub:latest")), "{sys:?}");
    let outsider = Who::user("outsider", "outsider", PW);
    let theirs = entries(&logs(reg, &outsider, "/audit-logs", "", ""));
    assert!(theirs.iter().all(|(_, _, _, r)| !r.starts_with("audited")), "{theirs:?}");
    let gs = entries(&logs(reg, &guest, "/audit-logs", "resource=~audited/app", ""));
    assert_eq!(gs.len(), entries(&logs(reg, &admin(), "/projects/audited/logs", "resource=~audited/app", "")).len());
    assert_eq!(logs(reg, &anon, "/audit-logs", "", "").status, 401);

    // Search: a private project and its repositories are hidden from outsiders and anonymous.
    let search = |who: &Who, q: &str| -> (Vec<String>, Vec<String>) {
        let r = api(reg, who, "GET", &format!("/search?q={q}"), None);
        assert_eq!(r.status, 200, "{r}");
        let v = r.json();
        let names = |k: &str, f: &str| -> Vec<String> {
            v[k].as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|p| p[f].as_str().unwrap_or_default().to_string())
                .collect()
        };
        (names("project", "name"), names("repository", "repository_name"))
    };
    assert_eq!(
        search(&Who::user("alice", "alice", PW), "audit"),
        (vec!["audited".to_string()], vec!["audited/app".to_string()])
    );
    assert_eq!(search(&admin(), "app"), (vec![], vec!["audited/app".to_string()]));
    assert_eq!(search(&outsider, "audit"), (vec![], vec![]));
    assert_eq!(search(&anon, "audit"), (vec![], vec![]));
    assert_eq!(search(&anon, "pub"), (vec![], vec!["library/pub".to_string()]));
    assert_eq!(search(&outsider, "lib"), (vec!["library".to_string()], vec!["library/pub".to_string()]));
    let r = api(reg, &anon, "GET", "/search?q=pub", None).json();
    assert_eq!(r["repository"][0]["project_public"], json!(true), "{r}");
    assert_eq!(r["repository"][0]["artifact_count"], json!(1), "{r}");

    // A repository's description: a developer may set it (repository:update), a guest not.
    let body = json!({ "description": "the audited app" });
    let r = api(reg, &Who::user("alice", "alice", PW), "PUT", "/projects/audited/repositories/app", Some(&body));
    assert_eq!(r.status, 200, "{r}");
    let got = api(reg, &guest, "GET", "/projects/audited/repositories/app", None).json();
    assert_eq!(got["description"], "the audited app", "{got}");
    let r = api(reg, &guest, "PUT", "/projects/audited/repositories/app", Some(&body));
    assert!(r.status == 403 && harbor_error(&r).1.contains("lacks the repository:update permission"), "{r}");
    let r = api(reg, &admin(), "PUT", "/projects/audited/repositories/app", Some(&json!({ "description": 7 })));
    assert_eq!(r.status, 400, "{r}");

    // Repository delete: a developer lacks repository:delete; an immutable tag refuses it
    // (412, nothing deleted); then it goes, every artifact and tag, and the log says so.
    push_image_as(reg, &alice, "audited/team/app", "v1", b"nested layer one");
    push_image_as(reg, &alice, "audited/team/app", "rc", b"nested layer two");
    let nested = "/projects/audited/repositories/team%252Fapp";
    let r = api(reg, &Who::user("alice", "alice", PW), "DELETE", nested, None);
    assert!(r.status == 403 && harbor_error(&r).1.contains("lacks the repository:delete permission"), "{r}");
    assert_eq!(api(reg, &anon, "DELETE", nested, None).status, 401);
    let rule = json!({
        "tag_selectors": [{ "kind": "doublestar", "decoration": "matches", "pattern": "v*" }],
        "scope_selectors": { "repository": [{ "kind": "doublestar", "decoration": "repoMatches", "pattern": "**" }] }
    });
    let r = api(reg, &admin(), "POST", "/projects/audited/immutabletagrules", Some(&rule));
    assert_eq!(r.status, 201, "{r}");
    let rid = r.header("Location").and_then(|l| l.rsplit('/').next()).unwrap_or_default().to_string();
    let r = api(reg, &admin(), "DELETE", nested, None);
    assert_eq!((r.status, harbor_error(&r).0.as_str()), (412, "PRECONDITION"), "{r}");
    assert!(harbor_error(&r).1.contains("tag audited/team/app:v1 is immutable"), "{r}");
    let arts = api(reg, &admin(), "GET", &format!("{nested}/artifacts"), None).json();
    assert_eq!(arts.as_array().map(Vec::len), Some(2), "nothing was deleted: {arts}");
    assert_eq!(api(reg, &admin(), "DELETE", &format!("/projects/audited/immutabletagrules/{rid}"), None).status, 200);
    // A Maintainer may delete it.
    make_user(reg, "maint");
    add_member(reg, "audited", "maint", 4);
    let r = api(reg, &Who::user("maint", "maint", PW), "DELETE", nested, None);
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(api(reg, &admin(), "GET", nested, None).status, 404);
    let h = [("Authorization", admin_authz())];
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    http(&reg.addr, "GET", "/v2/audited/team/app/manifests/rc", &h, b"").fails(404, "MANIFEST_UNKNOWN");
    assert_eq!(api(reg, &admin(), "DELETE", nested, None).status, 404);
    let repos = api(reg, &admin(), "GET", "/projects/audited/repositories", None).json();
    let names: Vec<&str> =
        repos.as_array().map(|a| a.iter().filter_map(|r| r["name"].as_str()).collect()).unwrap_or_default();
    assert_eq!(names, ["audited/app"], "{repos}");
    let dels = entries(&logs(reg, &admin(), "/projects/audited/logs", "resource_type={repository immutable_rule}", ""));
    assert_eq!(
        dels,
        [
            e("maint", "delete", "repository", "audited/team/app"),
            e("admin", "delete", "immutable_rule", &format!("audited/immutabletagrules/{rid}")),
            e("admin", "create", "immutable_rule", &format!("audited/immutabletagrules/{rid}")),
            e("alice", "update", "repository", "audited/app"),
        ]
    );
}

#[test]
fn harbor_audit_log_retention_drops_the_oldest() {
    audit_retention(&auth_server(&["--audit-max-records", "5"]));
}

#[test]
fn pg_harbor_audit_log_retention_drops_the_oldest() {
    let pg = Postgres::start();
    audit_retention(&auth_server(&["--audit-max-records", "5", "--database-url", &pg.url()]));
}

/// Eight records through a log bounded to five: the three oldest are gone, the five newest kept.
fn audit_retention(reg: &Server) {
    make_project(reg, &admin(), "kept", true);
    let a = admin_authz();
    push_image_as(reg, &a, "kept/app", "v1", b"retained layer");
    for _ in 0..6 {
        pull(reg, None, "kept/app", "v1");
    }
    let r = api(reg, &admin(), "GET", "/audit-logs?sort=id&page_size=100", None);
    let got = entries(&r);
    assert_eq!(r.header("X-Total-Count"), Some("5"), "{r}");
    assert_eq!(got, vec![e("anonymous", "pull", "artifact", "kept/app:v1"); 5], "the oldest went first: {got:?}");
    // A ninth write keeps the bound.
    push_image_as(reg, &a, "kept/app", "v2", b"retained layer two");
    let got = entries(&api(reg, &admin(), "GET", "/audit-logs?sort=-id&page_size=100", None));
    assert_eq!(got.len(), 5);
    assert_eq!(got[0], e("admin", "create", "artifact", "kept/app:v2"));
}
