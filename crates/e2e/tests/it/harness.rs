//! The end-to-end harness: one registry per test binary, one wharfd per test, CLI runners and
//! the cleanliness check every daemon must pass when a test ends.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long one CLI command may run before the harness kills it and fails the test.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Held by every test that edits the host's /etc/passwd, /etc/group, /etc/subuid or
/// /etc/subgid, directly or through groupadd/useradd/userdel: those rewrite the whole file, so
/// an edit made beside one of them is lost.
pub(crate) static ETC_LOCK: Mutex<()> = Mutex::new(());

/// A name unique in this test binary and among concurrently running binaries.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst))
}

/// The directory holding wharf's binaries: `target/debug/deps/it-HASH` → `target/debug`.
/// `WHARF_BIN_DIR` overrides it (e.g. to test target/release).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WHARF_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary has a parent dir");
    if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("deps has a parent").to_path_buf()
    } else {
        deps.to_path_buf()
    }
}

pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// Where tests put their temporary directories (`WHARF_E2E_TMP`, else the system temp dir).
fn tmp_base() -> PathBuf {
    std::env::var_os("WHARF_E2E_TMP").map(PathBuf::from).unwrap_or_else(std::env::temp_dir)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

/// The captured result of one command. `#[must_use]`: a command whose result nobody checks
/// is a test that cannot fail.
#[derive(Debug, Clone)]
#[must_use]
pub struct Output {
    pub cmdline: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// stdout and stderr together, for "the message names X" checks.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(self.success(), "command failed:\n{self}");
        self
    }

    #[track_caller]
    pub fn code_is(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code:\n{self}");
        self
    }

    #[track_caller]
    pub fn fails(&self) -> &Self {
        assert!(!self.success(), "command should have failed:\n{self}");
        self
    }

    /// Asserts that stdout+stderr contain every needle, case-insensitively.
    #[track_caller]
    pub fn mentions(&self, needles: &[&str]) -> &Self {
        let all = self.all().to_lowercase();
        for n in needles {
            assert!(all.contains(&n.to_lowercase()), "output does not mention {n:?}:\n{self}");
        }
        self
    }

    pub fn trimmed(&self) -> &str {
        self.stdout.trim()
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ {}\nexit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline, self.code, self.stdout, self.stderr
        )
    }
}

/// Runs a command with a timeout, capturing stdout and stderr.
pub fn run_cmd(mut cmd: Command, timeout: Duration) -> Output {
    let cmdline = format!("{cmd:?}");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Output { cmdline, code: -1, stdout: String::new(), stderr: format!("harness: cannot spawn: {e}") }
        }
    };
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let t_out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() > deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    let mut stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    if timed_out {
        stderr.push_str(&format!("\nharness: killed after {timeout:?}"));
    }
    let code = match status {
        Some(s) => s.code().unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(0)),
        None => -1,
    };
    Output { cmdline, code, stdout, stderr }
}

// ---------------------------------------------------------------------------------------------
// The registry

/// A `docker-registry` (distribution 2.8) on a free loopback port, filled by make_images.py.
pub struct Registry {
    pub addr: String,
    /// make_images.py's JSON summary.
    pub summary: Value,
}

impl Registry {
    /// `ADDR/name`, e.g. `127.0.0.1:41234/library/busybox:latest`.
    pub fn image(&self, name: &str) -> String {
        format!("{}/{}", self.addr, name)
    }

    /// The summary entry of an image, e.g. `info("library/busybox:latest")`.
    #[track_caller]
    pub fn info(&self, name: &str) -> &Value {
        let v = &self.summary["images"][name];
        assert!(!v.is_null(), "no image {name} in make_images.py's summary");
        v
    }

    pub fn manifest_digest(&self, name: &str) -> String {
        self.info(name)["manifest_digest"].as_str().unwrap_or_default().to_string()
    }
}

struct RegistryProcess {
    pid: i32,
    dir: PathBuf,
}

static REGISTRY: OnceLock<Registry> = OnceLock::new();
static REGISTRY_PROCESS: Mutex<Option<RegistryProcess>> = Mutex::new(None);

extern "C" fn stop_registry_at_exit() {
    let Ok(mut guard) = REGISTRY_PROCESS.lock() else {
        return;
    };
    if let Some(p) = guard.take() {
        // SAFETY: plain kill/waitpid on the pid of a child this process started.
        unsafe {
            libc::kill(p.pid, libc::SIGKILL);
            libc::waitpid(p.pid, std::ptr::null_mut(), 0);
        }
        let _ = fs::remove_dir_all(&p.dir);
    }
}

