//! `commit`: a container's upper dir becomes a new layer on top of its image. Overlay
//! whiteouts (0/0 character devices, opaque directories) are written back in OCI form, the
//! layer is stored as an uncompressed blob and applied as a snapshot in the same pass, and the new
//! config is the image's with the container's settings and the `--change`s on top.

use std::io::Write;

use wharf_types::oci::{self, History};
use wharf_types::{Digest, ImageRef};

use crate::export::{write_tree_skipping, TreeMode};
use crate::import::{apply_changes, Stored};
use crate::{blocking, ContainerRecord, Engine, EngineError};

/// What `POST /commit` asks for.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    pub container: String,
    pub reference: Option<ImageRef>,
    /// The history entry's comment (`-m`).
    pub comment: Option<String>,
    pub author: Option<String>,
    pub changes: Vec<String>,
    /// Freeze a running container while its upper dir is read (Docker's default).
    pub pause: bool,
}

/// What goes into the new top layer of `CommitImage`.
pub enum TopLayer {
    /// No layer: the image differs from its base by its config only.
    None,
    /// A container's upper dir, as `commit` takes it.
    Container(String),
    /// A layer tar as it is (its entries are checked as any layer's when it is unpacked).
    Tar(Box<dyn std::io::Read + Send>),
    /// The layer `index` of the image `from` (whose layers below it are the base's): a build
    /// step served by `--cache-from`. Nothing is unpacked; the layer is already there.
    OfImage { from: Digest, index: usize },
}

/// An image made by a caller that built its config itself (the Dockerfile builder): `config`
/// is complete (history included) except for the new layer's diff id, which is appended.
pub struct CommitImage {
    pub base: Option<Digest>,
    pub layer: TopLayer,
    pub config: oci::ImageConfig,
}

impl Engine {
    /// Records a new untagged image on top of `base`; returns its id. A new layer's blob is
    /// not fsynced: these are a build's layers, whose snapshots are not synced either, and
    /// whose blobs every reader checks by digest (`BlobWriter::commit_unsynced`).
    pub async fn commit_image(&self, req: CommitImage) -> Result<Digest, EngineError> {
        let engine = self.clone();
        blocking(move || {
            let mut stored = Stored::default();
            let result = engine.commit_image_blocking(req, &mut stored);
            if result.is_err() {
                if let Err(e) = engine.discard_unreferenced(&stored) {
                    log::warn!("commit: cleaning up: {e}");
                }
            }
            result
        })
        .await
    }

    fn commit_image_blocking(&self, req: CommitImage, stored: &mut Stored) -> Result<Digest, EngineError> {
        let started = std::time::Instant::now();
        let _gc = crate::sync::read(&self.inner.gc_lock);
        let (mut layers, base_diff_ids) = match &req.base {
            Some(id) => {
                let base = self.find_image(&id.to_string())?;
                (base.layers.clone(), base.diff_ids.clone())
            }
            None => (Vec::new(), Vec::new()),
        };
        let mut config = req.config;
        let new = match req.layer {
            TopLayer::None => None,
            TopLayer::Container(id) => {
                let rec = self.find_container(&id)?;
                Some(self.container_layer(&rec, &base_diff_ids, false, stored)?)
            }
            TopLayer::Tar(mut tar) => {
                let mut w = self.layer_writer(&base_diff_ids, false)?;
                let written =
                    std::io::copy(&mut tar, &mut w).map(|_| ()).map_err(|e| EngineError::io("write layer blob", e));
                Some(self.finish_layer(w, written, stored)?)
            }
            TopLayer::OfImage { from, index } => {
                let other = self.find_image(&from.to_string())?;
                if other.diff_ids.get(..index) != Some(&base_diff_ids[..]) || index >= other.diff_ids.len() {
                    return Err(EngineError::Invalid(format!(
                        "layer {index} of image {from} does not sit on the layers of the base"
                    )));
                }
                let blob = other.layers.get(index).cloned().ok_or_else(|| {
                    EngineError::Internal(format!("image {from} has no blob recorded for layer {index}"))
                })?;
                Some(crate::import::NewLayer { blob, diff_id: other.diff_ids[index].clone() })
            }
        };
        config.rootfs.diff_ids = base_diff_ids;
        if let Some(layer) = new {
            config.rootfs.diff_ids.push(layer.diff_id.clone());
            layers.push(layer.blob);
        }
        let t_layer = started.elapsed();
        let id = self.record_image(&config, layers, None, req.base.as_ref(), stored)?;
        log::debug!("commit: layer made at {t_layer:?}, image recorded at {:?}", started.elapsed());
        Ok(id)
    }

