//! `import`: a tar (plain, gzip or zstd) becomes a one-layer image; and the pieces `commit`
//! shares with it: storing a tar stream as a new layer (an uncompressed blob in the content
//! store plus the unpacked snapshot, both made in one pass), recording an image, and
//! Dockerfile-style `--change` instructions.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use wharf_metadata::Table;
use wharf_types::digest::chain_ids;
use wharf_types::oci::{self, ContainerConfig, Descriptor, History, ImageConfig, Platform};
use wharf_types::{Digest, ImageRef};

use crate::{blocking, Engine, EngineError};

/// What an import makes of its tar.
#[derive(Debug, Clone, Default)]
pub struct ImportRequest {
    /// The name the image gets; none leaves it dangling (named by id only).
    pub reference: Option<ImageRef>,
    /// Dockerfile instructions applied to the image's config (`CMD ["sh"]`, `ENV A=b`).
    pub changes: Vec<String>,
    /// The history entry's comment (Docker's `Imported from -` when not given).
    pub message: Option<String>,
    /// `import --platform`: the OS, architecture and variant the image claims (dockerd's
    /// import records them as given); none: this machine's.
    pub platform: Option<Platform>,
}

/// A layer just stored: the blob and its diff id.
pub(crate) struct NewLayer {
    pub blob: Descriptor,
    pub diff_id: Digest,
}

/// Takes an uncompressed layer tar made here (a build step, a commit, an import) into the
/// stores in one pass: its bytes go into an uncompressed blob (whose digest is then the diff
/// id) and, through a pipe, to a thread that applies them into a new snapshot as they come,
/// instead of compress → store → decompress → apply. Nothing is compressed here: a push
/// compresses the layers it sends, once (`push.rs`), as BuildKit compresses on export.
pub(crate) struct LayerWriter {
    blob: Option<wharf_content::BlobWriter>,
    pipe: Option<io::BufWriter<io::PipeWriter>>,
    /// Set once the whole tar was written: the apply thread takes the pipe's end as the end of
    /// the layer only then, so a writer abandoned midway never leaves a shorter layer behind.
    done: Arc<AtomicBool>,
    apply: Option<std::thread::JoinHandle<Result<wharf_snapshot::NewLayer, wharf_snapshot::SnapshotError>>>,
    /// Whether the blob is fsynced (`BlobWriter::commit_unsynced` says when it need not be).
    sync: bool,
    started: std::time::Instant,
}

/// The apply thread's end of the pipe: an end of file before the writer finished is an error.
struct LayerPipe {
    reader: io::PipeReader,
    done: Arc<AtomicBool>,
}

impl Read for LayerPipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.reader.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.done.load(Ordering::SeqCst) {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the layer's tar was cut short"));
        }
        Ok(n)
    }
}

