//! The ImageService over the engine's one image store: what `docker pull` stored is listed
//! here, and what PullImage stores `docker images` lists.

use wharf_engine::{AuthConfig, ImageSummary, PullRequest};
use wharf_types::ImageRef;

use crate::grpc::{Code, Status};
use crate::proto::{self, ImageSpec};
use crate::Cri;

fn none_if_empty(s: &str) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s.to_string())
    }
}

impl Cri {
    fn cri_image(&self, s: &ImageSummary) -> proto::Image {
        let id = s.record.id.to_string();
        let user = s.config.config.as_ref().and_then(|c| c.user.clone()).unwrap_or_default();
        // The image's user as kubelet reads it: a uid when numeric (`1000` or `1000:1000`),
        // else a name.
        let user = user.split(':').next().unwrap_or_default().to_string();
        let (uid, username) = match user.parse::<i64>() {
            Ok(n) => (Some(proto::Int64Value { value: n }), String::new()),
            Err(_) => (None, user),
        };
        let repo_tags: Vec<String> = s.repo_tags.iter().map(|r| r.to_string()).collect();
        proto::Image {
            pinned: repo_tags.iter().any(|t| *t == crate::pause::reference()),
            spec: Some(ImageSpec { image: id.clone(), ..Default::default() }),
            id,
            repo_tags,
            repo_digests: s.repo_digests.iter().map(|r| r.to_string()).collect(),
            size: s.record.size,
            uid,
            username,
        }
    }

    /// The image a spec names, if present: by reference, id or id prefix, as the engine finds it.
    fn find_summary(&self, spec: &ImageSpec) -> Result<Option<ImageSummary>, Status> {
        if spec.image.is_empty() {
            return Err(Status::invalid("image spec names no image"));
        }
        match self.engine.find_image(&spec.image) {
            Ok(rec) => Ok(Some(self.engine.image_summary(rec)?)),
            Err(e) if e.kind() == wharf_types::ErrorKind::NotFound => Ok(None),
            // A name that is no reference is simply not an image here.
            Err(e) if e.kind() == wharf_types::ErrorKind::InvalidArgument => Ok(None),
            Err(e) => Err(Status::from(e)),
        }
    }

    pub(crate) async fn list_images(&self, r: proto::ListImagesRequest) -> Result<proto::ListImagesResponse, Status> {
        let wanted = r.filter.and_then(|f| f.image).filter(|s| !s.image.is_empty());
        let images = match wanted {
            Some(spec) => self.find_summary(&spec)?.into_iter().collect(),
            None => self.engine.list_images()?,
        };
        Ok(proto::ListImagesResponse { images: images.iter().map(|s| self.cri_image(s)).collect() })
    }

    pub(crate) async fn image_status(&self, r: proto::ImageRequest) -> Result<proto::ImageStatusResponse, Status> {
        let spec = r.image.unwrap_or_default();
        // An image that is not here is an empty answer, not an error (kubelet pulls then).
        let Some(s) = self.find_summary(&spec)? else {
            return Ok(proto::ImageStatusResponse { image: None, info: proto::Map::new() });
        };
        let mut info = proto::Map::new();
        if r.verbose {
            let cfg = serde_json::to_value(&s.config).unwrap_or_default();
            info.insert("info".into(), serde_json::json!({ "imageSpec": cfg }).to_string());
        }
        Ok(proto::ImageStatusResponse { image: Some(self.cri_image(&s)), info })
    }

    pub(crate) async fn pull_image(&self, r: proto::PullImageRequest) -> Result<proto::PullImageResponse, Status> {
        let spec = r.image.unwrap_or_default();
        if spec.image.is_empty() {
            return Err(Status::invalid("PullImage: no image"));
        }
        let reference = ImageRef::parse(&spec.image)
            .map_err(|e| Status::invalid(format!("invalid image reference \"{}\": {e}", spec.image)))?;
        let auth = r.auth.map(|a| AuthConfig {
            username: none_if_empty(&a.username),
            password: none_if_empty(&a.password),
            auth: none_if_empty(&a.auth),
            serveraddress: none_if_empty(&a.server_address),
            identitytoken: none_if_empty(&a.identity_token),
            registrytoken: none_if_empty(&a.registry_token),
            ..Default::default()
        });
        // Progress goes nowhere: the CRI's pull is one answer at the end.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let result = self.engine.pull(PullRequest { reference, platform: None, auth }, tx).await;
        drain.abort();
        let rec = result.map_err(|e| {
            let s = Status::from(e);
            // kubelet shows this as ErrImagePull with the message; the code is containerd's.
            Status::new(
                if s.code == Code::Internal { Code::Unknown } else { s.code },
                format!("failed to pull image \"{}\": {}", spec.image, s.message),
            )
        })?;
        Ok(proto::PullImageResponse { image_ref: rec.id.to_string() })
    }

    pub(crate) async fn remove_image(&self, r: proto::ImageRequest) -> Result<proto::Empty, Status> {
        let spec = r.image.unwrap_or_default();
        // Removing what is gone is no error.
        let Some(s) = self.find_summary(&spec)? else { return Ok(proto::Empty {}) };
        // Every name of it goes, as containerd removes the image whatever it is called; one
        // that a container still uses stays, with the engine's reason.
        match self.engine.remove_image(&s.record.id.to_string(), true).await {
            Ok(_) => Ok(proto::Empty {}),
            Err(e) if e.kind() == wharf_types::ErrorKind::NotFound => Ok(proto::Empty {}),
            Err(e) => Err(Status::from(e)),
        }
    }

    pub(crate) async fn image_fs_info(&self) -> Result<proto::ImageFsInfoResponse, Status> {
        let du = self.engine.disk_usage().await?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        let mountpoint = self.engine.config().data_root.join("snapshots").display().to_string();
        let layers = self.engine.config().data_root.join("snapshots").join("layers");
        let inodes = tokio::task::spawn_blocking(move || count_inodes(&layers)).await.unwrap_or(0);
        let usage = proto::FilesystemUsage {
            timestamp: now,
            fs_id: Some(proto::FilesystemIdentifier { mountpoint }),
            used_bytes: Some(proto::UInt64Value { value: du.layers_size }),
            inodes_used: Some(proto::UInt64Value { value: inodes }),
        };
        Ok(proto::ImageFsInfoResponse { image_filesystems: vec![usage.clone()], container_filesystems: vec![usage] })
    }
}

/// Entries below `dir` (not following symlinks), for ImageFsInfo's inode count.
fn count_inodes(dir: &std::path::Path) -> u64 {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            n += 1;
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    n
}
