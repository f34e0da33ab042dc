//! The one place where failures become HTTP answers: `{"message": "..."}` with a status.

use hyper::{Response, StatusCode};
use wharf_engine::EngineError;
use wharf_types::ErrorKind;

use crate::body::Body;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn into_response(self) -> Response<Body> {
        if self.status == StatusCode::NOT_MODIFIED {
            return crate::router::empty(StatusCode::NOT_MODIFIED);
        }
        let body = serde_json::json!({ "message": self.message }).to_string();
        crate::router::json_response(self.status, body)
    }
}

/// The one mapping from a kind of failure to the status the Docker Engine API answers with.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::NotModified => StatusCode::NOT_MODIFIED,
        ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        ApiError::new(status_of(e.kind()), e.to_string())
    }
}

impl From<wharf_types::ReferenceError> for ApiError {
    fn from(e: wharf_types::ReferenceError) -> ApiError {
        ApiError::bad_request(e.to_string())
    }
}
