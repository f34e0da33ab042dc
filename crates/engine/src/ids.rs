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

/// A name such as `brave_lovelace`, as Docker generates when none is given; a retry gets a
/// random digit on the end (`brave_lovelace7`), as Docker's generator does.
pub fn random_name(retry: u32) -> String {
    let mut b = [0u8; 3];
    fill_random(&mut b);
    let name = format!("{}_{}", ADJECTIVES[b[0] as usize % ADJECTIVES.len()], NOUNS[b[1] as usize % NOUNS.len()]);
    if retry == 0 {
        name
    } else {
        format!("{name}{}", b[2] % 10)
    }
}

/// The name of a new container given none: a few random tries, then its short id, as dockerd
/// does. The word lists make 1,024 names (10,240 with a digit): without the fallback the
/// 1,025th unnamed container would never get one.
pub fn pick_name<E>(id: &str, mut taken: impl FnMut(&str) -> Result<bool, E>) -> Result<String, E> {
    for retry in 0..6 {
        let name = random_name(retry);
        if !taken(&name)? {
            return Ok(name);
        }
    }
    // A name someone chose may be that short id already; the whole id then.
    let short = id.get(..12).unwrap_or(id);
    Ok(if taken(short)? { id.to_string() } else { short.to_string() })
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
        assert!(valid_name(&random_name(0)));
        let retried = random_name(1);
        assert!(valid_name(&retried) && retried.ends_with(|c: char| c.is_ascii_digit()), "{retried}");
        for (n, ok) in [("web", true), ("a", false), ("-x", false), ("my.app_1-2", true), ("a b", false), ("/x", false)]
        {
            assert_eq!(valid_name(n), ok, "{n}");
        }
    }

    #[test]
    fn names_run_out_into_the_short_id() {
        let id = random_id();
        let mut tries = 0;
        let name = pick_name::<()>(&id, |_| {
            tries += 1;
            Ok(true)
        })
        .unwrap();
        assert_eq!((name.as_str(), tries), (id.as_str(), 7));
        let name = pick_name::<()>(&id, |n| Ok(n.contains('_'))).unwrap();
        assert_eq!(Some(name.as_str()), id.get(..12));
        assert!(pick_name::<()>(&id, |n| Ok(n.ends_with(|c: char| c.is_ascii_digit()))).unwrap().contains('_'));
    }
}
