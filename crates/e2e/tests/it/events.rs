//! `events`: a container's life as Docker reports it, replayed with since/until and filters,
//! and followed live.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::harness::{registry, Cli, Daemon};

fn now_secs() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn events_replay(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    let since = now_secs().to_string();
    d.cli(cli, &["pull", &image]).ok();
    d.cli(cli, &["run", "--name", "ev1", "--label", "team=blue", &image, "sh", "-c", "exit 3"]).code_is(3);
    d.cli(cli, &["rm", "ev1"]).ok();
    std::thread::sleep(Duration::from_millis(1100));
    let until = now_secs().to_string();

    let out = d.cli(
        cli,
        &["events", "--since", &since, "--until", &until, "--filter", "container=ev1", "--format", "{{json .}}"],
    );
    out.ok();
    let evs: Vec<Value> = out.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or(Value::Null)).collect();
    let actions: Vec<&str> = evs.iter().filter_map(|e| e["Action"].as_str()).collect();
    let want = ["create", "start", "die", "destroy"];
    let seen: Vec<&str> = actions.iter().copied().filter(|a| want.contains(a)).collect();
    assert_eq!(seen, want, "{out}");
    let die = evs.iter().find(|e| e["Action"] == "die").cloned().unwrap_or(Value::Null);
    assert_eq!(die["Actor"]["Attributes"]["exitCode"], "3", "{die}");
    assert_eq!(die["Actor"]["Attributes"]["name"], "ev1", "{die}");
    assert_eq!(die["Actor"]["Attributes"]["team"], "blue", "{die}");
    assert_eq!(die["Type"], "container");
    assert_eq!(die["status"], "die");
    assert_eq!(die["scope"], "local");
    assert_eq!(die["id"], die["Actor"]["ID"]);

    // Plain output and the image filter: the pull is an image event.
    let out = d.cli(cli, &["events", "--since", &since, "--until", &until, "--filter", "type=image"]);
    out.ok();
    assert!(out.stdout.lines().any(|l| l.contains(" image pull ")), "{out}");
    assert!(!out.stdout.contains(" container "), "{out}");

    let out = d.cli(cli, &["events", "--since", &since, "--until", &until, "--filter", "event=die"]);
    assert_eq!(out.ok().stdout.lines().count(), 1, "{out}");
    assert!(out.stdout.contains("exitCode=3"), "{out}");

    d.cli(cli, &["events", "--filter", "bogus=1", "--until", &until]).fails();
}
both!(events_replay);

/// A follower sees events as they happen.
fn events_follow(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    let mut cmd = d.command(cli, &["events", "--filter", "type=container", "--format", "{{json .}}"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().expect("start events");
    std::thread::sleep(Duration::from_millis(500));
    d.cli(cli, &["run", "--rm", "--name", "ev2", &image, "true"]).ok();
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut actions = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        actions.push(v["Action"].as_str().unwrap_or("").to_string());
        if actions.last().map(String::as_str) == Some("destroy") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(actions, ["create", "start", "die", "destroy"]);
}
both!(events_follow);
