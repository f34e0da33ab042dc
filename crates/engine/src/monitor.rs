//! Watching containers: the per-container live state (exit notifications, the init's pidfd),
//! the task that learns of an exit through the shim's pidfd, and re-adoption after a restart.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

use crate::containers::{ContainerRecord, WaitCondition};
use crate::{blocking, Engine, EngineError};

/// The shim's record of how the container ended (`exit.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct ExitFile {
    pub exit_code: i32,
    #[serde(default)]
    pub finished_at: String,
    #[serde(default)]
    pub oom_killed: bool,
    /// The shim's stamps of the exit (`wharf_runtime::phases`), for the debug log.
    #[serde(default)]
    pub phases: wharf_runtime::phases::Phases,
}

#[derive(Debug, Clone, Copy, Default)]
struct State {
    running: bool,
    /// How many times it has exited since the daemon started watching it.
    exits: u64,
    removed: bool,
    exit_code: i32,
}

/// What the daemon knows about a container while it is loaded: kept in memory only.
pub struct Live {
    state: watch::Sender<State>,
    /// A pidfd of the container's init while it runs: signals go through it, so a recycled pid
    /// can never receive them.
    init: Mutex<Option<OwnedFd>>,
    /// Serializes lifecycle operations (start, stop, remove) on one container.
    pub op: tokio::sync::Mutex<()>,
    /// Attaches waiting for the container to start: its shim then holds the first output
    /// for them (`attach.rs`).
    pub attach_waiting: std::sync::atomic::AtomicUsize,
    /// The healthcheck's state since the last start (`health.rs`); `None` without one.
    pub health: Mutex<Option<crate::Health>>,
    /// A pidfd of the shim of the last run after it reported the exit: it then still kills
    /// what is left in the container's cgroup and removes it, which must not meet the next
    /// start's processes in the same cgroup (a `restart` right after the exit had its new init
    /// SIGKILLed). The next start waits for it (`wait_exited_shim`).
    exited_shim: Mutex<Option<OwnedFd>>,
}

impl Live {
    pub fn new(running_pid: Option<i32>) -> Live {
        let (tx, _) = watch::channel(State { running: running_pid.is_some(), ..Default::default() });
        let init = running_pid.and_then(|p| pidfd_open(p).ok());
        Live {
            state: tx,
            init: Mutex::new(init),
            op: tokio::sync::Mutex::new(()),
            attach_waiting: std::sync::atomic::AtomicUsize::new(0),
            health: Mutex::new(None),
            exited_shim: Mutex::new(None),
        }
    }

    pub fn is_running(&self) -> bool {
        self.state.borrow().running
    }

    pub fn started(&self, pid: i32) {
        *crate::sync::lock(&self.init) = pidfd_open(pid).ok();
        self.state.send_modify(|s| s.running = true);
    }

    /// A duplicate of the init's pidfd while the container runs (`cp` joins its namespace).
    pub fn init_pidfd(&self) -> Option<OwnedFd> {
        crate::sync::lock(&self.init).as_ref()?.try_clone().ok()
    }

    pub fn exited(&self, code: i32) {
        *crate::sync::lock(&self.init) = None;
        self.state.send_modify(|s| {
            s.running = false;
            s.exits += 1;
            s.exit_code = code;
        });
    }

    pub fn removed(&self, code: i32) {
        self.state.send_modify(|s| {
            s.removed = true;
            if !s.running {
                s.exit_code = code;
            }
        });
    }

    /// The number of exits seen so far (attach and logs follow until the next one).
    pub fn exits(&self) -> u64 {
        self.state.borrow().exits
    }

