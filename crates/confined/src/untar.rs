//! The one tar extraction loop: for each entry, the name rules ([`crate::entry`]), the parent
//! opened below the extraction directory through fds, what is there replaced (or not), the
//! entry created with an `*at` call in its parent's fd, then its metadata. What the extractors
//! of the project differ in is said by a [`Policy`], and nothing else.
//!
//! Xattrs from PAX `SCHILY.xattr.*` records are kept when the policy asks for them, except
//! `trusted.overlay.*` and `user.overlay.*`, which are always dropped: overlayfs reads them from
//! lower layers as instructions (`redirect`, `metacopy`, `origin`, `opaque`, ...) that no
//! archive may give. The only overlay metadata an extraction produces is what whiteout entries
//! say, and only when the policy turns whiteouts on (layer apply).

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::entry::{self, Refusal};
use crate::{self as sys, overlay};

const READ_BUFFER: usize = 1 << 20;
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";

/// How the ids of an entry become the owner of what it creates.
#[derive(Clone, Copy)]
pub enum Owner<'a> {
    /// The entry's uid and gid, as the archive gives them (layer apply).
    AsGiven,
    /// Every entry owned by these ids, whatever the archive says.
    Fixed(u32, u32),
    /// The entry's ids through this map; `None` refuses the entry.
    Mapped(&'a dyn Fn(u32, u32) -> Option<(u32, u32)>),
    /// No chown at all: what is created belongs to whoever extracts (the CLI's `cp` to the
    /// host without `-a`, run by any user).
    Unchanged,
}

/// What an existing object at an entry's name may be replaced by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// A later entry always replaces what is there (a directory over a directory is kept, and
    /// takes the new entry's metadata).
    Always,
    /// As `Always`, but a directory is never replaced by a non-directory nor the other way round
    /// (`docker cp`'s `noOverwriteDirNonDir`).
    NoDirNonDir,
}

/// How the parent directories of an entry are opened below the extraction directory.
#[derive(Clone, Copy)]
pub enum Resolve<'a> {
    /// Element by element from the extraction directory's fd with `O_NOFOLLOW`: any symlink on
    /// the way is refused (layer apply: a layer's tree is its own, nothing in it is to be
    /// followed).
    NoFollow,
    /// With `openat2(RESOLVE_IN_ROOT)` in `root`, from `path`, the extraction directory's path
    /// inside it (`docker cp` into a container): symlinks that were there before are followed,
    /// as the container means them, but cannot lead out of `root`; a symlink made by the same
    /// archive is never followed (an entry through one is refused).
    InRoot { root: RawFd, path: &'a [u8] },
}

/// A rewrite of entry names ([`Policy::rename`]).
pub type Rename<'a> = dyn Fn(&[u8]) -> Vec<u8> + 'a;

/// What the extractors differ in; every field is one point of difference.
#[derive(Clone, Copy)]
pub struct Policy<'a> {
    pub resolve: Resolve<'a>,
    /// Whether an entry naming the extraction directory itself (`./`) gives it its metadata
    /// (layer apply); otherwise such an entry is skipped and the directory keeps its own.
    pub root_entry: bool,
    pub owner: Owner<'a>,
    pub replace: Replace,
    /// Whether PAX `mtime` records give nanoseconds; otherwise the header's whole seconds.
    pub pax_times: bool,
    /// Whether `SCHILY.xattr.*` records are set (overlay ones never are).
    pub xattrs: bool,
    /// Whether an entry type that means nothing in a file system (or is not supported) is
    /// refused; otherwise it is skipped.
    pub refuse_unknown: bool,
    /// Whether device nodes and fifos are made; otherwise they are skipped (a stage copied
    /// into a build has no use for them).
    pub nodes: bool,
    /// Whether `.wh.` names are Docker whiteouts, written in overlayfs form (layer apply).
    pub whiteouts: bool,
    /// Whether a numeric header field that does not parse (an empty mode, say) reads as a
    /// default (mode 0644, ids and time 0, device 0:0), as `docker cp` has always taken them;
    /// otherwise the archive is refused as unreadable.
    pub lenient_header: bool,
    /// Rewrites every entry name, and hard-link target, before the name rules see it (the
    /// CLI's `cp` renames the first element to the destination's name).
    pub rename: Option<&'a Rename<'a>>,
}

/// Why an entry was refused. [`Problem::reason`] words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Its name breaks the entry name rules.
    Name(Refusal),
    /// It names the extraction directory itself but is not a directory.
    RootNotDirectory,
    /// A parent element is a symlink or not a directory.
    Blocked(String),
    /// A parent element is a symlink made by the same archive ([`Resolve::InRoot`]).
    ThroughArchiveLink(String),
    /// A symlink entry without a target.
    SymlinkWithoutTarget,
    /// A symlink entry whose target has a NUL byte.
    SymlinkTargetNul,
    /// A hard link whose target breaks the entry name rules.
    LinkTargetName { target: String, refusal: Refusal },
    /// A hard link to the extraction directory.
    LinkToRoot,
    /// A hard link whose target is not a non-directory extracted below the directory.
    LinkTargetMissing(String),
    /// An owner out of the 32-bit range.
    OwnerRange(u64, u64),
    /// An owner that [`Owner::Mapped`] has no ids for.
    OwnerUnmapped(u32, u32),
    /// A directory over a non-directory or the other way round, under [`Replace::NoDirNonDir`].
    Overwrite { dir: bool },
    /// A whiteout that hides no valid name.
    InvalidWhiteout,
    /// An entry type the policy refuses.
    Unsupported(String),
}

