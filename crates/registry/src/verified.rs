//! Which stored blobs this process has seen match their digest, so that a whole-blob read
//! need not hash them again ([`VerifyReads::Once`], the default).
//!
//! Hashing every read costs a core about 0.6 ms per MB (SHA-256 with the CPU's SHA
//! instructions): with clients on every core, a large pull then runs at about two thirds of
//! the speed of a registry that trusts its disk (distribution does). `Once` keeps the check
//! where it catches something: a blob is trusted only while its bytes are the ones that were
//! checked, which the backend vouches for with a [`BlobVersion`] (files: device, inode, size,
//! modification and change times, so any write, truncation, rename over or `chmod` makes the
//! next read hash again). A backend that cannot vouch (S3) has every read hashed. What no
//! version can see, a medium that silently returns other bytes under an unchanged file, is
//! what `wharf-registry scrub` and `always` are for.

use std::collections::HashMap;
use std::sync::Mutex;

use wharf_types::Digest;

/// How whole-blob reads are checked against their digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyReads {
    /// Every read is hashed.
    Always,
    /// A read is hashed unless this process has checked these very bytes before (at their
    /// upload or at an earlier read).
    Once,
    /// Reads are trusted (the digest was checked when the blob was stored).
    Never,
}

impl VerifyReads {
    /// `always`, `once`, `never`, or a boolean (`true` is `always`, `false` is `never`, as
    /// the switch was before it had three positions).
    pub fn parse(s: &str) -> Result<VerifyReads, String> {
        match s {
            "always" | "true" => Ok(VerifyReads::Always),
            "once" => Ok(VerifyReads::Once),
            "never" | "false" => Ok(VerifyReads::Never),
            other => Err(format!("{other:?} is not a verify-reads mode (always, once or never)")),
        }
    }
}

/// What identifies the bytes a backend holds for a blob now: equal versions mean the bytes
/// were not rewritten in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobVersion {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl BlobVersion {
    pub fn of(meta: &std::fs::Metadata) -> BlobVersion {
        use std::os::unix::fs::MetadataExt;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        BlobVersion {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// The most blobs remembered; past it the memory starts again empty (about 100 bytes each, so
/// at most ~10 MB), and the next read of each is hashed once more.
const MAX_REMEMBERED: usize = 100_000;

/// The blobs checked so far, with the version that was checked.
#[derive(Default)]
pub struct Verified {
    checked: Mutex<HashMap<Digest, BlobVersion>>,
}

impl Verified {
    /// Whether the bytes of `digest` at `version` were checked.
    pub fn holds(&self, digest: &Digest, version: &BlobVersion) -> bool {
        self.lock().get(digest) == Some(version)
    }

    /// Records that the bytes of `digest` at `version` match it.
    pub fn insert(&self, digest: Digest, version: BlobVersion) {
        let mut checked = self.lock();
        if checked.len() >= MAX_REMEMBERED && !checked.contains_key(&digest) {
            checked.clear();
        }
        checked.insert(digest, version);
    }

    /// Forgets a blob (deleted, or found corrupted).
    pub fn forget(&self, digest: &Digest) {
        self.lock().remove(digest);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, BlobVersion>> {
        // The map holds no invariant a panicking holder could break half way.
        self.checked.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(ino: u64) -> BlobVersion {
        BlobVersion { dev: 1, ino, size: 10, mtime_ns: 5, ctime_ns: 6 }
    }

    #[test]
    fn modes_parse_with_the_old_booleans() {
        assert_eq!(VerifyReads::parse("once"), Ok(VerifyReads::Once));
        assert_eq!(VerifyReads::parse("true"), Ok(VerifyReads::Always));
        assert_eq!(VerifyReads::parse("false"), Ok(VerifyReads::Never));
        assert!(VerifyReads::parse("sometimes").unwrap_err().contains("sometimes"));
    }

    #[test]
    fn only_the_checked_version_is_trusted() {
        let v = Verified::default();
        let d = Digest::of(b"a");
        assert!(!v.holds(&d, &version(1)));
        v.insert(d.clone(), version(1));
        assert!(v.holds(&d, &version(1)));
        assert!(!v.holds(&d, &version(2)), "a rewritten file is checked again");
        v.forget(&d);
        assert!(!v.holds(&d, &version(1)));
    }

    #[test]
    fn a_rewrite_changes_the_version_of_a_file() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("wharf-verified-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("blob");
        std::fs::write(&path, b"0123456789").unwrap();
        let before = BlobVersion::of(&std::fs::metadata(&path).unwrap());
        assert_eq!(before, BlobVersion::of(&std::fs::metadata(&path).unwrap()));
        // The same length, other bytes, written in place: what a corruption through the
        // filesystem looks like. (The kernel's file times tick every few milliseconds.)
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all(b"9876543210").unwrap();
        drop(f);
        let after = BlobVersion::of(&std::fs::metadata(&path).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_ne!(before, after);
    }
}
