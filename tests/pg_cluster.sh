#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the tests: initdb in a temp dir as the `postgres`
# user, listening on 127.0.0.1 only, on a port of its own, trust auth on loopback. Prints the
# admin URL the tests read from TIDINGS_TEST_POSTGRES (each test creates its own database).
# Usage: export TIDINGS_TEST_POSTGRES="$(bash tests/pg_cluster.sh start)"; ...; bash tests/pg_cluster.sh stop
set -euo pipefail

dir=${TIDINGS_PG_DIR:-/tmp/tidings-pg}
port=${TIDINGS_PG_PORT:-55432}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-start}" in
  start)
    if [ -f "$dir/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
      echo "postgres://postgres@127.0.0.1:$port/postgres"
      exit 0
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    as_pg "$bin/initdb" -D "$dir" -U postgres --auth=trust --no-sync -E UTF8 >/dev/null
    # Tests are many small databases on one box: fsync off is fine for a throwaway cluster.
    as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/log" -w -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=400 -c shared_buffers=64MB" start >/dev/null
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    as_pg "$bin/pg_ctl" -D "$dir" -m fast stop >/dev/null 2>&1 || true
    ;;
esac