    /// Commits the container's changes as a new image; returns its id.
    pub async fn commit(&self, req: CommitRequest) -> Result<Digest, EngineError> {
        let rec = self.find_container(&req.container)?;
        let engine = self.clone();
        let container = rec.clone();
        let request = req.clone();
        let id = blocking(move || {
            let mut stored = Stored::default();
            let result = engine.commit_blocking(&container, &request, &mut stored);
            if result.is_err() {
                if let Err(e) = engine.discard_unreferenced(&stored) {
                    log::warn!("commit: cleaning up: {e}");
                }
            }
            result
        })
        .await?;
        self.container_event(&rec, "commit", &[]);
        let name = req.reference.map(|r| r.familiar()).unwrap_or_else(|| id.to_string());
        self.image_event("commit", &id.to_string(), &name);
        Ok(id)
    }

    fn commit_blocking(
        &self,
        rec: &ContainerRecord,
        req: &CommitRequest,
        stored: &mut Stored,
    ) -> Result<Digest, EngineError> {
        let mut config = oci::ContainerConfig::default();
        apply_changes(&mut config, &req.changes)?; // refused changes fail before any work
        let _gc = crate::sync::read(&self.inner.gc_lock);
        let base = self.find_image(&rec.image_id.to_string()).map_err(|_| {
            EngineError::Conflict(format!("the image {} of container {} is gone", rec.image_id, rec.id))
        })?;
        let mut image = self.image_config(&base)?;

        let layer = {
            let _frozen = if req.pause && self.is_running(&rec.id) { self.freeze(&rec.id) } else { None };
            self.container_layer(rec, &base.diff_ids, true, stored)?
        };

        let c = &rec.config;
        let mut cfg = image.config.take().unwrap_or_default();
        cfg.user = Some(c.user.clone()).filter(|u| !u.is_empty());
        cfg.env = Some(c.env.clone()).filter(|e| !e.is_empty());
        cfg.cmd = Some(c.cmd.clone()).filter(|v| !v.is_empty());
        cfg.entrypoint = Some(c.entrypoint.clone()).filter(|v| !v.is_empty());
        cfg.working_dir = Some(c.working_dir.clone()).filter(|w| !w.is_empty());
        cfg.labels = Some(c.labels.clone()).filter(|l| !l.is_empty());
        if c.stop_signal.is_some() {
            cfg.stop_signal = c.stop_signal.clone();
        }
        if let Some(h) = &c.healthcheck {
            cfg.healthcheck = Some(crate::health::to_image(h));
        }
        if !c.exposed_ports.is_empty() {
            let ports = cfg.exposed_ports.get_or_insert_with(Default::default);
            for p in &c.exposed_ports {
                ports.entry(p.clone()).or_insert_with(|| serde_json::json!({}));
            }
        }
        apply_changes(&mut cfg, &req.changes)?;
        let now = wharf_types::time::rfc3339_nanos(std::time::SystemTime::now());
        let created_by =
            std::iter::once(rec.path.clone()).chain(rec.args.iter().cloned()).collect::<Vec<_>>().join(" ");
        image.config = Some(cfg);
        image.created = Some(now.clone());
        image.author = req.author.clone().filter(|a| !a.is_empty());
        image.rootfs.diff_ids.push(layer.diff_id.clone());
        image.history.push(History {
            created: Some(now),
            created_by: Some(created_by),
            author: image.author.clone(),
            comment: req.comment.clone().filter(|c| !c.is_empty()),
            empty_layer: false,
        });
        let mut layers = base.layers.clone();
        layers.push(layer.blob);
        self.record_image(&image, layers, req.reference.as_ref(), Some(&base.id), stored)
    }

