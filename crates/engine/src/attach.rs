//! Live stdio of a container's processes through their shim's socket: attach (output,
//! stdin, Docker's detach keys), terminal resize, and the session that an exec rides on.
//!
//! The shim speaks a JSON request line, then frames `[kind u8][len u32 BE][payload]` (see
//! `crates/shim/src/proto.rs`); nothing above this module sees them.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use crate::logs::{LogChunk, LogStream};
use crate::{Engine, EngineError};

const F_STDIN: u8 = 0;
const F_STDOUT: u8 = 1;
const F_STDERR: u8 = 2;
const F_CLOSE_STDIN: u8 = 3;
const F_STARTED: u8 = 4;
const F_EXIT: u8 = 5;
const F_ERROR: u8 = 6;
const F_OK: u8 = 7;
const MAX_FRAME: usize = 1 << 20;

use wharf_types::detach::DetachScanner;
pub use wharf_types::detach::DEFAULT_DETACH_KEYS;

#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Docker's `detachKeys` (`ctrl-p,ctrl-q`); `None` for the default.
    pub detach_keys: Option<String>,
}

/// What a stdio session yields.
#[derive(Debug, Clone)]
pub enum StreamEvent {
    /// An exec'd process runs with this pid (in the daemon's pid namespace).
    Started(i32),
    Output(LogChunk),
    /// The process ended with this code; the stream ends.
    Exit(i32),
    /// The request failed; the stream ends.
    Failed {
        message: String,
        exit_code: i32,
    },
    /// The client typed the detach keys; the stream ends, the process goes on.
    Detached,
}

/// Input for the process: bytes for its stdin, or its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamInput {
    Data(Vec<u8>),
    Close,
}

/// A live session: events out, input in. Dropping both ends it.
pub struct ProcessStream {
    pub events: mpsc::Receiver<StreamEvent>,
    pub input: mpsc::Sender<StreamInput>,
}

/// Parses Docker's `--detach-keys` (`ctrl-p,ctrl-q`, `a,ctrl-@`); empty disables.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>, EngineError> {
    wharf_types::detach::parse_detach_keys(spec).map_err(EngineError::Invalid)
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

async fn read_frame(r: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!("shim frame of {len} bytes")));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Some((head[0], payload)))
}

fn now() -> String {
    wharf_types::time::rfc3339_nanos(std::time::SystemTime::now())
}

/// Connects to a shim and sends `request`; the session then runs in a task.
pub(crate) async fn open_session(
    socket: &Path,
    request: serde_json::Value,
    detach_keys: Vec<u8>,
) -> Result<ProcessStream, EngineError> {
    let mut conn = UnixStream::connect(socket)
        .await
        .map_err(|e| EngineError::io(format!("connect to shim {}", socket.display()), e))?;
    let mut line = request.to_string().into_bytes();
    line.push(b'\n');
    conn.write_all(&line).await.map_err(|e| EngineError::io("send request to shim", e))?;
    let (ev_tx, ev_rx) = mpsc::channel(64);
    let (in_tx, in_rx) = mpsc::channel(64);
    tokio::spawn(run_session(conn, ev_tx, in_rx, DetachScanner::new(detach_keys)));
    Ok(ProcessStream { events: ev_rx, input: in_tx })
}

async fn run_session(
    conn: UnixStream,
    events: mpsc::Sender<StreamEvent>,
    mut input: mpsc::Receiver<StreamInput>,
    mut scanner: DetachScanner,
) {
    let (mut r, mut w) = conn.into_split();
    let mut input_open = true;
    loop {
        tokio::select! {
            f = read_frame(&mut r) => {
                let ev = match f {
                    Ok(Some((F_STDOUT, data))) => StreamEvent::Output(LogChunk { stream: LogStream::Stdout, time: now(), data }),
                    Ok(Some((F_STDERR, data))) => StreamEvent::Output(LogChunk { stream: LogStream::Stderr, time: now(), data }),
                    Ok(Some((F_STARTED, body))) => {
                        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                        StreamEvent::Started(v["pid"].as_i64().unwrap_or(0) as i32)
                    }
                    Ok(Some((F_EXIT, body))) => {
                        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                        StreamEvent::Exit(v["exit_code"].as_i64().unwrap_or(255) as i32)
                    }
                    Ok(Some((F_ERROR, body))) => {
                        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                        StreamEvent::Failed {
                            message: v["message"].as_str().unwrap_or("shim error").to_string(),
                            exit_code: v["exit_code"].as_i64().unwrap_or(126) as i32,
                        }
                    }
                    Ok(Some((F_OK, _))) => continue,
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => return,
                };
                let last = matches!(ev, StreamEvent::Exit(_) | StreamEvent::Failed { .. });
                if events.send(ev).await.is_err() || last {
                    return;
                }
            }
            i = input.recv(), if input_open => {
                let msg = match i {
                    Some(StreamInput::Data(d)) => {
                        let (pass, detached) = scanner.feed(&d);
                        if !pass.is_empty() && w.write_all(&frame(F_STDIN, &pass)).await.is_err() {
                            input_open = false;
                        }
                        if detached {
                            let _ = events.send(StreamEvent::Detached).await;
                            return;
                        }
                        continue;
                    }
                    Some(StreamInput::Close) | None => frame(F_CLOSE_STDIN, b""),
                };
                input_open = false;
                let _ = w.write_all(&msg).await;
            }
            _ = events.closed() => return,
        }
    }
}

