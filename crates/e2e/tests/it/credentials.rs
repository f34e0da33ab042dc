//! Registry credentials kept by docker credential helpers (`credsStore`, `credHelpers`): a
//! helper written for the test that speaks the protocol (`docker-credential-<name>
//! get|store|erase|list`, JSON on stdin and stdout) and keeps what it is given in files, one
//! that fails, and one that is missing. `wharf login`/`logout`, pulls, pushes and builds go
//! through them, and so does the real docker CLI with the same config.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{run_cmd, Cli, Daemon, Output, RegistryOptions, TempDir, TestRegistry};

const USER: &str = "helperuser";
const PASSWORD: &str = "helper-s3cret";

/// The helpers of one test: `docker-credential-wharftest` (a working store under
/// `store/`), `docker-credential-wharfbroken` (always fails) on a `PATH` of their own, and
/// a docker config directory.
struct Helpers {
    dir: TempDir,
}

impl Helpers {
    fn new() -> Helpers {
        let dir = TempDir::new("wharf-e2e-creds");
        let bin = dir.0.join("bin");
        let store = dir.0.join("store");
        for d in [&bin, &store, &dir.0.join("config")] {
            fs::create_dir_all(d).expect("create helper dirs");
        }
        let helper = format!(
            r#"#!/usr/bin/python3
import json, os, sys
STORE = {store:?}
action = sys.argv[1] if len(sys.argv) > 1 else ""
data = sys.stdin.read()
with open(os.path.join(STORE, "calls.log"), "a") as log:
    log.write(action + "\n")
def path(server):
    return os.path.join(STORE, server.replace("/", "_") + ".json")
def not_found():
    print("credentials not found in native keychain")
    sys.exit(1)
if action == "store":
    c = json.loads(data)
    with open(path(c["ServerURL"]), "w") as f:
        json.dump(c, f)
elif action == "get":
    if not os.path.exists(path(data.strip())):
        not_found()
    with open(path(data.strip())) as f:
        print(json.dumps(json.load(f)))
elif action == "erase":
    if not os.path.exists(path(data.strip())):
        not_found()
    os.remove(path(data.strip()))
elif action == "list":
    out = {{}}
    for name in os.listdir(STORE):
        if name.endswith(".json"):
            with open(os.path.join(STORE, name)) as f:
                c = json.load(f)
            out[c["ServerURL"]] = c["Username"]
    print(json.dumps(out))
else:
    print("unknown action " + action)
    sys.exit(1)
"#,
            store = store.display().to_string()
        );
        write_executable(&bin.join("docker-credential-wharftest"), &helper);
        write_executable(
            &bin.join("docker-credential-wharfbroken"),
            "#!/bin/sh\ncat >/dev/null\necho 'the keychain is locked'\nexit 1\n",
        );
        Helpers { dir }
    }

    fn config_dir(&self) -> PathBuf {
        self.dir.0.join("config")
    }

    fn write_config(&self, config: &Value) {
        fs::write(self.config_dir().join("config.json"), config.to_string()).expect("write config.json");
    }

    fn config(&self) -> Value {
        let text = fs::read_to_string(self.config_dir().join("config.json")).expect("read config.json");
        serde_json::from_str(&text).expect("config.json is JSON")
    }

