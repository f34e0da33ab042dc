//! Crash points for the recovery tests: `WHARF_FAILPOINTS=start-after-spawn,...` in wharfd's
//! environment makes it `kill -9` itself when it reaches one of the named steps, so a test can
//! stop the daemon at an exact instant of an operation and check what the next start makes of it.

use std::sync::OnceLock;

/// The names this build knows, so a typo in a test fails loudly instead of never firing.
pub const POINTS: &[&str] = &[
    "create-after-files",
    "create-after-record",
    "start-after-network",
    "start-after-spawn",
    "remove-after-kill",
    "remove-after-record",
    "network-create-after-record",
    "network-rm-after-bridge",
];

fn armed() -> &'static [String] {
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    ARMED.get_or_init(|| {
        let list = std::env::var("WHARF_FAILPOINTS").unwrap_or_default();
        let armed: Vec<String> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        for p in &armed {
            if !POINTS.contains(&p.as_str()) {
                log::error!("WHARF_FAILPOINTS: unknown point {p:?}; known: {}", POINTS.join(", "));
            }
        }
        armed
    })
}

/// Dies at once, as `kill -9` would, when `point` is armed.
pub(crate) fn hit(point: &str) {
    debug_assert!(POINTS.contains(&point), "failpoint {point} is not listed in POINTS");
    if armed().iter().any(|p| p == point) {
        log::warn!("failpoint {point}: killing wharfd");
        // SAFETY: raise(2) with a valid signal number; SIGKILL cannot be caught.
        unsafe { libc::raise(libc::SIGKILL) };
    }
}
