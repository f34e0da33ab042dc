//! Isolation defaults and the regression tests named after known container escapes: seccomp,
//! capabilities, masked and read-only /proc paths, no host fds, no sight of other containers.
//! Each runs through `wharf` and through the docker CLI.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::harness::{bin, run_cmd, Cli, Daemon};
use crate::resources::cgroup_file;

fn busybox(d: &Daemon) -> String {
    d.pull("library/busybox:latest")
}

/// Runs `sh -c script` in a new container with extra flags and returns its output.
fn sh(d: &Daemon, cli: Cli, flags: &[&str], script: &str) -> String {
    let img = busybox(d);
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[img.as_str(), "sh", "-c", script]);
    d.cli(cli, &args).all()
}

fn status_field(out: &str, field: &str) -> String {
    out.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).map(|v| v.trim().to_string()).unwrap_or_default()
}

fn value<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines().find_map(|l| l.trim().strip_prefix(&format!("{key}="))).unwrap_or("missing")
}

/// The system calls busybox cannot make: keyctl/add_key (busybox has no keyctl applet) and
/// ptrace (no strace). A static binary, built here and bind-mounted read-only at /probe.
const PROBE_C: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *res(long r) { return r < 0 ? strerror(errno) : "ok"; }

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "keyctl") == 0) {
        /* KEYCTL_JOIN_SESSION_KEYRING with no name: a new anonymous session keyring. */
        printf("keyctl=%s\n", res(syscall(SYS_keyctl, 1, 0, 0, 0, 0)));
        /* KEY_SPEC_PROCESS_KEYRING = -2 */
        printf("add_key=%s\n", res(syscall(SYS_add_key, "user", "wharf", "x", 1, -2)));
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "ptrace") == 0) {
        pid_t pid = (pid_t)atoi(argv[2]);
        long r = ptrace(PTRACE_ATTACH, pid, 0, 0);
        printf("ptrace=%s\n", res(r));
        if (r == 0) ptrace(PTRACE_DETACH, pid, 0, 0);
        return 0;
    }
    fprintf(stderr, "usage: probe keyctl | probe ptrace PID\n");
    return 2;
}
"#;

/// Builds the probe under the daemon's directory; returns the directory to bind-mount.
fn probe(d: &Daemon) -> PathBuf {
    let dir = d.dir.join("probe");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("probe.c");
    std::fs::write(&src, PROBE_C).unwrap();
    let mut cc = Command::new("cc");
    cc.args(["-static", "-O1", "-o"]).arg(dir.join("probe")).arg(&src);
    let out = run_cmd(cc, Duration::from_secs(60));
    assert!(out.success(), "building the syscall probe needs cc and a static libc (libc6-dev):\n{out}");
    std::fs::remove_file(&src).unwrap();
    dir
}

fn seccomp_default_profile_is_loaded(cli: Cli) {
    let d = Daemon::start();
    let img = busybox(&d);
    let out = d.cli(cli, &["run", "--rm", &img, "cat", "/proc/self/status"]);
    out.ok();
    assert_eq!(status_field(out.trimmed(), "Seccomp"), "2", "{}", out.all());
    assert_eq!(status_field(out.trimmed(), "Seccomp_filters"), "1", "{}", out.all());
    let out = sh(&d, cli, &["--security-opt", "seccomp=unconfined"], "grep ^Seccomp: /proc/self/status");
    assert_eq!(status_field(&out, "Seccomp"), "0", "{out}");
    let out = sh(&d, cli, &["--privileged"], "grep ^Seccomp: /proc/self/status");
    assert_eq!(status_field(&out, "Seccomp"), "0", "{out}");
    let out =
        sh(&d, cli, &["--security-opt", "no-new-privileges"], "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status");
    assert_eq!(status_field(&out, "NoNewPrivs"), "1", "{out}");
    assert_eq!(status_field(&out, "Seccomp"), "2", "{out}");
}
both!(seccomp_default_profile_is_loaded);

/// `--security-opt seccomp=<file>`: both CLIs read the file and send its JSON.
fn seccomp_profile_from_a_file(cli: Cli) {
    let d = Daemon::start();
    let profile = d.dir.join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{
  "defaultAction": "SCMP_ACT_ALLOW",
  "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
}
"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = sh(&d, cli, &["--security-opt", &opt], "mkdir /tmp/x 2>&1; echo mkdir=$?; touch /tmp/y; echo touch=$?");
    assert_ne!(value(&out, "mkdir"), "0", "{out}");
    assert_eq!(value(&out, "touch"), "0", "{out}");
    let missing = format!("seccomp={}", d.dir.join("nope.json").display());
    let img = busybox(&d);
    d.cli(cli, &["run", "--rm", "--security-opt", &missing, &img, "true"]).fails().mentions(&["nope.json"]);
}
both!(seccomp_profile_from_a_file);

