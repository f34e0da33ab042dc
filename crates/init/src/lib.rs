//! The container init for `--init`, as bytes: `build.rs` compiles `init_main.rs` into a
//! statically linked executable (it runs inside images with any or no C library) and the
//! engine writes it out once and bind-mounts it at `/sbin/docker-init`.

/// The static `wharf-init` executable.
pub const INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/wharf-init"));

#[cfg(test)]
mod tests {
    #[test]
    fn is_a_static_elf() {
        assert_eq!(&super::INIT[..4], b"\x7fELF");
        // No PT_INTERP program header: nothing to load at exec.
        assert!(!super::INIT.windows(27).any(|w| w == b"/lib64/ld-linux-x86-64.so.2"));
    }
}
