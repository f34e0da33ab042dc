//! wharf-registry's web UI (`serve --auth`): its sessions, CSRF and login rate limit driven by
//! hand over HTTP (session fixation, a missing or wrong CSRF token, a robot at `/c/login`,
//! brute force slowed to 429 through `/c/login`, Basic auth on the API and `/token`), and the
//! UI itself in Debian's chromium driven by Playwright (PyPI's, in a venv `scripts/playwright`
//! makes; the system browser, nothing downloaded): log in, create a project, add a member and
//! change its role, make a robot, push an image with the docker CLI through a wharfd, see it
//! with its tag and size, copy its pull command, delete it. A screenshot of each page is kept
//! under `target/test-artifacts/ui/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{install_with_script, run_cmd, Daemon, TempDir};
use crate::registry_server::{auth_server, http, Resp, Server, ADMIN_PW};

const PW: &str = "Harbor12345";

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", crate::registry_auth::base64(format!("{user}:{password}").as_bytes()))
}

fn form(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// `POST /c/login`, with `cookie` sent along when given.
fn login(reg: &Server, user: &str, password: &str, cookie: Option<&str>) -> Resp {
    let body = form(&[("principal", user), ("password", password)]);
    let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(c) = cookie {
        h.push(("Cookie", c));
    }
    http(&reg.addr, "POST", "/c/login", &h, body.as_bytes())
}

/// The `Set-Cookie` of `name` in a response: (value, attributes).
fn set_cookie(r: &Resp, name: &str) -> Option<(String, String)> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| {
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = pair.split_once('=')?;
            (k == name).then(|| (val.to_string(), attrs.to_string()))
        })
        .next()
}

/// A logged-in browser, as far as the server can tell: the two cookies.
pub(crate) struct Browser {
    sid: String,
    csrf: String,
}

impl Browser {
    pub(crate) fn login(reg: &Server, user: &str, password: &str) -> Browser {
        let r = login(reg, user, password, None);
        assert_eq!(r.status, 200, "login as {user}: {r}");
        Browser {
            sid: set_cookie(&r, "sid").expect("a sid cookie").0,
            csrf: set_cookie(&r, "__csrf").expect("a csrf cookie").0,
        }
    }

    fn cookie(&self) -> String {
        format!("sid={}; __csrf={}", self.sid, self.csrf)
    }

    /// A REST API call with the session cookie and, when given, a CSRF header.
    pub(crate) fn api(&self, reg: &Server, method: &str, path: &str, csrf: Option<&str>, body: Option<&Value>) -> Resp {
        let cookie = self.cookie();
        let mut h = vec![("Cookie", cookie.as_str())];
        if let Some(t) = csrf {
            h.push(("X-Harbor-CSRF-Token", t));
        }
        let text = body.map(|b| b.to_string()).unwrap_or_default();
        if body.is_some() {
            h.push(("Content-Type", "application/json"));
        }
        http(&reg.addr, method, &format!("/api/v2.0{path}"), &h, text.as_bytes())
    }
}

fn admin_api(reg: &Server, method: &str, path: &str, body: Option<&Value>) -> Resp {
    let a = basic("admin", ADMIN_PW);
    let text = body.map(|b| b.to_string()).unwrap_or_default();
    let h = [("Authorization", a.as_str()), ("Content-Type", "application/json")];
    http(&reg.addr, method, &format!("/api/v2.0{path}"), &h, text.as_bytes())
}

fn make_user(reg: &Server, name: &str) -> u64 {
    let body = json!({ "username": name, "password": PW, "email": format!("{name}@example.com"), "realname": name });
    let r = admin_api(reg, "POST", "/users", Some(&body));
    assert_eq!(r.status, 201, "create user {name}: {r}");
    let users = admin_api(reg, "GET", &format!("/users?username={name}"), None).json();
    users
        .as_array()
        .and_then(|u| u.iter().find(|u| u["username"] == name))
        .and_then(|u| u["user_id"].as_u64())
        .expect("user id")
}

fn message(r: &Resp) -> String {
    r.json()["errors"][0]["message"].as_str().unwrap_or_default().to_string()
}

