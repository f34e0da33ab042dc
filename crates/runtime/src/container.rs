//! Starting a container: clone into new namespaces, join the cgroup from the parent while the
//! child builds its rootfs, then exec; child failures travel back over a CLOEXEC error pipe.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use wharf_types::ErrorKind;

use crate::cgroups::{Cgroup, CgroupError};
use crate::init::{self, ChildFailure, FailKind};
use crate::spec::{Resources, Spec};

/// The container's standard streams, as the parent holds them. They are dup'ed onto 0, 1, 2 in
/// the child; the caller keeps (and later closes) its copies.
#[derive(Debug, Clone, Copy)]
pub struct ChildStdio {
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
    /// With a terminal: a unix socket on which the process sends the master of the pty it
    /// opens in the container; the three fds above are then unused.
    pub console: Option<RawFd>,
}

/// A container whose process has exec'ed.
#[derive(Debug)]
pub struct Spawned {
    /// The init process, in the caller's pid namespace.
    pub pid: i32,
    /// The cgroup it runs in, when the spec names one.
    pub cgroup: Option<Cgroup>,
    /// When each phase of the start ended (`crate::phases`): this process's and the init's.
    pub phases: crate::phases::Phases,
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// `process.args[0]` was not found (Docker's exit code 127).
    #[error("{0}")]
    NotFound(String),
    /// `process.args[0]` exists but cannot be executed (Docker's exit code 126).
    #[error("{0}")]
    PermissionDenied(String),
    /// The container's setup failed in the child, before exec.
    #[error("{0}")]
    Setup(String),
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("{what}: {source}")]
    Os { what: String, source: std::io::Error },
    /// systemd refused or failed the container's scope (the systemd cgroup driver).
    #[error("start the container's scope: {0}")]
    Systemd(#[from] crate::systemd::SystemdError),
}

impl SpawnError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SpawnError::NotFound(_) => ErrorKind::NotFound,
            SpawnError::PermissionDenied(_) => ErrorKind::Forbidden,
            SpawnError::InvalidSpec(_) => ErrorKind::InvalidArgument,
            SpawnError::Cgroup(e) => e.kind(),
            SpawnError::Setup(_) | SpawnError::Os { .. } | SpawnError::Systemd(_) => ErrorKind::Internal,
        }
    }

    /// The exit code Docker reports for a container that failed this way.
    pub fn exit_code(&self) -> i32 {
        match self {
            SpawnError::NotFound(_) => 127,
            SpawnError::PermissionDenied(_) => 126,
            _ => 125,
        }
    }
}

fn os_err(what: impl Into<String>) -> SpawnError {
    SpawnError::Os { what: what.into(), source: std::io::Error::last_os_error() }
}

pub(crate) fn pipe_cloexec(what: &str) -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills two fds we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(os_err(format!("create {what} pipe")));
    }
    // SAFETY: both fds are fresh and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

const NAMESPACES: &[(&str, libc::c_int)] = &[
    ("pid", libc::CLONE_NEWPID),
    ("network", libc::CLONE_NEWNET),
    ("mount", libc::CLONE_NEWNS),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("user", libc::CLONE_NEWUSER),
    ("cgroup", libc::CLONE_NEWCGROUP),
];

