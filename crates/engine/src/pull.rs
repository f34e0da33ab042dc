//! Pulling an image: resolve the manifest, fetch the config, then download, verify and unpack
//! the layers in parallel, streaming (each layer is hashed, stored and unpacked in one pass;
//! `transfer.rs` shares a layer between concurrent pulls and resumes broken downloads).

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::mpsc::UnboundedSender;
use wharf_distribution::{AuthConfig, Endpoint};
use wharf_metadata::Table;
use wharf_types::digest::chain_ids;
use wharf_types::oci::{Compression, Descriptor, ImageConfig, Platform};
use wharf_types::{Digest, ImageRef};

use crate::images::ImageRecord;
use crate::{blocking, Engine, EngineError};

/// Image configs are small; anything this large is not one.
const MAX_CONFIG_SIZE: u64 = 16 << 20;

pub struct PullRequest {
    pub reference: ImageRef,
    pub platform: Option<Platform>,
    pub auth: Option<AuthConfig>,
}

/// Progress of a pull, in the shape of Docker's JSON progress messages.
#[derive(Debug, Clone)]
pub enum PullEvent {
    /// A line without an id (`Digest: ...`, `Status: ...`).
    Status(String),
    /// A line about one layer (or, for "Pulling from", the tag).
    Progress { id: String, status: String, current: Option<u64>, total: Option<u64> },
}

pub(crate) struct Events(UnboundedSender<PullEvent>);

impl Events {
    fn status(&self, s: String) {
        let _ = self.0.send(PullEvent::Status(s));
    }
    /// Whether the pull's client went away (the API drops the receiver then).
    pub(crate) fn gone(&self) -> bool {
        self.0.is_closed()
    }
    pub(crate) fn layer(&self, id: &str, status: &str) {
        let _ = self.0.send(PullEvent::Progress {
            id: id.to_string(),
            status: status.to_string(),
            current: None,
            total: None,
        });
    }
    pub(crate) fn progress(&self, id: &str, status: &str, current: u64, total: u64) {
        let _ = self.0.send(PullEvent::Progress {
            id: id.to_string(),
            status: status.to_string(),
            current: Some(current),
            total: Some(total),
        });
    }
}

pub(crate) struct LayerJob {
    pub desc: Descriptor,
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub compression: Compression,
}

impl Engine {
    /// Pulls `req.reference` and records it; progress goes to `events` as it happens.
    pub async fn pull(&self, req: PullRequest, events: UnboundedSender<PullEvent>) -> Result<ImageRecord, EngineError> {
        let engine = self.clone();
        let reference = req.reference.clone();
        let rec = blocking(move || engine.pull_blocking(req, Events(events))).await;
        self.metrics().pull_done(rec.is_ok());
        let rec = rec.map_err(EngineError::of_registry_transfer)?;
        self.image_event("pull", &reference.familiar(), &reference.familiar_name());
        Ok(rec)
    }

