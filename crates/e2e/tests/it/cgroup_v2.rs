//! The cgroup v2 paths, for real. These tests run in the pure cgroup v2 guest that
//! `scripts/test-cgroup-v2` boots (this machine has hybrid cgroups). Elsewhere they say they
//! were skipped and return, unless `WHARF_E2E_CGROUP_V2=1` says the host must be pure v2: the
//! guest suite sets it, so there a missing cgroup2 root is a failure, not a skip.
//!
//! What they check is what dockerd (with runc) does on a cgroup v2 host.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{registry, run_cmd, unique, Cli, Daemon};

/// Whether /sys/fs/cgroup is one cgroup2 hierarchy (no v1 controllers anywhere).
pub(crate) fn host_is_pure_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").is_file()
}

/// What `memory.swap.max` of a container with `--memory-swap SWAP` holds on v2: memory and
/// swap count apart (`swap_bytes` is SWAP minus the memory limit), and wharfd, as dockerd,
/// limits swap only when its own cgroup (the tests', which start it) has `memory.swap.max`:
/// the root cgroup, where the guest's tests run, has none, so there swap is unlimited.
pub(crate) fn expected_swap_max(swap_bytes: u64) -> String {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let dir = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap_or("/").trim_start_matches('/').to_string();
    if Path::new("/sys/fs/cgroup").join(dir).join("memory.swap.max").exists() {
        swap_bytes.to_string()
    } else {
        "max".to_string()
    }
}

/// Whether this host is pure cgroup v2; panics when the suite says it must be and it is not.
fn pure_v2() -> bool {
    let v2 = host_is_pure_v2();
    if !v2 {
        assert!(
            std::env::var_os("WHARF_E2E_CGROUP_V2").is_none(),
            "WHARF_E2E_CGROUP_V2 is set but /sys/fs/cgroup is not a cgroup2 mount"
        );
        eprintln!("skipped: not a pure cgroup v2 host (scripts/test-cgroup-v2 runs this in a guest that is)");
    }
    v2
}

/// A process's cgroup directory on the host, from its `0::` line.
fn cgroup_dir(pid: i64) -> PathBuf {
    let (_, path) = crate::resources::cgroup_file(pid, "memory", "", "");
    PathBuf::from(format!("/sys/fs/cgroup{path}"))
}

#[track_caller]
fn assert_file(dir: &Path, name: &str, want: &str) {
    let path = dir.join(name);
    let got = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(got.trim(), want, "{}", path.display());
}

fn pid_of(d: &Daemon, name: &str) -> i64 {
    let pid = d.inspect(Cli::Docker, name)["State"]["Pid"].as_i64().unwrap_or(0);
    assert!(pid > 0, "{name} has no pid");
    pid
}

