//! gRPC over HTTP/2 on a unix socket, as much of it as the CRI needs: unary calls and one
//! server stream (GetContainerEvents), no compression. A request is `POST /<package>.<Service>/<Method>` with `content-type:
//! application/grpc` and a body of one length-prefixed message (1 byte "compressed" flag,
//! 4 bytes big-endian length, the protobuf bytes). The answer is the same framing followed by
//! the `grpc-status` trailer, or, for an error, a "trailers-only" answer: `grpc-status` and
//! `grpc-message` in the headers and no body, which every gRPC client reads as the status.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use tokio::net::UnixListener;
use tokio::sync::mpsc;

use crate::Cri;

/// The largest request message accepted: kubelet's own limit for CRI messages (16 MiB).
pub const MAX_MESSAGE: usize = 16 << 20;

/// gRPC status codes (`google.rpc.Code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Ok = 0,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    FailedPrecondition = 9,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
}

/// A failed call: its code and the message the client shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub message: String,
}

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status { code, message: message.into() }
    }
    pub fn invalid(message: impl Into<String>) -> Status {
        Status::new(Code::InvalidArgument, message)
    }
    pub fn not_found(message: impl Into<String>) -> Status {
        Status::new(Code::NotFound, message)
    }
    pub fn internal(message: impl Into<String>) -> Status {
        Status::new(Code::Internal, message)
    }
    pub fn precondition(message: impl Into<String>) -> Status {
        Status::new(Code::FailedPrecondition, message)
    }
}

/// The one table from the engine's error kinds to gRPC codes, as containerd's `errdefs.ToGRPC`
/// maps its own (a name already taken is decided by the caller: `AlreadyExists`).
impl From<wharf_engine::EngineError> for Status {
    fn from(e: wharf_engine::EngineError) -> Status {
        use wharf_types::ErrorKind as K;
        let code = match e.kind() {
            K::NotFound => Code::NotFound,
            K::Conflict | K::NotModified => Code::FailedPrecondition,
            K::InvalidArgument => Code::InvalidArgument,
            K::Unauthorized | K::Forbidden => Code::PermissionDenied,
            K::Unavailable => Code::Unavailable,
            K::NotImplemented => Code::Unimplemented,
            _ => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}

/// `grpc-message` is percent-encoded: printable ASCII but `%` stays, everything else is `%XX`.
pub fn encode_message(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A length-prefixed, uncompressed message.
pub fn frame(msg: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(msg.len() + 5);
    out.push(0);
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    Bytes::from(out)
}

/// The one message of a unary request body.
pub fn unframe(body: &[u8]) -> Result<&[u8], Status> {
    let Some((head, rest)) = body.split_first_chunk::<5>() else {
        return Err(Status::invalid(format!("request body of {} bytes holds no gRPC message", body.len())));
    };
    if head[0] != 0 {
        return Err(Status::new(Code::Unimplemented, "compressed gRPC messages are not supported"));
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len != rest.len() {
        return Err(Status::invalid(format!(
            "request body has {} bytes after the prefix, the prefix says {len}: a unary call carries one message",
            rest.len()
        )));
    }
    Ok(rest)
}

/// What a method answers: one message (or a status), or a stream of messages that ends with
/// a status (the channel closing is `OK`).
pub enum Reply {
    Unary(Result<Vec<u8>, Status>),
    Stream(mpsc::Receiver<Result<Vec<u8>, Status>>),
}

/// A response body: at most one data frame, or the frames of a stream, then the trailers
/// (none for trailers-only).
pub struct GrpcBody {
    data: Option<Bytes>,
    stream: Option<mpsc::Receiver<Result<Vec<u8>, Status>>>,
    trailers: Option<HeaderMap>,
}

fn trailers_of(status: &Status) -> HeaderMap {
    let mut h = HeaderMap::new();
    status_headers(&mut h, status);
    h
}

impl Body for GrpcBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(d) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        if let Some(rx) = self.stream.as_mut() {
            match rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(msg))) => return Poll::Ready(Some(Ok(Frame::data(frame(&msg))))),
                Poll::Ready(Some(Err(s))) => {
                    self.stream = None;
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers_of(&s)))));
                }
                Poll::Ready(None) => {
                    self.stream = None;
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers_of(&Status::new(Code::Ok, ""))))));
                }
            }
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.stream.is_none() && self.trailers.is_none()
    }
}

