#!/usr/bin/env bash
# Connection reuse in the registry client: a pull of an image of LAYERS (default 30) small
# layers from a TLS registry on the loopback device (an address of its own, 198.18.x.y on lo,
# listed in insecure-registries: both engines then speak HTTPS without verifying the
# certificate; wharf speaks plain HTTP to 127.0.0.0/8), by `wharf pull` with keep-alive connections (the
# default), by `wharf pull` with one connection per request (WHARF_HTTP_KEEPALIVE=0 in
# wharfd's environment: what wharf did before), and by `docker pull` on a private dockerd,
# each RUNS times with a fresh data root. Prints the medians and the ratios.
# Uses target/release. Run as root.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/wharf-bench-keepalive.XXXXXX)
LAYERS_N=${LAYERS:-30}
RUNS=${RUNS:-5}
source "$ROOT/bench/lib.sh"
TLS_IP=
remove_address() {
    if [ -n "$TLS_IP" ]; then ip addr del "$TLS_IP/32" dev lo 2>/dev/null || true; fi
    cleanup
}
trap remove_address EXIT

median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", a / b }'; }

# A plain registry to push the image into, and a TLS one serving the same storage to pull from.
start_registry
echo "pushing an image of $LAYERS_N layers of about $((1000 / LAYERS_N)) kB..." >&2
python3 "$ROOT/tests/fixtures/make_images.py" --registry "$REGISTRY" --only none \
    --big-mb 1 --big-layers "$LAYERS_N" >/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
port=$(free_port)
TLS_IP=198.18.$((port >> 8)).$((port & 255))
ip addr add "$TLS_IP/32" dev lo
TLS_REGISTRY=$TLS_IP:$port
registry_config "$WORK/tls.yml" "$TLS_REGISTRY" "$REGISTRY_STORAGE" "$WORK/tls.crt" "$WORK/tls.key"
/usr/bin/docker-registry serve "$WORK/tls.yml" >"$WORK/tls.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -kfsS "https://$TLS_REGISTRY/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
IMAGE=$TLS_REGISTRY/bench/big:latest
REGISTRY=$TLS_REGISTRY
# Debug logs count the connections wharf opens.
WHARFD_ARGS="--insecure-registry $TLS_REGISTRY --log-level debug"
start_dockerd

: >"$WORK/reuse.s"; : >"$WORK/close.s"; : >"$WORK/docker.s"
for run in $(seq "$RUNS"); do
    for mode in reuse close; do
        if [ "$mode" = close ]; then export WHARF_HTTP_KEEPALIVE=0; fi
        start_wharfd "$WORK/wharfd-$mode-$run"
        unset WHARF_HTTP_KEEPALIVE
        t0=$(now_ns)
        "$BIN/wharf" -H "unix://$SOCK" pull -q "$IMAGE" >/dev/null
        t1=$(now_ns)
        seconds "$t0" "$t1" >>"$WORK/$mode.s"
        stop_wharfd
        grep -c "new connection to https://$TLS_REGISTRY" "$WORK/wharfd-$mode-$run/wharfd.log" >>"$WORK/$mode.conns" || true
        rm -rf "$WORK/wharfd-$mode-$run"
    done
    if [ -n "$DOCKER_SOCK" ]; then
        t0=$(now_ns)
        docker_cli pull -q "$IMAGE" >/dev/null
        t1=$(now_ns)
        seconds "$t0" "$t1" >>"$WORK/docker.s"
        docker_cli rmi -f "$IMAGE" >/dev/null
    fi
done

reuse=$(median "$WORK/reuse.s")
close=$(median "$WORK/close.s")
echo
echo "pull of $LAYERS_N small layers over TLS on lo, median of $RUNS (seconds):"
printf '%-34s %8s %8s %12s\n' "puller" "seconds" "ratio" "connections"
printf '%-34s %8s %8s %12s\n' "wharf, keep-alive (default)" "$reuse" "1.00" "$(median "$WORK/reuse.conns")"
printf '%-34s %8s %8s %12s\n' "wharf, a connection per request" "$close" "$(ratio "$close" "$reuse")" "$(median "$WORK/close.conns")"
if [ -s "$WORK/docker.s" ]; then
    docker=$(median "$WORK/docker.s")
    printf '%-34s %8s %8s\n' "docker pull (private dockerd)" "$docker" "$(ratio "$docker" "$reuse")"
else
    echo "docker pull: no Docker engine installed"
fi
