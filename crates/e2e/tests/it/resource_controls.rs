//! Every resource control of `docker run`/`create`/`update` (issue 21): each one's effect
//! (a `--cpus 0.5` busy loop gets about half a core, `--cpuset-cpus 0` runs on CPU 0 only,
//! `--device-read-bps` throttles a direct read), the cgroup file it lands in on this host's
//! layout (v1/hybrid or v2), `update` changing it live, and the HostConfig, warnings and
//! refusals compared with a private dockerd.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::dockerd::Dockerd;
use crate::harness::{registry, run_cmd, Cli, Daemon, DaemonOptions, Output, TempDir, COMMAND_TIMEOUT};
use crate::resources::cgroup_file;

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).trim().to_string()
}

fn v2() -> bool {
    crate::cgroup_v2::host_is_pure_v2()
}

/// A loop device over a file of this test's, detached (and the file removed) on drop.
struct LoopDevice {
    path: String,
    /// major:minor as the cgroup files write it.
    numbers: String,
    _dir: TempDir,
}

impl LoopDevice {
    fn new(mib: u64) -> LoopDevice {
        let dir = TempDir::new("loopdev");
        let file = dir.0.join("disk.img");
        let f = fs::File::create(&file).expect("create backing file");
        f.set_len(mib << 20).expect("size backing file");
        drop(f);
        let out = Command::new("losetup").args(["-f", "--show"]).arg(&file).output().expect("run losetup");
        assert!(out.status.success(), "losetup: {}", String::from_utf8_lossy(&out.stderr));
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let rdev = std::os::unix::fs::MetadataExt::rdev(&fs::metadata(&path).expect("stat loop device"));
        let numbers = format!("{}:{}", libc::major(rdev), libc::minor(rdev));
        LoopDevice { path, numbers, _dir: dir }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.path]).status();
    }
}

fn pid_of(d: &Daemon, cli: Cli, name: &str) -> i64 {
    let info = d.inspect(cli, name);
    let pid = info["State"]["Pid"].as_i64().unwrap_or(0);
    assert!(pid > 0, "{info}");
    pid
}

