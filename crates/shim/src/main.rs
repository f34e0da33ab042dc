//! The per-container monitor: detaches from wharfd, starts the container, reports one JSON
//! handshake line, writes the container's logs and, when its init exits, `exit.json`.
//!
//! Contract with wharfd: `wharf-shim --id ID --bundle DIR`, stdout a pipe. The first process
//! exits 0 at once; the detached one prints `{"shim_pid":N,"pid":M}` or
//! `{"error":"...","exit_code":N}`, then closes its stdout.

mod logs;

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use wharf_runtime::spec::Spec;
use wharf_runtime::{Cgroup, ChildStdio};

use logs::{JsonLog, LineBuffer};

/// How long the shim keeps reading the pipes after init exited, for processes that still hold
/// them open (only possible without a pid namespace: otherwise the kernel kills them all).
const DRAIN_WAIT: Duration = Duration::from_secs(2);

struct Args {
    id: String,
    bundle: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut id = None;
    let mut bundle = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
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
            _ => return Err(format!("unknown argument {key:?}")),
        }
    }
    match (id, bundle) {
        (Some(id), Some(bundle)) if !id.is_empty() && !id.contains('/') => Ok(Args { id, bundle }),
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
    let args = parse_args().unwrap_or_else(|e| fail(&e, 125));
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
    let code = match run(&args, sigfd) {
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

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fresh fds that we then own.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(last_os("create pipe"));
        }
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

fn run(args: &Args, sigfd: OwnedFd) -> Result<(), String> {
    let config = args.bundle.join("config.json");
    let spec: Spec = std::fs::read(&config)
        .map_err(|e| format!("read {}: {e}", config.display()))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("parse {}: {e}", config.display())))
        .unwrap_or_else(|e| fail(&e, 125));
    let log_path = args.bundle.join(format!("{}-json.log", args.id));
    let mut log = JsonLog::open(&log_path).unwrap_or_else(|e| fail(&format!("open {}: {e}", log_path.display()), 125));

    let devnull = File::open("/dev/null").unwrap_or_else(|e| fail(&format!("open /dev/null: {e}"), 125));
    let (out_r, out_w) = pipe().unwrap_or_else(|e| fail(&e, 125));
    let (err_r, err_w) = pipe().unwrap_or_else(|e| fail(&e, 125));
    let stdio = ChildStdio { stdin: devnull.as_raw_fd(), stdout: out_w.as_raw_fd(), stderr: err_w.as_raw_fd() };
    let spawned = match wharf_runtime::spawn(&args.bundle, &spec, stdio) {
        Ok(s) => s,
        Err(e) => fail(&e.to_string(), e.exit_code()),
    };
    drop(out_w);
    drop(err_w);
    // Holding the container's mount namespace keeps its teardown (the overlay's unmount syncs
    // the upper file system: 10-30 ms) out of init's exit: the exit is reported first, and the
    // namespace goes when this fd closes, after exit.json is written.
    let mount_ns = File::open(format!("/proc/{}/ns/mnt", spawned.pid)).ok();
    // SAFETY: getpid has no preconditions.
    let shim_pid = unsafe { libc::getpid() };
    handshake(serde_json::json!({ "shim_pid": shim_pid, "pid": spawned.pid }));
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

    let status = monitor(spawned.pid, &sigfd, [out_r, err_r], &mut log);
    let oom_killed = spawned.cgroup.as_ref().is_some_and(Cgroup::memory_oom_killed);
    let exit_code = match status {
        Some(s) if libc::WIFEXITED(s) => libc::WEXITSTATUS(s),
        Some(s) if libc::WIFSIGNALED(s) => 128 + libc::WTERMSIG(s),
        _ => 255,
    };
    let written = write_exit(&args.bundle, exit_code, oom_killed);
    drop(exit_notify);
    drop(mount_ns);
    let removed = match &spawned.cgroup {
        Some(cg) => {
            kill_leftovers(cg);
            cg.remove().map_err(|e| e.to_string())
        }
        None => Ok(()),
    };
    written.and(removed)
}