/// Limits land in the unified files with runc's conversions, `docker update` rewrites them,
/// the cgroup namespace is private by default (dockerd's default on v2), an exec joins the
/// container's cgroup, and the directory goes with the container.
#[test]
fn limits_land_in_the_v2_files_and_update_changes_them() {
    if !pure_v2() {
        return;
    }
    let d = Daemon::start();
    let image = d.pull("library/busybox:latest");
    let args = [
        "run",
        "-d",
        "--name",
        "lim",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "-m",
        "64m",
        "--memory-swap",
        "96m",
        "--memory-reservation",
        "32m",
        "--pids-limit",
        "20",
        &image,
        "sleep",
        "1000",
    ];
    let id = d.docker(&args).ok().trimmed().to_string();
    let dir = cgroup_dir(pid_of(&d, "lim"));
    assert!(dir.to_string_lossy().contains(&id), "{} does not name {id}", dir.display());
    assert_file(&dir, "cpu.max", "50000 100000");
    // runc's shares → weight: 1 + (shares - 2) * 9999 / 262142.
    assert_file(&dir, "cpu.weight", "20");
    assert_file(&dir, "memory.max", "67108864");
    // v2 counts swap apart: --memory-swap is memory + swap.
    assert_file(&dir, "memory.swap.max", &expected_swap_max(33554432));
    assert_file(&dir, "memory.low", "33554432");
    assert_file(&dir, "pids.max", "20");

    let info = d.inspect(Cli::Docker, "lim");
    assert_eq!(info["HostConfig"]["CgroupnsMode"], "private", "{}", info["HostConfig"]);
    assert_eq!(d.docker(&["exec", "lim", "cat", "/proc/self/cgroup"]).ok().trimmed(), "0::/");
    // The container sees its own limits at the root of its /sys/fs/cgroup.
    assert_eq!(d.docker(&["exec", "lim", "cat", "/sys/fs/cgroup/memory.max"]).ok().trimmed(), "67108864");

    d.docker(&["exec", "-d", "lim", "sleep", "500"]).ok();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        if procs.lines().count() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the exec's process never joined {}: {procs:?}", dir.display());
        std::thread::sleep(Duration::from_millis(100));
    }

    d.docker(&[
        "update",
        "--cpus",
        "1",
        "--cpu-shares",
        "1024",
        "-m",
        "128m",
        "--memory-swap",
        "256m",
        "--pids-limit",
        "30",
        "lim",
    ])
    .ok();
    assert_file(&dir, "cpu.max", "100000 100000");
    assert_file(&dir, "cpu.weight", "39");
    assert_file(&dir, "memory.max", "134217728");
    assert_file(&dir, "memory.swap.max", &expected_swap_max(134217728));
    assert_file(&dir, "pids.max", "30");
    // The new pids limit bites.
    d.docker(&["exec", "lim", "sh", "-c", "for i in $(seq 40); do sleep 100 & done"]).fails().mentions(&["can't fork"]);

    d.docker(&["rm", "-f", "lim"]).ok();
    assert!(!dir.exists(), "{} left after rm -f", dir.display());
}

/// The OOM killer's kill shows in `memory.events` and is reported as dockerd reports it:
/// exit 137, `OOMKilled: true`, an `oom` event before the `die`. (`--oom-kill-disable`, which
/// has no v2 file, is isolation::oom_kill_disable.)
#[test]
fn oom_kill_is_reported_from_memory_events() {
    if !pure_v2() {
        return;
    }
    let d = Daemon::start();
    let image = d.pull("library/busybox:latest");
    let out = d.docker(&["run", "--name", "oom", "-m", "16m", "--memory-swap", "16m", &image, "tail", "/dev/zero"]);
    assert_eq!(out.code, 137, "{out}");
    let info = d.inspect(Cli::Docker, "oom");
    assert_eq!(info["State"]["OOMKilled"], true, "{}", info["State"]);
    assert_eq!(info["State"]["ExitCode"], 137, "{}", info["State"]);
    // Until a moment from now rather than `0s`: the emulated guest's vCPU clocks can be some
    // milliseconds apart, and the `oom` and `die` of a moment ago then fell after "now".
    let until = (std::time::SystemTime::now() + std::time::Duration::from_secs(2))
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        .to_string();
    let events = d.docker(&[
        "events",
        "--since",
        "0",
        "--until",
        &until,
        "--filter",
        "container=oom",
        "--format",
        "{{.Action}}",
    ]);
    let actions: Vec<&str> = events.ok().stdout.lines().collect();
    let at = |a: &str| actions.iter().position(|x| *x == a);
    assert!(at("oom").is_some() && at("oom") < at("die"), "{actions:?}");
}

