//! Device access control on cgroup v2: the container's device rules compiled into a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program, loaded with `bpf(2)` and attached to its cgroup.
//!
//! The rules come in the v1 order (`devices.allow`/`devices.deny` writes, later ones override
//! earlier ones; a rule for all devices resets everything before it). The program checks them
//! from the last to the first and the first match decides, which gives the same answers; what
//! no rule matches gets the answer of the last all-devices rule (deny when there is none).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use wharf_types::ErrorKind;

use crate::spec::DeviceRule;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// `bpf_cgroup_dev_ctx.access_type`: the device type in the low 16 bits...
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
/// ...and the access in the high 16.
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const ACC_ALL: i32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// The verifier log kept for an error; the kernel's is usually a few hundred bytes here.
const LOG_SIZE: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DeviceFilterError {
    #[error("device rule {rule}: {reason}")]
    InvalidRule { rule: String, reason: String },
    #[error("load cgroup device program: {source}{}", verifier_log(log))]
    Load { source: std::io::Error, log: String },
    #[error("open cgroup {}: {source}", path.display())]
    Open { path: PathBuf, source: std::io::Error },
    #[error("{what} cgroup device program on {}: {source}", path.display())]
    Attach { what: &'static str, path: PathBuf, source: std::io::Error },
}

fn verifier_log(log: &str) -> String {
    let log = log.trim_end_matches('\0').trim();
    if log.is_empty() {
        String::new()
    } else {
        format!(" (verifier log: {log})")
    }
}

impl DeviceFilterError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            DeviceFilterError::InvalidRule { .. } => ErrorKind::InvalidArgument,
            _ => ErrorKind::Internal,
        }
    }
}

/// One eBPF instruction, as `struct bpf_insn` lays it out.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes used (class | op | source).
const LDX_MEM_W: u8 = 0x61;
const ALU32_AND_K: u8 = 0x54;
const ALU32_RSH_K: u8 = 0x74;
const ALU32_MOV_K: u8 = 0xb4;
const ALU32_MOV_X: u8 = 0xbc;
const JMP_JA: u8 = 0x05;
const JMP_JEQ_K: u8 = 0x15;
const JMP_JNE_K: u8 = 0x55;
const JMP_EXIT: u8 = 0x95;

/// A placeholder offset for a jump to the end of its section.
const PENDING_END: i16 = -1;

/// Well below the kernel's 4096 instructions for an unprivileged-size program; jump offsets
/// are 16 bits.
const MAX_INSNS: usize = 4000;

// Registers: R1 holds the context on entry; R2..R5 keep type, access, major, minor.
const R0: u8 = 0;
const R1: u8 = 1;
const R_TYPE: u8 = 2;
const R_ACCESS: u8 = 3;
const R_MAJOR: u8 = 4;
const R_MINOR: u8 = 5;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: (src << 4) | (dst & 0x0f), off, imm }
}

/// One rule as the program tests it; `None` fields match anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Match {
    allow: bool,
    kind: Option<i32>,
    major: Option<i32>,
    minor: Option<i32>,
    access: i32,
}

fn describe(rule: &DeviceRule) -> String {
    let num = |n: Option<i64>| n.filter(|n| *n >= 0).map_or("*".to_string(), |n| n.to_string());
    format!(
        "{} {} {}:{} {}",
        if rule.allow { "allow" } else { "deny" },
        rule.kind.as_deref().unwrap_or("a"),
        num(rule.major),
        num(rule.minor),
        rule.access.as_deref().unwrap_or("rwm")
    )
}

