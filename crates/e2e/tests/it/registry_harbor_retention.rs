//! wharf-registry's tag retention and GC from Harbor's REST API (`serve --auth`): a policy
//! that keeps the two most recently pushed `v*` tags of the `app*` repositories, its dry run
//! (nothing deleted, the verdicts listed), its real run (exactly the others deleted, a tag an
//! immutability rule protects kept), a GC run from the API that reclaims their blobs, cron
//! schedules (per second, so that they fire within the test) for both, persisting across a
//! restart, permissions, and the same on PostgreSQL with two replicas, where a scheduled
//! slot runs once.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::registry_harbor::{
    add_member, admin, admin_authz, api, harbor_error, make_project, make_user, push_image_as, Who, PW,
};
use crate::registry_pg::Postgres;
use crate::registry_server::{auth_server, digest, Resp, Server};

fn layer(repo: &str, tag: &str) -> Vec<u8> {
    format!("layer of {repo}:{tag}").into_bytes()
}

/// The tags of a repository, through the registry protocol as the admin.
fn tags(reg: &Server, repo: &str) -> Vec<String> {
    let r = reg.req("GET", &format!("/v2/{repo}/tags/list"), &[("Authorization", &admin_authz())], b"");
    if r.status == 404 {
        return Vec::new();
    }
    assert_eq!(r.status, 200, "{r}");
    let mut out: Vec<String> = r.json()["tags"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|t| t.as_str().map(String::from))
        .collect();
    out.sort();
    out
}

fn ok(r: &Resp, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {r}");
}

/// The id at the end of a Location header.
fn location_id(r: &Resp) -> u64 {
    r.header("Location")
        .and_then(|l| l.rsplit('/').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no id in Location: {r}"))
}

/// Polls `path` (a JSON object) as the admin until `done` holds; returns it.
fn wait_for(reg: &Server, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = api(reg, &admin(), "GET", path, None);
        ok(&r, 200, what);
        let v = r.json();
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: still {v}; log:\n{}", reg.log_text());
        thread::sleep(Duration::from_millis(200));
    }
}

/// The policy of the task: keep the 2 most recently pushed `v*` in repositories `app*`.
fn policy(project_id: u64, cron: &str) -> Value {
    json!({
        "algorithm": "or",
        "rules": [{
            "disabled": false, "action": "retain", "template": "latestPushedK",
            "params": { "latestPushedK": 2 },
            "tag_selectors": [{ "kind": "doublestar", "decoration": "matches", "pattern": "v*",
                                "extras": "{\"untagged\":false}" }],
            "scope_selectors": { "repository": [{ "kind": "doublestar", "decoration": "repoMatches", "pattern": "app*" }] }
        }],
        "trigger": { "kind": "Schedule", "settings": { "cron": cron } },
        "scope": { "level": "project", "ref": project_id }
    })
}

/// Runs policy `id` by hand and waits for its end; (execution id, its tasks by repository
/// with their logs).
fn run(reg: &Server, who: &Who, id: u64, dry_run: bool) -> (u64, Vec<(String, Value, String)>) {
    let r = api(reg, who, "POST", &format!("/retentions/{id}/executions"), Some(&json!({ "dry_run": dry_run })));
    ok(&r, 201, "trigger a run");
    let eid = location_id(&r);
    let execs = wait_for(reg, &format!("/retentions/{id}/executions"), "the run ends", |v| {
        v.as_array()
            .is_some_and(|a| a.iter().any(|e| e["id"] == eid && e["status"] != "Pending" && e["status"] != "Running"))
    });
    let exec = execs.as_array().and_then(|a| a.iter().find(|e| e["id"] == eid).cloned()).unwrap_or_default();
    assert_eq!(
        (exec["status"].as_str(), exec["dry_run"].as_bool(), exec["trigger"].as_str()),
        (Some("Success"), Some(dry_run), Some("MANUAL")),
        "{exec}"
    );
    tasks(reg, id, eid)
}

