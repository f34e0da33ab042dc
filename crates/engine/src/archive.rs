//! Moving images without a registry: `save` writes a docker-archive that is at the same time an
//! OCI image layout (as Docker 25+ writes it: `blobs/sha256/<hex>`, `manifest.json`,
//! `repositories`, `index.json`, `oci-layout`); `load` reads that, the older docker-archive with
//! `<id>/layer.tar` and `<config hex>.json`, and plain OCI image layouts.
//!
//! Loading first stages every file of the archive: small ones in memory, large ones streamed
//! into the content store (hashed as they are written), because the archive may name its layers
//! only at its end. Then each layer blob is decompressed into the snapshotter, its diff id
//! checked against the image config, and the images are recorded. On any failure, whatever
//! this load stored and no image uses is removed again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;
use wharf_metadata::Table;
use wharf_types::digest::chain_ids;
use wharf_types::oci::{self, Descriptor, ImageConfig, Index, Manifest};
use wharf_types::{Digest, ImageRef};

use crate::images::ImageRecord;
use crate::{blocking, Engine, EngineError};

/// Files up to this size stay in memory while an archive is read (configs, manifests, the
/// metadata files, empty layers); larger ones go to the content store.
const SMALL_FILE: u64 = 1 << 20;
/// The most memory the small files of one archive may take.
const MAX_SMALL_TOTAL: u64 = 64 << 20;
/// The most entries an archive may have: every one costs a little memory.
const MAX_ENTRIES: usize = 100_000;
/// Room left on the data root's file system after the staged files (the layers still unpack).
const DISK_RESERVE: u64 = 64 << 20;

/// One image of a load: its id and the names it got.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    pub id: Digest,
    pub tags: Vec<ImageRef>,
}

/// The images a save writes, resolved before the first byte goes out (so an unknown name is a
/// 404, not a broken stream).
pub struct SavePlan {
    images: Vec<(ImageRecord, Vec<ImageRef>)>,
}

/// One element of a docker-archive's `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
struct ArchiveManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// A file of the archive after staging.
#[derive(Debug, Clone)]
enum Staged {
    Mem(Vec<u8>),
    Blob(Digest),
}

/// An image found in the archive, before its layers are applied.
struct Found {
    config_path: String,
    layer_paths: Vec<String>,
    tags: Vec<ImageRef>,
}

use crate::gc::Stored;

impl Engine {
    /// Resolves `names` (references or ids) to the images a save writes. A name that is a tag
    /// names that tag in the archive; an id writes the image without names.
    pub fn save_plan(&self, names: &[String]) -> Result<SavePlan, EngineError> {
        if names.is_empty() {
            return Err(EngineError::Invalid("no image names given to save".into()));
        }
        let mut images: Vec<(ImageRecord, Vec<ImageRef>)> = Vec::new();
        for name in names {
            let (rec, matched) =
                self.lookup_image(name)?.ok_or_else(|| EngineError::NotFound(format!("No such image: {name}")))?;
            let tag = matched.filter(|r| r.digest.is_none());
            match images.iter_mut().find(|(r, _)| r.id == rec.id) {
                Some((_, tags)) => tags.extend(tag.filter(|t| !tags.contains(t))),
                None => images.push((rec, tag.into_iter().collect())),
            }
        }
        Ok(SavePlan { images })
    }

