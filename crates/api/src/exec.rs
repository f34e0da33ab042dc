//! Exec endpoints (`POST /containers/{id}/exec`, `POST /exec/{id}/start|resize`,
//! `GET /exec/{id}/json`) and the hijacked connection both exec and attach ride on.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;
use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use wharf_engine::{EngineError, ExecConfig, LogChunk, LogStream, ProcessStream, StreamEvent, StreamInput};

use crate::body::Body;
use crate::error::ApiError;
use crate::router::{empty, json, Ctx, Result};

/// Docker's multiplexed frame, or the raw bytes for a terminal.
fn frame(c: &LogChunk, multiplexed: bool) -> Vec<u8> {
    if !multiplexed {
        return c.data.clone();
    }
    let mut out = Vec::with_capacity(c.data.len() + 8);
    out.push(match c.stream {
        LogStream::Stdout => 1,
        LogStream::Stderr => 2,
    });
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(c.data.len() as u32).to_be_bytes());
    out.extend_from_slice(&c.data);
    out
}

/// Answers with 101 (or 200 for clients that do not ask to upgrade) and then pumps the
/// session: the client's bytes to the process's stdin, its output back, until it ends.
pub fn hijack(
    req: &mut Request<Incoming>,
    ctype: &'static str,
    multiplexed: bool,
    session: impl std::future::Future<Output = std::result::Result<ProcessStream, wharf_engine::EngineError>>
        + Send
        + 'static,
) -> Response<Body> {
    let wants_upgrade = req.headers().get("Upgrade").is_some();
    let drain = req.extensions().get::<crate::Drain>().cloned();
    pump(hyper::upgrade::on(req), wants_upgrade, drain, ctype, multiplexed, session)
}

/// Runs a session's pump until it ends or wharfd starts to stop: a hijacked session never
/// ends by itself, so a stopping daemon ends it (the client sees its stream close).
fn spawn_session(drain: Option<crate::Drain>, pump: impl std::future::Future<Output = ()> + Send + 'static) {
    tokio::spawn(async move {
        match drain {
            Some(d) => tokio::select! {
                _ = pump => {}
                _ = d.started() => {}
            },
            None => pump.await,
        }
    });
}

fn pump(
    on_upgrade: hyper::upgrade::OnUpgrade,
    wants_upgrade: bool,
    drain: Option<crate::Drain>,
    ctype: &'static str,
    multiplexed: bool,
    session: impl std::future::Future<Output = std::result::Result<ProcessStream, wharf_engine::EngineError>>
        + Send
        + 'static,
) -> Response<Body> {
    if !wants_upgrade {
        let (tx, body) = Body::channel();
        spawn_session(drain, async move {
            let Ok(mut s) = session.await else { return };
            drop(s.input);
            while let Some(ev) = s.events.recv().await {
                if let StreamEvent::Output(c) = ev {
                    if tx.send(frame(&c, multiplexed).into()).await.is_err() {
                        return;
                    }
                }
            }
        });
        let mut r = Response::new(body);
        r.headers_mut().insert("Content-Type", hyper::header::HeaderValue::from_static(ctype));
        return r;
    }
    spawn_session(drain, async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                log::debug!("hijack: upgrade failed: {e}");
                return;
            }
        };
        let (mut rd, mut wr) = tokio::io::split(connection(upgraded).await);
        let mut s = match session.await {
            Ok(s) => s,
            Err(e) => {
                let _ = wr.write_all(format!("{e}\r\n").as_bytes()).await;
                let _ = wr.shutdown().await;
                return;
            }
        };
        let input = s.input.clone();
        let reader = AbortOnDrop(tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = input.send(StreamInput::Close).await;
                        return;
                    }
                    Ok(n) => {
                        if input.send(StreamInput::Data(buf[..n].to_vec())).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }));
        drop(s.input);
        while let Some(ev) = s.events.recv().await {
            match ev {
                StreamEvent::Output(c) => {
                    if wr.write_all(&frame(&c, multiplexed)).await.is_err() {
                        break;
                    }
                }
                StreamEvent::Started(_) => {}
                StreamEvent::Exit(_) | StreamEvent::Detached | StreamEvent::Failed { .. } => break,
            }
        }
        drop(reader);
        let _ = wr.flush().await;
        let _ = wr.shutdown().await;
    });
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert("Content-Type", hyper::header::HeaderValue::from_static(ctype));
    h.insert("Connection", hyper::header::HeaderValue::from_static("Upgrade"));
    h.insert("Upgrade", hyper::header::HeaderValue::from_static("tcp"));
    r
}

