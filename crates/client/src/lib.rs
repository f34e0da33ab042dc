//! Typed client of the Docker Engine API over a unix socket, TCP (with TLS) or ssh, used by the
//! CLI and the tests.
//!
//! One request per connection, as the HTTP layer does it. Paths are sent with an API version
//! prefix (`/v1.41` by default, the floor wharf supports, so the same client talks to wharfd and
//! to any Docker-compatible daemon); `DOCKER_API_VERSION` overrides it.

mod error;
mod models;
mod mux;
pub mod ops;
mod query;
mod ssh;

use std::io::{self, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use error::ClientError;
pub use models::*;
pub use mux::{copy_raw, Demuxer, Frame, MuxError, StreamKind};
pub use ops::{LogsOptions, Resize, SwarmObjects, SwarmProbe};
pub use query::{encode, path_segment, Query};
pub use wharf_http::{Body, Request, Response, Stream};

/// Where the daemon listens unless `-H` or `DOCKER_HOST` says otherwise.
pub const DEFAULT_HOST: &str = "unix:///run/wharf/wharfd.sock";
/// The API version sent in request paths.
pub const DEFAULT_API_VERSION: &str = "1.41";
/// The most an error or JSON answer may take in memory.
const MAX_JSON_BODY: u64 = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
    Ssh(ssh::SshTarget),
}

/// TLS to a `tcp://` daemon, as the docker CLI's `--tls`, `--tlsverify` (or
/// `DOCKER_TLS_VERIFY`) and the `ca.pem`, `cert.pem`, `key.pem` of `DOCKER_CERT_PATH` (default:
/// the CLI's config directory).
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Check the daemon's certificate against `ca` (`--tlsverify`); otherwise any is taken.
    pub verify: bool,
    pub ca: PathBuf,
    /// The client certificate and key, sent when both files exist.
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsOptions {
    /// From the docker CLI's flags and environment: `None` when neither asks for TLS.
    pub fn from_env(tls: bool, tlsverify: bool) -> Option<TlsOptions> {
        let env_verify = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty());
        if !(tls || tlsverify || env_verify) {
            return None;
        }
        // As the docker CLI: DOCKER_CERT_PATH, else its config directory (DOCKER_CONFIG, else
        // ~/.docker).
        let env_dir = |name: &str| std::env::var_os(name).filter(|d| !d.is_empty()).map(PathBuf::from);
        let dir = env_dir("DOCKER_CERT_PATH")
            .or_else(|| env_dir("DOCKER_CONFIG"))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
            .unwrap_or_else(|| PathBuf::from(".docker"));
        Some(TlsOptions {
            verify: tlsverify || env_verify,
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        })
    }
}

/// A client of one daemon. Cheap to clone; each request opens its own connection.
#[derive(Debug, Clone)]
pub struct Client {
    host: String,
    endpoint: Endpoint,
    version: String,
    /// TLS for a `tcp://` endpoint.
    tls: Option<std::sync::Arc<wharf_http::Connector>>,
    /// Log each request to stderr (the CLI's `-D` / `--log-level debug`).
    debug: bool,
}

