//! Fuzz target: `docker load` input (a docker-archive or an OCI image layout, as a tar),
//! staged and checked as a load does it, storing nothing. Images or an error, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(images) = wharf_engine::inspect_archive(data) {
        assert!(!images.is_empty(), "an archive was accepted with no image in it");
    }
});
