//! The CRI streaming server, as kubelet's `cri/streaming` package defines it: `Exec`, `Attach`
//! and `PortForward` check the request and answer a one-time URL
//! (`http://ADDR/{exec,attach,portforward}/<token>`) on an HTTP server wharfd runs beside the
//! CRI socket; the client (kubelet's, or the apiserver proxying kubectl) then upgrades that URL
//! to a stream. A token is good for one connection within a minute (kubelet's default), as
//! kubelet's token cache.
//!
//! The upgrade spoken is WebSocket (`websocket.rs`) with Kubernetes' channel protocols:
//! `channel.k8s.io` (and no protocol at all), `base64.channel.k8s.io`, `v4.channel.k8s.io`,
//! `v4.base64.channel.k8s.io` and `v5.channel.k8s.io` for exec and attach (channel 0 stdin,
//! 1 stdout, 2 stderr, 3 error, 4 resize; v4 and later write a metav1 Status on the error
//! channel with the exit code; v5 lets the client close stdin with `[255, 0]`), and for
//! port-forward the channel pairs of `portforward.rs`; and SPDY/3.1 (`spdy.rs`), which
//! kubelet and the apiserver speak, with the same protocols' stream types.

mod portforward;
pub mod spdy;
pub mod websocket;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming as Body;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use wharf_engine::{AttachOptions, ExecConfig, LogStream, ProcessStream, StreamEvent, StreamInput};

use crate::grpc::Status;
use crate::proto;
use crate::Cri;
use websocket::{Incoming, Reader, Writer, OP_BINARY, OP_PONG, OP_TEXT};

/// How long a URL stays good (kubelet's default).
pub const TOKEN_TTL: Duration = Duration::from_secs(60);

/// A stream with nothing going either way for this long is ended as a hang-up (kubelet's and
/// containerd's `stream_idle_timeout` default, 4 h): a client that vanished without closing
/// its connection does not keep an exec, or a connection into a pod, forever.
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

/// What a token stands for: the request as the RPC checked it.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamRequest {
    Exec(proto::ExecRequest),
    Attach(proto::AttachRequest),
    PortForward(proto::PortForwardRequest),
}

impl StreamRequest {
    fn verb(&self) -> &'static str {
        match self {
            StreamRequest::Exec(_) => "exec",
            StreamRequest::Attach(_) => "attach",
            StreamRequest::PortForward(_) => "portforward",
        }
    }
}

/// The one-time tokens; each is taken out when used, and expired ones are dropped as new ones
/// come.
#[derive(Default)]
pub struct Tokens {
    map: Mutex<HashMap<String, (Instant, StreamRequest)>>,
}

impl Tokens {
    /// A new token for `req`, good until `now + TOKEN_TTL`.
    pub fn insert(&self, req: StreamRequest, now: Instant) -> Result<String, Status> {
        let token = random_token().map_err(|e| Status::internal(format!("make a stream token: {e}")))?;
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (expires, _)| *expires > now);
        map.insert(token.clone(), (now + TOKEN_TTL, req));
        Ok(token)
    }

    /// The request of `token` for `verb`, once: a token is gone after this, used or not; an
    /// expired one, or one of another verb, is none.
    pub fn take(&self, verb: &str, token: &str, now: Instant) -> Option<StreamRequest> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let (expires, req) = map.remove(token)?;
        (expires > now && req.verb() == verb).then_some(req)
    }
}

/// 128 random bits, URL-safe.
fn random_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// The streaming server's state: the address its URLs give and the tokens it honours.
pub struct Streaming {
    /// `http://IP:PORT` or `https://IP:PORT`.
    base: String,
    pub tokens: Tokens,
}

impl Streaming {
    /// `bound` is where the server listens. Bound to every address (0.0.0.0 or ::), its URLs
    /// name the node's own address instead, as containerd's: an unspecified address is not
    /// one a client can dial everywhere.
    pub fn new(bound: SocketAddr, tls: bool) -> Streaming {
        let ip = if bound.ip().is_unspecified() { advertised_ip(bound.ip()) } else { bound.ip() };
        let scheme = if tls { "https" } else { "http" };
        Streaming { base: format!("{scheme}://{}", SocketAddr::new(ip, bound.port())), tokens: Tokens::default() }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, req: StreamRequest) -> Result<proto::StreamUrlResponse, Status> {
        let verb = req.verb();
        let token = self.tokens.insert(req, Instant::now())?;
        Ok(proto::StreamUrlResponse { url: format!("{}/{verb}/{token}", self.base) })
    }
}

