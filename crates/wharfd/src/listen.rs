//! The API's listeners, as dockerd's `-H`: `unix:///path` (mode 0660, owned root:`--group`),
//! `tcp://host:port` (TLS with `--tls`/`--tlsverify`; plain TCP only on loopback unless
//! `--tls=false` forces it), and `fd://` / `fd://N` for systemd socket activation.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use wharf_engine::Engine;

use crate::config::TlsConfig;

/// One `-H` value, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Unix(PathBuf),
    Tcp(String),
    /// `fd://` (every socket systemd passed) or `fd://N`.
    Fd(Option<RawFd>),
}

pub fn parse_host(host: &str, tls: bool) -> anyhow::Result<Host> {
    if let Some(p) = host.strip_prefix("unix://") {
        return Ok(Host::Unix(PathBuf::from(if p.is_empty() { "/run/wharf/wharfd.sock" } else { p })));
    }
    if host.starts_with('/') {
        return Ok(Host::Unix(PathBuf::from(host)));
    }
    if let Some(rest) = host.strip_prefix("tcp://") {
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') {
            bail!("host {host:?}: a tcp:// host has no path");
        }
        // dockerd's defaults: 127.0.0.1, port 2376 with TLS, 2375 without.
        let port = if tls { "2376" } else { "2375" };
        let addr = match rest.rsplit_once(':') {
            _ if rest.is_empty() => format!("127.0.0.1:{port}"),
            Some((h, p)) if !h.ends_with(']') && h.contains(':') => {
                bail!("host {host:?}: write IPv6 addresses as [addr]:{p}")
            }
            Some(("", p)) => format!("127.0.0.1:{p}"),
            Some((h, "")) => format!("{h}:{port}"),
            Some((h, p)) => format!("{h}:{p}"),
            None => format!("{rest}:{port}"),
        };
        return Ok(Host::Tcp(addr));
    }
    if let Some(n) = host.strip_prefix("fd://") {
        if n.is_empty() {
            return Ok(Host::Fd(None));
        }
        let fd = n.parse::<RawFd>().with_context(|| format!("host {host:?}: fd://N needs a descriptor number"))?;
        return Ok(Host::Fd(Some(fd)));
    }
    bail!("host {host:?} is not supported: use unix:///path, tcp://host:port, fd:// or fd://N")
}

pub enum Listener {
    Unix(tokio::net::UnixListener, Option<PathBuf>),
    Tcp(tokio::net::TcpListener, Option<Arc<rustls::ServerConfig>>),
}

impl Listener {
    /// The unix socket file wharfd made, to remove when it stops (not systemd's).
    pub fn socket_file(&self) -> Option<&Path> {
        match self {
            Listener::Unix(_, p) => p.as_deref(),
            Listener::Tcp(..) => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Listener::Unix(l, _) => match l.local_addr().ok().and_then(|a| a.as_pathname().map(Path::to_path_buf)) {
                Some(p) => format!("unix://{}", p.display()),
                None => "unix socket".to_string(),
            },
            Listener::Tcp(l, tls) => {
                let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
                format!("tcp://{addr}{}", if tls.is_some() { " (TLS)" } else { "" })
            }
        }
    }
}

/// Opens every host, or fails before serving any: a daemon that listens on half of what it
/// was told to is worse than one that says why it cannot start.
pub fn open_all(hosts: &[String], tls: &TlsConfig, group: &(String, bool)) -> anyhow::Result<Vec<Listener>> {
    let server_tls = if tls.enabled { Some(server_config(tls)?) } else { None };
    let gid = resolve_group(group)?;
    let mut out = Vec::new();
    let mut activated: Option<Vec<OwnedFd>> = None;
    for h in hosts {
        match parse_host(h, tls.enabled)? {
            Host::Unix(path) => out.push(Listener::Unix(bind_unix(&path, gid)?, Some(path))),
            Host::Tcp(addr) => {
                let addrs: Vec<SocketAddr> =
                    addr.to_socket_addrs().with_context(|| format!("host tcp://{addr}"))?.collect();
                let loopback = !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback());
                if server_tls.is_none() {
                    if !loopback && !tls.forced_plain {
                        bail!(
                            "refusing to serve the API on tcp://{addr} without TLS: anyone who can reach it \
                             controls this host as root. Use --tlsverify with --tlscacert/--tlscert/--tlskey, \
                             or force plain TCP with --tls=false"
                        );
                    }
                    if !loopback {
                        log::warn!(
                            "!!! the API is served on tcp://{addr} WITHOUT TLS or any authentication: \
                             anyone who can reach this address has root on this host (forced by --tls=false) !!!"
                        );
                    } else {
                        log::warn!("the API is served on tcp://{addr} without TLS: any local user can use it");
                    }
                } else if !tls.verify {
                    log::warn!("tcp://{addr}: TLS without --tlsverify: clients are not authenticated");
                }
                let std =
                    std::net::TcpListener::bind(addrs.as_slice()).with_context(|| format!("listen on tcp://{addr}"))?;
                std.set_nonblocking(true)?;
                out.push(Listener::Tcp(tokio::net::TcpListener::from_std(std)?, server_tls.clone()));
            }
            Host::Fd(which) => {
                let fds = match activated.take() {
                    Some(f) => f,
                    None => systemd_fds()?,
                };
                let mut rest = Vec::new();
                let mut taken = 0;
                for fd in fds {
                    use std::os::fd::AsRawFd;
                    if which.is_some_and(|n| n != fd.as_raw_fd()) {
                        rest.push(fd);
                        continue;
                    }
                    taken += 1;
                    out.push(activated_listener(fd, server_tls.clone())?);
                }
                if taken == 0 {
                    match which {
                        Some(n) => bail!("host fd://{n}: systemd passed no socket {n}"),
                        None => bail!("host fd://: systemd passed no sockets (LISTEN_FDS)"),
                    }
                }
                activated = Some(rest);
            }
        }
    }
    Ok(out)
}

