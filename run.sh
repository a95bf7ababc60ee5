#!/usr/bin/env bash
# run.sh: installs what is missing, builds, and runs the broker in the foreground with
# etc/broker.conf (or the file given as an argument), with the web chat at http_listen's / when
# npm is installed; `./run.sh --processes N` runs N broker
# processes on the client port under a supervisor (docs/operations.md). When nothing answers
# at the configured `redis` address and it is on this machine, a redis-server is started for
# the broker's lifetime, its data kept in ~/.local/state/moonpost/redis (or
# $MOONPOST_REDIS_DIR) across runs.
set -euo pipefail
cd "$(dirname "$0")"
./deps.sh
conf=etc/broker.conf
args=() # passed on to moonpost
while (($#)); do
  case "$1" in
    --processes) args+=("$1" "${2:?--processes needs a number}"); shift 2 ;;
    --processes=*) args+=("$1"); shift ;;
    *) conf=$1; shift ;;
  esac
done
# the tests need cmocka (./deps.sh --test): configure them only when it is there, so that
# running the broker needs nothing the tests need
tests=OFF
pkg-config --exists cmocka && tests=ON
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOONPOST_TESTS="$tests" >/dev/null
cmake --build build -j"$(nproc)" --target moonpost
# the web chat at http_listen's / when npm is there to build it (./deps.sh --test installs it)
if command -v npm >/dev/null && ! awk '$1 == "web_root" { found = 1 } END { exit !found }' "$conf"; then
  cmake --build build --target web && args+=(--set "web_root=$PWD/build/webchat")
fi
./build/broker/moonpost -c "$conf" ${args[@]+"${args[@]}"} -t >/dev/null

redis=$(awk '$1 == "redis" { print $2 }' "$conf" | tail -n 1)
redis=${redis:-127.0.0.1:6379}
host=${redis%:*}
port=${redis##*:}
redis_pid=""
if [[ "$redis" != unix:* ]] && ! (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
  case "$host" in
    127.*|localhost|::1|\[::1\])
      data=${MOONPOST_REDIS_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/moonpost/redis}
      mkdir -p "$data"
      echo "run.sh: no Redis at $redis, starting redis-server (data kept in $data)" >&2
      # durable as docs/operations.md asks (etc/redis-moonpost.conf): the broker checks it
      redis-server --bind "${host//[\[\]]/}" --port "$port" --dir "$data" --daemonize no \
        --appendonly yes --appendfsync everysec --maxmemory-policy noeviction \
        --loglevel warning &
      redis_pid=$!
      trap '[[ -n "$redis_pid" ]] && kill "$redis_pid" 2>/dev/null' EXIT
      ;;
    *) echo "run.sh: no Redis answers at $redis" >&2; exit 1 ;;
  esac
fi
./build/broker/moonpost -c "$conf" ${args[@]+"${args[@]}"}
