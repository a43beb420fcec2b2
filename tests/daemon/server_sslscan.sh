#!/usr/bin/env bash
# Scans the real township server, `tallyd serve` (a fresh township database,
# its generated certificate) with sslscan: only TLS 1.2 and 1.3, only
# Mozilla "intermediate" suites, no compression, no insecure renegotiation
# (sslscan_lib.sh). The command, to run by hand against a running server:
#   sslscan --no-colour HOST:PORT
# Usage: server_sslscan.sh BUILD_DIR   (exit 77 = skipped: sslscan not installed)
set -euo pipefail
BUILD=${1:?build dir}
command -v sslscan >/dev/null || { echo "sslscan not installed (scripts/deps.sh)"; exit 77; }

dir=$(mktemp -d /tmp/tally_srvscan_XXXXXX)
pid=
trap '[ -n "$pid" ] && { kill $pid 2>/dev/null; wait $pid 2>/dev/null; }; rm -rf "$dir"' EXIT
"$BUILD/client/tally" --db "$dir/town.db" init --role township --name 扫描镇 >"$dir/init" 2>&1
"$BUILD/daemon/tallyd" serve --db "$dir/town.db" --listen 127.0.0.1:0 --log-level warn \
  >"$dir/out" 2>"$dir/err" &
pid=$!
for _ in $(seq 100); do grep -q '^port=' "$dir/out" && break; sleep 0.1; done
port=$(sed -n 's/^port=\([0-9]*\).*/\1/p' "$dir/out")
[ -n "$port" ] || { echo "server did not start"; cat "$dir/err"; exit 1; }

# shellcheck source=sslscan_lib.sh
. "$(dirname "$0")/sslscan_lib.sh"
fail=0
sslscan_check "127.0.0.1:$port" || fail=1

if [ "$fail" -eq 0 ]; then echo "server_sslscan: 1 passed, 0 failed"; else echo "server_sslscan: 0 passed, 1 failed"; fi
exit "$fail"
