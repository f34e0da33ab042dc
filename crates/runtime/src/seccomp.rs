//! Seccomp: the OCI `linux.seccomp` profile as types, its compilation to a classic BPF program
//! (no libseccomp), the program's on-disk form, and loading it into the calling process.
//!
//! The daemon compiles a profile once and writes the program next to its data; the container
//! init only reads the file and calls `seccomp(2)`, so a start pays no compilation.

mod tables;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Annotation naming a file that holds the compiled program (raw `struct sock_filter` array).
pub const ANNOTATION_BPF: &str = "io.wharf.seccomp.bpf";

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp profile: unknown action {0:?}")]
    UnknownAction(String),
    #[error("seccomp profile: unknown architecture {0:?}")]
    UnknownArch(String),
    #[error("seccomp profile: unknown operator {0:?}")]
    UnknownOp(String),
    #[error("seccomp profile: argument index {0} out of range")]
    BadIndex(u32),
    #[error("seccomp program {path}: {reason}")]
    BadProgram { path: String, reason: String },
    #[error("seccomp program {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl SeccompError {
    pub fn kind(&self) -> wharf_types::ErrorKind {
        match self {
            SeccompError::Io { .. } | SeccompError::BadProgram { .. } => wharf_types::ErrorKind::Internal,
            _ => wharf_types::ErrorKind::InvalidArgument,
        }
    }
}

/// `linux.seccomp` of the OCI runtime spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LinuxSeccomp {
    #[serde(rename = "defaultAction")]
    pub default_action: String,
    #[serde(rename = "defaultErrnoRet", default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    #[serde(default)]
    pub syscalls: Vec<SyscallRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SyscallRule {
    pub names: Vec<String>,
    pub action: String,
    #[serde(rename = "errnoRet", default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ArgRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ArgRule {
    pub index: u32,
    pub value: u64,
    #[serde(rename = "valueTwo", default)]
    pub value_two: u64,
    pub op: String,
}

/// One instruction of a classic BPF program, laid out as the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// A compiled filter, ready to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program(pub Vec<SockFilter>);

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const RET_KILL_THREAD: u32 = 0;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

// BPF opcodes (linux/filter.h).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_RET_K: u16 = 0x06;
const BPF_JA: u16 = 0x05;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGT_K: u16 = 0x25;
const BPF_JGE_K: u16 = 0x35;
const BPF_AND_K: u16 = 0x54;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

/// The architectures a profile names, as the kernel's AUDIT_ARCH values with their syscall
/// tables; x32 shares x86_64's audit value and is told apart by the syscall number's high bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Arch {
    X86_64,
    X32,
    I386,
    Aarch64,
}

impl Arch {
    fn parse(name: &str) -> Result<Option<Arch>, SeccompError> {
        Ok(Some(match name {
            "SCMP_ARCH_X86_64" => Arch::X86_64,
            "SCMP_ARCH_X32" => Arch::X32,
            "SCMP_ARCH_X86" => Arch::I386,
            "SCMP_ARCH_AARCH64" => Arch::Aarch64,
            // Known to libseccomp but not to this host's kernel: nothing can run as them here.
            "SCMP_ARCH_ARM"
            | "SCMP_ARCH_MIPS"
            | "SCMP_ARCH_MIPS64"
            | "SCMP_ARCH_MIPS64N32"
            | "SCMP_ARCH_MIPSEL"
            | "SCMP_ARCH_MIPSEL64"
            | "SCMP_ARCH_MIPSEL64N32"
            | "SCMP_ARCH_PPC"
            | "SCMP_ARCH_PPC64"
            | "SCMP_ARCH_PPC64LE"
            | "SCMP_ARCH_S390"
            | "SCMP_ARCH_S390X"
            | "SCMP_ARCH_RISCV64" => return Ok(None),
            other => return Err(SeccompError::UnknownArch(other.to_string())),
        }))
    }

    fn native() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else {
            Arch::X86_64
        }
    }

    fn audit(self) -> u32 {
        match self {
            Arch::X86_64 | Arch::X32 => AUDIT_ARCH_X86_64,
            Arch::I386 => AUDIT_ARCH_I386,
            Arch::Aarch64 => AUDIT_ARCH_AARCH64,
        }
    }

    fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            Arch::X86_64 => tables::X86_64,
            Arch::X32 => tables::X32,
            Arch::I386 => tables::I386,
            Arch::Aarch64 => tables::AARCH64,
        }
    }
}

