//! Gzip on every core: the stream is cut into chunks, each compressed on a thread of its own as
//! a gzip member of its own, and the members written in order. A file of several members is
//! ordinary gzip (RFC 1952), read by Go's, Python's and flate2's multi-member readers, so a
//! layer made this way pulls everywhere; building is no longer held to one core's deflate speed.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::thread::JoinHandle;

/// How much each member holds: large enough that cutting the dictionary costs nothing
/// measurable in size, small enough to keep every core busy on a layer of a few megabytes.
const CHUNK: usize = 1 << 20;

pub(crate) struct ParallelGz<W: Write> {
    out: W,
    buf: Vec<u8>,
    in_flight: VecDeque<JoinHandle<io::Result<Vec<u8>>>>,
    threads: usize,
    /// Whether any member was written (an empty stream still gets one, empty).
    wrote: bool,
}

impl<W: Write> ParallelGz<W> {
    pub(crate) fn new(out: W) -> ParallelGz<W> {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).max(1);
        ParallelGz { out, buf: Vec::with_capacity(CHUNK), in_flight: VecDeque::new(), threads, wrote: false }
    }

    fn spawn(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        // Keep at most one chunk per core in flight (and waiting chunks bounded in memory).
        while self.in_flight.len() >= self.threads {
            self.write_oldest()?;
        }
        self.in_flight.push_back(std::thread::spawn(move || {
            let mut gz =
                flate2::write::GzEncoder::new(Vec::with_capacity(chunk.len() / 2), flate2::Compression::fast());
            gz.write_all(&chunk)?;
            gz.finish()
        }));
        self.wrote = true;
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(h) = self.in_flight.pop_front() {
            let member = h.join().map_err(|_| io::Error::other("gzip worker panicked"))??;
            self.out.write_all(&member)?;
        }
        Ok(())
    }

    /// Compresses what is left, writes every member in order, and returns the writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        if !self.buf.is_empty() || !self.wrote {
            self.spawn()?;
        }
        while !self.in_flight.is_empty() {
            self.write_oldest()?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGz<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.spawn()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn members_read_back_as_one_stream() {
        for len in [0usize, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12345] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let mut gz = ParallelGz::new(Vec::new());
            gz.write_all(&data).unwrap();
            let packed = gz.finish().unwrap();
            let mut back = Vec::new();
            flate2::read::MultiGzDecoder::new(&packed[..]).read_to_end(&mut back).unwrap();
            assert_eq!(back, data, "length {len}");
        }
    }
}
