#!/usr/bin/env bash
# lint.sh: cppcheck and clang-tidy (the checks in .clang-tidy) over the project's C sources.
# Needs a configured build directory for compile_commands.json (default build).
set -euo pipefail
cd "$(dirname "$0")"
build=${BUILD_DIR:-build}
mapfile -t sources < <(git ls-files 'wire/*.c' 'broker/*.c' 'plugins/*.c' 'clients/c/*.c' 'clients/c/**/*.c' 'bench/*.c' | grep -v '/tests/')
cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability --std=c11 \
  --inline-suppr -I broker -I wire "${sources[@]}"
if ! out=$(clang-tidy --quiet -p "$build" "${sources[@]}" 2>&1); then
  echo "$out" | grep -v "warnings generated"
  exit 1
fi
echo "lint: clean (cppcheck, clang-tidy on ${#sources[@]} files)"