/// Each control of `run` lands in its cgroup file (by layout) and in inspect; `update` of each
/// one dockerd lets change changes the file of the running container.
fn controls_land_in_the_cgroup_and_update_changes_them(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    let disk = LoopDevice::new(8);
    let bps = format!("{}:1mb", disk.path);
    let iops = format!("{}:100", disk.path);
    let mut args = vec![
        "run",
        "-d",
        "--name",
        "ctl",
        "--cpuset-cpus",
        "0",
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "25000",
        "-m",
        "64m",
        "--memory-reservation",
        "32m",
        "--device-read-bps",
        &bps,
        "--device-write-iops",
        &iops,
        "--pids-limit",
        "40",
    ];
    if !v2() {
        args.extend(["--memory-swappiness", "10"]);
    }
    args.extend([image.as_str(), "sleep", "1000"]);
    d.cli(cli, &args).ok();
    let info = d.inspect(cli, "ctl");
    let hc = &info["HostConfig"];
    assert_eq!(hc["CpusetCpus"], "0", "{hc}");
    assert_eq!(hc["CpuPeriod"], 50000, "{hc}");
    assert_eq!(hc["CpuQuota"], 25000, "{hc}");
    assert_eq!(hc["MemoryReservation"], 32 << 20, "{hc}");
    assert_eq!(hc["BlkioDeviceReadBps"], serde_json::json!([{"Path": disk.path, "Rate": 1 << 20}]), "{hc}");
    assert_eq!(hc["BlkioDeviceWriteIOps"], serde_json::json!([{"Path": disk.path, "Rate": 100}]), "{hc}");
    let pid = pid_of(&d, cli, "ctl");

    let (cpus, _) = cgroup_file(pid, "cpuset", "cpuset.cpus", "cpuset.cpus");
    assert_eq!(read(&cpus), "0", "{}", cpus.display());
    let (cpu, _) = cgroup_file(pid, "cpu", "cpu.cfs_quota_us", "cpu.max");
    let (reservation, _) = cgroup_file(pid, "memory", "memory.soft_limit_in_bytes", "memory.low");
    assert_eq!(read(&reservation), (32u64 << 20).to_string(), "{}", reservation.display());
    if v2() {
        assert_eq!(read(&cpu), "25000 50000", "{}", cpu.display());
        let (io, _) = cgroup_file(pid, "io", "", "io.max");
        let text = read(&io);
        let line = text.lines().find(|l| l.starts_with(&disk.numbers)).unwrap_or_default();
        assert!(line.contains("rbps=1048576") && line.contains("wiops=100"), "{}: {text}", io.display());
    } else {
        assert_eq!(read(&cpu), "25000", "{}", cpu.display());
        let period = cpu.with_file_name("cpu.cfs_period_us");
        assert_eq!(read(&period), "50000", "{}", period.display());
        let (rbps, _) = cgroup_file(pid, "blkio", "blkio.throttle.read_bps_device", "");
        assert_eq!(read(&rbps), format!("{} 1048576", disk.numbers), "{}", rbps.display());
        let wiops = rbps.with_file_name("blkio.throttle.write_iops_device");
        assert_eq!(read(&wiops), format!("{} 100", disk.numbers), "{}", wiops.display());
        let (swappiness, _) = cgroup_file(pid, "memory", "memory.swappiness", "");
        assert_eq!(read(&swappiness), "10", "{}", swappiness.display());
        assert_eq!(hc["MemorySwappiness"], 10, "{hc}");
    }

    // update: cpuset, quota, reservation, pids change live.
    let ncpu = thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let new_cpus = if ncpu > 1 { "1" } else { "0" };
    d.cli(
        cli,
        &[
            "update",
            "--cpuset-cpus",
            new_cpus,
            "--cpu-quota",
            "40000",
            "--memory-reservation",
            "48m",
            "--pids-limit",
            "30",
            "ctl",
        ],
    )
    .ok();
    assert_eq!(read(&cpus), new_cpus, "{}", cpus.display());
    let quota = if v2() { "40000 50000" } else { "40000" };
    assert_eq!(read(&cpu), quota, "{}", cpu.display());
    assert_eq!(read(&reservation), (48u64 << 20).to_string(), "{}", reservation.display());
    let (pids, _) = cgroup_file(pid, "pids", "pids.max", "pids.max");
    assert_eq!(read(&pids), "30", "{}", pids.display());
    let hc = d.inspect(cli, "ctl")["HostConfig"].clone();
    assert_eq!((hc["CpusetCpus"].as_str(), hc["CpuQuota"].as_i64()), (Some(new_cpus), Some(40000)), "{hc}");
    assert_eq!(hc["MemoryReservation"], 48 << 20, "{hc}");
    // Bad values are refused with dockerd's messages, and change nothing.
    d.cli(cli, &["update", "--memory-reservation", "1m", "ctl"]).fails().mentions(&["Minimum memory reservation"]);
    d.cli(cli, &["update", "--cpuset-cpus", "64", "ctl"]).fails().mentions(&["Requested CPUs are not available"]);
    assert_eq!(read(&reservation), (48u64 << 20).to_string());

    // stats: the limits the controls set.
    // (`wharf stats` has no --format yet: the table's row.)
    let out = d.cli(cli, &["stats", "--no-stream", "ctl"]);
    let text = out.ok().trimmed().to_string();
    assert!(text.contains("/ 64MiB"), "{text}");
    d.cli(cli, &["rm", "-f", "ctl"]).ok();
}
both!(controls_land_in_the_cgroup_and_update_changes_them);

/// CPU time used by the cgroup of `pid` so far, in nanoseconds.
fn cpu_usage_ns(pid: i64) -> u64 {
    let (file, _) = cgroup_file(pid, "cpuacct", "cpuacct.usage", "cpu.stat");
    let text = read(&file);
    if file.ends_with("cpu.stat") {
        let usec = text.lines().find_map(|l| l.strip_prefix("usage_usec ")).and_then(|v| v.parse::<u64>().ok());
        usec.unwrap_or(0) * 1000
    } else {
        text.parse().unwrap_or(0)
    }
}