fn tasks(reg: &Server, id: u64, eid: u64) -> (u64, Vec<(String, Value, String)>) {
    let r = api(reg, &admin(), "GET", &format!("/retentions/{id}/executions/{eid}/tasks"), None);
    ok(&r, 200, "tasks");
    let mut out = Vec::new();
    for t in r.json().as_array().cloned().unwrap_or_default() {
        let tid = t["id"].as_u64().unwrap_or_default();
        let log = api(reg, &admin(), "GET", &format!("/retentions/{id}/executions/{eid}/tasks/{tid}"), None);
        ok(&log, 200, "task log");
        out.push((
            t["repository"].as_str().unwrap_or_default().to_string(),
            t,
            String::from_utf8_lossy(&log.body).into_owned(),
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    (eid, out)
}

/// The verdict lines of a task log, `tag VERDICT`, sorted.
fn verdicts(log: &str) -> Vec<String> {
    let mut out: Vec<String> = log
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ' ');
            let (_, what, verdict) = (parts.next()?, parts.next()?, parts.next()?);
            Some(format!("{} {verdict}", what.rsplit(':').next()?))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn harbor_retention_dry_run_run_gc_and_schedules() {
    let mut reg = auth_server(&["--gc-grace", "1s"]);
    retention(&mut reg);
}

#[test]
fn pg_harbor_retention_and_gc_scheduled_once_across_replicas() {
    let pg = Postgres::start();
    let mut reg = auth_server(&["--gc-grace", "1s", "--database-url", &pg.url()]);
    retention(&mut reg);
    // A second replica on the same index and blobs: a per-second GC schedule runs once a
    // slot, not once per replica.
    let other = Server::start_sharing(&reg.data, &["--auth", "--gc-grace", "1s", "--database-url", &pg.url()]);
    let before = gc_runs(&reg, "SCHEDULE").len();
    let every =
        json!({ "schedule": { "type": "Custom", "cron": "* * * * * *" }, "parameters": { "delete_untagged": false } });
    ok(&api(&other, &admin(), "PUT", "/system/gc/schedule", Some(&every)), 200, "a per-second schedule");
    wait_for(&reg, "/system/gc?page_size=100", "four scheduled runs", |v| {
        v.as_array().is_some_and(|a| {
            a.iter().filter(|r| r["job_kind"] == "SCHEDULE" && r["job_status"] == "Success").count() >= before + 4
        })
    });
    ok(
        &api(&reg, &admin(), "PUT", "/system/gc/schedule", Some(&json!({ "schedule": { "type": "None" } }))),
        200,
        "no schedule",
    );
    // Each scheduled run names its slot in its log: no slot twice.
    let mut slots = Vec::new();
    for r in gc_runs(&reg, "SCHEDULE") {
        let log = api(&reg, &admin(), "GET", &format!("/system/gc/{}/log", r["id"]), None);
        ok(&log, 200, "a scheduled run's log");
        let text = String::from_utf8_lossy(&log.body).into_owned();
        let slot =
            text.split("slot ").nth(1).and_then(|s| s.split(')').next()).unwrap_or_else(|| panic!("no slot: {text}"));
        slots.push(slot.to_string());
    }
    let n = slots.len();
    slots.sort();
    slots.dedup();
    assert_eq!(slots.len(), n, "a slot ran twice: {slots:?}");
}

fn gc_runs(reg: &Server, kind: &str) -> Vec<Value> {
    let r = api(reg, &admin(), "GET", "/system/gc?page_size=100", None);
    ok(&r, 200, "gc history");
    r.json().as_array().cloned().unwrap_or_default().into_iter().filter(|g| g["job_kind"] == kind).collect()
}

fn retention(reg: &mut Server) {
    for u in ["maint", "dev", "guest"] {
        make_user(reg, u);
    }
    let pid = make_project(reg, &admin(), "shop", false);
    for (u, role) in [("maint", 4), ("dev", 2), ("guest", 3)] {
        add_member(reg, "shop", u, role);
    }
    let (maint, dev, guest) =
        (Who::user("maintainer", "maint", PW), Who::user("developer", "dev", PW), Who::user("guest", "guest", PW));
    let anonymous = Who { label: "anonymous".into(), creds: None };

    // v1, v2, v3 a second apart (push times have second resolution), in three repositories;
    // app1 has an old `dev` tag as well.
    let repos = ["shop/app1", "shop/app2", "shop/other"];
    for (i, tag) in ["v1", "v2", "v3"].iter().enumerate() {
        if i > 0 {
            thread::sleep(Duration::from_millis(1100));
        }
        for repo in repos {
            push_image_as(reg, &admin_authz(), repo, tag, &layer(repo, tag));
        }
        if i == 0 {
            push_image_as(reg, &admin_authz(), "shop/app1", "dev", &layer("shop/app1", "dev"));
        }
    }
    // app2:v1 is immutable.
    let rule = json!({ "tag_selectors": [{ "kind": "doublestar", "decoration": "matches", "pattern": "v1" }],
                       "scope_selectors": { "repository": [{ "kind": "doublestar", "decoration": "repoMatches", "pattern": "app2" }] } });
    ok(&api(reg, &admin(), "POST", "/projects/shop/immutabletagrules", Some(&rule)), 201, "an immutability rule");

    // The metadata Harbor's UI builds its form from.
    let m = api(reg, &guest, "GET", "/retentions/metadatas", None);
    ok(&m, 200, "metadatas");
    let meta = m.json();
    let names: Vec<&str> = meta["templates"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["rule_template"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["latestPushedK", "latestPulledN", "nDaysSinceLastPush", "nDaysSinceLastPull", "always"]);
    ok(&api(reg, &anonymous, "GET", "/retentions/metadatas", None), 401, "anonymous metadatas");

    // Permissions: Harbor's table gives tag-retention to ProjectAdmin, Maintainer and
    // Developer; a Guest and anonymous are refused, saying what is missing.
    let r = api(reg, &guest, "POST", "/retentions", Some(&policy(pid, "")));
    ok(&r, 403, "a guest creates a policy");
    assert!(harbor_error(&r).1.contains("lacks the tag-retention:create permission"), "{r}");
    ok(&api(reg, &anonymous, "POST", "/retentions", Some(&policy(pid, ""))), 401, "anonymous creates a policy");
    // Bad bodies are 400s that name the fault; nothing is recorded.
    for (body, says) in [
        (json!({ "rules": [] }), "scope is required"),
        (json!({ "scope": { "level": "project", "ref": 999 } }), "invalid project id 999"),
        (json!({ "scope": { "level": "system", "ref": pid } }), "scope.level \"system\" is not supported"),
        (
            {
                let mut p = policy(pid, "");
                p["rules"][0]["template"] = json!("keepEverything");
                p
            },
            "template \"keepEverything\" is not one of",
        ),
        (
            {
                let mut p = policy(pid, "");
                p["rules"][0]["params"] = json!({});
                p
            },
            "params.latestPushedK is required",
        ),
        (
            {
                let mut p = policy(pid, "");
                p["rules"][0]["tag_selectors"][0]["decoration"] = json!("maybe");
                p
            },
            "decoration \"maybe\"",
        ),
        (policy(pid, "0 0 * * *"), "has 5 fields: it needs 6"),
    ] {
        let r = api(reg, &maint, "POST", "/retentions", Some(&body));
        ok(&r, 400, says);
        assert!(harbor_error(&r).1.contains(says), "{says}: {r}");
    }
    let r = api(reg, &maint, "POST", "/retentions", Some(&policy(pid, "")));
    ok(&r, 201, "a maintainer creates the policy");
    let id = location_id(&r);
    let r = api(reg, &admin(), "POST", "/retentions", Some(&policy(pid, "")));
    ok(&r, 400, "a second policy");
    assert!(harbor_error(&r).1.contains(&format!("already has retention policy {id}")), "{r}");
    let p = api(reg, &admin(), "GET", "/projects/shop", None).json();
    assert_eq!(p["metadata"]["retention_id"], id.to_string(), "{p}");
    let got = api(reg, &dev, "GET", &format!("/retentions/{id}"), None);
    ok(&got, 200, "a developer reads it");
    let g = got.json();
    assert_eq!(
        (g["scope"]["ref"].as_u64(), g["rules"][0]["params"]["latestPushedK"].as_u64()),
        (Some(pid), Some(2)),
        "{g}"
    );
    assert_eq!(g["rules"][0]["scope_selectors"]["repository"][0]["pattern"], "app*", "{g}");
    let r = api(reg, &guest, "POST", &format!("/retentions/{id}/executions"), Some(&json!({ "dry_run": true })));
    ok(&r, 403, "a guest runs it");

    // The dry run: the verdicts, and nothing deleted. `other` is no `app*`: no task.
    let all_before: Vec<Vec<String>> = repos.iter().map(|r| tags(reg, r)).collect();
    let (_, t) = run(reg, &maint, id, true);
    let repos_run: Vec<&str> = t.iter().map(|(r, _, _)| r.as_str()).collect();
    assert_eq!(repos_run, ["shop/app1", "shop/app2"]);
    assert_eq!(
        verdicts(&t[0].2),
        ["dev DELETE (dry run)", "v1 DELETE (dry run)", "v2 RETAIN", "v3 RETAIN"],
        "{}",
        t[0].2
    );
    assert_eq!(verdicts(&t[1].2), ["v1 IMMUTABLE", "v2 RETAIN", "v3 RETAIN"], "{}", t[1].2);
    assert_eq!((t[0].1["total"].as_u64(), t[0].1["retained"].as_u64()), (Some(4), Some(2)), "{}", t[0].1);
    let all_after: Vec<Vec<String>> = repos.iter().map(|r| tags(reg, r)).collect();
    assert_eq!(all_after, all_before, "a dry run deletes nothing");

    // The real run: exactly the others go.
    let (eid, t) = run(reg, &dev, id, false);
    assert_eq!(verdicts(&t[0].2), ["dev DELETE", "v1 DELETE", "v2 RETAIN", "v3 RETAIN"], "{}", t[0].2);
    assert_eq!(tags(reg, "shop/app1"), ["v2", "v3"]);
    assert_eq!(tags(reg, "shop/app2"), ["v1", "v2", "v3"], "the immutable v1 stays");
    assert_eq!(tags(reg, "shop/other"), ["v1", "v2", "v3"]);
    // Stopping a finished run changes nothing; an unknown action is refused.
    ok(
        &api(reg, &maint, "PATCH", &format!("/retentions/{id}/executions/{eid}"), Some(&json!({ "action": "stop" }))),
        200,
        "stop",
    );
    ok(
        &api(reg, &maint, "PATCH", &format!("/retentions/{id}/executions/{eid}"), Some(&json!({ "action": "go" }))),
        400,
        "go",
    );

    // GC from the API: system admins only; a manual run reclaims the deleted images' layers.
    let gone: Vec<String> = ["v1", "dev"].iter().map(|t| digest(&layer("shop/app1", t))).collect();
    let kept = digest(&layer("shop/app1", "v2"));
    for d in gone.iter().chain([&kept]) {
        assert!(reg.blob_file(d).exists(), "{d} is stored before GC");
    }
    let manual =
        json!({ "schedule": { "type": "Manual" }, "parameters": { "delete_untagged": true, "dry_run": false } });
    let r = api(reg, &dev, "POST", "/system/gc/schedule", Some(&manual));
    ok(&r, 403, "a developer runs GC");
    assert!(harbor_error(&r).1.contains("is not a system admin"), "{r}");
    ok(&api(reg, &anonymous, "GET", "/system/gc", None), 401, "anonymous reads the GC history");
    let r = api(reg, &admin(), "POST", "/system/gc/schedule", Some(&manual));
    ok(&r, 201, "a manual GC");
    let gid = location_id(&r);
    let g = wait_for(reg, &format!("/system/gc/{gid}"), "the GC ends", |v| {
        v["job_status"] == "Success" || v["job_status"] == "Error"
    });
    assert_eq!((g["job_status"].as_str(), g["job_kind"].as_str()), (Some("Success"), Some("MANUAL")), "{g}");
    for d in &gone {
        assert!(!reg.blob_file(d).exists(), "{d} was reclaimed");
    }
    assert!(reg.blob_file(&kept).exists(), "{kept} is still used");
    let log = api(reg, &admin(), "GET", &format!("/system/gc/{gid}/log"), None);
    ok(&log, 200, "the GC log");
    let text = String::from_utf8_lossy(&log.body).into_owned();
    assert!(gone.iter().all(|d| text.contains(&format!("blob {d}"))) && text.contains("deleted"), "{text}");
    assert!(gc_runs(reg, "MANUAL").iter().any(|g| g["id"] == gid));
    let r = api(reg, &admin(), "POST", "/system/gc/schedule", Some(&json!({ "schedule": { "type": "Sometimes" } })));
    ok(&r, 400, "an unknown schedule type");

    // A per-second cron on the policy fires: a newer v4 pushes v2 out.
    push_image_as(reg, &admin_authz(), "shop/app1", "v4", &layer("shop/app1", "v4"));
    let r = api(reg, &maint, "PUT", &format!("/retentions/{id}"), Some(&policy(pid, "* * * * * *")));
    ok(&r, 200, "a per-second schedule");
    let execs = wait_for(reg, &format!("/retentions/{id}/executions"), "a scheduled run", |v| {
        v.as_array().is_some_and(|a| a.iter().any(|e| e["trigger"] == "SCHEDULE" && e["status"] == "Success"))
    });
    ok(&api(reg, &maint, "PUT", &format!("/retentions/{id}"), Some(&policy(pid, ""))), 200, "back to by hand");
    let scheduled: Vec<&Value> =
        execs.as_array().map(|a| a.iter().filter(|e| e["trigger"] == "SCHEDULE").collect()).unwrap_or_default();
    assert!(scheduled.iter().all(|e| e["dry_run"] == false), "a scheduled run is a real one: {execs}");
    assert_eq!(tags(reg, "shop/app1"), ["v3", "v4"]);

    // The GC's schedule: a preset, shown with its cron and next run, kept across a restart.
    let daily = json!({ "schedule": { "type": "Daily" }, "parameters": { "delete_untagged": true } });
    ok(&api(reg, &admin(), "POST", "/system/gc/schedule", Some(&daily)), 201, "a daily GC");
    let bad = json!({ "schedule": { "type": "Custom", "cron": "0 0 0 30 2 *" } });
    let r = api(reg, &admin(), "PUT", "/system/gc/schedule", Some(&bad));
    ok(&r, 400, "a cron that never fires");
    assert!(harbor_error(&r).1.contains("never fires"), "{r}");
    reg.restart();
    let s = api(reg, &admin(), "GET", "/system/gc/schedule", None);
    ok(&s, 200, "the schedule");
    let s = s.json();
    assert_eq!(
        (s["schedule"]["type"].as_str(), s["schedule"]["cron"].as_str()),
        (Some("Daily"), Some("0 0 0 * * *")),
        "{s}"
    );
    assert!(s["schedule"]["next_scheduled_time"].as_str().is_some_and(|t| t.ends_with("T00:00:00Z")), "{s}");
    assert_eq!(s["parameters"]["delete_untagged"], true, "{s}");
    let p = api(reg, &admin(), "GET", &format!("/retentions/{id}"), None);
    ok(&p, 200, "the policy after a restart");
    // A per-second GC schedule fires; `None` removes it.
    let every =
        json!({ "schedule": { "type": "Custom", "cron": "* * * * * *" }, "parameters": { "delete_untagged": true } });
    ok(&api(reg, &admin(), "PUT", "/system/gc/schedule", Some(&every)), 200, "a per-second GC");
    wait_for(reg, "/system/gc", "a scheduled GC", |v| {
        v.as_array().is_some_and(|a| a.iter().any(|g| g["job_kind"] == "SCHEDULE" && g["job_status"] == "Success"))
    });
    ok(
        &api(reg, &admin(), "PUT", "/system/gc/schedule", Some(&json!({ "schedule": { "type": "None" } }))),
        200,
        "none",
    );
    let s = api(reg, &admin(), "GET", "/system/gc/schedule", None);
    assert!(s.status == 200 && s.body.is_empty(), "no schedule: {s}");

    // Deleting the policy: gone from the project's metadata, and a new one may be made.
    ok(&api(reg, &guest, "DELETE", &format!("/retentions/{id}"), None), 403, "a guest deletes it");
    ok(&api(reg, &maint, "DELETE", &format!("/retentions/{id}"), None), 200, "a maintainer deletes it");
    ok(&api(reg, &admin(), "GET", &format!("/retentions/{id}"), None), 404, "the deleted policy");
    let p = api(reg, &admin(), "GET", "/projects/shop", None).json();
    assert!(p["metadata"].get("retention_id").is_none(), "{p}");
    // A project's policy goes with the project.
    let empty = make_project(reg, &admin(), "empty", false);
    let r = api(reg, &admin(), "POST", "/retentions", Some(&policy(empty, "")));
    ok(&r, 201, "a policy of an empty project");
    let eid = location_id(&r);
    ok(&api(reg, &admin(), "DELETE", "/projects/empty", None), 200, "delete the project");
    ok(&api(reg, &admin(), "GET", &format!("/retentions/{eid}"), None), 404, "the project's policy");
}
