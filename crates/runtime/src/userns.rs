//! User namespaces for `spawn` and `exec`: the child's uid/gid maps written by the parent,
//! namespaces to join entered from the parent (a process inside a new user namespace has no
//! rights over namespaces the host owns), an existing user namespace entered by a helper, and
//! detached mounts handed to the child over a socket: the image layers as idmapped mounts, so
//! that the rootfs overlay shows host root's files as the container's root's without copying
//! or chowning a layer, and the bind sources, which the container's root may not reach.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::container::SpawnError;
use crate::init::ChildFailure;
use crate::spec::{IdMapping, Spec};

/// What the parent writes for a new user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mappings {
    uid_map: String,
    gid_map: String,
}

fn map_text(maps: &[IdMapping]) -> String {
    maps.iter().map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size)).collect()
}

/// The user namespace a spec asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UserNs {
    /// A new one, with these maps.
    New(Mappings),
    /// An existing one, by path (another container's, whose ipc or pid namespace is shared).
    Join,
}

/// The spec's user namespace, `None` when it asks for none.
pub(crate) fn user_ns(spec: &Spec) -> Result<Option<UserNs>, String> {
    let Some(linux) = spec.linux.as_ref() else { return Ok(None) };
    let Some(ns) = linux.namespaces.iter().find(|n| n.kind == "user") else { return Ok(None) };
    if ns.path.as_deref().is_some_and(|p| !p.is_empty()) {
        return Ok(Some(UserNs::Join));
    }
    if linux.uid_mappings.is_empty() || linux.gid_mappings.is_empty() {
        return Err("a new user namespace needs linux.uidMappings and linux.gidMappings".to_string());
    }
    Ok(Some(UserNs::New(Mappings { uid_map: map_text(&linux.uid_mappings), gid_map: map_text(&linux.gid_mappings) })))
}

fn os_err(what: impl Into<String>, source: std::io::Error) -> SpawnError {
    SpawnError::Os { what: what.into(), source }
}

const NS_NAMES: &[(libc::c_int, &str)] = &[
    (libc::CLONE_NEWNET, "net"),
    (libc::CLONE_NEWIPC, "ipc"),
    (libc::CLONE_NEWUTS, "uts"),
    (libc::CLONE_NEWCGROUP, "cgroup"),
];

/// The caller's own namespaces, to go back to after the clone.
pub(crate) struct Saved(Vec<(libc::c_int, OwnedFd)>);

/// Enters the namespaces the container joins (`joins`: flag, fd, path) in the calling process
/// itself, so that the child cloned next inherits them while it creates its user namespace:
/// from inside that namespace it could not join a namespace the host owns. The caller is the
/// single-threaded shim and returns to its own namespaces with [`Saved::restore`].
pub(crate) fn join_in_parent(joins: &[(libc::c_int, OwnedFd, String)]) -> Result<Saved, SpawnError> {
    let mut saved = Saved(Vec::new());
    for (flag, fd, path) in joins {
        if *flag == libc::CLONE_NEWPID || *flag == libc::CLONE_NEWUSER {
            continue;
        }
        let Some(&(_, name)) = NS_NAMES.iter().find(|(f, _)| f == flag) else {
            saved.restore();
            return Err(SpawnError::InvalidSpec(format!(
                "namespace {path} cannot be joined together with a new user namespace"
            )));
        };
        let own = match File::open(format!("/proc/thread-self/ns/{name}")) {
            Ok(f) => OwnedFd::from(f),
            Err(e) => {
                saved.restore();
                return Err(os_err(format!("open own {name} namespace"), e));
            }
        };
        // SAFETY: setns on an fd we own; the caller is single-threaded.
        if unsafe { libc::setns(fd.as_raw_fd(), *flag) } != 0 {
            let e = std::io::Error::last_os_error();
            saved.restore();
            return Err(os_err(format!("join {name} namespace {path}"), e));
        }
        saved.0.push((*flag, own));
    }
    Ok(saved)
}

