#!/usr/bin/env bash
# save/load throughput: a ~SIZE_MB image of 6 gzip layers (pulled once, outside the timing)
# saved to a file by `wharf save -o`, and that file loaded into a fresh daemon by `wharf load -i`
# (decompressing and unpacking every layer), against plain `tar` of the same bytes: tar cf of
# the daemon's layer blobs (what save writes), and tar xf of the archive (the bytes load reads).
# MB/s are of the archive's size. Uses target/release. Run as root.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/wharf-bench-saveload.XXXXXX)
SIZE_MB=${SIZE_MB:-200}
RUNS=${RUNS:-3}
source "$ROOT/bench/lib.sh"
trap cleanup EXIT

start_registry
echo "building and pushing a ${SIZE_MB} MB image..." >&2
python3 "$ROOT/tests/fixtures/make_images.py" --registry "$REGISTRY" --only none \
    --big-mb "$SIZE_MB" >"$WORK/summary.json"
IMAGE=$REGISTRY/bench/big:latest

start_wharfd "$WORK/src"
SRC=$SOCK
"$BIN/wharf" -H "unix://$SRC" pull -q "$IMAGE" >/dev/null

: >"$WORK/save.s"; : >"$WORK/load.s"; : >"$WORK/tarc.s"; : >"$WORK/tarx.s"
for run in $(seq "$RUNS"); do
    rm -f "$WORK/img.tar"
    sync
    t0=$(now_ns)
    "$BIN/wharf" -H "unix://$SRC" save -o "$WORK/img.tar" "$IMAGE"
    t1=$(now_ns)
    seconds "$t0" "$t1" >>"$WORK/save.s"

    rm -f "$WORK/plain.tar"
    t0=$(now_ns)
    tar cf "$WORK/plain.tar" -C "$WORK/src/data/content/blobs" sha256
    t1=$(now_ns)
    seconds "$t0" "$t1" >>"$WORK/tarc.s"

    start_wharfd "$WORK/dst-$run"
    t0=$(now_ns)
    "$BIN/wharf" -H "unix://$SOCK" load -q -i "$WORK/img.tar" >/dev/null
    t1=$(now_ns)
    seconds "$t0" "$t1" >>"$WORK/load.s"
    stop_wharfd
    rm -rf "$WORK/dst-$run"

    rm -rf "$WORK/x" && mkdir "$WORK/x"
    t0=$(now_ns)
    tar xf "$WORK/img.tar" -C "$WORK/x"
    t1=$(now_ns)
    seconds "$t0" "$t1" >>"$WORK/tarx.s"
done

MB=$(stat -c %s "$WORK/img.tar" | awk '{ printf "%.1f", $1 / 1e6 }')
median() { sort -n "$1" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
report() {
    local s
    s=$(median "$2")
    awk -v n="$1" -v s="$s" -v mb="$MB" 'BEGIN { printf "%-34s %7.3f s  %8.1f MB/s\n", n, s, mb / s }'
}
echo "archive: $MB MB, median of $RUNS runs"
report "wharf save -o" "$WORK/save.s"
report "tar cf of the blobs" "$WORK/tarc.s"
report "wharf load -i (unpacks the layers)" "$WORK/load.s"
report "tar xf of the archive" "$WORK/tarx.s"
