#!/usr/bin/env bash
# Builds a release (-O3) tree and runs the stress and reliability tests at full size:
# 1,000,000 events through 4 writers x 64 subscribers, and 200,000 reference-model steps; with
# the aurora::sqlite component also the kill -9 crash tests (label `crash`) at 250 rounds each
# instead of the normal suite's 100.
#
#   tests/stress/run.sh [events] [build-dir]      e.g. tests/stress/run.sh 10000000 (about 1 minute)
#   AURORA_MODEL_STEPS=1000000 AURORA_SEED=42 tests/stress/run.sh
#   AURORA_CRASH_ROUNDS=5000 AURORA_CRASH_SEED=7 tests/stress/run.sh
set -euo pipefail

events="${1:-1000000}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${2:-${root}/build/stress-release}"

cmake -S "${root}" -B "${build}" -G Ninja -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_COMPILE_WARNING_AS_ERROR=ON -DAURORA_BUILD_EXAMPLES=OFF -DAURORA_BUILD_PACKAGE_TESTS=OFF \
  -DAURORA_BUILD_FUZZ_REPLAY=OFF >/dev/null
targets=(aurora_stress_tests aurora_reliability_tests)
labels='stress|reliability'
# The crash tests exist only when SQLite was found (the aurora::sqlite component).
if grep -q '^AURORA_SQLITE:BOOL=ON' "${build}/CMakeCache.txt"; then
  targets+=(aurora_sqlite_crash_tests)
  labels="${labels}|crash"
fi
cmake --build "${build}" -j 2 --target "${targets[@]}"

export AURORA_STRESS_EVENTS="${events}"
export AURORA_MODEL_STEPS="${AURORA_MODEL_STEPS:-200000}"
export AURORA_STRESS_TIMEOUT="${AURORA_STRESS_TIMEOUT:-600}"
export AURORA_CRASH_ROUNDS="${AURORA_CRASH_ROUNDS:-250}"
# One test at a time: the stress tests use 7 threads of their own on 2 cores. A crash test at
# 500 rounds took 3 to 3.5 minutes per test here in a debug build (each round checks the whole
# file, which grows), within its TIMEOUT of 900 s.
ctest --test-dir "${build}" -L "${labels}" --output-on-failure -j 1 --timeout 900
