# Shared by the benchmarks: a throwaway registry and wharfd, and timing helpers.
# Sourced, not run. Expects ROOT (repository root) and WORK (a temp dir) to be set.

BIN=${WHARF_BIN_DIR:-$ROOT/target/release}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# registry_config FILE ADDR STORAGE [CERT KEY]: a docker-registry config serving STORAGE on
# ADDR, over TLS with CERT and KEY when given.
registry_config() {
    {
        cat <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $3
http:
  addr: $2
YML
        if [ $# -ge 5 ]; then
            printf '  tls:\n    certificate: %s\n    key: %s\n' "$4" "$5"
        fi
    } >"$1"
}

# start_registry: sets REGISTRY (host:port) and REGISTRY_STORAGE; killed by cleanup.
start_registry() {
    local port
    port=$(free_port)
    REGISTRY=127.0.0.1:$port
    REGISTRY_STORAGE=$WORK/registry
    mkdir -p "$REGISTRY_STORAGE"
    registry_config "$WORK/registry.yml" "$REGISTRY" "$REGISTRY_STORAGE"
    /usr/bin/docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
        curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "registry did not start: $(cat "$WORK/registry.log")" >&2
    return 1
}

# start_wharfd DIR: a daemon with its data under DIR; sets SOCK and WHARFD_PID.
start_wharfd() {
    local dir=$1
    mkdir -p "$dir"
    SOCK=$dir/wharfd.sock
    # WHARFD_ARGS: extra flags, e.g. "--log-level debug" to see the phases builds log.
    read -r -a extra <<<"${WHARFD_ARGS:-}"
    "$BIN/wharfd" -H "unix://$SOCK" --data-root "$dir/data" --exec-root "$dir/exec" \
        --cgroup-parent "/wharf-bench-$$" "${extra[@]}" >"$dir/wharfd.log" 2>&1 &
    WHARFD_PID=$!
    PIDS+=($WHARFD_PID)
    for _ in $(seq 200); do
        curl -fsS --unix-socket "$SOCK" http://localhost/_ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "wharfd did not start: $(tail -20 "$dir/wharfd.log")" >&2
    return 1
}

stop_wharfd() {
    kill "$WHARFD_PID" 2>/dev/null || true
    wait "$WHARFD_PID" 2>/dev/null || true
}

# start_dockerd: when Debian's docker.io is installed, a private Docker engine (its own data
# root, socket and managed containerd under WORK; no iptables rules; a bridge and a cgroup
# parent of its own, made here and removed by stop_dockerd, never docker0 or the `docker`
# cgroup, which another engine may own) for
# side-by-side figures. Sets DOCKER_SOCK, or leaves it empty when there is no engine to
# compare with.
DOCKER_SOCK=
DOCKERD_PID=
DOCKER_BRIDGE=
start_dockerd() {
    command -v dockerd >/dev/null 2>&1 || return 0
    [ -z "${NO_DOCKER:-}" ] || return 0
    local dir=$WORK/docker
    mkdir -p "$dir"
    DOCKER_BRIDGE=wbd$(($$ % 100000))
    ip link add "$DOCKER_BRIDGE" type bridge
    ip addr add "10.251.$(($$ % 250)).1/24" dev "$DOCKER_BRIDGE"
    ip link set "$DOCKER_BRIDGE" up
    dockerd --data-root "$dir/data" --exec-root "$dir/exec" -H "unix://$dir/docker.sock" \
        --bridge "$DOCKER_BRIDGE" --cgroup-parent "/wharf-bench-dockerd-$$" \
        --pidfile "$dir/docker.pid" --iptables=false --ip-masq=false \
        --insecure-registry "$REGISTRY" >"$dir/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 300); do
        if curl -fsS --unix-socket "$dir/docker.sock" http://localhost/_ping >/dev/null 2>&1; then
            DOCKER_SOCK=$dir/docker.sock
            return 0
        fi
        sleep 0.1
    done
    echo "dockerd did not start (skipping Docker): $(tail -5 "$dir/dockerd.log")" >&2
    kill "$DOCKERD_PID" 2>/dev/null || true
    DOCKERD_PID=
}

# docker_cli ARGS...: the docker CLI against the private engine.
docker_cli() {
    DOCKER_HOST=unix://$DOCKER_SOCK DOCKER_CONFIG=$WORK/docker-config docker "$@"
}

stop_dockerd() {
    if [ -n "$DOCKERD_PID" ]; then
        kill "$DOCKERD_PID" 2>/dev/null || true
        wait "$DOCKERD_PID" 2>/dev/null || true
        DOCKERD_PID=
        # dockerd leaves its exec root mounted (netns, overlay) when killed: unmount what is
        # under WORK.
        { grep " $WORK/docker" /proc/self/mountinfo || true; } | awk '{print $5}' | sort -r | while read -r m; do
            umount -l "$m" 2>/dev/null || true
        done
    fi
    if [ -n "$DOCKER_BRIDGE" ]; then
        ip link del "$DOCKER_BRIDGE" 2>/dev/null || true
        DOCKER_BRIDGE=
        remove_cgroup_parent "/wharf-bench-dockerd-$$"
    fi
}

# remove_cgroup_parent PATH: rmdir the (by now empty) cgroup PATH and its empty children in every hierarchy, so the
# host looks as before the run; rmdir only, never anything that still holds a process.
remove_cgroup_parent() {
    local mp d
    for mp in $(awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts); do
        d=$mp$1
        [ -d "$d" ] || continue
        # Empty children first (dockerd's BuildKit makes `buildkit` below its parent).
        find "$d" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
        for _ in 1 2 3 4 5; do rmdir "$d" 2>/dev/null && break; sleep 0.1; done
    done
}

cleanup() {
    local p
    stop_dockerd
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    remove_cgroup_parent "/wharf-bench-$$"
    # dockerd's containerd may still be writing its state for a moment after dockerd exits.
    rm -rf "$WORK" 2>/dev/null || { sleep 1; rm -rf "$WORK"; }
}

now_ns() { date +%s%N; }

# seconds T0 T1: the seconds between two now_ns readings.
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }'; }

# time_runs FILE CMD...: $N timed runs of CMD, milliseconds appended to FILE (emptied first).
time_runs() {
    local file=$1 i t0 t1
    shift
    : >"$file"
    for i in $(seq "$N"); do
        t0=$(now_ns)
        "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; return 1; }
        t1=$(now_ns)
        awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) / 1e6 }' >>"$file"
    done
}

# runc_bundle DIR ARG...: an OCI bundle for runc with this host's busybox as its rootfs (true,
# sh and sleep linked to it) and ARG... as its process, without a terminal.
runc_bundle() {
    local dir=$1 l
    shift
    mkdir -p "$dir/rootfs/bin" "$dir/rootfs/proc" "$dir/rootfs/dev" "$dir/rootfs/sys"
    cp /bin/busybox "$dir/rootfs/bin/busybox"
    for l in true sh sleep; do ln -s busybox "$dir/rootfs/bin/$l"; done
    (cd "$dir" && runc spec)
    python3 - "$dir/config.json" "$@" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["args"] = sys.argv[2:]
c["process"]["terminal"] = False
json.dump(c, open(p, "w"))
PY
}

# stats FILE: "median p95" of the milliseconds in FILE, one per line.
stats() {
    sort -n "$1" | awk '{a[NR]=$1} END {
        if (NR == 0) { print "- -"; exit }
        m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2
        i = int(NR * 0.95 + 0.999); if (i > NR) i = NR
        printf "%.1f %.1f\n", m, a[i] }'
}

PIDS=()
