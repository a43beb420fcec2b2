#!/usr/bin/env bash
# The whole test suite: installs missing Debian packages, builds with ASan
# and UBSan, runs every ctest test and prints ctest's summary. Non-zero on
# any failure. Long soak and fuzz runs have their own scripts.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
# playwright-core for the dashboard's browser test, from the committed
# lock file; nothing is fetched (offline-safe) once it is installed.
if command -v npm >/dev/null 2>&1 && \
   [ ! -f tests/dashboard/node_modules/playwright-core/package.json ]; then
  (cd tests/dashboard && npm ci --no-audit --no-fund --silent) || \
    echo "test.sh: npm ci failed in tests/dashboard; the browser test will be skipped" >&2
fi

BUILD=${TALLY_BUILD_DIR:-build-asan}
FUZZ=OFF
command -v clang >/dev/null 2>&1 && FUZZ=ON
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DTALLY_SANITIZE=ON \
      -DCMAKE_C_COMPILER="${CC:-cc}" >/dev/null
cmake --build "$BUILD" -j"$(nproc)"

# A Release build too: -O2 finds warnings (maybe-uninitialized) that -O0
# does not, and both builds must stay clean.
cmake -S . -B "$BUILD-release" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD-release" -j"$(nproc)"

# libFuzzer needs clang; its targets get a build tree of their own so the
# main build keeps gcc's warnings.
if [ "$FUZZ" = ON ]; then
  cmake -S . -B "$BUILD-fuzz" -DCMAKE_BUILD_TYPE=Debug -DTALLY_FUZZ=ON \
        -DTALLY_SANITIZE=ON -DCMAKE_C_COMPILER=clang >/dev/null
  cmake --build "$BUILD-fuzz" -j"$(nproc)" --target fuzz_all
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TALLY_FUZZ_BUILD="$PWD/$BUILD-fuzz"
cd "$BUILD"
ctest --output-on-failure -j"$(nproc)" --timeout 600