/// Starts the container described by `spec` (bundle `bundle_dir`) and returns once its
/// process has exec'ed, or with the reason it could not. Must be called from a
/// single-threaded process (the shim): the child runs ordinary Rust between clone and exec.
pub fn spawn(bundle_dir: &Path, spec: &Spec, stdio: ChildStdio) -> Result<Spawned, SpawnError> {
    use crate::phases::now_ns;
    let mut phases = vec![("spawn".to_string(), now_ns())];
    let userns = crate::userns::user_ns(spec).map_err(SpawnError::InvalidSpec)?;
    let (child_spec, net_sysctls) = crate::userns::split_net_sysctls(spec, userns.is_some());
    let plan = init::Plan::new(bundle_dir, &child_spec).map_err(SpawnError::InvalidSpec)?;
    let linux = spec.linux.as_ref();

    let mut flags: libc::c_int = 0;
    let mut joins: Vec<(libc::c_int, OwnedFd, String)> = Vec::new();
    for ns in linux.map(|l| l.namespaces.as_slice()).unwrap_or(&[]) {
        let Some(&(_, flag)) = NAMESPACES.iter().find(|(n, _)| *n == ns.kind) else {
            return Err(SpawnError::InvalidSpec(format!("unknown namespace type {:?}", ns.kind)));
        };
        match ns.path.as_deref().filter(|p| !p.is_empty()) {
            None => flags |= flag,
            Some(p) => {
                let f =
                    File::open(p).map_err(|source| SpawnError::Os { what: format!("open namespace {p}"), source })?;
                joins.push((flag, OwnedFd::from(f), p.to_string()));
            }
        }
    }
    if plan.cgroupns_after_join() {
        // The child unshares it once in its cgroup, so that the cgroup is the namespace's root.
        flags &= !libc::CLONE_NEWCGROUP;
    }
    // Joining a pid namespace only affects children, so it has to happen here, before clone.
    // The shim runs one container, so changing its own pid_for_children is harmless. (With a
    // user namespace to join, the helper that clones the process joins it instead.)
    let user_join = joins.iter().find(|(f, _, _)| *f == libc::CLONE_NEWUSER).map(|(_, fd, _)| fd.as_raw_fd());
    let pid_join = joins.iter().find(|(f, _, _)| *f == libc::CLONE_NEWPID);
    if let Some((_, fd, p)) = pid_join.filter(|_| user_join.is_none()) {
        // SAFETY: setns on an fd we own.
        if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWPID) } != 0 {
            return Err(os_err(format!("join pid namespace {p}")));
        }
    }
    let mut child_joins: Vec<(libc::c_int, RawFd)> =
        joins.iter().filter(|(f, _, _)| *f != libc::CLONE_NEWPID).map(|(f, fd, _)| (*f, fd.as_raw_fd())).collect();
    let layer_sock = match &userns {
        Some(_) => Some(
            crate::tty::socketpair()
                .map_err(|source| SpawnError::Os { what: "create layer socket".to_string(), source })?,
        ),
        None => None,
    };

    let (sync_r, sync_w) = pipe_cloexec("sync")?;
    let (err_r, err_w) = pipe_cloexec("error")?;
    let mut own_ns = match &userns {
        Some(_) => Some(crate::userns::join_in_parent(&joins)?),
        None => None,
    };
    if let Err(e) = crate::userns::write_sysctls(&net_sysctls) {
        if let Some(saved) = own_ns.as_mut() {
            saved.restore();
        }
        return Err(e);
    }
    if own_ns.is_some() {
        child_joins.clear();
    }

    // On pure cgroup v2 the cgroup is made before the clone and the child is born in it
    // (CLONE_INTO_CGROUP): no write to cgroup.procs, whose first use in a start waits for an
    // RCU grace period in the kernel (5-8 ms measured, most of a start). Not through the user
    // namespace helper, which clones with the older call.
    let mut early = None;
    if user_join.is_none() && plan.cgroup_v2() {
        match early_cgroup(spec) {
            Ok(cg) => {
                phases.push(("cgroup-made".to_string(), now_ns()));
                early = cg
            }
            Err(e) => {
                if let Some(saved) = own_ns.as_mut() {
                    saved.restore();
                }
                return Err(e);
            }
        }
    }
    let mut born_in_cgroup = false;
    let cloned = match (user_join, &early) {
        (Some(fd), _) => crate::userns::clone_in_userns(flags, fd, pid_join.map(|(_, fd, _)| fd.as_raw_fd())),
        (None, Some((_, dir))) => match clone_into_cgroup(flags, dir.as_raw_fd()) {
            Some(r) => {
                born_in_cgroup = r.is_ok();
                r
            }
            // A kernel without clone3 or CLONE_INTO_CGROUP (before 5.7): as on v1.
            None => raw_clone(flags),
        },
        (None, None) => raw_clone(flags),
    };
    if cloned.is_err() {
        if let Some((cg, _)) = &early {
            let _ = cg.remove();
        }
    }
    if !matches!(cloned, Ok(0)) {
        if let Some(saved) = own_ns.as_mut() {
            saved.restore();
        }
    }
    let pid = cloned?;
    if pid == 0 {
        init::child_main(
            &plan,
            &init::ChildFds {
                stdio,
                sync_r: sync_r.as_raw_fd(),
                sync_w: sync_w.as_raw_fd(),
                err_r: err_r.as_raw_fd(),
                err_w: err_w.as_raw_fd(),
                joins: &child_joins,
                userns_sock: layer_sock.as_ref().map(|(_, child)| child.as_raw_fd()),
            },
        );
    }
    let pid = pid as i32;
    phases.push(("clone".to_string(), now_ns()));
    drop(sync_r);
    drop(err_w);
    drop(joins);
    if let (Some(userns), Some((sock, _))) = (&userns, &layer_sock) {
        if let Err(e) = crate::userns::setup_child(pid, userns, &plan, sock.as_raw_fd(), sync_w.as_raw_fd()) {
            kill_and_reap(pid);
            return Err(e);
        }
    }
    drop(layer_sock);

    // The child builds its rootfs meanwhile; the cgroup write can stall for milliseconds.
    let parent_side = setup_parent_side(spec, pid, &mut phases, early.map(|(cg, _)| (cg, born_in_cgroup)));
    if parent_side.is_ok() {
        // EPIPE here means the child has already failed; its error is on the error pipe.
        // SAFETY: writing one byte from a valid buffer to an fd we own.
        unsafe { libc::write(sync_w.as_raw_fd(), b"g".as_ptr().cast(), 1) };
    } else {
        // SAFETY: kill has no memory effects; the child is ours and not yet reaped.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    drop(sync_w);

    let mut buf = Vec::new();
    let read = File::from(err_r).read_to_end(&mut buf);
    let (child_phases, msg) = crate::phases::split_child(&buf);
    let cgroup = match parent_side {
        Ok(cgroup) if read.is_ok() && msg.is_empty() => {
            phases.extend(child_phases);
            phases.push(("exec".to_string(), now_ns()));
            return Ok(Spawned { pid, cgroup, phases });
        }
        Ok(cgroup) => cgroup,
        // A cgroup that could not be made is the cause, whatever the child then reported.
        // Otherwise the child's own error, when it has one, is the cause; a failed cgroup write
        // for a process that already died is only a consequence.
        Err(ParentFailure::Cause(e)) => {
            kill_and_reap(pid);
            return Err(e);
        }
        Err(ParentFailure::Other(e)) if msg.is_empty() => {
            kill_and_reap(pid);
            return Err(e);
        }
        Err(ParentFailure::Other(_)) => None,
    };
    kill_and_reap(pid);
    if let Some(cg) = &cgroup {
        let _ = cg.remove();
    }
    if let Err(source) = read {
        return Err(SpawnError::Os { what: "read container error pipe".to_string(), source });
    }
    let failure = ChildFailure::decode(msg);
    Err(match failure.kind {
        FailKind::NotFound => SpawnError::NotFound(failure.message),
        FailKind::PermissionDenied => SpawnError::PermissionDenied(failure.message),
        FailKind::Other => SpawnError::Setup(failure.message),
    })
}

