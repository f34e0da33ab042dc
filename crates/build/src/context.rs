//! The build context: the client's tar (plain, gzip or zstd, detected from its first bytes)
//! received into one spool file and an index of its entries, never unpacked into a directory
//! (creating thousands of files is what makes a classic build slow), each file's digest taken as
//! it streams in. Also the same index over a directory (a stage's files for `COPY --from`), the
//! selection of COPY/ADD sources with `.dockerignore` applied, their digest for the cache
//! (content, mode, type, link target, not mtime), and the tar of what a step copies.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};
use wharf_confined::{entry, untar};
use wharf_types::Digest;

use crate::ignore::Ignore;

/// Why a context could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("build context: {0}")]
    Invalid(String),
    #[error("build context is larger than the {limit} bytes this daemon allows")]
    TooLarge { limit: u64 },
    #[error("build context: {what}: {source}")]
    Io { what: String, source: io::Error },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ContextError {
    let what = what.into();
    move |source| ContextError::Io { what, source }
}

/// Reads exactly `buf.len()` bytes of `spool` at `at`.
fn read_exact_at(spool: &Spool, buf: &mut [u8], at: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    spool.file.read_exact_at(buf, at)
}

/// Writes and hashes bytes `offset..offset + len` of an earlier spool into the new one.
fn copy_spool_range(
    from: &Spool,
    offset: u64,
    len: u64,
    buf: &mut [u8],
    out: &mut impl Write,
    hash: &mut Sha256,
) -> Result<(), ContextError> {
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        let chunk = buf.get_mut(..n).unwrap_or_default();
        read_exact_at(from, chunk, offset + done).map_err(io_err("read the earlier spool"))?;
        hash.update(&*chunk);
        out.write_all(chunk).map_err(io_err("write spool"))?;
        done += n as u64;
    }
    Ok(())
}

/// Counts what passes through, so a context over the limit stops as soon as it is.
struct Limited<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::other(format!("over the limit of {} bytes", self.limit)));
        }
        Ok(n)
    }
}

/// A stream decompressed by what its first bytes say it is: gzip, zstd, bzip2, xz, or plain
/// (the compressions `docker build` accepts for a context and ADD unpacks).
pub fn decompress(body: impl Read + Send + 'static) -> io::Result<Box<dyn Read + Send>> {
    let mut input = BufReader::with_capacity(1 << 16, body);
    let head = input.fill_buf()?.to_vec();
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(input))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(input)?)
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2_rs::DecoderReader::new(input))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        // The xz decoder writes what it decodes: a thread of its own feeds it into a pipe, and
        // a failure ends the pipe early, which the tar reader reports as a cut archive.
        let (reader, mut writer) = io::pipe()?;
        std::thread::spawn(move || {
            let mut input = input;
            if let Err(e) = lzma_rs::xz_decompress(&mut input, &mut writer) {
                log::debug!("xz: {e:?}");
            }
        });
        Box::new(reader)
    } else {
        Box::new(input)
    })
}

/// The tar stream of a body, decompressed by what its first bytes say it is.
fn decompressed(body: impl Read + Send + 'static, limit: u64) -> Result<tar::Archive<Box<dyn Read>>, ContextError> {
    let reader = decompress(body).map_err(io_err("read"))?;
    let limited: Box<dyn Read> = Box::new(Limited { inner: reader, read: 0, limit });
    Ok(tar::Archive::new(limited))
}

/// Unpacks a tar into `dir` (which must exist and be empty), streaming: for the file systems
/// a build copies out of a stage or an image. The project's one extraction loop
/// (`wharf_confined::untar`): names with `..` refused, absolute ones landing inside, never
/// through a symlink, hard links only to what the archive put there; devices and fifos are
/// skipped.
pub fn unpack(body: impl Read + Send + 'static, dir: &Path, limit: u64) -> Result<(), ContextError> {
    let mut archive = decompressed(body, limit)?;
    let root = fs::File::open(dir).map(OwnedFd::from).map_err(io_err(format!("open {}", dir.display())))?;
    let policy = untar::Policy {
        resolve: untar::Resolve::NoFollow,
        root_entry: false,
        // A stage's files keep their owners in a bind mount of it, as in the stage.
        owner: untar::Owner::AsGiven,
        replace: untar::Replace::Always,
        pax_times: false,
        xattrs: false,
        refuse_unknown: false,
        nodes: false,
        whiteouts: false,
        lenient_header: false,
        rename: None,
    };
    untar::extract(&root, &mut archive, &policy).map_err(|e| match e {
        untar::Error::Invalid { entry, problem } => match problem {
            untar::Problem::Name(entry::Refusal::Parent)
            | untar::Problem::Blocked(_)
            | untar::Problem::LinkTargetName { refusal: entry::Refusal::Parent, .. } => {
                ContextError::Invalid(format!("entry {entry:?} is outside the context"))
            }
            problem => ContextError::Invalid(format!("entry {entry:?} {}", problem.reason("archive"))),
        },
        untar::Error::Io { entry, what, source } => {
            ContextError::Io { what: format!("entry {entry:?}: {what}"), source }
        }
        untar::Error::Read(e) => tar_error(e, limit),
    })?;
    Ok(())
}

/// Whether a file is a tar, plain or compressed in a way `unpack` knows or names (by content).
pub fn looks_like_archive(path: &Path) -> bool {
    let mut head = [0u8; 512];
    let n = fs::File::open(path).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
    let h = &head[..n];
    h.starts_with(&[0x1f, 0x8b])
        || h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || h.starts_with(b"BZh")
        || h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z'])
        || (n >= 262 && &h[257..262] == b"ustar")
}

