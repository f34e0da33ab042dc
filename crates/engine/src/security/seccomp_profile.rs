//! Docker's seccomp profile format (the OCI one plus conditions on capabilities,
//! architectures and kernel version), its resolution for one container, and Docker's default
//! profile as data. The options and checks that choose a profile are in `security`.

use serde::{Deserialize, Serialize};
use wharf_runtime::seccomp::{self, ArgRule, LinuxSeccomp, SyscallRule};

use super::invalid;
use crate::EngineError;

/// Docker's seccomp profile format: the OCI one plus conditions on capabilities, architectures
/// and kernel version, resolved per container.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerProfile {
    pub default_action: String,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub arch_map: Vec<ArchMap>,
    #[serde(default)]
    pub syscalls: Vec<DockerSyscall>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default)]
    pub sub_architectures: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerSyscall {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub names: Vec<String>,
    pub action: String,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Vec<ArgRule>,
    #[serde(default)]
    pub includes: Filter,
    #[serde(default)]
    pub excludes: Filter,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default)]
    pub caps: Vec<String>,
    #[serde(default)]
    pub arches: Vec<String>,
    #[serde(default)]
    pub min_kernel: String,
}

fn native_arch() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    }
}

fn kernel_at_least(min: &str) -> bool {
    let parse = |s: &str| -> (u32, u32) {
        let mut it = s.split(|c: char| !c.is_ascii_digit()).filter(|x| !x.is_empty()).map(|x| x.parse().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    };
    let running = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    parse(&running) >= parse(min)
}

/// Resolves a Docker profile for one container: architectures of the host, entries whose
/// capability, architecture and kernel conditions hold.
pub(crate) fn resolve(p: &DockerProfile, caps: &[String]) -> Result<LinuxSeccomp, EngineError> {
    let native = match native_arch() {
        "arm64" => "SCMP_ARCH_AARCH64",
        _ => "SCMP_ARCH_X86_64",
    };
    let mut architectures = p.architectures.clone();
    for m in p.arch_map.iter().filter(|m| m.architecture == native) {
        architectures.push(m.architecture.clone());
        architectures.extend(m.sub_architectures.iter().cloned());
    }
    let has = |c: &String| caps.iter().any(|x| x == c);
    let mut syscalls = Vec::new();
    for s in &p.syscalls {
        let inc = &s.includes;
        if !inc.caps.iter().all(has) {
            continue;
        }
        if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == native_arch()) {
            continue;
        }
        if !inc.min_kernel.is_empty() && !kernel_at_least(&inc.min_kernel) {
            continue;
        }
        let exc = &s.excludes;
        if exc.caps.iter().any(has) || exc.arches.iter().any(|a| a == native_arch()) {
            continue;
        }
        let mut names = s.names.clone();
        if !s.name.is_empty() {
            names.push(s.name.clone());
        }
        syscalls.push(SyscallRule { names, action: s.action.clone(), errno_ret: s.errno_ret, args: s.args.clone() });
    }
    let out = LinuxSeccomp {
        default_action: p.default_action.clone(),
        default_errno_ret: p.default_errno_ret,
        architectures,
        flags: Vec::new(),
        syscalls,
    };
    seccomp::compile(&out).map_err(|e| invalid(e.to_string()))?;
    Ok(out)
}

fn entry(names: &[&str], action: &str) -> DockerSyscall {
    DockerSyscall {
        names: names.iter().map(|s| s.to_string()).collect(),
        action: action.to_string(),
        ..Default::default()
    }
}

fn with_caps(mut e: DockerSyscall, caps: &[&str]) -> DockerSyscall {
    e.includes.caps = caps.iter().map(|s| s.to_string()).collect();
    e
}

fn on_arches(mut e: DockerSyscall, arches: &[&str]) -> DockerSyscall {
    e.includes.arches = arches.iter().map(|s| s.to_string()).collect();
    e
}

fn cmp(index: u32, value: u64, value_two: u64, op: &str) -> ArgRule {
    ArgRule { index, value, value_two, op: op.to_string() }
}

/// Namespace flags clone must not carry without CAP_SYS_ADMIN: NEWNS, NEWCGROUP, NEWUTS,
/// NEWIPC, NEWUSER, NEWPID, NEWNET.
const CLONE_NS_FLAGS: u64 = 0x7E02_0000;

