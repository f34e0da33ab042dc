#!/usr/bin/env bash
# Push throughput: a ~SIZE_MB image of 6 gzip layers pushed into an empty loopback registry
# (a fresh one per run) by `wharf push` (image pulled once beforehand, outside the timing),
# by `skopeo copy` from an OCI directory, and by `docker push` when a Docker engine is
# installed. Uses target/release. Run as root.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/wharf-bench-push.XXXXXX)
SIZE_MB=${SIZE_MB:-200}
RUNS=${RUNS:-3}
source "$ROOT/bench/lib.sh"
trap cleanup EXIT

# start_target NAME: an empty registry of its own; sets TARGET (host:port).
start_target() {
    local dir=$WORK/$1 port
    port=$(free_port)
    TARGET=127.0.0.1:$port
    mkdir -p "$dir/storage"
    printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
        "$dir/storage" "$TARGET" >"$dir/registry.yml"
    /usr/bin/docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
        curl -fsS "http://$TARGET/v2/" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "registry did not start: $(cat "$dir/registry.log")" >&2
    return 1
}

start_registry
echo "building and pushing a ${SIZE_MB} MB image..." >&2
python3 "$ROOT/tests/fixtures/make_images.py" --registry "$REGISTRY" --only none \
    --big-mb "$SIZE_MB" >"$WORK/summary.json"
IMAGE=$REGISTRY/bench/big:latest
GZ_MB=$(python3 -c '
import json, sys
ls = json.load(open(sys.argv[1]))["images"]["bench/big:latest"]["layers"]
print(round(sum(l["size"] for l in ls) / 1e6))' "$WORK/summary.json")

start_wharfd "$WORK/wharfd"
"$BIN/wharf" -H "unix://$SOCK" pull -q "$IMAGE" >/dev/null
skopeo copy -q --src-tls-verify=false "docker://$IMAGE" "oci:$WORK/oci:big" >/dev/null
start_dockerd
if [ -n "$DOCKER_SOCK" ]; then docker_cli pull -q "$IMAGE" >/dev/null; fi

: >"$WORK/wharf.s"; : >"$WORK/skopeo.s"; : >"$WORK/docker.s"
for run in $(seq "$RUNS"); do
    start_target "wharf-$run"
    "$BIN/wharf" -H "unix://$SOCK" tag "$IMAGE" "$TARGET/bench/big:latest"
    t0=$(now_ns)
    "$BIN/wharf" -H "unix://$SOCK" push -q "$TARGET/bench/big:latest" >/dev/null
    t1=$(now_ns)
    seconds "$t0" "$t1" >>"$WORK/wharf.s"

    start_target "skopeo-$run"
    t0=$(now_ns)
    skopeo copy -q --dest-tls-verify=false "oci:$WORK/oci:big" "docker://$TARGET/bench/big:latest" >/dev/null
    t1=$(now_ns)
    seconds "$t0" "$t1" >>"$WORK/skopeo.s"

    if [ -n "$DOCKER_SOCK" ]; then
        start_target "docker-$run"
        docker_cli tag "$IMAGE" "$TARGET/bench/big:latest"
        t0=$(now_ns)
        docker_cli push -q "$TARGET/bench/big:latest" >/dev/null
        t1=$(now_ns)
        seconds "$t0" "$t1" >>"$WORK/docker.s"
    fi
done
stop_wharfd

median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
printf '\npush of %s MB uncompressed (%s MB gzip) into an empty registry, median of %s runs\n' \
    "$SIZE_MB" "$GZ_MB" "$RUNS"
printf '%-36s %10s %10s\n' "" "seconds" "MB/s"
rows=("wharf push:wharf" "skopeo copy oci: docker://:skopeo")
[ -s "$WORK/docker.s" ] && rows+=("docker push:docker")
for row in "${rows[@]}"; do
    name=${row%:*}; key=${row##*:}
    m=$(median "$WORK/$key.s")
    printf '%-36s %10s %10s\n' "$name" "$m" "$(awk -v s="$GZ_MB" -v t="$m" 'BEGIN { printf "%.0f", s / t }')"
done
