//! The container's output as Docker's json-file log: one JSON object per line, split on
//! newlines, long lines cut at 16 KiB, each entry written (and so visible to readers) at once.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

/// Docker cuts log messages at this size too.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Serialize)]
struct Entry<'a> {
    log: &'a str,
    stream: &'a str,
    time: String,
}

/// The log file of one container.
pub struct JsonLog {
    file: File,
}

impl JsonLog {
    pub fn open(path: &Path) -> std::io::Result<JsonLog> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new().append(true).create(true).mode(0o640).open(path)?;
        Ok(JsonLog { file })
    }

    fn write_entry(&mut self, stream: &str, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let entry = Entry { log: &text, stream, time: wharf_types::time::rfc3339_nanos(SystemTime::now()) };
        let Ok(mut line) = serde_json::to_vec(&entry) else {
            return;
        };
        line.push(b'\n');
        // One write per entry keeps entries whole for readers following the file; a full disk
        // must not kill the container's monitor, so the error is dropped.
        let _ = self.file.write_all(&line);
    }
}

/// Bytes of one stream not yet written because their line is not complete.
pub struct LineBuffer {
    pub stream: &'static str,
    buf: Vec<u8>,
}

impl LineBuffer {
    pub fn new(stream: &'static str) -> LineBuffer {
        LineBuffer { stream, buf: Vec::new() }
    }

    /// Adds bytes read from the pipe and writes every complete line.
    pub fn push(&mut self, data: &[u8], log: &mut JsonLog) {
        self.buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos + 1;
            // A line longer than the limit goes out in pieces of MAX_LINE.
            while end - start > MAX_LINE {
                log.write_entry(self.stream, &self.buf[start..start + MAX_LINE]);
                start += MAX_LINE;
            }
            log.write_entry(self.stream, &self.buf[start..end]);
            start = end;
        }
        while self.buf.len() - start >= MAX_LINE {
            log.write_entry(self.stream, &self.buf[start..start + MAX_LINE]);
            start += MAX_LINE;
        }
        self.buf.drain(..start);
    }

    /// Writes what is left when the pipe closes.
    pub fn flush(&mut self, log: &mut JsonLog) {
        if !self.buf.is_empty() {
            log.write_entry(self.stream, &self.buf);
            self.buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(path: &Path) -> Vec<(String, String)> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert!(v["time"].as_str().unwrap().ends_with('Z'));
                (v["log"].as_str().unwrap().to_string(), v["stream"].as_str().unwrap().to_string())
            })
            .collect()
    }

    #[test]
    fn splits_lines_and_partials() {
        let path = std::env::temp_dir().join(format!("wharf-shim-log-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut log = JsonLog::open(&path).unwrap();
        let mut out = LineBuffer::new("stdout");
        let mut err = LineBuffer::new("stderr");
        out.push(b"hello\nwor", &mut log);
        err.push(b"oops\n", &mut log);
        out.push(b"ld\n\nlast", &mut log);
        let long = vec![b'x'; MAX_LINE + 10];
        err.push(&long, &mut log);
        err.push(b"\n", &mut log);
        out.flush(&mut log);
        err.flush(&mut log);
        let got = entries(&path);
        let want: Vec<(String, String)> = vec![
            ("hello\n".into(), "stdout".into()),
            ("oops\n".into(), "stderr".into()),
            ("world\n".into(), "stdout".into()),
            ("\n".into(), "stdout".into()),
            ("x".repeat(MAX_LINE), "stderr".into()),
            (format!("{}\n", "x".repeat(10)), "stderr".into()),
            ("last".into(), "stdout".into()),
        ];
        assert_eq!(got, want);
        std::fs::remove_file(&path).unwrap();
    }
}
