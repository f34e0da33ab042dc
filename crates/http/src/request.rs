//! Building a request and writing it on a stream.

use std::fmt;
use std::io::{self, BufReader, Read, Write};

use crate::response::{read_head, Response};
use crate::{HttpError, Stream};

/// The body of a request.
pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    /// A stream of the given length, or of unknown length (sent chunked) when `None`.
    Reader(Box<dyn Read + Send>, Option<u64>),
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => write!(f, "Empty"),
            Body::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Body::Reader(_, len) => write!(f, "Reader({len:?})"),
        }
    }
}

/// An HTTP request: method, target (path and query), headers and body.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Request {
    pub fn new(method: &str, target: &str) -> Request {
        Request { method: method.to_string(), target: target.to_string(), headers: Vec::new(), body: Body::Empty }
    }

    pub fn header(mut self, k: &str, v: &str) -> Request {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    pub fn body(mut self, b: Body) -> Request {
        self.body = b;
        self
    }

    /// Sets a JSON body and `Content-Type: application/json`.
    pub fn json(self, value: &impl serde::Serialize) -> Request {
        // Serializing plain data structures to a Vec cannot fail; a map with non-string keys
        // would, and then `null` makes the server answer with a clear 400 instead of a hang.
        let body = serde_json::to_vec(value).unwrap_or_else(|e| {
            log::error!("cannot serialize request body: {e}");
            b"null".to_vec()
        });
        self.header("Content-Type", "application/json").body(Body::Bytes(body))
    }

    /// A copy, when the body can be sent again (not a stream): for a retry on a fresh
    /// connection after a reused one turned out closed.
    pub(crate) fn try_clone(&self) -> Option<Request> {
        let body = match &self.body {
            Body::Empty => Body::Empty,
            Body::Bytes(b) => Body::Bytes(b.clone()),
            Body::Reader(..) => return None,
        };
        Some(Request { method: self.method.clone(), target: self.target.clone(), headers: self.headers.clone(), body })
    }

    pub(crate) fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
    }
}

/// Sends one request on `stream` and reads the response head. Writes `Host` (unless given),
/// `Content-Length` or `Transfer-Encoding: chunked`, and `Connection: close` (unless the caller
/// set `Connection`, as an upgrade does); the caller adds the rest.
pub fn send(stream: Box<dyn Stream>, host: &str, req: Request) -> Result<Response, HttpError> {
    send_on(stream, host, req, false)
}

/// [`send`], keeping the connection open (no `Connection: close`) when `keep_alive` is set.
pub(crate) fn send_on(
    mut stream: Box<dyn Stream>,
    host: &str,
    req: Request,
    keep_alive: bool,
) -> Result<Response, HttpError> {
    let invalid = |what: &str| HttpError::Io {
        context: format!("send {} {}", req.method, req.target),
        source: io::Error::new(io::ErrorKind::InvalidInput, format!("{what} contains a line break")),
    };
    if has_line_break(&req.method) || has_line_break(&req.target) || has_line_break(host) {
        return Err(invalid("request line"));
    }
    if req.headers.iter().any(|(k, v)| has_line_break(k) || has_line_break(v)) {
        return Err(invalid("a header"));
    }

    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
    if !req.has_header("Host") {
        head.push_str(&format!("Host: {host}\r\n"));
    }
    for (k, v) in &req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !keep_alive && !req.has_header("Connection") {
        head.push_str("Connection: close\r\n");
    }
    let body_may_be_empty = matches!(req.method.as_str(), "GET" | "HEAD" | "DELETE" | "OPTIONS");
    match &req.body {
        Body::Empty if body_may_be_empty => {}
        Body::Empty => head.push_str("Content-Length: 0\r\n"),
        Body::Bytes(b) => head.push_str(&format!("Content-Length: {}\r\n", b.len())),
        Body::Reader(_, Some(n)) => head.push_str(&format!("Content-Length: {n}\r\n")),
        Body::Reader(_, None) => head.push_str("Transfer-Encoding: chunked\r\n"),
    }
    head.push_str("\r\n");

    let context = format!("send {} {}", req.method, req.target);
    let io_err = |e| HttpError::io(&context, e);
    stream.write_all(head.as_bytes()).map_err(io_err)?;
    let written = match req.body {
        Body::Empty => Ok(()),
        Body::Bytes(b) => stream.write_all(&b),
        Body::Reader(r, Some(n)) => match io::copy(&mut r.take(n), &mut stream) {
            Ok(copied) if copied != n => {
                return Err(HttpError::Io {
                    context,
                    source: io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("request body ended after {copied} of {n} bytes"),
                    ),
                });
            }
            other => other.map(drop),
        },
        Body::Reader(mut r, None) => write_chunked(&mut r, &mut stream),
    }
    .and_then(|()| stream.flush());
    if let Err(e) = written {
        // A server may answer before it has read the whole body (an early refusal) and close
        // the connection: its answer, when one came, is the response (as Go's client does).
        if matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset) {
            let mut reader = BufReader::with_capacity(64 << 10, stream);
            if let Ok(head) = read_head(&mut reader) {
                return Ok(Response::new(head, reader, req.method == "HEAD"));
            }
        }
        return Err(io_err(e));
    }

    let mut reader = BufReader::with_capacity(64 << 10, stream);
    let head = read_head(&mut reader)?;
    Ok(Response::new(head, reader, req.method == "HEAD"))
}

