#!/usr/bin/env bash
# deps.sh: installs the Debian packages moonpost needs to build, run and test (Debian 12).
# Does nothing when they are all present; otherwise needs root (or sudo).
set -euo pipefail

PACKAGES=(build-essential cmake pkg-config libevent-dev liblua5.4-dev libmsgpack-dev
          libhiredis-dev libsodium-dev libcmocka-dev redis-server python3 prometheus)
if [[ "${1:-}" == "--dev" ]]; then
  # fuzzing, linting and benchmarks
  PACKAGES+=(clang clang-tidy cppcheck libclang-rt-14-dev mosquitto linux-perf)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "deps.sh: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
