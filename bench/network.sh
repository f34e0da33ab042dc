#!/usr/bin/env bash
# Networking costs: start latency on the default bridge vs `--network none` (wharf and, when
# Debian's docker.io is installed, Docker side by side), iperf3 throughput container to
# container over the bridge and host to a published port vs the host's loopback, the latency
# of a DNS lookup of a container name through a network's embedded DNS, and N2 create/start/rm
# cycles with a published port that must leave interfaces, addresses, namespaces and rules as
# they were. Uses target/release (WHARF_BIN_DIR to override). Run as root; needs iperf3.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/wharf-bench-net.XXXXXX)
N=${N:-30}
N2=${N2:-500}
# Cycles of a container on two networks, connected, disconnected and connected again live.
N3=${N3:-$((N2 / 5))}
IPERF_SECONDS=${IPERF_SECONDS:-5}
source "$ROOT/bench/lib.sh"
# Containers first (their namespaces are mounts under WORK), then wharfd, which removes its
# bridge and table when it stops with nothing running.
bench_cleanup() {
    if [ -n "${SOCK:-}" ] && [ -S "$SOCK" ]; then
        local ids
        ids=$("$BIN/wharf" -H "unix://$SOCK" ps -aq 2>/dev/null || true)
        # shellcheck disable=SC2086
        [ -z "$ids" ] || "$BIN/wharf" -H "unix://$SOCK" rm -f $ids >/dev/null 2>&1 || true
        "$BIN/wharf" -H "unix://$SOCK" network rm benchnet cycnet >/dev/null 2>&1 || true
        stop_wharfd
    fi
    cleanup
}
trap bench_cleanup EXIT
command -v iperf3 >/dev/null || { echo "iperf3 is not installed (apt-get install iperf3)" >&2; exit 1; }

start_registry
python3 "$ROOT/tests/fixtures/make_images.py" --registry "$REGISTRY" --only library/busybox >/dev/null
IMAGE=$REGISTRY/library/busybox:latest

# A bridge of its own: other daemons on the host may be using wharfd's default wharf0.
BRIDGE=whnb$(($$ % 100000))
dir=$WORK/wharfd
mkdir -p "$dir"
SOCK=$dir/wharfd.sock
"$BIN/wharfd" -H "unix://$SOCK" --data-root "$dir/data" --exec-root "$dir/exec" \
    --cgroup-parent "/wharf-bench-$$" --bridge "$BRIDGE" --bip "10.251.$((RANDOM % 250)).1/24" \
    >"$dir/wharfd.log" 2>&1 &
WHARFD_PID=$!
PIDS+=($WHARFD_PID)
for _ in $(seq 200); do
    curl -fsS --unix-socket "$SOCK" http://localhost/_ping >/dev/null 2>&1 && break
    sleep 0.05
done
WHARF=("$BIN/wharf" -H "unix://$SOCK")
"${WHARF[@]}" pull "$IMAGE" >/dev/null
"${WHARF[@]}" run --rm "$IMAGE" true >/dev/null # warm-up; creates the bridge

# Interleaved would be fairer to drift; two blocks keep the script simple and N is small.
time_runs "$WORK/wharf-none.ms" "${WHARF[@]}" run --rm --network none "$IMAGE" true
time_runs "$WORK/wharf-bridge.ms" "${WHARF[@]}" run --rm "$IMAGE" true

# iperf3_bps ARGS...: runs the client with ARGS, prints the received bits per second.
iperf3_bps() {
    iperf3 -J -t "$IPERF_SECONDS" "$@" | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])'
}
gbit() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e9 }'; }
pid_of() { "${WHARF[@]}" inspect -f '{{.State.Pid}}' "$1"; }
ip_of() { "${WHARF[@]}" inspect -f '{{.NetworkSettings.IPAddress}}' "$1"; }

