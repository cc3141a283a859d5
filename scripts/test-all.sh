#!/usr/bin/env bash
# Builds and runs every test, the way CI does:
#   format check; GCC C++17 and Clang C++20 with -Werror; the OFD and the
#   classic-fcntl back ends; ASan+UBSan; TSan; clang -Wthread-safety over the
#   examples; install + find_package/pkg-config consumer; benchmark smoke runs;
#   the Windows build under wine.
# Installs the Debian packages it lacks. Logs go to build/logs/.
#   scripts/test-all.sh            everything
#   scripts/test-all.sh quick      just the GCC build and its tests
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mode=${1:-all}
jobs=$(nproc)
logs=$root/build/logs
mkdir -p "$logs"

scripts/install-deps.sh $(grep -v '^#' scripts/packages.txt)

# The interop tests must not skip for lack of Python fasteners here.
export FASTENERS_REQUIRE_PYTHON=1
export CTEST_OUTPUT_ON_FAILURE=1

# One throwaway PostgreSQL cluster for every suite's postgres tests (a temp
# directory, its socket there, a free loopback port), stopped at exit even on
# failure. A missing server is then a failure, not a skip.
pg_dir=""
stop_postgres() {
  if [ -n "$pg_dir" ]; then scripts/postgres-cluster.sh stop "$pg_dir" immediate || true; fi
}
trap stop_postgres EXIT
if pg_env=$(scripts/postgres-cluster.sh start); then
  eval "$pg_env"
  pg_dir=$FASTENERS_POSTGRES_DIR
  export FASTENERS_POSTGRES_DIR FASTENERS_POSTGRES_PORT FASTENERS_POSTGRES_CONNINFO FASTENERS_POSTGRES_TCP_CONNINFO
  export FASTENERS_REQUIRE_POSTGRES=1
else
  echo "postgres: cannot start a throwaway cluster; the postgres tests will fail"
  export FASTENERS_REQUIRE_POSTGRES=1
fi

passed=0 failed=0 skipped=0 failed_steps=()
started=$(date +%s)

note() { printf '\n== %s\n' "$*"; }