/// Runs `scripts/<name>` (which installs a tool from PyPI into a venv under cargo's
/// `CARGO_TARGET_TMPDIR`) and returns the path it prints; `what` names the package in the error.
pub(crate) fn install_with_script(name: &str, what: &str) -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts").join(name);
    let mut cmd = Command::new("bash");
    cmd.arg(script).arg(env!("CARGO_TARGET_TMPDIR"));
    let out = run_cmd(cmd, Duration::from_secs(300));
    if !out.success() {
        return Err(format!("scripts/{name} failed (it installs {what} from PyPI):\n{out}"));
    }
    Ok(PathBuf::from(out.stdout.trim()))
}

/// A loopback port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// The registry shared by every test of this binary, started on first use.
pub fn registry() -> &'static Registry {
    REGISTRY.get_or_init(start_registry)
}

fn start_registry() -> Registry {
    let dir = tmp_base().join(unique("wharf-e2e-registry"));
    let storage = dir.join("storage");
    fs::create_dir_all(&storage).expect("create registry storage");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.join("config.yml");
    fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n",
            storage.display()
        ),
    )
    .expect("write registry config");
    let log = fs::File::create(dir.join("registry.log")).expect("registry log");

    let pid = spawn_registry_process(&config, log);
    *REGISTRY_PROCESS.lock().expect("registry lock") = Some(RegistryProcess { pid, dir: dir.clone() });
    // SAFETY: registers a plain extern "C" function with no captured state.
    unsafe {
        libc::atexit(stop_registry_at_exit);
    }

    wait_registry_up(&addr, &dir);
    let summary = make_images(&addr, &["--storage".as_ref(), storage.as_os_str()]);
    Registry { addr, summary }
}

/// Starts `docker-registry serve CONFIG` with its output in `log`; returns its pid.
fn spawn_registry_process(config: &Path, log: fs::File) -> i32 {
    // PR_SET_PDEATHSIG fires when the *thread* that forked dies, and test threads end with
    // their test: fork from a thread that lives as long as the process.
    let (tx, rx) = mpsc::channel();
    let config = config.to_path_buf();
    thread::spawn(move || {
        let mut cmd = Command::new("/usr/bin/docker-registry");
        cmd.arg("serve").arg(&config).stdin(Stdio::null()).stdout(log.try_clone().expect("dup log")).stderr(log);
        // SAFETY: prctl is async-signal-safe and touches only the child's own state.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let res = cmd.spawn();
        let ok = res.is_ok();
        let _ = tx.send(res.map(|c: Child| c.id()));
        if ok {
            loop {
                thread::park();
            }
        }
    });
    let pid =
        rx.recv().expect("registry thread").unwrap_or_else(|e| panic!("cannot start /usr/bin/docker-registry: {e}"));
    pid as i32
}

