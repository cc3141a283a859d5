#!/usr/bin/env bash
# Builds the library and runs the demonstration: several processes, each with
# several threads, sharing a counter file and a ledger through fasteners' locks.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh cmake g++ make
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=Release -DFASTENERS_BUILD_TESTS=OFF >/dev/null
cmake --build build/demo --target example_demo -j"$(nproc)"
exec build/demo/examples/demo "$@"
