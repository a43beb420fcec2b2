# Shared by sslscan.sh (tally_testd) and server_sslscan.sh (`tallyd serve`):
# sslscan_check HOST:PORT scans a TLS server with sslscan and checks that
# only TLS 1.2 and 1.3 are offered, only Mozilla "intermediate" suites are
# accepted, and neither compression nor insecure renegotiation is there.
# Prints the scan and what is wrong; returns 0 when all holds. Source it.
sslscan_check() {
  local scan fail=0 n=0 allowed proto cipher
  scan=$(sslscan --no-colour "$1")
  echo "$scan"
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
  while read -r _ proto _ _ cipher _; do
    n=$((n + 1))
    case "$proto" in TLSv1.2|TLSv1.3) ;; *) echo "BAD PROTOCOL: $proto $cipher"; fail=1 ;; esac
    grep -qw -- "$cipher" <<<"$allowed" || { echo "NOT INTERMEDIATE: $cipher"; fail=1; }
  done < <(grep -E '^(Preferred|Accepted) ' <<<"$scan")
  [ "$n" -ge 4 ] || { echo "only $n accepted suites parsed"; fail=1; }
  return "$fail"
}
