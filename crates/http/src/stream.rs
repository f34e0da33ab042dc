//! The byte streams a request can travel on: unix sockets, TCP, and TLS over TCP.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::HttpError;

/// A bidirectional byte stream. `shutdown_write` half-closes it, so a peer that reads until
/// end-of-file (Docker's hijacked attach stdin) sees the end while we keep reading.
pub trait Stream: Read + Write + Send {
    fn shutdown_write(&self) -> io::Result<()>;

    /// A second handle on the same connection, so one thread can read while another writes
    /// (an interactive attach).
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

/// A TLS client session over TCP, shareable between a reading and a writing thread (an
/// interactive attach over a TLS API): the session is behind a lock that is never held while
/// waiting on the socket, so a reader blocked for the container's output does not hold up
/// the writes of its input.
pub(crate) struct TlsStream {
    session: Arc<Mutex<rustls::ClientConnection>>,
    sock: TcpStream,
    /// This handle's buffer for bytes off the socket, before the session decrypts them.
    raw: Box<[u8]>,
}

/// The most a TLS record carries, with its overhead.
const RECORD: usize = 16 * 1024 + 256;

impl TlsStream {
    /// Takes a session whose handshake is done.
    pub(crate) fn new(session: rustls::ClientConnection, sock: TcpStream) -> TlsStream {
        TlsStream { session: Arc::new(Mutex::new(session)), sock, raw: vec![0; RECORD].into_boxed_slice() }
    }

    fn session(&self) -> std::sync::MutexGuard<'_, rustls::ClientConnection> {
        match self.session.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Sends what the session has to send (records, alerts, key updates).
    fn send_pending(&self, c: &mut rustls::ClientConnection) -> io::Result<()> {
        while c.wants_write() {
            c.write_tls(&mut &self.sock)?;
        }
        Ok(())
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            {
                let mut c = self.session();
                match c.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    // Many servers close without close_notify once the body is framed; for a
                    // body read until close that is the end, and the framing layer notices
                    // short bodies.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                self.send_pending(&mut c)?;
            }
            // Without the lock: the writer goes on meanwhile.
            let n = (&self.sock).read(&mut self.raw)?;
            let mut c = self.session();
            let mut fed = &self.raw[..n];
            loop {
                // At end of file (n == 0) this tells the session so; the reader then answers.
                c.read_tls(&mut fed)?;
                c.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                if fed.is_empty() {
                    break;
                }
            }
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut c = self.session();
        let n = c.writer().write(buf)?;
        self.send_pending(&mut c)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut c = self.session();
        c.writer().flush()?;
        self.send_pending(&mut c)
    }
}

impl Stream for TlsStream {
    fn shutdown_write(&self) -> io::Result<()> {
        // A close_notify would end the whole session for some servers; half-closing TCP is
        // what the peer acts on.
        self.sock.shutdown(Shutdown::Write)
    }

    fn try_clone_stream(&self) -> io::Result<Box<dyn Stream>> {
        Ok(Box::new(TlsStream {
            session: self.session.clone(),
            sock: self.sock.try_clone()?,
            raw: vec![0; RECORD].into_boxed_slice(),
        }))
    }

    fn idle_and_open(&self) -> bool {
        // A close_notify or a late session ticket also makes the socket readable: such a
        // connection is not reused, which costs a handshake, never a failed request.
        nothing_to_read(&self.sock)
    }
}

/// Connects to a unix socket, such as the daemon's `/run/wharf/wharfd.sock`.
pub fn connect_unix(path: &Path) -> Result<Box<dyn Stream>, HttpError> {
    let s =
        UnixStream::connect(path).map_err(|source| HttpError::Connect { addr: path.display().to_string(), source })?;
    Ok(Box::new(s))
}
