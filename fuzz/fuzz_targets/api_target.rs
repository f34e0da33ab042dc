//! Fuzz target: the target of an API request (`/v1.45/images/a/b/json?filters=...`), parsed
//! as the router does before any handler: version, segments, query and filters. A result or
//! a 400's message, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (path, query) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (&*text, None),
    };
    let _ = wharf_api::parse_target(path, query);
});
