//! `serve --config FILE`: a small, strict YAML subset and the [`FileConfig`] read from it.
//!
//! The subset, enough for a configuration file and nothing more:
//! - block mappings `key: value` and `key:` followed by a more indented block, indented with
//!   spaces (a tab in the indentation is an error);
//! - block lists of scalars, `- value`, under a `key:`;
//! - scalars: plain, `"double quoted"` (escapes `\"` `\\` `\n` `\t`) or `'single quoted'`
//!   (`''` is a quote); `#` starts a comment at the start of a line or after a space;
//! - a leading `---` line is allowed.
//!
//! Everything else (flow collections `{}` `[]`, anchors, aliases, tags, block scalars `|` `>`,
//! several documents, lists of mappings) is refused with the line it is on, as is a key this
//! registry does not know: a configuration that is not understood is not half applied.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// A parsed value, with the line it started on for messages.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    Scalar(String, usize),
    List(Vec<Yaml>, usize),
    Map(Vec<(String, Yaml)>, usize),
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{file}: line {line}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

struct Line<'a> {
    no: usize,
    indent: usize,
    text: &'a str,
}

/// Parses the subset described in the module docs into a mapping.
pub fn parse_yaml(file: &str, src: &str) -> Result<Yaml, ConfigError> {
    let err = |line: usize, message: String| ConfigError { file: file.to_string(), line, message };
    let mut lines = Vec::new();
    let mut seen_start = false;
    for (i, raw) in src.lines().enumerate() {
        let no = i + 1;
        let body = strip_comment(raw).trim_end();
        if body.trim().is_empty() {
            continue;
        }
        if body == "---" && lines.is_empty() && !seen_start {
            seen_start = true;
            continue;
        }
        let text = body.trim_start_matches(' ');
        let indent = body.len() - text.len();
        if text.starts_with('\t') {
            return Err(err(no, "a tab in the indentation: indent with spaces".into()));
        }
        lines.push(Line { no, indent, text });
    }
    let mut pos = 0;
    let root = match lines.first() {
        None => return Ok(Yaml::Map(Vec::new(), 1)),
        Some(first) if first.indent != 0 => return Err(err(first.no, "the first line is indented".into())),
        Some(_) => parse_block(&lines, &mut pos, 0, &err)?,
    };
    if let Some(l) = lines.get(pos) {
        return Err(err(l.no, "unexpected indentation".into()));
    }
    match root {
        Yaml::Map(..) => Ok(root),
        other => Err(err(line_of(&other), "the top level must be a mapping".into())),
    }
}

/// `#` starts a comment at the start of a line or after whitespace, outside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && prev_space => return line.get(..i).unwrap_or(line),
            None => {}
        }
        prev_space = c == ' ' || c == '\t';
    }
    line
}

fn line_of(y: &Yaml) -> usize {
    match y {
        Yaml::Scalar(_, l) | Yaml::List(_, l) | Yaml::Map(_, l) => *l,
    }
}

type ErrFn<'e> = dyn Fn(usize, String) -> ConfigError + 'e;

