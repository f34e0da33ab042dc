//! `docker exec`: exec instances kept in memory (as Docker does), started through the
//! container's shim, which forks the process into the container's namespaces and cgroup.
//! The process inherits the container's capabilities, no_new_privs, rlimits, user, env and
//! cwd from its config.json unless the exec overrides them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use wharf_runtime::spec::{ConsoleSize, Process, Spec};

use crate::attach::{self, ProcessStream, StreamEvent, StreamInput};
use crate::logs::{LogChunk, LogStream};
use crate::{user, Engine, EngineError};

/// What `POST /containers/{id}/exec` asks for.
#[derive(Debug, Clone, Default)]
pub struct ExecConfig {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    /// `None`: the container's user.
    pub user: Option<String>,
    /// `None`: the container's working directory.
    pub working_dir: Option<String>,
    pub tty: bool,
    pub privileged: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub detach_keys: Option<String>,
    /// Rows, columns.
    pub console_size: Option<(u16, u16)>,
}

/// An exec instance as `GET /exec/{id}/json` shows it.
#[derive(Debug, Clone)]
pub struct ExecRecord {
    pub id: String,
    pub container_id: String,
    pub config: ExecConfig,
    pub running: bool,
    /// Set once it ran (or failed to start).
    pub exit_code: Option<i32>,
    pub pid: i32,
    /// The process as the shim runs it (user, cwd after the container's defaults).
    pub process: Option<Process>,
    pub started: bool,
}

/// The exec instances of the daemon: in memory only, as Docker's.
#[derive(Default)]
pub(crate) struct Execs {
    map: Mutex<HashMap<String, ExecRecord>>,
}

impl Execs {
    fn update(&self, id: &str, f: impl FnOnce(&mut ExecRecord)) {
        {
            let mut m = crate::sync::lock(&self.map);
            if let Some(r) = m.get_mut(id) {
                f(r);
            }
        }
    }

    fn remove(&self, id: &str) {
        {
            let mut m = crate::sync::lock(&self.map);
            m.remove(id);
        }
    }

    /// Forgets every exec of a removed container: nobody can inspect them any more (dockerd
    /// answers "No such exec instance" too), and keeping them grew the daemon by a few KiB per
    /// exec for as long as it ran.
    pub(crate) fn remove_container(&self, container_id: &str) {
        {
            let mut m = crate::sync::lock(&self.map);
            m.retain(|_, r| r.container_id != container_id);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        crate::sync::lock(&self.map).len()
    }

    fn get(&self, id: &str) -> Option<ExecRecord> {
        crate::sync::lock(&self.map).get(id).cloned()
    }
}

/// Docker's env merge: the exec's variables replace the container's of the same name.
fn merge_env(base: &[String], over: &[String]) -> Vec<String> {
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    let mut out: Vec<String> = base.iter().filter(|b| !over.iter().any(|o| key(o) == key(b))).cloned().collect();
    out.extend(over.iter().cloned());
    out
}

/// Docker's answer to an exec into a frozen container: the process could not run until thawed.
fn paused_conflict(id: &str) -> EngineError {
    EngineError::Conflict(format!("Container {id} is paused, unpause the container before exec"))
}

impl Engine {
    fn execs(&self) -> &Arc<Execs> {
        &self.inner.execs
    }

    /// Registers an exec instance for a running container; returns its id.
    pub fn create_exec(&self, container: &str, config: ExecConfig) -> Result<String, EngineError> {
        let rec = self.find_container(container)?;
        if !self.live(&rec.id).is_running() {
            return Err(EngineError::Conflict(format!("container {} is not running", rec.id)));
        }
        if rec.state.paused {
            return Err(paused_conflict(&rec.id));
        }
        if config.cmd.is_empty() {
            return Err(EngineError::Invalid("no exec command specified".to_string()));
        }
        if let Some(k) = &config.detach_keys {
            attach::parse_detach_keys(k)?;
        }
        let id = crate::ids::random_id();
        let record = ExecRecord {
            id: id.clone(),
            container_id: rec.id.clone(),
            config,
            running: false,
            exit_code: None,
            pid: 0,
            process: None,
            started: false,
        };
        crate::sync::lock(&self.execs().map).insert(id.clone(), record);
        Ok(id)
    }