/// A busy loop under `--cpus 0.5` gets about half a core, and `--cpuset-cpus 0` keeps a
/// container on CPU 0.
#[test]
fn cpus_and_cpuset_have_their_effect() {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.docker(&["pull", "-q", &image]).ok();
    d.docker(&["run", "-d", "--name", "busy", "--cpus", "0.5", &image, "sh", "-c", "while :; do :; done"]).ok();
    let pid = pid_of(&d, Cli::Docker, "busy");
    thread::sleep(Duration::from_millis(300));
    let (t0, u0) = (Instant::now(), cpu_usage_ns(pid));
    thread::sleep(Duration::from_secs(2));
    let (elapsed, used) = (t0.elapsed().as_nanos() as f64, (cpu_usage_ns(pid) - u0) as f64);
    let share = used / elapsed;
    eprintln!("--cpus 0.5 busy loop: {share:.3} of a core over {:.2} s", elapsed / 1e9);
    // The quota caps it at 0.5; a generous band below for a busy 2-core machine.
    assert!((0.2..=0.6).contains(&share), "--cpus 0.5 busy loop got {share:.2} of a core");
    // docker stats puts it at about 50% (of one CPU, as dockerd counts).
    let out = d.docker(&["stats", "--no-stream", "--format", "{{.CPUPerc}}|{{.PIDs}}", "busy"]);
    let text = out.ok().trimmed().to_string();
    let percent: f64 = text.split('%').next().and_then(|p| p.parse().ok()).unwrap_or(-1.0);
    assert!((20.0..=60.0).contains(&percent), "docker stats: {text}");
    d.docker(&["rm", "-f", "busy"]).ok();

    let out =
        d.docker(&["run", "--rm", "--cpuset-cpus", "0", &image, "grep", "Cpus_allowed_list", "/proc/self/status"]);
    let text = out.ok().trimmed().to_string();
    assert_eq!(text.split_whitespace().last(), Some("0"), "{text}");
}

/// `--device-read-bps` throttles an O_DIRECT read of a loop device this test makes: 2 MiB at
/// 1 MiB/s takes more than a second, and well under one without the limit.
#[test]
fn device_read_bps_throttles_a_direct_read() {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.docker(&["pull", "-q", &image]).ok();
    let disk = LoopDevice::new(8);
    let read_2mib = |extra: &[&str]| {
        let mut args = vec!["run", "--rm", "--device", disk.path.as_str()];
        args.extend_from_slice(extra);
        let dd_if = format!("if={}", disk.path);
        args.extend([image.as_str(), "dd", dd_if.as_str(), "of=/dev/null", "bs=64k", "count=32", "iflag=direct"]);
        let t = Instant::now();
        d.docker(&args).ok();
        t.elapsed()
    };
    let free = read_2mib(&[]);
    let limit = format!("{}:1mb", disk.path);
    let throttled = read_2mib(&["--device-read-bps", &limit]);
    eprintln!("2 MiB O_DIRECT read: {free:?} free, {throttled:?} at 1 MiB/s");
    assert!(throttled >= Duration::from_millis(1500), "throttled read took {throttled:?} (free {free:?})");
    assert!(throttled > free + Duration::from_millis(700), "throttled {throttled:?}, free {free:?}");

    // docker stats counts the bytes read in BLOCK I/O.
    let script = format!("dd if={} of=/dev/null bs=64k count=32 iflag=direct && echo read && sleep 100", disk.path);
    d.docker(&["run", "-d", "--name", "reader", "--device", &disk.path, &image, "sh", "-c", &script]).ok();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d.docker(&["logs", "reader"]).stdout.contains("read") {
        assert!(Instant::now() < deadline, "dd did not finish");
        thread::sleep(Duration::from_millis(100));
    }
    let out = d.docker(&["stats", "--no-stream", "--format", "{{.BlockIO}}", "reader"]);
    let text = out.ok().trimmed().to_string();
    let read = text.split(" / ").next().unwrap_or_default();
    let mb: f64 = read.strip_suffix("MB").and_then(|v| v.parse().ok()).unwrap_or(0.0);
    assert!(mb >= 2.0, "docker stats BLOCK I/O {text:?}: the 2 MiB read is not counted");
    d.docker(&["rm", "-f", "reader"]).ok();
}