/// The sockets systemd passed: LISTEN_FDS of them from descriptor 3, when LISTEN_PID is us.
fn systemd_fds() -> anyhow::Result<Vec<OwnedFd>> {
    let pid = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok());
    if pid != Some(std::process::id()) {
        bail!("host fd://: not started by systemd socket activation (LISTEN_PID is not this process)");
    }
    let n = std::env::var("LISTEN_FDS").ok().and_then(|n| n.parse::<RawFd>().ok()).unwrap_or(0);
    let mut out = Vec::new();
    for fd in 3..3 + n {
        // SAFETY: systemd's protocol hands descriptors 3..3+LISTEN_FDS to this process (checked
        // by LISTEN_PID above); nothing else in wharfd owns them, and each is taken once here.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: FD_CLOEXEC on a descriptor this process owns; no memory is involved.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        out.push(owned);
    }
    Ok(out)
}

/// A passed socket as a listener of its own family.
fn activated_listener(fd: OwnedFd, tls: Option<Arc<rustls::ServerConfig>>) -> anyhow::Result<Listener> {
    use std::os::fd::AsRawFd;
    let mut addr: libc::sockaddr_storage =
        // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
        unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: getsockname writes at most `len` bytes into `addr`, which is that large.
    let rc = unsafe { libc::getsockname(fd.as_raw_fd(), (&raw mut addr).cast(), &mut len) };
    if rc != 0 {
        bail!("fd {}: not a socket: {}", fd.as_raw_fd(), std::io::Error::last_os_error());
    }
    match i32::from(addr.ss_family) {
        libc::AF_UNIX => {
            let l = std::os::unix::net::UnixListener::from(fd);
            l.set_nonblocking(true)?;
            Ok(Listener::Unix(tokio::net::UnixListener::from_std(l)?, None))
        }
        libc::AF_INET | libc::AF_INET6 => {
            let l = std::net::TcpListener::from(fd);
            l.set_nonblocking(true)?;
            Ok(Listener::Tcp(tokio::net::TcpListener::from_std(l)?, tls))
        }
        other => bail!("fd {}: a socket of family {other}, neither unix nor TCP", fd.as_raw_fd()),
    }
}

/// `--group`: a name in /etc/group or a number. The default `docker` may be missing (root
/// only then, as with dockerd); a group asked for must exist.
fn resolve_group(group: &(String, bool)) -> anyhow::Result<Option<u32>> {
    let (name, explicit) = group;
    if name.is_empty() {
        return Ok(None);
    }
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(Some(gid));
    }
    let text = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let gid = text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next() == Some(name.as_str())).then(|| f.nth(1).and_then(|g| g.parse::<u32>().ok())).flatten()
    });
    match gid {
        Some(g) => Ok(Some(g)),
        None if *explicit => bail!("group {name:?} for the API socket does not exist"),
        None => {
            log::debug!("no group {name:?}: the API socket is root's only");
            Ok(None)
        }
    }
}

/// Binds a unix socket (mode 0660, group `gid`), replacing a stale socket file from a crashed
/// daemon but refusing to start beside a live one.
fn bind_unix(path: &Path, gid: Option<u32>) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("another daemon is already listening on {}", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("remove stale socket {}", path.display()))?;
    }
    let listener = tokio::net::UnixListener::bind(path).with_context(|| format!("listen on {}", path.display()))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, Some(0), Some(gid)).with_context(|| format!("chown {}", path.display()))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(listener)
}

