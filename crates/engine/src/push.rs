//! Pushing an image: the layers this daemon made, stored uncompressed, are compressed first
//! (once: the gzip blobs replace them); each layer blob is skipped when the registry has it,
//! mounted from another repository of the same registry when one is known to hold it, else
//! uploaded from the content store; then the config, and the manifest last. Also the credential check of `login`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;
use wharf_distribution::{AuthConfig, Endpoint, Mount};
use wharf_metadata::Table;
use wharf_types::oci::{self, Descriptor, Manifest};
use wharf_types::{Digest, ImageRef};

use crate::images::ImageRecord;
use crate::pull::PullEvent;
use crate::{blocking, Engine, EngineError};

pub struct PushRequest {
    /// What to push. Without a tag, every tag of the repository is pushed, as Docker does.
    pub reference: ImageRef,
    pub auth: Option<AuthConfig>,
    /// Upload blobs in chunks of this many bytes (`PATCH`es) instead of one `PUT`.
    pub chunk_size: Option<u64>,
}

/// What one pushed tag became in the registry.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub tag: String,
    pub digest: Digest,
    pub size: u64,
}

/// A blob to put in the registry: a layer (shown in progress under `id`) or the config.
struct BlobJob {
    desc: Descriptor,
    id: Option<String>,
}

impl Engine {
    /// Pushes `req.reference`; progress goes to `events` in Docker's shape.
    pub async fn push(&self, req: PushRequest, events: UnboundedSender<PullEvent>) -> Result<Vec<Pushed>, EngineError> {
        let engine = self.clone();
        let r = blocking(move || engine.push_blocking(req, &events)).await;
        self.metrics().push_done(r.is_ok());
        r.map_err(EngineError::of_registry_transfer)
    }

    /// Searches a registry's `/v1/search` (`docker search`), `registry` as `login` names it.
    pub async fn search(
        &self,
        registry: String,
        term: String,
        limit: u32,
        auth: Option<AuthConfig>,
    ) -> Result<wharf_distribution::SearchAnswer, EngineError> {
        let engine = self.clone();
        blocking(move || Ok(engine.registry().search(&registry, &term, limit, auth.as_ref())?)).await
    }

    /// Every tag of `r`'s repository in its registry (`pull --all-tags`), in its order.
    pub async fn remote_tags(&self, r: ImageRef, auth: Option<AuthConfig>) -> Result<Vec<String>, EngineError> {
        let engine = self.clone();
        blocking(move || Ok(engine.registry().tags(&r, auth.as_ref())?))
            .await
            .map_err(EngineError::of_registry_transfer)
    }

    /// Checks credentials against a registry (`host[:port]`, `docker.io` for Docker Hub);
    /// returns the identity (refresh) token a token server gave, if any.
    pub async fn login(&self, registry: String, auth: AuthConfig) -> Result<Option<String>, EngineError> {
        let engine = self.clone();
        blocking(move || Ok(engine.registry().login(&registry, &auth)?)).await
    }

