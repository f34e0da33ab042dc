//! The container side of `spawn`: what runs in the cloned child between clone and exec (mounts,
//! devices, pivot_root, hostname, rlimits, user) and the error message it sends back.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::ffi::{CStr, CString};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::caps::{self, CapSets};
use crate::container::{cstring, ChildStdio};
use crate::spec::Spec;

/// Why the child failed, as the parent maps it to Docker's exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailKind {
    Other = 0,
    NotFound = 1,
    PermissionDenied = 2,
}

/// The message on the error pipe: one kind byte, then the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChildFailure {
    pub kind: FailKind,
    pub message: String,
}

impl ChildFailure {
    pub(crate) fn other(what: impl Into<String>, errno: i32) -> ChildFailure {
        ChildFailure { kind: FailKind::Other, message: format!("{}: {}", what.into(), errno_text(errno)) }
    }

    pub(crate) fn last(what: impl Into<String>) -> ChildFailure {
        ChildFailure::other(what, last_errno())
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.kind as u8];
        out.extend_from_slice(self.message.as_bytes());
        out
    }

    pub fn decode(buf: &[u8]) -> ChildFailure {
        let kind = match buf.first() {
            Some(1) => FailKind::NotFound,
            Some(2) => FailKind::PermissionDenied,
            _ => FailKind::Other,
        };
        let text = buf.get(1..).unwrap_or(&[]);
        ChildFailure { kind, message: String::from_utf8_lossy(text).into_owned() }
    }
}

pub(crate) fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `No such file or directory (os error 2)` becomes `no such file or directory`.
fn errno_text(errno: i32) -> String {
    let full = std::io::Error::from_raw_os_error(errno).to_string();
    let text = full.split(" (os error").next().unwrap_or(&full);
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text.to_string(),
    }
}

pub(crate) type ChildResult<T> = Result<T, ChildFailure>;

/// One mount from `spec.mounts`, with its options already split into flags and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountOp {
    source: String,
    destination: String,
    fstype: String,
    flags: libc::c_ulong,
    propagation: Vec<libc::c_ulong>,
    data: String,
    bind: bool,
}