/// Waits until the registry answers `/v2/` at all (200, or 401 when it wants credentials).
fn wait_registry_up(addr: &str, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if http_get_tcp(addr, "/v2/").is_some_and(|r| r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.1 401")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "registry on {addr} did not answer /v2/; log:\n{}",
            fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Runs make_images.py against `addr` with extra arguments; returns its JSON summary.
fn make_images(addr: &str, extra: &[&std::ffi::OsStr]) -> Value {
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("tests/fixtures/make_images.py")).arg("--registry").arg(addr).args(extra);
    let out = run_cmd(cmd, Duration::from_secs(300));
    assert!(out.success(), "make_images.py failed:\n{out}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("make_images.py printed no JSON ({e}):\n{out}"))
}

/// How a test wants its own registry: which fixture repos it holds, whether it wants
/// credentials (htpasswd, basic auth) and whether it logs every request.
#[derive(Default, Clone)]
pub struct RegistryOptions {
    /// make_images.py `--only` repos, e.g. `library/busybox`; empty pushes nothing.
    pub only: Vec<String>,
    /// `(user, password)`: the registry answers 401 without them.
    pub htpasswd: Option<(String, String)>,
    /// Logs each request (`"GET /v2/... HTTP/1.1" 200`) to `log_text()`.
    pub access_log: bool,
}

/// A registry of one test, killed when dropped (and with the test process).
pub struct TestRegistry {
    pub addr: String,
    pub dir: PathBuf,
    pub summary: Value,
    pid: i32,
}

impl TestRegistry {
    #[track_caller]
    pub fn start(opts: RegistryOptions) -> TestRegistry {
        let dir = tmp_base().join(unique("wharf-e2e-registry"));
        let storage = dir.join("storage");
        fs::create_dir_all(&storage).expect("create registry storage");
        let addr = format!("127.0.0.1:{}", free_port());
        let mut auth = String::new();
        if let Some((user, pass)) = &opts.htpasswd {
            let mut cmd = Command::new("htpasswd");
            cmd.args(["-Bbn", user, pass]);
            let out = run_cmd(cmd, Duration::from_secs(30));
            assert!(out.success(), "htpasswd (apache2-utils) failed:\n{out}");
            let file = dir.join("htpasswd");
            fs::write(&file, &out.stdout).expect("write htpasswd");
            auth = format!("auth:\n  htpasswd:\n    realm: wharf-e2e\n    path: {}\n", file.display());
        }
        let (level, access) = if opts.access_log { ("info", "false") } else { ("error", "true") };
        let config = dir.join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: {level}\n  accesslog:\n    disabled: {access}\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {addr}\n{auth}",
                storage.display()
            ),
        )
        .expect("write registry config");
        let log = fs::File::create(dir.join("registry.log")).expect("registry log");
        let pid = spawn_registry_process(&config, log);
        let reg = TestRegistry { addr, dir, summary: Value::Null, pid };
        wait_registry_up(&reg.addr, &reg.dir);
        let mut reg = reg;
        if !opts.only.is_empty() {
            let user = opts.htpasswd.as_ref().map(|(u, p)| format!("{u}:{p}"));
            let mut extra: Vec<&std::ffi::OsStr> = Vec::new();
            for o in &opts.only {
                extra.push("--only".as_ref());
                extra.push(o.as_ref());
            }
            if let Some(u) = &user {
                extra.push("--user".as_ref());
                extra.push(u.as_ref());
            }
            reg.summary = make_images(&reg.addr, &extra);
        }
        reg
    }

    /// `ADDR/name`.
    pub fn image(&self, name: &str) -> String {
        format!("{}/{}", self.addr, name)
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        // SAFETY: kill/waitpid on the pid of a child this process started and nobody reaped.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn http_get_tcp(addr: &str, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    Some(buf)
}

/// One raw HTTP/1.1 request over a unix socket; returns the whole response (head and body).
pub fn http_unix(sock: &Path, method: &str, path: &str) -> Option<String> {
    let mut s = UnixStream::connect(sock).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// A raw `POST` with a JSON body over a unix socket; the whole answer (head and body), empty
/// when the socket did not answer.
pub fn http_unix_post(sock: &Path, path: &str, body: &str) -> String {
    let Ok(mut s) = UnixStream::connect(sock) else { return String::new() };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

// ---------------------------------------------------------------------------------------------
// The daemon

/// How a test wants its wharfd started.
#[derive(Default, Clone)]
pub struct DaemonOptions {
    /// The contents of daemon.json, passed with `--config-file`.
    pub config_json: Option<String>,
    pub extra_args: Vec<String>,
    /// A data root of the test's own (a small file system, say) instead of one in the
    /// daemon's directory; the test removes it.
    pub data_root: Option<PathBuf>,
    /// Environment variables of wharfd (proxies, say).
    pub env: Vec<(String, String)>,
    /// wharfd's soft open-file limit (the hard one stays), as a shell's `ulimit -Sn` sets it.
    pub nofile_soft: Option<u64>,
    /// The systemd cgroup driver (where systemd runs), with a slice of the daemon's own as
    /// the cgroup parent: `wharf_e2e_PID_N.slice`, stopped when the daemon is dropped.
    pub systemd_cgroups: bool,
}

/// Why a daemon did not come up.
#[derive(Debug)]
pub struct StartError {
    pub code: Option<i32>,
    pub log: String,
}

/// A wharfd with its own data root, exec root, socket and cgroup parent.
pub struct Daemon {
    pub dir: PathBuf,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub sock: PathBuf,
    /// `/wharf-e2e-PID-N`, passed as `--cgroup-parent`; with `systemd_cgroups` the slice's
    /// directory, `/wharf_e2e_PID_N.slice`, whose name is passed.
    pub cgroup_parent: String,
    /// The default bridge and its address (`--bridge`, `--bip`), unique per daemon.
    pub bridge: String,
    pub bip: String,
    pub docker_config: PathBuf,
    log: PathBuf,
    opts: DaemonOptions,
    child: Option<Child>,
    starts: usize,
    /// `WHARF_FAILPOINTS` for the next start only (`crash_at`).
    failpoints: Option<String>,
}

impl Daemon {
    /// Starts a daemon; panics with its log if it does not answer `/_ping`.
    #[track_caller]
    pub fn start() -> Daemon {
        Self::start_with(DaemonOptions::default())
    }

    #[track_caller]
    pub fn start_with(opts: DaemonOptions) -> Daemon {
        match Self::try_start(opts) {
            Ok(d) => d,
            Err(e) => panic!("wharfd did not start (exit code {:?}); log:\n{}", e.code, e.log),
        }
    }

    /// Starts a daemon; on failure everything it made is removed and its log returned.
    pub fn try_start(opts: DaemonOptions) -> Result<Daemon, StartError> {
        let name = unique("wharf-e2e");
        let dir = tmp_base().join(&name);
        let data_root = opts.data_root.clone().unwrap_or_else(|| dir.join("data"));
        let exec_root = dir.join("exec");
        let docker_config = dir.join("docker-config");
        for d in [&data_root, &exec_root, &docker_config] {
            fs::create_dir_all(d).expect("create daemon dirs");
        }
        // One number for the bridge and the subnet: two daemons starting at once must not
        // read the same counter value (they did, and one's cleanup deleted the other's bridge).
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let mut d = Daemon {
            sock: dir.join("wharfd.sock"),
            log: dir.join("wharfd.log"),
            data_root,
            exec_root,
            docker_config,
            cgroup_parent: if opts.systemd_cgroups {
                format!("/{}.slice", name.replace('-', "_"))
            } else {
                format!("/{name}")
            },
            bridge: format!("whe{}", n + 1000 * (std::process::id() as usize % 1000)),
            bip: format!("10.{}.{}.1/24", 200 + std::process::id() % 50, n % 256),
            dir,
            opts,
            child: None,
            starts: 0,
            failpoints: None,
        };
        // On failure `d` drops here, and Drop still checks that nothing was left behind.
        d.spawn().map(|()| d)
    }

    fn spawn(&mut self) -> Result<(), StartError> {
        let mut cmd = Command::new(bin("wharfd"));
        cmd.arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(&self.exec_root)
            .arg("--cgroup-parent")
            .arg(if self.opts.systemd_cgroups { &self.cgroup_parent[1..] } else { &self.cgroup_parent })
            .arg("--bridge")
            .arg(&self.bridge)
            .arg("--bip")
            .arg(&self.bip)
            .arg("--log-level")
            .arg("debug");
        if let Some(cfg) = &self.opts.config_json {
            let path = self.dir.join("daemon.json");
            fs::write(&path, cfg).expect("write daemon.json");
            cmd.arg("--config-file").arg(path);
        }
        if self.opts.systemd_cgroups {
            cmd.args(["--exec-opt", "native.cgroupdriver=systemd"]);
        }
        cmd.args(&self.opts.extra_args);
        // Proxies of the machine the tests run on are not the tests' to use.
        for name in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"] {
            cmd.env_remove(name);
        }
        cmd.envs(self.opts.env.iter().map(|(k, v)| (k, v)));
        match self.failpoints.take() {
            Some(points) => cmd.env("WHARF_FAILPOINTS", points),
            None => cmd.env_remove("WHARF_FAILPOINTS"),
        };
        let log = fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("open wharfd log");
        let mut header = log.try_clone().expect("dup log");
        let _ = writeln!(header, "=== harness: start #{} {cmd:?}", self.starts);
        self.starts += 1;
        cmd.stdin(Stdio::null()).stdout(log.try_clone().expect("dup log")).stderr(log);
        if let Some(soft) = self.opts.nofile_soft {
            // SAFETY: getrlimit/setrlimit between fork and exec, on a struct of this frame.
            unsafe {
                cmd.pre_exec(move || {
                    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                    if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    lim.rlim_cur = soft.min(lim.rlim_max);
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let _ = fs::remove_file(&self.sock);
        let mut child = cmd
            .spawn()
            .map_err(|e| StartError { code: None, log: format!("cannot spawn {}: {e}", bin("wharfd").display()) })?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(StartError { code: status.code(), log: self.log_text() });
            }
            if http_unix(&self.sock, "GET", "/_ping").is_some_and(|r| r.contains(" 200 ")) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(StartError { code: None, log: format!("no answer to /_ping in 30s\n{}", self.log_text()) });
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pid of the running wharfd, if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    /// `wharf -H unix://SOCK ARGS...`
    pub fn wharf(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin("wharf"));
        cmd.arg("-H").arg(self.host()).args(args);
        run_cmd(cmd, COMMAND_TIMEOUT)
    }

    /// `wharf` with `DOCKER_CONFIG` unset and `env` set (e.g. `HOME` for its credentials).
    pub fn wharf_env(&self, env: &[(&str, &Path)], args: &[&str]) -> Output {
        let mut cmd = Command::new(bin("wharf"));
        cmd.env_remove("DOCKER_CONFIG").arg("-H").arg(self.host()).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_cmd(cmd, COMMAND_TIMEOUT)
    }

    /// The real docker CLI, pointed at this daemon, with a private config dir.
    pub fn docker(&self, args: &[&str]) -> Output {
        run_cmd(self.command(Cli::Docker, args), COMMAND_TIMEOUT)
    }

    /// The command line of a client pointed at this daemon, not started (for tests that
    /// read its output while it runs).
    pub fn command(&self, cli: Cli, args: &[&str]) -> Command {
        match cli {
            Cli::Wharf => {
                let mut cmd = Command::new(bin("wharf"));
                cmd.arg("-H").arg(self.host()).args(args);
                cmd
            }
            Cli::Docker => {
                let mut cmd = Command::new("docker");
                cmd.env("DOCKER_HOST", self.host())
                    .env("DOCKER_CONFIG", &self.docker_config)
                    .env_remove("DOCKER_CONTEXT")
                    .env_remove("DOCKER_TLS_VERIFY")
                    .env_remove("DOCKER_CERT_PATH")
                    .env("DOCKER_CLI_HINTS", "false")
                    .args(args);
                cmd
            }
        }
    }

    /// Pulls an image from the test registry with `wharf pull`, asserting success.
    #[track_caller]
    pub fn pull(&self, name: &str) -> String {
        let image = registry().image(name);
        self.wharf(&["pull", &image]).ok();
        image
    }

    /// `kill -9` the daemon (its containers and shims must live on).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts wharfd again on the same data root, exec root and socket.
    #[track_caller]
    pub fn restart(&mut self) {
        self.stop_gracefully();
        if let Err(e) = self.spawn() {
            panic!("wharfd did not restart (exit code {:?}); log:\n{}", e.code, e.log);
        }
    }

    /// Starts wharfd again with these extra flags instead of the ones it had (a setting that
    /// depends on the daemon's own bridge address, say).
    #[track_caller]
    pub fn restart_with_args(&mut self, extra_args: Vec<String>) {
        self.opts.extra_args = extra_args;
        self.restart();
    }

    /// Restarts wharfd so that it kills itself (`kill -9`) when it reaches the step `point`
    /// (`engine::failpoint`); the next `restart` starts it without.
    #[track_caller]
    pub fn crash_at(&mut self, point: &str) {
        self.stop_gracefully();
        self.failpoints = Some(point.to_string());
        if let Err(e) = self.spawn() {
            panic!("wharfd did not start with failpoint {point} (exit code {:?}); log:\n{}", e.code, e.log);
        }
    }

    /// Whether the wharfd this harness started has exited (a failpoint fired).
    pub fn has_died(&mut self) -> bool {
        self.child.as_mut().is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Sends SIGTERM (or another signal) to wharfd and returns at once.
    pub fn signal(&self, signal: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on the pid of our own child.
            unsafe {
                libc::kill(pid as i32, signal);
            }
        }
    }

    /// Waits up to `timeout` for wharfd to exit; its exit status when it did (`restart`
    /// starts it again).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let status = wait_child(self.child.as_mut()?, timeout)?;
        self.child = None;
        Some(status)
    }

    /// SIGTERM and wait up to 15 s, then SIGKILL.
    pub fn stop_gracefully(&mut self) {
        if let Some(c) = self.child.take() {
            terminate(c, Duration::from_secs(15));
        }
    }

    /// Removes every container through the API, as a user would before stopping the daemon.
    /// The bridges of the daemon's user networks (none when it does not answer).
    fn network_bridges(&self) -> Vec<String> {
        if self.child.is_none() {
            return Vec::new();
        }
        let ls = self.wharf(&["network", "ls", "-q", "--no-trunc", "--filter", "type=custom"]);
        let ids: Vec<String> = ls.stdout.split_whitespace().map(str::to_string).collect();
        let mut out = Vec::new();
        for id in ids {
            let v = self.wharf(&["network", "inspect", &id]);
            if !v.success() {
                continue;
            }
            let opts = &v.json()[0]["Options"];
            let name = opts["com.docker.network.bridge.name"].as_str().map(str::to_string);
            out.push(name.unwrap_or_else(|| format!("br-{}", id.get(..12).unwrap_or(&id))));
        }
        out
    }

    fn remove_all_containers(&self) {
        if self.child.is_none() {
            return;
        }
        let ps = self.wharf(&["ps", "-aq"]);
        if !ps.success() {
            return;
        }
        let ids: Vec<&str> = ps.stdout.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.wharf(&args);
        }
    }

    /// Every leak this daemon left: processes, mounts, cgroups. Leaked things are also
    /// removed so that one failing test does not poison the others.
    fn collect_and_clean_leaks(&self) -> Vec<String> {
        let mut leaks = Vec::new();
        let roots = [self.data_root.clone(), self.exec_root.clone()];

        // A shim reports its container's exit before it unmounts the rootfs and exits
        // itself (tens of ms later): give such processes a moment to end on their own.
        leaks.extend(kill_leaked_processes(&roots, &self.cgroup_parent, Duration::from_secs(3)));

        leaks.extend(unmount_leaked(&self.dir));

        // The slice is systemd's, and stays until stopped; what wharf made in it must be gone.
        if self.opts.systemd_cgroups {
            for dir in cgroup_dirs(&self.cgroup_parent) {
                for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        leaks.push(format!("cgroup left behind: {}", e.path().display()));
                    }
                }
            }
            let _ = Command::new("systemctl").args(["stop", &self.cgroup_parent[1..]]).status();
        }
        for dir in cgroup_dirs(&self.cgroup_parent) {
            leaks.push(format!("cgroup left behind: {}", dir.display()));
            remove_cgroup_tree(&dir);
        }
        leaks.extend(crate::network::leaked_network(&self.bridge));
        leaks
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.remove_all_containers();
        let bridges = self.network_bridges();
        self.stop_gracefully();
        let mut leaks = self.collect_and_clean_leaks();
        // The bridges of the daemon's own networks: wharfd takes them down when it stops.
        for b in bridges {
            leaks.extend(crate::network::leaked_network(&b));
        }
        let log = self.log_text();
        let keep = std::env::var_os("WHARF_E2E_KEEP").is_some();
        if !keep {
            if let Err(e) = fs::remove_dir_all(&self.dir) {
                // Immutable or busy files would otherwise fail silently.
                eprintln!("harness: cannot remove {}: {e}", self.dir.display());
            }
        }
        if !leaks.is_empty() && !thread::panicking() {
            panic!(
                "daemon {} was not clean after the test:\n  {}\n--- wharfd log ---\n{}",
                self.dir.display(),
                leaks.join("\n  "),
                tail(&log, 60)
            );
        }
    }
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Mounts an engine left at or under `dir`: each is named in the result and detached, deepest
/// first so that nested mounts come off before their parents.
pub fn unmount_leaked(dir: &Path) -> Vec<String> {
    let mounts = mounts_under(dir);
    for m in mounts.iter().rev() {
        if let Ok(c) = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()) {
            // SAFETY: umount2 with a valid NUL-terminated path; MNT_DETACH cannot hang.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
    mounts.iter().map(|m| format!("mount left behind: {}", m.display())).collect()
}

/// Processes an engine left (see `leaked_processes`), after `settle` for them to end on their
/// own: each is named in the result and SIGKILLed.
pub fn kill_leaked_processes(roots: &[PathBuf], cgroup_parent: &str, settle: Duration) -> Vec<String> {
    let mut leaks = Vec::new();
    wait_for(settle, || leaked_processes(roots, cgroup_parent).is_empty());
    for _ in 0..3 {
        let procs = leaked_processes(roots, cgroup_parent);
        if procs.is_empty() {
            break;
        }
        for (pid, why) in &procs {
            let line = format!("process {pid} left behind ({why})");
            if !leaks.contains(&line) {
                leaks.push(line);
            }
            // SAFETY: kill(2) on a pid identified as belonging to the engine under test.
            unsafe {
                libc::kill(*pid, libc::SIGKILL);
            }
        }
        thread::sleep(Duration::from_millis(200));
    }
    leaks
}

/// Waits up to `timeout` for a child of the test to exit; its status, or `None` if it still runs.
pub fn wait_child(c: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match c.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

/// SIGTERM to a child of the test, then SIGKILL if it has not exited within `grace`.
pub fn terminate(mut c: Child, grace: Duration) {
    // SAFETY: kill(2) on the pid of our own child.
    unsafe {
        libc::kill(c.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    loop {
        match c.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if Instant::now() > deadline => {
                let _ = c.kill();
                let _ = c.wait();
                return;
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Mount points at or under `dir`, in mountinfo order (parents before children).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for line in info.lines() {
        let Some(mp) = line.split(' ').nth(4) else {
            continue;
        };
        let mp = PathBuf::from(unescape_mountinfo(mp));
        if mp.starts_with(dir) {
            out.push(mp);
        }
    }
    out
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every cgroup hierarchy's mount point (v1 controllers, unified, or the v2 root).
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = BTreeSet::new();
    for line in info.lines() {
        let Some((_, post)) = line.split_once(" - ") else {
            continue;
        };
        let fstype = post.split(' ').next().unwrap_or("");
        if fstype == "cgroup" || fstype == "cgroup2" {
            if let Some(mp) = line.split(' ').nth(4) {
                out.insert(PathBuf::from(unescape_mountinfo(mp)));
            }
        }
    }
    out.into_iter().collect()
}

/// The directories named `parent` in every cgroup hierarchy that exist now.
pub fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let rel = parent.trim_start_matches('/');
    cgroup_mounts().into_iter().map(|m| m.join(rel)).filter(|p| p.is_dir()).collect()
}

/// Removes a cgroup directory and its children, deepest first (each must be empty of processes).
pub(crate) fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// Processes that belong to a daemon: their cwd or root lies under one of `roots`, their
/// command line names one of them (shims), or they sit in a cgroup under `cgroup_parent`.
pub fn leaked_processes(roots: &[PathBuf], cgroup_parent: &str) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return out;
    };
    let cg_needle = format!("{}/", cgroup_parent.trim_end_matches('/'));
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let base = e.path();
        let mut why = None;
        for link in ["cwd", "root"] {
            if let Ok(target) = fs::read_link(base.join(link)) {
                if roots.iter().any(|r| target.starts_with(r)) {
                    why = Some(format!("{link} {}", target.display()));
                }
            }
        }
        if why.is_none() {
            if let Ok(cmdline) = fs::read(base.join("cmdline")) {
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                if roots.iter().any(|r| cmdline.contains(&*r.to_string_lossy())) {
                    why = Some(format!("cmdline {}", cmdline.trim()));
                }
            }
        }
        if why.is_none() {
            if let Ok(cg) = fs::read_to_string(base.join("cgroup")) {
                if cg
                    .lines()
                    .any(|l| l.splitn(3, ':').nth(2).is_some_and(|p| p == cgroup_parent || p.starts_with(&cg_needle)))
                {
                    why = Some("in the daemon's cgroup parent".to_string());
                }
            }
        }
        if let Some(why) = why {
            // Zombies of our own children are not leaks of the daemon.
            let state = fs::read_to_string(base.join("stat")).unwrap_or_default();
            if state.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')) {
                continue;
            }
            out.push((pid, why));
        }
    }
    out
}

/// Files and directories under `dir` whose name contains `needle`.
pub fn find_named(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().contains(needle) {
                out.push(p.clone());
            }
            // symlink_metadata: never follow links out of the tree.
            if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                stack.push(p);
            }
        }
    }
    out
}