    /// Writes the images of `plan` as one tar to `out`. Blocking: run it on a thread of its own.
    pub fn save_blocking(&self, plan: &SavePlan, out: impl Write) -> Result<(), EngineError> {
        // Shared: no removal collects a blob while it is being written out.
        let _gc = crate::sync::read(&self.inner.gc_lock);
        let write_err = |e: io::Error| EngineError::io("save: write archive", e);
        let mut tar = tar::Builder::new(out);
        let mut written: HashSet<Digest> = HashSet::new();
        let mut entries = Vec::new();
        let mut index = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        append_dir(&mut tar, "blobs/").map_err(write_err)?;
        append_dir(&mut tar, "blobs/sha256/").map_err(write_err)?;

        for (rec, tags) in &plan.images {
            let config_raw = self.image_config_raw(rec)?;
            append_file(&mut tar, &blob_path(&rec.id), &config_raw).map_err(write_err)?;
            written.insert(rec.id.clone());
            let mut layers = Vec::new();
            for desc in &rec.layers {
                if written.insert(desc.digest.clone()) {
                    let file = self.inner.content.open_blob(&desc.digest).map_err(|e| {
                        EngineError::Internal(format!("save: layer {} of image {}: {e}", desc.digest, rec.id))
                    })?;
                    let size =
                        file.metadata().map_err(|e| EngineError::io(format!("stat blob {}", desc.digest), e))?.len();
                    let mut h = file_header(size);
                    tar.append_data(&mut h, blob_path(&desc.digest), file).map_err(write_err)?;
                }
                layers.push(Descriptor {
                    media_type: oci_layer_type(&desc.media_type).to_string(),
                    digest: desc.digest.clone(),
                    size: desc.size,
                    urls: Vec::new(),
                    annotations: BTreeMap::new(),
                    platform: None,
                });
            }
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(oci::MEDIA_OCI_MANIFEST.to_string()),
                config: Descriptor {
                    media_type: oci::MEDIA_OCI_CONFIG.to_string(),
                    digest: rec.id.clone(),
                    size: config_raw.len() as u64,
                    urls: Vec::new(),
                    annotations: BTreeMap::new(),
                    platform: None,
                },
                layers,
                annotations: BTreeMap::new(),
            };
            let manifest_raw = serde_json::to_vec(&manifest)
                .map_err(|e| EngineError::Internal(format!("save: manifest of {}: {e}", rec.id)))?;
            let manifest_digest = Digest::of(&manifest_raw);
            if written.insert(manifest_digest.clone()) {
                append_file(&mut tar, &blob_path(&manifest_digest), &manifest_raw).map_err(write_err)?;
            }
            let descriptor = |annotations: serde_json::Value| {
                json!({
                    "mediaType": oci::MEDIA_OCI_MANIFEST,
                    "digest": manifest_digest.to_string(),
                    "size": manifest_raw.len(),
                    "annotations": annotations,
                })
            };
            if tags.is_empty() {
                index.push(descriptor(json!({})));
            }
            for t in tags {
                index.push(descriptor(json!({
                    "io.containerd.image.name": t.to_string(),
                    "org.opencontainers.image.ref.name": t.tag.clone().unwrap_or_default(),
                })));
                if let (Some(top), Some(tag)) = (rec.layers.last(), &t.tag) {
                    repositories
                        .entry(t.familiar_name())
                        .or_default()
                        .insert(tag.clone(), top.digest.hex().to_string());
                }
            }
            entries.push(ArchiveManifest {
                config: blob_path(&rec.id),
                repo_tags: Some(tags.iter().map(|t| t.familiar()).collect()),
                layers: rec.layers.iter().map(|l| blob_path(&l.digest)).collect(),
            });
        }
        let index = json!({"schemaVersion": 2, "mediaType": oci::MEDIA_OCI_INDEX, "manifests": index});
        append_file(&mut tar, "index.json", &to_json(&index)).map_err(write_err)?;
        append_file(&mut tar, "manifest.json", &to_json(&entries)).map_err(write_err)?;
        append_file(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(write_err)?;
        if !repositories.is_empty() {
            append_file(&mut tar, "repositories", &to_json(&repositories)).map_err(write_err)?;
        }
        tar.into_inner().and_then(|mut w| w.flush()).map_err(write_err)?;
        Ok(())
    }