impl Problem {
    /// The reason, as the end of a sentence about the entry; `what` names the archive (`layer`).
    pub fn reason(&self, what: &str) -> String {
        match self {
            Problem::Name(Refusal::Parent) => format!("escapes the {what} root"),
            Problem::Name(Refusal::Nul) => "contains a NUL byte".into(),
            Problem::RootNotDirectory => format!("names the {what} root but is not a directory"),
            Problem::Blocked(c) => format!("passes through {c:?}, a symlink or not a directory"),
            Problem::ThroughArchiveLink(l) => format!("goes through the symbolic link {l:?} of the same archive"),
            Problem::SymlinkWithoutTarget => "is a symlink without a target".into(),
            Problem::SymlinkTargetNul => "has a NUL byte in its target".into(),
            Problem::LinkTargetName { target, refusal: Refusal::Parent } => {
                format!("is a hard link whose target {target:?} escapes the {what} root")
            }
            Problem::LinkTargetName { target, refusal: Refusal::Nul } => {
                format!("is a hard link whose target {target:?} contains a NUL byte")
            }
            Problem::LinkToRoot => format!("is a hard link to the {what} root"),
            Problem::LinkTargetMissing(t) => format!("is a hard link to {t:?}, not an entry of this {what}"),
            Problem::OwnerRange(u, g) => format!("has an out of range owner {u}:{g}"),
            Problem::OwnerUnmapped(u, g) => format!("has an owner {u}:{g} outside the id map"),
            Problem::Overwrite { dir: true } => "is a directory in place of a non-directory".into(),
            Problem::Overwrite { dir: false } => "is a non-directory in place of a directory".into(),
            Problem::InvalidWhiteout => "is a whiteout of an invalid name".into(),
            Problem::Unsupported(kind) => format!("has unsupported type {kind}"),
        }
    }
}

/// Why an extraction stopped.
#[derive(Debug)]
pub enum Error {
    /// The entry is refused.
    Invalid { entry: String, problem: Problem },
    /// A system call on the entry failed: `what` says which step.
    Io { entry: String, what: String, source: io::Error },
    /// The archive could not be read.
    Read(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid { entry, problem } => write!(f, "entry {entry:?} {}", problem.reason("archive")),
            Error::Io { entry, what, source } => write!(f, "entry {entry:?}: {what}: {source}"),
            Error::Read(e) => write!(f, "cannot read the archive: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// What an extraction wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// The apparent size of the files (and symlink targets) left below the directory, each
    /// inode once.
    pub size: u64,
    /// The bytes of file content written, replaced files included.
    pub written: u64,
}

/// Extracts every entry of `archive` below the directory `root`, as `policy` says. Parents are
/// opened as [`Resolve`] says, so that no symlink made by an earlier entry can lead a write
/// elsewhere; missing parents are created (0755, as Docker does).
pub fn extract<R: Read>(root: &OwnedFd, archive: &mut tar::Archive<R>, policy: &Policy<'_>) -> Result<Summary, Error> {
    let mut ex = Extractor {
        root,
        policy,
        parent_cache: None,
        made_links: HashSet::new(),
        dirs: Vec::new(),
        size: 0,
        written: 0,
        buf: vec![0; READ_BUFFER],
    };
    for entry in archive.entries().map_err(Error::Read)? {
        let mut entry = entry.map_err(Error::Read)?;
        ex.entry(&mut entry)?;
    }
    ex.set_dir_times()?;
    Ok(Summary { size: ex.size, written: ex.written })
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

/// Metadata of one entry, gathered from its header and PAX records.
struct Meta {
    mode: libc::mode_t,
    /// `None`: left as created.
    owner: Option<(u32, u32)>,
    mtime: libc::timespec,
    xattrs: Vec<(CString, Vec<u8>)>,
}

enum Walk {
    Ok(OwnedFd),
    /// A component is missing (only when not creating).
    Missing,
    /// A component is a symlink or not a directory.
    Blocked(String),
    /// A component is a symlink made by this archive.
    ThroughArchiveLink(String),
}

fn joined(comps: &[CString]) -> Vec<u8> {
    let mut key = Vec::new();
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            key.push(b'/');
        }
        key.extend_from_slice(c.as_bytes());
    }
    key
}

struct Extractor<'a> {
    root: &'a OwnedFd,
    policy: &'a Policy<'a>,
    /// The last parent directory walked to, as entries of one directory come together.
    parent_cache: Option<(Vec<CString>, OwnedFd)>,
    /// Symlinks made by this archive, as `/`-joined components ([`Resolve::InRoot`]).
    made_links: HashSet<Vec<u8>>,
    /// Directories whose mtime is set at the end, after their contents stopped changing.
    dirs: Vec<(Vec<CString>, libc::timespec)>,
    size: u64,
    written: u64,
    buf: Vec<u8>,
}

fn invalid(entry: &str, problem: Problem) -> Error {
    Error::Invalid { entry: entry.to_string(), problem }
}

fn io_err<'a>(entry: &'a str, what: &'a str) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io { entry: entry.to_string(), what: what.to_string(), source }
}

