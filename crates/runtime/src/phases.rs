//! Time stamps of the phases of one container start, on the system-wide monotonic clock, so
//! that stamps taken in wharfd, the shim and the container's init line up. wharfd logs them
//! at debug level and `bench/start-latency.sh` prints the median of each.

/// Nanoseconds on CLOCK_MONOTONIC (the same clock in every process of the host).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime fills the struct we pass; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Named stamps in the order they were taken.
pub type Phases = Vec<(String, u64)>;

/// Stamps the container's init takes before exec, sent to the parent with the error pipe.
pub(crate) const CHILD: [&str; 4] = ["child", "rootfs", "process", "go"];

/// The first byte of the stamp record the child writes just before exec; a failure record
/// (`ChildFailure::encode`) may follow it.
const TAG: u8 = 0xfe;

pub(crate) fn encode_child(stamps: &[u64; CHILD.len()]) -> [u8; 1 + 8 * CHILD.len()] {
    let mut out = [0u8; 1 + 8 * CHILD.len()];
    out[0] = TAG;
    for (i, t) in stamps.iter().enumerate() {
        out[1 + 8 * i..9 + 8 * i].copy_from_slice(&t.to_le_bytes());
    }
    out
}

/// Splits the child's stamps off the front of what came through the error pipe.
pub(crate) fn split_child(msg: &[u8]) -> (Phases, &[u8]) {
    let len = 1 + 8 * CHILD.len();
    if msg.len() < len || msg[0] != TAG {
        return (Vec::new(), msg);
    }
    let stamps = CHILD
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&msg[1 + 8 * i..9 + 8 * i]);
            (name.to_string(), u64::from_le_bytes(b))
        })
        .collect();
    (stamps, &msg[len..])
}

/// `name +1.23` per stamp, in milliseconds from `base`, in time order: one log line.
pub fn describe(base: u64, phases: &Phases) -> String {
    let mut sorted: Vec<&(String, u64)> = phases.iter().collect();
    sorted.sort_by_key(|(_, t)| *t);
    sorted
        .iter()
        .map(|(name, t)| format!("{name} +{:.2}", t.saturating_sub(base) as f64 / 1e6))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_stamps_come_off_the_front_of_a_failure() {
        let rec = encode_child(&[1, 2, 3, 4]);
        let mut msg = rec.to_vec();
        msg.extend_from_slice(b"\x01no such file");
        let (stamps, rest) = split_child(&msg);
        assert_eq!(stamps.iter().map(|(_, t)| *t).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(stamps[0].0, "child");
        assert_eq!(rest, b"\x01no such file");
        // A failure before the stamps were taken is left whole.
        assert_eq!(split_child(b"\x02denied").1, b"\x02denied");
        assert!(split_child(&rec).1.is_empty());
    }

    #[test]
    fn described_in_time_order_from_the_base() {
        let p = vec![("b".to_string(), 3_500_000), ("a".to_string(), 2_000_000)];
        assert_eq!(describe(1_000_000, &p), "a +1.00 b +2.50");
        assert!(now_ns() > 0);
    }
}
