//! `%XX` escapes in URLs: query strings, path segments, user info. Decoding is lenient as Go's query
//! parsing is not: a `%` not followed by two hex digits stays as it is, and bytes that do not
//! make UTF-8 are replaced, so untrusted input decodes to something without an error.

#![warn(clippy::indexing_slicing)]

/// Decodes `%XX` escapes; with `plus_is_space` (a form-encoded query) `+` is a space too.
pub fn decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = |j: usize| b.get(j).and_then(|d| (*d as char).to_digit(16));
        match (c, hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a query value, form field or path segment: everything but RFC 3986's
/// unreserved characters (`A-Z a-z 0-9 - . _ ~`) becomes `%XX`.
pub fn encode(s: &str) -> String {
    encode_with(s, false)
}

/// [`encode`] for `application/x-www-form-urlencoded` (and Go's `url.Values`): space is `+`.
pub fn encode_form(s: &str) -> String {
    encode_with(s, true)
}

fn encode_with(s: &str, plus_for_space: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            b' ' if plus_for_space => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_table() {
        assert_eq!(encode("a b/c?d=é~"), "a%20b%2Fc%3Fd%3D%C3%A9~");
        assert_eq!(encode_form("a b+c"), "a+b%2Bc");
        for s in ["a b", "x+y", "100%", "ünï/çødé"] {
            assert_eq!(decode(&encode(s), false), s);
            assert_eq!(decode(&encode_form(s), true), s);
        }
    }

    #[test]
    fn decode_table() {
        for (input, plus, want) in [
            ("a%20b", false, "a b"),
            ("a+b", false, "a+b"),
            ("a+b%2Bc", true, "a b+c"),
            ("%41%4a", false, "AJ"),
            ("100%", false, "100%"),
            ("%4", false, "%4"),
            ("%zz%+5", false, "%zz%+5"),
            ("u%40corp", false, "u@corp"),
            ("%ff", false, "\u{fffd}"),
        ] {
            assert_eq!(decode(input, plus), want, "{input:?}");
        }
    }
}