impl Write for LayerWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let (Some(pipe), Some(blob)) = (self.pipe.as_mut(), self.blob.as_mut()) else {
            return Err(io::Error::other("layer writer already finished"));
        };
        // A broken pipe means the apply failed: `finish_layer` reports why.
        pipe.write_all(data)?;
        blob.write_all(data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LayerWriter {
    fn drop(&mut self) {
        // Abandoned: the apply thread meets the pipe's end before `done` and removes its temp dir.
        drop(self.pipe.take());
        if let Some(h) = self.apply.take() {
            let _ = h.join();
        }
    }
}

pub(crate) use crate::gc::Stored;

impl Engine {
    /// Imports the tar read from `input` as a new one-layer image; returns its id.
    pub async fn import(&self, req: ImportRequest, input: Box<dyn Read + Send>) -> Result<Digest, EngineError> {
        let mut config = ContainerConfig::default();
        apply_changes(&mut config, &req.changes)?;
        let engine = self.clone();
        let reference = req.reference.clone();
        let id = blocking(move || {
            let mut stored = Stored::default();
            let result = engine.import_blocking(input, config, &req, &mut stored);
            if result.is_err() {
                if let Err(e) = engine.discard_unreferenced(&stored) {
                    log::warn!("import: cleaning up: {e}");
                }
            }
            result
        })
        .await?;
        let name = reference.map(|r| r.familiar()).unwrap_or_else(|| id.to_string());
        self.image_event("import", &id.to_string(), &name);
        Ok(id)
    }

    fn import_blocking(
        &self,
        input: Box<dyn Read + Send>,
        config: ContainerConfig,
        req: &ImportRequest,
        stored: &mut Stored,
    ) -> Result<Digest, EngineError> {
        let _gc = crate::sync::read(&self.inner.gc_lock);
        let mut input = BufReader::with_capacity(1 << 20, input);
        let head = input.fill_buf().map_err(|e| EngineError::io("import: read the archive", e))?.to_vec();
        let tar: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::MultiGzDecoder::new(input))
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Box::new(zstd::stream::read::Decoder::with_buffer(input).map_err(|e| EngineError::io("zstd", e))?)
        } else if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z']) {
            return Err(EngineError::Invalid(
                "import: bzip2 and xz archives are not supported, use gzip or zstd".into(),
            ));
        } else {
            Box::new(input)
        };
        let layer = self.store_tar_layer(tar, &[], stored)?;
        let now = wharf_types::time::rfc3339_nanos(std::time::SystemTime::now());
        let host = req.platform.clone().unwrap_or_else(Platform::host);
        let image = ImageConfig {
            created: Some(now.clone()),
            author: None,
            architecture: host.architecture,
            os: host.os,
            variant: host.variant,
            config: Some(config),
            rootfs: oci::RootFs { kind: "layers".into(), diff_ids: vec![layer.diff_id.clone()] },
            history: vec![History {
                created: Some(now),
                created_by: None,
                author: None,
                comment: Some(req.message.clone().unwrap_or_else(|| "Imported from -".into())),
                empty_layer: false,
            }],
        };
        self.record_image(&image, vec![layer.blob], req.reference.as_ref(), None, stored)
    }

    /// Stores the uncompressed layer tar `tar` on top of the layers `parent_diff_ids`.
    pub(crate) fn store_tar_layer(
        &self,
        mut tar: impl Read,
        parent_diff_ids: &[Digest],
        stored: &mut Stored,
    ) -> Result<NewLayer, EngineError> {
        let mut w = self.layer_writer(parent_diff_ids, true)?;
        let mut buf = vec![0u8; 1 << 20];
        let written = loop {
            let n = match tar.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(EngineError::Invalid(format!("reading the layer tar: {e}"))),
            };
            if let Err(e) = w.write_all(&buf[..n]) {
                break Err(EngineError::io("write layer blob", e));
            }
        };
        self.finish_layer(w, written, stored)
    }

    /// A writer for an uncompressed layer tar on top of the layers `parent_diff_ids`: stored
    /// as an uncompressed blob (fsynced when `sync`) and applied into its snapshot as it is
    /// written.
    pub(crate) fn layer_writer(&self, parent_diff_ids: &[Digest], sync: bool) -> Result<LayerWriter, EngineError> {
        let blob = self.inner.content.writer(None, None)?;
        let (reader, writer) = io::pipe().map_err(|e| EngineError::io("layer: pipe", e))?;
        let done = Arc::new(AtomicBool::new(false));
        let input = LayerPipe { reader, done: done.clone() };
        let parent = chain_ids(parent_diff_ids).pop();
        let snapshots = self.inner.snapshots.clone();
        let apply = std::thread::Builder::new()
            .name("layer-apply".into())
            .spawn(move || snapshots.apply_new_layer(parent.as_ref(), input))
            .map_err(|e| EngineError::io("layer: start the apply thread", e))?;
        Ok(LayerWriter {
            blob: Some(blob),
            pipe: Some(io::BufWriter::with_capacity(1 << 18, writer)),
            done,
            apply: Some(apply),
            sync,
            started: std::time::Instant::now(),
        })
    }

    /// Ends the layer of `w`, given how writing its tar went (`written`): waits for its
    /// snapshot, then commits its blob, named by the diff id. A failed apply (a bad entry) is
    /// the cause of any write error that came with it.
    pub(crate) fn finish_layer(
        &self,
        mut w: LayerWriter,
        written: Result<(), EngineError>,
        stored: &mut Stored,
    ) -> Result<NewLayer, EngineError> {
        let t_written = w.started.elapsed();
        let mut written = written;
        if written.is_ok() {
            let flushed = w.pipe.as_mut().map(|p| p.flush()).unwrap_or(Ok(()));
            if flushed.is_ok() {
                w.done.store(true, Ordering::SeqCst);
            }
            written = flushed.map_err(|e| EngineError::io("write layer blob", e));
        }
        drop(w.pipe.take());
        let applied = match w.apply.take() {
            Some(h) => h.join().map_err(|_| EngineError::Internal("layer: the apply thread panicked".into()))?,
            None => return Err(EngineError::Internal("layer writer already finished".into())),
        };
        let t_applied = w.started.elapsed();
        let layer = applied.map_err(|e| EngineError::Invalid(format!("invalid layer tar: {e}")))?;
        if layer.fresh {
            stored.layers.insert(layer.chain_id.clone());
        }
        written?;
        let blob = w.blob.take().ok_or_else(|| EngineError::Internal("layer writer already finished".into()))?;
        let size = blob.written();
        let digest = if w.sync { blob.commit()? } else { blob.commit_unsynced()? };
        stored.blobs.insert(digest.clone());
        if digest != layer.diff_id {
            return Err(EngineError::Internal(format!(
                "layer: the blob {digest} and the snapshot's diff id {} differ",
                layer.diff_id
            )));
        }
        log::debug!(
            "layer: {size} bytes written in {t_written:?}, applied at {t_applied:?}, blob stored at {:?}",
            w.started.elapsed()
        );
        let blob = Descriptor {
            media_type: oci::MEDIA_OCI_LAYER.to_string(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
        };
        Ok(NewLayer { blob, diff_id: layer.diff_id })
    }

    /// Stores `config` and records the image with its layer blobs (and its name, in the same
    /// transaction). Returns the image id.
    pub(crate) fn record_image(
        &self,
        config: &ImageConfig,
        layers: Vec<Descriptor>,
        reference: Option<&ImageRef>,
        parent: Option<&Digest>,
        stored: &mut Stored,
    ) -> Result<Digest, EngineError> {
        let raw =
            serde_json::to_vec(config).map_err(|e| EngineError::Internal(format!("serialize image config: {e}")))?;
        let id = self.inner.content.put(&raw)?;
        stored.blobs.insert(id.clone());
        let mut record = self.new_image_record(id.clone(), config, layers, None)?;
        record.parent = parent.cloned();
        self.write_db(|tx| {
            tx.put(Table::Images, &id.to_string(), &record)?;
            if let Some(r) = reference {
                tx.put(Table::Tags, &r.to_string(), &id.to_string())?;
            }
            Ok::<_, EngineError>(())
        })?;
        Ok(id)
    }
}