    /// Loads the images of a docker-archive or OCI image layout read from `input`.
    pub async fn load(&self, input: Box<dyn Read + Send>) -> Result<Vec<LoadedImage>, EngineError> {
        let engine = self.clone();
        let loaded = blocking(move || engine.load_blocking(input)).await?;
        for l in &loaded {
            let name = l.tags.first().map(|t| t.familiar()).unwrap_or_else(|| l.id.to_string());
            self.image_event("load", &l.id.to_string(), &name);
        }
        Ok(loaded)
    }

    fn load_blocking(&self, input: Box<dyn Read + Send>) -> Result<Vec<LoadedImage>, EngineError> {
        let mut stored = Stored::default();
        let result = {
            let _gc = crate::sync::read(&self.inner.gc_lock);
            self.load_staged(input, &mut stored)
        };
        // What the load stored and no image uses (all of it after a failure; extra files of the
        // archive after a success) goes again, under the exclusive lock.
        if let Err(e) = self.discard_unreferenced(&stored) {
            log::warn!("load: cleaning up: {e}");
        }
        result
    }

    fn load_staged(&self, input: Box<dyn Read + Send>, stored: &mut Stored) -> Result<Vec<LoadedImage>, EngineError> {
        let files = self.stage(input, stored)?;
        let found = find_images(&files)?;
        let mut loaded = Vec::new();
        for image in found {
            loaded.push(self.load_image(&files, image, stored)?);
        }
        Ok(loaded)
    }

    /// Stages the archive: large files go into the content store, hashed as they are written.
    fn stage(&self, input: Box<dyn Read + Send>, stored: &mut Stored) -> Result<Files, EngineError> {
        let budget = free_space(&self.inner.config.data_root)?.saturating_sub(DISK_RESERVE);
        let content = &self.inner.content;
        stage(input, budget, &mut |path, expected, size, r| {
            let bad = |m: String| EngineError::Invalid(format!("invalid archive: {m}"));
            let mut w = content.writer(expected, Some(size))?;
            io::copy(r, &mut w).map_err(|e| bad(format!("reading {path:?}: {e}")))?;
            let d = w.commit().map_err(|e| bad(format!("{path:?}: {e}")))?;
            stored.blobs.insert(d.clone());
            Ok(d)
        })
    }

    /// Applies the layers of one image, checks them against its config, and records it.
    fn load_image(&self, files: &Files, image: Found, stored: &mut Stored) -> Result<LoadedImage, EngineError> {
        let bad = |m: String| EngineError::Invalid(format!("invalid archive: {m}"));
        let config_raw = match files.get(&image.config_path)? {
            Staged::Mem(b) => b.clone(),
            Staged::Blob(d) => self.inner.content.read(d, oci::MAX_MANIFEST_SIZE)?,
        };
        let config = parse_config(&config_raw, &image)?;
        let diff_ids = config.rootfs.diff_ids.clone();
        let chains = chain_ids(&diff_ids);
        let mut layers = Vec::new();
        for ((path, diff_id), chain) in image.layer_paths.iter().zip(&diff_ids).zip(&chains) {
            let digest = match files.get(path)? {
                Staged::Mem(b) => {
                    let d = self.inner.content.put(b)?;
                    stored.blobs.insert(d.clone());
                    d
                }
                Staged::Blob(d) => d.clone(),
            };
            let fresh = !self.inner.snapshots.has_layer(chain);
            let compression =
                self.apply_blob(&digest, chain, diff_id).map_err(|e| bad(format!("layer {path:?}: {e}")))?;
            if fresh {
                stored.layers.insert(chain.clone());
            }
            layers.push(Descriptor {
                media_type: compression.to_string(),
                digest: digest.clone(),
                size: self.inner.content.size(&digest)?,
                urls: Vec::new(),
                annotations: BTreeMap::new(),
                platform: None,
            });
        }
        let id = self.inner.content.put(&config_raw)?;
        stored.blobs.insert(id.clone());
        let record = self.new_image_record(id.clone(), &config, layers, None)?;
        self.write_db(|tx| {
            tx.put(Table::Images, &id.to_string(), &record)?;
            for t in &image.tags {
                tx.put(Table::Tags, &t.to_string(), &id.to_string())?;
            }
            Ok::<_, EngineError>(())
        })?;
        Ok(LoadedImage { id, tags: image.tags })
    }

