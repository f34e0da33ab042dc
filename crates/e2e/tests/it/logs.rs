//! `logs` options: -f streams while the container runs and ends with it, --since/--until
//! cut by time, --tail 0 prints nothing, stdout and stderr stay apart.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{registry, run_cmd, Cli, Daemon};

fn follow_streams_until_exit(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    d.cli(
        cli,
        &[
            "run",
            "-d",
            "--name",
            "ticker",
            &image,
            "sh",
            "-c",
            "echo tick1; echo err1 >&2; sleep 2; echo tick2; sleep 2; echo tick3",
        ],
    )
    .ok();

    let mut cmd = d.command(cli, &["logs", "-f", "ticker"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn logs -f");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((line, Instant::now())).is_err() {
                break;
            }
        }
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    let mut lines = Vec::new();
    while let Ok((line, at)) = rx.recv_timeout(Duration::from_secs(20)) {
        lines.push((line, at));
    }
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Some(s);
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let err = err_reader.join().unwrap_or_default();
    let texts: Vec<&str> = lines.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(texts, ["tick1", "tick2", "tick3"], "logs -f stdout (stderr: {err})");
    assert_eq!(err, "err1\n", "logs -f stderr");
    assert!(status.is_some_and(|s| s.success()), "logs -f did not end with the container: {status:?}");
    // tick1 arrived while the container still ran: seconds before tick3 was written.
    let gap = lines[2].1.duration_since(lines[0].1);
    assert!(gap > Duration::from_secs(3), "lines were not streamed as written (gap {gap:?})");
    d.cli(cli, &["rm", "ticker"]).ok();
}
both!(follow_streams_until_exit);

/// Seconds since the epoch, with fractions, of an RFC 3339 time stamp (via date(1)).
fn epoch(ts: &str) -> f64 {
    let mut cmd = Command::new("date");
    cmd.args(["-u", "-d", ts, "+%s.%N"]);
    let out = run_cmd(cmd, Duration::from_secs(10));
    out.ok().trimmed().parse().unwrap_or_else(|e| panic!("date printed no number ({e}):\n{out}"))
}

fn since_until_and_tail_zero(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    d.cli(cli, &["run", "-d", "--name", "timed", &image, "sh", "-c", "echo first; sleep 2; echo second >&2"]).ok();
    d.wait_exited(cli, "timed");

    let out = d.cli(cli, &["logs", "-t", "timed"]);
    out.ok();
    let stamp = |text: &str, all: &str| -> String {
        all.lines()
            .find_map(|l| l.strip_suffix(&format!(" {text}")))
            .unwrap_or_else(|| panic!("no time-stamped line {text}:\n{out}"))
            .to_string()
    };
    let t1 = stamp("first", &out.stdout);
    let t2 = stamp("second", &out.stderr);
    let mid = format!("{:.3}", (epoch(&t1) + epoch(&t2)) / 2.0);

    let out = d.cli(cli, &["logs", "--since", &mid, "timed"]);
    out.ok();
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", "second\n"), "--since {mid}:\n{out}");
    let out = d.cli(cli, &["logs", "--until", &mid, "timed"]);
    out.ok();
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("first\n", ""), "--until {mid}:\n{out}");
    // RFC 3339 too, and inclusive as Docker's json-file reader (it skips entries Before
    // since and stops at the first After until).
    let out = d.cli(cli, &["logs", "--since", &t2, "timed"]);
    assert_eq!(out.ok().all().trim(), "second", "--since {t2}:\n{out}");
    let out = d.cli(cli, &["logs", "--until", &t1, "timed"]);
    assert_eq!(out.ok().all().trim(), "first", "--until {t1}:\n{out}");
    let out = d.cli(cli, &["logs", "--since", &t1, "--until", &t2, "timed"]);
    out.ok();
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("first\n", "second\n"), "{out}");

    let out = d.cli(cli, &["logs", "--tail", "0", "timed"]);
    assert_eq!(out.ok().all().trim(), "", "--tail 0:\n{out}");
    let out = d.cli(cli, &["logs", "--tail", "all", "timed"]);
    assert_eq!(out.ok().stdout, "first\n", "{out}");
    d.cli(cli, &["rm", "timed"]).ok();
}
both!(since_until_and_tail_zero);