fn parse_rule(rule: &DeviceRule) -> Result<Match, DeviceFilterError> {
    let invalid = |reason: String| DeviceFilterError::InvalidRule { rule: describe(rule), reason };
    let kind = match rule.kind.as_deref().unwrap_or("a") {
        "a" | "" => None,
        "c" => Some(DEV_CHAR),
        "b" => Some(DEV_BLOCK),
        other => return Err(invalid(format!("unknown device type {other:?}"))),
    };
    let number = |n: Option<i64>| -> Result<Option<i32>, DeviceFilterError> {
        match n {
            None => Ok(None),
            Some(n) if n < 0 => Ok(None),
            Some(n) => i32::try_from(n).map(Some).map_err(|_| invalid(format!("device number {n} is too large"))),
        }
    };
    let mut access = 0;
    for c in rule.access.as_deref().unwrap_or("rwm").chars() {
        access |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            other => return Err(invalid(format!("unknown access {other:?}"))),
        };
    }
    if access == 0 {
        access = ACC_ALL;
    }
    Ok(Match { allow: rule.allow, kind, major: number(rule.major)?, minor: number(rule.minor)?, access })
}

/// Compiles `rules` (v1 order) into the program's instructions.
///
/// A request may ask for several accesses at once (`open(O_RDWR)`: read and write); as in v1,
/// it is allowed when each one is, and each access is decided on its own by the last rule that
/// names it and matches the device. So the program has one section per access bit: skipped
/// when the request does not ask for it, else it walks the rules naming the bit from the last
/// to the first: a matching deny returns 0, a matching allow goes on to the next section.
pub fn compile(rules: &[DeviceRule]) -> Result<Vec<Insn>, DeviceFilterError> {
    let parsed = rules.iter().map(parse_rule).collect::<Result<Vec<_>, _>>()?;
    let everything = |m: &Match| m.kind.is_none() && m.major.is_none() && m.minor.is_none() && m.access == ACC_ALL;
    // A rule for every device and access resets the list: what precedes it no longer counts.
    let start = parsed.iter().rposition(everything);
    let default_allow = start.is_some_and(|i| parsed[i].allow);
    let effective = &parsed[start.map_or(0, |i| i + 1)..];

    let mut prog = vec![
        insn(LDX_MEM_W, R_TYPE, R1, 0, 0),
        insn(ALU32_MOV_X, R_ACCESS, R_TYPE, 0, 0),
        insn(ALU32_RSH_K, R_ACCESS, 0, 0, 16),
        insn(ALU32_AND_K, R_TYPE, 0, 0, 0xffff),
        insn(LDX_MEM_W, R_MAJOR, R1, 4, 0),
        insn(LDX_MEM_W, R_MINOR, R1, 8, 0),
    ];
    for bit in [ACC_MKNOD, ACC_READ, ACC_WRITE] {
        // Jumps with offset PENDING_END go to the end of the section, fixed up below.
        let mut section = Vec::new();
        for m in effective.iter().rev().filter(|m| m.access & bit != 0) {
            // Each test jumps past the block's end when it does not hold.
            let mut block = Vec::new();
            if let Some(kind) = m.kind {
                block.push(insn(JMP_JNE_K, R_TYPE, 0, 0, kind));
            }
            if let Some(major) = m.major {
                block.push(insn(JMP_JNE_K, R_MAJOR, 0, 0, major));
            }
            if let Some(minor) = m.minor {
                block.push(insn(JMP_JNE_K, R_MINOR, 0, 0, minor));
            }
            if m.allow {
                block.push(insn(JMP_JA, 0, 0, PENDING_END, 0));
            } else {
                block.push(insn(ALU32_MOV_K, R0, 0, 0, 0));
                block.push(insn(JMP_EXIT, 0, 0, 0, 0));
            }
            let len = block.len();
            for (i, ins) in block.iter_mut().enumerate() {
                if ins.code == JMP_JNE_K {
                    ins.off = (len - i - 1) as i16;
                }
            }
            section.extend(block);
        }
        if !default_allow {
            section.push(insn(ALU32_MOV_K, R0, 0, 0, 0));
            section.push(insn(JMP_EXIT, 0, 0, 0, 0));
        }
        let len = section.len();
        for (i, ins) in section.iter_mut().enumerate() {
            if ins.code == JMP_JA && ins.off == PENDING_END {
                ins.off = (len - i - 1) as i16;
            }
        }
        prog.push(insn(ALU32_MOV_X, R1, R_ACCESS, 0, 0));
        prog.push(insn(ALU32_AND_K, R1, 0, 0, bit));
        prog.push(insn(JMP_JEQ_K, R1, 0, len as i16, 0));
        prog.extend(section);
    }
    prog.push(insn(ALU32_MOV_K, R0, 0, 0, 1));
    prog.push(insn(JMP_EXIT, 0, 0, 0, 0));
    if prog.len() > MAX_INSNS {
        return Err(DeviceFilterError::InvalidRule {
            rule: format!("{} rules", rules.len()),
            reason: format!("the program would have {} instructions, more than {MAX_INSNS}", prog.len()),
        });
    }
    Ok(prog)
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a #[repr(C)] prefix of `union bpf_attr` for `cmd`, valid and writable
    // for its whole size; any pointers in it point to live buffers of the sizes given.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>() as libc::c_uint) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn fd_from(rc: libc::c_long) -> OwnedFd {
    // SAFETY: a successful PROG_LOAD / GET_FD_BY_ID returns a new fd that nobody else owns.
    unsafe { OwnedFd::from_raw_fd(rc as i32) }
}