/// A raw clone with fork semantics (no new stack, SIGCHLD on exit) creates every namespace
/// in one step, so the child is directly pid 1 of its new pid namespace: no double fork and
/// no intermediate process to reap, unlike fork + unshare. glibc's fork handlers do not run,
/// which is fine in the single-threaded shim where no lock can be held at this point.
/// Returns 0 in the child, which must only run `init::child_main` (it never returns).
fn raw_clone(flags: libc::c_int) -> Result<i64, SpawnError> {
    // SAFETY: clone without CLONE_VM duplicates the address space like fork.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    if pid < 0 {
        return Err(os_err("clone container process"));
    }
    Ok(pid)
}

/// The spec's cgroup, made before the clone, with a directory fd for CLONE_INTO_CGROUP.
fn early_cgroup(spec: &Spec) -> Result<Option<(Cgroup, OwnedFd)>, SpawnError> {
    let linux = spec.linux.as_ref();
    let Some(path) = linux.and_then(|l| l.cgroups_path.as_deref()).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let default = Resources::default();
    let cg = Cgroup::create(path, linux.and_then(|l| l.resources.as_ref()).unwrap_or(&default))?;
    let dir = cg.dirs().into_iter().next();
    match dir.map(|d| File::open(&d).map(|f| (d, f))) {
        Some(Ok((_, f))) => Ok(Some((cg, OwnedFd::from(f)))),
        Some(Err(source)) => {
            let _ = cg.remove();
            Err(SpawnError::Os { what: format!("open cgroup {path}"), source })
        }
        None => {
            let _ = cg.remove();
            Err(SpawnError::InvalidSpec(format!("cgroup {path} has no directory")))
        }
    }
}

