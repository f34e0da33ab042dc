//! The errors of the API client.

use wharf_types::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the wharf daemon at {host}: is wharfd running?")]
    Connect { host: String, source: wharf_http::HttpError },
    #[error("cannot start ssh to reach the daemon at {host}: {source}")]
    Ssh { host: String, source: std::io::Error },
    #[error("unsupported daemon host {0:?}: use unix:///path/to/socket, tcp://host:port or ssh://[user@]host[:port]")]
    UnsupportedHost(String),
    #[error("bad ssh daemon host: {0}")]
    BadSshHost(String),
    #[error(transparent)]
    Http(#[from] wharf_http::HttpError),
    /// The daemon answered with an error status; `message` is its `{"message": ...}`.
    #[error("{message}")]
    Daemon { status: u16, message: String },
    #[error("cannot decode the daemon's answer to {what}: {source}")]
    Decode { what: String, source: serde_json::Error },
    #[error("{what}: expected a connection upgrade, the daemon answered with status {status}")]
    NoUpgrade { what: String, status: u16 },
    #[error("reading the daemon's answer to {what}: {source}")]
    Read { what: String, source: std::io::Error },
}

impl ClientError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Connect { .. } => ErrorKind::Unavailable,
            ClientError::UnsupportedHost(_) | ClientError::BadSshHost(_) => ErrorKind::InvalidArgument,
            ClientError::Ssh { .. } => ErrorKind::Unavailable,
            ClientError::Http(e) => e.kind(),
            ClientError::Daemon { status, .. } => match status {
                400 => ErrorKind::InvalidArgument,
                401 => ErrorKind::Unauthorized,
                403 => ErrorKind::Forbidden,
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Conflict,
                _ => ErrorKind::Internal,
            },
            ClientError::Decode { .. } | ClientError::NoUpgrade { .. } | ClientError::Read { .. } => {
                ErrorKind::Unavailable
            }
        }
    }

    /// The HTTP status of a daemon error, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Daemon { status, .. } => Some(*status),
            _ => None,
        }
    }
}
