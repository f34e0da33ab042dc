//! Another OCI runtime (runc's command line: `create`, `start`, `exec`, `delete`) run on the
//! bundle wharfd wrote, in place of wharf's own. The shim stays the reaper: it is a child
//! subreaper, so the container's init (and each exec'd process) becomes its child once the
//! runtime's own process has exited.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use wharf_runtime::spec::{Process, Spec, ANNOTATION_OVERLAY};

/// A runtime the shim drives instead of wharf's own.
pub struct OciRuntime {
    /// The executable (`/usr/sbin/runc`, or a name looked up on PATH as dockerd does).
    pub path: PathBuf,
    /// Its state directory for wharf's containers (`--root`).
    pub root: PathBuf,
    /// daemon.json `runtimeArgs`, before the command.
    pub args: Vec<String>,
}

/// Why the runtime could not do what was asked, with Docker's exit status for it.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub exit_code: i32,
    /// The runtime failed without logging an error: the reason is only on its stderr.
    pub unlogged: bool,
}

impl Failure {
    fn new(message: String) -> Failure {
        let exit_code = exit_code_for(&message);
        Failure { message, exit_code, unlogged: false }
    }
}

/// The last line of what is waiting in the pipe `fd` (at most 64 KiB are read, without
/// blocking), for a runtime's complaint.
pub fn last_line(fd: &OwnedFd) -> Option<String> {
    // SAFETY: fcntl flag change on an fd the caller owns.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let mut buf = vec![0u8; 64 << 10];
    // SAFETY: reads into a buffer of the given length.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    let text = String::from_utf8_lossy(&buf[..n.max(0) as usize]).into_owned();
    // A usage error is followed by the help text: the reason is its first line then.
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines.iter().find(|l| l.contains("flag provided but not defined")).or(lines.last()).map(|l| l.to_string())
}

/// dockerd's reading of a runtime's error: a command that is not there is 127, one that
/// cannot be run 126, anything else 125 (as wharf's own runtime reports its other failures).
pub fn exit_code_for(message: &str) -> i32 {
    let m = message.to_ascii_lowercase();
    if m.contains("executable file not found") || m.contains("no such file or directory") {
        127
    } else if m.contains("permission denied") || m.contains("is a directory") {
        126
    } else {
        125
    }
}

/// The stdio a runtime's process hands on to the container's: pipes and /dev/null, or a
/// console socket the runtime sends the terminal's master to.
pub enum Stdio3 {
    Fds([RawFd; 3]),
    Console(PathBuf),
}

/// The last `error` message of a runtime's `--log-format json` log.
pub fn last_error(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "error")
        .and_then(|v| v["msg"].as_str().map(str::to_string))
}

