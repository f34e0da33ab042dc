//! A small synchronous HTTP/1.1 client over TCP, TLS or unix sockets.
//!
//! One request per connection: [`send`] writes a request on a [`Stream`] and reads the response
//! head; the body is then read from the [`Response`]. [`Connector`] opens TCP or TLS streams for a
//! [`Url`]; [`connect_unix`] opens a unix socket (the Docker API socket).

mod connector;
mod error;
mod request;
mod response;
mod stream;
mod url;

pub use connector::{Connector, ConnectorOptions};
pub use error::HttpError;
pub use request::{send, Body, Request};
pub use response::Response;
pub use stream::{connect_unix, Stream};
pub use url::{Scheme, Url};

/// The most a response head (status line and headers) may take.
pub const MAX_HEAD_SIZE: usize = 64 << 10;
