//! Running another process in a running container (`docker exec`): it joins every namespace
//! of the container's init (mount last) and its cgroup, and takes the same capabilities,
//! user, no_new_privs and rlimits as its `process` says, then execs. Failures come back over
//! a CLOEXEC pipe as for `spawn`, so a missing command is reported with Docker's 126/127.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::cgroups::Cgroup;
use crate::container::{ChildStdio, SpawnError};
use crate::init::{self, ChildFailure, FailKind};
use crate::spec::{Process, Spec};

/// The namespaces an exec'd process joins, in order; pid is joined by the caller before fork
/// (it only applies to children) and mount comes late, since it changes the root the other
/// `/proc` paths would be resolved in; a user namespace is entered last of all.
const JOIN_ORDER: &[(&str, libc::c_int)] = &[
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("mnt", libc::CLONE_NEWNS),
    // Last: joining the others needs the host root's rights over namespaces the host owns
    // (the network namespace), which the process gives up on entering the user namespace.
    ("user", libc::CLONE_NEWUSER),
];

/// What to run besides the container's own spec.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The container's init, in the caller's pid namespace.
    pub init_pid: i32,
    /// The process to run: args, env, cwd, user, terminal, capabilities, as in config.json.
    pub process: Process,
}

fn os_err(what: impl Into<String>) -> SpawnError {
    SpawnError::Os { what: what.into(), source: std::io::Error::last_os_error() }
}

/// Opens `/proc/<pid>/ns/<name>` unless it is the caller's own namespace already (joining
/// one's own is pointless, and for some kinds refused).
fn foreign_ns(pid: i32, name: &str) -> Result<Option<OwnedFd>, SpawnError> {
    let path = format!("/proc/{pid}/ns/{name}");
    let theirs = std::fs::metadata(&path).map_err(|source| SpawnError::Os { what: format!("stat {path}"), source })?;
    let ours = std::fs::metadata(format!("/proc/self/ns/{name}")).ok();
    if ours.is_some_and(|o| o.ino() == theirs.ino() && o.dev() == theirs.dev()) {
        return Ok(None);
    }
    let f = File::open(&path).map_err(|source| SpawnError::Os { what: format!("open {path}"), source })?;
    Ok(Some(OwnedFd::from(f)))
}

