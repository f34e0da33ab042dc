//! Integration tests of the registry client: a real `docker-registry` on loopback, and scripted
//! servers for authentication and misbehaving registries.

mod auth;
mod harness;
mod registry;
