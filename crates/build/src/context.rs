//! The build context on disk: the client's tar unpacked (plain, gzip or zstd, detected from its
//! first bytes) into a private directory with nothing outside it reachable, the selection of
//! COPY/ADD sources with `.dockerignore` applied, their digest for the cache (content, mode,
//! type, link target, not mtime), and the tar of what a step copies.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest as _, Sha256};

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

/// Unpacks the context tar into `dir` (which must exist and be empty), streaming. Entries with
/// `..` or an absolute path are refused, as are links that point out of the context.
pub fn unpack(body: impl Read, dir: &Path, limit: u64) -> Result<(), ContextError> {
    let mut input = BufReader::with_capacity(1 << 16, body);
    let head = input.fill_buf().map_err(io_err("read"))?.to_vec();
    let reader: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(input))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(input).map_err(io_err("zstd"))?)
    } else if head.starts_with(b"BZh") {
        return Err(ContextError::Invalid(
            "bzip2-compressed contexts are not supported: send it plain, gzip or zstd".into(),
        ));
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z']) {
        return Err(ContextError::Invalid(
            "xz-compressed contexts are not supported: send it plain, gzip or zstd".into(),
        ));
    } else {
        Box::new(input)
    };
    let limited = Limited { inner: reader, read: 0, limit };
    let mut archive = tar::Archive::new(limited);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    let entries = archive.entries().map_err(|e| ContextError::Invalid(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| tar_error(e, limit))?;
        let path = entry.path().map_err(|e| ContextError::Invalid(format!("entry name: {e}")))?.into_owned();
        check_relative(&path)?;
        match entry.header().entry_type() {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry.link_name().ok().flatten().map(|t| t.into_owned()).unwrap_or_default();
                if entry.header().entry_type() == tar::EntryType::Link {
                    check_relative(&target)?;
                }
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => continue,
            _ => {}
        }
        // `unpack_in` refuses paths that would land outside `dir`, through `..` or a
        // symlink an earlier entry made.
        let inside = entry.unpack_in(dir).map_err(|e| tar_error(e, limit))?;
        if !inside {
            return Err(ContextError::Invalid(format!("entry {} is outside the context", path.display())));
        }
    }
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

fn check_relative(path: &Path) -> Result<(), ContextError> {
    for c in path.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            _ => return Err(ContextError::Invalid(format!("entry {:?} is outside the context", path.display()))),
        }
    }
    Ok(())
}

/// A context directory with its `.dockerignore`.
pub struct Context {
    pub dir: PathBuf,
    ignore: Ignore,
}

/// One file, directory or link selected for a copy: where it is in the context and where it
/// goes, relative to the destination root.
#[derive(Debug, Clone)]
pub struct Selected {
    pub source: PathBuf,
    /// Path in the image, absolute.
    pub dest: String,
}

impl Context {
    pub fn open(dir: PathBuf) -> Result<Context, ContextError> {
        let ignore = match fs::read_to_string(dir.join(".dockerignore")) {
            Ok(text) => Ignore::new(&text).map_err(|e| ContextError::Invalid(e.to_string()))?,
            Err(_) => Ignore::default(),
        };
        Ok(Context { dir, ignore })
    }

    /// Whether `rel` ('/'-separated, relative) is left out by `.dockerignore`.
    pub fn excluded(&self, rel: &str) -> bool {
        !rel.is_empty() && self.ignore.matches(rel)
    }