impl Saved {
    pub(crate) fn restore(&mut self) {
        for (flag, fd) in self.0.drain(..).rev() {
            // SAFETY: setns back into a namespace this process was in a moment ago.
            if unsafe { libc::setns(fd.as_raw_fd(), flag) } != 0 {
                log::error!("return to own namespace {flag:#x}: {}", std::io::Error::last_os_error());
            }
        }
    }
}

/// With a user namespace and a network namespace joined by path (one the host owns, which the
/// container's root cannot configure), the `net.*` sysctls are written by the parent from
/// inside that network namespace: returns the spec for the child without them, and them.
pub(crate) fn split_net_sysctls(spec: &Spec, userns: bool) -> (std::borrow::Cow<'_, Spec>, Vec<(String, String)>) {
    let joined_net = spec.linux.as_ref().is_some_and(|l| {
        l.namespaces.iter().any(|n| n.kind == "network" && n.path.as_deref().is_some_and(|p| !p.is_empty()))
    });
    let has_net = spec.linux.as_ref().is_some_and(|l| l.sysctl.keys().any(|k| k.starts_with("net.")));
    if !userns || !joined_net || !has_net {
        return (std::borrow::Cow::Borrowed(spec), Vec::new());
    }
    let mut child = spec.clone();
    let mut net = Vec::new();
    if let Some(linux) = child.linux.as_mut() {
        let all = std::mem::take(&mut linux.sysctl);
        for (k, v) in all {
            if k.starts_with("net.") {
                net.push((k, v));
            } else {
                linux.sysctl.insert(k, v);
            }
        }
    }
    (std::borrow::Cow::Owned(child), net)
}

/// Writes sysctls through the caller's /proc (the network ones apply to its network namespace).
pub(crate) fn write_sysctls(sysctls: &[(String, String)]) -> Result<(), SpawnError> {
    for (key, value) in sysctls {
        if key.contains("..") || key.contains('/') {
            return Err(SpawnError::InvalidSpec(format!("invalid sysctl {key:?}")));
        }
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, value).map_err(|e| os_err(format!("sysctl {key}={value}"), e))?;
    }
    Ok(())
}

