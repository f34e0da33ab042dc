#!/usr/bin/env bash
# The crash torture at full count: three clients (wharf and docker CLIs) loop over runs, execs,
# rm -f, pulls/rmis, volume and network changes while wharfd gets `kill -9` at a random
# instant, ROUNDS times (default 50; CI runs 4); after each restart the API's view, the shims,
# the cgroups, the netns mounts and the bridge ports must agree. Prints how many rounds ran
# clean. WHARF_TORTURE_SEED changes the kill instants. Uses target/debug (the e2e harness).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
ROUNDS=${ROUNDS:-50}
cargo build --workspace --bins -q
WHARF_TORTURE_ROUNDS=$ROUNDS cargo test -q -p wharf-e2e --test it crash::torture -- --nocapture 2>&1 |
    grep -E "crash torture:|panicked|disagree|test result" || true
