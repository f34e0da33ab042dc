//! Reading a container's json-file log (written by its shim): `logs` with since/until/tail, and
//! following it for `logs -f` and for attach, until the container's next exit. A rotated log
//! is read oldest file first, and a follower moves on to the new file when the shim rotates.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use tokio::sync::mpsc;

use crate::monitor::Live;
use crate::{Engine, EngineError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone)]
pub struct LogChunk {
    pub stream: LogStream,
    /// RFC 3339 with nanoseconds, as the shim recorded it.
    pub time: String,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub follow: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    /// Only the last N lines (None = all).
    pub tail: Option<usize>,
}

#[derive(Deserialize)]
struct Line {
    log: String,
    stream: String,
    time: String,
}

/// How often a follower looks for new lines. The log is written line by line by the shim.
const POLL: Duration = Duration::from_millis(10);

struct Follower {
    path: PathBuf,
    file: Option<File>,
    offset: u64,
    partial: Vec<u8>,
}

/// The most of a log file read at once.
const READ_CHUNK: u64 = 4 << 20;

/// Device and inode: a rotation puts a new file at the path.
fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

impl Follower {
    /// Reads the complete lines appended since the last call, across a rotation: what the old
    /// file got before it was renamed is read first, then the new file from its start.
    fn read_lines(&mut self) -> Vec<Vec<u8>> {
        let mut lines = self.read_current();
        let at_path = std::fs::metadata(&self.path).ok();
        let open = self.file.as_ref().and_then(|f| f.metadata().ok());
        if let (Some(p), Some(o)) = (at_path, open) {
            if identity(&p) != identity(&o) {
                // Renamed away: nothing more is written to it after the rename, so one more read
                // drains it.
                lines.extend(self.read_current());
                // More than one rotation since the last look: the files between the one we had
                // and the live one are read whole, oldest first.
                let rotated = crate::logrotate::rotated_files(&self.path);
                let newer =
                    match rotated.iter().position(|f| std::fs::metadata(f).is_ok_and(|m| identity(&m) == identity(&o)))
                    {
                        Some(i) => &rotated[i + 1..],
                        None => &rotated[..],
                    };
                for f in newer {
                    if let Ok(raw) = std::fs::read(f) {
                        lines.extend(raw.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec));
                    }
                }
                self.partial.clear();
                self.file = None;
                self.offset = 0;
                lines.extend(self.read_current());
            } else if p.len() < self.offset {
                // Truncated in place (one file kept): start over.
                self.offset = 0;
                if let Some(f) = self.file.as_mut() {
                    let _ = f.seek(SeekFrom::Start(0));
                }
                lines.extend(self.read_current());
            }
        }
        lines
    }

    fn read_current(&mut self) -> Vec<Vec<u8>> {
        if self.file.is_none() {
            match File::open(&self.path) {
                Ok(mut f) => {
                    if f.seek(SeekFrom::Start(self.offset)).is_err() {
                        return Vec::new();
                    }
                    self.file = Some(f);
                }
                Err(_) => return Vec::new(),
            }
        }
        let Some(f) = self.file.as_mut() else { return Vec::new() };
        // At most READ_CHUNK per call, so a log of any size is read in bounded steps; callers
        // call again until nothing comes.
        let mut buf = Vec::new();
        if f.take(READ_CHUNK).read_to_end(&mut buf).is_err() {
            return Vec::new();
        }
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        // Each line is copied out at its own size. (Splitting the buffer off line by line kept
        // the whole buffer's capacity in every line: `logs` of a 35 MB log took 24 GB.)
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.partial.get(start..).and_then(|rest| rest.iter().position(|b| *b == b'\n')) {
            lines.push(self.partial[start..start + pos].to_vec());
            start += pos + 1;
        }
        self.partial.drain(..start);
        lines
    }
}

/// One decoded line: sent at once without `tail`, else kept among the last `tail` ones.
/// `false` when the receiver is gone.
async fn offer(
    chunk: Option<LogChunk>,
    tail: Option<usize>,
    last: &mut VecDeque<LogChunk>,
    tx: &mpsc::Sender<LogChunk>,
) -> bool {
    let Some(c) = chunk else { return true };
    match tail {
        None => tx.send(c).await.is_ok(),
        Some(0) => true,
        Some(n) => {
            last.push_back(c);
            if last.len() > n {
                last.pop_front();
            }
            true
        }
    }
}

fn decode(line: &[u8], opts: &LogOptions) -> Option<LogChunk> {
    let l: Line = serde_json::from_slice(line).ok()?;
    let stream = match l.stream.as_str() {
        "stdout" if opts.stdout => LogStream::Stdout,
        "stderr" if opts.stderr => LogStream::Stderr,
        _ => return None,
    };
    if opts.since.is_some() || opts.until.is_some() {
        let t = wharf_types::time::parse_rfc3339(&l.time)?;
        if opts.since.is_some_and(|s| t < s) || opts.until.is_some_and(|u| t > u) {
            return None;
        }
    }
    Some(LogChunk { stream, time: l.time, data: l.log.into_bytes() })
}

