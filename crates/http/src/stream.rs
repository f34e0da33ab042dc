//! The byte streams a request can travel on: unix sockets, TCP, and TLS over TCP.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::HttpError;

/// A bidirectional byte stream. `shutdown_write` half-closes it, so a peer that reads until
/// end-of-file (Docker's hijacked attach stdin) sees the end while we keep reading.
pub trait Stream: Read + Write + Send {
    fn shutdown_write(&self) -> io::Result<()>;

    /// A second handle on the same connection, so one thread can read while another writes
    /// (an interactive attach); streams with session state (TLS) cannot be shared.
    fn try_clone_stream(&self) -> io::Result<Box<dyn Stream>> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "this stream cannot be shared between threads"))
    }

    /// For an idle keep-alive connection: whether the peer has neither closed it nor sent
    /// anything unasked, so a new request may go on it. Streams that are never pooled say no.
    fn idle_and_open(&self) -> bool {
        false
    }
}

/// Whether nothing is waiting to be read on an idle socket (a read would block): not closed
/// by the peer (that reads as end of file) and no stray bytes.
fn nothing_to_read(s: &TcpStream) -> bool {
    if s.set_nonblocking(true).is_err() {
        return false;
    }
    let mut b = [0u8; 1];
    let quiet = matches!(s.peek(&mut b), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    s.set_nonblocking(false).is_ok() && quiet
}

impl Stream for UnixStream {
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    fn try_clone_stream(&self) -> io::Result<Box<dyn Stream>> {
        Ok(Box::new(self.try_clone()?))
    }
}

impl Stream for TcpStream {
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    fn idle_and_open(&self) -> bool {
        nothing_to_read(self)
    }

    fn try_clone_stream(&self) -> io::Result<Box<dyn Stream>> {
        Ok(Box::new(self.try_clone()?))
    }
}

/// A TLS client session over TCP.
pub(crate) struct TlsStream(pub(crate) rustls::StreamOwned<rustls::ClientConnection, TcpStream>);

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buf) {
            // Many servers close without close_notify once the body is framed; for a body read
            // until close that is the end, and the framing layer notices short bodies.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
            other => other,
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Stream for TlsStream {
    fn shutdown_write(&self) -> io::Result<()> {
        // Sending close_notify needs `&mut`; half-closing TCP is what the peer acts on anyway.
        self.0.sock.shutdown(Shutdown::Write)
    }

    fn idle_and_open(&self) -> bool {
        // A close_notify or a late session ticket also makes the socket readable: such a
        // connection is not reused, which costs a handshake, never a failed request.
        nothing_to_read(&self.0.sock)
    }
}

/// Connects to a unix socket, such as the daemon's `/run/wharf/wharfd.sock`.
pub fn connect_unix(path: &Path) -> Result<Box<dyn Stream>, HttpError> {
    let s =
        UnixStream::connect(path).map_err(|source| HttpError::Connect { addr: path.display().to_string(), source })?;
    Ok(Box::new(s))
}