/// A mapping or a list whose lines are all at `indent`.
fn parse_block(lines: &[Line], pos: &mut usize, indent: usize, err: &ErrFn) -> Result<Yaml, ConfigError> {
    let Some(first) = lines.get(*pos) else {
        return Err(err(0, "a block is missing".into()));
    };
    let start = first.no;
    if first.text == "-" || first.text.starts_with("- ") {
        let mut items = Vec::new();
        while let Some(l) = lines.get(*pos).filter(|l| l.indent == indent) {
            let Some(item) = l.text.strip_prefix('-') else {
                return Err(err(l.no, "a mapping key among list items".into()));
            };
            let item = item.trim();
            if item.is_empty() || find_key_colon(item).is_some() {
                return Err(err(l.no, "only lists of scalars are supported".into()));
            }
            items.push(Yaml::Scalar(scalar(item, l.no, err)?, l.no));
            *pos += 1;
        }
        return Ok(Yaml::List(items, start));
    }
    let mut entries: Vec<(String, Yaml)> = Vec::new();
    while let Some(l) = lines.get(*pos).filter(|l| l.indent == indent) {
        if l.text.starts_with("- ") || l.text == "-" {
            return Err(err(l.no, "a list item among mapping keys".into()));
        }
        let Some((key_text, rest)) = find_key_colon(l.text).and_then(|colon| {
            let (key, with_colon) = l.text.split_at_checked(colon)?;
            Some((key, with_colon.strip_prefix(':')?))
        }) else {
            return Err(err(l.no, format!("expected `key: value`, found {:?}", l.text)));
        };
        let key = scalar(key_text.trim(), l.no, err)?;
        if key.is_empty() {
            return Err(err(l.no, "an empty key".into()));
        }
        if entries.iter().any(|(k, _)| *k == key) {
            return Err(err(l.no, format!("key {key:?} appears twice")));
        }
        let rest = rest.trim();
        *pos += 1;
        let value = if rest.is_empty() {
            match lines.get(*pos) {
                // `key:` then a deeper block; a list may also sit at the key's own indentation.
                Some(n) if n.indent > indent => parse_block(lines, pos, n.indent, err)?,
                Some(n) if n.indent == indent && (n.text.starts_with("- ") || n.text == "-") => {
                    parse_block(lines, pos, indent, err)?
                }
                _ => Yaml::Scalar(String::new(), l.no),
            }
        } else {
            Yaml::Scalar(scalar(rest, l.no, err)?, l.no)
        };
        entries.push((key, value));
    }
    if let Some(l) = lines.get(*pos).filter(|l| l.indent > indent) {
        return Err(err(l.no, "unexpected indentation".into()));
    }
    Ok(Yaml::Map(entries, start))
}

/// The colon that ends a key: followed by a space or the end of the line, outside quotes.
fn find_key_colon(text: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == ':' && matches!(bytes.get(i + 1), None | Some(b' ')) => return Some(i),
            None => {}
        }
    }
    None
}

fn scalar(s: &str, line: usize, err: &ErrFn) -> Result<String, ConfigError> {
    if let Some(inner) = s.strip_prefix('"') {
        let Some(inner) = inner.strip_suffix('"') else {
            return Err(err(line, format!("unterminated double-quoted string {s:?}")));
        };
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    other => return Err(err(line, format!("unsupported escape \\{}", other.unwrap_or(' ')))),
                },
                '"' => return Err(err(line, format!("a stray quote in {s:?}"))),
                c => out.push(c),
            }
        }
        return Ok(out);
    }
    if let Some(inner) = s.strip_prefix('\'') {
        let Some(inner) = inner.strip_suffix('\'') else {
            return Err(err(line, format!("unterminated single-quoted string {s:?}")));
        };
        if inner.replace("''", "").contains('\'') {
            return Err(err(line, format!("a stray quote in {s:?}")));
        }
        return Ok(inner.replace("''", "'"));
    }
    if let Some(c) = s.chars().next().filter(|c| "{[&*!|>%@`".contains(*c)) {
        return Err(err(line, format!("{c:?} starts YAML this reader does not support (see the documented subset)")));
    }
    Ok(s.to_string())
}

// ---------------------------------------------------------------------------------------------
// The registry's configuration

/// What a config file may say. Every field is optional: flags override it, defaults fill in.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FileConfig {
    pub addr: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub open: Option<bool>,
    pub idle_timeout: Option<Duration>,
    /// `always`, `once` or `never` (or `true`/`false`, for `always`/`never`).
    pub verify_reads: Option<crate::verified::VerifyReads>,
    pub tls: Option<TlsConfig>,
    pub auth: Option<AuthConfig>,
    pub gc: GcConfig,
    /// `storage: s3:`: blobs in an S3 bucket instead of the data dir.
    pub s3: Option<S3Config>,
    /// `database: postgres:`: the index in PostgreSQL instead of the data dir.
    pub database: Option<DatabaseConfig>,
    /// `audit_log:`: how much of Harbor's audit log is kept.
    pub audit_log: AuditLogConfig,
}

/// `audit_log:` `max_records` (at least 1) and `max_age` (a duration).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AuditLogConfig {
    pub max_records: Option<u64>,
    pub max_age: Option<Duration>,
}

