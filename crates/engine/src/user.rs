//! Resolving `user[:group]` against the image's /etc/passwd and /etc/group, read straight from
//! the layer snapshots (the rootfs is only ever mounted inside the container).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::EngineError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

/// The most of /etc/passwd or /etc/group that is read: the files come from the container,
/// which may have made them as large as its disk allows.
const MAX_ACCOUNT_FILE: u64 = 8 << 20;

/// Reads `path` (e.g. `etc/passwd`) as the container would see it: resolved through the
/// layers as the overlay would (the topmost layer that has it wins, a whiteout hides it,
/// symlinks stay inside the image), then opened below its layer with `RESOLVE_IN_ROOT` and
/// no symlinks, so a link the container planted (`/etc -> /`) or swaps in meanwhile never
/// reaches a host file. `Ok(None)` when it is absent or not a regular file; an error when it
/// is larger than 8 MiB.
pub fn read_from_layers(layers_top_first: &[PathBuf], path: &str) -> Result<Option<String>, EngineError> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let Some(found) = lookup_in_layers(layers_top_first, path) else {
        return Ok(None);
    };
    if found.info.kind != PathKind::File {
        return Ok(None);
    }
    let Ok(root) = std::fs::File::open(&found.layer) else {
        return Ok(None);
    };
    let Ok(rel) = std::ffi::CString::new(found.rel.as_bytes()) else {
        return Ok(None);
    };
    let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
    let resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    let Ok(fd) = wharf_confined::openat2(root.as_raw_fd(), &rel, flags, resolve) else {
        return Ok(None);
    };
    let file = std::fs::File::from(fd);
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    if file.take(MAX_ACCOUNT_FILE + 1).read_to_end(&mut bytes).is_err() {
        return Ok(None);
    }
    if bytes.len() as u64 > MAX_ACCOUNT_FILE {
        return Err(EngineError::Invalid(format!(
            "/{path} in the container is larger than {} MiB: it is not read",
            MAX_ACCOUNT_FILE >> 20
        )));
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

fn is_opaque_parent(layer: &Path, path: &str) -> bool {
    let parent = Path::new(path).parent().unwrap_or(Path::new(""));
    wharf_confined::overlay::is_opaque(&layer.join(parent))
}

/// Resolves Docker's `--user` forms: `""` (root), `uid`, `uid:gid`, `name`, `name:group`.
pub fn resolve(spec: &str, passwd: Option<&str>, group: Option<&str>) -> Result<ResolvedUser, EngineError> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let passwd_entries: Vec<Vec<&str>> =
        passwd.unwrap_or("").lines().map(|l| l.split(':').collect::<Vec<_>>()).filter(|f| f.len() >= 4).collect();
    let group_entries: Vec<Vec<&str>> =
        group.unwrap_or("").lines().map(|l| l.split(':').collect::<Vec<_>>()).filter(|f| f.len() >= 3).collect();

    let (uid, mut gid, home, user_name) = match user_part.parse::<u32>() {
        Ok(uid) => match passwd_entries.iter().find(|f| f[2].parse::<u32>().ok() == Some(uid)) {
            Some(f) => (uid, f[3].parse().unwrap_or(0), f.get(5).unwrap_or(&"/").to_string(), Some(f[0].to_string())),
            None => (uid, 0, "/".to_string(), None),
        },
        Err(_) => match passwd_entries.iter().find(|f| f[0] == user_part) {
            Some(f) => {
                let uid = f[2]
                    .parse()
                    .map_err(|_| EngineError::Invalid(format!("bad uid for user {user_part} in /etc/passwd")))?;
                (uid, f[3].parse().unwrap_or(0), f.get(5).unwrap_or(&"/").to_string(), Some(f[0].to_string()))
            }
            None => {
                return Err(EngineError::Invalid(format!(
                    "unable to find user {user_part}: no matching entries in passwd file"
                )))
            }
        },
    };
    if let Some(g) = group_part {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => match group_entries.iter().find(|f| f[0] == g) {
                Some(f) => {
                    f[2].parse().map_err(|_| EngineError::Invalid(format!("bad gid for group {g} in /etc/group")))?
                }
                None => {
                    return Err(EngineError::Invalid(format!(
                        "unable to find group {g}: no matching entries in group file"
                    )))
                }
            },
        };
    }
    // As dockerd: the primary group first, then the groups /etc/group lists the user in, and
    // those only when no group was named (runc's rule: an explicit group wins).
    let mut additional_gids = vec![gid];
    if let (Some(name), None) = (&user_name, group_part) {
        for f in &group_entries {
            let members = f.get(3).copied().unwrap_or("");
            if members.split(',').any(|m| m == name) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if g != gid && !additional_gids.contains(&g) {
                        additional_gids.push(g);
                    }
                }
            }
        }
    }
    Ok(ResolvedUser { uid, gid, additional_gids, home })
}