/// The task reading a client's stdin, ended with its session (however that ends), so the
/// connection it holds half of closes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The hijacked connection's byte stream.
trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Conn for T {}

/// The upgraded connection, once the client has read the whole 101 answer. docker-py reads
/// that answer through a buffered reader and then reads the raw socket: output that arrived
/// together with the head (a short exec, the log replay of an attach) sits in that buffer and
/// the client never sees it. dockerd's slower exec start hides the same race; here the stream
/// waits until the socket's send queue is empty, which on a unix socket means read.
async fn connection(upgraded: hyper::upgrade::Upgraded) -> Box<dyn Conn> {
    use hyper_util::rt::TokioIo;
    match upgraded.downcast::<TokioIo<tokio::net::UnixStream>>() {
        Ok(parts) => plain_socket(parts.io.into_inner(), parts.read_buf).await,
        Err(upgraded) => match upgraded.downcast::<TokioIo<tokio::net::TcpStream>>() {
            // Plain TCP: the same wait (the send queue empties once the peer acknowledged).
            Ok(parts) => plain_socket(parts.io.into_inner(), parts.read_buf).await,
            // TLS: records, not bytes, reach the peer; no wait.
            Err(upgraded) => Box::new(TokioIo::new(upgraded)),
        },
    }
}

/// Waits, up to two seconds, until the peer has read everything sent on `stream` so far.
/// A unix or TCP socket, once the peer has read what was sent; the bytes the client sent
/// after its request (early stdin) are read first.
async fn plain_socket<S>(stream: S, early: bytes::Bytes) -> Box<dyn Conn>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + std::os::fd::AsRawFd + Unpin + Send + 'static,
{
    until_read_by_peer(&stream).await;
    let (rd, wr) = tokio::io::split(stream);
    Box::new(tokio::io::join(std::io::Cursor::new(early).chain(rd), wr))
}

async fn until_read_by_peer(stream: &impl std::os::fd::AsRawFd) {
    let fd = stream.as_raw_fd();
    for _ in 0..2000 {
        let mut queued: libc::c_int = 0;
        // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one int through the valid pointer; `fd` is the
        // open socket `stream` owns for the whole call.
        if unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) } != 0 || queued == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// A session still being opened (an attach waiting for its container to start).
pub type LiveSession = Pin<Box<dyn Future<Output = std::result::Result<ProcessStream, EngineError>> + Send>>;

/// A live session (if any) preceded by a replay of the container's log, for an attach with
/// `logs=1`: the replay first, then the live output; input typed meanwhile waits for the
/// live session.
pub fn replay_then(mut logs: mpsc::Receiver<LogChunk>, live: Option<LiveSession>) -> ProcessStream {
    let (ev_tx, events) = mpsc::channel(64);
    let (input, mut in_rx) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(c) = logs.recv().await {
            if ev_tx.send(StreamEvent::Output(c)).await.is_err() {
                return;
            }
        }
        // Without a live part, dropping the sender ends the stream after the replay.
        let Some(live) = live else { return };
        let mut s = match live.await {
            Ok(s) => s,
            Err(e) => {
                let _ = ev_tx.send(StreamEvent::Failed { message: e.to_string(), exit_code: 0 }).await;
                return;
            }
        };
        let mut input_open = true;
        loop {
            tokio::select! {
                ev = s.events.recv() => match ev {
                    Some(ev) => {
                        if ev_tx.send(ev).await.is_err() {
                            return;
                        }
                    }
                    None => return,
                },
                i = in_rx.recv(), if input_open => match i {
                    Some(i) => {
                        let _ = s.input.send(i).await;
                    }
                    None => input_open = false,
                },
            }
        }
    });
    ProcessStream { events, input }
}

