//! The shim's single-threaded poll loop: copies the container's output to its log and to
//! attached clients, client input to the container's stdin (pipe or pty), runs exec'd
//! processes, and reaps children until the container's init has exited and drained.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use wharf_runtime::tty::WinSize;
use wharf_runtime::{Cgroup, ChildStdio, ExecOptions};

use crate::logs::{self, JsonLog, LineBuffer};
use crate::proto::{self, Request};

/// How long the shim keeps reading a process's output after it exited, for processes that
/// still hold the pipes open (only possible without a pid namespace).
const DRAIN_WAIT: Duration = Duration::from_secs(2);
/// How long output stays unread, waiting for the attach that `docker run` makes before start.
pub const ATTACH_WAIT: Duration = Duration::from_secs(5);
/// Above this many bytes queued for a client (or for a process's stdin), the shim stops
/// reading the source: the writer waits, as with a slow terminal.
const HIGH_WATER: usize = 1 << 20;
/// How long clients get to read their last frames once the container has exited.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// One process the shim watches: the container's init (key "") or an exec'd one.
struct Proc {
    pid: i32,
    status: Option<i32>,
    exited_at: Option<Instant>,
    tty: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    /// stdout and stderr pipes; with a tty both are `None` and the master carries the output.
    outs: [Option<OwnedFd>; 2],
    tty_open: bool,
    stdin_once: bool,
    stdin_queue: Vec<u8>,
    close_stdin_when_flushed: bool,
    /// Only the init's output goes to the container's log.
    lines: Option<[LineBuffer; 2]>,
}

impl Proc {
    /// An exec'd process on a terminal: the pty's master (non-blocking) carries its input
    /// and output.
    fn on_terminal(pid: i32, master: OwnedFd) -> Proc {
        set_nonblocking(master.as_raw_fd());
        Proc {
            pid,
            status: None,
            exited_at: None,
            tty: Some(master),
            tty_open: true,
            stdin: None,
            outs: [None, None],
            stdin_once: true,
            stdin_queue: Vec::new(),
            close_stdin_when_flushed: false,
            lines: None,
        }
    }

    fn output_open(&self) -> bool {
        self.tty_open || self.outs.iter().any(Option::is_some)
    }
}

enum ClientState {
    /// Waiting for the request line.
    Header,
    Attached {
        proc: String,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    /// Answered; closed once its frames are written.
    Closing,
}

struct Client {
    sock: OwnedFd,
    state: ClientState,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    read_closed: bool,
}

pub struct Server<'a> {
    pub bundle: &'a Path,
    pub cgroup: Option<&'a Cgroup>,
    pub log: JsonLog,
    listener: Option<OwnedFd>,
    procs: HashMap<String, Proc>,
    clients: Vec<Client>,
    /// Set while the init's output waits for a first attach.
    attach_wait: Option<Instant>,
    init_status: Option<i32>,
    /// Set when another OCI runtime runs the container: it execs too.
    oci: Option<OciExec<'a>>,
}

/// What an exec through another OCI runtime needs.
pub struct OciExec<'a> {
    pub runtime: &'a crate::oci::OciRuntime,
    pub id: &'a str,
    /// The shim's socket, beside which console sockets go.
    pub shim_socket: Option<&'a Path>,
}

/// The init's stdio as the shim holds it.
pub struct InitIo {
    pub pid: i32,
    pub tty: Option<OwnedFd>,
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    pub stdin_once: bool,
}