/// The node's address for a server bound to every address: for IPv4, the first address of the
/// interface that holds the default route; loopback when there is none (and for IPv6).
fn advertised_ip(unspecified: IpAddr) -> IpAddr {
    if unspecified.is_ipv4() {
        let route = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
        if let Some(ip) = default_route_interface(&route).and_then(|i| interface_ipv4(&i)) {
            return IpAddr::V4(ip);
        }
        return IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    }
    IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
}

/// The interface of the main table's default route in /proc/net/route's text.
fn default_route_interface(route: &str) -> Option<String> {
    route.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // Iface Destination Gateway Flags ... Mask: a default route has destination and mask 0.
        (f.len() > 7 && f[1] == "00000000" && f[7] == "00000000").then(|| f[0].to_string())
    })
}

/// The first IPv4 address of an interface.
fn interface_ipv4(name: &str) -> Option<std::net::Ipv4Addr> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = head;
    while !cur.is_null() && found.is_none() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*cur };
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let ifname = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        if ifname.to_bytes() == name.as_bytes() && !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points at a sockaddr of the family it says; AF_INET is a sockaddr_in.
            unsafe {
                if (*ifa.ifa_addr).sa_family as i32 == libc::AF_INET {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    found = Some(std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
                }
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: frees the list getifaddrs allocated, once; no reference into it outlives this.
    unsafe { libc::freeifaddrs(head) };
    found
}

/// kubelet's checks of an exec or attach request (`validateExecRequest`).
fn check_stdio(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> Result<(), Status> {
    if tty && stderr {
        // A terminal has one output: stderr cannot be told apart from stdout.
        return Err(Status::invalid("tty and stderr cannot both be true"));
    }
    if !stdin && !stdout && !stderr {
        return Err(Status::invalid("one of stdin, stdout, or stderr must be set"));
    }
    Ok(())
}

impl Cri {
    pub(crate) async fn exec(&self, mut r: proto::ExecRequest) -> Result<proto::StreamUrlResponse, Status> {
        if r.container_id.is_empty() {
            return Err(Status::invalid("missing required container_id"));
        }
        check_stdio(r.stdin, r.stdout, r.stderr, r.tty)?;
        if r.cmd.is_empty() {
            return Err(Status::invalid("Exec: no command"));
        }
        let (rec, _) = self.find_cri_container(&r.container_id)?;
        if !rec.state.running {
            return Err(Status::precondition(format!("container \"{}\" is not running", rec.id)));
        }
        r.container_id = rec.id;
        self.streaming.url(StreamRequest::Exec(r))
    }

    pub(crate) async fn attach(&self, mut r: proto::AttachRequest) -> Result<proto::StreamUrlResponse, Status> {
        if r.container_id.is_empty() {
            return Err(Status::invalid("missing required container_id"));
        }
        check_stdio(r.stdin, r.stdout, r.stderr, r.tty)?;
        let (rec, _) = self.find_cri_container(&r.container_id)?;
        if !rec.state.running {
            return Err(Status::precondition(format!("container \"{}\" is not running", rec.id)));
        }
        r.container_id = rec.id;
        self.streaming.url(StreamRequest::Attach(r))
    }

    pub(crate) async fn port_forward(
        &self,
        mut r: proto::PortForwardRequest,
    ) -> Result<proto::StreamUrlResponse, Status> {
        if r.pod_sandbox_id.is_empty() {
            return Err(Status::invalid("missing required pod_sandbox_id"));
        }
        if let Some(p) = r.port.iter().find(|p| !(1..=65535).contains(*p)) {
            return Err(Status::invalid(format!("invalid port {p}: a port is 1 to 65535")));
        }
        let (rec, _) = self.find_sandbox(&r.pod_sandbox_id)?;
        if !rec.state.running {
            return Err(Status::precondition(format!("pod sandbox \"{}\" is not ready", rec.id)));
        }
        r.pod_sandbox_id = rec.id;
        self.streaming.url(StreamRequest::PortForward(r))
    }
}

/// Serves the streaming URLs until the task is aborted.
pub async fn serve(listener: tokio::net::TcpListener, cri: Arc<Cri>, tls: Option<Arc<wharf_tls::ServerConfig>>) {
    loop {
        let (sock, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                log::warn!("cri streaming: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let cri = cri.clone();
        match &tls {
            Some(config) => match wharf_tls::TlsStream::new(sock, config.clone()) {
                Ok(tls_sock) => {
                    tokio::spawn(serve_connection(tls_sock, cri));
                }
                Err(e) => log::warn!("cri streaming: TLS: {e}"),
            },
            None => {
                tokio::spawn(serve_connection(sock, cri));
            }
        }
    }
}

/// One client connection, plain or TLS: HTTP/1.1 with the upgrades the stream protocols use.
async fn serve_connection<S>(sock: S, cri: Arc<Cri>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let cri = cri.clone();
        async move { Ok::<_, Infallible>(handle(cri, req)) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(sock), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        log::debug!("cri streaming: connection: {e}");
    }
}

fn plain(status: StatusCode, text: impl Into<String>) -> Response<Full<Bytes>> {
    let mut body = text.into();
    body.push('\n');
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Whether a comma-separated header (Connection, Upgrade) names `token`.
fn has_token(h: &HeaderMap, name: &str, token: &str) -> bool {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The protocols the client offers in `Sec-WebSocket-Protocol`, in its order.
fn offered(h: &HeaderMap) -> Vec<String> {
    h.get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The Kubernetes channel protocol of a websocket stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channels {
    /// Text frames of an ASCII channel digit and base64, instead of binary frames of a
    /// channel byte and the bytes.
    pub base64: bool,
    /// v4 and later: the error channel carries a JSON metav1 Status, success included.
    pub status: bool,
    /// v5: the client may close a channel (stdin) with `[255, channel]`.
    pub close_signal: bool,
}

/// The first of the client's protocols this server speaks for `verb` (the client's order, as
/// Kubernetes' wsstream chooses), with the name to answer; no protocol offered is
/// `channel.k8s.io` with none answered.
fn negotiate(verb: &str, offered: &[String]) -> Option<(Option<String>, Channels)> {
    let plain = Channels { base64: false, status: false, close_signal: false };
    if offered.is_empty() {
        return Some((None, plain));
    }
    offered.iter().find_map(|p| {
        let c = match (verb, p.as_str()) {
            ("portforward", "v4.channel.k8s.io") => plain,
            ("portforward", "v4.base64.channel.k8s.io") => Channels { base64: true, ..plain },
            ("portforward", _) => return None,
            (_, "channel.k8s.io") => plain,
            (_, "base64.channel.k8s.io") => Channels { base64: true, ..plain },
            (_, "v4.channel.k8s.io") => Channels { status: true, ..plain },
            (_, "v4.base64.channel.k8s.io") => Channels { base64: true, status: true, ..plain },
            (_, "v5.channel.k8s.io") => Channels { base64: false, status: true, close_signal: true },
            _ => return None,
        };
        Some((Some(p.clone()), c))
    })
}

fn handle(cri: Arc<Cri>, mut req: Request<Body>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, format!("{} is not served here", req.method()));
    }
    let path = req.uri().path().to_string();
    let Some((verb, token)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return plain(StatusCode::NOT_FOUND, format!("no stream at {path}"));
    };
    if !matches!(verb, "exec" | "attach" | "portforward") || token.is_empty() || token.contains('/') {
        return plain(StatusCode::NOT_FOUND, format!("no stream at {path}"));
    }
    // The token is spent by this request whatever follows, as kubelet's cache consumes it.
    let Some(stream) = cri.streaming.tokens.take(verb, token, Instant::now()) else {
        return plain(StatusCode::NOT_FOUND, "token not found or expired");
    };
    let h = req.headers();
    if has_token(h, "upgrade", "spdy/3.1") && has_token(h, "connection", "upgrade") {
        return spdy_upgrade(cri, req, stream);
    }
    if !has_token(h, "upgrade", "websocket") || !has_token(h, "connection", "upgrade") {
        return plain(StatusCode::BAD_REQUEST, "a stream needs an Upgrade: websocket or SPDY/3.1 request");
    }
    if header(h, "sec-websocket-version") != "13" {
        let mut r = plain(StatusCode::BAD_REQUEST, "unsupported Sec-WebSocket-Version (13 is)");
        r.headers_mut().insert("sec-websocket-version", http::HeaderValue::from_static("13"));
        return r;
    }
    let key = header(h, "sec-websocket-key").to_string();
    if key.is_empty() {
        return plain(StatusCode::BAD_REQUEST, "no Sec-WebSocket-Key");
    }
    let offer = offered(h);
    let Some((name, channels)) = negotiate(verb, &offer) else {
        log::debug!("cri streaming: {verb} over websocket: none of {offer:?} is supported");
        return plain(StatusCode::BAD_REQUEST, format!("none of the requested protocols {offer:?} is supported"));
    };
    log::debug!("cri streaming: {verb} over websocket, {}", name.as_deref().unwrap_or("channel.k8s.io (none asked)"));
    // Port-forward over websocket names its ports in the query (`?port=80&port=8080`); the
    // RPC's ports are the default.
    let ports = match &stream {
        StreamRequest::PortForward(pf) => match portforward::query_ports(req.uri().query().unwrap_or(""), &pf.port) {
            Ok(p) => p,
            Err(e) => return plain(StatusCode::BAD_REQUEST, e),
        },
        _ => Vec::new(),
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Some(io) = upgraded(upgrade).await else { return };
        let (r, w) = tokio::io::split(io);
        let (rx, reader) = read_frames(r);
        let ws = Ws { rx, reader, w: Writer::new(w), channels };
        match stream {
            StreamRequest::Exec(x) => exec_session(&cri, ws, x).await,
            StreamRequest::Attach(a) => attach_session(&cri, ws, a).await,
            StreamRequest::PortForward(pf) => portforward::session(&cri, ws, &pf.pod_sandbox_id, ports).await,
        }
    });
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let rh = resp.headers_mut();
    rh.insert(http::header::UPGRADE, http::HeaderValue::from_static("websocket"));
    rh.insert(http::header::CONNECTION, http::HeaderValue::from_static("Upgrade"));
    if let Ok(v) = http::HeaderValue::from_str(&websocket::accept_key(&key)) {
        rh.insert("sec-websocket-accept", v);
    }
    if let Some(v) = name.and_then(|n| http::HeaderValue::from_str(&n).ok()) {
        rh.insert("sec-websocket-protocol", v);
    }
    resp
}

/// The SPDY protocols of exec and attach, and of port-forward, best first.
const SPDY_STDIO: &[&str] = &["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"];
const SPDY_PORTFORWARD: &[&str] = &["portforward.k8s.io"];

/// A SPDY/3.1 upgrade, negotiated as Kubernetes' `httpstream.Handshake`: the first of the
/// client's `X-Stream-Protocol-Version`s the server speaks; none in common is 403 with the
/// server's list in `X-Accepted-Stream-Protocol-Versions`.
fn spdy_upgrade(cri: Arc<Cri>, mut req: Request<Body>, stream: StreamRequest) -> Response<Full<Bytes>> {
    let offered: Vec<String> = req
        .headers()
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    if offered.is_empty() {
        return plain(StatusCode::BAD_REQUEST, "unable to upgrade: X-Stream-Protocol-Version is required");
    }
    let server = if matches!(stream, StreamRequest::PortForward(_)) { SPDY_PORTFORWARD } else { SPDY_STDIO };
    let Some(chosen) = offered.iter().find(|p| server.contains(&p.as_str())).cloned() else {
        let mut r = plain(
            StatusCode::FORBIDDEN,
            format!("unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {server:?}"),
        );
        for p in server {
            r.headers_mut().append("x-accepted-stream-protocol-versions", http::HeaderValue::from_static(p));
        }
        return r;
    };
    log::debug!("cri streaming: {} over SPDY/3.1, {chosen}", stream.verb());
    let json = chosen == "v4.channel.k8s.io";
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Some(io) = upgraded(upgrade).await else { return };
        let (r, w) = tokio::io::split(io);
        let conn = match spdy::Conn::new(r, w) {
            Ok(c) => c,
            Err(e) => return log::warn!("cri streaming: {e}"),
        };
        let (want, exec) = match &stream {
            StreamRequest::Exec(x) => (spdy::wanted(x.stdin, x.stdout, x.stderr, x.tty), true),
            StreamRequest::Attach(a) => (spdy::wanted(a.stdin, a.stdout, a.stderr, a.tty), false),
            StreamRequest::PortForward(pf) => return spdy::portforward_session(&cri, conn, &pf.pod_sandbox_id).await,
        };
        let t = match spdy::StdioConn::open(conn, &want, json).await {
            Ok(t) => t,
            Err(e) => return log::info!("cri streaming: {} over spdy: {e}", if exec { "exec" } else { "attach" }),
        };
        match stream {
            StreamRequest::Exec(x) => exec_session(&cri, t, x).await,
            StreamRequest::Attach(a) => attach_session(&cri, t, a).await,
            StreamRequest::PortForward(_) => {}
        }
    });
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let rh = resp.headers_mut();
    rh.insert(http::header::UPGRADE, http::HeaderValue::from_static("SPDY/3.1"));
    rh.insert(http::header::CONNECTION, http::HeaderValue::from_static("Upgrade"));
    if let Ok(v) = http::HeaderValue::from_str(&chosen) {
        rh.insert("x-stream-protocol-version", v);
    }
    resp
}

/// The pid of a running sandbox's pause process, read now (the pod may have stopped since
/// the RPC).
fn sandbox_pid(cri: &Cri, sandbox_id: &str) -> Option<i32> {
    match cri.engine.find_container(sandbox_id) {
        Ok(rec) if rec.state.running && rec.state.pid > 0 => Some(rec.state.pid),
        _ => None,
    }
}

/// What a stream's transport hands the session: a channel's bytes (channels as the
/// websocket protocols number them), the client's end of a channel (v5's close signal, or a
/// SPDY stream's FIN), or the end of the connection (a close, the socket's end, an error).
#[derive(Debug, PartialEq, Eq)]
pub enum WsEvent {
    Data(u8, Vec<u8>),
    Closed(u8),
    End,
}

/// A stream's transport, WebSocket or SPDY, as an exec or attach session sees it.
pub(crate) trait Transport {
    /// The next channel event; pings and the like are answered inside.
    async fn next(&mut self) -> WsEvent;
    async fn send(&mut self, channel: u8, data: &[u8]) -> std::io::Result<()>;
    /// Whether the error channel carries a metav1 Status (v4 and later).
    fn status_json(&self) -> bool;
    /// The orderly end: everything sent, then the connection closed.
    async fn finish(&mut self);
}

/// Reads frames on a task of its own, so the session's loop waits on a channel (cancel-safe)
/// rather than inside a half-read frame. Messages are passed raw; the session decodes them.
fn read_frames<R: AsyncRead + Unpin + Send + 'static>(r: R) -> (mpsc::Receiver<Incoming>, tokio::task::AbortHandle) {
    let (tx, rx) = mpsc::channel(16);
    let task = tokio::spawn(async move {
        let mut reader = Reader::new(r);
        loop {
            let item = match reader.next().await {
                Ok(Some(i)) => i,
                Ok(None) => Incoming::Close(None),
                Err(e) => {
                    log::debug!("cri streaming: {e}");
                    Incoming::Close(Some(1002))
                }
            };
            let end = matches!(item, Incoming::Close(_));
            if tx.send(item).await.is_err() || end {
                return;
            }
        }
    });
    (rx, task.abort_handle())
}

/// One websocket stream with its channel protocol.
pub struct Ws<W> {
    rx: mpsc::Receiver<Incoming>,
    /// The reader task, stopped with the stream (a client that never closes its side would
    /// keep it waiting otherwise).
    reader: tokio::task::AbortHandle,
    w: Writer<W>,
    pub channels: Channels,
}

impl<W> Drop for Ws<W> {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl<W: AsyncWrite + Unpin> Transport for Ws<W> {
    /// The next channel message, decoded per the protocol; a message that does not decode
    /// ends the stream. Pings are answered here; pongs answer nothing (none is sent).
    async fn next(&mut self) -> WsEvent {
        loop {
            let Some(incoming) = self.rx.recv().await else { return WsEvent::End };
            return match incoming {
                Incoming::Message { text, data } => match decode(self.channels, text, &data) {
                    Some((CLOSE, data)) if self.channels.close_signal => match data.first() {
                        Some(&ch) => WsEvent::Closed(ch),
                        None => continue,
                    },
                    Some((ch, payload)) => WsEvent::Data(ch, payload),
                    None => {
                        log::debug!("cri streaming: a message that is no channel message");
                        WsEvent::End
                    }
                },
                Incoming::Ping(p) => {
                    if self.w.send(OP_PONG, &p).await.is_err() {
                        return WsEvent::End;
                    }
                    continue;
                }
                Incoming::Pong => continue,
                Incoming::Close(_) => WsEvent::End,
            };
        }
    }

    async fn send(&mut self, channel: u8, data: &[u8]) -> std::io::Result<()> {
        if self.channels.base64 {
            let mut text = vec![b'0' + channel];
            text.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(data).as_bytes());
            self.w.send(OP_TEXT, &text).await
        } else {
            let mut bin = Vec::with_capacity(data.len() + 1);
            bin.push(channel);
            bin.extend_from_slice(data);
            self.w.send(OP_BINARY, &bin).await
        }
    }

    fn status_json(&self) -> bool {
        self.channels.status
    }

    /// A normal close (1000) and the end of the connection.
    async fn finish(&mut self) {
        let _ = self.w.close(1000).await;
    }
}

/// A channel message: binary `[channel, bytes…]` or text `"<digit><base64>"`.
fn decode(c: Channels, text: bool, data: &[u8]) -> Option<(u8, Vec<u8>)> {
    let (&first, rest) = data.split_first()?;
    if c.base64 {
        if !text || !first.is_ascii_digit() {
            return None;
        }
        let bytes = base64::engine::general_purpose::STANDARD.decode(rest).ok()?;
        Some((first - b'0', bytes))
    } else {
        Some((first, rest.to_vec()))
    }
}

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
/// v5's close signal: `[255, channel]` closes that channel.
const CLOSE: u8 = 255;

/// How an exec or attach ended, written on the error channel as kubelet writes it.
enum Outcome {
    Exited(i32),
    Failed(String),
}

/// The error channel's message: a metav1 Status from v4 on (success too), or for the older
/// protocols the error's text, nothing on success.
fn status_message(json: bool, outcome: &Outcome, cmd: &[String]) -> Option<Vec<u8>> {
    let status = match outcome {
        Outcome::Exited(0) => serde_json::json!({ "metadata": {}, "status": "Success" }),
        Outcome::Exited(code) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: command {cmd:?} exited with {code}"),
            "reason": "NonZeroExitCode",
            "details": { "causes": [{ "reason": "ExitCode", "message": code.to_string() }] },
        }),
        Outcome::Failed(m) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("Internal error occurred: {m}"),
            "reason": "InternalError",
            "details": { "causes": [{ "message": m }] },
            "code": 500,
        }),
    };
    if json {
        return Some(status.to_string().into_bytes());
    }
    match outcome {
        Outcome::Exited(0) => None,
        _ => status["message"].as_str().map(|m| m.as_bytes().to_vec()),
    }
}