impl Extractor<'_> {
    /// Opens the directory at `comps` below the extraction directory as the policy resolves,
    /// creating missing directories (mode 0755, like Docker) when `create`.
    fn walk(&self, comps: &[CString], create: bool) -> io::Result<Walk> {
        match self.policy.resolve {
            Resolve::NoFollow => self.walk_no_follow(comps, create),
            Resolve::InRoot { root, path } => {
                for i in 1..=comps.len() {
                    let key = joined(&comps[..i]);
                    if self.made_links.contains(&key) {
                        return Ok(Walk::ThroughArchiveLink(String::from_utf8_lossy(&key).into_owned()));
                    }
                }
                walk_in_root(root, path, comps, create)
            }
        }
    }

    /// From the extraction directory's fd, never following a symlink.
    fn walk_no_follow(&self, comps: &[CString], create: bool) -> io::Result<Walk> {
        let mut cur = sys::dup(self.root)?;
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
    fn parent(&mut self, parents: &[CString], entry: &str) -> Result<RawFd, Error> {
        if parents.is_empty() {
            return Ok(self.root.as_raw_fd());
        }
        let hit = matches!(&self.parent_cache, Some((p, _)) if p.as_slice() == parents);
        if !hit {
            let fd = match self.walk(parents, true).map_err(io_err(entry, "open parent directory"))? {
                Walk::Ok(fd) => fd,
                // Not reached: a walk that creates finds nothing missing.
                Walk::Missing => return Err(io_err(entry, "open parent directory")(io::ErrorKind::NotFound.into())),
                Walk::Blocked(c) => return Err(invalid(entry, Problem::Blocked(c))),
                Walk::ThroughArchiveLink(l) => return Err(invalid(entry, Problem::ThroughArchiveLink(l))),
            };
            self.parent_cache = Some((parents.to_vec(), fd));
        }
        match &self.parent_cache {
            Some((_, fd)) => Ok(fd.as_raw_fd()),
            None => Err(io_err(entry, "open parent directory")(io::Error::from_raw_os_error(libc::EBADF))),
        }
    }

    /// Removes whatever is at `name` in `dir`, so a later entry replaces an earlier one. Returns
    /// whether there was a directory and `is_dir` keeps it.
    fn clear(&mut self, dir: RawFd, name: &CStr, is_dir: bool, entry: &str) -> Result<bool, Error> {
        let Some(st) = sys::lstat_at_if_exists(dir, name).map_err(io_err(entry, "stat"))? else {
            return Ok(false);
        };
        let was_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        if self.policy.replace == Replace::NoDirNonDir && was_dir != is_dir {
            return Err(invalid(entry, Problem::Overwrite { dir: is_dir }));
        }
        if was_dir {
            if is_dir {
                return Ok(true);
            }
            // Replacing a whole directory is rare; the cached parent may live inside it.
            self.parent_cache = None;
            sys::remove_tree_at(dir, name, true).map_err(io_err(entry, "remove replaced directory"))?;
        } else {
            if st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_nlink == 1 {
                self.size = self.size.saturating_sub(st.st_size as u64);
            }
            sys::unlinkat(dir, name, 0).map_err(io_err(entry, "remove replaced entry"))?;
        }
        Ok(false)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), Error> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let raw_path = match self.policy.rename {
            Some(rename) => rename(&entry.path_bytes()),
            None => entry.path_bytes().into_owned(),
        };
        let display = String::from_utf8_lossy(&raw_path).into_owned();
        let comps = entry::c_components(&raw_path).map_err(|e| invalid(&display, Problem::Name(e.refusal)))?;
        let meta = self.meta(entry, &display)?;
        let is_dir = kind.is_dir() || (kind.is_file() && raw_path.ends_with(b"/"));

        let Some((name, parents)) = comps.split_last() else {
            if !self.policy.root_entry {
                return Ok(());
            }
            if is_dir {
                return self.root_dir(&meta, &display);
            }
            return Err(invalid(&display, Problem::RootNotDirectory));
        };
        let name_bytes = name.as_bytes();

        if self.policy.whiteouts && name_bytes.starts_with(WHITEOUT_PREFIX) {
            let parent = self.parent(parents, &display)?;
            return self.whiteout(parent, name_bytes, &display);
        }

        if kind.is_hard_link() {
            return self.hard_link(entry, parents, name, &display);
        }

        let is_file = kind.is_file() || kind.is_contiguous() || kind.is_gnu_sparse();
        let is_node = kind.is_character_special() || kind.is_block_special() || kind.is_fifo();
        if is_node && !self.policy.nodes {
            return Ok(());
        }
        if !(is_dir || is_file || kind.is_symlink() || is_node) {
            if self.policy.refuse_unknown {
                return Err(invalid(&display, Problem::Unsupported(format!("{kind:?}"))));
            }
            return Ok(());
        }

        let parent = self.parent(parents, &display)?;
        if is_dir {
            let existed = self.clear(parent, name, true, &display)?;
            if !existed {
                sys::mkdirat(parent, name, 0o700).map_err(io_err(&display, "mkdir"))?;
            }
            let fd = sys::open_dir_at(parent, name).map_err(io_err(&display, "open directory"))?;
            self.set_fd_meta(&fd, &meta, &display)?;
            self.dirs.push((comps.clone(), meta.mtime));
        } else if is_file {
            self.clear(parent, name, false, &display)?;
            let fd = sys::openat(parent, name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW, 0o600)
                .map_err(io_err(&display, "create file"))?;
            let mut file = File::from(fd);
            self.copy_data(entry, &mut file, &display)?;
            let fd = OwnedFd::from(file);
            self.set_fd_meta(&fd, &meta, &display)?;
            sys::futimens(fd.as_raw_fd(), meta.mtime).map_err(io_err(&display, "set times"))?;
        } else if kind.is_symlink() {
            let target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
            if target.is_empty() {
                return Err(invalid(&display, Problem::SymlinkWithoutTarget));
            }
            let target = CString::new(target).map_err(|_| invalid(&display, Problem::SymlinkTargetNul))?;
            self.clear(parent, name, false, &display)?;
            sys::symlinkat(&target, parent, name).map_err(io_err(&display, "symlink"))?;
            if matches!(self.policy.resolve, Resolve::InRoot { .. }) {
                self.made_links.insert(joined(&comps));
            }
            self.size += target.as_bytes().len() as u64;
            self.set_at_meta(parent, name, &meta, false, &display)?;
        } else {
            let (fmt, dev) = if kind.is_fifo() {
                (libc::S_IFIFO, 0)
            } else {
                let major = self.field(entry.header().device_major(), None)?.unwrap_or(0);
                let minor = self.field(entry.header().device_minor(), None)?.unwrap_or(0);
                let fmt = if kind.is_character_special() { libc::S_IFCHR } else { libc::S_IFBLK };
                (fmt, libc::makedev(major, minor))
            };
            self.clear(parent, name, false, &display)?;
            sys::mknodat(parent, name, fmt | 0o600, dev).map_err(io_err(&display, "mknod"))?;
            self.set_at_meta(parent, name, &meta, true, &display)?;
        }
        Ok(())
    }

    /// A numeric header field, or `default` where it does not parse and the policy is lenient.
    fn field<T>(&self, value: io::Result<T>, default: T) -> Result<T, Error> {
        match value {
            Err(_) if self.policy.lenient_header => Ok(default),
            r => r.map_err(Error::Read),
        }
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, display: &str) -> Result<Meta, Error> {
        let h = entry.header();
        let mode = self.field(h.mode(), 0o644)? & 0o7777;
        let uid = self.field(h.uid(), 0)?;
        let gid = self.field(h.gid(), 0)?;
        let secs = self.field(h.mtime(), 0)?;
        let mut mtime = libc::timespec { tv_sec: secs.min(i64::MAX as u64) as libc::time_t, tv_nsec: 0 };
        let given = || match (u32::try_from(uid), u32::try_from(gid)) {
            (Ok(u), Ok(g)) => Ok((u, g)),
            _ => Err(invalid(display, Problem::OwnerRange(uid, gid))),
        };
        let owner = match self.policy.owner {
            Owner::AsGiven => Some(given()?),
            Owner::Fixed(u, g) => Some((u, g)),
            Owner::Mapped(map) => {
                let (u, g) = given()?;
                Some(map(u, g).ok_or_else(|| invalid(display, Problem::OwnerUnmapped(u, g)))?)
            }
            Owner::Unchanged => None,
        };
        let mut xattrs = Vec::new();
        if let Some(exts) = entry.pax_extensions().map_err(Error::Read)? {
            for ext in exts {
                let ext = ext.map_err(Error::Read)?;
                let key = ext.key_bytes();
                if key == b"mtime" && self.policy.pax_times {
                    if let Some(t) = parse_pax_time(ext.value_bytes()) {
                        mtime = t;
                    }
                } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    if !self.policy.xattrs {
                        continue;
                    }
                    if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
                        log::warn!("entry {display:?}: dropping overlay xattr {}", String::from_utf8_lossy(name));
                        continue;
                    }
                    if let Ok(name) = CString::new(name) {
                        xattrs.push((name, ext.value_bytes().to_vec()));
                    }
                }
            }
        }
        Ok(Meta { mode: mode as libc::mode_t, owner, mtime, xattrs })
    }

    fn copy_data<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        file: &mut File,
        display: &str,
    ) -> Result<(), Error> {
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Read(e)),
            };
            let Some(chunk) = self.buf.get(..n) else {
                return Err(Error::Read(io::Error::other("reader returned more than asked")));
            };
            file.write_all(chunk).map_err(io_err(display, "write file"))?;
            self.size += n as u64;
            self.written += n as u64;
        }
    }

    /// Ownership, then mode (chown clears setuid/setgid, so the mode comes after), then xattrs.
    fn set_fd_meta(&self, fd: &OwnedFd, meta: &Meta, display: &str) -> Result<(), Error> {
        let raw = fd.as_raw_fd();
        if let Some((uid, gid)) = meta.owner {
            sys::fchown(raw, uid, gid).map_err(io_err(display, "chown"))?;
        }
        sys::fchmod(raw, meta.mode).map_err(io_err(display, "chmod"))?;
        for (name, value) in &meta.xattrs {
            xattr_result(sys::fsetxattr(raw, name, value), name, display)?;
        }
        Ok(())
    }

    /// The same for a symlink or device node, by name in `dir`; also sets its times.
    fn set_at_meta(&self, dir: RawFd, name: &CStr, meta: &Meta, chmod: bool, display: &str) -> Result<(), Error> {
        if let Some((uid, gid)) = meta.owner {
            sys::lchown_at(dir, name, uid, gid).map_err(io_err(display, "chown"))?;
        }
        if chmod {
            // In a live container's tree another process may swap the node for a symlink
            // meanwhile: refused there (fchmodat2, Linux 6.6) rather than followed.
            let chmod = match self.policy.resolve {
                Resolve::NoFollow => sys::chmod_at(dir, name, meta.mode),
                Resolve::InRoot { .. } => sys::chmod_at_nofollow(dir, name, meta.mode),
            };
            chmod.map_err(io_err(display, "chmod"))?;
        }
        for (xname, value) in &meta.xattrs {
            xattr_result(sys::lsetxattr_at(dir, name, xname, value), xname, display)?;
        }
        sys::lutimens_at(dir, name, meta.mtime).map_err(io_err(display, "set times"))
    }

    fn root_dir(&mut self, meta: &Meta, display: &str) -> Result<(), Error> {
        let fd = sys::dup(self.root).map_err(io_err(display, "open the extraction directory"))?;
        self.set_fd_meta(&fd, meta, display)?;
        self.dirs.push((Vec::new(), meta.mtime));
        Ok(())
    }

    fn whiteout(&mut self, parent: RawFd, name: &[u8], display: &str) -> Result<(), Error> {
        if name == OPAQUE_MARKER {
            // Both namespaces: the user.* twin is what an overlay mounted in a user namespace
            // reads (`userxattr`, userns-remap).
            return overlay::mark_opaque(parent).map_err(io_err(display, "mark directory opaque"));
        }
        if name.starts_with(WHITEOUT_META_PREFIX) {
            return Ok(());
        }
        let hidden = &name[WHITEOUT_PREFIX.len()..];
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(invalid(display, Problem::InvalidWhiteout));
        }
        let hidden = CString::new(hidden).map_err(|_| invalid(display, Problem::Name(Refusal::Nul)))?;
        self.clear(parent, &hidden, false, display)?;
        sys::mknodat(parent, &hidden, libc::S_IFCHR, libc::makedev(0, 0)).map_err(io_err(display, "create whiteout"))
    }

    fn hard_link<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        parents: &[CString],
        name: &CStr,
        display: &str,
    ) -> Result<(), Error> {
        let raw_target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
        let raw_target = match self.policy.rename {
            Some(rename) => rename(&raw_target),
            None => raw_target,
        };
        let target_display = String::from_utf8_lossy(&raw_target).into_owned();
        let target = entry::c_components(&raw_target).map_err(|e| {
            invalid(display, Problem::LinkTargetName { target: target_display.clone(), refusal: e.refusal })
        })?;
        let Some((target_name, target_parents)) = target.split_last() else {
            return Err(invalid(display, Problem::LinkToRoot));
        };
        let missing = || invalid(display, Problem::LinkTargetMissing(target_display.clone()));
        let target_dir = match self.walk(target_parents, false).map_err(io_err(display, "open link target"))? {
            Walk::Ok(fd) => fd,
            Walk::Missing | Walk::Blocked(_) => return Err(missing()),
            Walk::ThroughArchiveLink(l) => return Err(invalid(display, Problem::ThroughArchiveLink(l))),
        };
        match sys::lstat_at_if_exists(target_dir.as_raw_fd(), target_name)
            .map_err(io_err(display, "stat link target"))?
        {
            Some(st) if st.st_mode & libc::S_IFMT != libc::S_IFDIR => {}
            _ => return Err(missing()),
        }
        let parent = self.parent(parents, display)?;
        self.clear(parent, name, false, display)?;
        match sys::linkat(target_dir.as_raw_fd(), target_name, parent, name) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Err(missing()),
            Err(e) => Err(io_err(display, "hard link")(e)),
        }
    }

    /// Sets directory mtimes last: creating entries inside a directory changes its mtime.
    fn set_dir_times(&mut self) -> Result<(), Error> {
        self.parent_cache = None;
        let dirs = std::mem::take(&mut self.dirs);
        for (comps, mtime) in &dirs {
            let display = String::from_utf8_lossy(&joined(comps)).into_owned();
            let Some((name, parents)) = comps.split_last() else {
                sys::futimens(self.root.as_raw_fd(), *mtime).map_err(io_err(&display, "set times"))?;
                continue;
            };
            // A directory replaced by a later entry is skipped.
            let parent = match self.walk(parents, false).map_err(io_err(&display, "open directory"))? {
                Walk::Ok(fd) => fd,
                Walk::Missing | Walk::Blocked(_) | Walk::ThroughArchiveLink(_) => continue,
            };
            match sys::lstat_at_if_exists(parent.as_raw_fd(), name).map_err(io_err(&display, "stat"))? {
                Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {}
                _ => continue,
            }
            sys::lutimens_at(parent.as_raw_fd(), name, *mtime).map_err(io_err(&display, "set times"))?;
        }
        Ok(())
    }
}