fn has_line_break(s: &str) -> bool {
    s.contains(['\r', '\n'])
}

fn write_chunked(r: &mut dyn Read, w: &mut dyn Write) -> io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(format!("{n:x}\r\n").as_bytes())?;
        w.write_all(&buf[..n])?;
        w.write_all(b"\r\n")?;
    }
    w.write_all(b"0\r\n\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::thread;

    /// A one-shot loopback server: reads the request head (and `body_len` bytes of body, or a
    /// chunked body up to its last chunk), sends `reply`, then closes unless `hold` is set, in
    /// which case it echoes what it reads (an upgraded stream). Returns the port and the request.
    fn serve(reply: &'static [u8], hold: bool) -> (u16, mpsc::Receiver<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !request_complete(&req) {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            tx.send(req).unwrap();
            s.write_all(reply).unwrap();
            if hold {
                loop {
                    let n = s.read(&mut buf).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    s.write_all(&buf[..n]).unwrap();
                }
            }
        });
        (port, rx)
    }

    fn request_complete(req: &[u8]) -> bool {
        let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
        let head = String::from_utf8_lossy(&req[..end]).to_ascii_lowercase();
        let body = &req[end + 4..];
        if head.contains("transfer-encoding: chunked") {
            return body.ends_with(b"0\r\n\r\n");
        }
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        body.len() >= len
    }

    fn connect(port: u16) -> Box<dyn Stream> {
        Box::new(TcpStream::connect(("127.0.0.1", port)).unwrap())
    }

    fn get(reply: &'static [u8]) -> Result<Response, HttpError> {
        let (port, _rx) = serve(reply, false);
        send(connect(port), "localhost", Request::new("GET", "/x"))
    }

    /// A server that answers after the request head and closes without reading the body: the
    /// client's body write fails (EPIPE), and the answer is the response, not that failure.
    #[test]
    fn an_early_answer_is_the_response() {
        let (client, mut server) = std::os::unix::net::UnixStream::pair().unwrap();
        let t = thread::spawn(move || {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && server.read(&mut byte).unwrap() == 1 {
                head.push(byte[0]);
            }
            server.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 7\r\n\r\nrefused").unwrap();
        });
        let body = std::io::repeat(b'x').take(64 << 20);
        let req = Request::new("POST", "/build").body(Body::Reader(Box::new(body), None));
        let resp = send(Box::new(client), "localhost", req).unwrap();
        t.join().unwrap();
        assert_eq!(resp.status, 400);
        assert_eq!(resp.read_body(100).unwrap(), b"refused");
    }

    #[test]
    fn content_length_body() {
        let resp = get(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nX-A: b\r\n\r\nhelloEXTRA").unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.reason, "OK");
        assert_eq!(resp.header("x-a"), Some("b"));
        assert_eq!(resp.header("Content-Length"), Some("5"));
        assert_eq!(resp.read_body(100).unwrap(), b"hello");
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\n";
        let resp = get(reply).unwrap();
        assert_eq!(resp.read_body(100).unwrap(), b"hello, world");
    }

    #[test]
    fn body_until_close() {
        let resp = get(b"HTTP/1.0 200 OK\r\n\r\nall of it").unwrap();
        let mut body = Vec::new();
        resp.into_body().read_to_end(&mut body).unwrap();
        assert_eq!(body, b"all of it");
    }

    #[test]
    fn short_content_length_body_is_an_error() {
        let resp = get(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort").unwrap();
        assert!(matches!(resp.read_body(100), Err(HttpError::Io { .. })));
    }

    #[test]
    fn body_over_limit_is_refused() {
        let resp = get(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world").unwrap();
        let err = resp.read_body(10).unwrap_err();
        assert_eq!(err.kind(), wharf_types::ErrorKind::InvalidArgument);
        let resp = get(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n").unwrap();
        assert!(matches!(resp.read_body(10), Err(HttpError::BodyTooLarge(10))));
    }

    #[test]
    fn oversized_head_is_refused() {
        let mut reply = b"HTTP/1.1 200 OK\r\n".to_vec();
        while reply.len() < crate::MAX_HEAD_SIZE + 100 {
            reply.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        reply.extend_from_slice(b"\r\n");
        let reply: &'static [u8] = Box::leak(reply.into_boxed_slice());
        assert!(matches!(get(reply), Err(HttpError::HeadTooLarge(_))));
    }

    #[test]
    fn malformed_heads_are_refused() {
        for reply in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200",
        ] {
            let err = get(reply).unwrap_err();
            assert!(matches!(err, HttpError::Malformed(_)), "{:?}: {err}", String::from_utf8_lossy(reply));
        }
    }

    #[test]
    fn interim_continue_is_skipped_and_head_has_no_body() {
        let resp = get(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n").unwrap();
        assert_eq!(resp.status, 204);
        assert_eq!(resp.read_body(10).unwrap(), b"");
    }

    #[test]
    fn upgrade_keeps_buffered_bytes_and_the_stream() {
        let (port, rx) = serve(b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nearly", true);
        let req = Request::new("POST", "/containers/x/attach").header("Connection", "Upgrade").header("Upgrade", "tcp");
        let resp = send(connect(port), "localhost", req).unwrap();
        assert_eq!(resp.status, 101);
        let sent = String::from_utf8(rx.recv().unwrap()).unwrap();
        assert!(sent.contains("Connection: Upgrade\r\n") && !sent.contains("close"), "{sent}");
        let (mut early, mut stream) = resp.into_upgraded();
        // The server's bytes may arrive with the head or just after it.
        while early.len() < 5 {
            let mut b = [0u8; 16];
            let n = stream.read(&mut b).unwrap();
            early.extend_from_slice(&b[..n]);
        }
        assert_eq!(early, b"early");
        stream.write_all(b"ping").unwrap();
        stream.shutdown_write().unwrap();
        let mut echoed = Vec::new();
        stream.read_to_end(&mut echoed).unwrap();
        assert_eq!(echoed, b"ping");
    }

    #[test]
    fn request_framing() {
        let reply: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let cases: Vec<(Request, &str, &[u8])> = vec![
            (Request::new("GET", "/a?b=c"), "GET /a?b=c HTTP/1.1\r\nHost: h:1\r\nConnection: close\r\n\r\n", b""),
            (Request::new("PUT", "/p"), "PUT /p HTTP/1.1\r\nHost: h:1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", b""),
            (
                Request::new("POST", "/j").json(&vec!["a"]),
                "POST /j HTTP/1.1\r\nHost: h:1\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 5\r\n\r\n",
                b"[\"a\"]",
            ),
            (
                Request::new("PUT", "/r").body(Body::Reader(Box::new(&b"abc"[..]), Some(3))),
                "PUT /r HTTP/1.1\r\nHost: h:1\r\nConnection: close\r\nContent-Length: 3\r\n\r\n",
                b"abc",
            ),
            (
                Request::new("POST", "/c").body(Body::Reader(Box::new(&b"abc"[..]), None)),
                "POST /c HTTP/1.1\r\nHost: h:1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"3\r\nabc\r\n0\r\n\r\n",
            ),
        ];
        for (req, head, body) in cases {
            let (port, rx) = serve(reply, false);
            let resp = send(connect(port), "h:1", req).unwrap();
            assert_eq!(resp.status, 200);
            let mut want = head.as_bytes().to_vec();
            want.extend_from_slice(body);
            assert_eq!(String::from_utf8_lossy(&rx.recv().unwrap()), String::from_utf8_lossy(&want));
        }
    }

    #[test]
    fn header_injection_is_refused() {
        let (port, _rx) = serve(b"", false);
        let req = Request::new("GET", "/").header("X", "a\r\nEvil: 1");
        assert!(send(connect(port), "h", req).is_err());
    }

    #[test]
    fn read_timeout_is_reported_as_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = thread::spawn(move || listener.accept().map(|(s, _)| s));
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_millis(100))).unwrap();
        let err = send(Box::new(s), "h", Request::new("GET", "/")).unwrap_err();
        assert!(matches!(err, HttpError::Timeout(_)), "{err}");
        drop(held.join());
    }
}
