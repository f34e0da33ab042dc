//! Disk usage and image pruning: `system df` and `image prune`.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use wharf_metadata::Table;
use wharf_types::{Digest, ImageRef};

use crate::images::{ImageDeleted, ImageRecord};
use crate::lifecycle::dir_size;
use crate::{blocking, ContainerRecord, Engine, EngineError, VolumeRecord};

/// What `image prune` removed.
#[derive(Debug, Clone, Default)]
pub struct ImagePruneReport {
    pub deleted: Vec<ImageDeleted>,
    pub space_reclaimed: u64,
}

/// One image in `system df`.
#[derive(Debug, Clone)]
pub struct ImageUsage {
    pub id: Digest,
    pub created: Option<String>,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub size: u64,
    /// Bytes of layers this image shares with at least one other image.
    pub shared_size: u64,
    pub containers: u64,
}

/// One container in `system df`.
#[derive(Debug, Clone)]
pub struct ContainerUsage {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: Digest,
    pub command: String,
    pub created: String,
    pub state: String,
    pub size_rw: u64,
    pub size_root_fs: u64,
}

/// One volume in `system df`.
#[derive(Debug, Clone)]
pub struct VolumeUsage {
    pub volume: VolumeRecord,
    pub size: u64,
    pub ref_count: u64,
}

/// `system df`'s answer.
#[derive(Debug, Clone, Default)]
pub struct DiskUsage {
    /// Bytes of every unpacked layer, each counted once.
    pub layers_size: u64,
    pub images: Vec<ImageUsage>,
    pub containers: Vec<ContainerUsage>,
    pub volumes: Vec<VolumeUsage>,
}

/// `image prune`'s filters, parsed.
struct PruneFilters {
    dangling_only: bool,
    until: Option<SystemTime>,
    labels: Vec<String>,
    not_labels: Vec<String>,
}

fn parse_prune_filters(filters: &BTreeMap<String, Vec<String>>) -> Result<PruneFilters, EngineError> {
    let now = SystemTime::now();
    let mut f = PruneFilters { dangling_only: true, until: None, labels: Vec::new(), not_labels: Vec::new() };
    for (key, values) in filters {
        match key.as_str() {
            "dangling" => {
                for v in values {
                    f.dangling_only = match v.as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(EngineError::Invalid(format!("Invalid filter 'dangling={v}'"))),
                    };
                }
            }
            "until" => {
                for v in values {
                    let t = wharf_types::time::parse_time_arg(v, now)
                        .ok_or_else(|| EngineError::Invalid(format!("Invalid filter 'until={v}'")))?;
                    f.until = Some(f.until.map_or(t, |u: SystemTime| u.min(t)));
                }
            }
            "label" => f.labels.extend(values.iter().cloned()),
            "label!" => f.not_labels.extend(values.iter().cloned()),
            other => return Err(EngineError::Invalid(format!("Invalid filter '{other}'"))),
        }
    }
    Ok(f)
}

impl Engine {
    /// Removes the images no container uses: only untagged ones unless the filters say
    /// `dangling=false`; `until` and `label`/`label!` narrow further. One exclusive gc lock
    /// for the whole operation, then one sweep of the stores.
    pub async fn prune_images(&self, filters: &BTreeMap<String, Vec<String>>) -> Result<ImagePruneReport, EngineError> {
        let f = parse_prune_filters(filters)?;
        let engine = self.clone();
        let report = blocking(move || engine.prune_images_blocking(&f)).await?;
        for d in &report.deleted {
            match d {
                ImageDeleted::Untagged(r) => self.image_event("untag", r, r),
                ImageDeleted::Deleted(id) => self.image_event("delete", id, id),
            }
        }
        self.publish_event("image", "prune", "", {
            let mut attrs = BTreeMap::new();
            attrs.insert("reclaimed".to_string(), report.space_reclaimed.to_string());
            attrs
        });
        Ok(report)
    }