impl<'a> Server<'a> {
    pub fn new(
        bundle: &'a Path,
        cgroup: Option<&'a Cgroup>,
        log: JsonLog,
        listener: Option<OwnedFd>,
        init: InitIo,
        wait_attach: bool,
    ) -> Server<'a> {
        for fd in [&init.tty, &init.stdin, &init.stdout, &init.stderr].into_iter().flatten() {
            set_nonblocking(fd.as_raw_fd());
        }
        let proc = Proc {
            pid: init.pid,
            status: None,
            exited_at: None,
            tty_open: init.tty.is_some(),
            tty: init.tty,
            stdin: init.stdin,
            outs: [init.stdout, init.stderr],
            stdin_once: init.stdin_once,
            stdin_queue: Vec::new(),
            close_stdin_when_flushed: false,
            lines: Some([LineBuffer::new("stdout"), LineBuffer::new("stderr")]),
        };
        let mut procs = HashMap::new();
        procs.insert(String::new(), proc);
        Server {
            bundle,
            cgroup,
            log,
            listener,
            procs,
            clients: Vec::new(),
            attach_wait: wait_attach.then(|| Instant::now() + ATTACH_WAIT),
            init_status: None,
            oci: None,
        }
    }

    /// Execs go through another OCI runtime, the one that runs the container.
    pub fn with_oci(mut self, oci: Option<OciExec<'a>>) -> Server<'a> {
        self.oci = oci;
        self
    }

    /// Runs until the init has exited and its output is drained; returns its wait status.
    pub fn run(&mut self, sigfd: RawFd) -> Option<i32> {
        let mut buf = vec![0u8; logs::MAX_LINE];
        let mut flush_deadline: Option<Instant> = None;
        loop {
            if self.attach_wait.is_some_and(|d| Instant::now() >= d) {
                self.attach_wait = None;
            }
            self.finish_exited();
            if !self.procs.contains_key("") {
                let pending = self.clients.iter().any(|c| !c.outbuf.is_empty());
                let deadline = *flush_deadline.get_or_insert_with(|| Instant::now() + FLUSH_WAIT);
                if !pending || Instant::now() >= deadline {
                    break;
                }
            }
            let mut pfds: Vec<libc::pollfd> = Vec::new();
            let mut what: Vec<Slot> = Vec::new();
            let mut add = |fd: RawFd, events: i16, slot: Slot| {
                pfds.push(libc::pollfd { fd, events, revents: 0 });
                what.push(slot);
            };
            add(sigfd, libc::POLLIN, Slot::Signal);
            if let Some(l) = &self.listener {
                add(l.as_raw_fd(), libc::POLLIN, Slot::Listener);
            }
            for (key, p) in &self.procs {
                let paused = (key.is_empty() && self.attach_wait.is_some())
                    || self.clients.iter().any(|c| c.attached_to(key) && c.outbuf.len() > HIGH_WATER);
                if !paused {
                    if let (Some(t), true) = (&p.tty, p.tty_open) {
                        add(t.as_raw_fd(), libc::POLLIN, Slot::Out(key.clone(), 0));
                    }
                    for (i, o) in p.outs.iter().enumerate() {
                        if let Some(o) = o {
                            add(o.as_raw_fd(), libc::POLLIN, Slot::Out(key.clone(), i));
                        }
                    }
                }
                if !p.stdin_queue.is_empty() {
                    if let Some(fd) = p.stdin.as_ref().or(p.tty.as_ref()) {
                        add(fd.as_raw_fd(), libc::POLLOUT, Slot::In(key.clone()));
                    }
                }
            }
            for (i, c) in self.clients.iter().enumerate() {
                let mut events = 0;
                let full = match &c.state {
                    ClientState::Attached { proc, .. } => {
                        self.procs.get(proc).is_some_and(|p| p.stdin_queue.len() > HIGH_WATER)
                    }
                    _ => false,
                };
                if !c.read_closed && !full {
                    events |= libc::POLLIN;
                }
                if !c.outbuf.is_empty() {
                    events |= libc::POLLOUT;
                }
                add(c.sock.as_raw_fd(), events, Slot::Client(i));
            }
            let timeout = self.next_timeout(flush_deadline);
            // SAFETY: poll on a valid array of pollfds of the given length.
            let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                break;
            }
            let mut dead_clients = Vec::new();
            for (k, slot) in what.into_iter().enumerate() {
                let revents = pfds[k].revents;
                if revents == 0 {
                    continue;
                }
                match slot {
                    Slot::Signal => {
                        drain_signalfd(sigfd);
                        self.reap();
                    }
                    Slot::Listener => self.accept(),
                    Slot::Out(key, i) => self.read_output(&key, i, &mut buf),
                    Slot::In(key) => self.write_stdin(&key),
                    Slot::Client(i) => {
                        if !self.service_client(i, revents, &mut buf) {
                            dead_clients.push(i);
                        }
                    }
                }
            }
            // Clients that finished answering and flushed go too.
            for (i, c) in self.clients.iter().enumerate() {
                if matches!(c.state, ClientState::Closing) && c.outbuf.is_empty() && !dead_clients.contains(&i) {
                    dead_clients.push(i);
                }
            }
            dead_clients.sort_unstable();
            for i in dead_clients.into_iter().rev() {
                let c = self.clients.remove(i);
                self.client_gone(&c);
            }
        }
        for p in self.procs.values_mut() {
            if let Some(lines) = &mut p.lines {
                for l in lines {
                    l.flush(&mut self.log);
                }
            }
        }
        self.init_status
    }

    fn next_timeout(&self, flush_deadline: Option<Instant>) -> i32 {
        let mut deadlines: Vec<Instant> =
            self.procs.values().filter_map(|p| p.exited_at.map(|t| t + DRAIN_WAIT)).collect();
        deadlines.extend(self.attach_wait);
        deadlines.extend(flush_deadline);
        match deadlines.into_iter().min() {
            None => -1,
            Some(d) => (d.saturating_duration_since(Instant::now()).as_millis() as i32).saturating_add(1),
        }
    }

    fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid with a valid status pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            if let Some(p) = self.procs.values_mut().find(|p| p.pid == pid && p.status.is_none()) {
                p.status = Some(status);
                p.exited_at = Some(Instant::now());
            }
        }
    }

    /// Reports the processes that exited and whose output is drained, and forgets them.
    fn finish_exited(&mut self) {
        let now = Instant::now();
        let done: Vec<String> = self
            .procs
            .iter()
            .filter(|(k, p)| {
                let Some(at) = p.exited_at else { return false };
                if k.is_empty() && self.attach_wait.is_some() {
                    return false;
                }
                !p.output_open() || now >= at + DRAIN_WAIT
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in done {
            let Some(mut p) = self.procs.remove(&key) else { continue };
            if let Some(lines) = &mut p.lines {
                for l in lines {
                    l.flush(&mut self.log);
                }
            }
            let code = exit_code(p.status);
            if key.is_empty() {
                self.init_status = p.status;
            }
            let msg = proto::frame(proto::EXIT, serde_json::json!({ "exit_code": code }).to_string().as_bytes());
            for c in &mut self.clients {
                if c.attached_to(&key) {
                    c.outbuf.extend_from_slice(&msg);
                    c.state = ClientState::Closing;
                }
            }
        }
    }

    fn accept(&mut self) {
        let Some(l) = &self.listener else { return };
        // SAFETY: accept4 on a listening socket we own; the new fd is ours.
        let fd = unsafe {
            libc::accept4(
                l.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            )
        };
        if fd < 0 {
            return;
        }
        // SAFETY: fd is a fresh socket returned by accept4.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        self.clients.push(Client {
            sock,
            state: ClientState::Header,
            inbuf: Vec::new(),
            outbuf: Vec::new(),
            read_closed: false,
        });
    }

    fn read_output(&mut self, key: &str, i: usize, buf: &mut [u8]) {
        let Some(p) = self.procs.get_mut(key) else { return };
        let tty = p.tty_open;
        let fd = if tty { p.tty.as_ref().map(|t| t.as_raw_fd()) } else { p.outs[i].as_ref().map(|o| o.as_raw_fd()) };
        let Some(fd) = fd else { return };
        match read_fd(fd, buf) {
            Read::Nothing => {}
            Read::Closed => {
                // A pty master reads EIO once no process holds the slave any more.
                if tty {
                    p.tty_open = false;
                } else {
                    p.outs[i] = None;
                }
            }
            Read::Data(n) => {
                let data = &buf[..n];
                if let Some(lines) = &mut p.lines {
                    lines[i].push(data, &mut self.log);
                }
                let msg = proto::frame(if i == 0 { proto::STDOUT } else { proto::STDERR }, data);
                for c in &mut self.clients {
                    if let ClientState::Attached { proc, stdout, stderr, .. } = &c.state {
                        if proc == key && ((i == 0 && *stdout) || (i == 1 && *stderr)) {
                            c.outbuf.extend_from_slice(&msg);
                        }
                    }
                }
            }
        }
    }

    fn write_stdin(&mut self, key: &str) {
        let Some(p) = self.procs.get_mut(key) else { return };
        let Some(fd) = p.stdin.as_ref().or(p.tty.as_ref()).map(|f| f.as_raw_fd()) else {
            p.stdin_queue.clear();
            return;
        };
        // SAFETY: writing from a valid buffer of the given length to a non-blocking fd.
        let n = unsafe { libc::write(fd, p.stdin_queue.as_ptr().cast(), p.stdin_queue.len()) };
        if n > 0 {
            p.stdin_queue.drain(..n as usize);
        } else if n < 0 {
            let errno = std::io::Error::last_os_error().raw_os_error();
            if errno != Some(libc::EAGAIN) && errno != Some(libc::EINTR) {
                // Nobody reads the container's stdin any more.
                p.stdin_queue.clear();
                p.stdin = None;
            }
        }
        if p.stdin_queue.is_empty() && p.close_stdin_when_flushed {
            close_stdin(p);
        }
    }

    /// Reads and writes one client; `false` when it is gone.
    fn service_client(&mut self, i: usize, revents: i16, buf: &mut [u8]) -> bool {
        if revents & libc::POLLOUT != 0 || revents & (libc::POLLERR | libc::POLLHUP) != 0 {
            let c = &mut self.clients[i];
            if !c.outbuf.is_empty() {
                // SAFETY: send from a valid buffer; MSG_NOSIGNAL keeps a closed peer from
                // raising SIGPIPE.
                let n = unsafe {
                    libc::send(c.sock.as_raw_fd(), c.outbuf.as_ptr().cast(), c.outbuf.len(), libc::MSG_NOSIGNAL)
                };
                if n > 0 {
                    c.outbuf.drain(..n as usize);
                } else if n < 0 {
                    let errno = std::io::Error::last_os_error().raw_os_error();
                    if errno != Some(libc::EAGAIN) && errno != Some(libc::EINTR) {
                        return false;
                    }
                }
            }
        }
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 || self.clients[i].read_closed {
            return true;
        }
        match read_fd(self.clients[i].sock.as_raw_fd(), buf) {
            Read::Nothing => true,
            Read::Closed => {
                self.clients[i].read_closed = true;
                let state = std::mem::replace(&mut self.clients[i].state, ClientState::Closing);
                match state {
                    // A client that went away before asking anything is simply gone.
                    ClientState::Header => false,
                    ClientState::Attached { proc, stdin, stdout, stderr } => {
                        if stdin {
                            self.client_closed_stdin(&proc);
                        }
                        let wants_output = stdout || stderr;
                        self.clients[i].state = ClientState::Attached { proc, stdin: false, stdout, stderr };
                        // An input-only client has nothing more to do.
                        wants_output
                    }
                    ClientState::Closing => true,
                }
            }
            Read::Data(n) => {
                self.clients[i].inbuf.extend_from_slice(&buf[..n]);
                self.process_input(i)
            }
        }
    }

    fn process_input(&mut self, i: usize) -> bool {
        if matches!(self.clients[i].state, ClientState::Header) {
            let Some(pos) = self.clients[i].inbuf.iter().position(|b| *b == b'\n') else {
                return self.clients[i].inbuf.len() <= proto::MAX_MESSAGE;
            };
            let line: Vec<u8> = self.clients[i].inbuf.drain(..=pos).collect();
            match serde_json::from_slice::<Request>(&line) {
                Ok(req) => self.handle_request(i, req),
                Err(e) => self.answer_error(i, &format!("bad request: {e}"), 125),
            }
        }
        let frames = match proto::take_frames(&mut self.clients[i].inbuf) {
            Ok(f) => f,
            Err(_) => return false,
        };
        let ClientState::Attached { proc, stdin: true, .. } = &self.clients[i].state else {
            return true;
        };
        let proc = proc.clone();
        for (kind, payload) in frames {
            match kind {
                proto::STDIN => {
                    if let Some(p) = self.procs.get_mut(&proc) {
                        if p.stdin.is_some() || p.tty.is_some() {
                            p.stdin_queue.extend_from_slice(&payload);
                        }
                    }
                }
                proto::CLOSE_STDIN => {
                    self.client_closed_stdin(&proc);
                    if let ClientState::Attached { stdin, .. } = &mut self.clients[i].state {
                        *stdin = false;
                    }
                }
                _ => {}
            }
        }
        true
    }

    /// The end of one client's input: the process's stdin closes when it is an exec'd one
    /// or the container was created with StdinOnce, and it has no terminal, as Docker does: a
    /// terminal stays open when its client ends or goes away (a detach), so a shell survives
    /// ctrl-p ctrl-q and can be attached to again.
    fn client_closed_stdin(&mut self, proc: &str) {
        let Some(p) = self.procs.get_mut(proc) else { return };
        if p.tty.is_some() {
            return;
        }
        if !proc.is_empty() || p.stdin_once {
            if p.stdin_queue.is_empty() {
                close_stdin(p);
            } else {
                p.close_stdin_when_flushed = true;
            }
        }
    }

    fn answer_error(&mut self, i: usize, message: &str, exit_code: i32) {
        let body = serde_json::json!({ "message": message, "exit_code": exit_code }).to_string();
        let c = &mut self.clients[i];
        c.outbuf.extend_from_slice(&proto::frame(proto::ERROR, body.as_bytes()));
        c.state = ClientState::Closing;
    }

    fn handle_request(&mut self, i: usize, req: Request) {
        match req {
            Request::Attach { stdin, stdout, stderr } => {
                if !self.procs.contains_key("") {
                    return self.answer_error(i, "container is not running", 125);
                }
                if stdout || stderr {
                    self.attach_wait = None;
                }
                self.clients[i].state = ClientState::Attached { proc: String::new(), stdin, stdout, stderr };
            }
            Request::Resize { exec, rows, cols } => {
                let key = exec.unwrap_or_default();
                let result = match self.procs.get(&key).and_then(|p| p.tty.as_ref()) {
                    Some(t) => wharf_runtime::tty::resize(t.as_raw_fd(), WinSize { rows, cols })
                        .map_err(|e| format!("resize terminal: {e}")),
                    None if self.procs.contains_key(&key) => Err("the process has no terminal".to_string()),
                    None => Err("the process is not running".to_string()),
                };
                match result {
                    Ok(()) => {
                        let c = &mut self.clients[i];
                        c.outbuf.extend_from_slice(&proto::frame(proto::OK, b""));
                        c.state = ClientState::Closing;
                    }
                    Err(e) => self.answer_error(i, &e, 125),
                }
            }
            Request::Exec { id, process, stdin } => {
                if id.is_empty() || self.procs.contains_key(&id) {
                    return self.answer_error(i, &format!("exec id {id:?} is not usable"), 125);
                }
                let Some(init) = self.procs.get("").filter(|p| p.status.is_none()).map(|p| p.pid) else {
                    return self.answer_error(i, "container is not running", 125);
                };
                match self.start_exec(init, *process, stdin) {
                    Ok(p) => {
                        let body = serde_json::json!({ "pid": p.pid }).to_string();
                        self.procs.insert(id.clone(), p);
                        let c = &mut self.clients[i];
                        c.outbuf.extend_from_slice(&proto::frame(proto::STARTED, body.as_bytes()));
                        c.state = ClientState::Attached { proc: id, stdin, stdout: true, stderr: true };
                    }
                    Err((message, code)) => self.answer_error(i, &message, code),
                }
            }
        }
    }

    fn start_exec(
        &mut self,
        init: i32,
        process: wharf_runtime::spec::Process,
        stdin: bool,
    ) -> Result<Proc, (String, i32)> {
        let os = |what: &str, e: std::io::Error| (format!("{what}: {e}"), 126);
        let tty = process.terminal;
        if let Some(oci) = &self.oci {
            return oci_exec(oci, self.bundle, &process, stdin);
        }
        let opts = ExecOptions { init_pid: init, process };
        let spec = crate::read_spec(self.bundle).map_err(|e| (e, 126))?;
        let run = |stdio: ChildStdio| {
            wharf_runtime::exec(self.bundle, &spec, &opts, self.cgroup, stdio)
                .map_err(|e| (e.to_string(), if e.exit_code() == 125 { 126 } else { e.exit_code() }))
        };
        if tty {
            let (ours, theirs) = wharf_runtime::tty::socketpair().map_err(|e| os("console socket", e))?;
            let stdio = ChildStdio { stdin: -1, stdout: -1, stderr: -1, console: Some(theirs.as_raw_fd()) };
            let pid = run(stdio)?;
            drop(theirs);
            let master = wharf_runtime::tty::recv_fd(ours.as_raw_fd())
                .map_err(|e| os("receive pty", e))?
                .ok_or(("exec'd process sent no terminal".to_string(), 126))?;
            return Ok(Proc::on_terminal(pid, master));
        }
        exec_on_pipes(stdin, |[stdin, stdout, stderr]| run(ChildStdio { stdin, stdout, stderr, console: None }))
    }

    fn client_gone(&mut self, c: &Client) {
        if let ClientState::Attached { proc, stdin: true, .. } = &c.state {
            let proc = proc.clone();
            self.client_closed_stdin(&proc);
        }
    }
}