/// An `io::Error` as Go words it ("no such file or directory"), so that callers reading the
/// message for 126/127 find the same words as with dockerd.
fn go_words(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

impl OciRuntime {
    fn command(&self, log: &Path, op: &str) -> Command {
        let mut cmd = Command::new(&self.path);
        cmd.args(&self.args).arg("--root").arg(&self.root).arg("--log").arg(log).args(["--log-format", "json"]).arg(op);
        // SAFETY: the closure only calls signal(2), which is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                // The shim ignores these; an ignored signal stays ignored across exec, and
                // the container's process would inherit that from the runtime.
                for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
                    libc::signal(sig, libc::SIG_DFL);
                }
                Ok(())
            });
        }
        cmd
    }

    /// Runs one runtime command to its end; `prefix` goes before the reason of a failure
    /// (`OCI runtime create failed: `, as dockerd words it; wharfd adds the exec's own).
    fn run(&self, mut cmd: Command, log: &Path, prefix: &str) -> Result<(), Failure> {
        let _ = std::fs::remove_file(log);
        let status = cmd
            .status()
            .map_err(|e| Failure::new(format!("{prefix}fork/exec {}: {}", self.path.display(), go_words(&e))))?;
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let _ = std::fs::remove_file(log);
        if status.success() {
            return Ok(());
        }
        match last_error(&text) {
            Some(reason) => Err(Failure::new(format!("{prefix}{reason}"))),
            None => Err(Failure {
                unlogged: true,
                ..Failure::new(format!("{prefix}{} exited with {status}", self.path.display()))
            }),
        }
    }

    /// `create`, then `start`: returns the init's pid (the shim's child by then).
    pub fn create_and_start(&self, id: &str, bundle: &Path, stdio: &Stdio3) -> Result<i32, Failure> {
        let log = bundle.join("runtime-log.json");
        if self.root.join(id).exists() {
            // A shim that died left the runtime's record of an earlier run.
            self.delete(id, bundle);
        }
        let pid_file = bundle.join("init.pid");
        let _ = std::fs::remove_file(&pid_file);
        let mut cmd = self.command(&log, "create");
        cmd.arg("--bundle").arg(bundle).arg("--pid-file").arg(&pid_file);
        set_stdio(&mut cmd, stdio)?;
        cmd.arg(id);
        self.run(cmd, &log, "OCI runtime create failed: ")?;
        let pid = read_pid(&pid_file)?;
        let mut cmd = self.command(&log, "start");
        cmd.arg(id).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        if let Err(e) = self.run(cmd, &log, "OCI runtime start failed: ") {
            self.delete(id, bundle);
            return Err(e);
        }
        Ok(pid)
    }

    /// `exec --detach` of `process`; returns its pid (the shim's child once the runtime exited).
    pub fn exec(&self, id: &str, bundle: &Path, process: &Process, stdio: &Stdio3) -> Result<i32, Failure> {
        let log = bundle.join("runtime-exec-log.json");
        let process_file = bundle.join("exec-process.json");
        let pid_file = bundle.join("exec.pid");
        let _ = std::fs::remove_file(&pid_file);
        let body = serde_json::to_vec(process).map_err(|e| Failure::new(format!("encode the exec's process: {e}")))?;
        std::fs::write(&process_file, body)
            .map_err(|e| Failure::new(format!("write {}: {}", process_file.display(), go_words(&e))))?;
        let mut cmd = self.command(&log, "exec");
        cmd.arg("--process").arg(&process_file).arg("--detach").arg("--pid-file").arg(&pid_file);
        set_stdio(&mut cmd, stdio)?;
        cmd.arg(id);
        let ran = self.run(cmd, &log, "");
        let _ = std::fs::remove_file(&process_file);
        ran?;
        let pid = read_pid(&pid_file);
        let _ = std::fs::remove_file(&pid_file);
        pid
    }

    /// `delete --force`: the runtime's state and whatever of the container is left. Errors
    /// only go to the shim's log: the container has ended either way.
    pub fn delete(&self, id: &str, bundle: &Path) -> Option<String> {
        let log = bundle.join("runtime-delete-log.json");
        let mut cmd = self.command(&log, "delete");
        cmd.arg("--force").arg(id).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        self.run(cmd, &log, "OCI runtime delete failed: ").err().map(|f| f.message)
    }
}

fn set_stdio(cmd: &mut Command, stdio: &Stdio3) -> Result<(), Failure> {
    match stdio {
        Stdio3::Fds(fds) => {
            let [i, o, e] = [dup(fds[0])?, dup(fds[1])?, dup(fds[2])?];
            cmd.stdin(Stdio::from(i)).stdout(Stdio::from(o)).stderr(Stdio::from(e));
        }
        Stdio3::Console(path) => {
            cmd.arg("--console-socket").arg(path).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    Ok(())
}

fn dup(fd: RawFd) -> Result<OwnedFd, Failure> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new fd that we then own.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(Failure::new(format!("dup fd {fd}: {}", go_words(&std::io::Error::last_os_error()))));
    }
    // SAFETY: `new` is a fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

fn read_pid(path: &Path) -> Result<i32, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::new(format!("read the runtime's pid file {}: {}", path.display(), go_words(&e))))?;
    text.trim()
        .parse::<i32>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| Failure::new(format!("the runtime's pid file {} holds no pid: {text:?}", path.display())))
}

/// Mounts the bundle's rootfs for a runtime that expects `root.path` mounted, in a mount
/// namespace of the shim's own (its mounts do not reach the host's), which the runtime and so
/// the container inherit: as with wharf's own runtime, the rootfs is never mounted in the
/// host's namespace and goes away with the container and its shim.
pub fn mount_rootfs(bundle: &Path, spec: &Spec) -> Result<(), String> {
    let os = |what: &str| format!("{what}: {}", go_words(&std::io::Error::last_os_error()));
    // SAFETY: unshare/mount with NUL-terminated strings in a single-threaded process.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(os("unshare the shim's mount namespace"));
        }
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        ) != 0
        {
            return Err(os("make the shim's mounts slaves of the host's"));
        }
    }
    let Some(opts) = spec.annotations.get(ANNOTATION_OVERLAY) else { return Ok(()) };
    // A relative root is the bundle's, as the runtime reads it.
    let root = spec.root.as_ref().map(|r| bundle.join(&r.path)).ok_or("config.json has no root")?;
    let root = root.display().to_string();
    let c = |s: &str| std::ffi::CString::new(s).map_err(|_| format!("{s:?} holds a NUL byte"));
    let (root_c, opts_c) = (c(&root)?, c(opts)?);
    // SAFETY: mount with NUL-terminated strings that live across the call.
    let rc =
        unsafe { libc::mount(c"overlay".as_ptr(), root_c.as_ptr(), c"overlay".as_ptr(), 0, opts_c.as_ptr().cast()) };
    if rc != 0 {
        return Err(os(&format!("mount overlay on {root}")));
    }
    Ok(())
}

