//! Lifecycle commands through the real docker CLI: create/start/wait, restart, stop of a
//! process that ignores SIGTERM, kill -s, --env-file, --entrypoint, inspect -f, and image
//! housekeeping (dangling images, rmi by short id, rmi of one tag).

use std::fs;
use std::time::{Duration, Instant};

use crate::harness::{registry, wait_for, Cli, Daemon, TempDir};

fn busybox(d: &Daemon) -> String {
    let image = registry().image("library/busybox:latest");
    d.docker(&["pull", &image]).ok();
    image
}

#[test]
fn create_start_wait_inspect_rm() {
    let d = Daemon::start();
    let image = busybox(&d);
    let out = d.docker(&["create", "--name", "waiter", &image, "sh", "-c", "sleep 1; exit 3"]);
    let id = out.ok().trimmed().to_string();
    assert_eq!(id.len(), 64, "{out}");
    let out = d.docker(&["inspect", "-f", "{{.State.Status}}", "waiter"]);
    assert_eq!(out.ok().trimmed(), "created", "{out}");
    let out = d.docker(&["start", "waiter"]);
    assert_eq!(out.ok().trimmed(), "waiter", "{out}");
    let out = d.docker(&["wait", "waiter"]);
    assert_eq!(out.ok().trimmed(), "3", "{out}");
    let out = d.docker(&["inspect", "-f", "{{.State.ExitCode}}", "waiter"]);
    assert_eq!(out.ok().trimmed(), "3", "{out}");
    d.docker(&["rm", "waiter"]).ok();

    // rm of a container that never ran.
    d.docker(&["create", "--name", "never", &image, "true"]).ok();
    let out = d.docker(&["rm", "never"]);
    assert_eq!(out.ok().trimmed(), "never", "{out}");
    let out = d.docker(&["ps", "-aq"]);
    assert_eq!(out.ok().trimmed(), "", "{out}");
}

#[test]
fn restart_gives_a_new_process() {
    let d = Daemon::start();
    let image = busybox(&d);
    d.docker(&["run", "-d", "--name", "again", &image, "sleep", "1000"]).ok();
    let before = d.inspect(Cli::Docker, "again");
    let t0 = Instant::now();
    let out = d.docker(&["restart", "-t", "1", "again"]);
    assert_eq!(out.ok().trimmed(), "again", "{out}");
    assert!(t0.elapsed() < Duration::from_secs(10), "restart -t 1 took {:?}", t0.elapsed());
    let after = d.inspect(Cli::Docker, "again");
    assert_eq!(after["State"]["Running"], true, "{after}");
    assert_ne!(after["State"]["Pid"], before["State"]["Pid"], "{after}");
    assert_ne!(after["State"]["StartedAt"], before["State"]["StartedAt"], "{after}");
    assert_eq!(after["RestartCount"], 0, "docker restart is not a policy restart: {after}");
    d.docker(&["rm", "-f", "again"]).ok();
}

#[test]
fn stop_of_a_sleep_as_pid_1_kills_after_the_timeout() {
    let d = Daemon::start();
    let image = busybox(&d);
    d.docker(&["run", "-d", "--name", "stubborn", &image, "sleep", "1000"]).ok();
    // pid 1 of a pid namespace gets no signal it has no handler for: sleep ignores SIGTERM,
    // so stop sends SIGKILL after -t seconds and the exit code is 128 + 9.
    let t0 = Instant::now();
    let out = d.docker(&["stop", "-t", "1", "stubborn"]);
    assert_eq!(out.ok().trimmed(), "stubborn", "{out}");
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(10), "stop -t 1 took {took:?}");
    let out = d.docker(&["inspect", "-f", "{{.State.ExitCode}} {{.State.Status}}", "stubborn"]);
    assert_eq!(out.ok().trimmed(), "137 exited", "{out}");
    d.docker(&["rm", "stubborn"]).ok();
}

