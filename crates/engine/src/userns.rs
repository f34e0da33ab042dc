//! `userns-remap`: containers whose root is an unprivileged host user. The daemon's setting
//! (`default`, `user`, `user:group`, `uid:gid`) is resolved once at start to that user's
//! ranges in /etc/subuid and /etc/subgid (for `default`, Docker's `dockremap` user and its
//! ranges are created when missing); each container not run with `--userns=host` then gets a
//! new user namespace with those maps, an upper dir owned by the remapped root, and the
//! runtime's idmapped image layers.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use wharf_runtime::spec::{self as oci, IdMapping, Spec};

use crate::containers::ContainerRecord;
use crate::{Engine, EngineError};

/// Docker's user for `userns-remap: default`.
pub const DEFAULT_REMAP_USER: &str = "dockremap";
/// The size of the ranges wharf adds for `dockremap`, as Docker does.
const RANGE_SIZE: u32 = 65536;
/// Where new ranges start at the lowest, as Docker's and shadow-utils' defaults.
const FIRST_SUBID: u32 = 100_000;

/// The resolved `userns-remap` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsernsRemap {
    pub user: String,
    pub group: String,
    pub uid_maps: Vec<IdMapping>,
    pub gid_maps: Vec<IdMapping>,
}

impl UsernsRemap {
    /// The host uid of the containers' root.
    pub fn root_uid(&self) -> u32 {
        host_of_root(&self.uid_maps)
    }

    /// The host gid of the containers' root.
    pub fn root_gid(&self) -> u32 {
        host_of_root(&self.gid_maps)
    }

    /// The host uid of container uid `id`, when the maps cover it (files written into a
    /// remapped container's upper dir or volume from the host must carry it).
    pub fn host_uid(&self, id: u32) -> Option<u32> {
        to_host(&self.uid_maps, id)
    }

    /// The host gid of container gid `id`, when the maps cover it.
    pub fn host_gid(&self, id: u32) -> Option<u32> {
        to_host(&self.gid_maps, id)
    }
}

fn host_of_root(maps: &[IdMapping]) -> u32 {
    maps.iter().find(|m| m.container_id == 0).map(|m| m.host_id).unwrap_or(0)
}

/// The files the setting is resolved against (a parameter so tests need no root).
#[derive(Debug, Clone)]
pub struct IdFiles {
    pub passwd: PathBuf,
    pub group: PathBuf,
    pub subuid: PathBuf,
    pub subgid: PathBuf,
}

impl Default for IdFiles {
    fn default() -> Self {
        IdFiles {
            passwd: "/etc/passwd".into(),
            group: "/etc/group".into(),
            subuid: "/etc/subuid".into(),
            subgid: "/etc/subgid".into(),
        }
    }
}

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::Invalid(msg.into())
}

fn read(path: &Path) -> Result<String, EngineError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(EngineError::io(format!("read {}", path.display()), e)),
    }
}

/// `name:x:id:...` entries: the id of `name`, or the name of the numeric `id`.
fn lookup(db: &str, key: &str) -> Option<(String, u32)> {
    let numeric = key.parse::<u32>().ok();
    db.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let id = f.get(2)?.parse::<u32>().ok()?;
        (f[0] == key || numeric == Some(id)).then(|| (f[0].to_string(), id))
    })
}

/// The `name:start:count` ranges of /etc/subuid (or subgid) for a user given by name or id.
fn ranges(db: &str, name: &str, id: u32) -> Vec<(u32, u32)> {
    db.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            if f.len() != 3 || (f[0] != name && f[0] != id.to_string()) {
                return None;
            }
            Some((f[1].parse().ok()?, f[2].parse().ok()?))
        })
        .filter(|&(_, count)| count > 0)
        .collect()
}

