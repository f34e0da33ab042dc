//! Lifecycle extras through wharf and docker: rename, pause/unpause (the freezer, and stop,
//! kill and rm -f of a paused container), update of a running container's cgroup, top,
//! stats, diff, container prune.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{http_unix, registry, wait_for, Cli, Daemon};

fn busybox(d: &Daemon, cli: Cli) -> String {
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    image
}

fn id_of(d: &Daemon, cli: Cli, name: &str) -> String {
    d.inspect(cli, name)["Id"].as_str().unwrap_or_default().to_string()
}

/// The container's directory in a v1 controller's hierarchy (this machine's layout).
fn v1_dir(d: &Daemon, controller: &str, id: &str) -> PathBuf {
    PathBuf::from("/sys/fs/cgroup").join(controller).join(d.cgroup_parent.trim_start_matches('/')).join(id)
}

/// A container's cgroup file: `v1_file` in the controller's v1 hierarchy, or on a pure v2
/// host `v2_file` in the container's one directory.
fn cg_file(d: &Daemon, controller: &str, id: &str, v1_file: &str, v2_file: &str) -> PathBuf {
    if crate::cgroup_v2::host_is_pure_v2() {
        PathBuf::from("/sys/fs/cgroup").join(d.cgroup_parent.trim_start_matches('/')).join(id).join(v2_file)
    } else {
        v1_dir(d, controller, id).join(v1_file)
    }
}

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default().trim().to_string()
}

/// The body of a raw API answer (whole, not chunked: the answers asked for here are not streams).
fn api_json(d: &Daemon, method: &str, path: &str) -> Value {
    let resp = http_unix(&d.sock, method, path).unwrap_or_default();
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {resp}"))
}

/// What a streaming answer sends in `time`.
fn read_for(sock: &std::path::Path, method: &str, path: &str, time: Duration) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(sock) else { return String::new() };
    let _ = write!(s, "{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let start = std::time::Instant::now();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while start.elapsed() < time {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn rename(cli: Cli) {
    let d = Daemon::start();
    let image = busybox(&d, cli);
    d.cli(cli, &["run", "-d", "--name", "first", &image, "sleep", "1000"]).ok();
    d.cli(cli, &["create", "--name", "taken", &image, "true"]).ok();
    let id = id_of(&d, cli, "first");
    d.cli(cli, &["rename", "first", "second"]).ok();
    let info = d.inspect(cli, "second");
    assert_eq!(info["Name"], "/second", "{info}");
    assert_eq!(info["Id"], id.as_str());
    d.cli(cli, &["inspect", "first"]).fails().mentions(&["No such"]);
    // Names are unique, as at create; the old name is free again.
    d.cli(cli, &["rename", "second", "taken"]).fails().mentions(&["already in use"]);
    d.cli(cli, &["rename", "second", "bad/name"]).fails().mentions(&["Invalid container name"]);
    d.cli(cli, &["rename", "nosuch", "xx"]).fails().mentions(&["No such container"]);
    d.cli(cli, &["create", "--name", "first", &image, "true"]).ok();
    d.cli(cli, &["rm", "-f", "second", "first", "taken"]).ok();
}
both!(rename);

fn rename_event(cli: Cli) {
    let d = Daemon::start();
    let image = busybox(&d, cli);
    d.cli(cli, &["create", "--name", "old", &image, "true"]).ok();
    d.cli(cli, &["rename", "old", "new"]).ok();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_secs() + 1)
        .unwrap_or(0)
        .to_string();
    let out =
        d.cli(cli, &["events", "--since", "0", "--until", &now, "--filter", "event=rename", "--format", "{{json .}}"]);
    out.ok();
    let line = out.trimmed().lines().next().unwrap_or_default().to_string();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["Action"], "rename", "{v}");
    assert_eq!(v["Actor"]["Attributes"]["name"], "new", "{v}");
    assert_eq!(v["Actor"]["Attributes"]["oldName"], "/old", "{v}");
    d.cli(cli, &["rm", "new"]).ok();
}
both!(rename_event);