#[test]
fn harbor_ui_sessions_resist_fixation_and_csrf_and_refuse_robots() {
    let reg = auth_server(&[]);
    // The page and its assets are served by the binary.
    let page = http(&reg.addr, "GET", "/", &[], b"");
    assert_eq!(page.status, 200, "{page}");
    assert!(page.header("Content-Type").is_some_and(|t| t.starts_with("text/html")), "{page}");
    assert!(String::from_utf8_lossy(&page.body).contains("/ui/app.js"));
    assert!(page.header("Content-Security-Policy").is_some_and(|c| c.contains("frame-ancestors 'none'")), "{page}");
    assert_eq!(http(&reg.addr, "GET", "/ui/app.js", &[], b"").status, 200);
    assert_eq!(http(&reg.addr, "GET", "/harbor/projects", &[], b"").status, 200);
    make_user(&reg, "mallory");

    // The cookie: HttpOnly, SameSite=Lax, not Secure over plain HTTP; the CSRF cookie readable by the page.
    let r = login(&reg, "admin", ADMIN_PW, None);
    assert_eq!(r.status, 200, "{r}");
    let (sid, attrs) = set_cookie(&r, "sid").expect("sid");
    assert!(attrs.contains("HttpOnly") && attrs.contains("SameSite=Lax") && !attrs.contains("Secure"), "{attrs}");
    let (_, csrf_attrs) = set_cookie(&r, "__csrf").expect("__csrf");
    assert!(!csrf_attrs.contains("HttpOnly"), "{csrf_attrs}");
    let admin = Browser::login(&reg, "admin", ADMIN_PW);
    assert_ne!(admin.sid, sid, "every login makes a new session");
    let me = admin.api(&reg, "GET", "/users/current", None, None);
    assert_eq!((me.status, me.json()["username"].as_str()), (200, Some("admin")), "{me}");

    // Session fixation: an id chosen by an attacker is never taken, and a login replaces
    // whatever sid the browser had, the attacker's own valid session included.
    let planted = "sid=attacker-chosen-value";
    let r = login(&reg, "admin", ADMIN_PW, Some(planted));
    let fresh = set_cookie(&r, "sid").expect("sid").0;
    assert_ne!(fresh, "attacker-chosen-value");
    let h = [("Cookie", planted)];
    let r = http(&reg.addr, "GET", "/api/v2.0/users/current", &h, b"");
    assert_eq!(r.status, 401, "a planted id is nobody: {r}");
    let mallory = Browser::login(&reg, "mallory", PW);
    let victim = login(&reg, "admin", ADMIN_PW, Some(&mallory.cookie()));
    let victim_sid = set_cookie(&victim, "sid").expect("sid").0;
    assert_ne!(victim_sid, mallory.sid, "the attacker's session is not promoted to the victim's");
    let still = mallory.api(&reg, "GET", "/users/current", None, None);
    assert_eq!(still.json()["username"], "mallory", "the planted session still names the attacker: {still}");

    // CSRF: a state-changing request by cookie needs the session's token; Basic does not.
    let body = json!({ "project_name": "csrf1", "metadata": { "public": "false" } });
    let r = admin.api(&reg, "POST", "/projects", None, Some(&body));
    assert_eq!(r.status, 403, "{r}");
    assert!(message(&r).contains("CSRF token not found"), "{r}");
    let r = admin.api(&reg, "POST", "/projects", Some("forged"), Some(&body));
    assert_eq!(r.status, 403, "{r}");
    assert!(message(&r).contains("CSRF token invalid"), "{r}");
    let r = admin.api(&reg, "POST", "/projects", Some(&mallory.csrf), Some(&body));
    assert_eq!(r.status, 403, "another session's token does not do: {r}");
    let r = admin.api(&reg, "DELETE", "/projects/library", None, None);
    assert_eq!(r.status, 403, "{r}");
    assert_eq!(admin_api(&reg, "GET", "/projects/csrf1", None).status, 404, "nothing was made");
    assert_eq!(admin_api(&reg, "GET", "/projects/library", None).status, 200, "nothing was deleted");
    let r = admin.api(&reg, "POST", "/projects", Some(&admin.csrf), Some(&body));
    assert_eq!(r.status, 201, "{r}");
    let r = admin_api(&reg, "POST", "/projects", Some(&json!({ "project_name": "basic1" })));
    assert_eq!(r.status, 201, "Basic-authenticated requests need no CSRF token: {r}");

    // A robot cannot log in to the UI, whatever its secret.
    let robot = json!({ "name": "ci", "level": "project", "duration": -1,
        "permissions": [{ "kind": "project", "namespace": "csrf1", "access": [{ "resource": "repository", "action": "pull" }] }] });
    let r = admin_api(&reg, "POST", "/robots", Some(&robot));
    assert_eq!(r.status, 201, "{r}");
    let (name, secret) =
        (r.json()["name"].as_str().unwrap().to_string(), r.json()["secret"].as_str().unwrap().to_string());
    let r = login(&reg, &name, &secret, None);
    assert_eq!(r.status, 403, "{r}");
    assert!(message(&r).contains("cannot log in to the web UI") && set_cookie(&r, "sid").is_none(), "{r}");
    let r = login(&reg, "admin", "wrong", None);
    assert_eq!((r.status, message(&r).as_str()), (401, "invalid username or password"), "{r}");
    let r =
        http(&reg.addr, "POST", "/c/login", &[("Content-Type", "application/x-www-form-urlencoded")], b"password=x");
    assert_eq!(r.status, 400, "{r}");

    // A password change ends the user's sessions; logging out ends that one.
    let mid = admin_api(&reg, "GET", "/users?username=mallory", None).json()[0]["user_id"].as_u64().unwrap();
    let r = admin_api(&reg, "PUT", &format!("/users/{mid}/password"), Some(&json!({ "new_password": "Changed12345" })));
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(mallory.api(&reg, "GET", "/users/current", None, None).status, 401);
    let cookie = admin.cookie();
    let out = http(&reg.addr, "GET", "/c/log_out", &[("Cookie", &cookie)], b"");
    assert_eq!(out.status, 200, "{out}");
    assert!(set_cookie(&out, "sid").is_some_and(|(v, a)| v.is_empty() && a.contains("Max-Age=0")), "{out}");
    assert_eq!(admin.api(&reg, "GET", "/users/current", None, None).status, 401, "a logged-out session is over");
}

