//! End-to-end tests of wharf-shim: real namespaces, cgroups, mounts and a busybox rootfs; they
//! need root.

// Test code: a panic is the test's failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use wharf_runtime::spec::{Memory, Pids, Resources, Spec, ANNOTATION_OVERLAY};
use wharf_runtime::Layout;

mod runc;
mod userns;

const SHIM: &str = env!("CARGO_BIN_EXE_wharf-shim");
const TOOLS: &[&str] = &["sh", "echo", "cat", "sleep", "hostname", "id", "ls", "true"];

/// These tests create namespaces, mounts and cgroups: the suite runs as root (as CI does). A
/// test run without it fails here, saying so, rather than passing without having run.
#[track_caller]
pub(crate) fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(root, "this test needs root: run the test suite as root");
}

/// A bundle directory with a busybox rootfs, removed (with its cgroup) on drop.
struct Bundle {
    dir: PathBuf,
    id: String,
    cgroup: String,
}

fn unique(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{name}-{}-{}-{nanos:x}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// The cgroup parent of this test process's containers, `/wharf-test-<pid>`: unique, so that no
/// other test binary creates or removes it meanwhile, and removed from every hierarchy when the
/// process exits (libtest has no after-all hook; `atexit` runs on its normal exit and on
/// `process::exit` after failures).
fn cgroup_parent() -> String {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: registers a plain `extern "C"` function with no captured state.
    ONCE.call_once(|| unsafe {
        libc::atexit(remove_cgroup_parent);
    });
    format!("/wharf-test-{}", std::process::id())
}

/// rmdir of the parent (and of any empty cgroup a failed test left in it) in every cgroup
/// hierarchy, v1, unified and v2: the v2 layout test creates its cgroup in the unified one.
extern "C" fn remove_cgroup_parent() {
    let rel = format!("wharf-test-{}", std::process::id());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mounts.lines() {
        let Some((pre, post)) = line.split_once(" - ") else { continue };
        if !matches!(post.split(' ').next(), Some("cgroup" | "cgroup2")) {
            continue;
        }
        let Some(mount_point) = pre.split(' ').nth(4) else { continue };
        let dir = Path::new(mount_point).join(&rel);
        if !dir.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = std::fs::remove_dir(entry.path());
            }
        }
        // A shim that has just exited may still be removing its cgroup: EBUSY for a moment.
        for _ in 0..50 {
            if std::fs::remove_dir(&dir).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn busybox_rootfs(dir: &Path) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    for t in TOOLS {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(t)).unwrap();
    }
}

impl Bundle {
    fn new(name: &str, args: &[&str], tweak: impl FnOnce(&mut Spec, &Path)) -> Bundle {
        let id = unique(name);
        let dir = std::env::temp_dir().join(format!("wharf-shim-it-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        busybox_rootfs(&dir.join("rootfs"));
        let cgroup = format!("{}/{id}", cgroup_parent());
        let mut spec = Spec::example(args);
        if let Some(linux) = spec.linux.as_mut() {
            linux.cgroups_path = Some(cgroup.clone());
        }
        tweak(&mut spec, &dir);
        std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
        Bundle { dir, id, cgroup }
    }

    /// Runs the shim and returns its handshake line.
    fn start(&self) -> Value {
        self.start_cmd(Command::new(SHIM))
    }

    /// Runs `cmd` (the shim or something that execs it) with the shim's arguments.
    fn start_cmd(&self, mut cmd: Command) -> Value {
        let mut child = cmd
            .args(["--id", &self.id, "--bundle"])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        std::io::BufReader::new(stdout).read_line(&mut line).unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "first shim process exits 0");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("handshake {line:?}: {e}"))
    }