/// An exec through another OCI runtime (`exec --detach`): the same pipes or terminal as an
/// exec of wharf's own, and the process is the shim's child once the runtime has exited.
fn oci_exec(
    oci: &OciExec,
    bundle: &Path,
    process: &wharf_runtime::spec::Process,
    stdin: bool,
) -> Result<Proc, (String, i32)> {
    // No sets (a privileged exec) means every capability to wharf's runtime; runc would take
    // the container's sets instead, so the whole set is spelt out.
    let mut full;
    let process = if process.capabilities.is_none() {
        let last = wharf_runtime::caps::last_cap().map_err(|e| (e, 126))? as usize;
        let all: Vec<String> = wharf_runtime::caps::NAMES.iter().take(last + 1).map(|n| n.to_string()).collect();
        full = process.clone();
        full.capabilities = Some(wharf_runtime::spec::Capabilities {
            bounding: all.clone(),
            effective: all.clone(),
            inheritable: Vec::new(),
            permitted: all,
            ambient: Vec::new(),
        });
        &full
    } else {
        process
    };
    // A failed exec is 126 unless the runtime's words say 127, as with wharf's own.
    let failed = |f: crate::oci::Failure| (f.message, if f.exit_code == 125 { 126 } else { f.exit_code });
    if process.terminal {
        let path = crate::oci::console_path(oci.shim_socket, bundle, "exec");
        let console = crate::oci::ConsoleSocket::bind(&path).map_err(|e| (e, 126))?;
        let pid = oci.runtime.exec(oci.id, bundle, process, &crate::oci::Stdio3::Console(path)).map_err(failed)?;
        let master = console.receive().map_err(|e| (e, 126))?;
        return Ok(Proc::on_terminal(pid, master));
    }
    exec_on_pipes(stdin, |fds| oci.runtime.exec(oci.id, bundle, process, &crate::oci::Stdio3::Fds(fds)).map_err(failed))
}