impl Client {
    /// A client of the daemon at `host` (`unix:///path`, `tcp://host:port`, or a bare socket path).
    pub fn new(host: &str) -> Result<Client, ClientError> {
        let endpoint = if let Some(path) = host.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(ClientError::UnsupportedHost(host.to_string()));
            }
            Endpoint::Unix(PathBuf::from(path))
        } else if let Some(addr) = host.strip_prefix("tcp://").or_else(|| host.strip_prefix("http://")) {
            let addr = addr.trim_end_matches('/');
            if addr.is_empty() {
                return Err(ClientError::UnsupportedHost(host.to_string()));
            }
            Endpoint::Tcp(if addr.contains(':') { addr.to_string() } else { format!("{addr}:2375") })
        } else if host.starts_with("ssh://") {
            Endpoint::Ssh(ssh::SshTarget::parse(host).map_err(ClientError::BadSshHost)?)
        } else if host.starts_with('/') {
            Endpoint::Unix(PathBuf::from(host))
        } else {
            return Err(ClientError::UnsupportedHost(host.to_string()));
        };
        Ok(Client {
            host: host.to_string(),
            endpoint,
            version: DEFAULT_API_VERSION.to_string(),
            tls: None,
            debug: false,
        })
    }

    /// Logs each request (method, host and target) to stderr: the CLI's debug mode.
    pub fn with_debug(mut self, debug: bool) -> Client {
        self.debug = debug;
        self
    }

    /// Speaks TLS to a `tcp://` daemon. Streams may stay open for as long as a container's
    /// output does, so there is no read time-out.
    pub fn with_tls(mut self, tls: &TlsOptions) -> Result<Client, ClientError> {
        let Endpoint::Tcp(addr) = &self.endpoint else { return Ok(self) };
        let client_cert = (tls.cert.is_file() && tls.key.is_file()).then(|| (tls.cert.clone(), tls.key.clone()));
        let opts = wharf_http::ConnectorOptions {
            io_timeout: None,
            system_roots: false,
            extra_ca_files: if tls.verify { vec![tls.ca.clone()] } else { Vec::new() },
            client_cert,
            ..Default::default()
        };
        let connector = wharf_http::Connector::new(opts)?;
        if !tls.verify {
            connector.skip_verification(&wharf_http::Url::parse(&format!("https://{addr}/"))?);
        }
        self.tls = Some(std::sync::Arc::new(connector));
        Ok(self)
    }

    /// A client of the daemon named by `flag` (`-H`), else `DOCKER_HOST`, else [`DEFAULT_HOST`];
    /// the API version from `DOCKER_API_VERSION` when set.
    pub fn from_env(flag: Option<&str>) -> Result<Client, ClientError> {
        let env_host = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty());
        let host = flag.map(str::to_string).or(env_host).unwrap_or_else(|| DEFAULT_HOST.to_string());
        let mut c = Client::new(&host)?;
        if let Ok(v) = std::env::var("DOCKER_API_VERSION") {
            if !v.is_empty() {
                c.version = v.trim_start_matches('v').to_string();
            }
        }
        Ok(c)
    }

    /// The host as given (`unix:///run/wharf/wharfd.sock`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The API version this client puts in request paths.
    pub fn api_version(&self) -> &str {
        &self.version
    }

    /// `path` with the version prefix (`/containers/json` → `/v1.41/containers/json`).
    pub fn versioned(&self, path: &str) -> String {
        format!("/v{}{path}", self.version)
    }

    /// A raw connection to the daemon, for `system dial-stdio` to carry bytes over.
    pub fn dial(&self) -> Result<Box<dyn Stream>, ClientError> {
        self.connect()
    }

    fn connect(&self) -> Result<Box<dyn Stream>, ClientError> {
        let connect_err = |source| ClientError::Connect { host: self.host.clone(), source };
        match (&self.endpoint, &self.tls) {
            (Endpoint::Unix(path), _) => wharf_http::connect_unix(path).map_err(connect_err),
            (Endpoint::Tcp(addr), Some(c)) => {
                let url = wharf_http::Url::parse(&format!("https://{addr}/")).map_err(connect_err)?;
                c.connect(&url).map_err(connect_err)
            }
            (Endpoint::Tcp(addr), None) => match TcpStream::connect(addr) {
                Ok(s) => Ok(Box::new(s)),
                Err(source) => Err(connect_err(wharf_http::HttpError::Connect { addr: addr.clone(), source })),
            },
            (Endpoint::Ssh(target), _) => {
                target.connect().map_err(|source| ClientError::Ssh { host: self.host.clone(), source })
            }
        }
    }

    /// Sends a request whose target is already versioned and returns the response, whatever
    /// its status.
    pub fn send_raw(&self, req: Request) -> Result<Response, ClientError> {
        if self.debug {
            eprintln!("DEBU {} {}{}", req.method, self.host, req.target);
        }
        let stream = self.connect()?;
        Ok(wharf_http::send(stream, "api.moby.localhost", req)?)
    }

    /// Sends `req` (its target unversioned: `/containers/json?all=1`) and turns an error status
    /// into [`ClientError::Daemon`] with the daemon's message.
    pub fn request(&self, mut req: Request) -> Result<Response, ClientError> {
        req.target = self.versioned(&req.target);
        let resp = self.send_raw(req)?;
        check_status(resp)
    }

    /// `GET path`, decoding the JSON answer.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let body = self.request(Request::new("GET", path))?.read_body(MAX_JSON_BODY)?;
        decode(path, &body)
    }

    /// `GET path`, the answer's bytes as they came (for `inspect`, which keeps the daemon's order).
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        Ok(self.request(Request::new("GET", path))?.read_body(MAX_JSON_BODY)?)
    }

    /// `POST path` with an optional JSON body, decoding the JSON answer.
    pub fn post_json<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: Option<&B>) -> Result<T, ClientError> {
        let body = self.request(post_request(path, body))?.read_body(MAX_JSON_BODY)?;
        decode(path, &body)
    }

    /// `POST path` with an optional JSON body, ignoring the answer's body.
    pub fn post<B: Serialize>(&self, path: &str, body: Option<&B>) -> Result<(), ClientError> {
        self.request(post_request(path, body))?.read_body(MAX_JSON_BODY)?;
        Ok(())
    }

    /// `DELETE path`, ignoring the answer's body.
    pub fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.request(Request::new("DELETE", path))?.read_body(MAX_JSON_BODY)?;
        Ok(())
    }

    /// `DELETE path`, decoding the JSON answer.
    pub fn delete_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let body = self.request(Request::new("DELETE", path))?.read_body(MAX_JSON_BODY)?;
        decode(path, &body)
    }

    /// Sends `req` and returns the answer's body as a stream (logs, events).
    pub fn stream(&self, req: Request) -> Result<Box<dyn Read + Send>, ClientError> {
        Ok(self.request(req)?.into_body())
    }

    /// Sends `req` and reads its answer as a stream of JSON messages (pull progress).
    pub fn json_stream<T: DeserializeOwned>(&self, req: Request) -> Result<JsonStream<T>, ClientError> {
        let what = req.target.clone();
        let body = self.stream(req)?;
        Ok(JsonStream::new(&what, body))
    }

    /// Attaches to a container's output (and input, with `stdin`) through Docker's connection
    /// hijack: `POST /containers/{id}/attach?stream=1&stdout=1&stderr=1` with `Upgrade: tcp`.
    pub fn attach(&self, id: &str, stdin: bool) -> Result<Attached, ClientError> {
        self.attach_streams(id, AttachStreams { stdin, stdout: true, stderr: true, ..Default::default() })
    }

    /// Attaches to the chosen streams of a container; one attach may carry only stdin while
    /// another reads the output.
    pub fn attach_streams(&self, id: &str, streams: AttachStreams) -> Result<Attached, ClientError> {
        let q = Query::new()
            .set("stream", "1")
            .flag("stdin", streams.stdin)
            .flag("stdout", streams.stdout)
            .flag("stderr", streams.stderr)
            .flag("logs", streams.logs)
            .set_nonempty("detachKeys", streams.detach_keys.as_deref().unwrap_or(""));
        self.hijack(
            post_request::<()>(&q.to_target(&format!("/containers/{}/attach", path_segment(id))), None),
            &format!("attach to {id}"),
        )
    }

    /// Sends `req` (its target unversioned) asking to take over the connection, as the docker
    /// CLI does for attach and exec start; `what` names it in errors.
    pub fn hijack(&self, req: Request, what: &str) -> Result<Attached, ClientError> {
        let mut req = req.header("Connection", "Upgrade").header("Upgrade", "tcp");
        req.target = self.versioned(&req.target);
        let resp = self.send_raw(req)?;
        if resp.status >= 400 {
            return Err(check_status(resp)
                .err()
                .unwrap_or(ClientError::NoUpgrade { what: what.to_string(), status: 0 }));
        }
        if resp.status != 101 && resp.status != 200 {
            return Err(ClientError::NoUpgrade { what: what.to_string(), status: resp.status });
        }
        let (buffered, stream) = resp.into_upgraded();
        Ok(Attached { buffered: io::Cursor::new(buffered), stream })
    }
}

