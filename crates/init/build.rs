//! Compiles `src/init_main.rs` into a statically linked `wharf-init` under OUT_DIR: cargo has
//! no per-crate `crt-static`, so the init is built by rustc directly.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=src/init_main.rs");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".to_string())).join("wharf-init");
    let status = Command::new(rustc)
        .args(["--edition", "2021", "--crate-type", "bin", "--crate-name", "wharf_init"])
        .args(["-C", "target-feature=+crt-static", "-C", "opt-level=s", "-C", "panic=abort", "-C", "strip=symbols"])
        .arg("src/init_main.rs")
        .arg("-o")
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => panic!("building the static wharf-init failed: {other:?}"),
    }
}