/// A session unused for longer than `--session-timeout` is over; one in use is renewed.
#[test]
fn harbor_ui_session_idles_out() {
    let reg = auth_server(&["--session-timeout", "4s"]);
    let s = Browser::login(&reg, "admin", ADMIN_PW);
    // Used within the time-out, again and again, it lives on past the first time-out (the
    // server renews the cookie; the browser keeps the newest).
    let mut s = s;
    for _ in 0..3 {
        std::thread::sleep(Duration::from_secs(2));
        let r = s.api(&reg, "GET", "/users/current", None, None);
        assert_eq!(r.status, 200, "{r}");
        if let Some((sid, _)) = set_cookie(&r, "sid") {
            s.sid = sid;
        }
    }
    std::thread::sleep(Duration::from_secs(5));
    let r = s.api(&reg, "GET", "/users/current", None, None);
    assert_eq!(r.status, 401, "idle past the time-out: {r}");
    assert!(set_cookie(&r, "sid").is_some_and(|(v, _)| v.is_empty()), "the browser is told to drop it: {r}");
}

/// Sessions are signed with the token key, which replicas on PostgreSQL share through the
/// database: a session (and its CSRF token) made on one replica is good on another whose data
/// dir is its own.
#[test]
fn pg_harbor_ui_session_made_on_one_replica_works_on_another() {
    let pg = crate::registry_pg::Postgres::start();
    let a = auth_server(&["--database-url", &pg.url()]);
    let b = auth_server(&["--database-url", &pg.url()]);
    assert_ne!(a.data, b.data);
    let s = Browser::login(&a, "admin", ADMIN_PW);
    let me = s.api(&b, "GET", "/users/current", None, None);
    assert_eq!((me.status, me.json()["username"].as_str()), (200, Some("admin")), "{me}");
    let body = json!({ "project_name": "fromb", "metadata": { "public": "false" } });
    assert_eq!(s.api(&b, "POST", "/projects", None, Some(&body)).status, 403, "CSRF holds on b too");
    let r = s.api(&b, "POST", "/projects", Some(&s.csrf), Some(&body));
    assert_eq!(r.status, 201, "{r}");
    assert_eq!(admin_api(&a, "GET", "/projects/fromb", None).status, 200);
}

