//! Fuzz target: wharfd's daemon.json, read and checked as at start (no flags). A
//! configuration or an error naming the problem, never a panic.

#![no_main]

use clap::Parser;
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/wharfd/src/config.rs"]
mod config;
// config.rs checks every key against this table (`crate::keys`).
#[allow(dead_code)]
#[path = "../../crates/wharfd/src/keys.rs"]
mod keys;

fuzz_target!(|data: &[u8]| {
    let flags = config::Flags::parse_from(["wharfd"]);
    if let Ok(c) = config::DaemonConfig::parse(&flags, data) {
        assert!(!c.hosts.is_empty() && c.max_concurrent_downloads > 0, "{c:?}");
    }
});
