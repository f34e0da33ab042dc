//! Resumable ingests: a download that breaks off keeps what it wrote under `ingest/` (named by
//! the blob's digest) with a checkpoint, so that a later write of the same blob verifies those
//! bytes and carries on from there instead of starting over.
//!
//! The checkpoint (`partial-<hex>.ckpt`: `<size> <bytes> <sha256 of those bytes>`, fixed width,
//! rewritten in place with one `pwrite`, so a kill never tears it) is written after the data it
//! covers reached the file, so after a kill the file holds at least what the checkpoint names;
//! bytes past it are cut off on resume. Nothing is fsynced: a machine crash
//! may lose data the checkpoint names, and then the prefix does not verify and is discarded.
//! Nothing of a partial ever becomes a blob without the full digest check of `commit`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use wharf_types::{Digest, Sha256Writer};

use crate::{io_err, BlobWriter, ContentError, ContentStore, WRITE_BUFFER};

/// How old an abandoned partial download may get before the store removes it by itself.
pub const PARTIAL_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

const PREFIX: &str = "partial-";
const CKPT_SUFFIX: &str = ".ckpt";
/// A checkpoint is written after this many new bytes, or after `CHECKPOINT_INTERVAL` with any.
const CHECKPOINT_BYTES: u64 = 1 << 20;
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// A write of a blob that may have picked up a partial download of an earlier attempt.
pub struct Resumed {
    /// Holds the first `offset` bytes already (hashed); write the rest, then `commit`.
    pub writer: BlobWriter,
    /// The first `offset` bytes, verified, for the caller to feed to whatever consumes the
    /// blob besides the store (a decompressor); `None` when nothing was resumed.
    pub replay: Option<io::Take<File>>,
    pub offset: u64,
}

/// The checkpoint bookkeeping of a resumable writer.
pub(crate) struct Checkpoints {
    ckpt: PathBuf,
    /// The checkpoint file, opened at the first checkpoint.
    ckpt_file: Option<File>,
    size: u64,
    last_len: u64,
    last_at: Instant,
    /// Set when the bytes must not be kept (they failed the final check, or the blob is whole).
    pub(crate) discard: bool,
}

/// What a checkpoint file says: the blob's size, and how many bytes hash to what.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub size: u64,
    pub len: u64,
    pub digest: Digest,
}

impl Checkpoint {
    pub(crate) fn parse(s: &str) -> Option<Checkpoint> {
        let mut it = s.split_whitespace();
        let size = it.next()?.parse().ok()?;
        let len = it.next()?.parse().ok()?;
        let digest = it.next()?.parse::<Digest>().ok()?;
        if it.next().is_some() || len > size {
            return None;
        }
        Some(Checkpoint { size, len, digest })
    }

    /// Fixed width: a newer checkpoint always overwrites all of an older one.
    fn render(&self) -> String {
        format!("{:020} {:020} {}\n", self.size, self.len, self.digest)
    }
}

impl Checkpoints {
    /// Records that the bytes hashed by `hasher` are in the file, when enough new ones came.
    pub(crate) fn maybe_save(&mut self, file: &mut BufWriter<File>, hasher: &Sha256Writer) {
        let len = hasher.len();
        let due = len >= self.last_len + CHECKPOINT_BYTES
            || (len > self.last_len && self.last_at.elapsed() >= CHECKPOINT_INTERVAL);
        if due {
            self.save(file, hasher);
        }
    }

    /// Flushes buffered data to the file, then writes the checkpoint that covers it.
    pub(crate) fn save(&mut self, file: &mut BufWriter<File>, hasher: &Sha256Writer) {
        self.last_at = Instant::now();
        if let Err(e) = file.flush() {
            log::warn!("partial download {}: {e}", self.ckpt.display());
            return;
        }
        let (digest, len) = hasher.clone().finish();
        let ckpt = Checkpoint { size: self.size, len, digest };
        let written = match self.ckpt_file.as_ref() {
            Some(f) => f.write_all_at(ckpt.render().as_bytes(), 0),
            None => OpenOptions::new()
                .write(true)
                .create(true)
                // Not truncated: the fixed-width write replaces all of an older checkpoint, and
                // a kill between a truncate and the write would lose it.
                .truncate(false)
                .custom_flags(libc::O_CLOEXEC)
                .open(&self.ckpt)
                .and_then(|f| {
                    f.write_all_at(ckpt.render().as_bytes(), 0)?;
                    self.ckpt_file = Some(f);
                    Ok(())
                }),
        };
        match written {
            Ok(()) => self.last_len = len,
            Err(e) => log::warn!("checkpoint {}: {e}", self.ckpt.display()),
        }
    }

