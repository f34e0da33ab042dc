//! Opening TCP and TLS connections for a URL, with time-outs, per-host CA certificates,
//! forward proxies, and a pool of keep-alive connections.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::pool::Pool;
use crate::proxy::{Proxy, ProxyConfig};
use crate::request::send_on;
use crate::response::parse_status_line;
use crate::stream::TlsStream;
use crate::{HttpError, Request, Response, Scheme, Stream, Url, MAX_HEAD_SIZE};

/// How [`Connector`] connects and which certificates it trusts.
#[derive(Debug, Clone)]
pub struct ConnectorOptions {
    pub connect_timeout: Duration,
    /// The longest a read or write may wait for progress; `None` waits forever.
    pub io_timeout: Option<Duration>,
    /// Trust the operating system's CA certificates.
    pub system_roots: bool,
    /// PEM CA files trusted for every host.
    pub extra_ca_files: Vec<PathBuf>,
    /// Docker's `certs.d` layout: `<dir>/<host:port>/*.crt` are CAs for that host (also
    /// `<dir>/<host>/` when the port is the default), `client.cert` + `client.key` a client
    /// certificate.
    pub certs_dir: Option<PathBuf>,
    /// Forward proxies for [`Connector::request`].
    pub proxy: ProxyConfig,
    /// Keep connections open between requests of [`Connector::request`] and reuse them. On by
    /// default; `WHARF_HTTP_KEEPALIVE=0` in the environment turns it off (for a proxy or
    /// middlebox that mishandles persistent connections, and to measure what it saves).
    pub keep_alive: bool,
    /// A PEM client certificate and its key, sent to every host that asks for one where
    /// `certs_dir` has none (the docker CLI's `DOCKER_CERT_PATH/{cert,key}.pem`).
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl Default for ConnectorOptions {
    fn default() -> Self {
        ConnectorOptions {
            connect_timeout: Duration::from_secs(10),
            io_timeout: Some(Duration::from_secs(30)),
            system_roots: true,
            extra_ca_files: Vec::new(),
            certs_dir: None,
            proxy: ProxyConfig::default(),
            keep_alive: std::env::var("WHARF_HTTP_KEEPALIVE").map_or(true, |v| v != "0"),
            client_cert: None,
        }
    }
}

/// Opens streams for URLs. Cheap to share: TLS configurations are built once per host.
pub struct Connector {
    opts: ConnectorOptions,
    roots: Arc<RootCertStore>,
    default_tls: Arc<ClientConfig>,
    per_host_tls: Mutex<HashMap<String, Arc<ClientConfig>>>,
    /// `host:port`s whose certificates are not verified (Docker's insecure registries).
    unverified: Mutex<HashSet<String>>,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").field("opts", &self.opts).finish_non_exhaustive()
    }
}

