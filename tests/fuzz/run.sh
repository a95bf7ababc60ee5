#!/bin/sh
# Runs each libFuzzer target for DURATION_SECONDS on a scratch copy of the seed corpus.
# Exits non-zero when any fuzzer finds a crash, a leak or a timeout; the inputs that did it
# are kept in BUILD_DIR/fuzz-artifacts/.
#
# Usage: tests/fuzz/run.sh DURATION_SECONDS BUILD_DIR
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 DURATION_SECONDS BUILD_DIR" >&2
    exit 2
fi
duration=$1
build=$(cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/moonpost-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

status=0
for target in fuzz_frame fuzz_codec; do
    bin=$build/tests/fuzz/$target
    if [ ! -x "$bin" ]; then
        echo "$target: $bin is missing (configure with CC=clang -DMOONPOST_FUZZ=ON)" >&2
        exit 2
    fi
    mkdir -p "$work/$target/corpus" "$work/$target/artifacts"
    cp "$here"/corpus/* "$work/$target/corpus/"
    log=$work/$target/log
    echo "== $target: ${duration}s"
    if "$bin" -max_total_time="$duration" -max_len=70000 -timeout=25 -print_final_stats=1 \
        -artifact_prefix="$work/$target/artifacts/" "$work/$target/corpus" >"$log" 2>&1; then
        grep -E '^#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec' "$log" ||
            tail -n 3 "$log"
    else
        status=1
        echo "$target FAILED:" >&2
        grep -E -A 30 '^==[0-9]+==|deadly signal|Timeout|SUMMARY' "$log" | head -n 80 >&2 ||
            tail -n 40 "$log" >&2
        mkdir -p "$build/fuzz-artifacts"
        cp "$work/$target/artifacts/"* "$build/fuzz-artifacts/" 2>/dev/null || true
        echo "$target: reproduce with $bin $build/fuzz-artifacts/<file>" >&2
    fi
done
exit $status