/// Entries of a directory (empty if it does not exist).
pub fn list_dir(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// Waits until `f` is true or the timeout passes; returns the last value of `f`.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by tests that run through both CLIs

/// Which command-line client a test drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cli {
    Wharf,
    Docker,
}

impl Daemon {
    pub fn cli(&self, cli: Cli, args: &[&str]) -> Output {
        match cli {
            Cli::Wharf => self.wharf(args),
            Cli::Docker => self.docker(args),
        }
    }

    /// `inspect NAME` through a client, returning the first (only) object.
    #[track_caller]
    pub fn inspect(&self, cli: Cli, name: &str) -> Value {
        let out = self.cli(cli, &["inspect", name]);
        out.ok();
        match out.json() {
            Value::Array(mut v) if !v.is_empty() => v.swap_remove(0),
            other => panic!("inspect did not print a non-empty JSON array: {other}\n{out}"),
        }
    }

    /// Waits until a container is no longer running; returns its inspect object.
    #[track_caller]
    pub fn wait_exited(&self, cli: Cli, name: &str) -> Value {
        let mut last = Value::Null;
        let done = wait_for(Duration::from_secs(30), || {
            last = self.inspect(cli, name);
            last["State"]["Running"] == Value::Bool(false)
        });
        assert!(done, "container {name} still running after 30s: {last}");
        last
    }
}

