//! Interactive sessions: `exec`, `attach`, and the stdio of `run` and `start -a`: one
//! hijacked connection carries our stdin to the process and its output back, the terminal is
//! raw while a TTY session lasts, and its size follows ours (SIGWINCH).

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use wharf_client::{copy_raw, AttachStreams, Attached, Client, Demuxer, Resize};

use crate::run::{short, spawn_wait, EXIT_FAILED};
use crate::Exit;

use wharf_types::detach::{DetachScanner, DEFAULT_DETACH_KEYS};

#[derive(Debug, Subcommand)]
pub enum InteractiveCommand {
    /// Execute a command in a running container
    Exec(ExecFlags),
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachFlags),
}

#[derive(Debug, Args)]
pub struct ExecFlags {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    pub container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AttachFlags {
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    pub container: String,
}

pub fn run(client: &Client, c: InteractiveCommand) -> Result<()> {
    match c {
        InteractiveCommand::Exec(f) => exec(client, &f),
        InteractiveCommand::Attach(f) => attach(client, &f),
    }
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The output ended: the process is gone (or the daemon closed the connection).
    Ended,
    /// We typed the detach keys; the process goes on.
    Detached,
}

/// What a session carries.
pub struct SessionOptions {
    pub tty: bool,
    /// Our stdin goes to the process.
    pub stdin: bool,
    /// The detach keys as given (`ctrl-p,ctrl-q`); `None` for the default.
    pub detach_keys: Option<String>,
    /// Where a new terminal size is posted: the container's TTY or the exec's.
    pub resize: Resize,
}

/// Copies our stdin to the session and its output to our stdout/stderr until the output ends.
pub fn stream(client: &Client, attached: Attached, opts: &SessionOptions) -> Result<SessionEnd> {
    let _raw = if opts.tty && opts.stdin { RawTerminal::enter() } else { None };
    if opts.tty {
        follow_terminal_size(client, &opts.resize);
    }
    let detached = Arc::new(AtomicBool::new(false));
    if opts.stdin {
        let mut input = attached.input().context("share the attach connection")?;
        // Docker reads detach keys from a terminal's input only.
        let keys = if opts.tty {
            match &opts.detach_keys {
                Some(k) => parse_detach_keys(k).unwrap_or_default(),
                None => DEFAULT_DETACH_KEYS.to_vec(),
            }
        } else {
            Vec::new()
        };
        let detached = detached.clone();
        std::thread::spawn(move || {
            let mut scanner = DetachScanner::new(keys);
            let mut buf = [0u8; 4096];
            let mut stdin = std::io::stdin().lock();
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if scanner.feed(&buf[..n]).1 {
                    detached.store(true, Ordering::SeqCst);
                }
                // The daemon sees the keys too and ends the session on its side.
                if input.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            let _ = input.close_stdin();
        });
    }
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    let copied = if opts.tty {
        copy_raw(attached, &mut stdout)
    } else {
        Demuxer::new(attached).copy_to(&mut stdout, &mut stderr)
    };
    let _ = stdout.flush();
    if detached.load(Ordering::SeqCst) {
        return Ok(SessionEnd::Detached);
    }
    if let Err(e) = copied {
        // Output may be cut short while the exit status is still known: report and go on.
        eprintln!("wharf: {e}");
    }
    Ok(SessionEnd::Ended)
}

/// `wharf exec`: the command's exit status comes back as an [`Exit`] error.
fn exec(client: &Client, f: &ExecFlags) -> Result<()> {
    let mut env = Vec::new();
    for file in &f.env_file {
        let text = std::fs::read_to_string(file).with_context(|| format!("read env file {file}"))?;
        env.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .filter_map(|l| env_entry(l, &|k| std::env::var(k).ok())),
        );
    }
    env.extend(f.env.iter().filter_map(|e| env_entry(e, &|k| std::env::var(k).ok())));
    let attach = !f.detach;
    let mut body = json!({
        "AttachStdin": attach && f.interactive,
        "AttachStdout": attach,
        "AttachStderr": attach,
        "Tty": f.tty,
        "Privileged": f.privileged,
        "Env": env,
        "Cmd": f.command,
    });
    if let Some(u) = &f.user {
        body["User"] = json!(u);
    }
    if let Some(w) = &f.workdir {
        body["WorkingDir"] = json!(w);
    }
    if let Some(k) = &f.detach_keys {
        body["DetachKeys"] = json!(k);
    }
    if f.tty {
        if let Some((rows, cols)) = terminal_size() {
            body["ConsoleSize"] = json!([rows, cols]);
        }
    }
    let created: Value = client.exec_create(&f.container, &body)?;
    let id = created["Id"].as_str().ok_or_else(|| anyhow!("exec in {}: the daemon gave no exec id", f.container))?;
    let start = json!({ "Detach": f.detach, "Tty": f.tty });
    if f.detach {
        client.exec_start(id, &start)?;
        return Ok(());
    }
    let attached = client.exec_start_attached(id, &start, &format!("start exec in {}", f.container))?;
    let opts = SessionOptions {
        tty: f.tty,
        stdin: f.interactive,
        detach_keys: f.detach_keys.clone(),
        resize: Resize::Exec(id.to_string()),
    };
    if stream(client, attached, &opts)? == SessionEnd::Detached {
        return Ok(());
    }
    let code = exec_exit_code(client, id)?;
    if code != 0 {
        return Err(Exit::silent(code).into());
    }
    Ok(())
}

