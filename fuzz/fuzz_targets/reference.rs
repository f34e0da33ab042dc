//! Fuzz target: image references and digests. Any text parses or is refused, never a panic,
//! and a reference that parses prints as one that parses back to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_types::{Digest, ImageRef};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(r) = ImageRef::parse(&text) {
        let printed = r.to_string();
        let again = ImageRef::parse(&printed).unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}: {e}"));
        assert_eq!(again.to_string(), printed, "{text:?}");
        let _ = (r.familiar(), r.familiar_name(), r.name());
        // A familiar name whose first component looks like a host is ambiguous in Docker too
        // (`docker.io/a.b/c` shows as `a.b/c`); any other must parse back to the same image.
        let familiar = r.familiar();
        let first = familiar.split('/').next().unwrap_or_default();
        if !familiar.contains('/') || !(first.contains('.') || first.contains(':') || first == "localhost") {
            let back = ImageRef::parse(&familiar).unwrap_or_else(|e| panic!("familiar of {text:?}: {e}"));
            assert_eq!(back.to_string(), printed, "familiar {familiar:?} of {text:?}");
        }
    }
    let _ = ImageRef::parse_any(&text);
    if let Ok(d) = text.parse::<Digest>() {
        assert_eq!(d.to_string().parse::<Digest>().ok(), Some(d.clone()), "{text:?}");
        let _ = d.short();
    }
    let _ = Digest::from_hex(&text);
});
