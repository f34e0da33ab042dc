#!/usr/bin/env bash
# The registry's index under many repositories: wharf-registry with the embedded redb index and
# with PostgreSQL (a private cluster from scripts/pg-test-cluster, over TCP on loopback), each
# filled with REPOS repositories (one monolithic blob push each) and one repository with TAGS
# tags. Prints the fill rate, then the latency (median and p95, ms, over ROUNDS requests on one
# keep-alive connection) of catalog pages at the start, the middle and the end, a tag-list page
# and a blob HEAD; then GC_BLOBS blobs that no manifest names, and the time `wharf-registry gc
# --grace 0s` takes to collect them (redb: with the server stopped, as it must be; PostgreSQL:
# beside the serving registry). Uses target/release; loopback only. PostgreSQL fsyncs as redb does
# (PG_TEST_DURABLE=1), so that the write rates compare.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/wharf-bench-index.XXXXXX)
chmod 755 "$WORK" # the postgres user reaches its cluster under it
REPOS=${REPOS:-10000}
TAGS=${TAGS:-1000}
ROUNDS=${ROUNDS:-300}
GC_BLOBS=${GC_BLOBS:-10000}
source "$ROOT/bench/lib.sh"
PG_DIR=
stop_all() {
    [ -z "$PG_DIR" ] || bash "$ROOT/scripts/pg-test-cluster" stop "$PG_DIR" || true
    cleanup
}
trap stop_all EXIT

# The client: python3's http.client, one connection, so the figures are the server's.
cat >"$WORK/drive.py" <<'PY'
import hashlib, http.client, json, sys, time

host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
conn = http.client.HTTPConnection(host, port)

def req(method, path, body=b"", headers=None):
    h = dict(headers or {})
    if method in ("POST", "PUT"):
        h["Content-Length"] = str(len(body))
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    return r.status, r.read()

def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()

