//! Fuzz target: Docker's `name=` filter, a pattern from the API matched against a container
//! name. Never a panic, and (being an automaton) never slow whatever the pattern.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_types::pattern::name_filter_matches;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (pattern, name) = text.split_once('\n').unwrap_or((&text, "web-1_x.y"));
    let _ = name_filter_matches(pattern, name);
    let _ = name_filter_matches(pattern, &"a".repeat(255));
});
