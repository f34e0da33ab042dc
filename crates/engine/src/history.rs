//! An image's history (`docker history`): the config's history entries, newest first, each
//! that made a layer with that layer's unpacked size.

use crate::{Engine, EngineError};

/// One step of an image's build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The image id on the newest entry; `None` (Docker's `<missing>`) below it.
    pub id: Option<String>,
    /// RFC 3339, as the config has it.
    pub created: Option<String>,
    pub created_by: String,
    pub comment: String,
    /// Bytes the step's layer adds; 0 for steps without a layer.
    pub size: u64,
    /// The tags of the image, on the newest entry.
    pub tags: Vec<String>,
}

impl Engine {
    pub fn image_history(&self, name: &str) -> Result<Vec<HistoryEntry>, EngineError> {
        let rec = self.find_image(name)?;
        let summary = self.image_summary(rec)?;
        let rec = &summary.record;
        let mut layer = 0;
        let mut out = Vec::new();
        let entries = &summary.config.history;
        for h in entries {
            let size = if h.empty_layer {
                0
            } else {
                let size = match rec.chain_ids.get(layer) {
                    Some(chain) => self.inner.snapshots.layer_size(chain)?,
                    None => 0,
                };
                layer += 1;
                size
            };
            out.push(HistoryEntry {
                id: None,
                created: h.created.clone(),
                created_by: h.created_by.clone().unwrap_or_default(),
                comment: h.comment.clone().unwrap_or_default(),
                size,
                tags: Vec::new(),
            });
        }
        // A config without history (some tools write none): one entry per layer.
        if entries.is_empty() {
            for chain in &rec.chain_ids {
                out.push(HistoryEntry {
                    id: None,
                    created: rec.created.clone(),
                    created_by: String::new(),
                    comment: String::new(),
                    size: self.inner.snapshots.layer_size(chain)?,
                    tags: Vec::new(),
                });
            }
        }
        out.reverse();
        if let Some(top) = out.first_mut() {
            top.id = Some(rec.id.to_string());
            top.tags = summary.repo_tags.iter().map(|t| t.familiar()).collect();
        }
        Ok(out)
    }
}