/// Applies Dockerfile instructions (one or more lines per element) to an image's config, as
/// `docker import -c` and `docker commit -c` do: CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE,
/// LABEL, VOLUME, STOPSIGNAL.
pub(crate) fn apply_changes(cfg: &mut ContainerConfig, changes: &[String]) -> Result<(), EngineError> {
    let mut cmd_set = false;
    for line in changes.iter().flat_map(|c| c.lines()).map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (instr, rest) = match line.split_once(char::is_whitespace) {
            Some((i, r)) => (i, r.trim()),
            None => (line, ""),
        };
        let bad = |m: &str| EngineError::Invalid(format!("{} {m}: {line:?}", instr.to_uppercase()));
        match instr.to_ascii_uppercase().as_str() {
            "CMD" => {
                cfg.cmd = Some(command_form(rest));
                cmd_set = true;
            }
            "ENTRYPOINT" => {
                cfg.entrypoint = Some(command_form(rest));
                // As in a Dockerfile: a new entrypoint drops the inherited command.
                if !cmd_set {
                    cfg.cmd = None;
                }
            }
            "ENV" => {
                let pairs = key_values(rest, true).map_err(|m| bad(&m))?;
                let env = cfg.env.get_or_insert_with(Vec::new);
                for (k, v) in pairs {
                    env.retain(|e| e.split('=').next() != Some(k.as_str()));
                    env.push(format!("{k}={v}"));
                }
            }
            "LABEL" => {
                let pairs = key_values(rest, false).map_err(|m| bad(&m))?;
                cfg.labels.get_or_insert_with(BTreeMap::new).extend(pairs);
            }
            "WORKDIR" => {
                if rest.is_empty() {
                    return Err(bad("requires exactly one argument"));
                }
                let dir = if rest.starts_with('/') {
                    rest.to_string()
                } else {
                    let base = cfg.working_dir.clone().unwrap_or_else(|| "/".into());
                    format!("{}/{rest}", base.trim_end_matches('/'))
                };
                cfg.working_dir = Some(dir);
            }
            "USER" => {
                let w = words(rest).map_err(|m| bad(&m))?;
                if w.len() != 1 {
                    return Err(bad("requires exactly one argument"));
                }
                cfg.user = w.into_iter().next();
            }
            "STOPSIGNAL" => {
                let w = words(rest).map_err(|m| bad(&m))?;
                if w.len() != 1 {
                    return Err(bad("requires exactly one argument"));
                }
                cfg.stop_signal = w.into_iter().next();
            }
            "EXPOSE" => {
                let w = words(rest).map_err(|m| bad(&m))?;
                if w.is_empty() {
                    return Err(bad("requires at least one argument"));
                }
                let ports = cfg.exposed_ports.get_or_insert_with(BTreeMap::new);
                for p in w {
                    for port in expose_ports(&p).ok_or_else(|| bad(&format!("invalid port {p:?}")))? {
                        ports.insert(port, serde_json::json!({}));
                    }
                }
            }
            "VOLUME" => {
                let list = if rest.starts_with('[') {
                    serde_json::from_str::<Vec<String>>(rest).map_err(|_| bad("takes a JSON array of strings"))?
                } else {
                    words(rest).map_err(|m| bad(&m))?
                };
                if list.is_empty() || list.iter().any(|v| v.trim().is_empty()) {
                    return Err(bad("requires at least one non-empty path"));
                }
                let vols = cfg.volumes.get_or_insert_with(BTreeMap::new);
                for v in list {
                    vols.insert(v, serde_json::json!({}));
                }
            }
            _ => return Err(EngineError::Invalid(format!("{instr} is not a valid change command"))),
        }
    }
    Ok(())
}

