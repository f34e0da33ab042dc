//! Linux capabilities of the container process: the name table, the sets computed from
//! `process.capabilities`, and the syscalls that apply them in the container init as runc does.

use crate::spec::Capabilities;

/// Every capability the kernel headers name, indexed by number (`CAP_CHOWN` is 0).
pub const NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The number of a capability named as in the runtime spec (`CAP_KILL`); the `CAP_` prefix
/// and case are optional, as Docker's `--cap-add` accepts.
pub fn number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
    NAMES.iter().position(|n| *n == full).map(|i| i as u32)
}

/// The spec's name of capability `cap`, if the table knows it.
pub fn name(cap: u32) -> Option<&'static str> {
    NAMES.get(cap as usize).copied()
}

/// A set of capabilities as the kernel's 64-bit mask.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSet(pub u64);

impl CapSet {
    pub fn contains(self, cap: u32) -> bool {
        cap < 64 && self.0 & (1 << cap) != 0
    }

    fn parse(names: &[String], set: &str) -> Result<CapSet, String> {
        let mut mask = 0u64;
        for n in names {
            let cap = number(n).ok_or_else(|| format!("unknown capability {n:?} in {set}"))?;
            mask |= 1 << cap;
        }
        Ok(CapSet(mask))
    }

    /// The lower and upper 32 bits, as `capset`'s two data words want them.
    fn words(self) -> [u32; 2] {
        [self.0 as u32, (self.0 >> 32) as u32]
    }
}

/// The five sets of `process.capabilities`, parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: CapSet,
    pub effective: CapSet,
    pub inheritable: CapSet,
    pub permitted: CapSet,
    pub ambient: CapSet,
}

impl CapSets {
    /// Parses every set; an unknown name is an error that names it (runc only warns, but a
    /// typo in a capability would otherwise silently leave the container without it).
    pub fn parse(caps: &Capabilities) -> Result<CapSets, String> {
        Ok(CapSets {
            bounding: CapSet::parse(&caps.bounding, "bounding")?,
            effective: CapSet::parse(&caps.effective, "effective")?,
            inheritable: CapSet::parse(&caps.inheritable, "inheritable")?,
            permitted: CapSet::parse(&caps.permitted, "permitted")?,
            ambient: CapSet::parse(&caps.ambient, "ambient")?,
        })
    }

    /// Leaves out what the running kernel does not know (numbers above `last_cap`), as runc
    /// does: asking a 5.4 kernel for CAP_BPF must not fail the container.
    pub fn limit_to(self, last_cap: u32) -> CapSets {
        let mask = if last_cap >= 63 { u64::MAX } else { (1u64 << (last_cap + 1)) - 1 };
        let m = |s: CapSet| CapSet(s.0 & mask);
        CapSets {
            bounding: m(self.bounding),
            effective: m(self.effective),
            inheritable: m(self.inheritable),
            permitted: m(self.permitted),
            ambient: m(self.ambient),
        }
    }
}