/// Starts `opts.process` inside the container of `spec` (bundle `bundle_dir`) and returns its
/// pid once it has exec'ed. Must be called from a single-threaded process (the shim), which
/// from then on creates its children in the container's pid namespace.
pub fn exec(
    bundle_dir: &Path,
    spec: &Spec,
    opts: &ExecOptions,
    cgroup: Option<&Cgroup>,
    stdio: ChildStdio,
) -> Result<i32, SpawnError> {
    let mut for_exec = spec.clone();
    let mut process = opts.process.clone();
    // An exec'd process is confined as the container is, unless told otherwise (as runc).
    if process.apparmor_profile.is_none() {
        process.apparmor_profile = spec.process.as_ref().and_then(|p| p.apparmor_profile.clone());
    }
    for_exec.process = Some(process);
    // The container already has its name; the exec'd process must not set it again.
    for_exec.hostname = None;
    for_exec.domainname = None;
    let plan = init::Plan::new(bundle_dir, &for_exec).map_err(SpawnError::InvalidSpec)?;

    if let Some(pidns) = foreign_ns(opts.init_pid, "pid")? {
        // SAFETY: setns on an fd we own; affects only the children created from now on.
        if unsafe { libc::setns(pidns.as_raw_fd(), libc::CLONE_NEWPID) } != 0 {
            return Err(os_err(format!("join pid namespace of {}", opts.init_pid)));
        }
    }
    let mut joins: Vec<(libc::c_int, OwnedFd)> = Vec::new();
    for (name, flag) in JOIN_ORDER {
        if let Some(fd) = foreign_ns(opts.init_pid, name)? {
            joins.push((*flag, fd));
        }
    }
    let raw_joins: Vec<(libc::c_int, RawFd)> = joins.iter().map(|(f, fd)| (*f, fd.as_raw_fd())).collect();
    let (sync_r, sync_w) = pipe_cloexec("sync")?;
    let (err_r, err_w) = pipe_cloexec("error")?;

    // On pure v2 the process is born in the container's cgroup (CLONE_INTO_CGROUP), as the
    // container's init is: no cgroup.procs write, whose first use costs an RCU grace period.
    let cgroup_dir = match cgroup {
        Some(cg) if cg.layout() == crate::Layout::V2 => cg.dirs().into_iter().next().and_then(|d| File::open(d).ok()),
        _ => None,
    };
    let born_in_cgroup = cgroup_dir.as_ref().map(|dir| crate::container::clone_into_cgroup(0, dir.as_raw_fd()));
    let pid = match born_in_cgroup {
        Some(Some(Ok(pid))) => pid as libc::pid_t,
        Some(Some(Err(e))) => return Err(e),
        // SAFETY: fork in a single-threaded process; the child only runs `child_main`.
        _ => unsafe { libc::fork() },
    };
    let born_in_cgroup = matches!(born_in_cgroup, Some(Some(Ok(_))));
    if pid < 0 {
        return Err(os_err("fork exec process"));
    }
    if pid == 0 {
        let failure = match child_run(&plan, &raw_joins, stdio, sync_r.as_raw_fd()) {
            Ok(never) => match never {},
            Err(f) => f,
        };
        let msg = failure.encode();
        // SAFETY: write from a valid buffer, then leave without running the shim's destructors.
        unsafe {
            libc::write(err_w.as_raw_fd(), msg.as_ptr().cast(), msg.len());
            libc::_exit(1)
        }
    }
    drop(sync_r);
    drop(err_w);
    drop(joins);

    // Into the container's cgroup before it joins the cgroup namespace, so that its view
    // of /proc/self/cgroup is the container's.
    if let Some(cg) = cgroup.filter(|_| !born_in_cgroup) {
        if let Err(e) = cg.add_pid(pid) {
            kill_and_reap(pid);
            return Err(e.into());
        }
    }
    // SAFETY: writing one byte from a valid buffer to an fd we own.
    unsafe { libc::write(sync_w.as_raw_fd(), b"g".as_ptr().cast(), 1) };
    drop(sync_w);
    let mut msg = Vec::new();
    let read = File::from(err_r).read_to_end(&mut msg);
    if read.is_ok() && msg.is_empty() {
        return Ok(pid);
    }
    kill_and_reap(pid);
    if let Err(source) = read {
        return Err(SpawnError::Os { what: "read exec error pipe".to_string(), source });
    }
    let failure = ChildFailure::decode(&msg);
    Err(match failure.kind {
        FailKind::NotFound => SpawnError::NotFound(failure.message),
        FailKind::PermissionDenied => SpawnError::PermissionDenied(failure.message),
        FailKind::Other => SpawnError::Setup(failure.message),
    })
}

fn child_run(
    plan: &init::Plan,
    joins: &[(libc::c_int, RawFd)],
    stdio: ChildStdio,
    sync_r: RawFd,
) -> Result<std::convert::Infallible, ChildFailure> {
    init::reset_signals();
    let mut byte = 0u8;
    // SAFETY: reading one byte into a valid buffer.
    if unsafe { libc::read(sync_r, (&mut byte as *mut u8).cast(), 1) } != 1 {
        // SAFETY: the parent is gone or failed; leave quietly.
        unsafe { libc::_exit(1) };
    }
    for (flag, fd) in joins {
        // SAFETY: setns on an fd the parent opened for us.
        if unsafe { libc::setns(*fd, *flag) } != 0 {
            return Err(ChildFailure::last(format!("join namespace {flag:#x}")));
        }
        if *flag == libc::CLONE_NEWUSER {
            crate::userns::become_root()?;
        }
    }
    // SAFETY: setsid has no memory effects; the fork made us no group leader.
    if unsafe { libc::setsid() } < 0 {
        return Err(ChildFailure::last("setsid"));
    }
    match stdio.console {
        Some(console) => crate::tty::setup_in_child(console, plan.console_size(), plan.uid(), plan.gid())?,
        None => init::setup_stdio(&stdio)?,
    }
    init::setup_process(plan)?;
    // SAFETY: marks every fd above 2 close-on-exec: no fd of the shim (or the host) may reach
    // the process (CVE-2024-21626).
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    Err(init::exec(plan))
}

fn pipe_cloexec(what: &str) -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills two fds we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(os_err(format!("create {what} pipe")));
    }
    // SAFETY: both fds are fresh and owned by nobody else.
    Ok(unsafe {
        (
            <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[0]),
            <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[1]),
        )
    })
}

fn kill_and_reap(pid: i32) {
    // SAFETY: signalling and reaping our own child; the status is discarded.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        let mut status = 0;
        while libc::waitpid(pid, &mut status, 0) < 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
        {}
    }
}
