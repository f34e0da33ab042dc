//! The error type of the HTTP client.

use std::io;

use wharf_types::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("invalid url {0:?}: {1}")]
    InvalidUrl(String, &'static str),
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("timed out {0}")]
    Timeout(String),
    #[error("proxy {proxy}: {message}")]
    Proxy { proxy: String, message: String },
    #[error("tls with {host}: {message}")]
    Tls { host: String, message: String },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("malformed http response: {0}")]
    Malformed(String),
    #[error("http response head is larger than {0} bytes")]
    HeadTooLarge(usize),
    #[error("http response body is larger than {0} bytes")]
    BodyTooLarge(u64),
}

impl HttpError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            HttpError::InvalidUrl(..) | HttpError::BodyTooLarge(_) => ErrorKind::InvalidArgument,
            HttpError::Resolve { .. }
            | HttpError::Connect { .. }
            | HttpError::Timeout(_)
            | HttpError::Tls { .. }
            | HttpError::Proxy { .. }
            | HttpError::Io { .. }
            | HttpError::Malformed(_)
            | HttpError::HeadTooLarge(_) => ErrorKind::Unavailable,
        }
    }

    /// Wraps an I/O error, telling a read or connect time-out apart from other failures.
    pub fn io(context: &str, source: io::Error) -> HttpError {
        match source.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => HttpError::Timeout(context.to_string()),
            _ => HttpError::Io { context: context.to_string(), source },
        }
    }
}
