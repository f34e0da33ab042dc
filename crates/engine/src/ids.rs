//! Random container ids and Docker-style generated names.

use wharf_types::digest::to_hex;

/// 64 hex digits from the kernel's random source, like Docker's container ids.
pub fn random_id() -> String {
    let mut buf = [0u8; 32];
    fill_random(&mut buf);
    to_hex(&buf)
}

fn fill_random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`.
        let n = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // getrandom cannot fail on a running kernel once the pool is initialized; fall back
            // to time and pid so an id is still unique on this host.
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let seed = t.as_nanos() ^ (std::process::id() as u128) << 64;
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (seed >> ((i % 16) * 8)) as u8;
            }
            return;
        }
    }
}

const ADJECTIVES: &[&str] = &[
    "brave",
    "calm",
    "clever",
    "eager",
    "fervent",
    "gallant",
    "happy",
    "jolly",
    "keen",
    "lucid",
    "modest",
    "nifty",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "stoic",
    "tender",
    "vibrant",
    "wizardly",
    "zealous",
    "bold",
    "crisp",
    "dreamy",
    "focused",
    "gentle",
    "humble",
    "kind",
    "loving",
    "mystifying",
    "nostalgic",
    "pensive",
];

const NOUNS: &[&str] = &[
    "lovelace",
    "turing",
    "hopper",
    "ritchie",
    "thompson",
    "torvalds",
    "knuth",
    "dijkstra",
    "hamilton",
    "liskov",
    "kernighan",
    "babbage",
    "noether",
    "curie",
    "darwin",
    "euler",
    "fermat",
    "gauss",
    "hypatia",
    "johnson",
    "kepler",
    "lamport",
    "mccarthy",
    "newton",
    "pascal",
    "shannon",
    "tesla",
    "wozniak",
    "allen",
    "bardeen",
    "cerf",
    "wing",
];

/// A name such as `brave_lovelace`, as Docker generates when none is given.
pub fn random_name() -> String {
    let mut b = [0u8; 2];
    fill_random(&mut b);
    format!("{}_{}", ADJECTIVES[b[0] as usize % ADJECTIVES.len()], NOUNS[b[1] as usize % NOUNS.len()])
}

/// Docker's rule for container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..].iter().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names() {
        let a = random_id();
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_id());
        assert!(valid_name(&random_name()));
        for (n, ok) in [("web", true), ("a", false), ("-x", false), ("my.app_1-2", true), ("a b", false), ("/x", false)]
        {
            assert_eq!(valid_name(n), ok, "{n}");
        }
    }
}
