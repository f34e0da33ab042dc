//! Pushing to a registry: blob existence checks, cross-repository mounts, monolithic and
//! chunked uploads, manifests; and the credential check behind `docker login`.

use std::io::Read;
use std::sync::Arc;

use wharf_http::{Body, HttpError, Response, Url};
use wharf_types::oci::Descriptor;
use wharf_types::{Digest, ImageRef};

use crate::auth::challenges_of;
use crate::client::{error_message, status_error, Op, Subject};
use crate::{AuthConfig, DistributionError, Endpoint, RegistryClient};

/// Opens a blob's bytes from the start; called again when a request must be resent.
pub type BlobSource<'a> = &'a dyn Fn() -> std::io::Result<Box<dyn Read + Send>>;

/// Told how many bytes of a blob have gone out so far.
pub type UploadProgress = Arc<dyn Fn(u64) + Send + Sync>;

/// What a mount request did.
#[derive(Debug)]
pub enum Mount {
    /// The registry linked the blob from the other repository: nothing to upload.
    Mounted,
    /// The registry opened an upload session instead (it does when it cannot mount).
    Upload(Url),
}

fn push_op<'a>(r: &'a ImageRef, auth: Option<&'a AuthConfig>) -> Op<'a> {
    Op { what: format!("push {}", r.name()), name: r.name(), repo: &r.repository, auth, actions: "pull,push" }
}

impl RegistryClient {
    /// The endpoint to push `r` to: the origin registry (never a mirror), over HTTPS, or HTTP
    /// where the registry is insecure. Asks `/v2/` once, which also settles authentication.
    pub fn push_endpoint(&self, r: &ImageRef, auth: Option<&AuthConfig>) -> Result<Endpoint, DistributionError> {
        let op = push_op(r, auth);
        self.with_endpoints(r, false, |ep| {
            let (url, resp) = self.registry_send(&op, ep, "GET", ep.url_for("/v2/"), &[], &mut || Ok(Body::Empty))?;
            match resp.status {
                200 => Ok(ep.clone()),
                _ => Err(status_error(&op, &url, resp, Subject::Manifest, None)),
            }
        })
    }

