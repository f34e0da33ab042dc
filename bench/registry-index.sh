#!/usr/bin/env bash
# The registry's index under many repositories: wharf-registry with the embedded redb index,
# with PostgreSQL (a private cluster from scripts/pg-test-cluster, over TCP on loopback), and
# Debian's docker-registry (distribution 2.8, filesystem) beside them, each filled the same way
# through the registry API (FILL_CLIENTS connections): REPOS repositories (one blob push each)
# and one repository with TAGS tags. Prints the fill rates, then the latency (median and p95,
# ms, over ROUNDS requests on one keep-alive connection) of catalog pages at the start, the
# middle and the end, a tag-list page in the middle and a blob HEAD; then GC_BLOBS blobs that
# no manifest names and the rate at which GC collects them. wharf-registry collects online: the
# server is restarted with `serve --gc-interval GC_PERIOD --gc-grace 0s` (the scheduled GC, the
# same `gc::collect` for both indexes, under the index's GC lock) and keeps serving while it
# runs: a reader loop (catalog page, tag list, manifest GET, blob HEAD, one connection) runs
# from before the collection starts until the server logs it done; its requests and errors are
# printed (errors must be 0). The time is from GC_PERIOD after the restarted server first
# answers to the log line, polled. Distribution's GC (`docker-registry garbage-collect`) is
# offline only: it is timed with its server stopped. Uses target/release; loopback only.
# PostgreSQL fsyncs as redb does (PG_TEST_DURABLE=1), so that the write rates compare.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/wharf-bench-index.XXXXXX)
chmod 755 "$WORK" # the postgres user reaches its cluster under it
REPOS=${REPOS:-10000}
TAGS=${TAGS:-100000}
ROUNDS=${ROUNDS:-300}
# Distribution walks its storage for every listing (and 2.8 ignores n on a tag list): fewer rounds.
DIST_ROUNDS=${DIST_ROUNDS:-20}
GC_BLOBS=${GC_BLOBS:-100000}
GC_PERIOD=${GC_PERIOD:-3}
FILL_CLIENTS=${FILL_CLIENTS:-16}
BACKENDS=${BACKENDS:-redb postgres distribution}
source "$ROOT/bench/lib.sh"
PG_DIR=
stop_all() {
    [ -z "$PG_DIR" ] || bash "$ROOT/scripts/pg-test-cluster" stop "$PG_DIR" || true
    cleanup
}
trap stop_all EXIT

# The client: python3's http.client, one connection, so the figures are the server's.
cat >"$WORK/drive.py" <<'PY'
import hashlib, http.client, json, os, sys, threading, time

host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class Client:
    def __init__(self):
        self.conn = http.client.HTTPConnection(host, port)

    def req(self, method, path, body=b"", headers=None):
        h = dict(headers or {})
        if method in ("POST", "PUT", "PATCH"):
            h["Content-Length"] = str(len(body))
        self.conn.request(method, path, body=body, headers=h)
        r = self.conn.getresponse()
        return r.status, r.read(), r

    def push_blob(self, repo, b):
        """A monolithic POST where the registry takes one (201), else POST then PUT."""
        s, body, r = self.req("POST", f"/v2/{repo}/blobs/uploads/?digest={sha(b)}", b)
        if s == 202:
            loc = r.getheader("Location")
            loc = loc.split("://", 1)[1].split("/", 1)[1] if "://" in loc else loc.lstrip("/")
            sep = "&" if "?" in loc else "?"
            s, body, _ = self.req("PUT", f"/{loc}{sep}digest={sha(b)}", b,
                                  {"Content-Type": "application/octet-stream"})
        assert s == 201, (s, body)

def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()

def parallel(n, clients, work):
    """work(client, i) for i in range(n), over `clients` connections; returns the seconds."""
    nxt = iter(range(n))
    lock = threading.Lock()
    errors = []
    def run():
        c = Client()
        while True:
            with lock:
                i = next(nxt, None)
            if i is None or errors:
                return
            try:
                work(c, i)
            except Exception as e:
                errors.append(e)
    t0 = time.time()
    ts = [threading.Thread(target=run) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    return time.time() - t0

blob = b"one blob in every repository"
config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
manifest = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(blob), "size": len(blob)}],
}).encode()
MT = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}

if mode == "fill":
    repos, tags, clients = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    fill = parallel(repos, clients, lambda c, i: c.push_blob(f"bench/repo-{i:05d}", blob))
    c = Client()
    for b in (config, blob):
        c.push_blob("bench/tagged", b)
    def put_tag(c, i):
        s, body, _ = c.req("PUT", f"/v2/bench/tagged/manifests/t{i:06d}", manifest, MT)
        assert s == 201, (s, body)
    tag = parallel(tags, clients, put_tag)
    print(f"{repos / fill:.0f} {tags / tag:.0f}")
