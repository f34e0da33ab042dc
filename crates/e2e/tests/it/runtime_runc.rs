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

/// Whether runc's record of a container goes within a few seconds: the shim deletes it
/// after it has reported the exit, so a moment after `rm -f` or `stop` returns.
fn runc_forgets(d: &Daemon, name: &str, id: &str) -> bool {
    wait_for(Duration::from_secs(10), || runc_state(d, name, id).is_none())
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
    assert!(runc_forgets(&d, "debrunc", &id_of(&d, "fg")));

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

    let info = d.wharf(&["info"]);
    info.ok().mentions(&["Runtimes: debrunc ghost runc wharf", "Default Runtime: runc"]);

    // No name: the default, wharf's own runtime under Docker's name.
    d.docker(&["create", "--name", "plain", &image, "true"]).ok();
    assert_eq!(inspect(&d, "plain")["HostConfig"]["Runtime"], "runc");
    d.docker(&["rm", "-f", "fg", "plain"]).ok();
}

/// `cmd` with `input` on its stdin, to its end.
fn with_input(mut cmd: Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn the client");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("write stdin");
    drop(stdin);
    child.wait_with_output().expect("wait for the client")
}

#[test]
fn runc_runtime_exec_attach_signals_pause_and_rm() {
    let d = daemon();
    let image = d.pull("library/busybox:latest");
    for cli in [Cli::Wharf, Cli::Docker] {
        // run -i: stdin reaches the container and its end is seen.
        let cmd = d.command(cli, &["run", "--rm", "-i", "--runtime", "debrunc", &image, "sh", "-c", "cat; echo end"]);
        let out = with_input(cmd, b"data\nmore\n");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "data\nmore\nend\n", "{cli:?}");
    }
    // --init and a volume: wharf's init as pid 1, and what runc's container wrote is in the
    // volume for a container under wharf's own runtime.
    let out = d.docker(&[
        "run",
        "--rm",
        "--init",
        "--runtime",
        "debrunc",
        "-v",
        "shared:/data",
        &image,
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo from-runc > /data/f",
    ]);
    out.ok();
    assert!(out.stdout.starts_with("/sbin/docker-init"), "{out}");
    let out = d.docker(&["run", "--rm", "-v", "shared:/data", &image, "cat", "/data/f"]);
    assert_eq!(out.ok().trimmed(), "from-runc");
    // run -t: a terminal of the container's own, its output with the terminal's line ends.
    let out = d.docker(&["run", "--rm", "-t", "--runtime", "debrunc", &image, "sh", "-c", "tty; stty size"]);
    out.ok();
    assert!(out.stdout.contains("/dev/pts/0\r\n"), "{out}");

    // A shell that reports the signals it gets, for stop and kill.
    let script = "trap 'echo got-term; exit 42' TERM; trap 'echo got-usr1' USR1; echo ready; \
                  while true; do sleep 0.1; done";
    d.docker(&["run", "-d", "--name", "sig", "--runtime", "debrunc", &image, "sh", "-c", script]).ok();
    assert!(wait_for(Duration::from_secs(10), || d.docker(&["logs", "sig"]).stdout.contains("ready")));

    // exec: output, exit status, stdin, a terminal, and a command that is not there.
    let out = d.docker(&["exec", "sig", "sh", "-c", "echo in-exec; cat /proc/1/cmdline | tr '\\0' ' '; exit 5"]);
    out.code_is(5);
    assert!(out.stdout.contains("in-exec") && out.stdout.contains("sh -c trap"), "{out}");
    let out = with_input(d.command(Cli::Docker, &["exec", "-i", "sig", "wc", "-l"]), b"1\n2\n3\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3", "{out:?}");
    let out = d.docker(&["exec", "-t", "sig", "tty"]);
    out.ok();
    assert!(out.stdout.starts_with("/dev/pts/"), "{out}");
    let out = d.wharf(&["exec", "sig", "nosuch"]);
    out.fails().mentions(&["executable file not found"]);
    assert_eq!(out.code, 127, "{out}");
    // exec as another user, in another directory, with more environment.
    let out =
        d.docker(&["exec", "-u", "1000:1000", "-w", "/tmp", "-e", "X=y", "sig", "sh", "-c", "id -u; pwd; echo $X"]);
    out.ok();
    assert_eq!(out.stdout.split_whitespace().collect::<Vec<_>>(), ["1000", "/tmp", "y"], "{out}");

    // A failed exec in dockerd's words (wharfd's prefix and runc's reason, once each).
    let out = d.docker(&["exec", "sig", "/etc"]);
    assert_eq!(out.code, 126, "{out}");
    let all = out.all();
    assert_eq!(all.matches("OCI runtime exec failed: ").count(), 1, "{out}");
    assert!(all.contains("exec failed: unable to start container process: exec: \"/etc\": permission denied"), "{out}");

    // kill -s: the signal reaches the init; pause and unpause freeze it and thaw it.
    d.docker(&["kill", "-s", "USR1", "sig"]).ok();
    assert!(wait_for(Duration::from_secs(10), || d.docker(&["logs", "sig"]).stdout.contains("got-usr1")));
    d.docker(&["pause", "sig"]).ok();
    assert_eq!(inspect(&d, "sig")["State"]["Status"], "paused");
    d.docker(&["unpause", "sig"]).ok();
    assert_eq!(inspect(&d, "sig")["State"]["Status"], "running");
    d.docker(&["exec", "sig", "true"]).ok();

    // stop: SIGTERM, which the shell turns into its exit status.
    d.docker(&["stop", "sig"]).ok();
    let st = inspect(&d, "sig")["State"].clone();
    assert_eq!((st["Status"].as_str(), st["ExitCode"].as_i64()), (Some("exited"), Some(42)), "{st}");
    assert!(d.docker(&["logs", "sig"]).stdout.contains("got-term"));
    // Started again under the same runtime (runc's record of the last run is gone).
    d.docker(&["start", "sig"]).ok();
    assert!(runc_state(&d, "debrunc", &id_of(&d, "sig")).is_some_and(|s| s["status"] == "running"));
    // restart: the last run's shim deletes runc's record before the next one creates it
    // again under the same id (the start waits for that shim), so the new run stays.
    let id = id_of(&d, "sig");
    for _ in 0..3 {
        d.docker(&["restart", "-t", "1", "sig"]).ok();
    }
    std::thread::sleep(Duration::from_millis(500));
    let st = inspect(&d, "sig")["State"].clone();
    let state = runc_state(&d, "debrunc", &id).expect("runc knows the restarted container");
    assert_eq!(
        (&st["Status"], &state["status"], &state["pid"]),
        (&Value::from("running"), &Value::from("running"), &st["Pid"])
    );
    // rm -f of a running container: killed, its runc state and its cgroup gone.
    d.docker(&["rm", "-f", "sig"]).ok();
    assert!(runc_forgets(&d, "debrunc", &id));
    let cgroup = format!("{}/{id}", d.cgroup_parent);
    assert!(wait_for(Duration::from_secs(10), || crate::harness::cgroup_dirs(&cgroup).is_empty()), "{cgroup} stays");
}