/// A logout on one replica ends the session on the others, and the login rate limit counts
/// the failures of every replica: guesses spread over replicas are not multiplied.
#[test]
fn pg_harbor_logout_and_login_failures_reach_every_replica() {
    let pg = crate::registry_pg::Postgres::start();
    let a = auth_server(&["--database-url", &pg.url()]);
    let mut b = auth_server(&["--database-url", &pg.url()]);
    make_user(&a, "dave");
    let s = Browser::login(&a, "dave", PW);
    let me = |reg: &Server| s.api(reg, "GET", "/users/current", None, None).status;
    assert_eq!((me(&a), me(&b)), (200, 200));
    let r = http(&a.addr, "GET", "/c/log_out", &[("Cookie", &s.cookie())], b"");
    assert_eq!(r.status, 200, "{r}");
    assert_eq!((me(&a), me(&b)), (401, 401), "the logged-out cookie on either replica");
    // A restart does not bring it back (the logout is in the database, not in memory).
    b.restart();
    assert_eq!(me(&b), 401);

    // Failures on a alone until a blocks dave for 4 s or more (at least seven failures).
    let mut wait = 0;
    for _ in 0..20 {
        let r = login(&a, "dave", "Wrong12345", None);
        match r.status {
            401 => continue,
            429 => {
                wait = r.header("Retry-After").and_then(|v| v.parse().ok()).expect("Retry-After");
                if wait >= 4 {
                    break;
                }
                std::thread::sleep(Duration::from_secs(wait));
            }
            _ => panic!("{r}"),
        }
    }
    assert!(wait >= 4, "a blocks dave after repeated failures");
    // b has seen no failure itself, and refuses dave's right password until the block ends.
    let r = login(&b, "dave", PW, None);
    assert_eq!(r.status, 429, "b counts a's failures: {r}");
    let r = http(&b.addr, "GET", "/api/v2.0/users/current", &[("Authorization", &basic("dave", PW))], b"");
    assert_eq!(r.status, 429, "{r}");
    std::thread::sleep(Duration::from_secs(wait + 1));
    assert_eq!(login(&b, "dave", PW, None).status, 200, "the block ends on b");
    // The success cleared the shared count: a failure on b is a plain 401, and the next
    // attempt is not blocked.
    for _ in 0..2 {
        let r = login(&b, "dave", "Wrong12345", None);
        assert_eq!(r.status, 401, "{r}");
    }
}

#[test]
fn harbor_login_rate_limit_slows_brute_force_everywhere_and_a_success_resets_it() {
    let reg = auth_server(&[]);
    make_user(&reg, "alice");
    make_user(&reg, "carol");
    // Failures until alice is blocked for a few seconds (each wait doubles the last).
    let mut blocked = None;
    for _ in 0..20 {
        let r = login(&reg, "alice", "Wrong12345", None);
        match r.status {
            401 => continue,
            429 => {
                assert!(message(&r).contains("too many failed logins for \"alice\""), "{r}");
                let wait: u64 = r.header("Retry-After").and_then(|v| v.parse().ok()).expect("Retry-After");
                if wait >= 4 {
                    blocked = Some(wait);
                    break;
                }
                std::thread::sleep(Duration::from_secs(wait));
            }
            _ => panic!("{r}"),
        }
    }
    let wait = blocked.expect("alice is blocked after repeated failures");
    // While blocked, even the right password is refused, through every door.
    let r = login(&reg, "alice", PW, None);
    assert_eq!(r.status, 429, "{r}");
    let a = basic("alice", PW);
    let r = http(&reg.addr, "GET", "/api/v2.0/users/current", &[("Authorization", &a)], b"");
    assert_eq!(r.status, 429, "{r}");
    let r = http(
        &reg.addr,
        "GET",
        "/token?service=wharf-registry&scope=repository:library/x:pull",
        &[("Authorization", &a)],
        b"",
    );
    r.fails(429, "TOOMANYREQUESTS");
    assert!(r.header("Retry-After").is_some(), "{r}");
    let r = http(&reg.addr, "GET", "/v2/library/x/tags/list", &[("Authorization", &a)], b"");
    r.fails(429, "TOOMANYREQUESTS");
    // Another account is not affected.
    assert_eq!(login(&reg, "carol", PW, None).status, 200);
    // The block ends: alice logs in again.
    std::thread::sleep(Duration::from_secs(wait + 1));
    assert_eq!(login(&reg, "alice", PW, None).status, 200, "the block does not last");
    // A success resets the count: four failures, a success, four more are all plain 401s.
    for round in 0..2 {
        for i in 0..4 {
            let r = login(&reg, "carol", "Wrong12345", None);
            assert_eq!(r.status, 401, "round {round}, failure {i}: {r}");
        }
        assert_eq!(login(&reg, "carol", PW, None).status, 200, "round {round}");
    }
}