/// The lower dirs in overlay mount data (`lowerdir=a:b,upperdir=...`), top first.
pub(crate) fn lowerdirs(overlay: &str) -> Vec<&str> {
    overlay
        .split(',')
        .find_map(|o| o.strip_prefix("lowerdir="))
        .map(|l| l.split(':').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default()
}

/// The overlay data with the lower dirs replaced and `userxattr` added: in a user namespace
/// overlayfs cannot use `trusted.*` xattrs on the upper dir.
fn rewrite_overlay(overlay: &str, lowers: &[String]) -> String {
    let mut parts = vec![format!("lowerdir={}", lowers.join(":"))];
    parts.extend(overlay.split(',').filter(|o| !o.starts_with("lowerdir=") && !o.is_empty()).map(str::to_string));
    if !parts.iter().any(|p| p == "userxattr") {
        parts.push("userxattr".to_string());
    }
    parts.join(",")
}

/// In the parent, once the child exists: writes the uid and gid maps of its new user
/// namespace, sends it over `sock` one idmapped mount of each lower dir of its rootfs overlay,
/// then a detached mount of each bind source, and lets it go on with one byte on `sync`.
pub(crate) fn setup_child(
    pid: i32,
    userns: &UserNs,
    plan: &crate::init::Plan,
    sock: RawFd,
    sync: RawFd,
) -> Result<(), SpawnError> {
    let overlay = plan.overlay();
    // setgroups stays "allow": the writer is root in the parent namespace, which the kernel
    // accepts, and `--group-add` needs setgroups in the container.
    if let UserNs::New(maps) = userns {
        for (file, text) in [("uid_map", &maps.uid_map), ("gid_map", &maps.gid_map)] {
            let path = format!("/proc/{pid}/{file}");
            std::fs::write(&path, text).map_err(|e| os_err(format!("write {:?} to {path}", text.trim_end()), e))?;
        }
    }
    if let Some(overlay) = overlay {
        let userns_path = format!("/proc/{pid}/ns/user");
        let userns = File::open(&userns_path).map_err(|e| os_err(format!("open {userns_path}"), e))?;
        for dir in lowerdirs(overlay) {
            let fd = idmapped_mount(Path::new(dir), userns.as_raw_fd())?;
            crate::tty::send_fd(sock, fd.as_raw_fd())
                .map_err(|e| os_err(format!("send idmapped mount of {dir} to the container"), e))?;
        }
    }
    for (source, recursive) in plan.bind_sources() {
        let fd = detached_bind(source, recursive)?;
        crate::tty::send_fd(sock, fd.as_raw_fd())
            .map_err(|e| os_err(format!("send bind mount source {source} to the container"), e))?;
    }
    if let Some(flags) = plan.sysfs_flags() {
        let fd = sysfs_of(pid, flags)?;
        crate::tty::send_fd(sock, fd.as_raw_fd()).map_err(|e| os_err("send sysfs to the container", e))?;
    }
    // SAFETY: writing one byte from a valid buffer to an fd the caller owns.
    if unsafe { libc::write(sync, b"u".as_ptr().cast(), 1) } != 1 {
        return Err(os_err("signal the container process", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Clones the container's process inside the existing user namespace `userns`, so that the
/// namespaces it creates are owned by that one. The caller cannot enter it itself (it could
/// never come back), so a short-lived helper enters it and clones the process as the
/// caller's child (CLONE_PARENT): the caller is its parent as with a plain clone. A pid
/// namespace to join (`pidns`) is joined by the helper too: the pid its clone returns must be
/// one of the caller's namespace. Returns 0 in the container's process and its pid in the caller.
pub(crate) fn clone_in_userns(flags: libc::c_int, userns: RawFd, pidns: Option<RawFd>) -> Result<i64, SpawnError> {
    let (r, w) = crate::container::pipe_cloexec("helper")?;
    // SAFETY: a fork-like clone (no new stack, SIGCHLD) in the single-threaded shim.
    let helper =
        unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0usize, 0usize, 0usize, 0usize) };
    if helper < 0 {
        return Err(os_err("fork user namespace helper", std::io::Error::last_os_error()));
    }
    if helper == 0 {
        // SAFETY: setns and a fork-like clone in this single-threaded helper; the result goes
        // to the caller over the pipe and the helper leaves without running destructors.
        unsafe {
            let errno = || -(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL) as i64);
            let res = if pidns.is_some_and(|fd| libc::setns(fd, libc::CLONE_NEWPID) != 0)
                || libc::setns(userns, libc::CLONE_NEWUSER) != 0
            {
                errno()
            } else {
                let flags = (flags | libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong;
                let pid = libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize);
                if pid < 0 {
                    errno()
                } else {
                    pid
                }
            };
            if res == 0 {
                return Ok(0);
            }
            libc::write(w.as_raw_fd(), (&res as *const i64).cast(), 8);
            libc::_exit(0);
        }
    }
    drop(w);
    let mut buf = [0u8; 8];
    let got = std::io::Read::read_exact(&mut File::from(r), &mut buf);
    // SAFETY: reaping our own helper; its status is not needed.
    unsafe {
        let mut status = 0;
        while libc::waitpid(helper as libc::pid_t, &mut status, 0) < 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
        {}
    }
    got.map_err(|e| os_err("read from user namespace helper", e))?;
    let res = i64::from_ne_bytes(buf);
    if res < 0 {
        let e = std::io::Error::from_raw_os_error(-res as i32);
        return Err(os_err("clone container process in the joined user namespace", e));
    }
    Ok(res)
}

/// A detached copy of `dir`'s mount whose files, owned by host ids, appear owned by the ids
/// they map to in `userns` (host root's files as the container root's).
fn idmapped_mount(dir: &Path, userns: RawFd) -> Result<OwnedFd, SpawnError> {
    let dir_c = crate::container::cstring(&dir.to_string_lossy()).map_err(SpawnError::InvalidSpec)?;
    // SAFETY: open_tree on a NUL-terminated path; the result is a new fd we then own.
    let raw = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            dir_c.as_ptr(),
            (libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC) as libc::c_uint,
        )
    };
    if raw < 0 {
        return Err(os_err(format!("clone the mount of layer {}", dir.display()), std::io::Error::last_os_error()));
    }
    // SAFETY: open_tree returned a fresh fd.
    let fd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
    // SAFETY: mount_attr is plain data.
    let mut attr: libc::mount_attr = unsafe { std::mem::zeroed() };
    attr.attr_set = libc::MOUNT_ATTR_IDMAP;
    attr.userns_fd = userns as u64;
    // SAFETY: mount_setattr on our fd with an empty path and a valid mount_attr of the given size.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(SpawnError::Setup(format!(
            "idmapped mount of layer {} (needs a kernel and filesystem with idmapped mount support, Linux 5.12+ on ext4, xfs or btrfs): {e}",
            dir.display()
        )));
    }
    Ok(fd)
}