    fn wait_exit(&self) -> Value {
        let path = self.dir.join("exit.json");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(text) = std::fs::read_to_string(&path) {
                return serde_json::from_str(&text).unwrap();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("no exit.json in {}", self.dir.display());
    }

    fn logs(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(self.dir.join(format!("{}-json.log", self.id))).unwrap_or_default();
        text.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (v["log"].as_str().unwrap().to_string(), v["stream"].as_str().unwrap().to_string())
            })
            .collect()
    }

    fn stdout(&self) -> String {
        self.logs().into_iter().filter(|(_, s)| s == "stdout").map(|(l, _)| l).collect()
    }

    /// Starts the container, waits for it to exit 0 and returns what it wrote to stdout.
    #[track_caller]
    fn run_ok(&self) -> String {
        let hs = self.start();
        assert!(hs["error"].is_null(), "{hs}");
        let exit = self.wait_exit();
        assert_eq!(exit["exit_code"], 0, "{exit} {:?}", self.logs());
        self.stdout()
    }

    /// The cgroup directory holding `controller`'s files.
    fn cgroup_dir(&self, controller: &str) -> PathBuf {
        let rel = self.cgroup.trim_start_matches('/');
        match Layout::detect() {
            Layout::V2 => Path::new("/sys/fs/cgroup").join(rel),
            _ => Path::new("/sys/fs/cgroup").join(controller).join(rel),
        }
    }

    fn assert_cleaned_up(&self) {
        for c in ["memory", "pids", "cpu"] {
            let d = self.cgroup_dir(c);
            // The shim removes the cgroup right after writing exit.json.
            let start = Instant::now();
            while d.exists() && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(2));
            }
            assert!(!d.exists(), "{} still exists", d.display());
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let dir = self.dir.to_string_lossy();
        assert!(!mounts.contains(dir.as_ref()), "a mount under {dir} leaked to the host");
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = wharf_runtime::Cgroup::open(&self.cgroup).map(|cg| cg.remove());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn logs_and_exit_zero() {
    require_root();
    let b = Bundle::new(
        "logs",
        &["sh", "-c", "echo hello; echo oops >&2; echo gone > /dev/null; cat /dev/null; echo two; printf partial"],
        |_, _| {},
    );
    let hs = b.start();
    assert!(hs["pid"].as_i64().unwrap() > 0, "{hs}");
    assert!(hs["shim_pid"].as_i64().unwrap() > 0, "{hs}");
    let exit = b.wait_exit();
    assert_eq!(exit["exit_code"], 0, "{exit}");
    assert_eq!(exit["oom_killed"], false);
    assert!(exit["finished_at"].as_str().unwrap().ends_with('Z'));
    let logs = b.logs();
    let want = [("hello\n", "stdout"), ("oops\n", "stderr"), ("two\n", "stdout"), ("partial", "stdout")];
    for (line, stream) in want {
        assert!(logs.contains(&(line.to_string(), stream.to_string())), "{line:?} on {stream} missing from {logs:?}");
    }
    assert_eq!(b.stdout(), "hello\ntwo\npartial");
    b.assert_cleaned_up();
}

#[test]
fn exit_code_is_reported() {
    require_root();
    let b = Bundle::new("exit3", &["sh", "-c", "exit 3"], |_, _| {});
    b.start();
    assert_eq!(b.wait_exit()["exit_code"], 3);
    b.assert_cleaned_up();
}

#[test]
fn missing_command_is_127() {
    require_root();
    let b = Bundle::new("nosuch", &["nosuchcmd"], |_, _| {});
    let hs = b.start();
    assert_eq!(hs["exit_code"], 127, "{hs}");
    assert_eq!(hs["error"], "exec: \"nosuchcmd\": executable file not found in $PATH");
    assert!(!b.dir.join("exit.json").exists());
    b.assert_cleaned_up();
}

#[test]
fn not_executable_is_126() {
    require_root();
    let b = Bundle::new("noexec", &["/etc/data"], |_, dir| {
        std::fs::create_dir_all(dir.join("rootfs/etc")).unwrap();
        std::fs::write(dir.join("rootfs/etc/data"), "not a program").unwrap();
    });
    let hs = b.start();
    assert_eq!(hs["exit_code"], 126, "{hs}");
    b.assert_cleaned_up();
}

#[test]
fn hostname_pid_and_user_are_applied() {
    require_root();
    let b =
        Bundle::new("ident", &["sh", "-c", "hostname; echo $$; id -u; id -g; id -G; pwd; ls /dev/null"], |spec, _| {
            spec.hostname = Some("box1".to_string());
            let p = spec.process.as_mut().unwrap();
            p.user.uid = 1000;
            p.user.gid = 1001;
            p.user.additional_gids = vec![1002];
            p.cwd = "/home/app".to_string();
        });
    assert_eq!(b.run_ok(), "box1\n1\n1000\n1001\n1001 1002\n/home/app\n/dev/null\n");
    b.assert_cleaned_up();
}

