//! Decoder of Docker's multiplexed stdout/stderr stream, used by logs and attach when the
//! container has no TTY: each frame is an 8-byte header (stream type, three zero bytes, a
//! big-endian u32 length) followed by that many bytes of payload.

use std::io::{self, Read, Write};

/// Which stream a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Stdin,
    Stdout,
    Stderr,
    /// An error the daemon reports in-band (Docker's `Systemerr`).
    System,
}

/// One frame of the multiplexed stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: StreamKind,
    pub data: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    #[error("reading the multiplexed stream: {0}")]
    Io(#[from] io::Error),
    #[error("multiplexed stream: unexpected end of stream inside a frame header")]
    TruncatedHeader,
    #[error("multiplexed stream: unexpected end of stream inside a frame of {expected} bytes")]
    TruncatedFrame { expected: u32 },
    #[error("multiplexed stream: unknown stream type {0}")]
    UnknownStream(u8),
    #[error("error from daemon in stream: {0}")]
    Daemon(String),
    #[error("writing container output: {0}")]
    Output(io::Error),
}

impl MuxError {
    pub fn kind(&self) -> wharf_types::ErrorKind {
        match self {
            MuxError::Daemon(_) => wharf_types::ErrorKind::Internal,
            MuxError::Output(_) => wharf_types::ErrorKind::Internal,
            _ => wharf_types::ErrorKind::Unavailable,
        }
    }
}

/// Reads frames one at a time from a multiplexed stream.
pub struct Demuxer<R> {
    inner: R,
}

impl<R: Read> Demuxer<R> {
    pub fn new(inner: R) -> Demuxer<R> {
        Demuxer { inner }
    }

    /// The next frame, or `None` at a clean end of stream (between frames).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, MuxError> {
        let mut header = [0u8; 8];
        let mut got = 0;
        while got < header.len() {
            match self.inner.read(&mut header[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(MuxError::TruncatedHeader),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(MuxError::Io(e)),
            }
        }
        let kind = match header[0] {
            0 => StreamKind::Stdin,
            1 => StreamKind::Stdout,
            2 => StreamKind::Stderr,
            3 => StreamKind::System,
            other => return Err(MuxError::UnknownStream(other)),
        };
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        // Grow the buffer as bytes arrive rather than trusting the length up front.
        let mut data = Vec::with_capacity((len as usize).min(64 * 1024));
        (&mut self.inner).take(u64::from(len)).read_to_end(&mut data)?;
        if data.len() != len as usize {
            return Err(MuxError::TruncatedFrame { expected: len });
        }
        Ok(Some(Frame { kind, data }))
    }

    /// Copies every frame to `stdout` or `stderr` until the end of the stream, flushing after
    /// each frame so interleaving stays close to what the container wrote.
    pub fn copy_to(&mut self, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Result<(), MuxError> {
        while let Some(frame) = self.next_frame()? {
            let out: &mut dyn Write = match frame.kind {
                StreamKind::Stdout | StreamKind::Stdin => &mut *stdout,
                StreamKind::Stderr => &mut *stderr,
                StreamKind::System => {
                    return Err(MuxError::Daemon(String::from_utf8_lossy(&frame.data).trim_end().to_string()))
                }
            };
            out.write_all(&frame.data).map_err(MuxError::Output)?;
            out.flush().map_err(MuxError::Output)?;
        }
        Ok(())
    }
}

/// Copies a raw (TTY) stream to `out` until its end, flushing as data arrives.
pub fn copy_raw(mut input: impl Read, out: &mut dyn Write) -> Result<(), MuxError> {
    let mut buf = [0u8; 32 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(MuxError::Io(e)),
        };
        out.write_all(&buf[..n]).map_err(MuxError::Output)?;
        out.flush().map_err(MuxError::Output)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![kind, 0, 0, 0];
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    /// Input, the frames expected, and a fragment of the error when the stream ends badly.
    type Case = (Vec<u8>, Vec<(StreamKind, &'static [u8])>, Option<&'static str>);

    #[test]
    fn decodes_frames_table() {
        let cases: Vec<Case> = vec![
            (vec![], vec![], None),
            (frame(1, b"hello\n"), vec![(StreamKind::Stdout, b"hello\n")], None),
            (
                [frame(1, b"out"), frame(2, b"err"), frame(1, b"")].concat(),
                vec![(StreamKind::Stdout, b"out"), (StreamKind::Stderr, b"err"), (StreamKind::Stdout, b"")],
                None,
            ),
            (frame(3, b"boom"), vec![(StreamKind::System, b"boom")], None),
            (frame(0, b"in"), vec![(StreamKind::Stdin, b"in")], None),
            (vec![1, 0, 0], vec![], Some("frame header")),
            (
                [frame(1, b"a"), vec![1, 0, 0, 0, 0, 0, 0, 5, b'x']].concat(),
                vec![(StreamKind::Stdout, b"a")],
                Some("frame of 5 bytes"),
            ),
            (frame(7, b"x"), vec![], Some("unknown stream type 7")),
        ];
        for (input, want, want_err) in cases {
            let mut d = Demuxer::new(&input[..]);
            let mut got = Vec::new();
            let err = loop {
                match d.next_frame() {
                    Ok(Some(f)) => got.push(f),
                    Ok(None) => break None,
                    Err(e) => break Some(e.to_string()),
                }
            };
            let want: Vec<Frame> = want.into_iter().map(|(kind, d)| Frame { kind, data: d.to_vec() }).collect();
            assert_eq!(got, want, "input {input:?}");
            match (err, want_err) {
                (None, None) => {}
                (Some(e), Some(w)) => assert!(e.contains(w), "error {e:?} should contain {w:?}"),
                (e, w) => panic!("input {input:?}: error {e:?}, wanted {w:?}"),
            }
        }
    }

    #[test]
    fn copies_to_the_right_stream() {
        let input = [frame(1, b"one\n"), frame(2, b"two\n"), frame(1, b"three\n")].concat();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        Demuxer::new(&input[..]).copy_to(&mut out, &mut err).unwrap();
        assert_eq!(out, b"one\nthree\n");
        assert_eq!(err, b"two\n");

        let input = [frame(1, b"x"), frame(3, b"container gone\n")].concat();
        let e = Demuxer::new(&input[..]).copy_to(&mut Vec::new(), &mut Vec::new()).unwrap_err();
        assert_eq!(e.to_string(), "error from daemon in stream: container gone");
    }
}