/// Loads the program; on a verifier rejection the error carries the verifier's log.
pub fn load(prog: &[Insn]) -> Result<OwnedFd, DeviceFilterError> {
    let license = c"GPL";
    let mut name = [0u8; 16];
    name[..13].copy_from_slice(b"wharf_devices");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(fd_from(fd)),
        Err(source) => {
            // Again with a log, only to explain the failure.
            let mut log = vec![0u8; LOG_SIZE];
            attr.log_level = 1;
            attr.log_size = LOG_SIZE as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let _ = bpf(BPF_PROG_LOAD, &mut attr);
            let len = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            Err(DeviceFilterError::Load { source, log: String::from_utf8_lossy(&log[..len]).into_owned() })
        }
    }
}

fn open_dir(dir: &Path) -> Result<OwnedFd, DeviceFilterError> {
    let open_err = |source| DeviceFilterError::Open { path: dir.to_path_buf(), source };
    let c = CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| open_err(std::io::Error::from_raw_os_error(libc::EINVAL)))?;
    // SAFETY: open of a NUL-terminated path; the fd is checked and then owned.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(open_err(std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh fd from open.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The ids of the device programs attached to the cgroup directly.
fn attached(cgroup: &OwnedFd, path: &Path) -> Result<Vec<u32>, DeviceFilterError> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr).map_err(|source| DeviceFilterError::Attach {
        what: "query",
        path: path.to_path_buf(),
        source,
    })?;
    ids.truncate((attr.prog_cnt as usize).min(64));
    Ok(ids)
}

