//! `DOCKER_HOST=ssh://…` end to end, as Docker documents it: a private sshd of the test's own
//! (Debian's openssh-server, on a loopback port, with keys and a known_hosts file made by the
//! test) in front of a host where wharf is installed by `scripts/install --docker-link`, so the
//! `docker system dial-stdio` that a client runs over ssh is wharf's. Through it the real docker
//! CLI and the wharf CLI (`-H ssh://…`) list, run with a TTY-less stdin, read logs and remove.
//! The system's ssh client is used, as both CLIs use it, with the test's ssh config put first
//! on PATH by a wrapper.

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{bin, bin_dir, free_port, run_cmd, Daemon, Output, TempDir, COMMAND_TIMEOUT};

/// A private sshd: stopped on drop, with `/run/sshd` (its privilege separation directory)
/// removed if it made it.
struct Sshd {
    child: Child,
    port: u16,
    made_run_dir: bool,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.made_run_dir {
            let _ = fs::remove_dir("/run/sshd");
        }
    }
}

fn keygen(path: &Path) {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", "ed25519", "-N", "", "-C", "wharf-e2e", "-f"]).arg(path);
    run_cmd(cmd, COMMAND_TIMEOUT).ok();
}

/// Starts sshd on a free loopback port, letting in root with `client_key.pub` only; sessions
/// get `env` (sshd's `SetEnv`).
fn start_sshd(dir: &Path, env: &[(&str, String)]) -> Sshd {
    let host_key = dir.join("host_key");
    keygen(&host_key);
    let port = free_port();
    let set_env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\n\
         PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         UsePAM no\nStrictModes no\nSetEnv {}\n",
        host_key.display(),
        dir.join("sshd.pid").display(),
        dir.join("authorized_keys").display(),
        set_env.join(" "),
    );
    fs::write(dir.join("sshd_config"), config).unwrap();
    let made_run_dir = !Path::new("/run/sshd").exists();
    if made_run_dir {
        fs::create_dir_all("/run/sshd").unwrap();
        fs::set_permissions("/run/sshd", fs::Permissions::from_mode(0o755)).unwrap();
    }
    let log = fs::File::create(dir.join("sshd.log")).unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("sshd (Debian's openssh-server, as .ci/run installs it): {e}"));
    let sshd = Sshd { child, port, made_run_dir };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "sshd did not listen: {}",
            fs::read_to_string(dir.join("sshd.log")).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Its key, known in advance: the client checks it strictly.
    let host_pub = fs::read_to_string(dir.join("host_key.pub")).unwrap();
    fs::write(dir.join("known_hosts"), format!("[127.0.0.1]:{port} {host_pub}")).unwrap();
    sshd
}

/// A directory with an `ssh` that is the system's with the test's config: put first on PATH.
fn ssh_wrapper(dir: &Path) -> PathBuf {
    let config = format!(
        "Host 127.0.0.1\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  \
         StrictHostKeyChecking yes\n  BatchMode yes\n",
        dir.join("client_key").display(),
        dir.join("known_hosts").display(),
    );
    fs::write(dir.join("ssh_config"), config).unwrap();
    let wrap = dir.join("wrap");
    fs::create_dir_all(&wrap).unwrap();
    let script = format!("#!/bin/sh\nexec /usr/bin/ssh -F {} \"$@\"\n", dir.join("ssh_config").display());
    fs::write(wrap.join("ssh"), script).unwrap();
    fs::set_permissions(wrap.join("ssh"), fs::Permissions::from_mode(0o755)).unwrap();
    wrap
}

#[test]
fn docker_host_over_ssh_reaches_wharfd() {
    let d = Daemon::start();
    let image = d.pull("library/busybox:latest");
    let dir = TempDir::new("wharf-e2e-ssh");
    // wharf installed on the "remote" host, `docker` linked to it.
    let root = dir.0.join("root");
    let mut install = Command::new("bash");
    install
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install"))
        .arg("--from")
        .arg(bin_dir())
        .args(["--no-build", "--docker-link", "--prefix", "/usr/local", "--destdir"])
        .arg(&root);
    run_cmd(install, COMMAND_TIMEOUT).ok();
    let remote_bin = root.join("usr/local/bin");
    assert_eq!(fs::read_link(remote_bin.join("docker")).unwrap(), Path::new("wharf"));

    keygen(&dir.0.join("client_key"));
    fs::copy(dir.0.join("client_key.pub"), dir.0.join("authorized_keys")).unwrap();
    let sshd =
        start_sshd(&dir.0, &[("PATH", format!("{}:/usr/bin:/bin", remote_bin.display())), ("DOCKER_HOST", d.host())]);
    let url = format!("ssh://root@127.0.0.1:{}", sshd.port);
    let path = format!("{}:{}", ssh_wrapper(&dir.0).display(), std::env::var("PATH").unwrap_or_default());
    let docker = |args: &[&str]| -> Output {
        let mut cmd = d.command(crate::harness::Cli::Docker, args);
        cmd.env("DOCKER_HOST", &url).env("PATH", &path);
        run_cmd(cmd, COMMAND_TIMEOUT)
    };
    let wharf = |args: &[&str]| -> Output {
        let mut cmd = Command::new(bin("wharf"));
        cmd.arg("-H").arg(&url).args(args).env("PATH", &path);
        run_cmd(cmd, COMMAND_TIMEOUT)
    };

    let v = docker(&["version", "--format", "{{.Server.Version}} {{.Server.Os}}"]);
    v.ok();
    assert!(v.stdout.contains("linux"), "{v}");
    docker(&["run", "-d", "--name", "far", &image, "sh", "-c", "echo from-far; sleep 300"]).ok();
    let ps = docker(&["ps", "--format", "{{.Names}}"]);
    assert!(ps.stdout.lines().any(|l| l == "far"), "{ps}");
    // Standard input over the hijacked connection, ended by ssh's end of input.
    let mut run = d.command(crate::harness::Cli::Docker, &["run", "--rm", "-i", &image, "tr", "a-z", "A-Z"]);
    run.env("DOCKER_HOST", &url).env("PATH", &path).stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = run.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"over ssh\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OVER SSH\n");

    // The wharf CLI the same way.
    let logs = wharf(&["logs", "far"]);
    logs.ok();
    assert_eq!(logs.stdout, "from-far\n", "{logs}");
    let ps = wharf(&["ps", "--format", "{{.Names}}"]);
    assert!(ps.stdout.lines().any(|l| l == "far"), "{ps}");
    wharf(&["rm", "-f", "far"]).ok();
    assert!(!d.docker(&["ps", "-a", "--format", "{{.Names}}"]).stdout.contains("far"));

    // A host key that is not the known one: refused by ssh, named in the error.
    fs::write(
        dir.0.join("known_hosts"),
        format!(
            "[127.0.0.1]:{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMmC7cE1W+wsN8h3uSP1QQZ0YVLpK/V/2KQmxSPcAoPM\n",
            sshd.port
        ),
    )
    .unwrap();
    let bad = wharf(&["ps"]);
    bad.fails();
    assert!(bad.stderr.contains("Host key verification failed") || bad.stderr.contains("HOST IDENTIFICATION"), "{bad}");
    // An ssh URL with a path is refused before anything runs, as the docker CLI refuses it.
    let mut cmd = Command::new(bin("wharf"));
    cmd.args(["-H", "ssh://root@127.0.0.1/var/run/docker.sock", "ps"]);
    let out = run_cmd(cmd, COMMAND_TIMEOUT);
    out.fails();
    assert!(out.stderr.contains("extra path after the host"), "{out}");
}