# Two busybox containers; iperf3 runs in their network namespaces (the binary is the host's).
PUB=$(free_port)
"${WHARF[@]}" run -d --name ipa -p "127.0.0.1:$PUB:5201" "$IMAGE" sleep 600 >/dev/null
"${WHARF[@]}" run -d --name ipb "$IMAGE" sleep 600 >/dev/null
PA=$(pid_of ipa); PB=$(pid_of ipb); IPA=$(ip_of ipa)
nsenter -t "$PA" -n iperf3 -s -D -p 5201 --pidfile "$WORK/iperf-a.pid"
sleep 0.3
C2C=$(nsenter -t "$PB" -n bash -c "$(declare -f iperf3_bps); IPERF_SECONDS=$IPERF_SECONDS iperf3_bps -c $IPA -p 5201")
H2P=$(iperf3_bps -c 127.0.0.1 -p "$PUB")
kill "$(cat "$WORK/iperf-a.pid")" 2>/dev/null || true
LO=$(free_port)
iperf3 -s -D -p "$LO" --pidfile "$WORK/iperf-lo.pid"
sleep 0.3
H2H=$(iperf3_bps -c 127.0.0.1 -p "$LO")
kill "$(cat "$WORK/iperf-lo.pid")" 2>/dev/null || true
"${WHARF[@]}" rm -f ipa ipb >/dev/null