impl Engine {
    /// The container's log as options select it; with `follow`, new lines keep coming until the
    /// container exits (or the receiver is dropped).
    pub fn logs(&self, name: &str, opts: LogOptions) -> Result<mpsc::Receiver<LogChunk>, EngineError> {
        let rec = self.find_container(name)?;
        if rec.host_config.log_config.driver == crate::logrotate::NONE {
            return Err(EngineError::NotImplemented("configured logging driver does not support reading".into()));
        }
        let live = self.live(&rec.id);
        let follow = opts.follow && live.is_running();
        let path = self.log_path(&rec.id);
        let rotated = crate::logrotate::rotated_files(&path);
        let follower = Follower { path, file: None, offset: 0, partial: Vec::new() };
        let (tx, rx) = mpsc::channel(256);
        let exits = live.exits();
        tokio::spawn(async move {
            let mut f = follower;
            // With `tail`, the last lines are kept as they go by; without, each line is sent
            // as it is read, so memory stays bounded whatever the size of the log.
            let mut last: VecDeque<LogChunk> = VecDeque::new();
            for p in rotated {
                // A file rotated away meanwhile is skipped rather than read twice. A rotated
                // file is at most max-size.
                let Ok(raw) = std::fs::read(&p) else { continue };
                for line in raw.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    if !offer(decode(line, &opts), opts.tail, &mut last, &tx).await {
                        return;
                    }
                }
            }
            loop {
                let lines = f.read_lines();
                if lines.is_empty() {
                    break;
                }
                for line in lines {
                    if !offer(decode(&line, &opts), opts.tail, &mut last, &tx).await {
                        return;
                    }
                }
            }
            for c in last {
                if tx.send(c).await.is_err() {
                    return;
                }
            }
            if follow {
                let o = LogOptions { tail: None, ..opts };
                follow_until_exit(f, o, live, exits, tx).await;
            }
        });
        Ok(rx)
    }

    /// Output from now on until the container's next exit: what attach streams.
    pub fn attach_output(
        &self,
        name: &str,
        stdout: bool,
        stderr: bool,
    ) -> Result<mpsc::Receiver<LogChunk>, EngineError> {
        let rec = self.find_container(name)?;
        let live = self.live(&rec.id);
        let path = self.log_path(&rec.id);
        let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let follower = Follower { path, file: None, offset, partial: Vec::new() };
        let opts = LogOptions { follow: true, stdout, stderr, ..Default::default() };
        let (tx, rx) = mpsc::channel(256);
        let exits = live.exits();
        tokio::spawn(follow_until_exit(follower, opts, live, exits, tx));
        Ok(rx)
    }
}

async fn follow_until_exit(mut f: Follower, opts: LogOptions, live: Arc<Live>, exits: u64, tx: mpsc::Sender<LogChunk>) {
    loop {
        let ended = tokio::select! {
            _ = live.wait_exit_after(exits) => true,
            _ = tokio::time::sleep(POLL) => false,
            _ = tx.closed() => return,
        };
        // Everything there is, in bounded reads; after the exit this drains what the shim
        // wrote before exiting.
        loop {
            let lines = f.read_lines();
            if lines.is_empty() {
                break;
            }
            for line in lines {
                if !offer(decode(&line, &opts), None, &mut VecDeque::new(), &tx).await {
                    return;
                }
            }
        }
        if ended {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &std::path::Path, text: &str) {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn follows_across_rotations_and_truncation() {
        let dir = std::env::temp_dir().join(format!("wharf-follow-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let live = dir.join("c-json.log");
        let rot = |n: u32| dir.join(format!("c-json.log.{n}"));
        let mut f = Follower { path: live.clone(), file: None, offset: 0, partial: Vec::new() };
        append(&live, "a\n");
        assert_eq!(f.read_lines(), [b"a".to_vec()]);
        // Two rotations between two looks.
        append(&live, "b\n");
        std::fs::rename(&live, rot(1)).unwrap();
        append(&live, "c\n");
        std::fs::rename(rot(1), rot(2)).unwrap();
        std::fs::rename(&live, rot(1)).unwrap();
        append(&live, "d\n");
        assert_eq!(f.read_lines(), [b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]);
        append(&live, "e\n");
        assert_eq!(f.read_lines(), [b"e".to_vec()]);
        // One file kept: the shim empties it in place.
        std::fs::OpenOptions::new().write(true).open(&live).unwrap().set_len(0).unwrap();
        append(&live, "f\n");
        assert_eq!(f.read_lines(), [b"f".to_vec()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
