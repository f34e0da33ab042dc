//! docker-py 7 (PyPI, the venv of build_py.rs) against wharfd and a private dockerd side by
//! side (issue 12): the same calls through `docker_py.py`, whose answers must be equal. Each
//! test also states what the answer is, so that a dockerd that changed would show too.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::dockerd::Dockerd;
use crate::harness::{registry, run_cmd, Daemon, Output};

fn run_case(host: &str, docker_config: &Path, case: &str, image: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/docker_py.py");
    let mut cmd = Command::new(crate::build_py::venv_python());
    cmd.arg(script)
        .args([case, image])
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", docker_config)
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH");
    let out = run_cmd(cmd, Duration::from_secs(240));
    assert!(out.success(), "docker_py.py {case} against {host} failed:\n{out}");
    out.json()
}

/// `case` against a fresh wharfd and a private dockerd, both with busybox pulled from the test
/// registry; asserts the answers are equal, but for the keys of `on_purpose` (each with what
/// wharf answers and why dockerd may answer otherwise), and returns wharfd's.
#[track_caller]
fn same_as_dockerd(case: &str, on_purpose: &[(&str, Value, &str)]) -> Value {
    let d = Daemon::start();
    let image = d.pull("library/busybox:latest");
    let docker = Dockerd::start(&[&registry().addr]).unwrap_or_else(|e| panic!("private dockerd: {e}"));
    docker.cli(&["pull", "-q", &image]).ok();
    let ours = run_case(&d.host(), &d.docker_config, case, &image);
    let theirs = run_case(&docker.host(), &d.docker_config, case, &image);
    let keys: Vec<&String> = theirs.as_object().map(|o| o.keys().collect()).unwrap_or_default();
    assert!(!keys.is_empty(), "{case}: dockerd's answer has no keys: {theirs}");
    let mut differences = Vec::new();
    for k in keys {
        match on_purpose.iter().find(|(key, _, _)| key == k) {
            // dockerd's answer may be right or wrong here (a race): only wharf's is checked.
            Some((_, want, why)) if &ours[k] != want => {
                differences.push(format!("`{k}`: {} (wanted {want}; dockerd may differ: {why})", ours[k]));
            }
            Some(_) => {}
            None if ours[k] != theirs[k] => {
                differences.push(format!("`{k}`: wharfd {} dockerd {}", ours[k], theirs[k]))
            }
            None => {}
        }
    }
    assert!(differences.is_empty(), "{case}: {} differences:\n{}", differences.len(), differences.join("\n"));
    assert_eq!(ours.as_object().map(|o| o.len()), theirs.as_object().map(|o| o.len()), "{case}: {ours} vs {theirs}");
    ours
}

#[test]
fn exec_output_is_complete_and_framed_as_dockerd_frames_it() {
    let v = same_as_dockerd("exec_output", &[]);
    assert_eq!(v["exec_run"], json!(["hello world\n"]));
    assert_eq!(v["exec_run_exit"], 3);
    assert_eq!(v["workdir"], "/tmp\n");
    assert_eq!(v["demux"], json!(["out\n", "err\n"]));
    assert_eq!(v["socket"], "\u{1}\0\0\0\0\0\0\u{c}hello world\n");
    assert_eq!(v["tty"], "hi\r\n");
    assert_eq!(v["tty_stream"], "a\r\nb\r\n");
}

#[test]
fn attach_with_logs_after_exit_replays_the_output() {
    // dockerd sends an exited container's log right behind the 101 head, so docker-py's
    // buffered reader swallows it with the head and returns b'' (the bug, which
    // dockerd has too); wharf waits until the client has read the head.
    const RACE: &str = "dockerd's log replay races docker-py's read of the 101 head";
    let v = same_as_dockerd(
        "attach_after_exit",
        &[
            ("attach_logs", json!("out\n"), RACE),
            ("attach_logs_stdout", json!("out\n"), RACE),
            ("tty_attach_logs", json!("a\r\nb\r\n"), RACE),
        ],
    );
    assert_eq!(v["attach_logs"], "out\n");
    assert_eq!(v["tty_logs"], "a\r\nb\r\n");
    assert_eq!(v["run_output"], "run\n");
}

