//! Volumes and a container's mounts: the `local` volume driver (`<data-root>/volumes/<name>/_data`),
//! the parsing of `-v`/`--mount`/`--tmpfs`/`--volumes-from` into mount points at create time,
//! the copy of the image's content into a fresh volume, and the OCI mounts at start.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use wharf_confined::overlay::is_opaque;
use wharf_metadata::Table;
use wharf_runtime::spec as oci;

use crate::formats::StoredForm;
use crate::{ids, ContainerRecord, Engine, EngineError};

/// The stored volume record: `VolumeRecord` as serde writes it. The API builds its own JSON
/// from the fields (`volume_json`), so this form is the stored one alone, pinned by
/// `volume-record-1.json`; see `formats` for what a change of it takes.
pub(crate) const VOLUMES: StoredForm = StoredForm { table: Table::Volumes, name: "volumes", current: 1, steps: &[] };

/// A volume of the local driver.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub name: String,
    pub driver: String,
    pub mountpoint: String,
    pub created_at: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Created for an image `VOLUME` or a `-v /path` without a name: `rm -v` and prune remove it.
    #[serde(default)]
    pub anonymous: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    #[default]
    Volume,
    Bind,
    Tmpfs,
}

impl MountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MountKind::Volume => "volume",
            MountKind::Bind => "bind",
            MountKind::Tmpfs => "tmpfs",
        }
    }
}

/// One `--mount` (the API's `HostConfig.Mounts` entry), typed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MountRequest {
    pub kind: MountKind,
    /// Volume name (empty: anonymous), host path for binds, unused for tmpfs.
    pub source: String,
    pub target: String,
    pub read_only: bool,
    pub no_copy: bool,
    pub propagation: String,
    pub tmpfs_size: Option<i64>,
    pub tmpfs_mode: Option<u32>,
}

/// A mount as the container has it, resolved at create: Docker's `MountPoint`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPoint {
    pub kind: MountKind,
    /// The volume's name (volumes only).
    pub name: String,
    /// The host path (binds and volumes).
    pub source: String,
    pub destination: String,
    pub rw: bool,
    /// The mode as given (`ro`, `z`, ...), reported as Docker does.
    pub mode: String,
    pub propagation: String,
    /// Mount data for tmpfs (`size=...,mode=...`).
    pub data: String,
}

/// `-v` as Docker parses it on Linux: `[source:]destination[:options]`.
fn parse_bind(spec: &str) -> Result<MountRequest, EngineError> {
    let bad = |why: &str| EngineError::Invalid(format!("invalid volume specification: '{spec}': {why}"));
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, opts) = match parts.as_slice() {
        [t] => ("", *t, ""),
        [a, b] if b.starts_with('/') => (*a, *b, ""),
        [t, o] => ("", *t, *o),
        [s, t, o] => (*s, *t, *o),
        _ => return Err(bad("too many colons")),
    };
    if target.is_empty() {
        return Err(bad("empty destination"));
    }
    if !target.starts_with('/') {
        return Err(bad(&format!("invalid mount config: mount path must be absolute: {target}")));
    }
    if target == "/" {
        return Err(bad("invalid mount config: destination can't be '/'"));
    }
    let mut req = MountRequest { target: target.to_string(), ..Default::default() };
    req.kind = if source.starts_with('/') {
        MountKind::Bind
    } else {
        if source == "." || source.starts_with("./") || source.contains('/') {
            return Err(bad(&format!(
                "{source} includes invalid characters for a local volume name, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed. If you intended to pass a host directory, use absolute path"
            )));
        }
        MountKind::Volume
    };
    req.source = source.to_string();
    let mut rw_seen = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" | "rw" => {
                if rw_seen {
                    return Err(bad("conflicting ro/rw"));
                }
                rw_seen = true;
                req.read_only = o == "ro";
            }
            "nocopy" => req.no_copy = true,
            // SELinux relabelling: nothing to do without SELinux.
            "z" | "Z" => {}
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => req.propagation = o.to_string(),
            "consistent" | "cached" | "delegated" => {}
            _ => return Err(bad(&format!("invalid mode: {o}"))),
        }
    }
    Ok(req)
}

