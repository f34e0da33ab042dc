//! `export`: a container's merged root file system as one tar, and the tar writer of a
//! directory tree that `commit` also uses for upper dirs (with overlay whiteouts turned back
//! into OCI ones).
//!
//! The merged view comes from a read-only overlay mounted in a private mount namespace of a
//! dedicated thread (never a pooled one: the namespace dies with the thread), so the host never
//! holds the mount. The container's upper dir is the top lower dir of that overlay, which needs
//! no work dir and so never competes with the container's own mount.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use wharf_confined::overlay::is_opaque;

use crate::{Engine, EngineError};

/// How a tree is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TreeMode {
    /// A plain file system: devices stay devices.
    Plain,
    /// An overlay upper dir: 0/0 character devices become `.wh.<name>` files and opaque
    /// directories get a `.wh..wh..opq` entry.
    OverlayUpper,
}

/// What an export of one container needs, resolved before the first byte goes out (so an
/// unknown container is a 404, not a broken stream).
pub struct ExportPlan {
    id: String,
    options: String,
    mount_point: std::path::PathBuf,
    /// A remapped container's files go into the tar with the ids it saw.
    unshift: Option<crate::userns::Unshift>,
}

impl Engine {
    /// Resolves the container and the read-only overlay options of its merged rootfs.
    pub fn export_plan(&self, name: &str) -> Result<ExportPlan, EngineError> {
        let rec = self.find_container(name)?;
        let dirs = self.inner.snapshots.container_dirs(&rec.id);
        if !dirs.upper.is_dir() {
            return Err(EngineError::Conflict(format!("container {} has no file system to export", rec.id)));
        }
        let lowers = self.inner.snapshots.overlay_lowerdirs(&rec.chain_ids)?;
        let mut options = format!("lowerdir={}", dirs.upper.display());
        for l in &lowers {
            options.push(':');
            options.push_str(&l.to_string_lossy());
        }
        let unshift = self.unshift_for(&rec);
        if unshift.is_some() {
            // Its opaque dirs are marked as an overlay in a user namespace marks them.
            options.push_str(",userxattr");
        }
        Ok(ExportPlan { id: rec.id, options, mount_point: dirs.rootfs, unshift })
    }

    /// Writes the container's merged rootfs as a tar to `out` from a thread of its own (with its
    /// own mount namespace); returns when the tar is written or failed.
    pub fn export_blocking(&self, plan: ExportPlan, out: impl Write + Send + 'static) -> Result<(), EngineError> {
        let id = plan.id.clone();
        let handle = std::thread::Builder::new()
            .name("export".into())
            .spawn(move || export_in_private_namespace(&plan, out))
            .map_err(|e| EngineError::io("export: start thread", e))?;
        let result = handle.join().map_err(|_| EngineError::Internal(format!("export of {id}: thread panicked")))?;
        if result.is_ok() {
            self.container_event_export(&id);
        }
        result
    }

    fn container_event_export(&self, id: &str) {
        if let Ok(rec) = self.find_container(id) {
            self.container_event(&rec, "export", &[]);
        }
    }
}

/// Runs on a dedicated thread: unshares its mount namespace, mounts the overlay read-only on the
/// container's (host-side empty) mount point, writes the tar. The mount goes with the thread.
fn export_in_private_namespace(plan: &ExportPlan, out: impl Write) -> Result<(), EngineError> {
    // SAFETY: unshare only changes this thread's namespaces; CLONE_NEWNS implies CLONE_FS, which
    // a thread of a multi-threaded process may unshare.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(EngineError::io("export: unshare mount namespace", io::Error::last_os_error()));
    }
    let root = c"/";
    // SAFETY: valid NUL-terminated strings; making every mount of this new namespace private
    // keeps the overlay below from propagating back to the host.
    if unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    } != 0
    {
        return Err(EngineError::io("export: make mounts private", io::Error::last_os_error()));
    }
    let target = CString::new(plan.mount_point.as_os_str().as_bytes())
        .map_err(|_| EngineError::Internal("export: mount point contains a NUL byte".into()))?;
    let data = CString::new(plan.options.as_bytes())
        .map_err(|_| EngineError::Internal("export: overlay options contain a NUL byte".into()))?;
    let fstype = c"overlay";
    // SAFETY: valid NUL-terminated strings for the call's duration; the mount lives in this
    // thread's private namespace only.
    if unsafe { libc::mount(fstype.as_ptr(), target.as_ptr(), fstype.as_ptr(), libc::MS_RDONLY, data.as_ptr().cast()) }
        != 0
    {
        return Err(EngineError::io(
            format!("export of {}: mount overlay {}", plan.id, plan.options),
            io::Error::last_os_error(),
        ));
    }
    let out = crate::userns::IdShift::new(out, plan.unshift.clone());
    let result = write_tree(out, &plan.mount_point, TreeMode::Plain)
        .and_then(|mut w| w.flush())
        .map_err(|e| EngineError::io(format!("export of {}: write tar", plan.id), e));
    // SAFETY: valid path; the namespace goes with the thread anyway, this only frees it sooner.
    unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    result
}