fn tar_error(e: io::Error, limit: u64) -> ContextError {
    if e.to_string().contains("over the limit") {
        ContextError::TooLarge { limit }
    } else {
        ContextError::Invalid(format!("invalid tar: {e}"))
    }
}

/// Refuses a tar name (or hard-link target) that the project's one set of entry name rules
/// (`wharf_confined::entry`) refuses: one with a `..` element or a NUL byte. A leading `/` is
/// stripped by the rules, and by whatever then uses the name (`clean_rel`, `unpack_in`).
fn check_relative(name: &[u8]) -> Result<(), ContextError> {
    match wharf_confined::entry::components(name) {
        Ok(_) => Ok(()),
        Err(e) if e.refusal == wharf_confined::entry::Refusal::Parent => {
            Err(ContextError::Invalid(format!("entry {:?} is outside the context", e.name)))
        }
        Err(e) => Err(ContextError::Invalid(format!("entry {e}"))),
    }
}

/// The longest entry name a context may have (Linux's PATH_MAX).
const MAX_PATH: usize = 4096;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink(PathBuf),
}

/// Where a file's bytes are.
#[derive(Debug, Clone)]
enum Data {
    None,
    /// In the spool of a received context, at this offset (`size` bytes).
    Spool {
        file: Arc<Spool>,
        offset: u64,
    },
    /// A file on disk (a stage's unpacked file system, a download).
    Path(PathBuf),
}

/// A spool file, read through its open descriptor: it outlives its directory for as long as
/// an entry of a later context still reads it (see `receive`), and its space is freed with
/// the last of them.
#[derive(Debug)]
pub struct Spool {
    file: fs::File,
    /// Its length once received.
    len: u64,
}

/// One file's bytes in a spool.
struct SpoolReader {
    spool: Arc<Spool>,
    at: u64,
    end: u64,
}

impl Read for SpoolReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = (self.end - self.at).min(buf.len() as u64) as usize;
        let Some(buf) = buf.get_mut(..want) else { return Ok(0) };
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.spool.file.read_at(buf, self.at)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the context's spool is shorter than its index"));
        }
        self.at += n as u64;
        Ok(n)
    }
}

/// One file, directory or symlink of a context, with what a copy keeps of it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: EntryKind,
    /// Permission bits with setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub size: u64,
    data: Data,
    /// The content's sha256, taken as a received file streamed in; computed on demand else.
    digest: Option<[u8; 32]>,
}

impl Entry {
    /// A file or directory on disk (not following a symlink).
    pub fn from_path(path: &Path) -> io::Result<Entry> {
        let md = fs::symlink_metadata(path)?;
        let kind = if md.file_type().is_symlink() {
            EntryKind::Symlink(fs::read_link(path)?)
        } else if md.is_dir() {
            EntryKind::Dir
        } else {
            EntryKind::File
        };
        let data = if kind == EntryKind::File { Data::Path(path.to_path_buf()) } else { Data::None };
        Ok(Entry {
            kind,
            mode: md.permissions().mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            mtime: md.mtime().max(0) as u64,
            size: if md.is_file() { md.len() } else { 0 },
            data,
            digest: None,
        })
    }

    fn dir(mode: u32) -> Entry {
        Entry { kind: EntryKind::Dir, mode, uid: 0, gid: 0, mtime: 0, size: 0, data: Data::None, digest: None }
    }

    /// The file's bytes.
    pub fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        match &self.data {
            Data::None => Ok(Box::new(io::empty())),
            Data::Spool { file, offset } => {
                Ok(Box::new(SpoolReader { spool: file.clone(), at: *offset, end: offset + self.size }))
            }
            Data::Path(p) => Ok(Box::new(fs::File::open(p)?.take(self.size))),
        }
    }

    /// The first bytes of the file (what ADD looks at to tell an archive).
    pub fn head(&self, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        let got = self.open().and_then(|mut r| {
            let mut total = 0;
            while total < n {
                let k = r.read(&mut buf[total..])?;
                if k == 0 {
                    break;
                }
                total += k;
            }
            Ok(total)
        });
        buf.truncate(got.unwrap_or(0));
        buf
    }

    fn content_digest(&self) -> io::Result<[u8; 32]> {
        if let Some(d) = self.digest {
            return Ok(d);
        }
        let mut h = Sha256::new();
        io::copy(&mut self.open()?, &mut HashWriter(&mut h))?;
        Ok(h.finalize().into())
    }
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A context: its entries by path (relative, `/`-separated, no trailing `/`) and its
/// `.dockerignore`.
pub struct Context {
    entries: BTreeMap<String, Entry>,
    ignore: Ignore,
    /// Where `materialize` put the context as a directory, once it was asked for.
    materialized: Mutex<Option<PathBuf>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("entries", &self.entries.len()).finish_non_exhaustive()
    }
}

/// One entry selected for a copy and where it goes.
#[derive(Debug, Clone)]
pub struct Selected {
    /// Its path in the context it comes from (empty for a download).
    pub rel: String,
    pub entry: Entry,
    /// Path in the image, absolute.
    pub dest: String,
}

