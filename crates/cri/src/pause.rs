//! The image of a sandbox's infra container, made here instead of pulled: one file, `/pause`,
//! which is wharf's static init (`wharf-init --pause` holds the namespaces and reaps). Its
//! tag is the digest of that binary, so a wharf with another init makes a new one, and it is
//! made again if it was removed (`docker image prune -a` with no pod running).

use wharf_engine::ImportRequest;
use wharf_types::{Digest, ImageRef};

use crate::grpc::Status;
use crate::Cri;

/// Never resolvable (`.invalid` is reserved), so nothing ever tries to pull it.
const REPOSITORY: &str = "wharf.invalid/pause";

/// The command of every sandbox.
pub const ENTRYPOINT: [&str; 2] = ["/pause", "--pause"];

/// The pause image's reference, as the engine names it.
pub fn reference() -> String {
    format!("{REPOSITORY}:{}", Digest::of(wharf_init::INIT).hex_prefix(12))
}

/// The one-file layer.
fn layer_tar() -> Result<Vec<u8>, Status> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(wharf_init::INIT.len() as u64);
    h.set_mode(0o755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "pause", wharf_init::INIT).map_err(|e| Status::internal(format!("pause layer: {e}")))?;
    b.into_inner().map_err(|e| Status::internal(format!("pause layer: {e}")))
}

impl Cri {
    /// The pause image's reference, importing it first when the engine does not have it.
    pub(crate) async fn pause_image(&self) -> Result<String, Status> {
        let name = reference();
        let _guard = self.pause_lock.lock().await;
        if self.engine.find_image(&name).is_ok() {
            return Ok(name);
        }
        let r = ImageRef::parse(&name).map_err(|e| Status::internal(format!("pause image name {name}: {e}")))?;
        let req = ImportRequest {
            reference: Some(r),
            changes: vec![format!("ENTRYPOINT [\"{}\", \"{}\"]", ENTRYPOINT[0], ENTRYPOINT[1])],
            message: Some("wharf's pod sandbox process".to_string()),
            platform: None,
        };
        let tar = layer_tar()?;
        self.engine.import(req, Box::new(std::io::Cursor::new(tar))).await?;
        log::info!("cri: made the pause image {name}");
        Ok(name)
    }
}