#[test]
fn runc_runtime_networking_limits_stats_and_update() {
    let d = daemon();
    let image = d.pull("library/busybox:latest");
    let out = d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "--runtime",
        "debrunc",
        "-p",
        "80",
        "--memory",
        "64m",
        "--pids-limit",
        "40",
        &image,
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    out.ok();
    let web = inspect(&d, "web");
    let id = web["Id"].as_str().unwrap_or_default().to_string();
    let port = web["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"].as_str().unwrap_or_default().to_string();
    let hostname = web["Config"]["Hostname"].as_str().unwrap_or_default().to_string();
    let ip = web["NetworkSettings"]["IPAddress"].as_str().unwrap_or_default().to_string();
    assert!(!ip.is_empty(), "{web}");
    let state = runc_state(&d, "debrunc", &id).expect("runc knows the container");
    assert_eq!(state["pid"], web["State"]["Pid"], "{state}");
    // The published port and the container's own address on the bridge.
    let body = crate::network::http_get(&format!("127.0.0.1:{port}"), "/hostname").expect("published port");
    assert!(body.contains("200 OK") && body.contains(&hostname), "{body}");
    let body = crate::network::http_get(&format!("{ip}:80"), "/hostname").expect("container address");
    assert!(body.contains(&hostname), "{body}");
    // Another container under wharf's own runtime reaches it by address.
    let out = d.docker(&["run", "--rm", &image, "wget", "-q", "-O", "-", &format!("http://{ip}/hostname")]);
    assert!(out.stdout.contains(&hostname), "{out}");

    // runc placed it in the cgroup wharf names, with the limits of the create.
    let pure_v2 = crate::cgroup_v2::host_is_pure_v2();
    let cg = |controller: &str, v1: &str, v2: &str| {
        let p = if pure_v2 {
            PathBuf::from("/sys/fs/cgroup").join(d.cgroup_parent.trim_start_matches('/')).join(&id).join(v2)
        } else {
            PathBuf::from("/sys/fs/cgroup")
                .join(controller)
                .join(d.cgroup_parent.trim_start_matches('/'))
                .join(&id)
                .join(v1)
        };
        std::fs::read_to_string(&p).unwrap_or_else(|e| format!("<{}: {e}>", p.display())).trim().to_string()
    };
    assert_eq!(cg("memory", "memory.limit_in_bytes", "memory.max"), (64u64 << 20).to_string());
    assert_eq!(cg("pids", "pids.max", "pids.max"), "40");
    let pid = web["State"]["Pid"].as_i64().unwrap_or(0);
    let procs = cg("pids", "cgroup.procs", "cgroup.procs");
    assert!(procs.lines().any(|l| l == pid.to_string()), "init {pid} not in the cgroup: {procs}");
    // stats read that cgroup; update writes it.
    let stats = d.docker(&["stats", "--no-stream", "--format", "{{.MemUsage}} {{.PIDs}}", "web"]);
    stats.ok();
    assert!(stats.stdout.contains("64MiB"), "{stats}");
    d.docker(&["update", "--memory", "96m", "--pids-limit", "30", "web"]).ok();
    assert_eq!(cg("memory", "memory.limit_in_bytes", "memory.max"), (96u64 << 20).to_string());
    assert_eq!(cg("pids", "pids.max", "pids.max"), "30");
    // top lists the cgroup's processes; cp reads through the init's mount namespace.
    d.docker(&["top", "web"]).ok().mentions(&["httpd -f -p 80"]);
    let out = d.docker(&["cp", "web:/etc/hostname", "-"]);
    assert!(out.ok().stdout.contains(&hostname), "{out}");
    d.docker(&["rm", "-f", "web"]).ok();
    assert!(crate::network::http_get(&format!("127.0.0.1:{port}"), "/hostname").is_err(), "the port outlived it");

    // A health check runs its command through runc's exec.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--runtime",
        "debrunc",
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "1s",
        &image,
        "sh",
        "-c",
        "touch /tmp/ok; exec sleep 1000",
    ])
    .ok();
    let healthy = wait_for(Duration::from_secs(20), || inspect(&d, "hc")["State"]["Health"]["Status"] == "healthy");
    assert!(healthy, "{}", inspect(&d, "hc")["State"]);
    d.docker(&["rm", "-f", "hc"]).ok();

    // The OOM killer's kill is reported as under wharf's own runtime: 137 and OOMKilled.
    let out = d.docker(&[
        "run",
        "--name",
        "oom",
        "--runtime",
        "debrunc",
        "-m",
        "16m",
        "--memory-swap",
        "16m",
        &image,
        "tail",
        "/dev/zero",
    ]);
    assert_eq!(out.code, 137, "{out}");
    assert_eq!(inspect(&d, "oom")["State"]["OOMKilled"], true, "{}", inspect(&d, "oom")["State"]);
    d.docker(&["rm", "oom"]).ok();
}

