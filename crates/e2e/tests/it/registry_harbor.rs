//! wharf-registry's Harbor model (`serve --auth`): projects, users, members with Harbor's
//! roles, robot accounts. The permission matrix is driven through the registry protocol as
//! clients speak it (a token from `/token`, then the request) and through the REST API
//! (`/api/v2.0`), for every role, a logged-in outsider, anonymous, a system admin and robots,
//! on a public and a private project, and compared with Harbor's table written out below.
//! The docker CLI through wharfd logs in as users and as a robot; the REST API's shapes,
//! paging, errors, users, passwords and robot secrets are checked on their own.

use serde_json::{json, Value};

use crate::harness::Daemon;
use crate::registry_pg::Postgres;
use crate::registry_server::{auth_server, digest, http, image_manifest, skopeo, Resp, Server, ADMIN_PW, OCI_MANIFEST};

pub(crate) const PW: &str = "Harbor12345";

pub(crate) fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", crate::registry_auth::base64(format!("{user}:{password}").as_bytes()))
}

/// Credentials of a subject of the matrix: `None` is anonymous.
#[derive(Clone)]
pub(crate) struct Who {
    pub(crate) label: String,
    pub(crate) creds: Option<(String, String)>,
}

impl Who {
    pub(crate) fn user(label: &str, name: &str, password: &str) -> Who {
        Who { label: label.into(), creds: Some((name.into(), password.into())) }
    }

    fn authz(&self) -> Vec<(&'static str, String)> {
        match &self.creds {
            Some((u, p)) => vec![("Authorization", basic(u, p))],
            None => vec![],
        }
    }

    fn is_anonymous(&self) -> bool {
        self.creds.is_none()
    }
}

/// A request to the REST API as `who`.
pub(crate) fn api(reg: &Server, who: &Who, method: &str, path: &str, body: Option<&Value>) -> Resp {
    let mut headers: Vec<(&str, String)> = who.authz();
    let text = body.map(|b| b.to_string()).unwrap_or_default();
    if body.is_some() {
        headers.push(("Content-Type", "application/json".into()));
    }
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    http(&reg.addr, method, &format!("/api/v2.0{path}"), &h, text.as_bytes())
}

pub(crate) fn admin() -> Who {
    Who::user("sysadmin", "admin", ADMIN_PW)
}

/// Harbor's error body: `{"errors":[{"code","message"}]}`; returns (code, message).
pub(crate) fn harbor_error(r: &Resp) -> (String, String) {
    let v = r.json();
    let e = &v["errors"][0];
    assert!(e["code"].is_string() && e["message"].is_string(), "not Harbor's error form: {r}");
    (e["code"].as_str().unwrap_or_default().into(), e["message"].as_str().unwrap_or_default().into())
}

/// A token for `scope` as `who`; `None` when the token service refuses (anonymous with
/// nothing to grant).
fn token(reg: &Server, who: &Who, scope: &str) -> Option<String> {
    let h = who.authz();
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = http(&reg.addr, "GET", &format!("/token?service=wharf-registry&scope={scope}"), &h, b"");
    match r.status {
        200 => Some(format!("Bearer {}", r.json()["token"].as_str().unwrap_or_default())),
        401 if who.is_anonymous() => None,
        _ => panic!("token for {} ({scope}): {r}", who.label),
    }
}

/// Whether a registry answer allowed the request; a refusal must be the spec's: 401 for
/// anonymous, 403 DENIED naming the missing permission for everyone else.
fn registry_allowed(who: &Who, what: &str, r: &Resp, ok: u16) -> bool {
    if r.status == ok {
        return true;
    }
    if who.is_anonymous() {
        assert_eq!(r.status, 401, "{} {what}: {r}", who.label);
        return false;
    }
    r.fails(403, "DENIED");
    let detail = r.json()["errors"][0]["detail"].as_str().unwrap_or_default().to_string();
    let action = what.split(' ').next().unwrap_or_default();
    assert!(detail.contains(&format!("lacks the repository:{action} permission")), "{} {what}: {detail}", who.label);
    false
}

/// Whether a REST answer allowed the request; refusals are 401 (anonymous) or 403 naming the
/// permission, in Harbor's error form.
fn api_allowed(who: &Who, what: &str, r: &Resp, permission: &str) -> bool {
    if r.status == 201 {
        return true;
    }
    let (code, message) = harbor_error(r);
    if who.is_anonymous() {
        assert_eq!((r.status, code.as_str()), (401, "UNAUTHORIZED"), "{} {what}: {r}", who.label);
    } else {
        assert_eq!((r.status, code.as_str()), (403, "FORBIDDEN"), "{} {what}: {r}", who.label);
        assert!(message.contains(&format!("lacks the {permission} permission")), "{} {what}: {message}", who.label);
    }
    false
}

