//! SPDY/3.1, the server side, as Kubernetes' clients speak it (moby/spdystream, which kubelet,
//! the apiserver and kubectl use): the client opens one stream per purpose with a SYN_STREAM
//! whose `streamtype` header names it, the server answers each with a SYN_REPLY, and bytes go
//! in DATA frames, FIN ending a side. Header blocks are zlib-compressed with one stream per
//! direction for the whole connection, primed with SPDY/3's dictionary.
//!
//! Exec and attach (`v4.channel.k8s.io` … `channel.k8s.io`): streams `error`, `stdin`,
//! `stdout`, `stderr`, `resize` (a sequence of `{"Width","Height"}` objects). Port-forward
//! (`portforward.k8s.io`): pairs of an `error` and a `data` stream with the same `port` and
//! `requestid` headers, each pair one TCP connection into the pod.
//!
//! spdystream keeps no flow-control windows, so none is enforced on what is sent; what is
//! received is acknowledged with WINDOW_UPDATE per stream for a client that does keep them.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{Transport, WsEvent, ERROR, RESIZE, STDERR, STDIN, STDOUT};
use crate::Cri;

/// SPDY/3's header compression dictionary (the SPDY/3 draft, §2.6.10.1); its zlib id
/// (Adler-32) is 0xe3c6a7c2, which a unit test checks.
pub const DICTIONARY: &[u8] = b"\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\
\x00\x00\x00\x03put\x00\x00\x00\x06delete\x00\x00\x00\x05trace\x00\x00\x00\x06accept\
\x00\x00\x00\x0eaccept-charset\x00\x00\x00\x0faccept-encoding\x00\x00\x00\x0faccept-language\
\x00\x00\x00\x0daccept-ranges\x00\x00\x00\x03age\x00\x00\x00\x05allow\x00\x00\x00\x0dauthorization\
\x00\x00\x00\x0dcache-control\x00\x00\x00\x0aconnection\x00\x00\x00\x0ccontent-base\
\x00\x00\x00\x10content-encoding\x00\x00\x00\x10content-language\x00\x00\x00\x0econtent-length\
\x00\x00\x00\x10content-location\x00\x00\x00\x0bcontent-md5\x00\x00\x00\x0dcontent-range\
\x00\x00\x00\x0ccontent-type\x00\x00\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expect\
\x00\x00\x00\x07expires\x00\x00\x00\x04from\x00\x00\x00\x04host\x00\x00\x00\x08if-match\
\x00\x00\x00\x11if-modified-since\x00\x00\x00\x0dif-none-match\x00\x00\x00\x08if-range\
\x00\x00\x00\x13if-unmodified-since\x00\x00\x00\x0dlast-modified\x00\x00\x00\x08location\
\x00\x00\x00\x0cmax-forwards\x00\x00\x00\x06pragma\x00\x00\x00\x12proxy-authenticate\
\x00\x00\x00\x13proxy-authorization\x00\x00\x00\x05range\x00\x00\x00\x07referer\
\x00\x00\x00\x0bretry-after\x00\x00\x00\x06server\x00\x00\x00\x02te\x00\x00\x00\x07trailer\
\x00\x00\x00\x11transfer-encoding\x00\x00\x00\x07upgrade\x00\x00\x00\x0auser-agent\
\x00\x00\x00\x04vary\x00\x00\x00\x03via\x00\x00\x00\x07warning\x00\x00\x00\x10www-authenticate\
\x00\x00\x00\x06method\x00\x00\x00\x03get\x00\x00\x00\x06status\x00\x00\x00\x06200 OK\
\x00\x00\x00\x07version\x00\x00\x00\x08HTTP/1.1\x00\x00\x00\x03url\x00\x00\x00\x06public\
\x00\x00\x00\x0aset-cookie\x00\x00\x00\x0akeep-alive\x00\x00\x00\x06origin\
100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505\
203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request\
401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented\
503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 \
Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,\
application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=\
gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const WINDOW_UPDATE: u16 = 9;
const FLAG_FIN: u8 = 0x01;
/// RST_STREAM's status for a stream the server refuses.
const REFUSED_STREAM: u32 = 3;
/// The most sent in one DATA frame.
const MAX_DATA: usize = 32 << 10;
/// How long the client may take to open the streams an exec or attach needs (kubelet's
/// `StreamCreationTimeout` default, 30 s).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// One frame off the wire.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Data { stream: u32, fin: bool, data: Vec<u8> },
    Control { kind: u16, flags: u8, body: Vec<u8> },
}

