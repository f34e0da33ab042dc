//! The per-container monitor process.
fn main() {}
