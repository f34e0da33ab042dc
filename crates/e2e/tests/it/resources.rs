//! Resource limits land in the container's cgroup, under the daemon's --cgroup-parent.

use std::fs;
use std::path::PathBuf;

use crate::harness::{registry, Cli, Daemon};

/// The host path of a controller's file for a process, from /proc/PID/cgroup: the v1
/// hierarchy of that controller if there is one, else the v2 unified hierarchy.
pub(crate) fn cgroup_file(pid: i64, controller: &str, v1_file: &str, v2_file: &str) -> (PathBuf, String) {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/PID/cgroup");
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if ctrls.split(',').any(|c| c == controller) {
            return (PathBuf::from(format!("/sys/fs/cgroup/{controller}{path}/{v1_file}")), path.to_string());
        }
    }
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_else(|| panic!("process {pid} has no {controller} cgroup:\n{text}"));
    let base = if std::path::Path::new("/sys/fs/cgroup/unified").is_dir() {
        "/sys/fs/cgroup/unified"
    } else {
        "/sys/fs/cgroup"
    };
    (PathBuf::from(format!("{base}{path}/{v2_file}")), path.to_string())
}

fn memory_and_pids_limits(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    let out = d.cli(
        cli,
        &["run", "-d", "--name", "limited", "--memory", "64m", "--pids-limit", "50", &image, "sleep", "1000"],
    );
    out.ok();
    let id = out.trimmed().to_string();
    let info = d.inspect(cli, "limited");
    assert_eq!(info["HostConfig"]["Memory"], 64 * 1024 * 1024, "{info}");
    assert_eq!(info["HostConfig"]["PidsLimit"], 50, "{info}");
    let pid = info["State"]["Pid"].as_i64().unwrap_or(0);
    assert!(pid > 0, "{info}");

    let (mem, path) = cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max");
    assert!(
        path.starts_with(&format!("{}/", d.cgroup_parent)),
        "cgroup {path} is not under the daemon's --cgroup-parent {}",
        d.cgroup_parent
    );
    assert!(path.contains(&id[..12]), "cgroup {path} does not name the container {id}");
    let value = fs::read_to_string(&mem).unwrap_or_else(|e| panic!("{}: {e}", mem.display()));
    assert_eq!(value.trim(), "67108864", "{}", mem.display());

    let (pids, _) = cgroup_file(pid, "pids", "pids.max", "pids.max");
    let value = fs::read_to_string(&pids).unwrap_or_else(|e| panic!("{}: {e}", pids.display()));
    assert_eq!(value.trim(), "50", "{}", pids.display());

    // The limit bites: busybox sh dies with "can't fork" once 10 pids are in use.
    let out = d.cli(
        cli,
        &["run", "--rm", "--pids-limit", "10", &image, "sh", "-c", "for i in $(seq 30); do sleep 100 & done"],
    );
    out.fails().mentions(&["can't fork"]);

    d.cli(cli, &["rm", "-f", "limited"]).ok();
    assert!(!mem.parent().is_some_and(|p| p.exists()), "cgroup left after rm -f");
}
both!(memory_and_pids_limits);