const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// Docker's default profile, written as data: deny with EPERM, allow the list above, and open
/// the rest by capability, architecture and argument as Docker does.
pub fn default_profile() -> DockerProfile {
    const ALLOW: &str = "SCMP_ACT_ALLOW";
    let mut s = vec![entry(ALLOWED, ALLOW)];
    // Only these execution domains (Linux, with UNAME26, READ_IMPLIES_EXEC, and a query).
    for v in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
        let mut e = entry(&["personality"], ALLOW);
        e.args = vec![cmp(0, v, 0, "SCMP_CMP_EQ")];
        s.push(e);
    }
    // AF_VSOCK reaches the host's hypervisor services.
    let mut sock = entry(&["socket"], ALLOW);
    sock.args = vec![cmp(0, 40, 0, "SCMP_CMP_NE")];
    s.push(sock);
    s.push(on_arches(entry(&["arch_prctl", "modify_ldt"], ALLOW), &["amd64", "x32", "386"]));
    s.push(on_arches(entry(&["sync_file_range2", "set_tls"], ALLOW), &["arm", "arm64"]));
    s.push(with_caps(entry(&["open_by_handle_at"], ALLOW), &["CAP_DAC_READ_SEARCH"]));
    s.push(with_caps(
        entry(
            &[
                "bpf",
                "clone",
                "clone3",
                "fanotify_init",
                "fsconfig",
                "fsmount",
                "fsopen",
                "fspick",
                "lookup_dcookie",
                "mount",
                "mount_setattr",
                "move_mount",
                "open_tree",
                "perf_event_open",
                "quotactl",
                "quotactl_fd",
                "setdomainname",
                "sethostname",
                "setns",
                "syslog",
                "umount",
                "umount2",
                "unshare",
            ],
            ALLOW,
        ),
        &["CAP_SYS_ADMIN"],
    ));
    let mut clone = entry(&["clone"], ALLOW);
    clone.args = vec![cmp(0, CLONE_NS_FLAGS, 0, "SCMP_CMP_MASKED_EQ")];
    clone.excludes.caps = vec!["CAP_SYS_ADMIN".to_string()];
    s.push(clone);
    // clone3 passes its flags in memory a filter cannot read: ENOSYS makes libc use clone.
    let mut clone3 = entry(&["clone3"], "SCMP_ACT_ERRNO");
    clone3.errno_ret = Some(libc::ENOSYS as u32);
    clone3.excludes.caps = vec!["CAP_SYS_ADMIN".to_string()];
    s.push(clone3);
    s.push(with_caps(entry(&["reboot"], ALLOW), &["CAP_SYS_BOOT"]));
    s.push(with_caps(entry(&["chroot"], ALLOW), &["CAP_SYS_CHROOT"]));
    s.push(with_caps(entry(&["delete_module", "init_module", "finit_module"], ALLOW), &["CAP_SYS_MODULE"]));
    s.push(with_caps(entry(&["acct"], ALLOW), &["CAP_SYS_PACCT"]));
    s.push(with_caps(
        entry(&["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"], ALLOW),
        &["CAP_SYS_PTRACE"],
    ));
    s.push(with_caps(entry(&["iopl", "ioperm"], ALLOW), &["CAP_SYS_RAWIO"]));
    s.push(with_caps(entry(&["settimeofday", "stime", "clock_settime", "clock_settime64"], ALLOW), &["CAP_SYS_TIME"]));
    s.push(with_caps(entry(&["vhangup"], ALLOW), &["CAP_SYS_TTY_CONFIG"]));
    s.push(with_caps(
        entry(&["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"], ALLOW),
        &["CAP_SYS_NICE"],
    ));
    s.push(with_caps(entry(&["syslog"], ALLOW), &["CAP_SYSLOG"]));
    s.push(with_caps(entry(&["bpf"], ALLOW), &["CAP_BPF"]));
    s.push(with_caps(entry(&["perf_event_open"], ALLOW), &["CAP_PERFMON"]));
    // Since 4.8 ptrace cannot bypass the filter, so Docker allows the read-only ones to all.
    let mut pt = entry(&["process_vm_readv", "process_vm_writev", "ptrace"], ALLOW);
    pt.includes.min_kernel = "4.8".to_string();
    s.push(pt);
    DockerProfile {
        default_action: "SCMP_ACT_ERRNO".to_string(),
        default_errno_ret: Some(libc::EPERM as u32),
        architectures: Vec::new(),
        arch_map: vec![
            ArchMap {
                architecture: "SCMP_ARCH_X86_64".to_string(),
                sub_architectures: vec!["SCMP_ARCH_X86".to_string(), "SCMP_ARCH_X32".to_string()],
            },
            ArchMap {
                architecture: "SCMP_ARCH_AARCH64".to_string(),
                sub_architectures: vec!["SCMP_ARCH_ARM".to_string()],
            },
        ],
        syscalls: s,
    }
}