/// Whether a process exists (and is not a zombie).
pub fn pid_alive(pid: i64) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
}

/// A uniquely named directory under the test temp base, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let dir = tmp_base().join(unique(prefix));
        fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// A TLS registry

/// Runs `openssl ARGS` in `dir`, asserting success.
pub fn openssl(dir: &Path, args: &[&str]) {
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir).args(args);
    let out = run_cmd(cmd, Duration::from_secs(30));
    assert!(out.success(), "openssl {args:?} failed:\n{out}");
}

/// A self-signed P-256 CA, `ca.key` and `ca.crt` in `dir`, valid two days, named `cn`.
pub fn openssl_ca(dir: &Path, cn: &str) {
    let subj = format!("/CN={cn}");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            &subj,
        ],
    );
}

/// Signs `NAME.key`'s certificate `NAME.crt` in `dir` with the CA there, with extensions `ext`.
pub fn openssl_signed(dir: &Path, name: &str, cn: &str, ext: &str) {
    let (key, csr, crt, extfile) =
        (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"), format!("{name}.ext"));
    fs::write(dir.join(&extfile), ext).expect("write openssl extensions");
    let subj = format!("/CN={cn}");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subj,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &crt,
            "-extfile",
            &extfile,
        ],
    );
}

/// A `docker-registry` serving HTTPS with a certificate of a throw-away CA, on an address of
/// its own (`198.18.x.y/32` added to `lo`, removed on drop): not a loopback address, so clients
/// treat it as the secure registry it is (127.0.0.0/8 is always "insecure" to Docker).
pub struct TlsRegistry {
    /// `IP:PORT`.
    pub addr: String,
    pub dir: PathBuf,
    /// `ca.crt`, `client.cert`, `client.key`: what a `certs.d/<addr>/` directory holds.
    pub client_files: PathBuf,
    ip: String,
    /// Whether `ip` was added to `lo` for this registry (and is removed on drop).
    own_ip: bool,
    pid: i32,
}