/// What the child waits for before it unshares its cgroup namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CgroupnsJoin {
    /// The `/proc/self/cgroup` suffix of a joined hierarchy: `:<cgroupsPath>`.
    suffix: String,
    /// How many hierarchies the parent moves it into.
    hierarchies: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct DeviceNode {
    path: String,
    kind: libc::mode_t,
    major: u32,
    minor: u32,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// Everything the child needs, computed in the parent so the child mostly makes syscalls.
#[derive(Debug)]
pub(crate) struct Plan {
    rootfs: PathBuf,
    overlay: Option<String>,
    root_propagation: libc::c_ulong,
    root_readonly: bool,
    mounts: Vec<MountOp>,
    cgroup_v2: bool,
    /// The container's cgroup directories bound under a `cgroup` mount on v1/hybrid; on v2 only
    /// the fallback when a fresh cgroup2 mount is refused. Empty: on v1 without a cgroup, an
    /// empty tmpfs.
    cgroup_view: Vec<crate::cgroups::ContainerView>,
    /// A new cgroup namespace for a container with a cgroup: unshared by the child once the
    /// parent has moved it into its cgroup (in every hierarchy), as runc does, so that the
    /// container sees its cgroup as `/`.
    cgroupns_join: Option<CgroupnsJoin>,
    devices: Vec<DeviceNode>,
    masked: Vec<String>,
    readonly: Vec<String>,
    sysctl: Vec<(String, String)>,
    hostname: Option<String>,
    domainname: Option<String>,
    rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
    uid: u32,
    gid: u32,
    groups: Vec<libc::gid_t>,
    umask: u32,
    cwd: String,
    no_new_privs: bool,
    /// `None` when the spec has no `process.capabilities`: the process keeps the init's
    /// capabilities, as runc does.
    caps: Option<CapSets>,
    last_cap: u32,
    arg0: String,
    argv: Vec<CString>,
    env: Vec<CString>,
    path_dirs: Vec<String>,
    console_size: Option<crate::tty::WinSize>,
    seccomp: Option<crate::seccomp::Program>,
    /// `process.apparmorProfile`: the profile the exec enters; `None` leaves the process as the
    /// runtime is (unconfined on a host without AppArmor).
    apparmor: Option<CString>,
}

impl Plan {
    pub(crate) fn console_size(&self) -> Option<crate::tty::WinSize> {
        self.console_size
    }

    pub(crate) fn uid(&self) -> u32 {
        self.uid
    }

    pub(crate) fn gid(&self) -> u32 {
        self.gid
    }

    /// The sources of the bind mounts, in order, and whether each is recursive.
    pub(crate) fn bind_sources(&self) -> Vec<(&str, bool)> {
        self.mounts.iter().filter(|m| m.bind).map(|m| (m.source.as_str(), m.flags & libc::MS_REC != 0)).collect()
    }

    /// Whether the cgroup namespace is made by the child after it joined its cgroup, rather
    /// than at clone.
    pub(crate) fn cgroupns_after_join(&self) -> bool {
        self.cgroupns_join.is_some()
    }

    /// Whether the host is pure cgroup v2 (detected once, when the plan was made).
    pub(crate) fn cgroup_v2(&self) -> bool {
        self.cgroup_v2
    }

    pub(crate) fn overlay(&self) -> Option<&str> {
        self.overlay.as_deref()
    }

    /// The flags of the sysfs mount, when the spec has one.
    pub(crate) fn sysfs_flags(&self) -> Option<libc::c_ulong> {
        self.mounts.iter().find(|m| !m.bind && m.fstype == "sysfs").map(|m| m.flags)
    }
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Plan {
    pub fn new(bundle: &Path, spec: &Spec) -> Result<Plan, String> {
        let process = spec.process.as_ref().ok_or("no process in spec")?;
        if process.args.is_empty() {
            return Err("process.args is empty".to_string());
        }
        let root = spec.root.as_ref().ok_or("no root in spec")?;
        let bundle = std::fs::canonicalize(bundle).map_err(|e| format!("bundle {}: {}", bundle.display(), e))?;
        let rootfs = bundle.join(&root.path);
        let linux = spec.linux.clone().unwrap_or_default();
        let has_ns = |kind: &str| linux.namespaces.iter().any(|n| n.kind == kind);
        if !linux.namespaces.iter().any(|n| n.kind == "mount" && n.path.as_deref().unwrap_or("").is_empty()) {
            return Err("a new mount namespace is required".to_string());
        }
        let root_propagation = match linux.rootfs_propagation.as_deref() {
            None | Some("") => libc::MS_SLAVE | libc::MS_REC,
            Some(p) => match parse_option(p) {
                Some(Opt::Propagation(f)) if f & libc::MS_SHARED == 0 => f,
                _ => return Err(format!("unsupported rootfsPropagation {p:?}")),
            },
        };
        let mut mounts = Vec::new();
        for m in &spec.mounts {
            mounts.push(mount_op(&bundle, m)?);
        }
        let mut devices = default_devices();
        for d in &linux.devices {
            let kind = match d.kind.as_str() {
                "c" | "u" => libc::S_IFCHR,
                "b" => libc::S_IFBLK,
                "p" => libc::S_IFIFO,
                other => return Err(format!("device {}: unknown type {other:?}", d.path)),
            };
            devices.retain(|x| x.path != d.path);
            devices.push(DeviceNode {
                path: d.path.clone(),
                kind,
                major: d.major as u32,
                minor: d.minor as u32,
                mode: d.file_mode.unwrap_or(0o666) & 0o7777,
                uid: d.uid.unwrap_or(0),
                gid: d.gid.unwrap_or(0),
            });
        }
        let mut rlimits = Vec::new();
        for r in &process.rlimits {
            let res = rlimit_resource(&r.kind).ok_or(format!("unknown rlimit {:?}", r.kind))?;
            rlimits.push((res, r.soft, r.hard));
        }
        let mut argv = Vec::new();
        for a in &process.args {
            argv.push(cstring(a)?);
        }
        let mut env = Vec::new();
        for e in &process.env {
            env.push(cstring(e)?);
        }
        let path_var = process.env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
        let cwd = if process.cwd.is_empty() { "/".to_string() } else { process.cwd.clone() };
        let caps = match &process.capabilities {
            Some(c) => Some(CapSets::parse(c)?),
            None => None,
        };
        let last_cap = caps::last_cap()?;
        let seccomp = crate::seccomp::plan_program(spec).map_err(|e| e.to_string())?;
        let cgroup_v2 = crate::cgroups::Layout::detect() == crate::cgroups::Layout::V2;
        let cgroup_view = match linux.cgroups_path.as_deref() {
            Some(path)
                if !path.is_empty()
                    && mounts.iter().any(|m| matches!(m.fstype.as_str(), "cgroup" | "cgroup2"))
                    && !(cgroup_v2 && has_ns("cgroup")) =>
            {
                crate::cgroups::container_view(path).map_err(|e| e.to_string())?
            }
            _ => Vec::new(),
        };
        let new_cgroupns =
            linux.namespaces.iter().any(|n| n.kind == "cgroup" && n.path.as_deref().unwrap_or("").is_empty());
        let cgroupns_join = match linux.cgroups_path.as_deref() {
            Some(path) if new_cgroupns && !path.is_empty() => Some(CgroupnsJoin {
                suffix: format!(":{}", crate::cgroups::fs_path(path).map_err(|e| e.to_string())?),
                hierarchies: crate::cgroups::hierarchy_count(path).map_err(|e| e.to_string())?,
            }),
            _ => None,
        };
        Ok(Plan {
            rootfs,
            overlay: spec.annotations.get(crate::spec::ANNOTATION_OVERLAY).cloned(),
            root_propagation,
            root_readonly: root.readonly,
            mounts,
            cgroup_v2,
            cgroup_view,
            cgroupns_join,
            devices,
            masked: linux.masked_paths.clone(),
            readonly: linux.readonly_paths.clone(),
            sysctl: linux.sysctl.clone().into_iter().collect(),
            hostname: spec.hostname.clone().filter(|_| has_ns("uts")),
            domainname: spec.domainname.clone().filter(|_| has_ns("uts")),
            rlimits,
            uid: process.user.uid,
            gid: process.user.gid,
            groups: process.user.additional_gids.clone(),
            umask: process.user.umask.unwrap_or(0o022),
            cwd,
            no_new_privs: process.no_new_privileges,
            caps: caps.map(|c| c.limit_to(last_cap)),
            last_cap,
            arg0: process.args[0].clone(),
            argv,
            env,
            path_dirs: path_var.split(':').map(str::to_string).collect(),
            console_size: process.console_size.map(|c| crate::tty::WinSize {
                rows: c.height.min(u16::MAX as u32) as u16,
                cols: c.width.min(u16::MAX as u32) as u16,
            }),
            seccomp,
            apparmor: match process.apparmor_profile.as_deref() {
                Some(p) if !p.is_empty() => Some(cstring(p)?),
                _ => None,
            },
        })
    }
}

fn default_devices() -> Vec<DeviceNode> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(path, major, minor)| DeviceNode {
        path: path.to_string(),
        kind: libc::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Set(libc::c_ulong),
    Clear(libc::c_ulong),
    Propagation(libc::c_ulong),
}

fn parse_option(o: &str) -> Option<Opt> {
    use libc::*;
    Some(match o {
        "ro" => Opt::Set(MS_RDONLY),
        "rw" => Opt::Clear(MS_RDONLY),
        "nosuid" => Opt::Set(MS_NOSUID),
        "suid" => Opt::Clear(MS_NOSUID),
        "nodev" => Opt::Set(MS_NODEV),
        "dev" => Opt::Clear(MS_NODEV),
        "noexec" => Opt::Set(MS_NOEXEC),
        "exec" => Opt::Clear(MS_NOEXEC),
        "sync" => Opt::Set(MS_SYNCHRONOUS),
        "async" => Opt::Clear(MS_SYNCHRONOUS),
        "dirsync" => Opt::Set(MS_DIRSYNC),
        "noatime" => Opt::Set(MS_NOATIME),
        "atime" => Opt::Clear(MS_NOATIME),
        "nodiratime" => Opt::Set(MS_NODIRATIME),
        "diratime" => Opt::Clear(MS_NODIRATIME),
        "relatime" => Opt::Set(MS_RELATIME),
        "norelatime" => Opt::Clear(MS_RELATIME),
        "strictatime" => Opt::Set(MS_STRICTATIME),
        "nostrictatime" => Opt::Clear(MS_STRICTATIME),
        "bind" => Opt::Set(MS_BIND),
        "rbind" => Opt::Set(MS_BIND | MS_REC),
        "defaults" => Opt::Clear(0),
        "private" => Opt::Propagation(MS_PRIVATE),
        "rprivate" => Opt::Propagation(MS_PRIVATE | MS_REC),
        "shared" => Opt::Propagation(MS_SHARED),
        "rshared" => Opt::Propagation(MS_SHARED | MS_REC),
        "slave" => Opt::Propagation(MS_SLAVE),
        "rslave" => Opt::Propagation(MS_SLAVE | MS_REC),
        "unbindable" => Opt::Propagation(MS_UNBINDABLE),
        "runbindable" => Opt::Propagation(MS_UNBINDABLE | MS_REC),
        _ => return None,
    })
}

fn mount_op(bundle: &Path, m: &crate::spec::Mount) -> Result<MountOp, String> {
    if !m.destination.starts_with('/') {
        return Err(format!("mount destination {:?} is not absolute", m.destination));
    }
    let mut flags = 0;
    let mut propagation = Vec::new();
    let mut data = Vec::new();
    for o in &m.options {
        match parse_option(o) {
            Some(Opt::Set(f)) => flags |= f,
            Some(Opt::Clear(f)) => flags &= !f,
            Some(Opt::Propagation(f)) => propagation.push(f),
            None => data.push(o.as_str()),
        }
    }
    let fstype = m.kind.clone().unwrap_or_else(|| "none".to_string());
    let bind = flags & libc::MS_BIND != 0 || fstype == "bind";
    let mut source = m.source.clone().unwrap_or_else(|| fstype.clone());
    if bind && !source.starts_with('/') {
        source = bundle.join(&source).to_string_lossy().into_owned();
    }
    Ok(MountOp { source, destination: m.destination.clone(), fstype, flags, propagation, data: data.join(","), bind })
}

fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    use libc::*;
    Some(match name {
        "RLIMIT_AS" => RLIMIT_AS,
        "RLIMIT_CORE" => RLIMIT_CORE,
        "RLIMIT_CPU" => RLIMIT_CPU,
        "RLIMIT_DATA" => RLIMIT_DATA,
        "RLIMIT_FSIZE" => RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => RLIMIT_NICE,
        "RLIMIT_NOFILE" => RLIMIT_NOFILE,
        "RLIMIT_NPROC" => RLIMIT_NPROC,
        "RLIMIT_RSS" => RLIMIT_RSS,
        "RLIMIT_RTPRIO" => RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => RLIMIT_STACK,
        _ => return None,
    })
}

/// Resolves `unsafe_path` inside `root` the way the container will see it: symlinks are
/// followed relative to `root`, and neither they nor `..` can climb above it.
pub(crate) fn secure_join(root: &Path, unsafe_path: &str) -> ChildResult<PathBuf> {
    let mut resolved = PathBuf::new();
    let mut pending: VecDeque<std::ffi::OsString> = Path::new(unsafe_path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut links = 0;
    while let Some(c) = pending.pop_front() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        let full = root.join(&resolved).join(&c);
        match std::fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 255 {
                    return Err(ChildFailure::other(
                        format!("resolve {unsafe_path} in {}", root.display()),
                        libc::ELOOP,
                    ));
                }
                let target = std::fs::read_link(&full).map_err(|e| {
                    ChildFailure::other(format!("readlink {}", full.display()), e.raw_os_error().unwrap_or(0))
                })?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for comp in target.components().rev() {
                    match comp {
                        Component::Normal(n) => pending.push_front(n.to_os_string()),
                        Component::ParentDir => pending.push_front("..".into()),
                        _ => {}
                    }
                }
            }
            _ => resolved.push(c),
        }
    }
    Ok(root.join(resolved))
}

