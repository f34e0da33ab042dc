//! Integration tests of the registry client: a real `docker-registry` on loopback, and scripted
//! servers for authentication and misbehaving registries.

// Test code: a panic is the test's failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod harness;
mod registry;
