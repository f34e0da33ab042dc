#!/usr/bin/env bash
# The API over TLS with client certificates (-H tcp:// --tlsverify), wharfd side by side with
# a private dockerd set up the same way: N requests each on a new connection (TCP + TLS
# handshake + GET /_ping) and N requests on one kept-alive connection (GET /containers/json),
# from one Python client (ssl module). Throw-away CA from openssl. Uses target/release. Root.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/wharf-bench-tls.XXXXXX)
N=${N:-300}
source "$ROOT/bench/lib.sh"
trap cleanup EXIT

cd "$WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
    -days 2 -subj /CN=bench-ca 2>/dev/null
sign() { # sign NAME CN EXT
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$1.key" -out "$1.csr" \
        -subj "/CN=$2" 2>/dev/null
    printf '%b' "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out "$1.pem" \
        -extfile "$1.ext" 2>/dev/null
}
sign server 127.0.0.1 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'
sign client bench 'extendedKeyUsage=clientAuth\n'
cd "$ROOT"
TLS=(--tlsverify --tlscacert "$WORK/ca.pem" --tlscert "$WORK/server.pem" --tlskey "$WORK/server.key")

WPORT=$(free_port)
WHARFD_ARGS="-H tcp://127.0.0.1:$WPORT ${TLS[*]}" start_wharfd "$WORK/wharfd"

DPORT=
if command -v dockerd >/dev/null 2>&1 && [ -z "${NO_DOCKER:-}" ]; then
    DPORT=$(free_port)
    mkdir -p "$WORK/docker"
    dockerd --data-root "$WORK/docker/data" --exec-root "$WORK/docker/exec" --pidfile "$WORK/docker/docker.pid" \
        -H "unix://$WORK/docker/docker.sock" -H "tcp://127.0.0.1:$DPORT" "${TLS[@]}" \
        --iptables=false --ip-masq=false --bridge=none >"$WORK/docker/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 300); do
        curl -fsS --unix-socket "$WORK/docker/docker.sock" http://localhost/_ping >/dev/null 2>&1 && break
        sleep 0.1
    done
fi

measure() { # measure PORT: "handshake_ms keepalive_ms" per request
    python3 - "$1" "$N" "$WORK" <<'PY'
import socket, ssl, sys, time
port, n, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=f"{work}/ca.pem")
ctx.load_cert_chain(f"{work}/client.pem", f"{work}/client.key")
def request(s, path, close):
    extra = "Connection: close\r\n" if close else ""
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, body = buf.split(b"\r\n\r\n", 1)
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    want = length[0] if length else None
    while want is not None and len(body) < want:
        body += s.recv(65536)
    if b" 200 " not in head.split(b"\r\n")[0]:
        raise SystemExit(f"unexpected answer: {head!r}")
def fresh():
    with socket.create_connection(("127.0.0.1", port)) as raw, ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        request(s, "/_ping", True)
fresh()
t0 = time.perf_counter()
for _ in range(n):
    fresh()
t1 = time.perf_counter()
with socket.create_connection(("127.0.0.1", port)) as raw, ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
    request(s, "/containers/json", False)
    t2 = time.perf_counter()
    for _ in range(n):
        request(s, "/containers/json", False)
    t3 = time.perf_counter()
print(f"{(t1 - t0) * 1000 / n:.3f} {(t3 - t2) * 1000 / n:.3f}")
PY
}

read -r wh wk < <(measure "$WPORT")
printf '\n%-44s %12s %12s %8s\n' "API over TLS (client certs), $N requests" "wharfd ms" "dockerd ms" "ratio"
if [ -n "$DPORT" ] && curl -fsS --unix-socket "$WORK/docker/docker.sock" http://localhost/_ping >/dev/null 2>&1; then
    read -r dh dk < <(measure "$DPORT")
    printf '%-44s %12s %12s %8s\n' "new connection + handshake + /_ping" "$wh" "$dh" "$(awk -v a="$wh" -v b="$dh" 'BEGIN { printf "%.2f", a / b }')"
    printf '%-44s %12s %12s %8s\n' "kept-alive GET /containers/json" "$wk" "$dk" "$(awk -v a="$wk" -v b="$dk" 'BEGIN { printf "%.2f", a / b }')"
else
    printf '%-44s %12s %12s\n' "new connection + handshake + /_ping" "$wh" "(no Docker engine: skipped)"
    printf '%-44s %12s %12s\n' "kept-alive GET /containers/json" "$wk" "-"
fi
stop_wharfd