/// `--tmpfs /path:size=64m,mode=1777` as the API passes it (path → options).
fn tmpfs_data(opts: &str) -> Result<(String, bool), EngineError> {
    let mut data = Vec::new();
    let mut ro = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => ro = true,
            "rw" => ro = false,
            "noexec" | "exec" | "nosuid" | "suid" | "nodev" | "dev" => data.push(o.to_string()),
            _ if o.starts_with("size=")
                || o.starts_with("mode=")
                || o.starts_with("uid=")
                || o.starts_with("gid=")
                || o.starts_with("nr_inodes=") =>
            {
                data.push(o.to_string())
            }
            _ => return Err(EngineError::Invalid(format!("invalid tmpfs option {o:?}"))),
        }
    }
    Ok((data.join(","), ro))
}

fn valid_volume_name(name: &str) -> bool {
    name.len() >= 2 && ids::valid_name(name)
}

fn now() -> String {
    wharf_types::time::rfc3339_secs(SystemTime::now())
}

impl Engine {
    fn volumes_dir(&self) -> PathBuf {
        self.inner.config.data_root.join("volumes")
    }

    /// Creates a volume of the local driver; an existing one of the same name is returned as is,
    /// as Docker does.
    pub fn create_volume(
        &self,
        name: Option<&str>,
        driver: &str,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<VolumeRecord, EngineError> {
        self.create_volume_inner(name, driver, labels, options, false)
    }

    fn create_volume_inner(
        &self,
        name: Option<&str>,
        driver: &str,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<VolumeRecord, EngineError> {
        if !driver.is_empty() && driver != "local" {
            return Err(EngineError::NotFound(format!(
                "volume driver {driver:?} not found: only \"local\" is available"
            )));
        }
        if let Some(k) = options.keys().next() {
            return Err(EngineError::Invalid(format!("local volume option {k:?} is not supported")));
        }
        let anonymous = anonymous || name.is_none_or(str::is_empty);
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                if !valid_volume_name(n) {
                    return Err(EngineError::Invalid(format!(
                        "create {n}: \"{n}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
                    )));
                }
                n.to_string()
            }
            None => ids::random_id(),
        };
        if let Some(v) = self.inner.db.get::<VolumeRecord>(Table::Volumes, &name)? {
            return Ok(v);
        }
        let data = self.volumes_dir().join(&name).join("_data");
        std::fs::create_dir_all(&data).map_err(|e| EngineError::io(format!("create volume {name}"), e))?;
        self.chown_new_volume(&data)?;
        let rec = VolumeRecord {
            name: name.clone(),
            driver: "local".to_string(),
            mountpoint: data.display().to_string(),
            created_at: now(),
            labels,
            options,
            anonymous,
        };
        let created = self.write_db(|tx| {
            // Two creates of one name at once: the first one's record wins.
            if let Some(v) = tx.get::<VolumeRecord>(Table::Volumes, &name)? {
                return Ok::<_, EngineError>((v, false));
            }
            tx.put(Table::Volumes, &name, &rec)?;
            Ok((rec.clone(), true))
        })?;
        if created.1 {
            let mut attrs = BTreeMap::new();
            attrs.insert("driver".to_string(), "local".to_string());
            self.publish_event("volume", "create", &name, attrs);
        }
        Ok(created.0)
    }

    pub fn find_volume(&self, name: &str) -> Result<VolumeRecord, EngineError> {
        self.inner
            .db
            .get::<VolumeRecord>(Table::Volumes, name)?
            .ok_or_else(|| EngineError::NotFound(format!("get {name}: no such volume")))
    }

    /// The containers (ids) whose mounts use volume `name`.
    fn volume_users(&self, name: &str) -> Result<Vec<String>, EngineError> {
        Ok(self
            .all_containers()
            .iter()
            .filter(|c| c.mounts.iter().any(|m| m.kind == MountKind::Volume && m.name == name))
            .map(|c| c.id.clone())
            .collect())
    }

