//! `wharf cp`: files between a container and the host, with Docker's rules for what lands where
//! (destination exists or not, trailing `/`, `dir/.` for a directory's contents) and `-` for a
//! tar on stdin or stdout.

use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use clap::{Args, Subcommand};
use wharf_client::{ops, Body, Client, Query};
use wharf_confined::untar;

#[derive(Debug, Subcommand)]
pub enum CopyCommand {
    /// Copy files/folders between a container and the local filesystem
    #[command(
        override_usage = "wharf cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n       wharf cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH"
    )]
    Cp(CpFlags),
}

#[derive(Debug, Args)]
pub struct CpFlags {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long = "archive")]
    archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    follow_link: bool,
    /// Suppress progress output during copy
    #[arg(short = 'q', long)]
    quiet: bool,
    src: String,
    dest: String,
}

pub fn run(client: &Client, cmd: CopyCommand) -> Result<()> {
    let CopyCommand::Cp(f) = cmd;
    match (split_arg(&f.src), split_arg(&f.dest)) {
        ((Some(_), _), (Some(_), _)) => bail!("copying between containers is not supported"),
        ((None, _), (None, _)) => bail!("must specify at least one container source"),
        ((Some(c), src), (None, dst)) => from_container(client, &f, c, src, dst),
        ((None, src), (Some(c), dst)) => to_container(client, &f, c, src, dst),
    }
}

/// `CONTAINER:PATH` → `(Some(container), path)`; an absolute path, a path starting with `.`
/// or one without `:` is local (as the docker CLI decides).
fn split_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.starts_with('.') && !c.is_empty() => (Some(c), p),
        _ => (None, arg),
    }
}

/// Docker's stat of a path in a container, decoded from the `X-Docker-Container-Path-Stat` header.
#[derive(Debug, Default, serde::Deserialize)]
struct PathStat {
    #[serde(default)]
    mode: u32,
    #[serde(default, rename = "linkTarget")]
    link_target: String,
}

const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;
/// Every Go mode type bit but directory (a regular file has none).
const MODE_TYPE_NOT_DIR: u32 = (1 << 27) | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19);

fn decode_stat(header: &str) -> Result<PathStat> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(header.trim())
        .map_err(|e| anyhow!("invalid path stat from the daemon: {e}"))?;
    serde_json::from_slice(&raw).map_err(|e| anyhow!("invalid path stat from the daemon: {e}"))
}

/// `HEAD` the path: `None` when it does not exist.
fn stat(client: &Client, container: &str, path: &str) -> Result<Option<PathStat>> {
    let mut req = ops::container_archive_head(container, path);
    req.target = client.versioned(&req.target);
    let resp = client.send_raw(req).context("stat")?;
    match resp.status {
        200 => match resp.header("X-Docker-Container-Path-Stat") {
            Some(h) => decode_stat(h).map(Some),
            None => bail!("the daemon sent no path stat for {container}:{path}"),
        },
        404 => {
            // A missing container is an error, a missing path only means "not there yet".
            client.container_inspect_raw(container, false).context("copy")?;
            Ok(None)
        }
        s => bail!("Error response from daemon: stat {container}:{path}: {s} {}", resp.reason),
    }
}

fn has_trailing_separator(p: &str) -> bool {
    p.ends_with('/')
}

fn specifies_current_dir(p: &str) -> bool {
    p == "." || p.ends_with("/.")
}

/// The parent and last element as Docker's `SplitPathDirEntry`: `dir/.` gives `(dir, ".")`.
fn split_dir_entry(p: &str) -> (String, String) {
    let mut cleaned = clean(p);
    if specifies_current_dir(p) {
        cleaned = if cleaned == "/" { "/.".into() } else { format!("{cleaned}/.") };
    }
    match cleaned.rsplit_once('/') {
        Some(("", b)) => ("/".into(), if b.is_empty() { "/".into() } else { b.into() }),
        Some((d, b)) => (d.into(), b.into()),
        None => (".".into(), cleaned),
    }
}