    fn prune_images_blocking(&self, f: &PruneFilters) -> Result<ImagePruneReport, EngineError> {
        let _gc = crate::sync::write(&self.inner.gc_lock);
        let used: std::collections::HashSet<Digest> =
            self.all_containers().iter().map(|c| c.image_id.clone()).collect();
        let refs = self.names_by_image()?;
        let mut report = ImagePruneReport::default();
        // Pruning also drops the partial downloads kept for resuming pulls (none is in use:
        // pulls hold the gc lock).
        let partials = self.inner.content.remove_partials(std::time::Duration::ZERO)?;
        report.space_reclaimed = partials;
        let mut doomed = Vec::new();
        for (_, img) in self.inner.db.list::<ImageRecord>(Table::Images)? {
            if used.contains(&img.id) {
                continue;
            }
            let names = refs.get(&img.id).cloned().unwrap_or_default();
            if f.dangling_only && names.iter().any(|r| r.digest.is_none()) {
                continue;
            }
            if let Some(until) = f.until {
                let created = img.created.as_deref().and_then(wharf_types::time::parse_rfc3339);
                if created.is_none_or(|c| c >= until) {
                    continue;
                }
            }
            if !f.labels.is_empty() || !f.not_labels.is_empty() {
                let labels = self.image_config(&img)?.config.and_then(|c| c.labels).unwrap_or_default();
                let has = |spec: &String| match spec.split_once('=') {
                    Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
                    None => labels.contains_key(spec.as_str()),
                };
                if !f.labels.iter().all(has) || f.not_labels.iter().any(has) {
                    continue;
                }
            }
            doomed.push((img, names));
        }
        if doomed.is_empty() {
            return Ok(report);
        }
        self.write_db(|tx| {
            for (img, names) in &doomed {
                for r in names {
                    tx.delete(Table::Tags, &r.to_string())?;
                }
                tx.delete(Table::Images, &img.id.to_string())?;
            }
            Ok::<_, EngineError>(())
        })?;
        for (img, names) in doomed {
            report.deleted.extend(names.iter().map(|r| ImageDeleted::Untagged(r.familiar())));
            report.deleted.push(ImageDeleted::Deleted(img.id.to_string()));
        }
        report.space_reclaimed = self.sweep_unreferenced()? + partials;
        Ok(report)
    }

    /// Every name (tags and digest references) by the image it points at.
    fn names_by_image(&self) -> Result<HashMap<Digest, Vec<ImageRef>>, EngineError> {
        let mut out: HashMap<Digest, Vec<ImageRef>> = HashMap::new();
        for (key, value) in self.inner.db.list::<String>(Table::Tags)? {
            if let (Ok(id), Ok(r)) = (value.parse::<Digest>(), ImageRef::parse_any(&key)) {
                out.entry(id).or_default().push(r);
            }
        }
        Ok(out)
    }

    /// What images, containers and volumes take on disk, as `GET /system/df` reports it.
    /// A container's `SizeRw` (its upper dir) and `SizeRootFs` (that plus its image), as
    /// `inspect --size` and `ps --size` show them. Walks the upper dir: call it from a
    /// blocking context.
    pub fn container_sizes(&self, rec: &ContainerRecord) -> (u64, u64) {
        let rw = dir_size(&self.inner.snapshots.container_dirs(&rec.id).upper);
        let image = self.find_image(&rec.image_id.to_string()).map(|i| i.size).unwrap_or(0);
        (rw, image + rw)
    }

    pub async fn disk_usage(&self) -> Result<DiskUsage, EngineError> {
        let engine = self.clone();
        blocking(move || engine.disk_usage_blocking()).await
    }

