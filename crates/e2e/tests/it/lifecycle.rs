//! Detached containers: ps, logs, inspect, stop, kill, start, rm, names, and a daemon that is
//! killed and restarted under running containers.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{pid_alive, registry, wait_for, Cli, Daemon};

fn run_detached(d: &Daemon, cli: Cli, name: &str, cmd: &[&str]) -> String {
    let image = registry().image("library/busybox:latest");
    let mut args = vec!["run", "-d", "--name", name, image.as_str()];
    args.extend_from_slice(cmd);
    let out = d.cli(cli, &args);
    out.ok();
    let id = out.trimmed().to_string();
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "run -d should print the full container id:\n{out}"
    );
    id
}

fn logs_contain(d: &Daemon, cli: Cli, name: &str, needle: &str) -> bool {
    wait_for(Duration::from_secs(10), || d.cli(cli, &["logs", name]).all().contains(needle))
}

fn detached_lifecycle(cli: Cli) {
    let d = Daemon::start();
    d.cli(cli, &["pull", &registry().image("library/busybox:latest")]).ok();
    let id = run_detached(&d, cli, "sleeper", &["sh", "-c", "echo started; sleep 1000"]);

    let ps = d.cli(cli, &["ps"]);
    ps.ok();
    assert!(
        ps.stdout.lines().any(|l| l.starts_with(&id[..12]) && l.ends_with("sleeper")),
        "ps does not show sleeper:\n{ps}"
    );
    let q = d.cli(cli, &["ps", "-q"]);
    assert_eq!(q.ok().trimmed(), &id[..12], "{q}");

    assert!(logs_contain(&d, cli, "sleeper", "started"), "no log line");

    let info = d.inspect(cli, "sleeper");
    assert_eq!(info["Id"], id.as_str(), "{info}");
    assert_eq!(info["Name"], "/sleeper", "{info}");
    assert_eq!(info["State"]["Running"], true, "{info}");
    assert_eq!(info["State"]["Status"], "running", "{info}");
    let pid = info["State"]["Pid"].as_i64().unwrap_or(0);
    assert!(pid > 0 && pid_alive(pid), "State.Pid {pid} is not a live process");
    assert_eq!(info["Config"]["Cmd"], serde_json::json!(["sh", "-c", "echo started; sleep 1000"]), "{info}");
    // The container's init is in its own pid namespace.
    let my_ns = std::fs::read_link("/proc/self/ns/pid").ok();
    let its_ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    assert_ne!(my_ns, its_ns, "the container shares the host pid namespace");

    // sh as pid 1 ignores SIGTERM: stop -t 1 must SIGKILL after a second.
    let t0 = Instant::now();
    d.cli(cli, &["stop", "-t", "1", "sleeper"]).ok();
    assert!(t0.elapsed() < Duration::from_secs(10), "stop -t 1 took {:?}", t0.elapsed());
    let info = d.inspect(cli, "sleeper");
    assert_eq!(info["State"]["Running"], false, "{info}");
    assert_eq!(info["State"]["ExitCode"], 137, "{info}");
    assert!(!pid_alive(pid), "process {pid} survived stop");
    let ps = d.cli(cli, &["ps", "-q"]);
    assert_eq!(ps.ok().trimmed(), "", "{ps}");
    let ps = d.cli(cli, &["ps", "-aq"]);
    assert_eq!(ps.ok().trimmed(), &id[..12], "{ps}");

    // start again, then kill.
    d.cli(cli, &["start", "sleeper"]).ok();
    let info = d.inspect(cli, "sleeper");
    assert_eq!(info["State"]["Running"], true, "{info}");
    d.cli(cli, &["kill", "sleeper"]).ok();
    let info = d.wait_exited(cli, "sleeper");
    assert_eq!(info["State"]["ExitCode"], 137, "{info}");

    // rm of a stopped container; then it is gone.
    d.cli(cli, &["rm", "sleeper"]).ok();
    d.cli(cli, &["inspect", "sleeper"]).fails().mentions(&["No such"]);

    // rm of a running container needs -f.
    let runner = run_detached(&d, cli, "runner", &["sleep", "1000"]);
    d.cli(cli, &["rm", "runner"]).fails().mentions(&["You cannot remove a running container", &runner]);
    d.cli(cli, &["rm", "-f", "runner"]).ok();
    let ps = d.cli(cli, &["ps", "-aq"]);
    assert_eq!(ps.ok().trimmed(), "", "{ps}");
}
both!(detached_lifecycle);