#[test]
fn runc_runtime_restart_policy_and_daemon_restart() {
    let mut d = daemon();
    let image = d.pull("library/busybox:latest");
    // on-failure:2: started three times in all, each under runc.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--runtime",
        "debrunc",
        "--restart",
        "on-failure:2",
        &image,
        "sh",
        "-c",
        "echo run; exit 1",
    ])
    .ok();
    let done = wait_for(Duration::from_secs(30), || {
        let st = inspect(&d, "flaky");
        st["RestartCount"] == 2 && st["State"]["Status"] == "exited"
    });
    assert!(done, "{}", inspect(&d, "flaky"));
    assert_eq!(d.docker(&["logs", "flaky"]).stdout.matches("run").count(), 3);
    assert_eq!(inspect(&d, "flaky")["State"]["ExitCode"], 1);
    // Restarted by the policy, it runs under runc again (its file system keeps the mark).
    let script = "if [ -f /ran ]; then exec sleep 1000; fi; touch /ran; exit 1";
    d.docker(&[
        "run",
        "-d",
        "--name",
        "once",
        "--runtime",
        "debrunc",
        "--restart",
        "on-failure:2",
        &image,
        "sh",
        "-c",
        script,
    ])
    .ok();
    let once = id_of(&d, "once");
    let rerun = wait_for(Duration::from_secs(30), || {
        let st = inspect(&d, "once");
        st["RestartCount"] == 1
            && st["State"]["Running"] == true
            && runc_state(&d, "debrunc", &once)
                .is_some_and(|s| s["status"] == "running" && s["pid"] == st["State"]["Pid"])
    });
    assert!(rerun, "{}", inspect(&d, "once"));

    // A running container outlives wharfd: its shim stays, and the new daemon adopts it.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "long",
        "--runtime",
        "debrunc",
        &image,
        "sh",
        "-c",
        "trap 'exit 7' TERM; while true; do sleep 0.1; done",
    ])
    .ok();
    let before = inspect(&d, "long")["State"]["Pid"].clone();
    let long = id_of(&d, "long");
    d.restart();
    let after = inspect(&d, "long");
    assert_eq!((after["State"]["Status"].as_str(), &after["State"]["Pid"]), (Some("running"), &before), "{after}");
    let state = runc_state(&d, "debrunc", &long).expect("runc still knows it");
    assert_eq!((&state["status"], &state["pid"]), (&Value::from("running"), &before), "{state}");
    d.docker(&["exec", "long", "echo", "still-here"]).ok().mentions(&["still-here"]);
    d.docker(&["stop", "long"]).ok();
    assert_eq!(inspect(&d, "long")["State"]["ExitCode"], 7);
    assert!(runc_forgets(&d, "debrunc", &id_of(&d, "long")));
    d.docker(&["rm", "-f", "flaky", "long", "once"]).ok();
}

