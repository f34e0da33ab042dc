//! [`S3BlobStore`]: the [`BlobStore`] role on an S3 bucket (AWS, or any server that speaks
//! its API with path-style requests and SigV4: SeaweedFS, MinIO, Ceph RGW).
//!
//! Layout under the configured prefix:
//! ```text
//! blobs/sha256/<first 2 hex>/<hex>        every blob once (manifests too)
//! uploads/<id>/info                       made when the upload starts: it exists
//! uploads/<id>/chunks/<start, 20 digits>  the upload's bytes from `start`, in pieces
//! ```
//! Everything an upload is lives in the bucket, so any process (a restarted one, another
//! replica) continues it: its size is where the run of chunks from 0 ends, its hash state is
//! rebuilt by reading them. S3 writes whole objects atomically, so a chunk is either there
//! whole or not at all.
//!
//! Every chunk but the last is at least [`MIN_PART`] bytes (a writer that starts after a short
//! last chunk takes it up and writes it again, longer, under the same key), so that the
//! closing step can make the blob a multipart upload of server-side part copies: the bytes
//! never come back through the registry, and the blob appears under its digest only when the
//! multipart upload completes. Memory per upload writer is one chunk ([`chunk_target`]).

pub mod client;
pub mod sigv4;

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use wharf_types::Digest;

use crate::store::{BlobStore, StoredBlob};
use client::{Listed, S3Client, S3Error};
pub use sigv4::Credentials;

/// S3's smallest part of a multipart upload (but the last).
pub const MIN_PART: u64 = 5 << 20;
/// S3's most parts in one multipart upload.
const MAX_PARTS: usize = 10_000;

/// How big the chunk that starts at `start` may grow: 8 MiB at first, then a thousandth of
/// what is already there (bounded), so that even a blob of a terabyte stays under S3's
/// 10,000 parts while small blobs keep little in memory.
pub fn chunk_target(start: u64) -> u64 {
    (start / 1024).clamp(8 << 20, 256 << 20)
}

/// Where the bucket is and how to sign for it.
#[derive(Debug, Clone)]
pub struct S3Options {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// A key prefix for everything this registry stores (`""`, or ending in `/`).
    pub prefix: String,
    pub credentials: Credentials,
    /// A PEM CA file to trust for an https endpoint.
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("invalid S3 endpoint {endpoint:?}: {error}")]
    Endpoint { endpoint: String, error: wharf_http::HttpError },
    #[error("S3 {target}: the credentials were refused ({code}: {message})")]
    Credentials { target: String, code: String, message: String },
    #[error("S3 {target}: no such bucket")]
    NoBucket { target: String },
    /// Not a `source`: the message already holds it, and anyhow would print it again.
    #[error("S3 {target} does not answer: {error}")]
    Unreachable { target: String, error: S3Error },
}

pub struct S3BlobStore {
    client: Arc<S3Client>,
    prefix: String,
}

/// A chunk object of an upload.
#[derive(Debug, Clone)]
struct Chunk {
    key: String,
    start: u64,
    size: u64,
}

impl Chunk {
    fn end(&self) -> u64 {
        self.start + self.size
    }
}

/// What a listing of `uploads/<id>/` says.
struct UploadState {
    exists: bool,
    /// The chunks from offset 0 on without a gap, in order.
    chunks: Vec<Chunk>,
    /// Chunks past a gap (left by a crash in the middle of a truncation): not part of it.
    stray: Vec<Chunk>,
}

impl UploadState {
    fn size(&self) -> u64 {
        self.chunks.last().map_or(0, Chunk::end)
    }
}

impl S3BlobStore {
    /// Connects and checks that the bucket answers with these credentials: a registry that
    /// cannot store anything should not start.
    pub fn open(opts: &S3Options) -> Result<S3BlobStore, OpenError> {
        let client = S3Client::new(
            &opts.endpoint,
            &opts.region,
            &opts.bucket,
            opts.credentials.clone(),
            opts.ca_file.as_deref(),
        )
        .map_err(|error| OpenError::Endpoint { endpoint: opts.endpoint.clone(), error })?;
        let mut prefix = opts.prefix.trim_matches('/').to_string();
        if !prefix.is_empty() {
            prefix.push('/');
        }
        let target = client.describe();
        match client.check(&prefix) {
            Ok(()) => {}
            Err(e) if e.code() == Some("NoSuchBucket") || e.status() == Some(404) => {
                return Err(OpenError::NoBucket { target })
            }
            Err(S3Error::Status { status: 403, code, message, .. }) => {
                return Err(OpenError::Credentials { target, code, message })
            }
            Err(error) => return Err(OpenError::Unreachable { target, error }),
        }
        Ok(S3BlobStore { client: Arc::new(client), prefix })
    }

