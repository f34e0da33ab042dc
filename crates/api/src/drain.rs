//! Graceful stop: when wharfd is told to stop, every connection stops taking requests, the
//! requests in flight are let finish, and open-ended streams (events, `logs -f`, stats,
//! wait, attach, exec) end at once, since they never finish by themselves.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{watch, Notify};

use crate::body::Body;

/// Shared by the listeners and every connection they serve; cloning shares it.
#[derive(Clone)]
pub struct Drain {
    inner: Arc<Inner>,
}

struct Inner {
    started: watch::Sender<bool>,
    /// Connections alive, and of those the ones serving a request that ends by itself.
    connections: AtomicUsize,
    busy: AtomicUsize,
    gone: Notify,
}

/// What a drain saw: requests in flight when it began, and how many of them finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    pub waited: usize,
    pub finished: usize,
}

impl Default for Drain {
    fn default() -> Self {
        Drain::new()
    }
}

impl Drain {
    pub fn new() -> Drain {
        Drain {
            inner: Arc::new(Inner {
                started: watch::Sender::new(false),
                connections: AtomicUsize::new(0),
                busy: AtomicUsize::new(0),
                gone: Notify::new(),
            }),
        }
    }

    /// Tells every connection and stream to stop; returns the requests in flight then.
    pub fn start(&self) -> usize {
        let busy = self.inner.busy.load(Ordering::SeqCst);
        self.inner.started.send_replace(true);
        busy
    }

    pub fn is_started(&self) -> bool {
        *self.inner.started.borrow()
    }

    /// Resolves once [`Drain::start`] was called (at once if it already was).
    pub async fn started(&self) {
        let mut rx = self.inner.started.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Resolves when no connection is left.
    pub async fn finished(&self) {
        loop {
            let gone = self.inner.gone.notified();
            if self.inner.connections.load(Ordering::SeqCst) == 0 {
                return;
            }
            gone.await;
        }
    }

    /// Connections still alive: after a drain's timeout, the requests it cut.
    pub fn remaining(&self) -> usize {
        self.inner.busy.load(Ordering::SeqCst)
    }

    pub(crate) fn connection(&self) -> ConnectionGuard {
        self.inner.connections.fetch_add(1, Ordering::SeqCst);
        ConnectionGuard { drain: self.clone() }
    }

    /// Counts a request that ends by itself, here and on its connection's `busy`.
    pub(crate) fn busy(&self, connection: &Arc<AtomicUsize>) -> BusyGuard {
        self.inner.busy.fetch_add(1, Ordering::SeqCst);
        connection.fetch_add(1, Ordering::SeqCst);
        BusyGuard { drain: self.clone(), connection: connection.clone() }
    }
}

/// Held by a connection's task while it lives.
pub(crate) struct ConnectionGuard {
    drain: Drain,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.drain.inner.connections.fetch_sub(1, Ordering::SeqCst);
        self.drain.inner.gone.notify_waiters();
    }
}

/// Held while a connection serves a request that ends by itself (to the end of its body).
pub(crate) struct BusyGuard {
    drain: Drain,
    connection: Arc<AtomicUsize>,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.connection.fetch_sub(1, Ordering::SeqCst);
        self.drain.inner.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that holds its request's [`BusyGuard`] (if any) until it is sent or dropped.
pub(crate) struct Tracked {
    pub body: Body,
    pub guard: Option<BusyGuard>,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        if let std::task::Poll::Ready(None) = polled {
            self.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Whether a request opens a stream that lasts until the client or the container ends it:
/// such a request does not hold a drain, it is ended when the drain starts.
pub(crate) fn open_ended(method: &hyper::Method, path: &str, query: Option<&str>) -> bool {
    use hyper::Method;
    let path = crate::router::unversioned(path);
    let q = crate::query::Query::parse(query);
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match (method, segs.as_slice()) {
        (&Method::GET, ["events"]) => true,
        (&Method::GET, ["containers", _, "logs"]) => q.bool("follow"),
        (&Method::GET, ["containers", _, "stats"]) => {
            q.get("stream").is_none_or(|v| v == "1" || v.eq_ignore_ascii_case("true"))
        }
        (&Method::POST, ["containers", _, "wait" | "attach"]) => true,
        (&Method::GET, ["containers", _, "attach", "ws"]) => true,
        (&Method::POST, ["exec", _, "start"]) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_ended_requests() {
        use hyper::Method;
        let t = |m: &Method, p: &str, q: Option<&str>| open_ended(m, p, q);
        assert!(t(&Method::GET, "/v1.45/events", None));
        assert!(t(&Method::GET, "/containers/c1/logs", Some("follow=1&stdout=1")));
        assert!(!t(&Method::GET, "/containers/c1/logs", Some("stdout=1")));
        assert!(t(&Method::GET, "/containers/c1/stats", None));
        assert!(!t(&Method::GET, "/containers/c1/stats", Some("stream=false")));
        assert!(t(&Method::POST, "/v1.41/containers/c1/wait", None));
        assert!(t(&Method::POST, "/containers/c1/attach", Some("stream=1")));
        assert!(t(&Method::POST, "/exec/e1/start", None));
        assert!(!t(&Method::POST, "/build", Some("t=x")));
        assert!(!t(&Method::POST, "/images/create", Some("fromImage=busybox")));
        assert!(!t(&Method::POST, "/containers/create", None));
    }

    #[tokio::test]
    async fn finished_when_the_last_connection_goes() {
        let d = Drain::new();
        let c = d.connection();
        let on_connection = Arc::new(AtomicUsize::new(0));
        let b = d.busy(&on_connection);
        assert_eq!(d.start(), 1);
        assert!(d.is_started());
        d.started().await;
        let waiter = tokio::spawn({
            let d = d.clone();
            async move { d.finished().await }
        });
        drop(b);
        assert_eq!(d.remaining(), 0);
        assert_eq!(on_connection.load(Ordering::SeqCst), 0);
        drop(c);
        waiter.await.unwrap();
    }
}
