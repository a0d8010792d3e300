#!/usr/bin/env bash
# test.sh [--asan] -- the project's test command (what .ci/run runs).
#
# Installs missing packages (deps.sh), configures and builds into build/
# (build-asan/ with --asan: AddressSanitizer + UBSan), starts the private
# Redis and MariaDB of this checkout (services.sh, run dir $TIER_RUN_DIR,
# default <checkout>/.run), exports their addresses and runs ctest.  Services
# it started are stopped again on exit; services that were already running
# (say, from scripts/run.sh) are used and left alone.  Then runs every
# fuzz target for TIER_FUZZ_SECONDS (10) each (scripts/fuzz.sh).  Exits
# non-zero when ctest or a fuzz target fails.
#
# Two checkouts can run this at the same time: build dir, run dir, sockets
# and pid files are all inside the checkout, and ports are picked free.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BUILD=build
CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
while (($#)); do
    case "$1" in
    --asan)
        BUILD=build-asan
        CMAKE_ARGS+=(-DTIER_SANITIZE=ON)
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "test.sh: unknown argument '$1' (usage: test.sh [--asan])" >&2
        exit 2
        ;;
    esac
done

export TIER_RUN_DIR=${TIER_RUN_DIR:-$ROOT/.run}
# Sanitizer reports must fail the run, and leaks are bugs too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

bash scripts/deps.sh

cmake -S . -B "$BUILD" "${CMAKE_ARGS[@]}"
cmake --build "$BUILD" -j2

started=0
cleanup() {
    if ((started)); then
        bash "$ROOT/scripts/services.sh" stop || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! bash scripts/services.sh status >/dev/null 2>&1; then
    started=1
    bash scripts/services.sh start
else
    echo "test.sh: services already running in $TIER_RUN_DIR; using them" >&2
    # Creates the database/user and applies new migrations; a no-op otherwise.
    bash scripts/services.sh start
fi
# shellcheck disable=SC1091
. "$TIER_RUN_DIR/env"

rc=0
rm -f "$BUILD"/Testing/multihost*.result
ctest --test-dir "$BUILD" --output-on-failure || rc=$?
# The multi-host test's numbers (takeover time, moves, comments), which
# ctest shows only when it fails.
cat "$BUILD"/Testing/multihost*.result 2>/dev/null || true
# A short run of every fuzz target (clang, ASan + UBSan) over its corpus.
bash scripts/fuzz.sh --seconds "${TIER_FUZZ_SECONDS:-10}" || rc=1
exit $rc
