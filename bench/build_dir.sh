# shellcheck shell=bash
# bench/build_dir.sh (sourced by run.sh, rooms.sh and cluster_lib.sh): the build the benchmarks
# run. MOONPOST_BUILD when set, else build-bench/ (a Release build, docs/benchmarks.md) when it
# holds a broker, else build/. Sets BROKER and BENCH; bench_require_build exits 2, said on
# stderr, when one of them is missing. ROOT is the checkout.

if [[ -z "${MOONPOST_BUILD:-}" ]]; then
    MOONPOST_BUILD=$ROOT/build-bench
    [[ -x $MOONPOST_BUILD/broker/moonpost ]] || MOONPOST_BUILD=$ROOT/build
fi
BROKER=$MOONPOST_BUILD/broker/moonpost
BENCH=$MOONPOST_BUILD/bench/moonpost-bench

bench_require_build() {
    local bin
    for bin in "$BROKER" "$BENCH"; do
        [[ -x $bin ]] || { echo "$(basename "$0"): $bin is missing; build it first (docs/benchmarks.md)" >&2; exit 2; }
    done
}
