//! The Docker Engine API over HTTP/1.1 on a unix socket: the only crate that knows the wire format.
