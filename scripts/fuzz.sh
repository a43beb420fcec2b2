#!/usr/bin/env bash
# The long fuzz run: builds the libFuzzer targets (clang, ASan + UBSan) and
# runs each for SECONDS (default 600), one after the other. Any crash found
# is copied into tests/fuzz/regressions/<name>/, where the normal test suite
# replays it forever (fuzz/replay_<name>): fix the bug, keep the input.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# The seeds in tests/fuzz/corpus/ are not modified; the run's growing corpus
# lives in $TALLY_FUZZ_WORK (default build-fuzz-work/) and is reused by the
# next run.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-600}
shift || true
BUILD=${TALLY_FUZZ_BUILD:-build-asan-fuzz}
WORK=${TALLY_FUZZ_WORK:-build-fuzz-work}
ALL=(jsoncheck inflate msg_push msg_pull_answer msg_other change_canonical msg_diff serve_request)
TARGETS=("$@")
[ "${#TARGETS[@]}" -gt 0 ] || TARGETS=("${ALL[@]}")

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DTALLY_FUZZ=ON -DTALLY_SANITIZE=ON \
      -DCMAKE_C_COMPILER=clang >/dev/null
cmake --build "$BUILD" -j2 --target fuzz_all

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

status=0
for name in "${TARGETS[@]}"; do
  corpus="$WORK/corpus/$name"
  artifacts="$WORK/artifacts/$name"
  mkdir -p "$corpus" "$artifacts" "tests/fuzz/regressions/$name"
  dict=()
  case $name in jsoncheck|msg_*) dict=(-dict=tests/fuzz/json.dict) ;;
    serve_request) dict=(-dict=tests/fuzz/serve.dict) ;; esac
  echo "== fuzz_$name for ${SECS}s"
  if ! "$BUILD/tests/fuzz/fuzz_$name" -max_total_time="$SECS" -rss_limit_mb=1024 -timeout=10 \
       -print_final_stats=1 "${dict[@]}" -artifact_prefix="$artifacts/" \
       "$corpus" "tests/fuzz/corpus/$name" "tests/fuzz/regressions/$name"; then
    status=1
  fi
  # libFuzzer writes crash-*, leak-*, timeout-*, oom-* artifacts.
  for f in "$artifacts"/*; do
    [ -f "$f" ] || continue
    cp -n "$f" "tests/fuzz/regressions/$name/"
    echo "kept $(basename "$f") in tests/fuzz/regressions/$name/"
    rm -f "$f"
    status=1
  done
done
exit "$status"