/// Reads the next frame; `None` at the end of the connection.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<Frame>> {
    let mut head = [0u8; 8];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let flags = head[4];
    let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    if head[0] & 0x80 != 0 {
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != VERSION {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("spdy: version {version}, not 3")));
        }
        Ok(Some(Frame::Control { kind: u16::from_be_bytes([head[2], head[3]]), flags, body }))
    } else {
        let stream = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff;
        Ok(Some(Frame::Data { stream, fin: flags & FLAG_FIN != 0, data: body }))
    }
}

fn control(kind: u16, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(body);
    out
}

fn data(stream: u32, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.push(if fin { FLAG_FIN } else { 0 });
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(payload);
    out
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("spdy: {}", what.into()))
}

/// The connection's two zlib streams for header blocks.
pub struct HeaderCodec {
    inflate: Decompress,
    deflate: Compress,
}

impl HeaderCodec {
    pub fn new() -> io::Result<HeaderCodec> {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate.set_dictionary(DICTIONARY).map_err(|e| bad(format!("zlib dictionary: {e}")))?;
        Ok(HeaderCodec { inflate: Decompress::new(true), deflate })
    }

    /// A header block's pairs, names lowercased (SPDY sends them so; this is only certain).
    pub fn decode(&mut self, block: &[u8]) -> io::Result<Vec<(String, String)>> {
        let mut raw = Vec::with_capacity(block.len() * 4 + 64);
        let mut input = block;
        while !input.is_empty() {
            if raw.len() == raw.capacity() {
                raw.reserve(raw.capacity().max(256));
            }
            if raw.len() > 1 << 20 {
                return Err(bad("header block too large"));
            }
            let (before, out_before) = (self.inflate.total_in(), raw.len());
            let r = self.inflate.decompress_vec(input, &mut raw, FlushDecompress::Sync);
            let used = (self.inflate.total_in() - before) as usize;
            input = &input[used..];
            match r {
                // No progress with room to write: the block cannot be inflated.
                Ok(_) if used == 0 && raw.len() == out_before && raw.len() < raw.capacity() => {
                    return Err(bad("header block does not inflate"));
                }
                Ok(Status::Ok) | Ok(Status::BufError) => {}
                Ok(Status::StreamEnd) => break,
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate.set_dictionary(DICTIONARY).map_err(|e| bad(format!("zlib dictionary: {e}")))?;
                }
                Err(e) => return Err(bad(format!("header block: {e}"))),
            }
        }
        let n = be32(&raw, 0).ok_or_else(|| bad("short header block"))? as usize;
        let mut at = 4;
        let mut out = Vec::new();
        for _ in 0..n.min(1024) {
            let mut field = || -> io::Result<String> {
                let len = be32(&raw, at).ok_or_else(|| bad("short header block"))? as usize;
                let v = raw.get(at + 4..at + 4 + len).ok_or_else(|| bad("short header block"))?;
                at += 4 + len;
                Ok(String::from_utf8_lossy(v).into_owned())
            };
            let name = field()?.to_ascii_lowercase();
            let value = field()?;
            out.push((name, value));
        }
        Ok(out)
    }

    pub fn encode(&mut self, headers: &[(&str, &str)]) -> io::Result<Vec<u8>> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (k, v) in headers {
            for s in [k.to_ascii_lowercase().as_str(), v] {
                raw.extend_from_slice(&(s.len() as u32).to_be_bytes());
                raw.extend_from_slice(s.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut input = &raw[..];
        loop {
            out.reserve(input.len() + 64);
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| bad(format!("compress headers: {e}")))?;
            input = &input[(self.deflate.total_in() - before) as usize..];
            // A sync flush is complete once all input is in and room was left over.
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// A SPDY connection's frames: read on a task of their own (so waiting is cancel-safe), and
/// written with the header codec.
pub struct Conn<W> {
    rx: mpsc::Receiver<io::Result<Frame>>,
    reader: tokio::task::AbortHandle,
    w: W,
    codec: HeaderCodec,
}

impl<W> Drop for Conn<W> {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A stream the client opened: its id, headers, and whether it is already half-closed.
pub struct Opened {
    pub id: u32,
    pub headers: Vec<(String, String)>,
    pub fin: bool,
}

/// What the session loop gets from the connection.
pub enum Event {
    Opened(Opened),
    Data { stream: u32, fin: bool, data: Vec<u8> },
    Reset(u32),
    End,
}

impl<W: AsyncWrite + Unpin> Conn<W> {
    pub fn new<R: AsyncRead + Unpin + Send + 'static>(r: R, w: W) -> io::Result<Conn<W>> {
        let (tx, rx) = mpsc::channel(16);
        let task = tokio::spawn(async move {
            let mut r = r;
            loop {
                let f = read_frame(&mut r).await;
                let end = !matches!(f, Ok(Some(_)));
                let item = match f {
                    Ok(Some(f)) => Ok(f),
                    Ok(None) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "spdy: connection ended")),
                    Err(e) => Err(e),
                };
                if tx.send(item).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(Conn { rx, reader: task.abort_handle(), w, codec: HeaderCodec::new()? })
    }

    async fn write(&mut self, frame: &[u8]) -> io::Result<()> {
        self.w.write_all(frame).await?;
        self.w.flush().await
    }

    /// The next stream event. SYN_STREAMs are answered with a SYN_REPLY here; pings echoed;
    /// received data acknowledged with WINDOW_UPDATE; settings and the rest ignored.
    pub async fn next(&mut self) -> Event {
        loop {
            let frame = match self.rx.recv().await {
                Some(Ok(f)) => f,
                Some(Err(e)) => {
                    if e.kind() != io::ErrorKind::UnexpectedEof {
                        log::debug!("cri streaming: {e}");
                    }
                    return Event::End;
                }
                None => return Event::End,
            };
            match frame {
                Frame::Data { stream, fin, data } => {
                    if !data.is_empty() {
                        let mut body = stream.to_be_bytes().to_vec();
                        body.extend_from_slice(&(data.len() as u32).to_be_bytes());
                        if self.write(&control(WINDOW_UPDATE, 0, &body)).await.is_err() {
                            return Event::End;
                        }
                    }
                    return Event::Data { stream, fin, data };
                }
                Frame::Control { kind: SYN_STREAM, flags, body } => {
                    let Some(id) = be32(&body, 0).map(|x| x & 0x7fff_ffff) else { return Event::End };
                    // Every header block must be inflated, in order: the zlib stream is shared.
                    let headers = match body.get(10..).map(|b| self.codec.decode(b)) {
                        Some(Ok(h)) => h,
                        _ => return Event::End,
                    };
                    let reply = match self.codec.encode(&[]) {
                        Ok(block) => {
                            let mut b = id.to_be_bytes().to_vec();
                            b.extend_from_slice(&block);
                            control(SYN_REPLY, 0, &b)
                        }
                        Err(_) => return Event::End,
                    };
                    if self.write(&reply).await.is_err() {
                        return Event::End;
                    }
                    return Event::Opened(Opened { id, headers, fin: flags & FLAG_FIN != 0 });
                }
                Frame::Control { kind: RST_STREAM, body, .. } => {
                    if let Some(id) = be32(&body, 0) {
                        return Event::Reset(id & 0x7fff_ffff);
                    }
                }
                Frame::Control { kind: PING, body, .. } => {
                    if self.write(&control(PING, 0, &body)).await.is_err() {
                        return Event::End;
                    }
                }
                Frame::Control { kind: GOAWAY, .. } => return Event::End,
                Frame::Control { .. } => {}
            }
        }
    }

    pub async fn send(&mut self, stream: u32, payload: &[u8]) -> io::Result<()> {
        for chunk in payload.chunks(MAX_DATA) {
            self.write(&data(stream, false, chunk)).await?;
        }
        Ok(())
    }

    /// Ends the server's side of a stream.
    pub async fn fin(&mut self, stream: u32) -> io::Result<()> {
        self.write(&data(stream, true, &[])).await
    }

    pub async fn reset(&mut self, stream: u32, status: u32) -> io::Result<()> {
        let mut b = stream.to_be_bytes().to_vec();
        b.extend_from_slice(&status.to_be_bytes());
        self.write(&control(RST_STREAM, 0, &b)).await
    }

    /// GOAWAY (status OK) and the end of the connection.
    pub async fn go_away(&mut self, last: u32) {
        let mut b = last.to_be_bytes().to_vec();
        b.extend_from_slice(&0u32.to_be_bytes());
        let _ = self.write(&control(GOAWAY, 0, &b)).await;
        let _ = self.w.shutdown().await;
    }
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
    h.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

/// The streams of an exec or attach, by the channel numbers the sessions use.
pub struct StdioConn<W> {
    conn: Conn<W>,
    /// Stream ids for STDIN…RESIZE.
    ids: [Option<u32>; 5],
    /// Whether the error stream carries a metav1 Status (v4).
    json: bool,
    /// Events read while waiting for the streams, handed on first.
    early: std::collections::VecDeque<WsEvent>,
    /// An incomplete resize object.
    resize_buf: Vec<u8>,
    last: u32,
}

fn channel_of(kind: &str) -> Option<u8> {
    Some(match kind {
        "stdin" => STDIN,
        "stdout" => STDOUT,
        "stderr" => STDERR,
        "error" => ERROR,
        "resize" => RESIZE,
        _ => return None,
    })
}

impl<W: AsyncWrite + Unpin> StdioConn<W> {
    /// Waits until the client opened the streams `want` (channel numbers) asks for, as
    /// kubelet waits: the error stream always, the others as the request set them.
    pub async fn open(conn: Conn<W>, want: &[u8], json: bool) -> Result<StdioConn<W>, String> {
        let mut s =
            StdioConn { conn, ids: [None; 5], json, early: Default::default(), resize_buf: Vec::new(), last: 0 };
        let deadline = tokio::time::Instant::now() + STREAM_CREATION_TIMEOUT;
        while want.iter().any(|ch| s.ids[usize::from(*ch)].is_none()) {
            let ev = match tokio::time::timeout_at(deadline, s.conn.next()).await {
                Ok(ev) => ev,
                Err(_) => return Err("timed out waiting for the client to create streams".into()),
            };
            match ev {
                Event::End => return Err("the client left before its streams were made".into()),
                other => {
                    let handed = s.handle(other).await;
                    s.early.extend(handed);
                }
            }
        }
        Ok(s)
    }

    /// One connection event as channel events.
    async fn handle(&mut self, ev: Event) -> Vec<WsEvent> {
        match ev {
            Event::Opened(o) => {
                self.last = self.last.max(o.id);
                let kind = header(&o.headers, "streamtype").to_string();
                match channel_of(&kind) {
                    Some(ch) if self.ids[usize::from(ch)].is_none() => {
                        self.ids[usize::from(ch)] = Some(o.id);
                        if o.fin {
                            return vec![WsEvent::Closed(ch)];
                        }
                    }
                    _ => {
                        log::debug!("cri streaming: refusing a spdy stream of type {kind:?}");
                        let _ = self.conn.reset(o.id, REFUSED_STREAM).await;
                    }
                }
                Vec::new()
            }
            Event::Data { stream, fin, data } => {
                let Some(ch) = self.ids.iter().position(|id| *id == Some(stream)) else { return Vec::new() };
                let ch = ch as u8;
                let mut out = Vec::new();
                if ch == RESIZE {
                    // A sequence of JSON objects, not framed: split them as they complete.
                    self.resize_buf.extend_from_slice(&data);
                    let mut it =
                        serde_json::Deserializer::from_slice(&self.resize_buf).into_iter::<serde_json::Value>();
                    let mut used = 0;
                    while let Some(Ok(v)) = it.next() {
                        used = it.byte_offset();
                        out.push(WsEvent::Data(RESIZE, v.to_string().into_bytes()));
                    }
                    self.resize_buf.drain(..used);
                } else if !data.is_empty() {
                    out.push(WsEvent::Data(ch, data));
                }
                if fin {
                    out.push(WsEvent::Closed(ch));
                }
                out
            }
            Event::Reset(stream) => match self.ids.iter().position(|id| *id == Some(stream)) {
                Some(ch) => vec![WsEvent::Closed(ch as u8)],
                None => Vec::new(),
            },
            Event::End => vec![WsEvent::End],
        }
    }
}

impl<W: AsyncWrite + Unpin> Transport for StdioConn<W> {
    async fn next(&mut self) -> WsEvent {
        loop {
            if let Some(ev) = self.early.pop_front() {
                return ev;
            }
            let ev = self.conn.next().await;
            let handed = self.handle(ev).await;
            self.early.extend(handed);
        }
    }

    async fn send(&mut self, channel: u8, payload: &[u8]) -> io::Result<()> {
        match self.ids.get(usize::from(channel)).copied().flatten() {
            Some(id) => self.conn.send(id, payload).await,
            // A stream the client did not open is not written (stderr of a tty).
            None => Ok(()),
        }
    }

    fn status_json(&self) -> bool {
        self.json
    }

    /// Ends every stream the server writes, then the connection.
    async fn finish(&mut self) {
        for ch in [STDOUT, STDERR, ERROR] {
            if let Some(id) = self.ids[usize::from(ch)] {
                let _ = self.conn.fin(id).await;
            }
        }
        let last = self.last;
        self.conn.go_away(last).await;
    }
}

/// The streams exec and attach wait for: error, and stdin/stdout/stderr as asked (a
/// terminal has no stderr stream).
pub fn wanted(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> Vec<u8> {
    let mut want = vec![ERROR];
    if stdin {
        want.push(STDIN);
    }
    if stdout {
        want.push(STDOUT);
    }
    if stderr && !tty {
        want.push(STDERR);
    }
    want
}

/// Port-forward over SPDY: each (error, data) pair of a `requestid` is one connection to its
/// `port` inside the pod; the session lasts until the client leaves.
pub async fn portforward_session<W: AsyncWrite + Unpin>(cri: &Cri, mut conn: Conn<W>, sandbox_id: &str) {
    /// Per request id: its streams, and the pod side's writer once dialled.
    #[derive(Default)]
    struct Pair {
        error: Option<u32>,
        data: Option<u32>,
        port: u16,
        to_pod: Option<tokio::net::tcp::OwnedWriteHalf>,
        /// Bytes the client sent before the connection was made.
        pending: Vec<u8>,
        client_done: bool,
    }
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut by_stream: HashMap<u32, String> = HashMap::new();
    let (tx, mut from_pod) = mpsc::channel::<(String, Option<Vec<u8>>)>(16);
    let mut last = 0;
    loop {
        let idle = tokio::time::sleep(super::STREAM_IDLE_TIMEOUT);
        let ev = tokio::select! {
            _ = idle => return,
            ev = conn.next() => ev,
            got = from_pod.recv() => {
                let Some((rid, chunk)) = got else { continue };
                let Some(p) = pairs.get_mut(&rid) else { continue };
                let Some(data_id) = p.data else { continue };
                match chunk {
                    Some(bytes) => {
                        if conn.send(data_id, &bytes).await.is_err() {
                            return;
                        }
                    }
                    None => {
                        // The pod's side ended: the pair is over.
                        let _ = conn.fin(data_id).await;
                        if let Some(e) = p.error {
                            let _ = conn.fin(e).await;
                        }
                        if let Some(p) = pairs.remove(&rid) {
                            by_stream.retain(|_, r| *r != rid);
                            drop(p);
                        }
                    }
                }
                continue;
            }
        };
        match ev {
            Event::End => return,
            Event::Opened(o) => {
                last = last.max(o.id);
                let kind = header(&o.headers, "streamtype");
                let rid = header(&o.headers, "requestid").to_string();
                let port = header(&o.headers, "port").parse::<u16>().ok().filter(|p| *p > 0);
                let (Some(port), "error" | "data") = (port, kind) else {
                    log::debug!("cri streaming: refusing a port-forward stream {:?}", o.headers);
                    let _ = conn.reset(o.id, REFUSED_STREAM).await;
                    continue;
                };
                let pair = pairs.entry(rid.clone()).or_default();
                pair.port = port;
                if kind == "error" {
                    pair.error = Some(o.id);
                } else {
                    pair.data = Some(o.id);
                    pair.client_done = o.fin;
                }
                by_stream.insert(o.id, rid.clone());
                let (Some(error_id), Some(_)) = (pair.error, pair.data) else { continue };
                // Both streams are there: dial.
                let pid = super::sandbox_pid(cri, sandbox_id);
                let dialled = match pid {
                    Some(pid) => super::portforward::dial(pid, port).await,
                    None => Err(io::Error::other(format!("pod sandbox {sandbox_id} is not running"))),
                };
                match dialled {
                    Ok(s) => {
                        let (mut r, mut w) = s.into_split();
                        // The pair was made above and nothing removed it since.
                        let Some(pair) = pairs.get_mut(&rid) else { continue };
                        if !pair.pending.is_empty() {
                            let _ = w.write_all(&pair.pending).await;
                            pair.pending.clear();
                        }
                        if pair.client_done {
                            let _ = w.shutdown().await;
                        }
                        pair.to_pod = Some(w);
                        let tx = tx.clone();
                        let rid = rid.clone();
                        tokio::spawn(async move {
                            let mut buf = vec![0u8; 32 << 10];
                            loop {
                                match r.read(&mut buf).await {
                                    Ok(0) | Err(_) => {
                                        let _ = tx.send((rid, None)).await;
                                        return;
                                    }
                                    Ok(n) => {
                                        if tx.send((rid.clone(), Some(buf[..n].to_vec()))).await.is_err() {
                                            return;
                                        }
                                    }
                                }
                            }
                        });
                    }
                    Err(e) => {
                        let msg = format!("error forwarding port {port} to pod {sandbox_id}: {e}");
                        let _ = conn.send(error_id, msg.as_bytes()).await;
                        let _ = conn.fin(error_id).await;
                        if let Some(p) = pairs.remove(&rid) {
                            if let Some(d) = p.data {
                                let _ = conn.fin(d).await;
                            }
                        }
                        by_stream.retain(|_, r| *r != rid);
                    }
                }
            }
            Event::Data { stream, fin, data } => {
                let Some(rid) = by_stream.get(&stream) else { continue };
                let Some(p) = pairs.get_mut(rid) else { continue };
                if p.data != Some(stream) {
                    continue;
                }
                match p.to_pod.as_mut() {
                    Some(w) => {
                        if !data.is_empty() && w.write_all(&data).await.is_err() {
                            log::debug!("cri streaming: port-forward write to the pod failed");
                        }
                        if fin {
                            let _ = w.shutdown().await;
                        }
                    }
                    None => {
                        p.pending.extend_from_slice(&data);
                        p.client_done |= fin;
                    }
                }
            }
            Event::Reset(stream) => {
                if let Some(rid) = by_stream.remove(&stream) {
                    // Dropping the pair closes its connection into the pod.
                    pairs.remove(&rid);
                    by_stream.retain(|_, r| *r != rid);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_spdy3s() {
        assert_eq!(DICTIONARY.len(), 1423);
        // zlib's dictionary id, as every SPDY/3 header block's zlib header carries it.
        let (mut a, mut b) = (1u32, 0u32);
        for &x in DICTIONARY {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[test]
    fn header_blocks_round_trip_across_one_zlib_stream() {
        let mut server = HeaderCodec::new().unwrap();
        let mut client = HeaderCodec::new().unwrap();
        for round in 0..3 {
            let port = format!("{}", 8080 + round);
            let block = client.encode(&[("streamType", "data"), ("port", &port), ("requestID", "7")]).unwrap();
            if round == 0 {
                // zlib header with the preset dictionary flag, then the dictionary's id.
                assert_eq!(&block[2..6], &[0xe3, 0xc6, 0xa7, 0xc2]);
            }
            let got = server.decode(&block).unwrap();
            assert_eq!(
                got,
                vec![
                    ("streamtype".to_string(), "data".to_string()),
                    ("port".to_string(), port.clone()),
                    ("requestid".to_string(), "7".to_string())
                ]
            );
        }
        assert_eq!(server.decode(&client.encode(&[]).unwrap()).unwrap(), vec![]);
        // What is no zlib, or a block that says more pairs than it holds, is an error.
        assert!(HeaderCodec::new().unwrap().decode(b"not zlib at all").is_err());
        let mut z = Compress::new(Compression::default(), true);
        z.set_dictionary(DICTIONARY).unwrap();
        // Two pairs said, one there.
        let raw = b"\0\0\0\x02\0\0\0\x01a\0\0\0\x01b";
        let mut short = Vec::with_capacity(256);
        z.compress_vec(raw, &mut short, FlushCompress::Sync).unwrap();
        let err = HeaderCodec::new().unwrap().decode(&short).unwrap_err();
        assert!(err.to_string().contains("short header block"), "{err}");
    }

    #[tokio::test]
    async fn frames_read_back_as_written() {
        let mut wire = control(SYN_STREAM, FLAG_FIN, &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        wire.extend(data(1, true, b"hi"));
        let mut r = &wire[..];
        assert_eq!(
            read_frame(&mut r).await.unwrap(),
            Some(Frame::Control { kind: SYN_STREAM, flags: FLAG_FIN, body: vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0] })
        );
        assert_eq!(read_frame(&mut r).await.unwrap(), Some(Frame::Data { stream: 1, fin: true, data: b"hi".to_vec() }));
        assert_eq!(read_frame(&mut r).await.unwrap(), None);
        let v2 = [0x80u8, 2, 0, 1, 0, 0, 0, 0];
        assert!(read_frame(&mut &v2[..]).await.unwrap_err().to_string().contains("version 2"));
    }
}