impl Context {
    /// Receives a context tar into the spool file `spool`, indexing its entries and hashing
    /// each file as it arrives. Entries with `..` or an absolute path, below a symlink of the
    /// context, or hard links to nothing before them are refused.
    pub fn receive(body: impl Read + Send + 'static, spool: &Path, limit: u64) -> Result<Context, ContextError> {
        Context::new(Context::receive_entries(body, spool, limit, None)?)
    }

    /// `receive`, given the context received before (a rebuild sends the same files again): a
    /// file whose path and size it has is compared with its bytes there as it streams in, and
    /// when every byte is the same, the entry reads them there, with the digest taken then.
    /// So an unchanged file is neither written again nor hashed again; a changed one is, from
    /// where it starts to differ (the same bytes before that are copied over).
    pub fn receive_after(
        body: impl Read + Send + 'static,
        spool: &Path,
        limit: u64,
        previous: &Context,
    ) -> Result<Context, ContextError> {
        Context::new(Context::receive_entries(body, spool, limit, Some(previous))?)
    }

    /// Whether a later context should be received after this one: only while the spools its
    /// entries keep (a file changed since the first build leaves its old bytes in an older
    /// spool) are not much more than its own size.
    pub fn worth_keeping(&self) -> bool {
        let mut spools: Vec<&Arc<Spool>> = Vec::new();
        for e in self.entries.values() {
            if let Data::Spool { file, .. } = &e.data {
                if !spools.iter().any(|s| Arc::ptr_eq(s, file)) {
                    spools.push(file);
                }
            }
        }
        let held: u64 = spools.iter().map(|s| s.len).sum();
        held <= 2 * self.size() + (64 << 20)
    }

    /// The same for an image's file system (`COPY --from`): no size limit (the image is the
    /// daemon's already), and a `.dockerignore` in it is a file like any other.
    pub fn receive_tree(body: impl Read + Send + 'static, spool: &Path) -> Result<Context, ContextError> {
        let entries = Context::receive_entries(body, spool, u64::MAX, None)?;
        Ok(Context { entries, ignore: Ignore::default(), materialized: Mutex::new(None) })
    }