    fn pull_blocking(&self, req: PullRequest, events: Events) -> Result<ImageRecord, EngineError> {
        let r = &req.reference;
        let auth = req.auth.as_ref();
        let platform = req.platform.clone().unwrap_or_else(Platform::host);
        let label = r.tag.clone().unwrap_or_else(|| r.digest.as_ref().map(|d| d.to_string()).unwrap_or_default());
        let familiar_repo = r.familiar_name();
        let repo_path = familiar_repo.strip_prefix(&format!("{}/", r.registry)).unwrap_or(&familiar_repo).to_string();
        events.layer(&label, &format!("Pulling from {repo_path}"));

        let resolved = self.registry().resolve(r, &platform, auth)?;
        let manifest = &resolved.manifest;

        // Shared lock from the first blob written: garbage collection waits until this pull has
        // recorded its image (a sweep would otherwise take the config or a layer meanwhile).
        let _gc = crate::sync::read(&self.inner.gc_lock);
        // The config: small, verified by the fetch, kept in the content store.
        let config_raw = if self.inner.content.contains(&manifest.config.digest) {
            self.inner.content.read(&manifest.config.digest, MAX_CONFIG_SIZE)?
        } else {
            let raw = self.registry().fetch_blob(r, &resolved.endpoint, &manifest.config, MAX_CONFIG_SIZE, auth)?;
            let stored = self.inner.content.put(&raw)?;
            if stored != manifest.config.digest {
                return Err(EngineError::Invalid(format!(
                    "pull {r}: config blob digest {stored} does not match the manifest's {}",
                    manifest.config.digest
                )));
            }
            raw
        };
        let config: ImageConfig = serde_json::from_slice(&config_raw)
            .map_err(|e| EngineError::Invalid(format!("pull {r}: image config is not valid: {e}")))?;
        let diff_ids = config.rootfs.diff_ids.clone();
        if diff_ids.len() != manifest.layers.len() {
            return Err(EngineError::Invalid(format!(
                "pull {r}: the manifest lists {} layers but the image config has {} diff ids",
                manifest.layers.len(),
                diff_ids.len()
            )));
        }
        let chains = chain_ids(&diff_ids);
        let mut jobs = VecDeque::new();
        for ((desc, diff_id), chain_id) in manifest.layers.iter().zip(&diff_ids).zip(&chains) {
            let compression = Compression::from_media_type(&desc.media_type).ok_or_else(|| {
                EngineError::Invalid(format!("pull {r}: unsupported layer media type {:?}", desc.media_type))
            })?;
            jobs.push_back(LayerJob {
                desc: desc.clone(),
                chain_id: chain_id.clone(),
                diff_id: diff_id.clone(),
                compression,
            });
        }

        let mut fresh = false;
        jobs.retain(|job| {
            let present = self.inner.snapshots.has_layer(&job.chain_id);
            events.layer(job.desc.digest.short(), if present { "Already exists" } else { "Pulling fs layer" });
            fresh |= !present;
            !present
        });
        self.fetch_layers(r, &resolved.endpoint, jobs, auth, &events)?;
        if events.gone() {
            return Err(EngineError::Internal(format!("pull {r}: cancelled: the client went away")));
        }

        self.inner.content.put(&resolved.manifest_raw)?;
        if let Some((_, raw)) = &resolved.index {
            self.inner.content.put(raw)?;
        }
        let id = manifest.config.digest.clone();
        let record = self.new_image_record(
            id.clone(),
            &config,
            manifest.layers.clone(),
            Some(resolved.manifest_digest.clone()),
        )?;
        let digest_ref = r.with_digest(resolved.digest.clone());
        let previous: Option<String> = match &r.tag {
            Some(_) => self.inner.db.get(Table::Tags, &r.to_string())?,
            None => None,
        };
        self.write_db(|tx| {
            tx.put(Table::Images, &id.to_string(), &record)?;
            if r.tag.is_some() {
                tx.put(Table::Tags, &ImageRef { digest: None, ..r.clone() }.to_string(), &id.to_string())?;
            }
            tx.put(Table::Tags, &digest_ref.to_string(), &id.to_string())?;
            Ok::<_, EngineError>(())
        })?;
        events.status(format!("Digest: {}", resolved.digest));
        let up_to_date = !fresh && previous.as_deref() == Some(id.to_string().as_str());
        events.status(if up_to_date {
            format!("Status: Image is up to date for {}", r.familiar())
        } else {
            format!("Status: Downloaded newer image for {}", r.familiar())
        });
        Ok(record)
    }

    /// Downloads and unpacks `jobs` with up to `max_concurrent_downloads` threads. The first
    /// failure stops the others from taking new layers; every failure is reported.
    fn fetch_layers(
        &self,
        r: &ImageRef,
        ep: &Endpoint,
        jobs: VecDeque<LayerJob>,
        auth: Option<&AuthConfig>,
        events: &Events,
    ) -> Result<(), EngineError> {
        if jobs.is_empty() {
            return Ok(());
        }
        // One reading of the limit, so that a reload in between cannot tell the jobs "Waiting"
        // by one value and start workers by another.
        let max_downloads = self.registry_settings().max_concurrent_downloads.max(1);
        for job in jobs.iter().skip(max_downloads) {
            events.layer(job.desc.digest.short(), "Waiting");
        }
        let queue = Mutex::new(jobs);
        let failures: Mutex<Vec<EngineError>> = Mutex::new(Vec::new());
        let workers = max_downloads.min(crate::sync::lock(&queue).len());
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    if !crate::sync::lock(&failures).is_empty() || events.gone() {
                        return;
                    }
                    let Some(job) = crate::sync::lock(&queue).pop_front() else { return };
                    if let Err(e) = self.fetch_layer(r, ep, &job, auth, events) {
                        {
                            let mut f = crate::sync::lock(&failures);
                            f.push(e);
                        }
                    }
                });
            }
        });
        let mut failures = failures.into_inner().map_err(|_| EngineError::Internal("pull worker panicked".into()))?;
        match failures.len() {
            0 => Ok(()),
            1 => Err(failures.remove(0)),
            _ => {
                let all: Vec<String> = failures.iter().map(|e| e.to_string()).collect();
                Err(EngineError::Invalid(all.join("; ")))
            }
        }
    }
}