/// What `who` may do on `project`, as one line: each action tried for real.
fn row(reg: &Server, who: &Who, project: &str, n: &mut usize) -> String {
    *n += 1;
    let repo = format!("{project}/img");
    let mut can = Vec::new();

    // pull: a token asking for pull, then the manifest.
    let pulled = match token(reg, who, &format!("repository:{repo}:pull")) {
        None => false,
        Some(t) => {
            let r = reg.req("GET", &format!("/v2/{repo}/manifests/v1"), &[("Authorization", &t)], b"");
            registry_allowed(who, "pull", &r, 200)
        }
    };
    // push: a token asking for pull,push, then a monolithic blob upload.
    let data = format!("pushed by {} into {project} #{n}", who.label);
    let pushed = match token(reg, who, &format!("repository:{repo}:pull,push")) {
        None => false,
        Some(t) => {
            let d = digest(data.as_bytes());
            let r = reg.req(
                "POST",
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
                &[("Authorization", &t)],
                data.as_bytes(),
            );
            registry_allowed(who, "push", &r, 201)
        }
    };
    // delete: a blob the admin pushed for this cell.
    let doomed = push_blob_as(reg, &admin_authz(), &repo, format!("to delete, {} #{n}", who.label).as_bytes());
    let deleted = match token(reg, who, &format!("repository:{repo}:delete")) {
        None => false,
        Some(t) => {
            let r = reg.req("DELETE", &format!("/v2/{repo}/blobs/{doomed}"), &[("Authorization", &t)], b"");
            registry_allowed(who, "delete", &r, 202)
        }
    };
    for (name, yes) in [("pull", pulled), ("push", pushed), ("delete", deleted)] {
        if yes {
            can.push(name);
        }
    }

    // manage members: add `extra` as a guest (undone by the admin).
    let add = json!({ "role_id": 3, "member_user": { "username": "extra" } });
    let r = api(reg, who, "POST", &format!("/projects/{project}/members"), Some(&add));
    if api_allowed(who, "add a member", &r, "member:create") {
        can.push("members");
        let location = r.header("Location").unwrap_or_default().to_string();
        let mid = location.rsplit('/').next().unwrap_or_default();
        let undo = api(reg, &admin(), "DELETE", &format!("/projects/{project}/members/{mid}"), None);
        assert_eq!(undo.status, 200, "{undo}");
    }
    // manage robots: create one.
    let robot = json!({
        "name": format!("made{n}"), "level": "project", "duration": -1,
        "permissions": [{ "kind": "project", "namespace": project,
                          "access": [{ "resource": "repository", "action": "pull" }] }]
    });
    let r = api(reg, who, "POST", "/robots", Some(&robot));
    if api_allowed(who, "create a robot", &r, "robot:create") {
        can.push("robots");
    }
    // change policies: add a tag immutability rule (for tags no cell uses).
    let rule = json!({ "tag_selectors": [{ "kind": "doublestar", "decoration": "matches", "pattern": format!("never-{n}-*") }] });
    let r = api(reg, who, "POST", &format!("/projects/{project}/immutabletagrules"), Some(&rule));
    if api_allowed(who, "add an immutability rule", &r, "immutable-tag:create") {
        can.push("policies");
    }
    format!("{}: {}", who.label, can.join(" "))
}

/// Pushes `data` into `repo` with one POST as `authz`; returns the digest.
pub(crate) fn push_blob_as(reg: &Server, authz: &str, repo: &str, data: &[u8]) -> String {
    let d = digest(data);
    let r =
        http(&reg.addr, "POST", &format!("/v2/{repo}/blobs/uploads/?digest={d}"), &[("Authorization", authz)], data);
    assert_eq!(r.status, 201, "push {d} to {repo}: {r}");
    d
}

/// Pushes a one-layer image into `repo:tag` as `authz`; returns the manifest's digest.
pub(crate) fn push_image_as(reg: &Server, authz: &str, repo: &str, tag: &str, layer: &[u8]) -> String {
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let (c, l) = (push_blob_as(reg, authz, repo, config), push_blob_as(reg, authz, repo, layer));
    let m = image_manifest(&c, config.len(), &l, layer.len());
    let h = [("Authorization", authz), ("Content-Type", OCI_MANIFEST)];
    let r = http(&reg.addr, "PUT", &format!("/v2/{repo}/manifests/{tag}"), &h, &m);
    assert_eq!(r.status, 201, "{r}");
    digest(&m)
}

pub(crate) fn admin_authz() -> String {
    basic("admin", ADMIN_PW)
}

/// Makes a user through the REST API as the admin.
pub(crate) fn make_user(reg: &Server, name: &str) {
    let body = json!({ "username": name, "password": PW, "email": format!("{name}@example.com"), "realname": name });
    let r = api(reg, &admin(), "POST", "/users", Some(&body));
    assert_eq!(r.status, 201, "create user {name}: {r}");
}

pub(crate) fn make_project(reg: &Server, who: &Who, name: &str, public: bool) -> u64 {
    let body = json!({ "project_name": name, "metadata": { "public": public.to_string() } });
    let r = api(reg, who, "POST", "/projects", Some(&body));
    assert_eq!(r.status, 201, "create project {name}: {r}");
    r.header("Location").and_then(|l| l.rsplit('/').next()).and_then(|id| id.parse().ok()).expect("a project id")
}

pub(crate) fn add_member(reg: &Server, project: &str, user: &str, role: u8) {
    let body = json!({ "role_id": role, "member_user": { "username": user } });
    let r = api(reg, &admin(), "POST", &format!("/projects/{project}/members"), Some(&body));
    assert_eq!(r.status, 201, "add {user} to {project}: {r}");
}

/// A robot of `project` with `access` (repository actions); returns (name, secret).
pub(crate) fn make_robot(
    reg: &Server,
    who: &Who,
    project: &str,
    name: &str,
    actions: &[&str],
) -> (String, String, u64) {
    let access: Vec<Value> = actions.iter().map(|a| json!({ "resource": "repository", "action": a })).collect();
    let body = json!({ "name": name, "level": "project", "duration": -1, "description": "ci",
        "permissions": [{ "kind": "project", "namespace": project, "access": access }] });
    let r = api(reg, who, "POST", "/robots", Some(&body));
    assert_eq!(r.status, 201, "create robot {name}: {r}");
    let v = r.json();
    (
        v["name"].as_str().unwrap_or_default().to_string(),
        v["secret"].as_str().unwrap_or_default().to_string(),
        v["id"].as_u64().unwrap_or_default(),
    )
}