    fn receive_entries(
        body: impl Read + Send + 'static,
        spool: &Path,
        limit: u64,
        previous: Option<&Context>,
    ) -> Result<BTreeMap<String, Entry>, ContextError> {
        let mut archive = decompressed(body, limit)?;
        let spool_file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(spool)
            .map_err(io_err("create spool"))?;
        // Entries read the spool through this descriptor (and its length, filled in at the end).
        let reader = spool_file.try_clone().map_err(io_err("open spool"))?;
        let mut out = io::BufWriter::with_capacity(1 << 20, spool_file);
        let mut offset = 0u64;
        let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
        let mut reused: Vec<String> = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut before = vec![0u8; 1 << 16];
        // The entries are made with a placeholder spool, replaced once its length is known.
        let placeholder = Arc::new(Spool { file: reader.try_clone().map_err(io_err("open spool"))?, len: 0 });
        let tar_entries = archive.entries().map_err(|e| ContextError::Invalid(format!("not a tar archive: {e}")))?;
        for entry in tar_entries {
            let mut entry = entry.map_err(|e| tar_error(e, limit))?;
            check_relative(&entry.path_bytes())?;
            let path = entry.path().map_err(|e| ContextError::Invalid(format!("entry name: {e}")))?.into_owned();
            let rel = clean_rel(&path.to_string_lossy());
            if rel.is_empty() {
                continue;
            }
            if rel.len() > MAX_PATH {
                return Err(ContextError::Invalid(format!("entry name longer than {MAX_PATH} bytes")));
            }
            let h = entry.header();
            let (mode, uid, gid, mtime) = (
                h.mode().unwrap_or(0o644) & 0o7777,
                h.uid().unwrap_or(0) as u32,
                h.gid().unwrap_or(0) as u32,
                h.mtime().unwrap_or(0),
            );
            let kind = h.entry_type();
            let new = match kind {
                tar::EntryType::Directory => Entry { mode, uid, gid, mtime, ..Entry::dir(mode) },
                tar::EntryType::Symlink => {
                    let target = entry.link_name().ok().flatten().map(|t| t.into_owned()).unwrap_or_default();
                    Entry {
                        kind: EntryKind::Symlink(target),
                        mode,
                        uid,
                        gid,
                        mtime,
                        size: 0,
                        data: Data::None,
                        digest: None,
                    }
                }
                tar::EntryType::Link => {
                    check_relative(&entry.link_name_bytes().unwrap_or_default())?;
                    let target = entry.link_name().ok().flatten().map(|t| t.into_owned()).unwrap_or_default();
                    let t = clean_rel(&target.to_string_lossy());
                    match entries.get(&t) {
                        Some(e) if e.kind == EntryKind::File => e.clone(),
                        _ => {
                            return Err(ContextError::Invalid(format!(
                                "entry {rel:?}: hard link to {t:?}, which is not a file before it"
                            )))
                        }
                    }
                }
                tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                    let declared = h.size().unwrap_or(0);
                    let same_before = previous
                        .and_then(|p| p.entries.get(&rel))
                        .filter(|e| e.kind == EntryKind::File && e.size == declared && e.digest.is_some())
                        .and_then(|e| match &e.data {
                            Data::Spool { file, offset } => Some((e, file.clone(), *offset)),
                            _ => None,
                        });
                    let mut hash = Sha256::new();
                    let mut size = 0u64;
                    let mut unchanged = None;
                    if let Some((old, old_spool, old_offset)) = same_before {
                        // Compared as it streams in; at the first difference, the same bytes
                        // before it are written and hashed, and the rest goes on as new.
                        let mut same = 0u64;
                        let mut differs = false;
                        loop {
                            let n = entry.read(&mut buf).map_err(|e| tar_error(e, limit))?;
                            if n == 0 {
                                break;
                            }
                            let was = before.get_mut(..n).unwrap_or_default();
                            let equal = read_exact_at(&old_spool, was, old_offset + same).is_ok()
                                && buf.get(..n) == Some(&*was);
                            if equal {
                                same += n as u64;
                                continue;
                            }
                            copy_spool_range(&old_spool, old_offset, same, &mut before, &mut out, &mut hash)?;
                            hash.update(&buf[..n]);
                            out.write_all(&buf[..n]).map_err(io_err("write spool"))?;
                            size = same + n as u64;
                            differs = true;
                            break;
                        }
                        if !differs {
                            if same == declared {
                                unchanged = Some(Entry { mode, uid, gid, mtime, ..old.clone() });
                            } else {
                                // Shorter than its header said: the tar reader fails on it below.
                                copy_spool_range(&old_spool, old_offset, same, &mut before, &mut out, &mut hash)?;
                                size = same;
                            }
                        }
                    }
                    match unchanged {
                        Some(e) => {
                            reused.push(rel.clone());
                            e
                        }
                        None => {
                            loop {
                                let n = entry.read(&mut buf).map_err(|e| tar_error(e, limit))?;
                                if n == 0 {
                                    break;
                                }
                                hash.update(&buf[..n]);
                                out.write_all(&buf[..n]).map_err(io_err("write spool"))?;
                                size += n as u64;
                            }
                            let e = Entry {
                                kind: EntryKind::File,
                                mode,
                                uid,
                                gid,
                                mtime,
                                size,
                                data: Data::Spool { file: placeholder.clone(), offset },
                                digest: Some(hash.finalize().into()),
                            };
                            offset += size;
                            e
                        }
                    }
                }
                // Devices and fifos mean nothing in a context: skipped, as the CLI skips them.
                _ => continue,
            };
            // Parents: directories (made when the tar leaves them out), never symlinks.
            let mut parent = String::new();
            for c in rel.split('/').take(rel.matches('/').count()) {
                if !parent.is_empty() {
                    parent.push('/');
                }
                parent.push_str(c);
                match entries.get(&parent).map(|e| &e.kind) {
                    Some(EntryKind::Dir) => {}
                    Some(_) => {
                        return Err(ContextError::Invalid(format!(
                            "entry {rel:?} is outside the context (below {parent:?}, which is not a directory)"
                        )))
                    }
                    None => {
                        entries.insert(parent.clone(), Entry::dir(0o755));
                    }
                }
            }
            // A later entry may replace an earlier one, but not a directory by something else:
            // what is below it would then hang below a symlink or a file.
            if new.kind != EntryKind::Dir && entries.get(&rel).is_some_and(|e| e.kind == EntryKind::Dir) {
                return Err(ContextError::Invalid(format!("entry {rel:?} replaces a directory of the context")));
            }
            entries.insert(rel, new);
        }
        out.flush().map_err(io_err("write spool"))?;
        drop(out);
        let this = Arc::new(Spool { file: reader, len: offset });
        for e in entries.values_mut() {
            if let Data::Spool { file, .. } = &mut e.data {
                if Arc::ptr_eq(file, &placeholder) {
                    *file = this.clone();
                }
            }
        }
        log::debug!(
            "build: context received, {} of {} entries unchanged since the last one",
            reused.len(),
            entries.len()
        );
        Ok(entries)
    }

    /// The same index over a directory on disk.
    pub fn from_dir(dir: &Path) -> Result<Context, ContextError> {
        let mut entries = BTreeMap::new();
        index_dir(dir, "", &mut entries).map_err(io_err(format!("read {}", dir.display())))?;
        Context::new(entries)
    }

    fn new(entries: BTreeMap<String, Entry>) -> Result<Context, ContextError> {
        let ignore = match entries.get(".dockerignore") {
            Some(e) if e.kind == EntryKind::File => {
                let mut text = String::new();
                e.open().and_then(|mut r| r.read_to_string(&mut text)).map_err(io_err("read .dockerignore"))?;
                Ignore::new(&text).map_err(|e| ContextError::Invalid(e.to_string()))?
            }
            _ => Ignore::default(),
        };
        Ok(Context { entries, ignore, materialized: Mutex::new(None) })
    }

    /// The bytes of its files, together.
    pub fn size(&self) -> u64 {
        self.entries.values().filter(|e| e.kind == EntryKind::File).map(|e| e.size).sum()
    }

    pub fn entry(&self, rel: &str) -> Option<&Entry> {
        self.entries.get(rel)
    }

    /// A file's content (the Dockerfile).
    pub fn read_file(&self, rel: &str) -> Option<io::Result<Vec<u8>>> {
        let e = self.entries.get(rel)?;
        if e.kind != EntryKind::File {
            return Some(Err(io::Error::other("not a regular file")));
        }
        let mut v = Vec::new();
        Some(e.open().and_then(|mut r| r.read_to_end(&mut v)).map(|_| v))
    }

    /// Whether `rel` ('/'-separated, relative) is left out by `.dockerignore`.
    pub fn excluded(&self, rel: &str) -> bool {
        !rel.is_empty() && self.ignore.matches(rel)
    }

    /// Every path of the context, relative, that is not excluded, in sorted order.
    pub fn walk(&self) -> Vec<String> {
        self.entries.keys().filter(|p| !self.excluded(p)).cloned().collect()
    }

    /// The sources a COPY names, resolved in the context: wildcards matched against every
    /// path, excluded paths treated as absent. Errors name the missing source as Docker does.
    pub fn resolve(&self, sources: &[String], what: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let mut all: Option<Vec<String>> = None;
        for src in sources {
            let clean = clean_rel(src);
            if has_wildcard(&clean) {
                let all = all.get_or_insert_with(|| self.walk());
                // A wildcard that matches nothing is only an error when nothing at all is copied.
                out.extend(all.iter().filter(|p| wharf_types::pattern::path_match(&clean, p)).cloned());
                continue;
            }
            let exists = clean.is_empty() || self.entries.contains_key(&clean);
            if !exists || self.excluded(&clean) {
                return Err(format!(
                    "{what} failed: file not found in build context or excluded by .dockerignore: stat {src}: file does not exist"
                ));
            }
            out.push(clean);
        }
        if out.is_empty() {
            return Err(format!("{what} failed: no source files were specified"));
        }
        Ok(out)
    }

    /// What a COPY of the context paths `sources` to `dest` puts where. `dest` is absolute; a
    /// trailing `/` (or several sources) makes it a directory. With `parents` (`COPY
    /// --parents`), each source keeps its path from the context root below `dest`.
    pub fn select(&self, sources: &[String], dest: &str, dest_is_dir: bool, parents: bool) -> Vec<Selected> {
        let mut out = Vec::new();
        let dest_root = dest.trim_end_matches('/');
        for src in sources {
            let parent_path = Path::new(src).parent().map(|p| p.to_string_lossy().to_string()).unwrap_or_default();
            let nested;
            let dest = if parents && !parent_path.is_empty() {
                nested = format!("{dest_root}/{parent_path}");
                nested.as_str()
            } else {
                dest_root
            };
            let dest_is_dir = dest_is_dir || (parents && !parent_path.is_empty());
            let is_dir = src.is_empty() || self.entries.get(src).is_some_and(|e| e.kind == EntryKind::Dir);
            if is_dir {
                // A directory's contents are copied, not the directory itself.
                let prefix = if src.is_empty() { String::new() } else { format!("{src}/") };
                for (rel, e) in self.entries.range(prefix.clone()..) {
                    let Some(below) = rel.strip_prefix(prefix.as_str()) else {
                        break;
                    };
                    if self.excluded_with_parents(rel) {
                        continue;
                    }
                    out.push(Selected { rel: rel.clone(), entry: e.clone(), dest: format!("{dest}/{below}") });
                }
            } else if let Some(e) = self.entries.get(src) {
                let name = Path::new(src).file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                let to = if dest_is_dir { format!("{dest}/{name}") } else { dest.to_string() };
                out.push(Selected {
                    rel: src.clone(),
                    entry: e.clone(),
                    dest: if to.is_empty() { "/".into() } else { to },
                });
            }
        }
        out
    }

    /// Excluded itself; an excluded directory's entries stay in only where a `!` line takes
    /// them back, which `matches` answers for the entry's own path.
    fn excluded_with_parents(&self, rel: &str) -> bool {
        self.excluded(rel)
    }

    /// The context as a directory under `dir` (made once per build, for `RUN --mount=type=bind`
    /// of the context): entries written in order, parents before children, none through a
    /// symlink (the index has none below one).
    pub fn materialize(&self, dir: &Path) -> Result<PathBuf, ContextError> {
        let mut done = self.materialized.lock().map_err(|_| ContextError::Invalid("context lock poisoned".into()))?;
        if let Some(p) = done.as_ref() {
            return Ok(p.clone());
        }
        let root = dir.join("context-dir");
        fs::create_dir_all(&root).map_err(io_err(format!("create {}", root.display())))?;
        let mut dirs = Vec::new();
        for (rel, e) in &self.entries {
            let path = root.join(rel);
            let what = format!("write {}", path.display());
            match &e.kind {
                EntryKind::Dir => {
                    fs::create_dir_all(&path).map_err(io_err(what))?;
                    dirs.push((path, e.mode));
                }
                EntryKind::Symlink(t) => std::os::unix::fs::symlink(t, &path).map_err(io_err(what))?,
                EntryKind::File => {
                    let mut f = fs::File::create(&path).map_err(io_err(what.clone()))?;
                    io::copy(&mut e.open().map_err(io_err(what.clone()))?, &mut f).map_err(io_err(what.clone()))?;
                    f.set_permissions(fs::Permissions::from_mode(e.mode)).map_err(io_err(what))?;
                }
            }
        }
        for (path, mode) in dirs.into_iter().rev() {
            let _ = fs::set_permissions(&path, fs::Permissions::from_mode(mode));
        }
        *done = Some(root.clone());
        Ok(root)
    }
}

