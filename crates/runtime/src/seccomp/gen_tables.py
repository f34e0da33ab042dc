#!/usr/bin/env python3
"""Writes tables.rs (system call numbers by architecture) from the kernel's uapi headers.

    python3 crates/runtime/src/seccomp/gen_tables.py > crates/runtime/src/seccomp/tables.rs

The headers are Debian's linux-libc-dev (the committed tables.rs came from 6.1):
  x86-64  /usr/include/x86_64-linux-gnu/asm/unistd_64.h
  x32     /usr/include/x86_64-linux-gnu/asm/unistd_x32.h
  i386    /usr/include/x86_64-linux-gnu/asm/unistd_32.h
  arm64   /usr/include/asm-generic/unistd.h, read as arm64's asm/unistd.h includes it
INCLUDE overrides /usr/include. Standard library only: no C preprocessor is run, the few
conditionals asm-generic/unistd.h has are evaluated here (anything else is an error).
The seccomp tests re-run this and compare its output with tables.rs. Calls newer than the
headers are added from NEWER below.
"""

import os
import re
import sys

INCLUDE = os.environ.get("INCLUDE", "/usr/include")

# What arm64's uapi asm/unistd.h defines before it includes asm-generic/unistd.h (Linux 6.1,
# arch/arm64/include/uapi/asm/unistd.h), and what its 64-bit, MMU userspace implies.
ARM64_MACROS = {
    "__BITS_PER_LONG": 64,
    "__ARCH_WANT_RENAMEAT": 1,
    "__ARCH_WANT_NEW_STAT": 1,
    "__ARCH_WANT_SET_GET_RLIMIT": 1,
    "__ARCH_WANT_TIME32_SYSCALLS": 1,
    "__ARCH_WANT_SYS_CLONE3": 1,
    "__ARCH_WANT_MEMFD_SECRET": 1,
}

X32_SYSCALL_BIT = 0x40000000


def read(rel):
    path = os.path.join(INCLUDE, rel)
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        sys.exit(f"gen_tables.py: {path} is missing: install Debian's linux-libc-dev")


def x86(rel):
    """A generated x86 header: one `#define __NR_name N` (x32: `(__X32_SYSCALL_BIT + N)`) a call."""
    out = []
    for line in read(rel).splitlines():
        m = re.fullmatch(r"#define __NR_(\w+) (?:(\d+)|\(__X32_SYSCALL_BIT \+ (\d+)\))", line)
        if m:
            nr = int(m[2]) if m[2] is not None else X32_SYSCALL_BIT + int(m[3])
            out.append((m[1], nr))
        elif line.startswith("#define __NR_"):
            sys.exit(f"gen_tables.py: {rel}: unexpected line {line!r}")
    return out


def cond(expr, macros):
    """The #if expressions of asm-generic/unistd.h: defined(X), X == N, X != N, !, ||, &&."""
    py = re.sub(r"defined\s*\(\s*(\w+)\s*\)", lambda m: "1" if m[1] in macros else "0", expr)
    py = re.sub(r"[A-Za-z_]\w*", lambda m: str(macros.get(m[0], 0)), py)
    py = py.replace("||", " or ").replace("&&", " and ").replace("!=", "<>").replace("!", " not ")
    py = py.replace("<>", "!=")
    if not re.fullmatch(r"[\d\s()=!<>]*(?:(?:or|and|not)[\d\s()=!<>]*)*", py):
        sys.exit(f"gen_tables.py: cannot evaluate #if {expr!r}")
    return bool(eval(py))  # only digits, comparisons and boolean operators remain


