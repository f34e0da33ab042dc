//! json-file log rotation: `--log-opt max-size/max-file` rotate `<id>-json.log` → `.1` → `.2`
//! with the oldest dropped, `logs` reads the kept files oldest first, `logs -f` follows across
//! rotations, daemon.json `log-opts` is the default, other log drivers are refused.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use crate::harness::{list_dir, registry, Cli, Daemon, DaemonOptions};

/// 400 numbered lines of ~100 bytes, 50 per burst.
const SCRIPT: &str = "i=0; while [ $i -lt 400 ]; do printf 'line %05d %090d\\n' $i 0; i=$((i+1)); \
                      [ $((i % 50)) -eq 0 ] && sleep 0.2; done; sleep 1";

fn log_files(d: &Daemon, id: &str) -> Vec<String> {
    let mut names: Vec<String> =
        list_dir(&d.data_root.join("containers").join(id)).into_iter().filter(|n| n.contains("-json.log")).collect();
    names.sort();
    names
}

/// The numbers of the `line NNNNN` lines, in order.
fn numbers(text: &str) -> Vec<u32> {
    text.lines().filter_map(|l| l.strip_prefix("line ")).filter_map(|l| l.get(..5)?.parse().ok()).collect()
}

fn contiguous_to_end(nums: &[u32]) {
    assert!(!nums.is_empty());
    assert_eq!(*nums.last().unwrap_or(&0), 399, "the newest line is missing");
    for w in nums.windows(2) {
        assert_eq!(w[1], w[0] + 1, "a gap or reordering in {nums:?}");
    }
}

