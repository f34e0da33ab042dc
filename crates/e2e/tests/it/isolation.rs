//! Isolation defaults and the regression tests named after known container escapes: seccomp,
//! capabilities, masked and read-only /proc paths, no host fds, no sight of other containers.

use std::time::Duration;

use crate::harness::{bin, Daemon};

fn busybox(d: &Daemon) -> String {
    d.pull("library/busybox:latest")
}

/// Runs `sh -c script` under the docker CLI with extra flags and returns its output.
fn sh(d: &Daemon, flags: &[&str], script: &str) -> String {
    let img = busybox(d);
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[img.as_str(), "sh", "-c", script]);
    d.docker(&args).all()
}

fn status_field(out: &str, field: &str) -> String {
    out.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).map(|v| v.trim().to_string()).unwrap_or_default()
}

#[test]
fn seccomp_default_profile_is_loaded() {
    let d = Daemon::start();
    let img = busybox(&d);
    let out = d.wharf(&["run", "--rm", &img, "cat", "/proc/self/status"]);
    out.ok();
    assert_eq!(status_field(out.trimmed(), "Seccomp"), "2", "{}", out.all());
    assert_eq!(status_field(out.trimmed(), "Seccomp_filters"), "1", "{}", out.all());
    let out = sh(&d, &["--security-opt", "seccomp=unconfined"], "grep ^Seccomp: /proc/self/status");
    assert_eq!(status_field(&out, "Seccomp"), "0", "{out}");
    let out = sh(&d, &["--privileged"], "grep ^Seccomp: /proc/self/status");
    assert_eq!(status_field(&out, "Seccomp"), "0", "{out}");
    let out = sh(&d, &["--security-opt", "no-new-privileges"], "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status");
    assert_eq!(status_field(&out, "NoNewPrivs"), "1", "{out}");
    assert_eq!(status_field(&out, "Seccomp"), "2", "{out}");
}

#[test]
fn default_profile_refuses_mount_unshare_keyctl_reboot() {
    let d = Daemon::start();
    // Root in the container, yet each fails: seccomp (EPERM) and the missing capabilities.
    let script = "mount -t tmpfs none /mnt 2>&1; echo mount=$?; \
                  unshare -m true 2>&1; echo unshare=$?; \
                  unshare -U true 2>&1; echo unshare_user=$?; \
                  reboot -f 2>&1; echo reboot=$?; \
                  echo ok";
    let out = sh(&d, &[], script);
    for k in ["mount", "unshare", "unshare_user", "reboot"] {
        let v = out.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap_or("missing");
        assert_ne!(v, "0", "{k} succeeded: {out}");
    }
    assert!(out.contains("ok"), "{out}");
    // With CAP_SYS_ADMIN the profile opens mount, as Docker's does.
    let out = sh(&d, &["--cap-add", "SYS_ADMIN"], "mkdir -p /mnt && mount -t tmpfs none /mnt && echo mounted");
    assert!(out.contains("mounted"), "{out}");
}

#[test]
fn cap_add_and_privileged_change_capeff() {
    let d = Daemon::start();
    let eff = |flags: &[&str]| {
        let out = sh(&d, flags, "grep ^CapEff: /proc/self/status");
        u64::from_str_radix(&status_field(&out, "CapEff"), 16).unwrap_or_else(|_| panic!("{flags:?}: {out}"))
    };
    let default = eff(&[]);
    assert_eq!(default, 0xa80425fb, "Docker's 14 default capabilities");
    let admin = eff(&["--cap-add", "SYS_ADMIN"]);
    assert_eq!(admin, default | 1 << 21);
    let no_chown = eff(&["--cap-drop", "chown"]);
    assert_eq!(no_chown, default & !1);
    assert_eq!(eff(&["--cap-drop", "ALL"]), 0);
    let privileged = eff(&["--privileged"]);
    assert!(privileged & 1 << 21 != 0 && privileged.count_ones() > 14, "{privileged:x}");
    let out = sh(&d, &["--cap-add", "CAP_FLY"], "true");
    assert!(out.contains("unknown capability"), "{out}");
}

#[test]
fn cve_2019_5736_runtime_binary_not_reachable() {
    let d = Daemon::start();
    let shim = bin("wharf-shim");
    let before = std::fs::read(&shim).unwrap();
    // pid 1 is the user's sh, never the shim; no /proc/<pid>/exe can be opened for writing.
    let script = "readlink /proc/1/exe; \
                  for p in /proc/[0-9]*; do (echo x > $p/exe) 2>/dev/null && echo WROTE $p; done; \
                  (exec 3>/proc/self/exe) 2>/dev/null && echo WROTE self; \
                  ls /proc | grep -c '^[0-9]'; echo done";
    let out = sh(&d, &[], script);
    assert!(out.lines().next().is_some_and(|l| l.trim() == "/bin/sh" || l.contains("busybox")), "{out}");
    assert!(!out.contains("WROTE"), "{out}");
    assert!(!out.contains("wharf-shim"), "{out}");
    assert!(out.contains("done"), "{out}");
    assert_eq!(std::fs::read(&shim).unwrap(), before, "the shim binary changed");
}