    /// Drops an exec instance nobody will ask about (a healthcheck probe's).
    pub(crate) fn forget_exec(&self, id: &str) {
        self.execs().remove(id);
    }

    pub fn inspect_exec(&self, id: &str) -> Result<ExecRecord, EngineError> {
        self.execs().get(id).ok_or_else(|| EngineError::NotFound(format!("No such exec instance: {id}")))
    }

    /// The process to run: the container's, from its config.json, with the exec's overrides.
    fn exec_process(&self, rec: &ExecRecord) -> Result<Process, EngineError> {
        let dir = self.container_dir(&rec.container_id);
        let bytes = std::fs::read(dir.join("config.json")).map_err(|e| EngineError::io("read config.json", e))?;
        let spec: Spec =
            serde_json::from_slice(&bytes).map_err(|e| EngineError::Internal(format!("parse config.json: {e}")))?;
        let mut p = spec.process.ok_or_else(|| EngineError::Internal("config.json has no process".into()))?;
        let c = &rec.config;
        p.args = c.cmd.clone();
        p.env = merge_env(&p.env, &c.env);
        p.terminal = c.tty;
        p.console_size = c.console_size.map(|(h, w)| ConsoleSize { height: h as u32, width: w as u32 });
        p.oom_score_adj = None;
        if let Some(wd) = c.working_dir.as_deref().filter(|w| !w.is_empty()) {
            if !wd.starts_with('/') {
                return Err(EngineError::Invalid(format!("the working directory {wd:?} is not an absolute path")));
            }
            p.cwd = wd.to_string();
        }
        if let Some(u) = c.user.as_deref().filter(|u| !u.is_empty()) {
            let container = self.find_container(&rec.container_id)?;
            let dirs = self.inner.snapshots.container_dirs(&container.id);
            let layers: Vec<PathBuf> = std::iter::once(dirs.upper.clone())
                .chain(container.chain_ids.iter().rev().map(|c| self.inner.snapshots.layer_dir(c)))
                .collect();
            let passwd = user::read_from_layers(&layers, "etc/passwd")?;
            let group = user::read_from_layers(&layers, "etc/group")?;
            let r = user::resolve(u, passwd.as_deref(), group.as_deref())?;
            p.user.uid = r.uid;
            p.user.gid = r.gid;
            p.user.additional_gids = r.additional_gids;
        }
        if c.privileged {
            // No capability sets: the process keeps the full set of the shim that forks it.
            p.capabilities = None;
        }
        Ok(p)
    }

    /// Starts an exec instance. Detached: returns `None` once it runs. Otherwise the stream
    /// of its output, which ends with its exit (or its failure to start).
    pub async fn start_exec(
        &self,
        id: &str,
        detach: bool,
        tty: Option<bool>,
    ) -> Result<Option<ProcessStream>, EngineError> {
        let mut rec = self.inspect_exec(id)?;
        if rec.started {
            return Err(EngineError::Conflict(format!("exec instance {id} has already been started")));
        }
        if !self.live(&rec.container_id).is_running() {
            return Err(EngineError::Conflict(format!("container {} is not running", rec.container_id)));
        }
        if self.find_container(&rec.container_id)?.state.paused {
            return Err(paused_conflict(&rec.container_id));
        }
        if let Some(t) = tty {
            rec.config.tty = t;
        }
        let process = self.exec_process(&rec)?;
        let keys = match (&rec.config.detach_keys, rec.config.tty) {
            (_, false) => Vec::new(),
            (Some(k), true) => attach::parse_detach_keys(k)?,
            (None, true) => attach::DEFAULT_DETACH_KEYS.to_vec(),
        };
        let stdin = rec.config.attach_stdin && !detach;
        let req = serde_json::json!({ "exec": { "id": id, "process": process, "stdin": stdin } });
        self.execs().update(id, |r| {
            r.started = true;
            r.process = Some(process.clone());
            r.config.tty = rec.config.tty;
        });
        let mut session = attach::open_session(&self.shim_socket(&rec.container_id), req, keys).await?;
        // The first event tells whether it runs.
        match session.events.recv().await {
            Some(StreamEvent::Started(pid)) => self.execs().update(id, |r| {
                r.running = true;
                r.pid = pid;
            }),
            Some(StreamEvent::Failed { message, exit_code }) => {
                self.execs().update(id, |r| r.exit_code = Some(exit_code));
                if detach {
                    return Err(EngineError::Exec { message, exit_code });
                }
                // Docker writes the error into the attached stream, and the exit code is
                // read from the exec's inspect.
                let (tx, rx) = mpsc::channel(1);
                let chunk = LogChunk {
                    stream: LogStream::Stdout,
                    time: String::new(),
                    data: format!("OCI runtime exec failed: {message}\r\n").into_bytes(),
                };
                let _ = tx.send(StreamEvent::Output(chunk)).await;
                return Ok(Some(ProcessStream { events: rx, input: session.input }));
            }
            _ => {
                self.execs().update(id, |r| r.exit_code = Some(126));
                return Err(EngineError::Internal(format!("exec {id}: the container's shim did not answer")));
            }
        }
        let (tx, rx) = mpsc::channel(64);
        let execs = self.execs().clone();
        let exec_id = id.to_string();
        let mut events = session.events;
        tokio::spawn(async move {
            let mut forward = !detach;
            while let Some(ev) = events.recv().await {
                if let StreamEvent::Exit(code) = ev {
                    execs.update(&exec_id, |r| {
                        r.running = false;
                        r.exit_code = Some(code);
                    });
                }
                if forward && tx.send(ev).await.is_err() {
                    // The client went away; keep reading to learn the exit code.
                    forward = false;
                }
            }
            execs.update(&exec_id, |r| r.running = false);
        });
        if detach {
            // Nobody writes to its stdin: close it so the process sees the end.
            let _ = session.input.send(StreamInput::Close).await;
            return Ok(None);
        }
        Ok(Some(ProcessStream { events: rx, input: session.input }))
    }