fn content_type(ctx: &Ctx, multiplexed: bool) -> &'static str {
    if multiplexed && ctx.version_at_least("1.42") {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    cmd: Option<Vec<String>>,
    env: Option<Vec<String>>,
    user: Option<String>,
    working_dir: Option<String>,
    tty: bool,
    privileged: bool,
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    detach_keys: Option<String>,
    console_size: Option<Vec<u16>>,
}

/// `POST /containers/{id}/exec`
pub fn create(ctx: &Ctx, id: &str, body: &[u8]) -> Result<Response<Body>> {
    let b: CreateBody = crate::decode::json_body(body, "invalid exec config")?;
    let config = ExecConfig {
        cmd: b.cmd.unwrap_or_default(),
        env: b.env.unwrap_or_default(),
        user: b.user,
        working_dir: b.working_dir,
        tty: b.tty,
        privileged: b.privileged,
        attach_stdin: b.attach_stdin,
        attach_stdout: b.attach_stdout,
        attach_stderr: b.attach_stderr,
        detach_keys: b.detach_keys,
        console_size: b.console_size.filter(|s| s.len() == 2 && s[0] > 0).map(|s| (s[0], s[1])),
    };
    let exec_id = ctx.engine.create_exec(id, config)?;
    json(StatusCode::CREATED, &json!({ "Id": exec_id }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: bool,
    tty: Option<bool>,
}

/// `POST /exec/{id}/start`
pub async fn start(ctx: &Ctx, id: &str, mut req: Request<Incoming>) -> Result<Response<Body>> {
    let wants_upgrade = req.headers().get("Upgrade").is_some();
    let drain = req.extensions().get::<crate::Drain>().cloned();
    let on_upgrade = hyper::upgrade::on(&mut req);
    let bytes = crate::router::read_limited(req.into_body(), 1 << 20).await?;
    let b: StartBody = if bytes.is_empty() {
        StartBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid exec start config: {e}")))?
    };
    let rec = ctx.engine.inspect_exec(id)?;
    let tty = b.tty.unwrap_or(rec.config.tty);
    let started = ctx.engine.start_exec(id, b.detach, b.tty).await?;
    let Some(stream) = started else {
        return Ok(empty(StatusCode::OK));
    };
    let session = async move { Ok(stream) };
    Ok(pump(on_upgrade, wants_upgrade, drain, content_type(ctx, !tty), !tty, session))
}

/// `POST /exec/{id}/resize?h&w`
pub async fn resize(ctx: &Ctx, id: &str) -> Result<Response<Body>> {
    let (h, w) = size_query(ctx)?;
    ctx.engine.resize_exec(id, h, w).await?;
    Ok(empty(StatusCode::OK))
}

/// The `h` and `w` of a resize.
pub fn size_query(ctx: &Ctx) -> Result<(u16, u16)> {
    let h = ctx.query.int("h")?.unwrap_or(0);
    let w = ctx.query.int("w")?.unwrap_or(0);
    let ok = |v: i64| u16::try_from(v).ok();
    match (ok(h), ok(w)) {
        (Some(h), Some(w)) => Ok((h, w)),
        _ => Err(ApiError::new(StatusCode::BAD_REQUEST, format!("invalid terminal size {h}x{w}"))),
    }
}

/// `GET /exec/{id}/json`
pub fn inspect(ctx: &Ctx, id: &str) -> Result<Response<Body>> {
    let r = ctx.engine.inspect_exec(id)?;
    let mut v = json!({
            "ID": r.id,
            "ContainerID": r.container_id,
            "Running": r.running,
            "ExitCode": r.exit_code,
            "Pid": r.pid,
            "OpenStdin": r.config.attach_stdin,
            "OpenStdout": r.config.attach_stdout,
            "OpenStderr": r.config.attach_stderr,
            "CanRemove": false,
            "DetachKeys": r.config.detach_keys.clone().unwrap_or_default(),
            "ProcessConfig": {
                "tty": r.config.tty,
                "entrypoint": r.config.cmd.first().cloned().unwrap_or_default(),
                "arguments": r.config.cmd.get(1..).unwrap_or(&[]),
                "privileged": r.config.privileged,
            },
    });
    // `user` is omitted when empty, as dockerd does.
    if let Some(u) = r.config.user.as_deref().filter(|u| !u.is_empty()) {
        v["ProcessConfig"]["user"] = json!(u);
    }
    json(StatusCode::OK, &v)
}
