//! Content-addressed blob store: verified streaming writes, atomic commit.
//!
//! Layout under the root: `blobs/sha256/<hex>` holds committed blobs (mode 0444, never modified
//! in place) and `ingest/` holds the temp files of writes in progress. A blob only appears under
//! `blobs/` by a rename after its size and digest were checked and its data fsynced (or not, for
//! the blobs `commit_unsynced` names: a build's layers), so a reader
//! never sees a partial or unverified blob, and a crash leaves at most stale ingest files, which
//! `open` removes. A download that may resume later keeps its bytes there under the blob's
//! digest instead ([`ContentStore::resume`]), until it completes, fails to verify, or ages out.

mod partial;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use wharf_types::{Digest, ErrorKind, Sha256Writer};

pub use partial::{Resumed, PARTIAL_MAX_AGE};

/// Writes are buffered this much before they reach the temp file: registries and decoders hand
/// over small chunks, and one syscall per chunk would dominate the cost of a pull.
const WRITE_BUFFER: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("blob {0} not found")]
    NotFound(Digest),
    #[error("blob digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("{what} is too large: {size} bytes, the limit is {limit}")]
    TooLarge { what: String, size: u64, limit: u64 },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

impl ContentError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ContentError::NotFound(_) => ErrorKind::NotFound,
            ContentError::DigestMismatch { .. } | ContentError::SizeMismatch { .. } | ContentError::TooLarge { .. } => {
                ErrorKind::InvalidArgument
            }
            ContentError::Io { .. } => ErrorKind::Internal,
        }
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ContentError {
    let context = context.into();
    move |source| ContentError::Io { context, source }
}

/// A content-addressed store of blobs under one root directory. Cheap to share: all state is on
/// disk, so many threads (or processes) may write and read at once.
#[derive(Debug, Clone)]
pub struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

impl ContentStore {
    /// Opens (creating if needed) the store at `root`, and removes temp files that a crash left
    /// in `ingest/` (partial downloads only once they are older than [`PARTIAL_MAX_AGE`]). Only one store should be opened per root at a time, or an `open` could remove
    /// the temp file of another store's write in progress.
    pub fn open(root: &Path) -> Result<ContentStore, ContentError> {
        let blobs = root.join("blobs").join("sha256");
        let ingest = root.join("ingest");
        for dir in [&blobs, &ingest] {
            fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
        }
        let entries = fs::read_dir(&ingest).map_err(io_err(format!("read {}", ingest.display())))?;
        for entry in entries {
            let entry = entry.map_err(io_err(format!("read {}", ingest.display())))?;
            let path = entry.path();
            if entry.file_name().to_str().is_some_and(partial::is_partial) {
                continue;
            }
            match fs::remove_file(&path) {
                Ok(()) => log::info!("removed stale ingest file {}", path.display()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(format!("remove {}", path.display()))(e)),
            }
        }
        let store = ContentStore { blobs, ingest };
        store.remove_partials(PARTIAL_MAX_AGE)?;
        Ok(store)
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blobs.join(d.hex())
    }

    pub fn contains(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    pub fn size(&self, d: &Digest) -> Result<u64, ContentError> {
        match fs::metadata(self.blob_path(d)) {
            Ok(m) => Ok(m.len()),
            Err(e) => Err(self.map_open_err(d, e)),
        }
    }

    /// Starts writing a blob. With `expected`, `commit` refuses any other digest; with
    /// `expected_size`, a write past that size fails at once and `commit` refuses a short blob.
    pub fn writer(&self, expected: Option<&Digest>, expected_size: Option<u64>) -> Result<BlobWriter, ContentError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let name = format!("{}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), nanos);
        let path = self.ingest.join(name);
        // Created read-only: the fd is writable, and the mode is the committed blob's.
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o444)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(io_err(format!("create {}", path.display())))?;
        Ok(BlobWriter {
            file: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            temp: path,
            blobs: self.blobs.clone(),
            hasher: Sha256Writer::new(),
            expected: expected.cloned(),
            expected_size,
            failed: false,
            partial: None,
        })
    }

    /// Writes `data` as a blob and commits it.
    pub fn put(&self, data: &[u8]) -> Result<Digest, ContentError> {
        let mut w = self.writer(None, Some(data.len() as u64))?;
        w.write_all(data).map_err(io_err("write blob"))?;
        w.commit()
    }