#[test]
fn cve_2024_21626_no_host_fd_or_cwd() {
    let d = Daemon::start();
    let script =
        "for f in /proc/self/fd/*; do echo \"fd $f $(readlink $f)\"; done; echo \"cwd $(readlink /proc/self/cwd)\"; \
                  echo \"pid1cwd $(readlink /proc/1/cwd)\"";
    let out = sh(&d, &["-w", "/tmp"], script);
    for l in out.lines().filter(|l| l.starts_with("fd ")) {
        let target = l.split_whitespace().nth(2).unwrap_or("");
        // stdio pipes/ttys/null and the fd ls itself opened: nothing else.
        assert!(
            target.starts_with("pipe:")
                || target.starts_with("/dev/")
                || target.starts_with("/proc/")
                || target.is_empty(),
            "leaked fd: {l}\n{out}"
        );
    }
    assert!(out.contains("cwd /tmp"), "{out}");
    assert!(out.contains("pid1cwd /tmp"), "{out}");
}

#[test]
fn proc_kcore_and_sysrq_trigger_protected() {
    let d = Daemon::start();
    let out = sh(
        &d,
        &[],
        "head -c 16 /proc/kcore | wc -c; (echo h > /proc/sysrq-trigger) 2>&1; echo sysrq=$?; \
         (echo 1 > /proc/sys/kernel/sysrq) 2>&1; echo sys=$?",
    );
    assert_eq!(out.lines().next().map(str::trim), Some("0"), "kcore readable: {out}");
    assert!(!out.contains("sysrq=0"), "{out}");
    assert!(!out.contains("sys=0"), "{out}");
}

#[test]
fn cannot_see_or_signal_other_containers_or_ptrace_host() {
    let d = Daemon::start();
    let img = busybox(&d);
    let other = d.docker(&["run", "-d", &img, "sleep", "300"]).ok().trimmed().to_string();
    let pid = d.docker(&["inspect", "-f", "{{.State.Pid}}", &other]).ok().trimmed().to_string();
    let script = format!(
        "ps -o pid,comm | grep -c sleep; kill -9 {pid} 2>&1; echo kill=$?; ls /proc/{pid} >/dev/null 2>&1; echo see=$?; \
         ls /proc | grep -c '^[0-9]'"
    );
    let out = sh(&d, &[], &script);
    assert_eq!(out.lines().next().map(str::trim), Some("0"), "{out}");
    assert!(!out.contains("kill=0"), "{out}");
    std::thread::sleep(Duration::from_millis(200));
    let running = d.docker(&["inspect", "-f", "{{.State.Running}}", &other]).ok().trimmed().to_string();
    assert_eq!(running, "true");
    // ptrace: the host's pid 1 is not in the container's pid namespace; busybox has no
    // strace, so /proc/1 is the container's own sh and the host's init is unreachable.
    let out = sh(&d, &[], "cat /proc/1/cmdline | tr '\\0' ' '; echo");
    assert!(!out.contains("init") && !out.contains("systemd"), "{out}");
    d.docker(&["rm", "-f", &other]).ok();
}

#[test]
fn sysctl_ulimit_shm_and_namespaces() {
    let d = Daemon::start();
    let out = sh(&d, &["--sysctl", "net.ipv4.ip_forward=1"], "cat /proc/sys/net/ipv4/ip_forward");
    assert!(out.trim().ends_with('1'), "{out}");
    let out = sh(&d, &["--sysctl", "kernel.pid_max=100000"], "true");
    assert!(out.contains("not namespaced") || out.contains("not allowed"), "{out}");
    let out = sh(&d, &["--ulimit", "nofile=1024:2048"], "ulimit -n; ulimit -Hn");
    assert!(out.contains("1024") && out.contains("2048"), "{out}");
    let out = sh(&d, &["--ulimit", "nofile=1024:100000"], "true");
    assert!(out.contains("hard limit"), "{out}");
    let out = sh(&d, &["--shm-size", "128m"], "df -k /dev/shm | tail -1");
    assert!(out.contains("131072"), "{out}");
    let host_uts = std::fs::read_link("/proc/self/ns/uts").unwrap().display().to_string();
    let out = sh(&d, &["--uts", "host"], "readlink /proc/self/ns/uts");
    assert_eq!(out.trim(), host_uts, "{out}");
    let out = sh(&d, &["--group-add", "1234"], "id -G");
    assert!(out.split_whitespace().any(|g| g == "1234"), "{out}");
    let out = sh(&d, &["--oom-score-adj", "500"], "cat /proc/self/oom_score_adj");
    assert_eq!(out.trim(), "500", "{out}");
}