/// The `HostConfig` fields of HostConfig keys these controls own, as inspect shows them.
const FIELDS: &[&str] = &[
    "CpusetCpus",
    "CpusetMems",
    "CpuPeriod",
    "CpuQuota",
    "CpuShares",
    "NanoCpus",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
    "Memory",
    "MemorySwap",
    "MemoryReservation",
    "MemorySwappiness",
    "KernelMemory",
    "OomKillDisable",
    "OomScoreAdj",
    "PidsLimit",
    "BlkioWeight",
    "BlkioWeightDevice",
    "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps",
    "BlkioDeviceReadIOps",
    "BlkioDeviceWriteIOps",
    "Ulimits",
    "ShmSize",
    "DeviceRequests",
    "CpuCount",
    "CpuPercent",
    "IOMaximumBandwidth",
    "IOMaximumIOps",
];

/// The docker CLI run against both engines at dockerd 20.10's API version: at 1.42 and later
/// the CLI no longer sends `KernelMemory`, so the two would not get the same request.
fn both_at_141(d: &Daemon, docker: &Dockerd, args: &[&str]) -> (Output, Output) {
    let mut ours = d.command(Cli::Docker, args);
    ours.env("DOCKER_API_VERSION", "1.41");
    let mut theirs = docker.command(args);
    theirs.env("DOCKER_API_VERSION", "1.41");
    (run_cmd(ours, COMMAND_TIMEOUT), run_cmd(theirs, COMMAND_TIMEOUT))
}

fn warnings(stderr: &str) -> Vec<String> {
    stderr.lines().filter_map(|l| l.strip_prefix("WARNING: ")).map(str::to_string).collect()
}

