#!/usr/bin/env bash
# test.sh: installs what is missing, builds, and runs every test (unit and integration) with
# ctest. SANITIZE=1 builds everything with -fsanitize=address,undefined; BUILD_DIR picks the
# build directory (default build, or build-asan with SANITIZE=1).
set -euo pipefail
cd "$(dirname "$0")"
./deps.sh --test

sanitize=OFF
build=${BUILD_DIR:-build}
if [[ "${SANITIZE:-0}" == "1" ]]; then
  sanitize=ON
  build=${BUILD_DIR:-build-asan}
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi
cmake -S . -B "$build" -DMOONPOST_SANITIZE="$sanitize" -DMOONPOST_TESTS=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure -j"${TEST_JOBS:-2}"
