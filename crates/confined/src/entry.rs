//! The one set of rules for the names in a tar that is extracted: layer apply (and with it
//! pull, load and import), `docker cp` into a container, the CLI's `cp` to the host and the
//! builder's context and ADD archives all turn an entry name, and a hard link's target, into
//! components below their extraction directory with [`components`] and nothing else.
//!
//! The rules: a leading `/` is stripped (an absolute name lands below the directory, as `tar`
//! and Docker extract it); empty and `.` elements are dropped (`./a//b/` is `a/b`); a `..`
//! element anywhere is refused, whether or not it would climb out (stricter than Docker, which
//! resolves `a/../b` to `b`: no archive tool writes one, and refusing it spares every caller
//! from reasoning about what it would resolve through); a NUL byte is refused (a PAX `path` record can carry one; no file name
//! can). An empty result names the extraction directory itself.
//!
//! These rules see names only. Symlinks the archive or the tree below makes are the walk's
//! business: callers open each parent through directory fds with `O_NOFOLLOW` or `openat2`.

use std::ffi::{CString, OsStr};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Why a name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It has a `..` element.
    Parent,
    /// It has a NUL byte.
    Nul,
}

impl Refusal {
    /// The reason, as the end of a sentence about the entry.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Parent => "points outside the destination",
            Refusal::Nul => "contains a NUL byte",
        }
    }
}

/// A refused name, with the name (as text) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    pub name: String,
    pub refusal: Refusal,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}", self.name, self.refusal.reason())
    }
}

impl std::error::Error for PathError {}

/// The components of the tar name (or hard-link target) `name` below the extraction directory,
/// by the rules above.
pub fn components(name: &[u8]) -> Result<Vec<&[u8]>, PathError> {
    let refuse = |refusal| PathError { name: String::from_utf8_lossy(name).into_owned(), refusal };
    if name.contains(&0) {
        return Err(refuse(Refusal::Nul));
    }
    let mut out = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(refuse(Refusal::Parent)),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// [`components`] as C strings, for the `*at` calls.
pub fn c_components(name: &[u8]) -> Result<Vec<CString>, PathError> {
    components(name)?
        .into_iter()
        .map(|c| {
            CString::new(c)
                .map_err(|_| PathError { name: String::from_utf8_lossy(name).into_owned(), refusal: Refusal::Nul })
        })
        .collect()
}

/// [`components`] as a relative path (empty for the extraction directory), for callers that
/// write with paths below a directory they own.
pub fn relative_path(name: &[u8]) -> Result<PathBuf, PathError> {
    Ok(components(name)?.into_iter().map(OsStr::from_bytes).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_components_below_the_directory() {
        let ok: &[(&[u8], &[&str])] = &[
            (b"a/b", &["a", "b"]),
            (b"./a/b/", &["a", "b"]),
            (b"./", &[]),
            (b".", &[]),
            (b"", &[]),
            (b"a//./b", &["a", "b"]),
            (b"/etc/passwd", &["etc", "passwd"]),
            (b"//a//", &["a"]),
            (b".//etc/passwd", &["etc", "passwd"]),
            (b"/", &[]),
            (b".wh..wh..opq", &[".wh..wh..opq"]),
            (b"a/...", &["a", "..."]),
            (b"a..b/..c/c..", &["a..b", "..c", "c.."]),
        ];
        for (input, want) in ok {
            let got = components(input).unwrap();
            let got: Vec<&str> = got.iter().map(|c| std::str::from_utf8(c).unwrap()).collect();
            assert_eq!(&got, want, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn parent_elements_and_nul_bytes_are_refused() {
        let bad: &[(&[u8], Refusal)] = &[
            (b"..", Refusal::Parent),
            (b"../x", Refusal::Parent),
            (b"a/../../x", Refusal::Parent),
            (b"a/../b", Refusal::Parent),
            (b"a/..", Refusal::Parent),
            (b"/..", Refusal::Parent),
            (b"/../etc/passwd", Refusal::Parent),
            (b"./../x", Refusal::Parent),
            (b"a\0b", Refusal::Nul),
            (b"../a\0", Refusal::Nul),
        ];
        for (input, want) in bad {
            let e = components(input).unwrap_err();
            assert_eq!(e.refusal, *want, "{}", String::from_utf8_lossy(input));
            assert_eq!(e.name, String::from_utf8_lossy(input));
            assert!(c_components(input).is_err());
            assert!(relative_path(input).is_err());
        }
        assert_eq!(components(b"../x").unwrap_err().to_string(), "\"../x\" points outside the destination");
    }

    #[test]
    fn c_and_path_forms_match() {
        assert_eq!(c_components(b"/a/./b/").unwrap(), vec![c"a".to_owned(), c"b".to_owned()]);
        assert_eq!(relative_path(b"/a/./b/").unwrap(), PathBuf::from("a/b"));
        assert_eq!(relative_path(b"./").unwrap(), PathBuf::new());
    }
}
