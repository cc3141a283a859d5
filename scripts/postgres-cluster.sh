#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, the benchmarks and the demo.
#   scripts/postgres-cluster.sh start [DIR]   initdb + start; prints shell assignments:
#       FASTENERS_POSTGRES_DIR=...  FASTENERS_POSTGRES_PORT=...
#       FASTENERS_POSTGRES_CONNINFO='host=DIR port=PORT ...'        (unix socket in DIR)
#       FASTENERS_POSTGRES_TCP_CONNINFO='host=127.0.0.1 port=PORT ...'
#   scripts/postgres-cluster.sh stop DIR [MODE]   pg_ctl stop (MODE fast|immediate), rm -rf DIR
#   scripts/postgres-cluster.sh restart DIR [MODE]
#   scripts/postgres-cluster.sh halt DIR [MODE]   stop, keep DIR (start it again with "resume DIR")
#   scripts/postgres-cluster.sh resume DIR
# PostgreSQL refuses to run as root: as root, initdb and pg_ctl run as the
# "postgres" user (runuser). Trust authentication on the socket and on
# 127.0.0.1 only; listens on a free loopback port, never on other addresses.
set -euo pipefail

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] || bindir=$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")
if [ ! -x "$bindir/pg_ctl" ]; then
  echo "postgres-cluster: no PostgreSQL server binaries (install postgresql)" >&2
  exit 3
fi

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_server() {
  local dir=$1 port
  port=$(cat "$dir/port")
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-k $dir -p $port -c listen_addresses=127.0.0.1" start >/dev/null
}

print_env() {
  local dir=$1 port
  port=$(cat "$dir/port")
  echo "FASTENERS_POSTGRES_DIR=$dir"
  echo "FASTENERS_POSTGRES_PORT=$port"
  echo "FASTENERS_POSTGRES_CONNINFO='host=$dir port=$port dbname=postgres user=postgres'"
  echo "FASTENERS_POSTGRES_TCP_CONNINFO='host=127.0.0.1 port=$port dbname=postgres user=postgres'"
}

cmd=${1:-}
case $cmd in
  start)
    dir=${2:-$(mktemp -d /tmp/fasteners-pg.XXXXXX)}
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    chmod 0755 "$dir"
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    cat >>"$dir/data/postgresql.conf" <<CONF
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
CONF
    # Loopback only, trust: a throwaway cluster for tests on this machine.
    cat >"$dir/data/pg_hba.conf" <<HBA
local all all trust
host all all 127.0.0.1/32 trust
HBA
    free_port | as_owner tee "$dir/port" >/dev/null
    start_server "$dir" || { cat "$dir/server.log" >&2; exit 1; }
    print_env "$dir"
    ;;
  stop | halt)
    dir=${2:?usage: $0 $cmd DIR [fast|immediate]}
    mode=${3:-fast}
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_owner "$bindir/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 stop >/dev/null 2>&1 || true
    fi
    if [ "$cmd" = stop ]; then rm -rf "$dir"; fi
    ;;
  resume)
    dir=${2:?usage: $0 resume DIR}
    start_server "$dir"
    ;;
  restart)
    dir=${2:?usage: $0 restart DIR [fast|immediate]}
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m "${3:-fast}" -w -t 60 stop >/dev/null
    start_server "$dir"
    ;;
  env)
    print_env "${2:?usage: $0 env DIR}"
    ;;
  *)
    echo "usage: $0 start [DIR] | stop DIR [MODE] | restart DIR [MODE] | halt DIR [MODE] | resume DIR | env DIR" >&2
    exit 64
    ;;
esac