    /// Volumes, filtered by `name`, `label`, `driver`, `dangling`.
    pub fn list_volumes(&self, filters: &BTreeMap<String, Vec<String>>) -> Result<Vec<VolumeRecord>, EngineError> {
        let all = self.inner.db.list::<VolumeRecord>(Table::Volumes)?;
        let used: std::collections::BTreeSet<String> = self
            .all_containers()
            .iter()
            .flat_map(|c| c.mounts.iter().filter(|m| m.kind == MountKind::Volume).map(|m| m.name.clone()))
            .collect();
        let mut out = Vec::new();
        for (_, v) in all {
            let mut keep = true;
            for (key, values) in filters.iter().filter(|(_, v)| !v.is_empty()) {
                keep &= match key.as_str() {
                    "name" => values.iter().any(|x| v.name.contains(x.as_str())),
                    "driver" => values.contains(&v.driver),
                    "label" => values.iter().any(|x| match x.split_once('=') {
                        Some((k, val)) => v.labels.get(k).is_some_and(|l| l == val),
                        None => v.labels.contains_key(x.as_str()),
                    }),
                    "dangling" => values.iter().any(|x| match x.as_str() {
                        "true" | "1" => !used.contains(&v.name),
                        "false" | "0" => used.contains(&v.name),
                        _ => false,
                    }),
                    "all" => true,
                    other => return Err(EngineError::Invalid(format!("Invalid filter '{other}'"))),
                };
            }
            if keep {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Removes a volume; in use by a container it is refused (409) even with `force`, as Docker does.
    pub fn remove_volume(&self, name: &str, force: bool) -> Result<(), EngineError> {
        let v = match self.find_volume(name) {
            Ok(v) => v,
            Err(e) if force && matches!(e, EngineError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let users = self.volume_users(&v.name)?;
        if !users.is_empty() {
            return Err(EngineError::Conflict(format!("remove {}: volume is in use - [{}]", v.name, users.join(", "))));
        }
        self.write_db(|tx| tx.delete(Table::Volumes, &v.name))?;
        let dir = self.volumes_dir().join(&v.name);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(EngineError::io(format!("remove volume directory {}", dir.display()), e));
            }
        }
        let mut attrs = BTreeMap::new();
        attrs.insert("driver".to_string(), v.driver.clone());
        self.publish_event("volume", "destroy", &v.name, attrs);
        Ok(())
    }

    /// Removes unused volumes: anonymous ones only, unless `all=true` is among the filters (as
    /// Docker since API 1.42). Returns the names removed and the bytes freed.
    pub fn prune_volumes(&self, filters: &BTreeMap<String, Vec<String>>) -> Result<(Vec<String>, u64), EngineError> {
        let all = filters.get("all").is_some_and(|v| v.iter().any(|x| x == "true" || x == "1"));
        let mut f = filters.clone();
        f.insert("dangling".to_string(), vec!["true".to_string()]);
        let mut removed = Vec::new();
        let mut bytes = 0;
        for v in self.list_volumes(&f)? {
            if !all && !v.anonymous {
                continue;
            }
            let size = dir_size(Path::new(&v.mountpoint));
            match self.remove_volume(&v.name, false) {
                Ok(()) => {
                    removed.push(v.name);
                    bytes += size;
                }
                Err(EngineError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((removed, bytes))
    }

    /// Removes the anonymous volumes of a removed container (`rm -v`, `--rm`).
    pub fn remove_anonymous_volumes(&self, mounts: &[MountPoint]) {
        for m in mounts.iter().filter(|m| m.kind == MountKind::Volume) {
            match self.find_volume(&m.name) {
                Ok(v) if v.anonymous => {
                    if let Err(e) = self.remove_volume(&v.name, false) {
                        log::debug!("remove anonymous volume {}: {e}", v.name);
                    }
                }
                _ => {}
            }
        }
    }

    /// Resolves a create request's binds, mounts, tmpfs, `--volumes-from` and the image's
    /// `VOLUME`s into mount points, creating the volumes that do not exist yet and filling
    /// fresh ones from the image.
    pub(crate) fn resolve_mounts(
        &self,
        hc: &crate::HostConfig,
        image_volumes: &[String],
        chain_ids: &[wharf_types::Digest],
    ) -> Result<Vec<MountPoint>, EngineError> {
        // Each request with its mode, and the driver its volume gets when it creates one.
        let mut reqs: Vec<(MountRequest, String, &str)> = Vec::new();
        for b in &hc.binds {
            let r = parse_bind(b)?;
            let parts: Vec<&str> = b.split(':').collect();
            let mode = if parts.len() > 1 && !parts[parts.len() - 1].starts_with('/') {
                parts[parts.len() - 1].to_string()
            } else {
                String::new()
            };
            reqs.push((r, mode, hc.volume_driver.as_str()));
        }
        for m in &hc.mounts {
            if !m.target.starts_with('/') {
                return Err(EngineError::Invalid(format!(
                    "invalid mount config for type \"{}\": invalid mount path: '{}' mount path must be absolute",
                    m.kind.as_str(),
                    m.target
                )));
            }
            match m.kind {
                MountKind::Bind if m.source.is_empty() => {
                    return Err(EngineError::Invalid(
                        "invalid mount config for type \"bind\": field Source must not be empty".to_string(),
                    ))
                }
                MountKind::Tmpfs if !m.source.is_empty() => {
                    return Err(EngineError::Invalid(
                        "invalid mount config for type \"tmpfs\": field Source must not be specified".to_string(),
                    ))
                }
                _ => {}
            }
            reqs.push((m.clone(), String::new(), "local"));
        }
        let mut points: Vec<MountPoint> = Vec::new();
        let push = |p: MountPoint, points: &mut Vec<MountPoint>| -> Result<(), EngineError> {
            if points.iter().any(|x| x.destination == p.destination) {
                return Err(EngineError::Invalid(format!("Duplicate mount point: {}", p.destination)));
            }
            points.push(p);
            Ok(())
        };
        for (path, opts) in &hc.tmpfs {
            let (data, ro) = tmpfs_data(opts)?;
            let p =
                MountPoint { kind: MountKind::Tmpfs, destination: path.clone(), rw: !ro, data, ..Default::default() };
            push(p, &mut points)?;
        }
        for (r, mode, driver) in reqs {
            let mut p = MountPoint {
                kind: r.kind,
                destination: r.target.trim_end_matches('/').to_string(),
                rw: !r.read_only,
                mode,
                propagation: r.propagation.clone(),
                ..Default::default()
            };
            match r.kind {
                MountKind::Bind => {
                    let src = Path::new(&r.source);
                    if std::fs::symlink_metadata(src).is_err() {
                        // `-v /host:/dir` creates the host dir as Docker does; `--mount` does not.
                        if hc.binds.iter().any(|b| b.starts_with(&format!("{}:", r.source))) {
                            std::fs::create_dir_all(src)
                                .map_err(|e| EngineError::io(format!("create bind source {}", r.source), e))?;
                        } else {
                            return Err(EngineError::Invalid(format!(
                                "invalid mount config for type \"bind\": bind source path does not exist: {}",
                                r.source
                            )));
                        }
                    }
                    p.source = r.source.clone();
                    if p.propagation.is_empty() {
                        p.propagation = "rprivate".to_string();
                    }
                }
                MountKind::Volume => {
                    let v = self.create_volume_inner(
                        Some(&r.source).filter(|s| !s.is_empty()).map(String::as_str),
                        driver,
                        BTreeMap::new(),
                        BTreeMap::new(),
                        r.source.is_empty(),
                    )?;
                    p.name = v.name.clone();
                    p.source = v.mountpoint.clone();
                    if !r.no_copy {
                        self.fill_volume(&v, &p.destination, chain_ids)?;
                    }
                }
                MountKind::Tmpfs => {
                    let mut data = Vec::new();
                    if let Some(s) = r.tmpfs_size.filter(|s| *s > 0) {
                        data.push(format!("size={s}"));
                    }
                    if let Some(m) = r.tmpfs_mode {
                        data.push(format!("mode={m:o}"));
                    }
                    p.data = data.join(",");
                }
            }
            push(p, &mut points)?;
        }
        for from in &hc.volumes_from {
            let (name, mode) = match from.rsplit_once(':') {
                Some((n, m)) if m == "ro" || m == "rw" => (n, Some(m)),
                _ => (from.as_str(), None),
            };
            let other = self.find_container(name)?;
            for m in other.mounts.iter().filter(|m| m.kind != MountKind::Tmpfs) {
                if points.iter().any(|x| x.destination == m.destination) {
                    continue;
                }
                let mut m = m.clone();
                if let Some(mode) = mode {
                    m.rw = mode == "rw";
                }
                points.push(m);
            }
        }
        for dest in image_volumes {
            let dest = dest.trim_end_matches('/');
            if dest.is_empty() || points.iter().any(|x| x.destination == dest) {
                continue;
            }
            let v = self.create_volume_inner(None, &hc.volume_driver, BTreeMap::new(), BTreeMap::new(), true)?;
            self.fill_volume(&v, dest, chain_ids)?;
            points.push(MountPoint {
                kind: MountKind::Volume,
                name: v.name.clone(),
                source: v.mountpoint.clone(),
                destination: dest.to_string(),
                rw: true,
                ..Default::default()
            });
        }
        Ok(points)
    }

    /// Copies the image's content at `dest` into a volume that is still empty, layer by layer
    /// from the bottom, honouring overlay whiteouts and opaque directories.
    fn fill_volume(&self, v: &VolumeRecord, dest: &str, chain_ids: &[wharf_types::Digest]) -> Result<(), EngineError> {
        let target = Path::new(&v.mountpoint);
        let empty = std::fs::read_dir(target).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !empty {
            return Ok(());
        }
        let rel = dest.trim_start_matches('/');
        for chain in chain_ids {
            let layer = self.inner.snapshots.layer_dir(chain);
            let Some(src) = walk_no_symlinks(&layer, rel) else { continue };
            let md = match std::fs::symlink_metadata(&src) {
                Ok(m) => m,
                Err(_) => continue,
            };
            if md.file_type().is_char_device() && md.rdev() == 0 {
                clear_dir(target)?;
                continue;
            }
            if !md.is_dir() {
                continue;
            }
            if is_opaque(&src) {
                clear_dir(target)?;
            }
            std::fs::set_permissions(target, std::fs::Permissions::from_mode(md.mode() & 0o7777))
                .map_err(|e| EngineError::io(format!("fill volume {}", v.name), e))?;
            let _ = std::os::unix::fs::lchown(target, Some(md.uid()), Some(md.gid()));
            copy_tree(&src, target)
                .map_err(|e| EngineError::io(format!("fill volume {} from the image", v.name), e))?;
        }
        self.shift_volume_owners(target)
    }

    /// The OCI mounts of a container's mount points, parents before children.
    pub(crate) fn volume_mounts(&self, rec: &ContainerRecord) -> Vec<oci::Mount> {
        let mut points = rec.mounts.clone();
        points.sort_by_key(|p| p.destination.split('/').filter(|s| !s.is_empty()).count());
        points
            .iter()
            .map(|p| {
                let mut options = Vec::new();
                let (kind, source) = match p.kind {
                    MountKind::Tmpfs => {
                        options.extend(["nosuid", "nodev", "noexec"].map(String::from));
                        options.extend(p.data.split(',').filter(|s| !s.is_empty()).map(String::from));
                        ("tmpfs", "tmpfs".to_string())
                    }
                    _ => {
                        options.push("rbind".to_string());
                        options.push(if p.propagation.is_empty() { "rprivate".into() } else { p.propagation.clone() });
                        ("bind", p.source.clone())
                    }
                };
                if !p.rw {
                    options.push("ro".to_string());
                }
                oci::Mount {
                    destination: p.destination.clone(),
                    kind: Some(kind.to_string()),
                    source: Some(source),
                    options,
                }
            })
            .collect()
    }
}

/// `root/rel` when no component of `rel` is a symlink (a layer's own symlinks must not lead
/// the copy out of it).
fn walk_no_symlinks(root: &Path, rel: &str) -> Option<PathBuf> {
    let mut p = root.to_path_buf();
    for comp in rel.split('/').filter(|c| !c.is_empty()) {
        if comp == ".." || comp == "." {
            return None;
        }
        p.push(comp);
        let md = std::fs::symlink_metadata(&p).ok()?;
        if md.file_type().is_symlink() {
            return None;
        }
    }
    Some(p)
}

fn clear_dir(dir: &Path) -> Result<(), EngineError> {
    let entries = std::fs::read_dir(dir).map_err(|e| EngineError::io(format!("read {}", dir.display()), e))?;
    for e in entries.flatten() {
        let p = e.path();
        let r = if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(|e| EngineError::io(format!("remove {}", p.display()), e))?;
    }
    Ok(())
}

/// Copies `src`'s entries into `dst` (regular files, dirs, symlinks; owners and modes kept);
/// whiteouts delete, opaque dirs replace.
fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let name: &OsStr = &entry.file_name();
        let to = dst.join(name);
        let md = std::fs::symlink_metadata(&from)?;
        let ft = md.file_type();
        if ft.is_char_device() && md.rdev() == 0 {
            match std::fs::symlink_metadata(&to) {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&to)?,
                Ok(_) => std::fs::remove_file(&to)?,
                Err(_) => {}
            }
            continue;
        }
        if let Ok(existing) = std::fs::symlink_metadata(&to) {
            if !(existing.is_dir() && ft.is_dir()) {
                if existing.is_dir() {
                    std::fs::remove_dir_all(&to)?;
                } else {
                    std::fs::remove_file(&to)?;
                }
            }
        }
        if ft.is_dir() {
            if is_opaque(&from) && to.exists() {
                std::fs::remove_dir_all(&to)?;
            }
            if !to.exists() {
                std::fs::create_dir(&to)?;
            }
            copy_tree(&from, &to)?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else if ft.is_file() {
            std::fs::copy(&from, &to)?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
        } else {
            // Devices, fifos and sockets have no place in a volume's initial content.
            continue;
        }
        std::os::unix::fs::lchown(&to, Some(md.uid()), Some(md.gid()))?;
    }
    Ok(())
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A named volume with labels and options, every field set, as format 1 stores it. (This
    /// driver refuses options at create; a record may hold them all the same, and keeps them.)
    #[test]
    fn the_stored_volume_record_is_pinned() {
        let rec: VolumeRecord = crate::formats::tests::assert_pinned(include_str!("../testdata/volume-record-1.json"));
        assert!(rec.anonymous && !rec.labels.is_empty() && !rec.options.is_empty());
        assert_eq!(VOLUMES.current, 1, "a new format needs a fixture of its own and a test of its step");
    }

    #[test]
    fn parses_binds() {
        type Want<'a> = Option<(MountKind, &'a str, &'a str, bool)>;
        let cases: Vec<(&str, Want)> = vec![
            ("data:/data", Some((MountKind::Volume, "data", "/data", false))),
            ("data:/data:ro", Some((MountKind::Volume, "data", "/data", true))),
            ("/host:/c", Some((MountKind::Bind, "/host", "/c", false))),
            ("/host:/c:ro,z", Some((MountKind::Bind, "/host", "/c", true))),
            ("/anon", Some((MountKind::Volume, "", "/anon", false))),
            ("/anon:ro", Some((MountKind::Volume, "", "/anon", true))),
            ("data:rel", None),
            ("data:/", None),
            ("a/b:/x", None),
            ("data:/x:bogus", None),
            ("a:/b:ro:x", None),
            ("data:/x:ro,rw", None),
        ];
        for (spec, want) in cases {
            let got = parse_bind(spec).ok().map(|r| (r.kind, r.source, r.target, r.read_only));
            let want = want.map(|(k, s, t, ro)| (k, s.to_string(), t.to_string(), ro));
            assert_eq!(got, want, "{spec}");
        }
    }

    #[test]
    fn tmpfs_options() {
        assert_eq!(tmpfs_data("size=64m,mode=1777").unwrap(), ("size=64m,mode=1777".to_string(), false));
        assert_eq!(tmpfs_data("ro,noexec").unwrap(), ("noexec".to_string(), true));
        assert!(tmpfs_data("bogus").is_err());
    }

    #[test]
    fn volume_names() {
        assert!(valid_volume_name("data"));
        assert!(valid_volume_name("my_vol.1-x"));
        assert!(!valid_volume_name("a"));
        assert!(!valid_volume_name("-x"));
        assert!(!valid_volume_name("a/b"));
    }

    #[test]
    fn copies_with_whiteouts() {
        let t = std::env::temp_dir().join(format!("wharf-vol-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        let (src, dst) = (t.join("src"), t.join("dst"));
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::create_dir_all(dst.join("old")).unwrap();
        std::fs::write(src.join("sub/f"), "x").unwrap();
        std::os::unix::fs::symlink("sub/f", src.join("link")).unwrap();
        // A whiteout for `old`: a 0/0 character device.
        let p = std::ffi::CString::new(src.join("old").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mknod has no memory effects.
        let r = unsafe { libc::mknod(p.as_ptr(), libc::S_IFCHR | 0o600, 0) };
        assert_eq!(r, 0, "mknod (tests run as root)");
        copy_tree(&src, &dst).unwrap();
        assert_eq!(std::fs::read_to_string(dst.join("sub/f")).unwrap(), "x");
        assert_eq!(std::fs::read_link(dst.join("link")).unwrap(), Path::new("sub/f"));
        assert!(!dst.join("old").exists());
        assert_eq!(dir_size(&dst), 1 + "sub/f".len() as u64);
        let _ = std::fs::remove_dir_all(&t);
    }
}