#[test]
fn limits_land_in_cgroup_and_sigkill_is_137() {
    require_root();
    let b = Bundle::new("limits", &["sleep", "100"], |spec, _| {
        let r = spec.linux.as_mut().unwrap().resources.get_or_insert_with(Resources::default);
        r.memory = Some(Memory { limit: Some(64 << 20), ..Memory::default() });
        r.pids = Some(Pids { limit: 32 });
    });
    let hs = b.start();
    let pid = hs["pid"].as_i64().unwrap();
    let v2 = Layout::detect() == Layout::V2;
    let (mem_file, pids_file) = if v2 { ("memory.max", "pids.max") } else { ("memory.limit_in_bytes", "pids.max") };
    let read = |c: &str, f: &str| std::fs::read_to_string(b.cgroup_dir(c).join(f)).unwrap().trim().to_string();
    assert_eq!(read("memory", mem_file), (64u64 << 20).to_string());
    assert_eq!(read("pids", pids_file), "32");
    assert!(read("memory", "cgroup.procs").lines().any(|l| l == pid.to_string()), "pid {pid} in the memory cgroup");
    if !v2 {
        let devices = read("devices", "devices.list");
        assert!(devices.lines().any(|l| l == "c 1:3 rwm"), "{devices}");
        assert!(!devices.lines().any(|l| l == "a *:* rwm"), "{devices}");
    }
    // The shim must outlive SIGTERM/SIGINT: only its container's exit ends it.
    let shim = hs["shim_pid"].as_i64().unwrap() as i32;
    // SAFETY: kill has no memory effects.
    unsafe {
        libc::kill(shim, libc::SIGTERM);
        libc::kill(shim, libc::SIGINT);
    }
    std::thread::sleep(Duration::from_millis(50));
    // SAFETY: signal 0 only checks that the process exists.
    assert_eq!(unsafe { libc::kill(shim, 0) }, 0, "shim died of SIGTERM");
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let exit = b.wait_exit();
    assert_eq!(exit["exit_code"], 137, "{exit}");
    b.assert_cleaned_up();
}

#[test]
fn overlay_rootfs_writes_land_in_upper() {
    require_root();
    let b =
        Bundle::new("overlay", &["sh", "-c", "echo data > /written; cat /written; ls /bin/busybox"], |spec, dir| {
            for d in ["upper", "work", "merged"] {
                std::fs::create_dir_all(dir.join(d)).unwrap();
            }
            let opts = format!(
                "lowerdir={},upperdir={},workdir={}",
                dir.join("rootfs").display(),
                dir.join("upper").display(),
                dir.join("work").display()
            );
            spec.annotations.insert(ANNOTATION_OVERLAY.to_string(), opts);
            spec.root.as_mut().unwrap().path = "merged".to_string();
        });
    assert_eq!(b.run_ok(), "data\n/bin/busybox\n");
    assert_eq!(std::fs::read_to_string(b.dir.join("upper/written")).unwrap(), "data\n");
    assert!(!b.dir.join("rootfs/written").exists());
    assert!(!b.dir.join("merged/written").exists());
    b.assert_cleaned_up();
}

/// Ten containers in a row, each started and reaped with nothing left behind: the start path
/// holds no state between runs. (Its speed is measured by bench/start-latency.sh, not here.)
#[test]
fn ten_starts_in_a_row_each_exit_and_clean_up() {
    require_root();
    for i in 0..10 {
        let b = Bundle::new(&format!("again{i}"), &["true"], |_, _| {});
        b.run_ok();
        b.assert_cleaned_up();
    }
}

#[test]
fn setup_failure_is_125_with_the_reason() {
    require_root();
    let b = Bundle::new("badmount", &["true"], |spec, _| {
        spec.mounts.push(wharf_runtime::spec::Mount {
            destination: "/data".to_string(),
            kind: Some("bind".to_string()),
            source: Some("/nonexistent-wharf-source".to_string()),
            options: vec!["rbind".to_string()],
        });
    });
    let hs = b.start();
    assert_eq!(hs["exit_code"], 125, "{hs}");
    let msg = hs["error"].as_str().unwrap();
    assert!(msg.contains("/nonexistent-wharf-source") && msg.contains("no such file"), "{msg}");
    b.assert_cleaned_up();
}

