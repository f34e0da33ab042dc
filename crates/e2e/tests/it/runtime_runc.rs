//! Containers under another OCI runtime: Debian's runc, registered as daemon.json `runtimes`
//! or `--add-runtime`, driven by the shim (`runc create/start/exec/delete`) on the bundle wharf
//! writes. Run, logs, exit codes, exec, attach, signals, pause, restart policies, a daemon
//! restart, networking and cgroup limits must work as under wharf's own runtime; dockerd's
//! answers to the same requests are the reference for errors and exit codes.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{http_unix_post, run_cmd, wait_for, Cli, Daemon, DaemonOptions};

const RUNC: &str = "/usr/sbin/runc";

fn need_runc() {
    let ok = Command::new(RUNC).arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    assert!(ok, "this test needs runc at {RUNC} (apt-get install runc)");
}

/// A daemon with runc as `debrunc` (with runtimeArgs, as a Docker user writes them) and a
/// runtime whose executable does not exist.
fn daemon() -> Daemon {
    need_runc();
    let json = format!(
        r#"{{"runtimes": {{"debrunc": {{"path": "{RUNC}", "runtimeArgs": ["--debug"]}},
             "ghost": {{"path": "/nonexistent/runtime"}}}}}}"#
    );
    Daemon::start_with(DaemonOptions { config_json: Some(json), ..Default::default() })
}

/// runc's own view of a container of `d` under `name`: `runc state` through its state dir.
fn runc_state(d: &Daemon, name: &str, id: &str) -> Option<Value> {
    let mut cmd = Command::new(RUNC);
    cmd.arg("--root").arg(d.exec_root.join(format!("runtime-{name}"))).args(["state", id]);
    let out = run_cmd(cmd, Duration::from_secs(30));
    out.success().then(|| out.json())
}

fn id_of(d: &Daemon, name: &str) -> String {
    let out = d.docker(&["inspect", "-f", "{{.Id}}", name]);
    out.ok();
    out.trimmed().to_string()
}

fn inspect(d: &Daemon, name: &str) -> Value {
    d.inspect(Cli::Docker, name)
}

