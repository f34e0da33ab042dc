//! Applying an uncompressed layer tar into an empty directory, in one pass, converting Docker
//! whiteouts to overlayfs form and refusing any entry that would reach outside the directory.
//!
//! Every path is walked component by component from the layer root fd with `O_NOFOLLOW`, and
//! every object is created with an `*at` call relative to its parent's fd, so neither a `..`, an
//! absolute path, nor a symlink created by an earlier entry can make a write land elsewhere.
//!
//! Xattrs from PAX `SCHILY.xattr.*` records are kept, except `trusted.overlay.*` and
//! `user.overlay.*`, which are dropped: overlayfs reads them from lower layers as instructions
//! (`redirect`, `metacopy`, `origin`, `opaque`, ...) that no layer format allows a layer to give.
//! The only overlay metadata a layer may produce is what its whiteout entries say, and that is
//! written by this code. (A layer shipping a 0/0 character device itself gains nothing: it
//! could hide the same lower files with a `.wh.` entry.)

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use wharf_types::{Digest, Sha256Writer};

use crate::SnapshotError;
use wharf_confined::{self as sys, entry, overlay};

const READ_BUFFER: usize = 1 << 20;
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";

/// What applying a layer produced: its diff id (sha256 of the whole uncompressed stream) and the
/// apparent size of its files.
pub(crate) struct Applied {
    pub diff_id: Digest,
    pub size: u64,
}

/// Hashes every byte read through it, so the diff id comes out of the same single pass.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256Writer,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Applies the layer tar read from `tar` into `dir`, which must be empty.
pub(crate) fn apply(layer: &Digest, dir: &Path, tar: impl Read) -> Result<Applied, SnapshotError> {
    let root = File::open(dir)
        .map(OwnedFd::from)
        .map_err(|e| SnapshotError::io(format!("open layer dir {}", dir.display()), e))?;
    let hashing = HashingReader { inner: tar, hasher: Sha256Writer::new() };
    let mut archive = tar::Archive::new(BufReader::with_capacity(READ_BUFFER, hashing));
    let mut ex = Extractor { layer, root, parent_cache: None, dirs: Vec::new(), size: 0, buf: vec![0; READ_BUFFER] };
    let read_err = |e| SnapshotError::ReadLayer { layer: layer.clone(), source: e };
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        ex.entry(&mut entry)?;
    }
    ex.set_dir_times()?;
    // The diff id covers the whole stream, including the padding after the end-of-archive
    // blocks, which the tar reader leaves unread.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(read_err)?;
    let (diff_id, _) = rest.into_inner().hasher.finish();
    Ok(Applied { diff_id, size: ex.size })
}

/// The components of a tar path below the layer root, by the project's one set of entry name
/// rules (`wharf_confined::entry`): a leading `/` and `.` elements dropped, `..` refused. An
/// empty result names the layer root.
fn split_path(raw: &[u8]) -> Result<Vec<CString>, &'static str> {
    entry::c_components(raw).map_err(|e| match e.refusal {
        entry::Refusal::Parent => "escapes the layer root",
        entry::Refusal::Nul => "contains a NUL byte",
    })
}

/// Metadata of one entry, gathered from its header and PAX records.
struct Meta {
    mode: libc::mode_t,
    uid: u32,
    gid: u32,
    mtime: libc::timespec,
    xattrs: Vec<(CString, Vec<u8>)>,
}

/// Parses a PAX time (`seconds[.fraction]`, possibly negative).
fn parse_pax_time(v: &[u8]) -> Option<libc::timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let negative = secs.starts_with('-');
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut nsec: i64 = if digits.is_empty() { 0 } else { format!("{digits:0<9}").parse().ok()? };
    let mut sec = secs;
    if negative && nsec > 0 {
        sec -= 1;
        nsec = 1_000_000_000 - nsec;
    }
    Some(libc::timespec { tv_sec: sec as libc::time_t, tv_nsec: nsec as libc::c_long })
}

