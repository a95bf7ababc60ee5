#!/usr/bin/env bash
# deps.sh: installs the Debian packages moonpost needs (Debian 12). Does nothing when they are
# all present; otherwise needs root (or sudo).
#   ./deps.sh          build and run the broker (run.sh)
#   ./deps.sh --test   also run the tests (test.sh): cmocka, promtool
#   ./deps.sh --dev    also fuzz, lint and benchmark
set -euo pipefail

# build and run: a compiler, the libraries' headers, and a local Redis for run.sh
PACKAGES=(build-essential cmake pkg-config libevent-dev liblua5.4-dev libmsgpack-dev
          libhiredis-dev libsodium-dev libssl-dev libwslay-dev redis-server)
# adduser: the package test installs the .deb, which depends on it (not in minimal images);
# nodejs and npm build the web chat (npm ci) and run its browser test, which drives chromium
TEST_PACKAGES=(libcmocka-dev python3 prometheus adduser nodejs npm chromium)
DEV_PACKAGES=(clang clang-tidy cppcheck libclang-rt-14-dev mosquitto linux-perf valgrind)
case "${1:-}" in
  "") ;;
  --test) PACKAGES+=("${TEST_PACKAGES[@]}") ;;
  --dev) PACKAGES+=("${TEST_PACKAGES[@]}" "${DEV_PACKAGES[@]}") ;;
  *) echo "usage: $0 [--test | --dev]" >&2; exit 2 ;;
esac

missing=()
for p in "${PACKAGES[@]}"; do
  # a nodejs from elsewhere (NodeSource) carries its own npm and conflicts with Debian's
  [[ $p == npm ]] && command -v npm >/dev/null && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "deps.sh: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
