//! Response bodies: a whole buffer (JSON, manifests) or a stream fed by a blocking reader
//! through a small channel, so a blob is never held whole in memory. A stream that ends with
//! an error makes hyper abort the connection: that is how a read that fails its digest check
//! keeps its last bytes from the client.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;

pub enum Body {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<io::Result<Bytes>>),
}

impl Body {
    pub fn empty() -> Body {
        Body::Full(None)
    }

    pub fn from_bytes(b: impl Into<Bytes>) -> Body {
        let b = b.into();
        if b.is_empty() {
            Body::Full(None)
        } else {
            Body::Full(Some(b))
        }
    }

    /// A streaming body and the sender that feeds it; dropping the sender ends the body.
    pub fn channel() -> (mpsc::Sender<io::Result<Bytes>>, Body) {
        let (tx, rx) = mpsc::channel(8);
        (tx, Body::Stream(rx))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Body::Full(None) => SizeHint::with_exact(0),
            Body::Stream(_) => SizeHint::default(),
        }
    }
}
