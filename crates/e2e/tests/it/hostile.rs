//! Hostile input that once hurt wharfd (issue 13), each test named after what it did: a
//! panic on a bad time stamp, a filter that stalled the daemon, a network option that broke
//! port publishing for everyone, container files read on the host through a planted symlink,
//! and request bodies and DNS clients without bounds. After each, the daemon still serves.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::{http_unix, registry, run_cmd, Cli, Daemon, TempDir};

fn status_of(response: &Option<String>) -> String {
    response.as_deref().and_then(|r| r.lines().next()).unwrap_or("no response").to_string()
}

#[track_caller]
fn serves(d: &Daemon) {
    let pong = http_unix(&d.sock, "GET", "/_ping");
    assert!(status_of(&pong).contains("200"), "daemon no longer serves: {pong:?}");
}

#[test]
fn bad_created_time_in_an_image_config_does_not_break_images() {
    let d = Daemon::start();
    let tmp = TempDir::new("badtime");
    let archive = tmp.0.join("bad-created.tar");
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/archive_tool.py");
    let mut cmd = Command::new("python3");
    cmd.arg(tool).arg("legacy").arg(&archive).arg("2024-01-01T00:00:00+0\u{e9}00");
    run_cmd(cmd, Duration::from_secs(60)).ok();
    d.wharf(&["load", "-i", archive.to_str().unwrap_or_default()]).ok();
    for cli in [Cli::Wharf, Cli::Docker] {
        d.cli(cli, &["images"]).ok().mentions(&["legacy/box"]);
        d.cli(cli, &["image", "inspect", "legacy/box:1"]).ok();
    }
    d.docker(&["image", "prune", "-a", "-f", "--filter", "until=1000h"]).ok();
    d.wharf(&["images"]).ok().mentions(&["legacy/box"]);
    serves(&d);
}

#[test]
fn huge_since_and_until_values_are_refused_not_a_panic() {
    let d = Daemon::start();
    let bb = d.pull("library/busybox:latest");
    let id = d.wharf(&["create", &bb, "true"]).ok().trimmed().to_string();
    let filters = |v: &str| format!("%7B%22until%22%3A%5B%22{v}%22%5D%7D");
    for (method, path) in [
        ("GET", format!("/containers/{id}/logs?stdout=1&since=18446744073709551615")),
        ("GET", format!("/containers/{id}/logs?stdout=1&until=18446744073709551615.999999999")),
        ("POST", format!("/containers/prune?filters={}", filters("99999999999999999999h"))),
        ("POST", format!("/images/prune?filters={}", filters("99999999999999999999h"))),
        ("POST", format!("/containers/prune?filters={}", filters("2024-01-01T00:00:00%2B0%C3%A900"))),
    ] {
        let resp = http_unix(&d.sock, method, &path);
        assert!(status_of(&resp).contains(" 400 "), "{method} {path}: {resp:?}");
    }
    d.wharf(&["logs", "--since", "99999999999999999999h", &id]).fails().mentions(&["invalid"]);
    d.docker(&["container", "prune", "-f", "--filter", "until=99999999999999999999h"]).fails();
    serves(&d);
}

#[test]
fn name_filter_with_many_stars_answers_without_stalling_the_daemon() {
    let d = Daemon::start();
    let bb = d.pull("library/busybox:latest");
    // A long name makes a backtracking matcher try astronomically many splits (C(72, 12)).
    let long = "a".repeat(60);
    d.wharf(&["create", "--name", &long, &bb, "true"]).ok();
    d.wharf(&["create", "--name", "web", &bb, "true"]).ok();
    let stars = format!("name={}!", ".*".repeat(12));
    for cli in [Cli::Wharf, Cli::Docker] {
        let out = d.cli(cli, &["ps", "-a", "--filter", &stars, "--format", "{{.Names}}"]);
        assert_eq!(out.ok().trimmed(), "", "{out}");
        let out = d.cli(cli, &["ps", "-a", "--filter", "name=^web$", "--format", "{{.Names}}"]);
        assert_eq!(out.ok().trimmed(), "web", "{out}");
        let out = d.cli(cli, &["ps", "-a", "--filter", &format!("name=^{}a$", ".*".repeat(12)), "-q"]);
        assert_eq!(out.ok().trimmed().lines().count(), 1, "{out}");
    }
    serves(&d);
}

#[test]
fn reference_filter_with_many_stars_answers_without_stalling_the_daemon() {
    let d = Daemon::start();
    let bb = d.pull("library/busybox:latest");
    // 121 characters in one path component: a backtracking glob tries C(121, 12) splits.
    let long = format!("{}:{}", "a".repeat(60), "a".repeat(60));
    d.wharf(&["tag", &bb, &long]).ok();
    let stars = format!("reference={}!", "*a".repeat(12));
    for cli in [Cli::Wharf, Cli::Docker] {
        let out = d.cli(cli, &["images", "--filter", &stars, "--format", "{{.Repository}}"]);
        assert_eq!(out.ok().trimmed(), "", "{out}");
        let out = d.cli(cli, &["images", "--filter", &format!("reference={}", "*a".repeat(12)), "-q"]);
        assert_eq!(out.ok().trimmed().lines().count(), 1, "{out}");
        // `*` takes one path component: the test registry's address, then `library`.
        let out =
            d.cli(cli, &["images", "--filter", "reference=*/library/busy*", "--format", "{{.Repository}}:{{.Tag}}"]);
        assert_eq!(out.ok().trimmed(), bb, "{out}");
    }
    serves(&d);
}