/// The server's TLS: its certificate and key, and with `verify` the CA whose client
/// certificates are required (a client without one fails the handshake).
fn server_config(tls: &TlsConfig) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("tlscert {}: {e}", tls.cert.display()))?;
    if chain.is_empty() {
        bail!("tlscert {}: no CERTIFICATE in it", tls.cert.display());
    }
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&tls.key)
        .map_err(|e| anyhow::anyhow!("tlskey {}: {e}", tls.key.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = if tls.verify {
        let mut roots = rustls::RootCertStore::empty();
        let cas = CertificateDer::pem_file_iter(&tls.ca)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| anyhow::anyhow!("tlscacert {}: {e}", tls.ca.display()))?;
        for c in cas {
            roots.add(c).with_context(|| format!("tlscacert {}", tls.ca.display()))?;
        }
        if roots.is_empty() {
            bail!("tlscacert {}: no CERTIFICATE in it", tls.ca.display());
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .context("client certificate verifier")?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(chain, key).with_context(|| {
        format!("tlscert {} and tlskey {} do not go together", tls.cert.display(), tls.key.display())
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts on `listener` until its task is aborted (main does that when the drain starts, which
/// closes the listener); one task per connection.
pub async fn serve(listener: Listener, engine: Engine, drain: wharf_api::Drain) {
    loop {
        match &listener {
            Listener::Unix(l, _) => match l.accept().await {
                Ok((s, _)) => {
                    tokio::spawn(wharf_api::serve_connection(s, engine.clone(), drain.clone()));
                }
                Err(e) => accept_failed(e).await,
            },
            Listener::Tcp(l, tls) => match l.accept().await {
                Ok((s, peer)) => {
                    let _ = s.set_nodelay(true);
                    match tls {
                        None => {
                            tokio::spawn(wharf_api::serve_connection(s, engine.clone(), drain.clone()));
                        }
                        Some(config) => match wharf_tls::TlsStream::new(s, config.clone()) {
                            Ok(t) => {
                                tokio::spawn(wharf_api::serve_connection(t, engine.clone(), drain.clone()));
                            }
                            Err(e) => log::warn!("TLS connection from {peer}: {e}"),
                        },
                    }
                }
                Err(e) => accept_failed(e).await,
            },
        }
    }
}

/// `metrics-addr`: plain HTTP, read-only, as dockerd's; a warning when other hosts can reach it.
pub fn open_metrics(addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs().with_context(|| format!("metrics-addr {addr}"))?.collect();
    if !addrs.iter().all(|a| a.ip().is_loopback()) {
        log::warn!(
            "metrics-addr {addr}: the metrics are served without TLS or authentication to every host that can reach it"
        );
    }
    let std =
        std::net::TcpListener::bind(addrs.as_slice()).with_context(|| format!("listen on metrics-addr {addr}"))?;
    std.set_nonblocking(true)?;
    Ok(tokio::net::TcpListener::from_std(std)?)
}

pub async fn serve_metrics(listener: tokio::net::TcpListener, engine: Engine) {
    loop {
        match listener.accept().await {
            Ok((s, _)) => {
                tokio::spawn(wharf_api::serve_metrics_connection(s, engine.clone()));
            }
            Err(e) => accept_failed(e).await,
        }
    }
}

async fn accept_failed(e: std::io::Error) {
    log::warn!("api: accept: {e}");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_as_dockerd_reads_them() {
        let t = |h: &str| parse_host(h, false).unwrap();
        assert_eq!(t("unix:///run/x.sock"), Host::Unix("/run/x.sock".into()));
        assert_eq!(t("/run/x.sock"), Host::Unix("/run/x.sock".into()));
        assert_eq!(t("tcp://"), Host::Tcp("127.0.0.1:2375".into()));
        assert_eq!(parse_host("tcp://", true).unwrap(), Host::Tcp("127.0.0.1:2376".into()));
        assert_eq!(t("tcp://:4000"), Host::Tcp("127.0.0.1:4000".into()));
        assert_eq!(t("tcp://0.0.0.0:2376"), Host::Tcp("0.0.0.0:2376".into()));
        assert_eq!(t("tcp://[::1]:2376"), Host::Tcp("[::1]:2376".into()));
        assert_eq!(t("tcp://example.test"), Host::Tcp("example.test:2375".into()));
        assert_eq!(t("fd://"), Host::Fd(None));
        assert_eq!(t("fd://3"), Host::Fd(Some(3)));
        for bad in ["ssh://host", "tcp://h:1/path", "fd://x", "npipe:////./pipe/x", "tcp://::1:2375"] {
            assert!(parse_host(bad, false).is_err(), "{bad}");
        }
    }
}
