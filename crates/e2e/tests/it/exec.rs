//! `exec`, `run -i` with piped stdin, and what an exec'd process sees (through the docker CLI
//! against wharfd): exit codes, -u/-e/-w, the container's capabilities, no host fds.

use std::io::Write;
use std::process::Stdio;

use crate::harness::{http_unix, registry, Cli, Daemon};

fn running(d: &Daemon) -> String {
    let image = registry().image("library/busybox:latest");
    d.docker(&["pull", &image]).ok();
    d.docker(&["run", "-d", "--name", "ctr", "-e", "FOO=bar", "-w", "/tmp", &image, "sleep", "60"]).ok();
    image
}

#[test]
fn exec_exit_codes_user_env_cwd() {
    let d = Daemon::start();
    running(&d);
    assert_eq!(d.docker(&["exec", "ctr", "echo", "hi"]).ok().trimmed(), "hi");
    d.docker(&["exec", "ctr", "sh", "-c", "exit 7"]).code_is(7);
    d.docker(&["exec", "ctr", "nosuch"]).code_is(127);
    d.docker(&["exec", "ctr", "/etc"]).code_is(126);
    assert_eq!(d.docker(&["exec", "ctr", "sh", "-c", "echo $FOO; pwd; id -u"]).ok().trimmed(), "bar\n/tmp\n0");
    let out =
        d.docker(&["exec", "-u", "nobody", "-e", "FOO=baz", "-w", "/", "ctr", "sh", "-c", "echo $FOO; pwd; id -u"]);
    assert_eq!(out.ok().trimmed(), "baz\n/\n65534");
    d.docker(&["rm", "-f", "ctr"]).ok();
}

#[test]
fn exec_has_the_containers_capabilities_and_no_host_fds() {
    let d = Daemon::start();
    running(&d);
    let init = d.docker(&["exec", "ctr", "grep", "CapEff", "/proc/1/status"]).ok().trimmed().to_string();
    let own = d.docker(&["exec", "ctr", "grep", "CapEff", "/proc/self/status"]).ok().trimmed().to_string();
    assert_eq!(init, own);
    assert!(!own.ends_with("000001ffffffffff"), "{own}");
    // CVE-2024-21626: only the standard streams, and a cwd inside the container.
    let fds = d.docker(&["exec", "ctr", "ls", "/proc/self/fd"]).ok().trimmed().to_string();
    let fds: Vec<&str> = fds.split_whitespace().collect();
    assert!(fds.len() <= 4, "{fds:?}");
    let fds = d.docker(&["exec", "ctr", "sh", "-c", "ls -l /proc/1/fd; readlink /proc/self/cwd"]).ok().all();
    assert!(!fds.contains("/var/lib") && !fds.contains("wharf"), "{fds}");
    d.docker(&["rm", "-f", "ctr"]).ok();
}

#[test]
fn exec_detached_and_inspect() {
    let d = Daemon::start();
    running(&d);
    d.docker(&["exec", "-d", "ctr", "sh", "-c", "echo done > /tmp/flag"]).ok();
    assert!(crate::harness::wait_for(std::time::Duration::from_secs(5), || {
        d.docker(&["exec", "ctr", "cat", "/tmp/flag"]).success()
    }));
    // An exec instance lives as long as its container: after `rm` it is gone, as in dockerd.
    let created = crate::harness::http_unix_post(&d.sock, "/containers/ctr/exec", r#"{"Cmd":["true"]}"#);
    let id = created.split("\"Id\":\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default().to_string();
    assert_eq!(id.len(), 64, "{created}");
    let inspect = format!("/exec/{id}/json");
    assert!(http_unix(&d.sock, "GET", &inspect).unwrap_or_default().starts_with("HTTP/1.1 200"));
    d.docker(&["rm", "-f", "ctr"]).ok();
    let gone = http_unix(&d.sock, "GET", &inspect).unwrap_or_default();
    assert!(gone.starts_with("HTTP/1.1 404") && gone.contains("No such exec instance"), "{gone}");
    d.docker(&["exec", "ctr", "true"]).fails();
}

#[test]
fn run_i_with_piped_stdin_sees_eof() {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.docker(&["pull", &image]).ok();
    for cli in [Cli::Wharf, Cli::Docker] {
        let mut cmd = d.command(cli, &["run", "--rm", "-i", &image, "sh", "-c", "cat; echo end"]);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn run -i");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"data\nmore\n").expect("write stdin");
        drop(stdin);
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{:?}", out);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "data\nmore\nend\n");
    }
}

#[test]
fn exec_i_with_piped_stdin() {
    let d = Daemon::start();
    running(&d);
    let mut cmd = d.command(Cli::Docker, &["exec", "-i", "ctr", "sh", "-c", "wc -l"]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn exec -i");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"1\n2\n3\n").expect("write stdin");
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{:?}", out);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");
    d.docker(&["rm", "-f", "ctr"]).ok();
}

#[test]
fn tty_in_run_and_exec() {
    let d = Daemon::start();
    let image = running(&d);
    let out = d.docker(&["run", "--rm", "-t", &image, "sh", "-c", "tty; echo ok"]).ok().all();
    assert!(out.contains("/dev/pts/0") && out.contains("ok\r\n"), "{out:?}");
    let out = d.docker(&["exec", "-t", "ctr", "tty"]).ok().all();
    assert!(out.contains("/dev/pts/"), "{out:?}");
    d.docker(&["rm", "-f", "ctr"]).ok();
}