/// What the parent hands the child as detached mounts.
#[derive(Default)]
pub(crate) struct Handed {
    /// Idmapped lower dirs of the rootfs overlay, top first.
    pub layers: Vec<OwnedFd>,
    /// The sources of the bind mounts, in order.
    pub binds: Vec<OwnedFd>,
    /// A sysfs of the container's network namespace, when the spec mounts one.
    pub sysfs: Option<OwnedFd>,
}

/// In the child, first thing: waits until the parent has written the maps, becomes the
/// namespace's root, and takes the detached mounts: the idmapped layers (as many as the
/// overlay has lower dirs), then the bind sources.
pub(crate) fn child_enter(plan: &crate::init::Plan, sync: RawFd, sock: RawFd) -> Result<Handed, ChildFailure> {
    let mut byte = 0u8;
    // SAFETY: reading one byte into a valid buffer.
    if unsafe { libc::read(sync, (&mut byte as *mut u8).cast(), 1) } != 1 {
        // SAFETY: the parent failed or is gone; it reports its own error.
        unsafe { libc::_exit(1) };
    }
    become_root()?;
    let recv = |n: usize, what: &str| -> Result<Vec<OwnedFd>, ChildFailure> {
        let mut fds = Vec::with_capacity(n);
        while fds.len() < n {
            match crate::tty::recv_fd(sock) {
                Ok(Some(fd)) => fds.push(fd),
                Ok(None) => return Err(ChildFailure::other(format!("receive {what}"), libc::EPIPE)),
                Err(e) => return Err(ChildFailure::other(format!("receive {what}"), e.raw_os_error().unwrap_or(0))),
            }
        }
        Ok(fds)
    };
    let layers = recv(plan.overlay().map(|o| lowerdirs(o).len()).unwrap_or(0), "idmapped layers")?;
    let binds = recv(plan.bind_sources().len(), "bind mount sources")?;
    let sysfs = if plan.sysfs_flags().is_some() { recv(1, "sysfs")?.pop() } else { None };
    Ok(Handed { layers, binds, sysfs })
}