impl crate::Engine {
    /// Resolves `user[:group]` to ids against an image's /etc/passwd and /etc/group (what a
    /// Dockerfile's `COPY --chown=name:group` needs).
    pub fn resolve_user_in_image(
        &self,
        image: &wharf_types::Digest,
        user: &str,
        group: Option<&str>,
    ) -> Result<(u32, u32), EngineError> {
        let rec = self.find_image(&image.to_string())?;
        let layers: Vec<PathBuf> = rec.chain_ids.iter().rev().map(|c| self.inner.snapshots.layer_dir(c)).collect();
        let passwd = read_from_layers(&layers, "etc/passwd")?;
        let groups = read_from_layers(&layers, "etc/group")?;
        let spec = match group {
            Some(g) => format!("{user}:{g}"),
            None => user.to_string(),
        };
        let r = resolve(&spec, passwd.as_deref(), groups.as_deref())?;
        Ok((r.uid, r.gid))
    }

    /// What `path` is in the image `image` (`None`: absent), and whether a symlink was on the
    /// way; read from the layer directories, nothing mounted.
    pub fn image_stat(&self, image: &wharf_types::Digest, path: &str) -> Result<Option<PathInfo>, EngineError> {
        let rec = self.find_image(&image.to_string())?;
        let layers: Vec<PathBuf> = rec.chain_ids.iter().rev().map(|c| self.inner.snapshots.layer_dir(c)).collect();
        Ok(stat_in_layers(&layers, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nwheel:x:10:app\n";

    #[test]
    fn resolves_docker_user_forms() {
        let cases: &[(&str, u32, u32, &[u32])] = &[
            ("", 0, 0, &[0]),
            ("app", 1000, 1000, &[1000, 10]),
            ("1000", 1000, 1000, &[1000, 10]),
            ("1000:10", 1000, 10, &[10]),
            ("app:root", 1000, 0, &[0]),
            ("4242", 4242, 0, &[0]),
            ("4242:4343", 4242, 4343, &[4343]),
        ];
        for (spec, uid, gid, extra) in cases {
            let u = resolve(spec, Some(PASSWD), Some(GROUP)).unwrap();
            assert_eq!((u.uid, u.gid, u.additional_gids.as_slice()), (*uid, *gid, *extra), "{spec}");
        }
        assert!(resolve("nobody", Some(PASSWD), Some(GROUP))
            .unwrap_err()
            .to_string()
            .contains("unable to find user nobody"));
        assert!(resolve("app:nogroup", Some(PASSWD), Some(GROUP)).is_err());
    }
}

/// What a path is in an image, as overlayfs would show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    Dir,
    File,
    Other,
}

enum ParentState {
    Dirs,
    Missing,
    Hidden,
}

/// Whether every component of `parents` is a directory (not a symlink) in this one layer.
fn parents_in_layer(layer: &Path, parents: &[String]) -> ParentState {
    let mut p = layer.to_path_buf();
    for c in parents {
        p.push(c);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return ParentState::Hidden,
            Err(_) => return ParentState::Missing,
        }
    }
    ParentState::Dirs
}

/// What `stat_in_layers` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathInfo {
    pub kind: PathKind,
    /// A symlink was on the way: the path is reached through another one.
    pub through_link: bool,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (and setuid/setgid/sticky).
    pub mode: u32,
    /// Seconds since the epoch.
    pub mtime: i64,
}