/// The exit code of a finished exec; the daemon may record it a moment after the output ends.
fn exec_exit_code(client: &Client, id: &str) -> Result<i32> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let v: Value = client.exec_inspect(id)?;
        let running = v["Running"].as_bool().unwrap_or(false);
        if let (false, Some(code)) = (running, v["ExitCode"].as_i64()) {
            return Ok(code as i32);
        }
        if std::time::Instant::now() > deadline {
            return Err(anyhow!("exec {}: no exit code after its output ended", short(id)));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `KEY=VALUE` as given; a bare `KEY` takes our value, as docker does (dropped when unset).
fn env_entry(spec: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if spec.contains('=') {
        return Some(spec.to_string());
    }
    lookup(spec).map(|v| format!("{spec}={v}"))
}

/// `wharf attach`: ends with the container's exit status, or 0 when detached.
fn attach(client: &Client, f: &AttachFlags) -> Result<()> {
    let info: Value = client.container_inspect(&f.container, false)?;
    let id = info["Id"].as_str().unwrap_or(&f.container).to_string();
    if !info["State"]["Running"].as_bool().unwrap_or(false) {
        return Err(Exit::new(1, "wharf: you cannot attach to a stopped container, start it first".to_string()).into());
    }
    if info["State"]["Paused"].as_bool().unwrap_or(false) {
        return Err(Exit::new(1, format!("wharf: container {} is paused, unpause it first", short(&id))).into());
    }
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = !f.no_stdin && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    if f.sig_proxy && !tty {
        crate::run::proxy_signals(client, &id);
    }
    let exit = spawn_wait(client, &id, false);
    let streams = AttachStreams { stdin, stdout: true, stderr: true, logs: false, detach_keys: f.detach_keys.clone() };
    let attached = client.attach_streams(&id, streams).with_context(|| format!("attach to {}", short(&id)))?;
    let opts = SessionOptions { tty, stdin, detach_keys: f.detach_keys.clone(), resize: Resize::Container(id.clone()) };
    if stream(client, attached, &opts)? == SessionEnd::Detached {
        return Ok(());
    }
    finish(exit.recv().map_err(|_| anyhow!("waiting for container {}: no answer", short(&id)))??, &id)
}

/// Turns a wait's answer into our exit: the container's own status.
pub fn finish(status: wharf_client::WaitResponse, id: &str) -> Result<()> {
    if let Some(msg) = status.error.as_ref().map(|e| e.message.as_str()).filter(|m| !m.is_empty()) {
        return Err(Exit::new(EXIT_FAILED, format!("wharf: waiting for container {}: {msg}", short(id))).into());
    }
    if status.status_code != 0 {
        return Err(Exit::silent(status.status_code as i32).into());
    }
    Ok(())
}

/// Parses Docker's `--detach-keys` (`ctrl-p,ctrl-q`, `a,ctrl-@`); empty disables.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>> {
    wharf_types::detach::parse_detach_keys(spec).map_err(|e| anyhow!(e))
}

/// The terminal on stdin switched to raw mode; the saved settings come back on drop.
pub struct RawTerminal {
    saved: libc::termios,
}

impl RawTerminal {
    /// `None` when stdin is not a terminal.
    pub fn enter() -> Option<RawTerminal> {
        // SAFETY: termios is plain data, filled in by tcgetattr before use.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd 0 is ours to query; `saved` is a valid out pointer. Fails on a non-terminal.
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut saved) } != 0 {
            return None;
        }
        let mut raw = saved;
        // SAFETY: `raw` is a valid termios; cfmakeraw only edits its flags.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: `raw` holds settings derived from the terminal's own.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) } != 0 {
            return None;
        }
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: restores the settings read from this same terminal.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved) };
    }
}

/// Rows and columns of our terminal (stdout, else stdin), if we have one.
pub fn terminal_size() -> Option<(u16, u16)> {
    for fd in [libc::STDOUT_FILENO, libc::STDIN_FILENO] {
        // SAFETY: winsize is plain data, filled in by the ioctl.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes one winsize through a valid pointer.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0 {
            return Some((ws.ws_row, ws.ws_col));
        }
    }
    None
}

/// The write end of the pipe the SIGWINCH handler pokes; -1 until installed.
static WINCH_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_winch(_: libc::c_int) {
    let fd = WINCH_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the byte is a static. A full pipe already
        // holds a wake-up, so a failed write loses nothing.
        unsafe { libc::write(fd, b"w".as_ptr().cast(), 1) };
    }
}

/// Posts our terminal's size now and again on every SIGWINCH, from a thread of its own.
fn follow_terminal_size(client: &Client, resize: &Resize) {
    let post = {
        let client = client.clone();
        let resize = resize.clone();
        move || {
            if let Some((rows, cols)) = terminal_size() {
                let _ = client.resize(&resize, rows, cols);
            }
        }
    };
    post();
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills two fds through a valid pointer to an array of two.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return;
    }
    let (rd, wr) = (fds[0], fds[1]);
    // The read end blocks for the thread; only the handler's write end must never block.
    // SAFETY: fcntl on the fd just created, with valid flags.
    unsafe { libc::fcntl(rd, libc::F_SETFL, 0) };
    WINCH_PIPE.store(wr, Ordering::SeqCst);
    // SAFETY: sigaction is plain data; the handler only calls async-signal-safe functions.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_winch as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGWINCH, &sa, std::ptr::null_mut());
    }
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reads into a valid buffer from the pipe's read end, owned by this thread.
            let n = unsafe { libc::read(rd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return;
            }
            post();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_entries_take_our_value_for_a_bare_name() {
        let lookup = |k: &str| (k == "HOME").then(|| "/root".to_string());
        assert_eq!(env_entry("A=b", &lookup).as_deref(), Some("A=b"));
        assert_eq!(env_entry("HOME", &lookup).as_deref(), Some("HOME=/root"));
        assert_eq!(env_entry("UNSET", &lookup), None);
    }
}