    pub fn signal(&self, sig: i32) -> io::Result<()> {
        let init = crate::sync::lock(&self.init);
        let Some(fd) = init.as_ref() else {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        };
        // SAFETY: pidfd_send_signal with a valid pidfd, no siginfo, no flags.
        let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), sig, std::ptr::null::<u8>(), 0) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Waits until the container runs; `false` when it was removed first.
    pub async fn wait_running(&self) -> bool {
        let mut rx = self.state.subscribe();
        let running = matches!(rx.wait_for(|s| s.running || s.removed).await, Ok(s) if s.running);
        running
    }

    /// Waits until the container is not running; `false` when the time ran out first.
    pub async fn wait_exit(&self, timeout: Option<Duration>) -> bool {
        let mut rx = self.state.subscribe();
        let fut = rx.wait_for(|s| !s.running);
        match timeout {
            None => fut.await.is_ok(),
            Some(t) => matches!(tokio::time::timeout(t, fut).await, Ok(Ok(_))),
        }
    }

    /// Waits for an exit after the call (`since` = `exits()` taken earlier), or removal.
    pub async fn wait_exit_after(&self, since: u64) {
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|s| s.exits > since || s.removed).await;
    }

    /// Waits for `condition`, judged against the state at the time of `mark` (so a wait that
    /// was asked for before a start still sees the exit that follows it).
    pub async fn wait_since(&self, condition: WaitCondition, mark: WaitMark) -> (i32, String) {
        let start = mark.0;
        let mut rx = self.state.subscribe();
        let r = match condition {
            WaitCondition::NotRunning => rx.wait_for(|s| !s.running || s.removed).await.map(|s| *s),
            WaitCondition::NextExit => rx.wait_for(|s| s.exits > start.exits || s.removed).await.map(|s| *s),
            WaitCondition::Removed => rx.wait_for(|s| s.removed).await.map(|s| *s),
        };
        match r {
            Ok(s) => (s.exit_code, String::new()),
            Err(_) => (start.exit_code, String::new()),
        }
    }

    pub fn mark(&self) -> WaitMark {
        WaitMark(*self.state.borrow())
    }
}

/// The live state at one instant, for waits that must not miss an exit that happens between
/// the request and the wait.
#[derive(Clone, Copy)]
pub struct WaitMark(State);

pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn read_exit_file(dir: &Path) -> Option<ExitFile> {
    let raw = std::fs::read(dir.join("exit.json")).ok()?;
    serde_json::from_slice(&raw).ok()
}

/// Parses `SIGTERM`, `TERM`, `15`, as Docker accepts them.
pub fn parse_signal(s: &str) -> Result<i32, EngineError> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(EngineError::Invalid(format!("Invalid signal: {s}")));
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => {
            if let Some(rest) = name.strip_prefix("RTMIN+") {
                match rest.parse::<i32>() {
                    Ok(k) if (0..=30).contains(&k) => return Ok(libc::SIGRTMIN() + k),
                    _ => {}
                }
            }
            if name == "RTMIN" {
                return Ok(libc::SIGRTMIN());
            }
            if name == "RTMAX" {
                return Ok(libc::SIGRTMAX());
            }
            return Err(EngineError::Invalid(format!("Invalid signal: {s}")));
        }
    };
    Ok(n)
}

