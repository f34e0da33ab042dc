//! wharf-registry: an OCI distribution-spec v1.1 registry server.
//!
//! - [`handlers`]: the protocol (with [`token_endpoint`], the only modules that know HTTP), errors in the spec's form
//!   from [`error`];
//! - [`meta`]: the index (repositories, tags, manifests, links, referrers, uploads) behind the
//!   `Metadata` trait, in an embedded redb database or in PostgreSQL ([`pg`]);
//! - [`store`]: blob bytes behind the `BlobStore` trait, on the local filesystem, or in an S3
//!   bucket ([`s3`]);
//! - [`auth`]: users, tokens and the access check; [`config`]: the config file;
//! - [`verified`]: which blobs need no hash on a read;
//! - [`gc`] and [`scrub`]: maintenance; [`server`]: shared state and the accept loop.

pub mod auth;
pub mod body;
pub mod config;
pub mod error;
pub mod gc;
pub mod handlers;
pub mod harbor;
pub mod login_limit;
pub mod manifest;
pub mod meta;
pub mod names;
pub mod pg;
pub mod s3;
pub mod scrub;
pub mod search_v1;
pub mod server;
pub mod store;
pub mod token_endpoint;
pub mod ui;
pub mod verified;