/// Root in the container, yet each fails: seccomp (EPERM) and the missing capabilities.
/// keyctl/add_key are refused by the filter alone (the keyring is not namespaced): without the
/// filter the same calls succeed, which shows the profile is what stops them.
fn default_profile_refuses_mount_unshare_keyctl_reboot(cli: Cli) {
    let d = Daemon::start();
    let script = "mount -t tmpfs none /mnt 2>&1; echo mount=$?; \
                  unshare -m true 2>&1; echo unshare=$?; \
                  unshare -U true 2>&1; echo unshare_user=$?; \
                  reboot -f 2>&1; echo reboot=$?; \
                  echo ok";
    let out = sh(&d, cli, &[], script);
    for k in ["mount", "unshare", "unshare_user", "reboot"] {
        assert_ne!(value(&out, k), "0", "{k} succeeded: {out}");
        assert_ne!(value(&out, k), "missing", "{k}: {out}");
    }
    assert!(out.contains("ok"), "{out}");
    // With CAP_SYS_ADMIN the seccomp profile opens mount, as Docker's does. (Where the host has
    // AppArmor its default profile still refuses mounts, as docker-default: see apparmor.rs.)
    let out = sh(
        &d,
        cli,
        &["--cap-add", "SYS_ADMIN", "--security-opt", "apparmor=unconfined"],
        "mkdir -p /mnt && mount -t tmpfs none /mnt && echo mounted",
    );
    assert!(out.contains("mounted"), "{out}");

    let probe = probe(&d);
    let vol = format!("{}:/probe:ro", probe.display());
    let out = sh(&d, cli, &["-v", &vol], "/probe/probe keyctl");
    assert_eq!(value(&out, "keyctl"), "Operation not permitted", "{out}");
    assert_eq!(value(&out, "add_key"), "Operation not permitted", "{out}");
    let out = sh(&d, cli, &["-v", &vol, "--cap-add", "ALL"], "/probe/probe keyctl");
    assert_eq!(value(&out, "keyctl"), "Operation not permitted", "every capability, still refused: {out}");
    let out = sh(&d, cli, &["-v", &vol, "--security-opt", "seccomp=unconfined"], "/probe/probe keyctl");
    assert_eq!(value(&out, "keyctl"), "ok", "the filter is what refuses it: {out}");
}
both!(default_profile_refuses_mount_unshare_keyctl_reboot);

fn cap_add_and_privileged_change_capeff(cli: Cli) {
    let d = Daemon::start();
    let eff = |flags: &[&str]| {
        let out = sh(&d, cli, flags, "grep ^CapEff: /proc/self/status");
        u64::from_str_radix(&status_field(&out, "CapEff"), 16).unwrap_or_else(|_| panic!("{flags:?}: {out}"))
    };
    let default = eff(&[]);
    assert_eq!(default, 0xa80425fb, "Docker's 14 default capabilities");
    assert_eq!(default & 1 << 19, 0, "CAP_SYS_PTRACE is not a default capability");
    let admin = eff(&["--cap-add", "SYS_ADMIN"]);
    assert_eq!(admin, default | 1 << 21);
    let no_chown = eff(&["--cap-drop", "chown"]);
    assert_eq!(no_chown, default & !1);
    assert_eq!(eff(&["--cap-drop", "ALL"]), 0);
    let privileged = eff(&["--privileged"]);
    assert!(privileged & 1 << 21 != 0 && privileged.count_ones() > 14, "{privileged:x}");
    let out = sh(&d, cli, &["--cap-add", "CAP_FLY"], "true");
    assert!(out.contains("unknown capability"), "{out}");
}
both!(cap_add_and_privileged_change_capeff);

