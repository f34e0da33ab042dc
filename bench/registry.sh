#!/usr/bin/env bash
# Registry server throughput: wharf-registry side by side with Debian's docker-registry
# (distribution 2.8), both on the local filesystem under the same temp dir, driven by curl.
# Blob push (monolithic: POST + one PUT; chunked: POST + 5 MiB PATCHes + PUT) and pull of
# unique random 1, 10 and 100 MB blobs at 1 and CONC concurrent clients, in MB/s; the RSS of
# each server idle and after the run. Uses target/release. Run as root or not, loopback only.
# WHARF_REGISTRY_ARGS: extra flags for wharf-registry serve (e.g. --no-verify-reads).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/wharf-bench-registry.XXXXXX)
CONC=${CONC:-10}
# How many blobs of each size a cell moves.
COUNT_1=${COUNT_1:-40}
COUNT_10=${COUNT_10:-12}
COUNT_100=${COUNT_100:-4}
source "$ROOT/bench/lib.sh"
trap cleanup EXIT

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# start_distribution: sets URL and SERVER_PID.
start_distribution() {
    local dir=$WORK/distribution port
    port=$(free_port)
    URL=http://127.0.0.1:$port
    mkdir -p "$dir/storage"
    printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:%s\n' \
        "$dir/storage" "$port" >"$dir/registry.yml"
    /usr/bin/docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=($SERVER_PID)
    wait_up "$dir/registry.log"
}

# start_wharf: sets URL and SERVER_PID.
start_wharf() {
    local dir=$WORK/wharf port
    port=$(free_port)
    URL=http://127.0.0.1:$port
    mkdir -p "$dir"
    read -r -a extra <<<"${WHARF_REGISTRY_ARGS:-}"
    "$BIN/wharf-registry" serve --addr "127.0.0.1:$port" --data-dir "$dir/data" --log-level error \
        "${extra[@]}" >"$dir/registry.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=($SERVER_PID)
    wait_up "$dir/registry.log"
}

wait_up() {
    for _ in $(seq 100); do
        curl -fsS "$URL/v2/" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "registry did not start: $(cat "$1")" >&2
    return 1
}

# push_blob URL REPO FILE MODE: one upload, monolithic or chunked; fails on any error status.
push_blob() {
    local url=$1 repo=$2 file=$3 mode=$4 digest loc sep
    digest=sha256:$(cat "$file.sha256")
    loc=$(curl -fsS -X POST -D - -o /dev/null "$url/v2/$repo/blobs/uploads/" |
        awk 'tolower($1) == "location:" {print $2}' | tr -d '\r')
    case $loc in http*) ;; *) loc=$url$loc ;; esac
    if [ "$mode" = chunked ]; then
        local off=0 size chunk end
        size=$(stat -c %s "$file")
        chunk=$((5 << 20))
        while [ "$off" -lt "$size" ]; do
            end=$((off + chunk < size ? off + chunk : size))
            loc=$(tail -c +"$((off + 1))" "$file" | head -c "$((end - off))" |
                curl -fsS -X PATCH -H 'Content-Type: application/octet-stream' \
                    -H "Content-Range: $off-$((end - 1))" --data-binary @- -D - -o /dev/null "$loc" |
                awk 'tolower($1) == "location:" {print $2}' | tr -d '\r')
            case $loc in http*) ;; *) loc=$url$loc ;; esac
            off=$end
        done
        case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
        curl -fsS -X PUT -o /dev/null "$loc${sep}digest=$digest"
    else
        case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
        curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$file" -o /dev/null \
            "$loc${sep}digest=$digest"
    fi
}

pull_blob() {
    local url=$1 repo=$2 file=$3
    curl -fsS -o /dev/null "$url/v2/$repo/blobs/sha256:$(cat "$file.sha256")"
}
export -f push_blob pull_blob

# blobs SIZE_MB COUNT: COUNT fresh random blobs of SIZE_MB (new ones per cell, so that no
# upload finds its blob already stored); prints their paths.
BLOB_SEQ=0
blobs() {
    local size=$1 count=$2 i f
    rm -rf "$WORK/blobs"
    mkdir -p "$WORK/blobs"
    for i in $(seq "$count"); do
        BLOB_SEQ=$((BLOB_SEQ + 1))
        f=$WORK/blobs/$size-$BLOB_SEQ
        head -c "$((size << 20))" /dev/urandom >"$f"
        sha256sum "$f" | cut -d' ' -f1 >"$f.sha256"
        echo "$f"
    done >"$WORK/list"
}

# cell NAME OP MODE SIZE_MB CONC: MB/s of OP (push or pull) over the current blob list.
cell() {
    local name=$1 op=$2 mode=$3 size=$4 conc=$5 count t0 t1
    count=$(wc -l <"$WORK/list")
    t0=$(now_ns)
    if [ "$op" = push ]; then
        xargs -P "$conc" -I{} bash -c "push_blob '$URL' bench/$name {} $mode" <"$WORK/list"
    else
        xargs -P "$conc" -I{} bash -c "pull_blob '$URL' bench/$name {}" <"$WORK/list"
    fi
    t1=$(now_ns)
    awk -v a="$t0" -v b="$t1" -v mb="$((size * count))" 'BEGIN { printf "%.0f", mb / ((b - a) / 1e9) }'
}

declare -A RESULT
for server in distribution wharf; do
    "start_$server"
    sleep 0.5
    RESULT[$server.idle]=$(rss_kb "$SERVER_PID")
    for size in 1 10 100; do
        count_var=COUNT_$size
        for conc in 1 "$CONC"; do
            for mode in mono chunked; do
                # Fresh blobs for every push cell; the pulls read the last ones pushed.
                blobs "$size" "${!count_var}"
                RESULT[$server.push.$mode.$size.$conc]=$(cell "$server" push "$mode" "$size" "$conc")
            done
            RESULT[$server.pull.$size.$conc]=$(cell "$server" pull - "$size" "$conc")
        done
    done
    RESULT[$server.loaded]=$(rss_kb "$SERVER_PID")
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    rm -rf "$WORK/$server"
    echo "$server done" >&2
done

printf '\nblob throughput in MB/s (%s/%s/%s blobs of 1/10/100 MB per cell; 1 and %s clients)\n' \
    "$COUNT_1" "$COUNT_10" "$COUNT_100" "$CONC"
printf '%-28s %14s %14s\n' "" "distribution" "wharf-registry"
for size in 1 10 100; do
    for conc in 1 "$CONC"; do
        for mode in mono chunked; do
            printf '%-28s %14s %14s\n' "push $mode ${size} MB x$conc" \
                "${RESULT[distribution.push.$mode.$size.$conc]}" "${RESULT[wharf.push.$mode.$size.$conc]}"
        done
        printf '%-28s %14s %14s\n' "pull ${size} MB x$conc" \
            "${RESULT[distribution.pull.$size.$conc]}" "${RESULT[wharf.pull.$size.$conc]}"
    done
done
printf '%-28s %14s %14s\n' "RSS idle (KiB)" "${RESULT[distribution.idle]}" "${RESULT[wharf.idle]}"
printf '%-28s %14s %14s\n' "RSS after the run (KiB)" "${RESULT[distribution.loaded]}" "${RESULT[wharf.loaded]}"
