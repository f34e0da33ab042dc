#!/usr/bin/env bash
# Memory per container: N running `sleep` containers; the shims' PSS and RSS (PSS shares the
# pages of the one wharf-shim binary fairly between them), wharfd's RSS growth per container,
# the time to start them all and of each thousand, `wharf ps` latency with them running, and
# what `rm -f` of all of them leaves behind.
# Uses the binaries in target/release (WHARF_BIN_DIR to change). Run as root. N=10000 for the
# large run (issue 16's scale goal).
#
# A Linux bridge takes at most 1024 ports (the kernel's BR_MAX_PORTS), so the default bridge
# holds about a thousand containers, on wharf as on Docker. Past PER_NET containers (default
# 1000) the bench does what a Docker user does: it spreads them over user-defined networks of
# PER_NET each, with subnets of its own (10.213.0.0/16, /22 each). NET=none runs them all
# without networking instead.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/wharf-bench-mem.XXXXXX)
N=${N:-100}
source "$ROOT/bench/lib.sh"
trap cleanup EXIT

start_registry
python3 "$ROOT/tests/fixtures/make_images.py" --registry "$REGISTRY" --only library/busybox >/dev/null
IMAGE=$REGISTRY/library/busybox:latest

start_wharfd "$WORK/wharfd"
WHARF=("$BIN/wharf" -H "unix://$SOCK")
"${WHARF[@]}" pull -q "$IMAGE" >/dev/null
"${WHARF[@]}" run --rm "$IMAGE" true # warm-up: first-use allocations are not per container

# kib FIELD FILE: the value of FIELD (kB) in a /proc status or smaps_rollup file.
kib() { awk -v f="$1:" '$1 == f { print $2; exit }' "$2"; }

PER_NET=${PER_NET:-1000}
NET=${NET:-bridge}
nets=()
# network_for I: sets net to the network container I joins (making it when it is new).
network_for() {
    net=$NET
    [ "$NET" = none ] || [ "$N" -le "$PER_NET" ] && return
    local k=$((($1 - 1) / PER_NET))
    if [ "$k" -ge "${#nets[@]}" ]; then
        "${WHARF[@]}" network create --subnet "10.213.$((k * 4)).0/22" "membench-$k" >/dev/null
        nets+=("membench-$k")
    fi
    net=membench-$k
}

rss_before=$(kib VmRSS "/proc/$WHARFD_PID/status")
: >"$WORK/start.ms"
t0=$(now_ns)
for i in $(seq "$N"); do
    network_for "$i"
    a=$(now_ns)
    if ! "${WHARF[@]}" run -d --network "$net" --name "m$i" "$IMAGE" sleep 36000 >/dev/null 2>"$WORK/run.err"; then
        echo "container $i did not start: $(cat "$WORK/run.err")" >&2
        N=$((i - 1))
        break
    fi
    b=$(now_ns)
    awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f\n", (b - a) / 1e6 }' >>"$WORK/start.ms"
    if [ $((i % 1000)) = 0 ] || [ "$i" = "$N" ]; then
        from=$(((i - 1) / 1000 * 1000 + 1))
        sed -n "${from},${i}p" "$WORK/start.ms" >"$WORK/chunk.ms"
        read -r cm cp < <(stats "$WORK/chunk.ms")
        printf 'containers %5d-%-5d start median / p95 (ms) %8s / %s   load %s\n' "$from" "$i" "$cm" "$cp" \
            "$(cut -d' ' -f1 /proc/loadavg)"
    fi
done
t1=$(now_ns)
start_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
sleep 1
rss_after=$(kib VmRSS "/proc/$WHARFD_PID/status")

# The shims: processes running the wharf-shim binary started for this daemon's exec root.
shims=()
for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    exe=$(readlink "$p/exe" 2>/dev/null || true)
    [ "${exe##*/}" = wharf-shim ] || continue
    tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "$WORK/wharfd/" || continue
    shims+=("$pid")
done
pss=0 rss=0
for pid in "${shims[@]}"; do
    pss=$((pss + $(kib Pss "/proc/$pid/smaps_rollup")))
    rss=$((rss + $(kib Rss "/proc/$pid/smaps_rollup")))
done
nshim=${#shims[@]}

: >"$WORK/ps.ms"
for i in $(seq 20); do
    a=$(now_ns)
    "${WHARF[@]}" ps >/dev/null
    b=$(now_ns)
    awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f\n", (b - a) / 1e6 }' >>"$WORK/ps.ms"
done
read -r ps_m ps_p < <(stats "$WORK/ps.ms")

per() { awk -v t="$1" -v n="$2" 'BEGIN { if (n == 0) print "-"; else printf "%.0f", t / n }'; }
printf '\n%d running containers (%d shims found)\n' "$N" "$nshim"
printf '%-44s %10s\n' "shim PSS per container (KiB)" "$(per "$pss" "$nshim")"
printf '%-44s %10s\n' "shim RSS per container (KiB)" "$(per "$rss" "$nshim")"
printf '%-44s %10s\n' "wharfd RSS before / after (KiB)" "$rss_before / $rss_after"
printf '%-44s %10s\n' "wharfd RSS growth per container (KiB)" "$(per "$((rss_after - rss_before))" "$N")"
printf '%-44s %10s\n' "shim PSS + wharfd growth per container (KiB)" "$(per "$((pss + rss_after - rss_before))" "$N")"
printf '%-44s %10s\n' "time to start all (s)" "$start_s"
printf '%-44s %10s\n' "wharf ps, median / p95 (ms)" "$ps_m / $ps_p"

a=$(now_ns)
"${WHARF[@]}" ps -aq | xargs -r -n 500 "${WHARF[@]}" rm -f >/dev/null
b=$(now_ns)
printf '%-44s %10s\n' "rm -f of all (s)" "$(seconds "$a" "$b")"
for n in "${nets[@]}"; do "${WHARF[@]}" network rm "$n" >/dev/null; done
left=$("${WHARF[@]}" ps -aq | wc -l)
mounts=$(grep -c -- "$WORK/" /proc/self/mountinfo || true)
shims_left=0
for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null || true)
    [ "${exe##*/}" = wharf-shim ] || continue
    tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "$WORK/wharfd/" && shims_left=$((shims_left + 1))
done
printf '%-44s %10s\n' "left after rm: containers / mounts / shims" "$left / $mounts / $shims_left"
stop_wharfd
# The daemon leaves its (now empty) cgroup parent behind; a bench leaves nothing.
for d in /sys/fs/cgroup/*/"wharf-bench-$$"; do rmdir "$d" 2>/dev/null || true; done
