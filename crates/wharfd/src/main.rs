//! The wharf daemon.
fn main() {}