/// `--add-runtime` and `--default-runtime` as dockerd's flags, and the settings dockerd refuses.
#[test]
fn runc_runtime_from_flags_as_the_default() {
    need_runc();
    let d = Daemon::start_with(DaemonOptions {
        extra_args: vec![
            "--add-runtime".into(),
            format!("flagrunc={RUNC}"),
            "--default-runtime".into(),
            "flagrunc".into(),
        ],
        ..Default::default()
    });
    let image = d.pull("library/busybox:latest");
    let info = d.docker(&["info", "--format", "{{.DefaultRuntime}}"]);
    assert_eq!(info.trimmed(), "flagrunc", "{info}");
    d.docker(&["run", "-d", "--name", "dflt", &image, "sleep", "100"]).ok();
    assert_eq!(inspect(&d, "dflt")["HostConfig"]["Runtime"], "flagrunc");
    assert!(runc_state(&d, "flagrunc", &id_of(&d, "dflt")).is_some_and(|s| s["status"] == "running"));
    // Wharf's own runtime by either of its names.
    for name in ["runc", "wharf"] {
        let out = d.docker(&["run", "--rm", "--runtime", name, &image, "echo", name]);
        out.ok();
        assert_eq!(out.trimmed(), name);
    }
    d.docker(&["rm", "-f", "dflt"]).ok();
    drop(d);

    // dockerd's refusals, in its words.
    for (args, json, want) in [
        (vec!["--add-runtime", "runc=/usr/sbin/runc"], None, "runtime name 'runc' is reserved"),
        (vec!["--add-runtime", "noequals"], None, "invalid runtime argument: noequals"),
        (vec!["--default-runtime", "nosuch"], None, "specified default runtime 'nosuch' does not exist"),
        (vec![], Some(r#"{"runtimes": {"wharf": {"path": "/usr/sbin/runc"}}}"#), "runtime name 'wharf' is reserved"),
        (
            vec![],
            Some(r#"{"runtimes": {"x": {"runtimeType": "io.containerd.runsc.v1"}}}"#),
            "containerd shims are not supported",
        ),
    ] {
        let opts = DaemonOptions {
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            config_json: json.map(str::to_string),
            ..Default::default()
        };
        match Daemon::try_start(opts) {
            Ok(_) => panic!("wharfd started with {args:?} {json:?}"),
            Err(e) => assert!(e.log.contains(want), "{want:?} not in:\n{}", e.log),
        }
    }
}

/// The same requests to dockerd 20.10 with the same runtimes: exit codes, the words of the
/// errors, and what inspect and info say of runtimes.
#[test]
fn runc_runtime_answers_as_dockerd() {
    need_runc();
    let docker = crate::dockerd::Dockerd::start_with_args(
        &[&crate::harness::registry().addr],
        &["--add-runtime", &format!("debrunc={RUNC}"), "--add-runtime", "ghost=/nonexistent/runtime"],
    )
    .unwrap_or_else(|e| panic!("private dockerd: {e}"));
    let d = daemon();
    let image = d.pull("library/busybox:latest");
    docker.cli(&["pull", &image]).ok();

    // Each case: the arguments after `run --rm --network none`, the exit code both give and
    // the words both say.
    let cases: &[(&[&str], i32, &str)] = &[
        (&["--runtime", "nosuch", &image, "true"], 125, "Unknown runtime specified nosuch"),
        (&["--runtime", "debrunc", &image, "nosuch"], 127, "exec: \"nosuch\": executable file not found in $PATH"),
        (&["--runtime", "debrunc", &image, "/etc"], 126, "exec: \"/etc\": permission denied"),
        (&["--runtime", "debrunc", &image, "/nonexistent"], 127, "no such file or directory"),
        (&["--runtime", "ghost", &image, "true"], 127, "fork/exec /nonexistent/runtime: no such file or directory"),
        (&["--runtime", "debrunc", &image, "sh", "-c", "echo hi; exit 3"], 3, "hi"),
    ];
    for (args, code, words) in cases {
        let full = [&["run", "--rm", "--network", "none"][..], args].concat();
        for (who, out) in [("dockerd", docker.cli(&full)), ("wharfd", d.docker(&full))] {
            assert_eq!(out.code, *code, "{who}: {out}");
            out.mentions(&[words]);
        }
    }
    // inspect names the runtime given, or the default (runc for both).
    for (args, want) in [(vec!["--runtime", "debrunc"], "debrunc"), (vec![], "runc")] {
        let create = [&["create", "--network", "none"][..], &args, &[image.as_str(), "true"]].concat();
        let (a, b) = (docker.cli(&create), d.docker(&create));
        a.ok();
        b.ok();
        let ra = docker.cli(&["inspect", "-f", "{{.HostConfig.Runtime}}", a.trimmed()]);
        let rb = d.docker(&["inspect", "-f", "{{.HostConfig.Runtime}}", b.trimmed()]);
        assert_eq!((ra.trimmed(), rb.trimmed()), (want, want));
        docker.cli(&["rm", a.trimmed()]).ok();
        d.docker(&["rm", b.trimmed()]).ok();
    }
    // Both list every runtime with its path and say runc is the default.
    for (who, out) in [
        ("dockerd", docker.cli(&["info", "--format", "{{json .Runtimes}} {{.DefaultRuntime}}"])),
        ("wharfd", d.docker(&["info", "--format", "{{json .Runtimes}} {{.DefaultRuntime}}"])),
    ] {
        out.ok();
        let (list, default) = out.trimmed().rsplit_once(' ').unwrap_or_default();
        let list: Value = serde_json::from_str(list).unwrap_or_default();
        assert_eq!(default, "runc", "{who}: {out}");
        assert_eq!(list["ghost"]["path"], "/nonexistent/runtime", "{who}: {out}");
        assert!(list["runc"]["path"].is_string(), "{who}: {out}");
    }
}

/// SIGHUP reloads the runtimes, as dockerd does: a new one is usable at once, a running
/// container of a removed one keeps running and can be stopped.
#[test]
fn runc_runtimes_reload_on_sighup() {
    let d = daemon();
    let image = d.pull("library/busybox:latest");
    d.docker(&["run", "-d", "--name", "kept", "--runtime", "debrunc", &image, "sleep", "1000"]).ok();
    let json = format!(r#"{{"runtimes": {{"newrunc": {{"path": "{RUNC}"}}}}, "default-runtime": "newrunc"}}"#);
    std::fs::write(d.dir.join("daemon.json"), json).expect("rewrite daemon.json");
    let mut hup = Command::new("kill");
    hup.args(["-HUP", &d.pid().expect("wharfd runs").to_string()]);
    run_cmd(hup, Duration::from_secs(10)).ok();
    let info = || d.docker(&["info", "--format", "{{.DefaultRuntime}}"]).trimmed().to_string();
    assert!(wait_for(Duration::from_secs(10), || info() == "newrunc"), "{}", d.log_text());
    d.docker(&["run", "-d", "--name", "fresh", &image, "sleep", "1000"]).ok();
    assert!(runc_state(&d, "newrunc", &id_of(&d, "fresh")).is_some_and(|s| s["status"] == "running"));
    d.docker(&["run", "--rm", "--runtime", "debrunc", &image, "true"])
        .code_is(125)
        .mentions(&["Unknown runtime specified debrunc"]);
    d.docker(&["exec", "kept", "true"]).ok();
    d.docker(&["stop", "-t", "1", "kept"]).ok();
    d.docker(&["rm", "-f", "kept", "fresh"]).ok();
}

/// A shim killed while its container runs under runc: the container ends as under wharf's
/// own runtime, and `rm` takes runc's record of it too (the shim could not `delete` it), so
/// the runtime's state dir keeps nothing of removed containers.
#[test]
fn runc_runtime_shim_killed_then_rm_leaves_no_runc_state() {
    let d = daemon();
    let image = d.pull("library/busybox:latest");
    d.docker(&["run", "-d", "--name", "orphan", "--runtime", "debrunc", &image, "sleep", "1000"]).ok();
    let id = id_of(&d, "orphan");
    let pid = inspect(&d, "orphan")["State"]["Pid"].as_i64().unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let shim: i32 = stat.rsplit_once(") ").and_then(|(_, r)| r.split(' ').nth(1)?.parse().ok()).unwrap_or(0);
    assert!(shim > 1, "no shim for {pid}: {stat}");
    // SAFETY: kill has no memory effects; `shim` is the container's shim, found just above.
    unsafe { libc::kill(shim, libc::SIGKILL) };
    assert!(wait_for(Duration::from_secs(10), || inspect(&d, "orphan")["State"]["Running"] == false));
    // runc's record outlives the killed shim (its directory: `runc state` of a container whose
    // init is a zombie nobody reaps does not always answer).
    let record = d.exec_root.join("runtime-debrunc").join(&id);
    assert!(record.join("state.json").exists(), "runc's record should outlive the killed shim");
    d.docker(&["rm", "-f", "orphan"]).ok();
    assert!(!record.exists(), "runc's record of {id} stays");
    let alive = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // A zombie (state Z) waits for whoever adopted it to reap it; it runs no more.
        stat.rsplit_once(") ").is_some_and(|(_, r)| !r.starts_with('Z'))
    };
    assert!(wait_for(Duration::from_secs(5), || !alive()), "the container's init outlived rm -f");
}
