//! The `Content-Range` header of a 206 answer to a ranged blob GET (RFC 9110 §14.4).

/// `bytes START-END/TOTAL`; `total` is `None` for `*` (length unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    pub start: u64,
    pub end: u64,
    pub total: Option<u64>,
}

impl ContentRange {
    /// Parses a satisfied range; `None` for anything else (an unsatisfied `bytes */N`, another
    /// unit, an end before the start or past the total).
    pub fn parse(value: &str) -> Option<ContentRange> {
        let rest = value.trim().strip_prefix("bytes ")?;
        let (span, total) = rest.split_once('/')?;
        let (start, end) = span.trim().split_once('-')?;
        let start: u64 = digits(start)?;
        let end: u64 = digits(end)?;
        let total = match total.trim() {
            "*" => None,
            t => Some(digits(t)?),
        };
        if end < start || total.is_some_and(|t| end >= t) {
            return None;
        }
        Some(ContentRange { start, end, total })
    }

    /// Whether this range is the rest of a blob of `size` bytes from `offset` on.
    pub fn is_rest_of(&self, offset: u64, size: u64) -> bool {
        self.start == offset && self.end + 1 == size && self.total.is_none_or(|t| t == size)
    }
}

/// Plain decimal digits only (`u64::from_str` would take a leading `+`).
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        let r = |start, end, total| Some(ContentRange { start, end, total });
        let table = [
            ("bytes 100-999/1000", r(100, 999, Some(1000))),
            ("bytes 0-0/1", r(0, 0, Some(1))),
            ("bytes 100-999/*", r(100, 999, None)),
            ("  bytes 5-9/10 ", r(5, 9, Some(10))),
            ("bytes 100-1000/1000", None),
            ("bytes 10-9/100", None),
            ("bytes */1000", None),
            ("bytes 100-/1000", None),
            ("bytes +1-5/10", None),
            ("items 0-1/2", None),
            ("bytes 0-1", None),
            ("", None),
            ("bytes 99999999999999999999-1/2", None),
        ];
        for (value, want) in table {
            assert_eq!(ContentRange::parse(value), want, "{value:?}");
        }
    }

    #[test]
    fn rest_of() {
        let table = [
            ("bytes 100-999/1000", 100, 1000, true),
            ("bytes 100-999/*", 100, 1000, true),
            ("bytes 101-999/1000", 100, 1000, false),
            ("bytes 100-500/1000", 100, 1000, false),
            ("bytes 100-999/2000", 100, 1000, false),
        ];
        for (value, offset, size, want) in table {
            let r = ContentRange::parse(value).unwrap();
            assert_eq!(r.is_rest_of(offset, size), want, "{value:?}");
        }
    }
}
