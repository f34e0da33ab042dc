#!/usr/bin/env python3
"""docker-py 7 calls whose answers differed between wharfd and dockerd (issue 12), run against
DOCKER_HOST: argv[1] names the case, argv[2] the busybox image. Prints one JSON object with
what docker-py returned; docker_py.rs runs it against wharfd and a private dockerd and
compares. Bytes are printed as latin-1 text so that every byte survives JSON.
"""

import io
import json
import os
import tarfile
import re
import sys
import time

import docker


def text(b):
    return b.decode("latin-1") if isinstance(b, bytes) else b


def read_all(sock):
    data = b""
    while True:
        chunk = sock.read(65536) if hasattr(sock, "read") else sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def exec_output(client, image):
    api = client.api
    c = client.containers.run(image, ["sleep", "60"], detach=True)
    try:
        out = {}
        # A short exec's output complete every time, however fast it is.
        runs = [c.exec_run(["echo", "hello world"]) for _ in range(20)]
        out["exec_run"] = sorted({text(r.output) for r in runs})
        out["exec_run_codes"] = sorted({r.exit_code for r in runs})
        out["exec_run_exit"] = c.exec_run(["sh", "-c", "exit 3"]).exit_code
        out["workdir"] = text(c.exec_run(["pwd"], workdir="/tmp").output)
        out["environment"] = text(c.exec_run(["sh", "-c", "echo $A"], environment={"A": "b"}).output)
        eid = api.exec_create(c.id, ["sh", "-c", "echo out; sleep 0.2; echo err >&2"])["Id"]
        out["exec_start"] = text(api.exec_start(eid))
        eid = api.exec_create(c.id, ["sh", "-c", "echo out; sleep 0.2; echo err >&2"])["Id"]
        so, se = api.exec_start(eid, demux=True)
        out["demux"] = [text(so), text(se)]
        eid = api.exec_create(c.id, ["echo", "hello world"])["Id"]
        sock = api.exec_start(eid, socket=True)
        out["socket"] = text(read_all(sock))
        sock.close()
        eid = api.exec_create(c.id, ["echo", "hello world"])["Id"]
        out["stream"] = text(b"".join(api.exec_start(eid, stream=True)))
        out["tty"] = text(c.exec_run(["echo", "hi"], tty=True).output)
        eid = api.exec_create(c.id, ["sh", "-c", "printf 'a\\nb\\n'"], tty=True)["Id"]
        out["tty_stream"] = text(b"".join(api.exec_start(eid, tty=True, stream=True)))
        inspect = api.exec_inspect(eid)
        out["exec_inspect"] = {k: inspect.get(k) for k in ["ExitCode", "Running", "OpenStdin", "OpenStdout", "OpenStderr"]}
        return out
    finally:
        c.remove(force=True)


def attach_after_exit(client, image):
    api = client.api
    out = {}
    c = client.containers.run(image, ["sh", "-c", "echo out"], detach=True)
    c.wait()
    out["attach_logs"] = text(api.attach(c.id, stream=False, logs=True))
    out["attach_logs_stdout"] = text(api.attach(c.id, stream=False, logs=True, stdout=True, stderr=False))
    c.remove()
    t = client.containers.run(image, ["sh", "-c", "printf 'a\\nb\\n'"], detach=True, tty=True)
    t.wait()
    out["tty_logs"] = text(t.logs())
    out["tty_attach_logs"] = text(api.attach(t.id, stream=False, logs=True))
    t.remove()
    out["run_output"] = text(client.containers.run(image, ["sh", "-c", "echo run"], remove=True))
    return out


def swarm(client, image):
    out = {"leave": client.swarm.leave(force=True)}
    for name, call in [
        ("inspect", lambda: client.api.inspect_swarm()),
        ("services", lambda: client.services.list()),
        ("nodes", lambda: client.nodes.list()),
        ("secrets", lambda: client.secrets.list()),
        ("configs", lambda: client.configs.list()),
        ("tasks", lambda: client.api.tasks()),
        ("leave_no_force", lambda: client.swarm.leave(force=False)),
    ]:
        try:
            call()
            out[name] = "no error"
        except docker.errors.APIError as e:
            out[name] = [e.status_code, e.explanation]
    out["info_swarm_state"] = client.info()["Swarm"]["LocalNodeState"]
    return out