    /// Decompresses the blob (gzip, zstd or plain tar, told by its first bytes) into the layer
    /// `chain`, checking its diff id; an existing layer is only checked. Returns the OCI media
    /// type of the blob.
    fn apply_blob(&self, blob: &Digest, chain: &Digest, diff_id: &Digest) -> Result<&'static str, EngineError> {
        let mut file = BufReader::with_capacity(1 << 20, self.inner.content.open_blob(blob)?);
        let head = {
            use std::io::BufRead;
            file.fill_buf().map_err(|e| EngineError::io(format!("read blob {blob}"), e))?.to_vec()
        };
        let snapshots = &self.inner.snapshots;
        if head.starts_with(&[0x1f, 0x8b]) {
            snapshots.apply_layer(chain, Some(diff_id), flate2::read::MultiGzDecoder::new(file))?;
            Ok(oci::MEDIA_OCI_LAYER_GZIP)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            let dec = zstd::stream::read::Decoder::with_buffer(file).map_err(|e| EngineError::io("zstd", e))?;
            snapshots.apply_layer(chain, Some(diff_id), dec)?;
            Ok(oci::MEDIA_OCI_LAYER_ZSTD)
        } else {
            snapshots.apply_layer(chain, Some(diff_id), file)?;
            Ok(oci::MEDIA_OCI_LAYER)
        }
    }
}

/// One image an archive holds, as [`inspect_archive`] finds it.
#[derive(Debug)]
pub struct ArchiveImage {
    pub tags: Vec<ImageRef>,
    pub layers: usize,
}

/// What a load of `input` would find, storing nothing: every image with its tags, its config
/// parsed and checked against its layer list. Large files are hashed and dropped (a config
/// among them is not parsed) and layers are not unpacked. The same staging and checks as
/// [`Engine::load`], for tests and `fuzz/` that have no engine.
pub fn inspect_archive(input: impl Read) -> Result<Vec<ArchiveImage>, EngineError> {
    let files = stage(input, u64::MAX, &mut |path, expected, _, r| {
        let mut hashing = wharf_types::digest::Sha256Writer::new();
        io::copy(r, &mut hashing)
            .map_err(|e| EngineError::Invalid(format!("invalid archive: reading {path:?}: {e}")))?;
        let (d, _) = hashing.finish();
        match expected {
            Some(e) if *e != d => {
                Err(EngineError::Invalid(format!("invalid archive: the content of {path:?} does not match its digest")))
            }
            _ => Ok(d),
        }
    })?;
    let mut out = Vec::new();
    for image in find_images(&files)? {
        for layer in &image.layer_paths {
            files.get(layer)?;
        }
        if let Staged::Mem(raw) = files.get(&image.config_path)? {
            parse_config(raw, &image)?;
        }
        out.push(ArchiveImage { layers: image.layer_paths.len(), tags: image.tags });
    }
    Ok(out)
}

/// An image's config, which must list as many diff ids as the manifest lists layers.
fn parse_config(raw: &[u8], image: &Found) -> Result<ImageConfig, EngineError> {
    let bad = |m: String| EngineError::Invalid(format!("invalid archive: {m}"));
    let config: ImageConfig =
        serde_json::from_slice(raw).map_err(|e| bad(format!("image config {:?}: {e}", image.config_path)))?;
    if config.rootfs.diff_ids.len() != image.layer_paths.len() {
        return Err(bad(format!(
            "the manifest lists {} layers but the image config {:?} has {} diff ids",
            image.layer_paths.len(),
            image.config_path,
            config.rootfs.diff_ids.len()
        )));
    }
    Ok(config)
}