/// Lexical clean as Go's `filepath.Clean`.
fn clean(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if matches!(out.last(), Some(l) if *l != "..") {
                    out.pop();
                } else if !abs {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let s = out.join("/");
    match (abs, s.is_empty()) {
        (true, _) => format!("/{s}"),
        (false, true) => ".".into(),
        (false, false) => s,
    }
}

fn base(p: &str) -> String {
    split_dir_entry(p).1
}

/// Where and how an archive of `src` is extracted so that it lands as `dst` (Docker's
/// `PrepareArchiveCopy`): the directory to extract into and the first name element to
/// rename (`(old, new)`), if any.
fn prepare(
    src_path: &str,
    src_is_dir: bool,
    rebase: Option<&str>,
    dst_path: &str,
    dst_exists: bool,
    dst_is_dir: bool,
) -> Result<(String, Option<(String, String)>)> {
    let src_base = rebase.map(str::to_string).unwrap_or_else(|| base(src_path));
    let (dst_dir, dst_base) = split_dir_entry(dst_path);
    if dst_exists && dst_is_dir {
        return Ok((dst_path.to_string(), rebase.map(|r| (base(src_path), r.to_string()))));
    }
    if dst_exists && src_is_dir {
        bail!("cannot copy directory");
    }
    if !dst_exists && !src_is_dir && (has_trailing_separator(dst_path) || specifies_current_dir(dst_path)) {
        bail!("no such directory");
    }
    let old = if rebase.is_some() { base(src_path) } else { src_base };
    Ok((dst_dir, Some((old, dst_base))))
}

/// Renames the first element of a tar entry name (`old` → `new`).
fn rebase_name(name: &[u8], rebase: &Option<(String, String)>) -> Vec<u8> {
    let Some((old, new)) = rebase else { return name.to_vec() };
    let old = old.as_bytes();
    if name == old {
        return new.as_bytes().to_vec();
    }
    if name.starts_with(old) && name.get(old.len()) == Some(&b'/') {
        let mut out = new.as_bytes().to_vec();
        out.extend_from_slice(&name[old.len()..]);
        return out;
    }
    name.to_vec()
}

fn from_container(client: &Client, f: &CpFlags, container: &str, src: &str, dst: &str) -> Result<()> {
    let mut src_path = src.to_string();
    let mut rebase: Option<String> = None;
    if f.follow_link {
        if let Some(st) = stat(client, container, src)? {
            if st.mode & MODE_SYMLINK != 0 && !st.link_target.is_empty() {
                let mut target = st.link_target.clone();
                if !target.starts_with('/') {
                    target = clean(&format!("{}/{}", split_dir_entry(src).0, target));
                }
                if specifies_current_dir(src) && !specifies_current_dir(&target) {
                    target.push_str("/.");
                }
                if has_trailing_separator(src) && !has_trailing_separator(&target) {
                    target.push('/');
                }
                if base(src) != base(&target) {
                    rebase = Some(base(src));
                }
                src_path = target;
            }
        }
    }
    let req = ops::container_archive_get(container, &src_path);
    let resp = client.request(req).context("copy")?;
    let st = match resp.header("X-Docker-Container-Path-Stat") {
        Some(h) => decode_stat(h)?,
        None => PathStat::default(),
    };
    let mut body = resp.into_body();
    if dst == "-" {
        let mut out = io::stdout().lock();
        io::copy(&mut body, &mut out).context("copy to stdout")?;
        return out.flush().context("copy to stdout");
    }
    let (dst_exists, dst_is_dir, dst_path) = local_destination(dst)?;
    let (dir, rb) = prepare(&src_path, st.mode & MODE_DIR != 0, rebase.as_deref(), &dst_path, dst_exists, dst_is_dir)?;
    let n = extract_local(body, Path::new(&dir), &rb, f.archive)?;
    if !f.quiet && io::stderr().is_terminal() {
        eprintln!("Successfully copied {} to {dst}", crate::human::size(n as i64));
    }
    Ok(())
}

/// Docker's `CopyInfoDestinationPath`: follows a symlink at the destination; a missing
/// destination needs an existing parent directory.
fn local_destination(dst: &str) -> Result<(bool, bool, String)> {
    let mut path = dst.to_string();
    for _ in 0..32 {
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&path).with_context(|| format!("read link {path}"))?;
                let t = target.to_string_lossy().into_owned();
                path = if t.starts_with('/') { t } else { clean(&format!("{}/{t}", split_dir_entry(&path).0)) };
            }
            Ok(m) => return Ok((true, m.is_dir(), path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let parent = split_dir_entry(&path).0;
                match fs::metadata(&parent) {
                    Ok(m) if m.is_dir() => return Ok((false, false, path)),
                    Ok(_) => bail!("{parent}: not a directory"),
                    Err(e) => bail!("{parent}: {e}"),
                }
            }
            Err(e) => bail!("{path}: {e}"),
        }
    }
    bail!("{dst}: too many levels of symbolic links")
}

