#!/usr/bin/env python3
"""wharf-registry with Harbor's model on (`serve --auth`) against itself without it (part 1).

Figures (issue 11's performance goals), each printed beside its reference as a ratio:
- blob push and pull throughput in MB/s through the permission checks (Basic credentials of a
  project member on every request) vs the open registry, same sizes, same concurrency, the
  median of ROUNDS rounds run in alternating orders (open-auth, auth-open, ...), and the
  server's own CPU time per pushed and pulled MB (user + system from /proc), which a busy
  machine disturbs far less than wall-clock throughput; the password's first check (PBKDF2,
  then remembered for a minute: a login) is made before and printed apart;
- the REST API's projects page and a project's repository list with REPOS repositories: the
  median time of a page (loopback, so the server's time plus a round trip) — goal < 100 ms;
- a proxy-cache pull (a manifest and its blobs through a proxy project, cold and warm) vs the
  same pull from the upstream directly;
- the RSS of the --auth server after all of it — goal < 100 MB.

Uses target/release/wharf-registry (WHARF_BIN_DIR to change). Loopback only; everything it
starts is stopped and its temp dir removed.
Env: REPOS (10000), BLOBS (24), BLOB_MB (10), CONC (4), ROUNDS (4).
"""

import base64
import concurrent.futures
import hashlib
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("WHARF_BIN_DIR", os.path.join(ROOT, "target", "release"))
REPOS = int(os.environ.get("REPOS", "10000"))
BLOBS = int(os.environ.get("BLOBS", "24"))
BLOB_MB = int(os.environ.get("BLOB_MB", "10"))
CONC = int(os.environ.get("CONC", "4"))
ROUNDS = int(os.environ.get("ROUNDS", "4"))
ADMIN_PW = "Bench12345"
ADMIN = "Basic " + base64.b64encode(f"admin:{ADMIN_PW}".encode()).decode()
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, work, name, extra):
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        data = os.path.join(work, name)
        log = open(os.path.join(work, f"{name}.log"), "w")
        args = [os.path.join(BIN, "wharf-registry"), "serve", "--addr", self.addr, "--data-dir", data,
                "--log-level", "error"] + extra
        self.proc = subprocess.Popen(args, stdout=log, stderr=log)
        for _ in range(200):
            try:
                c = http.client.HTTPConnection(self.addr, timeout=2)
                c.request("GET", "/v2/")
                c.getresponse().read()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"{name} did not start: {open(log.name).read()}")

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS"):
                    return int(line.split()[1])
        return 0

    def cpu_s(self):
        """User + system CPU seconds the server has used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Client:
    """One keep-alive connection; every request carries `authz` when given."""

    def __init__(self, addr, authz=None):
        self.addr, self.authz = addr, authz
        self.conn = http.client.HTTPConnection(addr, timeout=60)

    def req(self, method, path, body=None, headers=None):
        h = dict(headers or {})
        if self.authz:
            h["Authorization"] = self.authz
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=h)
                r = self.conn.getresponse()
                data = r.read()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, data
            except (http.client.HTTPException, OSError):
                if attempt:
                    raise
                self.conn = http.client.HTTPConnection(self.addr, timeout=60)

    def push_blob(self, repo, data, digest=None):
        digest = digest or "sha256:" + hashlib.sha256(data).hexdigest()
        st, h, body = self.req("POST", f"/v2/{repo}/blobs/uploads/")
        assert st == 202, (st, body)
        loc = h["location"]
        sep = "&" if "?" in loc else "?"
        st, _, body = self.req("PUT", f"{loc}{sep}digest={digest}", body=data,
                               headers={"Content-Type": "application/octet-stream"})
        assert st == 201, (st, body)
        return digest

    def pull_blob(self, repo, digest):
        st, _, body = self.req("GET", f"/v2/{repo}/blobs/{digest}")
        assert st == 200, (st, body[:200])
        return len(body)


def per_thread(addr, authz):
    """A function giving each thread its own keep-alive client (a connection is not shared)."""
    local = threading.local()

    def get():
        if not hasattr(local, "c"):
            local.c = Client(addr, authz)
        return local.c
    return get


def throughput(server, authz, repo, blobs):
    """MB/s of pushing then pulling `blobs` with CONC clients, and the server's CPU ms per MB
    of each."""
    def run(fn, items):
        client = per_thread(server.addr, authz)
        c0, t0 = server.cpu_s(), time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(CONC) as pool:
            list(pool.map(lambda item: fn(client(), item), items))
        mb = len(items) * BLOB_MB
        return mb / (time.monotonic() - t0), (server.cpu_s() - c0) * 1000 / mb

    push, push_cpu = run(lambda c, b: c.push_blob(repo, b[1], b[0]), blobs)
    pull, pull_cpu = run(lambda c, b: c.pull_blob(repo, b[0]), blobs)
    return push, pull, push_cpu, pull_cpu


def median_ms(c, path, n=25):
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        st, _, body = c.req("GET", path)
        times.append((time.monotonic() - t0) * 1000)
        assert st == 200, (st, path, body[:200])
    return statistics.median(times)


def fill_repositories(addr, n):
    """`n` repositories in project library, each with one tiny image (config only)."""
    c = Client(addr, ADMIN)
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    cfg = c.push_blob("library/r0", config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": cfg, "size": len(config)}, "layers": []}).encode()

    def one(i, client):
        repo = f"library/r{i}"
        if i:
            st, _, body = client.req("POST", f"/v2/{repo}/blobs/uploads/?mount={cfg}&from=library/r0")
            assert st == 201, (st, body)
        st, _, body = client.req("PUT", f"/v2/{repo}/manifests/1", body=manifest,
                                 headers={"Content-Type": OCI_MANIFEST})
        assert st == 201, (st, body)

    client = per_thread(addr, ADMIN)
    with concurrent.futures.ThreadPoolExecutor(CONC) as pool:
        list(pool.map(lambda i: one(i, client()), range(n)))


def pull_image(c, repo, tag):
    st, h, body = c.req("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
    assert st == 200, (st, body[:300])
    m = json.loads(body)
    total = 0
    for d in [m["config"]] + m["layers"]:
        total += c.pull_blob(repo, d["digest"])
    return total


def main():
    work = tempfile.mkdtemp(prefix="wharf-bench-harbor.")
    servers = []
    try:
        open_srv = Server(work, "open", ["--open"])
        servers.append(open_srv)
        auth_srv = Server(work, "auth", ["--auth", "--admin-password", ADMIN_PW])
        servers.append(auth_srv)
        # Rounds in alternating orders (open first, then --auth first, ...), fresh blobs each
        # time: what the first server's writes leave to the disk must not count against the
        # second.
        runs = {"open": [], "auth": []}
        # The member's password is checked with PBKDF2 once (then remembered for a minute):
        # that is a login, paid here, not part of the throughput.
        t0 = time.monotonic()
        st, _, body = Client(auth_srv.addr, ADMIN).req("GET", "/v2/")
        assert st == 200, (st, body)
        login_ms = (time.monotonic() - t0) * 1000
        for r in range(ROUNDS):
            for who in (("open", "auth"), ("auth", "open"))[r % 2]:
                blobs = []
                for _ in range(BLOBS):
                    data = os.urandom(BLOB_MB << 20)
                    blobs.append(("sha256:" + hashlib.sha256(data).hexdigest(), data))
                if who == "open":
                    runs[who].append(throughput(open_srv, None, "bench/blobs", blobs))
                else:
                    runs[who].append(throughput(auth_srv, ADMIN, "library/blobs", blobs))
        o_push, o_pull, o_push_cpu, o_pull_cpu = (statistics.median(r[i] for r in runs["open"]) for i in range(4))
        a_push, a_pull, a_push_cpu, a_pull_cpu = (statistics.median(r[i] for r in runs["auth"]) for i in range(4))

        t0 = time.monotonic()
        fill_repositories(auth_srv.addr, REPOS)
        fill_s = time.monotonic() - t0
        api = Client(auth_srv.addr, ADMIN)
        projects_ms = median_ms(api, "/api/v2.0/projects?page=1&page_size=15")
        first_ms = median_ms(api, "/api/v2.0/projects/library/repositories?page=1&page_size=15")
        last = max(1, REPOS // 15)
        last_ms = median_ms(api, f"/api/v2.0/projects/library/repositories?page={last}&page_size=15")
        search_ms = median_ms(api, "/api/v2.0/projects/library/repositories?q=name%3D~r99&page=1&page_size=15")

        # Proxy cache: the open server is the upstream of project `cache` of the auth server.
        up = Client(open_srv.addr)
        image_layers = [os.urandom(BLOB_MB << 20) for _ in range(3)]
        config = b'{"architecture":"amd64","os":"linux"}'
        cfg = up.push_blob("lib/img", config)
        layers = [up.push_blob("lib/img", l) for l in image_layers]
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": cfg, "size": len(config)},
                               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d,
                                           "size": BLOB_MB << 20} for d in layers]}).encode()
        st, _, body = up.req("PUT", "/v2/lib/img/manifests/1", body=manifest, headers={"Content-Type": OCI_MANIFEST})
        assert st == 201, (st, body)
        st, h, body = api.req("POST", "/api/v2.0/registries", body=json.dumps(
            {"name": "up", "type": "docker-registry", "url": f"http://{open_srv.addr}"}),
            headers={"Content-Type": "application/json"})
        assert st == 201, (st, body)
        rid = int(h["location"].rsplit("/", 1)[1])
        st, _, body = api.req("POST", "/api/v2.0/projects", body=json.dumps(
            {"project_name": "cache", "registry_id": rid, "metadata": {"public": "true"}}),
            headers={"Content-Type": "application/json"})
        assert st == 201, (st, body)
        size_mb = 3 * BLOB_MB
        t0 = time.monotonic()
        pull_image(up, "lib/img", "1")
        direct = size_mb / (time.monotonic() - t0)
        t0 = time.monotonic()
        pull_image(api, "cache/lib/img", "1")
        cold = size_mb / (time.monotonic() - t0)
        t0 = time.monotonic()
        pull_image(api, "cache/lib/img", "1")
        warm = size_mb / (time.monotonic() - t0)
        rss = auth_srv.rss_kib()

        print(f"\nwharf-registry --auth (Harbor model) vs the open registry; {BLOBS} blobs of {BLOB_MB} MB, "
              f"{CONC} clients, median of {ROUNDS} rounds; {REPOS} repositories")
        print(f"{'':44} {'reference':>12} {'--auth':>12} {'ratio':>7}")
        print(f"{'blob push MB/s (vs open)':44} {o_push:12.0f} {a_push:12.0f} {a_push / o_push:7.2f}")
        print(f"{'blob pull MB/s (vs open)':44} {o_pull:12.0f} {a_pull:12.0f} {a_pull / o_pull:7.2f}")
        print(f"{'server CPU ms per MB pushed (vs open)':44} {o_push_cpu:12.2f} {a_push_cpu:12.2f} "
              f"{a_push_cpu / o_push_cpu:7.2f}")
        print(f"{'server CPU ms per MB pulled (vs open)':44} {o_pull_cpu:12.2f} {a_pull_cpu:12.2f} "
              f"{a_pull_cpu / o_pull_cpu:7.2f}")
        print(f"  (the first request's password check, a login: {login_ms:.0f} ms)")
        print("  per round, push MB/s open/auth: " + ", ".join(
            f"{o[0]:.0f}/{a[0]:.0f}" for o, a in zip(runs["open"], runs["auth"])))
        print(f"{'projects page, ms (goal 100)':44} {100:12} {projects_ms:12.1f} {projects_ms / 100:7.2f}")
        print(f"{'repositories page 1, ms (goal 100)':44} {100:12} {first_ms:12.1f} {first_ms / 100:7.2f}")
        print(f"{'repositories last page, ms (goal 100)':44} {100:12} {last_ms:12.1f} {last_ms / 100:7.2f}")
        print(f"{'repositories q=name=~r99, ms (goal 100)':44} {100:12} {search_ms:12.1f} {search_ms / 100:7.2f}")
        print(f"{'proxy pull cold MB/s (vs upstream direct)':44} {direct:12.0f} {cold:12.0f} {cold / direct:7.2f}")
        print(f"{'proxy pull warm MB/s (vs upstream direct)':44} {direct:12.0f} {warm:12.0f} {warm / direct:7.2f}")
        print(f"{'RSS after all, MiB (goal 100)':44} {100:12} {rss / 1024:12.1f} {rss / 1024 / 100:7.2f}")
        print(f"(filling {REPOS} repositories took {fill_s:.1f} s)")
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