#[test]
fn harbor_permission_matrix_on_public_and_private_projects() {
    permission_matrix(&auth_server(&[]));
}

/// The same matrix with the index (and so the model) in PostgreSQL.
#[test]
fn pg_harbor_permission_matrix() {
    let pg = Postgres::start();
    permission_matrix(&auth_server(&["--database-url", &pg.url()]));
}

fn permission_matrix(reg: &Server) {
    for u in ["pa", "maint", "dev", "guest", "lguest", "outsider", "extra"] {
        make_user(reg, u);
    }
    for (project, public) in [("priv", false), ("pub", true)] {
        make_project(reg, &admin(), project, public);
        for (user, role) in [("pa", 1), ("maint", 4), ("dev", 2), ("guest", 3), ("lguest", 5)] {
            add_member(reg, project, user, role);
        }
        push_image_as(reg, &admin_authz(), &format!("{project}/img"), "v1", format!("layer of {project}").as_bytes());
    }
    let (priv_robot, priv_secret, _) = make_robot(reg, &admin(), "priv", "ci", &["pull", "push"]);
    let (pub_robot, pub_secret, _) = make_robot(reg, &admin(), "pub", "ci", &["pull", "push"]);
    assert_eq!(priv_robot, "robot$priv+ci");

    let mut n = 0;
    let mut got = Vec::new();
    for (project, own, other) in [
        ("priv", (&priv_robot, &priv_secret), (&pub_robot, &pub_secret)),
        ("pub", (&pub_robot, &pub_secret), (&priv_robot, &priv_secret)),
    ] {
        let subjects = [
            admin(),
            Who::user("projectAdmin", "pa", PW),
            Who::user("maintainer", "maint", PW),
            Who::user("developer", "dev", PW),
            Who::user("guest", "guest", PW),
            Who::user("limitedGuest", "lguest", PW),
            Who::user("outsider", "outsider", PW),
            Who { label: "anonymous".into(), creds: None },
            Who::user("robot", own.0, own.1),
            Who::user("other robot", other.0, other.1),
        ];
        got.push(format!("{project}:"));
        for who in &subjects {
            got.push(row(reg, who, project, &mut n));
        }
    }
    // Harbor's table: ProjectAdmin all; Maintainer pushes, deletes and sets immutability
    // rules; Developer pushes;
    // Guest and LimitedGuest pull; a public project lets anyone pull; robots hold their own
    // permissions in their project only.
    let want = [
        "priv:",
        "sysadmin: pull push delete members robots policies",
        "projectAdmin: pull push delete members robots policies",
        "maintainer: pull push delete policies",
        "developer: pull push",
        "guest: pull",
        "limitedGuest: pull",
        "outsider: ",
        "anonymous: ",
        "robot: pull push",
        "other robot: ",
        "pub:",
        "sysadmin: pull push delete members robots policies",
        "projectAdmin: pull push delete members robots policies",
        "maintainer: pull push delete policies",
        "developer: pull push",
        "guest: pull",
        "limitedGuest: pull",
        "outsider: pull",
        "anonymous: pull",
        "robot: pull push",
        "other robot: pull",
    ];
    assert_eq!(got, want);

    // The catalog is the system admins'.
    let t = token(reg, &Who::user("projectAdmin", "pa", PW), "registry:catalog:*").unwrap_or_default();
    reg.req("GET", "/v2/_catalog", &[("Authorization", &t)], b"").fails(403, "DENIED");
    // Basic credentials straight on a request are checked the same way.
    let r = reg.req("DELETE", "/v2/priv/img/manifests/v1", &[("Authorization", &basic("dev", PW))], b"");
    r.fails(403, "DENIED");
    assert!(String::from_utf8_lossy(&r.body).contains("developer of project \\\"priv\\\""), "{r}");
    // Pushing to a project that does not exist: refused for users, with its reason.
    let t = token(reg, &Who::user("developer", "dev", PW), "repository:nope/img:pull,push").unwrap_or_default();
    let r = reg.req("POST", "/v2/nope/img/blobs/uploads/", &[("Authorization", &t)], b"");
    r.fails(403, "DENIED");
    assert!(String::from_utf8_lossy(&r.body).contains("project \\\"nope\\\" does not exist"), "{r}");
    // A user cannot create projects through a push; a system admin's push creates it private.
    push_image_as(reg, &admin_authz(), "madebypush/img", "v1", b"layer");
    let p = api(reg, &admin(), "GET", "/projects/madebypush", None).json();
    assert_eq!(p["metadata"]["public"], "false", "{p}");
}