elif mode == "loose":
    n, clients = int(sys.argv[4]), int(sys.argv[5])
    parallel(n, clients, lambda c, i: c.push_blob("bench/loose", f"loose blob {i}".encode()))
elif mode == "reader":
    # Until STOPFILE exists: requests that must keep answering while GC runs; prints
    # "requests errors max_ms".
    stop, paths = sys.argv[4], sys.argv[5:]
    c, n, errors, worst = Client(), 0, 0, 0.0
    while not os.path.exists(stop):
        for p in paths:
            method = "HEAD" if p.startswith("HEAD ") else "GET"
            t0 = time.perf_counter()
            try:
                s, _, _ = c.req(method, p.removeprefix("HEAD "))
                if s != 200:
                    errors += 1
                    print(f"reader: {method} {p}: {s}", file=sys.stderr)
            except Exception as e:
                errors += 1
                print(f"reader: {method} {p}: {e}", file=sys.stderr)
                c = Client()
            worst = max(worst, (time.perf_counter() - t0) * 1000)
            n += 1
    print(f"{n} {errors} {worst:.0f}")
else:
    # "median p95 listed" of ROUNDS requests.
    rounds, path = int(sys.argv[4]), sys.argv[5]
    method = "HEAD" if path.startswith("HEAD ") else "GET"
    path = path.removeprefix("HEAD ")
    c = Client()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        s, body, _ = c.req(method, path)
        times.append((time.perf_counter() - t0) * 1000)
        assert s == 200, (s, body)
    n = 0
    if method == "GET":
        listed = json.loads(body)
        n = len(listed.get("repositories") or listed.get("tags") or [])
    times.sort()
    print(f"{times[len(times) // 2]:.2f} {times[min(len(times) - 1, int(len(times) * 0.95))]:.2f} {n}")
PY

# start BACKEND [WHARF ARGS...]: a registry (wharf-registry with its index in redb or
# postgres, or distribution); sets PORT and SERVER_PID. A second start of postgres reuses the
# cluster.
start() {
    local backend=$1 dir=$WORK/$1 extra=()
    shift
    mkdir -p "$dir"
    PORT=$(free_port)
    if [ "$backend" = distribution ]; then
        mkdir -p "$dir/storage"
        registry_config "$dir/registry.yml" "127.0.0.1:$PORT" "$dir/storage"
        /usr/bin/docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
    else
        if [ "$backend" = postgres ]; then
            if [ -z "$PG_DIR" ]; then
                PG_DIR=$WORK/pg
                local pg_port
                pg_port=$(free_port)
                PG_TEST_DURABLE=1 bash "$ROOT/scripts/pg-test-cluster" start "$PG_DIR" "$pg_port"
                DB_URL="postgres://wharf:wharf@127.0.0.1:$pg_port/postgres"
            fi
            extra=(--database-url "$DB_URL")
        fi
        # More flags (the GC's) come with a log level of info, for the GC's report.
        [ $# -gt 0 ] || extra+=(--log-level error)
        "$BIN/wharf-registry" serve --addr "127.0.0.1:$PORT" --data-dir "$dir/data" \
            "${extra[@]}" "$@" >"$dir/registry.log" 2>&1 &
    fi
    SERVER_PID=$!
    PIDS+=($SERVER_PID)
    for _ in $(seq 500); do
        curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && return 0
        sleep 0.02
    done
    echo "registry did not start: $(cat "$dir/registry.log")" >&2
    return 1
}

stop() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}