# DNS: a user network, a named container, and UDP queries for its name sent to the gateway's
# embedded server from another container's namespace (python3 of the host, net ns only).
"${WHARF[@]}" network create benchnet >/dev/null
"${WHARF[@]}" run -d --name named --network benchnet "$IMAGE" sleep 600 >/dev/null
"${WHARF[@]}" run -d --name asker --network benchnet "$IMAGE" sleep 600 >/dev/null
GW=$("${WHARF[@]}" network inspect benchnet | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["IPAM"]["Config"][0]["Gateway"])')
DNS=$(nsenter -t "$(pid_of asker)" -n python3 - "$GW" "$N" <<'PY'
import random, socket, struct, sys, time
gw, n = sys.argv[1], int(sys.argv[2]) * 10
def query(name):
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
    return qid, q
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
times = []
for _ in range(n):
    qid, q = query("named")
    t0 = time.perf_counter()
    s.sendto(q, (gw, 53))
    while True:
        data, _ = s.recvfrom(4096)
        if struct.unpack(">H", data[:2])[0] == qid:
            break
    times.append((time.perf_counter() - t0) * 1e6)
    if struct.unpack(">H", data[6:8])[0] < 1:
        sys.exit("no answer for named")
times.sort()
print("%.0f %.0f" % (times[len(times) // 2], times[int(len(times) * 0.95)]))
PY
)
"${WHARF[@]}" rm -f named asker >/dev/null
"${WHARF[@]}" network rm benchnet >/dev/null

# Cycles: what the host has before and after N2 create/start/rm with a published port.
# Only what belongs to this daemon: other things on the host may come and go meanwhile.
"${WHARF[@]}" network create --subnet "10.252.$((RANDOM % 250)).0/24" cycnet >/dev/null
CYCBR=br-$("${WHARF[@]}" network inspect -f '{{.Id}}' cycnet | cut -c1-12)
snapshot() {
    {
        ls /sys/class/net/$BRIDGE/brif 2>/dev/null || true
        ls /sys/class/net/$CYCBR/brif 2>/dev/null || true
        ip -o -4 addr show dev "$BRIDGE" | awk '{print $2, $4}'
        ip -o -4 addr show dev "$CYCBR" | awk '{print $2, $4}'
        nft list table ip "wharf_$BRIDGE" 2>/dev/null || true
        ls "$WORK/wharfd/exec/netns" 2>/dev/null || true
    } >"$1"
}
# changed_since_before AFTER DIFF: snapshots AFTER once the daemon's cleanup has settled and
# prints whether it differs from the first snapshot (the diff lands in DIFF).
changed_since_before() {
    sleep 0.5
    snapshot "$1"
    if diff -u "$WORK/before" "$1" >"$2"; then echo unchanged; else echo CHANGED; fi
}
snapshot "$WORK/before"
T0=$(now_ns)
for i in $(seq "$N2"); do
    "${WHARF[@]}" create --name "cyc$i" -p 127.0.0.1::80 "$IMAGE" true >/dev/null
    "${WHARF[@]}" start "cyc$i" >/dev/null
    "${WHARF[@]}" rm -f "cyc$i" >/dev/null
done
T1=$(now_ns)
CYCLES=$(changed_since_before "$WORK/after" "$WORK/cycles.diff")
T2=$(now_ns)
for i in $(seq "$N3"); do
    "${WHARF[@]}" create --name "two$i" -p 127.0.0.1::80 "$IMAGE" sleep 60 >/dev/null
    "${WHARF[@]}" network connect cycnet "two$i"
    "${WHARF[@]}" start "two$i" >/dev/null
    "${WHARF[@]}" network disconnect cycnet "two$i"
    "${WHARF[@]}" network connect cycnet "two$i"
    "${WHARF[@]}" rm -f "two$i" >/dev/null
done
T3=$(now_ns)
CYCLES2=$(changed_since_before "$WORK/after2" "$WORK/cycles2.diff")
"${WHARF[@]}" network rm cycnet >/dev/null

HAVE_DOCKER=0
start_dockerd
if [ -n "$DOCKER_SOCK" ] && docker_cli pull -q "$IMAGE" >/dev/null 2>&1 && docker_cli run --rm "$IMAGE" true >/dev/null 2>&1; then
    HAVE_DOCKER=1
    time_runs "$WORK/docker-none.ms" docker_cli run --rm --network none "$IMAGE" true
    time_runs "$WORK/docker-bridge.ms" docker_cli run --rm "$IMAGE" true
fi

printf '\n%-36s %10s %10s\n' "start latency, $N runs" "median ms" "p95 ms"
row() {
    local m p
    read -r m p < <(stats "$2")
    printf '%-36s %10s %10s\n' "$1" "$m" "$p"
}
row "wharf run --rm --network none" "$WORK/wharf-none.ms"
row "wharf run --rm (bridge)" "$WORK/wharf-bridge.ms"
read -r wn _ < <(stats "$WORK/wharf-none.ms"); read -r wb _ < <(stats "$WORK/wharf-bridge.ms")
printf '%-36s %10s\n' "wharf: bridge costs" "$(awk -v a="$wb" -v b="$wn" 'BEGIN { printf "%.1f", a - b }')"
if [ "$HAVE_DOCKER" = 1 ]; then
    row "docker run --rm --network none" "$WORK/docker-none.ms"
    row "docker run --rm (bridge)" "$WORK/docker-bridge.ms"
    read -r dn _ < <(stats "$WORK/docker-none.ms"); read -r db _ < <(stats "$WORK/docker-bridge.ms")
    printf '%-36s %10s\n' "docker: bridge costs" "$(awk -v a="$db" -v b="$dn" 'BEGIN { printf "%.1f", a - b }')"
else
    printf '%-36s %s\n' "docker run --rm" "(no Docker engine installed: skipped)"
fi
printf '\n%-36s %10s\n' "iperf3 TCP, ${IPERF_SECONDS}s" "Gbit/s"
printf '%-36s %10s\n' "container -> container (bridge)" "$(gbit "$C2C")"
printf '%-36s %10s\n' "host -> published port (DNAT)" "$(gbit "$H2P")"
printf '%-36s %10s\n' "host -> host loopback" "$(gbit "$H2H")"
read -r dm dp <<<"$DNS"
printf '\n%-36s %10s %10s\n' "DNS lookup of a container name" "median us" "p95 us"
printf '%-36s %10s %10s\n' "embedded DNS, $((N * 10)) queries" "$dm" "$dp"
printf '\n%s create/start/rm cycles with -p: %.1f s, links/addresses/rules/netns %s\n' \
    "$N2" "$(awk -v a="$T0" -v b="$T1" 'BEGIN { print (b - a) / 1e9 }')" "$CYCLES"
printf '%s cycles on two networks (connect, start, disconnect, connect, rm): %.1f s, links/addresses/rules/netns %s\n' \
    "$N3" "$(awk -v a="$T2" -v b="$T3" 'BEGIN { print (b - a) / 1e9 }')" "$CYCLES2"
[ "$CYCLES" = unchanged ] || cat "$WORK/cycles.diff"
[ "$CYCLES2" = unchanged ] || cat "$WORK/cycles2.diff"
