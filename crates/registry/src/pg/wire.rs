//! A small synchronous PostgreSQL client: protocol 3.0 over TCP or a unix socket, the
//! authentication methods a server may ask for (trust, cleartext, MD5, SCRAM-SHA-256 without
//! channel binding), the extended query protocol with text parameters and text results, and
//! error responses kept with their SQLSTATE. No TLS: the registry talks to its database over
//! a unix socket or a trusted network.
//!
//! Several statements may go out in one [`Connection::batch`]: one round trip, and (outside
//! `BEGIN`) one implicit transaction, as the protocol runs everything before a Sync.

use std::fmt;
use std::io::{self, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest as _, Sha256};

use crate::auth::{constant_time_eq, hmac_sha256, pbkdf2_sha256};

/// Larger messages are refused: the registry's rows are small, and a corrupt length must not
/// become a huge allocation.
const MAX_MESSAGE: usize = 64 << 20;
const PROTOCOL_3_0: i32 = 196_608;

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("postgres connection: {0}")]
    Io(#[from] io::Error),
    #[error("postgres: {message} (SQLSTATE {code}){}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Server { code: String, message: String, detail: Option<String> },
    #[error("postgres protocol: {0}")]
    Protocol(String),
    #[error("postgres authentication: {0}")]
    Auth(String),
    #[error("postgres: {0}")]
    Config(String),
}

impl PgError {
    /// The SQLSTATE of a server error.
    pub fn code(&self) -> Option<&str> {
        match self {
            PgError::Server { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the connection is gone (the server restarted or the socket broke): a fresh
    /// connection may succeed where this one failed.
    pub fn connection_lost(&self) -> bool {
        match self {
            PgError::Io(_) => true,
            // 57P01..57P03: admin shutdown, crash shutdown, cannot connect now; 08: connection.
            PgError::Server { code, .. } => code.starts_with("57P") || code.starts_with("08"),
            _ => false,
        }
    }

    /// A serialization failure or a deadlock: the transaction may simply be run again.
    pub fn retryable(&self) -> bool {
        matches!(self.code(), Some("40001") | Some("40P01"))
    }
}

/// Where and as whom to connect. Its `Display` leaves the password out.
#[derive(Clone, PartialEq)]
pub struct ConnConfig {
    /// A host name or address, or an absolute directory holding the server's unix socket.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    pub connect_timeout: Duration,
}

impl fmt::Debug for ConnConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnConfig({self})")
    }
}

impl fmt::Display for ConnConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.starts_with('/') {
            write!(f, "postgres://{}@/{}?host={}&port={}", self.user, self.dbname, self.host, self.port)
        } else if self.host.contains(':') {
            write!(f, "postgres://{}@[{}]:{}/{}", self.user, self.host, self.port, self.dbname)
        } else {
            write!(f, "postgres://{}@{}:{}/{}", self.user, self.host, self.port, self.dbname)
        }
    }
}