/// [`Resolve::InRoot`]: opens `path/comps` in `root` (`O_PATH`: the `*at` calls need no more),
/// creating what is missing element by element, each resolved in `root` again.
fn walk_in_root(root: RawFd, path: &[u8], comps: &[CString], create: bool) -> io::Result<Walk> {
    let flags = libc::O_PATH | libc::O_DIRECTORY;
    let mut full = path.strip_suffix(b"/").unwrap_or(path).to_vec();
    let base = full.len();
    for c in comps {
        full.push(b'/');
        full.extend_from_slice(c.as_bytes());
    }
    let blocked =
        |full: &[u8]| Walk::Blocked(String::from_utf8_lossy(full.get(base + 1..).unwrap_or(full)).into_owned());
    let open = |p: &[u8]| sys::openat2_in_root(root, &sys::cstring(if p.is_empty() { b"/" } else { p })?, flags);
    match open(&full) {
        Ok(fd) => return Ok(Walk::Ok(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::ELOOP)) => return Ok(blocked(&full)),
        Err(e) => return Err(e),
    }
    if !create {
        return Ok(Walk::Missing);
    }
    let mut cur = open(&full[..base])?;
    let mut sub = full[..base].to_vec();
    for c in comps {
        sub.push(b'/');
        sub.extend_from_slice(c.as_bytes());
        cur = match open(&sub) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                sys::mkdirat(cur.as_raw_fd(), c, 0o755)?;
                open(&sub)?
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::ELOOP)) => return Ok(blocked(&sub)),
            Err(e) => return Err(e),
        };
    }
    Ok(Walk::Ok(cur))
}

