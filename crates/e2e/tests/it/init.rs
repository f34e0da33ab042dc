//! `--init`: wharf's init is pid 1, forwards signals to the command (so `stop` is quick and a
//! shell's trap runs), reaps orphans, and the container exits with the command's status.

use std::time::{Duration, Instant};

use crate::harness::{registry, wait_for, Cli, Daemon};

fn init_forwards_and_reaps(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    let script = "trap 'echo got-term; exit 3' TERM; (sleep 0.1 &); while true; do sleep 0.2; done";
    d.cli(cli, &["run", "-d", "--init", "--name", "ini", &image, "sh", "-c", script]).ok();
    let info = d.inspect(cli, "ini");
    assert_eq!(info["HostConfig"]["Init"], true, "{info}");
    let ps = d.cli(cli, &["exec", "ini", "ps", "-o", "pid,args"]).ok().stdout.clone();
    let first = ps.lines().nth(1).unwrap_or("");
    assert!(first.trim_start().starts_with("1 ") && first.contains("/sbin/docker-init -- sh -c"), "{ps}");
    // The orphaned `sleep 0.1` was reparented to the init, which reaped it: no zombie left.
    let reaped = wait_for(Duration::from_secs(5), || {
        // A process of the glob may be gone before cat opens its file (cat itself, say).
        let stat =
            d.cli(cli, &["exec", "ini", "sh", "-c", "cat /proc/[0-9]*/stat 2>/dev/null; true"]).ok().stdout.clone();
        !stat.lines().any(|l| l.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
    });
    assert!(reaped, "a zombie was left in the container");
    // The init cannot be written from inside.
    d.cli(cli, &["exec", "ini", "sh", "-c", "echo x > /sbin/docker-init"]).fails();

    let t = Instant::now();
    d.cli(cli, &["stop", "ini"]).ok();
    assert!(t.elapsed() < Duration::from_secs(5), "stop took {:?}: SIGTERM was not forwarded", t.elapsed());
    let info = d.inspect(cli, "ini");
    assert_eq!(info["State"]["ExitCode"], 3, "{info}");
    let logs = d.cli(cli, &["logs", "ini"]).ok().stdout.clone();
    assert!(logs.contains("got-term"), "{logs}");

    // The exit status of the command comes through; a missing command is 127.
    d.cli(cli, &["run", "--rm", "--init", &image, "sh", "-c", "exit 7"]).code_is(7);
    d.cli(cli, &["run", "--rm", "--init", &image, "sh", "-c", "kill -KILL $$"]).code_is(137);
    d.cli(cli, &["rm", "-f", "ini"]).ok();
}
both!(init_forwards_and_reaps);

/// Containers with `--init` starting at once on a fresh daemon (compose's `--scale`): each one
/// gets the init, none fails writing it.
#[test]
fn init_containers_started_at_once() {
    let d = Daemon::start();
    let image = d.pull("library/busybox:latest");
    let outs: Vec<_> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| d.wharf(&["run", "--rm", "--init", &image, "sh", "-c", "cat /proc/1/cmdline"])))
            .collect();
        runs.into_iter().map(|r| r.join().expect("run thread")).collect()
    });
    for out in outs {
        out.ok().mentions(&["docker-init"]);
    }
}