/// clone3 with CLONE_INTO_CGROUP, fork semantics otherwise (as `raw_clone`). None when the
/// kernel lacks clone3 or the flag, so that the caller clones the older way.
pub(crate) fn clone_into_cgroup(flags: libc::c_int, cgroup_dir: RawFd) -> Option<Result<i64, SpawnError>> {
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    // struct clone_args of linux/sched.h, as of 5.7 (CLONE_ARGS_SIZE_VER2).
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    let args = CloneArgs {
        flags: flags as u32 as u64 | CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup_dir as u64,
    };
    // SAFETY: clone3 without CLONE_VM and without a stack duplicates the address space like
    // fork; `args` is a valid clone_args of the size given.
    let pid = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) };
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOSYS | libc::E2BIG) => None,
            _ => Some(Err(SpawnError::Os { what: "clone container process into its cgroup".to_string(), source: e })),
        };
    }
    Some(Ok(pid))
}

/// How the parent's side of a start failed.
enum ParentFailure {
    /// Whatever the child did: the cgroup could not be made or given its resources (the
    /// child, building its rootfs meanwhile, may then fail to bind the removed cgroup).
    Cause(SpawnError),
    /// Possibly because the child had already died (joining its cgroup, its OOM score).
    Other(SpawnError),
}

/// `early`: the cgroup made before the clone, and whether the child was born in it.
fn setup_parent_side(
    spec: &Spec,
    pid: i32,
    phases: &mut crate::phases::Phases,
    early: Option<(Cgroup, bool)>,
) -> Result<Option<Cgroup>, ParentFailure> {
    let linux = spec.linux.as_ref();
    let cgroup = match (early, linux.and_then(|l| l.cgroups_path.as_deref())) {
        (Some((cg, true)), _) => Some(cg),
        (Some((cg, false)), _) => {
            if let Err(e) = cg.add_pid(pid) {
                let _ = cg.remove();
                return Err(ParentFailure::Other(e.into()));
            }
            phases.push(("cgroup-joined".to_string(), crate::phases::now_ns()));
            Some(cg)
        }
        (None, Some(path)) if !path.is_empty() => {
            let default = Resources::default();
            let resources = linux.and_then(|l| l.resources.as_ref()).unwrap_or(&default);
            let cg = Cgroup::create(path, resources).map_err(|e| ParentFailure::Cause(e.into()))?;
            phases.push(("cgroup-made".to_string(), crate::phases::now_ns()));
            if let Err(e) = cg.add_pid(pid) {
                let _ = cg.remove();
                return Err(ParentFailure::Other(e.into()));
            }
            phases.push(("cgroup-joined".to_string(), crate::phases::now_ns()));
            Some(cg)
        }
        (None, _) => None,
    };
    // The systemd driver: the process is in the scope's directory already; systemd takes the
    // directory over as the scope's, before anything of the container runs.
    if let Some(cg) = cgroup.as_ref().filter(|cg| cg.scope().is_some()) {
        let default = Resources::default();
        let resources = linux.and_then(|l| l.resources.as_ref()).unwrap_or(&default);
        if let Err(e) = cg.start_scope(pid, resources) {
            let _ = cg.remove();
            return Err(ParentFailure::Cause(e.into()));
        }
        phases.push(("scope-started".to_string(), crate::phases::now_ns()));
    }
    if let Some(adj) = spec.process.as_ref().and_then(|p| p.oom_score_adj) {
        let path = PathBuf::from(format!("/proc/{pid}/oom_score_adj"));
        if let Err(source) = std::fs::write(&path, adj.to_string()) {
            if let Some(cg) = &cgroup {
                let _ = cg.remove();
            }
            return Err(ParentFailure::Other(SpawnError::Os {
                what: format!("write {adj} to {}", path.display()),
                source,
            }));
        }
    }
    Ok(cgroup)
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

/// A C string from Rust text, for the few places outside the child that need one.
pub(crate) fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"))
}
