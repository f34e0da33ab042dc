//! Query strings for API requests, percent-encoded the way Go's `url.Values.Encode` does.

/// An ordered list of query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn new() -> Query {
        Query::default()
    }

    /// Adds a parameter.
    pub fn set(mut self, key: &str, value: impl Into<String>) -> Query {
        self.0.push((key.to_string(), value.into()));
        self
    }

    /// Adds a parameter only when `value` is not empty.
    pub fn set_nonempty(self, key: &str, value: &str) -> Query {
        if value.is_empty() {
            self
        } else {
            self.set(key, value)
        }
    }

    /// Adds `key=1` when `flag` is set, as the docker CLI sends booleans.
    pub fn flag(self, key: &str, flag: bool) -> Query {
        if flag {
            self.set(key, "1")
        } else {
            self
        }
    }

    /// Appends the query to `path` (`path?k=v&...`, or `path` alone when empty).
    pub fn to_target(&self, path: &str) -> String {
        if self.0.is_empty() {
            return path.to_string();
        }
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        format!("{path}?{}", parts.join("&"))
    }
}

/// Percent-encodes a query component: unreserved characters stay, space becomes `+`.
pub fn encode(s: &str) -> String {
    wharf_types::percent::encode_form(s)
}

/// One segment of a request path (a network name may have spaces): percent-encoded except
/// for RFC 3986's unreserved characters and `:` and `@`.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' | b'@' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_escape_spaces_and_slashes() {
        assert_eq!(path_segment("my net/x"), "my%20net%2Fx");
        assert_eq!(path_segment("web:1@a"), "web:1@a");
    }

    #[test]
    fn encodes_table() {
        let cases = [
            ("busybox", "busybox"),
            ("127.0.0.1:5000/a/b", "127.0.0.1%3A5000%2Fa%2Fb"),
            ("a b&c=d", "a+b%26c%3Dd"),
            (r#"{"status":{"exited":true}}"#, "%7B%22status%22%3A%7B%22exited%22%3Atrue%7D%7D"),
            ("é", "%C3%A9"),
        ];
        for (input, want) in cases {
            assert_eq!(encode(input), want, "{input}");
        }
    }

    #[test]
    fn builds_targets() {
        assert_eq!(Query::new().to_target("/x"), "/x");
        let q = Query::new().set("name", "web").flag("all", true).flag("size", false).set_nonempty("platform", "");
        assert_eq!(q.to_target("/containers/json"), "/containers/json?name=web&all=1");
    }
}