def shape(value, path="", out=None):
    """Every key path of a JSON value with its type: {"Config.Env[]": "str", ...}."""
    out = {} if out is None else out
    if isinstance(value, dict):
        out[path or "."] = "object"
        for k, v in value.items():
            # Keys that are data, not fields: ids and registry addresses differ between engines.
            if re.fullmatch(r"[0-9a-f]{64}", k):
                k = "<id>"
            elif re.fullmatch(r"[0-9.]+:[0-9]+", k):
                k = "<host:port>"
            shape(v, f"{path}.{k}" if path else k, out)
    elif isinstance(value, list):
        out[path] = "list"
        for v in value:
            shape(v, path + "[]", out)
    else:
        t = {type(None): "null", bool: "bool", int: "number", float: "number", str: "string"}[type(value)]
        prev = out.get(path)
        out[path] = t if prev in (None, t) else "|".join(sorted(set(prev.split("|")) | {t}))
    return out


def shapes(client, image):
    """The key paths and types of what clients index without checking: inspect of a container,
    image, network, volume and exec, /info, /version, /system/df. At API 1.41, the newest
    dockerd 20.10 speaks, so that both answer the same version."""
    api = docker.APIClient(base_url=os.environ["DOCKER_HOST"], version="1.41")
    out = {}
    c = api.create_container(
        image,
        ["sleep", "60"],
        name="shape",
        labels={"a": "b"},
        environment=["A=1"],
        ports=[80],
        healthcheck={"test": ["CMD", "true"], "interval": 1000000000},
        volumes=["/data"],
        host_config=api.create_host_config(network_mode="none", binds={"shape-vol": {"bind": "/v", "mode": "rw"}}),
    )
    api.start(c["Id"])
    eid = api.exec_create(c["Id"], ["true"])["Id"]
    api.exec_start(eid)
    for name, value in [
        ("container", api.inspect_container(c["Id"])),
        ("container_list", api.containers(all=True)),
        ("image", api.inspect_image(image)),
        ("image_list", api.images()),
        ("network", api.inspect_network("none")),
        ("volume", api.inspect_volume("shape-vol")),
        ("exec", api.exec_inspect(eid)),
        ("info", api.info()),
        ("version", api.version()),
        ("df", api.df()),
    ]:
        out[name] = shape(value)
    api.remove_container(c["Id"], force=True)
    api.remove_volume("shape-vol")
    return out