/// `docker pause` freezes through `cgroup.freeze` and waits for `frozen 1` in cgroup.events;
/// unpause thaws. The device program is the only device control: there is no devices
/// controller on v2, and a node the rules do not allow cannot be opened even when made.
#[test]
fn pause_uses_cgroup_freeze_and_devices_are_the_bpf_program() {
    if !pure_v2() {
        return;
    }
    let d = Daemon::start();
    let image = d.pull("library/busybox:latest");
    d.docker(&["run", "-d", "--name", "pz", &image, "sleep", "1000"]).ok();
    let dir = cgroup_dir(pid_of(&d, "pz"));
    d.docker(&["pause", "pz"]).ok();
    assert_file(&dir, "cgroup.freeze", "1");
    let events = fs::read_to_string(dir.join("cgroup.events")).expect("cgroup.events");
    assert!(events.lines().any(|l| l == "frozen 1"), "{events}");
    assert_eq!(d.inspect(Cli::Docker, "pz")["State"]["Status"], "paused");
    d.docker(&["unpause", "pz"]).ok();
    assert_file(&dir, "cgroup.freeze", "0");
    d.docker(&["rm", "-f", "pz"]).ok();

    assert!(!fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default().contains("devices"));
    // mknod is allowed (Docker's default rules have `c *:* m`), opening /dev/mem's node is not;
    // /dev/null's node opens. /dev/mem also needs CAP_SYS_RAWIO, given in both runs, so that
    // only the device program tells them apart.
    let script = "mknod /tmp/mem c 1 1 && mknod /tmp/null c 1 3 && echo x > /tmp/null && cat /tmp/mem";
    let out = d.docker(&["run", "--rm", "--cap-add", "SYS_RAWIO", &image, "sh", "-c", script]);
    out.fails().mentions(&["Operation not permitted"]);
    let out = d.docker(&[
        "run",
        "--rm",
        "--cap-add",
        "SYS_RAWIO",
        "--device-cgroup-rule",
        "c 1:1 r",
        &image,
        "sh",
        "-c",
        "mknod /tmp/mem c 1 1 && head -c 1 /tmp/mem >/dev/null && echo read",
    ]);
    assert_eq!(out.ok().trimmed(), "read");
}

/// The building blocks of a later rootless mode that cgroup v2 gives: root delegates a
/// subtree to an unprivileged user (the directory and its cgroup.procs, cgroup.subtree_control
/// and cgroup.threads chowned, as systemd's Delegate=yes does); that user then makes its own
/// child cgroups, moves its processes between them, sets memory and pids limits that the
/// kernel enforces, and, in a user namespace of its own, mounts an overlay and gets a cgroup
/// namespace.
#[test]
fn a_delegated_subtree_works_for_an_unprivileged_user() {
    if !pure_v2() {
        return;
    }
    let uid = 54321;
    let root = PathBuf::from("/sys/fs/cgroup").join(unique("wharf-e2e-deleg"));
    fs::create_dir(&root).expect("mkdir the delegated cgroup");
    let cleanup = Cleanup(root.clone());
    fs::write(root.join("cgroup.subtree_control"), "+memory +pids").expect("enable memory and pids below it");
    let start = root.join("start");
    fs::create_dir(&start).expect("mkdir start");
    for p in [
        &root,
        &root.join("cgroup.procs"),
        &root.join("cgroup.subtree_control"),
        &root.join("cgroup.threads"),
        &start,
        &start.join("cgroup.procs"),
    ] {
        std::os::unix::fs::chown(p, Some(uid), Some(uid)).unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
    }
    let scratch = crate::harness::TempDir::new("wharf-e2e-deleg");
    std::os::unix::fs::chown(&scratch.0, Some(uid), Some(uid)).expect("chown scratch");

    // Run as the user: the shell is moved into `start` by root (the only move that needs the
    // common ancestor's cgroup.procs), everything after by the user alone.
    let script = format!(
        r#"set -e
r={root}
export r
mkdir $r/work
echo $$ > $r/work/cgroup.procs
grep -qx "0::${{r#/sys/fs/cgroup}}/work" /proc/self/cgroup
echo 8388608 > $r/work/memory.max
echo 8 > $r/work/pids.max
cat $r/work/memory.max $r/work/pids.max
if sh -c 'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 30 >/dev/null 2>&1 & done' 2>/dev/null; then echo "pids.max not enforced"; exit 1; fi
echo pids-enforced
echo max > $r/work/pids.max
# The hog in a cgroup of its own, so that the OOM killer's victim can only be the hog (in
# `work` it once took this shell instead).
mkdir $r/mem
echo 8388608 > $r/mem/memory.max
if sh -c 'echo $$ > $r/mem/cgroup.procs && x=$(head -c 33554432 /dev/zero | tr "\0" a); echo ${{#x}}' >/dev/null 2>&1; then echo "memory.max not enforced"; exit 1; fi
grep -q "oom_kill [1-9]" $r/mem/memory.events && echo memory-enforced
s={scratch}
mkdir $s/l $s/u $s/w $s/m
echo lower > $s/l/f
unshare --user --map-root-user --mount --cgroup sh -c "mount -t overlay o -o lowerdir=$s/l,upperdir=$s/u,workdir=$s/w $s/m && cat $s/m/f && echo up > $s/m/g && cat /proc/self/cgroup"
cat $s/u/g
"#,
        root = root.display(),
        scratch = scratch.0.display(),
    );
    // The move into `start` is root's (it needs the common ancestor's cgroup.procs); the
    // shell then drops to the user and does the rest alone.
    let wrapper = format!(
        "echo $$ > {start}/cgroup.procs && exec setpriv --reuid {uid} --regid {uid} --clear-groups -- sh -c '{}'",
        script.replace('\'', r"'\''"),
        start = start.display(),
    );
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(wrapper);
    let out = run_cmd(cmd, Duration::from_secs(120));
    assert!(out.success(), "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(&lines[..2], ["8388608", "8"], "{out}");
    for want in ["pids-enforced", "memory-enforced", "lower", "0::/", "up"] {
        assert!(lines.contains(&want), "{want} missing:\n{out}");
    }
    drop(cleanup);
}

/// Removes a test's cgroup tree after killing what is left in it (`cgroup.kill` takes the
/// whole subtree) and waiting until it is empty.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = fs::write(self.0.join("cgroup.kill"), "1");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && fs::read_to_string(self.0.join("cgroup.events")).is_ok_and(|e| e.lines().any(|l| l == "populated 1"))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        crate::harness::remove_cgroup_tree(&self.0);
    }
}

