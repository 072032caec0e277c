#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined) and runs each for
# N seconds (default 60), starting from the checked-in corpus, as many targets at a time as there
# are cores. New inputs go to a scratch corpus under the build directory; crashes are written
# there as crash-* and fail the script.
#
#   tests/fuzz/run.sh [seconds] [build-dir]        e.g. tests/fuzz/run.sh 600   (10 minutes each)
#   FUZZ_JOBS=2 tests/fuzz/run.sh 3600             (two processes per target, one hour each)
#   FUZZ_TARGETS=query tests/fuzz/run.sh 60        (some of write, filter, query, net; default all)
#   FUZZ_PARALLEL=1 tests/fuzz/run.sh              (one target at a time; default: cores / FUZZ_JOBS)
#   FUZZ_REBUILD=0 tests/fuzz/run.sh 30 build/asan (run what a build with AURORA_BUILD_FUZZERS=ON
#                                                   holds, without configuring or building it)
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="$(realpath -m "${2:-${root}/build/fuzz}")"
# count NAME VALUE: VALUE as a count of at least 1; exits when it is not a number.
count() {
  if [[ ! "$2" =~ ^[0-9]+$ ]]; then
    echo "$1 must be a number, not '$2'" >&2
    exit 1
  fi
  echo $(($2 < 1 ? 1 : $2))
}
jobs="$(count FUZZ_JOBS "${FUZZ_JOBS:-1}")"
# Each target once, in the order given (two runs of one target would share its corpus and logs).
read -r -a requested <<<"${FUZZ_TARGETS:-write filter query net}"
targets=()
for target in "${requested[@]}"; do
  if [[ " ${targets[*]} " != *" ${target} "* ]]; then targets+=("${target}"); fi
done
if [[ "${#targets[@]}" -eq 0 ]]; then
  echo "FUZZ_TARGETS names no target (write, filter, query, net)" >&2
  exit 1
fi
parallel="$(count FUZZ_PARALLEL "${FUZZ_PARALLEL:-$(($(nproc) / jobs))}")"

if [[ "${FUZZ_REBUILD:-1}" == 1 ]]; then
  cmake -S "${root}" -B "${build}" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_COMPILE_WARNING_AS_ERROR=ON -DAURORA_BUILD_FUZZERS=ON -DAURORA_BUILD_FUZZ_REPLAY=OFF \
    -DAURORA_BUILD_EXAMPLES=OFF -DAURORA_BUILD_PACKAGE_TESTS=OFF >/dev/null
  cmake --build "${build}" -j 2 --target "${targets[@]/#/aurora_fuzz_}"
fi
for target in "${targets[@]}"; do
  if [[ ! -x "${build}/tests/fuzz/aurora_fuzz_${target}" ]]; then
    echo "no ${build}/tests/fuzz/aurora_fuzz_${target}: configure ${build} with -DAURORA_BUILD_FUZZERS=ON" >&2
    exit 1
  fi
done

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# Runs one target for ${seconds}; its output goes to ${build}/fuzz-logs/<target>.log.
fuzz_one() {
  local target="$1"
  local scratch="${build}/fuzz-corpus/${target}" artifacts="${build}/fuzz-artifacts/${target}/"
  local work="${build}/fuzz-work/${target}"
  rm -f "${build}/fuzz-logs/${target}.log"  # a target that cannot start shows no earlier run's log
  rm -rf "${artifacts}"
  mkdir -p "${scratch}" "${artifacts}" "${work}"
  local extra=()
  if [[ -f "${root}/tests/fuzz/${target}.dict" ]]; then extra+=(-dict="${root}/tests/fuzz/${target}.dict"); fi
  # With FUZZ_JOBS > 1, libFuzzer's own logs are fuzz-N.log in ${build}/fuzz-work/<target>.
  if [[ "${jobs}" -gt 1 ]]; then extra+=(-jobs="${jobs}" -workers="${jobs}"); fi
  cd "${work}" || return 1
  # exec: the background job's pid is the fuzzer's; setsid: in a process group of its own, with
  # the workers it starts under FUZZ_JOBS > 1, so that the trap below can stop them all.
  exec setsid "${build}/tests/fuzz/aurora_fuzz_${target}" -max_total_time="${seconds}" -max_len=4096 \
    -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 "${extra[@]}" -artifact_prefix="${artifacts}" \
    "${scratch}" "${root}/tests/fuzz/corpus/${target}" >"${build}/fuzz-logs/${target}.log" 2>&1
}

# Reports a finished target: the end of its log, and whether it failed or left failing inputs.
report() {
  local target="$1" exit_code="$2"
  local artifacts="${build}/fuzz-artifacts/${target}/"
  echo "== ${target}: ${seconds} s"
  tail -n 25 "${build}/fuzz-logs/${target}.log"
  if [[ "${exit_code}" -ne 0 ]]; then
    echo "== ${target}: FAILED, exit code ${exit_code} (inputs in ${artifacts}, log ${build}/fuzz-logs/${target}.log)"
    return 1
  fi
  if compgen -G "${artifacts}crash-*" >/dev/null || compgen -G "${artifacts}leak-*" >/dev/null ||
     compgen -G "${artifacts}timeout-*" >/dev/null || compgen -G "${artifacts}oom-*" >/dev/null; then
    echo "== ${target}: found failing inputs in ${artifacts}"
    return 1
  fi
}

mkdir -p "${build}/fuzz-logs"
echo "== ${#targets[@]} targets, ${parallel} at a time"
status=0
declare -A running=()  # pid -> target
# Stopped early (a CI timeout, Ctrl-C): stop the fuzzers too.
# shellcheck disable=SC2317  # called by the trap
stop_running() {
  local pid
  for pid in "${!running[@]}"; do kill -- "-${pid}" 2>/dev/null || true; done
}
trap stop_running EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Waits for one running target and reports it.
reap() {
  local exit_code=0 done_pid
  wait -n -p done_pid "${!running[@]}" || exit_code=$?
  report "${running[${done_pid}]}" "${exit_code}" || status=1
  unset "running[${done_pid}]"
}
for target in "${targets[@]}"; do
  while [[ "${#running[@]}" -ge "${parallel}" ]]; do reap; done
  fuzz_one "${target}" &
  running[$!]="${target}"
done
while [[ "${#running[@]}" -gt 0 ]]; do reap; done
exit "${status}"
