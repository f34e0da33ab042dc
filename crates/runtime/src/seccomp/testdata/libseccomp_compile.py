#!/usr/bin/python3
"""Compiles an OCI `linux.seccomp` profile with libseccomp, the reference wharf's compiler is
checked against (seccomp/tests.rs, default_profile_matches_libseccomp...).

    /usr/bin/python3 libseccomp_compile.py PROFILE.json OUT.bpf

Writes the raw sock_filter program libseccomp would load (export_bpf), for x86-64 plus the
profile's x86 architectures, and prints one JSON object: "unknown", the profile's names libseccomp knows on none of the
architectures (left out, as wharf leaves out names its tables lack), and "numbers", per
architecture (X86_64, X32, I386) the number libseccomp gives each name of the profile.
Needs Debian's python3-seccomp (libseccomp 2.5) for /usr/bin/python3.
"""

import json
import platform
import sys

try:
    import seccomp
except ImportError:
    sys.exit("libseccomp_compile.py: no seccomp module: install Debian's python3-seccomp")

ARCHES = {"SCMP_ARCH_X86_64": seccomp.Arch.X86_64, "SCMP_ARCH_X86": seccomp.Arch.X86, "SCMP_ARCH_X32": seccomp.Arch.X32}
OPS = {
    "SCMP_CMP_NE": seccomp.NE,
    "SCMP_CMP_LT": seccomp.LT,
    "SCMP_CMP_LE": seccomp.LE,
    "SCMP_CMP_EQ": seccomp.EQ,
    "SCMP_CMP_GE": seccomp.GE,
    "SCMP_CMP_GT": seccomp.GT,
    "SCMP_CMP_MASKED_EQ": seccomp.MASKED_EQ,
}


def action(name, errno):
    # The same defaults as wharf's compiler and runc: ERRNO and TRACE without a value mean EPERM.
    if name == "SCMP_ACT_ALLOW":
        return seccomp.ALLOW
    if name == "SCMP_ACT_ERRNO":
        return seccomp.ERRNO(1 if errno is None else errno)
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return seccomp.KILL
    if name == "SCMP_ACT_KILL_PROCESS":
        return seccomp.KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return seccomp.TRAP
    if name == "SCMP_ACT_LOG":
        return seccomp.LOG
    if name == "SCMP_ACT_TRACE":
        return seccomp.TRACE(1 if errno is None else errno)
    sys.exit(f"libseccomp_compile.py: unknown action {name}")


def main():
    profile_path, out_path = sys.argv[1], sys.argv[2]
    with open(profile_path, encoding="utf-8") as f:
        p = json.load(f)
    default_errno = p.get("defaultErrnoRet")
    f = seccomp.SyscallFilter(defaction=action(p["defaultAction"], default_errno))
    # The filter starts with the native architecture; this script runs on x86-64 only.
    if platform.machine() != "x86_64":
        sys.exit("libseccomp_compile.py: the comparison is for x86-64 hosts")
    arches = [seccomp.Arch.X86_64]
    for a in p.get("architectures", []):
        if a in ARCHES and ARCHES[a] not in arches:
            f.add_arch(ARCHES[a])
            arches.append(ARCHES[a])
    unknown = set()
    for rule in p.get("syscalls", []):
        act = action(rule["action"], rule.get("errnoRet", default_errno))
        args = []
        for a in rule.get("args", []) or []:
            if a["op"] == "SCMP_CMP_MASKED_EQ":
                # OCI's value is the mask and valueTwo the datum, libseccomp's order too.
                args.append(seccomp.Arg(a["index"], OPS[a["op"]], a["value"], a.get("valueTwo", 0)))
            else:
                args.append(seccomp.Arg(a["index"], OPS[a["op"]], a["value"]))
        for name in rule["names"]:
            # A name libseccomp lacks on every architecture cannot be added; one it lacks on
            # some is added where it exists (libseccomp skips the others itself).
            if all(seccomp.resolve_syscall(arch, name) == -1 for arch in arches):
                unknown.add(name)
                continue
            f.add_rule(act, name, *args)
    with open(out_path, "wb") as out:
        f.export_bpf(out)
    # The numbers libseccomp gives the profile's names, so the test can tell a call newer than
    # wharf's tables (the headers they came from) from a compiler difference.
    numbers = {}
    for label, arch in (("X86_64", seccomp.Arch.X86_64), ("X32", seccomp.Arch.X32), ("I386", seccomp.Arch.X86)):
        numbers[label] = {}
        for rule in p.get("syscalls", []):
            for name in rule["names"]:
                nr = seccomp.resolve_syscall(arch, name)
                if nr >= 0:
                    numbers[label][name] = nr
    json.dump({"unknown": sorted(unknown), "numbers": numbers}, sys.stdout)


main()
