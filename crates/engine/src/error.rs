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
}

impl EngineError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::NotFound(_) => ErrorKind::NotFound,
            EngineError::Conflict(_) => ErrorKind::Conflict,
            EngineError::Invalid(_) | EngineError::Reference(_) => ErrorKind::InvalidArgument,
            EngineError::Exec { .. } => ErrorKind::InvalidArgument,
            EngineError::Internal(_) | EngineError::NotModified(_) => ErrorKind::Internal,
            EngineError::Forbidden(_) => ErrorKind::Forbidden,
            EngineError::Metadata(e) => e.kind(),
            EngineError::Content(e) => e.kind(),
            EngineError::Snapshot(e) => e.kind(),
            EngineError::Distribution(e) => e.kind(),
        }
    }

    pub fn is_not_modified(&self) -> bool {
        matches!(self, EngineError::NotModified(_))
    }

    pub(crate) fn io(context: impl std::fmt::Display, e: std::io::Error) -> EngineError {
        EngineError::Internal(format!("{context}: {e}"))
    }
}
