//! Restart policies (`--restart`): on-failure with a maximum, always after the process dies,
//! no restart after a user's stop, back-off, `restart` events, bad policies refused, and the
//! policies applied again when wharfd starts, also after a (simulated) host reboot; and
//! `restart` itself, whose new run must outlive the old run's cleanup.

use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::harness::{cgroup_dirs, leaked_processes, mounts_under, pid_alive, registry, wait_for, Cli, Daemon};

fn busybox(d: &Daemon, cli: Cli) -> String {
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    image
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn pid_of(d: &Daemon, cli: Cli, name: &str) -> i64 {
    d.inspect(cli, name)["State"]["Pid"].as_i64().unwrap_or(0)
}

/// Waits until the container runs with a pid other than `old`; returns the new pid.
#[track_caller]
fn wait_new_pid(d: &Daemon, cli: Cli, name: &str, old: i64) -> i64 {
    let mut pid = 0;
    let ok = wait_for(Duration::from_secs(20), || {
        let info = d.inspect(cli, name);
        pid = info["State"]["Pid"].as_i64().unwrap_or(0);
        info["State"]["Running"] == true && pid > 0 && pid != old
    });
    assert!(ok, "{name} was not restarted: {}", d.inspect(cli, name));
    pid
}

// Regression: the previous run's shim, still killing what was left in the container's
// cgroup after it had reported the exit, SIGKILLed the new run's init (exit 137 a fraction of
// a second after `restart`, seen about one restart in four).
fn restart_survives_the_previous_runs_cleanup(cli: Cli) {
    let d = Daemon::start();
    let image = busybox(&d, cli);
    // `sleep` as pid 1 ignores SIGTERM: each restart waits its second and SIGKILLs it.
    d.cli(cli, &["run", "-d", "--name", "again", &image, "sleep", "300"]).ok();
    for round in 0..6 {
        let old = pid_of(&d, cli, "again");
        d.cli(cli, &["restart", "-t", "1", "again"]).ok();
        let out = d.cli(cli, &["exec", "again", "true"]);
        assert_eq!(out.code, 0, "round {round}: exec right after the restart: {out}");
        std::thread::sleep(Duration::from_millis(400));
        let info = d.inspect(cli, "again");
        assert_eq!(info["State"]["Running"], true, "round {round}: the new run died: {}", info["State"]);
        assert_ne!(info["State"]["Pid"].as_i64().unwrap_or(0), old, "round {round}");
    }
    d.cli(cli, &["rm", "-f", "again"]).ok();
}
both!(restart_survives_the_previous_runs_cleanup);

fn on_failure_stops_after_the_maximum(cli: Cli) {
    let d = Daemon::start();
    let image = busybox(&d, cli);
    let since = now_secs().to_string();
    d.cli(cli, &["run", "-d", "--name", "flaky", "--restart", "on-failure:2", &image, "sh", "-c", "echo try; exit 3"])
        .ok();
    let mut last = Value::Null;
    let done = wait_for(Duration::from_secs(20), || {
        last = d.inspect(cli, "flaky");
        last["RestartCount"] == 2 && last["State"]["Status"] == "exited"
    });
    assert!(done, "on-failure:2 did not end after two restarts: {last}");
    assert_eq!(last["State"]["ExitCode"], 3, "{last}");
    assert_eq!(last["HostConfig"]["RestartPolicy"]["Name"], "on-failure", "{last}");
    assert_eq!(last["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 2, "{last}");
    // Stays exited: no third restart.
    std::thread::sleep(Duration::from_millis(1500));
    let info = d.inspect(cli, "flaky");
    assert_eq!(info["RestartCount"], 2, "{info}");
    let out = d.cli(cli, &["logs", "flaky"]);
    assert_eq!(out.ok().stdout.matches("try").count(), 3, "{out}");

    let until = (now_secs() + 1).to_string();
    std::thread::sleep(Duration::from_millis(1100));
    let out = d.cli(
        cli,
        &["events", "--since", &since, "--until", &until, "--filter", "container=flaky", "--format", "{{json .}}"],
    );
    out.ok();
    let actions: Vec<String> = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|e| e["Action"].as_str().map(str::to_string))
        .filter(|a| a == "restart" || a == "die")
        .collect();
    assert_eq!(actions, ["die", "restart", "die", "restart", "die"], "{out}");

    // A success does not call for a restart under on-failure.
    d.cli(cli, &["run", "-d", "--name", "fine", "--restart", "on-failure", &image, "true"]).ok();
    let info = d.wait_exited(cli, "fine");
    std::thread::sleep(Duration::from_millis(500));
    let info2 = d.inspect(cli, "fine");
    assert_eq!(info2["RestartCount"], 0, "{info} {info2}");
    d.cli(cli, &["rm", "-f", "flaky", "fine"]).ok();
}
both!(on_failure_stops_after_the_maximum);

fn always_restarts_a_killed_process_but_not_a_stopped_one(cli: Cli) {
    let d = Daemon::start();
    let image = busybox(&d, cli);
    d.cli(cli, &["run", "-d", "--name", "phoenix", "--restart", "always", &image, "sleep", "1000"]).ok();
    let pid = pid_of(&d, cli, "phoenix");
    assert!(pid > 0, "no pid");
    // Killed from outside (not by the user's kill): restarted.
    // SAFETY: kill(2) on a pid the test just read from inspect.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    let pid2 = wait_new_pid(&d, cli, "phoenix", pid);
    let info = d.inspect(cli, "phoenix");
    assert_eq!(info["RestartCount"], 1, "{info}");
    assert_eq!(info["HostConfig"]["RestartPolicy"]["Name"], "always", "{info}");

    // A stop by the user is final.
    d.cli(cli, &["stop", "-t", "1", "phoenix"]).ok();
    std::thread::sleep(Duration::from_millis(1000));
    let info = d.inspect(cli, "phoenix");
    assert_eq!(info["State"]["Status"], "exited", "{info}");
    assert!(!pid_alive(pid2), "{pid2} still alive");

    // So is a kill by the user; a start resets the count.
    d.cli(cli, &["start", "phoenix"]).ok();
    let info = d.inspect(cli, "phoenix");
    assert_eq!(info["RestartCount"], 0, "{info}");
    d.cli(cli, &["kill", "phoenix"]).ok();
    std::thread::sleep(Duration::from_millis(1000));
    let info = d.inspect(cli, "phoenix");
    assert_eq!(info["State"]["Status"], "exited", "{info}");
    d.cli(cli, &["rm", "phoenix"]).ok();
}
both!(always_restarts_a_killed_process_but_not_a_stopped_one);

fn backoff_doubles(cli: Cli) {
    let d = Daemon::start();
    let image = busybox(&d, cli);
    let t0 = Instant::now();
    d.cli(cli, &["run", "-d", "--name", "crashy", "--restart", "always", &image, "false"]).ok();
    // Waits of 100, 200, 400, 800, 1600 ms: five restarts take at least 3.1 s.
    let mut last = Value::Null;
    let done = wait_for(Duration::from_secs(20), || {
        last = d.inspect(cli, "crashy");
        last["RestartCount"].as_u64().unwrap_or(0) >= 5
    });
    assert!(done, "{last}");
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(3000), "five restarts in {took:?}: no back-off");
    assert!(took < Duration::from_secs(12), "five restarts took {took:?}");
    // ps shows it (running or restarting) without -a; stop ends the cycle even between restarts.
    let out = d.cli(cli, &["ps"]);
    assert!(out.ok().stdout.contains("crashy"), "{out}");
    d.cli(cli, &["stop", "-t", "1", "crashy"]).ok();
    let info = d.inspect(cli, "crashy");
    let count = info["RestartCount"].as_u64().unwrap_or(0);
    std::thread::sleep(Duration::from_secs(4));
    let info = d.inspect(cli, "crashy");
    assert_eq!(info["State"]["Status"], "exited", "{info}");
    assert_eq!(info["RestartCount"].as_u64().unwrap_or(0), count, "restarted after stop: {info}");
    d.cli(cli, &["rm", "crashy"]).ok();
}
both!(backoff_doubles);

/// `rm` of a container its policy is about to restart fails as for a running one (dockerd's
/// words); `rm -f` removes it and no restart brings it back.
fn rm_of_a_restarting_container_needs_force(cli: Cli) {
    let d = Daemon::start();
    let image = busybox(&d, cli);
    d.cli(cli, &["run", "-d", "--name", "crashy", "--restart", "always", &image, "false"]).ok();
    // After four restarts the next waits 1.6 s: long enough to find it between two.
    let mut last = Value::Null;
    let between = wait_for(Duration::from_secs(20), || {
        last = d.inspect(cli, "crashy");
        last["RestartCount"].as_u64().unwrap_or(0) >= 4 && last["State"]["Restarting"] == true
    });
    assert!(between, "never seen restarting: {last}");
    let out = d.cli(cli, &["rm", "crashy"]);
    out.fails().mentions(&["You cannot remove a", "Stop the container before attempting removal or force remove"]);
    d.cli(cli, &["rm", "-f", "crashy"]).ok();
    std::thread::sleep(Duration::from_secs(3));
    let out = d.cli(cli, &["ps", "-aq"]);
    assert_eq!(out.ok().trimmed(), "", "the container came back: {out}");
}
both!(rm_of_a_restarting_container_needs_force);

fn bad_policies_are_refused(cli: Cli) {
    let d = Daemon::start();
    let image = busybox(&d, cli);
    d.cli(cli, &["create", "--restart", "sometimes", &image, "true"]).fails().mentions(&["sometimes"]);
    d.cli(cli, &["create", "--restart", "always:3", &image, "true"]).fails().mentions(&["retry count"]);
    d.cli(cli, &["create", "--restart", "always", "--rm", &image, "true"]).fails();
    let out = d.cli(cli, &["ps", "-aq"]);
    assert_eq!(out.ok().trimmed(), "", "{out}");
}
both!(bad_policies_are_refused);

/// At daemon start: `always` starts even after a user's stop, `unless-stopped` only when the
/// user did not stop it; `no` stays down.
#[test]
fn policies_hold_across_a_daemon_restart() {
    let mut d = Daemon::start();
    let image = busybox(&d, Cli::Wharf);
    for (name, policy) in [("aa", "always"), ("u1", "unless-stopped"), ("u2", "unless-stopped"), ("nn", "no")] {
        d.wharf(&["run", "-d", "--name", name, "--restart", policy, &image, "sleep", "1000"]).ok();
    }
    d.wharf(&["stop", "-t", "1", "aa", "u2", "nn"]).ok();
    let u1 = pid_of(&d, Cli::Wharf, "u1");
    d.kill9();
    // SAFETY: kill(2) on a pid the test read from inspect.
    unsafe {
        libc::kill(u1 as i32, libc::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(300));
    d.restart();
    wait_new_pid(&d, Cli::Wharf, "aa", 0);
    wait_new_pid(&d, Cli::Wharf, "u1", u1);
    std::thread::sleep(Duration::from_millis(500));
    for name in ["u2", "nn"] {
        let info = d.inspect(Cli::Wharf, name);
        assert_eq!(info["State"]["Status"], "exited", "{name}: {info}");
    }
    d.wharf(&["rm", "-f", "aa", "u1", "u2", "nn"]).ok();
}

/// What a host reboot does to a daemon's world: every process gone (wharfd, shims,
/// containers), the runtime state under the exec root gone (it lives on a tmpfs like /run),
/// network namespaces, cgroups and the bridge gone. The data root stays.
fn simulate_reboot(d: &mut Daemon) {
    d.kill9();
    let roots = [d.data_root.clone(), d.exec_root.clone()];
    for _ in 0..20 {
        let procs = leaked_processes(&roots, &d.cgroup_parent);
        if procs.is_empty() {
            break;
        }
        for (pid, _) in procs {
            // SAFETY: kill(2) on a process that belongs to this test's daemon.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut mounts = mounts_under(&d.exec_root);
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    for m in mounts {
        let c = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: umount2 on a path of this test's exec root, with a valid C string.
        unsafe {
            libc::umount2(c.as_ptr(), libc::MNT_DETACH);
        }
    }
    for entry in std::fs::read_dir(&d.exec_root).unwrap().flatten() {
        let _ = std::fs::remove_dir_all(entry.path());
    }
    fn rmdir_tree(dir: &std::path::Path) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&e.path());
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
    for dir in cgroup_dirs(&d.cgroup_parent) {
        rmdir_tree(&dir);
    }
    let _ = std::process::Command::new("ip").args(["link", "del", &d.bridge]).status();
}

/// After a host reboot wharfd starts what should run: `always` and `unless-stopped` that the
/// user did not stop, on a fresh network namespace with a working bridge; the rest is
/// reported exited.
#[test]
fn policies_hold_across_a_host_reboot() {
    let mut d = Daemon::start();
    let image = busybox(&d, Cli::Wharf);
    for (name, policy) in [("aa", "always"), ("u1", "unless-stopped"), ("u2", "unless-stopped"), ("nn", "no")] {
        d.wharf(&["run", "-d", "--name", name, "--restart", policy, &image, "sleep", "1000"]).ok();
    }
    let web = ["run", "-d", "--name", "web", "--restart", "always", "-p", "127.0.0.1::80", &image];
    d.wharf(&[&web[..], &["httpd", "-f", "-p", "80", "-h", "/etc"]].concat()).ok();
    d.wharf(&["stop", "-t", "1", "u2"]).ok();
    let before: Vec<i64> = ["aa", "u1", "nn", "web"].iter().map(|n| pid_of(&d, Cli::Wharf, n)).collect();
    simulate_reboot(&mut d);
    for pid in &before {
        assert!(!pid_alive(*pid), "pid {pid} survived the simulated reboot");
    }
    d.restart();
    for (name, old) in [("aa", before[0]), ("u1", before[1]), ("web", before[3])] {
        wait_new_pid(&d, Cli::Wharf, name, old);
    }
    for name in ["u2", "nn"] {
        let info = d.inspect(Cli::Wharf, name);
        assert_eq!(info["State"]["Status"], "exited", "{name}: {info}");
    }
    // The restarted containers work: exec, and the published port answers from the host.
    d.wharf(&["exec", "aa", "true"]).ok();
    let port = d.wharf(&["port", "web", "80"]).ok().trimmed().to_string();
    let addr = port.lines().next().unwrap_or_default().to_string();
    let answered = wait_for(Duration::from_secs(10), || {
        std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(1)).is_ok_and(|mut s| {
            use std::io::{Read, Write};
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.write_all(b"GET /hostname HTTP/1.0\r\n\r\n");
            let mut body = String::new();
            let _ = s.read_to_string(&mut body);
            body.contains("200")
        })
    });
    assert!(answered, "published port {addr} did not answer after the reboot");
    d.wharf(&["rm", "-f", "aa", "u1", "u2", "nn", "web"]).ok();
}