    fn push_blocking(&self, req: PushRequest, events: &UnboundedSender<PullEvent>) -> Result<Vec<Pushed>, EngineError> {
        let r = &req.reference;
        let repo = ImageRef { tag: None, digest: None, ..r.clone() };
        let tags: Vec<(String, ImageRecord)> = match &r.tag {
            Some(t) => vec![(t.clone(), self.find_image(&r.to_string()).map_err(|_| no_such_tag(&r.familiar()))?)],
            None => {
                let prefix = format!("{}:", repo);
                let mut found = Vec::new();
                for (key, id) in self.inner.db.list::<String>(Table::Tags)? {
                    let Some(tag) = key.strip_prefix(&prefix) else { continue };
                    if tag.contains(['@', '/']) {
                        continue;
                    }
                    if let Some(rec) = self.inner.db.get::<ImageRecord>(Table::Images, &id)? {
                        found.push((tag.to_string(), rec));
                    }
                }
                if found.is_empty() {
                    return Err(no_such_tag(&repo.familiar_name()));
                }
                found.sort_by(|a, b| a.0.cmp(&b.0));
                found
            }
        };
        let send = |ev: PullEvent| {
            let _ = events.send(ev);
        };
        send(PullEvent::Status(format!("The push refers to repository [{}]", repo.familiar_name())));
        let auth = req.auth.as_ref();
        let ep = self.registry().push_endpoint(&repo, auth)?;
        // The blobs must stay while they are read: removals wait for the push.
        let _gc = crate::sync::read(&self.inner.gc_lock);
        let sources = self.blob_sources(&repo)?;
        let mut out = Vec::new();
        let mut replaced = crate::gc::Stored::default();
        for (tag, rec) in tags {
            let rec = self.compress_local_layers(rec, &mut replaced)?;
            let (manifest, raw, media_type) = self.push_manifest(&rec)?;
            // Docker lists the top layer first.
            let mut jobs: VecDeque<BlobJob> = manifest
                .layers
                .iter()
                .zip(rec.diff_ids.iter())
                .rev()
                .map(|(d, diff)| BlobJob { desc: d.clone(), id: Some(diff.short().to_string()) })
                .collect();
            for j in &jobs {
                if let Some(id) = &j.id {
                    send(progress(id, "Preparing", None));
                }
            }
            jobs.push_back(BlobJob { desc: manifest.config.clone(), id: None });
            self.push_blobs(&repo, &ep, jobs, &sources, &req, events)?;
            let digest = self.registry().put_manifest(&repo, &ep, &tag, &media_type, &raw, auth)?;
            send(PullEvent::Status(format!("{tag}: digest: {digest} size: {}", raw.len())));
            let pushed = Pushed { tag: tag.clone(), digest: digest.clone(), size: raw.len() as u64 };
            // What the registry now holds is a RepoDigest of the image, as after a pull.
            let digest_ref = repo.with_digest(digest);
            self.write_db(|tx| tx.put(Table::Tags, &digest_ref.to_string(), &rec.id.to_string()))?;
            out.push(pushed);
        }
        drop(_gc);
        // The uncompressed blobs the compressed ones replaced go, unless an image recorded
        // meanwhile still names them.
        if let Err(e) = self.discard_unreferenced(&replaced) {
            log::warn!("push: removing the uncompressed layer blobs: {e}");
        }
        Ok(out)
    }

