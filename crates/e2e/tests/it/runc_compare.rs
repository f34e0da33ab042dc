//! The bundle wharf generates, run once by wharf's runtime and once by runc (Debian's package):
//! what the process sees (namespaces, mounts, credentials, capabilities, env, cwd, hostname,
//! cgroup limits) must be the same.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{cgroup_dirs, mounts_under, registry, run_cmd, unique, wait_for, Daemon, TempDir};

/// What the container prints, one tagged line each, then parks in `sleep` so that its cgroup
/// can be read from the host while it lives.
const SCRIPT: &str = r#"
for n in cgroup ipc mnt net pid user uts; do echo "ns $n $(readlink /proc/self/ns/$n)"; done
sed 's/^/mount /' /proc/$$/mountinfo
grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/$$/status | sed 's/^/status /'
env | sort | sed 's/^/env /'
echo "pwd $(pwd)"
echo "hostname $(hostname)"
echo "umask $(umask)"
echo ---end
exec sleep 1000
"#;

/// The host's files of the container's cgroup for `pid`, as `controller/file=value` lines;
/// the cgroup path itself differs between the two runs and is left out.
fn cgroup_limits(pid: i64) -> Vec<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mut out = Vec::new();
    let v1: &[(&str, &[&str])] = &[
        ("memory", &["memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.swappiness"]),
        ("pids", &["pids.max"]),
        ("cpu", &["cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares"]),
        ("devices", &["devices.list"]),
    ];
    let mut v2_path = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if ctrls.is_empty() {
            v2_path = Some(path.to_string());
            continue;
        }
        for (ctrl, files) in v1 {
            if !ctrls.split(',').any(|c| c == *ctrl) {
                continue;
            }
            for f in *files {
                let p = format!("/sys/fs/cgroup/{ctrl}{path}/{f}");
                let v = fs::read_to_string(&p).unwrap_or_else(|e| format!("<{e}>"));
                // devices.list is in the order the rules were written: runc writes the
                // result of its rule emulator sorted, wharf the rules as given. The set is
                // what counts.
                let mut lines: Vec<&str> = v.lines().collect();
                lines.sort_unstable();
                for l in lines {
                    out.push(format!("cgroup {ctrl}/{f}={l}"));
                }
            }
        }
    }
    // Pure v2: the limits live in the unified hierarchy. On a hybrid host it has no
    // controllers and nothing to compare.
    if out.is_empty() {
        if let Some(path) = v2_path {
            for f in ["memory.max", "memory.swap.max", "pids.max", "cpu.max", "cpu.weight"] {
                let v = fs::read_to_string(format!("/sys/fs/cgroup{path}/{f}")).unwrap_or_else(|e| format!("<{e}>"));
                out.push(format!("cgroup {f}={}", v.trim()));
            }
        }
    }
    out
}

/// The container's report with what legitimately differs between two runs taken out:
/// namespace inode numbers become `host` or `new`, a mount line keeps its mount point, file
/// system type and per-mount options (not ids, devices or sources).
fn normalize(output: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("ns ") {
            let (kind, link) = rest.split_once(' ').unwrap_or((rest, ""));
            let host = fs::read_link(format!("/proc/self/ns/{kind}")).map(|p| p.display().to_string());
            let same = host.as_deref().map(|h| h == link).unwrap_or(false);
            out.push(format!("ns {kind} {}", if same { "host" } else { "new" }));
        } else if let Some(rest) = line.strip_prefix("mount ") {
            let (pre, post) = rest.split_once(" - ").unwrap_or((rest, ""));
            let pre: Vec<&str> = pre.split(' ').collect();
            let fstype = post.split(' ').next().unwrap_or("");
            let point = pre.get(4).copied().unwrap_or("");
            let opts = pre.get(5).copied().unwrap_or("");
            out.push(format!("mount {point} {fstype} {opts}"));
        } else if line.starts_with("env HOSTNAME=") {
            // Both set it from the same config; kept.
            out.push(line.to_string());
        } else if !line.trim().is_empty() {
            out.push(line.trim_end().to_string());
        }
    }
    out
}

/// Everything the runc run creates, undone on drop even when an assertion failed: the
/// container (`runc delete -f`), the rootfs overlay, the cgroup, the directory.
struct RuncRun {
    dir: TempDir,
    state: PathBuf,
    id: String,
    rootfs: PathBuf,
    cgroup: String,
}

