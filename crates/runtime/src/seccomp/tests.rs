//! Tests of the seccomp compiler: programs run through a small BPF interpreter, and one loaded
//! into a forked child for real.

use super::*;

/// Runs a program over one `struct seccomp_data` as the kernel would.
fn run(prog: &Program, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = Vec::new();
    data.extend_from_slice(&nr.to_le_bytes());
    data.extend_from_slice(&arch.to_le_bytes());
    data.extend_from_slice(&0u64.to_le_bytes());
    for a in args {
        data.extend_from_slice(&a.to_le_bytes());
    }
    let word = |off: u32| {
        let o = off as usize;
        u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]])
    };
    let (mut a, mut pc) = (0u32, 0usize);
    loop {
        let f = prog.0[pc];
        pc += 1;
        match f.code {
            BPF_LD_W_ABS => a = word(f.k),
            BPF_AND_K => a &= f.k,
            BPF_RET_K => return f.k,
            BPF_JA => pc += f.k as usize,
            BPF_JEQ_K | BPF_JGT_K | BPF_JGE_K => {
                let taken = match f.code {
                    BPF_JEQ_K => a == f.k,
                    BPF_JGT_K => a > f.k,
                    _ => a >= f.k,
                };
                pc += if taken { f.jt as usize } else { f.jf as usize };
            }
            other => panic!("unexpected opcode {other:#x}"),
        }
    }
}

fn rule(names: &[&str], action: &str, args: Vec<ArgRule>) -> SyscallRule {
    SyscallRule {
        names: names.iter().map(|s| s.to_string()).collect(),
        action: action.to_string(),
        errno_ret: None,
        args,
    }
}

fn arg(index: u32, value: u64, value_two: u64, op: &str) -> ArgRule {
    ArgRule { index, value, value_two, op: op.to_string() }
}

fn nr(arch: Arch, name: &str) -> u32 {
    arch.table().iter().find(|(n, _)| *n == name).map(|&(_, n)| n).unwrap()
}

fn profile() -> LinuxSeccomp {
    LinuxSeccomp {
        default_action: "SCMP_ACT_ERRNO".to_string(),
        default_errno_ret: None,
        architectures: vec!["SCMP_ARCH_X86_64".into(), "SCMP_ARCH_X86".into(), "SCMP_ARCH_X32".into()],
        flags: Vec::new(),
        syscalls: vec![
            rule(&["read", "write", "exit_group", "no_such_call"], "SCMP_ACT_ALLOW", Vec::new()),
            rule(&["personality"], "SCMP_ACT_ALLOW", vec![arg(0, 0, 0, "SCMP_CMP_EQ")]),
            rule(&["personality"], "SCMP_ACT_ALLOW", vec![arg(0, 0xffff_ffff, 0, "SCMP_CMP_EQ")]),
            rule(&["clone"], "SCMP_ACT_ALLOW", vec![arg(0, 0x7e02_0000, 0, "SCMP_CMP_MASKED_EQ")]),
            rule(&["socket"], "SCMP_ACT_ALLOW", vec![arg(0, 40, 0, "SCMP_CMP_NE")]),
            rule(&["setpriority"], "SCMP_ACT_ALLOW", vec![arg(2, 0x1_0000_0005, 0, "SCMP_CMP_GT")]),
            rule(&["nice"], "SCMP_ACT_ALLOW", vec![arg(0, 10, 0, "SCMP_CMP_LE")]),
            rule(&["clone3"], "SCMP_ACT_ERRNO", Vec::new()),
            SyscallRule { errno_ret: Some(38), ..rule(&["mount"], "SCMP_ACT_ERRNO", Vec::new()) },
        ],
    }
}

const EPERM: u32 = RET_ERRNO | 1;

#[test]
fn compiled_profile_decides_as_written() {
    if Arch::native() != Arch::X86_64 {
        return;
    }
    let p = compile(&profile()).unwrap();
    let x64 = |name: &str, args: [u64; 6]| run(&p, AUDIT_ARCH_X86_64, nr(Arch::X86_64, name), args);
    let z = [0u64; 6];
    let cases: &[(&str, [u64; 6], u32)] = &[
        ("read", z, RET_ALLOW),
        ("write", z, RET_ALLOW),
        ("open", z, EPERM),
        ("personality", z, RET_ALLOW),
        ("personality", [0xffff_ffff, 0, 0, 0, 0, 0], RET_ALLOW),
        ("personality", [0x1_ffff_ffff, 0, 0, 0, 0, 0], EPERM),
        ("personality", [8, 0, 0, 0, 0, 0], EPERM),
        ("clone", [libc::SIGCHLD as u64, 0, 0, 0, 0, 0], RET_ALLOW),
        ("clone", [libc::CLONE_NEWNS as u64 | libc::SIGCHLD as u64, 0, 0, 0, 0, 0], EPERM),
        ("clone", [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0], EPERM),
        ("socket", [libc::AF_INET as u64, 0, 0, 0, 0, 0], RET_ALLOW),
        ("socket", [40, 0, 0, 0, 0, 0], EPERM),
        ("socket", [40 | 1 << 32, 0, 0, 0, 0, 0], RET_ALLOW),
        ("setpriority", [0, 0, 0x1_0000_0006, 0, 0, 0], RET_ALLOW),
        ("setpriority", [0, 0, 0x1_0000_0005, 0, 0, 0], EPERM),
        ("setpriority", [0, 0, 0x0_ffff_ffff, 0, 0, 0], EPERM),
        ("setpriority", [0, 0, 0x2_0000_0000, 0, 0, 0], RET_ALLOW),
        ("clone3", z, EPERM),
        ("mount", z, RET_ERRNO | 38),
    ];
    for (name, args, want) in cases {
        assert_eq!(x64(name, *args), *want, "{name} {args:x?}");
    }
    // nice exists on i386 only; LE on a 32-bit section compares the low word.
    let i386 = |name: &str, a0: u64| run(&p, AUDIT_ARCH_I386, nr(Arch::I386, name), [a0, 0, 0, 0, 0, 0]);
    assert_eq!(i386("nice", 10), RET_ALLOW);
    assert_eq!(i386("nice", 11), EPERM);
    assert_eq!(i386("read", 0), RET_ALLOW);
    assert_eq!(i386("open", 0), EPERM);
    // x32 numbers carry the high bit and map through their own table.
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, nr(Arch::X32, "write"), [0; 6]), RET_ALLOW);
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, nr(Arch::X32, "open"), [0; 6]), EPERM);
    // x32 compares the low word only, as libseccomp does: this is socket(40), denied.
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, nr(Arch::X32, "socket"), [40 | 1 << 32, 0, 0, 0, 0, 0]), EPERM);
    // Numbers beyond the tables: ENOSYS; another architecture: the process dies.
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, 1000, [0; 6]), RET_ERRNO | 38);
    assert_eq!(run(&p, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 1000, [0; 6]), RET_ERRNO | 38);
    assert_eq!(run(&p, AUDIT_ARCH_AARCH64, 63, [0; 6]), RET_KILL_PROCESS);
}