fn cve_2019_5736_runtime_binary_not_reachable(cli: Cli) {
    let d = Daemon::start();
    let shim = bin("wharf-shim");
    let before = std::fs::read(&shim).unwrap();
    // pid 1 is the user's sh, never the shim; no /proc/<pid>/exe can be opened for writing.
    let script = "readlink /proc/1/exe; \
                  for p in /proc/[0-9]*; do (echo x > $p/exe) 2>/dev/null && echo WROTE $p; done; \
                  (exec 3>/proc/self/exe) 2>/dev/null && echo WROTE self; \
                  ls /proc | grep -c '^[0-9]'; echo done";
    let out = sh(&d, cli, &[], script);
    assert!(out.lines().next().is_some_and(|l| l.trim() == "/bin/sh" || l.contains("busybox")), "{out}");
    assert!(!out.contains("WROTE"), "{out}");
    assert!(!out.contains("wharf-shim"), "{out}");
    assert!(out.contains("done"), "{out}");
    assert_eq!(std::fs::read(&shim).unwrap(), before, "the shim binary changed");
}
both!(cve_2019_5736_runtime_binary_not_reachable);

/// What an fd of a container process may point at: its stdio (pipes, sockets, /dev/null, a
/// tty) and what it opened itself under /proc; never a host directory or file.
fn assert_no_host_fd(fds: &[(&str, &str)], out: &str) {
    assert!(!fds.is_empty(), "no fd listed: {out}");
    for (fd, target) in fds {
        assert!(
            target.starts_with("pipe:")
                || target.starts_with("socket:")
                || target.starts_with("/dev/")
                || target.starts_with("/proc/")
                || target.starts_with("anon_inode:")
                // the directory the shell's glob read, closed before readlink ran
                || target.is_empty(),
            "leaked fd {fd} -> {target}\n{out}"
        );
    }
}

fn cve_2024_21626_no_host_fd_or_cwd(cli: Cli) {
    let d = Daemon::start();
    let script = "for f in /proc/self/fd/*; do echo \"fd $f $(readlink $f)\"; done; \
                  echo \"cwd $(readlink /proc/self/cwd)\"; echo \"pid1cwd $(readlink /proc/1/cwd)\"";
    let out = sh(&d, cli, &["-w", "/tmp"], script);
    let fds: Vec<(&str, &str)> =
        out.lines().filter_map(|l| l.strip_prefix("fd ")).map(|l| l.split_once(' ').unwrap_or((l, ""))).collect();
    assert_no_host_fd(&fds, &out);
    assert!(out.contains("cwd /tmp"), "{out}");
    assert!(out.contains("pid1cwd /tmp"), "{out}");
}
both!(cve_2024_21626_no_host_fd_or_cwd);

/// The same after `exec`: the exec'd process is forked by the shim, which holds host fds of
/// its own, so this is where a leak would show.
fn cve_2024_21626_after_exec(cli: Cli) {
    let d = Daemon::start();
    let img = busybox(&d);
    d.cli(cli, &["run", "-d", "--name", "cve", "-w", "/tmp", &img, "sleep", "300"]).ok();
    let out = d.cli(cli, &["exec", "cve", "ls", "-l", "/proc/self/fd"]);
    out.ok();
    let text = out.all();
    let fds: Vec<(&str, &str)> = out
        .stdout
        .lines()
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ")?;
            Some((left.split_whitespace().last().unwrap_or(""), target.trim()))
        })
        .collect();
    assert!(fds.len() >= 3, "{text}");
    assert_no_host_fd(&fds, &text);
    let cwd = d.cli(cli, &["exec", "cve", "readlink", "/proc/self/cwd"]);
    assert_eq!(cwd.ok().trimmed(), "/tmp", "{cwd}");
    let cwd = d.cli(cli, &["exec", "-w", "/etc", "cve", "readlink", "/proc/self/cwd"]);
    assert_eq!(cwd.ok().trimmed(), "/etc", "{cwd}");
    let root = d.cli(cli, &["exec", "cve", "sh", "-c", "readlink /proc/self/root; ls /proc/self/cwd/.. | head -3"]);
    assert_eq!(root.ok().stdout.lines().next(), Some("/"), "{root}");
    d.cli(cli, &["rm", "-f", "cve"]).ok();
}
both!(cve_2024_21626_after_exec);

fn proc_kcore_and_sysrq_trigger_protected(cli: Cli) {
    let d = Daemon::start();
    let out = sh(
        &d,
        cli,
        &[],
        "head -c 16 /proc/kcore | wc -c; (echo h > /proc/sysrq-trigger) 2>&1; echo sysrq=$?; \
         (echo 1 > /proc/sys/kernel/sysrq) 2>&1; echo sys=$?",
    );
    assert_eq!(out.lines().next().map(str::trim), Some("0"), "kcore readable: {out}");
    assert!(!out.contains("sysrq=0"), "{out}");
    assert!(!out.contains("sys=0"), "{out}");
}
both!(proc_kcore_and_sysrq_trigger_protected);

