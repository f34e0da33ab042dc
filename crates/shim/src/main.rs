//! The per-container monitor: detaches from wharfd, starts the container, reports one JSON
//! handshake line, writes the container's logs and, when its init exits, `exit.json`.
//!
//! Contract with wharfd: `wharf-shim --id ID --bundle DIR [--socket PATH] [--open-stdin]
//! [--stdin-once] [--wait-attach] [--log-max-size BYTES] [--log-max-file N] [--log-none]
//! [--runtime PATH --runtime-root DIR [--runtime-arg ARG]...]`, stdout a pipe. With `--runtime`
//! another OCI runtime (runc) creates, starts and execs instead of wharf's own (`oci.rs`). The first process exits 0 at once; the
//! detached one prints `{"shim_pid":N,"pid":M}` or `{"error":"...","exit_code":N}`, then
//! closes its stdout. With `--socket` it serves attach, resize and exec there (`proto.rs`).

mod logs;
mod oci;
mod proto;
mod server;

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use wharf_runtime::spec::Spec;
use wharf_runtime::{Cgroup, ChildStdio};

use logs::JsonLog;

struct Args {
    id: String,
    bundle: PathBuf,
    socket: Option<PathBuf>,
    open_stdin: bool,
    stdin_once: bool,
    wait_attach: bool,
    /// Rotate the json log when it would grow past this many bytes (0 = never).
    log_max_size: u64,
    /// How many files the log keeps, the live one included (at least 1).
    log_max_file: u32,
    /// `--log-none`: the container's log driver keeps no log.
    log_none: bool,
    /// `--runtime`: another OCI runtime runs the container.
    runtime: Option<oci::OciRuntime>,
    /// `--nofile-soft`: the soft open-file limit wharfd had before it raised its own
    /// (`wharf_runtime::rlimit`), put back here so the container inherits it.
    nofile_soft: Option<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut id = None;
    let mut bundle = None;
    let mut socket = None;
    let (mut open_stdin, mut stdin_once, mut wait_attach, mut log_none) = (false, false, false, false);
    let (mut log_max_size, mut log_max_file) = (0u64, 1u32);
    let (mut runtime, mut runtime_root, mut runtime_args) = (None, None, Vec::new());
    let mut nofile_soft = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--open-stdin" => open_stdin = true,
            "--stdin-once" => stdin_once = true,
            "--wait-attach" => wait_attach = true,
            "--log-none" => log_none = true,
            _ => {}
        }
        if matches!(a.as_str(), "--open-stdin" | "--stdin-once" | "--wait-attach" | "--log-none") {
            continue;
        }
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        let value = match inline.or_else(|| it.next()) {
            Some(v) => v,
            None => return Err(format!("missing value for {key}")),
        };
        match key.as_str() {
            "--id" => id = Some(value),
            "--bundle" => bundle = Some(PathBuf::from(value)),
            "--socket" => socket = Some(PathBuf::from(value)),
            "--runtime" => runtime = Some(PathBuf::from(value)),
            "--runtime-root" => runtime_root = Some(PathBuf::from(value)),
            "--runtime-arg" => runtime_args.push(value),
            "--nofile-soft" => {
                nofile_soft = Some(value.parse().map_err(|_| format!("invalid --nofile-soft {value:?}"))?)
            }
            "--log-max-size" => {
                log_max_size = value.parse().map_err(|_| format!("invalid --log-max-size {value:?}"))?
            }
            "--log-max-file" => {
                log_max_file = value.parse().map_err(|_| format!("invalid --log-max-file {value:?}"))?;
                if log_max_file == 0 {
                    return Err("--log-max-file must be at least 1".to_string());
                }
            }
            _ => return Err(format!("unknown argument {key:?}")),
        }
    }
    let runtime = match (runtime, runtime_root) {
        (Some(path), Some(root)) => Some(oci::OciRuntime { path, root, args: runtime_args }),
        (None, None) if runtime_args.is_empty() => None,
        _ => return Err("--runtime, --runtime-root and --runtime-arg go together".to_string()),
    };
    match (id, bundle) {
        (Some(id), Some(bundle)) if !id.is_empty() && !id.contains('/') => Ok(Args {
            id,
            bundle,
            socket,
            open_stdin,
            stdin_once,
            wait_attach,
            log_max_size,
            log_max_file,
            log_none,
            runtime,
            nofile_soft,
        }),
        (Some(id), Some(_)) => Err(format!("invalid container id {id:?}")),
        _ => Err("usage: wharf-shim --id ID --bundle DIR".to_string()),
    }
}