/// Copies the pipes to the log until init exits (and the pipes drain); returns init's wait
/// status. Reaps every other child too, as their subreaper.
fn monitor(init: i32, sigfd: &OwnedFd, pipes: [OwnedFd; 2], log: &mut JsonLog) -> Option<i32> {
    let mut streams = [
        (Some(pipes[0].as_raw_fd()), LineBuffer::new("stdout")),
        (Some(pipes[1].as_raw_fd()), LineBuffer::new("stderr")),
    ];
    let mut status = None;
    let mut deadline: Option<Instant> = None;
    let mut buf = vec![0u8; logs::MAX_LINE];
    loop {
        let open: Vec<usize> = (0..2).filter(|i| streams[*i].0.is_some()).collect();
        if let Some(d) = deadline {
            if open.is_empty() || Instant::now() >= d {
                break;
            }
        }
        let mut pfds: Vec<libc::pollfd> = open
            .iter()
            .map(|i| libc::pollfd { fd: streams[*i].0.unwrap_or(-1), events: libc::POLLIN, revents: 0 })
            .collect();
        pfds.push(libc::pollfd { fd: sigfd.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        let timeout = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).as_millis() as i32,
            None => -1,
        };
        // SAFETY: poll on a valid array of pollfds of the given length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            break;
        }
        for (k, i) in open.iter().enumerate() {
            if pfds[k].revents == 0 {
                continue;
            }
            let (fd, lines) = &mut streams[*i];
            let Some(raw) = *fd else { continue };
            match read_fd(raw, &mut buf) {
                Read::Closed => {
                    lines.flush(log);
                    *fd = None;
                }
                Read::Data(len) => lines.push(&buf[..len], log),
                Read::Nothing => {}
            }
        }
        if pfds.last().is_some_and(|p| p.revents != 0) {
            drain_signalfd(sigfd.as_raw_fd());
            if let Some(s) = reap(init) {
                status = Some(s);
                deadline = Some(Instant::now() + DRAIN_WAIT);
            }
        }
        if status.is_none() && streams.iter().all(|s| s.0.is_none()) {
            // The pipes closed before init exited; nothing left to read, wait for it.
            status = wait_blocking(init);
            break;
        }
    }
    for (_, lines) in &mut streams {
        lines.flush(log);
    }
    drop(pipes);
    status
}

enum Read {
    Data(usize),
    /// End of file, or an error that ends the stream just the same.
    Closed,
    Nothing,
}

fn read_fd(fd: RawFd, buf: &mut [u8]) -> Read {
    loop {
        // SAFETY: reading into a valid buffer of the given length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            return Read::Data(n as usize);
        }
        if n == 0 {
            return Read::Closed;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Read::Nothing,
            _ => return Read::Closed,
        }
    }
}

fn drain_signalfd(fd: RawFd) {
    let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
    // SAFETY: reading whole siginfo records into a buffer of that size; non-blocking fd.
    while unsafe { libc::read(fd, info.as_mut_ptr().cast(), info.len()) } > 0 {}
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

fn wait_blocking(init: i32) -> Option<i32> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == init {
            return Some(status);
        }
        if pid < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return None;
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

fn write_exit(bundle: &Path, exit_code: i32, oom_killed: bool) -> Result<(), String> {
    let body = serde_json::json!({
        "exit_code": exit_code,
        "finished_at": wharf_types::time::rfc3339_nanos(SystemTime::now()),
        "oom_killed": oom_killed,
    });
    let tmp = bundle.join("exit.json.tmp");
    let dest = bundle.join("exit.json");
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(body.to_string().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &dest)?;
        File::open(bundle)?.sync_all()
    };
    write().map_err(|e| format!("write {}: {e}", dest.display()))
}

fn log_shim_error(args: &Args, message: &str) {
    let path = args.bundle.join("shim.log");
    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).create(true).open(path) {
        let _ = writeln!(f, "{} {message}", wharf_types::time::rfc3339_nanos(SystemTime::now()));
    }
}
