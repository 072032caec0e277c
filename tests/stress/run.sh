#!/usr/bin/env bash
# Builds a release (-O3) tree and runs the stress and reliability tests at full size:
# 1,000,000 events through 4 writers x 64 subscribers, and 200,000 reference-model steps.
#
#   tests/stress/run.sh [events] [build-dir]      e.g. tests/stress/run.sh 10000000 (about 1 minute)
#   AURORA_MODEL_STEPS=1000000 AURORA_SEED=42 tests/stress/run.sh
set -euo pipefail

events="${1:-1000000}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${2:-${root}/build/stress-release}"

cmake -S "${root}" -B "${build}" -G Ninja -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_COMPILE_WARNING_AS_ERROR=ON -DAURORA_BUILD_EXAMPLES=OFF -DAURORA_BUILD_PACKAGE_TESTS=OFF \
  -DAURORA_BUILD_FUZZ_REPLAY=OFF >/dev/null
cmake --build "${build}" -j 2 --target aurora_stress_tests aurora_reliability_tests

export AURORA_STRESS_EVENTS="${events}"
export AURORA_MODEL_STEPS="${AURORA_MODEL_STEPS:-200000}"
export AURORA_STRESS_TIMEOUT="${AURORA_STRESS_TIMEOUT:-600}"
# One test at a time: the stress tests use 7 threads of their own on 2 cores.
ctest --test-dir "${build}" -L 'stress|reliability' --output-on-failure -j 1 --timeout 900
