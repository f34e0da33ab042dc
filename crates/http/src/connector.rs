//! Opening TCP and TLS connections for a URL, with time-outs and per-host CA certificates.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::stream::TlsStream;
use crate::{HttpError, Scheme, Stream, Url};

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

    /// Connects to the URL's host and port, with TLS for `https`.
    pub fn connect(&self, url: &Url) -> Result<Box<dyn Stream>, HttpError> {
        let tcp = self.connect_tcp(&url.host, url.port)?;
        match url.scheme {
            Scheme::Http => Ok(Box::new(tcp)),
            Scheme::Https => Ok(Box::new(self.handshake(url, tcp)?)),
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
        Ok(TlsStream(rustls::StreamOwned::new(conn, tcp)))
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