/// Which streams an attach carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachStreams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Replay the container's log before the live output.
    pub logs: bool,
    /// Docker's `detachKeys` (`ctrl-p,ctrl-q`); `None` for the daemon's default.
    pub detach_keys: Option<String>,
}

/// The hijacked connection of an attach: read the container's output from it (multiplexed
/// unless the container has a TTY); write to it for the container's stdin.
pub struct Attached {
    buffered: io::Cursor<Vec<u8>>,
    stream: Box<dyn Stream>,
}

impl Attached {
    /// Half-closes the connection: the container's stdin sees its end.
    pub fn close_stdin(&self) -> io::Result<()> {
        self.stream.shutdown_write()
    }

    /// A handle that writes to the container's stdin while this one reads its output from
    /// another thread.
    pub fn input(&self) -> io::Result<AttachInput> {
        Ok(AttachInput { stream: self.stream.try_clone_stream()? })
    }
}

/// The writing side of an [`Attached`]: the container's stdin.
pub struct AttachInput {
    stream: Box<dyn Stream>,
}

impl AttachInput {
    /// Half-closes the connection: the container's stdin sees its end.
    pub fn close_stdin(&self) -> io::Result<()> {
        self.stream.shutdown_write()
    }
}

impl Write for AttachInput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

impl Read for Attached {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if (self.buffered.position() as usize) < self.buffered.get_ref().len() {
            return self.buffered.read(buf);
        }
        self.stream.read(buf)
    }
}

