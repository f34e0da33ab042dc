//! Interactive sessions driven through a real pseudo-terminal, as a person at a terminal
//! would: `run -it`, typing, window size and its changes, detach with ctrl-p ctrl-q and
//! re-attach, several attachers, `start -ai`, `exec -it`, and the `logs=1` attach parameter.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{registry, wait_for, Cli, Daemon};

/// A client running on the slave side of a pty; the test holds the master.
struct Terminal {
    master: File,
    child: Child,
    seen: String,
}

impl Terminal {
    fn spawn(mut cmd: Command, rows: u16, cols: u16) -> Terminal {
        let (mut master, mut slave) = (-1, -1);
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: openpty writes two fds through valid pointers; name and termios may be null.
        let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &ws) };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both fds were just opened by openpty and are owned here alone.
        let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let io = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup pty slave"));
        cmd.stdin(io(&slave)).stdout(io(&slave)).stderr(io(&slave));
        // SAFETY: setsid and ioctl are async-signal-safe; the child makes the pty its
        // controlling terminal so that it gets SIGWINCH as a terminal program does.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn client on the pty");
        drop(slave);
        // SAFETY: the master fd stays open for the life of `master`.
        unsafe {
            let flags = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        Terminal { master, child, seen: String::new() }
    }

    fn type_in(&mut self, s: &str) {
        self.master.write_all(s.as_bytes()).expect("write to the pty");
    }

    /// Reads until `needle` shows up in what was not consumed yet, and consumes up to it;
    /// panics after 20 s.
    #[track_caller]
    fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        loop {
            if let Some(i) = self.seen.find(needle) {
                let upto = self.seen[..i + needle.len()].to_string();
                self.seen.drain(..i + needle.len());
                return upto;
            }
            match self.master.read(&mut buf) {
                Ok(0) => {}
                Ok(n) => {
                    self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // EIO: every slave fd is closed; nothing more will come.
                Err(_) => panic!("pty closed before {needle:?} appeared; read: {:?}", self.seen),
            }
            assert!(Instant::now() < deadline, "no {needle:?} within 20 s; read: {:?}", self.seen);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether `needle` shows up within `timeout` (consumed up to it if so).
    fn saw(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        loop {
            if let Some(i) = self.seen.find(needle) {
                self.seen.drain(..i + needle.len());
                return true;
            }
            match self.master.read(&mut buf) {
                Ok(n) if n > 0 => {
                    self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                    continue;
                }
                Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return false,
                _ => {}
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn resize(&mut self, rows: u16, cols: u16) {
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads one winsize through a valid pointer; the kernel then sends
        // SIGWINCH to the terminal's foreground process group.
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        assert_eq!(rc, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    /// The client's exit status; panics if it is still running after 20 s.
    #[track_caller]
    fn exit_code(&mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        loop {
            // Keep draining so that the client never blocks on a full terminal.
            if let Ok(n) = self.master.read(&mut buf) {
                self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            if let Some(st) = self.child.try_wait().expect("wait for client") {
                return st.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("client still running after 20 s; read: {:?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn image(d: &Daemon) -> String {
    let image = registry().image("library/busybox:latest");
    d.wharf(&["pull", "-q", &image]).ok();
    image
}

/// `run -it busybox sh`: typed commands run, the terminal's size is the container's, a
/// resize is seen at once, and the shell's exit status is the client's.
fn run_it_session(cli: Cli) {
    let d = Daemon::start();
    let image = image(&d);
    let mut t = Terminal::spawn(d.command(cli, &["run", "-it", "--rm", "--name", "box", &image, "sh"]), 33, 101);
    t.expect("# ");
    t.type_in("echo hi$((1+1)); stty size\r");
    t.expect("hi2");
    t.expect("33 101");
    t.resize(40, 120);
    // The resize travels as a signal and a request; give it a moment before asking.
    let resized = (0..10).any(|_| {
        t.type_in("stty size | tr ' ' x\r");
        t.saw("40x120", Duration::from_millis(500))
    });
    assert!(resized, "the container's terminal never took the new size; read: {:?}", t.seen);
    t.type_in("tty; exit 3\r");
    t.expect("/dev/pts/0");
    assert_eq!(t.exit_code(), 3, "read: {:?}", t.seen);
    assert!(wait_for(Duration::from_secs(10), || !d.cli(cli, &["ps", "-aq"]).all().contains(char::is_alphanumeric)));
}
both!(run_it_session);

/// Detach with ctrl-p ctrl-q leaves the container running; attach gets the shell back, with
/// a second attacher seeing the same output; the exit status comes back to the attacher.
fn detach_and_reattach(cli: Cli) {
    let d = Daemon::start();
    let image = image(&d);
    let mut t = Terminal::spawn(d.command(cli, &["run", "-it", "--name", "box", &image, "sh"]), 24, 80);
    t.expect("# ");
    t.type_in("echo before\r");
    t.expect("before");
    t.type_in("\x10\x11");
    assert_eq!(t.exit_code(), 0, "read: {:?}", t.seen);
    assert_eq!(d.inspect(cli, "box")["State"]["Running"], true);

    let mut a = Terminal::spawn(d.command(cli, &["attach", "box"]), 24, 80);
    let mut b = Terminal::spawn(d.command(cli, &["attach", "--no-stdin", "box"]), 24, 80);
    // Both attaches are connected once an echo typed into the first shows up in the second.
    let seen_by_both = wait_for(Duration::from_secs(10), || {
        a.type_in("echo mark$((6*7))\r");
        a.expect("mark42");
        std::thread::sleep(Duration::from_millis(200));
        b.seen.contains("mark42") || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = b.master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                b.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            b.seen.contains("mark42")
        }
    });
    assert!(seen_by_both, "second attacher saw: {:?}", b.seen);
    a.type_in("exit 5\r");
    assert_eq!(a.exit_code(), 5, "read: {:?}", a.seen);
    assert_eq!(b.exit_code(), 5, "read: {:?}", b.seen);
    assert_eq!(d.inspect(cli, "box")["State"]["ExitCode"], 5);
    d.cli(cli, &["rm", "box"]).ok();
}
both!(detach_and_reattach);

/// `--detach-keys` replaces ctrl-p ctrl-q; `attach` to a stopped container is refused.
fn custom_detach_keys(cli: Cli) {
    let d = Daemon::start();
    let image = image(&d);
    let mut t = Terminal::spawn(
        d.command(cli, &["run", "-it", "--detach-keys", "ctrl-a,x", "--name", "box", &image, "sh"]),
        24,
        80,
    );
    t.expect("# ");
    // The default keys are ordinary input now.
    t.type_in("\x10\x11echo still\r");
    t.expect("still");
    t.type_in("\x01x");
    assert_eq!(t.exit_code(), 0, "read: {:?}", t.seen);
    assert_eq!(d.inspect(cli, "box")["State"]["Running"], true);
    d.cli(cli, &["kill", "box"]).ok();
    d.wait_exited(cli, "box");
    d.cli(cli, &["attach", "box"]).fails().mentions(&["start it first"]);
    d.cli(cli, &["rm", "box"]).ok();
}
both!(custom_detach_keys);

/// `start -ai` of a created `-it` container: an interactive session as `run -it` gives.
fn start_attach_interactive(cli: Cli) {
    let d = Daemon::start();
    let image = image(&d);
    d.cli(cli, &["create", "-it", "--name", "box", &image, "sh"]).ok();
    let mut t = Terminal::spawn(d.command(cli, &["start", "-ai", "box"]), 24, 80);
    t.expect("# ");
    t.type_in("echo started; exit 4\r");
    t.expect("started");
    assert_eq!(t.exit_code(), 4, "read: {:?}", t.seen);
    // `start -a` without a terminal: the output, and the status.
    d.cli(cli, &["create", "--name", "plain", &image, "sh", "-c", "echo out; echo err >&2; exit 2"]).ok();
    let out = d.cli(cli, &["start", "-a", "plain"]);
    out.code_is(2);
    assert!(out.stdout.contains("out") && out.stderr.contains("err"), "{out}");
    d.cli(cli, &["rm", "box", "plain"]).ok();
}
both!(start_attach_interactive);

/// `exec -it` gets its own terminal of our size inside the running container.
fn exec_it_session(cli: Cli) {
    let d = Daemon::start();
    let image = image(&d);
    d.cli(cli, &["run", "-d", "--name", "box", &image, "sleep", "60"]).ok();
    let mut t = Terminal::spawn(d.command(cli, &["exec", "-it", "-w", "/tmp", "-e", "X=y", "box", "sh"]), 21, 77);
    t.expect("# ");
    t.type_in("echo $X-$(pwd); stty size; exit 6\r");
    t.expect("y-/tmp");
    t.expect("21 77");
    assert_eq!(t.exit_code(), 6, "read: {:?}", t.seen);
    d.cli(cli, &["rm", "-f", "box"]).ok();
}
both!(exec_it_session);

/// wharf exec's flags without a terminal: exit codes, -u/-e/-w, -d, --privileged, -i.
#[test]
fn wharf_exec_flags() {
    let d = Daemon::start();
    let image = image(&d);
    d.wharf(&["run", "-d", "--name", "box", "-e", "FOO=bar", &image, "sleep", "60"]).ok();
    assert_eq!(d.wharf(&["exec", "box", "sh", "-c", "echo $FOO; id -u"]).ok().trimmed(), "bar\n0");
    let out =
        d.wharf(&["exec", "-u", "nobody", "-e", "FOO=baz", "-w", "/tmp", "box", "sh", "-c", "echo $FOO; pwd; id -u"]);
    assert_eq!(out.ok().trimmed(), "baz\n/tmp\n65534");
    d.wharf(&["exec", "box", "sh", "-c", "exit 9"]).code_is(9);
    d.wharf(&["exec", "box", "nosuch"]).code_is(127);
    d.wharf(&["exec", "box", "sh", "-c", "echo to-stderr >&2"]).ok().mentions(&["to-stderr"]);
    d.wharf(&["exec", "-d", "box", "sh", "-c", "echo done > /tmp/flag"]).ok();
    assert!(wait_for(Duration::from_secs(5), || d.wharf(&["exec", "box", "cat", "/tmp/flag"]).success()));
    // Every capability this host has (the test may itself run without some).
    let host = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let host = host.lines().find(|l| l.starts_with("CapBnd:")).expect("CapBnd").trim_start_matches("CapBnd:").trim();
    let caps =
        d.wharf(&["exec", "--privileged", "box", "grep", "CapEff", "/proc/self/status"]).ok().trimmed().to_string();
    assert!(caps.ends_with(host), "{caps} vs the host's {host}");
    let mut cmd = d.command(Cli::Wharf, &["exec", "-i", "box", "sh", "-c", "tr a-z A-Z"]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn wharf exec -i");
    child.stdin.take().expect("stdin").write_all(b"shout\n").expect("write stdin");
    let out = child.wait_with_output().expect("wait for wharf exec -i");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "SHOUT");
    d.wharf(&["exec", "nosuch", "true"]).fails().mentions(&["nosuch"]);
    d.wharf(&["rm", "-f", "box"]).ok();
}

/// `attach` with `logs=1`: what the container wrote before comes first (docker-py and the
/// API's own users ask for it; the CLIs do not).
#[test]
fn attach_logs_replay() {
    let d = Daemon::start();
    let image = image(&d);
    d.wharf(&["run", "-d", "--name", "box", &image, "sh", "-c", "echo early; sleep 60"]).ok();
    assert!(wait_for(Duration::from_secs(5), || d.wharf(&["logs", "box"]).all().contains("early")));
    let reply = crate::harness::http_unix(&d.sock, "POST", "/containers/box/attach?logs=1&stdout=1&stderr=1")
        .expect("attach with logs=1 and no stream");
    assert!(reply.contains("early"), "{reply}");
    d.wharf(&["rm", "-f", "box"]).ok();
}
