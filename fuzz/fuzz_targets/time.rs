//! Fuzz target: the time stamp and duration parsers that read image configs and API queries
//! (`since`, `until`, prune filters, health-check intervals). Never a panic; a parsed RFC 3339
//! time prints as one that parses back to the same instant.

#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use wharf_types::time::{parse_duration, parse_go_duration, parse_rfc3339, parse_time_arg, rfc3339_nanos};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(t) = parse_rfc3339(&text) {
        let printed = rfc3339_nanos(t);
        assert_eq!(parse_rfc3339(&printed), Some(t), "{text:?} printed as {printed:?}");
    }
    if let Ok(ns) = parse_go_duration(&text) {
        assert_eq!(parse_duration(&text).is_some(), ns >= 0, "{text:?}");
    }
    let _ = parse_time_arg(&text, UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let _ = parse_time_arg(&text, UNIX_EPOCH);
});