// ---------------------------------------------------------------------------------------------
// The browser

const SCRIPT: &str = r#####"
import json, os, sys
from playwright.sync_api import sync_playwright

base, shots, phase, chromium, user, password = sys.argv[1:7]
result = {}

def shot(page, name):
    page.wait_for_timeout(150)
    page.screenshot(path=os.path.join(shots, f"{phase}-{name}.png"), full_page=True)

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    except Exception as e:
        result["clipboard_permission"] = str(e)
    page = ctx.new_page()
    page.set_default_timeout(20000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/")
    page.wait_for_selector("#principal")
    shot(page, "login")
    page.fill("#principal", user)
    page.fill("#password", "wrong")
    page.click("#login-submit")
    page.wait_for_selector("#login-error:has-text('invalid username or password')")
    page.fill("#password", password)
    page.click("#login-submit")
    page.wait_for_selector("#new-project")
    page.wait_for_selector("tr[data-project='library']")
    shot(page, "projects")
    if phase == "setup":
        page.fill("#new-project-name", "webui")
        page.click("#new-project button[type=submit]")
        page.wait_for_selector("text=No repositories yet")
        shot(page, "repositories-empty")
        page.click("a.tab:has-text('Members')")
        page.wait_for_selector("#add-member")
        page.fill("#member-name", "dev")
        page.select_option("#member-role", "2")
        page.click("#add-member button[type=submit]")
        page.wait_for_selector("tr[data-member='dev']")
        page.locator("tr[data-member='dev'] select").select_option("4")
        page.wait_for_selector("#toast:has-text('dev is now Maintainer')")
        shot(page, "members")
        page.click("a.tab:has-text('Robot accounts')")
        page.wait_for_selector("#new-robot")
        page.fill("#robot-name", "ci")
        page.click("#new-robot button[type=submit]")
        page.wait_for_selector("#robot-secret-value")
        result["robot_secret"] = page.inner_text("#robot-secret-value")
        page.wait_for_selector("tr[data-robot='robot$webui+ci']")
        shot(page, "robots")
        na = []
        page.click("a.tab:has-text('Policies')")
        page.wait_for_selector("h2:has-text('Tag retention') + div :is(p, table)")
        if page.query_selector("p.na"): na.append("policies")
        shot(page, "policies")
        page.click("a.tab:has-text('Logs')")
        page.wait_for_selector("main :is(table, p.na, p.muted:has-text('No log'))")
        if page.query_selector("p.na"): na.append("logs")
        result["project_log"] = page.inner_text("main")
        shot(page, "logs")
        page.click("#nav a:has-text('Users')")
        page.wait_for_selector("tr[data-user='dev']")
        shot(page, "users")
        page.click("#nav a:has-text('Audit log')")
        page.wait_for_selector("main :is(table, p.na)")
        if page.query_selector("p.na"): na.append("audit-log")
        result["audit_log"] = page.inner_text("main")
        shot(page, "audit-log")
        page.click("#nav a:has-text('Garbage collection')")
        page.wait_for_selector("h2:has-text('History') + div :is(table, p)")
        page.click("#gc-run")
        page.wait_for_selector("h2:has-text('History') + div table")
        if page.query_selector("p.na"): na.append("gc")
        result["gc"] = page.inner_text("main")
        shot(page, "gc")
        result["not_available"] = na
    elif phase == "guest":
        page.goto(base + "/#/projects/webui/repositories/busybox")
        page.wait_for_selector("tr[data-digest] button.copy")
        result["has_delete"] = page.query_selector("tr[data-digest] button.delete") is not None
        shot(page, "artifacts")
    else:
        page.click("tr[data-project='webui'] a")
        page.wait_for_selector("tr[data-repo='webui/busybox']")
        result["repo_row"] = page.inner_text("tr[data-repo='webui/busybox']")
        shot(page, "repositories")
        page.click("tr[data-repo='webui/busybox'] a")
        row = page.wait_for_selector("tr[data-digest]")
        result["tags"] = [t.inner_text() for t in page.query_selector_all("tr[data-digest] .tag")]
        result["size"] = page.inner_text("tr[data-digest] td.size")
        result["digest"] = row.get_attribute("data-digest")
        result["row"] = row.inner_text()
        shot(page, "artifacts")
        page.click("tr[data-digest] button.copy")
        page.wait_for_selector("#toast:has-text('docker pull')")
        try:
            result["clipboard"] = page.evaluate("navigator.clipboard.readText()")
        except Exception as e:
            result["clipboard_error"] = str(e)
        result["copied"] = page.get_attribute("tr[data-digest] button.copy", "data-copied")
        shot(page, "copied")
        page.once("dialog", lambda d: d.accept())
        page.click("tr[data-digest] button.delete")
        page.wait_for_selector("text=No artifacts.")
        shot(page, "artifact-deleted")
        page.click("#logout")
        page.wait_for_selector("#principal")
    result["errors"] = errors
    browser.close()
print("RESULT " + json.dumps(result))
"#####;

fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts/ui");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

pub(crate) fn chromium() -> PathBuf {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().map(PathBuf::from).find(|p| p.exists());
    found.expect("Debian's chromium is needed: apt-get install -y --no-install-recommends chromium")
}

/// Runs the browser script's `phase`; its result object.
fn browse(python: &Path, script: &Path, reg: &Server, phase: &str, user: &str, password: &str) -> Value {
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .arg(format!("http://{}", reg.addr))
        .arg(artifacts_dir())
        .arg(phase)
        .arg(chromium())
        .arg(user)
        .arg(password);
    let out = run_cmd(cmd, Duration::from_secs(240));
    assert!(out.success(), "the browser's {phase} failed:\n{out}\nregistry log tail:\n{}", tail(&reg.log_text()));
    let line = out.stdout.lines().find_map(|l| l.strip_prefix("RESULT ")).unwrap_or_else(|| panic!("no result: {out}"));
    let v: Value = serde_json::from_str(line).expect("result JSON");
    assert_eq!(v["errors"], json!([]), "script errors on the page: {v}");
    v
}

pub(crate) fn tail(s: &str) -> &str {
    let mut start = s.len().saturating_sub(4000);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[test]
fn harbor_web_ui_in_chromium_project_member_robot_push_copy_delete() {
    let python = install_with_script("playwright", "playwright").unwrap_or_else(|e| panic!("{e}"));
    // This run's screenshots only.
    let _ = std::fs::remove_dir_all(artifacts_dir());
    let tmp = TempDir::new("wharf-e2e-ui");
    let script = tmp.0.join("ui.py");
    std::fs::write(&script, SCRIPT).expect("write the browser script");
    let reg = auth_server(&[]);
    make_user(&reg, "dev");

    let setup = browse(&python, &script, &reg, "setup", "admin", ADMIN_PW);
    // What the browser did is in the registry.
    let members = admin_api(&reg, "GET", "/projects/webui/members", None).json();
    let dev = members.as_array().and_then(|m| m.iter().find(|m| m["entity_name"] == "dev")).cloned();
    assert_eq!(dev.map(|d| d["role_id"].clone()), Some(json!(4)), "dev was added, then made Maintainer: {members}");
    // The policy, log and GC pages show what their APIs answer, not "not available".
    assert_eq!(setup["not_available"], json!([]), "{setup}");
    for (page, want) in [("project_log", "webui"), ("audit_log", "robot$webui+ci"), ("gc", "MANUAL")] {
        let text = setup[page].as_str().unwrap_or_default();
        assert!(text.contains(want), "the {page} page shows {want:?}: {text}");
    }
    let secret = setup["robot_secret"].as_str().unwrap_or_default();
    assert!(secret.len() >= 32, "the robot's secret was shown once: {setup}");
    let r = http(
        &reg.addr,
        "GET",
        "/token?service=wharf-registry&scope=repository:webui/x:pull",
        &[("Authorization", &basic("robot$webui+ci", secret))],
        b"",
    );
    assert_eq!(r.status, 200, "the secret the UI showed logs the robot in: {r}");

    // An image pushed with the docker CLI through wharfd.
    let d = Daemon::start();
    let src = d.pull("library/busybox:latest");
    let target = reg.image("webui/busybox:1");
    d.docker(&["tag", &src, &target]).ok();
    d.docker(&["login", "-u", "admin", "-p", ADMIN_PW, &reg.addr]).ok();
    d.docker(&["push", &target]).ok().mentions(&["1: digest: sha256:"]);
    let pushed = admin_api(&reg, "GET", "/projects/webui/repositories/busybox/artifacts", None).json();
    let size = pushed[0]["size"].as_u64().expect("artifact size");

    // A Guest sees the artifact and its pull command, but no delete button.
    make_user(&reg, "guest");
    let body = json!({ "role_id": 3, "member_user": { "username": "guest" } });
    assert_eq!(admin_api(&reg, "POST", "/projects/webui/members", Some(&body)).status, 201);
    let guest = browse(&python, &script, &reg, "guest", "guest", PW);
    assert_eq!(guest["has_delete"], json!(false), "{guest}");

    let seen = browse(&python, &script, &reg, "browse", "admin", ADMIN_PW);
    assert_eq!(seen["tags"], json!(["1"]), "{seen}");
    assert_eq!(seen["digest"], pushed[0]["digest"], "{seen}");
    let shown = seen["size"].as_str().unwrap_or_default();
    let kib = size as f64 / 1024.0;
    let expected = if kib >= 1024.0 { format!("{:.2} MiB", kib / 1024.0) } else { format!("{kib:.2} KiB") };
    assert_eq!(shown, expected, "the size shown is the artifact's ({size} bytes): {seen}");
    assert!(seen["row"].as_str().is_some_and(|r| r.contains("linux/")), "OS/arch: {seen}");
    let want = format!("docker pull {}/webui/busybox:1", reg.addr);
    assert_eq!(seen["copied"], json!(want), "{seen}");
    if let Some(clip) = seen["clipboard"].as_str() {
        assert_eq!(clip, want, "the clipboard holds the pull command");
    }
    // The browser deleted it.
    let left = admin_api(&reg, "GET", "/projects/webui/repositories/busybox/artifacts", None);
    assert!(left.status == 404 || left.json() == json!([]), "the artifact is gone: {left}");
    for name in [
        "setup-login",
        "setup-projects",
        "setup-members",
        "setup-robots",
        "guest-artifacts",
        "browse-artifacts",
        "browse-artifact-deleted",
    ] {
        assert!(artifacts_dir().join(format!("{name}.png")).exists(), "screenshot {name}");
    }
}

/// Over TLS the session cookies are `Secure`, so a browser never sends them in the clear.
#[test]
fn harbor_ui_session_cookies_are_secure_over_tls() {
    use crate::harness::{openssl_ca, openssl_signed};
    let pki = TempDir::new("wharf-e2e-ui-pki");
    openssl_ca(&pki.0, "wharf-e2e-ui-ca");
    let san = "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n";
    openssl_signed(&pki.0, "server", "127.0.0.1", san);
    let (cert, key) = (pki.0.join("server.crt"), pki.0.join("server.key"));
    let (cert, key) = (cert.to_string_lossy().to_string(), key.to_string_lossy().to_string());
    let reg = auth_server(&["--tls-cert", &cert, "--tls-key", &key]);
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", "--cacert"])
        .arg(pki.0.join("ca.crt"))
        .args(["--data", &form(&[("principal", "admin"), ("password", ADMIN_PW)])])
        .arg(format!("https://{}/c/login", reg.addr));
    let out = run_cmd(cmd, Duration::from_secs(60));
    assert!(out.success(), "{out}");
    let cookies: Vec<&str> = out.stdout.lines().filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).collect();
    assert_eq!(cookies.len(), 2, "sid and __csrf: {out}");
    for c in cookies {
        assert!(c.contains("; Secure"), "{c}");
    }
    assert!(out
        .stdout
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("set-cookie: sid=") && l.contains("HttpOnly")));
}
