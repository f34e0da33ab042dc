//! The distribution spec's errors: a code, its HTTP status and the JSON form
//! `{"errors":[{"code","message","detail"}]}`. Handlers return [`ApiError`]; this is the one
//! place where a code becomes a status.

use std::fmt;

/// The error codes of the distribution spec, plus the ones distribution itself answers with
/// (`RANGE_INVALID`, `TAG_INVALID`, `PAGINATION_NUMBER_INVALID`, `UNKNOWN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    RangeInvalid,
    TagInvalid,
    PaginationNumberInvalid,
    Unknown,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::RangeInvalid => "RANGE_INVALID",
            Code::TagInvalid => "TAG_INVALID",
            Code::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            Code::Unknown => "UNKNOWN",
        }
    }

    /// The message the spec gives each code.
    pub fn message(self) -> &'static str {
        match self {
            Code::BlobUnknown => "blob unknown to registry",
            Code::BlobUploadInvalid => "blob upload invalid",
            Code::BlobUploadUnknown => "blob upload unknown to registry",
            Code::DigestInvalid => "provided digest did not match uploaded content",
            Code::ManifestBlobUnknown => "manifest references a manifest or blob unknown to registry",
            Code::ManifestInvalid => "manifest invalid",
            Code::ManifestUnknown => "manifest unknown to registry",
            Code::NameInvalid => "invalid repository name",
            Code::NameUnknown => "repository name not known to registry",
            Code::SizeInvalid => "provided length did not match content length",
            Code::Unauthorized => "authentication required",
            Code::Denied => "requested access to the resource is denied",
            Code::Unsupported => "the operation is unsupported",
            Code::TooManyRequests => "too many requests",
            Code::RangeInvalid => "invalid content range",
            Code::TagInvalid => "invalid tag",
            Code::PaginationNumberInvalid => "invalid number of results requested",
            Code::Unknown => "unknown error",
        }
    }

    /// The status each code is answered with unless the handler says otherwise (a manifest
    /// over the size limit is `MANIFEST_INVALID` with 413, for instance).
    pub fn status(self) -> u16 {
        match self {
            Code::BlobUnknown | Code::BlobUploadUnknown | Code::ManifestUnknown | Code::NameUnknown => 404,
            Code::BlobUploadInvalid
            | Code::DigestInvalid
            | Code::ManifestBlobUnknown
            | Code::ManifestInvalid
            | Code::NameInvalid
            | Code::SizeInvalid
            | Code::TagInvalid
            | Code::PaginationNumberInvalid => 400,
            Code::Unauthorized => 401,
            Code::Denied => 403,
            Code::Unsupported => 405,
            Code::RangeInvalid => 416,
            Code::TooManyRequests => 429,
            Code::Unknown => 500,
        }
    }
}

/// An error answer: a spec code, a detail for people, the status (the code's unless
/// overridden) and extra headers (`Range` and `Location` on a 416 of an upload).
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub status: u16,
    pub detail: String,
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(code: Code, detail: impl Into<String>) -> ApiError {
        ApiError { code, status: code.status(), detail: detail.into(), headers: Vec::new() }
    }

    pub fn with_status(mut self, status: u16) -> ApiError {
        self.status = status;
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> ApiError {
        self.headers.push((name, value.into()));
        self
    }

    /// A failure of the registry itself (disk, database): logged, answered as 500.
    pub fn internal(what: impl fmt::Display) -> ApiError {
        log::error!("internal error: {what}");
        ApiError::new(Code::Unknown, what.to_string())
    }

    /// The spec's JSON body. A `DENIED`'s message also says why (the permission missing),
    /// as Harbor's do: clients show the message, not the detail. So does a 502 (a proxy
    /// cache's upstream failed): the client should learn which upstream and why.
    pub fn body(&self) -> String {
        let message = match self.code {
            Code::Denied if !self.detail.is_empty() => format!("{}: {}", self.code.message(), self.detail),
            _ if self.status == 502 && !self.detail.is_empty() => self.detail.clone(),
            _ => self.code.message().to_string(),
        };
        serde_json::json!({
            "errors": [{ "code": self.code.as_str(), "message": message, "detail": self.detail }]
        })
        .to_string()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

impl From<crate::meta::MetaError> for ApiError {
    fn from(e: crate::meta::MetaError) -> ApiError {
        ApiError::internal(e)
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> ApiError {
        ApiError::internal(format!("storage: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form() {
        let e = ApiError::new(Code::BlobUnknown, "sha256:00");
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["errors"][0]["code"], "BLOB_UNKNOWN");
        assert_eq!(v["errors"][0]["message"], "blob unknown to registry");
        assert_eq!(e.status, 404);
        let d = ApiError::new(Code::Denied, "user \"g\" lacks the repository:push permission");
        let v: serde_json::Value = serde_json::from_str(&d.body()).unwrap();
        assert_eq!(
            v["errors"][0]["message"],
            "requested access to the resource is denied: user \"g\" lacks the repository:push permission"
        );
    }
}