/// Writes the tree under `root` (not `root` itself) as a tar to `out`, entries sorted by name,
/// hard links written once and then as links, sockets skipped.
pub(crate) fn write_tree<W: Write>(out: W, root: &Path, mode: TreeMode) -> io::Result<W> {
    write_tree_skipping(out, root, mode, &std::collections::HashSet::new())
}

/// `write_tree`, leaving out the entries whose path (relative, no trailing `/`) is in `skip`.
pub(crate) fn write_tree_skipping<W: Write>(
    out: W,
    root: &Path,
    mode: TreeMode,
    skip: &std::collections::HashSet<String>,
) -> io::Result<W> {
    let mut tar = tar::Builder::new(out);
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    walk(&mut tar, root, "", mode, &mut links, skip)?;
    tar.into_inner()
}

fn walk<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: &Path,
    prefix: &str,
    mode: TreeMode,
    links: &mut HashMap<(u64, u64), String>,
    skip: &std::collections::HashSet<String>,
) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)?.map(|e| e.map(|e| e.file_name())).collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let rel = format!("{prefix}{}", name.to_string_lossy());
        if skip.contains(&rel) {
            continue;
        }
        let meta = fs::symlink_metadata(&path)?;
        let ft = meta.file_type();
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        h.set_size(0);
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            tar.append_data(&mut h, format!("{rel}/"), io::empty())?;
            if mode == TreeMode::OverlayUpper && is_opaque(&path) {
                append_marker(tar, &format!("{rel}/.wh..wh..opq"))?;
            }
            walk(tar, &path, &format!("{rel}/"), mode, links, skip)?;
        } else if ft.is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            let target = fs::read_link(&path)?;
            tar.append_link(&mut h, &rel, target)?;
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                    h.set_entry_type(tar::EntryType::Link);
                    tar.append_link(&mut h, &rel, first)?;
                    continue;
                }
                links.insert((meta.dev(), meta.ino()), rel.clone());
            }
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(meta.len());
            let file = fs::File::open(&path)?;
            // A file that changes size while read would break the tar: take what the header says.
            tar.append_data(&mut h, &rel, PaddedReader { inner: io::Read::take(file, meta.len()), left: meta.len() })?;
        } else if ft.is_char_device() && mode == TreeMode::OverlayUpper && meta.rdev() == 0 {
            let (parent, base) = match rel.rsplit_once('/') {
                Some((p, b)) => (format!("{p}/"), b.to_string()),
                None => (String::new(), rel.clone()),
            };
            append_marker(tar, &format!("{parent}.wh.{base}"))?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            h.set_entry_type(if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else {
                tar::EntryType::Fifo
            });
            let rdev = meta.rdev();
            h.set_device_major(libc::major(rdev))?;
            h.set_device_minor(libc::minor(rdev))?;
            tar.append_data(&mut h, &rel, io::empty())?;
        }
        // Sockets cannot be archived and mean nothing in an image: skipped, as Docker does.
    }
    Ok(())
}

/// An empty regular file entry (whiteouts and opaque markers), root-owned, mode 0.
fn append_marker<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(0);
    h.set_mode(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    tar.append_data(&mut h, path, io::empty())
}

/// Reads exactly `left` bytes: zeros after an early end (a file shrunk while it was read).
pub(crate) struct PaddedReader<R> {
    inner: R,
    left: u64,
}

impl<R> PaddedReader<R> {
    pub(crate) fn new(inner: R, left: u64) -> PaddedReader<R> {
        PaddedReader { inner, left }
    }
}

impl<R: io::Read> io::Read for PaddedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf.len().min(self.left as usize);
        let mut n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            buf[..max].fill(0);
            n = max;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(tar: &[u8]) -> Vec<(String, tar::EntryType, Option<String>)> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let link = e.link_name().unwrap().map(|l| l.to_string_lossy().into_owned());
                (e.path().unwrap().to_string_lossy().into_owned(), e.header().entry_type(), link)
            })
            .collect()
    }

    #[test]
    fn tree_sorted_with_links() {
        let dir = std::env::temp_dir().join(format!("wharf-export-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("b/c")).unwrap();
        fs::write(dir.join("a"), b"hello").unwrap();
        fs::hard_link(dir.join("a"), dir.join("b/h")).unwrap();
        std::os::unix::fs::symlink("../a", dir.join("b/s")).unwrap();
        let tar = write_tree(Vec::new(), &dir, TreeMode::Plain).unwrap();
        let got = entries(&tar);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            got,
            vec![
                ("a".into(), tar::EntryType::Regular, None),
                ("b/".into(), tar::EntryType::Directory, None),
                ("b/c/".into(), tar::EntryType::Directory, None),
                ("b/h".into(), tar::EntryType::Link, Some("a".into())),
                ("b/s".into(), tar::EntryType::Symlink, Some("../a".into())),
            ]
        );
    }

    #[test]
    fn short_files_are_padded() {
        let mut r = PaddedReader { inner: io::Read::take(&b"ab"[..], 4), left: 4 };
        let mut out = Vec::new();
        io::Read::read_to_end(&mut r, &mut out).unwrap();
        assert_eq!(out, b"ab\0\0");
    }
}