    /// The container's upper dir as a new layer on top of `parent_diff_ids`, less what the
    /// runtime made only to mount on; its blob fsynced when `sync`.
    fn container_layer(
        &self,
        rec: &ContainerRecord,
        parent_diff_ids: &[Digest],
        sync: bool,
        stored: &mut Stored,
    ) -> Result<crate::import::NewLayer, EngineError> {
        let upper = self.inner.snapshots.container_dirs(&rec.id).upper;
        let skip = self.runtime_mount_points(rec, &upper);
        let mut w = self.layer_writer(parent_diff_ids, sync)?;
        let written = write_tree_skipping(
            crate::userns::IdShift::new(&mut w, self.unshift_for(rec)),
            &upper,
            TreeMode::OverlayUpper,
            &skip,
        )
        .and_then(|mut shifted| shifted.flush())
        .map_err(|e| EngineError::io(format!("commit of {}: read the container's changes", rec.id), e));
        self.finish_layer(w, written, stored)
    }

    /// What the runtime made in the container's upper dir only to mount something there (the
    /// etc files, /proc, /dev, volume and bind targets): empty files and directories at the
    /// mount destinations of its config.json that no layer below has, with the parents made for
    /// them alone. Docker keeps these in an init layer below the container's; a commit leaves
    /// them out the same way, so an image does not carry empty /etc/hosts files.
    pub(crate) fn runtime_mount_points(
        &self,
        rec: &ContainerRecord,
        upper: &std::path::Path,
    ) -> std::collections::HashSet<String> {
        let mut skip = std::collections::HashSet::new();
        let Ok(raw) = std::fs::read(self.container_dir(&rec.id).join("config.json")) else { return skip };
        let Ok(spec) = serde_json::from_slice::<wharf_runtime::spec::Spec>(&raw) else { return skip };
        let lowers: Vec<std::path::PathBuf> =
            rec.chain_ids.iter().rev().map(|c| self.inner.snapshots.layer_dir(c)).collect();
        let in_lower = |rel: &str| lowers.iter().any(|l| std::fs::symlink_metadata(l.join(rel)).is_ok());
        let mut dests: Vec<String> =
            spec.mounts.iter().map(|m| m.destination.trim_matches('/').to_string()).filter(|d| !d.is_empty()).collect();
        // Deepest first, so a parent is judged after what it holds.
        dests.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
        dests.dedup();
        let mut candidates: Vec<String> = Vec::new();
        for d in dests {
            let mut cur = Some(d.as_str());
            while let Some(p) = cur {
                if !candidates.iter().any(|c| c == p) {
                    candidates.push(p.to_string());
                }
                cur = p.rsplit_once('/').map(|(parent, _)| parent);
            }
        }
        candidates.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
        for rel in candidates {
            let path = upper.join(&rel);
            let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
            let empty = if meta.is_dir() {
                std::fs::read_dir(&path)
                    .map(|mut it| {
                        it.all(|e| {
                            e.is_ok_and(|e| skip.contains(&format!("{rel}/{}", e.file_name().to_string_lossy())))
                        })
                    })
                    .unwrap_or(false)
            } else {
                meta.is_file() && meta.len() == 0
            };
            if empty && !in_lower(&rel) {
                skip.insert(rel);
            }
        }
        skip
    }

    fn is_running(&self, id: &str) -> bool {
        self.find_container(id).map(|r| r.state.running && !r.state.paused).unwrap_or(false)
    }

    /// Freezes the container's cgroup until the guard drops; None (and a commit without
    /// pausing) where there is no freezer.
    fn freeze(&self, id: &str) -> Option<Thaw> {
        let path = self.container_cgroup(id);
        let cg = match wharf_runtime::cgroups::Cgroup::open(&path) {
            Ok(cg) => cg,
            Err(e) => {
                log::info!("commit of {id}: no cgroup to pause ({e}); committing without pausing");
                return None;
            }
        };
        match cg.set_frozen(true) {
            Ok(()) => Some(Thaw { cg }),
            Err(e) => {
                log::info!("commit of {id}: cannot pause ({e}); committing without pausing");
                None
            }
        }
    }
}

/// Thaws a cgroup frozen for a commit.
struct Thaw {
    cg: wharf_runtime::cgroups::Cgroup,
}

impl Drop for Thaw {
    fn drop(&mut self) {
        if let Err(e) = self.cg.set_frozen(false) {
            log::warn!("commit: thaw after the commit: {e}");
        }
    }
}
