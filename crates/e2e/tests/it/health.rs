//! Healthchecks: `--health-*` flags and an image's HEALTHCHECK (through commit) run by the
//! daemon through exec; status, streak and log in inspect, `(healthy)` in ps, `ps --filter
//! health=`, `health_status` events, a probe killed at its timeout, `--no-healthcheck`.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::harness::{registry, wait_for, Cli, Daemon};

fn now_secs() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn health(d: &Daemon, cli: Cli, name: &str) -> Value {
    d.inspect(cli, name)["State"]["Health"].clone()
}

fn wait_status(d: &Daemon, cli: Cli, name: &str, want: &str) {
    let ok = wait_for(Duration::from_secs(20), || health(d, cli, name)["Status"] == want);
    assert!(ok, "{name} never became {want}: {}", health(d, cli, name));
}

fn filtered(d: &Daemon, cli: Cli, filter: &str) -> Vec<String> {
    let out = d.cli(cli, &["ps", "--filter", filter, "--format", "{{.Names}}"]).ok().stdout.clone();
    let mut names: Vec<String> = out.lines().map(str::to_string).collect();
    names.sort();
    names
}

fn healthchecks(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    let since = now_secs().to_string();
    let fast = ["--health-interval", "1s", "--health-retries", "2"];
    let run = |name: &str, extra: &[&str]| {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&image, "sleep", "120"]);
        d.cli(cli, &args).ok();
    };
    run("good", &[&["--health-cmd", "echo fine"][..], &fast[..]].concat());
    run("bad", &[&["--health-cmd", "echo failing; exit 1"][..], &fast[..]].concat());
    run(
        "slow",
        &["--health-cmd", "sleep 30", "--health-timeout", "300ms", "--health-interval", "1s", "--health-retries", "1"],
    );
    run("plain", &[]);

    // Before the first probe (one interval after the start) both are starting.
    let starting = filtered(&d, cli, "health=starting");
    assert!(starting.contains(&"good".to_string()), "{starting:?}");
    let ps = d.cli(cli, &["ps"]).ok().stdout.clone();
    assert!(ps.contains("(health: starting)"), "{ps}");

    wait_status(&d, cli, "good", "healthy");
    wait_status(&d, cli, "bad", "unhealthy");
    wait_status(&d, cli, "slow", "unhealthy");

    let good = health(&d, cli, "good");
    assert_eq!(good["FailingStreak"], 0, "{good}");
    let log = good["Log"].as_array().cloned().unwrap_or_default();
    assert!(!log.is_empty() && log.len() <= 5, "{good}");
    assert_eq!(log[0]["ExitCode"], 0, "{good}");
    assert_eq!(log[0]["Output"], "fine\n", "{good}");
    assert!(log[0]["Start"].as_str().is_some_and(|s| s.ends_with('Z')), "{good}");

    let bad = health(&d, cli, "bad");
    assert!(bad["FailingStreak"].as_u64().is_some_and(|n| n >= 2), "{bad}");
    let last = &bad["Log"][bad["Log"].as_array().map_or(0, |a| a.len().saturating_sub(1))];
    assert_eq!(last["ExitCode"], 1, "{bad}");
    assert_eq!(last["Output"], "failing\n", "{bad}");

    let slow = health(&d, cli, "slow");
    assert_eq!(slow["Log"][0]["ExitCode"], -1, "{slow}");
    assert!(slow["Log"][0]["Output"].as_str().is_some_and(|o| o.contains("timeout")), "{slow}");

    assert!(health(&d, cli, "plain").is_null());
    let info = d.inspect(cli, "good");
    assert_eq!(info["Config"]["Healthcheck"]["Test"], serde_json::json!(["CMD-SHELL", "echo fine"]), "{info}");
    assert_eq!(info["Config"]["Healthcheck"]["Interval"], 1_000_000_000i64, "{info}");

    let ps = d.cli(cli, &["ps"]).ok().stdout.clone();
    assert!(ps.contains("(healthy)") && ps.contains("(unhealthy)"), "{ps}");
    assert_eq!(filtered(&d, cli, "health=healthy"), ["good"]);
    assert_eq!(filtered(&d, cli, "health=unhealthy"), ["bad", "slow"]);
    assert_eq!(filtered(&d, cli, "health=none"), ["plain"]);
    d.cli(cli, &["ps", "--filter", "health=sick"]).fails();

    // No probes while paused: the log does not grow.
    d.cli(cli, &["pause", "bad"]).ok();
    let paused_log = health(&d, cli, "bad")["Log"].clone();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(health(&d, cli, "bad")["Log"], paused_log);
    d.cli(cli, &["unpause", "bad"]).ok();

    // The image's HEALTHCHECK: a committed image carries the container's; --no-healthcheck
    // turns it off.
    d.cli(cli, &["commit", "good", "withhealth:1"]).ok();
    d.cli(cli, &["run", "-d", "--name", "inherits", "withhealth:1", "sleep", "120"]).ok();
    d.cli(cli, &["run", "-d", "--name", "off", "--no-healthcheck", "withhealth:1", "sleep", "120"]).ok();
    wait_status(&d, cli, "inherits", "healthy");
    assert_eq!(d.inspect(cli, "off")["Config"]["Healthcheck"]["Test"], serde_json::json!(["NONE"]));
    assert!(health(&d, cli, "off").is_null());
    assert!(filtered(&d, cli, "health=none").contains(&"off".to_string()));

    // The checks stop with the container.
    d.cli(cli, &["stop", "-t", "1", "good"]).ok();
    let after = health(&d, cli, "good")["Log"].as_array().map_or(0, |a| a.len());
    let count_before = health(&d, cli, "good")["Log"][after.saturating_sub(1)]["End"].clone();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(health(&d, cli, "good")["Log"][after.saturating_sub(1)]["End"], count_before);

    std::thread::sleep(Duration::from_millis(1100));
    let until = now_secs().to_string();
    let events = d
        .cli(cli, &["events", "--since", &since, "--until", &until, "--filter", "event=health_status"])
        .ok()
        .stdout
        .clone();
    assert!(events.contains("health_status: healthy") && events.contains("health_status: unhealthy"), "{events}");
    assert!(events.contains("name=good") && events.contains("name=bad"), "{events}");

    d.cli(cli, &["rm", "-f", "good", "bad", "slow", "plain", "inherits", "off"]).ok();
}
both!(healthchecks);