impl Connector {
    pub fn new(opts: ConnectorOptions) -> Result<Connector, HttpError> {
        let mut roots = RootCertStore::empty();
        if opts.system_roots {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                log::warn!("loading system CA certificates: {e}");
            }
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            log::debug!("trusting {added} system CA certificates ({ignored} unparsable)");
        }
        for file in &opts.extra_ca_files {
            add_pem_file(&mut roots, file)?;
        }
        let roots = Arc::new(roots);
        let client = match &opts.client_cert {
            Some((cert, key)) => Some(load_client_cert(cert, key, "")?),
            None => None,
        };
        let default_tls = Arc::new(tls_config(roots.clone(), client, "")?);
        Ok(Connector {
            opts,
            roots,
            default_tls,
            per_host_tls: Mutex::new(HashMap::new()),
            unverified: Mutex::new(HashSet::new()),
            pool: Arc::new(Pool::default()),
        })
    }

    pub fn options(&self) -> &ConnectorOptions {
        &self.opts
    }

    /// From now on, TLS to the URL's host and port accepts any server certificate (a client
    /// certificate from `certs_dir` is still sent): what Docker does for an HTTPS registry
    /// listed in `insecure-registries`.
    pub fn skip_verification(&self, url: &Url) {
        let key = url.host_port();
        let Ok(mut set) = self.unverified.lock() else { return };
        if set.insert(key.clone()) {
            // A configuration built before for this host verifies: build it again.
            if let Ok(mut cache) = self.per_host_tls.lock() {
                cache.remove(&key);
            }
        }
    }

    /// Connects straight to the URL's host and port (no proxy), with TLS for `https`.
    pub fn connect(&self, url: &Url) -> Result<Box<dyn Stream>, HttpError> {
        let tcp = self.connect_tcp(&url.host, url.port)?;
        match url.scheme {
            Scheme::Http => Ok(Box::new(tcp)),
            Scheme::Https => Ok(Box::new(self.handshake(url, tcp)?)),
        }
    }

    /// Sends `req` to `url` and reads the response head: on an idle connection to the same
    /// origin when one is pooled, else on a new one, through the proxy the options give for
    /// the URL. The caller sets `req.target` to the URL's target; `Host` is added here.
    ///
    /// A reused connection the server closed in the meantime fails on first use; the request
    /// is then sent once more on a new connection, when its body can be sent again.
    pub fn request(&self, url: &Url, mut req: Request) -> Result<Response, HttpError> {
        let origin = url.origin();
        let proxy = self.opts.proxy.proxy_for(url);
        if let (Some(p), Scheme::Http) = (proxy, url.scheme) {
            // Plain HTTP through a proxy: the request names the whole URL (absolute form).
            req.target = format!("{}{}", url.origin(), req.target);
            if let Some(a) = p.authorization() {
                req.headers.push(("Proxy-Authorization".to_string(), a));
            }
        }
        let host = url.host_header();
        let keep_alive = self.opts.keep_alive;
        if keep_alive {
            if let (Some(copy), Some(stream)) = (req.try_clone(), self.pool.take(&origin)) {
                match send_on(stream, &host, copy, true) {
                    Ok(resp) => return self.answered(resp, proxy, origin),
                    Err(e @ HttpError::Timeout(_)) => return Err(e),
                    Err(e) => log::debug!("reused connection to {origin} failed ({e}); retrying on a new one"),
                }
            }
        }
        let stream = self.open(url, proxy)?;
        let resp = send_on(stream, &host, req, keep_alive)?;
        self.answered(resp, proxy, origin)
    }

    fn answered(&self, mut resp: Response, proxy: Option<&Proxy>, origin: String) -> Result<Response, HttpError> {
        if let (Some(p), 407) = (proxy, resp.status) {
            return Err(proxy_auth_error(p));
        }
        if self.opts.keep_alive {
            resp.release_to(self.pool.clone(), origin);
        }
        Ok(resp)
    }

    /// A new connection for `url`: direct, or through `proxy` (plain HTTP to it, or a
    /// `CONNECT` tunnel and TLS inside it for `https`).
    fn open(&self, url: &Url, proxy: Option<&Proxy>) -> Result<Box<dyn Stream>, HttpError> {
        log::debug!(
            "new connection to {}{}",
            url.origin(),
            proxy.map(|p| format!(" through {}", p.masked())).unwrap_or_default()
        );
        let Some(p) = proxy else { return self.connect(url) };
        let tcp = self
            .connect_tcp(&p.host, p.port)
            .map_err(|e| HttpError::Proxy { proxy: p.masked(), message: e.to_string() })?;
        match url.scheme {
            Scheme::Http => Ok(Box::new(tcp)),
            Scheme::Https => {
                tunnel(&tcp, p, url)?;
                Ok(Box::new(self.handshake(url, tcp)?))
            }
        }
    }

    fn connect_tcp(&self, host: &str, port: u16) -> Result<TcpStream, HttpError> {
        let addrs =
            (host, port).to_socket_addrs().map_err(|source| HttpError::Resolve { host: host.to_string(), source })?;
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.opts.connect_timeout) {
                Ok(s) => {
                    let setup = s
                        .set_read_timeout(self.opts.io_timeout)
                        .and_then(|_| s.set_write_timeout(self.opts.io_timeout))
                        .and_then(|_| s.set_nodelay(true));
                    setup.map_err(|source| HttpError::Connect { addr: addr.to_string(), source })?;
                    return Ok(s);
                }
                Err(e) => last = Some((addr, e)),
            }
        }
        Err(match last {
            Some((addr, e)) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => {
                HttpError::Timeout(format!("connecting to {addr}"))
            }
            Some((addr, source)) => HttpError::Connect { addr: addr.to_string(), source },
            None => HttpError::Resolve {
                host: host.to_string(),
                source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
            },
        })
    }

    fn handshake(&self, url: &Url, mut tcp: TcpStream) -> Result<TlsStream, HttpError> {
        let tls_err = |message: String| HttpError::Tls { host: url.host_port(), message };
        let config = self.config_for(url)?;
        let name = ServerName::try_from(url.host.clone()).map_err(|e| tls_err(format!("invalid server name: {e}")))?;
        let mut conn = rustls::ClientConnection::new(config, name).map_err(|e| tls_err(e.to_string()))?;
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut tcp) {
                if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) {
                    return Err(HttpError::Timeout(format!("tls handshake with {}", url.host_port())));
                }
                // rustls reports its own failures (bad certificate, alert) as InvalidData.
                return Err(tls_err(e.to_string()));
            }
        }
        Ok(TlsStream::new(conn, tcp))
    }

    /// The TLS configuration for a host: the shared one, or one with the host's own CA files and
    /// client certificate from `certs_dir`.
    fn config_for(&self, url: &Url) -> Result<Arc<ClientConfig>, HttpError> {
        let key = url.host_port();
        let unverified = self.unverified.lock().is_ok_and(|set| set.contains(&key));
        if self.opts.certs_dir.is_none() && !unverified {
            return Ok(self.default_tls.clone());
        }
        if let Ok(cache) = self.per_host_tls.lock() {
            if let Some(c) = cache.get(&key) {
                return Ok(c.clone());
            }
        }
        let mut dirs = Vec::new();
        if let Some(certs_dir) = &self.opts.certs_dir {
            dirs.push(certs_dir.join(&key));
            if url.port == url.scheme.default_port() {
                dirs.push(certs_dir.join(&url.host));
            }
        }
        let dir = dirs.into_iter().find(|d| d.is_dir());
        let config = match (dir, unverified) {
            (None, false) => return Ok(self.default_tls.clone()),
            (Some(dir), false) => host_config(self.roots.clone(), &dir, &key)?,
            (dir, true) => {
                let client = match (&dir, &self.opts.client_cert) {
                    (Some(dir), _) => client_cert(dir, &key)?,
                    (None, Some((cert, k))) => Some(load_client_cert(cert, k, &key)?),
                    (None, None) => None,
                };
                unverified_config(client, &key)?
            }
        };
        let config = Arc::new(config);
        if let Ok(mut cache) = self.per_host_tls.lock() {
            cache.insert(key, config.clone());
        }
        Ok(config)
    }
}

