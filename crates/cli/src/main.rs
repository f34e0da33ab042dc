//! The wharf command-line interface.
fn main() {}