    /// Aborts the multipart uploads of blobs that a commit began more than `older_than` ago
    /// and never finished (the process died in the middle), so that their parts stop taking
    /// space. A commit takes seconds; the age spares those of other replicas.
    pub fn abort_stale_commits(&self, older_than: Duration) -> io::Result<usize> {
        let now = SystemTime::now();
        let mut aborted = 0;
        for (key, upload, started) in self.client.list_multipart(&format!("{}blobs/", self.prefix))? {
            if now.duration_since(started).unwrap_or_default() > older_than {
                self.client.abort_multipart(&key, &upload)?;
                aborted += 1;
            }
        }
        Ok(aborted)
    }

    fn blob_key(&self, digest: &Digest) -> String {
        let hex = digest.hex();
        // A Digest always has 64 hex digits, so the prefix exists.
        let first = hex.get(..2).unwrap_or("00");
        format!("{}blobs/sha256/{first}/{hex}", self.prefix)
    }

    fn upload_prefix(&self, id: &str) -> String {
        format!("{}uploads/{id}/", self.prefix)
    }

    fn info_key(&self, id: &str) -> String {
        format!("{}info", self.upload_prefix(id))
    }

    fn upload_state(&self, id: &str) -> io::Result<UploadState> {
        let prefix = self.upload_prefix(id);
        let chunk_prefix = format!("{prefix}chunks/");
        let info = self.info_key(id);
        let mut exists = false;
        let mut all = Vec::new();
        for Listed { key, size, .. } in self.client.list(&prefix)? {
            if key == info {
                exists = true;
            } else if let Some(start) = key.strip_prefix(&chunk_prefix).and_then(|s| s.parse::<u64>().ok()) {
                if size > 0 {
                    all.push(Chunk { key, start, size });
                }
            }
        }
        all.sort_by_key(|c| c.start);
        let mut chunks = Vec::new();
        let mut stray = Vec::new();
        let mut end = 0;
        for c in all {
            if c.start == end && stray.is_empty() {
                end = c.end();
                chunks.push(c);
            } else {
                stray.push(c);
            }
        }
        Ok(UploadState { exists, chunks, stray })
    }

