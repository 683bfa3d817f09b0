#!/usr/bin/env bash
# Runs every cargo-fuzz target for a fixed time, one after the other (issue 17).
#   bash scripts/fuzz_all.sh [SECONDS_PER_TARGET] [TARGET ...]
# Defaults: 1800 s, all four targets. New inputs go to out/fuzz/corpus-<target> (the
# committed corpus fuzz/corpus/<target> is read, never written); crashes, hangs and OOMs go
# to out/fuzz/artifacts-<target>/; each run's log is out/fuzz/<target>.log and its last
# libFuzzer status line is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-1800}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(tflite compile data kgl)
mkdir -p out/fuzz
for target in "${targets[@]}"; do
    features=()
    [ "$target" = kgl ] && features=(--features kgl)
    (cd fuzz && cargo +nightly fuzz build "${features[@]}" "$target")
    work="out/fuzz/corpus-$target"
    artifacts="out/fuzz/artifacts-$target"
    mkdir -p "$work" "$artifacts"
    echo "== $target: ${seconds}s, log out/fuzz/$target.log"
    status=0
    (cd fuzz && cargo +nightly fuzz run "${features[@]}" "$target" "../$work" "corpus/$target" \
        -- -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="../$artifacts/" -print_final_stats=1) >"out/fuzz/$target.log" 2>&1 \
        || status=$?
    grep -E '^#[0-9]+' "out/fuzz/$target.log" | tail -n 1 || true
    grep -E '^stat::' "out/fuzz/$target.log" || true
    echo "exit status $status; artifacts: $(ls "$artifacts" | wc -l)"
done
