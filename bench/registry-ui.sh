#!/usr/bin/env bash
# The web UI's listings with many repositories: wharf-registry fills a project with N (default
# 10,000) one-manifest repositories (pushed unauthenticated on loopback, the project then made
# under --auth on the same data dir), then times, with a session cookie from /c/login as the UI
# sends it, the projects page and the repository list's first and last pages
# (curl's time_total on loopback: the server's time plus a loopback round trip), and the
# server's RSS. Uses target/release unless WHARF_REGISTRY names another binary.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${WHARF_REGISTRY:-$ROOT/target/release/wharf-registry}
N=${N:-10000}
RUNS=${RUNS:-20}
WORK=$(mktemp -d /tmp/wharf-bench-ui.XXXXXX)
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$port

serve() {
    "$BIN" serve --addr "127.0.0.1:$port" --data-dir "$WORK/data" "$@" >>"$WORK/registry.log" 2>&1 &
    PID=$!
    for _ in $(seq 200); do
        grep -q "wharf-registry listening on" "$WORK/registry.log" 2>/dev/null && return
        sleep 0.05
    done
    echo "wharf-registry did not start:" >&2
    cat "$WORK/registry.log" >&2
    exit 1
}

stop() {
    kill "$PID"
    wait "$PID" 2>/dev/null || true
    PID=
    : >"$WORK/registry.log"
}

serve
python3 - "$port" "$N" <<'PY'
import hashlib, http.client, json, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", port)
def req(method, path, body=b"", headers=None):
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    if r.status >= 300:
        sys.exit(f"{method} {path}: {r.status} {data[:300]!r}")
    return r
config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
layer = b"bench layer"
d = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()
first = "big/r00000"
for blob in (config, layer):
    req("POST", f"/v2/{first}/blobs/uploads/?digest={d(blob)}", blob)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d(layer), "size": len(layer)}]}).encode()
ct = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
for i in range(n):
    repo = f"big/r{i:05d}"
    if i:
        for blob in (config, layer):
            req("POST", f"/v2/{repo}/blobs/uploads/?mount={d(blob)}&from={first}")
    req("PUT", f"/v2/{repo}/manifests/1", manifest, ct)
PY
stop
serve --auth --admin-password Harbor12345
curl -sf -o /dev/null -u admin:Harbor12345 -H 'Content-Type: application/json' \
    -d '{"project_name":"big","metadata":{"public":"false"}}' "$URL/api/v2.0/projects" || true
jar=$WORK/cookies
curl -sf -o /dev/null -c "$jar" -d 'principal=admin&password=Harbor12345' "$URL/c/login"

time_ms() {
    local path=$1 i total=0 t best=999999
    for i in $(seq "$RUNS"); do
        t=$(curl -sf -o /dev/null -b "$jar" -w '%{time_total}' "$URL$path")
        t=$(awk -v t="$t" 'BEGIN { printf "%d", t * 1000000 }')
        total=$((total + t))
        [ "$t" -lt "$best" ] && best=$t
    done
    awk -v p="$path" -v a="$total" -v n="$RUNS" -v b="$best" \
        'BEGIN { printf "%-72s mean %7.1f ms  best %7.1f ms\n", p, a / n / 1000, b / 1000 }'
}
echo "wharf-registry ($BIN), $N repositories in project big:"
time_ms "/api/v2.0/projects?page=1&page_size=10"
time_ms "/api/v2.0/projects/big/summary"
time_ms "/api/v2.0/projects/big/repositories?page=1&page_size=10"
time_ms "/api/v2.0/projects/big/repositories?page=$((N / 10))&page_size=10"
time_ms "/api/v2.0/projects/big/repositories?page=1&page_size=10&q=name%3D~r0999"
echo "RSS: $(awk '/^VmRSS/ {print $2}' "/proc/$PID/status") kB"
