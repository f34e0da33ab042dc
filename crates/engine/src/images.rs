//! Local images: records, name resolution, listing, tagging and removal with garbage collection.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use wharf_metadata::Table;
use wharf_types::digest::short_id;
use wharf_types::oci::{Descriptor, ImageConfig};
use wharf_types::{Digest, ImageRef};

use crate::formats::StoredForm;
use crate::{blocking, Engine, EngineError};

/// The stored image record: `ImageRecord` as serde writes it. The API builds its own JSON for
/// `images` and `image inspect` from the fields and the config, so this form is the stored one
/// alone, pinned by `image-record-1.json`; see `formats` for what a change of it takes.
pub(crate) const IMAGES: StoredForm = StoredForm { table: Table::Images, name: "images", current: 1, steps: &[] };

/// A fully qualified reference (`ImageRef`'s `Display`, tag or digest) → the image id, a JSON
/// string; pinned by `tags-1.json`, keys and all (a lookup builds the key the same way).
pub(crate) const TAGS: StoredForm = StoredForm { table: Table::Tags, name: "tags", current: 1, steps: &[] };

/// What the database keeps of an image. The config itself stays in the content store under its
/// digest, which is also the image id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: Digest,
    /// The config's `created`, RFC 3339.
    pub created: Option<String>,
    /// Bytes of the unpacked layers.
    pub size: u64,
    pub diff_ids: Vec<Digest>,
    /// Chain ids of the layers, bottom first: the snapshots a container's rootfs stacks.
    pub chain_ids: Vec<Digest>,
    /// The compressed layer blobs as the manifest listed them (for push and save).
    pub layers: Vec<Descriptor>,
    /// Digest of the image manifest it was pulled with, when it came from a registry.
    pub manifest_digest: Option<Digest>,
    /// When this daemon stored it (RFC 3339), for `images --filter since/before` ordering.
    pub stored_at: String,
    /// The image it was made on top of, by a build step or a commit (Docker's `Parent`): an
    /// untagged image that is another's parent is an intermediate one, hidden from `images`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Digest>,
}

/// An image with the names that point at it, as `images` lists it.
#[derive(Debug, Clone)]
pub struct ImageSummary {
    pub record: ImageRecord,
    pub config: ImageConfig,
    /// Fully qualified tag references.
    pub repo_tags: Vec<ImageRef>,
    /// Fully qualified digest references.
    pub repo_digests: Vec<ImageRef>,
}

/// One line of `rmi`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageDeleted {
    Untagged(String),
    Deleted(String),
}

impl Engine {
    /// A record for an image whose layers are all unpacked: chain ids from the config's diff
    /// ids, size from the snapshots. Pull, load and import/commit all record images this way.
    pub(crate) fn new_image_record(
        &self,
        id: Digest,
        config: &ImageConfig,
        layers: Vec<Descriptor>,
        manifest_digest: Option<Digest>,
    ) -> Result<ImageRecord, EngineError> {
        let (mut layers, mut manifest_digest) = (layers, manifest_digest);
        // The same config under another manifest (busybox with zstd instead of gzip layers):
        // the layers were unpacked already, so the new manifest's blobs were never fetched.
        // The record keeps naming blobs this daemon holds, for push and save.
        if let Some(old) = self.inner.db.get::<ImageRecord>(Table::Images, &id.to_string())? {
            let stored = |ls: &[Descriptor]| ls.iter().all(|l| self.inner.content.contains(&l.digest));
            if !stored(&layers) && stored(&old.layers) {
                layers = old.layers;
                manifest_digest = old.manifest_digest;
            }
        }
        let diff_ids = config.rootfs.diff_ids.clone();
        let chain_ids = wharf_types::digest::chain_ids(&diff_ids);
        let mut size = 0;
        for c in &chain_ids {
            size += self.inner.snapshots.layer_size(c)?;
        }
        Ok(ImageRecord {
            id,
            created: config.created.clone(),
            size,
            diff_ids,
            chain_ids,
            layers,
            manifest_digest,
            stored_at: wharf_types::time::rfc3339_nanos(std::time::SystemTime::now()),
            parent: None,
        })
    }

