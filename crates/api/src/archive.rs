//! Image archives: `GET /images/get?names=..` and `GET /images/{name}/get` stream a tar
//! (docker-archive and OCI layout in one), `POST /images/load` reads one from the request body.
//!
//! The engine works on blocking readers and writers on threads of its own; these bridges carry
//! the bytes between them and hyper through bounded channels, so neither side buffers more than
//! a few chunks.

use std::io::{self, Read, Write};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use tokio::sync::mpsc;

use crate::body::Body;
use crate::router::{json_response, Ctx, Result};

/// The size of the pieces a save sends.
const CHUNK: usize = 256 << 10;
/// How much of a refused upload is still read (and dropped) so the client sees the answer
/// rather than a broken pipe.
const DRAIN_LIMIT: u64 = 256 << 20;

/// `GET /images/get?names=a&names=b` or `GET /images/{name}/get`.
pub fn save(ctx: &Ctx, names: Vec<String>) -> Result<Response<Body>> {
    let plan = ctx.engine.save_plan(&names)?;
    let (tx, body) = Body::channel();
    let engine = ctx.engine.clone();
    std::thread::Builder::new()
        .name("save".into())
        .spawn(move || {
            let mut w = ChannelWriter { tx, buf: Vec::with_capacity(CHUNK) };
            // A failure midway can only cut the stream: the client sees a truncated tar.
            if let Err(e) = engine.save_blocking(&plan, &mut w) {
                log::warn!("save {}: {e}", names.join(" "));
            }
        })
        .map_err(|e| crate::error::ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("save: {e}")))?;
    let mut r = Response::new(body);
    r.headers_mut().insert("Content-Type", hyper::header::HeaderValue::from_static("application/x-tar"));
    Ok(r)
}

/// `POST /images/load?quiet=1`: answers when the whole archive is loaded, one JSON line per
/// image as Docker writes them.
pub async fn load(ctx: &Ctx, req: Request<Incoming>) -> Result<Response<Body>> {
    let reader = body_reader(req);
    // As dockerd: the answer is a 200 whose JSON stream carries the failure, which is what
    // docker-py's images.load turns into ImageLoadError (and the docker CLI prints).
    let loaded = match ctx.engine.load(Box::new(reader)).await {
        Ok(l) => l,
        Err(e) => {
            let line = json!({"errorDetail": {"message": e.to_string()}, "error": e.to_string()});
            return Ok(json_response(StatusCode::OK, format!("{line}\r\n")));
        }
    };
    let mut out = String::new();
    for image in &loaded {
        if image.tags.is_empty() {
            out += &json!({"stream": format!("Loaded image ID: {}\n", image.id)}).to_string();
            out += "\r\n";
        }
        for t in &image.tags {
            out += &json!({"stream": format!("Loaded image: {}\n", t.familiar())}).to_string();
            out += "\r\n";
        }
    }
    Ok(json_response(StatusCode::OK, out))
}

/// The request body as a blocking reader, for the engine's threads. A reader that stops early
/// (a refused upload) leaves the rest drained, up to a limit, so the client sees the answer.
pub(crate) fn body_reader(req: Request<Incoming>) -> ChannelReader {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(16);
    let mut incoming = req.into_body();
    tokio::spawn(async move {
        let mut dropped = 0u64;
        while let Some(frame) = incoming.frame().await {
            let data = match frame {
                Ok(f) => match f.into_data() {
                    Ok(d) => d,
                    Err(_) => continue,
                },
                Err(e) => {
                    let _ = tx.send(Err(io::Error::other(format!("reading the request body: {e}")))).await;
                    return;
                }
            };
            if tx.is_closed() {
                dropped += data.len() as u64;
                if dropped > DRAIN_LIMIT {
                    return;
                }
            } else {
                let _ = tx.send(Ok(data)).await;
            }
        }
    });
    ChannelReader { rx, current: Bytes::new() }
}

/// Hands what a blocking writer writes to the response body, in chunks.
pub(crate) struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    pub(crate) fn new(tx: mpsc::Sender<Bytes>) -> ChannelWriter {
        ChannelWriter { tx, buf: Vec::with_capacity(CHUNK) }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(chunk).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = self.send();
    }
}

/// Reads the request body on a blocking thread.
pub(crate) struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