fn handshake(value: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

fn fail(message: &str, exit_code: i32) -> ! {
    handshake(serde_json::json!({ "error": message, "exit_code": exit_code }));
    std::process::exit(1)
}

fn last_os(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn main() {
    let began = wharf_runtime::phases::now_ns();
    let args = parse_args().unwrap_or_else(|e| fail(&e, 125));
    if let Some(soft) = args.nofile_soft {
        if let Err(e) = wharf_runtime::rlimit::set_nofile_soft(soft) {
            fail(&format!("set the open-file limit to {soft}: {e}"), 125);
        }
    }
    // SAFETY: closes every fd above the standard streams; none is owned by Rust code yet.
    // The shim lives as long as its container, so nothing wharfd leaked may stay open.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    // SAFETY: process-level syscalls in a single-threaded process; after fork the child only
    // continues this same single thread.
    unsafe {
        // Fails only for a process-group leader, which the fork below fixes anyway.
        libc::setsid();
        match libc::fork() {
            -1 => fail(&last_os("fork shim"), 125),
            0 => {}
            _ => libc::_exit(0),
        }
        if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
            fail(&last_os("set child subreaper"), 125);
        }
        // wharfd signals the container's init directly; the shim must outlive it.
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
    let sigfd = sigchld_fd().unwrap_or_else(|e| fail(&e, 125));
    let code = match run(&args, sigfd, began) {
        Ok(()) => 0,
        Err(e) => {
            // Stdout is /dev/null by now; the log is the only witness.
            log_shim_error(&args, &e);
            1
        }
    };
    std::process::exit(code)
}

/// A signalfd for SIGCHLD, which stays blocked so the poll loop sees child exits in order
/// with the pipes, without handlers.
fn sigchld_fd() -> Result<OwnedFd, String> {
    // SAFETY: signal mask and signalfd calls with a valid, initialised sigset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(last_os("block SIGCHLD"));
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(last_os("signalfd"));
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fresh fds that we then own.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(last_os("create pipe"));
        }
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

/// `began`: when this process started (the first of the start's phases it stamps).
fn run(args: &Args, sigfd: OwnedFd, began: u64) -> Result<(), String> {
    let spec = read_spec(&args.bundle).unwrap_or_else(|e| fail(&e, 125));
    // With no log kept the entries go to /dev/null: the attach streams still get the output.
    let log_path =
        if args.log_none { PathBuf::from("/dev/null") } else { args.bundle.join(format!("{}-json.log", args.id)) };
    let log = JsonLog::open(&log_path, args.log_max_size, args.log_max_file)
        .unwrap_or_else(|e| fail(&format!("open {}: {e}", log_path.display()), 125));

    let listener = args.socket.as_ref().map(|path| listen(path).unwrap_or_else(|e| fail(&e, 125)));
    let terminal = spec.process.as_ref().is_some_and(|p| p.terminal);
    let devnull = File::open("/dev/null").unwrap_or_else(|e| fail(&format!("open /dev/null: {e}"), 125));
    let mut stdin_w = None;
    let mut outs = [None, None];
    let mut console = None;
    let mut child_ends: Vec<OwnedFd> = Vec::new();
    let stdio = if terminal {
        let (ours, theirs) =
            wharf_runtime::tty::socketpair().unwrap_or_else(|e| fail(&format!("console socket: {e}"), 125));
        let stdio = ChildStdio { stdin: -1, stdout: -1, stderr: -1, console: Some(theirs.as_raw_fd()) };
        console = Some(ours);
        child_ends.push(theirs);
        stdio
    } else {
        let stdin = if args.open_stdin {
            let (r, w) = pipe().unwrap_or_else(|e| fail(&e, 125));
            stdin_w = Some(w);
            let raw = r.as_raw_fd();
            child_ends.push(r);
            raw
        } else {
            devnull.as_raw_fd()
        };
        let (out_r, out_w) = pipe().unwrap_or_else(|e| fail(&e, 125));
        let (err_r, err_w) = pipe().unwrap_or_else(|e| fail(&e, 125));
        let stdio = ChildStdio { stdin, stdout: out_w.as_raw_fd(), stderr: err_w.as_raw_fd(), console: None };
        outs = [Some(out_r), Some(err_r)];
        child_ends.push(out_w);
        child_ends.push(err_w);
        stdio
    };
    let started = match &args.runtime {
        None => start_builtin(args, &spec, stdio, console.as_ref()),
        Some(rt) => start_oci(args, rt, &spec, stdio, outs[1].as_ref()),
    };
    drop(child_ends);
    drop(console);
    let (spawned, tty) = match started {
        Ok(s) => s,
        Err((message, code)) => {
            if let Some(p) = &args.socket {
                let _ = std::fs::remove_file(p);
            }
            fail(&message, code)
        }
    };
    // Holding the container's mount namespace keeps its teardown (the overlay's unmount syncs
    // the upper file system: 10-30 ms) out of init's exit: the exit is reported first, and the
    // namespace goes when this fd closes, after exit.json is written.
    let mount_ns = File::open(format!("/proc/{}/ns/mnt", spawned.pid)).ok();
    // SAFETY: getpid has no preconditions.
    let shim_pid = unsafe { libc::getpid() };
    let started = serde_json::json!({ "shim_pid": shim_pid, "pid": spawned.pid });
    // The same line on disk before it goes to wharfd: a wharfd that dies before it records
    // the start finds here, when it comes back, that this container runs and under which pids.
    if let Err(e) = write_atomic(&args.bundle, "shim.json", &started, false) {
        log_shim_error(args, &e);
    }
    // wharfd logs the start's phases at debug level; shim.json does not need them.
    let mut phases = vec![("shim".to_string(), began)];
    phases.extend(spawned.phases.iter().cloned());
    let mut line = started;
    line["phases"] = serde_json::json!(phases);
    handshake(line);
    // The pipe to wharfd stays open (on a close-on-exec fd) until exit.json is written: its
    // end-of-file tells a live wharfd that the container exited, without waiting for cleanup.
    // SAFETY: F_DUPFD_CLOEXEC returns a new fd that we then own; dup2 of an fd we own onto the
    // standard streams.
    let exit_notify = unsafe {
        let fd = libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3);
        for fd in 0..3 {
            libc::dup2(devnull.as_raw_fd(), fd);
        }
        (fd >= 0).then(|| OwnedFd::from_raw_fd(fd))
    };
    drop(devnull);

    let [stdout, stderr] = outs;
    let init = server::InitIo { pid: spawned.pid, tty, stdin: stdin_w, stdout, stderr, stdin_once: args.stdin_once };
    let oci = args.runtime.as_ref().map(|rt| server::OciExec {
        runtime: rt,
        id: &args.id,
        shim_socket: args.socket.as_deref(),
    });
    let mut srv =
        server::Server::new(&args.bundle, spawned.cgroup.as_ref(), log, listener, init, args.wait_attach).with_oci(oci);
    // An exec reads the spec again: kept for the container's life, it would be most of the
    // shim's memory (about 60 KiB of the 100 KiB in use, most of it the seccomp rules).
    drop(spec);
    give_back_free_heap();
    let status = srv.run(sigfd.as_raw_fd());
    // The first of the exit's phases (wharfd logs them at debug level with its own).
    let exited = wharf_runtime::phases::now_ns();
    drop(srv);
    if let Some(p) = &args.socket {
        let _ = std::fs::remove_file(p);
    }
    let oom_killed = spawned.cgroup.as_ref().is_some_and(Cgroup::memory_oom_killed);
    let exit_code = server::exit_code(status);
    let written = write_exit(&args.bundle, exit_code, oom_killed, exited);
    drop(exit_notify);
    drop(mount_ns);
    let removed = match &spawned.cgroup {
        Some(cg) => {
            kill_leftovers(cg);
            cg.remove().map_err(|e| e.to_string())
        }
        None => Ok(()),
    };
    if let Some(rt) = &args.runtime {
        if let Some(e) = rt.delete(&args.id, &args.bundle) {
            log_shim_error(args, &e);
        }
    }
    written.and(removed)
}

type Started = (wharf_runtime::Spawned, Option<OwnedFd>);

/// The bundle's `config.json`, which wharfd wrote before it started this shim.
pub(crate) fn read_spec(bundle: &Path) -> Result<Spec, String> {
    let config = bundle.join("config.json");
    let bytes = std::fs::read(&config).map_err(|e| format!("read {}: {e}", config.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("parse {}: {e}", config.display()))
}

/// Returns to the kernel the heap pages that the start used and freed (the config's text
/// and parsed spec, the container's setup). A shim lives as long as its container, one per
/// container, and would otherwise keep them resident all that time.
fn give_back_free_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of glibc's own heap; no pointer we hold
    // is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// wharf's own runtime: the shim clones the init itself.
fn start_builtin(
    args: &Args,
    spec: &Spec,
    stdio: ChildStdio,
    console: Option<&OwnedFd>,
) -> Result<Started, (String, i32)> {
    let spawned = wharf_runtime::spawn(&args.bundle, spec, stdio).map_err(|e| (e.to_string(), e.exit_code()))?;
    let tty = match console {
        Some(c) => match wharf_runtime::tty::recv_fd(c.as_raw_fd()) {
            Ok(Some(master)) => Some(master),
            Ok(None) => return Err(("the container sent no terminal".to_string(), 125)),
            Err(e) => return Err((format!("receive the container's terminal: {e}"), 125)),
        },
        None => None,
    };
    Ok((spawned, tty))
}

/// Another OCI runtime: the rootfs mounted in the shim's own mount namespace, then the
/// runtime's `create` and `start`; the init is the shim's child once `create` has exited.
/// `stderr`: the read end of the container's stderr, which is also the runtime's: where a
/// runtime that fails before it logs (a bad `runtimeArgs` flag) says why.
fn start_oci(
    args: &Args,
    rt: &oci::OciRuntime,
    spec: &Spec,
    stdio: ChildStdio,
    stderr: Option<&OwnedFd>,
) -> Result<Started, (String, i32)> {
    oci::mount_rootfs(&args.bundle, spec).map_err(|e| (e, 125))?;
    let console = match stdio.console {
        Some(_) => Some(
            oci::ConsoleSocket::bind(&oci::console_path(args.socket.as_deref(), &args.bundle, "init"))
                .map_err(|e| (e, 125))?,
        ),
        None => None,
    };
    let fds = match &console {
        Some(c) => oci::Stdio3::Console(c.path().to_path_buf()),
        None => oci::Stdio3::Fds([stdio.stdin, stdio.stdout, stdio.stderr]),
    };
    let pid = rt.create_and_start(&args.id, &args.bundle, &fds).map_err(|f| match (f.unlogged, stderr) {
        (true, Some(err)) => match oci::last_line(err) {
            Some(line) => (format!("OCI runtime create failed: {line}"), oci::exit_code_for(&line)),
            None => (f.message, f.exit_code),
        },
        _ => (f.message, f.exit_code),
    })?;
    let tty = match &console {
        Some(c) => Some(c.receive().map_err(|e| (e, 125))?),
        None => None,
    };
    let cgroup = match spec.linux.as_ref().and_then(|l| l.cgroups_path.as_deref()).filter(|p| !p.is_empty()) {
        Some(path) => Some(Cgroup::open(path).map_err(|e| (format!("open the container's cgroup: {e}"), 125))?),
        None => None,
    };
    Ok((wharf_runtime::Spawned { pid, cgroup, phases: Vec::new() }, tty))
}

/// Reaps every exited child; returns init's status if it was among them.
fn reap(init: i32) -> Option<i32> {
    let mut found = None;
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return found;
        }
        if pid == init {
            found = Some(status);
        }
    }
}