/// Asks the proxy on `tcp` for a tunnel to the URL's host and port (`CONNECT`), and reads its
/// answer byte by byte, so that nothing of the TLS handshake that follows is read here.
fn tunnel(mut tcp: &TcpStream, p: &Proxy, url: &Url) -> Result<(), HttpError> {
    let target = url.host_port();
    let err = |message: String| HttpError::Proxy { proxy: p.masked(), message };
    let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(a) = p.authorization() {
        head.push_str(&format!("Proxy-Authorization: {a}\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).map_err(|e| err(format!("CONNECT {target}: {e}")))?;
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() >= MAX_HEAD_SIZE {
            return Err(err(format!("CONNECT {target}: answer head larger than {MAX_HEAD_SIZE} bytes")));
        }
        match tcp.read(&mut byte) {
            Ok(0) => return Err(err(format!("CONNECT {target}: the proxy closed the connection"))),
            Ok(_) => answer.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => {
                return Err(HttpError::Timeout(format!("waiting for proxy {} to CONNECT {target}", p.masked())))
            }
            Err(e) => return Err(err(format!("CONNECT {target}: {e}"))),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let line = text.lines().next().unwrap_or("");
    let (status, reason) = parse_status_line(line).map_err(|e| err(format!("CONNECT {target}: {e}")))?;
    match status {
        200..=299 => Ok(()),
        407 => Err(proxy_auth_error(p)),
        _ => Err(err(format!("CONNECT {target} answered {status} {reason}"))),
    }
}

fn proxy_auth_error(p: &Proxy) -> HttpError {
    let why = if p.authorization().is_some() {
        "the proxy refused the credentials in its URL"
    } else {
        "the proxy requires authentication: put user:password@ in the proxy URL"
    };
    HttpError::Proxy { proxy: p.masked(), message: format!("407 Proxy Authentication Required: {why}") }
}

fn host_config(roots: Arc<RootCertStore>, dir: &Path, host: &str) -> Result<ClientConfig, HttpError> {
    let mut roots = (*roots).clone();
    let entries = std::fs::read_dir(dir).map_err(|e| HttpError::io(&format!("read {}", dir.display()), e))?;
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    for f in files.iter().filter(|f| f.extension().is_some_and(|x| x == "crt")) {
        add_pem_file(&mut roots, f)?;
    }
    let client = client_cert(dir, host)?;
    tls_config(Arc::new(roots), client, host)
}

/// The certificate chain and key in `client.cert` + `client.key` under `dir`, when both exist.
fn client_cert(dir: &Path, host: &str) -> Result<Option<ClientCert>, HttpError> {
    let cert = dir.join("client.cert");
    let key = dir.join("client.key");
    if !(cert.is_file() && key.is_file()) {
        return Ok(None);
    }
    load_client_cert(&cert, &key, host).map(Some)
}

/// A PEM certificate chain and its PEM key.
fn load_client_cert(cert: &Path, key: &Path, host: &str) -> Result<ClientCert, HttpError> {
    let tls_err = |message: String| HttpError::Tls { host: host.to_string(), message };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_err(format!("client certificate {}: {e}", cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_err(format!("client key {}: {e}", key.display())))?;
    Ok((chain, key))
}

type ClientCert = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// A configuration that takes any server certificate, still checking that the server holds
/// its key (the handshake signatures), so the connection is encrypted if not authenticated.
fn unverified_config(client: Option<ClientCert>, host: &str) -> Result<ClientConfig, HttpError> {
    let tls_err = |e: rustls::Error| HttpError::Tls { host: host.to_string(), message: e.to_string() };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)));
    match client {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(tls_err),
        None => Ok(builder.with_no_client_auth()),
    }
}

#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(roots: Arc<RootCertStore>, client: Option<ClientCert>, host: &str) -> Result<ClientConfig, HttpError> {
    let tls_err = |e: rustls::Error| HttpError::Tls { host: host.to_string(), message: e.to_string() };
    // An explicit provider, so another crate enabling a second rustls backend cannot make the
    // process-wide default ambiguous.
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_root_certificates(roots);
    match client {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(tls_err),
        None => Ok(builder.with_no_client_auth()),
    }
}

fn add_pem_file(roots: &mut RootCertStore, file: &Path) -> Result<(), HttpError> {
    let tls_err = |message: String| HttpError::Tls { host: file.display().to_string(), message };
    let certs = CertificateDer::pem_file_iter(file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_err(format!("reading CA certificates: {e}")))?;
    if certs.is_empty() {
        return Err(tls_err("no CA certificate in the file".to_string()));
    }
    for c in certs {
        roots.add(c).map_err(|e| tls_err(format!("invalid CA certificate: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    #[test]
    fn https_to_a_plain_http_server_is_a_tls_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            }
        });
        let c = Connector::new(ConnectorOptions { system_roots: false, ..ConnectorOptions::default() }).unwrap();
        let url = Url::parse(&format!("https://127.0.0.1:{port}/v2/")).unwrap();
        let err = c.connect(&url).err().unwrap();
        assert!(matches!(err, HttpError::Tls { .. }), "{err}");
        assert_eq!(err.kind(), wharf_types::ErrorKind::Unavailable);
    }

    #[test]
    fn refused_connection_is_a_connect_error() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let c = Connector::new(ConnectorOptions { system_roots: false, ..ConnectorOptions::default() }).unwrap();
        let err = c.connect(&Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap()).err().unwrap();
        assert!(matches!(err, HttpError::Connect { .. }), "{err}");
    }

    /// A keep-alive server: answers every request on a connection with `body`, counting
    /// connections; after `close_after` requests on one connection it closes it without saying.
    fn keep_alive_server(
        close_after: usize,
    ) -> (u16, Arc<std::sync::atomic::AtomicUsize>, std::sync::mpsc::Receiver<String>) {
        use std::io::{BufRead, BufReader};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        let count = accepted.clone();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(s) = s else { return };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    let mut w = s;
                    for _ in 0..close_after {
                        let mut first = String::new();
                        if r.read_line(&mut first).unwrap_or(0) == 0 {
                            return;
                        }
                        loop {
                            let mut l = String::new();
                            if r.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                                break;
                            }
                        }
                        let _ = tx.send(first.trim_end().to_string());
                        let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                    }
                });
            }
        });
        (port, accepted, rx)
    }

    fn plain_connector(keep_alive: bool) -> Connector {
        Connector::new(ConnectorOptions { system_roots: false, keep_alive, ..ConnectorOptions::default() }).unwrap()
    }

    #[test]
    fn keep_alive_connections_are_reused_once_the_body_is_read() {
        let (port, accepted, _rx) = keep_alive_server(100);
        let c = plain_connector(true);
        let url = Url::parse(&format!("http://127.0.0.1:{port}/a")).unwrap();
        for _ in 0..5 {
            let resp = c.request(&url, Request::new("GET", "/a")).unwrap();
            assert_eq!(resp.read_body(10).unwrap(), b"ok");
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        // A body not read to its end cannot be reused: the next request takes a new connection.
        let unread = c.request(&url, Request::new("GET", "/a")).unwrap();
        drop(unread);
        let resp = c.request(&url, Request::new("GET", "/a")).unwrap();
        assert_eq!(resp.read_body(10).unwrap(), b"ok");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
        let c = plain_connector(false);
        for _ in 0..3 {
            c.request(&url, Request::new("GET", "/a")).unwrap().read_body(10).unwrap();
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 5);
    }

    #[test]
    fn a_connection_the_server_closed_is_replaced() {
        // One request per connection, closed silently after it: every reuse finds it closed.
        let (port, accepted, rx) = keep_alive_server(1);
        let c = plain_connector(true);
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        for i in 0..4 {
            let req = Request::new("PUT", &format!("/{i}")).body(crate::Body::Bytes(b"x".to_vec()));
            let resp = c.request(&url, req).unwrap();
            assert_eq!(resp.read_body(10).unwrap(), b"ok", "request {i}");
            // Let the server's close arrive, as it would between a pull's requests.
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 4);
        let lines: Vec<String> = rx.try_iter().collect();
        assert_eq!(lines, ["PUT /0 HTTP/1.1", "PUT /1 HTTP/1.1", "PUT /2 HTTP/1.1", "PUT /3 HTTP/1.1"]);
    }

    #[test]
    fn plain_http_through_a_proxy_names_the_whole_url() {
        let (port, _accepted, rx) = keep_alive_server(10);
        let proxy = ProxyConfig::parse(&format!("http://u:p@127.0.0.1:{port}"), "", "<-loopback>").unwrap();
        let c = Connector::new(ConnectorOptions { system_roots: false, proxy, ..ConnectorOptions::default() }).unwrap();
        let url = Url::parse("http://registry.test:5000/v2/").unwrap();
        let resp = c.request(&url, Request::new("GET", "/v2/")).unwrap();
        assert_eq!(resp.read_body(10).unwrap(), b"ok");
        assert_eq!(rx.recv().unwrap(), "GET http://registry.test:5000/v2/ HTTP/1.1");
    }

    #[test]
    fn a_proxy_that_is_down_is_named() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let proxy = ProxyConfig::parse("", &format!("http://u:secret@127.0.0.1:{port}"), "").unwrap();
        let c = Connector::new(ConnectorOptions { system_roots: false, proxy, ..ConnectorOptions::default() }).unwrap();
        let err =
            c.request(&Url::parse("https://registry.test/v2/").unwrap(), Request::new("GET", "/v2/")).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with(&format!("proxy http://xxxxx:xxxxx@127.0.0.1:{port}: cannot connect")), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn a_missing_ca_file_is_refused() {
        let opts = ConnectorOptions {
            system_roots: false,
            extra_ca_files: vec![PathBuf::from("/nonexistent/ca.crt")],
            ..ConnectorOptions::default()
        };
        assert!(Connector::new(opts).is_err());
    }
}