#[test]
fn bind_mount_symlink_cannot_escape_rootfs() {
    require_root();
    let b = Bundle::new("escape", &["cat", "/escape/hostfile"], |spec, dir| {
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join("src/hostfile"), "inside\n").unwrap();
        // An absolute symlink in the image must resolve inside the rootfs, not on the host.
        std::os::unix::fs::symlink(dir.join("outside"), dir.join("rootfs/escape")).unwrap();
        spec.mounts.push(wharf_runtime::spec::Mount {
            destination: "/escape".to_string(),
            kind: Some("bind".to_string()),
            source: Some(dir.join("src").to_string_lossy().into_owned()),
            options: vec!["rbind".to_string(), "ro".to_string()],
        });
    });
    assert_eq!(b.run_ok(), "inside\n");
    assert!(!b.dir.join("outside").exists(), "the symlink target on the host was created");
    b.assert_cleaned_up();
}

/// The v2 code path: on a pure v2 host as it is; on a hybrid host in a private mount
/// namespace where the (controller-less) cgroup2 hierarchy is mounted over /sys/fs/cgroup, so
/// the shim sees a pure v2 layout.
#[test]
fn cgroup_v2_layout_in_private_mount_namespace() {
    require_root();
    let layout = Layout::detect();
    assert!(layout != Layout::V1, "this test needs a cgroup2 hierarchy (v2 or hybrid), and this host has none");
    // Without a cgroup namespace /sys/fs/cgroup is a fresh cgroup2 mount (read-only), as runc
    // makes it: the host's whole tree, the container's directory at its path from
    // /proc/self/cgroup, whose cgroup.procs lists the container's init as pid 1.
    let script = "cat /proc/self/cgroup; cat /sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)/cgroup.procs; \
                  touch /sys/fs/cgroup/x || echo ro";
    let b = Bundle::new("v2", &["sh", "-c", script], |spec, _| {
        spec.mounts.push(wharf_runtime::spec::Mount {
            destination: "/sys/fs/cgroup".to_string(),
            kind: Some("cgroup".to_string()),
            source: Some("cgroup".to_string()),
            options: ["nosuid", "noexec", "nodev", "ro"].iter().map(|s| s.to_string()).collect(),
        });
    });
    let cmd = if layout == Layout::Hybrid {
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!("mount -t cgroup2 none /sys/fs/cgroup && exec {SHIM} \"$@\""))
            .arg("sh");
        cmd
    } else {
        Command::new(SHIM)
    };
    let hs = b.start_cmd(cmd);
    assert!(hs["pid"].as_i64().is_some(), "{hs}");
    let exit = b.wait_exit();
    assert_eq!(exit["exit_code"], 0, "{exit}");
    let out = b.stdout();
    assert!(out.contains(&format!("0::{}\n", b.cgroup)), "{:?}", b.logs());
    assert!(out.lines().any(|l| l == "1") && out.ends_with("ro\n"), "{out:?}");
    let unified = if layout == Layout::Hybrid { "/sys/fs/cgroup/unified" } else { "/sys/fs/cgroup" };
    let dir = Path::new(unified).join(b.cgroup.trim_start_matches('/'));
    let start = Instant::now();
    while dir.exists() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[test]
fn oom_kill_is_reported() {
    require_root();
    // `tail -c` keeps the whole window in memory: 64 MiB against a 16 MiB limit.
    let script = "busybox yes | busybox head -c 100000000 | busybox tail -c 67108864 > /dev/null";
    let b = Bundle::new("oom", &["sh", "-c", script], |spec, _| {
        let r = spec.linux.as_mut().unwrap().resources.get_or_insert_with(Resources::default);
        r.memory = Some(Memory { limit: Some(16 << 20), swap: Some(16 << 20), ..Memory::default() });
    });
    b.start();
    let exit = b.wait_exit();
    assert_eq!(exit["oom_killed"], true, "{exit} {:?}", b.logs());
    b.assert_cleaned_up();
}

/// Docker's default capability set, as the engine writes it.
const DOCKER_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];
/// `CapBnd` of a docker container.
const DOCKER_MASK: &str = "00000000a80425fb";

/// Runs `cat /proc/self/status` in a container with `caps` and user `uid`; returns the
/// Cap* lines and NoNewPrivs as (name, value) pairs.
fn cap_status(name: &str, uid: u32, caps: wharf_runtime::spec::Capabilities) -> Vec<(String, String)> {
    status_of(name, uid, false, caps)
}