fn index_dir(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Entry>) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let rel = format!("{prefix}{}", e.file_name().to_string_lossy());
        let entry = Entry::from_path(&e.path())?;
        let is_dir = entry.kind == EntryKind::Dir;
        out.insert(rel.clone(), entry);
        if is_dir {
            index_dir(&e.path(), &format!("{rel}/"), out)?;
        }
    }
    Ok(())
}

/// `./a/b/`, `/a/b` → `a/b`; `.` → empty (the whole context).
pub fn clean_rel(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

pub fn has_wildcard(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

/// Owner and mode overrides of a copy (`--chown`, `--chmod`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ownership {
    pub uid: u32,
    pub gid: u32,
    pub mode: Option<u32>,
    /// Each entry keeps its own owner instead (`uid` and `gid` then own only made directories).
    pub keep: bool,
}

/// The digest of what a copy selects, for its cache key: each entry's destination, type,
/// mode, owner, size, content and link target; never its time stamps. Also each entry's own
/// digest by destination (shortened), so that a cache miss can name the file that changed.
pub fn digest(selected: &[Selected], own: Ownership) -> Result<(String, BTreeMap<String, String>), ContextError> {
    let mut all = Sha256::new();
    all.update(format!("own {}:{} {:?} {}\n", own.uid, own.gid, own.mode, own.keep));
    let mut each = BTreeMap::new();
    for s in selected {
        let e = &s.entry;
        let mut h = Sha256::new();
        h.update(format!("{}\0{:o}\0", s.dest, e.mode));
        match &e.kind {
            EntryKind::Symlink(t) => h.update(format!("link\0{}", t.display())),
            EntryKind::Dir => h.update(b"dir"),
            EntryKind::File => {
                h.update(format!("file\0{}\0", e.size));
                h.update(e.content_digest().map_err(io_err(format!("read {}", s.rel)))?);
            }
        }
        let d = h.finalize();
        all.update(d);
        each.insert(s.dest.clone(), Digest::from_hash(d.into()).hex_prefix(16).to_string());
    }
    Ok((format!("{:x}", all.finalize()), each))
}

/// A directory's owner, mode and time, to write it into a layer as an image has it.
#[derive(Debug, Clone, Copy)]
pub struct DirMeta {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub mtime: i64,
}

/// How a copy's tar is made, besides what it copies.
#[derive(Debug, Clone, Default)]
pub struct CopyTar {
    /// Owner (and `--chmod` mode) of what is copied.
    pub own: Ownership,
    /// Owner of the directories of `make_dirs`.
    pub dir_owner: Ownership,
    /// Directories the image has, written first as they are (for a layer made without a
    /// container, so that they keep their owner and mode in the merged view).
    pub keep_dirs: Vec<(String, DirMeta)>,
    /// Directories the image lacks (the destination and its parents), made 0755.
    pub make_dirs: Vec<String>,
    /// The image has no layer at all: any other missing parent of an entry gets an entry too
    /// (root's), since nothing below the layer provides it.
    pub parents: bool,
    /// Files made from heredocs, by destination.
    pub extra: BTreeMap<String, Vec<u8>>,
    /// Archives (plain or gzip tars) unpacked below a destination.
    pub archives: Vec<(Entry, String)>,
    /// The most bytes one archive may unpack to (tar headers included); `None` for no limit.
    pub archive_limit: Option<u64>,
}

impl CopyTar {
    /// Writes the tar: `keep_dirs`, `make_dirs`, each selected entry at its destination
    /// (relative to `/`, owned by `own`, with its mode or `--chmod`, and its mtime), then
    /// `extra`, then the entries of `archives`.
    pub fn write(&self, selected: &[Selected], out: impl Write) -> Result<(), ContextError> {
        let mut tar = tar::Builder::new(out);
        tar.follow_symlinks(false);
        let mut dirs_done: std::collections::HashSet<String> = std::collections::HashSet::new();
        let dir_entry = |tar: &mut tar::Builder<_>, rel: &str, mode: u32, uid: u32, gid: u32, mtime: u64| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(mode);
            h.set_uid(uid as u64);
            h.set_gid(gid as u64);
            h.set_size(0);
            h.set_mtime(mtime);
            tar.append_data(&mut h, format!("{rel}/"), io::empty()).map_err(io_err("write tar"))
        };
        for (d, m) in &self.keep_dirs {
            let rel = d.trim_matches('/').to_string();
            if !rel.is_empty() && dirs_done.insert(rel.clone()) {
                dir_entry(&mut tar, &rel, m.mode, m.uid, m.gid, m.mtime.max(0) as u64)?;
            }
        }
        for d in &self.make_dirs {
            let rel = d.trim_matches('/').to_string();
            if !rel.is_empty() && dirs_done.insert(rel.clone()) {
                dir_entry(&mut tar, &rel, 0o755, self.dir_owner.uid, self.dir_owner.gid, 0)?;
            }
        }
        let add_parents = |tar: &mut tar::Builder<_>, done: &mut std::collections::HashSet<String>, dest: &str| {
            if !self.parents {
                return Ok(());
            }
            let rel = dest.trim_start_matches('/');
            let comps: Vec<&str> = rel.split('/').collect();
            let mut acc = String::new();
            for c in &comps[..comps.len().saturating_sub(1)] {
                if !acc.is_empty() {
                    acc.push('/');
                }
                acc.push_str(c);
                if done.insert(acc.clone()) {
                    dir_entry(tar, &acc, 0o755, 0, 0, 0)?;
                }
            }
            Ok::<(), ContextError>(())
        };
        let own = self.own;
        for s in selected {
            let rel = s.dest.trim_start_matches('/').to_string();
            if rel.is_empty() {
                continue;
            }
            // A layer would read these names as whiteouts (deletions), not files.
            if rel.rsplit('/').next().is_some_and(|n| n.starts_with(".wh.")) {
                return Err(ContextError::Invalid(format!(
                    "{:?}: names starting with .wh. are whiteouts in a layer and cannot be copied",
                    s.rel
                )));
            }
            add_parents(&mut tar, &mut dirs_done, &s.dest)?;
            let e = &s.entry;
            let mut h = tar::Header::new_gnu();
            let (uid, gid) = if own.keep { (e.uid, e.gid) } else { (own.uid, own.gid) };
            h.set_uid(uid as u64);
            h.set_gid(gid as u64);
            h.set_mtime(e.mtime);
            h.set_mode(own.mode.unwrap_or(e.mode));
            match &e.kind {
                EntryKind::Dir => {
                    dirs_done.insert(rel.clone());
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    tar.append_data(&mut h, format!("{rel}/"), io::empty()).map_err(io_err("write tar"))?;
                }
                EntryKind::Symlink(target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_size(0);
                    tar.append_link(&mut h, &rel, target).map_err(io_err("write tar"))?;
                }
                EntryKind::File => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(e.size);
                    let data = e.open().map_err(io_err(format!("read {}", s.rel)))?;
                    tar.append_data(&mut h, &rel, data).map_err(io_err("write tar"))?;
                }
            }
        }
        for (dest, content) in &self.extra {
            add_parents(&mut tar, &mut dirs_done, dest)?;
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(own.mode.unwrap_or(0o644));
            h.set_uid(own.uid as u64);
            h.set_gid(own.gid as u64);
            h.set_size(content.len() as u64);
            h.set_mtime(0);
            tar.append_data(&mut h, dest.trim_start_matches('/'), &content[..]).map_err(io_err("write tar"))?;
        }
        for (archive, dest) in &self.archives {
            add_parents(&mut tar, &mut dirs_done, &format!("{}/x", dest.trim_end_matches('/')))?;
            append_archive(&mut tar, archive, dest, self.archive_limit.unwrap_or(u64::MAX))?;
        }
        tar.into_inner().map_err(io_err("write tar"))?.flush().map_err(io_err("write tar"))?;
        Ok(())
    }
}