fn pause_unpause(cli: Cli) {
    let d = Daemon::start();
    let image = busybox(&d, cli);
    d.cli(
        cli,
        &["run", "-d", "--name", "pz", &image, "sh", "-c", "while true; do date +%s%N > /tmp/tick; sleep 0.05; done"],
    )
    .ok();
    let id = id_of(&d, cli, "pz");
    let freezer = cg_file(&d, "freezer", &id, "freezer.state", "cgroup.freeze");
    let (frozen, thawed) = if crate::cgroup_v2::host_is_pure_v2() { ("1", "0") } else { ("FROZEN", "THAWED") };
    d.cli(cli, &["pause", "pz"]).ok();
    assert_eq!(read(&freezer), frozen);
    let info = d.inspect(cli, "pz");
    assert_eq!(info["State"]["Status"], "paused", "{info}");
    assert_eq!(info["State"]["Paused"], true, "{info}");
    assert_eq!(info["State"]["Running"], true, "{info}");
    d.cli(cli, &["pause", "pz"]).fails().mentions(&["already paused"]);
    let ps = d.cli(cli, &["ps", "--filter", "status=paused", "-q"]);
    assert!(ps.ok().trimmed().len() >= 12, "{ps}");
    d.cli(cli, &["unpause", "pz"]).ok();
    assert_eq!(read(&freezer), thawed);
    let info = d.inspect(cli, "pz");
    assert_eq!(info["State"]["Status"], "running", "{info}");
    assert_eq!(info["State"]["Paused"], false, "{info}");
    d.cli(cli, &["unpause", "pz"]).fails().mentions(&["not paused"]);

    // A frozen process cannot die until thawed: stop, kill and rm -f thaw first.
    d.cli(cli, &["pause", "pz"]).ok();
    d.cli(cli, &["stop", "-t", "1", "pz"]).ok();
    let info = d.inspect(cli, "pz");
    assert_eq!(info["State"]["Status"], "exited", "{info}");
    assert_eq!(info["State"]["Paused"], false, "{info}");
    d.cli(cli, &["pause", "pz"]).fails().mentions(&["not running"]);

    d.cli(cli, &["start", "pz"]).ok();
    d.cli(cli, &["pause", "pz"]).ok();
    d.cli(cli, &["kill", "pz"]).ok();
    assert!(wait_for(Duration::from_secs(10), || d.inspect(cli, "pz")["State"]["Status"] == "exited"));

    d.cli(cli, &["start", "pz"]).ok();
    d.cli(cli, &["pause", "pz"]).ok();
    d.cli(cli, &["rm", "-f", "pz"]).ok();
}
both!(pause_unpause);

fn update_limits(cli: Cli) {
    let d = Daemon::start();
    let image = busybox(&d, cli);
    d.cli(cli, &["run", "-d", "--name", "upd", "-m", "64m", &image, "sleep", "1000"]).ok();
    let id = id_of(&d, cli, "upd");
    d.cli(
        cli,
        &[
            "update",
            "--memory",
            "128m",
            "--memory-swap",
            "256m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "50",
            "--cpu-shares",
            "512",
            "--restart",
            "on-failure:3",
            "upd",
        ],
    )
    .ok();
    let memory = cg_file(&d, "memory", &id, "memory.limit_in_bytes", "memory.max");
    let pids = cg_file(&d, "pids", &id, "pids.max", "pids.max");
    assert_eq!(read(&memory), (128u64 << 20).to_string());
    if crate::cgroup_v2::host_is_pure_v2() {
        // v2 counts swap apart (memory-swap minus memory), the quota with its period, and
        // shares as a weight (runc's conversion).
        assert_eq!(read(&cg_file(&d, "", &id, "", "memory.swap.max")), crate::cgroup_v2::expected_swap_max(128 << 20));
        assert_eq!(read(&cg_file(&d, "", &id, "", "cpu.max")), "50000 100000");
        assert_eq!(read(&cg_file(&d, "", &id, "", "cpu.weight")), "20");
    } else {
        let memsw = v1_dir(&d, "memory", &id).join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            assert_eq!(read(&memsw), (256u64 << 20).to_string());
        }
        assert_eq!(read(&v1_dir(&d, "cpu", &id).join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read(&v1_dir(&d, "cpu", &id).join("cpu.shares")), "512");
    }
    assert_eq!(read(&pids), "50");
    let hc = d.inspect(cli, "upd")["HostConfig"].clone();
    assert_eq!(hc["Memory"], 128 << 20, "{hc}");
    assert_eq!(hc["NanoCpus"], 500_000_000, "{hc}");
    assert_eq!(hc["PidsLimit"], 50, "{hc}");
    assert_eq!(hc["CpuShares"], 512, "{hc}");
    assert_eq!(hc["RestartPolicy"]["Name"], "on-failure", "{hc}");
    assert_eq!(hc["RestartPolicy"]["MaximumRetryCount"], 3, "{hc}");

    // Lowering works too, and unlimited pids; bad values are refused without a change.
    d.cli(cli, &["update", "--memory", "32m", "--memory-swap", "64m", "--pids-limit", "-1", "upd"]).ok();
    assert_eq!(read(&memory), (32u64 << 20).to_string());
    assert_eq!(read(&pids), "max");
    d.cli(cli, &["update", "--memory", "1m", "upd"]).fails().mentions(&["Minimum memory limit"]);
    d.cli(cli, &["update", "--cpus", "0.5", "--cpu-quota", "1000", "upd"]).fails();
    d.cli(cli, &["update", "--restart", "sometimes", "upd"]).fails();
    d.cli(cli, &["update", "--cpus", "1", "nosuch"]).fails().mentions(&["No such container"]);
    assert_eq!(d.inspect(cli, "upd")["HostConfig"]["Memory"], 32 << 20);

    // A stopped container's record changes and the next start uses it.
    d.cli(cli, &["stop", "-t", "0", "upd"]).ok();
    d.cli(cli, &["update", "--memory", "48m", "upd"]).ok();
    d.cli(cli, &["start", "upd"]).ok();
    assert_eq!(read(&memory), (48u64 << 20).to_string());
    d.cli(cli, &["rm", "-f", "upd"]).ok();
}
both!(update_limits);