/// Where [`stage`] puts a file too large to keep in memory: given its path, the digest its path
/// promises, its size and its bytes, it returns the file's digest.
type LargeSink<'a> = dyn FnMut(&str, Option<&Digest>, u64, &mut dyn Read) -> Result<Digest, EngineError> + 'a;

/// Reads every entry of the archive: regular files staged (small ones in memory, the others
/// through `large`), links as aliases. At most `budget` bytes of files in all.
fn stage(input: impl Read, mut budget: u64, large: &mut LargeSink) -> Result<Files, EngineError> {
    let bad = |m: String| EngineError::Invalid(format!("invalid archive: {m}"));
    let mut small_total = 0u64;
    let mut files = Files::default();
    let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 20, input));
    let entries = archive.entries().map_err(|e| bad(format!("reading the tar: {e}")))?;
    let mut count = 0usize;
    for entry in entries {
        let mut entry = entry.map_err(|e| match count {
            // What the tar crate says about a first header that is not one is no help.
            0 => bad("not a tar archive: its first block is not a tar header".into()),
            _ => bad(format!("reading the tar: {e}")),
        })?;
        count += 1;
        if count > MAX_ENTRIES {
            return Err(bad(format!("more than {MAX_ENTRIES} entries")));
        }
        let raw_path = entry.path_bytes().into_owned();
        let raw_path = String::from_utf8_lossy(&raw_path).into_owned();
        let path =
            clean_path(&raw_path).ok_or_else(|| bad(format!("entry {raw_path:?} points outside the archive")))?;
        let kind = entry.header().entry_type();
        if kind.is_dir() || kind.is_pax_global_extensions() || path.is_empty() {
            continue;
        }
        if files.entries.contains_key(&path) {
            return Err(bad(format!("entry {path:?} appears twice")));
        }
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .ok_or_else(|| bad(format!("link {path:?} has no target")))?;
            let resolved = if kind.is_symlink() {
                let parent = Path::new(&path).parent().unwrap_or(Path::new(""));
                clean_path(&parent.join(&target).to_string_lossy())
            } else {
                clean_path(&target)
            };
            let resolved =
                resolved.ok_or_else(|| bad(format!("link {path:?} -> {target:?} points outside the archive")))?;
            files.entries.insert(path, Entry::Link(resolved));
            continue;
        }
        if !kind.is_file() {
            return Err(bad(format!("entry {path:?} is not a regular file, directory or link")));
        }
        let size = entry.size();
        if size > budget {
            return Err(bad(format!("entry {path:?} of {size} bytes does not fit in the space left on the data root")));
        }
        budget -= size;
        let expected = blob_digest_of_path(&path);
        if size <= SMALL_FILE {
            small_total += size;
            if small_total > MAX_SMALL_TOTAL {
                return Err(bad(format!("more than {MAX_SMALL_TOTAL} bytes of small files")));
            }
            let mut data = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut data).map_err(|e| bad(format!("reading {path:?}: {e}")))?;
            if let Some(d) = &expected {
                if Digest::of(&data) != *d {
                    return Err(bad(format!("the content of {path:?} does not match its digest")));
                }
            }
            files.entries.insert(path, Entry::File(Staged::Mem(data)));
        } else {
            let d = large(&path, expected.as_ref(), size, &mut entry)?;
            files.entries.insert(path, Entry::File(Staged::Blob(d)));
        }
    }
    Ok(files)
}

/// The archive's metadata files: plain data with string keys, which serializes without fail.
fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

#[derive(Debug)]
enum Entry {
    File(Staged),
    Link(String),
}

#[derive(Debug, Default)]
struct Files {
    entries: HashMap<String, Entry>,
}