    /// Every path of the context, relative, that is not excluded, in sorted order.
    pub fn walk(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk_dir(&self.dir, "", &mut out, &|rel| self.excluded(rel));
        out
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
                let matched: Vec<String> = all.iter().filter(|p| glob_match(&clean, p)).cloned().collect();
                // A wildcard that matches nothing is only an error when nothing at all is copied.
                out.extend(matched);
                continue;
            }
            let exists = clean.is_empty() || fs::symlink_metadata(self.dir.join(&clean)).is_ok();
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
    /// trailing `/` (or several sources) makes it a directory.
    /// With `parents` (`COPY --parents`), each source keeps its path from the context root
    /// below `dest`.
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
            let path = self.dir.join(src);
            let is_dir = fs::symlink_metadata(&path).map(|m| m.is_dir()).unwrap_or(false);
            if is_dir {
                // A directory's contents are copied, not the directory itself.
                let mut rels = Vec::new();
                let prefix = if src.is_empty() { String::new() } else { format!("{src}/") };
                walk_dir(&path, &prefix, &mut rels, &|rel| self.excluded(rel));
                for rel in rels {
                    let below = &rel[prefix.len()..];
                    out.push(Selected { source: self.dir.join(&rel), dest: format!("{dest}/{below}") });
                }
            } else {
                let name = Path::new(src).file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                let to = if dest_is_dir { format!("{dest}/{name}") } else { dest.to_string() };
                out.push(Selected { source: path, dest: if to.is_empty() { "/".into() } else { to } });
            }
        }
        out
    }
}

fn walk_dir(dir: &Path, prefix: &str, out: &mut Vec<String>, excluded: &dyn Fn(&str) -> bool) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut names: Vec<_> = entries.flatten().collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let rel = format!("{prefix}{}", e.file_name().to_string_lossy());
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if excluded(&rel) {
            // An excluded directory may still hold re-included (`!`) paths.
            if is_dir {
                let mut below = Vec::new();
                walk_dir(&e.path(), &format!("{rel}/"), &mut below, excluded);
                out.extend(below);
            }
            continue;
        }
        out.push(rel.clone());
        if is_dir {
            walk_dir(&e.path(), &format!("{rel}/"), out, excluded);
        }
    }
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

/// Go's `filepath.Match` on '/'-separated paths: `*` and `?` never cross a `/`, `[...]` sets
/// with ranges and `^`/`!` negation, `\` escapes. Iterative (no exponential backtracking).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let pp: Vec<&str> = pattern.split('/').collect();
    let np: Vec<&str> = name.split('/').collect();
    pp.len() == np.len() && pp.iter().zip(np.iter()).all(|(p, n)| match_component(p.as_bytes(), n.as_bytes()))
}