last=$(printf 'bench/repo-%05d' $((REPOS - 1)))
middle=$(printf 'bench/repo-%05d' $((REPOS / 2)))
middle_tag=$(printf 't%06d' $((TAGS / 2)))
tags_left=$((TAGS - TAGS / 2 - 1))
blob=sha256:$(printf 'one blob in every repository' | sha256sum | cut -d' ' -f1)
declare -A R
for backend in $BACKENDS; do
    start "$backend"
    read -r R[$backend.fill] R[$backend.tag] < <(python3 "$WORK/drive.py" 127.0.0.1 "$PORT" fill "$REPOS" "$TAGS" "$FILL_CLIENTS")
    echo "$backend filled" >&2
    rounds=$ROUNDS
    [ "$backend" != distribution ] || rounds=$DIST_ROUNDS
    # measure KEY PATH WANT: "median/p95", and what the page held when it is not WANT.
    measure() {
        local med p95 n
        read -r med p95 n < <(python3 "$WORK/drive.py" 127.0.0.1 "$PORT" get "$rounds" "$2")
        R[$backend.$1]="$med/$p95"
        [ "$n" = "$3" ] || R[$backend.$1]+=" ($n listed)"
    }
    measure first "/v2/_catalog?n=100" 100
    measure middle "/v2/_catalog?n=100&last=$middle" 100
    measure end "/v2/_catalog?n=100&last=$last" 1 # bench/tagged only
    measure tags "/v2/bench/tagged/tags/list?n=100&last=$middle_tag" $((tags_left < 100 ? tags_left : 100))
    measure head "HEAD /v2/$middle/blobs/$blob" 0
    python3 "$WORK/drive.py" 127.0.0.1 "$PORT" loose "$GC_BLOBS" "$FILL_CLIENTS"
    echo "$backend: $GC_BLOBS loose blobs pushed" >&2
    sleep 1.1 # grace 0s spares what is from this very second
    stop
    if [ "$backend" = distribution ]; then
        t0=$(now_ns)
        /usr/bin/docker-registry garbage-collect "$WORK/$backend/registry.yml" >"$WORK/gc.out" 2>&1
        t1=$(now_ns)
        swept=$(sed -n 's/.* \([0-9]*\) blobs and [0-9]* manifests eligible for deletion.*/\1/p' "$WORK/gc.out" | tail -n 1)
        [ "${swept:-0}" -ge "$GC_BLOBS" ] || { tail -n 5 "$WORK/gc.out" >&2; exit 1; }
        R[$backend.gcmode]="offline"
        R[$backend.reader]="-"
    else
        # The scheduled GC while serving: the first run starts GC_PERIOD after the start.
        log=$WORK/$backend/registry.log
        start "$backend" --log-level info --gc-interval "${GC_PERIOD}s" --gc-grace 0s
        t0=$(($(now_ns) + GC_PERIOD * 1000000000))
        rm -f "$WORK/stop-reader"
        python3 "$WORK/drive.py" 127.0.0.1 "$PORT" reader "$WORK/stop-reader" \
            "/v2/_catalog?n=100&last=$middle" "/v2/bench/tagged/tags/list?n=100&last=$middle_tag" \
            "/v2/bench/tagged/manifests/$middle_tag" "HEAD /v2/$middle/blobs/$blob" >"$WORK/reader.out" &
        reader=$!
        PIDS+=($reader)
        until grep -q 'gc: deleted' "$log"; do
            kill -0 "$SERVER_PID" 2>/dev/null || { cat "$log" >&2; exit 1; }
            sleep 0.05
        done
        t1=$(now_ns)
        touch "$WORK/stop-reader"
        wait "$reader"
        grep -q "gc: deleted .* $GC_BLOBS blobs" "$log" || { grep gc: "$log" >&2; exit 1; }
        read -r n errors worst <"$WORK/reader.out"
        R[$backend.reader]="$n/$errors/$worst"
        R[$backend.gcmode]="online"
        stop
    fi
    R[$backend.gc]=$(awk -v a="$t0" -v b="$t1" -v n="$GC_BLOBS" 'BEGIN { printf "%.0f", n / ((b - a) / 1e9) * 60 }')
    R[$backend.gcs]=$(seconds "$t0" "$t1")
    echo "$backend done" >&2
done

row() {
    local label=$1 key=$2 b line
    line=$(printf '%-40s' "$label")
    for b in $BACKENDS; do line+=$(printf ' %20s' "${R[$b.$key]:--}"); done
    echo "$line"
}
printf '\n%s repositories, %s tags in one, %s loose blobs; latency median/p95 in ms over %s requests\n' \
    "$REPOS" "$TAGS" "$GC_BLOBS" "$ROUNDS"
printf '(distribution: listings over %s requests; its GC is offline only, timed with the server stopped)\n' "$DIST_ROUNDS"
line=$(printf '%-40s' "")
for b in $BACKENDS; do line+=$(printf ' %20s' "$b"); done
echo "$line"
row "blob pushes into new repos per s" fill
row "manifest puts (new tag) per s" tag
row "catalog n=100, first page" first
row "catalog n=100, middle page" middle
row "catalog n=100, last page" end
row "tags/list n=100, middle of $TAGS" tags
row "HEAD blob" head
row "gc: online (serving) or offline" gcmode
row "gc: seconds for $GC_BLOBS blobs" gcs
row "gc: blobs collected per minute" gc
row "gc: reader requests/errors/max ms" reader
