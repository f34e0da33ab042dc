#!/usr/bin/env bash
# Pull throughput: a ~SIZE_MB image of LAYERS layers from a loopback registry, once with gzip
# layers and once with zstd layers of the same content (COMPRESSIONS="gzip zstd"), each pulled
# by `wharf pull` (fresh data root each time), by `skopeo copy` to an OCI dir and, when Debian's
# docker.io is installed, by `docker pull` on a private dockerd; with the floor of curl piped
# into the decompressor (gunzip / zstd -d) for every layer at once, as wharf fetches them, and
# that floor with the two SHA-256 digests every puller must check (the blob's, and the diff id
# of the uncompressed tar) by `openssl dgst`, which uses the CPU's SHA instructions as wharf does.
# Prints one table per compression. Uses target/release. Run as root.
# CONCURRENT=1 (the default; 0 skips it) also times two simultaneous pulls of the image into
# one fresh daemon (they share the layer downloads: about the time of one pull, not two).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/wharf-bench-pull.XXXXXX)
SIZE_MB=${SIZE_MB:-500}
LAYERS_N=${LAYERS:-8}
COMPRESSIONS=${COMPRESSIONS:-gzip zstd}
RUNS=${RUNS:-3}
CONCURRENT=${CONCURRENT:-1}
source "$ROOT/bench/lib.sh"
trap cleanup EXIT

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", a / b }'; }
median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

start_registry
start_dockerd

# The floors' per-layer pipelines (see the header); `decompress` is bench_one's.
fetch_floor() { curl -fsS "$1" | "${decompress[@]}" >/dev/null; }
fetch_verified() {
    curl -fsS "$1" | tee >(openssl dgst -sha256 >/dev/null) | "${decompress[@]}" | openssl dgst -sha256 >/dev/null
}

# fetch_all PIPELINE FILE WHAT: runs PIPELINE URL for every layer at once and appends the
# seconds they took together to FILE; exits naming WHAT if one fails.
fetch_all() {
    local pipeline=$1 file=$2 what=$3 t0 t1 l job failed=0 fetchers=()
    t0=$(now_ns)
    for l in "${LAYERS[@]}"; do
        "$pipeline" "http://$REGISTRY/v2/bench/big/blobs/$l" &
        fetchers+=($!)
    done
    for job in "${fetchers[@]}"; do wait "$job" || failed=1; done
    t1=$(now_ns)
    [ "$failed" = 0 ] || { echo "$what failed" >&2; exit 1; }
    seconds "$t0" "$t1" >>"$file"
}