fn match_component(p: &[u8], n: &[u8]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    let (mut star_p, mut star_n) = (None, 0);
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star_p = Some(pi);
                    star_n = ni;
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                b'[' => {
                    if let Some((ok, len)) = match_class(&p[pi..], n[ni]) {
                        if ok {
                            pi += len;
                            ni += 1;
                            continue;
                        }
                    }
                }
                b'\\' if pi + 1 < p.len() && p[pi + 1] == n[ni] => {
                    pi += 2;
                    ni += 1;
                    continue;
                }
                b'\\' if pi + 1 < p.len() => {}
                c if c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star_p {
            Some(sp) => {
                pi = sp + 1;
                star_n += 1;
                ni = star_n;
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

/// Matches one byte against a `[...]` class at the start of `p`: (matched, class length).
fn match_class(p: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = p.get(i).is_some_and(|b| *b == b'^' || *b == b'!');
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() && (p[i] != b']' || first) {
        first = false;
        let lo = if p[i] == b'\\' && i + 1 < p.len() {
            i += 1;
            p[i]
        } else {
            p[i]
        };
        if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
            let hi = p[i + 2];
            matched |= lo <= c && c <= hi;
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
    if i >= p.len() {
        return None;
    }
    Some((matched != negate, i + 1))
}

/// Owner and mode overrides of a copy (`--chown`, `--chmod`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ownership {
    pub uid: u32,
    pub gid: u32,
    pub mode: Option<u32>,
}

/// The digest of what a copy selects, for its cache key: each entry's destination, type,
/// mode, owner, size, content and link target; never its time stamps. Also each entry's own
/// digest by destination (shortened), so that a cache miss can name the file that changed.
pub fn digest(selected: &[Selected], own: Ownership) -> Result<(String, BTreeMap<String, String>), ContextError> {
    let mut all = Sha256::new();
    all.update(format!("own {}:{} {:?}\n", own.uid, own.gid, own.mode));
    let mut each = BTreeMap::new();
    let mut buf = vec![0u8; 1 << 16];
    for s in selected {
        let md = fs::symlink_metadata(&s.source).map_err(io_err(format!("stat {}", s.source.display())))?;
        let mut h = Sha256::new();
        h.update(format!("{}\0{:o}\0", s.dest, md.mode()));
        if md.file_type().is_symlink() {
            let t = fs::read_link(&s.source).map_err(io_err(format!("readlink {}", s.source.display())))?;
            h.update(t.as_os_str().as_encoded_bytes());
        } else if md.is_file() {
            h.update(format!("{}\0", md.len()));
            let mut f = fs::File::open(&s.source).map_err(io_err(format!("open {}", s.source.display())))?;
            loop {
                let n = f.read(&mut buf).map_err(io_err(format!("read {}", s.source.display())))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        }
        let d = h.finalize();
        all.update(d);
        each.insert(s.dest.clone(), format!("{:x}", d)[..16].to_string());
    }
    Ok((format!("{:x}", all.finalize()), each))
}

/// Writes the tar of a copy: first `make_dirs` (absolute directories the image lacks, made
/// 0755 and owned by `own` as Docker makes a copy's destination), then each selected entry at
/// its destination (relative to `/`), owned by `own`, with its mode (or `--chmod`) and mtime,
/// then `extra` files and the entries of `archives`. When the image has no layer at all,
/// (`parents`) any other missing parent of an entry gets an entry too (root's): there is
/// nothing below the layer to provide it.
pub fn write_tar(
    selected: &[Selected],
    own: Ownership,
    make_dirs: &[String],
    parents: bool,
    extra: &BTreeMap<String, Vec<u8>>,
    archives: &[(PathBuf, String)],
    out: impl Write,
) -> Result<(), ContextError> {
    write_tar_owned(selected, own, own, &[], make_dirs, parents, extra, archives, out)
}

/// A directory's owner, mode and time, to write it into a layer as an image has it.
#[derive(Debug, Clone, Copy)]
pub struct DirMeta {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub mtime: i64,
}

/// `write_tar` with the directories of `make_dirs` owned by `dir_owner`, and `keep_dirs`
/// (directories the image has, for a layer made without a container) written first as they are.
#[allow(clippy::too_many_arguments)]
pub fn write_tar_owned(
    selected: &[Selected],
    own: Ownership,
    dir_owner: Ownership,
    keep_dirs: &[(String, DirMeta)],
    make_dirs: &[String],
    parents: bool,
    extra: &BTreeMap<String, Vec<u8>>,
    archives: &[(PathBuf, String)],
    out: impl Write,
) -> Result<(), ContextError> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    let mut dirs_done: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (d, m) in keep_dirs {
        let rel = d.trim_matches('/').to_string();
        if rel.is_empty() || !dirs_done.insert(rel.clone()) {
            continue;
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(m.mode);
        h.set_uid(m.uid as u64);
        h.set_gid(m.gid as u64);
        h.set_size(0);
        h.set_mtime(m.mtime.max(0) as u64);
        tar.append_data(&mut h, format!("{rel}/"), io::empty()).map_err(io_err("write tar"))?;
    }
    for d in make_dirs {
        let rel = d.trim_matches('/').to_string();
        if rel.is_empty() || !dirs_done.insert(rel.clone()) {
            continue;
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_uid(dir_owner.uid as u64);
        h.set_gid(dir_owner.gid as u64);
        h.set_size(0);
        h.set_mtime(0);
        tar.append_data(&mut h, format!("{rel}/"), io::empty()).map_err(io_err("write tar"))?;
    }
    let add_parents = |tar: &mut tar::Builder<_>, dirs_done: &mut std::collections::HashSet<String>, dest: &str| {
        if !parents {
            return Ok(());
        }
        let rel = dest.trim_start_matches('/');
        let mut acc = String::new();
        let comps: Vec<&str> = rel.split('/').collect();
        for c in &comps[..comps.len().saturating_sub(1)] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(c);
            if dirs_done.insert(acc.clone()) {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_uid(0);
                h.set_gid(0);
                h.set_size(0);
                h.set_mtime(0);
                tar.append_data(&mut h, format!("{acc}/"), io::empty()).map_err(io_err("write tar"))?;
            }
        }
        Ok::<(), ContextError>(())
    };
    for s in selected {
        let rel = s.dest.trim_start_matches('/').to_string();
        if rel.is_empty() {
            continue;
        }
        add_parents(&mut tar, &mut dirs_done, &s.dest)?;
        let md = fs::symlink_metadata(&s.source).map_err(io_err(format!("stat {}", s.source.display())))?;
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(&md, tar::HeaderMode::Complete);
        h.set_uid(own.uid as u64);
        h.set_gid(own.gid as u64);
        let perm = md.permissions().mode() & 0o7777;
        if !md.file_type().is_symlink() {
            h.set_mode(own.mode.unwrap_or(perm));
        }
        if md.is_dir() {
            dirs_done.insert(rel.clone());
            h.set_size(0);
            tar.append_data(&mut h, format!("{rel}/"), io::empty()).map_err(io_err("write tar"))?;
        } else if md.file_type().is_symlink() {
            let target = fs::read_link(&s.source).map_err(io_err(format!("readlink {}", s.source.display())))?;
            h.set_size(0);
            tar.append_link(&mut h, &rel, &target).map_err(io_err("write tar"))?;
        } else if md.is_file() {
            let f = fs::File::open(&s.source).map_err(io_err(format!("open {}", s.source.display())))?;
            h.set_size(md.len());
            tar.append_data(&mut h, &rel, f).map_err(io_err("write tar"))?;
        }
    }
    for (dest, content) in extra {
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
    for (archive, dest) in archives {
        add_parents(&mut tar, &mut dirs_done, &format!("{}/x", dest.trim_end_matches('/')))?;
        append_archive(&mut tar, archive, dest)?;
    }
    tar.into_inner().map_err(io_err("write tar"))?.flush().map_err(io_err("write tar"))?;
    Ok(())
}

/// Appends the entries of a tar (plain or gzip) below `dest` (`ADD archive.tar.gz /dest`), with
/// their owners and modes; `..` and absolute names are cleaned into `dest`.
fn append_archive(tar: &mut tar::Builder<impl Write>, archive: &Path, dest: &str) -> Result<(), ContextError> {
    let err = |e: io::Error| ContextError::Invalid(format!("ADD {}: {e}", archive.display()));
    let f = fs::File::open(archive).map_err(err)?;
    let mut head = BufReader::new(f);
    let gz = head.fill_buf().map_err(err)?.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if gz { Box::new(flate2::read::MultiGzDecoder::new(head)) } else { Box::new(head) };
    let mut input = tar::Archive::new(reader);
    let prefix = dest.trim_start_matches('/').trim_end_matches('/');
    let under = |rel: String| if prefix.is_empty() { rel } else { format!("{prefix}/{rel}") };
    for entry in input.entries().map_err(err)? {
        let mut entry = entry.map_err(err)?;
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

    #[test]
    fn globs_as_go_filepath_match() {
        for (p, n, want) in [
            ("*.txt", "a.txt", true),
            ("*.txt", "dir/a.txt", false),
            ("dir/*.txt", "dir/a.txt", true),
            ("a?c", "abc", true),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("*", "anything", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("\\*", "*", true),
        ] {
            assert_eq!(glob_match(p, n), want, "{p} vs {n}");
        }
        // Linear time on a hostile pattern.
        let p = "*a".repeat(50) + "b";
        assert!(!glob_match(&p, &"a".repeat(200)));
    }

    #[test]
    fn clean_rel_paths() {
        assert_eq!(clean_rel("./a/b/"), "a/b");
        assert_eq!(clean_rel("/a//b"), "a/b");
        assert_eq!(clean_rel("."), "");
        assert_eq!(clean_rel("../../x"), "x");
    }
}
