//! Fuzz target: a layer tar applied by the snapshotter into a scratch root, as a pull does.
//! Any bytes give a layer or an error, never a panic; nothing is written outside the scratch
//! root (a sentinel beside it stays untouched) and a failed apply leaves no temp dir.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wharf_snapshot::Snapshotter;
use wharf_types::Digest;

struct Scratch {
    root: PathBuf,
    sentinel: PathBuf,
}

fn scratch() -> &'static Scratch {
    static SCRATCH: OnceLock<Scratch> = OnceLock::new();
    SCRATCH.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("wharf-fuzz-layer-{}", std::process::id()));
        let root = base.join("snapshots");
        let sentinel = base.join("sentinel");
        std::fs::create_dir_all(&sentinel).expect("scratch dir");
        Scratch { root, sentinel }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = scratch();
    let mut snap = Snapshotter::open(&s.root).expect("open snapshotter");
    snap.set_sync(false);
    let chain = Digest::of(data);
    match snap.apply_layer(&chain, None, data) {
        Ok(_) => snap.remove_layer(&chain).expect("remove the layer"),
        Err(_) => {
            let left = std::fs::read_dir(s.root.join("tmp")).map(|d| d.count()).unwrap_or(0);
            assert_eq!(left, 0, "a failed apply left a temp dir");
        }
    }
    let outside = std::fs::read_dir(&s.sentinel).map(|d| d.count()).unwrap_or(0);
    assert_eq!(outside, 0, "the layer wrote outside the scratch root");
});