/// Runs the same container on wharfd and on a private dockerd in the guest and compares what
/// a client sees of its cgroup: HostConfig's cgroup fields in inspect, /proc/self/cgroup and
/// the limits at the root of the container's /sys/fs/cgroup.
#[test]
fn compared_with_dockerd_on_v2() {
    if !pure_v2() {
        return;
    }
    let dockerd =
        crate::dockerd::Dockerd::start(&[&registry().addr]).unwrap_or_else(|e| panic!("private dockerd: {e}"));
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    let script = "cat /proc/self/cgroup; cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpu.weight; ls /sys/fs/cgroup | grep -c .";
    let args = [
        "run",
        "--rm",
        "-m",
        "48m",
        "--pids-limit",
        "33",
        "--cpus",
        "1.5",
        "--cpu-shares",
        "2048",
        &image,
        "sh",
        "-c",
        script,
    ];
    let ours = {
        d.docker(&["pull", &image]).ok();
        d.docker(&args).ok().stdout.clone()
    };
    let theirs = {
        dockerd.cli(&["pull", &image]).ok();
        dockerd.cli(&args).ok().stdout.clone()
    };
    assert_eq!(ours, theirs, "wharfd and dockerd differ on v2");
    // What a --privileged container may write in its own /sys/fs/cgroup, in either namespace.
    for ns in ["private", "host"] {
        let write = "echo 77 > /sys/fs/cgroup/pids.max; cat /sys/fs/cgroup/pids.max";
        let args = ["run", "--rm", "--privileged", "--cgroupns", ns, "--pids-limit", "33", &image, "sh", "-c", write];
        let (ours, theirs) = (d.docker(&args), dockerd.cli(&args));
        assert_eq!(
            (ours.code, ours.stdout.trim()),
            (theirs.code, theirs.stdout.trim()),
            "--cgroupns {ns}: {ours}\n{theirs}"
        );
    }
    let fields = |out: &crate::harness::Output| {
        let v = out.json();
        let hc = &v[0]["HostConfig"];
        ["CgroupnsMode", "Memory", "MemorySwap", "PidsLimit", "NanoCpus", "CpuShares", "Cgroup"]
            .iter()
            .map(|k| format!("{k}={}", hc[*k]))
            .collect::<Vec<_>>()
    };
    let create = ["create", "--name", "cmp", "-m", "48m", "--pids-limit", "33", &image, "true"];
    d.docker(&create).ok();
    dockerd.cli(&create).ok();
    assert_eq!(fields(&d.docker(&["inspect", "cmp"])), fields(&dockerd.cli(&["inspect", "cmp"])));
}