/// The same `docker create` flags against wharfd and a private dockerd: the same HostConfig
/// fields in inspect, the same warnings (what this host cannot do is dropped, as
/// `--oom-kill-disable` is reported), and the same refusals.
#[test]
fn create_flags_match_dockerd() {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.docker(&["pull", "-q", &image]).ok();
    let docker = Dockerd::start(&[&registry().addr]).unwrap_or_else(|e| panic!("private dockerd: {e}"));
    docker.cli(&["pull", "-q", &image]).ok();
    let disk = LoopDevice::new(8);
    let dev = |v: &str| format!("{}:{v}", disk.path);
    let (rbps, wbps, riops, wiops, weight) = (dev("1mb"), dev("2mb"), dev("100"), dev("200"), dev("200"));
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec![
            "--cpuset-cpus",
            "0",
            "--cpuset-mems",
            "0",
            "--cpu-period",
            "50000",
            "--cpu-quota",
            "25000",
            "--cpu-shares",
            "512",
            "-m",
            "64m",
            "--memory-swap",
            "128m",
            "--memory-reservation",
            "32m",
            "--memory-swappiness",
            "10",
            "--kernel-memory",
            "8m",
            "--oom-kill-disable",
            "--oom-score-adj",
            "100",
            "--pids-limit",
            "50",
            "--blkio-weight",
            "300",
            "--blkio-weight-device",
            &weight,
            "--device-read-bps",
            &rbps,
            "--device-write-bps",
            &wbps,
            "--device-read-iops",
            &riops,
            "--device-write-iops",
            &wiops,
            "--ulimit",
            "nofile=1024:2048",
            "--shm-size",
            "32m",
        ],
        vec!["--cpus", "1.5", "--memory-swap", "-1", "-m", "32m"],
        vec!["--oom-kill-disable"],
        vec!["--memory-swappiness", "-1", "--pids-limit", "-1"],
    ];
    for (n, flags) in cases.iter().enumerate() {
        let name = format!("same{n}");
        let mut args = vec!["create", "--name", name.as_str()];
        args.extend(flags.iter().copied());
        args.extend([image.as_str(), "true"]);
        let (ours, theirs) = both_at_141(&d, &docker, &args);
        ours.ok();
        theirs.ok();
        assert_eq!(warnings(&ours.stderr), warnings(&theirs.stderr), "{flags:?}: warnings");
        let (a, b) = (d.inspect(Cli::Docker, &name), docker.cli(&["inspect", &name]).json());
        let (a, b): (&Value, &Value) = (&a["HostConfig"], &b[0]["HostConfig"]);
        let differ: Vec<String> = FIELDS
            .iter()
            .filter(|k| a.get(**k) != b.get(**k))
            .map(|k| format!("{k}: wharf {:?}, dockerd {:?}", a.get(*k), b.get(*k)))
            .collect();
        assert!(differ.is_empty(), "{flags:?}:\n{}", differ.join("\n"));
    }

    // `docker info` says what the host's cgroups can limit as dockerd does.
    let (ours, theirs) = both_at_141(&d, &docker, &["info", "--format", "{{json .}}"]);
    let (a, b) = (ours.ok().json(), theirs.ok().json());
    for key in [
        "MemoryLimit",
        "SwapLimit",
        "KernelMemory",
        "KernelMemoryTCP",
        "CpuCfsPeriod",
        "CpuCfsQuota",
        "CPUShares",
        "CPUSet",
        "PidsLimit",
        "OomKillDisable",
    ] {
        assert_eq!(a.get(key), b.get(key), "docker info {key}");
    }

    let refused: Vec<Vec<&str>> = vec![
        vec!["-m", "4m"],
        vec!["-m", "64m", "--memory-swap", "32m"],
        vec!["--memory-swap", "64m"],
        vec!["--memory-swappiness", "101"],
        vec!["--memory-reservation", "1m"],
        vec!["-m", "32m", "--memory-reservation", "64m"],
        vec!["--kernel-memory", "1m"],
        vec!["--cpu-period", "10"],
        vec!["--cpu-quota", "10"],
        vec!["--cpus", "0.5", "--cpu-quota", "50000"],
        vec!["--cpus", "0.5", "--cpu-period", "50000"],
        vec!["--cpus", "64"],
        vec!["--cpuset-cpus", "64"],
        vec!["--cpuset-cpus", "a"],
        vec!["--cpuset-mems", "7"],
        vec!["--oom-score-adj", "2000"],
        vec!["--cpu-rt-period", "1000", "--cpu-rt-runtime", "2000"],
    ];
    for flags in &refused {
        let mut args = vec!["create"];
        args.extend(flags.iter().copied());
        args.extend([image.as_str(), "true"]);
        let (ours, theirs) = both_at_141(&d, &docker, &args);
        assert_eq!(ours.code, theirs.code, "{flags:?}:\nwharf: {ours}\ndockerd: {theirs}");
        let message = |o: &Output| {
            o.stderr.lines().find(|l| l.contains("Error response from daemon")).unwrap_or_default().to_string()
        };
        assert_eq!(message(&ours), message(&theirs), "{flags:?}");
    }
}