/// Refuses ranges that would give a container host root's id (a range from 0), run past the
/// last id (the host ids computed from them would wrap round to low ones, root's included) or
/// overlap each other (the kernel refuses such maps only when the container starts).
fn check_ranges(ranges: &[(u32, u32)], path: &Path) -> Result<(), EngineError> {
    let bad = |start: u32, count: u32, why: &str| {
        invalid(format!("userns-remap: range {start}:{count} in {}: {why}", path.display()))
    };
    for (i, &(start, count)) in ranges.iter().enumerate() {
        if start == 0 {
            return Err(bad(start, count, "it includes the host's root (id 0)"));
        }
        if u64::from(start) + u64::from(count) > u64::from(u32::MAX) {
            return Err(bad(start, count, "it runs past the largest id"));
        }
        let overlaps = ranges[..i].iter().any(|&(s, c)| start < s + c && s < start + count);
        if overlaps {
            return Err(bad(start, count, "it overlaps another range of the same user"));
        }
    }
    Ok(())
}

/// The ranges laid one after another from container id 0, as Docker maps them.
fn mappings(ranges: &[(u32, u32)]) -> Vec<IdMapping> {
    let mut next = 0u32;
    ranges
        .iter()
        .map(|&(start, count)| {
            let m = IdMapping { container_id: next, host_id: start, size: count };
            next = next.saturating_add(count);
            m
        })
        .collect()
}

/// The first `RANGE_SIZE` ids from `FIRST_SUBID` on that no entry of `db` uses.
fn free_range(db: &str) -> u32 {
    let mut used: Vec<(u64, u64)> = db
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            let start: u64 = f.get(1)?.parse().ok()?;
            let count: u64 = f.get(2)?.parse().ok()?;
            Some((start, start + count))
        })
        .collect();
    used.sort();
    let mut start = FIRST_SUBID as u64;
    for (s, e) in used {
        if s < start + RANGE_SIZE as u64 && e > start {
            start = e;
        }
    }
    start.min((u32::MAX - RANGE_SIZE) as u64) as u32
}

/// Splits `user[:group]`; the group defaults to the user's name, as Docker's.
fn split_setting(setting: &str) -> Result<(&str, Option<&str>), EngineError> {
    let (user, group) = match setting.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (setting, None),
    };
    if user.is_empty() || group.is_some_and(str::is_empty) {
        return Err(invalid(format!("invalid userns-remap {setting:?}: use default, user, user:group or uid:gid")));
    }
    Ok((user, group))
}

/// Resolves the daemon's `userns-remap` against the host's files; `default` creates the
/// `dockremap` user (with `useradd`) and its ranges when they are missing.
pub fn resolve_userns_remap(setting: &str) -> Result<UsernsRemap, EngineError> {
    resolve_with(setting, &IdFiles::default())
}

pub fn resolve_with(setting: &str, files: &IdFiles) -> Result<UsernsRemap, EngineError> {
    let (user_key, group_key) = if setting == "default" { (DEFAULT_REMAP_USER, None) } else { split_setting(setting)? };
    if setting == "default" && lookup(&read(&files.passwd)?, DEFAULT_REMAP_USER).is_none() {
        create_default_user(files)?;
    }
    let (user, uid) = lookup(&read(&files.passwd)?, user_key).ok_or_else(|| {
        invalid(format!("userns-remap: user {user_key:?} has no entry in {}", files.passwd.display()))
    })?;
    let group_key = group_key.unwrap_or(&user);
    let (group, gid) = lookup(&read(&files.group)?, group_key).ok_or_else(|| {
        invalid(format!("userns-remap: group {group_key:?} has no entry in {}", files.group.display()))
    })?;
    if setting == "default" {
        for path in [&files.subuid, &files.subgid] {
            let db = read(path)?;
            if ranges(&db, &user, uid).is_empty() {
                append_range(path, &db, &user)?;
            }
        }
    }
    let uid_ranges = ranges(&read(&files.subuid)?, &user, uid);
    if uid_ranges.is_empty() {
        return Err(invalid(format!(
            "userns-remap: no subuid ranges found for user {user:?} in {}",
            files.subuid.display()
        )));
    }
    check_ranges(&uid_ranges, &files.subuid)?;
    let gid_ranges = ranges(&read(&files.subgid)?, &group, gid);
    if gid_ranges.is_empty() {
        return Err(invalid(format!(
            "userns-remap: no subgid ranges found for group {group:?} in {}",
            files.subgid.display()
        )));
    }
    check_ranges(&gid_ranges, &files.subgid)?;
    Ok(UsernsRemap { user, group, uid_maps: mappings(&uid_ranges), gid_maps: mappings(&gid_ranges) })
}

