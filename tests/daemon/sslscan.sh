#!/usr/bin/env bash
# Scans a tally_testd (daemon/tls.h settings) with sslscan and checks that
# only TLS 1.2 and 1.3 are offered, only Mozilla "intermediate" suites are
# accepted, and neither compression nor insecure renegotiation is there.
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

scan=$(sslscan --no-colour "127.0.0.1:$port")
echo "$scan"
fail=0
need() { grep -Eq "$1" <<<"$scan" || { echo "MISSING: $1"; fail=1; }; }
deny() { ! grep -Eq "$1" <<<"$scan" || { echo "FOUND: $1"; fail=1; }; }

need '^SSLv2 +disabled'
need '^SSLv3 +disabled'
need '^TLSv1\.0 +disabled'
need '^TLSv1\.1 +disabled'
need '^TLSv1\.2 +enabled'
need '^TLSv1\.3 +enabled'
deny 'Compression enabled'
deny 'Insecure session renegotiation'

allowed='TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256
ECDHE-ECDSA-AES128-GCM-SHA256 ECDHE-RSA-AES128-GCM-SHA256 ECDHE-ECDSA-AES256-GCM-SHA384
ECDHE-RSA-AES256-GCM-SHA384 ECDHE-ECDSA-CHACHA20-POLY1305 ECDHE-RSA-CHACHA20-POLY1305
DHE-RSA-AES128-GCM-SHA256 DHE-RSA-AES256-GCM-SHA384 DHE-RSA-CHACHA20-POLY1305'
n=0
while read -r _ proto _ _ cipher _; do
  n=$((n + 1))
  case "$proto" in TLSv1.2|TLSv1.3) ;; *) echo "BAD PROTOCOL: $proto $cipher"; fail=1 ;; esac
  grep -qw -- "$cipher" <<<"$allowed" || { echo "NOT INTERMEDIATE: $cipher"; fail=1; }
done < <(grep -E '^(Preferred|Accepted) ' <<<"$scan")
[ "$n" -ge 4 ] || { echo "only $n accepted suites parsed"; fail=1; }

if [ "$fail" -eq 0 ]; then echo "sslscan: 1 passed, 0 failed"; else echo "sslscan: 0 passed, 1 failed"; fi
exit "$fail"