/// `HostConfig.MaskedPaths`/`ReadonlyPaths`: `--security-opt systempaths=unconfined` sends both
/// empty (the docker CLI does so too), which unmasks /proc and leaves /proc/sys writable.
fn system_paths_unconfined(cli: Cli) {
    let d = Daemon::start();
    let check = "grep -c -E ' /proc/(timer_list|sys|acpi) ' /proc/self/mountinfo";
    let masked = sh(&d, cli, &[], check);
    assert_ne!(masked.trim(), "0", "{masked}");
    let open = sh(&d, cli, &["--security-opt", "systempaths=unconfined"], check);
    assert_eq!(open.trim(), "0", "{open}");
    let img = busybox(&d);
    d.cli(cli, &["create", "--name", "open", "--security-opt", "systempaths=unconfined", &img, "true"]).ok();
    let info = d.inspect(cli, "open");
    assert_eq!(info["HostConfig"]["MaskedPaths"], serde_json::json!([]), "{info}");
    assert_eq!(info["HostConfig"]["ReadonlyPaths"], serde_json::json!([]), "{info}");
    d.cli(cli, &["create", "--name", "dflt", &img, "true"]).ok();
    let info = d.inspect(cli, "dflt");
    let masked = info["HostConfig"]["MaskedPaths"].as_array().cloned().unwrap_or_default();
    assert!(masked.iter().any(|p| p == "/proc/kcore"), "{info}");
    d.cli(cli, &["rm", "open", "dflt"]).ok();
}
both!(system_paths_unconfined);

/// Another container's processes are neither visible nor signalable nor traceable: its host
/// pid names nothing in this pid namespace (no `--pid container:`), and CAP_SYS_PTRACE is absent.
fn cannot_see_signal_or_ptrace_other_containers(cli: Cli) {
    let d = Daemon::start();
    let img = busybox(&d);
    let other = d.cli(cli, &["run", "-d", &img, "sleep", "300"]).ok().trimmed().to_string();
    let pid = d.cli(cli, &["inspect", "-f", "{{.State.Pid}}", &other]).ok().trimmed().to_string();
    let probe = probe(&d);
    let vol = format!("{}:/probe:ro", probe.display());
    let script = format!(
        "ps -o pid,comm | grep -c sleep; kill -9 {pid} 2>&1; echo kill=$?; ls /proc/{pid} >/dev/null 2>&1; echo see=$?; \
         /probe/probe ptrace {pid}; grep ^CapEff: /proc/self/status"
    );
    let out = sh(&d, cli, &["-v", &vol], &script);
    assert_eq!(out.lines().next().map(str::trim), Some("0"), "{out}");
    assert_ne!(value(&out, "kill"), "0", "{out}");
    assert_ne!(value(&out, "see"), "0", "{out}");
    assert_eq!(value(&out, "ptrace"), "No such process", "{out}");
    let eff = u64::from_str_radix(&status_field(&out, "CapEff"), 16).unwrap_or(u64::MAX);
    assert_eq!(eff & 1 << 19, 0, "CAP_SYS_PTRACE present: {out}");
    std::thread::sleep(Duration::from_millis(200));
    let running = d.cli(cli, &["inspect", "-f", "{{.State.Running}}", &other]).ok().trimmed().to_string();
    assert_eq!(running, "true");
    // The host's init is not in the container's pid namespace: /proc/1 is the container's sh.
    let out = sh(&d, cli, &[], "cat /proc/1/cmdline | tr '\\0' ' '; echo");
    assert!(!out.contains("init") && !out.contains("systemd"), "{out}");
    d.cli(cli, &["rm", "-f", &other]).ok();
}
both!(cannot_see_signal_or_ptrace_other_containers);

/// The daemon's hard RLIMIT_NOFILE (wharfd inherits the test's).
fn nofile_hard_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    line.split_whitespace().nth(4).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{line}"))
}