fn status_headers(h: &mut HeaderMap, status: &Status) {
    h.insert("grpc-status", HeaderValue::from(status.code as i32));
    if status.message.is_empty() {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(&encode_message(&status.message)) {
        h.insert("grpc-message", v);
    }
}

fn response(reply: Reply) -> Response<GrpcBody> {
    let (body, head_status) = match reply {
        Reply::Unary(Ok(msg)) => {
            let trailers = trailers_of(&Status::new(Code::Ok, ""));
            (GrpcBody { data: Some(frame(&msg)), stream: None, trailers: Some(trailers) }, None)
        }
        Reply::Unary(Err(s)) => (GrpcBody { data: None, stream: None, trailers: None }, Some(s)),
        Reply::Stream(rx) => (GrpcBody { data: None, stream: Some(rx), trailers: None }, None),
    };
    let mut resp = Response::new(body);
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    if let Some(s) = head_status {
        status_headers(resp.headers_mut(), &s);
    }
    resp
}

fn plain(status: StatusCode) -> Response<GrpcBody> {
    let mut r = Response::new(GrpcBody { data: None, stream: None, trailers: None });
    *r.status_mut() = status;
    r
}

/// One HTTP/2 request: checks it is a gRPC call, reads its one message (bounded) and
/// dispatches it by path.
async fn handle(cri: Arc<Cri>, req: Request<Incoming>) -> Result<Response<GrpcBody>, Infallible> {
    if req.method() != http::Method::POST {
        return Ok(plain(StatusCode::METHOD_NOT_ALLOWED));
    }
    let grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t == "application/grpc" || t.starts_with("application/grpc+proto"));
    if !grpc {
        return Ok(plain(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }
    let path = req.uri().path().to_string();
    let limited = http_body_util::Limited::new(req.into_body(), MAX_MESSAGE + 5);
    let body = match limited.collect().await {
        Ok(b) => b.aggregate(),
        Err(e) => {
            return Ok(response(Reply::Unary(Err(Status::new(
                Code::InvalidArgument,
                format!("read request body: {e} (at most {MAX_MESSAGE} bytes)"),
            )))))
        }
    };
    let bytes = body.chunk().to_vec();
    let reply = match unframe(&bytes) {
        Ok(msg) => crate::dispatch::call(&cri, &path, msg).await,
        Err(s) => Reply::Unary(Err(s)),
    };
    if let Reply::Unary(Err(s)) = &reply {
        log::debug!("cri {path}: {:?} {}", s.code, s.message);
    }
    Ok(response(reply))
}

/// Serves gRPC on `listener` until the task is dropped; each connection on its own task.
pub async fn serve(listener: UnixListener, cri: Arc<Cri>) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                log::warn!("cri socket: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let cri = cri.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(cri.clone(), req));
            let conn = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                log::debug!("cri connection: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_prefixes_are_refused() {
        let f = frame(b"abc");
        assert_eq!(&f[..], b"\0\0\0\0\x03abc");
        assert_eq!(unframe(&f).unwrap(), b"abc");
        assert_eq!(unframe(b"\0\0\0").unwrap_err().code, Code::InvalidArgument);
        assert_eq!(unframe(b"\x01\0\0\0\0").unwrap_err().code, Code::Unimplemented);
        assert_eq!(unframe(b"\0\0\0\0\x05ab").unwrap_err().code, Code::InvalidArgument);
        assert_eq!(unframe(b"\0\0\0\0\0").unwrap(), b"");
    }

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(encode_message("not found: \"x\""), "not found: \"x\"");
        assert_eq!(encode_message("100%\n"), "100%25%0A");
        assert_eq!(encode_message("é"), "%C3%A9");
    }
}