if mode == "fill":
    repos, tags = int(sys.argv[4]), int(sys.argv[5])
    blob = b"one blob in every repository"
    t0 = time.time()
    for i in range(repos):
        s, body = req("POST", f"/v2/bench/repo-{i:05d}/blobs/uploads/?digest={sha(blob)}", blob)
        assert s == 201, (s, body)
    fill = time.time() - t0
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    for b in (config, blob):
        assert req("POST", f"/v2/bench/tagged/blobs/uploads/?digest={sha(b)}", b)[0] == 201
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(blob), "size": len(blob)}],
    }).encode()
    t0 = time.time()
    for i in range(tags):
        s, body = req("PUT", f"/v2/bench/tagged/manifests/t{i:04d}", manifest,
                      {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert s == 201, (s, body)
    tag = time.time() - t0
    print(f"{repos / fill:.0f} {tags / tag:.0f}")
elif mode == "loose":
    for i in range(int(sys.argv[4])):
        b = f"loose blob {i}".encode()
        s, body = req("POST", f"/v2/bench/loose/blobs/uploads/?digest={sha(b)}", b)
        assert s == 201, (s, body)
else:
    rounds, path, want = int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
    method = "HEAD" if path.startswith("HEAD ") else "GET"
    path = path.removeprefix("HEAD ")
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        s, body = req(method, path)
        times.append((time.perf_counter() - t0) * 1000)
        assert s == 200, (s, body)
    if method == "GET":
        listed = json.loads(body)
        n = len(listed.get("repositories", listed.get("tags", [])))
        assert n == want, (path, n, want)
    times.sort()
    print(f"{times[len(times) // 2]:.2f} {times[min(len(times) - 1, int(len(times) * 0.95))]:.2f}")
PY

# start BACKEND: a wharf-registry with its index in redb or postgres; sets PORT and SERVER_PID.
start() {
    local dir=$WORK/$1 extra=()
    mkdir -p "$dir"
    PORT=$(free_port)
    if [ "$1" = postgres ]; then
        PG_DIR=$WORK/pg
        local pg_port
        pg_port=$(free_port)
        PG_TEST_DURABLE=1 bash "$ROOT/scripts/pg-test-cluster" start "$PG_DIR" "$pg_port"
        DB_URL="postgres://wharf:wharf@127.0.0.1:$pg_port/postgres"
        extra=(--database-url "$DB_URL")
    fi
    "$BIN/wharf-registry" serve --addr "127.0.0.1:$PORT" --data-dir "$dir/data" --log-level error \
        "${extra[@]}" >"$dir/registry.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=($SERVER_PID)
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "registry did not start: $(cat "$dir/registry.log")" >&2
    return 1
}

last=$(printf 'bench/repo-%05d' $((REPOS - 1)))
middle=$(printf 'bench/repo-%05d' $((REPOS / 2)))
blob=sha256:$(printf 'one blob in every repository' | sha256sum | cut -d' ' -f1)
declare -A R
for backend in redb postgres; do
    start "$backend"
    read -r R[$backend.fill] R[$backend.tag] < <(python3 "$WORK/drive.py" 127.0.0.1 "$PORT" fill "$REPOS" "$TAGS")
    measure() { python3 "$WORK/drive.py" 127.0.0.1 "$PORT" get "$ROUNDS" "$1" "$2"; }
    R[$backend.first]=$(measure "/v2/_catalog?n=100" 100)
    R[$backend.middle]=$(measure "/v2/_catalog?n=100&last=$middle" 100)
    R[$backend.end]=$(measure "/v2/_catalog?n=100&last=$last" 1) # bench/tagged only
    R[$backend.tags]=$(measure "/v2/bench/tagged/tags/list?n=100&last=t0500" $((TAGS - 501 < 100 ? TAGS - 501 : 100)))
    R[$backend.head]=$(measure "HEAD /v2/$middle/blobs/$blob" 0)
    python3 "$WORK/drive.py" 127.0.0.1 "$PORT" loose "$GC_BLOBS"
    sleep 1.1 # grace 0s spares what is from this very second
    gc=("$BIN/wharf-registry" gc --data-dir "$WORK/$backend/data" --grace 0s)
    if [ "$backend" = redb ]; then
        kill "$SERVER_PID"
        wait "$SERVER_PID" 2>/dev/null || true
    else
        gc+=(--database-url "$DB_URL")
    fi
    t0=$(now_ns)
    "${gc[@]}" | tail -n 1 >"$WORK/gc.out"
    t1=$(now_ns)
    grep -q "$GC_BLOBS blobs" "$WORK/gc.out" || { cat "$WORK/gc.out" >&2; exit 1; }
    R[$backend.gc]=$(awk -v a="$t0" -v b="$t1" -v n="$GC_BLOBS" 'BEGIN { printf "%.0f", n / ((b - a) / 1e9) * 60 }')
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    echo "$backend done" >&2
done

printf '\n%s repositories, %s tags in one; latency median/p95 in ms over %s requests\n' "$REPOS" "$TAGS" "$ROUNDS"
printf '%-36s %16s %16s\n' "" "redb" "postgres"
printf '%-36s %16s %16s\n' "blob pushes into new repos per s" "${R[redb.fill]}" "${R[postgres.fill]}"
printf '%-36s %16s %16s\n' "manifest puts (new tag) per s" "${R[redb.tag]}" "${R[postgres.tag]}"
printf '%-36s %16s %16s\n' "gc: blobs collected per minute" "${R[redb.gc]}" "${R[postgres.gc]}"
for k in first middle end tags head; do
    case $k in
    first) label="catalog n=100, first page" ;;
    middle) label="catalog n=100, middle page" ;;
    end) label="catalog n=100, last page" ;;
    tags) label="tags/list n=100, middle of $TAGS" ;;
    head) label="HEAD blob" ;;
    esac
    printf '%-36s %16s %16s\n' "$label" "${R[redb.$k]/ //}" "${R[postgres.$k]/ //}"
done