impl ConnConfig {
    /// Reads `postgres://[user[:password]@][host][:port][/dbname][?key=value&...]`, the URL
    /// form libpq takes. Query keys: `host` (a socket directory, for instance), `port`, `user`,
    /// `password`, `dbname`, `connect_timeout` (seconds) and `sslmode`, which may only be
    /// `disable`. Without a host the socket directory is Debian's `/var/run/postgresql`; the
    /// user defaults to `postgres` and the database to the user's name.
    pub fn parse(url: &str) -> Result<ConnConfig, PgError> {
        let bad = |m: String| PgError::Config(format!("database URL: {m}"));
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| bad("expected postgres://user:password@host:port/dbname".into()))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let mut cfg = ConnConfig {
            host: String::new(),
            port: 5432,
            user: String::new(),
            password: None,
            dbname: String::new(),
            connect_timeout: Duration::from_secs(10),
        };
        if let Some(u) = userinfo {
            let (user, password) = match u.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (u, None),
            };
            cfg.user = percent_decode(user).map_err(bad)?;
            cfg.password = password.map(percent_decode).transpose().map_err(bad)?;
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad(format!("unterminated [ in {hostport:?}")))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (percent_decode(h).map_err(bad)?, Some(p)),
                None => (percent_decode(hostport).map_err(bad)?, None),
            }
        };
        cfg.host = host;
        if let Some(p) = port.filter(|p| !p.is_empty()) {
            cfg.port = p.parse().map_err(|_| bad(format!("invalid port {p:?}")))?;
        }
        cfg.dbname = percent_decode(path).map_err(bad)?;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v).map_err(bad)?;
            match k {
                "host" => cfg.host = v,
                "port" => cfg.port = v.parse().map_err(|_| bad(format!("invalid port {v:?}")))?,
                "user" => cfg.user = v,
                "password" => cfg.password = Some(v),
                "dbname" => cfg.dbname = v,
                "connect_timeout" => {
                    let secs: u64 = v.parse().map_err(|_| bad(format!("invalid connect_timeout {v:?}")))?;
                    cfg.connect_timeout = Duration::from_secs(secs.max(1));
                }
                "sslmode" if v == "disable" => {}
                "sslmode" => {
                    return Err(bad(format!(
                        "sslmode {v:?} is not supported: wharf-registry connects without TLS \
                         (use a unix socket or a trusted network, and sslmode=disable)"
                    )))
                }
                _ => return Err(bad(format!("unknown parameter {k:?}"))),
            }
        }
        if cfg.host.is_empty() {
            cfg.host = "/var/run/postgresql".into();
        }
        if cfg.user.is_empty() {
            cfg.user = "postgres".into();
        }
        if cfg.dbname.is_empty() {
            cfg.dbname = cfg.user.clone();
        }
        Ok(cfg)
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let v = hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or_else(|| format!("bad %-escape in {s:?}"))?;
            out.push(v);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

/// A statement parameter, sent as text (`None` is SQL NULL).
pub trait ToSql {
    fn to_sql(&self) -> Option<String>;
}

impl ToSql for str {
    fn to_sql(&self) -> Option<String> {
        Some(self.to_string())
    }
}
impl ToSql for String {
    fn to_sql(&self) -> Option<String> {
        Some(self.clone())
    }
}
impl ToSql for i32 {
    fn to_sql(&self) -> Option<String> {
        Some(self.to_string())
    }
}
impl ToSql for i64 {
    fn to_sql(&self) -> Option<String> {
        Some(self.to_string())
    }
}
impl ToSql for u64 {
    fn to_sql(&self) -> Option<String> {
        Some(self.to_string())
    }
}
impl ToSql for u32 {
    fn to_sql(&self) -> Option<String> {
        Some(self.to_string())
    }
}
impl ToSql for bool {
    fn to_sql(&self) -> Option<String> {
        Some(if *self { "t" } else { "f" }.to_string())
    }
}
impl ToSql for wharf_types::Digest {
    fn to_sql(&self) -> Option<String> {
        Some(self.to_string())
    }
}
impl<T: ToSql> ToSql for Option<T> {
    fn to_sql(&self) -> Option<String> {
        self.as_ref().and_then(ToSql::to_sql)
    }
}
impl<T: ToSql + ?Sized> ToSql for &T {
    fn to_sql(&self) -> Option<String> {
        (**self).to_sql()
    }
}

/// A `text[]` parameter.
pub struct TextArray<'a, T: fmt::Display>(pub &'a [T]);

impl<T: fmt::Display> ToSql for TextArray<'_, T> {
    fn to_sql(&self) -> Option<String> {
        let mut s = String::from("{");
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push('"');
            for c in v.to_string().chars() {
                if c == '"' || c == '\\' {
                    s.push('\\');
                }
                s.push(c);
            }
            s.push('"');
        }
        s.push('}');
        Some(s)
    }
}

/// One result row, every column as text.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Option<String>>);

impl Row {
    pub fn opt(&self, i: usize) -> Option<&str> {
        self.0.get(i).and_then(|v| v.as_deref())
    }

    pub fn text(&self, i: usize) -> Result<&str, PgError> {
        self.opt(i).ok_or_else(|| PgError::Protocol(format!("column {i} is NULL or missing")))
    }