fn path_c(p: &Path) -> ChildResult<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| ChildFailure::other(format!("path {}", p.display()), libc::EINVAL))
}

fn str_c(s: &str) -> ChildResult<CString> {
    CString::new(s).map_err(|_| ChildFailure::other(format!("string {s:?}"), libc::EINVAL))
}

fn sys_mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> Result<(), i32> {
    let p = |c: Option<&CStr>| c.map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is NUL-terminated or null, all valid for the call.
    let rc = unsafe { libc::mount(p(source), target.as_ptr(), p(fstype), flags, p(data).cast()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

/// Makes a directory and its parents, 0755 as runc makes them: the child runs with umask 0,
/// so the default 0777 would reach the container (and the layers built from it).
fn mkdir_all(path: &Path) -> ChildResult<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|e| ChildFailure::other(format!("mkdir {}", path.display()), e.raw_os_error().unwrap_or(0)))
}

/// Creates an empty file (and its parents) to bind-mount a non-directory onto.
fn touch(path: &Path) -> ChildResult<()> {
    if let Some(parent) = path.parent() {
        mkdir_all(parent)?;
    }
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o755).open(path) {
        Ok(_) => Ok(()),
        Err(e) => Err(ChildFailure::other(format!("create {}", path.display()), e.raw_os_error().unwrap_or(0))),
    }
}

