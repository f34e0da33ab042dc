//! A private Docker engine (Debian's `docker.io`, dockerd 20.10) for differential tests: its
//! own data root, exec root, socket, pidfile, trust key, daemon.json and cgroup parent under a
//! temp dir; no iptables rules and no bridge (`--bridge=none`, so no `docker0`). Dropping it
//! removes its containers, stops it and checks, as the harness does for wharfd, that it left no
//! process, mount, cgroup or bridge behind (what it left is cleaned, then the test fails).

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{cgroup_dirs, http_unix, run_cmd, unique, Output, TempDir, COMMAND_TIMEOUT};

pub struct Dockerd {
    pub sock: PathBuf,
    /// `--cgroup-parent`: the containers' cgroups lie under it, in every hierarchy.
    pub cgroup_parent: String,
    docker_config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// Removed (by its own drop) only after `drop` has stopped the engine and unmounted.
    dir: TempDir,
}

impl Dockerd {
    /// Starts a dockerd trusting plain HTTP from `insecure_registries` (`127.0.0.1:PORT`);
    /// waits for `/_ping`. The error says why it did not come up (not installed, its log).
    pub fn start(insecure_registries: &[&str]) -> Result<Dockerd, String> {
        Self::start_with_args(insecure_registries, &[])
    }

    /// [`Dockerd::start`] with more daemon flags.
    pub fn start_with_args(insecure_registries: &[&str], extra: &[&str]) -> Result<Dockerd, String> {
        if Command::new("dockerd").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
            return Err("no `dockerd` on PATH: install Debian's docker.io (with a policy-rc.d that exits 101 so \
                        that its service is not started), as .ci/run does"
                .to_string());
        }
        let dir = TempDir::new("dockerd");
        let docker_config = dir.0.join("docker-config");
        fs::create_dir_all(&docker_config).map_err(|e| format!("mkdir: {e}"))?;
        let daemon_json = dir.0.join("daemon.json");
        // The trust key: else dockerd writes /etc/docker/key.json (a daemon.json key only).
        let key = serde_json::json!({ "deprecated-key-path": dir.0.join("key.json") });
        fs::write(&daemon_json, key.to_string()).map_err(|e| format!("write daemon.json: {e}"))?;
        let log = dir.0.join("dockerd.log");
        let log_file = fs::File::create(&log).map_err(|e| format!("create dockerd.log: {e}"))?;
        let mut d = Dockerd {
            sock: dir.0.join("docker.sock"),
            cgroup_parent: format!("/{}", unique("wharf-e2e-dockerd")),
            docker_config,
            log,
            child: None,
            dir,
        };
        had_run_containerd();
        let mut cmd = Command::new("dockerd");
        cmd.arg("--config-file")
            .arg(&daemon_json)
            .arg("--data-root")
            .arg(d.dir.0.join("data"))
            .arg("--exec-root")
            .arg(d.dir.0.join("exec"))
            .arg("-H")
            .arg(d.host())
            .arg("--pidfile")
            .arg(d.dir.0.join("docker.pid"))
            .arg("--cgroup-parent")
            .arg(&d.cgroup_parent)
            .args(["--iptables=false", "--ip-masq=false", "--ip6tables=false", "--bridge=none"])
            .args(["--log-level", "info"]);
        for r in insecure_registries {
            cmd.arg("--insecure-registry").arg(r);
        }
        cmd.args(extra);
        cmd.stdin(Stdio::null()).stdout(log_file.try_clone().map_err(|e| e.to_string())?).stderr(log_file);
        // SAFETY: prctl is async-signal-safe and touches only the child's own state. The test
        // thread that forks lives until this value is dropped, so SIGTERM only comes early
        // when the test process dies without dropping it.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| format!("cannot spawn dockerd: {e}"))?;
        d.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(Ok(Some(status))) = d.child.as_mut().map(|c| c.try_wait()) {
                d.child = None;
                return Err(format!("dockerd exited at start ({status}); log:\n{}", d.log_text()));
            }
            if http_unix(&d.sock, "GET", "/_ping").is_some_and(|r| r.contains(" 200 ")) {
                return Ok(d);
            }
            if Instant::now() > deadline {
                return Err(format!("dockerd did not answer /_ping in 60 s; log:\n{}", d.log_text()));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `program` (a docker CLI) pointed at this engine with a private config dir, not started.
    pub fn command_with(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", &self.docker_config)
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .env("DOCKER_CLI_HINTS", "false")
            .args(args);
        cmd
    }

    /// The `docker` CLI on PATH pointed at this engine, not started.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_with("docker", args)
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        run_cmd(self.command(args), COMMAND_TIMEOUT)
    }

    fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            crate::harness::terminate(c, Duration::from_secs(30));
        }
    }

    /// What the stopped engine left behind, cleaned as it is found.
    fn collect_and_clean_leaks(&self) -> Vec<String> {
        let mut leaks = Vec::new();
        let roots = [self.dir.0.clone()];
        // containerd and its shims name the exec root in their command lines.
        leaks.extend(crate::harness::kill_leaked_processes(&roots, &self.cgroup_parent, Duration::from_secs(5)));
        leaks.extend(crate::harness::unmount_leaked(&self.dir.0));
        // dockerd makes the parent and leaves it (empty) behind by design; a container's
        // cgroup still under it is a leak.
        for parent in cgroup_dirs(&self.cgroup_parent) {
            let children: Vec<PathBuf> = fs::read_dir(&parent)
                .map(|rd| rd.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()).collect())
                .unwrap_or_default();
            for c in &children {
                leaks.push(format!("cgroup left behind: {}", c.display()));
                let _ = fs::remove_dir(c);
            }
            let _ = fs::remove_dir(&parent);
        }
        // With --bridge=none this engine never makes docker0: one that appeared meanwhile is
        // another engine's (a bench's dockerd) and is left alone.
        leaks
    }
}

/// Whether /run/containerd was on the host before this process started its first dockerd.
fn had_run_containerd() -> bool {
    static HAD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAD.get_or_init(|| std::path::Path::new("/run/containerd").exists())
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let mut networks = Vec::new();
        if self.child.is_some() {
            let ps = self.cli(&["ps", "-aq"]);
            let ids: Vec<&str> = ps.stdout.split_whitespace().collect();
            if ps.success() && !ids.is_empty() {
                let mut args = vec!["rm", "-f", "-v"];
                args.extend(ids);
                let _ = self.cli(&args);
            }
            // dockerd keeps a user network's bridge when it stops; with its data root gone the
            // bridge would stay on the host forever. So its networks go first.
            let ls = self.cli(&["network", "ls", "-q", "--no-trunc", "--filter", "type=custom"]);
            networks = ls.stdout.split_whitespace().map(str::to_string).collect();
            for n in &networks {
                let _ = self.cli(&["network", "rm", n]);
            }
        }
        self.stop();
        // containerd's shims keep their sockets under /run/containerd/s whatever the exec
        // root: the directories go again when no dockerd of this process made them (while
        // another engine still has sockets there they stay).
        if !had_run_containerd() {
            let _ = fs::remove_dir("/run/containerd/s");
            let _ = fs::remove_dir("/run/containerd");
        }
        let mut leaks = self.collect_and_clean_leaks();
        for n in &networks {
            leaks.extend(crate::network::leaked_network(&format!("br-{}", n.get(..12).unwrap_or(n))));
        }
        if !leaks.is_empty() && !thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "dockerd in {} was not clean after the test:\n  {}\n--- dockerd log ---\n{}",
                self.dir.0.display(),
                leaks.join("\n  "),
                tail.join("\n")
            );
        }
    }
}