struct Extractor<'a> {
    layer: &'a Digest,
    root: OwnedFd,
    /// The last parent directory walked to, as entries of one directory come together.
    parent_cache: Option<(Vec<CString>, OwnedFd)>,
    /// Directories whose mtime is set at the end, after their contents stopped changing.
    dirs: Vec<(Vec<CString>, libc::timespec)>,
    size: u64,
    buf: Vec<u8>,
}

enum Walk {
    Ok(OwnedFd),
    /// A component is missing (only when not creating).
    Missing,
    /// A component is a symlink or not a directory.
    Blocked(String),
}

impl Extractor<'_> {
    fn invalid(&self, entry: &str, reason: impl Into<String>) -> SnapshotError {
        SnapshotError::InvalidLayer { layer: self.layer.clone(), entry: entry.to_string(), reason: reason.into() }
    }

    fn io(&self, entry: &str, what: &str, e: io::Error) -> SnapshotError {
        SnapshotError::io(format!("layer {}: entry {entry:?}: {what}", self.layer), e)
    }

    fn read_err(&self, e: io::Error) -> SnapshotError {
        SnapshotError::ReadLayer { layer: self.layer.clone(), source: e }
    }

    /// Opens the directory at `comps` beneath the root without following any symlink, creating
    /// missing directories (mode 0755, like Docker) when `create`.
    fn walk(&self, comps: &[CString], create: bool) -> io::Result<Walk> {
        let mut cur = sys::dup(&self.root)?;
        for c in comps {
            let next = match sys::open_dir_at(cur.as_raw_fd(), c) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    if !create {
                        return Ok(Walk::Missing);
                    }
                    sys::mkdirat(cur.as_raw_fd(), c, 0o755)?;
                    sys::open_dir_at(cur.as_raw_fd(), c)?
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
                    return Ok(Walk::Blocked(c.to_string_lossy().into_owned()));
                }
                Err(e) => return Err(e),
            };
            cur = next;
        }
        Ok(Walk::Ok(cur))
    }

    /// The fd of the parent directory `parents`, from the cache when the previous entry had the
    /// same parent.
    fn parent(&mut self, parents: &[CString], entry: &str) -> Result<RawFd, SnapshotError> {
        if parents.is_empty() {
            return Ok(self.root.as_raw_fd());
        }
        let hit = matches!(&self.parent_cache, Some((p, _)) if p.as_slice() == parents);
        if !hit {
            let fd = match self.walk(parents, true).map_err(|e| self.io(entry, "open parent directory", e))? {
                Walk::Ok(fd) => fd,
                Walk::Missing => return Err(self.invalid(entry, "has a missing parent directory")),
                Walk::Blocked(c) => {
                    return Err(self.invalid(entry, format!("passes through {c:?}, a symlink or not a directory")))
                }
            };
            self.parent_cache = Some((parents.to_vec(), fd));
        }
        match &self.parent_cache {
            Some((_, fd)) => Ok(fd.as_raw_fd()),
            None => Err(self.io(entry, "open parent directory", io::Error::from_raw_os_error(libc::EBADF))),
        }
    }

    /// Removes whatever is at `name` in `dir`, so a later entry replaces an earlier one. Returns
    /// whether the existing thing was a directory that should be kept (`keep_dir`).
    fn clear(&mut self, dir: RawFd, name: &CStr, keep_dir: bool, entry: &str) -> Result<bool, SnapshotError> {
        let Some(st) = sys::lstat_at_if_exists(dir, name).map_err(|e| self.io(entry, "stat", e))? else {
            return Ok(false);
        };
        let fmt = st.st_mode & libc::S_IFMT;
        if fmt == libc::S_IFDIR {
            if keep_dir {
                return Ok(true);
            }
            // Replacing a whole directory is rare; the cached parent may live inside it.
            self.parent_cache = None;
            sys::remove_tree_at(dir, name, true).map_err(|e| self.io(entry, "remove replaced directory", e))?;
        } else {
            if fmt == libc::S_IFREG && st.st_nlink == 1 {
                self.size = self.size.saturating_sub(st.st_size as u64);
            }
            sys::unlinkat(dir, name, 0).map_err(|e| self.io(entry, "remove replaced entry", e))?;
        }
        Ok(false)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), SnapshotError> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let raw_path = entry.path_bytes().into_owned();
        let display = String::from_utf8_lossy(&raw_path).into_owned();
        let comps = split_path(&raw_path).map_err(|reason| self.invalid(&display, reason))?;
        let meta = self.meta(entry)?;
        let is_dir = kind.is_dir() || (kind.is_file() && raw_path.ends_with(b"/"));

        let Some((name, parents)) = comps.split_last() else {
            if is_dir {
                return self.root_dir(&meta, &display);
            }
            return Err(self.invalid(&display, "names the layer root but is not a directory"));
        };
        let name_bytes = name.as_bytes();

        if name_bytes.starts_with(WHITEOUT_PREFIX) {
            let parent = self.parent(parents, &display)?;
            return self.whiteout(parent, name_bytes, &display);
        }

        if kind.is_hard_link() {
            return self.hard_link(entry, parents, name, &display);
        }

        let parent = self.parent(parents, &display)?;
        if is_dir {
            let existed = self.clear(parent, name, true, &display)?;
            if !existed {
                sys::mkdirat(parent, name, 0o700).map_err(|e| self.io(&display, "mkdir", e))?;
            }
            let fd = sys::open_dir_at(parent, name).map_err(|e| self.io(&display, "open directory", e))?;
            self.set_fd_meta(&fd, &meta, &display)?;
            self.dirs.push((comps.clone(), meta.mtime));
        } else if kind.is_file() || kind.is_contiguous() || kind.is_gnu_sparse() {
            self.clear(parent, name, false, &display)?;
            let fd = sys::openat(parent, name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW, 0o600)
                .map_err(|e| self.io(&display, "create file", e))?;
            let mut file = File::from(fd);
            self.copy_data(entry, &mut file, &display)?;
            let fd = OwnedFd::from(file);
            self.set_fd_meta(&fd, &meta, &display)?;
            sys::futimens(fd.as_raw_fd(), meta.mtime).map_err(|e| self.io(&display, "set times", e))?;
        } else if kind.is_symlink() {
            let target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
            if target.is_empty() {
                return Err(self.invalid(&display, "is a symlink without a target"));
            }
            let target = CString::new(target).map_err(|_| self.invalid(&display, "has a NUL byte in its target"))?;
            self.clear(parent, name, false, &display)?;
            sys::symlinkat(&target, parent, name).map_err(|e| self.io(&display, "symlink", e))?;
            self.size += target.as_bytes().len() as u64;
            self.set_at_meta(parent, name, &meta, false, &display)?;
        } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            let (fmt, dev) = if kind.is_fifo() {
                (libc::S_IFIFO, 0)
            } else {
                let major = entry.header().device_major().map_err(|e| self.read_err(e))?.unwrap_or(0);
                let minor = entry.header().device_minor().map_err(|e| self.read_err(e))?.unwrap_or(0);
                let fmt = if kind.is_character_special() { libc::S_IFCHR } else { libc::S_IFBLK };
                (fmt, libc::makedev(major, minor))
            };
            self.clear(parent, name, false, &display)?;
            sys::mknodat(parent, name, fmt | 0o600, dev).map_err(|e| self.io(&display, "mknod", e))?;
            self.set_at_meta(parent, name, &meta, true, &display)?;
        } else {
            return Err(self.invalid(&display, format!("has unsupported type {:?}", kind)));
        }
        Ok(())
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>) -> Result<Meta, SnapshotError> {
        let h = entry.header();
        let mode = h.mode().map_err(|e| self.read_err(e))? & 0o7777;
        let uid = h.uid().map_err(|e| self.read_err(e))?;
        let gid = h.gid().map_err(|e| self.read_err(e))?;
        let secs = h.mtime().map_err(|e| self.read_err(e))?;
        let mut mtime = libc::timespec { tv_sec: secs.min(i64::MAX as u64) as libc::time_t, tv_nsec: 0 };
        let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) else {
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            return Err(self.invalid(&path, format!("has an out of range owner {uid}:{gid}")));
        };
        let mut xattrs = Vec::new();
        if let Some(exts) = entry.pax_extensions().map_err(|e| self.read_err(e))? {
            for ext in exts {
                let ext = ext.map_err(|e| self.read_err(e))?;
                let key = ext.key_bytes();
                if key == b"mtime" {
                    if let Some(t) = parse_pax_time(ext.value_bytes()) {
                        mtime = t;
                    }
                } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
                        log::warn!("layer {}: dropping overlay xattr {}", self.layer, String::from_utf8_lossy(name));
                        continue;
                    }
                    if let Ok(name) = CString::new(name) {
                        xattrs.push((name, ext.value_bytes().to_vec()));
                    }
                }
            }
        }
        Ok(Meta { mode: mode as libc::mode_t, uid, gid, mtime, xattrs })
    }

    fn copy_data<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        file: &mut File,
        display: &str,
    ) -> Result<(), SnapshotError> {
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_err(e)),
            };
            let Some(chunk) = self.buf.get(..n) else {
                return Err(self.read_err(io::Error::other("reader returned more than asked")));
            };
            if let Err(e) = file.write_all(chunk) {
                return Err(self.io(display, "write file", e));
            }
            self.size += n as u64;
        }
    }

    /// Ownership, then mode (chown clears setuid/setgid, so the mode comes after), then xattrs.
    fn set_fd_meta(&self, fd: &OwnedFd, meta: &Meta, display: &str) -> Result<(), SnapshotError> {
        let raw = fd.as_raw_fd();
        sys::fchown(raw, meta.uid, meta.gid).map_err(|e| self.io(display, "chown", e))?;
        sys::fchmod(raw, meta.mode).map_err(|e| self.io(display, "chmod", e))?;
        for (name, value) in &meta.xattrs {
            self.xattr_result(sys::fsetxattr(raw, name, value), name, display)?;
        }
        Ok(())
    }

    /// The same for a symlink or device node, by name in `dir`; also sets its times.
    fn set_at_meta(
        &self,
        dir: RawFd,
        name: &CStr,
        meta: &Meta,
        chmod: bool,
        display: &str,
    ) -> Result<(), SnapshotError> {
        sys::lchown_at(dir, name, meta.uid, meta.gid).map_err(|e| self.io(display, "chown", e))?;
        if chmod {
            sys::chmod_at(dir, name, meta.mode).map_err(|e| self.io(display, "chmod", e))?;
        }
        for (xname, value) in &meta.xattrs {
            self.xattr_result(sys::lsetxattr_at(dir, name, xname, value), xname, display)?;
        }
        sys::lutimens_at(dir, name, meta.mtime).map_err(|e| self.io(display, "set times", e))
    }

    /// A filesystem without support for an xattr namespace is not worth failing a pull for.
    fn xattr_result(&self, r: io::Result<()>, name: &CStr, display: &str) -> Result<(), SnapshotError> {
        match r {
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {
                log::warn!("layer {}: entry {display:?}: xattr {name:?} not supported here, skipped", self.layer);
                Ok(())
            }
            Err(e) => Err(self.io(display, &format!("set xattr {}", name.to_string_lossy()), e)),
            Ok(()) => Ok(()),
        }
    }

    fn root_dir(&mut self, meta: &Meta, display: &str) -> Result<(), SnapshotError> {
        let fd = sys::dup(&self.root).map_err(|e| self.io(display, "open layer root", e))?;
        self.set_fd_meta(&fd, meta, display)?;
        self.dirs.push((Vec::new(), meta.mtime));
        Ok(())
    }

    fn whiteout(&mut self, parent: RawFd, name: &[u8], display: &str) -> Result<(), SnapshotError> {
        if name == OPAQUE_MARKER {
            // Both namespaces: the user.* twin is what an overlay mounted in a user namespace
            // reads (`userxattr`, userns-remap).
            return overlay::mark_opaque(parent).map_err(|e| self.io(display, "mark directory opaque", e));
        }
        if name.starts_with(WHITEOUT_META_PREFIX) {
            return Ok(());
        }
        let hidden = &name[WHITEOUT_PREFIX.len()..];
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(self.invalid(display, "is a whiteout of an invalid name"));
        }
        let hidden = CString::new(hidden).map_err(|_| self.invalid(display, "contains a NUL byte"))?;
        self.clear(parent, &hidden, false, display)?;
        sys::mknodat(parent, &hidden, libc::S_IFCHR, libc::makedev(0, 0))
            .map_err(|e| self.io(display, "create whiteout", e))
    }

    fn hard_link<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        parents: &[CString],
        name: &CStr,
        display: &str,
    ) -> Result<(), SnapshotError> {
        let raw_target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
        let target_display = String::from_utf8_lossy(&raw_target).into_owned();
        let target = split_path(&raw_target).map_err(|reason| {
            self.invalid(display, format!("is a hard link whose target {target_display:?} {reason}"))
        })?;
        let Some((target_name, target_parents)) = target.split_last() else {
            return Err(self.invalid(display, "is a hard link to the layer root"));
        };
        let missing = format!("is a hard link to {target_display:?}, not an entry of this layer");
        let target_dir = match self.walk(target_parents, false).map_err(|e| self.io(display, "open link target", e))? {
            Walk::Ok(fd) => fd,
            Walk::Missing | Walk::Blocked(_) => return Err(self.invalid(display, missing)),
        };
        match sys::lstat_at_if_exists(target_dir.as_raw_fd(), target_name)
            .map_err(|e| self.io(display, "stat link target", e))?
        {
            Some(st) if st.st_mode & libc::S_IFMT != libc::S_IFDIR => {}
            _ => return Err(self.invalid(display, missing)),
        }
        let parent = self.parent(parents, display)?;
        self.clear(parent, name, false, display)?;
        match sys::linkat(target_dir.as_raw_fd(), target_name, parent, name) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Err(self.invalid(display, missing)),
            Err(e) => Err(self.io(display, "hard link", e)),
        }
    }

    /// Sets directory mtimes last: creating entries inside a directory changes its mtime.
    fn set_dir_times(&mut self) -> Result<(), SnapshotError> {
        self.parent_cache = None;
        let dirs = std::mem::take(&mut self.dirs);
        for (comps, mtime) in &dirs {
            let display = comps.iter().map(|c| c.to_string_lossy()).collect::<Vec<_>>().join("/");
            // A directory replaced by a later entry is skipped.
            let fd = match self.walk(comps, false).map_err(|e| self.io(&display, "open directory", e))? {
                Walk::Ok(fd) => fd,
                Walk::Missing | Walk::Blocked(_) => continue,
            };
            sys::futimens(fd.as_raw_fd(), *mtime).map_err(|e| self.io(&display, "set times", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_time_table() {
        let cases: &[(&str, Option<(i64, i64)>)] = &[
            ("1700000000", Some((1700000000, 0))),
            ("1700000000.5", Some((1700000000, 500_000_000))),
            ("1700000000.123456789123", Some((1700000000, 123_456_789))),
            ("-1.5", Some((-2, 500_000_000))),
            ("x", None),
            ("1.x", None),
        ];
        for (input, want) in cases {
            let got = parse_pax_time(input.as_bytes()).map(|t| (t.tv_sec, t.tv_nsec));
            assert_eq!(got, *want, "{input}");
        }
    }
}
