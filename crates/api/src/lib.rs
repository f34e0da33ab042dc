//! The Docker Engine API over HTTP/1.1 (on unix sockets, TCP, or TLS over TCP: wharfd
//! listens, [`serve_connection`] serves one connection): the only crate that knows the wire
//! format. Requests become calls on [`wharf_engine::Engine`]; engine errors become Docker's
//! `{"message": ...}` answers with a status from their kind, in one place ([`error`]).

#![recursion_limit = "256"]

mod archive;
mod body;
mod build;
mod containers;
mod copy;
mod decode;
mod disk;
mod drain;
mod error;
mod events;
mod exec;
mod human;
mod images;
mod images_io;
mod lifecycle;
mod networks;
mod query;
mod resources;
mod router;
mod security;
mod stats;
mod swarm;
mod system;
mod transfer;
mod volumes;

use std::convert::Infallible;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;
use wharf_engine::Engine;

pub use drain::{Drain, DrainReport};
pub use router::parse_target;

/// The newest API version wharf speaks, and the oldest it accepts.
pub const API_VERSION: &str = "1.45";
pub const MIN_API_VERSION: &str = "1.24";

/// Serves the API on `listener` until the process ends. Each connection gets its own task.
pub async fn serve(listener: UnixListener, engine: Engine) {
    prepare(&engine);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                log::warn!("api: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(serve_connection(stream, engine.clone(), Drain::new()));
    }
}

/// Serves `metrics-addr` on one connection: `GET /metrics` in Prometheus' text format, 404
/// for anything else.
pub async fn serve_metrics_connection<I>(io: I, engine: Engine)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let engine = engine.clone();
        async move {
            let (status, ctype, text) = if req.method() == hyper::Method::GET && req.uri().path() == "/metrics" {
                let text = tokio::task::spawn_blocking(move || engine.metrics_text()).await.unwrap_or_default();
                (200, "text/plain; version=0.0.4; charset=utf-8", text)
            } else {
                (404, "text/plain; charset=utf-8", "404 page not found\n".to_string())
            };
            let mut resp = hyper::Response::new(body::Body::from_bytes(text));
            *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::NOT_FOUND);
            if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
                resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
            }
            Ok::<_, Infallible>(resp)
        }
    });
    if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(io), service).await {
        log::debug!("metrics: connection: {e}");
    }
}

/// What the API needs done once before its first connection, whatever it listens on.
pub fn prepare(engine: &Engine) {
    build::clear_scratch(engine);
}

/// Serves the API on one connection (a unix or TCP socket, or a TLS session over one) until
/// the client closes it or `drain` starts. When it starts, a request in flight that ends by
/// itself is let finish (then the connection closes); an idle connection, or one serving an
/// open-ended stream, is closed at once.
pub async fn serve_connection<I>(io: I, engine: Engine, drain: Drain)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let _alive = drain.connection();
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let service = {
        let drain = drain.clone();
        let busy = busy.clone();
        service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let engine = engine.clone();
            let guard =
                (!drain::open_ended(req.method(), req.uri().path(), req.uri().query())).then(|| drain.busy(&busy));
            // The hijacked sessions (attach, exec) outlive the request: they watch the drain.
            req.extensions_mut().insert(drain.clone());
            async move {
                let resp = router::route(engine, req).await;
                Ok::<_, Infallible>(resp.map(|body| drain::Tracked { body, guard }))
            }
        })
    };
    let conn = http1::Builder::new().serve_connection(TokioIo::new(io), service).with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = drain.started() => {
            if busy.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return;
            }
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        log::debug!("api: connection: {e}");
    }
}
