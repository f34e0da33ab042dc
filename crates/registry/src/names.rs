//! Repository names and tags, checked against the distribution spec's patterns before they
//! reach the database or a path: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`
//! for names, `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}` for tags. Hand-written so that no regex
//! engine is needed; the patterns leave no room for `..`, `%`, upper case or empty components.

/// The longest repository name accepted. The spec lets registries limit names; 255 is what
/// clients assume for `host[:port]/name` as a whole and what distribution enforces.
pub const MAX_NAME_LEN: usize = 255;

/// The longest tag the spec allows.
pub const MAX_TAG_LEN: usize = 128;

/// Whether `name` is a repository name as the spec defines it.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.split('/').all(valid_component)
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// One path component: runs of `[a-z0-9]` joined by exactly one separator, which is `.`,
/// `_`, `__` or any number of `-`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    match (b.first(), b.last()) {
        (Some(&first), Some(&last)) if is_alnum(first) && is_alnum(last) => {}
        _ => return false,
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &b[start..i];
        let ok = sep == b"." || sep == b"_" || sep == b"__" || sep.iter().all(|&x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Whether `tag` is a tag as the spec defines it.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let Some(&first) = b.first() else {
        return false;
    };
    b.len() <= MAX_TAG_LEN
        && (first.is_ascii_alphanumeric() || first == b'_')
        && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'_' || x == b'.' || x == b'-')
}

/// Whether an upload id is one this registry could have made (32 lowercase hex digits), so
/// that it is safe in a path and a key.
pub fn valid_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "library/busybox", "a.b/c_d/e__f/g-h/i---j", "0/1", "x/y/z/w"] {
            assert!(valid_name(good), "{good}");
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        for bad in [
            "",
            "/",
            "/a",
            "a/",
            "a//b",
            "..",
            "a/../b",
            "a/..",
            "%2e%2e",
            "a/%2e%2e/b",
            "Library/busybox",
            "a..b",
            "a._b",
            "a___b",
            "-a",
            "a-",
            ".a",
            "a b",
            "a\0b",
            "ä",
            long.as_str(),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn tags() {
        let max = "t".repeat(MAX_TAG_LEN);
        for good in ["latest", "v1.2.3", "_x", "A-b_c.D", "1", max.as_str(), "sha256-abc"] {
            assert!(valid_tag(good), "{good}");
        }
        let over = "t".repeat(MAX_TAG_LEN + 1);
        for bad in ["", ".x", "-x", "a/b", "a:b", "a%2e", over.as_str(), "é"] {
            assert!(!valid_tag(bad), "{bad:?}");
        }
    }

    #[test]
    fn upload_ids() {
        assert!(valid_upload_id("0123456789abcdef0123456789abcdef"));
        assert!(!valid_upload_id("../0123456789abcdef0123456789abc"));
        assert!(!valid_upload_id("0123456789ABCDEF0123456789abcdef"));
    }
}