impl TlsRegistry {
    /// Starts the registry holding `library/busybox:latest` (copied from the shared registry);
    /// with `client_auth` it asks every client for a certificate signed by the same CA.
    #[track_caller]
    pub fn start(client_auth: bool) -> TlsRegistry {
        Self::start_at(client_auth, false)
    }

    /// The same on 127.0.0.1, which Docker treats as insecure: HTTPS without verifying the
    /// certificate (then plain HTTP).
    #[track_caller]
    pub fn start_on_loopback() -> TlsRegistry {
        Self::start_at(false, true)
    }

    #[track_caller]
    fn start_at(client_auth: bool, loopback: bool) -> TlsRegistry {
        let dir = tmp_base().join(unique("wharf-e2e-tlsreg"));
        let storage = dir.join("storage");
        fs::create_dir_all(&storage).expect("create registry storage");
        let port = free_port();
        // Unique per running registry: the port is free on this machine now.
        let ip = if loopback { "127.0.0.1".to_string() } else { format!("198.18.{}.{}", port >> 8, port & 0xff) };
        let addr = format!("{ip}:{port}");
        if !loopback {
            let mut cmd = Command::new("ip");
            cmd.args(["addr", "add", &format!("{ip}/32"), "dev", "lo"]);
            let out = run_cmd(cmd, Duration::from_secs(10));
            assert!(out.success(), "ip addr add {ip}/32 dev lo:\n{out}");
        }
        // From here on, drop removes the address and the directory.
        let mut reg =
            TlsRegistry { addr, dir: dir.clone(), client_files: dir.join("client"), ip, own_ip: !loopback, pid: 0 };

        openssl_ca(&dir, "wharf-e2e-ca");
        openssl_signed(
            &dir,
            "server",
            &reg.ip,
            &format!("subjectAltName=IP:{}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n", reg.ip),
        );
        openssl_signed(&dir, "client", "wharf-e2e-client", "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n");
        fs::create_dir_all(&reg.client_files).expect("create client files dir");
        fs::copy(dir.join("ca.crt"), reg.client_files.join("ca.crt")).expect("copy ca.crt");
        fs::copy(dir.join("client.crt"), reg.client_files.join("client.cert")).expect("copy client.cert");
        fs::copy(dir.join("client.key"), reg.client_files.join("client.key")).expect("copy client.key");

        let client_cas = if client_auth {
            format!("    clientcas:\n      - {}\n", dir.join("ca.crt").display())
        } else {
            String::new()
        };
        let config = dir.join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {}\n  tls:\n    certificate: {}\n    key: {}\n{client_cas}",
                storage.display(),
                reg.addr,
                dir.join("server.crt").display(),
                dir.join("server.key").display()
            ),
        )
        .expect("write registry config");
        let log = fs::File::create(dir.join("registry.log")).expect("registry log");
        reg.pid = spawn_registry_process(&config, log);
        // A TLS server answers a plain request with a 400 of its own: enough to know it listens.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !http_get_tcp(&reg.addr, "/v2/").is_some_and(|r| r.starts_with("HTTP/")) {
            assert!(
                Instant::now() < deadline,
                "tls registry on {} did not come up; log:\n{}",
                reg.addr,
                reg.log_text()
            );
            thread::sleep(Duration::from_millis(50));
        }

        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "-q", "--src-tls-verify=false", "--dest-cert-dir"])
            .arg(&reg.client_files)
            .arg(format!("docker://{}", registry().image("library/busybox:latest")))
            .arg(format!("docker://{}", reg.image("library/busybox:latest")));
        let out = run_cmd(cmd, Duration::from_secs(120));
        assert!(out.success(), "skopeo copy into the tls registry failed:\n{out}\n{}", reg.log_text());
        reg
    }

    /// `ADDR/name`.
    pub fn image(&self, name: &str) -> String {
        format!("{}/{}", self.addr, name)
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// Installs `/etc/wharf/certs.d/ADDR/` with the CA (and the client certificate when
    /// `client_cert`), as wharfd reads it; removed when the guard drops.
    pub fn install_certs_d(&self, client_cert: bool) -> CertsD {
        let dir = Path::new(CERTS_D).join(&self.addr);
        let guard = CertsD(dir.clone());
        fs::create_dir_all(&dir).expect("create certs.d dir");
        fs::copy(self.client_files.join("ca.crt"), dir.join("ca.crt")).expect("install ca.crt");
        if client_cert {
            for f in ["client.cert", "client.key"] {
                fs::copy(self.client_files.join(f), dir.join(f)).expect("install client certificate");
            }
        }
        guard
    }
}

impl Drop for TlsRegistry {
    fn drop(&mut self) {
        if self.pid > 0 {
            // SAFETY: kill/waitpid on the pid of a child this process started and nobody reaped.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
        if self.own_ip {
            let mut cmd = Command::new("ip");
            cmd.args(["addr", "del", &format!("{}/32", self.ip), "dev", "lo"]);
            let _ = run_cmd(cmd, Duration::from_secs(10));
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// wharfd's Docker-style per-registry certificate directory.
pub const CERTS_D: &str = "/etc/wharf/certs.d";

/// A `certs.d/<host:port>` directory, removed on drop (and its parents when left empty).
pub struct CertsD(pub PathBuf);

impl Drop for CertsD {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
        // Only empty ones go: another test may have its own registry's directory there.
        let _ = fs::remove_dir(CERTS_D);
        let _ = fs::remove_dir("/etc/wharf");
    }
}
