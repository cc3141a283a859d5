#!/bin/sh
# The same scenarios under fasten and util-linux flock(1), side by side, and
# across the two tools and Python fasteners.
#
#   docs/fasten_vs_flock.sh            # fasten, flock and python3 from PATH
#   FASTEN=build/tools/fasten/fasten docs/fasten_vs_flock.sh
#
# fasten takes fcntl record locks (what Python fasteners and lockf(3) take);
# flock(1) takes flock(2) locks. On Linux the two kinds never see each other,
# so each tool excludes itself, fasten also excludes Python fasteners, and
# mixing fasten with flock on one file excludes nothing.
set -u

FASTEN=${FASTEN:-fasten}
FLOCK=${FLOCK:-flock}
PYTHON=${PYTHON:-python3}
COUNT=${COUNT:-100}

dir=$(mktemp -d)
trap 'touch "$dir/release"; wait; rm -rf "$dir"' EXIT
lock=$dir/lock

if ! "$PYTHON" -c 'import fasteners' 2>/dev/null; then
  echo "note: $PYTHON cannot import fasteners; the Python columns will say n/a" >&2
  python_ok=no
else
  python_ok=yes
fi

# python_lock KIND PATH [hold DIR]: KIND lock, read or write; one non-blocking
# attempt (exit 0 got it, 1 busy), or with "hold" keep it until DIR/release.
python_lock() {
  "$PYTHON" - "$@" <<'EOF'
import os, sys, time, fasteners
kind, path = sys.argv[1], sys.argv[2]
hold = len(sys.argv) > 3
if kind == "lock":
    lock = fasteners.InterProcessLock(path)
    got = lock.acquire(blocking=hold)
else:
    lock = fasteners.InterProcessReaderWriterLock(path)
    take = lock.acquire_read_lock if kind == "read" else lock.acquire_write_lock
    got = take(blocking=hold)
if hold:
    open(os.path.join(sys.argv[4], "ready"), "w").close()
    while not os.path.exists(os.path.join(sys.argv[4], "release")):
        time.sleep(0.02)
sys.exit(0 if got else 1)
EOF
}

# hold COMMAND...: COMMAND (a tool and its options, ending with the lock file)
# runs a shell that holds the lock until release is called.
hold() {
  rm -f "$dir/ready" "$dir/release"
  case $1 in
    python) python_lock "$2" "$lock" hold "$dir" & ;;
    *) "$@" sh -c 'touch "$0/ready"; while [ ! -e "$0/release" ]; do sleep 0.02; done' "$dir" & ;;
  esac
  holder=$!
  while [ ! -e "$dir/ready" ]; do sleep 0.02; done
}

release() {
  touch "$dir/release"
  wait "$holder" 2>/dev/null
}

# attempt NAME: one non-blocking try; prints got / refused.
attempt() {
  case $1 in
    "fasten -n") "$FASTEN" -n "$lock" true ;;
    "fasten -sn") "$FASTEN" -s -n "$lock" true ;;
    "flock -n") "$FLOCK" -n "$lock" true ;;
    "flock -sn") "$FLOCK" -s -n "$lock" true ;;
    "py lock") [ $python_ok = yes ] || { printf '%-11s' n/a; return; }; python_lock lock "$lock" ;;
    "py read") [ $python_ok = yes ] || { printf '%-11s' n/a; return; }; python_lock read "$lock" ;;
  esac >/dev/null 2>&1
  if [ $? -eq 0 ]; then printf '%-11s' got; else printf '%-11s' refused; fi
}

attempts="fasten -n|fasten -sn|flock -n|flock -sn|py lock|py read"

row() {
  label=$1
  printf '%-24s' "$label"
  old_ifs=$IFS
  IFS='|'
  for a in $attempts; do
    IFS=$old_ifs
    attempt "$a"
  done
  IFS=$old_ifs
  echo
}