    /// Whether the repository already holds the blob (`HEAD /v2/<name>/blobs/<digest>`).
    pub fn blob_exists(
        &self,
        r: &ImageRef,
        ep: &Endpoint,
        digest: &Digest,
        auth: Option<&AuthConfig>,
    ) -> Result<bool, DistributionError> {
        let op = push_op(r, auth);
        let url = ep.url_for(&format!("/v2/{}/blobs/{digest}", r.repository));
        let (url, resp) = self.registry_send(&op, ep, "HEAD", url, &[], &mut || Ok(Body::Empty))?;
        match resp.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(status_error(&op, &url, resp, Subject::Blob, Some(digest))),
        }
    }

    /// Asks the registry to link `digest` from repository `from` (same registry).
    pub fn mount_blob(
        &self,
        r: &ImageRef,
        ep: &Endpoint,
        digest: &Digest,
        from: &str,
        auth: Option<&AuthConfig>,
    ) -> Result<Mount, DistributionError> {
        let op = push_op(r, auth);
        let target =
            format!("/v2/{}/blobs/uploads/?mount={digest}&from={}", r.repository, wharf_types::percent::encode(from));
        let (url, resp) = self.registry_send(&op, ep, "POST", ep.url_for(&target), &[], &mut || Ok(Body::Empty))?;
        match resp.status {
            201 => Ok(Mount::Mounted),
            202 => Ok(Mount::Upload(location(&op, &url, &resp)?)),
            _ => Err(status_error(&op, &url, resp, Subject::Blob, Some(digest))),
        }
    }

    /// Opens an upload session; returns its URL.
    pub fn start_upload(
        &self,
        r: &ImageRef,
        ep: &Endpoint,
        auth: Option<&AuthConfig>,
    ) -> Result<Url, DistributionError> {
        let op = push_op(r, auth);
        let target = format!("/v2/{}/blobs/uploads/", r.repository);
        let (url, resp) = self.registry_send(&op, ep, "POST", ep.url_for(&target), &[], &mut || Ok(Body::Empty))?;
        match resp.status {
            202 => location(&op, &url, &resp),
            _ => Err(status_error(&op, &url, resp, Subject::Blob, None)),
        }
    }

    /// Uploads a blob into the session at `session`: in one `PUT` when `chunk_size` is `None`,
    /// else in `PATCH`es of `chunk_size` bytes followed by a closing `PUT`. The registry checks
    /// the digest.
    #[allow(clippy::too_many_arguments)]
    pub fn upload_blob(
        &self,
        r: &ImageRef,
        ep: &Endpoint,
        session: Url,
        desc: &Descriptor,
        source: BlobSource,
        chunk_size: Option<u64>,
        progress: UploadProgress,
        auth: Option<&AuthConfig>,
    ) -> Result<(), DistributionError> {
        let op = push_op(r, auth);
        let io_err = |url: &Url, e: std::io::Error| DistributionError::Http {
            op: op.what.clone(),
            url: url.to_string(),
            source: HttpError::io(&format!("read blob {}", desc.digest), e),
        };
        let mut session = session;
        let body = |offset: u64, len: u64, url: &Url| -> Result<Body, DistributionError> {
            let mut reader = source().map_err(|e| io_err(url, e))?;
            if offset > 0 {
                std::io::copy(&mut reader.by_ref().take(offset), &mut std::io::sink()).map_err(|e| io_err(url, e))?;
            }
            let counted = Counted { inner: reader.take(len), sent: offset, progress: progress.clone() };
            Ok(Body::Reader(Box::new(counted), Some(len)))
        };
        let mut final_len = desc.size;
        let mut final_offset = 0;
        if let Some(chunk) = chunk_size.filter(|c| *c > 0 && *c < desc.size) {
            let mut offset = 0;
            while offset < desc.size {
                let len = chunk.min(desc.size - offset);
                let headers = [
                    ("Content-Type".to_string(), "application/octet-stream".to_string()),
                    ("Content-Range".to_string(), format!("{offset}-{}", offset + len - 1)),
                ];
                let at = session.clone();
                let (url, resp) =
                    self.registry_send(&op, ep, "PATCH", at.clone(), &headers, &mut || body(offset, len, &at))?;
                if resp.status != 202 {
                    return Err(status_error(&op, &url, resp, Subject::Blob, Some(&desc.digest)));
                }
                session = location(&op, &url, &resp)?;
                offset += len;
            }
            final_len = 0;
            final_offset = desc.size;
        }
        let sep = if session.target.contains('?') { '&' } else { '?' };
        let put_url = session.with_target(&format!("{}{sep}digest={}", session.target, desc.digest));
        let headers = [("Content-Type".to_string(), "application/octet-stream".to_string())];
        let at = put_url.clone();
        let (url, resp) = self.registry_send(&op, ep, "PUT", put_url, &headers, &mut || {
            if final_len == 0 {
                Ok(Body::Empty)
            } else {
                body(final_offset, final_len, &at)
            }
        })?;
        match resp.status {
            201 | 204 => Ok(()),
            400 => Err(DistributionError::Registry {
                op: op.what.clone(),
                url: url.to_string(),
                status: 400,
                message: format!("blob {} refused: {}", desc.digest, error_message(resp)),
            }),
            _ => Err(status_error(&op, &url, resp, Subject::Blob, Some(&desc.digest))),
        }
    }

    /// Puts a manifest under `reference` (a tag or its digest); checks that the registry
    /// computed the same digest. Returns the digest.
    pub fn put_manifest(
        &self,
        r: &ImageRef,
        ep: &Endpoint,
        reference: &str,
        media_type: &str,
        raw: &[u8],
        auth: Option<&AuthConfig>,
    ) -> Result<Digest, DistributionError> {
        let op = push_op(r, auth);
        let url = ep.url_for(&format!("/v2/{}/manifests/{reference}", r.repository));
        let headers = [("Content-Type".to_string(), media_type.to_string())];
        let (url, resp) = self.registry_send(&op, ep, "PUT", url, &headers, &mut || Ok(Body::Bytes(raw.to_vec())))?;
        if resp.status != 201 && resp.status != 200 {
            return Err(status_error(&op, &url, resp, Subject::Manifest, None));
        }
        let ours = Digest::of(raw);
        if let Some(theirs) = resp.header("Docker-Content-Digest") {
            if theirs.trim() != ours.to_string() {
                return Err(DistributionError::DigestMismatch {
                    op: op.what.clone(),
                    what: "pushed manifest".to_string(),
                    expected: ours.to_string(),
                    actual: theirs.trim().to_string(),
                });
            }
        }
        Ok(ours)
    }

    /// Checks credentials against a registry's `/v2/`, as `docker login` does. `registry` is
    /// `host[:port]` (`docker.io` for Docker Hub). With a token server, the token is asked for
    /// with `offline_token=true`, and the refresh token it gives (the identity token clients
    /// keep instead of the password) is returned.
    pub fn login(&self, registry: &str, auth: &AuthConfig) -> Result<Option<String>, DistributionError> {
        let r = ImageRef { registry: registry.to_string(), repository: String::new(), tag: None, digest: None };
        let op = Op {
            what: format!("login to {registry}"),
            name: registry.to_string(),
            repo: "",
            auth: Some(auth),
            actions: "",
        };
        self.with_endpoints(&r, false, |ep| {
            let (url, resp) = self.send_following(&op, "GET", ep.url_for("/v2/"), &[], None, Body::Empty)?;
            if resp.status == 401 {
                let challenges = challenges_of(&resp.headers);
                if let Some(c) = challenges.iter().find(|c| c.scheme == "bearer") {
                    let unauthorized = |detail: String| DistributionError::Unauthorized {
                        op: op.what.clone(),
                        registry: ep.base.host_header(),
                        detail,
                    };
                    let token = self.fetch_token(&op, c, "", Some(auth), true, &unauthorized)?;
                    let authz = format!("Bearer {}", token.bearer().unwrap_or_default());
                    let (url, resp) =
                        self.send_following(&op, "GET", ep.url_for("/v2/"), &[], Some(&authz), Body::Empty)?;
                    return match resp.status {
                        200 => Ok(token.refresh_token.filter(|t| !t.is_empty())),
                        _ => Err(status_error(&op, &url, resp, Subject::Manifest, None)),
                    };
                }
            } else if resp.status == 200 {
                return Ok(None);
            } else {
                return Err(status_error(&op, &url, resp, Subject::Manifest, None));
            }
            // Basic authentication: the credentials themselves are checked.
            // A fresh check every time: a token cached from an earlier login proves nothing.
            self.tokens.forget(&crate::client::token_key(ep, Some(auth)), "");
            let sent = self.registry_send(&op, ep, "GET", ep.url_for("/v2/"), &[], &mut || Ok(Body::Empty));
            // Nor should a login leave credentials behind for requests that come without any.
            self.tokens.forget(&crate::client::token_key(ep, Some(auth)), "");
            let (url, resp) = sent?;
            match resp.status {
                200 => Ok(None),
                _ => Err(status_error(&op, &url, resp, Subject::Manifest, None)),
            }
        })
    }
}

/// The upload session URL of a 202 answer, resolved against the request's URL.
fn location(op: &Op, url: &Url, resp: &Response) -> Result<Url, DistributionError> {
    let loc = resp.header("Location").ok_or_else(|| DistributionError::Registry {
        op: op.what.clone(),
        url: url.to_string(),
        status: resp.status,
        message: "upload answer without a Location".to_string(),
    })?;
    url.join(loc).map_err(|source| DistributionError::Http { op: op.what.clone(), url: url.to_string(), source })
}

/// Counts the bytes a request body has read, for progress.
struct Counted<R> {
    inner: R,
    sent: u64,
    progress: UploadProgress,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sent += n as u64;
        (self.progress)(self.sent);
        Ok(n)
    }
}