    pub fn int(&self, i: usize) -> Result<i64, PgError> {
        let t = self.text(i)?;
        t.parse().map_err(|_| PgError::Protocol(format!("column {i}: {t:?} is not an integer")))
    }

    pub fn uint(&self, i: usize) -> Result<u64, PgError> {
        let t = self.text(i)?;
        t.parse().map_err(|_| PgError::Protocol(format!("column {i}: {t:?} is not a non-negative integer")))
    }

    pub fn boolean(&self, i: usize) -> Result<bool, PgError> {
        match self.text(i)? {
            "t" => Ok(true),
            "f" => Ok(false),
            t => Err(PgError::Protocol(format!("column {i}: {t:?} is not a boolean"))),
        }
    }
}

/// What one statement of a batch returned.
#[derive(Debug, Default)]
pub struct StmtResult {
    pub rows: Vec<Row>,
    /// The row count of the command tag (`INSERT 0 1`, `DELETE 3`, `SELECT 2`).
    pub affected: u64,
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

/// The transaction state a ReadyForQuery reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    Idle,
    InTransaction,
    Failed,
}

pub struct Connection {
    io: BufReader<Stream>,
    status: TxStatus,
    /// Set when a read or write failed or the peer said something unexpected: the protocol
    /// state is unknown and the connection must not be used again.
    broken: bool,
}

/// An outgoing message: its type byte, then a length filled in by [`Msg::finish`].
struct Msg<'a> {
    buf: &'a mut Vec<u8>,
    start: usize,
}