#[test]
fn runc_runtime_is_listed_and_runs_logs_and_exit_codes() {
    let d = daemon();
    let image = d.pull("library/busybox:latest");

    let info = d.docker(&["info", "--format", "{{json .Runtimes}} {{.DefaultRuntime}}"]);
    info.ok();
    let (runtimes, default) = info.trimmed().rsplit_once(' ').expect("two fields");
    let runtimes: Value = serde_json::from_str(runtimes).expect("Runtimes is JSON");
    assert_eq!(default, "runc", "{info}");
    assert_eq!(runtimes["debrunc"], serde_json::json!({"path": RUNC, "runtimeArgs": ["--debug"]}));
    assert_eq!(runtimes["ghost"]["path"], "/nonexistent/runtime");
    for builtin in ["runc", "wharf"] {
        assert!(runtimes[builtin]["path"].as_str().is_some_and(|p| p.ends_with("wharf-shim")), "{runtimes}");
    }

    // Foreground: output on both streams, the exit status, and the log kept as json-file.
    let out = d.docker(&[
        "run",
        "--name",
        "fg",
        "--runtime",
        "debrunc",
        &image,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    out.code_is(3);
    assert_eq!(out.stdout.trim(), "out", "{out}");
    assert!(out.stderr.contains("err"), "{out}");
    let logs = d.docker(&["logs", "fg"]);
    logs.ok();
    assert_eq!((logs.stdout.trim(), logs.stderr.trim()), ("out", "err"), "{logs}");
    let fg = inspect(&d, "fg");
    assert_eq!(fg["HostConfig"]["Runtime"], "debrunc");
    assert_eq!(fg["State"]["ExitCode"], 3);
    let log_path = fg["LogPath"].as_str().unwrap_or_default().to_string();
    let log_text = std::fs::read_to_string(&log_path).unwrap_or_else(|e| panic!("{log_path}: {e}"));
    assert!(log_text.contains(r#""log":"out\n","stream":"stdout""#), "{log_text}");
    // runc's record of it went with the container's end.
    assert!(runc_state(&d, "debrunc", &id_of(&d, "fg")).is_none());

    // Detached: runc knows it as running, with the pid wharf reports.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "bg",
        "--runtime",
        "debrunc",
        &image,
        "sh",
        "-c",
        "echo started; exec sleep 1000",
    ])
    .ok();
    let bg = inspect(&d, "bg");
    let state = runc_state(&d, "debrunc", &id_of(&d, "bg")).expect("runc knows the container");
    assert_eq!(state["status"], "running", "{state}");
    assert_eq!(state["pid"], bg["State"]["Pid"], "{state}\n{bg}");
    assert!(wait_for(Duration::from_secs(10), || d.docker(&["logs", "bg"]).stdout.contains("started")));
    // The init is the shim's child (the shim is a subreaper), not runc's.
    let pid = bg["State"]["Pid"].as_i64().unwrap_or(0);
    let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").and_then(|(_, r)| r.split(' ').nth(1).map(str::to_string)))
        .unwrap_or_default();
    let parent = std::fs::read_to_string(format!("/proc/{ppid}/cmdline")).unwrap_or_default();
    assert!(parent.starts_with(&crate::harness::bin("wharf-shim").display().to_string()), "parent {ppid}: {parent:?}");
    // The rootfs is mounted in the shim's namespace and the container's, not the host's.
    let rootfs = PathBuf::from(state["rootfs"].as_str().unwrap_or_default());
    assert!(rootfs.starts_with(&d.data_root), "{state}");
    let host_mounts = crate::harness::mounts_under(&d.data_root);
    assert!(!host_mounts.contains(&rootfs), "the rootfs is mounted on the host: {host_mounts:?}");
    let in_shim = std::fs::read_to_string(format!("/proc/{ppid}/mountinfo")).unwrap_or_default();
    assert!(in_shim.contains(&format!(" {} ", rootfs.display())), "not mounted in the shim's namespace");
    d.docker(&["rm", "-f", "bg"]).ok();

    // dockerd's exit codes and words for commands that cannot run (under dockerd's runc
    // the same requests give 127, 126 and 127, with these messages).
    let out = d.docker(&["run", "--rm", "--runtime", "debrunc", &image, "nosuch"]);
    out.code_is(127).mentions(&["exec: \"nosuch\": executable file not found in $PATH"]);
    let out = d.docker(&["run", "--rm", "--runtime", "debrunc", &image, "/etc"]);
    out.code_is(126).mentions(&["exec: \"/etc\": permission denied"]);
    let out = d.docker(&["run", "--rm", "--runtime", "ghost", &image, "true"]);
    out.code_is(127).mentions(&["fork/exec /nonexistent/runtime: no such file or directory"]);
    // The wharf CLI reads the same.
    d.wharf(&["run", "--rm", "--runtime", "debrunc", &image, "nosuch"]).code_is(127);

    // An unknown name: dockerd's 400 and its words, at create.
    let out = d.docker(&["run", "--rm", "--runtime", "nosuch", &image, "true"]);
    out.code_is(125).mentions(&["Unknown runtime specified nosuch"]);
    let raw = http_unix_post(
        &d.sock,
        "/v1.41/containers/create",
        &format!(r#"{{"Image":"{image}","HostConfig":{{"Runtime":"nosuch"}}}}"#),
    );
    assert!(raw.contains(" 400 ") && raw.contains("Unknown runtime specified nosuch"), "{raw}");

    // No name: the default, wharf's own runtime under Docker's name.
    d.docker(&["create", "--name", "plain", &image, "true"]).ok();
    assert_eq!(inspect(&d, "plain")["HostConfig"]["Runtime"], "runc");
    d.docker(&["rm", "-f", "fg", "plain"]).ok();
}
