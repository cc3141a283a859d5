#!/usr/bin/env bash
# A network partition between a lock holder and its server, inside a private
# network namespace (run as: unshare -n partition.sh HELPER ROOT LIVENESS_MS):
# its own loopback, its own throwaway cluster, an nftables rule that drops the
# server's port. No traffic leaves the namespace. Prints
#   noticed_ms=N freed_ms=M
# the holder noticing the loss, and the server freeing the lock, each counted
# from the moment the rule went in.
set -euo pipefail
helper=$1 root=$2 liveness_ms=$3
ip link set lo up
eval "$("$root/scripts/postgres-cluster.sh" start)"
trap '"$root/scripts/postgres-cluster.sh" stop "$FASTENERS_POSTGRES_DIR" immediate' EXIT
name=partition-$$
now_ms() { date +%s%3N; }
held() {
  psql "$FASTENERS_POSTGRES_CONNINFO" -XAtc "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
    WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE '%lock $name'"
}
coproc HOLDER { exec "$helper" partition "$FASTENERS_POSTGRES_TCP_CONNINFO" "$name" "$liveness_ms"; }
exec {holder_out}<&"${HOLDER[0]}" # bash forgets HOLDER when the holder exits
read -r -t 30 -u "$holder_out" line && [ "$line" = locked ] || { echo "holder did not lock" >&2; exit 1; }
[ "$(held)" = 1 ] || { echo "the server does not show the lock" >&2; exit 1; }
sleep 0.5
nft add table inet fasteners_partition
nft add chain inet fasteners_partition input '{ type filter hook input priority 0; policy accept; }'
nft add rule inet fasteners_partition input tcp dport "$FASTENERS_POSTGRES_PORT" drop
nft add rule inet fasteners_partition input tcp sport "$FASTENERS_POSTGRES_PORT" drop
t0=$(now_ms)
freed=""
for _ in $(seq 1 1200); do # the unix socket is not partitioned
  if [ "$(held)" = 0 ]; then
    freed=$(now_ms)
    break
  fi
  sleep 0.05
done
lost=""
if read -r -t 30 -u "$holder_out" line; then lost=${line#lost }; fi
[ -n "$lost" ] || { echo "the holder never noticed" >&2; exit 1; }
[ -n "$freed" ] || { echo "the server never freed the lock" >&2; exit 1; }
echo "noticed_ms=$((lost - t0)) freed_ms=$((freed - t0))"