impl<'a> Msg<'a> {
    fn new(buf: &'a mut Vec<u8>, kind: Option<u8>) -> Msg<'a> {
        if let Some(k) = kind {
            buf.push(k);
        }
        let start = buf.len();
        buf.extend_from_slice(&[0; 4]);
        Msg { buf, start }
    }
    fn cstr(&mut self, s: &str) -> &mut Self {
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        self
    }
    fn i16(&mut self, v: i16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }
    fn finish(&mut self) -> Result<(), PgError> {
        let len =
            i32::try_from(self.buf.len() - self.start).map_err(|_| PgError::Protocol("a message over 2 GiB".into()))?;
        if let Some(slot) = self.buf.get_mut(self.start..self.start + 4) {
            slot.copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    }
}

/// A received message's body, read field by field.
struct Body<'a>(&'a [u8]);

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PgError> {
        if self.0.len() < n {
            return Err(PgError::Protocol("a message shorter than its fields".into()));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn i16(&mut self) -> Result<i16, PgError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, PgError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn cstr(&mut self) -> Result<&'a str, PgError> {
        let end =
            self.0.iter().position(|&b| b == 0).ok_or_else(|| PgError::Protocol("an unterminated string".into()))?;
        let s = self.take(end + 1)?;
        std::str::from_utf8(&s[..end]).map_err(|_| PgError::Protocol("a string that is not UTF-8".into()))
    }
}

fn server_error(body: &[u8]) -> PgError {
    let mut b = Body(body);
    let (mut code, mut message, mut detail) = (String::new(), String::new(), None);
    while let Ok(field) = b.take(1) {
        if field[0] == 0 {
            break;
        }
        let Ok(value) = b.cstr() else { break };
        match field[0] {
            b'C' => code = value.to_string(),
            b'M' => message = value.to_string(),
            b'D' => detail = Some(value.to_string()),
            _ => {}
        }
    }
    PgError::Server { code, message, detail }
}

impl Connection {
    /// Connects, authenticates and waits until the server is ready for queries.
    pub fn connect(cfg: &ConnConfig) -> Result<Connection, PgError> {
        let stream = if cfg.host.starts_with('/') {
            let path = format!("{}/.s.PGSQL.{}", cfg.host, cfg.port);
            let s = UnixStream::connect(&path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            Stream::Unix(s)
        } else {
            let target = format!("{}:{}", cfg.host, cfg.port);
            let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{target}: no address"));
            let mut found = None;
            for addr in (cfg.host.as_str(), cfg.port).to_socket_addrs()? {
                match TcpStream::connect_timeout(&addr, cfg.connect_timeout) {
                    Ok(s) => {
                        found = Some(s);
                        break;
                    }
                    Err(e) => last = io::Error::new(e.kind(), format!("{target}: {e}")),
                }
            }
            let s = found.ok_or(last)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            Stream::Tcp(s)
        };
        let mut c = Connection { io: BufReader::new(stream), status: TxStatus::Idle, broken: false };
        c.startup(cfg)?;
        Ok(c)
    }

    pub fn status(&self) -> TxStatus {
        self.status
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    fn startup(&mut self, cfg: &ConnConfig) -> Result<(), PgError> {
        let mut out = Vec::new();
        Msg::new(&mut out, None)
            .i32(PROTOCOL_3_0)
            .cstr("user")
            .cstr(&cfg.user)
            .cstr("database")
            .cstr(&cfg.dbname)
            .cstr("application_name")
            .cstr("wharf-registry")
            .cstr("client_encoding")
            .cstr("UTF8")
            .bytes(&[0])
            .finish()?;
        self.write(&out)?;
        let mut scram: Option<Scram> = None;
        loop {
            let (kind, body) = self.read_message()?;
            match kind {
                b'R' => {
                    let mut b = Body(&body);
                    match b.i32()? {
                        // After SCRAM the server must have proved that it knows the password.
                        0 if scram.as_ref().is_some_and(|s| !s.verified) => {
                            return Err(PgError::Auth("SCRAM: the server accepted the login without proving itself".into()));
                        }
                        0 => {}
                        3 => {
                            let pw = password(cfg)?;
                            self.send_password(pw.as_bytes(), true)?;
                        }
                        5 => {
                            let salt = b.take(4)?;
                            let pw = password(cfg)?;
                            self.send_password(md5_password(&cfg.user, pw, salt).as_bytes(), true)?;
                        }
                        10 => {
                            let mut mechanisms = Vec::new();
                            while let Ok(m) = b.cstr() {
                                if m.is_empty() {
                                    break;
                                }
                                mechanisms.push(m.to_string());
                            }
                            if !mechanisms.iter().any(|m| m == "SCRAM-SHA-256") {
                                return Err(PgError::Auth(format!(
                                    "the server offers only {mechanisms:?}; this client speaks SCRAM-SHA-256 \
                                     without channel binding"
                                )));
                            }
                            let s = Scram::new(password(cfg)?)?;
                            let first = s.client_first();
                            let mut out = Vec::new();
                            Msg::new(&mut out, Some(b'p'))
                                .cstr("SCRAM-SHA-256")
                                .i32(first.len() as i32)
                                .bytes(first.as_bytes())
                                .finish()?;
                            self.write(&out)?;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram.as_mut().ok_or_else(|| PgError::Protocol("SASL continue before start".into()))?;
                            let server_first = std::str::from_utf8(b.0)
                                .map_err(|_| PgError::Auth("a server-first-message that is not UTF-8".into()))?;
                            let client_final = s.client_final(server_first)?;
                            self.send_password(client_final.as_bytes(), false)?;
                        }
                        12 => {
                            let s = scram.as_mut().ok_or_else(|| PgError::Protocol("SASL final before start".into()))?;
                            s.verify_server(b.0)?;
                            s.verified = true;
                        }
                        other => {
                            return Err(PgError::Auth(format!("the server asks for authentication method {other}, which this client does not speak (use scram-sha-256, md5, password or trust)")))
                        }
                    }
                }
                b'E' => {
                    return Err(server_error(&body));
                }
                b'Z' => {
                    self.set_status(&body)?;
                    return Ok(());
                }
                // ParameterStatus, BackendKeyData, notices: nothing the registry needs.
                _ => {}
            }
        }
    }

    fn send_password(&mut self, data: &[u8], nul: bool) -> Result<(), PgError> {
        let mut out = Vec::new();
        let mut m = Msg::new(&mut out, Some(b'p'));
        m.bytes(data);
        if nul {
            m.bytes(&[0]);
        }
        m.finish()?;
        self.write(&out)
    }

    fn set_status(&mut self, body: &[u8]) -> Result<(), PgError> {
        self.status = match body.first() {
            Some(b'I') => TxStatus::Idle,
            Some(b'T') => TxStatus::InTransaction,
            Some(b'E') => TxStatus::Failed,
            _ => {
                self.broken = true;
                return Err(PgError::Protocol("a ReadyForQuery with an unknown status".into()));
            }
        };
        Ok(())
    }

    fn write(&mut self, messages: &[u8]) -> Result<(), PgError> {
        let r = self.io.get_mut().write_all(messages).and_then(|()| self.io.get_mut().flush());
        if r.is_err() {
            self.broken = true;
        }
        Ok(r?)
    }

    fn read_message(&mut self) -> Result<(u8, Vec<u8>), PgError> {
        let r = self.read_message_inner();
        if r.is_err() {
            self.broken = true;
        }
        r
    }

    fn read_message_inner(&mut self) -> Result<(u8, Vec<u8>), PgError> {
        let mut head = [0u8; 5];
        self.io.read_exact(&mut head)?;
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        let len = usize::try_from(len).ok().filter(|l| (4..=MAX_MESSAGE).contains(l));
        let len = len.ok_or_else(|| PgError::Protocol("a message with an impossible length".into()))?;
        let mut body = vec![0u8; len - 4];
        self.io.read_exact(&mut body)?;
        Ok((head[0], body))
    }

    /// Runs a string of statements with the simple query protocol (no parameters): for
    /// `BEGIN`, `COMMIT`, `ROLLBACK` and schema scripts.
    pub fn simple(&mut self, sql: &str) -> Result<(), PgError> {
        self.ensure_usable()?;
        let mut out = Vec::new();
        Msg::new(&mut out, Some(b'Q')).cstr(sql).finish()?;
        self.write(&out)?;
        let mut error = None;
        loop {
            let (kind, body) = self.read_message()?;
            match kind {
                b'E' => error = Some(server_error(&body)),
                b'Z' => {
                    self.set_status(&body)?;
                    return error.map_or(Ok(()), Err);
                }
                _ => {}
            }
        }
    }

    /// One statement with parameters; its rows.
    pub fn query(&mut self, sql: &str, params: &[&dyn ToSql]) -> Result<Vec<Row>, PgError> {
        Ok(self.batch(&[(sql, params)])?.pop().map(|r| r.rows).unwrap_or_default())
    }

    /// One statement with parameters; the number of rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[&dyn ToSql]) -> Result<u64, PgError> {
        Ok(self.batch(&[(sql, params)])?.pop().map(|r| r.affected).unwrap_or_default())
    }

    /// Several statements in one round trip, with one Sync at the end: outside an explicit
    /// transaction they commit or fail together. The first error is returned (the server
    /// skips the rest).
    pub fn batch(&mut self, stmts: &[(&str, &[&dyn ToSql])]) -> Result<Vec<StmtResult>, PgError> {
        self.ensure_usable()?;
        let mut out = Vec::new();
        for (sql, params) in stmts {
            Msg::new(&mut out, Some(b'P')).cstr("").cstr(sql).i16(0).finish()?;
            let n = i16::try_from(params.len()).map_err(|_| PgError::Protocol("too many parameters".into()))?;
            let mut bind = Msg::new(&mut out, Some(b'B'));
            bind.cstr("").cstr("").i16(0).i16(n);
            for p in params.iter() {
                match p.to_sql() {
                    None => {
                        bind.i32(-1);
                    }
                    Some(v) => {
                        let len =
                            i32::try_from(v.len()).map_err(|_| PgError::Protocol("a parameter over 2 GiB".into()))?;
                        bind.i32(len).bytes(v.as_bytes());
                    }
                }
            }
            bind.i16(0).finish()?;
            Msg::new(&mut out, Some(b'E')).cstr("").i32(0).finish()?;
        }
        Msg::new(&mut out, Some(b'S')).finish()?;
        self.write(&out)?;

        let mut results = Vec::with_capacity(stmts.len());
        let mut current = StmtResult::default();
        let mut error = None;
        loop {
            let (kind, body) = self.read_message()?;
            match kind {
                b'D' => {
                    let mut b = Body(&body);
                    let n = b.i16()?;
                    let mut row = Vec::with_capacity(n.max(0) as usize);
                    for _ in 0..n {
                        let len = b.i32()?;
                        if len < 0 {
                            row.push(None);
                        } else {
                            let v = b.take(len as usize)?;
                            let v = std::str::from_utf8(v)
                                .map_err(|_| PgError::Protocol("a value that is not UTF-8".into()))?;
                            row.push(Some(v.to_string()));
                        }
                    }
                    current.rows.push(Row(row));
                }
                b'C' => {
                    let tag = Body(&body).cstr()?;
                    current.affected = tag.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
                    results.push(std::mem::take(&mut current));
                }
                b'I' => results.push(std::mem::take(&mut current)),
                // The server skips the rest of the batch after an error: there is one.
                b'E' => error = Some(server_error(&body)),
                b'Z' => {
                    self.set_status(&body)?;
                    return match error {
                        Some(e) => Err(e),
                        None if results.len() == stmts.len() => Ok(results),
                        None => {
                            self.broken = true;
                            Err(PgError::Protocol(format!("{} results for {} statements", results.len(), stmts.len())))
                        }
                    };
                }
                // ParseComplete, BindComplete, NoData, RowDescription, notices, parameter
                // changes and notifications carry nothing these callers use.
                _ => {}
            }
        }
    }

    fn ensure_usable(&self) -> Result<(), PgError> {
        if self.broken {
            return Err(PgError::Io(io::Error::new(io::ErrorKind::BrokenPipe, "the connection broke earlier")));
        }
        Ok(())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if !self.broken {
            // Terminate: the server then ends the session without logging an abrupt close.
            let _ = self.io.get_mut().write_all(&[b'X', 0, 0, 0, 4]);
        }
    }
}

/// Bounds a read or write on a connection whose server vanished without closing it. Lock
/// waits inside the database are short in this registry (a push holds a digest's lock while
/// it installs one blob), so a minute is generous.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

fn password(cfg: &ConnConfig) -> Result<&str, PgError> {
    cfg.password.as_deref().ok_or_else(|| {
        PgError::Auth(format!("the server asks user {:?} for a password and none is configured", cfg.user))
    })
}

/// `md5` ‖ hex(md5(hex(md5(password ‖ user)) ‖ salt)), as the MD5 method wants it.
fn md5_password(user: &str, password: &str, salt: &[u8]) -> String {
    use md5::{Digest as _, Md5};
    let inner = wharf_types::digest::to_hex(&Md5::digest(format!("{password}{user}").as_bytes()));
    let mut h = Md5::new();
    h.update(inner.as_bytes());
    h.update(salt);
    format!("md5{}", wharf_types::digest::to_hex(&h.finalize()))
}

/// SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL runs it: no channel binding (`n,,`), the
/// user name left empty (the server takes the startup message's). The password is used as
/// given, without SASLprep, which only changes non-ASCII passwords.
struct Scram {
    password: String,
    nonce: String,
    client_first_bare: String,
    server_signature: Option<[u8; 32]>,
    verified: bool,
}

impl Scram {
    fn new(password: &str) -> Result<Scram, PgError> {
        let mut raw = [0u8; 18];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
        let nonce = STANDARD.encode(raw);
        Ok(Scram {
            password: password.to_string(),
            client_first_bare: format!("n=,r={nonce}"),
            nonce,
            server_signature: None,
            verified: false,
        })
    }

    fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    fn client_final(&mut self, server_first: &str) -> Result<String, PgError> {
        let bad = |m: &str| PgError::Auth(format!("SCRAM: {m} in the server-first-message"));
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attr in server_first.split(',') {
            match attr.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = Some(STANDARD.decode(v).map_err(|_| bad("a salt that is not base64"))?),
                Some(("i", v)) => iterations = Some(v.parse::<u32>().map_err(|_| bad("a bad iteration count"))?),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(bad("a missing nonce, salt or iteration count"));
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() <= self.nonce.len() || iterations == 0 {
            return Err(bad("a nonce that does not extend ours, or no iterations"));
        }
        let salted = pbkdf2_sha256(self.password.as_bytes(), &salt, iterations);
        let client_key = hmac_sha256(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = hmac_sha256(&stored_key, auth_message.as_bytes());
        let mut proof = client_key;
        for (p, s) in proof.iter_mut().zip(signature) {
            *p ^= s;
        }
        let server_key = hmac_sha256(&salted, b"Server Key");
        self.server_signature = Some(hmac_sha256(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)))
    }

    /// The server proves that it knows the password too (else anyone could answer "ok").
    fn verify_server(&self, server_final: &[u8]) -> Result<(), PgError> {
        let text = std::str::from_utf8(server_final).unwrap_or("");
        let got = text.strip_prefix("v=").and_then(|v| STANDARD.decode(v.trim_end()).ok());
        match (got, &self.server_signature) {
            (Some(got), Some(want)) if constant_time_eq(&got, want) => Ok(()),
            _ => {
                Err(PgError::Auth("SCRAM: the server's signature does not match: it does not know the password".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let c = ConnConfig::parse("postgres://wharf:p%40ss@db.example:6543/registry?connect_timeout=3").unwrap();
        assert_eq!((c.host.as_str(), c.port, c.user.as_str()), ("db.example", 6543, "wharf"));
        assert_eq!((c.password.as_deref(), c.dbname.as_str()), (Some("p@ss"), "registry"));
        assert_eq!(c.connect_timeout, Duration::from_secs(3));
        assert_eq!(c.to_string(), "postgres://wharf@db.example:6543/registry", "no password shown");
        let c = ConnConfig::parse("postgresql://u@/d?host=%2Ftmp%2Fpg&port=5433&sslmode=disable").unwrap();
        assert_eq!((c.host.as_str(), c.port, c.dbname.as_str()), ("/tmp/pg", 5433, "d"));
        let c = ConnConfig::parse("postgres://[::1]:5/x").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 5));
        let c = ConnConfig::parse("postgres://").unwrap();
        assert_eq!(
            (c.host.as_str(), c.user.as_str(), c.dbname.as_str()),
            ("/var/run/postgresql", "postgres", "postgres")
        );
        for bad in [
            "mysql://x",
            "postgres://h:notaport/",
            "postgres://h/d?sslmode=require",
            "postgres://h/d?x=1",
            "postgres://%zz@h",
        ] {
            assert!(ConnConfig::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_arrays_quote_their_elements() {
        assert_eq!(TextArray::<String>(&[]).to_sql().as_deref(), Some("{}"));
        assert_eq!(TextArray(&["a", "b\"c", "d\\e", "{,}"]).to_sql().as_deref(), Some(r#"{"a","b\"c","d\\e","{,}"}"#));
    }

    #[test]
    fn md5_matches_libpq() {
        // PostgreSQL stores md5(password || user) as "md5" || hex; for user "postgres" and
        // password "postgres" that is md53175bce1d3201d16594cebf9d7eb3f9d.
        use md5::{Digest as _, Md5};
        let stored = wharf_types::digest::to_hex(&Md5::digest(b"postgrespostgres"));
        assert_eq!(stored, "3175bce1d3201d16594cebf9d7eb3f9d");
        let salt = [1, 2, 3, 4];
        let mut h = Md5::new();
        h.update(stored.as_bytes());
        h.update(salt);
        assert_eq!(
            md5_password("postgres", "postgres", &salt),
            format!("md5{}", wharf_types::digest::to_hex(&h.finalize()))
        );
    }

    #[test]
    fn scram_rfc7677_example() {
        // RFC 7677 section 3, with its client nonce.
        let mut s = Scram {
            password: "pencil".into(),
            nonce: "rOprNGfwEbeRWgbNEkqO".into(),
            client_first_bare: "n=user,r=rOprNGfwEbeRWgbNEkqO".into(),
            server_signature: None,
            verified: false,
        };
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        assert_eq!(
            s.client_final(server_first).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        s.verify_server(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").unwrap();
        assert!(s.verify_server(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").is_err());
    }
}