impl Files {
    /// The staged file at `path`, following links (a bounded number of them).
    fn get(&self, path: &str) -> Result<&Staged, EngineError> {
        let mut p = path.to_string();
        for _ in 0..16 {
            match self.entries.get(&p) {
                Some(Entry::File(s)) => return Ok(s),
                Some(Entry::Link(t)) => p = t.clone(),
                None => {
                    return Err(EngineError::Invalid(format!(
                        "invalid archive: {path:?} is referenced but not in the archive"
                    )))
                }
            }
        }
        Err(EngineError::Invalid(format!("invalid archive: too many links resolving {path:?}")))
    }

    fn bytes(&self, path: &str) -> Result<Option<&[u8]>, EngineError> {
        if !self.entries.contains_key(path) {
            return Ok(None);
        }
        match self.get(path)? {
            Staged::Mem(b) => Ok(Some(b)),
            Staged::Blob(_) => Err(EngineError::Invalid(format!("invalid archive: {path} is too large"))),
        }
    }
}

/// The images an archive holds: from `manifest.json` when present, else from `index.json`.
fn find_images(files: &Files) -> Result<Vec<Found>, EngineError> {
    let bad = |m: String| EngineError::Invalid(format!("invalid archive: {m}"));
    if let Some(raw) = files.bytes("manifest.json")? {
        let entries: Vec<ArchiveManifest> =
            serde_json::from_slice(raw).map_err(|e| bad(format!("manifest.json: {e}")))?;
        if entries.is_empty() {
            return Err(bad("manifest.json lists no image".into()));
        }
        let mut out = Vec::new();
        for e in entries {
            let mut tags = Vec::new();
            for t in e.repo_tags.unwrap_or_default() {
                let r = ImageRef::parse(&t).map_err(|err| bad(format!("manifest.json: tag {t:?}: {err}")))?;
                tags.push(r);
            }
            out.push(Found { config_path: normalized(&e.config)?, layer_paths: normalized_all(&e.layers)?, tags });
        }
        return Ok(out);
    }
    if let Some(raw) = files.bytes("index.json")? {
        let index: Index = serde_json::from_slice(raw).map_err(|e| bad(format!("index.json: {e}")))?;
        let mut out: Vec<Found> = Vec::new();
        for desc in &index.manifests {
            let manifest = manifest_of(files, desc, 0)?;
            let tag = desc
                .annotations
                .get("io.containerd.image.name")
                .or_else(|| {
                    desc.annotations.get("org.opencontainers.image.ref.name").filter(|n| n.contains([':', '/']))
                })
                .and_then(|n| ImageRef::parse(n).ok());
            let config_path = blob_path(&manifest.config.digest);
            if let Some(existing) = out.iter_mut().find(|f| f.config_path == config_path) {
                existing.tags.extend(tag);
                continue;
            }
            out.push(Found {
                config_path,
                layer_paths: manifest.layers.iter().map(|l| blob_path(&l.digest)).collect(),
                tags: tag.into_iter().collect(),
            });
        }
        if out.is_empty() {
            return Err(bad("index.json lists no image".into()));
        }
        return Ok(out);
    }
    Err(bad("neither manifest.json nor index.json found (not a docker-archive or OCI image layout)".into()))
}

/// The image manifest a descriptor of an OCI layout names; an index is followed to the entry
/// for this host's platform.
fn manifest_of(files: &Files, desc: &Descriptor, depth: u32) -> Result<Manifest, EngineError> {
    let bad = |m: String| EngineError::Invalid(format!("invalid archive: {m}"));
    if depth > 4 {
        return Err(bad("indexes nested too deeply".into()));
    }
    let path = blob_path(&desc.digest);
    let raw = files.bytes(&path)?.ok_or_else(|| bad(format!("{path:?} is referenced but not in the archive")))?;
    match oci::parse_manifest(&desc.media_type, raw).map_err(|e| bad(format!("{path}: {e}")))? {
        oci::ManifestKind::Manifest(m) => Ok(m),
        oci::ManifestKind::Index(i) => {
            let d = i
                .select(&oci::Platform::host())
                .ok_or_else(|| bad(format!("{path}: no manifest for this platform")))?;
            manifest_of(files, d, depth + 1)
        }
    }
}

