//! Container logs in the CRI format at the path kubelet gives: one line per entry,
//! `<RFC 3339 time> <stdout|stderr> <F|P> <text>`, `P` for a part of a longer line (the shim
//! cuts lines at 16 KiB) and `F` for the end of one. The shim keeps writing the engine's
//! json-file log, which `docker logs` reads; a copier task per running container follows it
//! into the CRI file. ReopenContainerLog swaps the file (kubelet rotated it by renaming); when
//! wharfd starts again, the copier resumes after the newest entry the CRI file (or, after a
//! rotation, the mark left by the last reopen) already has.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use wharf_engine::{Engine, LogChunk, LogOptions, LogStream};

use crate::grpc::Status;

/// Where a copier writes, and the time of the newest entry written.
#[derive(Default)]
struct Sink {
    file: Option<File>,
    last: String,
}

struct Entry {
    sink: Arc<Mutex<Sink>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Default)]
pub struct LogCopiers {
    map: Mutex<HashMap<String, Entry>>,
}

fn open_log(path: &Path) -> Result<File, Status> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Status::invalid(format!("open container log {}: {e}", path.display())))
}

/// The CRI lines of one chunk of output.
pub fn format_chunk(c: &LogChunk) -> Vec<u8> {
    let stream = if c.stream == LogStream::Stderr { "stderr" } else { "stdout" };
    let mut out = Vec::with_capacity(c.data.len() + 48);
    let mut rest: &[u8] = &c.data;
    while !rest.is_empty() {
        let (line, tag, next) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (rest.get(..i).unwrap_or_default(), "F", rest.get(i + 1..).unwrap_or_default()),
            None => (rest, "P", &[][..]),
        };
        out.extend_from_slice(format!("{} {stream} {tag} ", c.time).as_bytes());
        out.extend_from_slice(line);
        out.push(b'\n');
        rest = next;
    }
    out
}

/// The time stamp of the last complete line of a CRI log file, if any.
fn last_time(path: &Path) -> Option<String> {
    let mut f = File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let from = len.saturating_sub(64 << 10);
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let complete = text.strip_suffix('\n')?;
    let line = complete.rsplit('\n').next()?;
    line.split(' ').next().filter(|t| !t.is_empty()).map(str::to_string)
}

pub fn mark_path(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join("logs").join(format!("{id}.mark"))
}

/// The newer of two RFC 3339 time stamps as the shim writes them (UTC, fixed width): they
/// compare as text.
fn newer(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if a >= b { a } else { b }),
        (a, b) => a.or(b),
    }
}

impl LogCopiers {
    /// Opens (creates) the CRI log of a container about to start.
    pub fn open(&self, id: &str, path: &Path) -> Result<(), Status> {
        let file = open_log(path)?;
        let sink = Arc::new(Mutex::new(Sink { file: Some(file), last: String::new() }));
        if let Ok(mut m) = self.map.lock() {
            if let Some(old) = m.insert(id.to_string(), Entry { sink, task: None }) {
                if let Some(t) = old.task {
                    t.abort();
                }
            }
        }
        Ok(())
    }