#[test]
fn swarm_endpoints_answer_as_a_dockerd_outside_a_swarm() {
    let v = same_as_dockerd("swarm", &[]);
    assert_eq!(v["leave"], true);
    assert_eq!(v["services"][0], 503);
    assert_eq!(v["info_swarm_state"], "inactive");
}

/// Key paths wharf answers differently from dockerd 20.10 on purpose, each with why. A path
/// ending in `*` covers everything below it.
const SHAPE_DIFFERENCES: &[(&str, &str)] = &[
    (
        "info:Runtimes.*",
        "wharfd lists its own runtime as `runc` (and `wharf`) beside the configured ones; dockerd 20.10 lists \
         containerd's shims (`io.containerd.*`) too, which wharf does not offer",
    ),
    (
        "info:RegistryConfig.IndexConfigs.<host:port>*",
        "the test's dockerd is given --insecure-registry for the test registry; wharfd trusts 127.0.0.0/8 over \
         plain HTTP without being told",
    ),
    (
        "*.GwPriority",
        "wharfd shows each endpoint's GwPriority as dockerd 28 does (API 1.48, which the docker CLI 28 sends); \
         dockerd 20.10 has no such field",
    ),
];

/// Whether a difference at `object:path` is one of [`SHAPE_DIFFERENCES`]: a pattern matches
/// whole, or ending in `*` as a prefix, or starting with `*` as a suffix.
fn allowed(object: &str, path: &str) -> bool {
    let full = format!("{object}:{path}");
    SHAPE_DIFFERENCES.iter().any(|(p, _)| {
        if let Some(prefix) = p.strip_suffix('*') {
            full.starts_with(prefix)
        } else if let Some(suffix) = p.strip_prefix('*') {
            full.ends_with(suffix)
        } else {
            full == *p
        }
    })
}

#[test]
fn inspect_and_list_answers_have_dockerds_keys_and_types() {
    let d = Daemon::start();
    let image = d.pull("library/busybox:latest");
    let docker = Dockerd::start(&[&registry().addr]).unwrap_or_else(|e| panic!("private dockerd: {e}"));
    docker.cli(&["pull", "-q", &image]).ok();
    let ours = run_case(&d.host(), &d.docker_config, "shapes", &image);
    let theirs = run_case(&docker.host(), &d.docker_config, "shapes", &image);
    let mut problems = Vec::new();
    for (object, want) in theirs.as_object().into_iter().flatten() {
        let got = &ours[object];
        for (path, t) in want.as_object().into_iter().flatten() {
            if allowed(object, path) {
                continue;
            }
            match got.get(path) {
                None => problems.push(format!("{object}:{path}: missing (dockerd: {t})")),
                // `null` in one and a value in the other is a type difference clients see too.
                Some(g) if g != t => problems.push(format!("{object}:{path}: {g} (dockerd: {t})")),
                Some(_) => {}
            }
        }
        for path in got.as_object().into_iter().flatten().map(|(p, _)| p) {
            if want.get(path).is_none() && !allowed(object, path) {
                problems.push(format!("{object}:{path}: not in dockerd's answer"));
            }
        }
    }
    // The same for a container the docker CLI made, which sends empty lists where docker-py
    // sends nothing: dockerd shows each as it was sent.
    let args =
        ["create", "--name", "cli-shape", "-l", "a=b", "-p", "127.0.0.1::80", "--network", "none", &image, "true"];
    d.docker(&args).ok();
    docker.cli(&args).ok();
    let inspect = |out: Output| shape(&out.json()[0], "");
    let ours = inspect(d.docker(&["inspect", "cli-shape"]));
    let theirs = inspect(docker.cli(&["inspect", "cli-shape"]));
    for (path, t) in &theirs {
        match ours.get(path) {
            None => problems.push(format!("cli container:{path}: missing (dockerd: {t})")),
            Some(g) if g != t => problems.push(format!("cli container:{path}: {g} (dockerd: {t})")),
            Some(_) => {}
        }
    }
    problems.extend(
        ours.keys()
            .filter(|p| !theirs.contains_key(*p) && !allowed("cli container", p))
            .map(|p| format!("cli container:{p}: not in dockerd's answer")),
    );
    d.docker(&["rm", "cli-shape"]).ok();
    docker.cli(&["rm", "cli-shape"]).ok();
    assert!(problems.is_empty(), "{} differences from dockerd:\n{}", problems.len(), problems.join("\n"));
}

