#!/usr/bin/env bash
# The long proof run (issue 8): what the test command runs short, run long.
# Hours, not minutes; run it on a machine nothing else is using.
#
#   scripts/proof.sh [PART...]     PART: kills faults soak fuzz (default all)
#
# Knobs (environment):
#   PROOF_REPEAT=5          kill tests repeated (each run kills 100-200 times)
#   PROOF_SOAK_SECONDS=1800 the bad-link soak's length
#   PROOF_FUZZ_SECONDS=600  per libFuzzer target (scripts/fuzz.sh)
#
# Builds the same ASan + UBSan tree as scripts/test.sh (build-asan, or
# $TALLY_BUILD_DIR), then runs each part and prints one line per step with
# its result and time; non-zero if any step failed. Every step's output
# goes to build-asan/proof/<step>.log.
set -uo pipefail
cd "$(dirname "$0")/.."

REPEAT=${PROOF_REPEAT:-5}
SOAK=${PROOF_SOAK_SECONDS:-1800}
FUZZ=${PROOF_FUZZ_SECONDS:-600}
PARTS=("$@")
[ "${#PARTS[@]}" -gt 0 ] || PARTS=(kills faults soak fuzz)

scripts/deps.sh || exit 1
BUILD=${TALLY_BUILD_DIR:-build-asan}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DTALLY_SANITIZE=ON >/dev/null || exit 1
cmake --build "$BUILD" -j"$(nproc)" || exit 1
BIN=$(cd "$BUILD" && pwd)
LOGS="$BIN/proof"
mkdir -p "$LOGS"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TALLY_BINARY_DIR="$BIN" PYTHONDONTWRITEBYTECODE=1

failed=0
step() { # step NAME COMMAND...
	local name=$1 t0=$SECONDS rc
	shift
	"$@" >"$LOGS/$name.log" 2>&1
	rc=$?
	printf '%-28s %s  %5d s  %s\n' "$name" "$([ $rc -eq 0 ] && echo pass || echo FAIL)" \
		$((SECONDS - t0)) "$LOGS/$name.log"
	[ $rc -eq 0 ] || failed=1
}

for part in "${PARTS[@]}"; do
	case $part in
	kills)
		# SIGKILL at random points: the village writer (crash), the
		# village daemon, the server between commit and answer, evidence
		# uploads on both sides.
		step kills_ctest env TALLY_EVIDENCE_KILLS=50 \
			ctest --test-dir "$BIN" --output-on-failure --repeat until-fail:"$REPEAT" \
			-R 'client/crash|kill9|kill_between|evidence_test/kill'
		;;
	faults)
		step iofail_server python3 -B tests/faults/iofail_server_test.py "$BIN" \
			"$BIN/tests/faults/iofail.so" --long
		step alloc_torture "$BIN/tests/faults/alloc_torture" --all
		;;
	soak)
		step soak_bad_link python3 -B tests/soak/soak_test.py --seconds "$SOAK" \
			--rss-csv "$LOGS/soak_rss.csv" "$BIN" bad_link_soak
		step soak_week_offline python3 -B tests/soak/soak_test.py --changes 50000 \
			"$BIN" week_offline
		step soak_pairs python3 -B tests/soak/soak_test.py --pairs 5000 --rounds 10 \
			"$BIN" concurrent_pairs
		;;
	fuzz)
		step fuzz scripts/fuzz.sh "$FUZZ"
		;;
	*)
		echo "proof.sh: unknown part $part (kills faults soak fuzz)" >&2
		exit 2
		;;
	esac
done
exit $failed
