//! `wharf-init [--] CMD [ARG...]`: pid 1 of a container run with `--init`. It starts CMD as its
//! child, forwards every catchable signal to it, reaps every zombie that is reparented to it,
//! and exits with CMD's status (128+N when CMD died of signal N), as Docker's `docker-init`.
//!
//! `wharf-init --pause`: the process that holds a CRI pod sandbox's namespaces (what the
//! `pause` image's binary is to containerd): it runs nothing, reaps the zombies a shared pid
//! namespace hands it, and exits 0 at SIGTERM, SIGINT or SIGHUP.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStringExt;

/// The few libc items used, declared here: this file is compiled on its own by `build.rs`
/// (statically linked), without crates.
#[allow(non_camel_case_types)]
mod libc {
    pub type c_int = i32;
    pub type c_char = std::ffi::c_char;
    pub type pid_t = i32;
    #[repr(C)]
    pub struct sigset_t([u64; 16]);
    #[repr(C)]
    pub struct siginfo_t([u64; 16]);
    #[repr(C)]
    pub struct timespec {
        pub tv_sec: i64,
        pub tv_nsec: i64,
    }
    pub const SIG_BLOCK: c_int = 0;
    pub const SIG_SETMASK: c_int = 2;
    pub const SIGILL: c_int = 4;
    pub const SIGTRAP: c_int = 5;
    pub const SIGABRT: c_int = 6;
    pub const SIGBUS: c_int = 7;
    pub const SIGFPE: c_int = 8;
    pub const SIGSEGV: c_int = 11;
    pub const SIGHUP: c_int = 1;
    pub const SIGINT: c_int = 2;
    pub const SIGTERM: c_int = 15;
    pub const SIGCHLD: c_int = 17;
    pub const SIGSYS: c_int = 31;
    pub const ENOENT: c_int = 2;
    pub const WNOHANG: c_int = 1;
    extern "C" {
        pub fn sigfillset(set: *mut sigset_t) -> c_int;
        pub fn sigdelset(set: *mut sigset_t, sig: c_int) -> c_int;
        pub fn sigprocmask(how: c_int, set: *const sigset_t, old: *mut sigset_t) -> c_int;
        pub fn sigtimedwait(set: *const sigset_t, info: *mut siginfo_t, timeout: *const timespec) -> c_int;
        pub fn fork() -> pid_t;
        pub fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int;
        pub fn write(fd: c_int, buf: *const std::ffi::c_void, n: usize) -> isize;
        pub fn _exit(code: c_int) -> !;
        pub fn kill(pid: pid_t, sig: c_int) -> c_int;
        pub fn waitpid(pid: pid_t, status: *mut c_int, options: c_int) -> pid_t;
    }
    #[allow(non_snake_case)]
    pub fn WIFEXITED(status: c_int) -> bool {
        status & 0x7f == 0
    }
    #[allow(non_snake_case)]
    pub fn WEXITSTATUS(status: c_int) -> c_int {
        (status >> 8) & 0xff
    }
    #[allow(non_snake_case)]
    pub fn WTERMSIG(status: c_int) -> c_int {
        status & 0x7f
    }
}

/// Signals the kernel raises for faults of this process itself; they stay unblocked.
const SYNCHRONOUS: [libc::c_int; 7] =
    [libc::SIGFPE, libc::SIGILL, libc::SIGSEGV, libc::SIGBUS, libc::SIGABRT, libc::SIGTRAP, libc::SIGSYS];

fn main() {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.len() == 1 && args[0] == "--pause" {
        std::process::exit(pause());
    }
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    if args.is_empty() {
        eprintln!("wharf-init: usage: wharf-init [--] CMD [ARG...]");
        std::process::exit(2);
    }
    let mut argv = Vec::with_capacity(args.len());
    for a in args {
        match CString::new(a.into_vec()) {
            Ok(c) => argv.push(c),
            Err(_) => {
                eprintln!("wharf-init: argument contains a NUL byte");
                std::process::exit(2);
            }
        }
    }
    std::process::exit(run(&argv));
}

fn run(argv: &[CString]) -> i32 {
    // SAFETY: plain libc calls on a sigset owned here; the child only calls async-signal-safe
    // functions (sigprocmask, execvp, write, _exit) before it execs.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        for s in SYNCHRONOUS {
            libc::sigdelset(&mut all, s);
        }
        // Blocked signals stay pending even for a namespace's init (which drops signals it
        // has no handler for), so sigtimedwait below sees them all.
        if libc::sigprocmask(libc::SIG_BLOCK, &all, &mut old) != 0 {
            eprintln!("wharf-init: sigprocmask: {}", std::io::Error::last_os_error());
            return 1;
        }
        let child = libc::fork();
        if child < 0 {
            eprintln!("wharf-init: fork: {}", std::io::Error::last_os_error());
            return 1;
        }
        if child == 0 {
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
            ptrs.push(std::ptr::null());
            libc::execvp(ptrs[0], ptrs.as_ptr());
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            let msg = b"wharf-init: exec failed\n";
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::_exit(if errno == libc::ENOENT { 127 } else { 126 });
        }
        let timeout = libc::timespec { tv_sec: 1, tv_nsec: 0 };
        loop {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::sigtimedwait(&all, &mut info, &timeout);
            if sig > 0 && sig != libc::SIGCHLD {
                libc::kill(child, sig);
            }
            // Reap everything that has exited, ours or orphans reparented to pid 1.
            loop {
                let mut status = 0;
                let pid = libc::waitpid(-1, &mut status, libc::WNOHANG);
                if pid <= 0 {
                    break;
                }
                if pid == child {
                    let code = if libc::WIFEXITED(status) {
                        libc::WEXITSTATUS(status)
                    } else {
                        128 + libc::WTERMSIG(status)
                    };
                    return code;
                }
            }
        }
    }
}

/// `--pause`: waits for a signal that ends it, reaping whatever exits meanwhile.
fn pause() -> i32 {
    // SAFETY: plain libc calls on a sigset owned here.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        for s in SYNCHRONOUS {
            libc::sigdelset(&mut all, s);
        }
        if libc::sigprocmask(libc::SIG_BLOCK, &all, std::ptr::null_mut()) != 0 {
            eprintln!("wharf-init: sigprocmask: {}", std::io::Error::last_os_error());
            return 1;
        }
        let timeout = libc::timespec { tv_sec: 60, tv_nsec: 0 };
        loop {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::sigtimedwait(&all, &mut info, &timeout);
            if sig == libc::SIGTERM || sig == libc::SIGINT || sig == libc::SIGHUP {
                return 0;
            }
            loop {
                let mut status = 0;
                if libc::waitpid(-1, &mut status, libc::WNOHANG) <= 0 {
                    break;
                }
            }
        }
    }
}