    /// Builds the blob from an upload's chunks. Part copies when every chunk but the last is
    /// big enough (what the writer keeps to); otherwise, or when the server cannot copy parts,
    /// the bytes stream through in parts of at most one chunk target.
    fn assemble(&self, chunks: &[Chunk], key: &str) -> io::Result<()> {
        match chunks {
            [] => return Ok(self.client.put(key, Vec::new())?),
            [one] => return Ok(self.client.copy(&one.key, key)?),
            _ => {}
        }
        let copyable = chunks.len() <= MAX_PARTS
            && chunks.iter().rev().skip(1).all(|c| c.size >= MIN_PART)
            && chunks.iter().all(|c| c.size <= 5 << 30);
        if copyable {
            match self.multipart(key, |upload| {
                let mut parts = Vec::new();
                for (i, c) in chunks.iter().enumerate() {
                    let n = i as u32 + 1;
                    parts.push((n, self.client.upload_part_copy(key, upload, n, &c.key)?));
                }
                Ok(parts)
            }) {
                Ok(()) => return Ok(()),
                Err(e) if e.code().is_some_and(|c| c == "NotImplemented" || c == "InvalidRequest") => {
                    log::warn!("S3 part copy refused ({e}); streaming the upload's bytes instead");
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.multipart(key, |upload| {
            let mut parts = Vec::new();
            let mut buf: Vec<u8> = Vec::new();
            let mut done: u64 = 0;
            for c in chunks {
                let Some((mut r, _)) = self.client.get(&c.key, 0)? else {
                    return Err(S3Error::Malformed { op: format!("GET {}", c.key), message: "chunk vanished".into() });
                };
                let mut left = c.size;
                while left > 0 {
                    let target = chunk_target(done).max(MIN_PART) as usize;
                    let want = (target - buf.len()).min(left as usize);
                    let before = buf.len();
                    buf.resize(before + want, 0);
                    let read = buf.get_mut(before..).map(|b| r.read_exact(b));
                    if let Some(Err(e)) = read {
                        return Err(S3Error::Http {
                            op: format!("GET {}", c.key),
                            error: wharf_http::HttpError::io("read", e),
                        });
                    }
                    left -= want as u64;
                    if buf.len() >= target {
                        done += buf.len() as u64;
                        let n = parts.len() as u32 + 1;
                        parts.push((n, self.client.upload_part(key, upload, n, std::mem::take(&mut buf))?));
                    }
                }
            }
            if !buf.is_empty() || parts.is_empty() {
                let n = parts.len() as u32 + 1;
                parts.push((n, self.client.upload_part(key, upload, n, buf)?));
            }
            Ok(parts)
        })
        .map_err(io::Error::from)
    }

    /// One multipart upload of `key`: `parts` sends them, then it completes, or is aborted
    /// so that no half-made object lingers.
    fn multipart(
        &self,
        key: &str,
        parts: impl FnOnce(&str) -> Result<Vec<(u32, String)>, S3Error>,
    ) -> Result<(), S3Error> {
        let upload = self.client.create_multipart(key)?;
        let result = parts(&upload).and_then(|p| self.client.complete_multipart(key, &upload, &p));
        if result.is_err() {
            if let Err(e) = self.client.abort_multipart(key, &upload) {
                log::warn!("aborting the multipart upload of {key}: {e}");
            }
        }
        result
    }
}

impl BlobStore for S3BlobStore {
    fn stat(&self, digest: &Digest) -> io::Result<Option<u64>> {
        Ok(self.client.head(&self.blob_key(digest))?)
    }

    fn open(&self, digest: &Digest, offset: u64) -> io::Result<Option<(Box<dyn Read + Send>, u64)>> {
        let key = self.blob_key(digest);
        let Some((body, size)) = self.client.get(&key, offset)? else {
            return Ok(None);
        };
        let reader = ResumingReader { client: self.client.clone(), key, pos: offset, size, body, retries: 0 };
        Ok(Some((Box::new(reader), size)))
    }

    fn put(&self, digest: &Digest, data: &[u8]) -> io::Result<()> {
        let key = self.blob_key(digest);
        if self.client.head(&key)?.is_some() {
            return Ok(());
        }
        Ok(self.client.put(&key, data.to_vec())?)
    }

    fn delete(&self, digest: &Digest) -> io::Result<bool> {
        let key = self.blob_key(digest);
        if self.client.head(&key)?.is_none() {
            return Ok(false);
        }
        self.client.delete(&key)?;
        Ok(true)
    }

    fn list(&self) -> io::Result<Vec<StoredBlob>> {
        let prefix = format!("{}blobs/sha256/", self.prefix);
        let mut out = Vec::new();
        for o in self.client.list(&prefix)? {
            // Anything that is not named by a digest was not put there by this store.
            let Some(digest) = o
                .key
                .strip_prefix(&prefix)
                .and_then(|rest| rest.split_once('/'))
                .and_then(|(_, hex)| Digest::from_hex(hex).ok())
            else {
                continue;
            };
            out.push(StoredBlob { digest, size: o.size, modified: o.modified });
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    fn create_upload(&self, id: &str) -> io::Result<()> {
        Ok(self.client.put(&self.info_key(id), Vec::new())?)
    }

    fn upload_size(&self, id: &str) -> io::Result<Option<u64>> {
        let state = self.upload_state(id)?;
        Ok(state.exists.then(|| state.size()))
    }

    fn upload_writer(&self, id: &str, offset: u64) -> io::Result<Box<dyn Write + Send>> {
        let state = self.upload_state(id)?;
        if !state.exists {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("upload {id} is not in S3")));
        }
        if state.size() < offset {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("upload {id} holds {} bytes, cannot write at {offset}", state.size()),
            ));
        }
        // Cut off what lies past the offset, the highest first, so that a crash half way
        // leaves a run of chunks from 0 that ends at or past the offset.
        let mut past: Vec<&Chunk> =
            state.stray.iter().chain(state.chunks.iter().filter(|c| c.start >= offset)).collect();
        past.sort_by_key(|c| std::cmp::Reverse(c.start));
        for c in past {
            self.client.delete(&c.key)?;
        }
        let mut writer = UploadWriter {
            client: self.client.clone(),
            id: id.to_string(),
            key_prefix: format!("{}chunks/", self.upload_prefix(id)),
            start: offset,
            buf: Vec::new(),
            dirty: false,
            take_up: None,
        };
        if let Some(c) = state.chunks.iter().find(|c| c.start < offset && offset < c.end()) {
            // A chunk that straddles the offset is written again, shorter, right now: the caller
            // may be undoing a chunk and write nothing more.
            let kept = self.client.get_prefix(&c.key, offset - c.start)?;
            self.client.put(&c.key, kept)?;
            if offset - c.start < MIN_PART {
                writer.take_up = Some(Chunk { key: c.key.clone(), start: c.start, size: offset - c.start });
            }
        } else if let Some(last) = state.chunks.iter().rev().find(|c| c.end() == offset) {
            if last.size < MIN_PART {
                writer.take_up = Some(last.clone());
            }
        }
        Ok(Box::new(writer))
    }

    fn upload_reader(&self, id: &str) -> io::Result<Box<dyn Read + Send>> {
        let state = self.upload_state(id)?;
        if !state.exists {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("upload {id} is not in S3")));
        }
        Ok(Box::new(ChunksReader { client: self.client.clone(), chunks: state.chunks.into_iter(), current: None }))
    }

    fn commit_upload(&self, id: &str, digest: &Digest) -> io::Result<()> {
        let key = self.blob_key(digest);
        if self.client.head(&key)?.is_none() {
            let state = self.upload_state(id)?;
            if !state.exists {
                return Err(io::Error::new(io::ErrorKind::NotFound, format!("upload {id} is not in S3")));
            }
            self.assemble(&state.chunks, &key)?;
            // The parts were checked one by one as they were written; the whole must add up.
            let stored = self.client.head(&key)?;
            if stored != Some(state.size()) {
                let _ = self.client.delete(&key);
                return Err(io::Error::other(format!(
                    "blob {digest} has {stored:?} bytes in S3 after its upload of {} bytes",
                    state.size()
                )));
            }
        }
        self.delete_upload(id)
    }

    fn delete_upload(&self, id: &str) -> io::Result<()> {
        let info = self.info_key(id);
        let mut objects = self.client.list(&self.upload_prefix(id))?;
        // The highest chunks first and the info last: what a crash leaves is still an upload.
        objects.sort_by(|a, b| (a.key == info).cmp(&(b.key == info)).then(b.key.cmp(&a.key)));
        for o in objects {
            self.client.delete(&o.key)?;
        }
        Ok(())
    }

    fn list_uploads(&self) -> io::Result<Vec<(String, SystemTime)>> {
        let prefix = format!("{}uploads/", self.prefix);
        let mut out: Vec<(String, SystemTime)> = Vec::new();
        for o in self.client.list(&prefix)? {
            let Some((id, _)) = o.key.strip_prefix(&prefix).and_then(|rest| rest.split_once('/')) else {
                continue;
            };
            match out.last_mut() {
                Some((last, modified)) if last == id => *modified = (*modified).max(o.modified),
                _ => out.push((id.to_string(), o.modified)),
            }
        }
        Ok(out)
    }
}