/// Attaches a detached mount the parent made at `dest` (a NUL-terminated path); the errno.
pub(crate) fn attach(fd: OwnedFd, dest: &std::ffi::CStr) -> Result<(), i32> {
    // SAFETY: move_mount of a detached mount fd we own onto a NUL-terminated path.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            dest.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH as libc::c_uint,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// A detached sysfs showing the network namespace of process `pid`. The container's root
/// cannot mount one for a network namespace the host owns (and a bind of the host's /sys
/// would show the host's interfaces), so the parent makes it from inside that namespace.
fn sysfs_of(pid: i32, flags: libc::c_ulong) -> Result<OwnedFd, SpawnError> {
    let own = File::open("/proc/thread-self/ns/net").map_err(|e| os_err("open own network namespace", e))?;
    let theirs_path = format!("/proc/{pid}/ns/net");
    let theirs = File::open(&theirs_path).map_err(|e| os_err(format!("open {theirs_path}"), e))?;
    // SAFETY: setns on an fd we own; the caller is single-threaded and goes back below.
    if unsafe { libc::setns(theirs.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(os_err(format!("join {theirs_path}"), std::io::Error::last_os_error()));
    }
    let made = new_sysfs(flags);
    // SAFETY: back into the namespace this process was in a moment ago.
    if unsafe { libc::setns(own.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(os_err("return to own network namespace", std::io::Error::last_os_error()));
    }
    made
}

fn new_sysfs(flags: libc::c_ulong) -> Result<OwnedFd, SpawnError> {
    let fail = |what: &str| os_err(format!("{what} for the container's sysfs"), std::io::Error::last_os_error());
    // SAFETY: fsopen with a NUL-terminated name; the result is a new fd we then own.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, c"sysfs".as_ptr(), libc::FSOPEN_CLOEXEC) };
    if fs < 0 {
        return Err(fail("fsopen"));
    }
    // SAFETY: fsopen returned a fresh fd.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as RawFd) };
    // SAFETY: fsconfig CMD_CREATE takes no key or value.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE as libc::c_uint,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if rc != 0 {
        return Err(fail("fsconfig"));
    }
    let mut attrs = 0u64;
    for (ms, attr) in [
        (libc::MS_RDONLY, libc::MOUNT_ATTR_RDONLY),
        (libc::MS_NOSUID, libc::MOUNT_ATTR_NOSUID),
        (libc::MS_NODEV, libc::MOUNT_ATTR_NODEV),
        (libc::MS_NOEXEC, libc::MOUNT_ATTR_NOEXEC),
    ] {
        if flags & ms != 0 {
            attrs |= attr;
        }
    }
    // SAFETY: fsmount on our context fd; the result is a new fd we then own.
    let mnt = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), libc::FSMOUNT_CLOEXEC, attrs as libc::c_uint) };
    if mnt < 0 {
        return Err(fail("fsmount"));
    }
    // SAFETY: fsmount returned a fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(mnt as RawFd) })
}

/// A detached copy of the mount at `source` (and the ones below it when `recursive`), for a
/// bind mount the child attaches without looking the host path up itself.
fn detached_bind(source: &str, recursive: bool) -> Result<OwnedFd, SpawnError> {
    let c = crate::container::cstring(source).map_err(SpawnError::InvalidSpec)?;
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: open_tree on a NUL-terminated path; the result is a new fd we then own.
    let raw = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if raw < 0 {
        return Err(os_err(format!("bind mount source {source}"), std::io::Error::last_os_error()));
    }
    // SAFETY: open_tree returned a fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(raw as RawFd) })
}

/// Takes the ids of the user namespace's root: until then the process keeps the host's root
/// ids, which the namespace does not map, and files it creates (a pty) would belong to nobody.
pub(crate) fn become_root() -> Result<(), ChildFailure> {
    // SAFETY: plain syscalls; the namespace's maps are written, so 0 is a valid id in it.
    unsafe {
        if libc::setresgid(0, 0, 0) != 0 {
            return Err(ChildFailure::last("become gid 0 in the user namespace"));
        }
        if libc::setresuid(0, 0, 0) != 0 {
            return Err(ChildFailure::last("become uid 0 in the user namespace"));
        }
    }
    Ok(())
}

/// In the child: mounts the rootfs overlay from idmapped layers. Overlayfs only takes lower
/// dirs attached in the mounter's namespace, so each layer is attached on a private tmpfs over
/// `rootfs` (gone with the old root after pivot_root), and the overlay goes on top of it.
pub(crate) fn mount_overlay(rootfs: &Path, overlay: &str, layers: Vec<OwnedFd>) -> Result<(), ChildFailure> {
    let rootfs_c = path_c(rootfs)?;
    mount(c"tmpfs", &rootfs_c, c"tmpfs", c"mode=700")
        .map_err(|e| ChildFailure::other(format!("mount layer staging tmpfs on {}", rootfs.display()), e))?;
    let mut lowers = Vec::with_capacity(layers.len());
    for (i, fd) in layers.into_iter().enumerate() {
        let dir = rootfs.join(i.to_string());
        std::fs::create_dir(&dir)
            .map_err(|e| ChildFailure::other(format!("mkdir {}", dir.display()), e.raw_os_error().unwrap_or(0)))?;
        attach(fd, &path_c(&dir)?).map_err(|e| ChildFailure::other(format!("attach idmapped layer {i}"), e))?;
        lowers.push(dir.to_string_lossy().into_owned());
    }
    let data = rewrite_overlay(overlay, &lowers);
    let data_c = std::ffi::CString::new(data).map_err(|_| ChildFailure::other("overlay options", libc::EINVAL))?;
    mount(c"overlay", &rootfs_c, c"overlay", &data_c)
        .map_err(|e| ChildFailure::other(format!("mount overlay on {}", rootfs.display()), e))
}

