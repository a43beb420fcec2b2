#!/usr/bin/env bash
# Scans a tally_testd (daemon/tls.h settings) with sslscan: only TLS 1.2
# and 1.3, only Mozilla "intermediate" suites, no compression, no insecure
# renegotiation (the checks are sslscan_lib.sh's, shared with
# server_sslscan.sh).
# Usage: sslscan.sh BUILD_DIR   (exit 77 = skipped: sslscan not installed)
set -euo pipefail
BUILD=${1:?build dir}
command -v sslscan >/dev/null || { echo "sslscan not installed (scripts/deps.sh)"; exit 77; }

dir=$(mktemp -d /tmp/tally_sslscan_XXXXXX)
"$BUILD/tests/daemon/tally_testd" --dir "$dir" --log-level warn >"$dir/out" 2>"$dir/err" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do grep -q '^port=' "$dir/out" && break; sleep 0.1; done
port=$(sed -n 's/^port=\([0-9]*\).*/\1/p' "$dir/out")
[ -n "$port" ] || { echo "server did not start"; cat "$dir/err"; exit 1; }

# shellcheck source=sslscan_lib.sh
. "$(dirname "$0")/sslscan_lib.sh"
fail=0
sslscan_check "127.0.0.1:$port" || fail=1

if [ "$fail" -eq 0 ]; then echo "sslscan: 1 passed, 0 failed"; else echo "sslscan: 0 passed, 1 failed"; fi
exit "$fail"