def tar_of(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def errors(client, image):
    """The status and message of the mistakes people make most, as docker-py raises them."""
    api = docker.APIClient(base_url=os.environ["DOCKER_HOST"], version="1.41")
    c = api.create_container(image, ["sleep", "60"], name="err-a")
    api.start(c["Id"])
    api.create_volume("err-vol")
    calls = [
        ("inspect_missing_container", lambda: api.inspect_container("nosuch")),
        ("inspect_missing_image", lambda: api.inspect_image("nosuch:latest")),
        ("inspect_missing_network", lambda: api.inspect_network("nosuch")),
        ("inspect_missing_volume", lambda: api.inspect_volume("nosuch")),
        ("inspect_missing_exec", lambda: api.exec_inspect("0" * 64)),
        ("create_name_in_use", lambda: api.create_container(image, ["true"], name="err-a")),
        ("create_missing_image", lambda: api.create_container("nosuch:latest", ["true"])),
        ("create_bad_name", lambda: api.create_container(image, ["true"], name="bad name!")),
        ("start_missing", lambda: api.start("nosuch")),
        ("stop_missing", lambda: api.stop("nosuch")),
        ("kill_missing", lambda: api.kill("nosuch")),
        ("kill_bad_signal", lambda: api.kill("err-a", signal="SIGNOPE")),
        ("rm_running", lambda: api.remove_container("err-a")),
        ("rm_missing", lambda: api.remove_container("nosuch")),
        ("exec_missing_container", lambda: api.exec_create("nosuch", ["true"])),
        ("logs_missing", lambda: api.logs("nosuch")),
        ("rmi_missing", lambda: api.remove_image("nosuch:latest")),
        ("rmi_in_use", lambda: api.remove_image(image)),
        ("tag_missing", lambda: api.tag("nosuch:latest", "x", "y")),
        ("volume_rm_in_use_missing", lambda: api.remove_volume("nosuch")),
        ("network_rm_predefined", lambda: api.remove_network("bridge")),
        ("network_rm_missing", lambda: api.remove_network("nosuch")),
        ("network_connect_missing_container", lambda: api.connect_container_to_network("nosuch", "bridge")),
        ("bad_filter", lambda: api.containers(filters={"bogus": "x"})),
        ("bad_restart_policy", lambda: api.create_container(
            image, ["true"], host_config=api.create_host_config(restart_policy={"Name": "sometimes"}))),
        ("wait_missing", lambda: api.wait("nosuch")),
        ("pause_missing", lambda: api.pause("nosuch")),
        ("rename_to_taken", lambda: api.rename("err-a", "err-a")),
        ("top_missing", lambda: api.top("nosuch")),
        ("commit_missing", lambda: api.commit("nosuch")),
        ("load_not_a_tar", lambda: list(api.load_image(b"definitely not a tar archive" * 40))),
        ("load_tar_without_images", lambda: list(api.load_image(tar_of({"hello.txt": b"hi"})))),
    ]
    out = {}
    for name, call in calls:
        try:
            result = call()
            # A load reports its failure inside a 200's JSON stream, as dockerd does.
            failed = [c.get("error") for c in result if isinstance(c, dict) and "error" in c] if isinstance(result, list) else []
            out[name] = ["stream", failed[0]] if failed else "no error"
        except docker.errors.APIError as e:
            # Ids and the test registry's address differ between the two engines.
            text = re.sub(r"[0-9a-f]{64}", "<id>", str(e.explanation))
            text = re.sub(r"\b[0-9a-f]{12}\b", "<short id>", text)
            text = re.sub(r"[0-9.]+:[0-9]+/", "<registry>/", text)
            out[name] = [e.status_code, text]
    api.remove_container(c["Id"], force=True)
    api.remove_volume("err-vol")
    return out


RESOURCE_KEYS = [
    "Memory", "MemorySwap", "MemoryReservation", "MemorySwappiness", "KernelMemory", "NanoCpus",
    "CpuShares", "CpuPeriod", "CpuQuota", "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpusetCpus",
    "CpusetMems", "BlkioWeight", "BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps",
    "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "PidsLimit", "OomKillDisable", "OomScoreAdj",
    "ShmSize", "Ulimits",
]


def resources(client, image):
    """Resource controls through docker-py (issue 21): the create warnings and the HostConfig
    values of each, the refusals of bad values, and update_container, at API 1.41."""
    api = docker.APIClient(base_url=os.environ["DOCKER_HOST"], version="1.41")
    dev = "/dev/loop0"
    mb = 1024 * 1024
    cases = {
        "everything": dict(
            mem_limit="64m", memswap_limit="128m", mem_reservation="32m", mem_swappiness=10,
            kernel_memory="8m", cpu_period=50000, cpu_quota=25000, cpu_shares=512, cpuset_cpus="0",
            cpuset_mems="0", blkio_weight=300, blkio_weight_device=[{"Path": dev, "Weight": 200}],
            device_read_bps=[{"Path": dev, "Rate": mb}], device_write_bps=[{"Path": dev, "Rate": 2 * mb}],
            device_read_iops=[{"Path": dev, "Rate": 100}], device_write_iops=[{"Path": dev, "Rate": 200}],
            pids_limit=50, oom_kill_disable=True, oom_score_adj=100, shm_size="32m",
            ulimits=[docker.types.Ulimit(name="nofile", soft=1024, hard=2048)],
        ),
        "memory_only": dict(mem_limit="64m"),
        "nano_cpus": dict(nano_cpus=1500000000),
        "oom_kill_disable_alone": dict(oom_kill_disable=True),
        "rt_period": dict(cpu_rt_period=1000000),
        "bad_swap": dict(mem_limit="64m", memswap_limit="32m"),
        "bad_reservation": dict(mem_limit="32m", mem_reservation="64m"),
        "bad_swappiness": dict(mem_swappiness=101),
        "bad_period": dict(cpu_period=10),
        "bad_quota": dict(cpu_quota=10),
        "bad_nano_and_quota": dict(nano_cpus=500000000, cpu_quota=50000),
        "bad_cpuset": dict(cpuset_cpus="64"),
        "bad_rt": dict(cpu_rt_period=1000, cpu_rt_runtime=2000),
        "bad_kernel_memory": dict(kernel_memory="1m"),
    }
    out = {}
    for name, kwargs in cases.items():
        try:
            c = api.create_container(image, ["sleep", "60"], host_config=api.create_host_config(**kwargs))
        except docker.errors.APIError as e:
            out[name] = [e.status_code, str(e.explanation)]
            continue
        hc = api.inspect_container(c["Id"])["HostConfig"]
        out[name] = {"warnings": c.get("Warnings"), "host_config": {k: hc.get(k) for k in RESOURCE_KEYS}}
        api.remove_container(c["Id"], force=True)

    c = api.create_container(image, ["sleep", "60"], host_config=api.create_host_config(mem_limit="64m"))
    api.start(c["Id"])
    updates = [
        ("reservation", dict(mem_reservation="32m")),
        ("cpuset", dict(cpuset_cpus="0", cpuset_mems="0")),
        ("quota", dict(cpu_period=50000, cpu_quota=20000)),
        ("shares", dict(cpu_shares=512)),
        ("memory_and_swap", dict(mem_limit="96m", memswap_limit="192m")),
        ("memory_above_swap", dict(mem_limit="512m")),
        ("bad_reservation", dict(mem_reservation="1m")),
        ("bad_cpuset", dict(cpuset_cpus="64")),
    ]
    for name, kwargs in updates:
        try:
            r = api.update_container(c["Id"], **kwargs)
            out["update_" + name] = r.get("Warnings")
        except docker.errors.APIError as e:
            out["update_" + name] = [e.status_code, re.sub(r"[0-9a-f]{64}", "<id>", str(e.explanation))]
    hc = api.inspect_container(c["Id"])["HostConfig"]
    out["after_updates"] = {k: hc.get(k) for k in RESOURCE_KEYS}
    api.remove_container(c["Id"], force=True)
    return out


def streams(client, image):
    """Logs as bytes (plain, tail, demuxed, with time stamps) and the events of one container's
    life, at API 1.41."""
    api = docker.APIClient(base_url=os.environ["DOCKER_HOST"], version="1.41")
    out = {}
    start = int(time.time()) - 1
    # Pauses between the lines: two pipes race in any engine, and the order is what is compared.
    c = api.create_container(image, ["sh", "-c", "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three"], name="streams")
    api.start(c["Id"])
    api.wait(c["Id"])
    out["logs"] = text(api.logs(c["Id"]))
    out["logs_stdout"] = text(api.logs(c["Id"], stderr=False))
    out["logs_tail"] = text(api.logs(c["Id"], tail=1))
    out["logs_stream"] = text(b"".join(api.logs(c["Id"], stream=True)))
    stamped = text(api.logs(c["Id"], timestamps=True, stderr=False)).splitlines()
    out["logs_timestamps"] = [re.sub(r"^\d{4}-\d\d-\d\dT[\d:.]+Z ", "<time> ", l) for l in stamped]
    api.remove_container(c["Id"])
    until = int(time.time()) + 1
    events = api.events(since=start, until=until, decode=True, filters={"container": c["Id"]})
    out["events"] = [[e.get("Type"), e.get("Action"), sorted(e.get("Actor", {}).get("Attributes", {}).keys())] for e in events]
    return out


def main():
    case, image = sys.argv[1], sys.argv[2]
    client = docker.from_env(timeout=120)
    cases = {"exec_output": exec_output, "attach_after_exit": attach_after_exit, "swarm": swarm, "shapes": shapes, "errors": errors, "streams": streams, "resources": resources}
    result = cases[case](client, image)
    json.dump(result, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