# bench_one COMP: pushes bench/big:latest with COMP layers (replacing the previous one), times
# every puller RUNS times and prints the table.
bench_one() {
    local comp=$1 dir=$WORK/$1 decompress
    case "$comp" in
        gzip) decompress=(gunzip) ;;
        zstd) decompress=(zstd -d -q -c) ;;
        *) echo "unknown compression $comp (gzip or zstd)" >&2; exit 1 ;;
    esac
    mkdir -p "$dir"
    echo "building and pushing a ${SIZE_MB} MB image of $LAYERS_N $comp layers..." >&2
    python3 "$ROOT/tests/fixtures/make_images.py" --registry "$REGISTRY" --only none \
        --big-mb "$SIZE_MB" --big-layers "$LAYERS_N" --big-compression "$comp" >"$dir/summary.json"
    local IMAGE=$REGISTRY/bench/big:latest
    local LAYERS
    mapfile -t LAYERS < <(python3 -c '
import json, sys
for l in json.load(open(sys.argv[1]))["images"]["bench/big:latest"]["layers"]:
    print(l["digest"])' "$dir/summary.json")
    local Z_MB
    Z_MB=$(python3 -c '
import json, sys
ls = json.load(open(sys.argv[1]))["images"]["bench/big:latest"]["layers"]
print(round(sum(l["size"] for l in ls) / 1e6))' "$dir/summary.json")

    : >"$dir/wharf.s"; : >"$dir/skopeo.s"; : >"$dir/floor.s"; : >"$dir/verified.s"; : >"$dir/docker.s"; : >"$dir/wharf2.s"
    local docker_na=""
    [ -n "$DOCKER_SOCK" ] || docker_na="no Docker engine installed"
    local run t0 t1 p1 p2
    for run in $(seq "$RUNS"); do
        start_wharfd "$dir/wharfd-$run"
        t0=$(now_ns)
        "$BIN/wharf" -H "unix://$SOCK" pull "$IMAGE" >/dev/null
        t1=$(now_ns)
        seconds "$t0" "$t1" >>"$dir/wharf.s"
        stop_wharfd
        rm -rf "$dir/wharfd-$run"

        if [ "$CONCURRENT" = 1 ]; then
            start_wharfd "$dir/wharfd-$run"
            t0=$(now_ns)
            "$BIN/wharf" -H "unix://$SOCK" pull "$IMAGE" >/dev/null & p1=$!
            "$BIN/wharf" -H "unix://$SOCK" pull "$IMAGE" >/dev/null & p2=$!
            wait "$p1" && wait "$p2" || { echo "concurrent wharf pulls failed" >&2; exit 1; }
            t1=$(now_ns)
            seconds "$t0" "$t1" >>"$dir/wharf2.s"
            stop_wharfd
            rm -rf "$dir/wharfd-$run"
        fi

        rm -rf "$dir/oci"
        t0=$(now_ns)
        skopeo copy -q --src-tls-verify=false "docker://$IMAGE" "oci:$dir/oci:big" >/dev/null
        t1=$(now_ns)
        seconds "$t0" "$t1" >>"$dir/skopeo.s"
        rm -rf "$dir/oci"

        if [ -z "$docker_na" ]; then
            t0=$(now_ns)
            if docker_cli pull -q "$IMAGE" >"$dir/docker.out" 2>&1; then
                t1=$(now_ns)
                seconds "$t0" "$t1" >>"$dir/docker.s"
                docker_cli rmi -f "$IMAGE" >/dev/null
            else
                # Old engines refuse zstd layers; say why rather than fail the benchmark.
                docker_na="docker pull failed: $(tail -1 "$dir/docker.out" | cut -c1-100)"
                : >"$dir/docker.s"
            fi
        fi

        fetch_all fetch_floor "$dir/floor.s" "curl | ${decompress[0]}"
        fetch_all fetch_verified "$dir/verified.s" "curl | ${decompress[0]} | sha256"
    done

    local floor wharf row name key m
    floor=$(median "$dir/floor.s")
    wharf=$(median "$dir/wharf.s")
    printf '\n%s: pull of %s MB uncompressed (%s MB %s, %s layers), median of %s runs\n' \
        "$comp" "$SIZE_MB" "$Z_MB" "$comp" "${#LAYERS[@]}" "$RUNS"
    printf '%-36s %10s %12s\n' "" "seconds" "vs floor"
    local rows=("curl | ${decompress[0]} (floor):floor" "floor + both sha256 (openssl):verified" "wharf pull:wharf" "skopeo copy docker:// oci::skopeo")
    [ -s "$dir/docker.s" ] && rows+=("docker pull:docker")
    for row in "${rows[@]}"; do
        name=${row%:*}; key=${row##*:}
        m=$(median "$dir/$key.s")
        printf '%-36s %10s %12s\n' "$name" "$m" "$(ratio "$m" "$floor")"
    done
    if [ -s "$dir/docker.s" ]; then
        printf '%-36s %10s\n' "wharf / docker" "$(ratio "$wharf" "$(median "$dir/docker.s")")"
    else
        printf '%-36s %s\n' "docker pull" "n/a ($docker_na)"
    fi
    if [ -s "$dir/wharf2.s" ]; then
        local two
        two=$(median "$dir/wharf2.s")
        printf '%-36s %10s %12s\n' "two wharf pulls at once (both done)" "$two" "$(ratio "$two" "$wharf") x one"
    fi
}

for comp in $COMPRESSIONS; do bench_one "$comp"; done