fn create_default_user(files: &IdFiles) -> Result<(), EngineError> {
    let useradd =
        ["/usr/sbin/useradd", "/sbin/useradd", "/usr/bin/useradd"].into_iter().find(|p| Path::new(p).exists());
    let Some(useradd) = useradd.filter(|_| files.passwd == Path::new("/etc/passwd")) else {
        return Err(invalid(format!(
            "userns-remap: user {DEFAULT_REMAP_USER:?} does not exist; add it (useradd -r -s /bin/false {DEFAULT_REMAP_USER}) with ranges in /etc/subuid and /etc/subgid"
        )));
    };
    let out = std::process::Command::new(useradd)
        .args(["-r", "-U", "-s", "/bin/false", DEFAULT_REMAP_USER])
        .output()
        .map_err(|e| EngineError::io(format!("run {useradd}"), e))?;
    if !out.status.success() {
        return Err(EngineError::Internal(format!(
            "userns-remap: {useradd} {DEFAULT_REMAP_USER} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn append_range(path: &Path, db: &str, user: &str) -> Result<(), EngineError> {
    let start = free_range(db);
    let mut text = db.to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("{user}:{start}:{RANGE_SIZE}\n"));
    let tmp = path.with_extension("wharf-tmp");
    std::fs::write(&tmp, text).map_err(|e| EngineError::io(format!("write {}", tmp.display()), e))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| EngineError::io(format!("chmod {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| EngineError::io(format!("rename {}", path.display()), e))?;
    log::info!("userns-remap: added {user}:{start}:{RANGE_SIZE} to {}", path.display());
    Ok(())
}

/// The remapped root must reach the container's dirs under the data root: every directory
/// on the way needs search permission for others, and the snapshot root (0700, as its layers
/// hold setuid binaries no host user may reach) lets the remapped root's group search it,
/// as Docker's per-remap root (0710 root:<remapped gid>).
pub(crate) fn prepare_data_root(data_root: &Path, remap: &UsernsRemap) -> Result<(), EngineError> {
    let snapshots = data_root.join("snapshots");
    std::os::unix::fs::chown(&snapshots, Some(0), Some(remap.root_gid()))
        .map_err(|e| EngineError::io(format!("chown {}", snapshots.display()), e))?;
    std::fs::set_permissions(&snapshots, std::fs::Permissions::from_mode(0o710))
        .map_err(|e| EngineError::io(format!("chmod {}", snapshots.display()), e))?;
    let mut dir = Some(data_root);
    while let Some(d) = dir {
        let meta = std::fs::metadata(d).map_err(|e| EngineError::io(format!("stat {}", d.display()), e))?;
        if meta.mode() & 0o001 == 0 {
            return Err(invalid(format!(
                "userns-remap: {} must be searchable by others (chmod o+x) so that remapped containers can reach their files under the data root",
                d.display()
            )));
        }
        dir = d.parent();
    }
    Ok(())
}

/// The `HostConfig.UsernsMode` values Docker accepts.
pub(crate) fn validate_userns_mode(mode: &str) -> Result<(), EngineError> {
    match mode {
        "" | "host" => Ok(()),
        other => Err(invalid(format!("invalid USER mode: {other}"))),
    }
}

impl Engine {
    /// The daemon's remapping for this container: none with `--userns=host`.
    pub(crate) fn remap_for(&self, userns_mode: &str) -> Option<&UsernsRemap> {
        self.inner.config.userns_remap.as_ref().filter(|_| userns_mode != "host")
    }

    /// Docker's create-time refusals of options a remapped container cannot have.
    pub(crate) fn check_userns_conflicts(
        &self,
        userns_mode: &str,
        privileged: bool,
        network_mode: &str,
        pid_mode: &str,
    ) -> Result<(), EngineError> {
        validate_userns_mode(userns_mode)?;
        if self.remap_for(userns_mode).is_none() {
            return Ok(());
        }
        if privileged {
            return Err(invalid("privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode"));
        }
        if network_mode == "host" {
            return Err(invalid("cannot share the host's network namespace when user namespaces are enabled"));
        }
        if pid_mode == "host" {
            return Err(invalid("cannot share the host PID namespace when user namespaces are enabled"));
        }
        Ok(())
    }

    /// Puts the user namespace and its maps into a remapped container's spec and gives the
    /// container's writable dirs and files to its root.
    pub(crate) fn apply_userns(&self, rec: &ContainerRecord, spec: &mut Spec) -> Result<(), EngineError> {
        let Some(remap) = self.remap_for(&rec.host_config.security.userns_mode) else {
            return Ok(());
        };
        let (uid, gid) = (remap.root_uid(), remap.root_gid());
        let dirs = self.inner.snapshots.container_dirs(&rec.id);
        let container_dir = self.container_dir(&rec.id);
        let mut owned = vec![dirs.upper.clone(), dirs.work.clone()];
        owned.extend(["hostname", "hosts", "resolv.conf"].iter().map(|f| container_dir.join(f)));
        for p in &owned {
            chown_if_needed(p, uid, gid)?;
        }
        let linux = spec.linux.get_or_insert_with(Default::default);
        // Sharing another container's ipc or pid namespace means sharing its user namespace
        // too, as Docker does: only that one's root has rights over them.
        let shared_with = linux.namespaces.iter().filter(|n| n.kind == "ipc" || n.kind == "pid").find_map(|n| {
            let pid = n.path.as_deref()?.strip_prefix("/proc/")?.split('/').next()?;
            pid.parse::<u32>().ok()
        });
        let user_path = match shared_with {
            Some(pid) => {
                let theirs = format!("/proc/{pid}/ns/user");
                let inode = |p: &str| std::fs::metadata(p).map(|m| m.ino()).ok();
                if inode(&theirs).is_some() && inode(&theirs) == inode("/proc/self/ns/user") {
                    // Theirs is the host's (`--userns=host`): so is this container's.
                    return Ok(());
                }
                Some(theirs)
            }
            None => None,
        };
        linux.namespaces.retain(|n| n.kind != "user");
        linux.namespaces.push(oci::Namespace { kind: "user".to_string(), path: user_path });
        linux.uid_mappings = remap.uid_maps.clone();
        linux.gid_mappings = remap.gid_maps.clone();
        // A device node cannot be made in a user namespace: the runtime binds the host's, found
        // by the container path, so a device given another name is bound here by its host path.
        for d in &rec.host_config.security.devices {
            if d.path_in_container.is_empty() || d.path_in_container == d.path_on_host {
                continue;
            }
            linux.devices.retain(|dev| dev.path != d.path_in_container);
            spec.mounts.push(oci::Mount {
                destination: d.path_in_container.clone(),
                kind: Some("bind".to_string()),
                source: Some(d.path_on_host.clone()),
                options: vec!["bind".to_string()],
            });
        }
        // mqueue can only be mounted by the owner of the ipc namespace: with the host's, the
        // container gets no /dev/mqueue (the host's is not the container's to show).
        if rec.host_config.security.ipc_mode == "host" {
            spec.mounts.retain(|m| m.destination != "/dev/mqueue");
        }
        Ok(())
    }

    /// A volume just filled from the image (files of host ids): its files go to the ids they
    /// have in the containers' namespace, as Docker's copy under remapping does.
    pub(crate) fn shift_volume_owners(&self, dir: &Path) -> Result<(), EngineError> {
        let Some(remap) = self.inner.config.userns_remap.as_ref() else { return Ok(()) };
        shift_tree(dir, remap)
            .map_err(|e| EngineError::io(format!("chown volume {} to the remapped ids", dir.display()), e))
    }

    /// A new named volume's data dir, given to the remapped root so containers can write it.
    pub(crate) fn chown_new_volume(&self, data: &Path) -> Result<(), EngineError> {
        match self.inner.config.userns_remap.as_ref() {
            Some(remap) => chown_if_needed(data, remap.root_uid(), remap.root_gid()),
            None => Ok(()),
        }
    }
}

/// The host id of container id `id`, when the maps cover it.
fn to_host(maps: &[IdMapping], id: u32) -> Option<u32> {
    maps.iter()
        .find(|m| id >= m.container_id && id - m.container_id < m.size)
        .map(|m| m.host_id + (id - m.container_id))
}

/// Chowns `dir` and everything under it (never following links) from image ids to the ids
/// they map to; ids already in the remapped ranges are left alone.
pub(crate) fn shift_tree(dir: &Path, remap: &UsernsRemap) -> std::io::Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p)?;
        if meta.is_dir() {
            for e in std::fs::read_dir(&p)? {
                stack.push(e?.path());
            }
        }
        let in_range = |maps: &[IdMapping], id: u32| maps.iter().any(|m| id >= m.host_id && id - m.host_id < m.size);
        if in_range(&remap.uid_maps, meta.uid()) && in_range(&remap.gid_maps, meta.gid()) {
            continue;
        }
        let uid = remap.host_uid(meta.uid()).unwrap_or(remap.root_uid());
        let gid = remap.host_gid(meta.gid()).unwrap_or(remap.root_gid());
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid))?;
        if !meta.file_type().is_symlink() {
            // chown clears setuid/setgid bits; the image's mode stays as it was.
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        }
    }
    Ok(())
}

