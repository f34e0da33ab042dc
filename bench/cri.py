"""The CRI benchmark's driver (bench/cri.sh): against one runtime's CRI socket, N pods started
one after another as kubelet starts them (RunPodSandbox, CreateContainer, StartContainer of a
busybox `sleep`), then N ExecSync of `true` into the first, N streamed execs of `echo` (the Exec
RPC, then its URL driven to the end over WebSocket `v4.channel.k8s.io`, and as many over SPDY/3.1,
with the e2e tests' clients from cri_client.py), then the memory the runtime's
processes (daemon, shims, pause processes, the pods' own) grew by, per pod; then every pod is
stopped and removed. Prints one JSON line.

Usage: cri.py SOCKET IMAGE N LOGDIR CGROUP_PARENT SUBNET_TAG DAEMON_PID
"""
import json
import os
import sys
import time

import grpc
from cri_api.v1 import api_pb2 as a
from cri_api.v1 import api_pb2_grpc as g

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "e2e", "tests", "it"))
from cri_client import drive_spdy, drive_stream  # noqa: E402


def pss_kib(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree(root):
    """root and every descendant, plus processes reparented away from it (shims setsid and
    re-parent to init): every process whose cgroup or parentage ties it to the runtime is
    found by the caller's pids; here the plain tree."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def runtime_pids(daemon_pid, marks):
    """The daemon and every process whose command line holds one of `marks` (its shims), with
    their descendants (pause processes and the pods' commands)."""
    roots = {daemon_pid}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if any(m in cmd for m in marks):
            roots.add(int(d))
    pids = set()
    for r in roots:
        pids.update(tree(r))
    return pids


def main():
    sock, image, n, logdir, cgroup_parent, tag, daemon_pid = sys.argv[1:8]
    n, daemon_pid = int(n), int(daemon_pid)
    marks = ["wharf-shim"] if "wharf" in tag else ["containerd-shim"]
    ch = grpc.insecure_channel("unix://" + sock, options=[("grpc.default_authority", "localhost")])
    rt, im = g.RuntimeServiceStub(ch), g.ImageServiceStub(ch)
    image_ref = im.PullImage(a.PullImageRequest(image=a.ImageSpec(image=image)), timeout=300).image_ref
    before = sum(pss_kib(p) for p in runtime_pids(daemon_pid, marks))
    starts, pods = [], []
    for i in range(n + 1):
        meta = a.PodSandboxMetadata(name="bench-%d" % i, namespace="bench", uid="%s-%d" % (tag, i), attempt=0)
        cfg = a.PodSandboxConfig(
            metadata=meta,
            hostname="bench-%d" % i,
            log_directory=logdir,
            linux=a.LinuxPodSandboxConfig(cgroup_parent="%s/pod%d" % (cgroup_parent, i)),
        )
        c = a.ContainerConfig(
            metadata=a.ContainerMetadata(name="sleep"),
            image=a.ImageSpec(image=image_ref),
            command=["sleep", "3600"],
            log_path="bench-%d.log" % i,
        )
        t0 = time.monotonic()
        sid = rt.RunPodSandbox(a.RunPodSandboxRequest(config=cfg), timeout=120).pod_sandbox_id
        cid = rt.CreateContainer(
            a.CreateContainerRequest(pod_sandbox_id=sid, config=c, sandbox_config=cfg), timeout=120
        ).container_id
        rt.StartContainer(a.StartContainerRequest(container_id=cid), timeout=120)
        t1 = time.monotonic()
        pods.append((sid, cid, cgroup_parent + "/pod%d" % i))
        if i > 0:  # the first is the warm-up (the pause image made or unpacked)
            starts.append((t1 - t0) * 1000)
    time.sleep(1)
    after = sum(pss_kib(p) for p in runtime_pids(daemon_pid, marks))
    execs = []
    for _ in range(n):
        t0 = time.monotonic()
        r = rt.ExecSync(a.ExecSyncRequest(container_id=pods[0][1], cmd=["true"], timeout=30), timeout=60)
        execs.append((time.monotonic() - t0) * 1000)
        assert r.exit_code == 0, r
    # A streamed exec, round trip: the RPC, the upgrade, the output, the exit status, the close.
    streamed = {"ws": [], "spdy": []}
    for kind in streamed:
        for _ in range(n):
            t0 = time.monotonic()
            req = a.ExecRequest(container_id=pods[0][1], cmd=["echo", "hi"], stdout=True)
            url = rt.Exec(req, timeout=30).url
            if kind == "ws":
                out = drive_stream({"stream": url, "protocols": ["v4.channel.k8s.io"]})
                got = out["channels"].get("1")
            else:
                out = drive_spdy({"spdy": url, "protocols": ["v4.channel.k8s.io"],
                                  "streams": [["error", {"streamType": "error"}], ["stdout", {"streamType": "stdout"}]]})
                got = out["streams"].get("stdout")
            streamed[kind].append((time.monotonic() - t0) * 1000)
            assert got == "hi\n", out
    for sid, _, _ in pods:
        rt.StopPodSandbox(a.StopPodSandboxRequest(pod_sandbox_id=sid), timeout=120)
        rt.RemovePodSandbox(a.RemovePodSandboxRequest(pod_sandbox_id=sid), timeout=120)

    def med(v):
        v = sorted(v)
        return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2

    print(json.dumps({
        "runtime": tag,
        "pods": n,
        "pod_start_ms_median": round(med(starts), 1),
        "pod_start_ms_max": round(max(starts), 1),
        "exec_sync_ms_median": round(med(execs), 1),
        "exec_ws_ms_median": round(med(streamed["ws"]), 1),
        "exec_spdy_ms_median": round(med(streamed["spdy"]), 1),
        "pss_kib_per_pod": round((after - before) / (n + 1), 1),
    }))


if __name__ == "__main__":
    main()
