#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined) and runs each for
# N seconds (default 60), starting from the checked-in corpus. New inputs go to a scratch corpus
# under the build directory; crashes are written there as crash-* and fail the script.
#
#   tests/fuzz/run.sh [seconds] [build-dir]        e.g. tests/fuzz/run.sh 600   (10 minutes each)
#   FUZZ_JOBS=2 tests/fuzz/run.sh 3600             (two processes per target, one hour each)
#   FUZZ_TARGETS=query tests/fuzz/run.sh 60        (some of write, filter, query, net; default all)
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${2:-${root}/build/fuzz}"
jobs="${FUZZ_JOBS:-1}"
read -r -a targets <<<"${FUZZ_TARGETS:-write filter query net}"

if [[ ! -x "${build}/tests/fuzz/aurora_fuzz_${targets[0]}" || "${FUZZ_REBUILD:-1}" == 1 ]]; then
  cmake -S "${root}" -B "${build}" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_COMPILE_WARNING_AS_ERROR=ON -DAURORA_BUILD_FUZZERS=ON -DAURORA_BUILD_FUZZ_REPLAY=OFF \
    -DAURORA_BUILD_EXAMPLES=OFF -DAURORA_BUILD_PACKAGE_TESTS=OFF >/dev/null
  cmake --build "${build}" -j 2 --target "${targets[@]/#/aurora_fuzz_}"
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
for target in "${targets[@]}"; do
  scratch="${build}/fuzz-corpus/${target}"
  artifacts="${build}/fuzz-artifacts/${target}/"
  rm -rf "${artifacts}"
  mkdir -p "${scratch}" "${artifacts}"
  echo "== ${target}: ${seconds} s"
  dict=()
  if [[ -f "${root}/tests/fuzz/${target}.dict" ]]; then dict=(-dict="${root}/tests/fuzz/${target}.dict"); fi
  parallel=()
  if [[ "${jobs}" -gt 1 ]]; then parallel=(-jobs="${jobs}" -workers="${jobs}"); fi  # logs: fuzz-N.log in the build dir
  if ! (cd "${build}" && "${build}/tests/fuzz/aurora_fuzz_${target}" -max_total_time="${seconds}" -max_len=4096 \
      -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 "${dict[@]}" "${parallel[@]}" -artifact_prefix="${artifacts}" \
      "${scratch}" "${root}/tests/fuzz/corpus/${target}") 2>&1 | tail -n 25; then
    echo "== ${target}: FAILED (inputs in ${artifacts})"
    status=1
  fi
  if compgen -G "${artifacts}crash-*" >/dev/null || compgen -G "${artifacts}leak-*" >/dev/null ||
     compgen -G "${artifacts}timeout-*" >/dev/null || compgen -G "${artifacts}oom-*" >/dev/null; then
    echo "== ${target}: found failing inputs in ${artifacts}"
    status=1
  fi
done
exit "${status}"