fn name_clash_names_the_holder(cli: Cli) {
    let d = Daemon::start();
    d.cli(cli, &["pull", &registry().image("library/busybox:latest")]).ok();
    let id = run_detached(&d, cli, "taken", &["sleep", "1000"]);
    let image = registry().image("library/busybox:latest");
    let out = d.cli(cli, &["run", "-d", "--name", "taken", &image, "true"]);
    out.fails().mentions(&["already in use", &id]);
    // Still exactly one container.
    let ps = d.cli(cli, &["ps", "-aq"]);
    assert_eq!(ps.ok().trimmed(), &id[..12], "{ps}");
    d.cli(cli, &["rm", "-f", "taken"]).ok();
}
both!(name_clash_names_the_holder);

fn logs_tail_and_timestamps(cli: Cli) {
    let d = Daemon::start();
    d.cli(cli, &["pull", &registry().image("library/busybox:latest")]).ok();
    run_detached(&d, cli, "talker", &["sh", "-c", "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three"]);
    let info = d.wait_exited(cli, "talker");
    assert_eq!(info["State"]["ExitCode"], 0, "{info}");

    let out = d.cli(cli, &["logs", "talker"]);
    out.ok();
    assert_eq!(out.stdout, "one\nthree\n", "{out}");
    assert_eq!(out.stderr, "two\n", "{out}");

    let out = d.cli(cli, &["logs", "--tail", "1", "talker"]);
    assert_eq!(out.ok().all().trim(), "three", "{out}");

    let out = d.cli(cli, &["logs", "-t", "talker"]);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for (line, text) in lines.iter().zip(["one", "three"]) {
        let (ts, rest) = line.split_once(' ').unwrap_or(("", ""));
        assert_eq!(rest, text, "{out}");
        // RFC 3339 with nanoseconds, as docker: 2024-01-02T03:04:05.123456789Z
        assert!(
            ts.len() >= 20 && ts.as_bytes()[4] == b'-' && ts.as_bytes()[10] == b'T' && ts.ends_with('Z'),
            "not a timestamp: {ts:?}\n{out}"
        );
    }
    d.cli(cli, &["rm", "talker"]).ok();
}
both!(logs_tail_and_timestamps);

#[test]
fn containers_survive_a_daemon_kill() {
    let mut d = Daemon::start();
    d.pull("library/busybox:latest");
    let id = run_detached(&d, Cli::Wharf, "survivor", &["sh", "-c", "echo before; sleep 1000"]);
    run_detached(&d, Cli::Wharf, "exited", &["sh", "-c", "echo exit-log; exit 7"]);
    let info = d.wait_exited(Cli::Wharf, "exited");
    assert_eq!(info["State"]["ExitCode"], 7, "{info}");
    let pid = d.inspect(Cli::Wharf, "survivor")["State"]["Pid"].as_i64().unwrap_or(0);
    assert!(pid > 0 && pid_alive(pid), "no live pid for survivor");

    d.kill9();
    std::thread::sleep(Duration::from_millis(300));
    assert!(pid_alive(pid), "the container died with wharfd");
    // It keeps logging while no daemon runs.
    d.restart();

    let info = d.inspect(Cli::Wharf, "survivor");
    assert_eq!(info["Id"], id.as_str(), "{info}");
    assert_eq!(info["State"]["Running"], true, "{info}");
    assert_eq!(info["State"]["Pid"], pid, "{info}");
    assert!(logs_contain(&d, Cli::Wharf, "survivor", "before"));

    let info = d.inspect(Cli::Wharf, "exited");
    assert_eq!(info["State"]["Running"], false, "{info}");
    assert_eq!(info["State"]["ExitCode"], 7, "{info}");
    assert!(logs_contain(&d, Cli::Wharf, "exited", "exit-log"));

    d.wharf(&["stop", "-t", "1", "survivor"]).ok();
    assert!(!pid_alive(pid), "process {pid} survived stop after restart");
    let info = d.inspect(Cli::Wharf, "survivor");
    assert_eq!(info["State"]["ExitCode"], 137, "{info}");
}

#[test]
fn a_container_that_exits_while_the_daemon_is_down_keeps_its_exit_code() {
    let mut d = Daemon::start();
    d.pull("library/busybox:latest");
    run_detached(&d, Cli::Wharf, "shortlived", &["sh", "-c", "sleep 2; echo done; exit 5"]);
    d.kill9();
    std::thread::sleep(Duration::from_secs(3));
    d.restart();
    let info = d.wait_exited(Cli::Wharf, "shortlived");
    assert_eq!(info["State"]["ExitCode"], 5, "{info}");
    assert!(logs_contain(&d, Cli::Wharf, "shortlived", "done"));
}

#[test]
fn inspect_unknown_container_fails() {
    let d = Daemon::start();
    let out = d.wharf(&["inspect", "no-such-container"]);
    out.fails().mentions(&["no-such-container"]);
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Array(vec![]));
    assert_eq!(v, Value::Array(vec![]), "{out}");
}