/// Starts an exec'd process on pipes, whichever runtime runs it: `spawn` gets the fds of its
/// stdin (/dev/null without `stdin`), stdout and stderr, and the shim keeps the other ends,
/// non-blocking.
fn exec_on_pipes(
    stdin: bool,
    spawn: impl FnOnce([RawFd; 3]) -> Result<i32, (String, i32)>,
) -> Result<Proc, (String, i32)> {
    let os = |what: &str, e: std::io::Error| (format!("{what}: {e}"), 126);
    let devnull = std::fs::File::open("/dev/null").map_err(|e| os("open /dev/null", e))?;
    let (in_r, in_w) = if stdin {
        let (r, w) = crate::pipe().map_err(|e| (e, 126))?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    let (out_r, out_w) = crate::pipe().map_err(|e| (e, 126))?;
    let (err_r, err_w) = crate::pipe().map_err(|e| (e, 126))?;
    let fds = [in_r.as_ref().map_or(devnull.as_raw_fd(), |r| r.as_raw_fd()), out_w.as_raw_fd(), err_w.as_raw_fd()];
    let pid = spawn(fds)?;
    drop((in_r, out_w, err_w, devnull));
    if let Some(w) = &in_w {
        set_nonblocking(w.as_raw_fd());
    }
    set_nonblocking(out_r.as_raw_fd());
    set_nonblocking(err_r.as_raw_fd());
    Ok(Proc {
        pid,
        status: None,
        exited_at: None,
        tty: None,
        tty_open: false,
        stdin: in_w,
        outs: [Some(out_r), Some(err_r)],
        stdin_once: true,
        stdin_queue: Vec::new(),
        close_stdin_when_flushed: false,
        lines: None,
    })
}

impl Client {
    fn attached_to(&self, key: &str) -> bool {
        matches!(&self.state, ClientState::Attached { proc, .. } if proc == key)
    }
}

enum Slot {
    Signal,
    Listener,
    Out(String, usize),
    In(String),
    Client(usize),
}

fn close_stdin(p: &mut Proc) {
    p.close_stdin_when_flushed = false;
    p.stdin = None;
}

pub fn exit_code(status: Option<i32>) -> i32 {
    match status {
        Some(s) if libc::WIFEXITED(s) => libc::WEXITSTATUS(s),
        Some(s) if libc::WIFSIGNALED(s) => 128 + libc::WTERMSIG(s),
        _ => 255,
    }
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl flag changes on an fd we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

enum Read {
    Data(usize),
    /// End of file, or an error that ends the stream just the same.
    Closed,
    Nothing,
}

fn read_fd(fd: RawFd, buf: &mut [u8]) -> Read {
    loop {
        // SAFETY: reading into a valid buffer of the given length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            return Read::Data(n as usize);
        }
        if n == 0 {
            return Read::Closed;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Read::Nothing,
            _ => return Read::Closed,
        }
    }
}

fn drain_signalfd(fd: RawFd) {
    let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
    // SAFETY: reading whole siginfo records into a buffer of that size; non-blocking fd.
    while unsafe { libc::read(fd, info.as_mut_ptr().cast(), info.len()) } > 0 {}
}
