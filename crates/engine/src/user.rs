//! Resolving `user[:group]` against the image's /etc/passwd and /etc/group, read straight from
//! the layer snapshots (the rootfs is only ever mounted inside the container).

use std::path::{Path, PathBuf};

use crate::EngineError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

/// Reads `path` (e.g. `etc/passwd`) as the container would see it: the topmost layer that has
/// it wins; a whiteout above it hides it.
pub fn read_from_layers(layers_top_first: &[PathBuf], path: &str) -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    for dir in layers_top_first {
        let p = dir.join(path);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_char_device() => return None,
            Ok(m) if m.is_file() => return std::fs::read_to_string(&p).ok(),
            Ok(_) => return None,
            Err(_) => {
                if is_opaque_parent(dir, path) {
                    return None;
                }
            }
        }
    }
    None
}

fn is_opaque_parent(layer: &Path, path: &str) -> bool {
    let parent = Path::new(path).parent().unwrap_or(Path::new(""));
    let mut buf = [0u8; 8];
    let p = layer.join(parent);
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: valid C strings and a buffer of the length we pass.
    let n =
        unsafe { libc::lgetxattr(c.as_ptr(), c"trusted.overlay.opaque".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    n == 1 && buf[0] == b'y'
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
    let mut additional_gids = Vec::new();
    if let Some(name) = &user_name {
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
        let passwd = read_from_layers(&layers, "etc/passwd");
        let groups = read_from_layers(&layers, "etc/group");
        let spec = match group {
            Some(g) => format!("{user}:{g}"),
            None => user.to_string(),
        };
        let r = resolve(&spec, passwd.as_deref(), groups.as_deref())?;
        Ok((r.uid, r.gid))
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
            ("", 0, 0, &[]),
            ("app", 1000, 1000, &[10]),
            ("1000", 1000, 1000, &[10]),
            ("1000:10", 1000, 10, &[]),
            ("app:root", 1000, 0, &[10]),
            ("4242", 4242, 0, &[]),
            ("4242:4343", 4242, 4343, &[]),
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