fn normalized(p: &str) -> Result<String, EngineError> {
    clean_path(p).ok_or_else(|| EngineError::Invalid(format!("invalid archive: path {p:?} points outside the archive")))
}

fn normalized_all(ps: &[String]) -> Result<Vec<String>, EngineError> {
    ps.iter().map(|p| normalized(p)).collect()
}

/// An archive path made relative, with `.` and `..` resolved; None when it is absolute or
/// climbs above the archive's root.
fn clean_path(p: &str) -> Option<String> {
    let mut out = PathBuf::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    out.to_str().map(str::to_string)
}

/// The digest a `blobs/sha256/<hex>` path promises.
fn blob_digest_of_path(p: &str) -> Option<Digest> {
    p.strip_prefix("blobs/sha256/").and_then(|hex| Digest::from_hex(hex).ok())
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// The OCI media type of a stored layer blob (Docker's names map to the OCI ones).
fn oci_layer_type(media_type: &str) -> &'static str {
    match oci::Compression::from_media_type(media_type) {
        Some(oci::Compression::Gzip) => oci::MEDIA_OCI_LAYER_GZIP,
        Some(oci::Compression::Zstd) => oci::MEDIA_OCI_LAYER_ZSTD,
        _ => oci::MEDIA_OCI_LAYER,
    }
}

fn file_header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o444);
    h.set_mtime(0);
    h
}

fn append_file<W: Write>(tar: &mut tar::Builder<W>, path: &str, data: &[u8]) -> io::Result<()> {
    let mut h = file_header(data.len() as u64);
    tar.append_data(&mut h, path, data)
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    h.set_mtime(0);
    tar.append_data(&mut h, path, io::empty())
}

