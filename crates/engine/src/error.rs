//! The engine's error type: every failure carries a kind the API maps to a status code.

use wharf_types::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// The container's command could not be started; `exit_code` is 126 or 127 as Docker uses them.
    #[error("{message}")]
    Exec { message: String, exit_code: i32 },
    #[error("{0}")]
    Internal(String),
    /// Not allowed in any state (removing a predefined network).
    #[error("{0}")]
    Forbidden(String),
    /// A state that needs no change (Docker answers 304: already started, already stopped).
    #[error("{0}")]
    NotModified(String),
    /// Not available for this container (its log driver keeps no log).
    #[error("{0}")]
    NotImplemented(String),
    #[error(transparent)]
    Metadata(#[from] wharf_metadata::MetadataError),
    #[error(transparent)]
    Content(#[from] wharf_content::ContentError),
    #[error(transparent)]
    Snapshot(#[from] wharf_snapshot::SnapshotError),
    #[error(transparent)]
    Distribution(#[from] wharf_distribution::DistributionError),
    #[error(transparent)]
    Reference(#[from] wharf_types::ReferenceError),
    /// A bridge, veth or namespace operation failed; the kernel's answer is kept.
    #[error(transparent)]
    Network(#[from] wharf_network::SandboxError),
    #[error(transparent)]
    Nft(#[from] wharf_network::NftError),
    /// A system call on the daemon's own files failed; the errno is kept in `source`.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A registry refused the credentials of a pull or push. The daemon's caller is not the
    /// one unauthorized, so this is no 401 of the API (the docker CLI would prompt for a
    /// login on its terminal); dockerd answers 500, and so does wharf.
    #[error(transparent)]
    RegistryRefused(wharf_distribution::DistributionError),
}

impl EngineError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::NotFound(_) => ErrorKind::NotFound,
            EngineError::Conflict(_) => ErrorKind::Conflict,
            EngineError::Invalid(_) | EngineError::Reference(_) => ErrorKind::InvalidArgument,
            EngineError::Exec { .. } => ErrorKind::InvalidArgument,
            EngineError::Internal(_) | EngineError::RegistryRefused(_) => ErrorKind::Internal,
            EngineError::NotModified(_) => ErrorKind::NotModified,
            EngineError::NotImplemented(_) => ErrorKind::NotImplemented,
            EngineError::Network(e) => e.kind(),
            EngineError::Nft(e) => e.kind(),
            EngineError::Io { .. } => ErrorKind::Internal,
            EngineError::Forbidden(_) => ErrorKind::Forbidden,
            EngineError::Metadata(e) => e.kind(),
            EngineError::Content(e) => e.kind(),
            EngineError::Snapshot(e) => e.kind(),
            EngineError::Distribution(e) => e.kind(),
        }
    }

    pub(crate) fn io(context: impl std::fmt::Display, source: std::io::Error) -> EngineError {
        EngineError::Io { context: context.to_string(), source }
    }

    /// For a pull or push: a registry's 401 becomes [`EngineError::RegistryRefused`].
    pub(crate) fn of_registry_transfer(self) -> EngineError {
        match self {
            EngineError::Distribution(e) if e.kind() == ErrorKind::Unauthorized => EngineError::RegistryRefused(e),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_keep_their_errno_and_kinds_are_not_flattened() {
        let e = EngineError::io("write config.json", std::io::Error::from_raw_os_error(libc::ENOSPC));
        let source = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(source.and_then(|s| s.raw_os_error()), Some(libc::ENOSPC));
        assert!(e.to_string().starts_with("write config.json: "), "{e}");
        assert_eq!(EngineError::NotModified("already started".into()).kind(), ErrorKind::NotModified);
        let gone = wharf_network::SandboxError::Netlink(wharf_network::NetlinkError::NoSuchLink("veth0".into()));
        assert_eq!(EngineError::from(gone).kind(), ErrorKind::NotFound);
    }
}