fn path_c(p: &Path) -> Result<std::ffi::CString, ChildFailure> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| ChildFailure::other(format!("path {}", p.display()), libc::EINVAL))
}

fn mount(
    source: &std::ffi::CStr,
    target: &std::ffi::CStr,
    fstype: &std::ffi::CStr,
    data: &std::ffi::CStr,
) -> Result<(), i32> {
    // SAFETY: every pointer is a NUL-terminated string valid for the call.
    let rc = unsafe { libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, data.as_ptr().cast()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowerdirs_of_overlay_data() {
        let table: &[(&str, &[&str])] = &[
            ("lowerdir=/a:/b,upperdir=/u,workdir=/w", &["/a", "/b"]),
            ("upperdir=/u,lowerdir=/only,workdir=/w", &["/only"]),
            ("upperdir=/u,workdir=/w", &[]),
            ("lowerdir=", &[]),
        ];
        for (data, want) in table {
            assert_eq!(lowerdirs(data), *want, "{data}");
        }
    }

    #[test]
    fn overlay_data_rewritten_for_userns() {
        let got = rewrite_overlay("lowerdir=/a:/b,upperdir=/u,workdir=/w", &["/r/0".to_string(), "/r/1".to_string()]);
        assert_eq!(got, "lowerdir=/r/0:/r/1,upperdir=/u,workdir=/w,userxattr");
        let again = rewrite_overlay(&got, &["/x".to_string()]);
        assert_eq!(again, "lowerdir=/x,upperdir=/u,workdir=/w,userxattr");
    }

    #[test]
    fn net_sysctls_go_to_the_parent_only_with_a_joined_netns() {
        let mut spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"network","path":"/run/netns/x"}],
                "sysctl":{"net.ipv4.ip_forward":"1","kernel.msgmax":"9000"}}}"#,
        )
        .unwrap();
        let (child, net) = split_net_sysctls(&spec, true);
        assert_eq!(net, vec![("net.ipv4.ip_forward".to_string(), "1".to_string())]);
        let kept: Vec<&String> = child.linux.as_ref().unwrap().sysctl.keys().collect();
        assert_eq!(kept, ["kernel.msgmax"]);
        assert!(split_net_sysctls(&spec, false).1.is_empty());
        spec.linux.as_mut().unwrap().namespaces[0].path = None;
        assert!(split_net_sysctls(&spec, true).1.is_empty());
    }

    #[test]
    fn mappings_from_spec() {
        let mut spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"user"}],
                "uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],
                "gidMappings":[{"containerID":0,"hostID":200000,"size":1000},{"containerID":1000,"hostID":5,"size":1}]}}"#,
        )
        .unwrap();
        let Some(UserNs::New(m)) = user_ns(&spec).unwrap() else { panic!("a new user namespace") };
        assert_eq!(m.uid_map, "0 100000 65536\n");
        assert_eq!(m.gid_map, "0 200000 1000\n1000 5 1\n");
        spec.linux.as_mut().unwrap().gid_mappings.clear();
        assert!(user_ns(&spec).is_err());
        spec.linux.as_mut().unwrap().namespaces[0].path = Some("/proc/1/ns/user".to_string());
        assert_eq!(user_ns(&spec).unwrap(), Some(UserNs::Join));
        spec.linux.as_mut().unwrap().namespaces.clear();
        assert_eq!(user_ns(&spec).unwrap(), None);
    }
}