/// Appends to an upload: bytes gather in `buf`, which becomes the chunk object at `start`
/// when it reaches the chunk target, and at `flush`. Bytes are stored only once `flush`
/// returned; a writer dropped without it loses what it held (the caller then rebuilds its
/// state from what is stored). A short last chunk is read back and written again longer,
/// so that every chunk but the last is at least [`MIN_PART`].
struct UploadWriter {
    client: Arc<S3Client>,
    id: String,
    key_prefix: String,
    start: u64,
    buf: Vec<u8>,
    /// Whether `buf` holds bytes that are not stored yet.
    dirty: bool,
    /// A short last chunk that this writer's first bytes extend.
    take_up: Option<Chunk>,
}

impl UploadWriter {
    /// Stores `buf` as the chunk at `start`. A full chunk is done with and the next begins
    /// after it; a short one (at `flush`) is taken up again by a later write.
    fn store(&mut self) -> io::Result<()> {
        let key = format!("{}{:020}", self.key_prefix, self.start);
        let data = std::mem::take(&mut self.buf);
        let size = data.len() as u64;
        self.client.put(&key, data).map_err(|e| io::Error::other(format!("upload {}: {e}", self.id)))?;
        self.dirty = false;
        if size < MIN_PART {
            self.take_up = Some(Chunk { key, start: self.start, size });
        } else {
            self.start += size;
        }
        Ok(())
    }
}