fn top(cli: Cli) {
    let d = Daemon::start();
    let image = busybox(&d, cli);
    d.cli(cli, &["run", "-d", "--name", "tp", &image, "sh", "-c", "sleep 1001 & sleep 1002"]).ok();
    assert!(wait_for(Duration::from_secs(5), || d.cli(cli, &["top", "tp"]).all().contains("sleep 1002")));
    let out = d.cli(cli, &["top", "tp"]);
    out.ok().mentions(&["PID", "CMD", "sleep 1001", "sleep 1002"]);
    // Only the container's processes: the host's init is not one of them.
    // (busybox sh execs its last command: two processes in all.)
    assert!(
        !out.all().contains("/sbin/init") && out.all().lines().filter(|l| l.contains("sleep")).count() == 2,
        "{out}"
    );
    let out = d.cli(cli, &["top", "tp", "-o", "pid,comm"]);
    out.ok().mentions(&["PID", "COMMAND", "sleep"]);
    let v = api_json(&d, "GET", "/containers/tp/top?ps_args=-o%20pid,args");
    assert_eq!(v["Titles"], serde_json::json!(["PID", "COMMAND"]), "{v}");
    assert_eq!(v["Processes"].as_array().map(Vec::len), Some(2), "{v}");
    d.cli(cli, &["stop", "-t", "0", "tp"]).ok();
    d.cli(cli, &["top", "tp"]).fails().mentions(&["is not running"]);
    d.cli(cli, &["rm", "tp"]).ok();
}
both!(top);