def generic(macros):
    """asm-generic/unistd.h with `macros` defined, in file order; __NR3264_x names resolve."""
    macros = dict(macros)
    stack = []  # per open #if: (this branch taken, some branch already taken)
    nrs = {}
    order = []
    for line in read("asm-generic/unistd.h").splitlines():
        m = re.match(r"#\s*(\w+)\s*(.*?)\s*(?:/\*.*)?$", line)
        if not m:
            continue
        directive, rest = m[1], m[2]
        active = all(taken for taken, _ in stack)
        if directive in ("if", "ifdef", "ifndef"):
            if directive == "ifdef":
                taken = rest in macros
            elif directive == "ifndef":
                taken = rest not in macros
            else:
                taken = active and cond(rest, macros)
            stack.append((taken, taken))
        elif directive == "elif":
            _, done = stack.pop()
            outer = all(t for t, _ in stack)
            taken = not done and outer and cond(rest, macros)
            stack.append((taken, done or taken))
        elif directive == "else":
            _, done = stack.pop()
            stack.append((not done, True))
        elif directive == "endif":
            stack.pop()
        elif not active or directive == "include":
            continue
        elif directive == "define":
            d = re.fullmatch(r"(\w+)(?:\s+(.*))?", rest)
            if not d or "(" in d[1]:
                continue  # function-like macros (__SYSCALL, __SC_COMP...) do not matter
            name, value = d[1], (d[2] or "").strip()
            macros[name] = value
            if name.startswith("__NR"):
                v = int(value) if value.isdigit() else nrs.get(value)
                if v is None:
                    sys.exit(f"gen_tables.py: asm-generic/unistd.h: cannot resolve {line!r}")
                nrs[name] = v
                if name.startswith("__NR_") and name not in order:
                    order.append(name)
        elif directive == "undef":
            macros.pop(rest, None)
            nrs.pop(rest, None)
            if rest in order:
                order.remove(rest)
        else:
            sys.exit(f"gen_tables.py: asm-generic/unistd.h: unexpected #{directive}")
    # Not system calls: the table size and the base of per-architecture extensions.
    skip = {"__NR_syscalls", "__NR_arch_specific_syscall"}
    return [(n.removeprefix("__NR_"), nrs[n]) for n in order if n not in skip]


# Calls newer than the headers' 6.1 that Docker's default profile allows (and libseccomp 2.5.4
# knows): since Linux 5.1 (424) a call has one number on every architecture, x32's with
# __X32_SYSCALL_BIT. map_shadow_stack has no x32 entry. Without these a container's
# fchmodat2 (glibc 2.39's lchmod) or futex_wait would be denied where Docker allows them.
NEWER = [
    ("cachestat", 451, True),
    ("fchmodat2", 452, True),
    ("map_shadow_stack", 453, False),
    ("futex_wake", 454, True),
    ("futex_wait", 455, True),
    ("futex_requeue", 456, True),
]


def with_newer(calls, x32=False):
    have = {n for n, _ in calls}
    extra = [(n, nr | X32_SYSCALL_BIT if x32 else nr) for n, nr, on_x32 in NEWER if n not in have and (on_x32 or not x32)]
    return calls + extra


def table(name, calls):
    calls = sorted(calls, key=lambda c: c[1])
    lines = [f"pub(super) const {name}: &[(&str, u32)] = &["]
    # x32 numbers carry __X32_SYSCALL_BIT: hex shows it (0x40000200), decimal would hide it.
    lines += [f'    ("{n}", {nr:#x}),' if nr & X32_SYSCALL_BIT else f'    ("{n}", {nr}),' for n, nr in calls]
    lines.append("];")
    return "\n".join(lines) + "\n"


def main():
    out = [
        "//! System call numbers by architecture, generated from the kernel's uapi headers\n"
        "//! (asm/unistd_64.h, unistd_x32.h, unistd_32.h, asm-generic/unistd.h as arm64 configures it),\n"
        "//! plus the newer calls gen_tables.py lists.\n",
        table("X86_64", with_newer(x86("x86_64-linux-gnu/asm/unistd_64.h"))),
        table("X32", with_newer(x86("x86_64-linux-gnu/asm/unistd_x32.h"), x32=True)),
        table("I386", with_newer(x86("x86_64-linux-gnu/asm/unistd_32.h"))),
        table("AARCH64", with_newer(generic(ARM64_MACROS))),
    ]
    sys.stdout.write("\n".join(out))


main()
