//! The services of the daemon as a plain Rust API: images, pull, containers; knows nothing of HTTP.
