//! The overlayfs opaque mark of a directory: with it, the directory hides everything below it
//! in the lower layers. A layer's `.wh..wh..opq` entry becomes the mark; export, diff, volume
//! copy-up and the account-file lookup read it back.

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Where overlayfs looks for the mark: `trusted.*` on a host mount, `user.*` on one mounted with
/// `userxattr` (in a user namespace, userns-remap), which cannot reach `trusted.*`.
pub const OPAQUE_XATTRS: [&CStr; 2] = [c"trusted.overlay.opaque", c"user.overlay.opaque"];

/// Whether overlayfs sees the directory at `path` as opaque: either xattr is exactly `y`, as the
/// kernel reads it (a longer value is not the mark). A symlink at `path` is not followed.
pub fn is_opaque(path: &Path) -> bool {
    let Ok(p) = crate::cstring(path.as_os_str().as_bytes()) else { return false };
    OPAQUE_XATTRS.iter().any(|name| {
        let mut buf = [0u8; 1];
        matches!(crate::lgetxattr(&p, name, &mut buf), Ok(1)) && buf == *b"y"
    })
}

/// Marks the directory `dir` opaque, in both namespaces, so that it reads so whether the
/// overlay is mounted on the host or in a user namespace.
pub fn mark_opaque(dir: RawFd) -> io::Result<()> {
    for xattr in OPAQUE_XATTRS {
        crate::fsetxattr(dir, xattr, b"y")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    /// trusted.* needs root; on a file system without xattrs there is nothing to check.
    fn scratch(name: &str) -> Option<std::path::PathBuf> {
        if !is_root() {
            eprintln!("skipped: needs root for trusted.* xattrs");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("wharf-confined-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Some(dir)
    }

    #[test]
    fn marked_directories_read_as_opaque() {
        let Some(dir) = scratch("opaque") else { return };
        assert!(!is_opaque(&dir));
        let fd = std::fs::File::open(&dir).unwrap();
        mark_opaque(fd.as_raw_fd()).unwrap();
        assert!(is_opaque(&dir));
        let mut buf = [0u8; 4];
        for name in OPAQUE_XATTRS {
            let p = crate::cstring(dir.as_os_str().as_bytes()).unwrap();
            assert_eq!(crate::lgetxattr(&p, name, &mut buf).unwrap(), 1, "{name:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn either_namespace_marks_and_only_y_does() {
        let Some(base) = scratch("opaque-ns") else { return };
        let cases: [(&CStr, &[u8], bool); 4] = [
            (c"user.overlay.opaque", b"y", true),
            (c"trusted.overlay.opaque", b"y", true),
            (c"trusted.overlay.opaque", b"yes", false),
            (c"trusted.overlay.opaque", b"n", false),
        ];
        for (i, (name, value, want)) in cases.into_iter().enumerate() {
            let dir = base.join(i.to_string());
            std::fs::create_dir(&dir).unwrap();
            let fd = std::fs::File::open(&dir).unwrap();
            crate::fsetxattr(fd.as_raw_fd(), name, value).unwrap();
            assert_eq!(is_opaque(&dir), want, "{name:?}={}", String::from_utf8_lossy(value));
        }
        // A symlink to an opaque directory is not itself opaque.
        std::os::unix::fs::symlink(base.join("0"), base.join("link")).unwrap();
        assert!(!is_opaque(&base.join("link")));
        assert!(!is_opaque(&base.join("missing")));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
