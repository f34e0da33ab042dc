//! wharfd's stop (shutdown-timeout, issue 19): a request in flight at SIGTERM is let finish
//! within shutdown-timeout, one that takes longer is cut and leaves what a crash leaves, and
//! open-ended streams (events, `logs -f`) do not hold the stop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::build::{base, spawn_build, wait_for_step_container, write};
use crate::harness::{Cli, Daemon, DaemonOptions, TempDir};

fn with_timeout(seconds: i64) -> DaemonOptions {
    DaemonOptions { config_json: Some(format!(r#"{{"shutdown-timeout": {seconds}}}"#)), ..Default::default() }
}

/// Waits up to `timeout` for a client to exit; its success, or `None` if it still runs.
fn client_exit(c: &mut Child, timeout: Duration) -> Option<bool> {
    crate::harness::wait_child(c, timeout).map(|s| s.success())
}

/// A daemon with `timeout`, a build of `tag` whose one step runs `sleep SECONDS`, and SIGTERM
/// once that step's container runs: the daemon, the context and the build's client.
fn sigterm_during_a_build(timeout: i64, seconds: u32, tag: &str) -> (Daemon, TempDir, Child) {
    let d = Daemon::start_with(with_timeout(timeout));
    let ctx = TempDir::new("drain-build");
    write(&ctx.0, "Dockerfile", &format!("FROM {}\nRUN sleep {seconds} && echo done > /done\n", base()));
    let client = spawn_build(&d, &ctx.0, tag);
    wait_for_step_container(&d, &format!("sleep {seconds}"));
    d.signal(libc::SIGTERM);
    (d, ctx, client)
}

#[test]
fn a_build_in_flight_at_sigterm_finishes_and_its_image_is_there_after_the_next_start() {
    let (mut d, _ctx, mut client) = sigterm_during_a_build(30, 3, "drained:1");
    assert_eq!(client_exit(&mut client, Duration::from_secs(60)), Some(true), "the build failed:\n{}", d.log_text());
    let status = d.wait_exit(Duration::from_secs(60));
    assert!(status.is_some_and(|s| s.success()), "wharfd did not exit cleanly: {status:?}\n{}", d.log_text());
    let log = d.log_text();
    assert!(log.contains("1 request(s) waited for, 1 finished, 0 cut"), "{log}");
    d.restart();
    d.docker(&["run", "--rm", "drained:1", "cat", "/done"]).ok().mentions(&["done"]);
}

#[test]
fn a_request_longer_than_shutdown_timeout_is_cut_and_the_next_start_is_clean() {
    let (mut d, ctx, mut client) = sigterm_during_a_build(1, 120, "cut:1");
    // Before the step would have finished (120 s): the timeout ended the wait, not the work.
    let status = d.wait_exit(Duration::from_secs(90));
    assert!(status.is_some(), "wharfd still runs 90 s after SIGTERM\n{}", d.log_text());
    let log = d.log_text();
    assert!(log.contains("1 request(s) waited for, 0 finished, 1 cut (shutdown-timeout passed)"), "{log}");
    assert_eq!(client_exit(&mut client, Duration::from_secs(30)), Some(false), "the cut build succeeded");
    // The harness checks, when the test ends, that no process, mount or cgroup was left.
    d.restart();
    assert!(!d.wharf(&["image", "inspect", "cut:1"]).success(), "a build cut by the stop was tagged");
    assert!(
        crate::harness::wait_for(Duration::from_secs(30), || d.wharf(&["ps", "-aq"]).stdout.trim().is_empty()),
        "the cut step's container outlived the restart: {}",
        d.wharf(&["ps", "-a"])
    );
    // The same build, shorter, works on what the cut left.
    write(&ctx.0, "Dockerfile", &format!("FROM {}\nRUN echo done > /done\n", base()));
    crate::build::build(&d, Cli::Docker, &ctx.0, &["-t", "cut:1"]).ok();
}

/// Spawns a client with its stdout piped; its lines come through the channel.
fn spawn_reading(d: &Daemon, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut cmd = d.command(Cli::Docker, args);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn docker");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

#[test]
fn events_and_logs_follow_clients_do_not_hold_the_stop() {
    let mut d = Daemon::start_with(with_timeout(60));
    let image = d.pull("library/busybox:latest");
    let id = d.docker(&["run", "-d", &image, "sh", "-c", "echo hello; sleep 600"]).ok().trimmed().to_string();
    // Each client shows it is connected by what it printed: past events, the first log line.
    let (mut events, events_out) = spawn_reading(&d, &["events", "--since", "0"]);
    let (mut logs, logs_out) = spawn_reading(&d, &["logs", "-f", &id]);
    assert!(events_out.recv_timeout(Duration::from_secs(30)).is_ok(), "docker events printed nothing");
    assert_eq!(logs_out.recv_timeout(Duration::from_secs(30)).ok().as_deref(), Some("hello"));
    let stopped = Instant::now();
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(60));
    assert!(status.is_some_and(|s| s.success()), "wharfd did not exit: {status:?}\n{}", d.log_text());
    assert!(stopped.elapsed() < Duration::from_secs(20), "the streams held the stop for {:?}", stopped.elapsed());
    assert!(d.log_text().contains("0 request(s) waited for"), "{}", d.log_text());
    assert!(client_exit(&mut events, Duration::from_secs(20)).is_some(), "docker events still runs");
    assert!(client_exit(&mut logs, Duration::from_secs(20)).is_some(), "docker logs -f still runs");
    // The container outlived the daemon, as always.
    d.restart();
    let ps = d.docker(&["ps", "-q", "--no-trunc"]);
    assert!(ps.ok().stdout.contains(&id), "{ps}");
}

#[test]
fn a_second_sigterm_ends_the_wait_at_once() {
    let mut d = Daemon::start_with(with_timeout(-1));
    let ctx = TempDir::new("drain-second");
    write(&ctx.0, "Dockerfile", &format!("FROM {}\nRUN sleep 120\n", base()));
    let mut client = spawn_build(&d, &ctx.0, "second:1");
    wait_for_step_container(&d, "sleep 120");
    d.signal(libc::SIGTERM);
    assert!(
        crate::harness::wait_for(Duration::from_secs(30), || d.log_text().contains("waiting for 1 API request")),
        "{}",
        d.log_text()
    );
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(60));
    assert!(status.is_some(), "wharfd ignored the second SIGTERM\n{}", d.log_text());
    assert!(d.log_text().contains("1 cut (second signal)"), "{}", d.log_text());
    let _ = client_exit(&mut client, Duration::from_secs(30));
    d.restart();
    assert!(!d.wharf(&["image", "inspect", "second:1"]).success());
}