impl Engine {
    /// Watches a shim until it exits, then records the container's exit.
    /// `notify` is the shim's end-of-file pipe when this daemon started it: it closes as soon
    /// as exit.json is written, before the shim's slower cleanup.
    pub(crate) fn watch_shim(&self, id: String, shim_pid: i32, notify: Option<OwnedFd>) {
        let engine = self.clone();
        tokio::spawn(async move {
            if let Some(fd) = notify {
                // Opened while the shim still holds the pipe (so the pid is that shim's).
                let shim = pidfd_open(shim_pid).ok().filter(|_| is_our_shim(shim_pid, &id));
                wait_for_eof(fd).await;
                let dir = engine.container_dir(&id);
                if let Some(mut exit) = read_exit_file(&dir) {
                    // Before the exit is recorded, so that any start after it waits for this.
                    *crate::network::lock(&engine.live(&id).exited_shim) = shim;
                    exit.phases.push(("exit-seen".to_string(), wharf_runtime::phases::now_ns()));
                    engine.on_exit(&id, Some(exit)).await;
                    return;
                }
            }
            // When the shim is already gone, the exit file alone tells how it ended.
            if let Ok(fd) = pidfd_open(shim_pid) {
                // SAFETY: the AsyncFd owns the pidfd, so it stays open while registered.
                match unsafe { AsyncFd::register(fd) } {
                    Ok(afd) => {
                        let _ = afd.readable().await;
                    }
                    Err(e) => {
                        log::warn!("container {id}: watch shim {shim_pid}: {e}; polling instead");
                        while Path::new(&format!("/proc/{shim_pid}")).exists() {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
            }
            let exit = read_exit_file(&engine.container_dir(&id));
            engine.on_exit(&id, exit).await;
        });
    }

    /// Before a start: waits for the previous run's shim to finish its cleanup of the
    /// container's cgroup (a few milliseconds), and stops it when it takes longer than 5 s.
    pub(crate) async fn wait_exited_shim(&self, live: &Live) {
        let Some(fd) = crate::network::lock(&live.exited_shim).take() else { return };
        // SAFETY: the AsyncFd owns the pidfd, so it stays open while registered.
        let gone = match unsafe { AsyncFd::register(fd) } {
            Ok(afd) => {
                let done = tokio::time::timeout(Duration::from_secs(5), afd.readable()).await.is_ok();
                if !done {
                    // SAFETY: pidfd_send_signal with a valid pidfd, no siginfo, no flags.
                    unsafe {
                        libc::syscall(
                            libc::SYS_pidfd_send_signal,
                            afd.as_raw_fd(),
                            libc::SIGKILL,
                            std::ptr::null::<u8>(),
                            0,
                        )
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(2), afd.readable()).await;
                }
                done
            }
            Err(_) => true,
        };
        if !gone {
            log::warn!("the shim of a container's last run was still cleaning up after 5 s: stopped");
        }
    }

    /// Re-adopts containers after a daemon start. The shims and the cgroups are the truth about
    /// what runs, the records what the daemon had got to writing: a running shim whose record
    /// never learnt of the start is adopted (its start completed), one that never got as far
    /// as starting its container is stopped, anything else left in a container's cgroup is
    /// killed, and shims and cgroups of containers without a record are stopped and removed.
    pub(crate) async fn recover(&self) -> Result<(), EngineError> {
        let records: Vec<(String, ContainerRecord)> =
            self.all_containers().into_iter().map(|r| (r.id.clone(), (*r).clone())).collect();
        let engine = self.clone();
        let shims = blocking(move || Ok(engine.find_shims())).await?;
        let engine = self.clone();
        let known: Vec<String> = records.iter().map(|(id, _)| id.clone()).collect();
        let orphan_shims = shims.clone();
        blocking(move || {
            engine.sweep_orphans(&known, &orphan_shims);
            Ok(())
        })
        .await?;
        for (id, mut rec) in records {
            let shim = shims.get(&id).copied();
            if !rec.state.running {
                let started = self.cut_start(&id, shim).await;
                match started {
                    CutStart::Ended => {
                        // Started (the record never learnt it) and ended while the daemon was
                        // away: its exit is recorded, as for a container known to run.
                        log::info!("container {id}: a start the daemon had not recorded ran and ended");
                        let exit = self.finished_exit(&id, shim).await;
                        let live = std::sync::Arc::new(Live::new(None));
                        live.state.send_modify(|s| s.running = true);
                        {
                            let mut map = crate::sync::lock(&self.inner.live);
                            map.insert(id.clone(), live);
                        }
                        self.on_exit(&id, exit).await;
                        let _ = std::fs::remove_file(self.container_dir(&id).join("shim.json"));
                        continue;
                    }
                    CutStart::Running(started) => {
                        log::info!(
                            "container {id}: adopted a start the daemon had not recorded (shim {}, pid {})",
                            started.shim_pid,
                            started.pid
                        );
                        rec.state = crate::containers::ContainerState {
                            status: crate::containers::Status::Running,
                            running: true,
                            pid: started.pid,
                            shim_pid: started.shim_pid,
                            started_at: started.at,
                            finished_at: rec.state.finished_at.clone(),
                            ..Default::default()
                        };
                        self.put_container(&rec)?;
                        let _ = std::fs::remove_file(self.container_dir(&id).join("shim.json"));
                    }
                    CutStart::NotStarted => {
                        self.stop_leftovers(&id, shim).await;
                        if rec.host_config.auto_remove && rec.state.status != crate::containers::Status::Restarting {
                            // As dockerd does at start: a `--rm` container that is not running
                            // is removed, not kept as exited.
                            log::info!("container {id}: removing a --rm container that is not running");
                            if let Err(e) = self.remove_container(&id, true).await {
                                log::warn!("container {id}: {e}");
                            }
                        }
                        continue;
                    }
                }
            }
            let shim_alive = shim.is_some_and(|p| p == rec.state.shim_pid);
            if shim_alive {
                let live = std::sync::Arc::new(Live::new(Some(rec.state.pid)));
                {
                    let mut map = crate::sync::lock(&self.inner.live);
                    map.insert(id.clone(), live);
                }
                self.watch_shim(id.clone(), rec.state.shim_pid, None);
                self.start_health(&rec);
                log::info!("container {id}: re-adopted (shim {}, pid {})", rec.state.shim_pid, rec.state.pid);
            } else {
                // Its shim is gone (or is not the one recorded): whatever it left running in
                // the cgroup goes before the exit is recorded.
                self.stop_leftovers(&id, shim).await;
                let exit = read_exit_file(&self.container_dir(&id));
                let live = std::sync::Arc::new(Live::new(None));
                live.state.send_modify(|s| s.running = true);
                {
                    let mut map = crate::sync::lock(&self.inner.live);
                    map.insert(id.clone(), live);
                }
                self.on_exit(&id, exit).await;
            }
        }
        self.remove_ephemeral().await;
        Ok(())
    }

    /// Containers made for an operation of the daemon itself (a build step's) die with the
    /// operation: the ones a crash left are removed at start.
    async fn remove_ephemeral(&self) {
        for rec in self.all_containers() {
            let id = &rec.id;
            if rec.config.labels.contains_key(crate::EPHEMERAL_LABEL) {
                log::info!("container {id}: removing a build container left from before");
                if let Err(e) = self.remove_container(id, true).await {
                    log::warn!("container {id}: {e}");
                }
            }
        }
    }

    /// What became of a start the record does not show: the daemon died between spawning the
    /// shim and recording the start. The shim's `shim.json` (removed once a start is recorded,
    /// so present only for one that was not) says whether, and as which pids, the container was
    /// started; its `exit.json` whether it ended; a shim still starting gets a moment.
    async fn cut_start(&self, id: &str, shim: Option<i32>) -> CutStart {
        let dir = self.container_dir(id);
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            let started = read_started(&dir);
            // exit.json and shim.json are both removed before every spawn: together they are
            // this run's, which ended.
            if dir.join("exit.json").exists() {
                return if started.is_some() { CutStart::Ended } else { CutStart::NotStarted };
            }
            let Some(shim_pid) = shim.filter(|p| is_our_shim(*p, id)) else {
                // No shim: it ended without an exit file (killed), or never started anything.
                return if started.is_some() { CutStart::Ended } else { CutStart::NotStarted };
            };
            if let Some(s) = started {
                // The init is the shim's child: a recycled pid is not.
                if s.shim_pid == shim_pid && pidfd_open(s.pid).is_ok() && parent_pid(s.pid) == Some(shim_pid) {
                    return CutStart::Running(s);
                }
                // The init is gone: the shim is writing its exit, wait for it below.
            }
            if std::time::Instant::now() > deadline {
                return if read_started(&dir).is_some() { CutStart::Ended } else { CutStart::NotStarted };
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The exit of a container whose start was never recorded: its shim is given a moment to
    /// write it (then stopped), and what is left in its cgroup is killed.
    async fn finished_exit(&self, id: &str, shim: Option<i32>) -> Option<ExitFile> {
        let dir = self.container_dir(id);
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while read_exit_file(&dir).is_none()
            && shim.is_some_and(|p| is_our_shim(p, id))
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.stop_leftovers(id, shim).await;
        read_exit_file(&dir)
    }

    /// Stops a container's shim (when one runs) and everything in its cgroup.
    async fn stop_leftovers(&self, id: &str, shim: Option<i32>) {
        let engine = self.clone();
        let id = id.to_string();
        let r = blocking(move || {
            engine.kill_shim(&id, shim);
            engine.kill_leftovers(&id)
        })
        .await;
        if let Err(e) = r {
            log::warn!("{e}");
        }
    }

    /// SIGKILLs a container's shim through a pidfd, after checking it is still that shim, and
    /// waits a little for it to go (a shim killed mid-start cannot start the container after).
    fn kill_shim(&self, id: &str, shim: Option<i32>) {
        let Some(pid) = shim else { return };
        let Ok(fd) = pidfd_open(pid) else { return };
        if !is_our_shim(pid, id) {
            return;
        }
        log::info!("container {id}: stopping shim {pid}, which the records do not know as running");
        // SAFETY: pidfd_send_signal with a valid pidfd, no siginfo, no flags.
        unsafe { libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), libc::SIGKILL, std::ptr::null::<u8>(), 0) };
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: poll on one valid pollfd; a pidfd becomes readable when the process exits.
        unsafe { libc::poll(&mut pfd, 1, 2000) };
    }

    /// The shims of this daemon that run now, by container id: those whose bundle is the
    /// container's directory under this data root (another daemon's shims are not ours).
    fn find_shims(&self) -> std::collections::HashMap<String, i32> {
        let mut out = std::collections::HashMap::new();
        let Ok(entries) = std::fs::read_dir("/proc") else { return out };
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
            let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            if !args.first().is_some_and(|a| a.ends_with(b"wharf-shim")) {
                continue;
            }
            let value = |flag: &[u8]| args.iter().position(|a| *a == flag).and_then(|i| args.get(i + 1)).copied();
            let (Some(id), Some(bundle)) = (value(b"--id"), value(b"--bundle")) else { continue };
            let id = String::from_utf8_lossy(id).to_string();
            if self.container_dir(&id).as_os_str().as_encoded_bytes() == bundle {
                out.insert(id, pid);
            }
        }
        out
    }
}

/// What `cut_start` found.
enum CutStart {
    /// The container runs: adopt it.
    Running(Started),
    /// It ran and ended (or its shim is finishing): record the exit.
    Ended,
    /// It was never started: stop whatever is left.
    NotStarted,
}

/// What a shim wrote when it had started its container (`shim.json`).
#[derive(Debug, Clone)]
struct Started {
    shim_pid: i32,
    pid: i32,
    /// When the file was written: the container's start as near as the daemon can know it.
    at: String,
}

fn read_started(dir: &Path) -> Option<Started> {
    #[derive(Deserialize)]
    struct File {
        shim_pid: i32,
        pid: i32,
    }
    let path = dir.join("shim.json");
    let f: File = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    let at = std::fs::metadata(&path).and_then(|m| m.modified()).unwrap_or_else(|_| std::time::SystemTime::now());
    Some(Started { shim_pid: f.shim_pid, pid: f.pid, at: wharf_types::time::rfc3339_nanos(at) })
}

impl Engine {
    /// Removes what containers without a record left: their shims and cgroup processes are
    /// killed first, then their files and cgroups removed (a crash between a create's
    /// directories and its record, or between a removal's record and its files).
    fn sweep_orphans(&self, known: &[String], shims: &std::collections::HashMap<String, i32>) {
        let known: std::collections::HashSet<&str> = known.iter().map(String::as_str).collect();
        let is_id = |name: &str| name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
        let mut orphans = std::collections::BTreeSet::new();
        let dirs =
            [self.inner.config.data_root.join("containers"), self.inner.config.data_root.join("snapshots/containers")];
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if is_id(&name) && !known.contains(name.as_str()) {
                    orphans.insert(name);
                }
            }
        }
        orphans.extend(shims.keys().filter(|id| is_id(id) && !known.contains(id.as_str())).cloned());
        // A cgroup under the parent is this daemon's only with files of its own here: another
        // daemon sharing the cgroup parent (with its own data root) keeps its containers.
        // With the systemd driver the parent is a slice, and a container's cgroup its scope.
        let systemd = self.inner.config.cgroup_driver == crate::CgroupDriver::Systemd;
        let parent = if systemd {
            wharf_runtime::systemd::expand_slice(&self.inner.config.cgroup_parent).unwrap_or_default()
        } else {
            self.inner.config.cgroup_parent.clone()
        };
        let scope_prefix = format!("{}-", crate::containers::SCOPE_PREFIX);
        let ours = |id: &str| {
            self.container_dir(id).exists()
                || self.inner.config.data_root.join("snapshots/containers").join(id).exists()
        };
        if let Ok(cg) = wharf_runtime::cgroups::Cgroup::open(if parent.is_empty() { "/" } else { &parent }) {
            for dir in cg.dirs() {
                let Ok(entries) = std::fs::read_dir(&dir) else { continue };
                for e in entries.flatten() {
                    let mut name = e.file_name().to_string_lossy().to_string();
                    if systemd {
                        match name.strip_prefix(&scope_prefix).and_then(|n| n.strip_suffix(".scope")) {
                            Some(id) => name = id.to_string(),
                            None => continue,
                        }
                    }
                    if e.path().is_dir() && is_id(&name) && !known.contains(name.as_str()) && ours(&name) {
                        orphans.insert(name);
                    }
                }
            }
        }
        for id in orphans {
            log::info!("container {id}: removing what was left without a record");
            self.kill_shim(&id, shims.get(&id).copied());
            if let Err(e) = self.kill_leftovers(&id) {
                log::warn!("{e}");
            }
            if let Err(e) = self.remove_container_files(&id) {
                log::warn!("{e}");
            }
        }
    }
}

/// Waits until the writer closes the pipe (or it fails).
async fn wait_for_eof(fd: OwnedFd) {
    let Ok(rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else { return };
    let mut buf = [0u8; 64];
    loop {
        if rx.readable().await.is_err() {
            return;
        }
        match rx.try_read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// The parent of `pid`, from /proc.
fn parent_pid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command (which may hold spaces) start after its last ')'.
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `pid` is the shim of container `id` (and not a recycled pid).
fn is_our_shim(pid: i32, id: &str) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmd) => {
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            args.first().is_some_and(|a| a.ends_with(b"wharf-shim")) && args.contains(&id.as_bytes())
        }
        Err(_) => false,
    }
}