/// `storage: s3:`. The keys may come from the environment instead (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`), which keeps the secret out of the file.
#[derive(Default, Clone, PartialEq)]
pub struct S3Config {
    /// `http(s)://host[:port]`; requests are path-style (`/<bucket>/<key>`).
    pub endpoint: String,
    pub bucket: String,
    pub region: Option<String>,
    pub prefix: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    /// A PEM CA file trusted for an https endpoint (besides the system's).
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log.
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("access_key", &self.access_key)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

/// `database:`: where the index lives when it is not the embedded file in the data dir.
#[derive(Clone, PartialEq)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/dbname` (see [`crate::pg::wire::ConnConfig::parse`]).
    pub postgres: String,
    /// Connections kept to the database for queries (as many again may hold digest locks).
    pub pool_size: Option<usize>,
}

/// The URL holds a password: it is not printed.
impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig").field("postgres", &"…").field("pool_size", &self.pool_size).finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// `auth:` present turns authentication on.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AuthConfig {
    pub issuer: Option<String>,
    pub service: Option<String>,
    /// The token endpoint's URL as clients must reach it (behind a proxy); by default
    /// `<scheme>://<Host of the request>/token`.
    pub realm: Option<String>,
    pub token_lifetime: Option<Duration>,
    pub anonymous_pull: Option<bool>,
    /// Whether anyone may sign up for an account (Harbor's `self_registration`).
    pub self_registration: Option<bool>,
    /// Who may create projects: `everyone` (logged in) or `adminonly` (Harbor's
    /// `project_creation_restriction`); `Some(true)` for adminonly.
    pub project_creation_admin_only: Option<bool>,
    /// How long a web UI session may go unused (Harbor's `session_timeout`).
    pub session_timeout: Option<Duration>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct GcConfig {
    pub interval: Option<Duration>,
    pub grace: Option<Duration>,
    pub delete_untagged: Option<bool>,
    pub upload_max_age: Option<Duration>,
}

/// Reads and checks a config file.
pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: 0,
        message: format!("cannot read it: {e}"),
    })?;
    from_yaml(&file, &parse_yaml(&file, &src)?)
}

/// A mapping's entries checked against the keys it may hold.
struct Fields<'a> {
    file: &'a str,
    at: &'a str,
    entries: &'a [(String, Yaml)],
}

impl<'a> Fields<'a> {
    fn new(file: &'a str, at: &'a str, y: &'a Yaml, known: &[&str]) -> Result<Fields<'a>, ConfigError> {
        let entries: &[(String, Yaml)] = match y {
            Yaml::Map(entries, _) => entries,
            // `key:` with nothing under it: an empty mapping.
            Yaml::Scalar(s, _) if s.is_empty() => &[],
            _ => {
                return Err(ConfigError {
                    file: file.into(),
                    line: line_of(y),
                    message: format!("{at} must be a mapping"),
                })
            }
        };
        if let Some((k, v)) = entries.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            let prefix = if at.is_empty() { String::new() } else { format!("{at}.") };
            return Err(ConfigError {
                file: file.into(),
                line: line_of(v),
                message: format!("unknown key {prefix}{k} (known here: {})", known.join(", ")),
            });
        }
        Ok(Fields { file, at, entries })
    }

    fn err(&self, y: &Yaml, key: &str, message: String) -> ConfigError {
        let prefix = if self.at.is_empty() { String::new() } else { format!("{}.", self.at) };
        ConfigError { file: self.file.into(), line: line_of(y), message: format!("{prefix}{key}: {message}") }
    }

    fn get(&self, key: &str) -> Option<&'a Yaml> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Yaml::Scalar(s, _)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(y) => Err(self.err(y, key, "expected a non-empty string".into())),
        }
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(y @ Yaml::Scalar(s, _)) => match s.as_str() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(self.err(y, key, format!("expected true or false, found {s:?}"))),
            },
            Some(y) => Err(self.err(y, key, "expected true or false".into())),
        }
    }

    fn verify_reads(&self, key: &str) -> Result<Option<crate::verified::VerifyReads>, ConfigError> {
        match self.string(key)? {
            None => Ok(None),
            Some(s) => crate::verified::VerifyReads::parse(&s)
                .map(Some)
                .map_err(|m| self.err(self.get(key).unwrap_or(&NONE), key, m)),
        }
    }

    fn duration(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        match self.string(key)? {
            None => Ok(None),
            Some(s) => parse_duration(&s).map(Some).map_err(|m| self.err(self.get(key).unwrap_or(&NONE), key, m)),
        }
    }
}