    /// Finds an image by reference, full id, or unique id prefix, as Docker does.
    pub fn find_image(&self, name: &str) -> Result<ImageRecord, EngineError> {
        self.lookup_image(name)?
            .map(|(rec, _)| rec)
            .ok_or_else(|| EngineError::NotFound(format!("No such image: {name}")))
    }

    /// Like `find_image`, also telling which reference matched (None when matched by id).
    pub(crate) fn lookup_image(&self, name: &str) -> Result<Option<(ImageRecord, Option<ImageRef>)>, EngineError> {
        let db = &self.inner.db;
        if let Ok(d) = name.parse::<Digest>() {
            return Ok(db.get::<ImageRecord>(Table::Images, &d.to_string())?.map(|r| (r, None)));
        }
        if let Ok(r) = ImageRef::parse(name) {
            if let Some(id) = db.get::<String>(Table::Tags, &r.to_string())? {
                if let Some(rec) = db.get::<ImageRecord>(Table::Images, &id)? {
                    return Ok(Some((rec, Some(r))));
                }
            }
        }
        let prefix = name.strip_prefix("sha256:").unwrap_or(name);
        if !prefix.is_empty() && prefix.len() <= 64 && prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            let matches: Vec<ImageRecord> = db
                .list::<ImageRecord>(Table::Images)?
                .into_iter()
                .map(|(_, r)| r)
                .filter(|r| r.id.hex().starts_with(prefix))
                .collect();
            match matches.len() {
                0 => {}
                1 => return Ok(matches.into_iter().next().map(|r| (r, None))),
                _ => return Err(EngineError::Invalid(format!("image id prefix {name:?} is ambiguous"))),
            }
        }
        Ok(None)
    }

    /// The image's config from the content store.
    /// `GraphDriver.Data` as dockerd's overlay2 shows it: the image's layer directories (the
    /// top one as `UpperDir` for an image), and a container's own upper, work and merged
    /// directories over all of them.
    pub fn graph_driver_data(&self, image: &ImageRecord, container: Option<&str>) -> BTreeMap<String, String> {
        let mut layers: Vec<String> =
            image.chain_ids.iter().rev().map(|c| self.inner.snapshots.layer_dir(c).display().to_string()).collect();
        let mut data = BTreeMap::new();
        match container {
            Some(id) => {
                let dirs = self.inner.snapshots.container_dirs(id);
                data.insert("UpperDir".to_string(), dirs.upper.display().to_string());
                data.insert("WorkDir".to_string(), dirs.work.display().to_string());
                data.insert("MergedDir".to_string(), dirs.rootfs.display().to_string());
            }
            None if !layers.is_empty() => {
                let top = layers.remove(0);
                let home = std::path::Path::new(&top).parent().map(|p| p.to_path_buf()).unwrap_or_default();
                data.insert("UpperDir".to_string(), top);
                data.insert("WorkDir".to_string(), home.join("work").display().to_string());
                data.insert("MergedDir".to_string(), home.join("merged").display().to_string());
            }
            None => {}
        }
        if !layers.is_empty() {
            data.insert("LowerDir".to_string(), layers.join(":"));
        }
        data
    }

    pub fn image_config(&self, rec: &ImageRecord) -> Result<ImageConfig, EngineError> {
        let raw = self.image_config_raw(rec)?;
        serde_json::from_slice(&raw).map_err(|e| EngineError::Internal(format!("image config {}: {e}", rec.id)))
    }

    /// The raw config bytes (for `image inspect` fields Docker copies verbatim).
    pub fn image_config_raw(&self, rec: &ImageRecord) -> Result<Vec<u8>, EngineError> {
        // A file read (up to 4 MiB) that create and inspect make from async code.
        let read = || self.inner.content.read(&rec.id, wharf_types::oci::MAX_MANIFEST_SIZE);
        Ok(crate::sync::blocking_section(read)?)
    }

    pub(crate) fn refs_of(&self, id: &Digest) -> Result<(Vec<ImageRef>, Vec<ImageRef>), EngineError> {
        let mut tags = Vec::new();
        let mut digests = Vec::new();
        for (key, value) in self.inner.db.list::<String>(Table::Tags)? {
            if value != id.to_string() {
                continue;
            }
            if let Ok(r) = ImageRef::parse_any(&key) {
                if r.digest.is_some() {
                    digests.push(r);
                } else {
                    tags.push(r);
                }
            }
        }
        Ok((tags, digests))
    }

    pub fn image_summary(&self, rec: ImageRecord) -> Result<ImageSummary, EngineError> {
        let (repo_tags, repo_digests) = self.refs_of(&rec.id)?;
        let config = self.image_config(&rec)?;
        Ok(ImageSummary { record: rec, config, repo_tags, repo_digests })
    }

    /// Every image, newest first.
    pub fn list_images(&self) -> Result<Vec<ImageSummary>, EngineError> {
        let mut out = Vec::new();
        for (_, rec) in self.inner.db.list::<ImageRecord>(Table::Images)? {
            out.push(self.image_summary(rec)?);
        }
        out.sort_by(|a, b| b.record.created.cmp(&a.record.created));
        Ok(out)
    }

    /// Points `target` (a reference; `:latest` when it has no tag) at the image `source` names.
    pub fn tag_image(&self, source: &str, target: &str) -> Result<(), EngineError> {
        let rec = self.find_image(source)?;
        let r = ImageRef::parse(target)?;
        if r.digest.is_some() {
            return Err(EngineError::Invalid(format!("refusing to create a tag with a digest reference: {target}")));
        }
        self.write_db(|tx| tx.put(Table::Tags, &r.to_string(), &rec.id.to_string()))?;
        self.image_event("tag", &rec.id.to_string(), &r.familiar());
        Ok(())
    }

    /// Removes a reference or an image, as `docker rmi` does; then collects what no image or
    /// container uses any more.
    pub async fn remove_image(&self, name: &str, force: bool) -> Result<Vec<ImageDeleted>, EngineError> {
        let engine = self.clone();
        let name = name.to_string();
        let deleted = blocking(move || engine.remove_image_blocking(&name, force)).await?;
        for d in &deleted {
            match d {
                ImageDeleted::Untagged(r) => self.image_event("untag", r, r),
                ImageDeleted::Deleted(id) => self.image_event("delete", id, id),
            }
        }
        Ok(deleted)
    }

    fn remove_image_blocking(&self, name: &str, force: bool) -> Result<Vec<ImageDeleted>, EngineError> {
        let _gc = crate::sync::write(&self.inner.gc_lock);
        let (rec, matched) =
            self.lookup_image(name)?.ok_or_else(|| EngineError::NotFound(format!("No such image: {name}")))?;
        let (tags, digests) = self.refs_of(&rec.id)?;
        let mut out = Vec::new();

        // A reference that is not the image's last name: just untag it.
        if let Some(r) = &matched {
            let others = tags.iter().chain(digests.iter()).filter(|t| *t != r).count();
            let other_tags = tags.iter().filter(|t| *t != r).count();
            if other_tags > 0 || (r.digest.is_some() && others > 0 && !tags.is_empty()) {
                // Docker: the last tag of a repository takes that repository's digest
                // references with it (the image stays under its other names).
                let same_repo = |t: &ImageRef| t.registry == r.registry && t.repository == r.repository;
                let repo_digests: Vec<&ImageRef> = match r.digest {
                    Some(_) => Vec::new(),
                    None if tags.iter().any(|t| t != r && same_repo(t)) => Vec::new(),
                    None => digests.iter().filter(|d| same_repo(d)).collect(),
                };
                self.write_db(|tx| {
                    tx.delete(Table::Tags, &r.to_string())?;
                    for d in &repo_digests {
                        tx.delete(Table::Tags, &d.to_string())?;
                    }
                    Ok::<_, EngineError>(())
                })?;
                out.push(ImageDeleted::Untagged(r.familiar()));
                out.extend(repo_digests.iter().map(|d| ImageDeleted::Untagged(d.familiar())));
                return Ok(out);
            }
        } else if tags.len() > 1 && !force {
            return Err(EngineError::Conflict(format!(
                "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                rec.id.short()
            )));
        }

        let users = self.containers_using_image(&rec.id)?;
        if let Some((cid, running)) = users.first() {
            // By id, a running container's image cannot go even when forced; by name, dockerd
            // asks for force first, whatever the container's state (then only the names go).
            if *running && matched.is_none() {
                return Err(EngineError::Conflict(format!(
                    "conflict: unable to delete {} (cannot be forced) - image is being used by running container {}",
                    rec.id.short(),
                    short_id(cid)
                )));
            }
            if !force {
                let what = match &matched {
                    Some(r) => format!("unable to remove repository reference \"{}\" (must force)", r.familiar()),
                    None => format!("unable to delete {} (must be forced)", rec.id.short()),
                };
                return Err(EngineError::Conflict(format!(
                    "conflict: {what} - container {} is using its referenced image {}",
                    short_id(cid),
                    rec.id.short()
                )));
            }
            // Forced while a stopped container uses it: untag, keep the image for the container.
            self.write_db(|tx| {
                for t in tags.iter().chain(digests.iter()) {
                    tx.delete(Table::Tags, &t.to_string())?;
                }
                Ok::<_, EngineError>(())
            })?;
            out.extend(tags.iter().chain(digests.iter()).map(|t| ImageDeleted::Untagged(t.familiar())));
            return Ok(out);
        }

        self.write_db(|tx| {
            for t in tags.iter().chain(digests.iter()) {
                tx.delete(Table::Tags, &t.to_string())?;
            }
            tx.delete(Table::Images, &rec.id.to_string())?;
            Ok::<_, EngineError>(())
        })?;
        out.extend(tags.iter().chain(digests.iter()).map(|t| ImageDeleted::Untagged(t.familiar())));
        out.push(ImageDeleted::Deleted(rec.id.to_string()));
        self.sweep_unreferenced()?;
        Ok(out)
    }

    /// Containers (id, running) whose image is `id`.
    pub(crate) fn containers_using_image(&self, id: &Digest) -> Result<Vec<(String, bool)>, EngineError> {
        Ok(self
            .all_containers()
            .iter()
            .filter(|c| &c.image_id == id)
            .map(|c| (c.id.clone(), c.state.running))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::tests::assert_pinned;

    /// A pulled image that a build then stacked on: every field set, as format 1 stores it.
    #[test]
    fn the_stored_image_record_is_pinned() {
        let rec: ImageRecord = assert_pinned(include_str!("../testdata/image-record-1.json"));
        assert!(rec.created.is_some() && rec.manifest_digest.is_some() && rec.parent.is_some());
        assert!(rec.layers.iter().any(|l| !l.urls.is_empty() && !l.annotations.is_empty()));
        assert_eq!(IMAGES.current, 1, "a new format needs a fixture of its own and a test of its step");
    }

    /// A tag's key is the reference as it is looked up again: parsed and shown, the same
    /// string; its value an image id.
    #[test]
    fn the_stored_tags_are_pinned() {
        let tags: BTreeMap<String, String> = assert_pinned(include_str!("../testdata/tags-1.json"));
        assert!(tags.keys().any(|k| k.contains('@')) && tags.keys().any(|k| !k.contains('@')));
        for (key, id) in &tags {
            assert_eq!(&ImageRef::parse_any(key).unwrap().to_string(), key);
            id.parse::<Digest>().unwrap();
        }
        assert_eq!(TAGS.current, 1, "a new format needs a fixture of its own and a test of its step");
    }
}
