//! `--init`: wharf's static init (`wharf-init`) written once under the data root and
//! bind-mounted read-only at `/sbin/docker-init`, run as pid 1 in front of the command.

use std::path::PathBuf;

use wharf_runtime::spec::{self as oci, Spec};

use crate::error::EngineError;
use crate::{ContainerRecord, Engine};

/// Where Docker puts its init in the container too; scripts look for it there.
const INIT_PATH: &str = "/sbin/docker-init";

impl Engine {
    /// Puts the init in front of the command when the container asks for one.
    pub(crate) fn apply_init(&self, rec: &ContainerRecord, spec: &mut Spec) -> Result<(), EngineError> {
        // The daemon's `init` counts when the request left `Init` out (dockerd's null), as
        // dockerd decides it at start: inspect still shows what the client sent.
        if !(rec.host_config.init || self.inner.config.container_defaults.init_for(&rec.host_config)) {
            return Ok(());
        }
        let host = self.init_binary()?;
        spec.mounts.push(oci::Mount {
            destination: INIT_PATH.to_string(),
            kind: Some("bind".to_string()),
            source: Some(host.display().to_string()),
            options: ["rbind", "ro", "rprivate"].iter().map(|s| s.to_string()).collect(),
        });
        if let Some(p) = spec.process.as_mut() {
            let cmd = std::mem::take(&mut p.args);
            p.args = [INIT_PATH.to_string(), "--".to_string()].into_iter().chain(cmd).collect();
        }
        Ok(())
    }

    /// The init's file on the host, written (atomically) when missing or from another build.
    fn init_binary(&self) -> Result<PathBuf, EngineError> {
        let path = self.inner.config.data_root.join("wharf-init");
        if std::fs::read(&path).is_ok_and(|b| b == wharf_init::INIT) {
            return Ok(path);
        }
        // A name of this call's own: two containers with --init starting at once (compose's
        // --scale) write it side by side, and one's rename must not take the other's file.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.inner.config.data_root.join(format!(".wharf-init.{}.{n}", std::process::id()));
        let write = || -> std::io::Result<()> {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(&tmp, wharf_init::INIT)?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o555))?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            EngineError::io(format!("write init {}", path.display()), e)
        })?;
        Ok(path)
    }
}
