#!/usr/bin/env bash
# API load: CLIENTS (default 50) concurrent clients loop create/start/exec/logs/rm against one
# wharfd for DURATION seconds (default 300), then the same against a private dockerd when
# Debian's docker.io is installed. Prints the request rate, p50/p99 latency and failed
# requests of each, side by side, and wharfd's fds, threads, RSS, mounts and cgroups before and
# after (a leak shows as growth). ROUNDS (default 1) repeats wharfd's run and prints its
# resources after each: memory that a round adds and the next does not is the allocator
# keeping freed pages, memory that grows every round is a leak. Uses target/release.
# Run as root.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/wharf-bench-load.XXXXXX)
CLIENTS=${CLIENTS:-50}
DURATION=${DURATION:-300}
ROUNDS=${ROUNDS:-1}
source "$ROOT/bench/lib.sh"
trap cleanup EXIT

start_registry
python3 "$ROOT/tests/fixtures/make_images.py" --registry "$REGISTRY" --only library/busybox >/dev/null
IMAGE=$REGISTRY/library/busybox:latest

# resources PID DIR CGROUP_PARENT: "fds threads rss_kib mounts cgroups"
resources() {
    local pid=$1 dir=$2 parent=$3
    local fds threads rss mounts cgroups
    fds=$(ls "/proc/$pid/fd" | wc -l)
    threads=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status")
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
    mounts=$(grep -c " $dir" /proc/self/mountinfo || true)
    cgroups=$(find /sys/fs/cgroup -mindepth 2 -maxdepth 3 -path "*${parent}/*" -type d 2>/dev/null | wc -l)
    echo "fds=$fds threads=$threads rss_kib=$rss mounts=$mounts cgroups=$cgroups"
}

start_wharfd "$WORK/wharfd"
"$BIN/wharf" -H "unix://$SOCK" pull -q "$IMAGE" >/dev/null
sleep 1
before=$(resources "$WHARFD_PID" "$WORK/wharfd" "wharf-bench-$$")
for round in $(seq 1 "$ROUNDS"); do
    wharf_result=$(python3 "$ROOT/bench/load.py" "$SOCK" "$IMAGE" "$CLIENTS" "$DURATION")
    # tokio's idle blocking threads leave after 10 s: what is left after 15 s is not a pool.
    sleep 15
    after=$(resources "$WHARFD_PID" "$WORK/wharfd" "wharf-bench-$$")
    [ "$ROUNDS" = 1 ] || echo "wharfd round $round: $wharf_result; $after"
done
left=$("$BIN/wharf" -H "unix://$SOCK" ps -aq | wc -l)
# With gdb: what glibc's malloc_trim gives back was free memory the allocator kept, not a leak.
trimmed=
if command -v gdb >/dev/null 2>&1; then
    gdb -p "$WHARFD_PID" -batch -ex 'call (int)malloc_trim(0)' >/dev/null 2>&1 || true
    trimmed=$(resources "$WHARFD_PID" "$WORK/wharfd" "wharf-bench-$$")
fi

echo "load: $CLIENTS clients, ${DURATION}s, create/start/exec/logs/rm"
echo "wharfd:  $wharf_result"
echo "wharfd resources before: $before"
echo "wharfd resources after:  $after (containers left: $left)"
[ -z "$trimmed" ] || echo "wharfd after malloc_trim: $trimmed"

if [ -z "${NO_DOCKER:-}" ]; then
    start_dockerd
    if [ -n "$DOCKER_SOCK" ]; then
        docker_cli pull -q "$IMAGE" >/dev/null
        docker_result=$(python3 "$ROOT/bench/load.py" "$DOCKER_SOCK" "$IMAGE" "$CLIENTS" "$DURATION")
        echo "dockerd: $docker_result"
        python3 - "$wharf_result" "$docker_result" <<'PY'
import json, sys
w, d = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"ratio wharfd/dockerd: rate {w['rate'] / d['rate']:.2f}x, p99 {w['p99_ms'] / d['p99_ms']:.2f}x "
      f"(failed: wharfd {w['failed']}, dockerd {d['failed']})")
PY
    fi
fi
