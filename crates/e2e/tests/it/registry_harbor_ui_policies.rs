//! The web UI's Policies tab in Debian's chromium driven by Playwright (as in
//! `registry_harbor_ui`): a project admin adds tag immutability rules (one then disabled and
//! deleted) and sees skopeo's push over a protected tag refused; adds retention rules, edits
//! one, disables and enables it, deletes another, sets the schedule, dry-runs the policy and
//! sees what would go, runs it and sees the tag gone; a Developer sees the retention controls
//! but not the immutability rules (Harbor's table), a Guest sees neither and no button at
//! all, and the API refuses both what their pages hide (`/users/current/permissions` is what
//! the page asks). The screenshots are kept under `target/test-artifacts/ui-policies/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{install_with_script, run_cmd, TempDir};
use crate::registry_harbor::{
    add_member, admin, admin_authz, api, harbor_error, make_project, make_user, push_image_as, Who, PW,
};
use crate::registry_harbor_ui::{chromium, tail, Browser};
use crate::registry_server::{auth_server, skopeo, Server};

const SCRIPT: &str = r#####"
import json, os, sys
from playwright.sync_api import sync_playwright

base, shots, phase, chromium, user, password = sys.argv[1:7]
result = {}

def shot(page, name):
    page.wait_for_timeout(150)
    page.screenshot(path=os.path.join(shots, f"{phase}-{name}.png"), full_page=True)

