#!/usr/bin/env bash
# Pull throughput: a ~SIZE_MB image of 6 gzip layers from a loopback registry, pulled by
# `wharf pull` (fresh data root each time) and by `skopeo copy` to an OCI dir, with the floor
# of curl piped into gunzip for every layer at once. Uses target/release. Run as root.
# CONCURRENT=1 (the default; 0 skips it) also times two simultaneous pulls of the image into
# one fresh daemon (they share the layer downloads: about the time of one pull, not two).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/wharf-bench-pull.XXXXXX)
SIZE_MB=${SIZE_MB:-200}
RUNS=${RUNS:-3}
CONCURRENT=${CONCURRENT:-1}
source "$ROOT/bench/lib.sh"
trap cleanup EXIT

start_registry
echo "building and pushing a ${SIZE_MB} MB image..." >&2
python3 "$ROOT/tests/fixtures/make_images.py" --registry "$REGISTRY" --only none \
    --big-mb "$SIZE_MB" >"$WORK/summary.json"
IMAGE=$REGISTRY/bench/big:latest
mapfile -t LAYERS < <(python3 -c '
import json, sys
for l in json.load(open(sys.argv[1]))["images"]["bench/big:latest"]["layers"]:
    print(l["digest"])' "$WORK/summary.json")
GZ_MB=$(python3 -c '
import json, sys
ls = json.load(open(sys.argv[1]))["images"]["bench/big:latest"]["layers"]
print(round(sum(l["size"] for l in ls) / 1e6))' "$WORK/summary.json")

seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", a / b }'; }

: >"$WORK/wharf.s"; : >"$WORK/skopeo.s"; : >"$WORK/floor.s"; : >"$WORK/docker.s"; : >"$WORK/wharf2.s"
start_dockerd
for run in $(seq "$RUNS"); do
    start_wharfd "$WORK/wharfd-$run"
    t0=$(now_ns)
    "$BIN/wharf" -H "unix://$SOCK" pull "$IMAGE" >/dev/null
    t1=$(now_ns)
    seconds "$t0" "$t1" >>"$WORK/wharf.s"
    stop_wharfd
    rm -rf "$WORK/wharfd-$run"

    if [ "$CONCURRENT" = 1 ]; then
        start_wharfd "$WORK/wharfd-$run"
        t0=$(now_ns)
        "$BIN/wharf" -H "unix://$SOCK" pull "$IMAGE" >/dev/null & p1=$!
        "$BIN/wharf" -H "unix://$SOCK" pull "$IMAGE" >/dev/null & p2=$!
        wait "$p1" && wait "$p2" || { echo "concurrent wharf pulls failed" >&2; exit 1; }
        t1=$(now_ns)
        seconds "$t0" "$t1" >>"$WORK/wharf2.s"
        stop_wharfd
        rm -rf "$WORK/wharfd-$run"
    fi

    rm -rf "$WORK/oci"
    t0=$(now_ns)
    skopeo copy -q --src-tls-verify=false "docker://$IMAGE" "oci:$WORK/oci:big" >/dev/null
    t1=$(now_ns)
    seconds "$t0" "$t1" >>"$WORK/skopeo.s"
    rm -rf "$WORK/oci"

    if [ -n "$DOCKER_SOCK" ]; then
        t0=$(now_ns)
        docker_cli pull -q "$IMAGE" >/dev/null
        t1=$(now_ns)
        seconds "$t0" "$t1" >>"$WORK/docker.s"
        docker_cli rmi -f "$IMAGE" >/dev/null
    fi

    t0=$(now_ns)
    fetchers=()
    for l in "${LAYERS[@]}"; do
        (curl -fsS "http://$REGISTRY/v2/bench/big/blobs/$l" | gunzip >/dev/null) &
        fetchers+=($!)
    done
    wait_ok=0
    for job in "${fetchers[@]}"; do wait "$job" || wait_ok=1; done
    t1=$(now_ns)
    [ "$wait_ok" = 0 ] || { echo "curl | gunzip failed" >&2; exit 1; }
    seconds "$t0" "$t1" >>"$WORK/floor.s"
done

median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
floor=$(median "$WORK/floor.s")
printf '\npull of %s MB uncompressed (%s MB gzip, %s layers), median of %s runs\n' \
    "$SIZE_MB" "$GZ_MB" "${#LAYERS[@]}" "$RUNS"
printf '%-36s %10s %12s\n' "" "seconds" "vs floor"
rows=("curl | gunzip (floor):floor" "wharf pull:wharf" "skopeo copy docker:// oci::skopeo")
[ -s "$WORK/docker.s" ] && rows+=("docker pull:docker")
for row in "${rows[@]}"; do
    name=${row%:*}; key=${row##*:}
    m=$(median "$WORK/$key.s")
    printf '%-36s %10s %12s\n' "$name" "$m" "$(ratio "$m" "$floor")"
done
if [ -s "$WORK/docker.s" ]; then
    printf '%-36s %10s\n' "wharf / docker" "$(ratio "$(median "$WORK/wharf.s")" "$(median "$WORK/docker.s")")"
else
    printf '%-36s %s\n' "docker pull" "(no Docker engine installed: skipped)"
fi
if [ -s "$WORK/wharf2.s" ]; then
    one=$(median "$WORK/wharf.s"); two=$(median "$WORK/wharf2.s")
    printf '\ntwo simultaneous pulls of the same image into one daemon\n'
    printf '%-36s %10s %12s\n' "" "seconds" "vs one pull"
    printf '%-36s %10s %12s\n' "one wharf pull" "$one" "1.00"
    printf '%-36s %10s %12s\n' "two wharf pulls at once (both done)" "$two" "$(ratio "$two" "$one")"
fi