/// A path looked up in an image's layers (top first) as the merged overlay would resolve it:
/// whiteouts and opaque directories hide what is below, symlinks are followed inside the image
/// (at most 40). `None` when it does not exist. For a directory, the owner and mode are the
/// topmost layer's, as the overlay shows them.
pub fn stat_in_layers(layers_top_first: &[PathBuf], path: &str) -> Option<PathInfo> {
    lookup_in_layers(layers_top_first, path).map(|f| f.info)
}

/// Where a path resolved: the layer holding its final entry and the symlink-free path of it
/// in that layer.
struct Found {
    layer: PathBuf,
    rel: String,
    info: PathInfo,
}

fn lookup_in_layers(layers_top_first: &[PathBuf], path: &str) -> Option<Found> {
    use std::os::unix::fs::FileTypeExt;
    let mut todo: std::collections::VecDeque<String> =
        path.split('/').filter(|c| !c.is_empty() && *c != ".").map(str::to_string).collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut last_layer = layers_top_first.first()?.clone();
    let (mut links, mut through_link) = (0, false);
    let root = layers_top_first.iter().find_map(|l| std::fs::symlink_metadata(l).ok());
    let mut info = PathInfo {
        kind: PathKind::Dir,
        through_link: false,
        uid: root.as_ref().map(|m| m.uid()).unwrap_or(0),
        gid: root.as_ref().map(|m| m.gid()).unwrap_or(0),
        mode: root.as_ref().map(|m| m.mode() & 0o7777).unwrap_or(0o755),
        mtime: root.as_ref().map(|m| m.mtime()).unwrap_or(0),
    };
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        let rel = if resolved.is_empty() { c.clone() } else { format!("{}/{c}", resolved.join("/")) };
        let mut found = None;
        for layer in layers_top_first {
            // Within a layer, the parents must be plain directories: a layer whose parent is a
            // symlink or a file hides what lies below (and joining through it would leave the
            // layer for wherever its link points).
            match parents_in_layer(layer, &resolved) {
                ParentState::Dirs => {}
                ParentState::Missing => continue,
                ParentState::Hidden => break,
            }
            match std::fs::symlink_metadata(layer.join(&rel)) {
                Ok(m) if m.file_type().is_char_device() && m.rdev() == 0 => break,
                Ok(m) => {
                    found = Some((layer.clone(), m));
                    break;
                }
                Err(_) if is_opaque_parent(layer, &rel) => break,
                Err(_) => {}
            }
        }
        let (layer, meta) = found?;
        if meta.file_type().is_symlink() {
            links += 1;
            through_link = true;
            if links > 40 {
                return None;
            }
            let target = std::fs::read_link(layer.join(&rel)).ok()?;
            let target = target.to_string_lossy().to_string();
            if target.starts_with('/') {
                resolved.clear();
            }
            for t in target.split('/').rev().filter(|t| !t.is_empty() && *t != ".") {
                todo.push_front(t.to_string());
            }
            continue;
        }
        resolved.push(c);
        last_layer = layer;
        let kind = if meta.is_dir() {
            PathKind::Dir
        } else if meta.is_file() {
            PathKind::File
        } else {
            PathKind::Other
        };
        info = PathInfo {
            kind,
            through_link,
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
            mtime: meta.mtime(),
        };
        if kind != PathKind::Dir && !todo.is_empty() {
            return None;
        }
    }
    info.through_link = through_link;
    Some(Found { layer: last_layer, rel: resolved.join("/"), info })
}
