//! Where blob bytes live. [`BlobStore`] is the role; [`FsBlobStore`] the local filesystem
//! backend, [`crate::s3::S3BlobStore`] the S3 one.
//!
//! Layout under the data dir:
//! ```text
//! blobs/sha256/<first 2 hex>/<hex>   every blob once for the whole registry (manifests too)
//! uploads/<id>/data                  an upload's bytes so far; its length is the offset
//! tmp/                               small writes (manifests) before their rename
//! ```
//! A blob reaches `blobs/` only by a rename of a file that was fsynced and whose digest was
//! checked by the caller, so a reader never sees a partial or unverified blob.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use wharf_types::Digest;

use crate::verified::BlobVersion;

/// A blob found while listing the store (for scrub and GC).
#[derive(Debug, Clone)]
pub struct StoredBlob {
    pub digest: Digest,
    pub size: u64,
    pub modified: SystemTime,
}

/// The blob storage role. Synchronous: callers on the async runtime run these on a blocking
/// thread. Upload ids are validated by the caller (`names::valid_upload_id`).
pub trait BlobStore: Send + Sync + 'static {
    /// The size of a stored blob, or `None`.
    fn stat(&self, digest: &Digest) -> io::Result<Option<u64>>;
    /// A reader of a stored blob from `offset`, and the blob's whole size.
    fn open(&self, digest: &Digest, offset: u64) -> io::Result<Option<(Box<dyn Read + Send>, u64)>>;
    /// `open`, with the version of the bytes opened where the backend can tell one
    /// (`crate::verified`).
    fn open_versioned(&self, digest: &Digest, offset: u64) -> io::Result<Option<Opened>> {
        Ok(self.open(digest, offset)?.map(|(reader, size)| Opened { reader, size, version: None }))
    }
    /// The version of a stored blob's bytes now, where the backend can tell one.
    fn version(&self, _digest: &Digest) -> io::Result<Option<BlobVersion>> {
        Ok(None)
    }
    /// Stores a small, already verified blob (a manifest) in one go.
    fn put(&self, digest: &Digest, data: &[u8]) -> io::Result<()>;
    /// Removes a stored blob; `false` when there was none.
    fn delete(&self, digest: &Digest) -> io::Result<bool>;
    /// Every stored blob. Only scrub and GC walk the store; requests use the database.
    fn list(&self) -> io::Result<Vec<StoredBlob>>;

    /// Starts an empty upload.
    fn create_upload(&self, id: &str) -> io::Result<()>;
    /// How many bytes an upload holds, or `None` when it does not exist.
    fn upload_size(&self, id: &str) -> io::Result<Option<u64>>;
    /// Opens an upload for appending at `offset`; bytes past it (a chunk that failed half
    /// way and was not counted) are cut off first. What is written is stored once `flush`
    /// returned (a backend may hold bytes until then).
    fn upload_writer(&self, id: &str, offset: u64) -> io::Result<Box<dyn Write + Send>>;
    /// Reads an upload from the start (to rebuild its hash state after a restart).
    fn upload_reader(&self, id: &str) -> io::Result<Box<dyn Read + Send>>;
    /// Makes a finished upload the blob `digest` (checked by the caller), durably and at once:
    /// no reader sees part of it (files: fsync, rename, fsync of the directory; S3: one
    /// completed multipart upload). When the blob is already stored the upload is just removed.
    fn commit_upload(&self, id: &str, digest: &Digest) -> io::Result<()>;
    /// Removes an upload and its bytes.
    fn delete_upload(&self, id: &str) -> io::Result<()>;
    /// The ids of the stored uploads and when each last changed.
    fn list_uploads(&self) -> io::Result<Vec<(String, SystemTime)>>;
}

/// A stored blob opened for reading.
pub struct Opened {
    pub reader: Box<dyn Read + Send>,
    /// The blob's whole size.
    pub size: u64,
    pub version: Option<BlobVersion>,
}

pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    pub fn open(root: &Path) -> io::Result<FsBlobStore> {
        for dir in ["blobs/sha256", "uploads", "tmp"] {
            fs::create_dir_all(root.join(dir))?;
        }
        // Leftovers of small writes a crash interrupted; nothing refers to them.
        for entry in fs::read_dir(root.join("tmp"))? {
            let _ = fs::remove_file(entry?.path());
        }
        Ok(FsBlobStore { root: root.to_path_buf() })
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        // A Digest always has 64 hex digits, so the prefix exists.
        let prefix = hex.get(..2).unwrap_or("00");
        self.root.join("blobs/sha256").join(prefix).join(hex)
    }

    fn upload_dir(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    fn upload_data(&self, id: &str) -> PathBuf {
        self.upload_dir(id).join("data")
    }

    /// Renames `from` to the blob's path, creating its directory, and makes both durable.
    fn install(&self, from: &Path, digest: &Digest) -> io::Result<()> {
        let to = self.blob_path(digest);
        let dir = to.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir)?;
        fs::rename(from, &to)?;
        File::open(&dir)?.sync_all()
    }
}

fn not_found_is_none<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl BlobStore for FsBlobStore {
    fn stat(&self, digest: &Digest) -> io::Result<Option<u64>> {
        Ok(not_found_is_none(fs::metadata(self.blob_path(digest)))?.map(|m| m.len()))
    }

    fn open(&self, digest: &Digest, offset: u64) -> io::Result<Option<(Box<dyn Read + Send>, u64)>> {
        Ok(self.open_versioned(digest, offset)?.map(|o| (o.reader, o.size)))
    }

    fn open_versioned(&self, digest: &Digest, offset: u64) -> io::Result<Option<Opened>> {
        let Some(mut f) = not_found_is_none(File::open(self.blob_path(digest)))? else {
            return Ok(None);
        };
        // Of the open file, not the path: what is read is what the version names.
        let meta = f.metadata()?;
        if offset > 0 {
            f.seek(SeekFrom::Start(offset))?;
        }
        Ok(Some(Opened { reader: Box::new(f), size: meta.len(), version: Some(BlobVersion::of(&meta)) }))
    }

    fn version(&self, digest: &Digest) -> io::Result<Option<BlobVersion>> {
        Ok(not_found_is_none(fs::metadata(self.blob_path(digest)))?.map(|m| BlobVersion::of(&m)))
    }

    fn put(&self, digest: &Digest, data: &[u8]) -> io::Result<()> {
        if self.stat(digest)?.is_some() {
            return Ok(());
        }
        let tmp = self.root.join("tmp").join(format!("{}-{}", digest.hex(), random_hex(8)?));
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            self.install(&tmp, digest)
        };
        let r = write();
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        r
    }

    fn delete(&self, digest: &Digest) -> io::Result<bool> {
        Ok(not_found_is_none(fs::remove_file(self.blob_path(digest)))?.is_some())
    }

    fn list(&self) -> io::Result<Vec<StoredBlob>> {
        let mut out = Vec::new();
        for prefix in fs::read_dir(self.root.join("blobs/sha256"))? {
            let prefix = prefix?;
            if !prefix.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(prefix.path())? {
                let entry = entry?;
                let name = entry.file_name();
                // Anything that is not named by a digest was not put there by this store.
                let Some(digest) = name.to_str().and_then(|n| Digest::from_hex(n).ok()) else {
                    continue;
                };
                let meta = entry.metadata()?;
                if meta.is_file() {
                    out.push(StoredBlob { digest, size: meta.len(), modified: meta.modified()? });
                }
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    fn create_upload(&self, id: &str) -> io::Result<()> {
        let dir = self.upload_dir(id);
        fs::create_dir(&dir)?;
        File::create(dir.join("data"))?;
        Ok(())
    }

    fn upload_size(&self, id: &str) -> io::Result<Option<u64>> {
        Ok(not_found_is_none(fs::metadata(self.upload_data(id)))?.map(|m| m.len()))
    }

    fn upload_writer(&self, id: &str, offset: u64) -> io::Result<Box<dyn Write + Send>> {
        let mut f = OpenOptions::new().write(true).open(self.upload_data(id))?;
        if f.metadata()?.len() != offset {
            f.set_len(offset)?;
        }
        f.seek(SeekFrom::Start(offset))?;
        Ok(Box::new(f))
    }

    fn upload_reader(&self, id: &str) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(File::open(self.upload_data(id))?))
    }

    fn commit_upload(&self, id: &str, digest: &Digest) -> io::Result<()> {
        let data = self.upload_data(id);
        if self.stat(digest)?.is_none() {
            File::open(&data)?.sync_all()?;
            self.install(&data, digest)?;
        }
        self.delete_upload(id)
    }

    fn delete_upload(&self, id: &str) -> io::Result<()> {
        not_found_is_none(fs::remove_dir_all(self.upload_dir(id))).map(|_| ())
    }

    fn list_uploads(&self) -> io::Result<Vec<(String, SystemTime)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.root.join("uploads"))? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let modified = fs::metadata(entry.path().join("data"))
                .and_then(|m| m.modified())
                .or_else(|_| entry.metadata().and_then(|m| m.modified()))?;
            out.push((name, modified));
        }
        Ok(out)
    }
}