/// /sys/fs/cgroup inside a container shows the container's own cgroup, as with runc and the
/// host's cgroup namespace: on v1 (and hybrid) one read-only directory per hierarchy, named as
/// on the host, so that `memory/memory.limit_in_bytes` is the container's limit (JVMs read
/// it); read-write with --privileged; the same with a private cgroup namespace.
fn sys_fs_cgroup_shows_the_container_cgroup(cli: Cli) {
    let v2 = crate::cgroup_v2::host_is_pure_v2();
    let (limit_file, pids_file) =
        if v2 { ("memory.max", "pids.max") } else { ("memory/memory.limit_in_bytes", "pids/pids.max") };
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    let script = format!("cat /sys/fs/cgroup/{limit_file} /sys/fs/cgroup/{pids_file}; ls /sys/fs/cgroup");
    let out = d.cli(cli, &["run", "--rm", "-m", "64m", "--pids-limit", "50", &image, "sh", "-c", &script]);
    let text = out.ok().trimmed().to_string();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("67108864"), "{text}");
    assert_eq!(lines.next(), Some("50"), "{text}");
    let listed: Vec<&str> = lines.collect();
    if !v2 {
        for want in ["memory", "pids", "cpu", "devices", "freezer"] {
            assert!(listed.contains(&want), "{want} missing from {listed:?}");
        }
        // As runc: systemd's named hierarchy too, the unified one of a hybrid host not.
        if std::path::Path::new("/sys/fs/cgroup/systemd").is_dir() {
            assert!(listed.contains(&"systemd"), "systemd missing from {listed:?}");
        }
        assert!(!listed.contains(&"unified"), "{listed:?}");
    }

    // Read-only: the container cannot raise its own limits.
    let write = format!("echo 100 > /sys/fs/cgroup/{pids_file} && cat /sys/fs/cgroup/{pids_file}");
    let out = d.cli(cli, &["run", "--rm", "--pids-limit", "50", &image, "sh", "-c", &write]);
    out.fails().mentions(&["Read-only file system"]);
    // On v2 the default cgroup namespace is private (as dockerd's), and the kernel keeps a
    // namespace root's limits read-only from inside even for --privileged (nsdelegate, checked
    // against dockerd in cgroup_v2.rs): the writable view is the host namespace's, where
    // /sys/fs/cgroup is the host's whole tree as runc mounts it, the container's own directory
    // at its path from /proc/self/cgroup.
    let write = if v2 {
        format!(
            "d=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup); echo 100 > $d/{pids_file} && cat $d/{pids_file}"
        )
    } else {
        write
    };
    let out = d.cli(
        cli,
        &["run", "--rm", "--privileged", "--cgroupns", "host", "--pids-limit", "50", &image, "sh", "-c", &write],
    );
    assert_eq!(out.ok().trimmed(), "100");

    // A private cgroup namespace is rooted at the container's cgroup, in every hierarchy.
    let script = format!("cat /sys/fs/cgroup/{limit_file}; cat /proc/self/cgroup");
    let out = d.cli(cli, &["run", "--rm", "--cgroupns", "private", "-m", "64m", &image, "sh", "-c", &script]);
    let text = out.ok().trimmed().to_string();
    assert_eq!(text.lines().next(), Some("67108864"), "{text}");
    assert!(text.lines().skip(1).all(|l| l.ends_with(":/")), "{text}");
    assert!(text.lines().count() > 1, "{text}");
    let id = d.cli(cli, &["run", "-d", "--cgroupns", "private", &image, "sleep", "100"]).ok().trimmed().to_string();
    let text = d.cli(cli, &["exec", &id, "cat", "/proc/self/cgroup"]).ok().trimmed().to_string();
    assert!(text.lines().all(|l| l.ends_with(":/")), "exec: {text}");
    d.cli(cli, &["rm", "-f", &id]).ok();

    // On a hybrid host the container also has a cgroup in the unified hierarchy (where its
    // device program is attached), removed with it.
    let unified = std::path::Path::new("/sys/fs/cgroup/unified");
    if unified.is_dir() && !v2 {
        let id = d.cli(cli, &["run", "-d", &image, "sleep", "100"]).ok().trimmed().to_string();
        let pid = d.inspect(cli, &id)["State"]["Pid"].as_i64().unwrap_or(0);
        let dir = unified.join(d.cgroup_parent.trim_start_matches('/')).join(&id);
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        assert!(procs.lines().any(|l| l == pid.to_string()), "pid {pid} not in {}: {procs:?}", dir.display());
        d.cli(cli, &["rm", "-f", &id]).ok();
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}
both!(sys_fs_cgroup_shows_the_container_cgroup);
