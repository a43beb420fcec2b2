#!/usr/bin/env bash
# Installs the Debian 12 packages Tally needs to build, test and run.
# Idempotent: installs only what is missing, and refreshes the package lists
# first (a fresh machine's lists may be empty or stale).
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config clang
  libjansson-dev zlib1g-dev libssl-dev libsqlite3-dev sqlite3
  libcurl4-openssl-dev curl libevent-dev libcmocka-dev libxlsxwriter-dev
  openssl faketime procps python3 sslscan testssl.sh python3-openpyxl
  chromium fonts-wqy-microhei
  iproute2 nftables
)
# Node.js for the dashboard's browser test: Debian's packages only where no
# node/npm is on the machine already (a NodeSource nodejs bundles npm and
# conflicts with Debian's npm package).
command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
command -v npm >/dev/null 2>&1 || PKGS+=(npm)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "deps: installing ${missing[*]}" >&2
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