    /// Reads a whole blob, refusing one larger than `max_size` (manifests and configs come from
    /// registries; a size cap keeps a hostile one from exhausting memory).
    pub fn read(&self, d: &Digest, max_size: u64) -> Result<Vec<u8>, ContentError> {
        let file = self.open_blob(d)?;
        let size = file.metadata().map_err(io_err(format!("stat blob {d}")))?.len();
        if size > max_size {
            return Err(ContentError::TooLarge { what: format!("blob {d}"), size, limit: max_size });
        }
        let mut data = Vec::with_capacity(size as usize);
        file.take(max_size).read_to_end(&mut data).map_err(io_err(format!("read blob {d}")))?;
        Ok(data)
    }

    pub fn open_blob(&self, d: &Digest) -> Result<File, ContentError> {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(self.blob_path(d))
            .map_err(|e| self.map_open_err(d, e))
    }

    /// Deletes a blob; a missing blob is not an error. Readers that opened it keep their data.
    pub fn delete(&self, d: &Digest) -> Result<(), ContentError> {
        match fs::remove_file(self.blob_path(d)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(format!("delete blob {d}"))(e)),
        }
    }

    /// The digests of every committed blob, in no particular order.
    pub fn list(&self) -> Result<Vec<Digest>, ContentError> {
        let entries = fs::read_dir(&self.blobs).map_err(io_err(format!("read {}", self.blobs.display())))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(format!("read {}", self.blobs.display())))?;
            let name = entry.file_name();
            match name.to_str().map(Digest::from_hex) {
                Some(Ok(d)) => out.push(d),
                _ => log::warn!("ignoring unexpected file {:?} in {}", name, self.blobs.display()),
            }
        }
        Ok(out)
    }

    fn map_open_err(&self, d: &Digest, e: io::Error) -> ContentError {
        if e.kind() == io::ErrorKind::NotFound {
            ContentError::NotFound(d.clone())
        } else {
            ContentError::Io { context: format!("open blob {d}"), source: e }
        }
    }
}

/// A blob being written: hashes as it writes to a temp file in `ingest/`. Dropped without
/// `commit`, it removes its temp file.
pub struct BlobWriter {
    file: Option<BufWriter<File>>,
    temp: PathBuf,
    blobs: PathBuf,
    hasher: Sha256Writer,
    expected: Option<Digest>,
    expected_size: Option<u64>,
    /// Set once a write failed: what reached the file is then unknown, so commit must refuse.
    failed: bool,
    /// For a resumable write: its checkpoints; the temp file is then kept when dropped.
    partial: Option<partial::Checkpoints>,
}

impl BlobWriter {
    /// Bytes accepted so far.
    pub fn written(&self) -> u64 {
        self.hasher.len()
    }

    /// Abandons the write and its bytes, even those of a resumable write (they are known to be
    /// useless: the data turned out wrong).
    pub fn discard(mut self) {
        if let Some(p) = self.partial.as_mut() {
            p.discard = true;
        }
    }

    /// Checks size and digest, fsyncs the data, and renames the temp file into `blobs/`. If the
    /// blob is already there (a concurrent write of the same content), the temp file is dropped.
    pub fn commit(self) -> Result<Digest, ContentError> {
        self.commit_with(true)
    }

    /// `commit` without the fsyncs: still checked and renamed into place whole, but a power
    /// loss may leave it damaged. Only for blobs whose every reader checks them against their
    /// digest before trusting them (a build's layers, as their snapshots, are not synced either:
    /// push checks them as it compresses them, load and pull elsewhere by their diff ids).
    pub fn commit_unsynced(self) -> Result<Digest, ContentError> {
        self.commit_with(false)
    }

