#!/usr/bin/env bash
# Container start latency: N runs of `wharf run --rm busybox true` through wharfd, side by
# side with `runc run` of an equivalent bundle, and `docker run --rm` if a Docker engine runs.
# Uses the binaries in target/release (cargo build --release --bins). Run as root.
# WHARF_RUN_ARGS: extra flags for every `wharf run`, e.g. "--security-opt seccomp=unconfined"
# to see what the seccomp filter costs (split on spaces).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/wharf-bench-start.XXXXXX)
N=${N:-50}
source "$ROOT/bench/lib.sh"
trap cleanup EXIT

start_registry
python3 "$ROOT/tests/fixtures/make_images.py" --registry "$REGISTRY" --only library/busybox >/dev/null
IMAGE=$REGISTRY/library/busybox:latest

# Debug level: wharfd logs each start's phases, whose medians are printed at the end.
WHARFD_ARGS="--log-level debug ${WHARFD_ARGS:-}" start_wharfd "$WORK/wharfd"
WHARF=("$BIN/wharf" -H "unix://$SOCK")
"${WHARF[@]}" pull "$IMAGE" >/dev/null
read -r -a RUN_ARGS <<<"${WHARF_RUN_ARGS:-}"
"${WHARF[@]}" run --rm "${RUN_ARGS[@]}" "$IMAGE" true # warm-up

# The docker CLI through wharfd (issue 16's goal: within 5 ms of wharf's own CLI). Before the
# wharf runs, so that the phases below are those of `wharf run` alone.
DOCKER_VIA=(env "DOCKER_HOST=unix://$SOCK" "DOCKER_CONFIG=$WORK/docker-config" docker)
HAVE_DOCKER_CLI=0
if command -v docker >/dev/null 2>&1 && "${DOCKER_VIA[@]}" run --rm "${RUN_ARGS[@]}" "$IMAGE" true >/dev/null 2>&1; then
    HAVE_DOCKER_CLI=1
    time_runs "$WORK/docker-wharfd.ms" "${DOCKER_VIA[@]}" run --rm "${RUN_ARGS[@]}" "$IMAGE" true
fi

phase_lines_before=$(grep -c "start phases" "$WORK/wharfd/wharfd.log" || true)
time_runs "$WORK/wharf.ms" "${WHARF[@]}" run --rm "${RUN_ARGS[@]}" "$IMAGE" true

# runc: the same busybox in a plain rootfs directory.
BUNDLE=$WORK/bundle
runc_bundle "$BUNDLE" true
runc_once() {
    runc run -b "$BUNDLE" "wharf-bench-$$-$RANDOM$RANDOM"
}
runc_once
time_runs "$WORK/runc.ms" runc_once

# What each CLI costs before it sends anything (its own process start, no request): the part of
# the docker CLI's gap to wharf that no daemon can take away.
time_runs "$WORK/wharf-version.ms" "$BIN/wharf" --version
if [ "$HAVE_DOCKER_CLI" = 1 ]; then
    time_runs "$WORK/docker-version.ms" "${DOCKER_VIA[@]}" --version
fi

HAVE_DOCKER=0
start_dockerd
if [ -n "$DOCKER_SOCK" ] && docker_cli pull -q "$IMAGE" >/dev/null 2>&1 && docker_cli run --rm "$IMAGE" true >/dev/null 2>&1; then
    HAVE_DOCKER=1
    time_runs "$WORK/docker.ms" docker_cli run --rm "$IMAGE" true
fi

read -r rm rp < <(stats "$WORK/runc.ms")
printf '\n%-32s %10s %10s %12s\n' "start latency, $N runs" "median ms" "p95 ms" "median/runc"
row() {
    local name=$1 file=$2 m p
    read -r m p < <(stats "$file")
    printf '%-32s %10s %10s %12s\n' "$name" "$m" "$p" "$(awk -v a="$m" -v b="$rm" 'BEGIN { printf "%.2f", a / b }')"
}
row "runc run (bundle)" "$WORK/runc.ms"
row "wharf run --rm${WHARF_RUN_ARGS:+ $WHARF_RUN_ARGS}" "$WORK/wharf.ms"
if [ "$HAVE_DOCKER_CLI" = 1 ]; then
    row "docker CLI run --rm via wharfd" "$WORK/docker-wharfd.ms"
fi
if [ "$HAVE_DOCKER" = 1 ]; then
    row "docker run --rm" "$WORK/docker.ms"
else
    printf '%-32s %s\n' "docker run --rm" "(no Docker engine installed: skipped)"
fi
# Where the time goes: the median, over the timed runs, of the time to the end of each phase
# from wharfd's debug lines. `start phases (ms): NAME +MS ...` counts from the engine's start
# request: the network attached, the spec written, the shim spawned and running, its clone,
# the cgroup made and joined, the init's rootfs and process set up, the go, the exec, the
# handshake read back, the record written. `exit phases` counts from the shim reaping the
# init: exit.json written, its end of the pipe seen by wharfd, the exit recorded, the network
# released, the waiters told (`wait` answers here), the container removed (--rm).
if [ "$HAVE_DOCKER_CLI" = 1 ]; then
    read -r wm _ < <(stats "$WORK/wharf.ms")
    read -r dm _ < <(stats "$WORK/docker-wharfd.ms")
    printf '%-32s %10s\n' "docker CLI - wharf (ms)" "$(awk -v a="$dm" -v b="$wm" 'BEGIN { printf "%.1f", a - b }')"
    read -r wv _ < <(stats "$WORK/wharf-version.ms")
    read -r dv _ < <(stats "$WORK/docker-version.ms")
    printf '%-32s %10s\n' "  of which CLI start (ms)" "$(awk -v a="$dv" -v b="$wv" 'BEGIN { printf "%.1f", a - b }')"
    printf '%-32s %10s %10s\n' "  (--version: docker, wharf)" "$dv" "$wv"
fi
phases() {
    local kind=$1 title=$2
    grep "$kind phases" "$WORK/wharfd/wharfd.log" | tail -n +"$((phase_lines_before + 1))" |
        python3 -c '
import re, statistics, sys
kind, title = sys.argv[1], sys.argv[2]
phases = {}
for line in sys.stdin:
    for name, ms in re.findall(r"([a-z-]+) \+([0-9.]+)", line.split(kind + " phases (ms):", 1)[1]):
        phases.setdefault(name, []).append(float(ms))
print("\n%-32s %10s" % (title, "median ms"))
for name, v in sorted(phases.items(), key=lambda kv: statistics.median(kv[1])):
    print("%-32s %10.2f" % ("  " + name, statistics.median(v)))
' "$kind" "$title"
}
phases start "start phase (from the request)"
phases exit "exit phase (from the reap)"
stop_wharfd