    /// SIGKILLs a running exec'd process (the CRI's ExecSync past its time-out), through a
    /// pidfd opened while the exec is still known to run; nothing when it has ended.
    pub fn kill_exec(&self, id: &str) -> Result<(), EngineError> {
        let rec = self.inspect_exec(id)?;
        if !rec.running || rec.pid <= 0 {
            return Ok(());
        }
        let fd = crate::monitor::pidfd_open(rec.pid).map_err(|e| EngineError::io(format!("pidfd of exec {id}"), e))?;
        // The pid may have ended between the inspect and the open: only kill what still runs.
        if !self.inspect_exec(id)?.running {
            return Ok(());
        }
        use std::os::fd::AsRawFd;
        // SAFETY: pidfd_send_signal with a valid pidfd, no siginfo, no flags.
        let r = unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), libc::SIGKILL, std::ptr::null::<u8>(), 0)
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(EngineError::io(format!("kill exec {id}"), e));
            }
        }
        Ok(())
    }

    /// Sizes the terminal of a running exec'd process.
    pub async fn resize_exec(&self, id: &str, rows: u16, cols: u16) -> Result<(), EngineError> {
        let rec = self.inspect_exec(id)?;
        if !rec.running {
            return Err(EngineError::Conflict(format!("exec instance {id} is not running")));
        }
        let req = serde_json::json!({ "resize": { "exec": id, "rows": rows, "cols": cols } });
        self.shim_request(&rec.container_id, req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_containers_execs_are_forgotten() {
        let execs = Execs::default();
        for (id, container) in [("e1", "a"), ("e2", "b"), ("e3", "a")] {
            let rec = ExecRecord {
                id: id.into(),
                container_id: container.into(),
                config: ExecConfig::default(),
                running: false,
                exit_code: Some(0),
                pid: 0,
                process: None,
                started: true,
            };
            execs.map.lock().unwrap().insert(id.into(), rec);
        }
        execs.remove_container("a");
        assert_eq!(execs.len(), 1);
        assert!(execs.get("e2").is_some());
    }

    #[test]
    fn env_merge_table() {
        let base = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        let cases: &[(&[&str], &[&str])] = &[
            (&[], &["PATH=/bin", "A=1"]),
            (&["A=2"], &["PATH=/bin", "A=2"]),
            (&["B=3", "PATH=/x"], &["A=1", "B=3", "PATH=/x"]),
        ];
        for (over, want) in cases {
            let over: Vec<String> = over.iter().map(|s| s.to_string()).collect();
            assert_eq!(merge_env(&base, &over), want.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        }
    }
}