const NONE: Yaml = Yaml::Scalar(String::new(), 0);

fn from_yaml(file: &str, root: &Yaml) -> Result<FileConfig, ConfigError> {
    let top = Fields::new(
        file,
        "",
        root,
        &[
            "addr",
            "data_dir",
            "open",
            "idle_timeout",
            "verify_reads",
            "tls",
            "auth",
            "gc",
            "storage",
            "database",
            "audit_log",
        ],
    )?;
    let mut cfg = FileConfig {
        addr: top.string("addr")?,
        data_dir: top.string("data_dir")?.map(PathBuf::from),
        open: top.boolean("open")?,
        idle_timeout: top.duration("idle_timeout")?,
        verify_reads: top.verify_reads("verify_reads")?,
        ..FileConfig::default()
    };
    if let Some(t) = top.get("tls") {
        let f = Fields::new(file, "tls", t, &["certificate", "key"])?;
        let (Some(certificate), Some(key)) = (f.string("certificate")?, f.string("key")?) else {
            return Err(top.err(t, "tls", "needs both certificate and key".into()));
        };
        cfg.tls = Some(TlsConfig { certificate: certificate.into(), key: key.into() });
    }
    if let Some(a) = top.get("auth") {
        let f = Fields::new(
            file,
            "auth",
            a,
            &["token", "anonymous_pull", "self_registration", "project_creation_restriction", "session_timeout"],
        )?;
        let mut auth = AuthConfig {
            anonymous_pull: f.boolean("anonymous_pull")?,
            self_registration: f.boolean("self_registration")?,
            session_timeout: f.duration("session_timeout")?,
            ..AuthConfig::default()
        };
        if let Some(y) = f.get("project_creation_restriction") {
            auth.project_creation_admin_only = match f.string("project_creation_restriction")?.as_deref() {
                Some("everyone") => Some(false),
                Some("adminonly") => Some(true),
                other => {
                    let found = other.unwrap_or_default();
                    return Err(f.err(
                        y,
                        "project_creation_restriction",
                        format!("expected everyone or adminonly, found {found:?}"),
                    ));
                }
            };
        }
        if let Some(t) = f.get("token") {
            let t = Fields::new(file, "auth.token", t, &["issuer", "service", "realm", "lifetime"])?;
            auth.issuer = t.string("issuer")?;
            auth.service = t.string("service")?;
            auth.realm = t.string("realm")?;
            auth.token_lifetime = t.duration("lifetime")?;
        }
        cfg.auth = Some(auth);
    }
    if let Some(a) = top.get("audit_log") {
        let f = Fields::new(file, "audit_log", a, &["max_records", "max_age"])?;
        if let Some(n) = f.string("max_records")? {
            match n.parse::<u64>() {
                Ok(n) if n > 0 => cfg.audit_log.max_records = Some(n),
                _ => {
                    let message = format!("expected a number of records, at least 1, found {n:?}");
                    return Err(f.err(f.get("max_records").unwrap_or(&NONE), "max_records", message));
                }
            }
        }
        cfg.audit_log.max_age = f.duration("max_age")?;
    }
    if let Some(g) = top.get("gc") {
        let f = Fields::new(file, "gc", g, &["interval", "grace", "delete_untagged", "upload_max_age"])?;
        cfg.gc = GcConfig {
            interval: f.duration("interval")?,
            grace: f.duration("grace")?,
            delete_untagged: f.boolean("delete_untagged")?,
            upload_max_age: f.duration("upload_max_age")?,
        };
    }
    if let Some(st) = top.get("storage") {
        let f = Fields::new(file, "storage", st, &["s3"])?;
        if let Some(y) = f.get("s3") {
            let s3 = Fields::new(
                file,
                "storage.s3",
                y,
                &["endpoint", "bucket", "region", "prefix", "access_key", "secret_key", "ca_file"],
            )?;
            let (Some(endpoint), Some(bucket)) = (s3.string("endpoint")?, s3.string("bucket")?) else {
                return Err(f.err(y, "s3", "needs endpoint and bucket".into()));
            };
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                let message = format!("expected an http:// or https:// URL, found {endpoint:?}");
                return Err(s3.err(s3.get("endpoint").unwrap_or(&NONE), "endpoint", message));
            }
            cfg.s3 = Some(S3Config {
                endpoint,
                bucket,
                region: s3.string("region")?,
                prefix: s3.string("prefix")?,
                access_key: s3.string("access_key")?,
                secret_key: s3.string("secret_key")?,
                ca_file: s3.string("ca_file")?.map(PathBuf::from),
            });
        }
    }
    if let Some(d) = top.get("database") {
        let f = Fields::new(file, "database", d, &["postgres", "pool_size"])?;
        let Some(postgres) = f.string("postgres")? else {
            return Err(top.err(
                d,
                "database",
                "needs postgres: URL (postgres://user:password@host:port/dbname)".into(),
            ));
        };
        if let Err(e) = crate::pg::wire::ConnConfig::parse(&postgres) {
            return Err(f.err(f.get("postgres").unwrap_or(&NONE), "postgres", e.to_string()));
        }
        let pool_size = match f.string("pool_size")? {
            None => None,
            Some(n) => match n.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => Some(n),
                _ => {
                    let message = format!("expected a number from 1 to 1000, found {n:?}");
                    return Err(f.err(f.get("pool_size").unwrap_or(&NONE), "pool_size", message));
                }
            },
        };
        cfg.database = Some(DatabaseConfig { postgres, pool_size });
    }
    Ok(cfg)
}

