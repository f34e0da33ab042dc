#!/usr/bin/env bash
# Registry server throughput: wharf-registry side by side with Debian's docker-registry
# (distribution 2.8), both on the local filesystem under the same temp dir, driven by curl.
# Blob push (monolithic: POST + one PUT; chunked: POST + 5 MiB PATCHes + PUT) and pull of
# unique random 1, 10 and 100 MB blobs at 1, 10 and CONC (50) concurrent clients, in MB/s and
# HTTP requests/s, with the ratio wharf/distribution (>= 1: wharf is at least as fast); the RSS
# of each server idle and its peak while the CONC-client cells run (VmHWM, reset before each
# such cell when /proc/PID/clear_refs is writable, i.e. as root). A cell moves
# max(COUNT_<size>, clients) blobs, at most MAX_MB MB, so that every client has one where the
# budget allows (the table says how many a cell moved). Uses target/release; loopback only.
# WHARF_REGISTRY_ARGS: extra flags for wharf-registry serve (e.g. --no-verify-reads).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/wharf-bench-registry.XXXXXX)
CONC=${CONC:-50}
# How many blobs of each size a cell moves at least, and the most MB one moves.
COUNT_1=${COUNT_1:-40}
COUNT_10=${COUNT_10:-12}
COUNT_100=${COUNT_100:-4}
MAX_MB=${MAX_MB:-1000}
source "$ROOT/bench/lib.sh"
trap cleanup EXIT

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
# reset_hwm PID: VmHWM starts again from the current RSS (fails quietly where not allowed).
reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }

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

# requests OP MODE SIZE_MB: the HTTP requests one blob takes.
requests() {
    case $1.$2 in
    pull.*) echo 1 ;;
    push.mono) echo 2 ;;
    *) echo $((2 + (($3 << 20) + (5 << 20) - 1) / (5 << 20))) ;;
    esac
}

# cell NAME OP MODE SIZE_MB CONC: "MB/s requests/s" of OP (push or pull) over the current blob list.
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
    awk -v a="$t0" -v b="$t1" -v mb="$((size * count))" -v r="$((count * $(requests "$op" "$mode" "$size")))" \
        'BEGIN { s = (b - a) / 1e9; printf "%.0f %.1f", mb / s, r / s }'
}

# count SIZE_MB CONC: how many blobs a cell moves.
count() {
    local var=COUNT_$1 n
    n=${!var}
    [ "$n" -ge "$2" ] || n=$2
    [ $((n * $1)) -le "$MAX_MB" ] || n=$((MAX_MB / $1))
    [ "$n" -ge 1 ] || n=1
    echo "$n"
}

CONCS=(1)
for c in 10 "$CONC"; do [ "$c" -le "${CONCS[-1]}" ] || CONCS+=("$c"); done
declare -A RESULT
for server in distribution wharf; do
    "start_$server"
    sleep 0.5
    RESULT[$server.idle]=$(rss_kb "$SERVER_PID")
    RESULT[$server.loaded]=0
    for size in 1 10 100; do
        for conc in "${CONCS[@]}"; do
            n=$(count "$size" "$conc")
            RESULT[count.$size.$conc]=$n
            for op in mono chunked pull; do
                # Fresh blobs for every push cell; the pulls read the last ones pushed.
                [ "$op" = pull ] || blobs "$size" "$n"
                [ "$conc" != "$CONC" ] || reset_hwm "$SERVER_PID"
                if [ "$op" = pull ]; then
                    r=$(cell "$server" pull - "$size" "$conc")
                else
                    r=$(cell "$server" push "$op" "$size" "$conc")
                fi
                RESULT[$server.$op.$size.$conc]=$r
                if [ "$conc" = "$CONC" ]; then
                    peak=$(hwm_kb "$SERVER_PID")
                    [ "$peak" -le "${RESULT[$server.loaded]}" ] || RESULT[$server.loaded]=$peak
                fi
            done
        done
    done
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    rm -rf "$WORK/$server"
    echo "$server done" >&2
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "-" }'; }

printf '\nblob throughput, distribution 2.8 (Debian docker-registry) and wharf-registry, one run\n'
printf 'MB/s and HTTP requests/s; ratio = wharf / distribution (throughput: >= 1 is the goal)\n'
printf '%-26s %6s %9s %9s %6s %9s %9s %6s\n' "" blobs "dist MB/s" "wharf" ratio "dist r/s" "wharf" ratio
for size in 1 10 100; do
    for conc in "${CONCS[@]}"; do
        for op in mono chunked pull; do
            case $op in pull) label="pull" ;; *) label="push $op" ;; esac
            read -r dm dr <<<"${RESULT[distribution.$op.$size.$conc]}"
            read -r wm wr <<<"${RESULT[wharf.$op.$size.$conc]}"
            printf '%-26s %6s %9s %9s %6s %9s %9s %6s\n' "$label ${size} MB x$conc" "${RESULT[count.$size.$conc]}" \
                "$dm" "$wm" "$(ratio "$dm" "$wm")" "$dr" "$wr" "$(ratio "$dr" "$wr")"
        done
    done
done
printf '\n%-36s %12s %12s %6s\n' "" distribution wharf ratio
printf '%-36s %12s %12s %6s\n' "RSS idle (KiB)" "${RESULT[distribution.idle]}" "${RESULT[wharf.idle]}" \
    "$(ratio "${RESULT[distribution.idle]}" "${RESULT[wharf.idle]}")"
printf '%-36s %12s %12s %6s\n' "RSS peak in the x$CONC cells (KiB)" "${RESULT[distribution.loaded]}" "${RESULT[wharf.loaded]}" \
    "$(ratio "${RESULT[distribution.loaded]}" "${RESULT[wharf.loaded]}")"