    /// Layers this daemon made (build steps, commits, imports) are stored uncompressed; the
    /// first push of one compresses it, as gzip on every core, and every image naming the
    /// uncompressed blob names the compressed one from then on, so it is compressed once. The
    /// replaced blobs are added to `replaced`. An image with a stored manifest is pushed with
    /// it as it is.
    fn compress_local_layers(
        &self,
        rec: ImageRecord,
        replaced: &mut crate::gc::Stored,
    ) -> Result<ImageRecord, EngineError> {
        if rec.manifest_digest.as_ref().is_some_and(|d| self.inner.content.contains(d)) {
            return Ok(rec);
        }
        let mut swaps: HashMap<Digest, Descriptor> = HashMap::new();
        for layer in &rec.layers {
            let gzip_type = match layer.media_type.as_str() {
                oci::MEDIA_OCI_LAYER => oci::MEDIA_OCI_LAYER_GZIP,
                "application/vnd.docker.image.rootfs.diff.tar" => oci::MEDIA_DOCKER_LAYER_GZIP,
                _ => continue,
            };
            if swaps.contains_key(&layer.digest) {
                continue;
            }
            let t0 = Instant::now();
            let mut input = self.inner.content.open_blob(&layer.digest)?;
            let mut gz = crate::pgzip::ParallelGz::new(self.inner.content.writer(None, None)?);
            let failed = |e| EngineError::io(format!("compress layer {}", layer.digest), e);
            // What is compressed is checked against the plain blob's name on the way, so a
            // damaged blob fails the push instead of reaching the registry.
            let mut hash = wharf_types::Sha256Writer::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = match std::io::Read::read(&mut input, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(failed(e)),
                };
                let chunk = buf.get(..n).unwrap_or_default();
                hash.update(chunk);
                std::io::Write::write_all(&mut gz, chunk).map_err(failed)?;
            }
            let (read, _) = hash.finish();
            if read != layer.digest {
                return Err(EngineError::Internal(format!(
                    "push: the stored layer {} reads as {read}: it is damaged; remove the image and build it again",
                    layer.digest
                )));
            }
            let writer = gz.finish().map_err(failed)?;
            let digest = writer.commit()?;
            let size = self.inner.content.size(&digest)?;
            log::debug!("push: layer {} compressed to {digest} ({size} bytes) in {:?}", layer.digest, t0.elapsed());
            swaps.insert(
                layer.digest.clone(),
                Descriptor { media_type: gzip_type.to_string(), digest, size, ..layer.clone() },
            );
        }
        if swaps.is_empty() {
            return Ok(rec);
        }
        let swap = |img: &mut ImageRecord| {
            let mut changed = false;
            for l in img.layers.iter_mut() {
                if let Some(new) = swaps.get(&l.digest) {
                    *l = new.clone();
                    changed = true;
                }
            }
            changed
        };
        self.write_db(|tx| {
            for (key, mut img) in tx.list::<ImageRecord>(Table::Images)? {
                if swap(&mut img) {
                    tx.put(Table::Images, &key, &img)?;
                }
            }
            Ok::<_, EngineError>(())
        })?;
        replaced.blobs.extend(swaps.keys().cloned());
        let mut rec = rec;
        swap(&mut rec);
        Ok(rec)
    }

    /// The manifest to push for an image: the one it was pulled with when stored, else one
    /// rebuilt from the record's layer descriptors and the config.
    fn push_manifest(&self, rec: &ImageRecord) -> Result<(Manifest, Vec<u8>, String), EngineError> {
        if let Some(d) = &rec.manifest_digest {
            if self.inner.content.contains(d) {
                let raw = self.inner.content.read(d, oci::MAX_MANIFEST_SIZE)?;
                if let Ok(m) = serde_json::from_slice::<Manifest>(&raw) {
                    let mt = m.media_type.clone().unwrap_or_else(|| oci::MEDIA_OCI_MANIFEST.to_string());
                    return Ok((m, raw, mt));
                }
            }
        }
        if rec.layers.len() != rec.diff_ids.len() {
            return Err(EngineError::Internal(format!(
                "image {} has {} layers but {} layer blobs recorded",
                rec.id,
                rec.diff_ids.len(),
                rec.layers.len()
            )));
        }
        let docker = rec.layers.iter().all(|l| l.media_type.starts_with("application/vnd.docker."));
        let (media_type, config_type) = if docker {
            (oci::MEDIA_DOCKER_MANIFEST, oci::MEDIA_DOCKER_CONFIG)
        } else {
            (oci::MEDIA_OCI_MANIFEST, oci::MEDIA_OCI_CONFIG)
        };
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media_type.to_string()),
            config: Descriptor {
                media_type: config_type.to_string(),
                digest: rec.id.clone(),
                size: self.inner.content.size(&rec.id)?,
                urls: Vec::new(),
                annotations: Default::default(),
                platform: None,
            },
            layers: rec.layers.clone(),
            annotations: Default::default(),
        };
        let raw = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| EngineError::Internal(format!("manifest of image {}: {e}", rec.id)))?;
        Ok((manifest, raw, media_type.to_string()))
    }

    /// For each blob, the other repositories of the same registry that an image holding it
    /// was pulled from or pushed to: candidates for a cross-repository mount.
    fn blob_sources(&self, repo: &ImageRef) -> Result<HashMap<Digest, BTreeSet<String>>, EngineError> {
        let mut repos_of_image: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (key, id) in self.inner.db.list::<String>(Table::Tags)? {
            if let Ok(r) = ImageRef::parse_any(&key) {
                if r.digest.is_some() && r.registry == repo.registry && r.repository != repo.repository {
                    repos_of_image.entry(id).or_default().insert(r.repository);
                }
            }
        }
        let mut out: HashMap<Digest, BTreeSet<String>> = HashMap::new();
        for (id, img) in self.inner.db.list::<ImageRecord>(Table::Images)? {
            let Some(repos) = repos_of_image.get(&id) else { continue };
            for l in &img.layers {
                out.entry(l.digest.clone()).or_default().extend(repos.iter().cloned());
            }
        }
        Ok(out)
    }

    fn push_blobs(
        &self,
        repo: &ImageRef,
        ep: &Endpoint,
        jobs: VecDeque<BlobJob>,
        sources: &HashMap<Digest, BTreeSet<String>>,
        req: &PushRequest,
        events: &UnboundedSender<PullEvent>,
    ) -> Result<(), EngineError> {
        let workers = self.registry_settings().max_concurrent_uploads.max(1).min(jobs.len().max(1));
        for j in jobs.iter().skip(workers) {
            if let Some(id) = &j.id {
                let _ = events.send(progress(id, "Waiting", None));
            }
        }
        let queue = Mutex::new(jobs);
        let failures: Mutex<Vec<EngineError>> = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    if !crate::sync::lock(&failures).is_empty() {
                        return;
                    }
                    let Some(job) = crate::sync::lock(&queue).pop_front() else { return };
                    if let Err(e) = self.push_blob(repo, ep, &job, sources, req, events) {
                        {
                            let mut f = crate::sync::lock(&failures);
                            f.push(e);
                        }
                    }
                });
            }
        });
        let mut failures = failures.into_inner().map_err(|_| EngineError::Internal("push worker panicked".into()))?;
        // The others failed alongside (or because of) the first: it names the cause.
        match failures.is_empty() {
            true => Ok(()),
            false => Err(failures.remove(0)),
        }
    }

    fn push_blob(
        &self,
        repo: &ImageRef,
        ep: &Endpoint,
        job: &BlobJob,
        sources: &HashMap<Digest, BTreeSet<String>>,
        req: &PushRequest,
        events: &UnboundedSender<PullEvent>,
    ) -> Result<(), EngineError> {
        let registry = &self.registry();
        let auth = req.auth.as_ref();
        let d = &job.desc.digest;
        let say = |status: &str| {
            if let Some(id) = &job.id {
                let _ = events.send(progress(id, status, None));
            }
        };
        if registry.blob_exists(repo, ep, d, auth)? {
            say("Layer already exists");
            return Ok(());
        }
        let mut session = None;
        for from in sources.get(d).into_iter().flatten() {
            match registry.mount_blob(repo, ep, d, from, auth) {
                Ok(Mount::Mounted) => {
                    say(&format!("Mounted from {from}"));
                    return Ok(());
                }
                Ok(Mount::Upload(url)) => {
                    session = Some(url);
                    break;
                }
                Err(e) => log::debug!("mount {d} from {from}: {e}"),
            }
        }
        if !self.inner.content.contains(d) {
            return Err(EngineError::NotFound(format!(
                "push {}: blob {d} is not stored locally and the registry does not have it",
                repo.familiar_name()
            )));
        }
        let session = match session {
            Some(s) => s,
            None => registry.start_upload(repo, ep, auth)?,
        };
        let content = self.inner.content.clone();
        let digest = d.clone();
        let open = move || -> std::io::Result<Box<dyn std::io::Read + Send>> {
            content
                .open_blob(&digest)
                .map(|f| Box::new(f) as Box<dyn std::io::Read + Send>)
                .map_err(std::io::Error::other)
        };
        let total = job.desc.size;
        let reporter: wharf_distribution::UploadProgress = match &job.id {
            Some(id) => {
                let id = id.clone();
                let events = events.clone();
                let last = Mutex::new(Instant::now() - Duration::from_secs(1));
                Arc::new(move |sent: u64| {
                    let due = {
                        let mut l = crate::sync::lock(&last);
                        let due = l.elapsed() > Duration::from_millis(100) || sent == total;
                        if due {
                            *l = Instant::now();
                        }
                        due
                    };
                    if due {
                        let _ = events.send(progress(&id, "Pushing", Some((sent, total))));
                    }
                })
            }
            None => Arc::new(|_| {}),
        };
        registry.upload_blob(repo, ep, session, &job.desc, &open, req.chunk_size, reporter, auth)?;
        self.metrics().pushed(job.desc.size);
        say("Pushed");
        Ok(())
    }
}

fn progress(id: &str, status: &str, bytes: Option<(u64, u64)>) -> PullEvent {
    PullEvent::Progress {
        id: id.to_string(),
        status: status.to_string(),
        current: bytes.map(|b| b.0),
        total: bytes.map(|b| b.1),
    }
}

fn no_such_tag(name: &str) -> EngineError {
    EngineError::NotFound(format!("An image does not exist locally with the tag: {name}"))
}