impl Write for Attached {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// JSON values read one after another from a stream, whatever separates them (Docker writes
/// `\r\n`; some daemons nothing at all).
pub struct JsonStream<T> {
    what: String,
    inner: serde_json::StreamDeserializer<'static, serde_json::de::IoRead<BufReader<Box<dyn Read + Send>>>, T>,
}

impl<T: DeserializeOwned> JsonStream<T> {
    /// Reads JSON values from `body`; `what` names the request in errors.
    pub fn new(what: &str, body: Box<dyn Read + Send>) -> JsonStream<T> {
        let de = serde_json::Deserializer::from_reader(BufReader::new(body));
        JsonStream { what: what.to_string(), inner: de.into_iter() }
    }
}

impl<T: DeserializeOwned> Iterator for JsonStream<T> {
    type Item = Result<T, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|r| {
            r.map_err(|source| match source.io_error_kind() {
                Some(kind) => ClientError::Read { what: self.what.clone(), source: io::Error::new(kind, source) },
                None => ClientError::Decode { what: self.what.clone(), source },
            })
        })
    }
}

/// A `POST` request with an optional JSON body.
pub fn post_request<B: Serialize>(path: &str, body: Option<&B>) -> Request {
    match body {
        Some(b) => Request::new("POST", path).json(b),
        None => Request::new("POST", path),
    }
}

fn decode<T: DeserializeOwned>(what: &str, body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|source| ClientError::Decode { what: what.to_string(), source })
}

/// Passes a success through; turns an error status into the daemon's message.
fn check_status(resp: Response) -> Result<Response, ClientError> {
    if resp.status < 400 {
        return Ok(resp);
    }
    let status = resp.status;
    let reason = resp.reason.clone();
    let body = resp.read_body(1 << 20).unwrap_or_default();
    Err(ClientError::Daemon { status, message: daemon_message(status, &reason, &body) })
}

/// The message of an error body: `{"message": "..."}`, else the text itself, else the status.
fn daemon_message(status: u16, reason: &str, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(body) {
        return e.message;
    }
    let text = String::from_utf8_lossy(body).trim().to_string();
    if text.is_empty() {
        format!("daemon answered {status} {reason}").trim_end().to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_table() {
        let ssh = |user: &str, host: &str| {
            Endpoint::Ssh(ssh::SshTarget { user: Some(user.to_string()), host: host.to_string(), port: None })
        };
        let cases: [(&str, Option<Endpoint>); 8] = [
            ("unix:///run/wharf/wharfd.sock", Some(Endpoint::Unix("/run/wharf/wharfd.sock".into()))),
            ("/tmp/x.sock", Some(Endpoint::Unix("/tmp/x.sock".into()))),
            ("tcp://127.0.0.1:2375", Some(Endpoint::Tcp("127.0.0.1:2375".into()))),
            ("tcp://localhost", Some(Endpoint::Tcp("localhost:2375".into()))),
            ("unix://", None),
            ("ssh://me@host", Some(ssh("me", "host"))),
            ("ssh://me@host/path", None),
            ("npipe:////./pipe/docker_engine", None),
        ];
        for (host, want) in cases {
            assert_eq!(Client::new(host).ok().map(|c| c.endpoint), want, "{host}");
        }
    }

    #[test]
    fn error_messages_table() {
        let cases: [(&[u8], &str); 4] = [
            (br#"{"message":"No such container: web"}"#, "No such container: web"),
            (b"page not found\n", "page not found"),
            (b"", "daemon answered 500 Internal Server Error"),
            (br#"{"message":""}"#, ""),
        ];
        for (body, want) in cases {
            assert_eq!(daemon_message(500, "Internal Server Error", body), want);
        }
    }

    #[test]
    fn missing_socket_says_daemon_not_running() {
        let c = Client::new("unix:///nonexistent/wharfd.sock").unwrap();
        let e = c.get_json::<Version>("/version").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot connect to the wharf daemon at unix:///nonexistent/wharfd.sock: is wharfd running?"
        );
    }

    #[test]
    fn reads_json_streams() {
        let body: Box<dyn Read + Send> = Box::new(
            &b"{\"status\":\"Pulling fs layer\",\"id\":\"abc\"}\r\n{\"status\":\"Downloading\",\"progressDetail\":{\"current\":1,\"total\":2},\"id\":\"abc\"}{\"error\":\"boom\"}"[..],
        );
        let msgs: Vec<JsonMessage> = JsonStream::new("pull", body).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[1].progress_detail.as_ref().and_then(|p| p.total), Some(2));
        assert_eq!(msgs[2].error_message(), Some("boom"));
    }
}