/// Host ids of a remapped container's files back to the ids they have in the container.
#[derive(Debug, Clone)]
pub(crate) struct Unshift {
    uids: Vec<IdMapping>,
    gids: Vec<IdMapping>,
}

impl Unshift {
    fn id(maps: &[IdMapping], host: u64) -> u64 {
        maps.iter()
            .find(|m| host >= m.host_id as u64 && host - (m.host_id as u64) < m.size as u64)
            .map(|m| host - m.host_id as u64 + m.container_id as u64)
            .unwrap_or(host)
    }
}

impl Engine {
    /// How to write a container's files into a tar (commit, export): `None` unless remapped.
    pub(crate) fn unshift_for(&self, rec: &ContainerRecord) -> Option<Unshift> {
        self.remap_for(&rec.host_config.security.userns_mode)
            .map(|r| Unshift { uids: r.uid_maps.clone(), gids: r.gid_maps.clone() })
    }
}

/// A tar stream writer that rewrites each header's uid and gid from host ids to container
/// ids (the upper dir of a remapped container holds files of the remapped range, which an
/// image must record as the container saw them). Without maps it passes bytes through.
pub(crate) struct IdShift<W> {
    inner: W,
    maps: Option<Unshift>,
    header: Vec<u8>,
    /// Bytes of entry data (with padding) still to pass before the next header.
    data_left: u64,
}