#[test]
fn bridge_name_with_nft_syntax_is_refused_and_port_publishing_keeps_working() {
    let d = Daemon::start();
    let bb = d.pull("library/busybox:latest");
    let (subnet, _) = crate::network_user::subnet_for(&d, 3);
    for (cli, bad) in [(Cli::Wharf, "x\";{"), (Cli::Docker, "br;flush"), (Cli::Docker, "a{b}"), (Cli::Wharf, "a\"b")] {
        let opt = format!("com.docker.network.bridge.name={bad}");
        d.cli(cli, &["network", "create", "--subnet", &subnet, "-o", &opt, "evil"])
            .fails()
            .mentions(&["invalid", "com.docker.network.bridge.name"]);
    }
    d.wharf(&["network", "ls"]).ok();
    let out = d.wharf(&["network", "inspect", "evil"]);
    out.fails();
    // A valid custom name still works, and publishing a port still does afterwards.
    let name = format!("whx{}", std::process::id() % 100_000);
    let opt = format!("com.docker.network.bridge.name={name}");
    d.wharf(&["network", "create", "--subnet", &subnet, "-o", &opt, "custom"]).ok();
    assert!(Path::new(&format!("/sys/class/net/{name}")).exists());
    let c = d.wharf(&[
        "run",
        "-d",
        "--network",
        "custom",
        "-p",
        "127.0.0.1::80",
        &bb,
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let c = c.ok().trimmed().to_string();
    let port = d.wharf(&["port", &c, "80"]).ok().trimmed().to_string();
    assert!(port.starts_with("127.0.0.1:"), "{port}");
    d.wharf(&["rm", "-f", &c]).ok();
    d.wharf(&["network", "rm", "custom"]).ok();
    serves(&d);
}

#[test]
fn user_lookup_does_not_follow_a_symlink_the_container_planted() {
    let d = Daemon::start();
    let bb = d.pull("library/busybox:latest");
    // A passwd on the host that wharfd must never read for a container.
    let host = TempDir::new("hostetc");
    std::fs::write(host.0.join("passwd"), "intruder:x:4242:4242::/:/bin/sh\n").ok();
    std::fs::write(host.0.join("group"), "intruders:x:4242:\n").ok();
    // A root file system whose /etc is an absolute symlink to that directory: inside the
    // container it points at nothing; joined to a layer path on the host it pointed there.
    let rootfs = TempDir::new("evilroot");
    std::fs::create_dir_all(rootfs.0.join("bin")).ok();
    std::fs::copy("/bin/busybox", rootfs.0.join("bin/busybox")).ok();
    std::os::unix::fs::symlink("busybox", rootfs.0.join("bin/id")).ok();
    std::os::unix::fs::symlink(&host.0, rootfs.0.join("etc")).ok();
    let tar = rootfs.0.join("../evilroot.tar");
    let mut cmd = Command::new("tar");
    cmd.arg("-C").arg(&rootfs.0).arg("-cf").arg(&tar).arg(".");
    run_cmd(cmd, Duration::from_secs(60)).ok();
    d.wharf(&["import", tar.to_str().unwrap_or_default(), "evil/etc:1"]).ok();
    for cli in [Cli::Wharf, Cli::Docker] {
        d.cli(cli, &["run", "--rm", "-u", "intruder", "evil/etc:1", "/bin/id"])
            .fails()
            .mentions(&["unable to find user intruder"]);
        d.cli(cli, &["run", "--rm", "-u", "0:intruders", "evil/etc:1", "/bin/id"]).fails();
        // Numeric ids need no lookup and still work.
        let out = d.cli(cli, &["run", "--rm", "-u", "4242:4242", "evil/etc:1", "/bin/id", "-u"]);
        assert_eq!(out.ok().trimmed(), "4242");
    }
    let c = d.wharf(&["run", "-d", "evil/etc:1", "/bin/busybox", "sleep", "300"]).ok().trimmed().to_string();
    d.wharf(&["exec", "-u", "intruder", &c, "/bin/id"]).fails().mentions(&["unable to find user intruder"]);
    d.wharf(&["rm", "-f", &c]).ok();
    std::fs::remove_file(&tar).ok();

    // An /etc/passwd the container made huge is refused with the reason, not read whole.
    let c = d.wharf(&[
        "run",
        "-d",
        &bb,
        "sh",
        "-c",
        "head -c 9437184 /dev/zero >> /etc/passwd && touch /done && sleep 300",
    ]);
    let c = c.ok().trimmed().to_string();
    for _ in 0..100 {
        if d.wharf(&["exec", &c, "test", "-e", "/done"]).success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    d.wharf(&["exec", "-u", "nobody", &c, "id"]).fails().mentions(&["/etc/passwd", "larger than 8 MiB"]);
    d.wharf(&["rm", "-f", &c]).ok();
    serves(&d);
}

/// Reads what the daemon answers on `s` until it closes or `wait` passes.
fn response_of(s: &mut UnixStream, wait: Duration) -> String {
    s.set_read_timeout(Some(wait)).ok();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = s.read(&mut chunk) {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[test]
fn oversized_request_bodies_are_refused_without_being_read_whole() {
    let d = Daemon::start();
    // A declared length over the limit: refused before a byte of the body is sent.
    let mut s = UnixStream::connect(&d.sock).expect("connect");
    write!(
        s,
        "POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n"
    )
    .ok();
    let resp = response_of(&mut s, Duration::from_secs(20));
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp:?}");

    // A chunked body that never ends: cut off once past the limit (16 MiB), long before the
    // 64 MiB this client would send.
    let mut s = UnixStream::connect(&d.sock).expect("connect");
    write!(s, "POST /networks/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").ok();
    let chunk = vec![b' '; 1 << 20];
    let mut sent = 0usize;
    for _ in 0..64 {
        let ok =
            write!(s, "{:x}\r\n", chunk.len()).is_ok() && s.write_all(&chunk).is_ok() && s.write_all(b"\r\n").is_ok();
        if !ok {
            break;
        }
        sent += chunk.len();
    }
    let resp = response_of(&mut s, Duration::from_secs(20));
    assert!(resp.starts_with("HTTP/1.1 413") || sent < 64 << 20, "sent {sent} bytes: {resp:?}");
    if !resp.is_empty() {
        assert!(resp.starts_with("HTTP/1.1 413"), "{resp:?}");
    }
    serves(&d);
}

#[test]
fn dns_server_bounds_stalled_tcp_clients_and_keeps_answering() {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.wharf(&["pull", &bb]).ok();
    let (subnet, prefix) = crate::network_user::subnet_for(&d, 5);
    d.wharf(&["network", "create", "--subnet", &subnet, "dnsnet"]).ok();
    d.wharf(&["run", "-d", "--name", "web", "--network", "dnsnet", &bb, "sleep", "300"]).ok();
    // From a container on the network: 40 TCP clients that announce a 256-byte query and
    // never send it, each kept open for 60 s by its input; meanwhile a UDP query must be
    // answered, and the server must close every stalled client after its 10 s time-out, long
    // before their 60 s are up.
    let script = format!(
        "start=$(date +%s); \
         for i in $(seq 40); do (printf '\\001\\000'; sleep 60) | nc {prefix}.1 53 >/dev/null 2>&1 & pids=\"$pids $!\"; done; \
         sleep 1; nslookup web {prefix}.1 || echo LOOKUP-FAILED; \
         for s in $(seq 55); do alive=0; for p in $pids; do kill -0 $p 2>/dev/null && alive=1; done; \
           [ $alive = 0 ] && break; sleep 1; done; \
         echo elapsed=$(( $(date +%s) - start ))"
    );
    let out = d.wharf(&["run", "--rm", "--network", "dnsnet", &bb, "sh", "-c", &script]);
    out.ok();
    assert!(!out.stdout.contains("LOOKUP-FAILED") && out.stdout.contains(&format!("Address: {prefix}.")), "{out}");
    let elapsed: u64 = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("elapsed="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(u64::MAX);
    assert!(elapsed < 50, "the stalled clients were not closed by the server: {out}");
    d.wharf(&["rm", "-f", "web"]).ok();
    d.wharf(&["network", "rm", "dnsnet"]).ok();
    serves(&d);
}

/// The peak resident memory of a process (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

// `logs` of a 35 MB log once took 24 GB (each line kept the capacity of the whole read
// buffer) and the kernel killed wharfd. A 60 MB log is read in bounded steps now.
#[test]
fn logs_of_a_large_log_take_bounded_memory() {
    let d = Daemon::start();
    let bb = d.pull("library/busybox:latest");
    let script = "yes 0123456789012345678901234567890123456789 | head -c 60000000; echo the-end";
    let c = d.wharf(&["run", "-d", &bb, "sh", "-c", script]).ok().trimmed().to_string();
    d.wharf(&["wait", &c]).ok();
    // `head -c` cut the last `yes` line short; `echo` ended it.
    let last = d.wharf(&["logs", "--tail", "1", &c]);
    assert!(last.ok().trimmed().ends_with("the-end") && last.stdout.lines().count() == 1, "{last}");
    let all = d.wharf(&["logs", &c]);
    assert_eq!(all.ok().stdout.len(), 60_000_000 + "the-end\n".len());
    let peak = peak_rss_kib(d.pid().expect("wharfd runs"));
    // The log is 60 MB of text and about 100 MB as JSON lines: reading it must not cost a
    // multiple of that.
    assert!(peak < 512 * 1024, "wharfd peaked at {} MiB reading a 100 MB log", peak / 1024);
    serves(&d);
}
