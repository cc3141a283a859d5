#!/usr/bin/env bash
# Builds the library and runs the demonstration: several processes, each with
# several threads, sharing a counter file and a ledger through fasteners' locks.
# Then, with PostgreSQL installed (and libpq-dev), the same across "machines" on a
# throwaway cluster (examples/across_machines.cpp and fasten --postgres); the
# cluster is stopped at exit, even on failure. Without PostgreSQL that part is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh cmake g++ make
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=Release -DFASTENERS_BUILD_TESTS=OFF >/dev/null
cmake --build build/demo --target example_demo -j"$(nproc)"
build/demo/examples/demo "$@"

echo
echo "Across machines (PostgreSQL advisory locks; processes play the machines):"
if [ ! -d build/demo/src/postgres ]; then
  echo "  skipped: the postgres component needs libpq (Debian: apt-get install libpq-dev postgresql)"
  exit 0
fi
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && ! command -v pg_ctl >/dev/null; then
  echo "  skipped: no PostgreSQL server here (Debian: apt-get install postgresql)"
  exit 0
fi
cmake --build build/demo --target example_across_machines fasten -j"$(nproc)" >/dev/null
pg_dir=""
trap '[ -z "$pg_dir" ] || scripts/postgres-cluster.sh stop "$pg_dir" immediate' EXIT
eval "$(scripts/postgres-cluster.sh start)"
pg_dir=$FASTENERS_POSTGRES_DIR
echo "a throwaway cluster: $FASTENERS_POSTGRES_TCP_CONNINFO"
build/demo/examples/across_machines "$FASTENERS_POSTGRES_CONNINFO"
# flock(1) across machines: a shell command under the same lock, reaching the server over TCP.
build/demo/tools/fasten/fasten --postgres "$FASTENERS_POSTGRES_TCP_CONNINFO" -w 10 demo-ledger \
  -c 'echo "fasten --postgres: \"demo-ledger\" held for a shell command, as cron on another machine would"'