/// Bytes an unprivileged writer may still use on the file system holding `path`.
fn free_space(path: &Path) -> Result<u64, EngineError> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| EngineError::Internal(format!("data root {} contains a NUL byte", path.display())))?;
    // SAFETY: an all-zero statvfs is a valid value for the kernel to overwrite.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out pointer for the call.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(EngineError::io(format!("statvfs {}", path.display()), io::Error::last_os_error()));
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of `(path, bytes)` files and `(path, target)` symlinks.
    fn tar_of(files: &[(&str, &[u8])], links: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, d) in files {
            append_file(&mut b, p, d).unwrap();
        }
        for (p, target) in links {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, p, target).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn config_with(diff_ids: &[&Digest]) -> Vec<u8> {
        let ids: Vec<String> = diff_ids.iter().map(|d| d.to_string()).collect();
        serde_json::to_vec(
            &json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ids}}),
        )
        .unwrap()
    }

    #[test]
    fn inspects_docker_archives_and_oci_layouts() {
        let layer = tar_of(&[("hello", b"hi")], &[]);
        let diff = Digest::of(&layer);
        let config = config_with(&[&diff]);
        let manifest =
            br#"[{"Config":"c.json","RepoTags":["app:1","registry.example/x/y:2"],"Layers":["l/layer.tar"]}]"#;
        let archive = tar_of(&[("manifest.json", manifest), ("c.json", &config), ("l/layer.tar", &layer)], &[]);
        let found = inspect_archive(&archive[..]).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].layers, 1);
        let tags: Vec<String> = found[0].tags.iter().map(|t| t.familiar()).collect();
        assert_eq!(tags, ["app:1", "registry.example/x/y:2"]);

        // An OCI layout, its layer reached through a symlink as Docker 25 writes them.
        let cd = Digest::of(&config);
        let ld = Digest::of(&layer);
        let m = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": oci::MEDIA_OCI_MANIFEST,
            "config": {"mediaType": oci::MEDIA_OCI_CONFIG, "digest": cd, "size": config.len()},
            "layers": [{"mediaType": oci::MEDIA_OCI_LAYER, "digest": ld, "size": layer.len()}]}))
        .unwrap();
        let md = Digest::of(&m);
        let index =
            serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{"mediaType": oci::MEDIA_OCI_MANIFEST,
            "digest": md, "size": m.len(), "annotations": {"io.containerd.image.name": "docker.io/library/app:3"}}]}))
            .unwrap();
        let (cp, mp, lp) = (blob_path(&cd), blob_path(&md), blob_path(&ld));
        let archive = tar_of(
            &[("index.json", &index), (&cp, &config), (&mp, &m), ("l/layer.tar", &layer)],
            &[(&lp, "../../l/layer.tar")],
        );
        let found = inspect_archive(&archive[..]).unwrap();
        assert_eq!(found[0].tags[0].familiar(), "app:3");
    }

    #[test]
    fn inspect_refuses_bad_archives_by_name() {
        let layer = tar_of(&[("hello", b"hi")], &[]);
        let diff = Digest::of(&layer);
        let one = br#"[{"Config":"c.json","Layers":["layer.tar"]}]"#;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (tar_of(&[("x", b"y")], &[]), "neither manifest.json nor index.json"),
            (tar_of(&[("manifest.json", b"[]")], &[]), "lists no image"),
            (tar_of(&[("manifest.json", br#"[{"Config":"../c.json","Layers":[]}]"#)], &[]), "points outside"),
            (tar_of(&[("manifest.json", one), ("c.json", &config_with(&[&diff]))], &[]), "\"layer.tar\" is referenced"),
            (
                tar_of(&[("manifest.json", one), ("c.json", &config_with(&[])), ("layer.tar", &layer)], &[]),
                "has 0 diff ids",
            ),
            (
                tar_of(&[("manifest.json", one), ("c.json", &config_with(&[&diff]))], &[("layer.tar", "layer.tar")]),
                "too many links",
            ),
            (tar_of(&[("manifest.json", one)], &[("c.json", "../../etc/passwd")]), "points outside the archive"),
            (tar_of(&[(&blob_path(&diff), b"not the layer")], &[]), "does not match its digest"),
            (b"definitely not a tar archive, far too short".to_vec(), "invalid archive"),
        ];
        for (archive, want) in cases {
            let e = inspect_archive(&archive[..]).unwrap_err().to_string();
            assert!(e.contains(want), "want {want:?} in {e:?}");
        }
    }

    #[test]
    fn archive_paths() {
        for (input, want) in [
            ("manifest.json", Some("manifest.json")),
            ("./blobs/sha256/ab", Some("blobs/sha256/ab")),
            ("a/./b/layer.tar", Some("a/b/layer.tar")),
            ("../etc/passwd", None),
            ("a/../../b", None),
            ("abc/../def/layer.tar", Some("def/layer.tar")),
            ("/etc/passwd", None),
            ("", Some("")),
        ] {
            assert_eq!(clean_path(input).as_deref(), want, "{input}");
        }
    }

    #[test]
    fn blob_paths_promise_digests() {
        let d = Digest::of(b"x");
        assert_eq!(blob_digest_of_path(&blob_path(&d)), Some(d));
        assert_eq!(blob_digest_of_path("blobs/sha256/zz"), None);
        assert_eq!(blob_digest_of_path("abc/layer.tar"), None);
    }

    #[test]
    fn layer_types() {
        assert_eq!(oci_layer_type(oci::MEDIA_DOCKER_LAYER_GZIP), oci::MEDIA_OCI_LAYER_GZIP);
        assert_eq!(oci_layer_type(oci::MEDIA_OCI_LAYER_ZSTD), oci::MEDIA_OCI_LAYER_ZSTD);
        assert_eq!(oci_layer_type("application/vnd.docker.image.rootfs.diff.tar"), oci::MEDIA_OCI_LAYER);
    }
}
