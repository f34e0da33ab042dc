//! Reading a response: the bounded head, then the body framed by Content-Length, chunked
//! encoding or the end of the connection.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::Arc;

use crate::pool::Pool;
use crate::{HttpError, Stream, MAX_HEAD_SIZE};

/// The longest chunk-size line or trailer line accepted in a chunked body.
const MAX_CHUNK_LINE: u64 = 4096;

pub(crate) struct Head {
    /// `HTTP/1.0`: the connection ends with the response.
    http10: bool,
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
}

/// A response whose head has been read; the body is read through [`Response::body_reader`].
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    body: BodyReader,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("reason", &self.reason)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl Response {
    pub(crate) fn new(head: Head, reader: BufReader<Box<dyn Stream>>, head_request: bool) -> Response {
        let header = |name: &str| find_header(&head.headers, name);
        let chunked = header("Transfer-Encoding")
            .is_some_and(|v| v.rsplit(',').next().is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked")));
        let framing = if head_request || head.status < 200 || head.status == 204 || head.status == 304 {
            Framing::Length(0)
        } else if chunked {
            Framing::Chunked { left_in_chunk: 0, started: false }
        } else if let Some(n) = header("Content-Length").and_then(|v| v.trim().parse::<u64>().ok()) {
            Framing::Length(n)
        } else {
            Framing::UntilClose
        };
        Response {
            status: head.status,
            reason: head.reason,
            headers: head.headers,
            body: BodyReader { inner: reader, framing, release: None, http10: head.http10 },
        }
    }

    /// Gives the connection to `pool` once the body has been read to its end, when the
    /// server keeps it open: HTTP/1.1, no `Connection: close`, a body framed by length or
    /// chunks, not an upgrade.
    pub(crate) fn release_to(&mut self, pool: Arc<Pool>, origin: String) {
        let closes =
            self.header("Connection").is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
        if self.body.http10 || closes || self.status == 101 || matches!(self.body.framing, Framing::UntilClose) {
            return;
        }
        self.body.release = Some((pool, origin));
        self.body.give_back_if_done();
    }

    /// The first header named `name`, compared without regard to case.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body, decoded from its framing (Content-Length, chunked, or until close).
    pub fn body_reader(&mut self) -> &mut dyn Read {
        &mut self.body
    }

    pub fn into_body(self) -> Box<dyn Read + Send> {
        Box::new(self.body)
    }

    /// Reads the whole body, refusing one longer than `limit` bytes.
    pub fn read_body(mut self, limit: u64) -> Result<Vec<u8>, HttpError> {
        let mut out = Vec::new();
        if let Framing::Length(n) = self.body.framing {
            if n > limit {
                return Err(HttpError::BodyTooLarge(limit));
            }
            // Sized once: a container list of thousands is megabytes.
            out.reserve_exact(n as usize);
        }
        (&mut self.body)
            .take(limit.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| HttpError::io("read response body", e))?;
        if out.len() as u64 > limit {
            return Err(HttpError::BodyTooLarge(limit));
        }
        Ok(out)
    }

    /// Gives up HTTP framing after a `101 Switching Protocols` (or Docker's hijacked attach):
    /// the bytes already read past the head, and the raw stream.
    pub fn into_upgraded(mut self) -> (Vec<u8>, Box<dyn Stream>) {
        self.body.release = None;
        let inner = std::mem::replace(&mut self.body.inner, BufReader::new(Box::new(Spent)));
        let buffered = inner.buffer().to_vec();
        (buffered, inner.into_inner())
    }
}

pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Reads the status line and headers, skipping interim `1xx` responses other than `101`.
pub(crate) fn read_head(reader: &mut BufReader<Box<dyn Stream>>) -> Result<Head, HttpError> {
    loop {
        let head = read_one_head(reader)?;
        if (100..200).contains(&head.status) && head.status != 101 {
            continue;
        }
        return Ok(head);
    }
}

fn read_one_head(reader: &mut BufReader<Box<dyn Stream>>) -> Result<Head, HttpError> {
    let mut budget = MAX_HEAD_SIZE as u64;
    let mut next_line = |reader: &mut BufReader<Box<dyn Stream>>| -> Result<String, HttpError> {
        let mut line = Vec::new();
        let n = reader.take(budget).read_until(b'\n', &mut line).map_err(|e| HttpError::io("read response head", e))?;
        budget -= n as u64;
        if !line.ends_with(b"\n") {
            return Err(if budget == 0 {
                HttpError::HeadTooLarge(MAX_HEAD_SIZE)
            } else {
                HttpError::Malformed("connection closed before the end of the response head".to_string())
            });
        }
        line.pop();
        if line.ends_with(b"\r") {
            line.pop();
        }
        String::from_utf8(line).map_err(|_| HttpError::Malformed("response head is not utf-8".to_string()))
    };

    let status_line = next_line(reader)?;
    let (status, reason) = parse_status_line(&status_line)?;
    let http10 = status_line.starts_with("HTTP/1.0");
    let mut headers: Vec<(String, String)> = Vec::new();
    loop {
        let line = next_line(reader)?;
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            // Obsolete line folding: a continuation of the previous header's value.
            match headers.last_mut() {
                Some((_, v)) => {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                None => return Err(HttpError::Malformed(format!("header continuation without a header: {line:?}"))),
            }
            continue;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| HttpError::Malformed(format!("header line without a colon: {line:?}")))?;
        if k.is_empty() || k.contains([' ', '\t']) {
            return Err(HttpError::Malformed(format!("invalid header name {k:?}")));
        }
        headers.push((k.to_string(), v.trim().to_string()));
    }
    Ok(Head { http10, status, reason, headers })
}

pub(crate) fn parse_status_line(line: &str) -> Result<(u16, String), HttpError> {
    let bad = || HttpError::Malformed(format!("invalid status line {line:?}"));
    let rest = line.strip_prefix("HTTP/1.").ok_or_else(bad)?;
    let mut parts = rest.splitn(3, ' ');
    let _minor = parts.next().filter(|m| m.len() == 1 && m.as_bytes()[0].is_ascii_digit()).ok_or_else(bad)?;
    let code = parts.next().ok_or_else(bad)?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let status = code.parse::<u16>().map_err(|_| bad())?;
    Ok((status, parts.next().unwrap_or("").to_string()))
}

enum Framing {
    Length(u64),
    Chunked { left_in_chunk: u64, started: bool },
    UntilClose,
    Done,
}

struct BodyReader {
    inner: BufReader<Box<dyn Stream>>,
    framing: Framing,
    /// Where the connection goes once the body is done, for a keep-alive connection.
    release: Option<(Arc<Pool>, String)>,
    http10: bool,
}

/// What is left in a body reader whose connection went back to the pool or was upgraded.
struct Spent;

impl Read for Spent {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Ok(0)
    }
}

