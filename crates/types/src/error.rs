//! The kinds of failure every layer reports, so the API maps them to a status code in one place.

/// What kind of failure an error is. The API layer turns this into an HTTP status (in one
/// table, `wharf_api::error::status_of`); the CLI into an exit code. Every library error type in wharf exposes `fn kind(&self) -> ErrorKind`.
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
    /// A remote (registry) failed or could not be reached, or a resource is exhausted for now
    /// (503, as dockerd's errdefs.Unavailable).
    Unavailable,
    /// Nothing to do: the state asked for is already there (304: already started, stopped).
    NotModified,
    /// A feature the configuration turned off or wharf lacks for this object (501: reading the
    /// log of a container whose log driver keeps none).
    NotImplemented,
    /// Anything else: a bug, the kernel said no, the disk is full (500).
    Internal,
}