    fn commit_with(mut self, sync: bool) -> Result<Digest, ContentError> {
        let Some(buffered) = self.file.take() else {
            return Err(io_err("commit blob")(io::Error::other("writer already closed")));
        };
        if self.failed {
            return Err(io_err("commit blob")(io::Error::other("an earlier write failed")));
        }
        let file = buffered.into_inner().map_err(|e| io_err("write blob")(e.into_error()))?;
        // From here on the bytes are either a blob or wrong: never resume from them.
        if let Some(p) = self.partial.as_mut() {
            p.discard = true;
        }
        let (actual, size) = std::mem::take(&mut self.hasher).finish();
        if let Some(expected) = self.expected_size {
            if size != expected {
                return Err(ContentError::SizeMismatch { expected, actual: size });
            }
        }
        if let Some(expected) = &self.expected {
            if *expected != actual {
                return Err(ContentError::DigestMismatch { expected: expected.clone(), actual });
            }
        }
        let target = self.blobs.join(actual.hex());
        if target.is_file() {
            // Drop removes the temp file.
            return Ok(actual);
        }
        if sync {
            file.sync_all().map_err(io_err(format!("fsync blob {actual}")))?;
        }
        drop(file);
        // Replacing a blob another writer committed meanwhile is harmless: same content.
        fs::rename(&self.temp, &target).map_err(io_err(format!("commit blob {actual}")))?;
        self.temp = PathBuf::new();
        if let Some(p) = self.partial.take() {
            p.remove();
        }
        if sync {
            let dir = File::open(&self.blobs).map_err(io_err(format!("open {}", self.blobs.display())))?;
            dir.sync_all().map_err(io_err(format!("fsync {}", self.blobs.display())))?;
        }
        Ok(actual)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("blob writer already closed"));
        };
        if self.failed {
            return Err(io::Error::other("an earlier write to this blob failed"));
        }
        if let Some(limit) = self.expected_size {
            let size = self.hasher.len() + buf.len() as u64;
            if size > limit {
                self.failed = true;
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    ContentError::TooLarge { what: "blob being written".to_string(), size, limit },
                ));
            }
        }
        match file.write_all(buf) {
            Ok(()) => {
                self.hasher.update(buf);
                if let Some(p) = self.partial.as_mut() {
                    p.maybe_save(file, &self.hasher);
                }
                Ok(buf.len())
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.temp.as_os_str().is_empty() {
            return;
        }
        if let Some(mut p) = self.partial.take() {
            // A resumable write keeps what it has for the next attempt: a checkpoint covering
            // every byte hashed (unless a failed write left the file's end unknown; the last
            // checkpoint still holds then).
            if !p.discard && !self.hasher.is_empty() {
                if let Some(file) = self.file.as_mut() {
                    if !self.failed {
                        p.save(file, &self.hasher);
                    }
                    return;
                }
            }
            p.remove();
        }
        // Do not bother writing out buffered data of a blob that is being abandoned.
        if let Some(buffered) = self.file.take() {
            let (_file, _unwritten) = buffered.into_parts();
        }
        if let Err(e) = fs::remove_file(&self.temp) {
            if e.kind() != io::ErrorKind::NotFound {
                log::warn!("cannot remove temp file {}: {e}", self.temp.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A scratch directory removed at the end of the test.
    /// A fresh directory under the system temp dir, removed on drop; the unit tests of the
    /// crate's other modules use it too.
    pub(crate) struct Scratch(pub(crate) PathBuf);

    impl Scratch {
        pub(crate) fn new(name: &str) -> Scratch {
            static N: AtomicU64 = AtomicU64::new(0);
            let p = std::env::temp_dir().join(format!(
                "wharf-content-{name}-{}-{}",
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

    fn count(dir: &Path) -> usize {
        fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn put_read_list_delete() {
        let s = Scratch::new("basic");
        let store = ContentStore::open(&s.0).unwrap();
        let d = store.put(b"hello").unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        assert!(store.contains(&d));
        assert_eq!(store.size(&d).unwrap(), 5);
        assert_eq!(store.read(&d, 5).unwrap(), b"hello");
        assert_eq!(store.list().unwrap(), vec![d.clone()]);
        let mode = fs::metadata(store.blob_path(&d)).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o444);
        assert!(matches!(store.read(&d, 4), Err(ContentError::TooLarge { size: 5, limit: 4, .. })));
        // Putting the same content again is fine.
        assert_eq!(store.put(b"hello").unwrap(), d);
        store.delete(&d).unwrap();
        store.delete(&d).unwrap();
        assert!(!store.contains(&d));
        let err = store.read(&d, 10).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.to_string(), format!("blob {d} not found"));
        assert_eq!(count(&s.0.join("ingest")), 0);
    }

    #[test]
    fn mismatches_leave_nothing_behind() {
        let s = Scratch::new("mismatch");
        let store = ContentStore::open(&s.0).unwrap();
        let wrong = Digest::of(b"something else");

        let mut w = store.writer(Some(&wrong), None).unwrap();
        w.write_all(b"data").unwrap();
        let err = w.commit().unwrap_err();
        assert!(matches!(err, ContentError::DigestMismatch { .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);

        let mut w = store.writer(None, Some(10)).unwrap();
        w.write_all(b"data").unwrap();
        assert!(matches!(w.commit(), Err(ContentError::SizeMismatch { expected: 10, actual: 4 })));

        // Too much data fails at the write, not at commit.
        let mut w = store.writer(None, Some(3)).unwrap();
        assert!(w.write_all(b"data").is_err());
        assert_eq!(w.written(), 0);
        assert!(w.commit().is_err());

        // Unsynced commits are checked the same.
        let mut w = store.writer(Some(&wrong), None).unwrap();
        w.write_all(b"data").unwrap();
        assert!(matches!(w.commit_unsynced(), Err(ContentError::DigestMismatch { .. })));

        // Abandoned writer.
        let mut w = store.writer(None, None).unwrap();
        w.write_all(b"data").unwrap();
        drop(w);

        assert_eq!(count(&s.0.join("ingest")), 0);
        assert_eq!(count(&s.0.join("blobs/sha256")), 0);

        // And an unsynced blob is a blob like any other.
        let mut w = store.writer(None, None).unwrap();
        w.write_all(b"plain").unwrap();
        let d = w.commit_unsynced().unwrap();
        assert_eq!((d.clone(), store.read(&d, 100).unwrap()), (Digest::of(b"plain"), b"plain".to_vec()));
        assert_eq!(count(&s.0.join("ingest")), 0);
    }

    #[test]
    fn open_removes_stale_ingest_files() {
        let s = Scratch::new("stale");
        let store = ContentStore::open(&s.0).unwrap();
        let mut w = store.writer(None, None).unwrap();
        w.write_all(b"partial").unwrap();
        w.flush().unwrap();
        std::mem::forget(w); // as if the process died
        assert_eq!(count(&s.0.join("ingest")), 1);
        ContentStore::open(&s.0).unwrap();
        assert_eq!(count(&s.0.join("ingest")), 0);
    }

    #[test]
    fn concurrent_writers_of_the_same_blob_both_succeed() {
        let s = Scratch::new("concurrent");
        let store = Arc::new(ContentStore::open(&s.0).unwrap());
        let data: Arc<Vec<u8>> = Arc::new((0..4_000_000u32).map(|i| (i % 251) as u8).collect());
        let expected = Digest::of(&data);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                let data = data.clone();
                let expected = expected.clone();
                std::thread::spawn(move || {
                    let mut w = store.writer(Some(&expected), Some(data.len() as u64)).unwrap();
                    for chunk in data.chunks(10_000) {
                        w.write_all(chunk).unwrap();
                    }
                    w.commit().unwrap()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), expected);
        }
        assert_eq!(store.read(&expected, u64::MAX).unwrap(), *data);
        assert_eq!(count(&s.0.join("ingest")), 0);
    }

    #[test]
    fn readers_never_see_a_partial_blob() {
        let s = Scratch::new("partial");
        let store = Arc::new(ContentStore::open(&s.0).unwrap());
        let data: Arc<Vec<u8>> = Arc::new((0..3_000_000u32).map(|i| (i % 253) as u8).collect());
        let d = Digest::of(&data);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (store, data, d, stop) = (store.clone(), data.clone(), d.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = 0;
                while !stop.load(Ordering::Relaxed) {
                    match store.read(&d, u64::MAX) {
                        Ok(got) => {
                            assert_eq!(got.len(), data.len());
                            assert!(got == *data);
                            seen += 1;
                        }
                        Err(ContentError::NotFound(_)) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                seen
            })
        };
        let mut w = store.writer(Some(&d), Some(data.len() as u64)).unwrap();
        for chunk in data.chunks(64 * 1024) {
            w.write_all(chunk).unwrap();
            w.flush().unwrap();
            assert!(!store.contains(&d));
        }
        w.commit().unwrap();
        while store.read(&d, u64::MAX).is_err() {}
        std::thread::sleep(std::time::Duration::from_millis(20));
        stop.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    }
}
