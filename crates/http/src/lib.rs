//! A small synchronous HTTP/1.1 client over TCP, TLS or unix sockets.
//!
//! [`Connector::request`] sends a request to a [`Url`] over TCP or TLS, directly or through a
//! forward proxy ([`ProxyConfig`]), reusing keep-alive connections per origin; the body is then
//! read from the [`Response`], and a connection whose body was read to its end goes back to
//! the pool. [`send`] writes one request on a [`Stream`] of the caller's and closes it after
//! the response; [`connect_unix`] opens a unix socket (the Docker API socket).

mod connector;
mod error;
mod pool;
mod proxy;
mod request;
mod response;
mod stream;
mod url;

pub use connector::{Connector, ConnectorOptions};
pub use error::HttpError;
pub use proxy::{NoProxy, Proxy, ProxyConfig};
pub use request::{send, Body, Request};
pub use response::Response;
pub use stream::{connect_unix, Stream};
pub use url::{Scheme, Url};

/// The most a response head (status line and headers) may take.
pub const MAX_HEAD_SIZE: usize = 64 << 10;
