//! Fuzz target: manifests, indexes and image configs as a registry or an archive hands them
//! over. Any bytes parse or are refused, never a panic; a parsed index selects a platform.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_types::oci::{parse_manifest, ImageConfig, ManifestKind, Platform};

const MEDIA_TYPES: &[&str] = &[
    "",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "text/plain",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let media_type = MEDIA_TYPES[pick as usize % MEDIA_TYPES.len()];
    if let Ok(ManifestKind::Index(index)) = parse_manifest(media_type, body) {
        let _ = index.select(&Platform::host());
        for p in ["linux/amd64", "linux/arm64/v8", "windows/amd64"] {
            if let Some(p) = Platform::parse(p) {
                let _ = index.select(&p);
            }
        }
    }
    let _ = serde_json::from_slice::<ImageConfig>(body);
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = Platform::parse(text);
    }
});