/// `90`, `90s`, `15m`, `2h`, `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?}: expected a number and s, m, h or d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("invalid duration {s:?}: the unit is s, m, h or d")),
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<FileConfig, ConfigError> {
        from_yaml("c.yaml", &parse_yaml("c.yaml", src)?)
    }

    #[test]
    fn a_full_config() {
        let cfg = parse(
            "---\n# wharf-registry\naddr: 0.0.0.0:5000   # all interfaces\ndata_dir: '/srv/reg istry'\n\
             tls:\n  certificate: /etc/r/cert.pem\n  key: \"/etc/r/key.pem\"\n\
             auth:\n  anonymous_pull: true\n  self_registration: true\n  project_creation_restriction: adminonly\n  session_timeout: 30m\n  token:\n    issuer: me\n    service: \"svc #1\"\n    lifetime: 10m\n\
             gc:\n  interval: 1h\n  delete_untagged: false\n",
        )
        .unwrap();
        assert_eq!(cfg.addr.as_deref(), Some("0.0.0.0:5000"));
        assert_eq!(cfg.data_dir, Some(PathBuf::from("/srv/reg istry")));
        assert_eq!(cfg.tls.unwrap().key, PathBuf::from("/etc/r/key.pem"));
        let auth = cfg.auth.unwrap();
        assert_eq!(auth.service.as_deref(), Some("svc #1"));
        assert_eq!(auth.anonymous_pull, Some(true));
        assert_eq!((auth.self_registration, auth.project_creation_admin_only), (Some(true), Some(true)));
        assert_eq!(auth.token_lifetime, Some(Duration::from_secs(600)));
        assert_eq!(auth.session_timeout, Some(Duration::from_secs(1800)));
        assert_eq!(cfg.gc.interval, Some(Duration::from_secs(3600)));
        assert_eq!(cfg.gc.delete_untagged, Some(false));
        assert_eq!(parse("").unwrap(), FileConfig::default());
        let audit = parse("audit_log:\n  max_records: 5000\n  max_age: 30d\n").unwrap().audit_log;
        assert_eq!(audit, AuditLogConfig { max_records: Some(5000), max_age: Some(Duration::from_secs(30 * 86400)) });
        let e = parse("audit_log:\n  max_records: 0\n").unwrap_err().to_string();
        assert!(e.contains("audit_log.max_records: expected a number of records, at least 1, found \"0\""), "{e}");
        let s3 = parse(
            "storage:\n  s3:\n    endpoint: http://127.0.0.1:8333\n    bucket: reg\n    prefix: a/b\n    \
             secret_key: 'not shown'\n",
        )
        .unwrap()
        .s3
        .unwrap();
        assert_eq!((s3.endpoint.as_str(), s3.bucket.as_str()), ("http://127.0.0.1:8333", "reg"));
        assert_eq!((s3.prefix.as_deref(), s3.region.as_deref()), (Some("a/b"), None));
        assert!(!format!("{s3:?}").contains("not shown"));
        let db = parse(
            "database:\n  postgres: 'postgres://wharf:s%40cret@/registry?host=/run/postgresql'\n  pool_size: 4\n",
        )
        .unwrap()
        .database
        .unwrap();
        assert_eq!(db.postgres, "postgres://wharf:s%40cret@/registry?host=/run/postgresql");
        assert_eq!(db.pool_size, Some(4));
        assert!(!format!("{db:?}").contains("cret"), "the password stays out of debug output");
        // `auth:` with nothing under it still turns authentication on.
        assert_eq!(parse("auth:\n").unwrap().auth, Some(AuthConfig::default()));
    }

    #[test]
    fn lists_of_scalars() {
        let y = parse_yaml("f", "a:\n  - x\n  - 'y z'\nb:\n- 1\n").unwrap();
        let Yaml::Map(e, _) = y else { panic!() };
        assert_eq!(e[0].1, Yaml::List(vec![Yaml::Scalar("x".into(), 2), Yaml::Scalar("y z".into(), 3)], 2));
        assert_eq!(e[1].1, Yaml::List(vec![Yaml::Scalar("1".into(), 5)], 5));
    }

    #[test]
    fn refusals_name_the_line() {
        for (src, line, needle) in [
            ("addr: x\nport: 5\n", 2, "unknown key port"),
            ("auth:\n  token:\n    issuer: a\n    audience: b\n", 4, "unknown key auth.token.audience"),
            ("tls: {certificate: a}\n", 1, "does not support"),
            ("a: &x 1\n", 1, "does not support"),
            ("addr: |\n  x\n", 1, "does not support"),
            ("gc:\n\tgrace: 1h\n", 2, "tab"),
            ("addr: 1\naddr: 2\n", 2, "twice"),
            ("gc:\n  grace: 1h\n    x: 1\n", 3, "indentation"),
            ("gc:\n  - a: 1\n", 2, "lists of scalars"),
            ("just text\n", 1, "key: value"),
            ("open: yes\n", 1, "true or false"),
            ("auth:\n  project_creation_restriction: admins\n", 2, "expected everyone or adminonly"),
            ("gc:\n  grace: 5y\n", 2, "gc.grace"),
            ("tls:\n  key: k\n", 2, "both certificate and key"),
            ("addr: \"x\n", 1, "unterminated"),
            ("  addr: x\n", 1, "indented"),
            ("---\n---\n", 2, "key: value"),
            ("storage:\n  s3:\n    bucket: b\n", 3, "needs endpoint and bucket"),
            ("storage:\n  s3:\n    endpoint: s3.example\n    bucket: b\n", 3, "storage.s3.endpoint"),
            ("storage:\n  s3:\n    endpoint: http://x\n    bucket: b\n    secret: s\n", 5, "storage.s3.secret"),
            ("storage:\n  gcs:\n    bucket: b\n", 3, "unknown key storage.gcs"),
            ("database:\n  pool_size: 3\n", 2, "database: needs postgres"),
            ("database:\n  postgres: mysql://x\n", 2, "database.postgres: postgres: database URL"),
            ("database:\n  postgres: postgres://h/d\n  pool_size: 0\n", 3, "database.pool_size"),
            ("database:\n  url: postgres://h/d\n", 2, "unknown key database.url"),
        ] {
            let e = parse(src).expect_err(src);
            assert_eq!(e.line, line, "{src:?}: {e}");
            assert!(e.to_string().contains(needle), "{src:?}: {e}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("1w").is_err());
    }
}