pub(crate) struct ChildFds<'a> {
    pub stdio: ChildStdio,
    pub sync_r: RawFd,
    pub sync_w: RawFd,
    pub err_r: RawFd,
    pub err_w: RawFd,
    pub joins: &'a [(libc::c_int, RawFd)],
    /// With a new user namespace: where the parent sends the idmapped layers.
    pub userns_sock: Option<RawFd>,
}

/// The child's entry point after clone. Never returns: it execs or exits 1 after writing its
/// failure to the error pipe.
pub(crate) fn child_main(plan: &Plan, fds: &ChildFds) -> ! {
    let failure = match child_run(plan, fds) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    let msg = failure.encode();
    // SAFETY: write from a valid buffer, then leave without running the parent's destructors
    // or atexit handlers (this is a copy of the shim).
    unsafe {
        libc::write(fds.err_w, msg.as_ptr().cast(), msg.len());
        libc::_exit(1)
    }
}

/// The shim ignores SIGTERM and blocks SIGCHLD; ignored and blocked signals survive exec,
/// so the container's processes would inherit them.
pub(crate) fn reset_signals() {
    // SAFETY: plain syscalls on the signal state of this (forked, single-threaded) process.
    unsafe {
        for sig in 1..libc::SIGRTMAX() {
            libc::signal(sig, libc::SIG_DFL);
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

fn child_run(plan: &Plan, fds: &ChildFds) -> ChildResult<Infallible> {
    let mut stamps = [0u64; crate::phases::CHILD.len()];
    stamps[0] = crate::phases::now_ns();
    // SAFETY: plain syscalls on fds and state this process owns.
    unsafe {
        libc::close(fds.sync_w);
        libc::close(fds.err_r);
        libc::umask(0);
    }
    reset_signals();
    let handed = match fds.userns_sock {
        Some(sock) => crate::userns::child_enter(plan, fds.sync_r, sock)?,
        None => crate::userns::Handed::default(),
    };
    for (flag, fd) in fds.joins {
        // SAFETY: setns on an fd the parent opened for us.
        if unsafe { libc::setns(*fd, *flag) } != 0 {
            return Err(ChildFailure::last(format!("setns {flag:#x}")));
        }
    }
    // SAFETY: setsid has no memory effects.
    if unsafe { libc::setsid() } < 0 {
        return Err(ChildFailure::last("setsid"));
    }
    if fds.stdio.console.is_none() {
        setup_stdio(&fds.stdio)?;
    }
    if let Some(join) = &plan.cgroupns_join {
        unshare_cgroupns(join)?;
    }
    setup_rootfs(plan, handed)?;
    finish_rootfs(plan)?;
    stamps[1] = crate::phases::now_ns();
    if let Some(console) = fds.stdio.console {
        crate::tty::setup_in_child(console, plan.console_size, plan.uid, plan.gid)?;
    }
    setup_process(plan)?;
    stamps[2] = crate::phases::now_ns();

    let mut byte = 0u8;
    // SAFETY: reading one byte into a valid buffer.
    let n = unsafe { libc::read(fds.sync_r, (&mut byte as *mut u8).cast(), 1) };
    if n != 1 {
        // The parent is gone or failed: nobody would monitor this container.
        // SAFETY: leaving the process.
        unsafe { libc::_exit(1) };
    }
    // SAFETY: marks every fd above 2 close-on-exec (the error pipe already is), so only the
    // standard streams reach the container process.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    stamps[3] = crate::phases::now_ns();
    let rec = crate::phases::encode_child(&stamps);
    // SAFETY: write from a valid buffer; the pipe has room (a failure record may follow).
    unsafe { libc::write(fds.err_w, rec.as_ptr().cast(), rec.len()) };
    Err(exec(plan))
}

pub(crate) fn setup_stdio(stdio: &ChildStdio) -> ChildResult<()> {
    for (fd, target) in [(stdio.stdin, 0), (stdio.stdout, 1), (stdio.stderr, 2)] {
        // SAFETY: dup2/fcntl on fds the caller handed us.
        let rc = unsafe {
            if fd == target {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, target)
            }
        };
        if rc < 0 {
            return Err(ChildFailure::last(format!("dup2 {fd} to {target}")));
        }
    }
    Ok(())
}

fn setup_rootfs(plan: &Plan, handed: crate::userns::Handed) -> ChildResult<()> {
    let (layers, mut binds, mut sysfs) = (handed.layers, handed.binds.into_iter(), handed.sysfs);
    let root_c = c"/";
    sys_mount(None, root_c, None, plan.root_propagation, None)
        .map_err(|e| ChildFailure::other("make / private to the container", e))?;
    let rootfs_c = path_c(&plan.rootfs)?;
    match &plan.overlay {
        Some(opts) if !layers.is_empty() => crate::userns::mount_overlay(&plan.rootfs, opts, layers)?,
        Some(opts) => {
            let data = str_c(opts)?;
            sys_mount(Some(c"overlay"), &rootfs_c, Some(c"overlay"), 0, Some(&data))
                .map_err(|e| ChildFailure::other(format!("mount overlay on {}", plan.rootfs.display()), e))?;
        }
        None => {
            sys_mount(Some(&rootfs_c), &rootfs_c, None, libc::MS_BIND | libc::MS_REC, None)
                .map_err(|e| ChildFailure::other(format!("bind mount rootfs {}", plan.rootfs.display()), e))?;
        }
    }
    for m in &plan.mounts {
        let source = if m.bind {
            binds.next()
        } else if m.fstype == "sysfs" {
            sysfs.take()
        } else {
            None
        };
        mount_one(plan, m, source)?;
    }
    make_devices(plan)?;
    pivot_root(&plan.rootfs)
}

/// `source`: with a user namespace, the mount as a detached mount the parent made: a bind
/// mount's source (the container's root may not reach the host path), or the sysfs.
fn mount_one(plan: &Plan, m: &MountOp, source: Option<std::os::fd::OwnedFd>) -> ChildResult<()> {
    let dest = secure_join(&plan.rootfs, &m.destination)?;
    let dest_c = path_c(&dest)?;
    let what = |e| ChildFailure::other(format!("mount {} to {} (type {})", m.source, m.destination, m.fstype), e);
    if m.bind {
        let is_dir = match &source {
            Some(fd) => std::fs::File::from(fd.try_clone().map_err(|e| what(e.raw_os_error().unwrap_or(0)))?)
                .metadata()
                .is_ok_and(|md| md.is_dir()),
            None => Path::new(&m.source).is_dir(),
        };
        if is_dir {
            mkdir_all(&dest)?;
        } else {
            touch(&dest)?;
        }
        let rec = m.flags & libc::MS_REC;
        let locked = match source {
            Some(fd) => {
                crate::userns::attach(fd, &dest_c).map_err(what)?;
                // A read-only remount would clear the source's nosuid/nodev/noexec: keep them.
                kept_flags(&dest_c)
            }
            None => {
                let src_c = str_c(&m.source)?;
                sys_mount(Some(&src_c), &dest_c, None, libc::MS_BIND | rec, None).map_err(what)?;
                0
            }
        };
        let extra = m.flags & !(libc::MS_BIND | libc::MS_REC);
        if extra != 0 {
            let flags = extra | locked | libc::MS_BIND | libc::MS_REMOUNT | rec;
            sys_mount(None, &dest_c, None, flags, None).map_err(what)?;
        }
    } else if let Some(fd) = source {
        mkdir_all(&dest)?;
        crate::userns::attach(fd, &dest_c).map_err(what)?;
    } else if matches!(m.fstype.as_str(), "cgroup" | "cgroup2") && !plan.cgroup_v2 && !plan.cgroup_view.is_empty() {
        mount_cgroup_view(plan, m, &dest)?;
    } else {
        mkdir_all(&dest)?;
        let (fstype, data) = match m.fstype.as_str() {
            "cgroup" | "cgroup2" if plan.cgroup_v2 => ("cgroup2", String::new()),
            // Without a cgroup to show (no cgroupsPath): an empty directory.
            "cgroup" => ("tmpfs", "mode=755".to_string()),
            other => (other, m.data.clone()),
        };
        let src_c = str_c(&m.source)?;
        let type_c = str_c(fstype)?;
        let data_c = str_c(&data)?;
        let data_ref = (!data.is_empty()).then_some(data_c.as_c_str());
        let res = sys_mount(Some(&src_c), &dest_c, Some(&type_c), m.flags, data_ref);
        match res {
            Ok(()) => {}
            // Without its own network namespace the kernel refuses a fresh sysfs: show the
            // host's, read-only as asked.
            Err(libc::EPERM) if fstype == "sysfs" => {
                let flags = libc::MS_BIND | libc::MS_REC;
                sys_mount(Some(c"/sys"), &dest_c, None, flags, None).map_err(what)?;
                // In a user namespace the bind's nosuid/nodev/noexec are locked: keep them.
                let ro = libc::MS_BIND | libc::MS_REMOUNT | (m.flags & libc::MS_RDONLY) | kept_flags(&dest_c);
                sys_mount(None, &dest_c, None, ro, None).map_err(what)?;
            }
            // On v2 a fresh cgroup2 mount shows the root of the process's cgroup namespace: the
            // host's whole tree with `--cgroupns host`, as runc mounts it. The kernel refuses it
            // in a user namespace that does not own the cgroup namespace (userns-remap with the
            // host's): then, as runc, the container's own directory.
            Err(libc::EPERM | libc::EBUSY) if fstype == "cgroup2" && !plan.cgroup_view.is_empty() => {
                mount_cgroup_view(plan, m, &dest)?;
            }
            Err(e) => return Err(what(e)),
        }
    }
    for p in &m.propagation {
        sys_mount(None, &dest_c, None, *p, None).map_err(what)?;
    }
    Ok(())
}

/// Waits until the parent has moved this process into its cgroup in every hierarchy, then
/// makes the cgroup namespace rooted there. Before the rootfs: a cgroup2 mount shows the
/// namespace's root.
fn unshare_cgroupns(join: &CgroupnsJoin) -> ChildResult<()> {
    let start = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        if text.lines().filter(|l| l.ends_with(&join.suffix)).count() >= join.hierarchies {
            break;
        }
        if start.elapsed() > std::time::Duration::from_secs(5) {
            return Err(ChildFailure::other(
                format!("join cgroup{} before its namespace", join.suffix),
                libc::ETIMEDOUT,
            ));
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    // SAFETY: unshare has no memory effects.
    if unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } != 0 {
        return Err(ChildFailure::last("unshare the cgroup namespace"));
    }
    Ok(())
}

/// /sys/fs/cgroup as runc shows it: a tmpfs (read-write, as runc leaves it) with the
/// container's own directory of each v1 hierarchy bound at the host's name, or on v2 (when a
/// fresh cgroup2 mount is refused) the container's directory itself; the directories read-only unless the
/// mount is read-write (`--privileged`).
fn mount_cgroup_view(plan: &Plan, m: &MountOp, dest: &Path) -> ChildResult<()> {
    let fail = |what: String| move |e| ChildFailure::other(what, e);
    mkdir_all(dest)?;
    let dest_c = path_c(dest)?;
    let ro = m.flags & libc::MS_RDONLY;
    let secure = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let single = plan.cgroup_view.iter().all(|v| v.name.is_empty());
    if !single {
        sys_mount(Some(c"tmpfs"), &dest_c, Some(c"tmpfs"), (m.flags & !libc::MS_RDONLY) | secure, Some(c"mode=755"))
            .map_err(fail(format!("mount tmpfs on {}", m.destination)))?;
    }
    for view in &plan.cgroup_view {
        let target = if view.name.is_empty() { dest.to_path_buf() } else { dest.join(&view.name) };
        mkdir_all(&target)?;
        // The parent creates the cgroup while this process builds the rootfs.
        let start = std::time::Instant::now();
        while !view.source.is_dir() {
            if start.elapsed() > std::time::Duration::from_secs(5) {
                return Err(ChildFailure::other(
                    format!("cgroup {} did not appear", view.source.display()),
                    libc::ENOENT,
                ));
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let (src_c, target_c) = (path_c(&view.source)?, path_c(&target)?);
        let what = format!("bind mount cgroup {} to {}", view.source.display(), target.display());
        sys_mount(Some(&src_c), &target_c, None, libc::MS_BIND, None).map_err(fail(what.clone()))?;
        let flags = libc::MS_BIND | libc::MS_REMOUNT | secure | ro | kept_flags(&target_c);
        sys_mount(None, &target_c, None, flags, None).map_err(fail(what))?;
        for link in &view.links {
            let at = dest.join(link);
            std::os::unix::fs::symlink(&view.name, &at)
                .map_err(|e| ChildFailure::other(format!("symlink {}", at.display()), e.raw_os_error().unwrap_or(0)))?;
        }
    }
    Ok(())
}

fn make_devices(plan: &Plan) -> ChildResult<()> {
    for d in &plan.devices {
        let dest = secure_join(&plan.rootfs, &d.path)?;
        if let Some(parent) = dest.parent() {
            mkdir_all(parent)?;
        }
        let dest_c = path_c(&dest)?;
        // SAFETY: unlink/mknod/chown on a NUL-terminated path.
        let rc = unsafe {
            libc::unlink(dest_c.as_ptr());
            libc::mknod(dest_c.as_ptr(), d.kind | d.mode, libc::makedev(d.major, d.minor))
        };
        if rc != 0 {
            let errno = last_errno();
            if errno != libc::EPERM {
                return Err(ChildFailure::other(format!("mknod {}", d.path), errno));
            }
            // Some setups forbid mknod; the host's node bound over an empty file works too.
            touch(&dest)?;
            let src_c = str_c(&d.path)?;
            sys_mount(Some(&src_c), &dest_c, None, libc::MS_BIND, None)
                .map_err(|e| ChildFailure::other(format!("bind mount device {}", d.path), e))?;
        } else if d.uid != 0 || d.gid != 0 {
            // SAFETY: chown on a NUL-terminated path.
            if unsafe { libc::chown(dest_c.as_ptr(), d.uid, d.gid) } != 0 {
                return Err(ChildFailure::last(format!("chown {}", d.path)));
            }
        }
    }
    let dev = secure_join(&plan.rootfs, "/dev")?;
    for (target, link) in [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ] {
        let path = dev.join(link);
        if path.symlink_metadata().is_ok() {
            continue;
        }
        if let Err(e) = std::os::unix::fs::symlink(target, &path) {
            return Err(ChildFailure::other(format!("symlink {}", path.display()), e.raw_os_error().unwrap_or(0)));
        }
    }
    Ok(())
}

fn pivot_root(rootfs: &Path) -> ChildResult<()> {
    let rootfs_c = path_c(rootfs)?;
    // SAFETY: chdir/pivot_root/umount2 on NUL-terminated paths. pivot_root(".", ".") stacks
    // the old root on top of the new one; detaching "." then removes it without needing a
    // directory for it inside the rootfs.
    unsafe {
        if libc::chdir(rootfs_c.as_ptr()) != 0 {
            return Err(ChildFailure::last(format!("chdir {}", rootfs.display())));
        }
        if libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0 {
            return Err(ChildFailure::last(format!("pivot_root {}", rootfs.display())));
        }
    }
    // Keep the unmount of the old root from propagating anywhere.
    sys_mount(None, c".", None, libc::MS_SLAVE | libc::MS_REC, None)
        .map_err(|e| ChildFailure::other("make old root rslave", e))?;
    // SAFETY: as above.
    unsafe {
        if libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0 {
            return Err(ChildFailure::last("unmount old root"));
        }
        if libc::chdir(c"/".as_ptr()) != 0 {
            return Err(ChildFailure::last("chdir /"));
        }
    }
    Ok(())
}

/// After pivot_root: sysctls, read-only and masked paths, the read-only root.
fn finish_rootfs(plan: &Plan) -> ChildResult<()> {
    for (key, value) in &plan.sysctl {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, value)
            .map_err(|e| ChildFailure::other(format!("sysctl {key}={value}"), e.raw_os_error().unwrap_or(0)))?;
    }
    for p in &plan.readonly {
        let c = str_c(p)?;
        match sys_mount(Some(&c), &c, None, libc::MS_BIND | libc::MS_REC, None) {
            Err(libc::ENOENT) => continue,
            Err(e) => return Err(ChildFailure::other(format!("bind readonly path {p}"), e)),
            Ok(()) => {}
        }
        let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC | kept_flags(&c);
        sys_mount(None, &c, None, flags, None)
            .map_err(|e| ChildFailure::other(format!("remount readonly path {p}"), e))?;
    }
    for p in &plan.masked {
        let c = str_c(p)?;
        let res = match std::fs::metadata(p) {
            Err(_) => continue,
            Ok(m) if m.is_dir() => sys_mount(Some(c"tmpfs"), &c, Some(c"tmpfs"), libc::MS_RDONLY, Some(c"size=0k")),
            Ok(_) => sys_mount(Some(c"/dev/null"), &c, None, libc::MS_BIND, None),
        };
        res.map_err(|e| ChildFailure::other(format!("mask path {p}"), e))?;
    }
    if plan.root_readonly {
        let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | kept_flags(c"/");
        sys_mount(None, c"/", None, flags, None).map_err(|e| ChildFailure::other("remount / read-only", e))?;
    }
    Ok(())
}

/// The nosuid/nodev/noexec/atime flags a mount has now. A bind remount replaces all of them,
/// so a read-only remount that left them out would quietly make `/proc/sys` suid and exec
/// again (and fail with EPERM where they are locked); runc keeps them the same way.
fn kept_flags(path: &CStr) -> libc::c_ulong {
    // SAFETY: statvfs fills the struct it is given for a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ]
    .into_iter()
    .filter(|(st_flag, _)| st.f_flag & st_flag != 0)
    .fold(0, |acc, (_, ms_flag)| acc | ms_flag)
}

pub(crate) fn setup_process(plan: &Plan) -> ChildResult<()> {
    // First, as runc: the profile binds at the exec, so what follows runs unconfined still.
    if let Some(p) = &plan.apparmor {
        crate::apparmor::change_onexec(p)?;
    }
    if let Some(h) = &plan.hostname {
        // SAFETY: sethostname reads len bytes from a valid buffer.
        if unsafe { libc::sethostname(h.as_ptr().cast(), h.len()) } != 0 {
            return Err(ChildFailure::last(format!("sethostname {h:?}")));
        }
    }
    if let Some(d) = &plan.domainname {
        // SAFETY: setdomainname reads len bytes from a valid buffer.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(ChildFailure::last(format!("setdomainname {d:?}")));
        }
    }
    for &(res, soft, hard) in &plan.rlimits {
        set_rlimit(res, soft, hard)?;
    }
    let cwd = Path::new(&plan.cwd);
    mkdir_all(cwd)?;
    let cwd_c = path_c(cwd)?;
    // As runc: chdir before the user switch, while root can reach any directory, and again
    // after it only when root was refused (a root-squashed or 0700 directory of the user).
    let mut chdir_later = false;
    // SAFETY: chdir on a NUL-terminated path.
    if unsafe { libc::chdir(cwd_c.as_ptr()) } != 0 {
        match last_errno() {
            libc::EACCES | libc::EPERM => chdir_later = true,
            errno => return Err(ChildFailure::other(format!("chdir {}", plan.cwd), errno)),
        }
    }
    let cap_err = |(what, errno): (String, i32)| ChildFailure::other(what, errno);
    // Without no_new_privs loading a filter needs CAP_SYS_ADMIN, so it goes first (as runc).
    if !plan.no_new_privs {
        load_seccomp(plan)?;
    }
    if let Some(sets) = &plan.caps {
        // Needs CAP_SETPCAP, which the sets below may not keep.
        caps::apply_bounding(sets.bounding, plan.last_cap).map_err(cap_err)?;
        caps::keep_caps(true).map_err(cap_err)?;
    }
    // SAFETY: plain syscalls on a valid gid array.
    unsafe {
        if libc::setgroups(plan.groups.len(), plan.groups.as_ptr()) != 0 {
            return Err(ChildFailure::last(format!("setgroups {:?}", plan.groups)));
        }
        if libc::setgid(plan.gid) != 0 {
            return Err(ChildFailure::last(format!("setgid {}", plan.gid)));
        }
        if libc::setuid(plan.uid) != 0 {
            return Err(ChildFailure::last(format!("setuid {}", plan.uid)));
        }
    }
    // SAFETY: chdir on a NUL-terminated path.
    if chdir_later && unsafe { libc::chdir(cwd_c.as_ptr()) } != 0 {
        return Err(ChildFailure::last(format!("chdir {}", plan.cwd)));
    }
    if let Some(sets) = &plan.caps {
        caps::keep_caps(false).map_err(cap_err)?;
        // A non-root user keeps these only until exec: the kernel then recomputes them from
        // the ambient set (and file capabilities), exactly as under runc.
        caps::apply_sets(sets).map_err(cap_err)?;
    }
    // SAFETY: prctl with integer arguments; umask cannot fail.
    unsafe {
        if plan.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(ChildFailure::last("set no_new_privs"));
        }
        libc::umask(plan.umask);
    }
    if plan.no_new_privs {
        load_seccomp(plan)?;
    }
    Ok(())
}

fn load_seccomp(plan: &Plan) -> ChildResult<()> {
    match &plan.seccomp {
        Some(prog) => prog.load().map_err(|errno| ChildFailure::other("load seccomp filter", errno)),
        None => Ok(()),
    }
}

/// Sets a limit; a NOFILE limit above what the kernel allows is clamped to the current hard
/// limit instead of failing (Podman's default of 1048576 is above many hosts' nr_open).
fn set_rlimit(res: libc::__rlimit_resource_t, soft: u64, hard: u64) -> ChildResult<()> {
    let mut lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: setrlimit/getrlimit with a valid struct.
    unsafe {
        if libc::setrlimit(res, &lim) == 0 {
            return Ok(());
        }
        let errno = last_errno();
        if errno != libc::EPERM || res != libc::RLIMIT_NOFILE {
            return Err(ChildFailure::other(format!("setrlimit {res} {soft}/{hard}"), errno));
        }
        let mut cur = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        libc::getrlimit(res, &mut cur);
        lim.rlim_max = hard.min(cur.rlim_max);
        lim.rlim_cur = soft.min(lim.rlim_max);
        if libc::setrlimit(res, &lim) != 0 {
            return Err(ChildFailure::last(format!("setrlimit {res} {soft}/{hard}")));
        }
    }
    Ok(())
}

/// Execs the process; returns only on failure, classified as Docker does.
pub(crate) fn exec(plan: &Plan) -> ChildFailure {
    let mut argv: Vec<*const libc::c_char> = plan.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = plan.env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let try_exec = |path: &CStr| -> i32 {
        // SAFETY: argv and envp are NULL-terminated arrays of valid C strings.
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        last_errno()
    };
    let arg0 = &plan.arg0;
    if arg0.contains('/') {
        let errno = try_exec(&plan.argv[0]);
        return exec_failure(arg0, errno, true);
    }
    let mut denied = false;
    for dir in &plan.path_dirs {
        let dir = if dir.is_empty() { "." } else { dir.as_str() };
        let Ok(candidate) = CString::new(format!("{dir}/{arg0}")) else {
            continue;
        };
        match try_exec(&candidate) {
            libc::ENOENT | libc::ENOTDIR => {}
            libc::EACCES => denied = true,
            errno => return exec_failure(arg0, errno, false),
        }
    }
    exec_failure(arg0, if denied { libc::EACCES } else { libc::ENOENT }, false)
}

fn exec_failure(arg0: &str, errno: i32, has_slash: bool) -> ChildFailure {
    match errno {
        libc::ENOENT | libc::ENOTDIR if has_slash => ChildFailure {
            kind: FailKind::NotFound,
            message: format!("exec: \"{arg0}\": stat {arg0}: {}", errno_text(errno)),
        },
        libc::ENOENT | libc::ENOTDIR => ChildFailure {
            kind: FailKind::NotFound,
            message: format!("exec: \"{arg0}\": executable file not found in $PATH"),
        },
        libc::EACCES | libc::EPERM => {
            ChildFailure { kind: FailKind::PermissionDenied, message: format!("exec: \"{arg0}\": permission denied") }
        }
        _ => ChildFailure { kind: FailKind::Other, message: format!("exec: \"{arg0}\": {}", errno_text(errno)) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_round_trip() {
        let f = ChildFailure {
            kind: FailKind::NotFound,
            message: "exec: \"x\": executable file not found in $PATH".to_string(),
        };
        assert_eq!(ChildFailure::decode(&f.encode()), f);
        assert_eq!(ChildFailure::decode(b"").kind, FailKind::Other);
    }

    #[test]
    fn errno_text_is_lowercase() {
        assert_eq!(errno_text(libc::ENOENT), "no such file or directory");
        assert_eq!(errno_text(libc::EPERM), "operation not permitted");
    }

    #[test]
    fn mount_options_split() {
        let m = crate::spec::Mount {
            destination: "/dev".to_string(),
            kind: Some("tmpfs".to_string()),
            source: Some("tmpfs".to_string()),
            options: ["nosuid", "strictatime", "mode=755", "size=65536k", "rprivate"].map(String::from).to_vec(),
        };
        let op = mount_op(Path::new("/b"), &m).unwrap();
        assert_eq!(op.flags, libc::MS_NOSUID | libc::MS_STRICTATIME);
        assert_eq!(op.data, "mode=755,size=65536k");
        assert_eq!(op.propagation, vec![libc::MS_PRIVATE | libc::MS_REC]);
        assert!(!op.bind);

        let b = crate::spec::Mount {
            destination: "/data".to_string(),
            kind: Some("bind".to_string()),
            source: Some("vol".to_string()),
            options: ["rbind", "ro"].map(String::from).to_vec(),
        };
        let op = mount_op(Path::new("/b"), &b).unwrap();
        assert!(op.bind);
        assert_eq!(op.source, "/b/vol");
        assert_eq!(op.flags, libc::MS_BIND | libc::MS_REC | libc::MS_RDONLY);
    }

    #[test]
    fn secure_join_stays_inside() {
        let dir = std::env::temp_dir().join(format!("wharf-sj-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../..", dir.join("a/up")).unwrap();
        std::os::unix::fs::symlink("b", dir.join("a/rel")).unwrap();
        let table = [
            ("/a/b", "a/b"),
            ("/abs/passwd", "etc/passwd"),
            ("/a/up/x", "x"),
            ("/../../x", "x"),
            ("/a/rel/c", "a/b/c"),
            ("/", ""),
        ];
        for (input, want) in table {
            assert_eq!(secure_join(&dir, input).unwrap(), dir.join(want), "{input}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