#[test]
fn harbor_docker_cli_users_and_robots_through_wharfd() {
    let reg = auth_server(&[]);
    for u in ["dev", "guest"] {
        make_user(&reg, u);
    }
    make_project(&reg, &admin(), "team", false);
    add_member(&reg, "team", "dev", 2);
    add_member(&reg, "team", "guest", 3);
    let (robot, secret, robot_id) = make_robot(&reg, &admin(), "team", "ci", &["pull"]);

    let d = Daemon::start();
    let src = d.pull("library/busybox:latest");
    let target = reg.image("team/busybox:1");
    d.docker(&["tag", &src, &target]).ok();
    // A developer pushes; a guest may not, and is told which permission it lacks.
    d.docker(&["login", "-u", "dev", "-p", PW, &reg.addr]).ok().mentions(&["Login Succeeded"]);
    d.docker(&["push", &target]).ok().mentions(&["1: digest: sha256:"]);
    d.docker(&["login", "-u", "guest", "-p", PW, &reg.addr]).ok();
    let other = reg.image("team/other:1");
    d.docker(&["tag", &src, &other]).ok();
    d.docker(&["push", &other]).fails().mentions(&["lacks the repository:push permission"]);
    // The robot logs in with docker login and pulls, on a fresh daemon.
    let fresh = Daemon::start();
    fresh.docker(&["pull", &target]).fails().mentions(&["unauthorized"]);
    fresh.docker(&["login", "-u", &robot, "-p", &secret, &reg.addr]).ok().mentions(&["Login Succeeded"]);
    fresh.docker(&["pull", &target]).ok();
    let out = fresh.docker(&["run", "--rm", &target, "echo", "pulled by a robot"]);
    assert_eq!(out.ok().trimmed(), "pulled by a robot", "{out}");
    fresh.docker(&["tag", &target, &other]).ok();
    fresh.docker(&["push", &other]).fails().mentions(&["lacks the repository:push permission"]);
    // Disabled, it cannot log in any more; enabled again, it can.
    let r = api(&reg, &admin(), "PUT", &format!("/robots/{robot_id}"), Some(&json!({ "disable": true })));
    assert_eq!(r.status, 200, "{r}");
    fresh.docker(&["login", "-u", &robot, "-p", &secret, &reg.addr]).fails();
    let r = api(&reg, &admin(), "PUT", &format!("/robots/{robot_id}"), Some(&json!({ "disable": false })));
    assert_eq!(r.status, 200, "{r}");
    // A refreshed secret replaces the old one.
    let r = api(&reg, &admin(), "PATCH", &format!("/robots/{robot_id}"), Some(&json!({ "secret": "" })));
    assert_eq!(r.status, 200, "{r}");
    let new_secret = r.json()["secret"].as_str().unwrap_or_default().to_string();
    assert!(new_secret.len() >= 32 && new_secret != secret, "{r}");
    fresh.docker(&["login", "-u", &robot, "-p", &secret, &reg.addr]).fails();
    fresh.docker(&["login", "-u", &robot, "-p", &new_secret, &reg.addr]).ok();
    // skopeo with the robot's credentials reads it too; anonymous reads only public projects.
    let creds = format!("{robot}:{new_secret}");
    let url = format!("docker://{target}");
    skopeo(&["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &url]).ok();
    skopeo(&["inspect", "--raw", "--tls-verify=false", &url]).fails();
    let r = api(&reg, &admin(), "PUT", "/projects/team", Some(&json!({ "metadata": { "public": "true" } })));
    assert_eq!(r.status, 200, "{r}");
    skopeo(&["inspect", "--raw", "--tls-verify=false", &url]).ok();
    // library is there from the first start, public.
    let lib = api(&reg, &Who { label: "anonymous".into(), creds: None }, "GET", "/projects/library", None);
    assert_eq!((lib.status, lib.json()["metadata"]["public"].as_str()), (200, Some("true")), "{lib}");
}

#[test]
fn harbor_rest_api_projects_users_robots_and_errors() {
    rest_api(&auth_server(&[]));
}

#[test]
fn pg_harbor_rest_api() {
    let pg = Postgres::start();
    rest_api(&auth_server(&["--database-url", &pg.url()]));
}

/// Two replicas on one database share the model: what one is told, the other enforces.
#[test]
fn pg_harbor_replicas_share_projects_members_and_robots() {
    let pg = Postgres::start();
    let a = auth_server(&["--database-url", &pg.url()]);
    let b = Server::start_sharing(&a.data, &["--auth", "--database-url", &pg.url()]);
    make_user(&a, "dev");
    make_project(&a, &admin(), "shared", false);
    let (robot, secret, _) = make_robot(&a, &admin(), "shared", "ci", &["pull", "push"]);
    // dev is no member yet: b refuses its push; once a adds it, b lets it push.
    let dev = basic("dev", PW);
    let data = b"shared blob";
    let d = digest(data);
    let path = format!("/v2/shared/x/blobs/uploads/?digest={d}");
    http(&b.addr, "POST", &path, &[("Authorization", &dev)], data).fails(403, "DENIED");
    add_member(&a, "shared", "dev", 2);
    push_blob_as(&b, &dev, "shared/x", data);
    // The robot made through a logs in through b; b's REST API sees a's project.
    push_blob_as(&b, &basic(&robot, &secret), "shared/x", b"robot blob");
    let members = api(&b, &admin(), "GET", "/projects/shared/members", None).json();
    assert_eq!(members.as_array().map(|m| m.len()), Some(2), "the creator and dev: {members}");
}

fn rest_api(reg: &Server) {
    let anon = Who { label: "anonymous".into(), creds: None };
    // ping, health, systeminfo.
    let r = api(reg, &anon, "GET", "/ping", None);
    assert_eq!((r.status, String::from_utf8_lossy(&r.body).to_string()), (200, "Pong".to_string()));
    let h = api(reg, &anon, "GET", "/health", None).json();
    assert_eq!(h["status"], "healthy", "{h}");
    let info = api(reg, &anon, "GET", "/systeminfo", None).json();
    assert_eq!((info["auth_mode"].as_str(), info["self_registration"].as_bool()), (Some("db_auth"), Some(false)));

    // Users: sign-up is off; the admin creates them; the policy is Harbor's.
    let signup = json!({ "username": "alice", "password": PW });
    let r = api(reg, &anon, "POST", "/users", Some(&signup));
    assert_eq!((r.status, harbor_error(&r).0.as_str()), (401, "UNAUTHORIZED"), "{r}");
    let weak = json!({ "username": "alice", "password": "weakpass" });
    let r = api(reg, &admin(), "POST", "/users", Some(&weak));
    assert_eq!(r.status, 400, "{r}");
    assert!(harbor_error(&r).1.contains("upper-case letter"), "{r}");
    make_user(reg, "alice");
    make_user(reg, "bob");
    let r = api(reg, &admin(), "POST", "/users", Some(&signup));
    assert_eq!((r.status, harbor_error(&r).0.as_str()), (409, "CONFLICT"), "{r}");
    let alice = Who::user("alice", "alice", PW);
    let me = api(reg, &alice, "GET", "/users/current", None).json();
    assert_eq!((me["username"].as_str(), me["sysadmin_flag"].as_bool()), (Some("alice"), Some(false)), "{me}");
    assert_eq!(me["email"], "alice@example.com");
    let id = me["user_id"].as_u64().unwrap_or_default();
    let r = api(reg, &Who::user("wrong", "alice", "Wrong12345"), "GET", "/users/current", None);
    assert_eq!(r.status, 401, "{r}");
    let found = api(reg, &alice, "GET", "/users/search?username=bo", None).json();
    assert_eq!(found[0]["username"], "bob", "{found}");
    let r = api(reg, &alice, "GET", "/users", None);
    assert_eq!((r.status, harbor_error(&r).0.as_str()), (403, "FORBIDDEN"), "only admins list users: {r}");
    let all = api(reg, &admin(), "GET", "/users?q=username%3D~b", None).json();
    assert_eq!(all.as_array().map(|a| a.len()), Some(1), "{all}");
    // Password change: the old one is needed, the new one must pass the policy.
    let bad_old = json!({ "old_password": "Nope12345", "new_password": "Another123" });
    assert_eq!(api(reg, &alice, "PUT", &format!("/users/{id}/password"), Some(&bad_old)).status, 403);
    let change = json!({ "old_password": PW, "new_password": "Another123" });
    assert_eq!(api(reg, &alice, "PUT", &format!("/users/{id}/password"), Some(&change)).status, 200);
    assert_eq!(api(reg, &alice, "GET", "/users/current", None).status, 401, "the old password is gone");
    let alice = Who::user("alice", "alice", "Another123");
    assert_eq!(api(reg, &alice, "GET", "/users/current", None).status, 200);
    let bob_id = api(reg, &Who::user("bob", "bob", PW), "GET", "/users/current", None).json()["user_id"].clone();
    let r = api(reg, &alice, "PUT", &format!("/users/{bob_id}/password"), Some(&change));
    assert_eq!(r.status, 403, "alice may not change bob's password: {r}");
    // A system admin makes another; the flag is what lets bob list users.
    let bob = Who::user("bob", "bob", PW);
    let flag = |on: bool| {
        api(reg, &admin(), "PUT", &format!("/users/{bob_id}/sysadmin"), Some(&json!({ "sysadmin_flag": on })))
    };
    assert_eq!(flag(true).status, 200);
    assert_eq!(api(reg, &bob, "GET", "/users", None).status, 200);
    assert_eq!(flag(false).status, 200);
    assert_eq!(api(reg, &bob, "GET", "/users", None).status, 403);
    let r = api(reg, &alice, "PUT", &format!("/users/{bob_id}/sysadmin"), Some(&json!({ "sysadmin_flag": true })));
    assert_eq!(r.status, 403, "{r}");

    // Projects: any user creates one and is its admin; names are checked; paging and q.
    let r = api(reg, &alice, "POST", "/projects", Some(&json!({ "project_name": "Bad Name" })));
    assert_eq!((r.status, harbor_error(&r).0.as_str()), (400, "BAD_REQUEST"), "{r}");
    let pid = make_project(reg, &alice, "alpha", false);
    let r = api(reg, &alice, "POST", "/projects", Some(&json!({ "project_name": "alpha" })));
    assert_eq!((r.status, harbor_error(&r).0.as_str()), (409, "CONFLICT"), "{r}");
    for name in ["beta", "gamma", "delta"] {
        make_project(reg, &admin(), name, true);
    }
    let r = api(reg, &anon, "POST", "/projects", Some(&json!({ "project_name": "anon" })));
    assert_eq!(r.status, 401, "{r}");
    let by_id = api(reg, &alice, "GET", &format!("/projects/{pid}"), None).json();
    assert_eq!((by_id["name"].as_str(), by_id["owner_name"].as_str()), (Some("alpha"), Some("alice")), "{by_id}");
    assert_eq!(by_id["current_user_role_id"], 1, "{by_id}");
    // bob sees the public ones and library, not alpha.
    let r = api(reg, &bob, "GET", "/projects?page=1&page_size=2", None);
    assert_eq!(r.header("X-Total-Count"), Some("4"), "{r}");
    assert!(r.header("Link").is_some_and(|l| l.contains("page=2") && l.contains("rel=\"next\"")), "{r}");
    let names: Vec<String> = r
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| p["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, ["beta", "delta"]);
    let r = api(reg, &bob, "GET", "/projects/alpha", None);
    assert_eq!((r.status, harbor_error(&r).0.as_str()), (403, "FORBIDDEN"), "{r}");
    let q = api(reg, &admin(), "GET", "/projects?q=name%3D~mm", None).json();
    assert_eq!(q.as_array().map(|a| a.len()), Some(1), "{q}");
    assert_eq!(q[0]["name"], "gamma");
    let r = api(reg, &bob, "PUT", "/projects/beta", Some(&json!({ "metadata": { "public": "false" } })));
    assert_eq!(r.status, 403, "{r}");
    assert!(harbor_error(&r).1.contains("lacks the project:update permission"), "{r}");

    // Repositories and artifacts of a project, then its deletion.
    let m = push_image_as(reg, &basic("alice", "Another123"), "alpha/app", "1.0", b"alpha layer");
    let repos = api(reg, &alice, "GET", "/projects/alpha/repositories", None).json();
    assert_eq!((repos[0]["name"].as_str(), repos[0]["artifact_count"].as_u64()), (Some("alpha/app"), Some(1)));
    let arts = api(reg, &alice, "GET", "/projects/alpha/repositories/app/artifacts", None).json();
    assert_eq!(arts[0]["digest"], m.as_str(), "{arts}");
    assert_eq!(arts[0]["tags"][0]["name"], "1.0", "{arts}");
    assert_eq!(
        (arts[0]["extra_attrs"]["os"].as_str(), arts[0]["extra_attrs"]["architecture"].as_str()),
        (Some("linux"), Some("amd64"))
    );
    assert!(arts[0]["size"].as_u64().is_some_and(|s| s > 11), "{arts}");
    let r = api(
        reg,
        &alice,
        "POST",
        "/projects/alpha/repositories/app/artifacts/1.0/tags",
        Some(&json!({ "name": "stable" })),
    );
    assert_eq!(r.status, 201, "{r}");
    let tags = api(reg, &alice, "GET", &format!("/projects/alpha/repositories/app/artifacts/{m}/tags"), None).json();
    assert_eq!(tags.as_array().map(|t| t.len()), Some(2), "{tags}");
    assert_eq!(
        reg.req("GET", "/v2/alpha/app/manifests/stable", &[("Authorization", &basic("alice", "Another123"))], b"")
            .status,
        200
    );
    let summary = api(reg, &alice, "GET", "/projects/alpha/summary", None).json();
    assert_eq!(
        (summary["repo_count"].as_u64(), summary["project_admin_count"].as_u64()),
        (Some(1), Some(1)),
        "{summary}"
    );
    let r = api(reg, &alice, "DELETE", "/projects/alpha", None);
    assert_eq!((r.status, harbor_error(&r).0.as_str()), (412, "PRECONDITION"), "{r}");
    assert_eq!(
        api(reg, &alice, "DELETE", "/projects/alpha/repositories/app/artifacts/1.0/tags/stable", None).status,
        200
    );
    assert_eq!(
        api(reg, &alice, "DELETE", &format!("/projects/alpha/repositories/app/artifacts/{m}"), None).status,
        200
    );
    assert_eq!(api(reg, &alice, "DELETE", "/projects/alpha", None).status, 200);
    assert_eq!(api(reg, &alice, "GET", "/projects/alpha", None).status, 404);

    // Robots: the secret is shown once; listing never shows it.
    let (name, secret, rid) = make_robot(reg, &admin(), "beta", "deploy", &["pull", "push"]);
    assert_eq!(name, "robot$beta+deploy");
    assert_eq!(secret.len(), 32);
    let got = api(reg, &admin(), "GET", &format!("/robots/{rid}"), None).json();
    assert_eq!((got["secret"].as_str(), got["disable"].as_bool()), (Some(""), Some(false)), "{got}");
    let listed = api(reg, &admin(), "GET", "/projects/beta/robots", None).json();
    assert_eq!(listed[0]["name"], "robot$beta+deploy", "{listed}");
    let robot = Who::user("robot", &name, &secret);
    let r = api(reg, &robot, "GET", "/users/current", None);
    assert_eq!(r.status, 403, "a robot is no user: {r}");
    let dup = json!({ "name": "deploy", "permissions": [{ "kind": "project", "namespace": "beta", "access": [] }] });
    assert_eq!(api(reg, &admin(), "POST", "/robots", Some(&dup)).status, 409);
    let sys = json!({ "name": "x", "level": "system", "permissions": [] });
    assert_eq!(api(reg, &admin(), "POST", "/robots", Some(&sys)).status, 400);
    assert_eq!(api(reg, &admin(), "DELETE", &format!("/robots/{rid}"), None).status, 200);
    assert_eq!(token_status(reg, &name, &secret), 401, "a deleted robot cannot log in");

    // Unknown endpoints and bad bodies, in Harbor's error form.
    let r = api(reg, &admin(), "GET", "/nothing", None);
    assert_eq!((r.status, harbor_error(&r).0.as_str()), (404, "NOT_FOUND"));
    let h: Vec<(&str, &str)> = vec![("Authorization", ""), ("Content-Type", "application/json")];
    let auth = basic("admin", ADMIN_PW);
    let h: Vec<(&str, &str)> =
        h.into_iter().map(|(k, v)| if k == "Authorization" { (k, auth.as_str()) } else { (k, v) }).collect();
    let r = http(&reg.addr, "POST", "/api/v2.0/projects", &h, b"{not json");
    assert_eq!((r.status, harbor_error(&r).0.as_str()), (400, "BAD_REQUEST"), "{r}");
}

fn token_status(reg: &Server, user: &str, password: &str) -> u16 {
    let h = basic(user, password);
    http(&reg.addr, "GET", "/token?service=wharf-registry&scope=repository:beta/x:pull", &[("Authorization", &h)], b"")
        .status
}

#[test]
fn harbor_quota_counts_deduplicated_storage_and_refuses_a_push_past_it() {
    let reg = auth_server(&[]);
    make_user(&reg, "dev");
    let r = api(
        &reg,
        &Who::user("dev", "dev", PW),
        "POST",
        "/projects",
        Some(&json!({ "project_name": "mine", "storage_limit": 10 })),
    );
    assert_eq!(r.status, 403, "only admins set quotas: {r}");
    let body = json!({ "project_name": "q", "storage_limit": 2000 });
    let r = api(&reg, &admin(), "POST", "/projects", Some(&body));
    assert_eq!(r.status, 201, "{r}");
    let pid: u64 = r.header("Location").and_then(|l| l.rsplit('/').next()).and_then(|i| i.parse().ok()).unwrap_or(0);
    add_member(&reg, "q", "dev", 2);
    let dev = basic("dev", PW);
    let layer = vec![b'x'; 600];
    push_image_as(&reg, &dev, "q/one", "v1", &layer);
    let used = |reg: &Server| {
        let q = api(reg, &admin(), "GET", &format!("/quotas/{pid}"), None).json();
        assert_eq!(q["hard"]["storage"], 2000, "{q}");
        q["used"]["storage"].as_u64().unwrap_or_default()
    };
    let first = used(&reg);
    assert!(first > 600 && first < 1200, "config, layer and manifest: {first}");
    // The same layer in a second repository of the project counts once.
    push_image_as(&reg, &dev, "q/two", "v1", &layer);
    let second = used(&reg);
    assert!(second < first + 100, "the shared layer and config counted once: {first} then {second}");
    // A new layer that would pass the limit is refused, saying the limit and the usage.
    let big = vec![b'y'; 1500];
    let d = digest(&big);
    let r =
        http(&reg.addr, "POST", &format!("/v2/q/three/blobs/uploads/?digest={d}"), &[("Authorization", &dev)], &big);
    r.fails(403, "DENIED");
    let message = r.json()["errors"][0]["message"].as_str().unwrap_or_default().to_string();
    assert!(
        message.contains(&format!("uses {second} of its 2000 bytes")) && message.contains("1500 bytes more"),
        "{message}"
    );
    assert_eq!(used(&reg), second, "nothing of the refused push was counted");
    assert_eq!(http(&reg.addr, "HEAD", &format!("/v2/q/three/blobs/{d}"), &[("Authorization", &dev)], b"").status, 404);
    // The summary shows it to members; raising the limit lets the push through.
    let s = api(&reg, &Who::user("dev", "dev", PW), "GET", "/projects/q/summary", None).json();
    assert_eq!(
        (s["quota"]["used"]["storage"].as_u64(), s["quota"]["hard"]["storage"].as_i64()),
        (Some(second), Some(2000))
    );
    let r = api(
        &reg,
        &Who::user("dev", "dev", PW),
        "PUT",
        &format!("/quotas/{pid}"),
        Some(&json!({ "hard": { "storage": -1 } })),
    );
    assert_eq!(r.status, 403, "{r}");
    let r = api(&reg, &admin(), "PUT", &format!("/quotas/{pid}"), Some(&json!({ "hard": { "storage": 4000 } })));
    assert_eq!(r.status, 200, "{r}");
    push_blob_as(&reg, &dev, "q/three", &big);

    // Through wharfd: an image larger than the quota is refused with the reason.
    let r = api(&reg, &admin(), "POST", "/projects", Some(&json!({ "project_name": "tiny", "storage_limit": 100000 })));
    assert_eq!(r.status, 201, "{r}");
    let d = Daemon::start();
    let src = d.pull("library/busybox:latest");
    let target = reg.image("tiny/busybox:1");
    d.docker(&["tag", &src, &target]).ok();
    d.docker(&["login", "-u", "admin", "-p", ADMIN_PW, &reg.addr]).ok();
    d.docker(&["push", &target]).fails().mentions(&["quota exceeded", "of its 100000 bytes"]);
}

#[test]
fn harbor_immutable_tags_cannot_be_moved_or_deleted() {
    let reg = auth_server(&[]);
    for u in ["dev", "maint"] {
        make_user(&reg, u);
    }
    make_project(&reg, &admin(), "imm", false);
    add_member(&reg, "imm", "dev", 2);
    add_member(&reg, "imm", "maint", 4);
    let a = admin_authz();
    let v1 = push_image_as(&reg, &a, "imm/app", "v1", b"first layer");
    let rule = json!({
        "disabled": false,
        "tag_selectors": [{ "kind": "doublestar", "decoration": "matches", "pattern": "v*" }],
        "scope_selectors": { "repository": [{ "kind": "doublestar", "decoration": "repoMatches", "pattern": "**" }] }
    });
    let r = api(&reg, &Who::user("dev", "dev", PW), "POST", "/projects/imm/immutabletagrules", Some(&rule));
    assert_eq!(r.status, 403, "{r}");
    assert!(harbor_error(&r).1.contains("lacks the immutable-tag:create permission"), "{r}");
    let maint = Who::user("maint", "maint", PW);
    let r = api(&reg, &maint, "POST", "/projects/imm/immutabletagrules", Some(&rule));
    assert_eq!(r.status, 201, "{r}");
    let rid = r.header("Location").and_then(|l| l.rsplit('/').next()).unwrap_or_default().to_string();
    let rules = api(&reg, &maint, "GET", "/projects/imm/immutabletagrules", None).json();
    assert_eq!(rules[0]["tag_selectors"][0]["pattern"], "v*", "{rules}");
    let bad_rule = json!({ "tag_selectors": [{ "kind": "regex", "pattern": "v.*" }] });
    assert_eq!(api(&reg, &maint, "POST", "/projects/imm/immutabletagrules", Some(&bad_rule)).status, 400);

    // v1 cannot move to another manifest, nor be deleted, by tag or by its manifest.
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let (c, l) = (push_blob_as(&reg, &a, "imm/app", config), push_blob_as(&reg, &a, "imm/app", b"second layer"));
    let other = image_manifest(&c, config.len(), &l, b"second layer".len());
    let put = |tag: &str, m: &[u8]| {
        let h = [("Authorization", a.as_str()), ("Content-Type", OCI_MANIFEST)];
        http(&reg.addr, "PUT", &format!("/v2/imm/app/manifests/{tag}"), &h, m)
    };
    let r = put("v1", &other);
    r.fails(403, "DENIED");
    assert!(String::from_utf8_lossy(&r.body).contains("tag imm/app:v1 is immutable"), "{r}");
    let h = [("Authorization", a.as_str())];
    assert_eq!(
        http(&reg.addr, "GET", "/v2/imm/app/manifests/v1", &h, b"").header("Docker-Content-Digest"),
        Some(v1.as_str())
    );
    // The same manifest again changes nothing and is accepted; new tags and unmatched ones move freely.
    let first = http(&reg.addr, "GET", "/v2/imm/app/manifests/v1", &h, b"").body;
    assert_eq!(put("v1", &first).status, 201);
    assert_eq!(put("v2", &other).status, 201);
    assert_eq!(put("latest", &first).status, 201);
    assert_eq!(put("latest", &other).status, 201);
    http(&reg.addr, "DELETE", "/v2/imm/app/manifests/v1", &h, b"").fails(403, "DENIED");
    http(&reg.addr, "DELETE", &format!("/v2/imm/app/manifests/{v1}"), &h, b"").fails(403, "DENIED");
    // Through the REST API: 412, and the tags say they are immutable.
    let r = api(&reg, &admin(), "DELETE", "/projects/imm/repositories/app/artifacts/v1/tags/v1", None);
    assert_eq!((r.status, harbor_error(&r).0.as_str()), (412, "PRECONDITION"), "{r}");
    let r = api(&reg, &admin(), "DELETE", &format!("/projects/imm/repositories/app/artifacts/{v1}"), None);
    assert_eq!(r.status, 412, "{r}");
    let tags = api(&reg, &admin(), "GET", &format!("/projects/imm/repositories/app/artifacts/{v1}/tags"), None).json();
    let flags: Vec<(String, bool)> = tags
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|t| (t["name"].as_str().unwrap_or_default().to_string(), t["immutable"].as_bool().unwrap_or_default()))
        .collect();
    assert_eq!(flags, [("v1".to_string(), true)], "{tags}");
    // Disabled, the rule protects nothing.
    let r =
        api(&reg, &maint, "PUT", &format!("/projects/imm/immutabletagrules/{rid}"), Some(&json!({ "disabled": true })));
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(http(&reg.addr, "DELETE", "/v2/imm/app/manifests/v1", &h, b"").status, 202);
    assert_eq!(api(&reg, &maint, "DELETE", &format!("/projects/imm/immutabletagrules/{rid}"), None).status, 200);
    assert_eq!(api(&reg, &maint, "GET", "/projects/imm/immutabletagrules", None).json(), json!([]));

    // Through wharfd: pushing another image over an immutable tag fails with the reason.
    let r = api(&reg, &maint, "POST", "/projects/imm/immutabletagrules", Some(&rule));
    assert_eq!(r.status, 201, "{r}");
    let d = Daemon::start();
    let busybox = d.pull("library/busybox:latest");
    let layers = d.pull("test/layers:latest");
    let target = reg.image("imm/box:v1");
    d.docker(&["login", "-u", "admin", "-p", ADMIN_PW, &reg.addr]).ok();
    d.docker(&["tag", &busybox, &target]).ok();
    d.docker(&["push", &target]).ok();
    d.docker(&["tag", &layers, &target]).ok();
    d.docker(&["push", &target]).fails().mentions(&["tag imm/box:v1 is immutable"]);
}

#[test]
fn harbor_quota_holds_against_pushes_racing_into_one_project() {
    let reg = auth_server(&[]);
    let r = api(&reg, &admin(), "POST", "/projects", Some(&json!({ "project_name": "race", "storage_limit": 10000 })));
    assert_eq!(r.status, 201, "{r}");
    let pid: u64 = r.header("Location").and_then(|l| l.rsplit('/').next()).and_then(|i| i.parse().ok()).unwrap_or(0);
    // Eight different 3000-byte blobs at once, into eight repositories of the project: three fit.
    let authz = admin_authz();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let pushes: Vec<_> = (0..8u8)
            .map(|i| {
                let (reg, authz) = (&reg, &authz);
                s.spawn(move || {
                    let data = vec![b'a' + i; 3000];
                    let path = format!("/v2/race/r{i}/blobs/uploads/?digest={}", digest(&data));
                    http(&reg.addr, "POST", &path, &[("Authorization", authz.as_str())], &data).status
                })
            })
            .collect();
        pushes.into_iter().map(|h| h.join().expect("a push thread")).collect()
    });
    assert!(statuses.iter().all(|s| *s == 201 || *s == 403), "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 3, "three blobs fit in 10000 bytes: {statuses:?}");
    let q = api(&reg, &admin(), "GET", &format!("/quotas/{pid}"), None).json();
    assert_eq!(q["used"]["storage"].as_u64(), Some(9000), "{q}");
}