/// An attach registered with its container, not yet connected.
pub struct PendingAttach {
    live: std::sync::Arc<crate::monitor::Live>,
    counted: bool,
    socket: PathBuf,
    opts: AttachOptions,
    keys: Vec<u8>,
    name: String,
}

impl PendingAttach {
    /// Waits until the container runs, then connects to its shim.
    pub async fn connect(self) -> Result<ProcessStream, EngineError> {
        if !self.live.wait_running().await {
            return Err(EngineError::NotFound(format!("no such container: {}", self.name)));
        }
        let o = &self.opts;
        let req = serde_json::json!({ "attach": { "stdin": o.stdin, "stdout": o.stdout, "stderr": o.stderr } });
        match open_session(&self.socket, req, self.keys.clone()).await {
            // The container ended between the check and the connect (its shim, and socket,
            // are gone before the daemon has seen the exit): the stream is simply over, as
            // dockerd's is for an attach that comes as the container exits.
            Err(EngineError::Io { source, .. })
                if matches!(source.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused)
                    && self.live.wait_exit(Some(std::time::Duration::from_secs(5))).await =>
            {
                let (_, events) = mpsc::channel(1);
                let (input, _) = mpsc::channel(1);
                Ok(ProcessStream { events, input })
            }
            other => other,
        }
    }
}

impl Drop for PendingAttach {
    fn drop(&mut self) {
        if self.counted {
            self.live.attach_waiting.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

impl Engine {
    /// The shim's socket for container `id`. Short enough for a unix socket path under any
    /// reasonable exec root: 128 bits of the id are plenty to tell containers apart.
    pub(crate) fn shim_socket(&self, id: &str) -> PathBuf {
        let short = id.get(..32).unwrap_or(id);
        self.inner.config.exec_root.join("shim").join(format!("{short}.sock"))
    }

    /// The shim's arguments for the container's stdio: its socket, stdin, and whether an
    /// attach is waiting for the first output. Docker's CLIs set StdinOnce exactly when they
    /// attach stdin to a container with OpenStdin, which is how it is judged here.
    pub(crate) fn shim_stdio_args(&self, rec: &crate::ContainerRecord) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec!["--socket".into(), self.shim_socket(&rec.id).into()];
        if rec.config.open_stdin {
            args.push("--open-stdin".into());
            if rec.config.attach_stdin {
                args.push("--stdin-once".into());
            }
        }
        if self.live(&rec.id).attach_waiting.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            args.push("--wait-attach".into());
        }
        args
    }

    /// Attaches to a container's stdio. Checks and registers now (so that a start that
    /// follows knows an attach waits: its shim then holds the first output until the attach
    /// is connected); [`PendingAttach::connect`] waits for the container to run.
    pub fn attach(&self, name: &str, opts: AttachOptions) -> Result<PendingAttach, EngineError> {
        let rec = self.find_container(name)?;
        let keys = match &opts.detach_keys {
            Some(k) => parse_detach_keys(k)?,
            None => DEFAULT_DETACH_KEYS.to_vec(),
        };
        // Docker reads detach keys only from a terminal's input.
        let keys = if rec.config.tty { keys } else { Vec::new() };
        let live = self.live(&rec.id);
        let counted = (opts.stdout || opts.stderr) && !live.is_running();
        if counted {
            live.attach_waiting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(PendingAttach { live, counted, socket: self.shim_socket(&rec.id), opts, keys, name: name.to_string() })
    }

    /// Sizes the container's terminal.
    pub async fn resize_container(&self, name: &str, rows: u16, cols: u16) -> Result<(), EngineError> {
        let rec = self.find_container(name)?;
        if !self.live(&rec.id).is_running() {
            return Err(EngineError::Conflict(format!("container {} is not running", rec.id)));
        }
        let req = serde_json::json!({ "resize": { "rows": rows, "cols": cols } });
        self.shim_request(&rec.id, req).await
    }

    /// A one-shot request to the shim of container `id`.
    pub(crate) async fn shim_request(&self, id: &str, req: serde_json::Value) -> Result<(), EngineError> {
        let mut s = open_session(&self.shim_socket(id), req, Vec::new()).await?;
        match s.events.recv().await {
            Some(StreamEvent::Failed { message, .. }) => Err(EngineError::Conflict(message)),
            _ => Ok(()),
        }
    }
}
