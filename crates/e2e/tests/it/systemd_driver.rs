//! The systemd cgroup driver (`exec-opts: native.cgroupdriver=systemd`) against a real
//! systemd. These run in the guest that `WHARF_V2VM_INIT=systemd scripts/cgroup-v2-vm` boots
//! with systemd as pid 1 (scripts/test-cgroup-v2 does, with `WHARF_E2E_SYSTEMD=1`); elsewhere
//! they say they were skipped, and fail if `WHARF_E2E_SYSTEMD` says systemd must be there.
//!
//! What they check is what dockerd with runc's systemd driver does: each container is the
//! transient scope `docker-<id>.scope` in the daemon's slice, delegated, with its limits.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::{wait_for, Cli, Daemon, DaemonOptions};

fn systemd_runs() -> bool {
    let runs = Path::new("/run/systemd/system").is_dir();
    if !runs {
        assert!(std::env::var_os("WHARF_E2E_SYSTEMD").is_none(), "WHARF_E2E_SYSTEMD is set but systemd does not run");
        eprintln!("skipped: systemd is not pid 1 here (scripts/test-cgroup-v2 runs this in a guest where it is)");
    }
    runs
}

/// `systemctl show -p NAME --value UNIT`.
fn unit_property(unit: &str, name: &str) -> String {
    let out = Command::new("systemctl").args(["show", "-p", name, "--value", unit]).output().expect("systemctl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
        .trim()
        .to_string()
}

/// A container is a running scope of the daemon's slice, with its limits in the scope's
/// files and in the unit (a daemon-reload keeps them); `docker update` changes both; stop
/// ends the scope, start makes it again; a daemon restart finds the container; a parent that
/// is not a slice is refused by name.
#[test]
fn containers_are_delegated_scopes_in_the_daemons_slice() {
    if !systemd_runs() {
        return;
    }
    let mut d = Daemon::start_with(DaemonOptions { systemd_cgroups: true, ..Default::default() });
    let image = d.pull("library/busybox:latest");
    assert_eq!(d.docker(&["info", "--format", "{{.CgroupDriver}}"]).ok().trimmed(), "systemd");

    let id = d
        .docker(&[
            "run",
            "-d",
            "--name",
            "scoped",
            "-m",
            "64m",
            "--pids-limit",
            "50",
            "--cpus",
            "0.5",
            &image,
            "sleep",
            "600",
        ])
        .ok()
        .trimmed()
        .to_string();
    let unit = format!("docker-{id}.scope");
    let dir = Path::new("/sys/fs/cgroup").join(d.cgroup_parent.trim_start_matches('/')).join(&unit);
    let pid = d.inspect(Cli::Docker, "scoped")["State"]["Pid"].as_i64().unwrap();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(cgroup.trim(), format!("0::{}/{unit}", d.cgroup_parent));
    assert_eq!(unit_property(&unit, "ActiveState"), "active");
    assert_eq!(unit_property(&unit, "Delegate"), "yes");
    assert_eq!(unit_property(&unit, "Slice"), &d.cgroup_parent[1..]);
    for (file, want) in [("memory.max", "67108864"), ("pids.max", "50"), ("cpu.max", "50000 100000")] {
        assert_eq!(read(&dir, file), want, "{file}");
    }
    // systemd rewrites a unit's cgroup files from its properties at a reload.
    assert!(Command::new("systemctl").arg("daemon-reload").status().unwrap().success());
    for (file, want) in [("memory.max", "67108864"), ("pids.max", "50"), ("cpu.max", "50000 100000")] {
        assert_eq!(read(&dir, file), want, "{file} after daemon-reload");
    }
    d.docker(&["update", "-m", "96m", "--memory-swap", "-1", "--pids-limit", "70", "scoped"]).ok();
    assert!(Command::new("systemctl").arg("daemon-reload").status().unwrap().success());
    assert_eq!(read(&dir, "memory.max"), "100663296", "after update and daemon-reload");
    assert_eq!(read(&dir, "pids.max"), "70", "after update and daemon-reload");
    let stats = d.docker(&["stats", "--no-stream", "--format", "{{.MemUsage}}", "scoped"]).ok().trimmed().to_string();
    assert!(stats.ends_with("96MiB"), "{stats}");
    // No limit given: none, as under cgroupfs (not systemd's DefaultTasksMax).
    d.docker(&["run", "-d", "--name", "free", &image, "sleep", "600"]).ok();
    let free = d.inspect(Cli::Docker, "free")["Id"].as_str().unwrap().to_string();
    let free_dir = dir.with_file_name(format!("docker-{free}.scope"));
    assert_eq!(read(&free_dir, "pids.max"), "max");
    assert_eq!(read(&free_dir, "memory.max"), "max");

    // A restart at once: the last scope must be gone before the next is made.
    d.docker(&["restart", "-t", "0", "scoped"]).ok();
    assert_eq!(unit_property(&unit, "ActiveState"), "active", "restarted");
    let pid = d.inspect(Cli::Docker, "scoped")["State"]["Pid"].as_i64().unwrap();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(cgroup.trim(), format!("0::{}/{unit}", d.cgroup_parent), "restarted");
    assert_eq!(read(&dir, "pids.max"), "70", "restarted");

    // The daemon restarts; the container and its scope stay and are found again.
    d.kill9();
    d.restart();
    assert_eq!(d.docker(&["inspect", "-f", "{{.State.Running}}", "scoped"]).ok().trimmed(), "true");
    d.docker(&["stop", "-t", "1", "scoped"]).ok();
    assert!(
        wait_for(Duration::from_secs(20), || !dir.exists() && unit_property(&unit, "ActiveState") != "active"),
        "the scope outlived its container: {} {}",
        dir.display(),
        unit_property(&unit, "ActiveState")
    );
    d.docker(&["start", "scoped"]).ok();
    assert_eq!(unit_property(&unit, "ActiveState"), "active", "a start makes the scope again");
    assert_eq!(read(&dir, "memory.max"), "100663296", "the limits of the update stay with the container");
    d.docker(&["rm", "-f", "scoped", "free"]).ok();

    // The device program stays in force under systemd (it adds none of its own to the scope):
    // /dev/mem's node does not open, unless a rule allows it. CAP_SYS_RAWIO in both runs, so
    // that only the device program tells them apart.
    let script = "mknod /tmp/mem c 1 1 && head -c 1 /tmp/mem >/dev/null && echo read";
    d.docker(&["run", "--rm", "--cap-add", "SYS_RAWIO", &image, "sh", "-c", script])
        .fails()
        .mentions(&["Operation not permitted"]);
    let rule = ["--device-cgroup-rule", "c 1:1 r"];
    let out = d.docker(&["run", "--rm", "--cap-add", "SYS_RAWIO", rule[0], rule[1], &image, "sh", "-c", script]);
    assert_eq!(out.ok().trimmed(), "read");

    d.docker(&["run", "--rm", "--cgroup-parent", "/wharf", &image, "true"])
        .fails()
        .mentions(&["cgroup-parent for systemd cgroup should be a valid slice named as \"xxx.slice\""]);
    // A slice of the container's own, nested in the daemon's.
    let sub = format!("{}-sub.slice", &d.cgroup_parent[1..d.cgroup_parent.len() - ".slice".len()]);
    let nested = d.docker(&["run", "-d", "--cgroup-parent", &sub, &image, "sleep", "600"]).ok().trimmed().to_string();
    let pid = d.inspect(Cli::Docker, &nested)["State"]["Pid"].as_i64().unwrap();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    d.docker(&["rm", "-f", &nested]).ok();
    let _ = Command::new("systemctl").args(["stop", &sub]).status();
    assert_eq!(cgroup.trim(), format!("0::{}/{sub}/docker-{nested}.scope", d.cgroup_parent));
}

/// runc as a second runtime takes the same cgroupsPath with its own systemd driver (the shim
/// passes `--systemd-cgroup`). With no system bus in the guest, runc reaches systemd on its
/// private socket, as root may.
#[test]
fn runc_makes_the_same_scope() {
    if !systemd_runs() {
        return;
    }
    const RUNC: &str = "/usr/sbin/runc";
    assert!(Path::new(RUNC).exists(), "this test needs runc at {RUNC} (apt-get install runc)");
    let json = format!(r#"{{"runtimes": {{"debrunc": {{"path": "{RUNC}"}}}}}}"#);
    let d = Daemon::start_with(DaemonOptions { systemd_cgroups: true, config_json: Some(json), ..Default::default() });
    let image = d.pull("library/busybox:latest");
    let id = d
        .docker(&["run", "-d", "--runtime", "debrunc", "-m", "32m", &image, "sleep", "600"])
        .ok()
        .trimmed()
        .to_string();
    let unit = format!("docker-{id}.scope");
    let pid = d.inspect(Cli::Docker, &id)["State"]["Pid"].as_i64().unwrap();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(cgroup.trim(), format!("0::{}/{unit}", d.cgroup_parent));
    assert_eq!(unit_property(&unit, "ActiveState"), "active");
    let dir = Path::new("/sys/fs/cgroup").join(d.cgroup_parent.trim_start_matches('/')).join(&unit);
    assert_eq!(read(&dir, "memory.max"), "33554432");
    d.docker(&["rm", "-f", &id]).ok();
}

/// Through the CRI: RuntimeConfig says systemd (kubelet takes its driver from it), and a pod's
/// containers are scopes in the slice kubelet gives the pod.
#[test]
fn cri_pods_get_the_slice_kubelet_names() {
    if !systemd_runs() {
        return;
    }
    use crate::cri::{container_config, cri_daemon_options, pod_config, CriClient};
    use serde_json::json;
    let tmp = crate::harness::TempDir::new("wharf-e2e-cri-systemd");
    let (opts, sock) = cri_daemon_options(&tmp.0, &[]);
    let d = Daemon::start_with(DaemonOptions { systemd_cgroups: true, ..opts });
    let mut c = CriClient::start(&sock);
    assert_eq!(c.ok("RuntimeService/RuntimeConfig", json!({}))["linux"]["cgroup_driver"], "SYSTEMD");

    let image = crate::harness::registry().image("library/busybox:latest");
    c.ok("ImageService/PullImage", json!({ "image": { "image": image } }));
    // As kubelet names a pod's slice: <parent>-pod<uid>.slice, here inside the daemon's.
    let stem = &d.cgroup_parent[1..d.cgroup_parent.len() - ".slice".len()];
    let pod_slice = format!("{stem}-podabc.slice");
    let logs = tmp.0.join("logs");
    // kubelet makes the container's log directory.
    std::fs::create_dir_all(logs.join("app")).unwrap();
    let mut pod = pod_config("sd", "uid-sd-1", &logs, true);
    pod["linux"]["cgroup_parent"] = json!(pod_slice);
    let sid = c.run_pod(&pod);
    let cfg = container_config("app", &image, "sleep 600", "app/0.log");
    let cid = c.create_container(&sid, &cfg, &pod);
    c.ok("RuntimeService/StartContainer", json!({ "container_id": cid }));
    let pid = d.inspect(Cli::Docker, &cid)["State"]["Pid"].as_i64().unwrap();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    c.ok("RuntimeService/StopPodSandbox", json!({ "pod_sandbox_id": sid }));
    c.ok("RuntimeService/RemovePodSandbox", json!({ "pod_sandbox_id": sid }));
    let _ = Command::new("systemctl").args(["stop", &pod_slice]).status();
    assert_eq!(cgroup.trim(), format!("0::{}/{pod_slice}/docker-{cid}.scope", d.cgroup_parent));
}