/// `docker update` of each control dockerd's update takes, one after another on a running
/// container of each engine: the same exit codes and messages, then the same fields.
#[test]
fn update_matches_dockerd() {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.docker(&["pull", "-q", &image]).ok();
    let docker = Dockerd::start(&[&registry().addr]).unwrap_or_else(|e| panic!("private dockerd: {e}"));
    docker.cli(&["pull", "-q", &image]).ok();
    let run = ["run", "-d", "--name", "upd", "-m", "64m", image.as_str(), "sleep", "1000"];
    d.docker(&run).ok();
    docker.cli(&run).ok();
    let steps: &[&[&str]] = &[
        &["--blkio-weight", "300"],
        &["--cpu-rt-runtime", "1000"],
        &["--memory-reservation", "128m"],
        &["--memory-reservation", "1m"],
        &["--memory-reservation", "32m"],
        &["--cpuset-cpus", "0"],
        &["--cpuset-mems", "0"],
        &["--cpuset-cpus", "64"],
        &["--cpus", "0.5"],
        &["--cpu-quota", "20000"],
        &["--memory", "4m"],
        &["--memory", "96m"],
        &["--memory", "256m"],
        &["--memory", "256m", "--memory-swap", "512m"],
        &["--pids-limit", "20"],
        &["--cpu-period", "500"],
        &["--cpu-shares", "512"],
        &["--restart", "on-failure:3"],
    ];
    let id_a = d.inspect(Cli::Docker, "upd")["Id"].as_str().unwrap_or_default().to_string();
    let id_b = docker.cli(&["inspect", "upd"]).json()[0]["Id"].as_str().unwrap_or_default().to_string();
    for step in steps {
        let mut args = vec!["update"];
        args.extend(step.iter().copied());
        args.push("upd");
        let (ours, theirs) = (d.docker(&args), docker.cli(&args));
        assert_eq!(ours.code, theirs.code, "{step:?}:\nwharf: {ours}\ndockerd: {theirs}");
        let (a, b) = (ours.stderr.replace(&id_a, "ID"), theirs.stderr.replace(&id_b, "ID"));
        assert_eq!(a.trim(), b.trim(), "{step:?}: stderr");
    }
    let (a, b) = (d.inspect(Cli::Docker, "upd"), docker.cli(&["inspect", "upd"]).json());
    let (a, b): (&Value, &Value) = (&a["HostConfig"], &b[0]["HostConfig"]);
    let differ: Vec<String> = FIELDS
        .iter()
        .chain(&["RestartPolicy"])
        .filter(|k| a.get(**k) != b.get(**k))
        .map(|k| format!("{k}: wharf {:?}, dockerd {:?}", a.get(*k), b.get(*k)))
        .collect();
    assert!(differ.is_empty(), "after the updates:\n{}", differ.join("\n"));
    // And the running container's cgroup has the new values.
    let pid = pid_of(&d, Cli::Docker, "upd");
    let (reservation, _) = cgroup_file(pid, "memory", "memory.soft_limit_in_bytes", "memory.low");
    assert_eq!(read(&reservation), (32u64 << 20).to_string(), "{}", reservation.display());
    let (cpus, _) = cgroup_file(pid, "cpuset", "cpuset.cpus", "cpuset.cpus");
    assert_eq!(read(&cpus), "0", "{}", cpus.display());
}

/// What wharf cannot do yet is refused clearly at create: `--gpus`, and `--storage-opt size=`
/// on a data root without project quotas.
#[test]
fn gpus_and_storage_opt_are_refused_clearly() {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.docker(&["pull", "-q", &image]).ok();
    d.docker(&["create", "--gpus", "all", &image, "true"]).fails().mentions(&["no GPU", "support yet"]);
    d.wharf(&["create", "--gpus", "all", &image, "true"]).fails().mentions(&["no GPU", "support yet"]);
    d.docker(&["create", "--storage-opt", "size=1G", &image, "true"]).fails().mentions(&["--storage-opt", "pquota"]);
    d.docker(&["create", "--storage-opt", "bogus=1", &image, "true"]).fails().mentions(&["Unknown option bogus"]);
    let listed = d.docker(&["ps", "-aq"]);
    assert_eq!(listed.ok().trimmed(), "", "a refused create left a container");
}

/// `--cpu-rt-*` on this host (v1 `cpu.rt_*` present): a period alone starts, a runtime the
/// daemon's cgroup has no real-time budget for fails at start naming the file, as with
/// dockerd and runc; on cgroup v2 create refuses it (no real-time group scheduling there).
#[test]
fn realtime_cpu_as_dockerd() {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.docker(&["pull", "-q", &image]).ok();
    if v2() {
        d.docker(&["create", "--cpu-rt-runtime", "1000", &image, "true"])
            .fails()
            .mentions(&["Your kernel does not support CPU real-time scheduler"]);
        return;
    }
    let docker = Dockerd::start(&[&registry().addr]).unwrap_or_else(|e| panic!("private dockerd: {e}"));
    docker.cli(&["pull", "-q", &image]).ok();
    for (flags, starts) in [(&["--cpu-rt-period", "1000000"][..], true), (&["--cpu-rt-runtime", "95000"][..], false)] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend([image.as_str(), "true"]);
        let (ours, theirs) = (d.docker(&args), docker.cli(&args));
        assert_eq!(ours.code, theirs.code, "{flags:?}:\nwharf: {ours}\ndockerd: {theirs}");
        assert_eq!(ours.success(), starts, "{flags:?}: {ours}");
        if !starts {
            ours.mentions(&["cpu.rt_runtime_us", "invalid argument"]);
        }
    }
}