#[test]
fn kill_with_a_signal_the_shell_traps() {
    let d = Daemon::start();
    let image = busybox(&d);
    d.docker(&[
        "run",
        "-d",
        "--name",
        "trapper",
        &image,
        "sh",
        "-c",
        "trap 'echo got-usr1; exit 0' USR1; echo ready; while true; do sleep 0.1; done",
    ])
    .ok();
    assert!(
        wait_for(Duration::from_secs(10), || d.docker(&["logs", "trapper"]).stdout.contains("ready")),
        "the shell never said ready"
    );
    let out = d.docker(&["kill", "-s", "USR1", "trapper"]);
    assert_eq!(out.ok().trimmed(), "trapper", "{out}");
    let info = d.wait_exited(Cli::Docker, "trapper");
    assert_eq!(info["State"]["ExitCode"], 0, "{info}");
    let logs = d.docker(&["logs", "trapper"]);
    assert_eq!(logs.ok().stdout, "ready\ngot-usr1\n", "{logs}");
    d.docker(&["rm", "trapper"]).ok();
}

#[test]
fn run_with_env_file_and_entrypoint() {
    let d = Daemon::start();
    let image = busybox(&d);
    let tmp = TempDir::new("wharf-e2e-envfile");
    let file = tmp.0.join("app.env");
    fs::write(&file, "# a comment\n\nFROM_FILE=one\nSPACED=two words\n").expect("write env file");
    let file = file.to_string_lossy().into_owned();
    let out = d.docker(&["run", "--rm", "--env-file", &file, "-e", "FROM_FLAG=three", &image, "env"]);
    out.ok();
    for line in ["FROM_FILE=one", "SPACED=two words", "FROM_FLAG=three"] {
        assert!(out.stdout.lines().any(|l| l == line), "no {line}:\n{out}");
    }
    assert!(!out.stdout.contains("a comment"), "{out}");

    // --entrypoint replaces the image's entrypoint and drops its Cmd.
    let entry = registry().image("test/entrypoint:latest");
    d.docker(&["pull", &entry]).ok();
    let out = d.docker(&["run", "--rm", "--entrypoint", "echo", &entry, "replaced"]);
    assert_eq!(out.ok().trimmed(), "replaced", "{out}");
    let out = d.docker(&["run", "--rm", "--entrypoint", "/bin/echo", &entry]);
    assert_eq!(out.ok().stdout, "\n", "the image's Cmd must not be kept:\n{out}");
    let out = d.docker(&["run", "--rm", &entry]);
    assert_eq!(out.ok().trimmed(), "ep default", "{out}");
}

#[test]
fn dangling_images_rmi_by_short_id_and_untag() {
    let d = Daemon::start();
    let busybox = busybox(&d);
    let workdir = registry().image("test/workdir:latest");
    let entry = registry().image("test/entrypoint:latest");
    d.docker(&["pull", &workdir]).ok();
    d.docker(&["pull", &entry]).ok();
    let old = d.docker(&["images", "-q", &workdir]).ok().trimmed().to_string();
    assert_eq!(old.len(), 12, "images -q should print a short id");
    let out = d.docker(&["images", "-q", "--filter", "dangling=true"]);
    assert_eq!(out.ok().trimmed(), "", "{out}");

    // Moving the only tag of test/workdir to another image leaves it dangling.
    d.docker(&["tag", &entry, &workdir]).ok();
    let out = d.docker(&["images", "-q", "--filter", "dangling=true"]);
    assert_eq!(out.ok().trimmed(), old, "{out}");
    // The image keeps its repo digest, so the docker CLI names the repository and prints the
    // tag as <none> (docker/cli formatter/image.go: "<none> <none>" only without digests).
    let out = d.docker(&["images", "--filter", "dangling=true"]);
    out.ok();
    assert!(
        out.stdout.lines().any(|l| l.contains("test/workdir") && l.contains("<none>") && l.contains(&old)),
        "{out}"
    );
    let out = d.docker(&["images", "-q", "--filter", "dangling=false"]);
    assert!(!out.ok().stdout.contains(&old), "{out}");

    let out = d.docker(&["rmi", &old]);
    out.ok().mentions(&["Deleted: sha256:"]);
    d.docker(&["image", "inspect", &old]).fails();

    // A second tag: rmi of it only untags.
    d.docker(&["tag", &busybox, "extra/name:v1"]).ok();
    let out = d.docker(&["rmi", "extra/name:v1"]);
    out.ok();
    assert_eq!(out.trimmed(), "Untagged: extra/name:v1", "{out}");
    d.docker(&["image", "inspect", &busybox]).ok();
    d.docker(&["image", "inspect", "extra/name:v1"]).fails();
    let out = d.docker(&["run", "--rm", &busybox, "echo", "still-here"]);
    assert_eq!(out.ok().trimmed(), "still-here", "{out}");
}