    fn disk_usage_blocking(&self) -> Result<DiskUsage, EngineError> {
        let images: Vec<ImageRecord> =
            self.inner.db.list::<ImageRecord>(Table::Images)?.into_iter().map(|(_, r)| r).collect();
        let containers = self.all_containers();
        let names = self.names_by_image()?;

        let mut users: HashMap<Digest, u64> = HashMap::new();
        for img in &images {
            for c in &img.chain_ids {
                *users.entry(c.clone()).or_default() += 1;
            }
        }
        let mut layer_sizes: HashMap<Digest, u64> = HashMap::new();
        for chain in self.inner.snapshots.list_layers()? {
            let size = self.inner.snapshots.layer_size(&chain).unwrap_or(0);
            layer_sizes.insert(chain, size);
        }
        let mut usage = DiskUsage { layers_size: layer_sizes.values().sum(), ..Default::default() };

        for img in &images {
            let shared_size = img
                .chain_ids
                .iter()
                .filter(|c| users.get(*c).copied().unwrap_or(0) > 1)
                .map(|c| layer_sizes.get(c).copied().unwrap_or(0))
                .sum();
            let refs = names.get(&img.id).cloned().unwrap_or_default();
            usage.images.push(ImageUsage {
                id: img.id.clone(),
                created: img.created.clone(),
                repo_tags: refs.iter().filter(|r| r.digest.is_none()).map(|r| r.familiar()).collect(),
                repo_digests: refs.iter().filter(|r| r.digest.is_some()).map(|r| r.familiar()).collect(),
                size: img.size,
                shared_size,
                containers: containers.iter().filter(|c| c.image_id == img.id).count() as u64,
            });
        }
        usage.images.sort_by(|a, b| b.created.cmp(&a.created));

        let image_sizes: HashMap<&Digest, u64> = images.iter().map(|i| (&i.id, i.size)).collect();
        for c in &containers {
            let upper = self.inner.snapshots.container_dirs(&c.id).upper;
            let size_rw = dir_size(&upper);
            let base = match image_sizes.get(&c.image_id) {
                Some(s) => *s,
                None => c.chain_ids.iter().map(|ch| layer_sizes.get(ch).copied().unwrap_or(0)).sum(),
            };
            let mut command = vec![c.path.clone()];
            command.extend(c.args.iter().cloned());
            usage.containers.push(ContainerUsage {
                id: c.id.clone(),
                name: c.name.clone(),
                image: c.config.image.clone(),
                image_id: c.image_id.clone(),
                command: command.join(" "),
                created: c.created.clone(),
                state: c.state.status.as_str().to_string(),
                size_rw,
                size_root_fs: base + size_rw,
            });
        }
        usage.containers.sort_by(|a, b| b.created.cmp(&a.created));

        let mut refcounts: HashMap<&str, u64> = HashMap::new();
        for c in &containers {
            for m in c.mounts.iter().filter(|m| m.kind == crate::MountKind::Volume) {
                *refcounts.entry(m.name.as_str()).or_default() += 1;
            }
        }
        for (_, v) in self.inner.db.list::<VolumeRecord>(Table::Volumes)? {
            let size = dir_size(std::path::Path::new(&v.mountpoint));
            let ref_count = refcounts.get(v.name.as_str()).copied().unwrap_or(0);
            usage.volumes.push(VolumeUsage { volume: v, size, ref_count });
        }
        Ok(usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Filter pairs, and the dangling-only answer (None: refused).
    type Case = (&'static [(&'static str, &'static str)], Option<bool>);

    #[test]
    fn prune_filters() {
        let cases: &[Case] = &[
            (&[], Some(true)),
            (&[("dangling", "false")], Some(false)),
            (&[("dangling", "1")], Some(true)),
            (&[("dangling", "maybe")], None),
            (&[("until", "10m"), ("label", "a=b")], Some(true)),
            (&[("until", "never")], None),
            (&[("reference", "x")], None),
        ];
        for (pairs, want) in cases {
            let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (k, v) in *pairs {
                m.entry(k.to_string()).or_default().push(v.to_string());
            }
            let got = parse_prune_filters(&m).ok().map(|f| f.dangling_only);
            assert_eq!(got, *want, "{pairs:?}");
        }
    }
}