fn stats(cli: Cli) {
    let d = Daemon::start();
    let image = busybox(&d, cli);
    d.cli(
        cli,
        &[
            "run",
            "-d",
            "--name",
            "st",
            "-m",
            "64m",
            "--pids-limit",
            "20",
            &image,
            "sh",
            "-c",
            "dd if=/dev/zero of=/dev/null bs=1k count=200000; sleep 1000",
        ],
    )
    .ok();
    let out = d.cli(cli, &["stats", "--no-stream", "st"]);
    out.ok().mentions(&[
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
        " st ",
        "64MiB",
    ]);

    let v = api_json(&d, "GET", "/containers/st/stats?stream=false");
    assert_eq!(v["name"], "/st", "{v}");
    assert!(v["cpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(v["precpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(v["cpu_stats"]["system_cpu_usage"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(v["cpu_stats"]["online_cpus"].as_u64().unwrap_or(0) >= 1, "{v}");
    assert_eq!(v["memory_stats"]["limit"], 64 << 20, "{v}");
    assert!(v["memory_stats"]["usage"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(v["pids_stats"]["current"].as_u64().unwrap_or(0) >= 1, "{v}");
    assert_eq!(v["pids_stats"]["limit"], 20, "{v}");
    assert!(v["networks"]["eth0"]["rx_bytes"].is_u64(), "{v}");
    assert!(v["read"].as_str().unwrap_or_default() > v["preread"].as_str().unwrap_or_default(), "{v}");
    let one = api_json(&d, "GET", "/containers/st/stats?stream=false&one-shot=true");
    assert_eq!(one["precpu_stats"]["cpu_usage"]["total_usage"], 0, "{one}");

    // The stream sends one sample a second, each with the previous as precpu.
    let resp = read_for(&d.sock, "GET", "/containers/st/stats", Duration::from_millis(2500));
    let samples = resp.matches("\"cpu_stats\"").count();
    assert!((2..=4).contains(&samples), "{samples} samples in 2.5 s: {resp}");

    d.cli(cli, &["stop", "-t", "0", "st"]).ok();
    let out = d.cli(cli, &["stats", "--no-stream", "st"]);
    out.ok().mentions(&["0B / 0B"]);
    d.cli(cli, &["stats", "--no-stream", "nosuch"]).fails();
    d.cli(cli, &["rm", "st"]).ok();
}
both!(stats);

fn diff(cli: Cli) {
    let d = Daemon::start();
    let image = busybox(&d, cli);
    d.cli(
        cli,
        &[
            "run",
            "--name",
            "df",
            &image,
            "sh",
            "-c",
            "echo x > /etc/added && echo y >> /etc/passwd && rm /etc/group && mkdir -p /new/sub && touch /new/sub/f",
        ],
    )
    .ok();
    let out = d.cli(cli, &["diff", "df"]);
    let lines: Vec<&str> = out.ok().trimmed().lines().collect();
    for want in ["C /etc", "A /etc/added", "C /etc/passwd", "D /etc/group", "A /new", "A /new/sub", "A /new/sub/f"] {
        assert!(lines.contains(&want), "{want} missing: {out}");
    }
    assert!(!lines.iter().any(|l| l.ends_with("/etc/hosts") || l.ends_with("/etc/resolv.conf")), "{out}");
    let v = api_json(&d, "GET", "/containers/df/changes");
    let kinds: Vec<(String, i64)> = v
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| (c["Path"].as_str().unwrap_or_default().to_string(), c["Kind"].as_i64().unwrap_or(-1)))
        .collect();
    assert!(kinds.contains(&("/etc/group".to_string(), 2)), "{v}");
    assert!(kinds.contains(&("/etc/added".to_string(), 1)), "{v}");
    assert!(kinds.contains(&("/etc/passwd".to_string(), 0)), "{v}");
    d.cli(cli, &["diff", "nosuch"]).fails().mentions(&["No such container"]);
    d.cli(cli, &["rm", "df"]).ok();
    // A container that touched only /test: the files wharf writes in /etc are not its changes.
    d.cli(cli, &["run", "--name", "only", &image, "touch", "/test"]).ok();
    let out = d.cli(cli, &["diff", "only"]);
    assert_eq!(out.ok().trimmed(), "A /test", "{out}");
    d.cli(cli, &["rm", "only"]).ok();
}
both!(diff);

fn container_prune(cli: Cli) {
    let d = Daemon::start();
    let image = busybox(&d, cli);
    d.cli(cli, &["run", "--name", "done1", &image, "sh", "-c", "head -c 100000 /dev/zero > /big"]).ok();
    d.cli(cli, &["create", "--name", "made", "--label", "keep=yes", &image, "true"]).ok();
    d.cli(cli, &["run", "-d", "--name", "live", &image, "sleep", "1000"]).ok();
    let done_id = id_of(&d, cli, "done1");

    // label! keeps the labelled one; until in the past removes nothing.
    let out = d.cli(cli, &["container", "prune", "-f", "--filter", "until=2000-01-01T00:00:00Z"]);
    out.ok().mentions(&["Total reclaimed space: 0B"]);
    let out = d.cli(cli, &["container", "prune", "-f", "--filter", "label!=keep=yes"]);
    out.ok().mentions(&[&done_id, "Total reclaimed space: 100kB"]);
    d.cli(cli, &["inspect", "done1"]).fails();
    d.inspect(cli, "made");
    d.inspect(cli, "live");
    let v = api_json(&d, "POST", "/containers/prune?filters=%7B%22label%22%3A%7B%22keep%3Dyes%22%3Atrue%7D%7D");
    assert_eq!(v["ContainersDeleted"].as_array().map(Vec::len), Some(1), "{v}");
    assert!(v["SpaceReclaimed"].is_u64(), "{v}");
    d.cli(cli, &["inspect", "made"]).fails();
    d.cli(cli, &["container", "prune", "-f", "--filter", "bogus=1"]).fails().mentions(&["Invalid filter"]);
    assert_eq!(d.inspect(cli, "live")["State"]["Running"], true);
    d.cli(cli, &["rm", "-f", "live"]).ok();
}
both!(container_prune);

/// Docker refuses to exec into a frozen container, at create and at start, with a 409 that
/// says to unpause; the exec works again once thawed.
fn exec_into_paused_container_is_refused(cli: Cli) {
    let d = Daemon::start();
    let image = busybox(&d, cli);
    d.cli(cli, &["run", "-d", "--name", "pe", &image, "sleep", "1000"]).ok();
    let id = id_of(&d, cli, "pe");
    let created = crate::harness::http_unix_post(&d.sock, "/containers/pe/exec", r#"{"Cmd":["true"]}"#);
    let body = created.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    let exec_id = serde_json::from_str::<Value>(body).map(|v| v["Id"].as_str().unwrap_or_default().to_string());
    let exec_id = exec_id.unwrap_or_else(|e| panic!("{e}: {created}"));
    assert!(!exec_id.is_empty(), "{created}");

    d.cli(cli, &["pause", "pe"]).ok();
    let want = format!("Container {id} is paused, unpause the container before exec");
    d.cli(cli, &["exec", "pe", "true"]).fails().mentions(&[&want]);
    let started = crate::harness::http_unix_post(&d.sock, &format!("/exec/{exec_id}/start"), r#"{"Detach":true}"#);
    assert!(started.starts_with("HTTP/1.1 409"), "{started}");
    assert!(started.contains(&want), "{started}");
    // The refused start did not use the instance up.
    let info = api_json(&d, "GET", &format!("/exec/{exec_id}/json"));
    assert_eq!(info["Running"], false, "{info}");

    d.cli(cli, &["unpause", "pe"]).ok();
    let out = d.cli(cli, &["exec", "pe", "echo", "thawed"]);
    assert_eq!(out.ok().trimmed(), "thawed");
    let started = crate::harness::http_unix_post(&d.sock, &format!("/exec/{exec_id}/start"), r#"{"Detach":true}"#);
    assert!(started.starts_with("HTTP/1.1 200"), "{started}");
    d.cli(cli, &["rm", "-f", "pe"]).ok();
}
both!(exec_into_paused_container_is_refused);

/// `docker update` of a limit leaves the device rules alone: a container allowed a device
/// (`--device-cgroup-rule`, `--device`, `--privileged`) keeps it afterwards. Opening a node
/// of a major without a driver says ENXIO when the cgroup allows it, EPERM when not.
fn update_keeps_device_access(cli: Cli) {
    let d = Daemon::start();
    let image = busybox(&d, cli);
    let rule = ["--device-cgroup-rule", "c 42:* rwm"];
    d.cli(cli, &[&["run", "-d", "--name", "dev"][..], &rule, &[&image, "sleep", "1000"]].concat()).ok();
    let open = |major: &str| {
        let script = format!("mknod /tmp/n{major} c {major} 1 && exec 3</tmp/n{major}");
        d.cli(cli, &["exec", "dev", "sh", "-c", &script])
    };
    open("42").fails().mentions(&["No such device or address"]);
    open("43").fails().mentions(&["not permitted"]);
    d.cli(cli, &["update", "-m", "128m", "--memory-swap", "256m", "dev"]).ok();
    d.cli(cli, &["exec", "dev", "rm", "/tmp/n42", "/tmp/n43"]).ok();
    open("42").fails().mentions(&["No such device or address"]);
    open("43").fails().mentions(&["not permitted"]);
    d.cli(cli, &["rm", "-f", "dev"]).ok();
}
both!(update_keeps_device_access);
