//! The container's output as Docker's json-file log: one JSON object per line, split on
//! newlines, long lines cut at 16 KiB, each entry written (and so visible to readers) at once.
//! With a size limit the file rotates as Docker's does: `<id>-json.log` → `.1` → `.2` …, the
//! oldest beyond `max-file` dropped, so a container's log never grows without bound.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
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
    path: PathBuf,
    /// Bytes in the live file.
    size: u64,
    /// 0 = no limit.
    max_size: u64,
    /// Files kept, the live one included.
    max_file: u32,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().append(true).create(true).mode(0o640).open(path)
}

impl JsonLog {
    pub fn open(path: &Path, max_size: u64, max_file: u32) -> std::io::Result<JsonLog> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(JsonLog { file, path: path.to_path_buf(), size, max_size, max_file: max_file.max(1) })
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    /// Shifts the rotated files up by one and starts a new live file. With one file only, the
    /// live file is emptied instead; readers see the size drop and start over.
    fn rotate(&mut self) -> std::io::Result<()> {
        if self.max_file <= 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let _ = std::fs::remove_file(self.rotated(self.max_file - 1));
        for n in (1..self.max_file - 1).rev() {
            let from = self.rotated(n);
            if from.exists() {
                std::fs::rename(&from, self.rotated(n + 1))?;
            }
        }
        std::fs::rename(&self.path, self.rotated(1))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }

    fn write_entry(&mut self, stream: &str, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let entry = Entry { log: &text, stream, time: wharf_types::time::rfc3339_nanos(SystemTime::now()) };
        let Ok(mut line) = serde_json::to_vec(&entry) else {
            return;
        };
        line.push(b'\n');
        if self.max_size > 0 && self.size > 0 && self.size + line.len() as u64 > self.max_size {
            // A failed rotation keeps writing to the current file rather than losing output.
            let _ = self.rotate();
        }
        // One write per entry keeps entries whole for readers following the file; a full disk
        // must not kill the container's monitor, so the error is dropped.
        if self.file.write_all(&line).is_ok() {
            self.size += line.len() as u64;
        }
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
        let mut log = JsonLog::open(&path, 0, 1).unwrap();
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

    #[test]
    fn rotates_and_keeps_max_file() {
        let dir = std::env::temp_dir().join(format!("wharf-shim-rot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c-json.log");
        let mut log = JsonLog::open(&path, 300, 3).unwrap();
        let mut out = LineBuffer::new("stdout");
        for i in 0..40 {
            out.push(format!("line {i:03}\n").as_bytes(), &mut log);
        }
        let mut names: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, ["c-json.log", "c-json.log.1", "c-json.log.2"]);
        let mut all = Vec::new();
        for name in ["c-json.log.2", "c-json.log.1", "c-json.log"] {
            let p = dir.join(name);
            assert!(std::fs::metadata(&p).unwrap().len() <= 300);
            all.extend(entries(&p).into_iter().map(|(l, _)| l));
        }
        // Oldest first, contiguous, ending with the last line written.
        assert_eq!(all.last().unwrap(), "line 039\n");
        let first: usize = all[0].strip_prefix("line ").unwrap().trim_end().parse().unwrap();
        let want: Vec<String> = (first..40).map(|i| format!("line {i:03}\n")).collect();
        assert_eq!(all, want);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn one_file_is_truncated() {
        let path = std::env::temp_dir().join(format!("wharf-shim-trunc-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut log = JsonLog::open(&path, 200, 1).unwrap();
        let mut out = LineBuffer::new("stdout");
        for i in 0..20 {
            out.push(format!("line {i:03}\n").as_bytes(), &mut log);
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= 200);
        assert_eq!(entries(&path).last().unwrap().0, "line 019\n");
        std::fs::remove_file(&path).unwrap();
    }
}
