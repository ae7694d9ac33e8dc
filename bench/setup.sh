#!/bin/sh
# The benchmark's Redis, for the BullMQ side-by-side comparison.
#
#   bench/setup.sh install                 installs redis-server from Debian's packages if missing
#   bench/setup.sh run PORT DIR [durable]  installs if missing, then runs redis-server in the
#                                          foreground on 127.0.0.1:PORT with DIR as its data dir
#
# Without "durable" Redis runs with its built-in persistence defaults (no config file of ours):
# RDB snapshots (save 3600 1 300 100 60 10000), appendonly no -- an acknowledged write can be lost
# on a crash. With "durable" it also runs appendonly yes + appendfsync always: every write is in
# the fsynced AOF before Redis answers, the promise the relay's 2xx makes.
# Exit status 3: Redis is missing and cannot be installed here (the benchmark skips the comparison).
set -eu

install() {
  if command -v redis-server >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "bench/setup.sh: redis-server is not installed, and installing it needs root and apt-get" >&2
    exit 3
  fi
  echo "bench/setup.sh: installing redis-server from Debian's packages" >&2
  if ! { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server >&2; }; then
    echo "bench/setup.sh: apt-get could not install redis-server" >&2
    exit 3
  fi
}

case "${1:-}" in
  install)
    install
    ;;
  run)
    [ $# -ge 3 ] || { echo "usage: bench/setup.sh run PORT DIR [durable]" >&2; exit 2; }
    install
    port=$2
    dir=$3
    if [ "${4:-}" = durable ]; then
      exec redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes --appendfsync always
    fi
    exec redis-server --port "$port" --bind 127.0.0.1 --dir "$dir"
    ;;
  *)
    echo "usage: bench/setup.sh install | run PORT DIR [durable]" >&2
    exit 2
    ;;
esac
