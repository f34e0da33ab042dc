#!/usr/bin/env bash
# `ps` with many containers: N created busybox containers and RUNNING of them started, then
# RUNS timed runs each of the list API (`GET /containers/json`, with and without all=1, through
# curl so no CLI's parsing is counted), of `wharf ps -a` and of the docker CLI's `ps -a` through
# wharfd; side by side with a private dockerd holding the same containers when Docker is
# installed (DOCKER_N of them, default N: creating 10,000 on dockerd takes long).
# Issue 16's goal is `wharf ps` under 100 ms with 10,000 containers: N=10000.
# Uses the binaries in target/release (WHARF_BIN_DIR to change). Run as root.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/wharf-bench-ps.XXXXXX)
N=${N:-2000}
DOCKER_N=${DOCKER_N:-$N}
RUNNING=${RUNNING:-10}
RUNS=${RUNS:-20}
source "$ROOT/bench/lib.sh"
# Containers go before the daemon, also when the run fails half-way: a running one holds a
# netns mount under WORK.
ps_cleanup() {
    if [ -n "${SOCK:-}" ]; then
        "$BIN/wharf" -H "unix://$SOCK" ps -aq 2>/dev/null | xargs -r -n 500 "$BIN/wharf" -H "unix://$SOCK" rm -f >/dev/null 2>&1 || true
    fi
    if [ -n "$DOCKER_SOCK" ]; then
        "${DOCKER[@]}" ps -aq 2>/dev/null | xargs -r -n 200 "${DOCKER[@]}" rm -f >/dev/null 2>&1 || true
    fi
    cleanup
}
trap ps_cleanup EXIT

start_registry
python3 "$ROOT/tests/fixtures/make_images.py" --registry "$REGISTRY" --only library/busybox >/dev/null
IMAGE=$REGISTRY/library/busybox:latest

# fill COUNT CLI...: COUNT created containers (4 creates at a time) and RUNNING running ones.
fill() {
    local count=$1
    shift
    seq "$count" | xargs -P 4 -I{} "$@" create --network none --label bench=ps "$IMAGE" true >/dev/null
    seq "$RUNNING" | xargs -P 4 -I{} "$@" run -d --network none "$IMAGE" sleep 3600 >/dev/null
}

# api SOCK QUERY: RUNS timed GETs of /containers/json?QUERY; prints "median p95" in ms.
api() {
    local sock=$1 query=$2 i t0 t1
    : >"$WORK/api.ms"
    for i in $(seq "$RUNS"); do
        t0=$(now_ns)
        curl -fsS --unix-socket "$sock" "http://localhost/containers/json?$query" >/dev/null
        t1=$(now_ns)
        awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) / 1e6 }' >>"$WORK/api.ms"
    done
    stats "$WORK/api.ms"
}

# cli FILE CMD...: RUNS timed runs of CMD; prints "median p95" in ms.
cli() {
    local file=$1
    shift
    N=$RUNS time_runs "$file" "$@"
    stats "$file"
}

start_wharfd "$WORK/wharfd"
WHARF=("$BIN/wharf" -H "unix://$SOCK")
"${WHARF[@]}" pull -q "$IMAGE" >/dev/null
a=$(now_ns)
fill "$N" "${WHARF[@]}"
b=$(now_ns)
echo "wharf: $N created and $RUNNING running in $(seconds "$a" "$b") s"
read -r w_all w_all_p < <(api "$SOCK" "all=1")
read -r w_run w_run_p < <(api "$SOCK" "")
read -r w_flt w_flt_p < <(api "$SOCK" "all=1&filters=%7B%22label%22%3A%5B%22bench%3Dps%22%5D%7D")
read -r w_cli w_cli_p < <(cli "$WORK/wcli.ms" "${WHARF[@]}" ps -a)
read -r w_dcli w_dcli_p < <(DOCKER_HOST=unix://$SOCK DOCKER_CONFIG=$WORK/docker-config cli "$WORK/wdcli.ms" docker ps -a)

d_all=- d_all_p=- d_run=- d_run_p=- d_flt=- d_flt_p=- d_dcli=- d_dcli_p=-
start_dockerd
# As docker_cli, in a form xargs can run.
DOCKER=(env "DOCKER_HOST=unix://$DOCKER_SOCK" "DOCKER_CONFIG=$WORK/docker-config" docker)
if [ -n "$DOCKER_SOCK" ] && "${DOCKER[@]}" pull -q "$IMAGE" >/dev/null 2>&1; then
    a=$(now_ns)
    fill "$DOCKER_N" "${DOCKER[@]}"
    b=$(now_ns)
    echo "docker: $DOCKER_N created and $RUNNING running in $(seconds "$a" "$b") s"
    read -r d_all d_all_p < <(api "$DOCKER_SOCK" "all=1")
    read -r d_run d_run_p < <(api "$DOCKER_SOCK" "")
    read -r d_flt d_flt_p < <(api "$DOCKER_SOCK" "all=1&filters=%7B%22label%22%3A%5B%22bench%3Dps%22%5D%7D")
    read -r d_dcli d_dcli_p < <(cli "$WORK/ddcli.ms" "${DOCKER[@]}" ps -a)
    "${DOCKER[@]}" ps -aq | xargs -r -n 200 "${DOCKER[@]}" rm -f >/dev/null
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
printf '\n%d containers (%d running) on wharfd, %s on dockerd; median / p95 of %d runs (ms)\n' \
    "$N" "$RUNNING" "$DOCKER_N" "$RUNS"
printf '%-40s %16s %16s %8s\n' "" wharfd dockerd ratio
printf '%-40s %16s %16s %8s\n' "API containers/json?all=1" "$w_all / $w_all_p" "$d_all / $d_all_p" "$(ratio "$w_all" "$d_all")"
printf '%-40s %16s %16s %8s\n' "API containers/json (running)" "$w_run / $w_run_p" "$d_run / $d_run_p" "$(ratio "$w_run" "$d_run")"
printf '%-40s %16s %16s %8s\n' "API all=1, label filter" "$w_flt / $w_flt_p" "$d_flt / $d_flt_p" "$(ratio "$w_flt" "$d_flt")"
printf '%-40s %16s %16s %8s\n' "docker ps -a" "$w_dcli / $w_dcli_p" "$d_dcli / $d_dcli_p" "$(ratio "$w_dcli" "$d_dcli")"
printf '%-40s %16s\n' "wharf ps -a" "$w_cli / $w_cli_p"

"${WHARF[@]}" ps -aq | xargs -r -n 500 "${WHARF[@]}" rm -f >/dev/null
stop_wharfd
SOCK=