#[test]
fn big_profiles_need_long_jumps_and_still_fit() {
    let all: Vec<&str> = Arch::native().table().iter().map(|(n, _)| *n).collect();
    let mut p = profile();
    p.architectures.clear();
    // Every other syscall allowed, each with a condition: many blocks, long distances.
    for (i, name) in all.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        p.syscalls.push(rule(&[name], "SCMP_ACT_ALLOW", vec![arg(1, i as u64, 0, "SCMP_CMP_EQ")]));
    }
    let prog = compile(&p).unwrap();
    assert!(prog.0.len() < 4096, "{}", prog.0.len());
    let table = Arch::native().table();
    let audit = Arch::native().audit();
    for (i, (name, n)) in table.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        if ["read", "write", "exit_group", "personality", "clone", "socket", "setpriority", "mount", "clone3"]
            .contains(name)
        {
            continue;
        }
        assert_eq!(run(&prog, audit, *n, [0, i as u64, 0, 0, 0, 0]), RET_ALLOW, "{name}");
        assert_eq!(run(&prog, audit, *n, [0, i as u64 + 1, 0, 0, 0, 0]), EPERM, "{name}");
    }
}

#[test]
fn bad_profiles_are_refused() {
    let mut p = profile();
    p.default_action = "SCMP_ACT_MAYBE".to_string();
    assert!(matches!(compile(&p), Err(SeccompError::UnknownAction(_))));
    let mut p = profile();
    p.architectures.push("SCMP_ARCH_VAX".to_string());
    assert!(matches!(compile(&p), Err(SeccompError::UnknownArch(_))));
    let mut p = profile();
    p.syscalls.push(rule(&["read"], "SCMP_ACT_ALLOW", vec![arg(6, 0, 0, "SCMP_CMP_EQ")]));
    assert!(matches!(compile(&p), Err(SeccompError::BadIndex(6))));
    let mut p = profile();
    p.syscalls.push(rule(&["read"], "SCMP_ACT_ALLOW", vec![arg(0, 0, 0, "SCMP_CMP_ABOUT")]));
    assert!(matches!(compile(&p), Err(SeccompError::UnknownOp(_))));
}

#[test]
fn bytes_round_trip() {
    let prog = compile(&profile()).unwrap();
    assert_eq!(Program::from_bytes(&prog.to_bytes()), Some(prog));
    assert_eq!(Program::from_bytes(&[1, 2, 3]), None);
    assert_eq!(Program::from_bytes(&[]), None);
}

#[test]
fn loaded_filter_denies_in_a_child() {
    let mut p = LinuxSeccomp { default_action: "SCMP_ACT_ALLOW".to_string(), ..Default::default() };
    p.syscalls
        .push(SyscallRule { errno_ret: Some(libc::EXDEV as u32), ..rule(&["getppid"], "SCMP_ACT_ERRNO", vec![]) });
    let prog = compile(&p).unwrap();
    // SAFETY: the child only makes raw syscalls and _exits; the parent waits for it.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0);
        if pid == 0 {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prog.load().is_err() {
                libc::_exit(2);
            }
            let rc = libc::syscall(libc::SYS_getppid);
            let errno = *libc::__errno_location();
            libc::_exit(if rc == -1 && errno == libc::EXDEV { 0 } else { 1 });
        }
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        assert!(libc::WIFEXITED(status));
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }
}

/// The committed tables are the generator's output for the installed headers: a rerun that
/// differs means the headers changed (regenerate and review the diff) or someone hand-edited
/// tables.rs.
#[test]
fn tables_are_what_gen_tables_py_writes() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/src/seccomp/gen_tables.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .output()
        .unwrap_or_else(|e| panic!("python3 {script}: {e} (install python3)"));
    assert!(
        out.status.success(),
        "python3 {script} failed (the uapi headers come with Debian's linux-libc-dev): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).unwrap();
    let committed = include_str!("tables.rs");
    if generated != committed {
        let first = generated.lines().zip(committed.lines()).position(|(g, c)| g != c);
        panic!(
            "tables.rs is not what gen_tables.py writes from this machine's headers (first differing line: {:?}); \
             regenerate with `python3 {script} > crates/runtime/src/seccomp/tables.rs` and review the diff",
            first.map(|i| i + 1)
        );
    }
}