    /// What the working helper holds for `server`.
    fn stored(&self, server: &str) -> Option<Value> {
        let text =
            fs::read_to_string(self.dir.0.join("store").join(format!("{}.json", server.replace('/', "_")))).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn calls(&self) -> Vec<String> {
        let text = fs::read_to_string(self.dir.0.join("store/calls.log")).unwrap_or_default();
        text.lines().map(str::to_string).collect()
    }

    fn path_env(&self) -> String {
        format!("{}:{}", self.dir.0.join("bin").display(), std::env::var("PATH").unwrap_or_default())
    }

    /// `cli ARGS` against `d` with this config and the helpers on `PATH`.
    fn cli(&self, d: &Daemon, cli: Cli, args: &[&str]) -> Output {
        let mut cmd: Command = d.command(cli, args);
        cmd.env("DOCKER_CONFIG", self.config_dir()).env("PATH", self.path_env());
        run_cmd(cmd, Duration::from_secs(120))
    }
}

fn write_executable(path: &Path, text: &str) {
    fs::write(path, text).expect("write helper");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod helper");
}

fn auth_registry() -> TestRegistry {
    TestRegistry::start(RegistryOptions {
        only: vec!["library/busybox".into()],
        htpasswd: Some((USER.into(), PASSWORD.into())),
        ..Default::default()
    })
}

#[test]
fn a_creds_store_serves_login_pull_push_build_and_logout() {
    let reg = auth_registry();
    let d = Daemon::start();
    let h = Helpers::new();
    h.write_config(&json!({"credsStore": "wharftest", "auths": {}}));
    let image = reg.image("library/busybox:latest");

    h.cli(&d, Cli::Wharf, &["pull", &image]).fails().mentions(&["unauthorized"]);
    h.cli(&d, Cli::Wharf, &["login", "-u", USER, "-p", PASSWORD, &reg.addr]).ok().mentions(&["Login Succeeded"]);
    // As docker keeps it: the secret with the helper, an empty entry in auths.
    let stored = h.stored(&reg.addr).expect("the helper was given the credentials");
    assert_eq!(stored, json!({"ServerURL": reg.addr, "Username": USER, "Secret": PASSWORD}));
    let config = h.config();
    assert_eq!(config["auths"][&reg.addr], json!({}), "{config}");
    assert_eq!(config["credsStore"], "wharftest");

    h.cli(&d, Cli::Wharf, &["pull", &image]).ok();
    let pushed = reg.image("library/pushed:1");
    h.cli(&d, Cli::Wharf, &["tag", &image, &pushed]).ok();
    h.cli(&d, Cli::Wharf, &["push", &pushed]).ok();

    // A build's FROM pulls with every credential the helper lists.
    h.cli(&d, Cli::Wharf, &["rmi", &image, &pushed]).ok();
    let ctx = TempDir::new("wharf-e2e-credsctx");
    fs::write(ctx.0.join("Dockerfile"), format!("FROM {pushed}\nRUN echo built > /built\n")).expect("Dockerfile");
    let before = h.calls();
    h.cli(&d, Cli::Wharf, &["build", "-q", "-t", "creds-build:1", ctx.0.to_str().unwrap_or_default()]).ok();
    let during: Vec<String> = h.calls().split_off(before.len());
    assert!(during.contains(&"list".to_string()) && during.contains(&"get".to_string()), "{during:?}");
    let out = h.cli(&d, Cli::Wharf, &["run", "--rm", "creds-build:1", "cat", "/built"]);
    assert_eq!(out.ok().trimmed(), "built");

    h.cli(&d, Cli::Wharf, &["logout", &reg.addr])
        .ok()
        .mentions(&[&format!("Removing login credentials for {}", reg.addr)]);
    assert_eq!(h.stored(&reg.addr), None, "logout did not erase the helper's entry");
    assert!(h.config()["auths"].get(&reg.addr).is_none());
    // The build pulled it again; gone, it cannot come back without credentials.
    h.cli(&d, Cli::Wharf, &["rmi", &pushed]).ok();
    h.cli(&d, Cli::Wharf, &["pull", &pushed]).fails().mentions(&["unauthorized"]);
    h.cli(&d, Cli::Wharf, &["logout", &reg.addr]).ok().mentions(&[&format!("Not logged in to {}", reg.addr)]);
}

#[test]
fn cred_helpers_choose_per_registry_and_a_failing_helper_is_named() {
    let reg = auth_registry();
    let d = Daemon::start();
    let h = Helpers::new();
    let image = reg.image("library/busybox:latest");
    // Credentials another tool stored with the helper.
    h.write_config(&json!({"credsStore": "wharftest"}));
    h.cli(&d, Cli::Wharf, &["login", "-u", USER, "-p", PASSWORD, &reg.addr]).ok();

    // credHelpers wins over credsStore for its registry.
    h.write_config(&json!({"credsStore": "wharfbroken", "credHelpers": {&reg.addr: "wharftest"}}));
    h.cli(&d, Cli::Wharf, &["pull", &image]).ok();
    h.cli(&d, Cli::Wharf, &["rmi", &image]).ok();

    // A helper that fails stops the pull, naming the helper and what it said.
    h.write_config(&json!({"credsStore": "wharfbroken"}));
    h.cli(&d, Cli::Wharf, &["pull", &image])
        .fails()
        .mentions(&["docker-credential-wharfbroken", "the keychain is locked"]);
    h.cli(&d, Cli::Wharf, &["image", "inspect", &image]).fails();
    h.cli(&d, Cli::Wharf, &["push", &image]).fails().mentions(&["docker-credential-wharfbroken"]);
    // So does one that is not installed.
    h.write_config(&json!({"credHelpers": {&reg.addr: "wharf-no-such-helper"}}));
    h.cli(&d, Cli::Wharf, &["pull", &image])
        .fails()
        .mentions(&["docker-credential-wharf-no-such-helper not found in PATH"]);
    h.cli(&d, Cli::Wharf, &["login", "-u", USER, "-p", PASSWORD, &reg.addr])
        .fails()
        .mentions(&["docker-credential-wharf-no-such-helper"]);
}

#[test]
fn a_docker_login_through_a_helper_serves_wharf_and_the_other_way_round() {
    let reg = auth_registry();
    let d = Daemon::start();
    let h = Helpers::new();
    h.write_config(&json!({"credsStore": "wharftest"}));
    let image = reg.image("library/busybox:latest");

    h.cli(&d, Cli::Docker, &["login", "-u", USER, "-p", PASSWORD, &reg.addr]).ok().mentions(&["Login Succeeded"]);
    assert_eq!(h.stored(&reg.addr).expect("docker stored through the helper")["Username"], USER);
    h.cli(&d, Cli::Wharf, &["pull", &image]).ok();
    h.cli(&d, Cli::Wharf, &["rmi", &image]).ok();

    h.cli(&d, Cli::Wharf, &["logout", &reg.addr]).ok();
    h.cli(&d, Cli::Docker, &["pull", &image]).fails();
    h.cli(&d, Cli::Wharf, &["login", "-u", USER, "-p", PASSWORD, &reg.addr]).ok();
    h.cli(&d, Cli::Docker, &["pull", &image]).ok();
}

#[test]
fn a_login_to_a_token_server_keeps_an_identity_token_instead_of_the_password() {
    use crate::registry_server::{auth_server, ADMIN_PW};
    let reg = auth_server(&[]);
    let d = Daemon::start();
    let src = d.pull("library/busybox:latest");
    let target = reg.image("private/idtoken:1");
    let h = Helpers::new();
    for (i, store) in [None, Some("wharftest")].into_iter().enumerate() {
        match store {
            None => h.write_config(&json!({})),
            Some(helper) => h.write_config(&json!({"credsStore": helper})),
        }
        h.cli(&d, Cli::Wharf, &["login", "-u", "admin", "-p", ADMIN_PW, &reg.addr]).ok().mentions(&["Login Succeeded"]);
        // The password is kept nowhere: a refresh token from the token server stands for it.
        let config_text = fs::read_to_string(h.config_dir().join("config.json")).unwrap_or_default();
        assert!(!config_text.contains(ADMIN_PW), "{config_text}");
        match store {
            None => {
                let entry = &h.config()["auths"][&reg.addr];
                assert!(entry["identitytoken"].as_str().is_some_and(|t| t.len() > 20), "{entry}");
                assert_eq!(entry["auth"], crate::registry_auth::base64(b"admin:"), "{entry}");
            }
            Some(_) => {
                let stored = h.stored(&reg.addr).expect("the helper holds the token");
                assert_eq!(stored["Username"], "<token>");
                assert!(!stored["Secret"].as_str().unwrap_or_default().contains(ADMIN_PW));
            }
        }
        let tagged = format!("{target}{i}");
        h.cli(&d, Cli::Wharf, &["tag", &src, &tagged]).ok();
        h.cli(&d, Cli::Wharf, &["push", &tagged]).ok();
        h.cli(&d, Cli::Wharf, &["rmi", &tagged]).ok();
        h.cli(&d, Cli::Wharf, &["pull", &tagged]).ok();
        // The docker CLI with the same config uses the token too.
        h.cli(&d, Cli::Docker, &["rmi", &tagged]).ok();
        h.cli(&d, Cli::Docker, &["pull", &tagged]).ok();
    }
    // The daemon traded the refresh token for access tokens (OAuth2 POST).
    let log = reg.log_text();
    assert!(log.contains("POST /token"), "{log}");
}
