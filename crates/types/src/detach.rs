//! Docker's detach keys (`--detach-keys`, `detachKeys`): their parser and the scanner that
//! finds the sequence in an interactive session's input, for the daemon (which ends an attach
//! or exec when it sees them) and the CLI (which leaves the session) alike.

/// Docker's default detach sequence: ctrl-p ctrl-q.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[0x10, 0x11];

/// Parses Docker's `--detach-keys` (`ctrl-p,ctrl-q`, `a,ctrl-@`); empty disables. The error
/// names the key it does not know.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    if spec.is_empty() {
        return Ok(out);
    }
    for part in spec.split(',') {
        let bad = || format!("invalid detach keys {spec:?}: unknown key {part:?}");
        let key = match part.strip_prefix("ctrl-").map(str::as_bytes) {
            Some([c]) => match c.to_ascii_lowercase() {
                c @ b'a'..=b'z' => c - b'a' + 1,
                b'@' => 0,
                b'[' => 27,
                b'\\' => 28,
                b']' => 29,
                b'^' => 30,
                b'_' => 31,
                _ => return Err(bad()),
            },
            Some(_) => return Err(bad()),
            None => match part.as_bytes() {
                [c] => *c,
                _ => return Err(bad()),
            },
        };
        out.push(key);
    }
    Ok(out)
}

/// Finds the detach sequence in input as it arrives, across reads.
#[derive(Debug, Clone)]
pub struct DetachScanner {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachScanner {
    /// A scanner for `keys`; empty never detaches.
    pub fn new(keys: Vec<u8>) -> DetachScanner {
        DetachScanner { keys, matched: 0 }
    }

    /// The bytes of `data` to pass on, and whether the sequence was completed in it (the bytes
    /// after it are dropped). Bytes that began the sequence but did not complete it are passed
    /// on once it breaks: they were ordinary input after all.
    pub fn feed(&mut self, data: &[u8]) -> (Vec<u8>, bool) {
        if self.keys.is_empty() {
            return (data.to_vec(), false);
        }
        let mut out = Vec::with_capacity(data.len());
        for &b in data {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_table() {
        let cases: &[(&str, Option<&[u8]>)] = &[
            ("ctrl-p,ctrl-q", Some(&[0x10, 0x11])),
            ("a,ctrl-@", Some(&[b'a', 0])),
            ("ctrl-\\", Some(&[28])),
            ("ctrl-A", Some(&[1])),
            ("", Some(&[])),
            ("ctrl-", None),
            ("ctrl-pp", None),
            ("esc", None),
        ];
        for (spec, want) in cases {
            assert_eq!(parse_detach_keys(spec).ok().as_deref(), *want, "{spec}");
        }
        assert_eq!(
            parse_detach_keys("ctrl-p,esc").unwrap_err(),
            "invalid detach keys \"ctrl-p,esc\": unknown key \"esc\""
        );
    }

    #[test]
    fn scanner_finds_keys_across_reads() {
        let mut s = DetachScanner::new(vec![0x10, 0x11]);
        assert_eq!(s.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(s.feed(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(s.feed(b"\x10\x10"), (b"\x10".to_vec(), false));
        assert_eq!(s.feed(b"\x11rest"), (Vec::new(), true));
        let mut none = DetachScanner::new(Vec::new());
        assert_eq!(none.feed(b"\x10\x11"), (b"\x10\x11".to_vec(), false));
    }
}