impl Write for UploadWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        if let Some(c) = self.take_up.take() {
            self.buf = self.client.get_prefix(&c.key, c.size)?;
            self.start = c.start;
        }
        let target = chunk_target(self.start) as usize;
        let n = (target - self.buf.len()).min(data.len());
        let need = self.buf.len() + n;
        if self.buf.capacity() < need {
            // Doubling, but never past the target: a chunk's buffer is the memory an upload costs.
            let cap = (self.buf.capacity() * 2).max(need).min(target);
            self.buf.reserve_exact(cap - self.buf.len());
        }
        self.buf.extend_from_slice(data.get(..n).unwrap_or(data));
        self.dirty = true;
        if self.buf.len() >= target {
            self.store()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.dirty && !self.buf.is_empty() {
            self.store()?;
        }
        Ok(())
    }
}

/// Reads an upload's chunks one after the other.
struct ChunksReader {
    client: Arc<S3Client>,
    chunks: std::vec::IntoIter<Chunk>,
    current: Option<Box<dyn Read + Send>>,
}

impl Read for ChunksReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(r) = &mut self.current {
                let n = r.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.current = None;
            }
            let Some(c) = self.chunks.next() else { return Ok(0) };
            match self.client.get(&c.key, 0)? {
                Some((r, _)) => self.current = Some(Box::new(r.take(c.size))),
                None => return Err(io::Error::new(io::ErrorKind::NotFound, format!("chunk {} vanished", c.key))),
            }
        }
    }
}

/// A blob's body that reconnects where it broke off (a server that drops a connection a
/// slow client kept idle), a few times. Blobs never change, so the rest is the same bytes;
/// the caller's digest check covers them anyway.
struct ResumingReader {
    client: Arc<S3Client>,
    key: String,
    pos: u64,
    size: u64,
    body: Box<dyn Read + Send>,
    retries: u32,
}

impl Read for ResumingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let broke = match self.body.read(buf) {
                Ok(0) if self.pos < self.size && !buf.is_empty() => {
                    io::Error::new(io::ErrorKind::UnexpectedEof, "the connection ended early")
                }
                Ok(n) => {
                    self.pos += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => e,
            };
            if self.retries >= 3 {
                return Err(broke);
            }
            self.retries += 1;
            log::debug!("reading {} at {}: {broke}; asking again from there", self.key, self.pos);
            match self.client.get(&self.key, self.pos)? {
                Some((body, size)) if size == self.size => self.body = body,
                _ => return Err(io::Error::other(format!("{} changed or vanished while read", self.key))),
            }
        }
    }
}