    /// Starts copying the container's output into its opened CRI log; entries not newer than
    /// `after` are already there.
    pub fn run(&self, engine: &Engine, id: &str, after: Option<String>) {
        let Ok(mut m) = self.map.lock() else { return };
        let Some(entry) = m.get_mut(id) else { return };
        let opts = LogOptions { follow: true, stdout: true, stderr: true, ..Default::default() };
        let mut rx = match engine.logs(id, opts) {
            Ok(rx) => rx,
            Err(e) => {
                log::warn!("cri: logs of {id}: {e}");
                return;
            }
        };
        let sink = entry.sink.clone();
        let id = id.to_string();
        entry.task = Some(tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                if after.as_deref().is_some_and(|a| chunk.time.as_str() <= a) {
                    continue;
                }
                let bytes = format_chunk(&chunk);
                let Ok(mut s) = sink.lock() else { return };
                if let Some(f) = s.file.as_mut() {
                    if let Err(e) = f.write_all(&bytes) {
                        log::warn!("cri: write log of {id}: {e}");
                    }
                }
                s.last = chunk.time;
            }
        }));
    }

    /// Writes from now on into a new file at `path` (the old one was renamed away), leaving
    /// at `mark` the time of the newest entry the old one got, for a copier after a restart.
    pub async fn reopen(&self, id: &str, path: &Path, mark: &Path) -> Result<crate::proto::Empty, Status> {
        let sink = {
            let m = self.map.lock().map_err(|_| Status::internal("log copiers lock poisoned"))?;
            m.get(id).map(|e| e.sink.clone())
        };
        let Some(sink) = sink else {
            return Err(Status::precondition(format!("container \"{id}\" has no log being written")));
        };
        let file = open_log(path)?;
        let mut s = sink.lock().map_err(|_| Status::internal("log sink lock poisoned"))?;
        if !s.last.is_empty() {
            if let Some(dir) = mark.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let tmp = mark.with_extension("tmp");
            if let Err(e) = std::fs::write(&tmp, &s.last).and_then(|()| std::fs::rename(&tmp, mark)) {
                log::warn!("cri: write log mark {}: {e}", mark.display());
            }
        }
        s.file = Some(file);
        Ok(crate::proto::Empty {})
    }

    /// Stops the copier of a removed container.
    pub fn stop(&self, id: &str) {
        if let Ok(mut m) = self.map.lock() {
            if let Some(e) = m.remove(id) {
                if let Some(t) = e.task {
                    t.abort();
                }
            }
        }
    }
}

impl crate::Cri {
    /// At start: a copier for every pod container that ran, resuming after what its CRI log
    /// already holds (an exited one gets what it wrote while wharfd was away, then stops).
    pub(crate) fn recover_logs(&self) {
        let Ok(recs) = self.list_typed(crate::meta::TYPE_CONTAINER) else { return };
        for rec in recs {
            let Some(m) = crate::meta::container_meta(&rec) else { continue };
            if m.log_path.is_empty() || rec.state.started_at.is_empty() {
                continue;
            }
            let path = Path::new(&m.log_path);
            let mark = std::fs::read_to_string(mark_path(&self.state_dir(), &rec.id)).ok();
            let after = newer(last_time(path), mark.map(|s| s.trim().to_string()));
            if let Err(s) = self.logs.open(&rec.id, path) {
                log::warn!("cri: {}", s.message);
                continue;
            }
            self.logs.run(&self.engine, &rec.id, after);
        }
    }

    /// Forgets what the CRI kept of a removed container's log.
    pub(crate) fn forget_log(&self, id: &str) {
        self.logs.stop(id);
        let _ = std::fs::remove_file(mark_path(&self.state_dir(), id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(stream: LogStream, data: &str) -> LogChunk {
        LogChunk { stream, time: "2026-12-02T07:00:00.000000001Z".into(), data: data.as_bytes().to_vec() }
    }

    #[test]
    fn lines_are_full_or_partial() {
        let t = "2026-12-02T07:00:00.000000001Z";
        assert_eq!(
            String::from_utf8(format_chunk(&chunk(LogStream::Stdout, "hello\n"))).unwrap(),
            format!("{t} stdout F hello\n")
        );
        assert_eq!(
            String::from_utf8(format_chunk(&chunk(LogStream::Stderr, "part"))).unwrap(),
            format!("{t} stderr P part\n")
        );
        assert_eq!(
            String::from_utf8(format_chunk(&chunk(LogStream::Stdout, "a\nb"))).unwrap(),
            format!("{t} stdout F a\n{t} stdout P b\n")
        );
        assert_eq!(
            String::from_utf8(format_chunk(&chunk(LogStream::Stdout, "\n"))).unwrap(),
            format!("{t} stdout F \n")
        );
    }

    #[test]
    fn resume_point_is_the_newest() {
        let dir = std::env::temp_dir().join(format!("wharf-cri-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("0.log");
        std::fs::write(&p, "2026-01-01T00:00:00.1Z stdout F a\n2026-01-01T00:00:02.1Z stdout F b\n").unwrap();
        assert_eq!(last_time(&p).as_deref(), Some("2026-01-01T00:00:02.1Z"));
        std::fs::write(&p, "").unwrap();
        assert_eq!(last_time(&p), None);
        assert_eq!(
            newer(Some("2026-01-01T00:00:03Z".into()), Some("2026-01-01T00:00:02Z".into())).as_deref(),
            Some("2026-01-01T00:00:03Z")
        );
        assert_eq!(newer(None, Some("x".into())).as_deref(), Some("x"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
