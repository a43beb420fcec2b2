#!/usr/bin/env bash
# A short libFuzzer run of one target, for ctest (fuzz/short_<name>).
# Usage: run_short.sh NAME FUZZ_SOURCE_DIR [SECONDS]
# The binary comes from $TALLY_FUZZ_BUILD (scripts/test.sh builds it); with
# none, exit 77 so ctest reports the test skipped, not passed. The seeds and
# regressions are copied to a temporary corpus so the run never writes into
# the repository; a crash fails the test and its input is printed.
set -u
name=$1
src=$2
secs=${3:-10}
bin=${TALLY_FUZZ_BUILD:-}/tests/fuzz/fuzz_$name
if [ -z "${TALLY_FUZZ_BUILD:-}" ] || [ ! -x "$bin" ]; then
  echo "no libFuzzer binary at $bin; skipped"
  exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tally-fuzz-$name.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/corpus" "$tmp/artifacts"
for d in "$src/corpus/$name" "$src/regressions/$name"; do
  [ -d "$d" ] && find "$d" -maxdepth 1 -type f ! -name '.*' -exec cp {} "$tmp/corpus/" \;
done
dict=()
case $name in jsoncheck|msg_*) dict=(-dict="$src/json.dict") ;; serve_request) dict=(-dict="$src/serve.dict") ;; esac
"$bin" -max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
       "${dict[@]}" -artifact_prefix="$tmp/artifacts/" "$tmp/corpus" 2>&1 | tail -n 40
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
  for f in "$tmp"/artifacts/*; do
    [ -f "$f" ] || continue
    echo "crash input $(basename "$f") (base64):"
    base64 "$f"
  done
fi
exit "$rc"