/// Appends the entries of a tar (plain or compressed) below `dest` (`ADD archive.tar.gz /dest`), with
/// their owners and modes; absolute names land below `dest`, and a name or hard-link target with
/// `..` is refused (the project's one set of entry name rules, `wharf_confined::entry`).
fn append_archive(
    tar: &mut tar::Builder<impl Write>,
    archive: &Entry,
    dest: &str,
    limit: u64,
) -> Result<(), ContextError> {
    let err = |e: io::Error| {
        if e.to_string().contains("over the limit") {
            ContextError::Invalid(format!(
                "ADD of an archive to {dest}: it unpacks to more than the {limit} bytes this daemon allows"
            ))
        } else {
            ContextError::Invalid(format!("ADD of an archive to {dest}: {e}"))
        }
    };
    let unpacked = decompress(archive.open().map_err(err)?).map_err(err)?;
    let mut input = tar::Archive::new(Limited { inner: unpacked, read: 0, limit });
    let prefix = dest.trim_start_matches('/').trim_end_matches('/');
    let under = |rel: String| if prefix.is_empty() { rel } else { format!("{prefix}/{rel}") };
    let refused = |e: wharf_confined::entry::PathError| {
        ContextError::Invalid(format!("ADD of an archive to {dest}: archive entry {e}"))
    };
    for entry in input.entries().map_err(err)? {
        let mut entry = entry.map_err(err)?;
        wharf_confined::entry::components(&entry.path_bytes()).map_err(refused)?;
        if entry.header().entry_type() == tar::EntryType::Link {
            wharf_confined::entry::components(&entry.link_name_bytes().unwrap_or_default()).map_err(refused)?;
        }
        let path = entry.path().map_err(err)?.into_owned();
        let rel = clean_rel(&path.to_string_lossy());
        if rel.is_empty() {
            continue;
        }
        let full = under(rel);
        let mut h = entry.header().clone();
        match h.entry_type() {
            tar::EntryType::Link => {
                let target = entry.link_name().map_err(err)?.map(|t| under(clean_rel(&t.to_string_lossy())));
                tar.append_link(&mut h, &full, target.unwrap_or_default()).map_err(err)?;
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name().map_err(err)?.map(|t| t.into_owned()).unwrap_or_default();
                tar.append_link(&mut h, &full, target).map_err(err)?;
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            _ => tar.append_data(&mut h, &full, &mut entry).map_err(err)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut t = tar::Builder::new(&mut out);
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            t.append_data(&mut h, name, &data[..]).unwrap();
        }
        t.into_inner().unwrap();
        out
    }

    /// A tar of files named exactly as given (the tar crate refuses to write `..` or `/`).
    fn raw_tar_of(files: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut t = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_cksum();
            t.append(&h, *data).unwrap();
        }
        t.into_inner().unwrap()
    }

    /// The names of a context, a stage's unpack alike, go by `wharf_confined::entry`: a
    /// leading `/` lands inside, any `..` is refused.
    #[test]
    fn entry_names_follow_the_one_rule() {
        let dir = std::env::temp_dir().join(format!("wharf-ctx-names-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("unpacked")).unwrap();
        let abs = raw_tar_of(&[(b"/abs/f", b"in")]);
        let c = Context::receive(io::Cursor::new(abs.clone()), &dir.join("spool1"), u64::MAX).unwrap();
        assert_eq!(
            contents(&c).iter().map(|(k, v, _)| (k.as_str(), v.as_slice())).collect::<Vec<_>>(),
            [("abs/f", &b"in"[..])]
        );
        unpack(io::Cursor::new(abs), &dir.join("unpacked"), u64::MAX).unwrap();
        assert_eq!(fs::read(dir.join("unpacked/abs/f")).unwrap(), b"in");
        for bad in [&b"../x"[..], b"a/../b", b"/../x"] {
            let tar = raw_tar_of(&[(bad, b"out")]);
            let spool = dir.join(format!("spool-{}", bad.len()));
            let e = Context::receive(io::Cursor::new(tar.clone()), &spool, u64::MAX).unwrap_err();
            assert!(e.to_string().contains("outside the context"), "{e}");
            let e = unpack(io::Cursor::new(tar), &dir.join("unpacked"), u64::MAX).unwrap_err();
            assert!(e.to_string().contains("outside the context"), "{e}");
        }
        assert!(!dir.join("x").exists() && !dir.join("unpacked/b").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// An ADD archive's entries land below the destination by the same rule: a leading `/`
    /// inside it, a name or hard-link target with `..` refused.
    #[test]
    fn add_archive_names_follow_the_one_rule() {
        let dir = std::env::temp_dir().join(format!("wharf-ctx-add-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let add = |name: &str, tar: Vec<u8>| {
            let path = dir.join(name);
            fs::write(&path, tar).unwrap();
            let mut out = tar::Builder::new(Vec::new());
            append_archive(&mut out, &Entry::from_path(&path).unwrap(), "/dest", u64::MAX)?;
            let bytes = out.into_inner().unwrap();
            let mut names = Vec::new();
            for e in tar::Archive::new(&bytes[..]).entries().unwrap() {
                names.push(String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap());
            }
            Ok::<_, ContextError>(names)
        };
        assert_eq!(add("abs.tar", raw_tar_of(&[(b"/abs", b"x")])).unwrap(), ["dest/abs"]);
        for (i, bad) in [&b"../x"[..], b"a/../b"].into_iter().enumerate() {
            let e = add(&format!("bad{i}.tar"), raw_tar_of(&[(bad, b"x")])).unwrap_err();
            assert!(e.to_string().contains("points outside the destination"), "{e}");
        }
        let mut t = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Link);
        h.set_size(0);
        h.set_mode(0o644);
        h.as_old_mut().name[..4].copy_from_slice(b"link");
        h.as_old_mut().linkname[..11].copy_from_slice(b"../../etc/x");
        h.set_cksum();
        t.append(&h, &b""[..]).unwrap();
        let e = add("link.tar", t.into_inner().unwrap()).unwrap_err();
        assert!(e.to_string().contains("points outside the destination"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    fn contents(c: &Context) -> Vec<(String, Vec<u8>, [u8; 32])> {
        c.entries
            .iter()
            .filter(|(_, e)| e.kind == EntryKind::File)
            .map(|(k, e)| {
                let mut v = Vec::new();
                e.open().unwrap().read_to_end(&mut v).unwrap();
                let digest: [u8; 32] = Sha256::digest(&v).into();
                assert_eq!(e.digest, Some(digest), "{k}: the recorded digest is not its content's");
                (k.clone(), v, digest)
            })
            .collect()
    }

    /// A context received after another reads what did not change in the other's spool and
    /// gets every byte and digest right where files changed: at the start, in the middle of a
    /// file longer than a read, at the end, in size, or are new; the earlier spool's directory
    /// may be gone by then.
    #[test]
    fn a_context_received_after_another_is_the_same_as_received_alone() {
        let dir = std::env::temp_dir().join(format!("wharf-ctx-after-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("a")).unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut big_mid = big.clone();
        big_mid[200_000] ^= 1;
        let mut big_end = big.clone();
        *big_end.last_mut().unwrap() ^= 1;
        let first = tar_of(&[
            ("same", b"unchanged".to_vec()),
            ("start", b"abc".to_vec()),
            ("mid", big.clone()),
            ("end", big.clone()),
            ("grows", b"x".to_vec()),
            ("gone", b"removed".to_vec()),
            ("empty", Vec::new()),
        ]);
        let second = tar_of(&[
            ("same", b"unchanged".to_vec()),
            ("start", b"xbc".to_vec()),
            ("mid", big_mid),
            ("end", big_end),
            ("grows", b"xy".to_vec()),
            ("new", b"new".to_vec()),
            ("empty", Vec::new()),
        ]);
        let a = Context::receive(std::io::Cursor::new(first), &dir.join("a/spool"), u64::MAX).unwrap();
        fs::remove_dir_all(dir.join("a")).unwrap();
        let after =
            Context::receive_after(std::io::Cursor::new(second.clone()), &dir.join("after"), u64::MAX, &a).unwrap();
        let alone = Context::receive(std::io::Cursor::new(second), &dir.join("alone"), u64::MAX).unwrap();
        assert_eq!(contents(&after), contents(&alone));
        // Only what changed was written again.
        let written = fs::metadata(dir.join("after")).unwrap().len();
        assert_eq!(written, 3 + 300_000 + 300_000 + 2 + 3, "bytes in the second spool");
        assert!(after.worth_keeping());
        drop(a);
        assert_eq!(contents(&after), contents(&alone), "after the first context is dropped");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn clean_rel_paths() {
        assert_eq!(clean_rel("./a/b/"), "a/b");
        assert_eq!(clean_rel("/a//b"), "a/b");
        assert_eq!(clean_rel("."), "");
        assert_eq!(clean_rel("../../x"), "x");
    }
}