/// The daemon's `--cpu-rt-runtime`/`--cpu-rt-period`, as dockerd's: written at each start into
/// the cgroups down to the containers' parent, which then has the real-time budget that a
/// container's own `--cpu-rt-runtime` needs to start (without it, it fails at start: see
/// [`realtime_cpu_as_dockerd`]); on cgroup v2 (no real-time group scheduling) a start fails.
#[test]
fn daemon_realtime_budget_as_dockerd() {
    let budget = ["--cpu-rt-period", "1000000", "--cpu-rt-runtime", "95000"];
    let d = Daemon::start_with(DaemonOptions {
        extra_args: budget.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    });
    let image = registry().image("library/busybox:latest");
    d.docker(&["pull", "-q", &image]).ok();
    if v2() {
        d.docker(&["run", "--rm", &image, "true"]).fails().mentions(&["unable to init CPU RT controller"]);
        return;
    }
    let docker =
        Dockerd::start_with_args(&[&registry().addr], &budget).unwrap_or_else(|e| panic!("private dockerd: {e}"));
    docker.cli(&["pull", "-q", &image]).ok();
    let args = ["run", "--rm", "--cpu-rt-runtime", "95000", image.as_str(), "true"];
    let (ours, theirs) = (d.docker(&args), docker.cli(&args));
    assert_eq!(ours.code, theirs.code, "wharf: {ours}\ndockerd: {theirs}");
    ours.ok();
    for parent in [&d.cgroup_parent, &docker.cgroup_parent] {
        let dir = Path::new("/sys/fs/cgroup/cpu").join(parent.trim_start_matches('/'));
        assert_eq!(read(&dir.join("cpu.rt_runtime_us")), "95000", "{}", dir.display());
        assert_eq!(read(&dir.join("cpu.rt_period_us")), "1000000", "{}", dir.display());
    }
    // More than the parent's budget fails at start, in both.
    let args = ["run", "--rm", "--cpu-rt-runtime", "96000", image.as_str(), "true"];
    let (ours, theirs) = (d.docker(&args), docker.cli(&args));
    assert_eq!(ours.code, theirs.code, "wharf: {ours}\ndockerd: {theirs}");
    ours.fails().mentions(&["cpu.rt_runtime_us"]);
    // `update` of a running container's budget is taken and shown, and its cgroup left as it
    // was, in both (dockerd 20.10 does not pass real-time values to the running container).
    let args = ["run", "-d", "--cpu-rt-runtime", "50000", image.as_str(), "sleep", "300"];
    let (ours, theirs) = (d.docker(&args).ok().trimmed().to_string(), docker.cli(&args).ok().trimmed().to_string());
    d.docker(&["update", "--cpu-rt-runtime", "60000", &ours]).ok();
    docker.cli(&["update", "--cpu-rt-runtime", "60000", &theirs]).ok();
    for (parent, id, shown) in [
        (&d.cgroup_parent, &ours, d.docker(&["inspect", "-f", "{{.HostConfig.CpuRealtimeRuntime}}", &ours])),
        (&docker.cgroup_parent, &theirs, docker.cli(&["inspect", "-f", "{{.HostConfig.CpuRealtimeRuntime}}", &theirs])),
    ] {
        assert_eq!(shown.ok().trimmed(), "60000");
        let dir = Path::new("/sys/fs/cgroup/cpu").join(parent.trim_start_matches('/')).join(id);
        assert_eq!(read(&dir.join("cpu.rt_runtime_us")), "50000", "{}", dir.display());
    }
    d.docker(&["rm", "-f", &ours]).ok();
    docker.cli(&["rm", "-f", &theirs]).ok();
}