/// A listening socket at `path` for `--console-socket`: the runtime connects and sends the
/// terminal's master.
pub struct ConsoleSocket {
    path: PathBuf,
    sock: OwnedFd,
}

impl ConsoleSocket {
    pub fn bind(path: &Path) -> Result<ConsoleSocket, String> {
        let sock = crate::listen(path)?;
        Ok(ConsoleSocket { path: path.to_path_buf(), sock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The master the runtime sent; called after the runtime's command ended, so its
    /// connection is queued already (the socket does not block).
    pub fn receive(&self) -> Result<OwnedFd, String> {
        // SAFETY: accept4 on a listening socket we own; the new fd is ours.
        let fd = unsafe {
            libc::accept4(self.sock.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC)
        };
        if fd < 0 {
            return Err(format!("the runtime sent no terminal: {}", go_words(&std::io::Error::last_os_error())));
        }
        // SAFETY: a fresh fd from accept4.
        let conn = unsafe { OwnedFd::from_raw_fd(fd) };
        // The listener was non-blocking; the accepted socket must wait for the message.
        // SAFETY: fcntl flag change on an fd we own.
        unsafe {
            let flags = libc::fcntl(conn.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(conn.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
        match wharf_runtime::tty::recv_fd(conn.as_raw_fd()) {
            Ok(Some(master)) => Ok(master),
            Ok(None) => Err("the runtime sent no terminal".to_string()),
            Err(e) => Err(format!("receive the container's terminal: {}", go_words(&e))),
        }
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where the console socket of a process goes: beside the shim's socket (a short path under
/// the exec root, well within a socket address), else in the bundle.
pub fn console_path(shim_socket: Option<&Path>, bundle: &Path, which: &str) -> PathBuf {
    match shim_socket {
        Some(s) => s.with_extension(format!("{which}.con")),
        None => bundle.join(format!("{which}.con")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_errors_get_dockers_exit_codes() {
        for (message, code) in [
            ("OCI runtime create failed: unable to start container process: exec: \"nosuch\": executable file not found in $PATH", 127),
            ("OCI runtime create failed: unable to start container process: exec: \"/tmp/x\": stat /tmp/x: no such file or directory", 127),
            ("OCI runtime create failed: fork/exec /nonexistent/runtime: no such file or directory", 127),
            ("OCI runtime create failed: unable to start container process: exec: \"/etc\": permission denied", 126),
            ("OCI runtime create failed: container_linux.go:380: starting container process caused: bad mount", 125),
        ] {
            assert_eq!(exit_code_for(message), code, "{message}");
        }
    }

    #[test]
    fn the_last_error_of_a_json_log_is_the_reason() {
        let log = concat!(
            "{\"level\":\"debug\",\"msg\":\"nsexec started\",\"time\":\"t\"}\n",
            "{\"level\":\"error\",\"msg\":\"first\",\"time\":\"t\"}\n",
            "not json\n",
            "{\"level\":\"error\",\"msg\":\"exec: \\\"x\\\": executable file not found in $PATH\",\"time\":\"t\"}\n",
            "{\"level\":\"warning\",\"msg\":\"later\",\"time\":\"t\"}\n",
        );
        assert_eq!(last_error(log).as_deref(), Some("exec: \"x\": executable file not found in $PATH"));
        assert_eq!(last_error("{\"level\":\"info\",\"msg\":\"x\"}"), None);
    }

    #[test]
    fn io_errors_read_as_go_writes_them() {
        let e = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(go_words(&e), "no such file or directory");
    }

    #[test]
    fn a_missing_runtime_is_reported_with_its_path_and_127() {
        let dir = std::env::temp_dir().join(format!("wharf-oci-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = OciRuntime { path: "/nonexistent/runtime".into(), root: dir.join("root"), args: Vec::new() };
        let err = rt.create_and_start("x", &dir, &Stdio3::Fds([0, 1, 2])).unwrap_err();
        assert_eq!(err.exit_code, 127, "{err:?}");
        assert!(err.message.contains("fork/exec /nonexistent/runtime: no such file or directory"), "{err:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