    pub(crate) fn remove(&self) {
        if let Err(e) = fs::remove_file(&self.ckpt) {
            if e.kind() != io::ErrorKind::NotFound {
                log::warn!("cannot remove {}: {e}", self.ckpt.display());
            }
        }
    }
}

fn data_path(ingest: &Path, d: &Digest) -> PathBuf {
    ingest.join(format!("{PREFIX}{}", d.hex()))
}

fn ckpt_path(ingest: &Path, d: &Digest) -> PathBuf {
    ingest.join(format!("{PREFIX}{}{CKPT_SUFFIX}", d.hex()))
}

/// Whether an ingest file belongs to a resumable download (kept across restarts).
pub(crate) fn is_partial(name: &str) -> bool {
    name.starts_with(PREFIX)
}

impl ContentStore {
    /// Starts a write of blob `digest` (`size` bytes) that survives a failure: what it wrote
    /// stays in `ingest/` if it is dropped without `commit`. If an earlier write left a
    /// partial download of this blob, its bytes are verified against their checkpoint and
    /// taken over (`offset` of them; `replay` reads them), or discarded when they do not
    /// verify. When another writer holds the partial (a concurrent write of the same blob),
    /// this one is a plain, non-resumable write.
    pub fn resume(&self, digest: &Digest, size: u64) -> Result<Resumed, ContentError> {
        let path = data_path(&self.ingest, digest);
        let ckpt = ckpt_path(&self.ingest, digest);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o444)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(io_err(format!("open {}", path.display())))?;
        if file.try_lock().is_err() {
            let writer = self.writer(Some(digest), Some(size))?;
            return Ok(Resumed { writer, replay: None, offset: 0 });
        }
        let (hasher, offset) = match verified_prefix(&mut file, &ckpt, digest, size) {
            Ok(Some(prefix)) => prefix,
            Ok(None) => (Sha256Writer::new(), 0),
            Err(e) => {
                log::warn!("discarding the partial download of {digest}: {e}");
                (Sha256Writer::new(), 0)
            }
        };
        file.set_len(offset).map_err(io_err(format!("truncate {}", path.display())))?;
        file.seek(SeekFrom::Start(offset)).map_err(io_err(format!("seek {}", path.display())))?;
        let replay = if offset > 0 {
            let mut r = File::open(&path).map_err(io_err(format!("open {}", path.display())))?;
            r.seek(SeekFrom::Start(0)).map_err(io_err(format!("seek {}", path.display())))?;
            Some(r.take(offset))
        } else {
            let _ = fs::remove_file(&ckpt);
            None
        };
        let writer = BlobWriter {
            file: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            temp: path,
            blobs: self.blobs.clone(),
            hasher,
            expected: Some(digest.clone()),
            expected_size: Some(size),
            failed: false,
            partial: Some(Checkpoints {
                ckpt,
                ckpt_file: None,
                size,
                last_len: offset,
                last_at: Instant::now(),
                discard: false,
            }),
        };
        Ok(Resumed { writer, replay, offset })
    }

    /// The partial downloads kept for resuming: each blob's digest and the bytes kept.
    pub fn partials(&self) -> Result<Vec<(Digest, u64)>, ContentError> {
        let mut out = Vec::new();
        for (name, meta) in self.ingest_entries()? {
            if let Some(hex) = name.strip_prefix(PREFIX) {
                if let Ok(d) = Digest::from_hex(hex) {
                    out.push((d, meta.len()));
                }
            }
        }
        Ok(out)
    }

    /// Removes partial downloads untouched for `min_age` or more that no writer holds; returns
    /// the bytes freed. With a zero age, every idle one goes (prune).
    pub fn remove_partials(&self, min_age: Duration) -> Result<u64, ContentError> {
        let now = SystemTime::now();
        let mut freed = 0;
        for (name, meta) in self.ingest_entries()? {
            if !is_partial(&name) || name.ends_with(CKPT_SUFFIX) {
                continue;
            }
            let age = meta.modified().ok().and_then(|m| now.duration_since(m).ok()).unwrap_or(Duration::ZERO);
            if age < min_age {
                continue;
            }
            let path = self.ingest.join(&name);
            let Ok(file) = File::open(&path) else { continue };
            if file.try_lock().is_err() {
                continue;
            }
            match fs::remove_file(&path) {
                Ok(()) => freed += meta.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(format!("remove {}", path.display()))(e)),
            }
            let _ = fs::remove_file(self.ingest.join(format!("{name}{CKPT_SUFFIX}")));
            log::info!("removed partial download {}", path.display());
        }
        // Checkpoints whose data file is gone.
        for (name, _) in self.ingest_entries()? {
            if let Some(data) = name.strip_suffix(CKPT_SUFFIX).filter(|d| is_partial(d)) {
                if !self.ingest.join(data).exists() {
                    let _ = fs::remove_file(self.ingest.join(&name));
                }
            }
        }
        Ok(freed)
    }

    fn ingest_entries(&self) -> Result<Vec<(String, fs::Metadata)>, ContentError> {
        let entries = fs::read_dir(&self.ingest).map_err(io_err(format!("read {}", self.ingest.display())))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(format!("read {}", self.ingest.display())))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
            if let Ok(meta) = entry.metadata() {
                out.push((name, meta));
            }
        }
        Ok(out)
    }
}