/// The backend suite and the bucket's layout against a real SeaweedFS (`weed server` from
/// scripts/seaweedfs) on free loopback ports, stopped and removed after each test.
#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::net::TcpStream;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::store::random_hex;

    struct Weed {
        child: Child,
        dir: PathBuf,
        s3_port: u16,
        grpc: Vec<(&'static str, u16)>,
    }

    impl Drop for Weed {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            // weed puts a unix socket per gRPC port in /tmp, named by the port.
            for (what, port) in &self.grpc {
                let _ = std::fs::remove_file(format!("/tmp/seaweedfs-{what}-grpc-{port}.sock"));
            }
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    /// A status line from a plain HTTP/1.0 request, or `None` when nothing answers.
    fn status(port: u16, method: &str, path: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        write!(s, "{method} {path} HTTP/1.0\r\nContent-Length: 0\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.lines().next().map(str::to_string)
    }

    fn weed() -> Weed {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/seaweedfs");
        let out = Command::new("bash").arg(script).output().unwrap();
        assert!(out.status.success(), "scripts/seaweedfs: {}", String::from_utf8_lossy(&out.stderr));
        let bin = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let dir = std::env::temp_dir().join(format!("wharf-registry-weed-{}", random_hex(8).unwrap()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = r#"{"identities":[{"name":"t","credentials":[{"accessKey":"k","secretKey":"s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}"#;
        std::fs::write(dir.join("s3.json"), config).unwrap();
        let p: Vec<u16> = (0..8).map(|_| free_port()).collect();
        let log = std::fs::File::create(dir.join("weed.log")).unwrap();
        let child = Command::new(bin)
            .arg("server")
            .arg(format!("-dir={}", dir.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.volumeSizeLimitMB=64", "-volume.max=20"])
            .args([format!("-master.port={}", p[0]), format!("-master.port.grpc={}", p[1])])
            .args([format!("-volume.port={}", p[2]), format!("-volume.port.grpc={}", p[3])])
            .args(["-filer".to_string(), format!("-filer.port={}", p[4]), format!("-filer.port.grpc={}", p[5])])
            .arg(format!("-filer.localSocket={}", dir.join("filer.sock").display()))
            .args(["-s3".to_string(), format!("-s3.port={}", p[6]), format!("-s3.port.grpc={}", p[7])])
            .arg(format!("-s3.config={}", dir.join("s3.json").display()))
            .arg(format!("-s3.localSocket={}", dir.join("s3.sock").display()))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let grpc = vec![("master", p[1]), ("volume", p[3]), ("filer", p[5]), ("s3", p[7])];
        let weed = Weed { child, dir, s3_port: p[6], grpc };
        let deadline = Instant::now() + Duration::from_secs(60);
        // A bucket is a directory of the filer's.
        while !(status(p[6], "GET", "/").is_some()
            && status(p[4], "POST", "/buckets/wharf-unit/").is_some_and(|l| l.contains(" 201 ") || l.contains(" 200 ")))
        {
            assert!(
                Instant::now() < deadline,
                "weed did not start: {:?}",
                std::fs::read_to_string(weed.dir.join("weed.log"))
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        weed
    }

    fn store(w: &Weed, prefix: &str) -> S3BlobStore {
        S3BlobStore::open(&S3Options {
            endpoint: format!("http://127.0.0.1:{}", w.s3_port),
            region: "us-east-1".into(),
            bucket: "wharf-unit".into(),
            prefix: prefix.into(),
            credentials: Credentials { access_key: "k".into(), secret_key: "s".into() },
            ca_file: None,
        })
        .unwrap()
    }

    #[test]
    fn s3_backend_suite() {
        let w = weed();
        crate::store::suite::run(&store(&w, "suite/"));
    }

    #[test]
    fn chunks_keep_the_part_minimum_and_strays_are_cut() {
        let w = weed();
        let s = store(&w, "layout");
        let id = random_hex(16).unwrap();
        s.create_upload(&id).unwrap();
        let mut at = 0u64;
        for len in [1u64 << 20, 2 << 20, 1 << 20, 3 << 20, 20 << 20, 1 << 20] {
            let mut w = s.upload_writer(&id, at).unwrap();
            w.write_all(&vec![7u8; len as usize]).unwrap();
            w.flush().unwrap();
            at += len;
        }
        let state = s.upload_state(&id).unwrap();
        assert_eq!(state.size(), at);
        let sizes: Vec<u64> = state.chunks.iter().map(|c| c.size).collect();
        assert!(sizes.iter().rev().skip(1).all(|&n| n >= MIN_PART), "{sizes:?}");
        assert!(sizes.iter().all(|&n| n <= chunk_target(0)), "{sizes:?}");
        // A chunk past a gap (a crash in the middle of a cut) is not part of the upload, and
        // the next writer removes it.
        s.client.put(&format!("layout/uploads/{id}/chunks/{:020}", at + 100), vec![1; 10]).unwrap();
        assert_eq!(s.upload_size(&id).unwrap(), Some(at));
        drop(s.upload_writer(&id, at).unwrap());
        assert!(s.upload_state(&id).unwrap().stray.is_empty());
        s.delete_upload(&id).unwrap();
        assert!(s.client.list("layout/").unwrap().is_empty());
    }

    /// Chunks that cannot be parts (short ones before the last: not what the writer makes, but
    /// what another writer may have left) are streamed into the blob instead.
    #[test]
    fn short_chunks_are_streamed_into_the_blob() {
        let w = weed();
        let s = store(&w, "stream");
        let id = random_hex(16).unwrap();
        s.create_upload(&id).unwrap();
        let mut want = Vec::new();
        for (i, len) in [3usize << 20, 1 << 20, 6 << 20, 5].into_iter().enumerate() {
            let piece: Vec<u8> = (0..len).map(|b| (b as u8) ^ (i as u8)).collect();
            s.client.put(&format!("stream/uploads/{id}/chunks/{:020}", want.len()), piece.clone()).unwrap();
            want.extend_from_slice(&piece);
        }
        assert_eq!(s.upload_size(&id).unwrap(), Some(want.len() as u64));
        let d = Digest::of(&want);
        s.commit_upload(&id, &d).unwrap();
        let (mut r, size) = s.open(&d, 0).unwrap().unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert!(size == want.len() as u64 && got == want);
        assert!(s.list_uploads().unwrap().is_empty());
    }
}
