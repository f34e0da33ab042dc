#!/usr/bin/env bash
# Exec latency: N runs of `wharf exec c true` into a running busybox container, side by side
# with `runc exec` into an equivalent container started with `runc run -d`, and `docker exec`
# when a Docker engine is installed. Uses the binaries in target/release. Run as root.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/wharf-bench-exec.XXXXXX)
N=${N:-50}
source "$ROOT/bench/lib.sh"
RUNC_ID=wharf-bench-exec-$$
runc_cleanup() {
    runc delete -f "$RUNC_ID" >/dev/null 2>&1 || true
    cleanup
}
trap runc_cleanup EXIT

start_registry
python3 "$ROOT/tests/fixtures/make_images.py" --registry "$REGISTRY" --only library/busybox >/dev/null
IMAGE=$REGISTRY/library/busybox:latest

start_wharfd "$WORK/wharfd"
WHARF=("$BIN/wharf" -H "unix://$SOCK")
"${WHARF[@]}" pull -q "$IMAGE" >/dev/null
"${WHARF[@]}" run -d --name bench "$IMAGE" sleep 3600 >/dev/null
"${WHARF[@]}" exec bench true # warm-up

time_runs "$WORK/wharf.ms" "${WHARF[@]}" exec bench true

# runc: the same busybox in a plain rootfs directory, detached, then exec'd into.
BUNDLE=$WORK/bundle
runc_bundle "$BUNDLE" sleep 3600
runc run -d -b "$BUNDLE" "$RUNC_ID" </dev/null >/dev/null 2>&1
runc exec "$RUNC_ID" true
time_runs "$WORK/runc.ms" runc exec "$RUNC_ID" true

HAVE_DOCKER=0
start_dockerd
if [ -n "$DOCKER_SOCK" ] && docker_cli pull -q "$IMAGE" >/dev/null 2>&1 &&
    docker_cli run -d --name bench "$IMAGE" sleep 3600 >/dev/null 2>&1 && docker_cli exec bench true >/dev/null 2>&1; then
    HAVE_DOCKER=1
    time_runs "$WORK/docker.ms" docker_cli exec bench true
    docker_cli rm -f bench >/dev/null 2>&1 || true
fi

read -r rm rp < <(stats "$WORK/runc.ms")
printf '\n%-32s %10s %10s %12s\n' "exec latency, $N runs" "median ms" "p95 ms" "median/runc"
row() {
    local name=$1 file=$2 m p
    read -r m p < <(stats "$file")
    printf '%-32s %10s %10s %12s\n' "$name" "$m" "$p" "$(awk -v a="$m" -v b="$rm" 'BEGIN { printf "%.2f", a / b }')"
}
row "runc exec" "$WORK/runc.ms"
row "wharf exec" "$WORK/wharf.ms"
if [ "$HAVE_DOCKER" = 1 ]; then
    row "docker exec" "$WORK/docker.ms"
else
    printf '%-32s %s\n' "docker exec" "(no Docker engine installed: skipped)"
fi
"${WHARF[@]}" rm -f bench >/dev/null
stop_wharfd
# The daemon leaves its (now empty) cgroup parent behind; a bench leaves nothing.
for d in /sys/fs/cgroup/*/"wharf-bench-$$"; do rmdir "$d" 2>/dev/null || true; done
