#!/usr/bin/env python3
"""API load: CLIENTS threads loop create/start/exec/logs/rm against one Engine API socket for
DURATION seconds. Prints requests per second, p50/p99 latency per operation and every failed
request, as one JSON line. Standard library only.

  load.py SOCKET IMAGE CLIENTS DURATION
"""
import http.client, json, socket, sys, threading, time


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=120)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(120)
        self.sock.connect(self.path)


def main():
    sock, image, clients, duration = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    lat = {}
    failures = []
    lock = threading.Lock()
    deadline = time.monotonic() + duration

    def call(conn, op, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        t0 = time.monotonic()
        try:
            conn.request(method, "/v1.41" + path, body=data, headers=headers)
            r = conn.getresponse()
            payload = r.read()
            status = r.status
        except Exception as e:  # a dropped connection is a failed request too
            status, payload = 0, str(e).encode()
            conn.close()
        ms = (time.monotonic() - t0) * 1000
        with lock:
            lat.setdefault(op, []).append(ms)
            if status == 0 or status >= 400:
                failures.append(f"{op} {method} {path}: {status} {payload[:200]!r}")
        return status, payload

    def client(n):
        conn = UnixConnection(sock)
        i = 0
        while time.monotonic() < deadline:
            name = f"load-{n}-{i}"
            i += 1
            st, body = call(conn, "create", "POST", f"/containers/create?name={name}",
                            {"Image": image, "Cmd": ["sh", "-c", "echo hello; sleep 30"]})
            if st != 201:
                continue
            cid = json.loads(body)["Id"]
            call(conn, "start", "POST", f"/containers/{cid}/start")
            st, body = call(conn, "exec-create", "POST", f"/containers/{cid}/exec",
                            {"Cmd": ["true"], "AttachStdout": True, "AttachStderr": True})
            if st == 201:
                eid = json.loads(body)["Id"]
                call(conn, "exec-start", "POST", f"/exec/{eid}/start", {"Detach": False, "Tty": False})
            call(conn, "logs", "GET", f"/containers/{cid}/logs?stdout=1&stderr=1")
            call(conn, "rm", "DELETE", f"/containers/{cid}?force=1")

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    total = sum(len(v) for v in lat.values())

    def pct(v, p):
        v = sorted(v)
        return round(v[min(len(v) - 1, int(len(v) * p))], 1) if v else None

    print(json.dumps({
        "requests": total,
        "seconds": round(elapsed, 1),
        "rate": round(total / elapsed, 1),
        "p50_ms": pct([x for v in lat.values() for x in v], 0.50),
        "p99_ms": pct([x for v in lat.values() for x in v], 0.99),
        "ops": {op: {"n": len(v), "p50": pct(v, 0.5), "p99": pct(v, 0.99)} for op, v in sorted(lat.items())},
        "failed": len(failures),
        "failures": failures[:20],
    }))


main()
