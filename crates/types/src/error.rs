//! The kinds of failure every layer reports, so the API maps them to a status code in one place.

/// What kind of failure an error is. The API layer turns this into an HTTP status; the CLI into an
/// exit code. Every library error type in wharf exposes `fn kind(&self) -> ErrorKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The named thing does not exist (404).
    NotFound,
    /// The request clashes with the current state: a name in use, an image in use (409).
    Conflict,
    /// The request itself is malformed or names something impossible (400).
    InvalidArgument,
    /// Credentials are missing or were refused (401).
    Unauthorized,
    /// The operation is not allowed (403).
    Forbidden,
    /// A remote (registry) failed or could not be reached (500, but worth telling apart).
    Unavailable,
    /// Anything else: a bug, the kernel said no, the disk is full (500).
    Internal,
}

impl ErrorKind {
    /// The HTTP status code the Docker Engine API uses for this kind of failure.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::InvalidArgument => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::Unavailable => 500,
            ErrorKind::Internal => 500,
        }
    }
}