def accept_next_dialog(page):
    page.once("dialog", lambda d: d.accept())

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(30000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/")
    page.wait_for_selector("#principal")
    page.fill("#principal", user)
    page.fill("#password", password)
    page.click("#login-submit")
    page.wait_for_selector("tr[data-project='pol']")
    page.click("tr[data-project='pol'] a")
    page.click("a.tab:has-text('Policies')")
    page.wait_for_selector("#immutability :is(table, p#imm-hidden, p.muted:has-text('No immutability'))")
    page.wait_for_selector("#retention :is(#ret-history table, #ret-history p, #ret-hidden)")
    if phase == "admin":
        # Tag immutability: a rule for app's v1; a second one disabled, then deleted.
        page.fill("#imm-repo", "app")
        page.fill("#imm-tag", "v1")
        page.click("#imm-add button[type=submit]")
        page.wait_for_selector("tr[data-imm-rule]:has-text('matching v1')")
        page.select_option("#imm-repo-dec", "repoExcludes")
        page.fill("#imm-repo", "other")
        page.select_option("#imm-tag-dec", "excludes")
        page.fill("#imm-tag", "rc*")
        page.click("#imm-add button[type=submit]")
        second = "tr[data-imm-rule]:has-text('excluding rc*')"
        page.wait_for_selector(second + " td.state:has-text('enabled')")
        page.click(second + " button.imm-toggle")
        page.wait_for_selector(second + " td.state:has-text('disabled')")
        result["imm_disabled"] = page.inner_text(second)
        shot(page, "immutability")
        accept_next_dialog(page)
        page.click(second + " button.imm-delete")
        page.wait_for_selector(second, state="detached")
        result["imm_rules"] = page.inner_text("#imm-rules")

        # Tag retention: two rules (the policy is made by the first), the first edited, the
        # second deleted; a schedule.
        page.select_option("#ret-template", "latestPushedK")
        page.fill("#ret-param", "2")
        page.fill("#ret-repo", "app")
        page.fill("#ret-tag", "v*")
        page.click("#ret-rule-submit")
        page.wait_for_selector("tr[data-ret-rule='1'] td.rule:has-text('pushed 2 artifacts')")
        page.select_option("#ret-template", "nDaysSinceLastPush")
        page.fill("#ret-param", "30")
        page.fill("#ret-repo", "other")
        page.fill("#ret-tag", "**")
        page.click("#ret-rule-submit")
        page.wait_for_selector("tr[data-ret-rule='2'] td.rule:has-text('within the last 30 days')")
        page.click("tr[data-ret-rule='1'] button.ret-edit")
        result["edit_form"] = [page.input_value(s) for s in ["#ret-template", "#ret-param", "#ret-repo", "#ret-tag"]]
        page.fill("#ret-param", "1")
        page.click("#ret-rule-submit")
        page.wait_for_selector("tr[data-ret-rule='1'] td.rule:has-text('pushed 1 artifacts')")
        page.click("tr[data-ret-rule='1'] button.ret-toggle")
        page.wait_for_selector("tr[data-ret-rule='1'] td.state:has-text('disabled')")
        result["ret_disabled"] = page.inner_text("tr[data-ret-rule='1']")
        page.click("tr[data-ret-rule='1'] button.ret-toggle")
        page.wait_for_selector("tr[data-ret-rule='1'] td.state:has-text('enabled')")
        accept_next_dialog(page)
        page.click("tr[data-ret-rule='2'] button.ret-delete")
        page.wait_for_selector("tr[data-ret-rule='2']", state="detached")
        result["ret_rules"] = page.inner_text("#ret-rules")
        page.fill("#ret-cron", "0 0 3 * * *")
        page.click("#ret-schedule-form button[type=submit]")
        page.wait_for_selector("#ret-next:has-text('0 0 3 * * *')")
        result["schedule"] = page.inner_text("#ret-next")
        # A cron the server cannot read: its 400 is shown, the schedule stays.
        page.fill("#ret-cron", "every day")
        page.click("#ret-schedule-form button[type=submit]")
        page.wait_for_selector("#toast.bad")
        result["bad_cron"] = page.inner_text("#toast")
        result["schedule_after_bad_cron"] = page.inner_text("#ret-next")

        # A dry run lists what would go; a real run deletes it.
        page.click("#ret-dry-run")
        would = "tr.ret-result:not([hidden]) tr.verdict-would-delete[data-artifact='pol/app:v2']"
        page.wait_for_selector(would)
        result["dry_run"] = page.inner_text("tr.ret-result:not([hidden])")
        shot(page, "dry-run")
        accept_next_dialog(page)
        page.click("#ret-run")
        page.wait_for_selector("tr.ret-result:not([hidden]) tr.verdict-deleted[data-artifact='pol/app:v2']")
        result["run"] = page.inner_text("tr.ret-result:not([hidden])")
        result["log"] = page.evaluate("fetch(document.querySelector('tr.ret-result:not([hidden]) .task a').href).then(r => r.text())")
        result["history"] = page.inner_text("#ret-history")
        shot(page, "run")
    result["imm_add"] = page.query_selector("#imm-add") is not None
    result["imm_hidden"] = page.query_selector("#imm-hidden") is not None
    result["ret_hidden"] = page.query_selector("#ret-hidden") is not None
    result["ret_form"] = page.query_selector("#ret-rule-form") is not None
    result["ret_run"] = page.query_selector("#ret-run") is not None
    result["buttons"] = [b.inner_text() for b in page.query_selector_all("main button")]
    result["forms"] = len(page.query_selector_all("main form"))
    result["retention"] = page.inner_text("#retention")
    shot(page, "policies")
    result["errors"] = errors
    browser.close()
print("RESULT " + json.dumps(result))
"#####;

fn shots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts/ui-policies");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// Runs the browser script's `phase` as `user`; its result object.
fn browse(python: &Path, script: &Path, reg: &Server, phase: &str, user: &str) -> Value {
    let mut cmd = Command::new(python);
    cmd.arg(script).arg(format!("http://{}", reg.addr)).arg(shots_dir()).arg(phase).arg(chromium()).arg(user).arg(PW);
    let out = run_cmd(cmd, Duration::from_secs(300));
    assert!(out.success(), "the browser's {phase} failed:\n{out}\nregistry log tail:\n{}", tail(&reg.log_text()));
    let line = out.stdout.lines().find_map(|l| l.strip_prefix("RESULT ")).unwrap_or_else(|| panic!("no result: {out}"));
    let v: Value = serde_json::from_str(line).expect("result JSON");
    assert_eq!(v["errors"], json!([]), "script errors on the page: {v}");
    v
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

/// The tags of a repository, through the registry protocol as the admin.
fn tags(reg: &Server, repo: &str) -> Vec<String> {
    let r = reg.req("GET", &format!("/v2/{repo}/tags/list"), &[("Authorization", &admin_authz())], b"");
    assert_eq!(r.status, 200, "{r}");
    let mut out: Vec<String> =
        r.json()["tags"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(String::from)).collect();
    out.sort();
    out
}

/// `/users/current/permissions` of `who` in project `id`, as `resource:action` strings.
fn permissions(reg: &Server, who: &Who, id: u64) -> Vec<String> {
    let r = api(reg, who, "GET", &format!("/users/current/permissions?scope=/project/{id}&relative=true"), None);
    assert_eq!(r.status, 200, "{r}");
    let v = r.json();
    v.as_array()
        .into_iter()
        .flatten()
        .map(|p| format!("{}:{}", p["resource"].as_str().unwrap_or("?"), p["action"].as_str().unwrap_or("?")))
        .collect()
}

fn refused(r: &crate::registry_server::Resp, permission: &str, what: &str) {
    assert_eq!(r.status, 403, "{what}: {r}");
    assert!(harbor_error(r).1.contains(permission), "{what} names {permission}: {r}");
}

#[test]
fn harbor_web_ui_policies_manage_immutability_and_retention_by_role() {
    let python = install_with_script("playwright", "playwright").unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(shots_dir());
    let tmp = TempDir::new("wharf-e2e-ui-policies");
    let script = tmp.0.join("policies.py");
    std::fs::write(&script, SCRIPT).expect("write the browser script");
    let reg = auth_server(&[]);
    for u in ["padmin", "dev", "guest"] {
        make_user(&reg, u);
    }
    let pid = make_project(&reg, &admin(), "pol", false);
    add_member(&reg, "pol", "padmin", 1);
    add_member(&reg, "pol", "dev", 2);
    add_member(&reg, "pol", "guest", 3);
    let (padmin, dev, guest) =
        (Who::user("admin", "padmin", PW), Who::user("dev", "dev", PW), Who::user("guest", "guest", PW));
    // Three tags pushed a second apart (retention orders by push time), and another repository.
    let authz = admin_authz();
    for t in ["v1", "v2", "v3"] {
        push_image_as(&reg, &authz, "pol/app", t, format!("layer of app:{t}").as_bytes());
        thread::sleep(Duration::from_millis(1100));
    }
    push_image_as(&reg, &authz, "pol/other", "1", b"layer of other:1");

    // What the page asks before it shows a button: Harbor's table, from the server.
    let of = |who: &Who| permissions(&reg, who, pid);
    let has = |list: &[String], p: &str| list.iter().any(|x| x == p);
    let (pa, pd, pg) = (of(&padmin), of(&dev), of(&guest));
    assert!(has(&pa, "immutable-tag:create") && has(&pa, "tag-retention:operate"), "{pa:?}");
    assert!(!has(&pd, "immutable-tag:list") && has(&pd, "tag-retention:update"), "{pd:?}");
    assert!(!pg.iter().any(|p| p.starts_with("immutable-tag:") || p.starts_with("tag-retention:")), "{pg:?}");
    assert!(has(&pg, "repository:pull") && !has(&pg, "repository:push"), "{pg:?}");
    let full = api(&reg, &dev, "GET", &format!("/users/current/permissions?scope=/project/{pid}"), None).json();
    assert!(
        full.as_array()
            .is_some_and(|a| a.contains(&json!({"resource": format!("/project/{pid}/repository"), "action": "push"}))),
        "{full}"
    );
    let anon = Who { label: "anonymous".into(), creds: None };
    assert_eq!(api(&reg, &anon, "GET", &format!("/users/current/permissions?scope=/project/{pid}"), None).status, 401);
    make_user(&reg, "maint");
    add_member(&reg, "pol", "maint", 4);
    let pm = of(&Who::user("maint", "maint", PW));
    assert!(
        has(&pm, "immutable-tag:create") && has(&pm, "tag-retention:update") && !has(&pm, "member:create"),
        "{pm:?}"
    );
    let ps = of(&admin());
    assert!(has(&ps, "member:create") && has(&ps, "immutable-tag:delete") && has(&ps, "project:delete"), "{ps:?}");
    make_user(&reg, "stranger");
    assert!(
        permissions(&reg, &Who::user("stranger", "stranger", PW), pid).is_empty(),
        "a private project is none of a stranger's"
    );
    let r = api(&reg, &dev, "GET", &format!("/users/current/permissions?scope=/project/{pid}&relative=maybe"), None);
    assert_eq!(r.status, 400, "{r}");

    // The project admin in the browser.
    let seen = browse(&python, &script, &reg, "admin", "padmin");
    assert!(text(&seen, "imm_disabled").contains("disabled"), "{seen}");
    let imm = text(&seen, "imm_rules");
    assert!(imm.contains("matching app") && imm.contains("matching v1") && !imm.contains("rc*"), "{seen}");
    let rules = api(&reg, &padmin, "GET", "/projects/pol/immutabletagrules", None).json();
    let rules = rules.as_array().cloned().unwrap_or_default();
    assert_eq!(rules.len(), 1, "one rule is left: {rules:?}");
    assert_eq!(rules[0]["tag_selectors"][0]["pattern"], "v1");
    assert_eq!(rules[0]["scope_selectors"]["repository"][0]["pattern"], "app");
    assert_eq!(rules[0]["disabled"], false);
    // A push over the protected tag is refused (skopeo as the project admin); another tag goes.
    let creds = format!("padmin:{PW}");
    let copy = |to: &str| {
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-creds",
            &creds,
            "--dest-creds",
            &creds,
            &format!("docker://{}", reg.image("pol/other:1")),
            &format!("docker://{}", reg.image(to)),
        ])
    };
    copy("pol/app:v1").fails().mentions(&["tag pol/app:v1 is immutable"]);

    // The retention policy the page made: the edited rule, the schedule; a dry run and a run.
    assert_eq!(seen["edit_form"], json!(["latestPushedK", "2", "app", "v*"]), "the form held rule 1: {seen}");
    let ret_rules = text(&seen, "ret_rules");
    assert!(ret_rules.contains("most recently pushed 1 artifacts") && !ret_rules.contains("30 days"), "{seen}");
    assert!(text(&seen, "schedule").contains("0 0 3 * * *"), "{seen}");
    assert!(text(&seen, "bad_cron").contains("cron \"every day\""), "the server's 400 is shown: {seen}");
    assert_eq!(seen["schedule_after_bad_cron"], seen["schedule"], "{seen}");
    let project = api(&reg, &padmin, "GET", "/projects/pol", None).json();
    let rid = project["metadata"]["retention_id"].as_str().expect("the project has a retention policy").to_string();
    let policy = api(&reg, &padmin, "GET", &format!("/retentions/{rid}"), None).json();
    assert_eq!(policy["rules"].as_array().map(Vec::len), Some(1), "{policy}");
    assert_eq!(policy["rules"][0]["params"], json!({ "latestPushedK": 1 }), "{policy}");
    assert_eq!(policy["rules"][0]["tag_selectors"][0]["pattern"], "v*", "{policy}");
    assert_eq!(policy["trigger"]["settings"]["cron"], "0 0 3 * * *", "{policy}");
    let dry = text(&seen, "dry_run");
    assert!(dry.contains("pol/app:v2") && dry.contains("would be deleted"), "{seen}");
    assert!(dry.contains("pol/app:v1") && dry.contains("kept (immutable)"), "{seen}");
    let run = text(&seen, "run");
    assert!(run.contains("pol/app:v2\t") && run.contains("deleted") && run.contains("2 of 3 artifacts kept"), "{seen}");
    assert!(text(&seen, "ret_disabled").contains("disabled"), "{seen}");
    let log = text(&seen, "log");
    assert!(log.contains("pol/app:v2 DELETE\n") && log.contains("pol/app:v1 IMMUTABLE"), "the task's log: {seen}");
    let execs = api(&reg, &padmin, "GET", &format!("/retentions/{rid}/executions"), None).json();
    let kinds: Vec<(bool, String)> = execs
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| (e["dry_run"].as_bool().unwrap_or_default(), e["status"].as_str().unwrap_or_default().to_string()))
        .collect();
    assert_eq!(kinds, [(false, "Success".to_string()), (true, "Success".to_string())], "{execs}");
    assert_eq!(tags(&reg, "pol/app"), ["v1", "v3"], "the run deleted v2 only");
    copy("pol/app:latest").ok();

    // The page's session needs its CSRF token on the policy endpoints too.
    let session = Browser::login(&reg, "padmin", PW);
    let runs = format!("/retentions/{rid}/executions");
    let r = session.api(&reg, "POST", &runs, None, Some(&json!({ "dry_run": true })));
    assert_eq!(r.status, 403, "{r}");
    assert!(harbor_error(&r).1.contains("CSRF token not found"), "{r}");
    let r = session.api(
        &reg,
        "DELETE",
        &format!("/projects/pol/immutabletagrules/{}", rules[0]["id"]),
        Some("forged"),
        None,
    );
    assert_eq!(r.status, 403, "{r}");
    let n = api(&reg, &padmin, "GET", &runs, None).json().as_array().map(Vec::len);
    assert_eq!(n, Some(2), "no run was started");

    // A Developer: retention yes (Harbor gives developers tag-retention), immutability no.
    let d = browse(&python, &script, &reg, "developer", "dev");
    assert_eq!((d["imm_hidden"].clone(), d["imm_add"].clone()), (json!(true), json!(false)), "{d}");
    assert_eq!((d["ret_form"].clone(), d["ret_run"].clone()), (json!(true), json!(true)), "{d}");
    assert!(text(&d, "retention").contains("most recently pushed 1 artifacts"), "{d}");
    let rule = json!({ "disabled": false, "action": "immutable", "template": "immutable_template",
        "tag_selectors": [{ "kind": "doublestar", "decoration": "matches", "pattern": "dev*" }],
        "scope_selectors": { "repository": [{ "kind": "doublestar", "decoration": "repoMatches", "pattern": "**" }] } });
    refused(
        &api(&reg, &dev, "POST", "/projects/pol/immutabletagrules", Some(&rule)),
        "immutable-tag:create",
        "dev adds a rule",
    );
    let rule_id = rules[0]["id"].as_u64().expect("rule id");
    let off = json!({ "disabled": true });
    let path = format!("/projects/pol/immutabletagrules/{rule_id}");
    refused(&api(&reg, &dev, "PUT", &path, Some(&off)), "immutable-tag:update", "dev disables a rule");
    refused(&api(&reg, &dev, "DELETE", &path, None), "immutable-tag:delete", "dev deletes a rule");

    // A Guest: neither section, not one button or form; the API refuses what is hidden.
    let g = browse(&python, &script, &reg, "guest", "guest");
    assert_eq!((g["imm_hidden"].clone(), g["ret_hidden"].clone()), (json!(true), json!(true)), "{g}");
    assert_eq!((g["buttons"].clone(), g["forms"].clone()), (json!([]), json!(0)), "{g}");
    refused(
        &api(&reg, &guest, "POST", "/projects/pol/immutabletagrules", Some(&rule)),
        "immutable-tag:create",
        "guest",
    );
    refused(&api(&reg, &guest, "DELETE", &path, None), "immutable-tag:delete", "guest");
    refused(
        &api(&reg, &guest, "POST", &runs, Some(&json!({ "dry_run": false }))),
        "tag-retention:update",
        "guest runs",
    );
    refused(
        &api(&reg, &guest, "PUT", &format!("/retentions/{rid}"), Some(&policy)),
        "tag-retention:update",
        "guest edits",
    );
    refused(&api(&reg, &guest, "GET", &format!("/retentions/{rid}"), None), "tag-retention:read", "guest reads");
    // Nothing the refusals touched changed.
    assert_eq!(
        api(&reg, &padmin, "GET", "/projects/pol/immutabletagrules", None).json().as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(tags(&reg, "pol/app"), ["latest", "v1", "v3"]);

    for name in
        ["admin-immutability", "admin-dry-run", "admin-run", "admin-policies", "developer-policies", "guest-policies"]
    {
        assert!(shots_dir().join(format!("{name}.png")).exists(), "screenshot {name}");
    }
}
