//! The OCI runtimes a container may run under (`--runtime`, daemon.json `runtimes` and
//! `default-runtime`): wharf's own, under Docker's name `runc` and as `wharf`, and the
//! runc-compatible executables the daemon's configuration adds, which the shim drives.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::EngineError;

/// The names of wharf's own runtime. `runc` is the one dockerd always has: a container or a
/// daemon.json from Docker that names it runs under wharf's runtime, which runs the same
/// bundle runc would, without needing runc installed. `wharf` names it unambiguously.
pub const BUILTIN_NAMES: &[&str] = &["runc", "wharf"];

/// What containers get when they name no runtime, unless `default-runtime` says otherwise.
pub const DEFAULT_RUNTIME: &str = "runc";

/// One configured runtime, as daemon.json writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RuntimeSpec {
    /// The executable: a path, or a name looked up on wharfd's PATH.
    pub path: String,
    /// Arguments given before each command (`--debug`, `--systemd-cgroup`).
    #[serde(rename = "runtimeArgs", default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

/// The configured runtimes and the default; checked once, at the daemon's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtimes {
    extra: BTreeMap<String, RuntimeSpec>,
    default: String,
}

impl Default for Runtimes {
    fn default() -> Runtimes {
        Runtimes { extra: BTreeMap::new(), default: DEFAULT_RUNTIME.to_string() }
    }
}

impl Runtimes {
    /// `default` empty for [`DEFAULT_RUNTIME`]. Errors are dockerd's words where it has them.
    pub fn new(extra: BTreeMap<String, RuntimeSpec>, default: &str) -> Result<Runtimes, String> {
        for (name, spec) in &extra {
            if BUILTIN_NAMES.contains(&name.as_str()) {
                return Err(format!("runtime name '{name}' is reserved"));
            }
            // The name becomes the runtime's state directory under the exec root.
            let valid = !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                && !name.starts_with('.');
            if !valid {
                return Err(format!(
                    "invalid runtime name {name:?}: use letters, digits, '-', '_' and '.', at most 64 characters"
                ));
            }
            if spec.path.is_empty() {
                return Err(format!("runtime {name:?} has no path"));
            }
        }
        let default = if default.is_empty() { DEFAULT_RUNTIME } else { default };
        if !BUILTIN_NAMES.contains(&default) && !extra.contains_key(default) {
            return Err(format!("specified default runtime '{default}' does not exist"));
        }
        Ok(Runtimes { extra, default: default.to_string() })
    }

    pub fn default_name(&self) -> &str {
        &self.default
    }

    /// The name a container records: its own choice, else the default; an unknown one is
    /// refused as dockerd refuses it (a 400).
    pub fn resolve(&self, name: &str) -> Result<String, EngineError> {
        if name.is_empty() {
            return Ok(self.default.clone());
        }
        if BUILTIN_NAMES.contains(&name) || self.extra.contains_key(name) {
            return Ok(name.to_string());
        }
        Err(EngineError::Invalid(format!("Unknown runtime specified {name}")))
    }

    /// The runtime the shim drives for `name`; `None` for wharf's own. An empty name (a
    /// container made before runtimes could be chosen) is wharf's own.
    pub fn oci(&self, name: &str) -> Result<Option<&RuntimeSpec>, EngineError> {
        if name.is_empty() || BUILTIN_NAMES.contains(&name) {
            return Ok(None);
        }
        self.extra.get(name).map(Some).ok_or_else(|| EngineError::Invalid(format!("Unknown runtime specified {name}")))
    }

    /// Every runtime by name, for `docker info`: wharf's own with `builtin_path` (the shim).
    pub fn list(&self, builtin_path: &str) -> BTreeMap<String, RuntimeSpec> {
        let mut out = self.extra.clone();
        for name in BUILTIN_NAMES {
            out.insert(name.to_string(), RuntimeSpec { path: builtin_path.to_string(), args: Vec::new() });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &str) -> RuntimeSpec {
        RuntimeSpec { path: path.to_string(), args: Vec::new() }
    }

    #[test]
    fn names_are_checked_as_dockerd_checks_them() {
        let one = |name: &str| BTreeMap::from([(name.to_string(), spec("/usr/sbin/runc"))]);
        assert_eq!(Runtimes::new(one("runc"), "").unwrap_err(), "runtime name 'runc' is reserved");
        assert_eq!(Runtimes::new(one("wharf"), "").unwrap_err(), "runtime name 'wharf' is reserved");
        assert!(Runtimes::new(one("../x"), "").unwrap_err().contains("invalid runtime name"));
        assert!(Runtimes::new(one(""), "").is_err());
        assert_eq!(
            Runtimes::new(BTreeMap::new(), "nosuch").unwrap_err(),
            "specified default runtime 'nosuch' does not exist"
        );
        let r = Runtimes::new(one("myrunc"), "myrunc").unwrap();
        assert_eq!(r.default_name(), "myrunc");
        assert!(Runtimes::new(BTreeMap::from([("x".to_string(), spec(""))]), "").is_err());
    }

    #[test]
    fn resolve_and_oci() {
        let r = Runtimes::new(BTreeMap::from([("myrunc".to_string(), spec("/usr/sbin/runc"))]), "").unwrap();
        assert_eq!(r.resolve("").unwrap(), "runc");
        assert_eq!(r.resolve("myrunc").unwrap(), "myrunc");
        assert_eq!(r.resolve("wharf").unwrap(), "wharf");
        assert_eq!(r.resolve("nosuch").unwrap_err().to_string(), "Unknown runtime specified nosuch");
        assert!(r.oci("runc").unwrap().is_none());
        assert!(r.oci("").unwrap().is_none());
        assert_eq!(r.oci("myrunc").unwrap().unwrap().path, "/usr/sbin/runc");
        assert!(r.oci("gone").is_err());
        let listed = r.list("/usr/bin/wharf-shim");
        assert_eq!(listed.keys().collect::<Vec<_>>(), ["myrunc", "runc", "wharf"]);
        assert_eq!(serde_json::to_value(&listed["myrunc"]).unwrap(), serde_json::json!({"path": "/usr/sbin/runc"}));
    }
}
