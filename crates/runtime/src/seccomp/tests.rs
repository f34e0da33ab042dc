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
        assert!(o.is_multiple_of(4) && o + 4 <= data.len(), "load from seccomp_data offset {off}");
        u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]])
    };
    let (mut a, mut pc) = (0u32, 0usize);
    loop {
        let f = *prog.0.get(pc).unwrap_or_else(|| panic!("program runs off its end at {pc}"));
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

const RET_ACTION_FULL: u32 = 0xffff_0000;

/// What a verdict means to the kernel: the action, plus the errno an ERRNO return sets. The low
/// 16 bits of other actions (TRACE's message) are not compared.
fn verdict(ret: u32) -> u32 {
    if ret & RET_ACTION_FULL == RET_ERRNO {
        ret
    } else {
        ret & RET_ACTION_FULL
    }
}

fn verdict_name(ret: u32) -> String {
    match ret & RET_ACTION_FULL {
        RET_ALLOW => "ALLOW".to_string(),
        RET_ERRNO => format!("ERRNO({})", ret & 0xffff),
        RET_KILL_PROCESS => "KILL_PROCESS".to_string(),
        RET_KILL_THREAD => "KILL_THREAD".to_string(),
        other => format!("{other:#x}"),
    }
}

/// Argument vectors that take each conditional rule of `p` down both of its branches: the
/// compared values, their neighbours, a high word set (64-bit vs 32-bit comparison) and, for
/// masked comparisons, each bit of the mask on its own.
fn probe_args(p: &LinuxSeccomp) -> Vec<[u64; 6]> {
    let mut out = vec![[0u64; 6]];
    for a in p.syscalls.iter().flat_map(|s| &s.args) {
        let v = a.value;
        let mut values = vec![v, v.wrapping_sub(1), v.wrapping_add(1), v | 1 << 32, a.value_two, a.value_two | 1 << 32];
        if a.op == "SCMP_CMP_MASKED_EQ" {
            values.extend((0..64).map(|b| 1u64 << b).filter(|bit| v & bit != 0).map(|bit| bit | a.value_two));
            // A harmless flag outside the mask (SIGCHLD for clone) must not change the verdict.
            values.push(a.value_two | libc::SIGCHLD as u64);
        }
        for value in values {
            let mut args = [0u64; 6];
            args[a.index as usize] = value;
            if !out.contains(&args) {
                out.push(args);
            }
        }
    }
    out
}

/// Wharf's compiler and libseccomp (the library runc, and so Docker, compiles profiles with)
/// give the default profile the same verdict for every syscall number 0..=1023 of x86-64,
/// x32 (the same with __X32_SYSCALL_BIT) and i386, with the argument values the profile's
/// conditional rules test. Both programs run in the interpreter above.
///
/// One difference is intended: a number past the end of an architecture's table (a syscall
/// newer than the headers tables.rs came from) gets ENOSYS from wharf, so that programs fall back
/// to an older call, as runc patches its libseccomp filters to do; libseccomp gives the default
/// action. Those numbers are checked to be ENOSYS, and the ones libseccomp itself would allow are
/// printed (the sign that tables.rs wants newer headers).
///
/// Needs /usr/bin/python3 with Debian's python3-seccomp (libseccomp 2.5); fails without it.
/// The profile is testdata/default_profile.json: wharf-engine's default profile resolved for
/// Docker's default capabilities on x86-64 (`security::resolve(&default_profile(), DEFAULT_CAPS)`).
#[test]
fn default_profile_decides_as_libseccomp_does() {
    if Arch::native() != Arch::X86_64 {
        panic!("the libseccomp comparison covers x86-64, x32 and i386 and runs on x86-64 hosts only");
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/seccomp/testdata");
    let profile_path = format!("{dir}/default_profile.json");
    let profile: LinuxSeccomp = serde_json::from_str(&std::fs::read_to_string(&profile_path).unwrap()).unwrap();
    let ours = compile(&profile).unwrap();

    let out_path = std::env::temp_dir().join(format!("wharf-libseccomp-{}.bpf", std::process::id()));
    // Debian's python3-seccomp is built for Debian's own python3, not whatever python3 is first
    // on PATH (pyenv and the like).
    let out = std::process::Command::new("/usr/bin/python3")
        .arg(format!("{dir}/libseccomp_compile.py"))
        .arg(&profile_path)
        .arg(&out_path)
        .output()
        .unwrap_or_else(|e| panic!("/usr/bin/python3: {e} (install Debian's python3 and python3-seccomp)"));
    assert!(
        out.status.success(),
        "libseccomp_compile.py failed (install Debian's python3-seccomp): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["unknown"], serde_json::json!([]), "names libseccomp does not know");
    let reference = Program::read(&out_path).unwrap();
    let _ = std::fs::remove_file(&out_path);

    // Calls libseccomp's tables have and wharf's lack: newer than the headers tables.rs came
    // from (libseccomp 2.5.4 in Debian 12 knows cachestat, fchmodat2 and the futex2 calls,
    // linux-libc-dev 6.1 does not). Wharf denies them (default action or ENOSYS) until
    // tables.rs is regenerated from newer headers; the test names them instead of failing.
    let newer_calls = |arch: Arch, nr: u32| -> Option<String> {
        // (i386's socket and ipc calls resolve to socketcall and ipc, which the table has.)
        if arch.table().iter().any(|&(_, n)| n == nr) {
            return None;
        }
        let known = report["numbers"][format!("{arch:?}").to_uppercase()].as_object()?;
        known
            .iter()
            .find(|(n, v)| v.as_u64() == Some(nr as u64) && !arch.table().iter().any(|(t, _)| t == n))
            .map(|(n, _)| n.clone())
    };
    let name = |arch: Arch, nr: u32| {
        arch.table().iter().find(|&&(_, n)| n == nr).map(|&(n, _)| n.to_string()).unwrap_or_else(|| "-".to_string())
    };
    let in_table = |arch: Arch, nr: u32| {
        let t = arch.table();
        let min = t.iter().map(|&(_, n)| n).min().unwrap_or(0) & X32_SYSCALL_BIT;
        let max = t.iter().map(|&(_, n)| n).max().unwrap_or(0);
        nr >= min && nr <= max
    };
    let enosys = RET_ERRNO | libc::ENOSYS as u32;
    let sections: [(Arch, u32, u32); 3] = [
        (Arch::X86_64, AUDIT_ARCH_X86_64, 0),
        (Arch::X32, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT),
        (Arch::I386, AUDIT_ARCH_I386, 0),
    ];
    let probes = probe_args(&profile);
    let (mut compared, mut differences, mut newer) = (0usize, Vec::new(), BTreeSet::new());
    for (arch, audit, base) in sections {
        for nr in (0..=1023u32).map(|n| base | n) {
            for args in &probes {
                let (w, r) = (verdict(run(&ours, audit, nr, *args)), verdict(run(&reference, audit, nr, *args)));
                let what = || {
                    format!(
                        "{arch:?} {nr:#x} ({}) args {args:x?}: wharf {}, libseccomp {}",
                        name(arch, nr),
                        verdict_name(w),
                        verdict_name(r)
                    )
                };
                if let Some(call) = newer_calls(arch, nr) {
                    if w != enosys && w != verdict(action(&profile.default_action, profile.default_errno_ret).unwrap())
                    {
                        differences.push(format!("{} (a call newer than tables.rs must be denied)", what()));
                    }
                    newer.insert(format!(
                        "{arch:?} {nr:#x} {call}: wharf {}, libseccomp {}",
                        verdict_name(w),
                        verdict_name(r)
                    ));
                    continue;
                }
                if !in_table(arch, nr) {
                    if w != enosys {
                        differences.push(format!("{} (past the table, ENOSYS expected)", what()));
                    }
                    continue;
                }
                compared += 1;
                if w != r {
                    differences.push(what());
                }
            }
        }
    }
    for line in &newer {
        eprintln!("note: newer than tables.rs (regenerate from newer headers to allow): {line}");
    }
    assert!(compared > 3 * 400 * probes.len(), "compared only {compared} cases");
    assert!(
        differences.is_empty(),
        "{} of {compared} verdicts differ; the first:\n{}",
        differences.len(),
        differences.iter().take(25).cloned().collect::<Vec<_>>().join("\n")
    );
}