const BLOCK: usize = 512;

impl<W: std::io::Write> IdShift<W> {
    pub(crate) fn new(inner: W, maps: Option<Unshift>) -> IdShift<W> {
        IdShift { inner, maps, header: Vec::with_capacity(BLOCK), data_left: 0 }
    }

    #[cfg(test)]
    pub(crate) fn into_inner(self) -> W {
        self.inner
    }

    /// Rewrites the ids of the header in `self.header` and returns its entry's data size.
    fn fix_header(&mut self, maps: &Unshift) -> u64 {
        let h = &mut self.header;
        if h.iter().all(|&b| b == 0) {
            return 0;
        }
        let size = tar_number(&h[124..136]);
        for (range, table) in [(108..116, &maps.uids), (116..124, &maps.gids)] {
            let host = tar_number(&h[range.clone()]);
            let id = Unshift::id(table, host);
            if id != host {
                put_tar_number(&mut h[range], id);
            }
        }
        h[148..156].fill(b' ');
        let sum: u64 = h.iter().map(|&b| b as u64).sum();
        let field = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(field.as_bytes());
        // Links, directories and device nodes carry no data whatever their size field says.
        match h[156] {
            b'1'..=b'6' => 0,
            _ => size,
        }
    }
}

/// A tar numeric field: octal text, or GNU base-256 when the top bit of the first byte is set.
fn tar_number(field: &[u8]) -> u64 {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        return field
            .iter()
            .enumerate()
            .fold(0u64, |acc, (i, &b)| (acc << 8) | (if i == 0 { b & 0x7f } else { b }) as u64);
    }
    let text: String = field.iter().take_while(|&&b| b != 0 && b != b' ').map(|&b| b as char).collect();
    u64::from_str_radix(text.trim(), 8).unwrap_or(0)
}

