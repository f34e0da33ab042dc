//! Query strings: percent-decoding, Docker's booleans, and the JSON `filters` parameter.

use std::collections::BTreeMap;

use crate::error::ApiError;

pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        let pairs = q
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (decode(k), decode(v)),
                None => (decode(p), String::new()),
            })
            .collect();
        Query { pairs }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated key (`names=a&names=b`).
    pub fn get_all(&self, key: &str) -> Vec<String> {
        self.pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
    }

    /// Docker's boolean parameters: absent, empty, `0`, `false`, `no` are false.
    pub fn bool(&self, key: &str) -> bool {
        matches!(self.get(key).map(|v| v.to_ascii_lowercase()).as_deref(), Some(v) if !v.is_empty() && v != "0" && v != "false" && v != "no")
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => {
                v.parse().map(Some).map_err(|_| ApiError::bad_request(format!("invalid value for {key}: {v:?}")))
            }
        }
    }

    /// `filters={"status":["running"],"label":{"a=b":true}}` (both of Docker's forms).
    pub fn filters(&self) -> Result<BTreeMap<String, Vec<String>>, ApiError> {
        let Some(raw) = self.get("filters").filter(|s| !s.is_empty()) else { return Ok(BTreeMap::new()) };
        let v: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| ApiError::bad_request(format!("invalid filters: {e}")))?;
        let obj = v.as_object().ok_or_else(|| ApiError::bad_request("invalid filters: not an object"))?;
        let mut out = BTreeMap::new();
        for (k, val) in obj {
            let values: Vec<String> = match val {
                serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
                serde_json::Value::Object(o) => {
                    o.iter().filter(|(_, b)| b.as_bool().unwrap_or(false)).map(|(s, _)| s.clone()).collect()
                }
                serde_json::Value::String(s) => vec![s.clone()],
                _ => return Err(ApiError::bad_request(format!("invalid filter value for {k}"))),
            };
            out.insert(k.clone(), values);
        }
        Ok(out)
    }
}

/// A query string's key or value: `%XX` escapes, and `+` for a space.
pub fn decode(s: &str) -> String {
    percent_decode(s, true)
}

/// A path segment: `%XX` escapes only (a `+` in a path is a `+`).
pub fn decode_path(s: &str) -> String {
    percent_decode(s, false)
}

fn percent_decode(s: &str, plus_is_space: bool) -> String {
    wharf_types::percent::decode(s, plus_is_space)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_queries() {
        let q = Query::parse(Some("fromImage=127.0.0.1%3A5000%2Flibrary%2Fbusybox&tag=latest&all=1&force=false&x"));
        assert_eq!(q.get("fromImage"), Some("127.0.0.1:5000/library/busybox"));
        assert!(q.bool("all"));
        assert!(!q.bool("force"));
        assert!(!q.bool("x"));
        assert!(!q.bool("missing"));
        let q = Query::parse(Some(
            "filters=%7B%22status%22%3A%5B%22exited%22%5D%2C%22label%22%3A%7B%22a%3Db%22%3Atrue%7D%7D",
        ));
        let f = q.filters().unwrap();
        assert_eq!(f["status"], vec!["exited"]);
        assert_eq!(f["label"], vec!["a=b"]);
        assert_eq!(decode("a%2"), "a%2");
        assert_eq!(decode_path("my%20net+x"), "my net+x");
    }
}