/// `n` random bytes from the kernel as hex: upload ids and temp names.
pub fn random_hex(n: usize) -> io::Result<String> {
    let mut buf = vec![0u8; n];
    File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(wharf_types::digest::to_hex(&buf))
}

/// The behaviour every `BlobStore` backend must show; the S3 backend runs the same suite.
#[cfg(test)]
pub(crate) mod suite {
    use super::*;

    const MIB: usize = 1 << 20;

    fn read_all(mut r: Box<dyn Read + Send>) -> Vec<u8> {
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        out
    }

    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    /// Appends `data` at `offset` in one writer and flushes it.
    fn append(s: &dyn BlobStore, id: &str, offset: u64, data: &[u8]) {
        let mut w = s.upload_writer(id, offset).unwrap();
        for piece in data.chunks(MIB) {
            w.write_all(piece).unwrap();
        }
        w.flush().unwrap();
    }

    pub fn run(s: &dyn BlobStore) {
        // Small blobs.
        let d = Digest::of(b"hello world");
        assert_eq!(s.stat(&d).unwrap(), None);
        assert!(s.open(&d, 0).unwrap().is_none());
        s.put(&d, b"hello world").unwrap();
        s.put(&d, b"hello world").unwrap();
        assert_eq!(s.stat(&d).unwrap(), Some(11));
        let (r, size) = s.open(&d, 6).unwrap().unwrap();
        assert_eq!((size, read_all(r)), (11, b"world".to_vec()));
        let (r, size) = s.open(&d, 11).unwrap().unwrap();
        assert_eq!((size, read_all(r)), (11, Vec::new()));
        let listed = s.list().unwrap();
        assert_eq!(listed.iter().map(|b| (&b.digest, b.size)).collect::<Vec<_>>(), vec![(&d, 11)]);

        // An upload in pieces around S3's 5 MiB part minimum: short pieces that a later writer
        // extends, a cut back into the middle of what was stored, pieces after it.
        let id = random_hex(16).unwrap();
        assert_eq!(s.upload_size(&id).unwrap(), None);
        s.create_upload(&id).unwrap();
        assert_eq!(s.upload_size(&id).unwrap(), Some(0));
        let mut want = Vec::new();
        for (len, seed) in [(3 * MIB, 1), (3 * MIB, 2), (10 * MIB, 3)] {
            let piece = bytes(len, seed);
            append(s, &id, want.len() as u64, &piece);
            want.extend_from_slice(&piece);
            assert_eq!(s.upload_size(&id).unwrap(), Some(want.len() as u64));
        }
        // A writer opened at an offset cuts off what lies past it, even with nothing written.
        drop(s.upload_writer(&id, 7 * MIB as u64 + 5).unwrap());
        want.truncate(7 * MIB + 5);
        assert_eq!(s.upload_size(&id).unwrap(), Some(want.len() as u64));
        let piece = bytes(5 * MIB, 4);
        append(s, &id, want.len() as u64, &piece);
        want.extend_from_slice(&piece);
        // A cut inside the last, short piece.
        drop(s.upload_writer(&id, want.len() as u64 - 100).unwrap());
        want.truncate(want.len() - 100);
        assert!(read_all(s.upload_reader(&id).unwrap()) == want);
        assert!(s.list_uploads().unwrap().iter().any(|(u, _)| *u == id));
        let big = Digest::of(&want);
        s.commit_upload(&id, &big).unwrap();
        assert_eq!(s.upload_size(&id).unwrap(), None);
        assert!(!s.list_uploads().unwrap().iter().any(|(u, _)| *u == id));
        assert_eq!(s.stat(&big).unwrap(), Some(want.len() as u64));
        let (r, _) = s.open(&big, 0).unwrap().unwrap();
        assert!(read_all(r) == want);
        let (r, _) = s.open(&big, 9 * MIB as u64).unwrap().unwrap();
        assert!(read_all(r) == want[9 * MIB..]);

        // An upload of a blob that is stored already just goes; an empty one makes an empty blob.
        let again = random_hex(16).unwrap();
        s.create_upload(&again).unwrap();
        append(s, &again, 0, b"hello world");
        s.commit_upload(&again, &d).unwrap();
        assert_eq!(s.upload_size(&again).unwrap(), None);
        let empty = random_hex(16).unwrap();
        s.create_upload(&empty).unwrap();
        let nothing = Digest::of(b"");
        s.commit_upload(&empty, &nothing).unwrap();
        assert_eq!(s.stat(&nothing).unwrap(), Some(0));

        // A cancelled upload leaves nothing.
        let cancelled = random_hex(16).unwrap();
        s.create_upload(&cancelled).unwrap();
        append(s, &cancelled, 0, &bytes(MIB, 5));
        s.delete_upload(&cancelled).unwrap();
        assert_eq!(s.upload_size(&cancelled).unwrap(), None);
        assert!(s.list_uploads().unwrap().is_empty());

        for digest in [&d, &big, &nothing] {
            assert!(s.delete(digest).unwrap());
            assert!(!s.delete(digest).unwrap());
        }
        assert!(s.list().unwrap().is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filesystem_backend_suite() {
        let root = tmp();
        suite::run(&FsBlobStore::open(&root).unwrap());
        fs::remove_dir_all(root).unwrap();
    }

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!("wharf-registry-store-{}", random_hex(8).unwrap()));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn upload_commit_and_read_back() {
        let root = tmp();
        let s = FsBlobStore::open(&root).unwrap();
        let id = random_hex(16).unwrap();
        s.create_upload(&id).unwrap();
        s.upload_writer(&id, 0).unwrap().write_all(b"hello ").unwrap();
        // A later writer at the counted offset cuts off uncounted bytes.
        s.upload_writer(&id, 6).unwrap().write_all(b"worldXX").unwrap();
        s.upload_writer(&id, 11).unwrap();
        assert_eq!(s.upload_size(&id).unwrap(), Some(11));
        let d = Digest::of(b"hello world");
        s.commit_upload(&id, &d).unwrap();
        assert_eq!(s.upload_size(&id).unwrap(), None);
        let (mut r, size) = s.open(&d, 6).unwrap().unwrap();
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!((size, rest.as_str()), (11, "world"));
        assert_eq!(s.list().unwrap().len(), 1);
        assert!(s.delete(&d).unwrap());
        assert!(!s.delete(&d).unwrap());
        fs::remove_dir_all(root).unwrap();
    }
}
