#!/usr/bin/env bash
# Runs one fuzz target: ./fuzz/run.sh TARGET [SECONDS] (default 600), from anywhere.
#
# Builds without a sanitizer (safe Rust; tolk_fuzz::CappedAlloc catches runaway allocations)
# and with debug assertions and overflow checks, starts from the committed seeds in
# fuzz/seeds/TARGET, writes new inputs to fuzz/corpus/TARGET and crashes to
# fuzz/artifacts/TARGET, and keeps the log in fuzz/logs/TARGET.log. One process, niced, so it
# leaves the other core alone. Extra arguments after SECONDS go to libFuzzer.
set -euo pipefail
target=${1:?usage: fuzz/run.sh TARGET [SECONDS] [LIBFUZZER_ARGS...]}
secs=${2:-600}
shift $(($# < 2 ? $# : 2))
cd "$(dirname "$0")/.."
mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target" fuzz/logs
# CARGO_TARGET_DIR, when set, is passed on (cargo-fuzz otherwise builds in fuzz/target).
tdir=()
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    tdir=(--target-dir "$CARGO_TARGET_DIR")
fi
dict=()
if [ -f "fuzz/dicts/$target.dict" ]; then
    dict=("-dict=fuzz/dicts/$target.dict")
fi
nice -n 19 cargo +nightly fuzz run "${tdir[@]}" -s none -a "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    "${dict[@]}" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 "$@" \
    2>&1 | tee "fuzz/logs/$target.log"