/// The number of `name` on the native architecture, if it has one.
pub fn native_syscall(name: &str) -> Option<u32> {
    Arch::native().table().iter().find(|(n, _)| *n == name).map(|&(_, nr)| nr)
}

fn action(name: &str, errno: Option<u32>) -> Result<u32, SeccompError> {
    let data = |e: Option<u32>, dflt: u32| e.unwrap_or(dflt) & 0xffff;
    Ok(match name {
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => RET_KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS" => RET_KILL_PROCESS,
        "SCMP_ACT_TRAP" => RET_TRAP,
        "SCMP_ACT_ERRNO" => RET_ERRNO | data(errno, libc::EPERM as u32),
        "SCMP_ACT_TRACE" => RET_TRACE | data(errno, libc::EPERM as u32),
        "SCMP_ACT_LOG" => RET_LOG,
        "SCMP_ACT_ALLOW" => RET_ALLOW,
        other => return Err(SeccompError::UnknownAction(other.to_string())),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    MaskedEq,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Cond {
    index: u32,
    cmp: Cmp,
    value: u64,
    value_two: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    action: u32,
    conds: Vec<Cond>,
}

fn parse_cond(a: &ArgRule) -> Result<Cond, SeccompError> {
    if a.index > 5 {
        return Err(SeccompError::BadIndex(a.index));
    }
    let cmp = match a.op.as_str() {
        "SCMP_CMP_NE" => Cmp::Ne,
        "SCMP_CMP_LT" => Cmp::Lt,
        "SCMP_CMP_LE" => Cmp::Le,
        "SCMP_CMP_EQ" => Cmp::Eq,
        "SCMP_CMP_GE" => Cmp::Ge,
        "SCMP_CMP_GT" => Cmp::Gt,
        "SCMP_CMP_MASKED_EQ" => Cmp::MaskedEq,
        other => return Err(SeccompError::UnknownOp(other.to_string())),
    };
    Ok(Cond { index: a.index, cmp, value: a.value, value_two: a.value_two })
}

type Label = usize;

#[derive(Debug, Clone, Copy)]
enum Op {
    Stmt { code: u16, k: u32 },
    Jump { code: u16, k: u32, jt: Label, jf: Label },
    Mark(Label),
}

/// Builds a program with symbolic forward jumps; `finish` picks short or long forms.
#[derive(Default)]
struct Asm {
    ops: Vec<Op>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels += 1;
        self.labels - 1
    }
    fn stmt(&mut self, code: u16, k: u32) {
        self.ops.push(Op::Stmt { code, k });
    }
    fn ret(&mut self, k: u32) {
        self.stmt(BPF_RET_K, k);
    }
    fn jump(&mut self, code: u16, k: u32, jt: Label, jf: Label) {
        self.ops.push(Op::Jump { code, k, jt, jf });
    }
    fn mark(&mut self, l: Label) {
        self.ops.push(Op::Mark(l));
    }

    /// Conditional jumps reach at most 255 instructions ahead; farther ones become a
    /// conditional hop onto two unconditional jumps. Sizes only grow, so this settles.
    fn finish(self) -> Result<Vec<SockFilter>, String> {
        let mut long = vec![false; self.ops.len()];
        let (pos, marks) = loop {
            let mut pos = Vec::with_capacity(self.ops.len());
            let mut marks = vec![usize::MAX; self.labels];
            let mut at = 0usize;
            for (i, op) in self.ops.iter().enumerate() {
                pos.push(at);
                at += match op {
                    Op::Mark(l) => {
                        marks[*l] = at;
                        0
                    }
                    Op::Jump { .. } if long[i] => 3,
                    _ => 1,
                };
            }
            let mut changed = false;
            for (i, op) in self.ops.iter().enumerate() {
                if let Op::Jump { jt, jf, .. } = op {
                    let fits = |l: &Label| marks[*l] > pos[i] && marks[*l] - (pos[i] + 1) <= 255;
                    let fits_both = fits(jt) && fits(jf);
                    if !long[i] && !fits_both {
                        long[i] = true;
                        changed = true;
                    }
                }
            }
            if !changed {
                break (pos, marks);
            }
        };
        let mut out = Vec::new();
        let rel = |from: usize, l: Label| -> Result<usize, String> {
            let to = marks[l];
            if to == usize::MAX || to < from {
                return Err(format!("jump to label {l} unresolved or backwards"));
            }
            Ok(to - from)
        };
        for (i, op) in self.ops.iter().enumerate() {
            match *op {
                Op::Mark(_) => {}
                Op::Stmt { code, k } => out.push(SockFilter { code, jt: 0, jf: 0, k }),
                Op::Jump { code, k, jt, jf } if long[i] => {
                    out.push(SockFilter { code, jt: 0, jf: 1, k });
                    out.push(SockFilter { code: BPF_JA, jt: 0, jf: 0, k: rel(pos[i] + 2, jt)? as u32 });
                    out.push(SockFilter { code: BPF_JA, jt: 0, jf: 0, k: rel(pos[i] + 3, jf)? as u32 });
                }
                Op::Jump { code, k, jt, jf } => {
                    let t = rel(pos[i] + 1, jt)?;
                    let f = rel(pos[i] + 1, jf)?;
                    out.push(SockFilter { code, jt: t as u8, jf: f as u8, k });
                }
            }
        }
        if out.len() > 4096 {
            return Err(format!("program of {} instructions exceeds the kernel's 4096", out.len()));
        }
        Ok(out)
    }
}

/// What happens to one syscall number of one architecture section.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Handler {
    Ret(u32),
    Rules(Vec<Rule>),
}

/// Compiles a profile for the native architecture and the ones it lists.
pub fn compile(profile: &LinuxSeccomp) -> Result<Program, SeccompError> {
    let default = action(&profile.default_action, profile.default_errno_ret)?;
    let mut arches = vec![Arch::native()];
    for a in &profile.architectures {
        if let Some(arch) = Arch::parse(a)? {
            // An x86 kernel runs x32 and i386 code, an arm64 kernel none of these.
            let runnable = match Arch::native() {
                Arch::Aarch64 => arch == Arch::Aarch64,
                _ => arch != Arch::Aarch64,
            };
            if runnable && !arches.contains(&arch) {
                arches.push(arch);
            }
        }
    }
    arches.sort();
    let mut rules = Vec::new();
    for s in &profile.syscalls {
        let act = action(&s.action, s.errno_ret.or(profile.default_errno_ret))?;
        let conds = s.args.iter().map(parse_cond).collect::<Result<Vec<_>, _>>()?;
        rules.push((s, Rule { action: act, conds }));
    }

    // Group the sections by audit value: x86_64 and x32 share one.
    let mut sections: BTreeMap<u32, Vec<Arch>> = BTreeMap::new();
    for a in &arches {
        sections.entry(a.audit()).or_default().push(*a);
    }
    let mut asm = Asm::default();
    asm.stmt(BPF_LD_W_ABS, OFF_ARCH);
    for (audit, archs) in &sections {
        let next = asm.label();
        let here = asm.label();
        asm.jump(BPF_JEQ_K, *audit, here, next);
        asm.mark(here);
        let mut by_nr: BTreeMap<u32, Vec<Rule>> = BTreeMap::new();
        let mut ranges = Vec::new();
        for arch in archs {
            let table = arch.table();
            let min = table.iter().map(|&(_, n)| n).min().unwrap_or(0);
            let max = table.iter().map(|&(_, n)| n).max().unwrap_or(0);
            ranges.push((min & X32_SYSCALL_BIT, max));
            for (s, rule) in &rules {
                for name in &s.names {
                    // Names unknown to an architecture are skipped, as libseccomp does.
                    if let Some(&(_, nr)) = table.iter().find(|(n, _)| n == name) {
                        by_nr.entry(nr).or_default().push(rule.clone());
                    }
                }
            }
        }
        emit_section(&mut asm, &by_nr, default, &ranges, *audit);
        asm.mark(next);
    }
    asm.ret(RET_KILL_PROCESS);
    asm.finish().map(Program).map_err(|reason| SeccompError::BadProgram { path: "<compiled>".to_string(), reason })
}

/// A section: the syscall number split into intervals of one handler, found by binary search.
fn emit_section(asm: &mut Asm, by_nr: &BTreeMap<u32, Vec<Rule>>, default: u32, ranges: &[(u32, u32)], audit: u32) {
    let handler = |rules: &Vec<Rule>| -> Handler {
        // Conditional rules are tried first; an unconditional one then decides, else the default.
        let mut conditional: Vec<Rule> = rules.iter().filter(|r| !r.conds.is_empty()).cloned().collect();
        let fallback = rules.iter().find(|r| r.conds.is_empty()).map(|r| r.action).unwrap_or(default);
        if conditional.is_empty() {
            return Handler::Ret(fallback);
        }
        conditional.push(Rule { action: fallback, conds: Vec::new() });
        Handler::Rules(conditional)
    };
    // Syscalls newer than an architecture's table get ENOSYS, so programs fall back to older
    // ones (clone3 to clone), as runc arranges too.
    let enosys = RET_ERRNO | libc::ENOSYS as u32;
    let mut points: BTreeSet<u32> = BTreeSet::from([0]);
    for &(base, max) in ranges {
        points.insert(base);
        points.insert(max.saturating_add(1));
    }
    for &nr in by_nr.keys() {
        points.insert(nr);
        points.insert(nr.saturating_add(1));
    }
    let mut intervals: Vec<(u32, Handler)> = Vec::new();
    for &p in &points {
        let h = match by_nr.get(&p) {
            Some(rules) => handler(rules),
            None if ranges.iter().any(|&(base, max)| p >= base && p <= max) => Handler::Ret(default),
            None => Handler::Ret(enosys),
        };
        if intervals.last().map(|(_, last)| last) != Some(&h) {
            intervals.push((p, h));
        }
    }
    asm.stmt(BPF_LD_W_ABS, OFF_NR);
    emit_tree(asm, &intervals, default, audit);
}

/// Whether a syscall's arguments are compared as whole 64-bit values, as libseccomp (and so
/// runc and Docker) does: on x86-64 and arm64 yes; on i386 only the low word exists; x32 has
/// 64-bit registers but a 32-bit ABI, and libseccomp compares only the low word there too —
/// also what the kernel reads of an int argument (socket(AF_VSOCK | 1 << 32) is AF_VSOCK).
fn wide_args(audit: u32, nr: u32) -> bool {
    audit != AUDIT_ARCH_I386 && nr & X32_SYSCALL_BIT == 0
}

fn emit_tree(asm: &mut Asm, intervals: &[(u32, Handler)], default: u32, audit: u32) {
    if intervals.len() == 1 {
        match &intervals[0].1 {
            Handler::Ret(k) => asm.ret(*k),
            // An interval with rules is one syscall number, its start.
            Handler::Rules(rules) => emit_rules(asm, rules, default, wide_args(audit, intervals[0].0)),
        }
        return;
    }
    let mid = intervals.len() / 2;
    let left = asm.label();
    let right = asm.label();
    asm.jump(BPF_JGE_K, intervals[mid].0, right, left);
    asm.mark(left);
    emit_tree(asm, &intervals[..mid], default, audit);
    asm.mark(right);
    emit_tree(asm, &intervals[mid..], default, audit);
}

/// The rules of one syscall; the accumulator holds its number on entry and is clobbered.
fn emit_rules(asm: &mut Asm, rules: &[Rule], default: u32, wide: bool) {
    for rule in rules {
        let fail = asm.label();
        for c in &rule.conds {
            let ok = asm.label();
            emit_cond(asm, c, ok, fail, wide);
            asm.mark(ok);
        }
        asm.ret(rule.action);
        asm.mark(fail);
    }
    asm.ret(default);
}

fn emit_cond(asm: &mut Asm, c: &Cond, ok: Label, fail: Label, wide: bool) {
    let lo_off = OFF_ARGS + 8 * c.index;
    // Both supported byte orders are little-endian: the high word follows the low one.
    let hi_off = lo_off + 4;
    let (vlo, vhi) = (c.value as u32, (c.value >> 32) as u32);
    let (mlo, mhi) = (c.value as u32, (c.value >> 32) as u32);
    let (wlo, whi) = (c.value_two as u32, (c.value_two >> 32) as u32);
    // On a 32-bit architecture only the low word carries the argument.
    let check_hi = wide;
    match c.cmp {
        Cmp::Eq | Cmp::Ne | Cmp::MaskedEq => {
            let (pass, miss) = if c.cmp == Cmp::Ne { (fail, ok) } else { (ok, fail) };
            let (klo, khi) = if c.cmp == Cmp::MaskedEq { (wlo, whi) } else { (vlo, vhi) };
            if check_hi {
                let lo = asm.label();
                asm.stmt(BPF_LD_W_ABS, hi_off);
                if c.cmp == Cmp::MaskedEq {
                    asm.stmt(BPF_AND_K, mhi);
                }
                asm.jump(BPF_JEQ_K, khi, lo, miss);
                asm.mark(lo);
            }
            asm.stmt(BPF_LD_W_ABS, lo_off);
            if c.cmp == Cmp::MaskedEq {
                asm.stmt(BPF_AND_K, mlo);
            }
            asm.jump(BPF_JEQ_K, klo, pass, miss);
        }
        Cmp::Gt | Cmp::Ge | Cmp::Lt | Cmp::Le => {
            // a > v (64-bit) = hi > vhi || (hi == vhi && lo > vlo); LT and LE are the negations.
            let (code, pass, miss) = match c.cmp {
                Cmp::Gt => (BPF_JGT_K, ok, fail),
                Cmp::Ge => (BPF_JGE_K, ok, fail),
                Cmp::Lt => (BPF_JGE_K, fail, ok),
                _ => (BPF_JGT_K, fail, ok),
            };
            if check_hi {
                let eq = asm.label();
                let lo = asm.label();
                asm.stmt(BPF_LD_W_ABS, hi_off);
                asm.jump(BPF_JGT_K, vhi, pass, eq);
                asm.mark(eq);
                asm.jump(BPF_JEQ_K, vhi, lo, miss);
                asm.mark(lo);
            }
            asm.stmt(BPF_LD_W_ABS, lo_off);
            asm.jump(code, vlo, pass, miss);
        }
    }
}

impl Program {
    /// The raw `sock_filter` array, as the kernel reads it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * 8);
        for f in &self.0 {
            out.extend_from_slice(&f.code.to_ne_bytes());
            out.push(f.jt);
            out.push(f.jf);
            out.extend_from_slice(&f.k.to_ne_bytes());
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Program> {
        if bytes.is_empty() || !bytes.len().is_multiple_of(8) || bytes.len() / 8 > 4096 {
            return None;
        }
        let prog = bytes
            .chunks_exact(8)
            .map(|c| SockFilter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Some(Program(prog))
    }

    pub fn read(path: &Path) -> Result<Program, SeccompError> {
        let p = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| SeccompError::Io { path: p.clone(), source })?;
        Program::from_bytes(&bytes)
            .ok_or(SeccompError::BadProgram { path: p, reason: "not a whole sock_filter array".to_string() })
    }

    /// Installs the filter on the calling thread. Without no_new_privs this needs
    /// CAP_SYS_ADMIN, which is why the init loads it before dropping capabilities then.
    /// Returns the errno on failure; allocation-free, so it is safe after clone.
    pub fn load(&self) -> Result<(), i32> {
        let prog = libc::sock_fprog { len: self.0.len() as u16, filter: self.0.as_ptr() as *mut libc::sock_filter };
        // SAFETY: `prog` points at `len` valid sock_filter structs (same layout, repr(C)) that
        // outlive the call; the kernel copies them.
        let rc = unsafe {
            libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &prog as *const libc::sock_fprog)
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL));
        }
        Ok(())
    }
}

/// The program a bundle asks for: the precompiled file its annotation names, else its
/// `linux.seccomp` compiled here (bundles written by other tools), else none.
pub fn plan_program(spec: &crate::spec::Spec) -> Result<Option<Program>, SeccompError> {
    if let Some(path) = spec.annotations.get(ANNOTATION_BPF) {
        return Program::read(Path::new(path)).map(Some);
    }
    let Some(value) = spec.linux.as_ref().and_then(|l| l.seccomp.as_ref()) else {
        return Ok(None);
    };
    let profile: LinuxSeccomp = serde_json::from_value(value.clone())
        .map_err(|e| SeccompError::BadProgram { path: "linux.seccomp".to_string(), reason: e.to_string() })?;
    compile(&profile).map(Some)
}

#[cfg(test)]
mod tests;
