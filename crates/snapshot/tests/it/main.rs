//! Integration tests of the snapshotter: layer tars built in memory, applied as root, checked on
//! disk, and stacked with a real overlayfs mount.

// Test code: a panic (an unwrap, or a slice off a char boundary) is the test's failure report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::string_slice)]

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tar::{EntryType, Header};
use wharf_snapshot::{SnapshotError, Snapshotter};
use wharf_types::{Digest, ErrorKind};

/// A scratch directory removed at the end of the test.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "wharf-snap-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// These tests mount overlays and write root-owned files: the suite runs as root (as CI does).
/// A test run without it fails here, saying so, rather than passing without having run.
#[track_caller]
fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() == 0 };
    assert!(root, "this test needs root: run the test suite as root");
}

/// Builds layer tars entry by entry, writing names raw so that hostile paths can be expressed.
struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Layer {
    fn new() -> Layer {
        Layer { b: tar::Builder::new(Vec::new()) }
    }

    fn header(path: &str, ty: EntryType, mode: u32, size: u64) -> Header {
        let mut h = Header::new_gnu();
        let name = &mut h.as_gnu_mut().unwrap().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_entry_type(ty);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h
    }

    fn push(&mut self, mut h: Header, data: &[u8]) -> &mut Layer {
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    fn dir(&mut self, path: &str, mode: u32) -> &mut Layer {
        self.push(Self::header(path, EntryType::Directory, mode, 0), b"")
    }

    fn file(&mut self, path: &str, data: &[u8]) -> &mut Layer {
        self.push(Self::header(path, EntryType::Regular, 0o644, data.len() as u64), data)
    }

    fn file_owned(&mut self, path: &str, mode: u32, uid: u64, gid: u64, data: &[u8]) -> &mut Layer {
        let mut h = Self::header(path, EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.push(h, data)
    }

    fn link(&mut self, ty: EntryType, path: &str, target: &str) -> &mut Layer {
        let mut h = Self::header(path, ty, 0o777, 0);
        let name = &mut h.as_gnu_mut().unwrap().linkname;
        name[..target.len()].copy_from_slice(target.as_bytes());
        self.push(h, b"")
    }

    fn node(&mut self, path: &str, ty: EntryType, major: u32, minor: u32) -> &mut Layer {
        let mut h = Self::header(path, ty, 0o666, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.push(h, b"")
    }

    /// A PAX extended header with `records`, describing the next entry.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Layer {
        let mut data = Vec::new();
        for (k, v) in records {
            let body = k.len() + v.len() + 3; // ' ', '=', '\n'
            let mut len = body + 1;
            while len != body + len.to_string().len() {
                len = body + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        self.push(Self::header("PaxHeader", EntryType::XHeader, 0o644, data.len() as u64), &data)
    }

    fn build(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}

fn chain(n: u8) -> Digest {
    Digest::of(&[n])
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn get_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let path = cpath(p);
    let name = CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid NUL-terminated strings and a writable buffer of the given length.
    let n = unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

fn count(dir: &Path) -> usize {
    fs::read_dir(dir).unwrap().count()
}

#[test]
fn applies_every_entry_kind() {
    require_root();
    let s = Scratch::new("kinds");
    let snap = Snapshotter::open(&s.0.join("snapshots")).unwrap();
    let tar = Layer::new()
        .dir("./", 0o755)
        .dir("etc/", 0o755)
        .file("etc/hello", b"hello world")
        .file_owned("usr/bin/su", 0o4755, 0, 0, b"#!/bin/sh\n")
        .file_owned("home/user/notes", 0o640, 1000, 1001, b"mine")
        .dir("tmp/", 0o1777)
        .link(EntryType::Symlink, "etc/alias", "hello")
        .link(EntryType::Symlink, "etc/abs", "/etc/shadow")
        .link(EntryType::Link, "etc/hello2", "etc/hello")
        .node("dev/null", EntryType::Char, 1, 3)
        .node("dev/pipe", EntryType::Fifo, 0, 0)
        .pax(&[("SCHILY.xattr.user.color", b"blue"), ("SCHILY.xattr.trusted.overlay.redirect", b"/x")])
        .file("etc/xattrs", b"x")
        .pax(&[("mtime", b"1500000000.25")])
        .file("etc/precise", b"t")
        .file("gone-dir/x", b"x")
        .file(".wh.gone", b"")
        .dir("opaque/", 0o700)
        .file("opaque/.wh..wh..opq", b"")
        .file("opaque/.wh..wh.plnk", b"")
        .file("replaced", b"first")
        .file("replaced", b"second")
        .dir("merged/", 0o700)
        .file("merged/a", b"a")
        .dir("merged/", 0o751)
        .build();
    let applied = snap.apply_layer(&chain(1), Some(&Digest::of(&tar)), &tar[..]).unwrap();
    assert_eq!(applied.diff_id, Digest::of(&tar));
    let dir = snap.layer_dir(&chain(1));
    assert!(snap.has_layer(&chain(1)));

    assert_eq!(fs::read(dir.join("etc/hello")).unwrap(), b"hello world");
    let su = fs::metadata(dir.join("usr/bin/su")).unwrap();
    assert_eq!(su.mode() & 0o7777, 0o4755);
    let notes = fs::metadata(dir.join("home/user/notes")).unwrap();
    assert_eq!((notes.uid(), notes.gid(), notes.mode() & 0o7777), (1000, 1001, 0o640));
    assert_eq!(fs::metadata(dir.join("tmp")).unwrap().mode() & 0o7777, 0o1777);
    assert_eq!(fs::read_link(dir.join("etc/alias")).unwrap(), Path::new("hello"));
    assert_eq!(fs::read_link(dir.join("etc/abs")).unwrap(), Path::new("/etc/shadow"));
    let h1 = fs::metadata(dir.join("etc/hello")).unwrap();
    let h2 = fs::metadata(dir.join("etc/hello2")).unwrap();
    assert_eq!((h1.ino(), h1.nlink()), (h2.ino(), 2));
    let null = fs::symlink_metadata(dir.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    assert!(fs::symlink_metadata(dir.join("dev/pipe")).unwrap().file_type().is_fifo());
    assert_eq!(get_xattr(&dir.join("etc/xattrs"), "user.color").as_deref(), Some(&b"blue"[..]));
    assert_eq!(get_xattr(&dir.join("etc/xattrs"), "trusted.overlay.redirect"), None);
    let precise = fs::metadata(dir.join("etc/precise")).unwrap();
    assert_eq!((precise.mtime(), precise.mtime_nsec()), (1_500_000_000, 250_000_000));
    // Directory mtimes are those of the tar, though entries were created inside afterwards.
    assert_eq!(fs::metadata(dir.join("etc")).unwrap().mtime(), 1_600_000_000);
    assert_eq!(fs::metadata(&dir).unwrap().mtime(), 1_600_000_000);

    let wh = fs::symlink_metadata(dir.join("gone")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!dir.join(".wh.gone").exists());
    assert_eq!(get_xattr(&dir.join("opaque"), "trusted.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert_eq!(count(&dir.join("opaque")), 0);

    assert_eq!(fs::read(dir.join("replaced")).unwrap(), b"second");
    let merged = fs::metadata(dir.join("merged")).unwrap();
    assert_eq!(merged.mode() & 0o7777, 0o751);
    assert!(dir.join("merged/a").exists());

    assert_eq!(snap.layer_size(&chain(1)).unwrap(), applied.size);
    assert!(applied.size >= 11 + 10 + 4 + 6 + 5 + 11);
    assert_eq!(snap.list_layers().unwrap(), vec![chain(1)]);
    assert_eq!(count(&s.0.join("snapshots/tmp")), 0);

    snap.remove_layer(&chain(1)).unwrap();
    snap.remove_layer(&chain(1)).unwrap();
    assert!(!snap.has_layer(&chain(1)));
    assert_eq!(count(&s.0.join("snapshots/l")), 0);
    assert_eq!(snap.layer_size(&chain(1)).unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn long_names_through_gnu_and_pax() {
    require_root();
    let s = Scratch::new("long");
    let snap = Snapshotter::open(&s.0).unwrap();
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(150));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
    let mut layer = Layer { b };
    let pax_name = format!("{}/pax", "p".repeat(200));
    layer.pax(&[("path", pax_name.as_bytes())]).file("ignored-short-name", b"pax");
    let tar = layer.build();
    snap.apply_layer(&chain(2), None, &tar[..]).unwrap();
    let dir = snap.layer_dir(&chain(2));
    assert_eq!(fs::read(dir.join(&long)).unwrap(), b"abc");
    assert_eq!(fs::read(dir.join(&pax_name)).unwrap(), b"pax");
    assert!(!dir.join("ignored-short-name").exists());
}

#[test]
fn diff_id_covers_trailing_padding() {
    require_root();
    let s = Scratch::new("padding");
    let snap = Snapshotter::open(&s.0).unwrap();
    let mut tar = Layer::new().file("a", b"a").build();
    tar.extend_from_slice(&[0u8; 10240]);
    let applied = snap.apply_layer(&chain(3), None, &tar[..]).unwrap();
    assert_eq!(applied.diff_id, Digest::of(&tar));
    // Applying it again only hashes it.
    let again = snap.apply_layer(&chain(3), Some(&Digest::of(&tar)), &tar[..]).unwrap();
    assert_eq!(again, applied);
}

fn assert_refused(tar: &[u8], entry: &str, reason: &str) {
    let s = Scratch::new("refuse");
    let snap = Snapshotter::open(&s.0).unwrap();
    let err = snap.apply_layer(&chain(9), None, tar).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("layer {}: entry {entry:?}", chain(9))), "{msg}");
    assert!(msg.contains(reason), "{msg}");
    assert!(!snap.has_layer(&chain(9)));
    assert_eq!(count(&s.0.join("tmp")), 0);
    assert_eq!(count(&s.0.join("layers")), 0);
}

#[test]
fn refuses_escapes() {
    require_root();
    assert_refused(&Layer::new().file("ok", b"").file("../x", b"evil").build(), "../x", "escapes the layer root");
    assert_refused(&Layer::new().file("a/../../x", b"evil").build(), "a/../../x", "escapes the layer root");
    assert_refused(
        &Layer::new().link(EntryType::Symlink, "link", "/etc").file("link/passwd", b"evil").build(),
        "link/passwd",
        "passes through \"link\"",
    );
    assert_refused(
        &Layer::new().link(EntryType::Symlink, "link", "..").file("link/x", b"evil").build(),
        "link/x",
        "a symlink",
    );
    assert_refused(
        &Layer::new().link(EntryType::Link, "shadow", "../../etc/shadow").build(),
        "shadow",
        "escapes the layer root",
    );
    assert_refused(&Layer::new().link(EntryType::Link, "h", "missing").build(), "h", "not an entry of this layer");
    assert_refused(
        &Layer::new().link(EntryType::Symlink, "etc", "/etc").link(EntryType::Link, "h", "etc/shadow").build(),
        "h",
        "not an entry of this layer",
    );
    assert_refused(&Layer::new().file(".wh..", b"").build(), ".wh..", "invalid name");
}

/// An absolute name lands below the layer root, as Docker and containerd apply it (the
/// project's one entry name rule, `wharf_confined::entry`).
#[test]
fn absolute_names_land_below_the_root() {
    require_root();
    let s = Scratch::new("abs");
    let snap = Snapshotter::open(&s.0.join("snapshots")).unwrap();
    let tar = Layer::new().file("/abs", b"inside").link(EntryType::Link, "/etc-link", "/abs").build();
    snap.apply_layer(&chain(7), None, &tar[..]).unwrap();
    let fs = snap.layer_dir(&chain(7));
    assert_eq!(fs::read(fs.join("abs")).unwrap(), b"inside");
    assert_eq!(fs::metadata(fs.join("etc-link")).unwrap().ino(), fs::metadata(fs.join("abs")).unwrap().ino());
}

#[test]
fn refuses_a_wrong_diff_id_and_leaves_nothing() {
    require_root();
    let s = Scratch::new("mismatch");
    let snap = Snapshotter::open(&s.0).unwrap();
    let tar = Layer::new().file("a", b"a").build();
    let err = snap.apply_layer(&chain(4), Some(&Digest::of(b"other")), &tar[..]).unwrap_err();
    assert!(matches!(err, SnapshotError::DiffIdMismatch { .. }), "{err}");
    assert_eq!(count(&s.0.join("tmp")), 0);
    assert!(!snap.has_layer(&chain(4)));
    // A truncated stream is a bad layer too.
    let err = snap.apply_layer(&chain(4), None, &tar[..700]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert_eq!(count(&s.0.join("tmp")), 0);
}

#[test]
fn a_new_layer_is_named_by_its_chain_id_once_hashed() {
    require_root();
    let s = Scratch::new("new-layer");
    let snap = Snapshotter::open(&s.0).unwrap();
    let base = Layer::new().file("a", b"a").build();
    let made = snap.apply_new_layer(None, &base[..]).unwrap();
    // A first layer's chain id is its diff id.
    assert_eq!((&made.chain_id, &made.diff_id, made.fresh), (&Digest::of(&base), &Digest::of(&base), true));
    let first = made.chain_id;
    let top = Layer::new().file("b", b"bb").build();
    let made = snap.apply_new_layer(Some(&first), &top[..]).unwrap();
    assert_eq!(made.diff_id, Digest::of(&top));
    let second = made.chain_id.clone();
    assert_eq!(second, Digest::of(format!("{first} {}", Digest::of(&top)).as_bytes()));
    assert_eq!((made.size, made.fresh), (2, true));
    assert_eq!(fs::read(snap.layer_dir(&second).join("b")).unwrap(), b"bb");
    // The same layer again keeps the one there.
    let again = snap.apply_new_layer(Some(&first), &top[..]).unwrap();
    assert_eq!(again, wharf_snapshot::NewLayer { fresh: false, ..made });
    assert_eq!(count(&s.0.join("tmp")), 0);
    let mut layers = snap.list_layers().unwrap();
    layers.sort();
    let mut want = vec![first.clone(), second];
    want.sort();
    assert_eq!(layers, want);
    // A bad entry leaves nothing, and is named with the layer below.
    let err = snap.apply_new_layer(Some(&first), &Layer::new().file("../x", b"evil").build()[..]).unwrap_err();
    assert!(err.to_string().starts_with(&format!("layer {first}: entry \"../x\"")), "{err}");
    assert_eq!(count(&s.0.join("tmp")), 0);
    assert_eq!(snap.list_layers().unwrap().len(), 2);
}

#[test]
fn concurrent_apply_of_one_layer() {
    require_root();
    let s = Scratch::new("concurrent");
    let snap = Arc::new(Snapshotter::open(&s.0).unwrap());
    let mut layer = Layer::new();
    for i in 0..200 {
        layer.file(&format!("d{}/f{i}", i % 7), &vec![i as u8; 5000]);
    }
    let tar = Arc::new(layer.build());
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let (snap, tar) = (snap.clone(), tar.clone());
            std::thread::spawn(move || snap.apply_layer(&chain(5), Some(&Digest::of(&tar)), &tar[..]).unwrap())
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(results.iter().all(|r| *r == results[0]));
    assert_eq!(results[0].size, 200 * 5000);
    assert_eq!(count(&s.0.join("tmp")), 0);
    assert_eq!(snap.list_layers().unwrap(), vec![chain(5)]);
    assert_eq!(count(&snap.layer_dir(&chain(5))), 7);
}

#[test]
fn open_removes_stale_temp_dirs() {
    let s = Scratch::new("stale");
    Snapshotter::open(&s.0).unwrap();
    fs::create_dir_all(s.0.join("tmp/leftover/fs/ro")).unwrap();
    fs::set_permissions(s.0.join("tmp/leftover/fs/ro"), fs::Permissions::from_mode(0o500)).unwrap();
    Snapshotter::open(&s.0).unwrap();
    assert_eq!(count(&s.0.join("tmp")), 0);
}

fn mount_overlay(options: &str, target: &Path) {
    let src = CString::new("overlay").unwrap();
    let data = CString::new(options).unwrap();
    let target = cpath(target);
    // SAFETY: all strings are valid and NUL-terminated.
    let ret = unsafe { libc::mount(src.as_ptr(), target.as_ptr(), src.as_ptr(), 0, data.as_ptr().cast()) };
    assert_eq!(ret, 0, "mount overlay: {}", std::io::Error::last_os_error());
}

fn umount(target: &Path) {
    let target = cpath(target);
    // SAFETY: a valid NUL-terminated path.
    let ret = unsafe { libc::umount2(target.as_ptr(), 0) };
    assert_eq!(ret, 0, "umount: {}", std::io::Error::last_os_error());
}

#[test]
fn overlay_over_two_layers_honours_whiteouts_and_opaque_dirs() {
    require_root();
    let s = Scratch::new("overlay");
    let snap = Snapshotter::open(&s.0).unwrap();
    let bottom = Layer::new()
        .file("a/keep", b"keep")
        .file("a/gone", b"gone")
        .file("o/lower-only", b"lower")
        .file("o/both", b"lower")
        .file("dir-gone/x", b"x")
        .build();
    let top = Layer::new()
        .file("a/.wh.gone", b"")
        .file(".wh.dir-gone", b"")
        .dir("o/", 0o755)
        .file("o/.wh..wh..opq", b"")
        .file("o/both", b"upper")
        .file("o/new", b"new")
        .build();
    let diff_ids = [Digest::of(&bottom), Digest::of(&top)];
    let chains = wharf_types::digest::chain_ids(&diff_ids);
    snap.apply_layer(&chains[0], Some(&diff_ids[0]), &bottom[..]).unwrap();
    snap.apply_layer(&chains[1], Some(&diff_ids[1]), &top[..]).unwrap();

    let dirs = snap.prepare_container("c1").unwrap();
    let options = snap.overlay_options(&chains, "c1").unwrap();
    let expected_lower = format!(
        "lowerdir={}/l/{}:{}/l/{},",
        s.0.display(),
        &chains[1].hex()[..16],
        s.0.display(),
        &chains[0].hex()[..16]
    );
    assert!(options.starts_with(&expected_lower), "{options}");
    mount_overlay(&options, &dirs.rootfs);
    let r = &dirs.rootfs;
    let seen = (
        fs::read(r.join("a/keep")).ok(),
        r.join("a/gone").exists(),
        r.join("dir-gone").exists(),
        r.join("o/lower-only").exists(),
        fs::read(r.join("o/both")).ok(),
        fs::read(r.join("o/new")).ok(),
    );
    fs::write(r.join("written"), b"w").unwrap();
    umount(r);
    assert_eq!(seen.0.as_deref(), Some(&b"keep"[..]));
    assert!(!seen.1, "whiteout did not hide a/gone");
    assert!(!seen.2, "whiteout did not hide dir-gone");
    assert!(!seen.3, "opaque dir did not hide o/lower-only");
    assert_eq!(seen.4.as_deref(), Some(&b"upper"[..]));
    assert_eq!(seen.5.as_deref(), Some(&b"new"[..]));
    assert!(dirs.upper.join("written").exists());

    // An image without layers mounts over the empty dir.
    let dirs2 = snap.prepare_container("c2").unwrap();
    let options = snap.overlay_options(&[], "c2").unwrap();
    mount_overlay(&options, &dirs2.rootfs);
    let entries = count(&dirs2.rootfs);
    umount(&dirs2.rootfs);
    assert_eq!(entries, 0);

    // Removal copes with read-only dirs and files of other owners, and a rootfs still mounted.
    mount_overlay(&snap.overlay_options(&chains, "c1").unwrap(), &dirs.rootfs);
    fs::create_dir(dirs.upper.join("ro")).unwrap();
    fs::write(dirs.upper.join("ro/f"), b"f").unwrap();
    std::os::unix::fs::chown(dirs.upper.join("ro/f"), Some(4242), Some(4242)).unwrap();
    fs::set_permissions(dirs.upper.join("ro"), fs::Permissions::from_mode(0o500)).unwrap();
    snap.remove_container("c1").unwrap();
    snap.remove_container("c2").unwrap();
    snap.remove_container("c2").unwrap();
    assert_eq!(count(&s.0.join("containers")), 0);
    assert_eq!(count(&s.0.join("tmp")), 0);
    // The layers are untouched.
    assert!(snap.layer_dir(&chains[0]).join("a/gone").exists());
}

#[test]
fn overlay_options_checks_its_inputs() {
    let s = Scratch::new("options");
    let snap = Snapshotter::open(&s.0).unwrap();
    let err = snap.overlay_options(&[chain(7)], "c").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(snap.overlay_options(&[], "../x").unwrap_err().kind(), ErrorKind::InvalidArgument);
    let options = snap.overlay_options(&[], "c").unwrap();
    assert_eq!(
        options,
        format!(
            "lowerdir={0}/empty,upperdir={0}/containers/c/upper,workdir={0}/containers/c/work",
            s.0.canonicalize().unwrap().display()
        )
    );
}

#[test]
fn too_many_layers_for_one_page_is_an_error() {
    require_root();
    let s = Scratch::new("many");
    let mut snap = Snapshotter::open(&s.0).unwrap();
    snap.set_sync(false);
    let tar = Layer::new().build();
    let chains: Vec<Digest> = (0..120u8).map(chain).collect();
    for c in &chains {
        snap.apply_layer(c, None, &tar[..]).unwrap();
    }
    let err = snap.overlay_options(&chains, "c").unwrap_err();
    assert!(matches!(err, SnapshotError::TooManyLayers { layers: 120, .. }), "{err}");
    assert!(snap.overlay_options(&chains[..40], "c").is_ok());
}
