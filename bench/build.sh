#!/usr/bin/env bash
# Builds, side by side in one run: wharf (`wharf build` through wharfd), a private dockerd's
# classic builder (DOCKER_BUILDKIT=0) and its BuildKit (Debian's /usr/bin/docker 20.10 with
# DOCKER_BUILDKIT=1), when Debian's docker.io is installed. Cases, as the builder issue names
# them: (1) a cold build of three independent stages and a final COPY --from of each; (2) a
# no-op rebuild with a context of FILES files / MB megabytes; (3) the same with one file
# changed; (4) ten trivial RUN steps (cold). Uses target/release. Run as root.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/wharf-bench-build.XXXXXX)
FILES=${FILES:-4000}
MB=${MB:-80}
source "$ROOT/bench/lib.sh"
trap cleanup EXIT

start_registry
python3 "$ROOT/tests/fixtures/make_images.py" --registry "$REGISTRY" --only library/busybox >/dev/null
IMAGE=$REGISTRY/library/busybox:latest
start_wharfd "$WORK/wharfd"
WHARF=("$BIN/wharf" -H "unix://$SOCK")
"${WHARF[@]}" pull "$IMAGE" >/dev/null
start_dockerd
if [ -n "$DOCKER_SOCK" ]; then docker_cli pull -q "$IMAGE" >/dev/null; fi

# The contexts.
STAGES=$WORK/stages
mkdir -p "$STAGES"
cat >"$STAGES/Dockerfile" <<DOCKERFILE
FROM $IMAGE AS a
RUN sleep 2 && echo a > /a
FROM $IMAGE AS b
RUN sleep 2 && echo b > /b
FROM $IMAGE AS c
RUN sleep 2 && echo c > /c
FROM $IMAGE
COPY --from=a /a /a
COPY --from=b /b /b
COPY --from=c /c /c
DOCKERFILE

BIG=$WORK/big
mkdir -p "$BIG/files"
per=$((MB * 1024 / FILES))
python3 - "$BIG/files" "$FILES" "$per" <<'PY'
import os, sys
d, n, kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    sub = os.path.join(d, f"d{i % 40}")
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, f"f{i}"), "wb") as f:
        f.write(os.urandom(kib * 1024))
PY
printf 'FROM %s\nCOPY . /ctx\nRUN ls /ctx | wc -l\n' "$IMAGE" >"$BIG/Dockerfile"

TEN=$WORK/ten
mkdir -p "$TEN"
{ echo "FROM $IMAGE"; for i in $(seq 10); do echo "RUN echo step$i > /s$i"; done; } >"$TEN/Dockerfile"

# time_build NAME CMD...: seconds for one build, printed as a figure.
declare -A T
time_build() {
    local key=$1; shift
    local t0 t1
    t0=$(now_ns)
    "$@" >"$WORK/$key.log" 2>&1 || { echo "$key failed: $(tail -5 "$WORK/$key.log")" >&2; T[$key]=n/a; return 0; }
    t1=$(now_ns)
    T[$key]=$(seconds "$t0" "$t1")
}

wharf_build() { "${WHARF[@]}" build "$@"; }
classic() { DOCKER_BUILDKIT=0 docker_cli build "$@"; }
buildkit() { DOCKER_HOST=unix://$DOCKER_SOCK DOCKER_CONFIG=$WORK/docker-config DOCKER_BUILDKIT=1 /usr/bin/docker build "$@"; }

run_cases() {
    local who=$1 fn=$2
    time_build "$who-stages" "$fn" -t bench-stages "$STAGES"
    time_build "$who-cold" "$fn" -t bench-big "$BIG"
    time_build "$who-noop" "$fn" -t bench-big "$BIG"
    echo changed >"$BIG/files/d0/f0"
    time_build "$who-one" "$fn" -t bench-big "$BIG"
    head -c 1024 /dev/urandom >"$BIG/files/d0/f0"
    time_build "$who-ten" "$fn" -t bench-ten "$TEN"
}

run_cases wharf wharf_build
# The reference for the builder's overhead per RUN step: the ten steps' commands as ten
# `wharf run --rm`, each a container's whole start, run and removal through the CLI.
ten_runs() { for i in $(seq 10); do "${WHARF[@]}" run --rm "$IMAGE" sh -c "echo step$i > /s$i" || return 1; done; }
time_build wharf-runs ten_runs
if [ -n "$DOCKER_SOCK" ]; then
    run_cases classic classic
    if [ -x /usr/bin/docker ]; then run_cases buildkit buildkit; fi
fi

if [ -n "${SHOW_LOG:-}" ]; then grep -E "build:|layer:|commit:" "$WORK/wharfd/wharfd.log" | tail -60; fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b == "" || b == 0) print "n/a"; else printf "%.2f\n", a / b }'; }
printf '\n%-34s %10s %10s %10s %14s\n' "case (seconds, one run)" wharf classic buildkit "wharf/buildkit"
for c in stages cold noop one ten; do
    w=${T[wharf-$c]:-n/a}; k=${T[classic-$c]:-n/a}; b=${T[buildkit-$c]:-n/a}
    case $c in
        stages) name="3 independent stages + COPY --from" ;;
        cold) name="cold, $FILES files / $MB MB" ;;
        noop) name="no-op rebuild" ;;
        one) name="one file changed" ;;
        ten) name="ten trivial RUN steps" ;;
    esac
    printf '%-34s %10s %10s %10s %14s\n' "$name" "$w" "$k" "$b" "$(ratio "$w" "$b")"
done
if [ "${T[wharf-ten]:-n/a}" != n/a ] && [ "${T[wharf-runs]:-n/a}" != n/a ]; then
    # The build's own fixed costs (CLI, context, FROM) count as overhead here too: an upper bound.
    awk -v t="${T[wharf-ten]}" -v r="${T[wharf-runs]}" 'BEGIN {
        printf "wharf per RUN step (ten steps): %.0f ms; one `wharf run --rm` of its command: %.0f ms; builder overhead per step: %.0f ms (goal: under 30)\n", t * 100, r * 100, (t - r) * 100 }'
fi