/// The path of a tar name below `dir`, by the project's one set of entry name rules
/// (`wharf_confined::entry`): a leading `/` and `.` elements dropped, `..` refused, so that
/// nothing lands outside `dir`.
fn safe_relative(name: &[u8]) -> Result<PathBuf> {
    wharf_confined::entry::relative_path(name).map_err(|e| anyhow!("archive entry {e}"))
}

/// Extracts the container's tar into `dir` on the host, renaming the first element as `rebase`
/// says; never through a symlink below `dir` (the project's one extraction loop,
/// `wharf_confined::untar`). Returns the bytes of file content written.
fn extract_local(body: impl Read, dir: &Path, rebase: &Option<(String, String)>, keep_owner: bool) -> Result<u64> {
    let root = fs::File::open(dir).map(OwnedFd::from).with_context(|| format!("open {}", dir.display()))?;
    let rename = |name: &[u8]| rebase_name(name, rebase);
    let policy = untar::Policy {
        resolve: untar::Resolve::NoFollow,
        root_entry: false,
        // Without -a what is written belongs to the user running the CLI, as with `tar`.
        owner: if keep_owner { untar::Owner::AsGiven } else { untar::Owner::Unchanged },
        replace: untar::Replace::NoDirNonDir,
        pax_times: false,
        xattrs: false,
        refuse_unknown: false,
        nodes: true,
        whiteouts: false,
        lenient_header: true,
        rename: Some(&rename),
    };
    let target = |entry: &str| dir.join(safe_relative(entry.as_bytes()).unwrap_or_default());
    let mut archive = tar::Archive::new(body);
    let summary = untar::extract(&root, &mut archive, &policy).map_err(|e| match e {
        untar::Error::Invalid { entry, problem } => match problem {
            untar::Problem::Name(refusal) => anyhow!("archive entry {entry:?} {}", refusal.reason()),
            untar::Problem::Overwrite { dir: false } => {
                anyhow!("cannot overwrite directory {} with non-directory", target(&entry).display())
            }
            untar::Problem::Overwrite { dir: true } => {
                anyhow!("cannot overwrite non-directory {} with directory", target(&entry).display())
            }
            untar::Problem::Blocked(c) => {
                anyhow!("archive entry {entry} goes through {c:?}, a symbolic link or not a directory")
            }
            problem => anyhow!("archive entry {entry:?} {}", problem.reason("archive")),
        },
        untar::Error::Io { entry, what, source } => {
            anyhow::Error::new(source).context(format!("{what} {}", target(&entry).display()))
        }
        untar::Error::Read(e) => anyhow::Error::new(e).context("read archive"),
    })?;
    Ok(summary.written)
}

