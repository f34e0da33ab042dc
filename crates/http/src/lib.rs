//! A small synchronous HTTP/1.1 client over TCP, TLS or unix sockets.