fn sysctl_ulimit_shm_and_namespaces(cli: Cli) {
    let d = Daemon::start();
    let out = sh(&d, cli, &["--sysctl", "net.ipv4.ip_forward=1"], "cat /proc/sys/net/ipv4/ip_forward");
    assert!(out.trim().ends_with('1'), "{out}");
    let out = sh(&d, cli, &["--sysctl", "kernel.pid_max=100000"], "true");
    assert!(out.contains("not namespaced") || out.contains("not allowed"), "{out}");
    let out = sh(&d, cli, &["--ulimit", "nofile=1024:2048"], "ulimit -n; ulimit -Hn");
    assert!(out.contains("1024") && out.contains("2048"), "{out}");
    // Above the daemon's own hard limit: refused, naming the limit asked for and the maximum.
    let max = nofile_hard_limit();
    let img = busybox(&d);
    let too_high = format!("nofile=1024:{}", max + 1);
    d.cli(cli, &["run", "--rm", "--ulimit", &too_high, &img, "true"]).code_is(125).mentions(&[
        "ulimit nofile",
        &format!("hard limit {}", max + 1),
        &format!("daemon's maximum {max}"),
        "RLIMIT_NOFILE",
    ]);
    let at_max = format!("nofile={max}:{max}");
    let out = sh(&d, cli, &["--ulimit", &at_max], "ulimit -Hn");
    assert_eq!(out.trim(), max.to_string(), "{out}");
    let out = sh(&d, cli, &["--shm-size", "128m"], "df -k /dev/shm | tail -1");
    assert!(out.contains("131072"), "{out}");
    let host_uts = std::fs::read_link("/proc/self/ns/uts").unwrap().display().to_string();
    let out = sh(&d, cli, &["--uts", "host"], "readlink /proc/self/ns/uts");
    assert_eq!(out.trim(), host_uts, "{out}");
    let out = sh(&d, cli, &["--group-add", "1234"], "id -G");
    assert!(out.split_whitespace().any(|g| g == "1234"), "{out}");
    let out = sh(&d, cli, &["--oom-score-adj", "500"], "cat /proc/self/oom_score_adj");
    assert_eq!(out.trim(), "500", "{out}");
}
both!(sysctl_ulimit_shm_and_namespaces);

/// `--oom-kill-disable`: memory.oom_control on cgroup v1; Docker's warning without a memory
/// limit (or, on v2, that it was discarded).
fn oom_kill_disable(cli: Cli) {
    let d = Daemon::start();
    let img = busybox(&d);
    let out = d.cli(cli, &["run", "-d", "--name", "noom", "--oom-kill-disable", "-m", "32m", &img, "sleep", "300"]);
    out.ok();
    let info = d.inspect(cli, "noom");
    let pid = info["State"]["Pid"].as_i64().unwrap_or(0);
    let (file, _) = cgroup_file(pid, "memory", "memory.oom_control", "");
    let v2 = !file.ends_with("memory.oom_control");
    if v2 {
        assert!(out.stderr.contains("OomKillDisable discarded"), "{out}");
        assert_eq!(info["HostConfig"]["OomKillDisable"], false, "{info}");
    } else {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.lines().any(|l| l == "oom_kill_disable 1"), "{}: {text}", file.display());
        assert_eq!(info["HostConfig"]["OomKillDisable"], true, "{info}");
        assert!(!out.stderr.contains("WARNING"), "{out}");
        let out = d.cli(cli, &["create", "--oom-kill-disable", &img, "true"]);
        out.ok().mentions(&["OOM killer is disabled for the container, but no memory limit is set"]);
        d.cli(cli, &["rm", out.trimmed()]).ok();
    }
    d.cli(cli, &["run", "-d", "--name", "oom", "-m", "32m", &img, "sleep", "300"]).ok();
    let pid = d.inspect(cli, "oom")["State"]["Pid"].as_i64().unwrap_or(0);
    let (plain, _) = cgroup_file(pid, "memory", "memory.oom_control", "");
    if !v2 {
        let text = std::fs::read_to_string(&plain).unwrap();
        assert!(text.lines().any(|l| l == "oom_kill_disable 0"), "{text}");
    }
    d.cli(cli, &["rm", "-f", "noom", "oom"]).ok();
}
both!(oom_kill_disable);

/// The Docker API keeps refusing `UTSMode: container:…` (dockerd does; the docker CLI refuses
/// it before sending, so the request goes raw); only the CRI's pods join a UTS namespace.
#[test]
fn uts_container_mode_is_refused_by_the_docker_api() {
    let d = Daemon::start();
    let img = d.pull("library/busybox:latest");
    d.docker(&["run", "-d", "--name", "uts-a", &img, "sleep", "300"]).ok();
    let body = format!(r#"{{"Image":"{img}","Cmd":["true"],"HostConfig":{{"UTSMode":"container:uts-a"}}}}"#);
    let answer = crate::harness::http_unix_post(&d.sock, "/containers/create?name=uts-b", &body);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("invalid UTS mode: container:uts-a"), "{answer}");
    d.docker(&["inspect", "uts-b"]).fails();
    d.docker(&["rm", "-f", "uts-a"]).ok();
}