/// The highest capability number the running kernel knows.
pub fn last_cap() -> Result<u32, String> {
    let path = "/proc/sys/kernel/cap_last_cap";
    let text = std::fs::read_to_string(path).map_err(|e| format!("read {path}: {e}"))?;
    text.trim().parse().map_err(|_| format!("{path}: unexpected content {:?}", text.trim()))
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets passed as two 32-bit words.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Which step failed, with the errno, for the init's error message.
pub(crate) type CapResult = Result<(), (String, i32)>;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Drops from the bounding set every capability up to `last_cap` that `keep` lacks. Needs
/// CAP_SETPCAP, so it runs while the init is still fully privileged.
pub(crate) fn apply_bounding(keep: CapSet, last_cap: u32) -> CapResult {
    for cap in 0..=last_cap {
        if keep.contains(cap) {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        // EINVAL: a capability this kernel does not have, nothing to drop.
        if rc != 0 && errno() != libc::EINVAL {
            return Err((format!("drop {} from the bounding set", name(cap).unwrap_or("capability")), errno()));
        }
    }
    Ok(())
}

/// Sets or clears PR_SET_KEEPCAPS: with it, setuid away from 0 keeps the permitted set, so
/// the spec's sets can still be installed after the user switch.
pub(crate) fn keep_caps(on: bool) -> CapResult {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, on as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(("set keepcaps".to_string(), errno()));
    }
    Ok(())
}

/// Installs the effective, permitted and inheritable sets, then the ambient set (cleared
/// first, then each capability raised; the kernel wants it in permitted and inheritable).
pub(crate) fn apply_sets(sets: &CapSets) -> CapResult {
    let mut header = CapHeader { version: CAPABILITY_VERSION_3, pid: 0 };
    let (e, p, i) = (sets.effective.words(), sets.permitted.words(), sets.inheritable.words());
    let data = [
        CapData { effective: e[0], permitted: p[0], inheritable: i[0] },
        CapData { effective: e[1], permitted: p[1], inheritable: i[1] },
    ];
    // SAFETY: capset reads one v3 header and the two data words it asks for, both valid.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut CapHeader, data.as_ptr()) };
    if rc != 0 {
        return Err(("set capabilities".to_string(), errno()));
    }
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0) };
    // EINVAL: a kernel without ambient capabilities; only an error if some are asked for.
    if rc != 0 && !(errno() == libc::EINVAL && sets.ambient.0 == 0) {
        return Err(("clear the ambient set".to_string(), errno()));
    }
    for cap in 0..64 {
        if !sets.ambient.contains(cap) {
            continue;
        }
        let raise = libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong;
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAP_AMBIENT, raise, cap as libc::c_ulong, 0, 0) } != 0 {
            return Err((format!("raise ambient {}", name(cap).unwrap_or("capability")), errno()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        let table = [
            ("CAP_CHOWN", Some(0)),
            ("CAP_KILL", Some(5)),
            ("CAP_NET_BIND_SERVICE", Some(10)),
            ("CAP_NET_RAW", Some(13)),
            ("CAP_SYS_CHROOT", Some(18)),
            ("CAP_SYS_ADMIN", Some(21)),
            ("CAP_MKNOD", Some(27)),
            ("CAP_AUDIT_WRITE", Some(29)),
            ("CAP_SETFCAP", Some(31)),
            ("CAP_AUDIT_READ", Some(37)),
            ("CAP_BPF", Some(39)),
            ("CAP_CHECKPOINT_RESTORE", Some(40)),
            ("net_admin", Some(12)),
            ("SYS_PTRACE", Some(19)),
            ("CAP_NOPE", None),
            ("", None),
            ("CAP_", None),
        ];
        for (input, want) in table {
            assert_eq!(number(input), want, "{input}");
        }
        for (i, n) in NAMES.iter().enumerate() {
            assert_eq!(number(n), Some(i as u32));
            assert_eq!(name(i as u32), Some(*n));
        }
        assert_eq!(name(41), None);
    }

    #[test]
    fn docker_default_set_mask() {
        let names: Vec<String> = [
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_FSETID",
            "CAP_FOWNER",
            "CAP_MKNOD",
            "CAP_NET_RAW",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SETFCAP",
            "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE",
            "CAP_SYS_CHROOT",
            "CAP_KILL",
            "CAP_AUDIT_WRITE",
        ]
        .map(String::from)
        .to_vec();
        let caps = Capabilities { bounding: names.clone(), permitted: names, ..Default::default() };
        let sets = CapSets::parse(&caps).unwrap();
        // What /proc/PID/status shows as CapBnd for a docker container.
        assert_eq!(sets.bounding.0, 0x00000000a80425fb);
        assert_eq!(sets.permitted, sets.bounding);
        assert_eq!(sets.effective.0, 0);
        assert_eq!(sets.bounding.words(), [0xa80425fb, 0]);
    }

    #[test]
    fn unknown_capability_is_named() {
        let caps = Capabilities { ambient: vec!["CAP_FLY".to_string()], ..Default::default() };
        let err = CapSets::parse(&caps).unwrap_err();
        assert!(err.contains("CAP_FLY") && err.contains("ambient"), "{err}");
    }

    #[test]
    fn limit_to_drops_unknown_numbers() {
        let sets = CapSets { bounding: CapSet(1 << 40 | 1 << 5), ..Default::default() };
        assert_eq!(sets.limit_to(40).bounding.0, 1 << 40 | 1 << 5);
        assert_eq!(sets.limit_to(39).bounding.0, 1 << 5);
        assert_eq!(sets.limit_to(63).bounding.0, 1 << 40 | 1 << 5);
        assert!(last_cap().unwrap() >= 36);
    }
}