/// docker_py.py's `shape` in Rust: every key path of `v` with its JSON type.
fn shape(v: &Value, path: &str) -> std::collections::BTreeMap<String, String> {
    fn walk(v: &Value, path: &str, out: &mut std::collections::BTreeMap<String, String>) {
        let t = match v {
            Value::Object(o) => {
                for (k, x) in o {
                    let k = if k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()) { "<id>" } else { k };
                    walk(x, &if path.is_empty() { k.to_string() } else { format!("{path}.{k}") }, out);
                }
                "object"
            }
            Value::Array(a) => {
                a.iter().for_each(|x| walk(x, &format!("{path}[]"), out));
                "list"
            }
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
        };
        out.insert(if path.is_empty() { ".".into() } else { path.to_string() }, t.to_string());
    }
    let mut out = std::collections::BTreeMap::new();
    walk(v, path, &mut out);
    out
}

/// The common mistakes: dockerd's status and words, which scripts and libraries match.
#[test]
fn errors_for_common_mistakes_are_dockerds() {
    let v = same_as_dockerd(
        "errors",
        &[
            (
                "inspect_missing_image",
                json!([404, "No such image: nosuch:latest"]),
                "dockerd 20.10 says the reason twice; later ones say it as wharf does",
            ),
            (
                "load_not_a_tar",
                json!(["stream", "invalid archive: not a tar archive: its first block is not a tar header"]),
                "wharf names the tar's problem in its own words, dockerd in Go's (\"archive/tar: invalid tar header\")",
            ),
            (
                "load_tar_without_images",
                json!(["stream", "invalid archive: neither manifest.json nor index.json found (not a docker-archive or OCI image layout)"]),
                "dockerd names a temp file it could not open (…/repositories: no such file or directory)",
            ),
            (
                "network_rm_predefined",
                json!([403, "bridge is a pre-defined network and cannot be removed"]),
                "the test's dockerd runs with --bridge=none, so it has no bridge network",
            ),
        ],
    );
    assert_eq!(v["rm_running"][0], 409);
    assert_eq!(v["inspect_missing_container"][0], 404);
}

/// Logs as bytes and the events of one container's life, as dockerd gives them.
#[test]
fn logs_and_events_are_dockerds() {
    let v = same_as_dockerd("streams", &[]);
    assert_eq!(v["logs"].as_str().map(|l| l.lines().count()), Some(3));
    assert_eq!(v["logs_tail"], "three\n");
}

/// Resource controls through docker-py (issue 21): create warnings and HostConfig values,
/// refusals, `update_container` and what it leaves, all as dockerd's.
#[test]
fn resource_controls_are_dockerds() {
    let ours = same_as_dockerd(
        "resources",
        &[(
            "bad_rt",
            json!([400, "cpu real-time runtime cannot be higher than cpu real-time period"]),
            "dockerd 20.10 returns this check's plain error, so 500; it is the client's mistake, as its other checks say with 400",
        )],
    );
    // And what they are on this host, so that a dockerd that changed would show too.
    assert_eq!(ours["memory_only"]["host_config"]["MemorySwap"], 128 << 20, "{ours}");
    assert_eq!(ours["bad_cpuset"][0], 400, "{ours}");
    assert_eq!(ours["everything"]["host_config"]["MemoryReservation"], 32 << 20, "{ours}");
}