impl Write for Spent {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::NotConnected, "the connection was given back"))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for Spent {
    fn shutdown_write(&self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for BodyReader {
    fn drop(&mut self) {
        self.give_back_if_done();
    }
}

fn bad_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl BodyReader {
    /// Once the body is complete, hands a keep-alive connection to its pool, unless the
    /// server sent bytes past the body (then the connection's framing cannot be trusted).
    fn give_back_if_done(&mut self) {
        if !matches!(self.framing, Framing::Done | Framing::Length(0)) || !self.inner.buffer().is_empty() {
            return;
        }
        if let Some((pool, origin)) = self.release.take() {
            let inner = std::mem::replace(&mut self.inner, BufReader::new(Box::new(Spent)));
            pool.put(&origin, inner.into_inner());
        }
    }

    fn read_line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        (&mut self.inner).take(MAX_CHUNK_LINE).read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\n") {
            return Err(if line.len() as u64 == MAX_CHUNK_LINE {
                bad_data("chunk line too long".to_string())
            } else {
                io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed inside a chunked body")
            });
        }
        String::from_utf8(line)
            .map(|s| s.trim_end().to_string())
            .map_err(|_| bad_data("chunk line is not utf-8".to_string()))
    }

    /// Reads the next chunk-size line; at the last chunk, reads the trailers too.
    fn next_chunk(&mut self, started: bool) -> io::Result<u64> {
        if started {
            // The CRLF that ends the previous chunk's data.
            let end = self.read_line()?;
            if !end.is_empty() {
                return Err(bad_data(format!("expected the end of a chunk, got {end:?}")));
            }
        }
        let line = self.read_line()?;
        let size = line.split(';').next().unwrap_or("").trim();
        let n = u64::from_str_radix(size, 16).map_err(|_| bad_data(format!("invalid chunk size {line:?}")))?;
        if n == 0 {
            while !self.read_line()?.is_empty() {}
        }
        Ok(n)
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.framing {
                Framing::Done | Framing::Length(0) => {
                    self.give_back_if_done();
                    return Ok(0);
                }
                Framing::Length(left) => {
                    let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = self.inner.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("connection closed with {left} bytes of the body left"),
                        ));
                    }
                    self.framing = Framing::Length(left - n as u64);
                    return Ok(n);
                }
                Framing::UntilClose => return self.inner.read(buf),
                Framing::Chunked { left_in_chunk: 0, started } => {
                    let n = self.next_chunk(started)?;
                    self.framing =
                        if n == 0 { Framing::Done } else { Framing::Chunked { left_in_chunk: n, started: true } };
                }
                Framing::Chunked { left_in_chunk, started } => {
                    let want = buf.len().min(usize::try_from(left_in_chunk).unwrap_or(usize::MAX));
                    let n = self.inner.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed inside a chunk"));
                    }
                    self.framing = Framing::Chunked { left_in_chunk: left_in_chunk - n as u64, started };
                    return Ok(n);
                }
            }
        }
    }
}