fn to_container(client: &Client, f: &CpFlags, container: &str, src: &str, dst: &str) -> Result<()> {
    let mut dst_path = dst.to_string();
    let mut st = stat(client, container, dst)?;
    if let Some(s) = &st {
        if s.mode & MODE_SYMLINK != 0 {
            let mut target = s.link_target.clone();
            if !target.starts_with('/') {
                target = clean(&format!("{}/{}", split_dir_entry(dst).0, target));
            }
            dst_path = target;
            st = stat(client, container, &dst_path)?;
        }
    }
    if let Some(s) = &st {
        if s.mode & MODE_TYPE_NOT_DIR != 0 {
            bail!("destination \"{container}:{dst}\" must be a directory or a regular file");
        }
    }
    let (dst_exists, dst_is_dir) = match &st {
        Some(s) => (true, s.mode & MODE_DIR != 0),
        None => (false, false),
    };
    let (extract_dir, body): (String, Box<dyn Read + Send>) = if src == "-" {
        if !dst_is_dir {
            bail!("destination \"{container}:{dst}\" must be a directory");
        }
        (dst_path.clone(), Box::new(io::stdin()))
    } else {
        let (src_path, rebase) = local_source(src, f.follow_link)?;
        let src_is_dir = fs::metadata(&src_path).map(|m| m.is_dir()).unwrap_or(false)
            && !fs::symlink_metadata(&src_path).map(|m| m.file_type().is_symlink()).unwrap_or(false);
        let (dir, rb) = prepare(&src_path, src_is_dir, rebase.as_deref(), &dst_path, dst_exists, dst_is_dir)?;
        let first = base(&src_path);
        let name = match rb {
            Some((old, new)) if old == first => new,
            _ => first,
        };
        (dir, local_tar(src_path, name)?)
    };
    let q = Query::new()
        .set("path", extract_dir.as_str())
        .set("noOverwriteDirNonDir", "true")
        .set("copyUIDGID", if f.archive { "true" } else { "false" });
    let req = ops::container_archive_put(container, &q, Body::Reader(body, None));
    client.request(req).context("copy")?.read_body(1 << 20).context("copy")?;
    if !f.quiet && io::stderr().is_terminal() {
        eprintln!("Successfully copied to {container}:{dst}");
    }
    Ok(())
}

/// Docker's `CopyInfoSourcePath`: the path to archive and, with `-L` through a symlink, the
/// name its entries take.
fn local_source(src: &str, follow: bool) -> Result<(String, Option<String>)> {
    let meta = fs::symlink_metadata(src).with_context(|| format!("lstat {src}"))?;
    if follow && meta.file_type().is_symlink() {
        let resolved = fs::canonicalize(src).with_context(|| format!("resolve {src}"))?;
        let r = resolved.to_string_lossy().into_owned();
        let rebase = (base(src) != base(&r)).then(|| base(src));
        return Ok((r, rebase));
    }
    Ok((src.to_string(), None))
}