/// Compiles `rules`, attaches the program to the cgroup directory `dir` and then detaches the
/// programs attached there before (a `docker update` replaces the rules; there is never a
/// moment without a program).
pub fn apply(dir: &Path, rules: &[DeviceRule]) -> Result<(), DeviceFilterError> {
    let prog = load(&compile(rules)?)?;
    let cgroup = open_dir(dir)?;
    let old = attached(&cgroup, dir)?;
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|source| DeviceFilterError::Attach {
        what: "attach",
        path: dir.to_path_buf(),
        source,
    })?;
    for id in old {
        let mut get = GetFdAttr { prog_id: id, ..Default::default() };
        // Gone meanwhile: nothing to detach.
        let Ok(fd) = bpf(BPF_PROG_GET_FD_BY_ID, &mut get).map(fd_from) else {
            continue;
        };
        let mut detach = AttachAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_bpf_fd: fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        match bpf(BPF_PROG_DETACH, &mut detach) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(source) => return Err(DeviceFilterError::Attach { what: "detach", path: dir.to_path_buf(), source }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program on one request, interpreting exactly the opcodes `compile` emits.
    fn run(prog: &[Insn], kind: i32, access: i32, major: u32, minor: u32) -> bool {
        let ctx = [((access as u32) << 16) | kind as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0x0f) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(src, R1 as usize, "loads only from the context");
                    r[dst] = u64::from(ctx[(i.off / 4) as usize]);
                }
                ALU32_MOV_X => r[dst] = r[src] & 0xffff_ffff,
                ALU32_MOV_K => r[dst] = u64::from(i.imm as u32),
                ALU32_AND_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                ALU32_RSH_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                JMP_JNE_K if r[dst] != i64::from(i.imm) as u64 => pc += i.off as usize,
                JMP_JEQ_K if r[dst] == i64::from(i.imm) as u64 => pc += i.off as usize,
                JMP_JA => pc += i.off as usize,
                JMP_JNE_K | JMP_JEQ_K => {}
                JMP_EXIT => return r[0] == 1,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    fn rule(allow: bool, kind: &str, major: Option<i64>, minor: Option<i64>, access: &str) -> DeviceRule {
        DeviceRule { allow, kind: Some(kind.to_string()), major, minor, access: Some(access.to_string()) }
    }

    const C: i32 = DEV_CHAR;
    const B: i32 = DEV_BLOCK;
    const R: i32 = ACC_READ;
    const W: i32 = ACC_WRITE;
    const M: i32 = ACC_MKNOD;

    #[test]
    fn decisions_follow_the_v1_order() {
        let container = crate::cgroups::device_rules(&[rule(true, "c", Some(4), Some(64), "rw")]);
        let privileged = crate::cgroups::device_rules(&[rule(true, "a", None, None, "rwm")]);
        let deny_after_allow = vec![
            rule(true, "a", None, None, "rwm"),
            rule(false, "b", Some(8), None, "w"),
            rule(true, "c", Some(1), Some(3), "r"),
        ];
        let split = vec![
            rule(false, "a", None, None, "rwm"),
            rule(true, "c", Some(1), Some(3), "r"),
            rule(true, "c", Some(1), Some(3), "w"),
        ];
        // (rules, type, access, major, minor, allowed)
        type Case<'a> = (&'a [DeviceRule], i32, i32, u32, u32, bool);
        let table: &[Case] = &[
            (&container, C, R | W, 1, 3, true),
            (&container, C, R, 1, 5, true),
            (&container, C, R | W, 136, 7, true),
            (&container, C, R | W, 4, 64, true),
            (&container, C, M, 4, 64, true),
            (&container, C, R | W | M, 4, 64, true),
            (&container, C, R, 4, 65, false),
            (&container, B, R, 8, 0, false),
            (&container, B, M, 8, 0, true),
            (&container, C, M, 250, 1, true),
            (&container, C, R, 250, 1, false),
            (&container, C, R, 10, 200, true),
            (&container, C, R, 10, 229, false),
            (&privileged, B, R | W, 8, 0, true),
            (&privileged, C, R, 250, 1, true),
            (&deny_after_allow, B, W, 8, 1, false),
            (&deny_after_allow, B, R, 8, 1, true),
            (&deny_after_allow, B, R | W, 8, 1, false),
            (&split, C, R | W, 1, 3, true),
            (&split, C, R | W | M, 1, 3, false),
            (&split, C, R, 1, 4, false),
            (&deny_after_allow, B, W, 9, 1, true),
            (&[], C, R, 1, 3, false),
        ];
        for (i, (rules, kind, access, major, minor, want)) in table.iter().enumerate() {
            let prog = compile(rules).unwrap_or_else(|e| panic!("case {i}: {e}"));
            assert_eq!(run(&prog, *kind, *access, *major, *minor), *want, "case {i}: {kind} {access} {major}:{minor}");
        }
    }

    #[test]
    fn bad_rules_are_refused() {
        for (r, needle) in [
            (rule(true, "x", None, None, "rwm"), "unknown device type"),
            (rule(true, "c", Some(1), Some(3), "rx"), "unknown access"),
            (rule(true, "c", Some(1 << 40), None, "r"), "too large"),
        ] {
            let err = compile(&[r]).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn jumps_stay_inside_the_program() {
        let prog = compile(&crate::cgroups::device_rules(&[])).unwrap_or_default();
        for (pc, i) in prog.iter().enumerate() {
            if matches!(i.code, JMP_JNE_K | JMP_JEQ_K | JMP_JA) {
                assert!(i.off >= 0 && pc + 1 + (i.off as usize) < prog.len(), "jump at {pc}");
            }
        }
        assert_eq!(prog.last().map(|i| i.code), Some(JMP_EXIT));
    }

    /// What a child moved into `cgroup` may do: open /dev/null, open /dev/zero, mknod c 1:5.
    fn probe(cgroup: &Path, node: &Path) -> (bool, bool, bool) {
        let procs = CString::new(cgroup.join("cgroup.procs").into_os_string().into_encoded_bytes()).unwrap_or_default();
        let node = CString::new(node.as_os_str().as_encoded_bytes()).unwrap_or_default();
        // SAFETY: the child only makes syscalls on buffers prepared before the fork, then exits.
        unsafe {
            let pid = libc::fork();
            if pid == 0 {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    libc::_exit(100);
                }
                libc::close(fd);
                let opens = |p: &std::ffi::CStr| {
                    let fd = libc::open(p.as_ptr(), libc::O_RDWR);
                    fd >= 0 && libc::close(fd) == 0
                };
                let mut code = 0;
                if opens(c"/dev/null") {
                    code |= 1;
                }
                if opens(c"/dev/zero") {
                    code |= 2;
                }
                if libc::mknod(node.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 5)) == 0 {
                    code |= 4;
                    libc::unlink(node.as_ptr());
                }
                libc::_exit(code);
            }
            assert!(pid > 0, "fork failed");
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            let code = libc::WEXITSTATUS(status);
            assert!(code < 100, "the child could not join {}", cgroup.display());
            (code & 1 != 0, code & 2 != 0, code & 4 != 0)
        }
    }

    /// The kernel runs the program: load, attach to a fresh cgroup2 directory (the unified
    /// hierarchy on a hybrid host), check a child's opens and mknod, replace the rules.
    #[test]
    fn the_kernel_enforces_the_program() {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        assert!(root, "this test needs root: run the test suite as root");
        let root = match crate::cgroups::Layout::detect() {
            crate::cgroups::Layout::V2 => PathBuf::from("/sys/fs/cgroup"),
            crate::cgroups::Layout::Hybrid => PathBuf::from("/sys/fs/cgroup/unified"),
            crate::cgroups::Layout::V1 => {
                panic!("this test needs a cgroup2 hierarchy (v2 or hybrid), and this host has none")
            }
        };
        let cgroup = root.join(format!("wharf-test-bpf-{}", std::process::id()));
        let tmp = std::env::temp_dir().join(format!("wharf-test-bpf-{}", std::process::id()));
        std::fs::create_dir_all(&cgroup).unwrap_or_else(|e| panic!("mkdir {}: {e}", cgroup.display()));
        std::fs::create_dir_all(&tmp).unwrap_or_default();
        let node = tmp.join("zero");
        let deny_all = rule(false, "a", None, None, "rwm");

        let first = apply(&cgroup, &[deny_all.clone(), rule(true, "c", Some(1), Some(3), "rwm")]);
        let before = probe(&cgroup, &node);
        let second = apply(&cgroup, &[deny_all, rule(true, "c", Some(1), Some(5), "rwm")]);
        let after = probe(&cgroup, &node);
        let count = open_dir(&cgroup).and_then(|fd| attached(&fd, &cgroup)).map(|ids| ids.len());

        let _ = std::fs::remove_dir(&cgroup);
        let _ = std::fs::remove_dir_all(&tmp);
        assert!(first.is_ok(), "{first:?}");
        assert!(second.is_ok(), "{second:?}");
        assert_eq!(before, (true, false, false), "/dev/null, /dev/zero, mknod 1:5 with c 1:3 allowed");
        assert_eq!(after, (false, true, true), "/dev/null, /dev/zero, mknod 1:5 with c 1:5 allowed");
        assert_eq!(count.ok(), Some(1), "the update replaced the program");
        assert!(!cgroup.exists());
    }

    #[test]
    fn a_rejected_program_carries_the_verifier_log() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        // Reads R0 before anything wrote it: the verifier refuses and says why.
        let bad = [insn(JMP_EXIT, 0, 0, 0, 0)];
        let err = load(&bad).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("verifier log") && err.contains("R0"), "{err}");
    }
}