/// A file system without support for an xattr namespace is not worth failing an extraction for.
fn xattr_result(r: io::Result<()>, name: &CStr, display: &str) -> Result<(), Error> {
    match r {
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {
            log::warn!("entry {display:?}: xattr {name:?} not supported here, skipped");
            Ok(())
        }
        Err(e) => Err(io_err(display, &format!("set xattr {}", name.to_string_lossy()))(e)),
        Ok(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::{Path, PathBuf};

    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Chown, mknod and trusted.* xattrs need root.
    fn scratch(name: &str) -> Option<Scratch> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("wharf-untar-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root")).unwrap();
        Some(Scratch(dir))
    }

    const LAYER: Policy<'static> = Policy {
        resolve: Resolve::NoFollow,
        root_entry: true,
        owner: Owner::AsGiven,
        replace: Replace::Always,
        pax_times: true,
        xattrs: true,
        refuse_unknown: true,
        nodes: true,
        whiteouts: true,
        lenient_header: false,
        rename: None,
    };

    const COPY: Policy<'static> = Policy {
        resolve: Resolve::NoFollow,
        root_entry: false,
        owner: Owner::Fixed(0, 0),
        replace: Replace::NoDirNonDir,
        pax_times: false,
        xattrs: false,
        refuse_unknown: false,
        nodes: true,
        whiteouts: false,
        lenient_header: true,
        rename: None,
    };

    /// A tar built entry by entry.
    struct Tar(tar::Builder<Vec<u8>>);

    impl Tar {
        fn new() -> Tar {
            Tar(tar::Builder::new(Vec::new()))
        }

        fn entry(mut self, kind: tar::EntryType, name: &str, link: Option<&str>, data: &[u8], owner: u64) -> Tar {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(if kind.is_dir() { 0o750 } else { 0o640 });
            h.set_uid(owner);
            h.set_gid(owner);
            h.set_mtime(1_000_000);
            h.set_size(data.len() as u64);
            if kind.is_character_special() || kind.is_block_special() {
                h.set_device_major(0).unwrap();
                h.set_device_minor(0).unwrap();
            }
            // Set raw: the tar crate refuses to write the `..` names these tests need.
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(link) = link {
                old.linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
            h.set_cksum();
            self.0.append(&h, data).unwrap();
            self
        }

        fn file(self, name: &str, data: &[u8]) -> Tar {
            self.entry(tar::EntryType::Regular, name, None, data, 7)
        }

        fn dir(self, name: &str) -> Tar {
            self.entry(tar::EntryType::Directory, name, None, b"", 7)
        }

        fn link(self, kind: tar::EntryType, name: &str, target: &str) -> Tar {
            self.entry(kind, name, Some(target), b"", 7)
        }

        /// A PAX record set for the next entry.
        fn pax(mut self, records: &[(&str, &[u8])]) -> Tar {
            self.0.append_pax_extensions(records.iter().copied()).unwrap();
            self
        }

        fn bytes(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }
    }

    fn run(root: &Path, tar: &[u8], policy: &Policy<'_>) -> Result<Summary, Error> {
        let fd = OwnedFd::from(File::open(root).unwrap());
        extract(&fd, &mut tar::Archive::new(tar), policy)
    }

    fn problem(r: Result<Summary, Error>) -> (String, Problem) {
        match r {
            Err(Error::Invalid { entry, problem }) => (entry, problem),
            other => panic!("not refused: {other:?}"),
        }
    }

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

    #[test]
    fn every_entry_type_with_its_metadata() {
        let Some(s) = scratch("types") else { return };
        let root = s.0.join("root");
        let tar = Tar::new()
            .dir("d/")
            .pax(&[("mtime", b"1000000.25"), ("SCHILY.xattr.user.test", b"v"), ("SCHILY.xattr.user.overlay.x", b"y")])
            .file("d/f", b"hello")
            .link(tar::EntryType::Symlink, "d/s", "f")
            .link(tar::EntryType::Link, "d/h", "d/f")
            .entry(tar::EntryType::Fifo, "p", None, b"", 7)
            .entry(tar::EntryType::Char, "null", None, b"", 7)
            .file("implicit/parent/f", b"x")
            .bytes();
        let summary = run(&root, &tar, &LAYER).unwrap();
        // The file once (the hard link shares its inode), the symlink's target, the last file.
        assert_eq!(summary.size, 5 + 1 + 1);
        let d = std::fs::symlink_metadata(root.join("d")).unwrap();
        assert!(d.is_dir());
        assert_eq!((d.mode() & 0o7777, d.uid(), d.mtime()), (0o750, 7, 1_000_000));
        let f = std::fs::symlink_metadata(root.join("d/f")).unwrap();
        assert_eq!((f.mode() & 0o7777, f.uid(), f.gid(), f.nlink()), (0o640, 7, 7, 2));
        assert_eq!((f.mtime(), f.mtime_nsec()), (1_000_000, 250_000_000));
        assert_eq!(std::fs::read(root.join("d/h")).unwrap(), b"hello");
        assert_eq!(std::fs::read_link(root.join("d/s")).unwrap(), PathBuf::from("f"));
        let p = crate::cstring(root.join("d/f").as_os_str().as_encoded_bytes()).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(crate::lgetxattr(&p, c"user.test", &mut buf).unwrap(), 1);
        assert!(crate::lgetxattr(&p, c"user.overlay.x", &mut buf).is_err(), "overlay xattrs are dropped");
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::symlink_metadata(root.join("p")).unwrap().file_type().is_fifo());
        assert!(std::fs::symlink_metadata(root.join("null")).unwrap().file_type().is_char_device());
        let implicit = std::fs::symlink_metadata(root.join("implicit/parent")).unwrap();
        assert_eq!(implicit.permissions().mode() & 0o7777, 0o755);
    }

    #[test]
    fn copy_policy_owner_times_and_no_xattrs() {
        let Some(s) = scratch("copy") else { return };
        let root = s.0.join("root");
        let tar = Tar::new().pax(&[("mtime", b"1000000.25"), ("SCHILY.xattr.user.test", b"v")]).file("f", b"x").bytes();
        run(&root, &tar, &COPY).unwrap();
        let f = std::fs::symlink_metadata(root.join("f")).unwrap();
        assert_eq!((f.uid(), f.gid(), f.mtime(), f.mtime_nsec()), (0, 0, 1_000_000, 0));
        let p = crate::cstring(root.join("f").as_os_str().as_encoded_bytes()).unwrap();
        assert!(crate::lgetxattr(&p, c"user.test", &mut [0u8; 8]).is_err());

        let map = |u: u32, g: u32| (u < 100).then_some((u + 1000, g + 2000));
        let mapped = Policy { owner: Owner::Mapped(&map), ..COPY };
        run(&root, &Tar::new().file("m", b"").bytes(), &mapped).unwrap();
        let m = std::fs::symlink_metadata(root.join("m")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1007, 2007));
        let far = Tar::new().entry(tar::EntryType::Regular, "far", None, b"", 500).bytes();
        assert_eq!(problem(run(&root, &far, &mapped)), ("far".into(), Problem::OwnerUnmapped(500, 500)));

        // An empty mode field: refused as unreadable, or read as 0644 by a lenient policy.
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.as_old_mut().name[..5].copy_from_slice(b"empty");
        h.set_size(0);
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, &b""[..]).unwrap();
        let empty = b.into_inner().unwrap();
        assert!(matches!(run(&root, &empty, &LAYER), Err(Error::Read(_))));
        run(&root, &empty, &COPY).unwrap();
        assert_eq!(std::fs::symlink_metadata(root.join("empty")).unwrap().mode() & 0o7777, 0o644);
    }

    #[test]
    fn replacement_rules() {
        let Some(s) = scratch("replace") else { return };
        let root = s.0.join("root");
        let tar = Tar::new()
            .file("a", b"first")
            .file("a", b"second")
            .dir("b")
            .file("b/x", b"")
            .file("b", b"file now")
            .file("c", b"")
            .dir("c")
            .bytes();
        let summary = run(&root, &tar, &LAYER).unwrap();
        assert_eq!(std::fs::read(root.join("a")).unwrap(), b"second");
        assert_eq!(std::fs::read(root.join("b")).unwrap(), b"file now");
        assert!(root.join("c").is_dir());
        assert_eq!(summary.size, 6 + 8);

        let Some(s) = scratch("no-dir-non-dir") else { return };
        let root = s.0.join("root");
        let over_dir = Tar::new().dir("d").file("d", b"").bytes();
        assert_eq!(problem(run(&root, &over_dir, &COPY)), ("d".into(), Problem::Overwrite { dir: false }));
        let over_file = Tar::new().file("f", b"").dir("f").bytes();
        assert_eq!(problem(run(&root, &over_file, &COPY)), ("f".into(), Problem::Overwrite { dir: true }));
        // Same kinds still replace.
        run(&root, &Tar::new().file("g", b"1").file("g", b"2").dir("d").bytes(), &COPY).unwrap();
        assert_eq!(std::fs::read(root.join("g")).unwrap(), b"2");
    }

    #[test]
    fn escapes_are_refused() {
        let Some(s) = scratch("escape") else { return };
        let root = s.0.join("root");
        let outside = s.0.join("outside");
        std::fs::create_dir(&outside).unwrap();
        let through_link =
            Tar::new().link(tar::EntryType::Symlink, "link", outside.to_str().unwrap()).file("link/evil", b"x").bytes();
        for policy in [&LAYER, &COPY] {
            assert_eq!(
                problem(run(&root, &through_link, policy)),
                ("link/evil".into(), Problem::Blocked("link".into()))
            );
        }
        let up = Tar::new().file("../evil", b"x").bytes();
        assert_eq!(problem(run(&root, &up, &LAYER)), ("../evil".into(), Problem::Name(Refusal::Parent)));
        let hard = Tar::new().link(tar::EntryType::Link, "h", "../../etc/passwd").bytes();
        assert!(matches!(problem(run(&root, &hard, &LAYER)).1, Problem::LinkTargetName { .. }));
        let hard_via_link = Tar::new()
            .link(tar::EntryType::Symlink, "o", outside.to_str().unwrap())
            .link(tar::EntryType::Link, "h2", "o/x")
            .bytes();
        std::fs::write(outside.join("x"), b"").unwrap();
        assert_eq!(problem(run(&root, &hard_via_link, &LAYER)).1, Problem::LinkTargetMissing("o/x".into()));
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1, "nothing written outside");
        run(&root, &Tar::new().file("./", b"").bytes(), &LAYER).expect("a regular entry named ./ is a directory");
        let root_link = Tar::new().link(tar::EntryType::Symlink, ".", "x").bytes();
        assert_eq!(problem(run(&root, &root_link, &LAYER)).1, Problem::RootNotDirectory);
        let unknown = Tar::new().entry(tar::EntryType::new(b'Z'), "z", None, b"", 0).bytes();
        assert!(matches!(problem(run(&root, &unknown, &LAYER)).1, Problem::Unsupported(_)));
        run(&root, &unknown, &COPY).unwrap();
        assert!(!root.join("z").exists());
        let fifo = Tar::new().entry(tar::EntryType::Fifo, "fifo", None, b"", 0).bytes();
        run(&root, &fifo, &Policy { nodes: false, ..COPY }).unwrap();
        assert!(std::fs::symlink_metadata(root.join("fifo")).is_err());
    }

    #[test]
    fn whiteouts_only_where_the_policy_says() {
        let Some(s) = scratch("whiteouts") else { return };
        let root = s.0.join("root");
        let tar = Tar::new()
            .file("gone", b"x")
            .file(".wh.gone", b"")
            .file(".wh.lower", b"")
            .dir("opaque")
            .file("opaque/.wh..wh..opq", b"")
            .file(".wh..wh.plnk", b"")
            .bytes();
        run(&root, &tar, &LAYER).unwrap();
        use std::os::unix::fs::FileTypeExt;
        for hidden in ["gone", "lower"] {
            let m = std::fs::symlink_metadata(root.join(hidden)).unwrap();
            assert!(m.file_type().is_char_device() && m.rdev() == 0, "{hidden}");
        }
        assert!(overlay::is_opaque(&root.join("opaque")));
        assert_eq!(std::fs::read_dir(root.join("opaque")).unwrap().count(), 0);
        assert!(!root.join(".wh..wh.plnk").exists());
        let bad = Tar::new().file(".wh..", b"").bytes();
        assert_eq!(problem(run(&root, &bad, &LAYER)).1, Problem::InvalidWhiteout);

        let Some(s) = scratch("no-whiteouts") else { return };
        let root = s.0.join("root");
        run(&root, &tar, &COPY).unwrap();
        assert_eq!(std::fs::read(root.join("gone")).unwrap(), b"x");
        assert!(root.join(".wh.gone").is_file() && root.join("opaque/.wh..wh..opq").is_file());
        assert!(!overlay::is_opaque(&root.join("opaque")));
    }

    #[test]
    fn in_root_follows_the_tree_but_not_the_archive() {
        let Some(s) = scratch("in-root") else { return };
        // A container's tree: /dest, /etc, and the container's own symlinks in /dest.
        let root = s.0.join("root");
        std::fs::create_dir_all(root.join("dest")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("dest/etc-abs")).unwrap();
        std::os::unix::fs::symlink("../../../../..", root.join("dest/up")).unwrap();
        let root_fd = OwnedFd::from(File::open(&root).unwrap());
        let policy = Policy { resolve: Resolve::InRoot { root: root_fd.as_raw_fd(), path: b"/dest" }, ..COPY };
        let tar = Tar::new()
            .file("etc-abs/through-abs", b"a")
            .file("up/through-up", b"b")
            .file("new/parent/f", b"c")
            .link(tar::EntryType::Link, "hard", "new/parent/f")
            .entry(tar::EntryType::Fifo, "p", None, b"", 0)
            .bytes();
        let dest = root.join("dest");
        run(&dest, &tar, &policy).unwrap();
        // Both of the container's symlinks resolve inside its root.
        assert_eq!(std::fs::read(root.join("etc/through-abs")).unwrap(), b"a");
        assert_eq!(std::fs::read(root.join("through-up")).unwrap(), b"b");
        assert_eq!(std::fs::read(dest.join("hard")).unwrap(), b"c");
        assert_eq!(std::fs::symlink_metadata(dest.join("hard")).unwrap().nlink(), 2);
        assert_eq!(std::fs::symlink_metadata(dest.join("new")).unwrap().mode() & 0o7777, 0o755);
        assert_eq!(std::fs::symlink_metadata(dest.join("p")).unwrap().mode() & 0o7777, 0o640);
        // A symlink of the same archive is never followed, by a parent nor a link target.
        let own = Tar::new().link(tar::EntryType::Symlink, "mine", "/etc").file("mine/evil", b"x").bytes();
        assert_eq!(
            problem(run(&dest, &own, &policy)),
            ("mine/evil".into(), Problem::ThroughArchiveLink("mine".into()))
        );
        let own = Tar::new()
            .link(tar::EntryType::Symlink, "mine2", "/etc")
            .link(tar::EntryType::Link, "h", "mine2/x")
            .bytes();
        assert_eq!(problem(run(&dest, &own, &policy)).1, Problem::ThroughArchiveLink("mine2".into()));
        assert!(!root.join("etc/evil").exists());
        // A file on the way is not a directory.
        let blocked = Tar::new().file("hard/x", b"").bytes();
        assert_eq!(problem(run(&dest, &blocked, &policy)).1, Problem::Blocked("hard".into()));
        // The destination's own entry (`./`) is skipped: it keeps its metadata.
        let before = std::fs::symlink_metadata(&dest).unwrap().mode();
        run(&dest, &Tar::new().dir("./").bytes(), &policy).unwrap();
        assert_eq!(std::fs::symlink_metadata(&dest).unwrap().mode(), before);
    }

    #[test]
    fn renamed_names_and_unchanged_owners() {
        let Some(s) = scratch("rename") else { return };
        let root = s.0.join("root");
        let rename = |n: &[u8]| match n.strip_prefix(b"old") {
            Some(rest) => [b"new".as_slice(), rest].concat(),
            None => n.to_vec(),
        };
        let policy = Policy { owner: Owner::Unchanged, rename: Some(&rename), ..COPY };
        let tar = Tar::new()
            .dir("old")
            .file("old/f", b"12345")
            .file("old/f", b"123")
            .link(tar::EntryType::Link, "old/h", "old/f")
            .link(tar::EntryType::Symlink, "old/s", "f")
            .bytes();
        let summary = run(&root, &tar, &policy).unwrap();
        assert_eq!(summary.written, 8);
        assert_eq!(std::fs::read(root.join("new/h")).unwrap(), b"123");
        assert!(!root.join("old").exists());
        // Created by this (root) process and left so, whatever the archive says.
        let f = std::fs::symlink_metadata(root.join("new/f")).unwrap();
        assert_eq!((f.uid(), f.gid(), f.mode() & 0o7777), (0, 0, 0o640));
        assert_eq!(std::fs::symlink_metadata(root.join("new/s")).unwrap().uid(), 0);
    }
}