fn status_of(name: &str, uid: u32, nnp: bool, caps: wharf_runtime::spec::Capabilities) -> Vec<(String, String)> {
    let b = Bundle::new(name, &["cat", "/proc/self/status"], |spec, _| {
        let p = spec.process.as_mut().unwrap();
        p.user.uid = uid;
        p.user.gid = uid;
        p.no_new_privileges = nnp;
        p.capabilities = Some(caps);
    });
    let hs = b.start();
    assert!(hs["pid"].as_i64().is_some(), "{hs}");
    let exit = b.wait_exit();
    assert_eq!(exit["exit_code"], 0, "{exit} {:?}", b.logs());
    let out = b.stdout();
    b.assert_cleaned_up();
    out.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.starts_with("Cap") || *k == "NoNewPrivs")
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn status_is(got: &[(String, String)], want: &[(&str, &str)]) {
    for (k, v) in want {
        let found = got.iter().find(|(gk, _)| gk == k).map(|(_, gv)| gv.as_str());
        assert_eq!(found, Some(*v), "{k} in {got:?}");
    }
}

#[test]
fn capabilities_docker_default_set_for_root() {
    require_root();
    let caps = wharf_runtime::spec::Capabilities {
        bounding: names(DOCKER_CAPS),
        effective: names(DOCKER_CAPS),
        permitted: names(DOCKER_CAPS),
        ..Default::default()
    };
    let got = cap_status("caps-root", 0, caps);
    let zero = "0000000000000000";
    status_is(
        &got,
        &[
            ("CapInh", zero),
            ("CapPrm", DOCKER_MASK),
            ("CapEff", DOCKER_MASK),
            ("CapBnd", DOCKER_MASK),
            ("CapAmb", zero),
            ("NoNewPrivs", "0"),
        ],
    );
}

#[test]
fn capabilities_empty_set_drops_everything() {
    require_root();
    let got = cap_status("caps-none", 0, wharf_runtime::spec::Capabilities::default());
    let zero = "0000000000000000";
    status_is(&got, &[("CapPrm", zero), ("CapEff", zero), ("CapBnd", zero), ("CapAmb", zero)]);
}

#[test]
fn capabilities_non_root_user_gets_only_ambient() {
    require_root();
    let caps = wharf_runtime::spec::Capabilities {
        bounding: names(DOCKER_CAPS),
        effective: names(DOCKER_CAPS),
        permitted: names(DOCKER_CAPS),
        ..Default::default()
    };
    let zero = "0000000000000000";
    // As under runc: the sets are installed, but exec as a non-root user clears them.
    let got = cap_status("caps-user", 1000, caps.clone());
    status_is(&got, &[("CapPrm", zero), ("CapEff", zero), ("CapBnd", DOCKER_MASK), ("CapAmb", zero)]);

    // An ambient capability survives exec: CAP_NET_BIND_SERVICE is bit 10.
    let bind = names(&["CAP_NET_BIND_SERVICE"]);
    let caps = wharf_runtime::spec::Capabilities { inheritable: bind.clone(), ambient: bind, ..caps };
    let got = cap_status("caps-ambient", 1000, caps);
    let bit10 = "0000000000000400";
    status_is(&got, &[("CapInh", bit10), ("CapPrm", bit10), ("CapEff", bit10), ("CapAmb", bit10)]);
}

#[test]
fn capabilities_unknown_name_is_refused() {
    require_root();
    let b = Bundle::new("caps-bad", &["true"], |spec, _| {
        let caps = wharf_runtime::spec::Capabilities { bounding: names(&["CAP_FLY"]), ..Default::default() };
        spec.process.as_mut().unwrap().capabilities = Some(caps);
    });
    let hs = b.start();
    assert_eq!(hs["exit_code"], 125, "{hs}");
    let msg = hs["error"].as_str().unwrap_or_default();
    assert!(msg.contains("CAP_FLY"), "{msg}");
    b.assert_cleaned_up();
}

#[test]
fn no_new_privileges_reaches_the_process() {
    require_root();
    let caps = wharf_runtime::spec::Capabilities { bounding: names(DOCKER_CAPS), ..Default::default() };
    let got = status_of("nnp", 1000, true, caps);
    status_is(&got, &[("NoNewPrivs", "1"), ("CapBnd", DOCKER_MASK), ("CapEff", "0000000000000000")]);
}