impl RuncRun {
    fn runc(&self, args: &[&str]) -> crate::harness::Output {
        let mut cmd = Command::new("runc");
        cmd.arg("--root").arg(&self.state).args(args);
        run_cmd(cmd, Duration::from_secs(60))
    }
}

impl Drop for RuncRun {
    fn drop(&mut self) {
        let _ = self.runc(&["delete", "-f", &self.id]);
        // Only this run's own mount: never the rootfs of anything else.
        for mp in mounts_under(&self.rootfs).into_iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(&mp).status();
        }
        for d in cgroup_dirs(&self.cgroup) {
            let _ = fs::remove_dir(&d);
        }
        let leaks: Vec<String> = mounts_under(&self.dir.0)
            .iter()
            .map(|m| m.display().to_string())
            .chain(cgroup_dirs(&self.cgroup).iter().map(|d| d.display().to_string()))
            .collect();
        if !leaks.is_empty() && !std::thread::panicking() {
            panic!("runc comparison left behind: {leaks:?}");
        }
    }
}

/// The overlay options of the bundle with a fresh upper and work dir, so runc's container
/// writes nowhere near wharf's.
fn overlay_options(annotation: &str, upper: &Path, work: &Path) -> String {
    annotation
        .split(',')
        .map(|o| {
            if o.starts_with("upperdir=") {
                format!("upperdir={}", upper.display())
            } else if o.starts_with("workdir=") {
                format!("workdir={}", work.display())
            } else {
                o.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn wait_for_end(what: &str, mut read: impl FnMut() -> String) -> String {
    let mut text = String::new();
    let done = wait_for(Duration::from_secs(30), || {
        text = read();
        text.contains("---end")
    });
    assert!(done, "{what} did not finish its report:\n{text}");
    text.split("---end").next().unwrap_or("").to_string()
}

fn diff(wharf: &[String], runc: &[String]) -> String {
    let mut out = String::new();
    for l in wharf.iter().filter(|l| !runc.contains(l)) {
        out.push_str(&format!("  only under wharf: {l}\n"));
    }
    for l in runc.iter().filter(|l| !wharf.contains(l)) {
        out.push_str(&format!("  only under runc:  {l}\n"));
    }
    out
}

/// The issue's case: limits, a non-root user, a working directory, env and hostname.
#[test]
fn same_bundle_same_view_under_runc() {
    compare(&["-u", "1000"], "1000");
}

/// As root the capability sets are not cleared at exec: CapEff shows Docker's default set.
#[test]
fn same_bundle_same_view_under_runc_as_root() {
    compare(&[], "0");
}

/// Creates a container with `user_args`, runs it under wharf then its bundle under runc, and
/// compares the two reports; `uid` is what the container must report.
fn compare(user_args: &[&str], uid: &str) {
    // The reference runtime is part of the test setup (.ci/run installs it): without it this
    // test fails, saying so, rather than passing without comparing anything.
    let runc = Command::new("runc").arg("--version").stdout(Stdio::null()).status();
    assert!(runc.is_ok_and(|s| s.success()), "this test needs runc (apt-get install runc)");
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.wharf(&["pull", &image]).ok();
    let mut args = vec!["create", "--name", "cmp", "--memory", "64m", "--pids-limit", "50", "--cpus", "0.5"];
    args.extend_from_slice(user_args);
    args.extend(["-w", "/tmp", "-e", "FOO=bar", "--hostname", "cmp", &image, "sh", "-c", SCRIPT]);
    let out = d.wharf(&args);
    out.ok();
    let id = out.trimmed().to_string();

    // Under wharf.
    d.wharf(&["start", "cmp"]).ok();
    let wharf_text = wait_for_end("the container under wharf", || d.wharf(&["logs", "cmp"]).stdout);
    let info = d.inspect(crate::harness::Cli::Wharf, "cmp");
    let pid = info["State"]["Pid"].as_i64().unwrap_or(0);
    assert!(pid > 0, "{info}");
    let mut wharf_view = normalize(&wharf_text);
    wharf_view.extend(cgroup_limits(pid));
    let bundle_config = d.data_root.join("containers").join(&id).join("config.json");
    let config_text = fs::read_to_string(&bundle_config).unwrap_or_else(|e| panic!("{}: {e}", bundle_config.display()));
    // Stopped, not removed: the bundle's hosts, hostname and resolv.conf stay for runc.
    d.wharf(&["kill", "cmp"]).ok();

    // Under runc, the same config.json with its rootfs mounted and its own cgroup.
    let mut config: Value = serde_json::from_str(&config_text).expect("config.json is JSON");
    let annotation = config["annotations"]["io.wharf.rootfs.overlay"].as_str().unwrap_or_default().to_string();
    assert!(annotation.contains("lowerdir="), "no overlay annotation in {config}");
    let dir = TempDir::new("runc-cmp");
    let run = RuncRun {
        state: dir.0.join("state"),
        rootfs: dir.0.join("rootfs"),
        id: unique("wharf-runc-cmp"),
        cgroup: format!("/{}", unique("wharf-runc-cmp")),
        dir,
    };
    for sub in ["state", "rootfs", "upper", "work", "bundle"] {
        fs::create_dir_all(run.dir.0.join(sub)).expect("create runc dirs");
    }
    let opts = overlay_options(&annotation, &run.dir.0.join("upper"), &run.dir.0.join("work"));
    let mounted = Command::new("mount").args(["-t", "overlay", "overlay", "-o", &opts]).arg(&run.rootfs).status();
    assert!(mounted.is_ok_and(|s| s.success()), "mount overlay -o {opts} on {}", run.rootfs.display());
    config["root"]["path"] = Value::String(run.rootfs.display().to_string());
    config["linux"]["cgroupsPath"] = Value::String(run.cgroup.clone());
    // wharf's container joined a network namespace wharfd prepared (bind-mounted under the exec
    // root) and released when it stopped: runc gets a fresh one of its own, as the report only
    // compares namespace identities and the namespace's own contents are networking's business.
    if let Some(nss) = config["linux"]["namespaces"].as_array_mut() {
        for ns in nss.iter_mut() {
            if let Some(o) = ns.as_object_mut() {
                o.remove("path");
            }
        }
    }
    let bundle = run.dir.0.join("bundle");
    fs::write(bundle.join("config.json"), config.to_string()).expect("write runc config.json");

    let log_path = run.dir.0.join("runc-output");
    let log = fs::File::create(&log_path).expect("create runc output file");
    let pid_file = run.dir.0.join("pid");
    let mut cmd = Command::new("runc");
    cmd.arg("--root").arg(&run.state).args(["run", "-d", "--bundle"]).arg(&bundle);
    cmd.arg("--pid-file").arg(&pid_file).arg(&run.id);
    cmd.stdin(Stdio::null()).stdout(log.try_clone().expect("dup")).stderr(log);
    let started = cmd.status().map(|s| s.success()).unwrap_or(false);
    assert!(started, "runc run failed:\n{}", fs::read_to_string(&log_path).unwrap_or_default());
    let runc_text = wait_for_end("the container under runc", || fs::read_to_string(&log_path).unwrap_or_default());
    let runc_pid: i64 = fs::read_to_string(&pid_file).unwrap_or_default().trim().parse().unwrap_or(0);
    assert!(runc_pid > 0, "no pid in {}", pid_file.display());
    let mut runc_view = normalize(&runc_text);
    runc_view.extend(cgroup_limits(runc_pid));
    // The container has usually ended by now, and then runc says so: either is fine here.
    let _ = run.runc(&["kill", &run.id, "KILL"]);
    d.wharf(&["rm", "-f", "cmp"]).ok();

    let differences = diff(&wharf_view, &runc_view);
    assert!(
        differences.is_empty() && wharf_view == runc_view,
        "the same bundle looks different under wharf and runc:\n{differences}\nwharf:\n  {}\nrunc:\n  {}",
        wharf_view.join("\n  "),
        runc_view.join("\n  ")
    );
    // Sanity: the report is what was asked for, so equal is not equally empty.
    for want in ["ns pid new", "ns mnt new", "ns uts new", "ns ipc new", "ns net new", "env FOO=bar", "pwd /tmp"] {
        assert!(wharf_view.iter().any(|l| l == want), "{want:?} missing from {wharf_view:?}");
    }
    let uid_line = format!("status Uid:\t{uid}\t{uid}\t{uid}\t{uid}");
    assert!(wharf_view.contains(&uid_line), "{uid_line:?} missing from {wharf_view:?}");
    // Docker's default set bounds both; only root keeps it effective across exec.
    let eff = if uid == "0" { "00000000a80425fb" } else { "0000000000000000" };
    for want in ["status CapBnd:\t00000000a80425fb".to_string(), format!("status CapEff:\t{eff}")] {
        assert!(wharf_view.contains(&want), "{want:?} missing from {wharf_view:?}");
    }
    assert!(wharf_view.contains(&"hostname cmp".to_string()), "{wharf_view:?}");
}