fn rotates_and_reads_in_order(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    let id = d
        .cli(
            cli,
            &[
                "run",
                "-d",
                "--name",
                "rot",
                "--log-opt",
                "max-size=10k",
                "--log-opt",
                "max-file=3",
                &image,
                "sh",
                "-c",
                SCRIPT,
            ],
        )
        .ok()
        .trimmed()
        .to_string();

    // Follow from the start: every line arrives once, in order, across the rotations.
    let mut cmd = d.command(cli, &["logs", "-f", "rot"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn logs -f");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut followed = String::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        followed.push_str(&line);
        followed.push('\n');
    }
    let _ = child.kill();
    let _ = child.wait();
    d.cli(cli, &["wait", "rot"]).ok();

    let followed = numbers(&followed);
    // `logs -f` started a moment after the container: what it missed was already rotated away
    // at most; from its first line on, nothing is missing.
    contiguous_to_end(&followed);
    assert!(followed.len() > 150, "logs -f lost lines across rotations: {} lines", followed.len());

    assert_eq!(log_files(&d, &id), [format!("{id}-json.log"), format!("{id}-json.log.1"), format!("{id}-json.log.2")]);
    for f in log_files(&d, &id) {
        let len = std::fs::metadata(d.data_root.join("containers").join(&id).join(&f)).map(|m| m.len()).unwrap_or(0);
        assert!(len <= 10 * 1024, "{f} has {len} bytes");
    }
    let out = d.cli(cli, &["logs", "rot"]).ok().stdout.clone();
    let nums = numbers(&out);
    contiguous_to_end(&nums);
    assert!(nums.len() < 400 && nums.len() > 150, "{} lines kept", nums.len());
    let tail = numbers(&d.cli(cli, &["logs", "--tail", "3", "rot"]).ok().stdout.clone());
    assert_eq!(tail, [397, 398, 399]);

    let info = d.inspect(cli, "rot");
    assert_eq!(info["HostConfig"]["LogConfig"]["Type"], "json-file", "{info}");
    assert_eq!(info["HostConfig"]["LogConfig"]["Config"]["max-size"], "10k", "{info}");

    d.cli(cli, &["create", "--log-driver", "syslog", &image]).fails().mentions(&["syslog"]);
    d.cli(cli, &["create", "--log-opt", "max-size=lots", &image]).fails().mentions(&["max-size"]);
    d.cli(cli, &["create", "--log-opt", "max-file=0", "--log-opt", "max-size=1k", &image]).fails();
    d.cli(cli, &["rm", "rot"]).ok();
}
both!(rotates_and_reads_in_order);

/// `--log-driver none` keeps no log (`logs` says so, as dockerd does: 501), `local` keeps one
/// that `logs` reads, and a driver dockerd does not know is refused with dockerd's words.
fn none_and_local_log_drivers(cli: Cli) {
    let d = Daemon::start();
    let image = d.pull("library/busybox:latest");
    d.cli(cli, &["run", "--name", "quiet", "--log-driver", "none", &image, "echo", "hi"]).ok();
    d.cli(cli, &["logs", "quiet"]).fails().mentions(&["configured logging driver does not support reading"]);
    let info = d.inspect(cli, "quiet");
    assert_eq!(info["HostConfig"]["LogConfig"]["Type"], "none", "{info}");
    assert_eq!(info["LogPath"], "", "{info}");
    let dir = d.data_root.join("containers").join(info["Id"].as_str().unwrap_or_default());
    assert!(crate::harness::find_named(&dir, "-json.log").is_empty(), "a log was kept in {}", dir.display());
    // The output still reaches an attached client.
    let out = d.cli(cli, &["run", "--rm", "--log-driver", "none", &image, "echo", "attached"]);
    assert_eq!(out.ok().trimmed(), "attached");

    d.cli(cli, &["run", "--name", "kept", "--log-driver", "local", &image, "sh", "-c", "echo one; echo two >&2"]).ok();
    let out = d.cli(cli, &["logs", "kept"]);
    assert_eq!(out.ok().stdout.trim(), "one", "{out}");
    assert_eq!(out.stderr.trim(), "two", "{out}");
    assert_eq!(d.inspect(cli, "kept")["HostConfig"]["LogConfig"]["Type"], "local");

    d.cli(cli, &["create", "--log-driver", "bogus", &image]).fails().mentions(&["no log driver named 'bogus'"]);
    // The docker CLI refuses this one itself ("invalid logging opts for driver none").
    d.cli(cli, &["create", "--log-driver", "none", "--log-opt", "max-size=1k", &image]).fails().mentions(&["none"]);
    d.cli(cli, &["rm", "quiet", "kept"]).ok();
}
both!(none_and_local_log_drivers);

fn daemon_log_opts_are_the_default(cli: Cli) {
    let d = Daemon::start_with(DaemonOptions {
        config_json: Some(r#"{"log-opts": {"max-size": "8k", "max-file": "2"}}"#.to_string()),
        ..Default::default()
    });
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    let id = d.cli(cli, &["run", "-d", &image, "sh", "-c", SCRIPT]).ok().trimmed().to_string();
    d.cli(cli, &["wait", &id]).ok();
    assert_eq!(log_files(&d, &id), [format!("{id}-json.log"), format!("{id}-json.log.1")]);
    contiguous_to_end(&numbers(&d.cli(cli, &["logs", &id]).ok().stdout.clone()));
    assert_eq!(d.inspect(cli, &id)["HostConfig"]["LogConfig"]["Config"]["max-file"], "2");
    // A container's own options win.
    let own =
        d.cli(cli, &["run", "-d", "--log-opt", "max-size=1m", &image, "sh", "-c", SCRIPT]).ok().trimmed().to_string();
    d.cli(cli, &["wait", &own]).ok();
    assert_eq!(log_files(&d, &own), [format!("{own}-json.log")]);
    assert_eq!(numbers(&d.cli(cli, &["logs", &own]).ok().stdout.clone()).len(), 400);
    d.cli(cli, &["rm", &id, &own]).ok();
}
both!(daemon_log_opts_are_the_default);

#[test]
fn daemon_refuses_bad_log_opts() {
    let opts =
        DaemonOptions { config_json: Some(r#"{"log-opts": {"max-size": "huge"}}"#.to_string()), ..Default::default() };
    match Daemon::try_start(opts) {
        Ok(d) => panic!("wharfd started with a bad max-size; log:\n{}", d.log_text()),
        Err(e) => assert!(e.log.contains("max-size"), "{}", e.log),
    }
}