/// `["a","b"]` (JSON form) or `a b` (shell form, run through `/bin/sh -c`).
fn command_form(rest: &str) -> Vec<String> {
    if rest.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(rest) {
            return v;
        }
    }
    vec!["/bin/sh".into(), "-c".into(), rest.to_string()]
}

/// `k=v k2="v 2"`, or the legacy `k v w` (one pair, the value the rest) where `legacy` allows.
fn key_values(rest: &str, legacy: bool) -> Result<Vec<(String, String)>, String> {
    let w = words(rest)?;
    if w.is_empty() {
        return Err("requires at least one argument".into());
    }
    if !w[0].contains('=') {
        if legacy && w.len() >= 2 {
            let value = rest.split_once(char::is_whitespace).map_or("", |(_, value)| value).trim();
            return Ok(vec![(w[0].clone(), unquote(value))]);
        }
        return Err(format!("{:?} is not of the form key=value", w[0]));
    }
    w.into_iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("{p:?} is not of the form key=value")),
        })
        .collect()
}

fn unquote(s: &str) -> String {
    match words(s) {
        Ok(w) if w.len() == 1 => w.into_iter().next().unwrap_or_default(),
        _ => s.to_string(),
    }
}

/// Splits on white space outside quotes; quotes are removed, `\` escapes the next character
/// (outside single quotes).
fn words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                in_word = true;
                match chars.next() {
                    Some(n) => cur.push(n),
                    None => cur.push('\\'),
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `80`, `80/udp`, `8000-8002/tcp` as exposed-port keys.
fn expose_ports(p: &str) -> Option<Vec<String>> {
    let (ports, proto) = match p.split_once('/') {
        Some((ports, proto)) => (ports, proto.to_ascii_lowercase()),
        None => (p, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return None;
    }
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?),
        None => {
            let n = ports.parse::<u16>().ok()?;
            (n, n)
        }
    };
    if lo == 0 || hi < lo {
        return None;
    }
    Some((lo..=hi).map(|n| format!("{n}/{proto}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(changes: &[&str]) -> Result<ContainerConfig, EngineError> {
        let mut c = ContainerConfig {
            cmd: Some(vec!["old".into()]),
            env: Some(vec!["PATH=/bin".into(), "A=1".into()]),
            ..Default::default()
        };
        apply_changes(&mut c, &changes.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        Ok(c)
    }

    #[test]
    fn change_instructions() {
        let c = changed(&[r#"CMD ["/bin/sh", "-c", "echo hi"]"#]).unwrap();
        assert_eq!(c.cmd, Some(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()]));
        let c = changed(&["cmd echo hi there"]).unwrap();
        assert_eq!(c.cmd, Some(vec!["/bin/sh".into(), "-c".into(), "echo hi there".into()]));
        let c = changed(&["ENTRYPOINT [\"/bin/echo\"]"]).unwrap();
        assert_eq!((c.entrypoint, c.cmd), (Some(vec!["/bin/echo".into()]), None));
        let c = changed(&["CMD [\"x\"]", "ENTRYPOINT [\"/e\"]"]).unwrap();
        assert_eq!(c.cmd, Some(vec!["x".into()]));
        let c = changed(&["ENV A=2 B=\"two words\"", "ENV C hello world"]).unwrap();
        assert_eq!(c.env, Some(vec!["PATH=/bin".into(), "A=2".into(), "B=two words".into(), "C=hello world".into()]));
        let c = changed(&["WORKDIR /srv", "WORKDIR app", "USER nobody", "STOPSIGNAL SIGUSR1"]).unwrap();
        assert_eq!(c.working_dir.as_deref(), Some("/srv/app"));
        assert_eq!(c.user.as_deref(), Some("nobody"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGUSR1"));
        let c = changed(&["EXPOSE 80 53/udp 8000-8001", "LABEL a=b \"c d\"=e", "VOLUME [\"/data\"]\nVOLUME /x /y"])
            .unwrap();
        let ports: Vec<_> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, vec!["53/udp", "80/tcp", "8000/tcp", "8001/tcp"]);
        let labels = c.labels.unwrap();
        assert_eq!((labels["a"].as_str(), labels["c d"].as_str()), ("b", "e"));
        let vols: Vec<_> = c.volumes.unwrap().into_keys().collect();
        assert_eq!(vols, vec!["/data", "/x", "/y"]);
    }

    #[test]
    fn bad_changes() {
        for bad in ["RUN echo", "EXPOSE http", "EXPOSE 80/foo", "USER a b", "LABEL novalue", "ENV A=\"x", "WORKDIR"] {
            let e = changed(&[bad]).unwrap_err();
            assert_eq!(e.kind(), wharf_types::ErrorKind::InvalidArgument, "{bad}: {e}");
        }
        assert_eq!(changed(&["RUN echo"]).unwrap_err().to_string(), "RUN is not a valid change command");
    }
}
