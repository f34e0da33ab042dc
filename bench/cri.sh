#!/usr/bin/env bash
# The CRI side by side: pod start (RunPodSandbox + CreateContainer + StartContainer of a busybox
# `sleep`), ExecSync latency, streamed exec latency (Exec's URL over WebSocket and over SPDY/3.1,
# round trip of an `echo`) and memory per pod, through wharfd's --cri-socket and through a
# private containerd 1.6 (Debian's `containerd`, its CRI plugin, its own root, state and
# sockets), both driven by the same client (bench/cri.py, on the e2e tests' venv) with the same
# CNI plugins (bridge, host-local, loopback) on a bridge and subnet each of their own. containerd
# pulls its sandbox image: wharf's pause image, saved from wharfd and pushed to the bench's
# registry, so that both run the same pause process. Uses the binaries in target/release
# (WHARF_BIN_DIR to change). Run as root. N pods (default 20).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/wharf-bench-cri.XXXXXX)
N=${N:-20}
source "$ROOT/bench/lib.sh"
CTRD_PID=
BRIDGES=()
ls -d /run/containerd/s/* >"$WORK/run-containerd-before" 2>/dev/null || true
cri_cleanup() {
    [ -z "$CTRD_PID" ] || { kill "$CTRD_PID" 2>/dev/null || true; wait "$CTRD_PID" 2>/dev/null || true; }
    # containerd's shims outlive it: end those of this run, by pid (their cmdline names its
    # socket under WORK).
    local p
    for p in /proc/[0-9]*; do
        if tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q "^/usr/bin/containerd-shim-runc-v2 .*$WORK/"; then
            kill "${p#/proc/}" 2>/dev/null || true
        fi
    done
    { grep " $WORK/" /proc/self/mountinfo || true; } | awk '{print $5}' | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
    for b in "${BRIDGES[@]}"; do ip link del "$b" 2>/dev/null || true; done
    # containerd 1.6's shims put their sockets under /run/containerd/s whatever its config:
    # those this run made go (another engine's stay), and the directories if they are empty.
    local f
    for f in /run/containerd/s/*; do
        [ -e "$f" ] || continue
        grep -qxF "$f" "$WORK/run-containerd-before" 2>/dev/null || rm -f "$f"
    done
    rmdir /run/containerd/s /run/containerd 2>/dev/null || true
    remove_cgroup_parent "/wharf-bench-cri-wharf-$$"
    remove_cgroup_parent "/wharf-bench-cri-ctrd-$$"
    cleanup
}
trap cri_cleanup EXIT
[ -z "${BENCH_KEEP_LOG:-}" ] || trap 'cp "$WORK/containerd/containerd.log" /tmp/ctrd-bench.log 2>/dev/null; cri_cleanup' EXIT
command -v containerd >/dev/null || { echo "containerd is not installed (apt-get install containerd)" >&2; exit 1; }
PY=$(bash "$ROOT/scripts/cri-client")

# cni_conf DIR BRIDGE SUBNET
cni_conf() {
    mkdir -p "$1"
    cat >"$1/10-bench.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "$2-net", "plugins": [
  {"type": "bridge", "bridge": "$2", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$3"}]], "dataDir": "$1/ipam"}},
  {"type": "loopback"}]}
JSON
    BRIDGES+=("$2")
}

start_registry
python3 "$ROOT/tests/fixtures/make_images.py" --registry "$REGISTRY" --only library/busybox >/dev/null
IMAGE=$REGISTRY/library/busybox:latest
NET=$((200 + $$ % 50))

cni_conf "$WORK/wharf-net.d" "wbcw$(($$ % 10000))" "10.$NET.10.0/24"
WHARFD_ARGS="--cri-socket $WORK/wharfd/cri.sock --cni-conf-dir $WORK/wharf-net.d --cni-bin-dir /usr/lib/cni --bridge wbcd$(($$ % 10000)) --bip 10.$NET.9.1/24"
start_wharfd "$WORK/wharfd"
for _ in $(seq 100); do [ -S "$WORK/wharfd/cri.sock" ] && break; sleep 0.05; done
mkdir -p "$WORK/logs-wharf"
"$PY" "$ROOT/bench/cri.py" "$WORK/wharfd/cri.sock" "$IMAGE" "$N" "$WORK/logs-wharf" "/wharf-bench-cri-wharf-$$" wharf "$WHARFD_PID" >"$WORK/wharf.json"

# The same pause process for containerd, from wharf's own image.
PAUSE=$("$BIN/wharf" -H "unix://$SOCK" images --format '{{.Repository}}:{{.Tag}}' | grep '^wharf.invalid/pause:')
"$BIN/wharf" -H "unix://$SOCK" save -o "$WORK/pause.tar" "$PAUSE"
skopeo copy --quiet --dest-tls-verify=false "docker-archive:$WORK/pause.tar" "docker://$REGISTRY/wharf/pause:bench"
stop_wharfd

C=$WORK/containerd
mkdir -p "$C"
cni_conf "$WORK/ctrd-net.d" "wbcc$(($$ % 10000))" "10.$NET.11.0/24"
# CAP_SYS_RESOURCE is bit 24 of the effective set.
RESTRICT_OOM=false
(( (0x$(awk '/^CapEff:/ {print $2}' /proc/self/status) >> 24) & 1 )) || RESTRICT_OOM=true
cat >"$C/config.toml" <<TOML
version = 2
root = "$C/root"
state = "$C/state"
[grpc]
  address = "$C/containerd.sock"
[ttrpc]
  address = "$C/containerd.sock.ttrpc"
[debug]
  address = "$C/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$C/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$REGISTRY/wharf/pause:bench"
  # Its sandboxes get oom_score_adj -998, which needs CAP_SYS_RESOURCE to set; a host without
  # it (these VMs' root) fails every sandbox with runc's "can't get final child's PID from
  # pipe". Restricted, containerd keeps each value at or above its own, as for rootless.
  restrict_oom_score_adj = $RESTRICT_OOM
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  # runc's state of its own, not under the host's /run/containerd.
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    Root = "$C/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$WORK/ctrd-net.d"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$REGISTRY"]
    endpoint = ["http://$REGISTRY"]
TOML
containerd --config "$C/config.toml" >"$C/containerd.log" 2>&1 &
CTRD_PID=$!
for _ in $(seq 200); do [ -S "$C/containerd.sock" ] && break; sleep 0.05; done
mkdir -p "$WORK/logs-ctrd"
# On a host where containerd's CRI cannot run pods, wharf's figures are still printed.
if ! "$PY" "$ROOT/bench/cri.py" "$C/containerd.sock" "$IMAGE" "$N" "$WORK/logs-ctrd" "/wharf-bench-cri-ctrd-$$" containerd "$CTRD_PID" >"$WORK/ctrd.json" 2>"$WORK/ctrd.err"; then
    echo "containerd's CRI failed: $(grep -m1 'details = ' "$WORK/ctrd.err" || tail -1 "$WORK/ctrd.err")" >&2
    echo '{}' >"$WORK/ctrd.json"
fi

python3 - "$WORK/wharf.json" "$WORK/ctrd.json" <<'PY'
import json, sys
w, c = (json.load(open(p)) for p in sys.argv[1:3])
print("CRI, %d pods one after another (median; pod start = RunPodSandbox + CreateContainer + StartContainer)" % w["pods"])
print("%-22s %10s %12s %8s" % ("", "wharf", "containerd", "ratio"))
for k, label in [("pod_start_ms_median", "pod start ms"), ("pod_start_ms_max", "pod start ms (max)"),
                 ("exec_sync_ms_median", "ExecSync ms"), ("exec_ws_ms_median", "Exec+WebSocket ms"),
                 ("exec_spdy_ms_median", "Exec+SPDY ms"), ("pss_kib_per_pod", "PSS KiB per pod")]:
    if k in c and c[k]:
        print("%-22s %10.1f %12.1f %7.2fx" % (label, w[k], c[k], w[k] / c[k]))
    else:
        print("%-22s %10.1f %12s %8s" % (label, w[k], "-", "-"))
PY