/// Processes left in the cgroup after init died (possible without a pid namespace) would keep
/// it busy; Docker's runtime kills them too.
fn kill_leftovers(cg: &Cgroup) {
    for pid in cg.procs().unwrap_or_default() {
        // SAFETY: kill has no memory effects.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    reap(-1);
}

/// The socket wharfd connects to: only root may use it.
fn listen(path: &Path) -> Result<OwnedFd, String> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() {
        return Err(format!("socket path {} is too long", path.display()));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let _ = std::fs::remove_file(path);
    // SAFETY: socket/bind/listen with a valid address and fds we own.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0);
        if fd < 0 {
            return Err(last_os("create shim socket"));
        }
        let sock = OwnedFd::from_raw_fd(fd);
        let old = libc::umask(0o177);
        let bound = libc::bind(
            fd,
            (&addr as *const libc::sockaddr_un).cast(),
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        );
        libc::umask(old);
        if bound != 0 {
            return Err(last_os(&format!("bind {}", path.display())));
        }
        if libc::listen(fd, 16) != 0 {
            return Err(last_os(&format!("listen on {}", path.display())));
        }
        Ok(sock)
    }
}

/// `exited`: when the init's exit was reaped, on the monotonic clock (`wharf_runtime::phases`).
fn write_exit(bundle: &Path, exit_code: i32, oom_killed: bool, exited: u64) -> Result<(), String> {
    let body = serde_json::json!({
        "exit_code": exit_code,
        "finished_at": wharf_types::time::rfc3339_nanos(SystemTime::now()),
        "oom_killed": oom_killed,
        "phases": [["exited", exited], ["exit-written", wharf_runtime::phases::now_ns()]],
    });
    write_atomic(bundle, "exit.json", &body, true)
}

/// Writes `name` in the bundle by a rename, so a reader sees all of it or nothing; `durable`
/// also survives a host crash (the exit status does; the start record need not, since a host
/// crash ends the container too).
fn write_atomic(bundle: &Path, name: &str, body: &serde_json::Value, durable: bool) -> Result<(), String> {
    let tmp = bundle.join(format!("{name}.tmp"));
    let dest = bundle.join(name);
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(body.to_string().as_bytes())?;
        if durable {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &dest)?;
        if durable {
            File::open(bundle)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| format!("write {}: {e}", dest.display()))
}

fn log_shim_error(args: &Args, message: &str) {
    let path = args.bundle.join("shim.log");
    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).create(true).open(path) {
        let _ = writeln!(f, "{} {message}", wharf_types::time::rfc3339_nanos(SystemTime::now()));
    }
}
