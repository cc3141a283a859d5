#!/usr/bin/env bash
# Cross-builds fasteners for Windows with mingw-w64 and runs the test suite
# under Wine.
#
#   .ci/windows.sh [build-dir]        (default: build-windows)
#
# Environment: FASTENERS_WERROR (ON), JOBS (2), TEST_TIMEOUT seconds (900),
# GTEST_FILTER (all tests).
set -euo pipefail

cd "$(dirname "$0")/.."
build_dir=${1:-build-windows}
jobs=${JOBS:-2}
werror=${FASTENERS_WERROR:-ON}
test_timeout=${TEST_TIMEOUT:-900}
started=$(date +%s)

step() { printf '\n=== %s (%ss)\n' "$*" "$(($(date +%s) - started))"; }

# ---- toolchain ----
cxx=x86_64-w64-mingw32-g++-posix
wine=/usr/lib/wine/wine64
if ! command -v "$cxx" >/dev/null 2>&1 || [ ! -x "$wine" ] || ! command -v cmake >/dev/null 2>&1 ||
  [ ! -f /usr/src/googletest/CMakeLists.txt ]; then
  step "installing g++-mingw-w64-x86-64, wine64 and the GoogleTest sources"
  "$(dirname "$0")/../scripts/install-deps.sh" g++-mingw-w64-x86-64 wine64 cmake make googletest
fi
if [ ! -x "$wine" ]; then wine=$(command -v wine64 || command -v wine); fi
wineserver=$(dirname "$wine")/wineserver
if [ ! -x "$wineserver" ]; then wineserver=$(command -v wineserver || true); fi

# ---- Wine prefix: initialised in the background while we build ----
export WINEPREFIX
WINEPREFIX=$(mktemp -d "${TMPDIR:-/tmp}/fasteners-wine.XXXXXX")
export WINEDEBUG=-all
export WINEDLLOVERRIDES="mscoree,mshtml="  # no Mono or Gecko installer prompts
cleanup() {
  if [ -n "$wineserver" ]; then "$wineserver" -k >/dev/null 2>&1 || true; fi
  rm -rf "$WINEPREFIX"
}
trap cleanup EXIT
"$wine" wineboot -i >"$WINEPREFIX.boot.log" 2>&1 &
wineboot_pid=$!

# ---- build ----
step "configuring $build_dir"
cmake -S . -B "$build_dir" \
  -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-mingw-w64.cmake \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CROSSCOMPILING_EMULATOR="$wine" \
  -DFASTENERS_WERROR="$werror" \
  -DFASTENERS_BUILD_TESTS=ON -DFASTENERS_BUILD_TOOLS=ON
step "building (library, tests, test helper, fasten, examples)"
cmake --build "$build_dir" -j "$jobs"

# ---- test ----
step "waiting for the Wine prefix"
if ! wait "$wineboot_pid"; then
  cat "$WINEPREFIX.boot.log" >&2 || true
  echo "wineboot failed" >&2
  exit 1
fi
rm -f "$WINEPREFIX.boot.log"

step "running fasteners_tests.exe under $("$wine" --version)"
log=$build_dir/wine-tests.log
status=0
# Python fasteners is not there under Wine, whatever the POSIX run requires.
(cd "$build_dir/tests" && unset FASTENERS_REQUIRE_PYTHON && timeout "$test_timeout" "$wine" fasteners_tests.exe ${GTEST_FILTER:+--gtest_filter="$GTEST_FILTER"}) \
  >"$log" 2>&1 || status=$?
sed -i 's/\r$//' "$log"  # Wine's console writes CRLF
# One line per test that did not pass, with the reason a skipped test gave.
awk '/: Skipped$/ { getline reason; next_reason = reason; next }
     /^\[  SKIPPED \] .* \([0-9]+ ms\)$/ { sub(/ \([0-9]+ ms\)$/, ""); print $0 " -- " next_reason; next_reason = "" }
     /^\[  FAILED  \] .* \([0-9]+ ms\)$/ { print }' "$log"

step "summary"
sed -n '/Global test environment tear-down/,$p' "$log"
ran=$(sed -nE 's/^\[==========\] ([0-9]+) tests? from .* ran.*/\1/p' "$log" | tail -1)
passed=$(sed -nE 's/^\[  PASSED  \] ([0-9]+) tests?.*/\1/p' "$log" | tail -1)
skipped=$(sed -nE 's/^\[  SKIPPED \] ([0-9]+) tests?, listed below.*/\1/p' "$log" | tail -1)
failed=$(sed -nE 's/^ *([0-9]+) FAILED TESTS?.*/\1/p' "$log" | tail -1)
echo "Windows (Wine): ${ran:-0} ran, ${passed:-0} passed, ${skipped:-0} skipped, ${failed:-0} failed; exit status $status; $(($(date +%s) - started)) s in all"
if [ "$status" -ne 0 ] || [ -z "$ran" ] || [ "${failed:-0}" -ne 0 ]; then
  [ "$status" -eq 124 ] && echo "the test run timed out after ${test_timeout}s" >&2
  echo "full log: $log" >&2
  exit 1
fi