fn bad_healthcheck_options(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    d.cli(cli, &["create", "--no-healthcheck", "--health-cmd", "true", &image]).fails();
    d.cli(cli, &["create", "--health-interval", "1s", "--health-retries", "-1", &image]).fails();
}
both!(bad_healthcheck_options);

/// A daemon restart keeps the health: a re-adopted container goes on from its status, streak
/// and log instead of going back to `starting`, and a stopped one still shows its last.
fn health_survives_a_daemon_restart(cli: Cli) {
    let mut d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    // Healthy once, failing after: with 100 retries it stays healthy, but a fresh start would
    // stay `starting` for as long (failures after the first success do not make it healthy).
    let once = "test ! -e /tmp/seen && touch /tmp/seen";
    let args = ["--health-interval", "1s", "--health-retries", "100"];
    d.cli(
        cli,
        &[&["run", "-d", "--name", "once", "--health-cmd", once][..], &args, &[&image, "sleep", "120"]].concat(),
    )
    .ok();
    d.cli(
        cli,
        &[&["run", "-d", "--name", "fails", "--health-cmd", "exit 3"][..], &args, &[&image, "sleep", "120"]].concat(),
    )
    .ok();
    wait_status(&d, cli, "once", "healthy");
    assert!(wait_for(Duration::from_secs(20), || health(&d, cli, "fails")["FailingStreak"].as_u64() >= Some(2)));
    let streak = health(&d, cli, "fails")["FailingStreak"].as_u64().unwrap_or(0);

    d.kill9();
    d.restart();
    let once_health = health(&d, cli, "once");
    assert_eq!(once_health["Status"], "healthy", "{once_health}");
    assert_eq!(once_health["Log"][0]["ExitCode"], 0, "{once_health}");
    let fails = health(&d, cli, "fails");
    assert!(fails["FailingStreak"].as_u64().is_some_and(|n| n >= streak), "{fails} (before: {streak})");
    // The probes go on from there.
    assert!(wait_for(Duration::from_secs(20), || health(&d, cli, "fails")["FailingStreak"].as_u64() > Some(streak)));

    d.cli(cli, &["stop", "-t", "1", "once"]).ok();
    d.restart();
    let stopped = health(&d, cli, "once");
    assert_eq!(stopped["Status"], "healthy", "{stopped}");
    // A new start begins again.
    d.cli(cli, &["start", "once"]).ok();
    assert_eq!(health(&d, cli, "once")["Status"], "starting");
    d.cli(cli, &["rm", "-f", "once", "fails"]).ok();
}
both!(health_survives_a_daemon_restart);
