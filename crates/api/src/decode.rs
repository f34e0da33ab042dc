//! Request bodies as dockerd decodes them. Go's JSON decoder leaves a field at its zero value
//! when the body says `null`, so clients send `null` for "not set" (docker-py's Healthcheck
//! sends `"Timeout": null`); here `null` in a struct-like object is the same as the field
//! being absent. Values of map fields (`Labels`, `PortBindings`, …) are data, not fields, and
//! keep their keys.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// Object fields whose keys are data (Go maps), not struct fields.
const MAP_FIELDS: &[&str] = &[
    "Labels",
    "ExposedPorts",
    "Volumes",
    "PortBindings",
    "Tmpfs",
    "Sysctls",
    "StorageOpt",
    "DriverOpts",
    "Options",
    "EndpointsConfig",
    "Config",
];

/// `body` as a `T`, `what` naming it in the 400 a malformed body gets.
pub fn json_body<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    from_value(raw(body, what)?, what)
}

/// A JSON body before `null` is taken out, for [`unset_keys`] and then [`from_value`].
pub fn raw(body: &[u8], what: &str) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("{what}: {e}")))
}

/// `v` (a [`raw`] body) as a `T`, `null` meaning not set.
pub fn from_value<T: DeserializeOwned>(mut v: Value, what: &str) -> Result<T, ApiError> {
    strip_nulls(&mut v, false);
    serde_json::from_value(v).map_err(|e| ApiError::bad_request(format!("{what}: {e}")))
}

/// Which of `keys` the object `v` lacks or holds as `null`.
pub fn unset_keys(v: Option<&Value>, keys: &[&str]) -> Vec<String> {
    keys.iter().filter(|k| v.and_then(|o| o.get(**k)).is_none_or(Value::is_null)).map(|k| k.to_string()).collect()
}

fn strip_nulls(v: &mut Value, is_map: bool) {
    match v {
        Value::Object(o) => {
            if !is_map {
                o.retain(|_, x| !x.is_null());
            }
            for (k, x) in o.iter_mut() {
                strip_nulls(x, !is_map && MAP_FIELDS.contains(&k.as_str()));
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| strip_nulls(x, false)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_fields_are_absent_but_map_keys_stay() {
        let mut v = serde_json::json!({
            "Image": "busybox", "Cmd": null,
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": null, "Retries": null},
            "Labels": {"a": null},
            "HostConfig": {"PortBindings": {"80/tcp": null}, "Memory": null, "LogConfig": {"Type": "json-file", "Config": {"max-size": null}}},
            "NetworkingConfig": {"EndpointsConfig": {"net": {"Aliases": null, "IPAMConfig": null}}}
        });
        strip_nulls(&mut v, false);
        assert_eq!(
            v,
            serde_json::json!({
                "Image": "busybox",
                "Healthcheck": {"Test": ["CMD", "true"]},
                "Labels": {"a": null},
                "HostConfig": {"PortBindings": {"80/tcp": null}, "LogConfig": {"Type": "json-file", "Config": {"max-size": null}}},
                "NetworkingConfig": {"EndpointsConfig": {"net": {}}}
            })
        );
    }
}