/// kubelet's resize message, `{"Width":W,"Height":H}`.
#[derive(serde::Deserialize)]
struct Size {
    #[serde(rename = "Width")]
    width: u16,
    #[serde(rename = "Height")]
    height: u16,
}

/// What a stdio session resizes: an exec's terminal or the container's.
enum Tty<'a> {
    Exec(&'a str),
    Container(&'a str),
}

/// Pipes a process's stdio and the websocket until the process ends (`Some(code)` when it
/// told its exit), its stream ends (`None`), or the client goes (`Err(())`).
async fn pump(
    cri: &Cri,
    ws: &mut impl Transport,
    stream: &mut ProcessStream,
    tty: Tty<'_>,
    stdin: bool,
) -> Result<Option<i32>, ()> {
    let mut stdin_open = stdin;
    loop {
        let idle = tokio::time::sleep(STREAM_IDLE_TIMEOUT);
        tokio::select! {
            _ = idle => {
                log::info!("cri streaming: a stream idle for {}s is ended", STREAM_IDLE_TIMEOUT.as_secs());
                return Err(());
            }
            ev = stream.events.recv() => match ev {
                Some(StreamEvent::Output(chunk)) => {
                    let ch = if chunk.stream == LogStream::Stderr { STDERR } else { STDOUT };
                    if ws.send(ch, &chunk.data).await.is_err() {
                        return Err(());
                    }
                }
                Some(StreamEvent::Exit(code)) => return Ok(Some(code)),
                Some(StreamEvent::Failed { message, .. }) => {
                    let _ = ws.send(STDERR, message.as_bytes()).await;
                    return Ok(None);
                }
                Some(StreamEvent::Started(_)) => {}
                Some(StreamEvent::Detached) | None => return Ok(None),
            },
            msg = ws.next() => match msg {
                WsEvent::Data(STDIN, data) if stdin_open => {
                    // An empty message opens the channel (clients send one first): no input.
                    if !data.is_empty() && stream.input.send(StreamInput::Data(data)).await.is_err() {
                        stdin_open = false;
                    }
                }
                WsEvent::Data(RESIZE, data) => {
                    let Ok(size) = serde_json::from_slice::<Size>(&data) else {
                        log::debug!("cri streaming: bad resize message {:?}", String::from_utf8_lossy(&data));
                        continue;
                    };
                    let r = match tty {
                        Tty::Exec(id) => cri.engine.resize_exec(id, size.height, size.width).await,
                        Tty::Container(id) => cri.engine.resize_container(id, size.height, size.width).await,
                    };
                    if let Err(e) = r {
                        log::debug!("cri streaming: resize: {e}");
                    }
                }
                WsEvent::Closed(STDIN) if stdin_open => {
                    stdin_open = false;
                    let _ = stream.input.send(StreamInput::Close).await;
                }
                WsEvent::Data(..) | WsEvent::Closed(_) => {}
                WsEvent::End => return Err(()),
            },
        }
    }
}

pub(crate) async fn exec_session(cri: &Cri, mut ws: impl Transport, x: proto::ExecRequest) {
    let config = ExecConfig {
        cmd: x.cmd.clone(),
        tty: x.tty,
        attach_stdin: x.stdin,
        attach_stdout: x.stdout,
        attach_stderr: x.stderr,
        // kubelet's clients have no detach keys: every byte typed goes to the process.
        detach_keys: Some(String::new()),
        ..Default::default()
    };
    let started = match cri.engine.create_exec(&x.container_id, config) {
        Ok(id) => match cri.engine.start_exec(&id, false, Some(x.tty)).await {
            Ok(Some(s)) => Ok((id, s)),
            Ok(None) => Err("exec started detached".to_string()),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    };
    let (exec_id, mut stream) = match started {
        Ok(s) => s,
        Err(m) => return finish(ws, Outcome::Failed(m), &x.cmd).await,
    };
    match pump(cri, &mut ws, &mut stream, Tty::Exec(&exec_id), x.stdin).await {
        Ok(code) => {
            let code = code.or_else(|| cri.engine.inspect_exec(&exec_id).ok().and_then(|e| e.exit_code));
            let outcome = match code {
                Some(c) => Outcome::Exited(c),
                None => Outcome::Failed("the exec ended without an exit code".into()),
            };
            finish(ws, outcome, &x.cmd).await
        }
        Err(()) => {
            // The client hung up: the command dies with its stream, as containerd kills it
            // when the stream's context ends, so no exec is left behind.
            if let Err(e) = cri.engine.kill_exec(&exec_id) {
                log::warn!("cri streaming: kill exec {exec_id} after its client left: {e}");
            }
        }
    }
}

pub(crate) async fn attach_session(cri: &Cri, mut ws: impl Transport, a: proto::AttachRequest) {
    let opts = AttachOptions { stdin: a.stdin, stdout: a.stdout, stderr: a.stderr, detach_keys: Some(String::new()) };
    let stream = match cri.engine.attach(&a.container_id, opts) {
        Ok(p) => p.connect().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let mut stream = match stream {
        Ok(s) => s,
        Err(m) => return finish(ws, Outcome::Failed(format!("error attaching to container: {m}")), &[]).await,
    };
    // The container goes on when the client leaves; its end ends the attach.
    if pump(cri, &mut ws, &mut stream, Tty::Container(&a.container_id), a.stdin).await.is_ok() {
        finish(ws, Outcome::Exited(0), &[]).await;
    }
}

async fn finish(mut ws: impl Transport, outcome: Outcome, cmd: &[String]) {
    if let Some(msg) = status_message(ws.status_json(), &outcome, cmd) {
        let _ = ws.send(ERROR, &msg).await;
    }
    ws.finish().await;
}

/// The connection once the client's upgrade completes; None (logged) when it never does.
async fn upgraded(upgrade: hyper::upgrade::OnUpgrade) -> Option<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>> {
    match upgrade.await {
        Ok(u) => Some(hyper_util::rt::TokioIo::new(u)),
        Err(e) => {
            log::debug!("cri streaming: upgrade: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_an_address_a_client_can_dial() {
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     br0\t0011A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";
        assert_eq!(default_route_interface(route).as_deref(), Some("eth0"));
        assert_eq!(default_route_interface("Iface\tDestination\n"), None);
        let s = Streaming::new("127.0.0.1:10010".parse().unwrap(), false);
        assert_eq!(s.base(), "http://127.0.0.1:10010");
        assert_eq!(Streaming::new("[::1]:10010".parse().unwrap(), true).base(), "https://[::1]:10010");
        // Bound to every address: never 0.0.0.0 in a URL.
        let any = Streaming::new("0.0.0.0:10010".parse().unwrap(), false);
        assert!(!any.base().contains("0.0.0.0"), "{}", any.base());
        assert!(any.base().starts_with("http://") && any.base().ends_with(":10010"), "{}", any.base());
    }

    fn pf() -> StreamRequest {
        StreamRequest::PortForward(proto::PortForwardRequest { pod_sandbox_id: "p".into(), port: vec![80] })
    }

    #[test]
    fn tokens_are_single_use_per_verb_and_expire_after_a_minute() {
        let t = Tokens::default();
        let now = Instant::now();
        let a = t.insert(pf(), now).unwrap();
        let b = t.insert(pf(), now).unwrap();
        assert_ne!(a, b);
        assert!(a.len() >= 22 && a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'), "{a}");
        assert_eq!(t.take("portforward", &a, now), Some(pf()));
        assert_eq!(t.take("portforward", &a, now), None, "a token is good once");
        // Another verb's URL spends it too, and gets nothing.
        assert_eq!(t.take("exec", &b, now), None);
        assert_eq!(t.take("portforward", &b, now), None);
        let c = t.insert(pf(), now).unwrap();
        assert_eq!(t.take("portforward", &c, now + TOKEN_TTL), None, "expired");
        // Expired tokens are swept as new ones come.
        let d = t.insert(pf(), now).unwrap();
        t.insert(pf(), now + TOKEN_TTL + Duration::from_secs(1)).unwrap();
        assert_eq!(t.take("portforward", &d, now), None);
    }

    #[test]
    fn kubelets_stdio_checks() {
        assert!(check_stdio(true, true, false, true).is_ok());
        assert!(check_stdio(false, true, true, true).unwrap_err().message.contains("tty and stderr"));
        assert!(check_stdio(false, false, false, false).unwrap_err().message.contains("one of stdin"));
    }

    #[test]
    fn protocols_are_chosen_in_the_clients_order() {
        let o = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (name, c) = negotiate("exec", &o(&["v5.channel.k8s.io", "v4.channel.k8s.io"])).unwrap();
        assert_eq!(name.as_deref(), Some("v5.channel.k8s.io"));
        assert!(c.status && c.close_signal && !c.base64);
        let (name, c) = negotiate("attach", &o(&["bogus", "base64.channel.k8s.io"])).unwrap();
        assert_eq!(name.as_deref(), Some("base64.channel.k8s.io"));
        assert!(c.base64 && !c.status);
        assert_eq!(negotiate("exec", &[]).unwrap().0, None);
        assert!(negotiate("exec", &o(&["bogus"])).is_none());
        assert!(negotiate("portforward", &o(&["v5.channel.k8s.io"])).is_none());
        assert!(negotiate("portforward", &o(&["v4.channel.k8s.io"])).is_some());
    }

    #[test]
    fn channel_messages_decode_in_both_encodings() {
        let bin = Channels { base64: false, status: true, close_signal: false };
        let b64 = Channels { base64: true, status: false, close_signal: false };
        assert_eq!(decode(bin, false, b"\x00hi"), Some((0, b"hi".to_vec())));
        assert_eq!(decode(b64, true, b"0aGk="), Some((0, b"hi".to_vec())));
        assert_eq!(decode(b64, true, b"xaGk="), None);
        assert_eq!(decode(bin, false, b""), None);
    }

    #[test]
    fn the_error_channel_carries_kubelets_status() {
        let (v4, v1) = (true, false);
        let cmd = vec!["sh".to_string()];
        let ok: serde_json::Value =
            serde_json::from_slice(&status_message(v4, &Outcome::Exited(0), &cmd).unwrap()).unwrap();
        assert_eq!(ok, serde_json::json!({ "metadata": {}, "status": "Success" }));
        let three: serde_json::Value =
            serde_json::from_slice(&status_message(v4, &Outcome::Exited(3), &cmd).unwrap()).unwrap();
        assert_eq!(three["reason"], "NonZeroExitCode");
        assert_eq!(three["details"]["causes"][0], serde_json::json!({ "reason": "ExitCode", "message": "3" }));
        assert_eq!(status_message(v1, &Outcome::Exited(0), &cmd), None);
        let text = String::from_utf8(status_message(v1, &Outcome::Exited(3), &cmd).unwrap()).unwrap();
        assert!(text.starts_with("command terminated with non-zero exit code"), "{text}");
    }
}