/// The tar of `path` with its first element named `name`, written by a thread of its own into a
/// pipe (so a large tree is never held in memory). Symlinks are archived as symlinks.
fn local_tar(path: String, name: String) -> Result<Box<dyn Read + Send>> {
    let meta = fs::symlink_metadata(&path).with_context(|| format!("lstat {path}"))?;
    let (reader, writer) = io::pipe().context("pipe")?;
    std::thread::spawn(move || {
        let mut b = tar::Builder::new(writer);
        b.follow_symlinks(false);
        let r = if meta.is_dir() { b.append_dir_all(&name, &path) } else { b.append_path_with_name(&path, &name) };
        if let Err(e) = r.and_then(|_| b.finish()) {
            // The cut stream fails the upload; say why here.
            eprintln!("archive {path}: {e}");
        }
    });
    Ok(Box::new(reader))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_args() {
        assert_eq!(split_arg("c:/etc"), (Some("c"), "/etc"));
        assert_eq!(split_arg("/tmp/a:b"), (None, "/tmp/a:b"));
        assert_eq!(split_arg("./a:b"), (None, "./a:b"));
        assert_eq!(split_arg("file"), (None, "file"));
        assert_eq!(split_arg("-"), (None, "-"));
    }

    #[test]
    fn splits_dir_entries() {
        let cases = [
            ("/etc/hosts", ("/etc", "hosts")),
            ("/etc/", ("/", "etc")),
            ("/etc/.", ("/etc", ".")),
            ("dir", (".", "dir")),
            ("a/b/", ("a", "b")),
            ("/", ("/", "/")),
        ];
        for (p, (d, b)) in cases {
            assert_eq!(split_dir_entry(p), (d.to_string(), b.to_string()), "{p}");
        }
    }

    #[test]
    fn prepares_as_docker() {
        // A dir into an existing dir: extracted there, as is.
        assert_eq!(prepare("/etc", true, None, "/tmp/x", true, true).unwrap(), ("/tmp/x".into(), None));
        // A dir to a new name: extracted into the parent, renamed.
        assert_eq!(
            prepare("/etc", true, None, "/tmp/new", false, false).unwrap(),
            ("/tmp".into(), Some(("etc".into(), "new".into())))
        );
        // Its contents to a new name.
        assert_eq!(
            prepare("/etc/.", true, None, "/tmp/new", false, false).unwrap(),
            ("/tmp".into(), Some((".".into(), "new".into())))
        );
        // A file over a file.
        assert_eq!(
            prepare("/etc/hosts", false, None, "/tmp/f", true, false).unwrap(),
            ("/tmp".into(), Some(("hosts".into(), "f".into())))
        );
        assert!(prepare("/etc", true, None, "/tmp/f", true, false).is_err());
        assert!(prepare("/etc/hosts", false, None, "/tmp/nodir/", false, false).is_err());
    }

    #[test]
    fn rebases_first_element() {
        let rb = Some(("etc".to_string(), "new".to_string()));
        assert_eq!(rebase_name(b"etc/hosts", &rb), b"new/hosts");
        assert_eq!(rebase_name(b"etc", &rb), b"new");
        assert_eq!(rebase_name(b"etcx/a", &rb), b"etcx/a");
        let dot = Some((".".to_string(), "new".to_string()));
        assert_eq!(rebase_name(b"./a", &dot), b"new/a");
    }

    #[test]
    fn refuses_escaping_names() {
        assert_eq!(safe_relative(b"a/./b").unwrap(), PathBuf::from("a/b"));
        assert_eq!(safe_relative(b"/abs").unwrap(), PathBuf::from("abs"));
        assert!(safe_relative(b"../x").is_err());
        assert!(safe_relative(b"a/../../x").is_err());
    }

    #[test]
    fn hard_links_never_reach_through_an_archived_symlink() {
        let tmp = std::env::temp_dir().join(format!("wharf-cp-link-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let (outside, dest) = (tmp.join("outside"), tmp.join("dest"));
        fs::create_dir_all(&outside).unwrap();
        fs::create_dir_all(&dest).unwrap();
        fs::write(outside.join("secret"), b"host").unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        tar.append_link(&mut h, "a", &outside).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Link);
        h.set_size(0);
        tar.append_link(&mut h, "x", "a/secret").unwrap();
        let bytes = tar.into_inner().unwrap();
        let err = extract_local(&bytes[..], &dest, &None, false).unwrap_err();
        assert!(err.to_string().contains("not an entry of this archive"), "{err:#}");
        assert!(fs::symlink_metadata(dest.join("x")).is_err(), "a host file was linked into the destination");
        fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn decodes_stat() {
        let h = base64::engine::general_purpose::STANDARD
            .encode(r#"{"name":"etc","size":4096,"mode":2147484141,"mtime":"2024-01-01T00:00:00Z","linkTarget":""}"#);
        let s = decode_stat(&h).unwrap();
        assert_eq!(s.mode & MODE_DIR, MODE_DIR);
        assert_eq!(s.mode & 0o777, 0o755);
    }
}