/// Reads the checkpoint of a partial download and hashes the bytes it names: the hasher state
/// and the length when they match, `None` when there is nothing to resume.
fn verified_prefix(
    file: &mut File,
    ckpt: &Path,
    digest: &Digest,
    size: u64,
) -> Result<Option<(Sha256Writer, u64)>, String> {
    let text = match fs::read_to_string(ckpt) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("read {}: {e}", ckpt.display())),
    };
    let Some(c) = Checkpoint::parse(&text) else {
        return Err(format!("malformed checkpoint {:?}", text.trim()));
    };
    if c.size != size {
        return Err(format!("checkpoint for {} bytes, the blob {digest} has {size}", c.size));
    }
    if c.len == 0 {
        return Ok(None);
    }
    let have = file.metadata().map_err(|e| format!("stat: {e}"))?.len();
    if have < c.len {
        return Err(format!("{have} bytes on disk, the checkpoint names {}", c.len));
    }
    file.seek(SeekFrom::Start(0)).map_err(|e| format!("seek: {e}"))?;
    let mut hasher = Sha256Writer::new();
    let copied = io::copy(&mut Read::by_ref(file).take(c.len), &mut hasher).map_err(|e| format!("read: {e}"))?;
    if copied != c.len {
        return Err(format!("read {copied} of {} bytes", c.len));
    }
    let (prefix, _) = hasher.clone().finish();
    if prefix != c.digest {
        return Err(format!("its first {} bytes hash to {prefix}, the checkpoint says {}", c.len, c.digest));
    }
    Ok(Some((hasher, c.len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::Scratch;

    #[test]
    fn checkpoint_lines() {
        let d = Digest::of(b"x");
        let table: Vec<(String, Option<Checkpoint>)> = vec![
            (format!("10 4 {d}\n"), Some(Checkpoint { size: 10, len: 4, digest: d.clone() })),
            (format!("10 10 {d}"), Some(Checkpoint { size: 10, len: 10, digest: d.clone() })),
            (format!("10 11 {d}"), None),
            (format!("10 4 {d} extra"), None),
            ("10 4".to_string(), None),
            ("10 4 sha256:nothex".to_string(), None),
            (format!("-1 4 {d}"), None),
            (String::new(), None),
        ];
        for (line, want) in table {
            assert_eq!(Checkpoint::parse(&line), want, "{line:?}");
        }
        let c = Checkpoint { size: 7, len: 3, digest: d };
        assert_eq!(Checkpoint::parse(&c.render()), Some(c));
    }

    fn data() -> Vec<u8> {
        (0..3_000_000u32).map(|i| (i % 249) as u8).collect()
    }

    fn ingest_names(s: &Scratch) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(s.0.join("ingest")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_dropped_write_resumes_where_it_stopped() {
        let s = Scratch::new("resume");
        let store = ContentStore::open(&s.0).unwrap();
        let data = data();
        let d = Digest::of(&data);
        let size = data.len() as u64;

        let mut r = store.resume(&d, size).unwrap();
        assert_eq!(r.offset, 0);
        assert!(r.replay.is_none());
        r.writer.write_all(&data[..1_234_567]).unwrap();
        drop(r);
        assert_eq!(store.partials().unwrap(), vec![(d.clone(), 1_234_567)]);
        // A restart keeps a fresh partial.
        let store = ContentStore::open(&s.0).unwrap();
        assert_eq!(store.partials().unwrap().len(), 1);

        let mut r = store.resume(&d, size).unwrap();
        assert_eq!(r.offset, 1_234_567);
        let mut replayed = Vec::new();
        r.replay.take().unwrap().read_to_end(&mut replayed).unwrap();
        assert!(replayed == data[..1_234_567]);
        assert_eq!(r.writer.written(), 1_234_567);
        r.writer.write_all(&data[1_234_567..]).unwrap();
        assert_eq!(r.writer.commit().unwrap(), d);
        assert_eq!(store.read(&d, u64::MAX).unwrap(), data);
        assert_eq!(ingest_names(&s), Vec::<String>::new());
    }

    #[test]
    fn bytes_past_the_checkpoint_are_cut_and_a_bad_prefix_is_discarded() {
        let s = Scratch::new("verify");
        let store = ContentStore::open(&s.0).unwrap();
        let data = data();
        let d = Digest::of(&data);
        let size = data.len() as u64;
        let path = data_path(&s.0.join("ingest"), &d);

        let mut r = store.resume(&d, size).unwrap();
        r.writer.write_all(&data[..1000]).unwrap();
        drop(r);
        // Junk after the checkpointed bytes (a write the checkpoint never covered).
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"junk").unwrap();
        drop(f);
        let r = store.resume(&d, size).unwrap();
        assert_eq!(r.offset, 1000);
        assert_eq!(fs::metadata(&path).unwrap().len(), 1000);
        drop(r);

        // A changed byte inside the checkpointed range: nothing is resumed.
        let mut bytes = fs::read(&path).unwrap();
        bytes[10] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let mut r = store.resume(&d, size).unwrap();
        assert_eq!(r.offset, 0);
        assert!(r.replay.is_none());
        r.writer.write_all(&data).unwrap();
        assert_eq!(r.writer.commit().unwrap(), d);

        // A checkpoint for another size is not this blob's.
        let other = Digest::of(b"other");
        let mut r = store.resume(&other, 100).unwrap();
        r.writer.write_all(&[1; 50]).unwrap();
        drop(r);
        assert_eq!(store.resume(&other, 101).unwrap().offset, 0);
    }

    #[test]
    fn wrong_content_is_discarded_at_commit() {
        let s = Scratch::new("wrong");
        let store = ContentStore::open(&s.0).unwrap();
        let data = data();
        let d = Digest::of(&data[1..]);
        let mut r = store.resume(&d, data.len() as u64 - 1).unwrap();
        r.writer.write_all(&data[..data.len() - 1]).unwrap();
        assert!(matches!(r.writer.commit(), Err(ContentError::DigestMismatch { .. })));
        assert_eq!(ingest_names(&s), Vec::<String>::new());
        assert!(!store.contains(&d));
    }

    #[test]
    fn a_held_partial_is_neither_shared_nor_pruned() {
        let s = Scratch::new("held");
        let store = ContentStore::open(&s.0).unwrap();
        let data = data();
        let d = Digest::of(&data);
        let size = data.len() as u64;
        let mut first = store.resume(&d, size).unwrap();
        first.writer.write_all(&data[..5000]).unwrap();
        first.writer.flush().unwrap();

        let mut second = store.resume(&d, size).unwrap();
        assert_eq!(second.offset, 0);
        second.writer.write_all(&data).unwrap();
        assert_eq!(store.remove_partials(Duration::ZERO).unwrap(), 0);
        assert_eq!(second.writer.commit().unwrap(), d);
        drop(first);
        assert_eq!(store.partials().unwrap(), vec![(d.clone(), 5000)]);
        // Not old enough for the age limit; pruning takes it.
        assert_eq!(store.remove_partials(PARTIAL_MAX_AGE).unwrap(), 0);
        assert_eq!(store.remove_partials(Duration::ZERO).unwrap(), 5000);
        assert_eq!(ingest_names(&s), Vec::<String>::new());
    }
}
