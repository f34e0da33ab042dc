//! json-file log options: `--log-opt max-size/max-file` checked at create, the daemon's default
//! `log-opts` for containers that set none, the flags that hand them to the shim (which rotates
//! the file), and the rotated files in reading order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::EngineError;

/// The only log driver wharf has.
pub const JSON_FILE: &str = "json-file";

/// Docker's `HostConfig.LogConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    /// Empty means the default, `json-file`.
    pub driver: String,
    pub config: BTreeMap<String, String>,
}

/// Options json-file accepts; the ones besides max-size and max-file are accepted and ignored
/// (wharf does not compress and does not add attributes to entries).
const KNOWN_OPTS: &[&str] = &["max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag"];

/// A size as Docker writes it for `max-size`: a number with an optional binary unit
/// (`512`, `10k`, `10kb`, `1.5m`, `2g`).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix("ib").or_else(|| t.strip_suffix('b')).unwrap_or(&t);
    let units = [('k', 1u64 << 10), ('m', 1 << 20), ('g', 1 << 30), ('t', 1 << 40)];
    let (num, mult) = units.iter().find_map(|&(unit, mult)| Some((t.strip_suffix(unit)?, mult))).unwrap_or((t, 1));
    let num = num.trim();
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let v: f64 = num.parse().ok()?;
    let bytes = v * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return None;
    }
    Some(bytes as u64)
}

/// Checks json-file options: unknown keys, sizes and counts that do not parse.
pub fn validate_opts(opts: &BTreeMap<String, String>) -> Result<(), EngineError> {
    for (k, v) in opts {
        if !KNOWN_OPTS.contains(&k.as_str()) {
            return Err(EngineError::Invalid(format!("unknown log opt '{k}' for json-file log driver")));
        }
        match k.as_str() {
            "max-size" if v != "-1" && parse_size(v).is_none() => {
                return Err(EngineError::Invalid(format!(
                    "invalid log opt max-size {v:?}: use a size like 10k, 10m or 1g"
                )));
            }
            "max-file" => match v.parse::<u32>() {
                Ok(n) if n >= 1 => {}
                _ => return Err(EngineError::Invalid(format!("invalid log opt max-file {v:?}: must be at least 1"))),
            },
            _ => {}
        }
    }
    Ok(())
}

/// `local`: Docker's own format with rotation on by default. wharf writes it as json-file (the
/// file format is the driver's business; `logs` reads both the same) with local's defaults.
pub const LOCAL: &str = "local";
/// `none`: no log is kept; `logs` answers 501 as dockerd does.
pub const NONE: &str = "none";

/// Drivers dockerd has that wharf does not: named so that the error says "not supported"
/// rather than dockerd's "not registered".
const OTHER_DRIVERS: &[&str] =
    &["syslog", "journald", "gelf", "fluentd", "awslogs", "splunk", "etwlogs", "gcplogs", "logentries"];

/// The log config a container gets: its own, or the daemon's options when it set none.
pub(crate) fn resolve(given: &LogConfig, defaults: &BTreeMap<String, String>) -> Result<LogConfig, EngineError> {
    let driver = if given.driver.is_empty() { JSON_FILE } else { given.driver.as_str() };
    match driver {
        JSON_FILE => {
            let config = if given.config.is_empty() { defaults.clone() } else { given.config.clone() };
            validate_opts(&config)?;
            Ok(LogConfig { driver: JSON_FILE.to_string(), config })
        }
        LOCAL => {
            validate_opts(&given.config)?;
            Ok(LogConfig { driver: LOCAL.to_string(), config: given.config.clone() })
        }
        NONE => match given.config.keys().next() {
            Some(k) => Err(EngineError::Invalid(format!("unknown log opt '{k}' for none log driver"))),
            None => Ok(LogConfig { driver: NONE.to_string(), config: BTreeMap::new() }),
        },
        d if OTHER_DRIVERS.contains(&d) => Err(EngineError::Invalid(format!(
            "log driver {d:?} is not supported: wharf keeps logs with json-file, local or none"
        ))),
        d => Err(EngineError::Invalid(format!("logger: no log driver named '{d}' is registered"))),
    }
}

/// Bytes and file count for the shim; (0, 1) = no rotation.
pub(crate) fn limits(cfg: &LogConfig) -> (u64, u32) {
    // dockerd's local driver rotates by default: 20 MB files, 5 of them.
    let (default_size, default_files) = if cfg.driver == LOCAL { (20 << 20, 5) } else { (0, 1) };
    let size = cfg.config.get("max-size").and_then(|s| parse_size(s)).unwrap_or(default_size);
    let files = cfg.config.get("max-file").and_then(|s| s.parse().ok()).unwrap_or(default_files).max(1);
    (size, files)
}

pub(crate) fn shim_args(cfg: &LogConfig) -> Vec<String> {
    if cfg.driver == NONE {
        return vec!["--log-none".into()];
    }
    let (size, files) = limits(cfg);
    if size == 0 {
        return Vec::new();
    }
    vec!["--log-max-size".into(), size.to_string(), "--log-max-file".into(), files.to_string()]
}

/// The rotated files that exist (`<log>.N` … `<log>.1`), oldest first; the live file not included.
pub(crate) fn rotated_files(live: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for n in 1.. {
        let mut p = live.as_os_str().to_owned();
        p.push(format!(".{n}"));
        let p = PathBuf::from(p);
        if !p.exists() {
            break;
        }
        found.push(p);
    }
    found.reverse();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let table: &[(&str, Option<u64>)] = &[
            ("512", Some(512)),
            ("10k", Some(10240)),
            ("10K", Some(10240)),
            ("10kb", Some(10240)),
            ("1m", Some(1 << 20)),
            ("1.5m", Some(3 << 19)),
            ("2g", Some(2 << 30)),
            ("", None),
            ("k", None),
            ("ten", None),
            ("-1k", None),
            ("10x", None),
        ];
        for (input, want) in table {
            assert_eq!(parse_size(input), *want, "{input}");
        }
    }

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn resolve_defaults_and_refusals() {
        let defaults = opts(&[("max-size", "1m"), ("max-file", "2")]);
        let got = resolve(&LogConfig::default(), &defaults).unwrap();
        assert_eq!(got.driver, JSON_FILE);
        assert_eq!(limits(&got), (1 << 20, 2));
        let own = LogConfig { driver: "json-file".into(), config: opts(&[("max-size", "10k"), ("max-file", "3")]) };
        let got = resolve(&own, &defaults).unwrap();
        assert_eq!(shim_args(&got), ["--log-max-size", "10240", "--log-max-file", "3"]);
        let e = resolve(&LogConfig { driver: "syslog".into(), config: BTreeMap::new() }, &defaults).unwrap_err();
        assert!(e.to_string().contains("syslog"), "{e}");
        for bad in [("max-size", "lots"), ("max-file", "0"), ("bogus", "1")] {
            let c = LogConfig { driver: String::new(), config: opts(&[bad]) };
            assert!(resolve(&c, &BTreeMap::new()).is_err(), "{bad:?}");
        }
        assert!(shim_args(&resolve(&LogConfig::default(), &BTreeMap::new()).unwrap()).is_empty());
    }

    #[test]
    fn rotated_in_order() {
        let dir = std::env::temp_dir().join(format!("wharf-logrot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let live = dir.join("c-json.log");
        for n in ["c-json.log", "c-json.log.1", "c-json.log.2"] {
            std::fs::write(dir.join(n), b"").unwrap();
        }
        assert_eq!(rotated_files(&live), [dir.join("c-json.log.2"), dir.join("c-json.log.1")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
