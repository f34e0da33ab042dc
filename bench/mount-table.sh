#!/usr/bin/env bash
# Start latency against the size of the host's mount table: each running container holds one
# mount on the host (its network namespace, bound under the exec root), and every new mount
# namespace begins as a copy of the host's, so the 10,000th start pays for 10,000 mounts.
# For M in $MOUNTS (default "0 2000 10000") bind mounts added on the host: N runs (default 20)
# of `wharf run --rm busybox true` and of `runc run` of an equivalent bundle, `unshare -m true`
# (the bare copy), and the medians of wharf's start phases that change most.
# Uses the binaries in target/release (cargo build --release --bins). Run as root.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/wharf-bench-mounts.XXXXXX)
N=${N:-20}
MOUNTS=${MOUNTS:-0 2000 10000}
source "$ROOT/bench/lib.sh"
MNT=$WORK/mnts
unmount_all() {
    local d
    for d in "$MNT"/*; do
        [ -d "$d" ] && umount "$d" 2>/dev/null || true
    done
}
trap 'unmount_all; cleanup' EXIT

start_registry
python3 "$ROOT/tests/fixtures/make_images.py" --registry "$REGISTRY" --only library/busybox >/dev/null
IMAGE=$REGISTRY/library/busybox:latest
WHARFD_ARGS="--log-level debug ${WHARFD_ARGS:-}" start_wharfd "$WORK/wharfd"
WHARF=("$BIN/wharf" -H "unix://$SOCK")
"${WHARF[@]}" pull "$IMAGE" >/dev/null
"${WHARF[@]}" run --rm "$IMAGE" true # warm-up

BUNDLE=$WORK/bundle
runc_bundle "$BUNDLE" true
runc_once() { runc run -b "$BUNDLE" "wharf-bench-$$-$RANDOM$RANDOM"; }

median() { read -r m _ < <(stats "$1"); echo "$m"; }

mkdir -p "$MNT" "$WORK/src"
have=0
printf '%-12s %12s %12s %12s %14s\n' "host mounts" "wharf ms" "runc ms" "wharf/runc" "unshare -m ms"
for m in $MOUNTS; do
    while [ "$have" -lt "$m" ]; do
        mkdir -p "$MNT/$have"
        mount --bind "$WORK/src" "$MNT/$have"
        have=$((have + 1))
    done
    before=$(grep -c "start phases" "$WORK/wharfd/wharfd.log" || true)
    time_runs "$WORK/wharf-$m.ms" "${WHARF[@]}" run --rm "$IMAGE" true
    grep "start phases" "$WORK/wharfd/wharfd.log" | tail -n +"$((before + 1))" >"$WORK/phases-$m"
    time_runs "$WORK/runc-$m.ms" runc_once
    time_runs "$WORK/unshare-$m.ms" unshare -m true
    w=$(median "$WORK/wharf-$m.ms")
    r=$(median "$WORK/runc-$m.ms")
    printf '%-12s %12s %12s %12s %14s\n' "$(wc -l </proc/self/mountinfo)" "$w" "$r" \
        "$(awk -v a="$w" -v b="$r" 'BEGIN { printf "%.2f", a / b }')" "$(median "$WORK/unshare-$m.ms")"
done

# Each phase's median time from the request to its end, per mount count: the phases that
# grow are where the copy of the mount table is paid.
python3 - "$WORK" $MOUNTS <<'PY'
import re, statistics, sys
work, counts = sys.argv[1], sys.argv[2:]
table = {}
for m in counts:
    for line in open(f"{work}/phases-{m}"):
        for name, ms in re.findall(r"([a-z-]+) \+([0-9.]+)", line.split("start phases (ms):", 1)[1]):
            table.setdefault(name, {}).setdefault(m, []).append(float(ms))
print("\n%-28s" % "start phase (ms from request)" + "".join("%12s" % f"+{m} mounts" for m in counts))
rows = sorted(table.items(), key=lambda kv: statistics.median(kv[1].get(counts[0], [0])))
for name, by in rows:
    print("%-28s" % ("  " + name) + "".join("%12.2f" % statistics.median(by[m]) if m in by else "%12s" % "-" for m in counts))
PY
stop_wharfd
