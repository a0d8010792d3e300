#!/usr/bin/env bash
# fuzz.sh [--seconds N] -- build the libFuzzer targets (fuzz/) with clang,
# ASan and UBSan into build-fuzz/, and run each for N seconds (default 10)
# over its corpus fuzz/corpus/<target>/.  Exits non-zero when a target
# finds a crash, a sanitizer report or a leak (the reproducer is left in
# build-fuzz/crashes/).  New inputs found are kept in build-fuzz/corpus/
# (not in the repo: add interesting ones to fuzz/corpus/ by hand).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SECONDS_EACH=10
while (($#)); do
    case "$1" in
    --seconds)
        SECONDS_EACH=$2
        shift 2
        ;;
    *)
        echo "fuzz.sh: unknown argument '$1' (usage: fuzz.sh [--seconds N])" >&2
        exit 2
        ;;
    esac
done

TARGETS=(fuzz_name fuzz_time fuzz_requests fuzz_wire fuzz_path fuzz_server fuzz_policy)
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTIER_FUZZ=ON >/dev/null
cmake --build build-fuzz -j2 --target "${TARGETS[@]}"
mkdir -p build-fuzz/crashes
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
rc=0
for t in "${TARGETS[@]}"; do
    # git keeps no empty directory: a target's seed corpus may be missing.
    mkdir -p "build-fuzz/corpus/$t" "fuzz/corpus/$t"
    echo "fuzz.sh: $t for ${SECONDS_EACH}s" >&2
    if ! "build-fuzz/bin/$t" -max_total_time="$SECONDS_EACH" -max_len=65536 \
        -artifact_prefix="build-fuzz/crashes/$t-" -print_final_stats=1 \
        "build-fuzz/corpus/$t" "fuzz/corpus/$t" > "build-fuzz/$t.log" 2>&1; then
        echo "fuzz.sh: $t FAILED; see build-fuzz/$t.log and build-fuzz/crashes/" >&2
        tail -40 "build-fuzz/$t.log" >&2
        rc=1
    else
        grep -E 'stat::number_of_executed_units|Done' "build-fuzz/$t.log" | tail -2 >&2 || true
    fi
done
exit $rc
