//! The error type of the registry client. Every message names the operation and reference
//! (`pull 127.0.0.1:5000/nosuch:1: manifest unknown`).

use wharf_http::HttpError;
use wharf_types::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum DistributionError {
    #[error("invalid registry configuration: {0}")]
    Config(String),
    #[error("{op}: manifest unknown")]
    ManifestUnknown { op: String },
    #[error("{op}: repository {name} not found")]
    RepositoryNotFound { op: String, name: String },
    #[error("{op}: blob {digest} not found")]
    BlobUnknown { op: String, digest: String },
    #[error("{op}: unauthorized: authentication required by {registry}{detail}")]
    Unauthorized { op: String, registry: String, detail: String },
    #[error("{op}: denied by {registry}: {message}")]
    Denied { op: String, registry: String, message: String },
    #[error("{op}: no matching manifest for {wanted} in the manifest list entries (available: {available})")]
    NoMatchingPlatform { op: String, wanted: String, available: String },
    #[error("{op}: {message}")]
    InvalidManifest { op: String, message: String },
    #[error("{op}: {what} digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { op: String, what: String, expected: String, actual: String },
    #[error("{op}: {what} size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch { op: String, what: String, expected: u64, actual: u64 },
    #[error("{op}: {what} is larger than {limit} bytes")]
    TooLarge { op: String, what: String, limit: u64 },
    #[error("{op}: {url} answered {status}: {message}")]
    Registry { op: String, url: String, status: u16, message: String },
    #[error("{op}: token server {realm}: {message}")]
    Token { op: String, realm: String, message: String },
    #[error("{op}: {url}: {source}")]
    Http { op: String, url: String, source: HttpError },
}

impl DistributionError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            DistributionError::Config(_) => ErrorKind::InvalidArgument,
            DistributionError::ManifestUnknown { .. }
            | DistributionError::RepositoryNotFound { .. }
            | DistributionError::BlobUnknown { .. }
            | DistributionError::NoMatchingPlatform { .. } => ErrorKind::NotFound,
            DistributionError::Unauthorized { .. } => ErrorKind::Unauthorized,
            DistributionError::Denied { .. } => ErrorKind::Forbidden,
            DistributionError::InvalidManifest { .. }
            | DistributionError::DigestMismatch { .. }
            | DistributionError::SizeMismatch { .. }
            | DistributionError::TooLarge { .. }
            | DistributionError::Registry { .. }
            | DistributionError::Token { .. } => ErrorKind::Unavailable,
            DistributionError::Http { source, .. } => match source.kind() {
                // A body over our limit is the registry misbehaving, not the caller's fault.
                ErrorKind::InvalidArgument => ErrorKind::Unavailable,
                k => k,
            },
        }
    }

    /// Whether the error came from reaching the host at all (connect, TLS, time-out), the case
    /// in which an insecure registry is retried over plain HTTP.
    pub(crate) fn is_transport(&self) -> bool {
        matches!(self, DistributionError::Http { .. })
    }
}
