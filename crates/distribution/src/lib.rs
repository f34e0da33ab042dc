//! Registry client for the OCI distribution protocol: manifests, blobs, auth, mirrors.
//!
//! Synchronous: the daemon calls it from blocking threads. [`RegistryClient::resolve`] turns a
//! reference into a verified, platform-specific manifest and the endpoint that served it;
//! [`RegistryClient::fetch_blob`] and [`RegistryClient::open_blob`] then read blobs from there.

mod auth;
mod client;
mod endpoint;
mod error;
mod push;
mod range;
mod search;
mod tags;

use std::path::PathBuf;

pub use auth::AuthConfig;
pub use client::{RegistryClient, Resolved, MANIFEST_ACCEPT};
pub use endpoint::{Endpoint, DOCKER_HUB_ORIGIN};
pub use error::DistributionError;
pub use push::{BlobSource, Mount, UploadProgress};
pub use range::ContentRange;
pub use search::SearchAnswer;
pub use wharf_http::ProxyConfig;

/// The registry settings of `daemon.json`.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// `registry-mirrors`: base URLs tried first for every registry (same repository path),
    /// falling back to the origin on any failure.
    pub mirrors: Vec<String>,
    /// `insecure-registries`: `host[:port]` entries or CIDRs (`10.0.0.0/8`) that may be reached
    /// over plain HTTP. Loopback registries always are.
    pub insecure: Vec<String>,
    /// Docker's `certs.d` directory (`/etc/wharf/certs.d/<host:port>/ca.crt`).
    pub certs_dir: Option<PathBuf>,
    pub user_agent: String,
    /// Forward proxies (`HTTP_PROXY`… or daemon.json's `proxies`), used for registries, token
    /// servers and blob redirects alike.
    pub proxy: wharf_http::ProxyConfig,
}