echo "== Who excludes whom: a holder keeps the lock, each column is one non-blocking try"
printf '%-24s' "holder \\ try"
printf '%-11s' "fasten -n" "fasten -sn" "flock -n" "flock -sn" "py lock" "py read"
echo
row "(nobody)"
for holder_spec in "fasten -x" "fasten -s" "flock -x" "flock -s" "python lock" "python read"; do
  case $holder_spec in
    "fasten -x") hold "$FASTEN" -x "$lock" ;;
    "fasten -s") hold "$FASTEN" -s "$lock" ;;
    "flock -x") hold "$FLOCK" -x "$lock" ;;
    "flock -s") hold "$FLOCK" -s "$lock" ;;
    "python lock") [ $python_ok = yes ] || continue; hold python lock ;;
    "python read") [ $python_ok = yes ] || continue; hold python read ;;
  esac
  row "$holder_spec"
  release
done

now() { date +%s.%N; }
elapsed() { echo "$1 $2" | awk '{ printf "%.3f s", $2 - $1 }'; }

echo
echo "== Timeouts: -w 0.3 against a holder of the same kind of lock"
for tool in fasten flock; do
  if [ $tool = fasten ]; then bin=$FASTEN; else bin=$FLOCK; fi
  hold "$bin" "$lock"
  start=$(now)
  "$bin" -w 0.3 "$lock" true
  status=$?
  end=$(now)
  printf '%-8s -w 0.3: exit %s after %s\n' "$tool" "$status" "$(elapsed "$start" "$end")"
  release
done

echo
echo "== --status while each tool holds the lock"
for tool in fasten flock; do
  if [ $tool = fasten ]; then bin=$FASTEN; else bin=$FLOCK; fi
  hold "$bin" "$lock"
  report=$("$FASTEN" --status "$lock")
  status=$?
  printf '%-8s holds; fasten --status exits %s:\n%s\n' "$tool" "$status" "$report" | sed "s|$dir/||g; 2,\$s/^/    /"
  release
done

echo
echo "== kill -9 of the tool while its command runs: does the command keep the lock?"
for tool in fasten flock; do
  if [ $tool = fasten ]; then bin=$FASTEN; else bin=$FLOCK; fi
  rm -f "$dir/ready" "$dir/release"
  "$bin" "$lock" sh -c 'echo $$ > "$0/command.pid"; touch "$0/ready"; while [ ! -e "$0/release" ]; do sleep 0.02; done' "$dir" &
  tool_pid=$!
  while [ ! -e "$dir/ready" ]; do sleep 0.02; done
  kill -9 "$tool_pid"
  wait "$tool_pid" 2>/dev/null
  if "$bin" -n "$lock" true; then kept=no; else kept=yes; fi
  touch "$dir/release"
  after=held
  tries=0
  while [ $tries -lt 250 ]; do
    if "$bin" -n "$lock" true; then after=free; break; fi
    sleep 0.02
    tries=$((tries + 1))
  done
  printf '%-8s command still holds it: %-4s after the command exits too: %s\n' "$tool" "$kept" "$after"
done

echo
echo "== Lost updates: 4 processes x $COUNT read-modify-write increments of one counter"
cat >"$dir/worker.sh" <<'EOF'
tool=$1 bin=$2 lock=$3 counter=$4 count=$5
i=0
while [ "$i" -lt "$count" ]; do
  "$bin" "$lock" sh -c 'n=$(cat "$0"); echo $((n + 1)) > "$0"' "$counter"
  i=$((i + 1))
done
EOF
for mix in "fasten fasten fasten fasten" "flock flock flock flock" "fasten fasten flock flock"; do
  echo 0 >"$dir/counter"
  pids=
  for tool in $mix; do
    if [ $tool = fasten ]; then bin=$FASTEN; else bin=$FLOCK; fi
    sh "$dir/worker.sh" "$tool" "$bin" "$lock" "$dir/counter" "$COUNT" &
    pids="$pids $!"
  done
  for p in $pids; do wait "$p"; done
  printf '%-28s counter = %s (expected %s)\n' "$mix" "$(cat "$dir/counter")" $((4 * COUNT))
done