# run_suite NAME CMAKE-ARGS...: configure, build, run ctest; tally the counts.
run_suite() {
  local name=$1
  shift
  local dir=$root/build/$name log=$logs/$name.log t0
  t0=$(date +%s)
  note "$name"
  if ! { cmake -S "$root" -B "$dir" -DFASTENERS_WERROR=ON -DFASTENERS_POSTGRES=ON "$@" && cmake --build "$dir" -j"$jobs"; } >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "$name: BUILD FAILED (log: $log)"
    failed_steps+=("$name")
    failed=$((failed + 1))
    return 0
  fi
  local out=$logs/$name.ctest.log rc=0
  ctest --test-dir "$dir" -j"$jobs" --timeout 600 >"$out" 2>&1 || rc=$?
  local summary
  summary=$(grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" "$out" || true)
  local total fail skip
  total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$summary")
  fail=$(sed -E 's/.*tests passed, ([0-9]+) tests failed.*/\1/' <<<"$summary")
  skip=$(grep -cE '\*\*\*Skipped' "$out" || true)
  total=${total:-0} fail=${fail:-1}
  passed=$((passed + total - fail - skip))
  failed=$((failed + fail))
  skipped=$((skipped + skip))
  echo "$name: ${summary:-no ctest summary} (skipped: $skip) in $(($(date +%s) - t0)) s"
  if [ "$rc" -ne 0 ] || [ "$fail" -ne 0 ]; then
    grep -E "Failed|\*\*\*|Timeout|Exception" "$out" | head -40 || true
    tail -n 80 "$out"
    failed_steps+=("$name")
  fi
  grep -E '\*\*\*Skipped' "$out" | sed -E 's/ +\.{3,}/ /; s/^/  skipped: /' || true
}

check_format() {
  note "format"
  local bad
  bad=$(git ls-files '*.cpp' '*.hpp' | xargs clang-format --dry-run --Werror 2>&1 | grep -E "^[^ ].*:[0-9]+:[0-9]+: (error|warning)" | cut -d: -f1 | sort -u || true)
  if [ -n "$bad" ]; then
    echo "not clang-formatted (run clang-format -i on them):"
    echo "$bad"
    failed_steps+=(format)
    failed=$((failed + 1))
  else
    echo "format: all files match .clang-format"
  fi
}

# Installs the library and builds a consumer against it with find_package and pkg-config; the
# same for the postgres component, whose programs take a lock on the cluster started above.
check_install() {
  note "install + consumer"
  local prefix=$root/build/install log=$logs/install.log pg=${FASTENERS_POSTGRES_CONNINFO:-}
  rm -rf "$prefix" "$root/build/consumer" "$root/build/consumer-subdir" "$root/build/consumer-postgres"
  if cmake --install "$root/build/gcc-cxx17" --prefix "$prefix" >"$log" 2>&1 &&
    cmake -S "$root/tests/consumer" -B "$root/build/consumer" -DCMAKE_PREFIX_PATH="$prefix" >>"$log" 2>&1 &&
    cmake --build "$root/build/consumer" >>"$log" 2>&1 &&
    "$root/build/consumer/consumer" "$root/build/consumer/lockfile" >>"$log" 2>&1 &&
    PKG_CONFIG_PATH=$prefix/lib/pkgconfig g++ -std=c++17 "$root/tests/consumer/consumer.cpp" \
      $(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs fasteners) -o "$root/build/consumer/consumer-pc" >>"$log" 2>&1 &&
    "$root/build/consumer/consumer-pc" "$root/build/consumer/lockfile2" >>"$log" 2>&1 &&
    cmake -S "$root/tests/consumer" -B "$root/build/consumer-postgres" -DCMAKE_PREFIX_PATH="$prefix" \
      -DCONSUMER_POSTGRES=ON >>"$log" 2>&1 &&
    cmake --build "$root/build/consumer-postgres" >>"$log" 2>&1 &&
    "$root/build/consumer-postgres/consumer_postgres" "$pg" >>"$log" 2>&1 &&
    g++ -std=c++17 "$root/tests/consumer/consumer_postgres.cpp" \
      $(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs fasteners-postgres) \
      -o "$root/build/consumer-postgres/consumer_postgres-pc" >>"$log" 2>&1 &&
    "$root/build/consumer-postgres/consumer_postgres-pc" "$pg" >>"$log" 2>&1 &&
    cmake -S "$root/tests/consumer" -B "$root/build/consumer-subdir" -DFASTENERS_SOURCE_DIR="$root" \
      -DCONSUMER_POSTGRES=ON >>"$log" 2>&1 &&
    cmake --build "$root/build/consumer-subdir" -j"$jobs" >>"$log" 2>&1 &&
    "$root/build/consumer-subdir/consumer" "$root/build/consumer/lockfile3" >>"$log" 2>&1 &&
    "$root/build/consumer-subdir/consumer_postgres" "$pg" >>"$log" 2>&1 &&
    test -x "$prefix/bin/fasten" && test -f "$prefix/share/man/man1/fasten.1"; then
    echo "install: find_package, pkg-config and add_subdirectory consumers built and ran, the postgres" \
      "component's too (a lock taken on the cluster); fasten and its man page installed"
    passed=$((passed + 1))
  else
    tail -n 40 "$log"
    echo "install: FAILED (log: $log)"
    failed_steps+=(install)
    failed=$((failed + 1))
  fi
}

run_suite gcc-cxx17 -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=g++ -DCMAKE_CXX_STANDARD=17
if [ "$mode" != quick ]; then
  check_format
  check_install
  run_suite clang-cxx20-classic -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_STANDARD=20 \
    -DFASTENERS_POSIX_BACKEND=classic -DFASTENERS_THREAD_SAFETY_ANALYSIS=ON
  run_suite asan-ubsan-classic -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=g++ -DCMAKE_CXX_STANDARD=20 \
    -DFASTENERS_POSIX_BACKEND=classic -DFASTENERS_BUILD_TOOLS=ON \
    "-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
  run_suite tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_STANDARD=17 \
    "-DCMAKE_CXX_FLAGS=-fsanitize=thread -fno-omit-frame-pointer"
  if [ -x bench/run ]; then
    note "benchmarks (smoke: each binary once, tiny iteration counts, timings not judged)"
    if bench/run --smoke >"$logs/bench.log" 2>&1; then
      echo "benchmarks: all ran"
      passed=$((passed + 1))
    else
      tail -n 40 "$logs/bench.log"
      failed_steps+=(bench)
      failed=$((failed + 1))
    fi
  fi
  if [ -x .ci/windows.sh ]; then
    note "windows (mingw-w64 build, tests under wine)"
    if .ci/windows.sh "$root/build/windows" >"$logs/windows.log" 2>&1; then
      tail -n 15 "$logs/windows.log"
      w_pass=$(grep -oE '^\[  PASSED  \] [0-9]+' "$logs/windows.log" | tail -1 | grep -oE '[0-9]+$' || echo 0)
      w_skip=$(grep -oE '^\[  SKIPPED \] [0-9]+ test' "$logs/windows.log" | tail -1 | grep -oE '[0-9]+' || echo 0)
      passed=$((passed + w_pass))
      skipped=$((skipped + w_skip))
    else
      tail -n 60 "$logs/windows.log"
      failed_steps+=(windows)
      failed=$((failed + 1))
    fi
  fi
fi

note "summary ($(($(date +%s) - started)) s)"
if [ ${#failed_steps[@]} -ne 0 ]; then
  echo "failed steps: ${failed_steps[*]}"
fi
echo "total: $passed passed, $failed failed, $skipped skipped"
[ ${#failed_steps[@]} -eq 0 ] && [ "$failed" -eq 0 ]