fn put_tar_number(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    if text.len() <= digits {
        field[..digits].copy_from_slice(text.as_bytes());
        field[digits] = 0;
    } else {
        field.fill(0);
        let bytes = value.to_be_bytes();
        let n = field.len().min(8);
        let start = field.len() - n;
        field[start..].copy_from_slice(&bytes[8 - n..]);
        field[0] |= 0x80;
    }
}

impl<W: std::io::Write> std::io::Write for IdShift<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let Some(maps) = self.maps.clone() else {
            return self.inner.write(data);
        };
        let mut rest = data;
        while !rest.is_empty() {
            if self.data_left > 0 {
                let n = rest.len().min(self.data_left.min(usize::MAX as u64) as usize);
                self.inner.write_all(&rest[..n])?;
                self.data_left -= n as u64;
                rest = &rest[n..];
                continue;
            }
            let n = (BLOCK - self.header.len()).min(rest.len());
            self.header.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if self.header.len() == BLOCK {
                let size = self.fix_header(&maps);
                self.inner.write_all(&self.header)?;
                self.header.clear();
                self.data_left = size.div_ceil(BLOCK as u64) * BLOCK as u64;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn chown_if_needed(path: &Path, uid: u32, gid: u32) -> Result<(), EngineError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(EngineError::io(format!("stat {}", path.display()), e)),
    };
    if meta.uid() == uid && meta.gid() == gid {
        return Ok(());
    }
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .map_err(|e| EngineError::io(format!("chown {} to {uid}:{gid}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nalice:x:1000:\nstaff:x:50:\n";

    fn files(dir: &Path, subuid: &str, subgid: &str) -> IdFiles {
        std::fs::create_dir_all(dir).unwrap();
        let f = IdFiles {
            passwd: dir.join("passwd"),
            group: dir.join("group"),
            subuid: dir.join("subuid"),
            subgid: dir.join("subgid"),
        };
        std::fs::write(&f.passwd, PASSWD).unwrap();
        std::fs::write(&f.group, GROUP).unwrap();
        std::fs::write(&f.subuid, subuid).unwrap();
        std::fs::write(&f.subgid, subgid).unwrap();
        f
    }

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("wharf-userns-{name}-{}", std::process::id()))
    }

    #[test]
    fn settings_resolve_to_ranges() {
        let dir = tmp("resolve");
        let f = files(&dir, "alice:100000:65536\nbob:200000:10\n1000:300000:5\n", "staff:400000:65536\n");
        type Want<'a> = Result<(&'a str, &'a str, u32, u32), &'a str>;
        let table: &[(&str, Want)] = &[
            ("alice:staff", Ok(("alice", "staff", 100000, 400000))),
            ("1000:50", Ok(("alice", "staff", 100000, 400000))),
            ("alice", Err("no subgid ranges found for group \"alice\"")),
            ("nobody", Err("user \"nobody\" has no entry")),
            ("alice:wheel", Err("group \"wheel\" has no entry")),
            ("root:staff", Err("no subuid ranges found for user \"root\"")),
            (":staff", Err("invalid userns-remap")),
        ];
        for (setting, want) in table {
            match (resolve_with(setting, &f), want) {
                (Ok(r), Ok((user, group, uid, gid))) => {
                    assert_eq!((r.user.as_str(), r.group.as_str()), (*user, *group), "{setting}");
                    assert_eq!((r.root_uid(), r.root_gid()), (*uid, *gid), "{setting}");
                }
                (Err(e), Err(msg)) => assert!(e.to_string().contains(msg), "{setting}: {e}"),
                (got, _) => panic!("{setting}: {got:?}"),
            }
        }
        // Ranges that would reach host root or wrap round, or overlap, are refused.
        for (subuid, msg) in [
            ("alice:0:65536\n", "includes the host's root"),
            ("alice:4294960000:65536\n", "runs past the largest id"),
            ("alice:100000:65536\nalice:150000:10\n", "overlaps another range"),
        ] {
            let f = files(&dir, subuid, "staff:400000:65536\n");
            let e = resolve_with("alice:staff", &f).unwrap_err();
            assert!(e.to_string().contains(msg), "{subuid}: {e}");
        }
        let f = files(&dir, "alice:100000:65536\nbob:200000:10\n1000:300000:5\n", "staff:400000:65536\n");
        // Two ranges of one user are laid one after the other.
        let r = resolve_with("1000:staff", &f).unwrap();
        assert_eq!(
            r.uid_maps,
            vec![
                IdMapping { container_id: 0, host_id: 100000, size: 65536 },
                IdMapping { container_id: 65536, host_id: 300000, size: 5 },
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn free_range_skips_used_ids() {
        assert_eq!(free_range(""), 100000);
        assert_eq!(free_range("a:100000:65536\n"), 165536);
        assert_eq!(free_range("a:165536:65536\nb:100000:65536\n"), 231072);
        assert_eq!(free_range("a:300000:65536\n"), 100000);
        assert_eq!(free_range("a:150000:10\n"), 150010);
    }

    #[test]
    fn default_adds_ranges_for_an_existing_dockremap() {
        let dir = tmp("default");
        let f = files(&dir, "alice:100000:65536\n", "");
        std::fs::write(&f.passwd, format!("{PASSWD}dockremap:x:999:998::/:/bin/false\n")).unwrap();
        std::fs::write(&f.group, format!("{GROUP}dockremap:x:998:\n")).unwrap();
        let r = resolve_with("default", &f).unwrap();
        assert_eq!((r.root_uid(), r.root_gid()), (165536, 100000));
        assert_eq!(std::fs::read_to_string(&f.subuid).unwrap(), "alice:100000:65536\ndockremap:165536:65536\n");
        // A second start finds the ranges and adds nothing.
        resolve_with("default", &f).unwrap();
        assert_eq!(std::fs::read_to_string(&f.subgid).unwrap(), "dockremap:100000:65536\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn container_ids_to_host_ids() {
        let maps = [
            IdMapping { container_id: 0, host_id: 100000, size: 1000 },
            IdMapping { container_id: 1000, host_id: 500000, size: 10 },
        ];
        let table = [(0, Some(100000)), (999, Some(100999)), (1000, Some(500000)), (1009, Some(500009)), (1010, None)];
        for (id, want) in table {
            assert_eq!(to_host(&maps, id), want, "{id}");
        }
    }

    #[test]
    fn tar_ids_are_shifted_back() {
        use std::io::Write;
        let unshift = Unshift {
            uids: vec![IdMapping { container_id: 0, host_id: 73_400_000, size: 65536 }],
            gids: vec![IdMapping { container_id: 0, host_id: 500, size: 10 }],
        };
        let mut builder = tar::Builder::new(IdShift::new(Vec::new(), Some(unshift)));
        for (name, uid, gid, body) in
            [("a", 73_400_000u64, 503u64, &b"hello"[..]), ("b", 73_401_000, 9, &[7u8; 700][..]), ("c", 5, 1000, b"")]
        {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_uid(uid);
            h.set_gid(gid);
            h.set_mode(0o644);
            builder.append_data(&mut h, name, body).unwrap();
        }
        let mut shift = builder.into_inner().unwrap();
        shift.flush().unwrap();
        let bytes = shift.into_inner();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut got = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut body).unwrap();
            got.push((e.header().uid().unwrap(), e.header().gid().unwrap(), body.len()));
        }
        assert_eq!(got, vec![(0, 3, 5), (1000, 9, 700), (5, 1000, 0)]);
    }

    #[test]
    fn userns_modes() {
        assert!(validate_userns_mode("").is_ok());
        assert!(validate_userns_mode("host").is_ok());
        assert_eq!(validate_userns_mode("private").unwrap_err().to_string(), "invalid USER mode: private");
    }
}
