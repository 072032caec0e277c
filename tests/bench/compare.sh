#!/usr/bin/env bash
# compare.sh: Aurora's hub side by side with tokio::sync::broadcast (the peer benchmark in
# $PEERS/tokio-broadcast), interleaved round by round, then medians and ratios.
#
# Usage: tests/bench/compare.sh [ROUNDS=3] [OUT=/tmp/aurora-compare]
# Environment:
#   PEERS=DIR                   the folder holding the peers (required; copied to $OUT/peer and
#                               built there): tokio-broadcast/ with the bench contract
#   BUILD=$OUT/build            Aurora's build directory (preset `bench`: g++ 12, -O3 -DNDEBUG)
#   SUITES="full stalled"       run_all.sh suites to run each round (also: core, fanout1t)
#   DB=1                        also db_bench vs the raw ring (hub_bench fanout, alloc events)
#   BASELINE=REV                with DB=1: also db_bench built from this tree's benchmark source
#                               against the library (include/) of git revision REV, run next to
#                               this tree's in the same rounds: the write path users run, with
#                               only the library differing (e.g. the "no slowdown" of a change)
#   QUIET_WAIT_S=5              how long run_all.sh waits for an idle machine before each run
#                               (runs that still overlap other processes are flagged by
#                               foreign_cpu_frac and left out of the medians when others are not)
#   NICE=-15                    run every benchmark at this nice level (both sides; needs root,
#                               ignored otherwise), so that builds sharing the machine do not
#                               take the CPUs in the middle of a run; NICE=0 to disable
#   SKIP_BUILD=1                reuse the binaries already built
#   HUB_BIN=...                 benchmark another hub_bench build instead of this tree's
#   EXTRA_HUBS="name=/path/to/hub_bench ..."
#                               more hub_bench builds (e.g. a proposed ring.hpp, built with
#                               -DAURORA_BENCH_LOCK=name) run in the same rounds, own column
#
# Both sides: glibc malloc, no -march=native; Rust release with thin LTO, codegen-units=1,
# panic=abort (the peer's Cargo.toml). Results: $OUT/results/*.jsonl; the tables go to stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
ROUNDS=${1:-3}
OUT=$(mkdir -p "${2:-/tmp/aurora-compare}" && cd "${2:-/tmp/aurora-compare}" && pwd)
PEERS=${PEERS:?set PEERS to the folder that holds tokio-broadcast/ (the peer benchmarks)}
BUILD=${BUILD:-$OUT/build}
SUITES=${SUITES:-full stalled}
DB=${DB:-1}
export QUIET_WAIT_S=${QUIET_WAIT_S:-5}
NICE=${NICE:--15}
nice_cmd=()
if [[ "$NICE" != 0 ]] && nice -n "$NICE" true 2>/dev/null; then nice_cmd=(nice -n "$NICE"); fi
peer=$OUT/peer/tokio-broadcast
results=$OUT/results
mkdir -p "$results"

if [[ -z "${SKIP_BUILD:-}" ]]; then
  echo "# building Aurora's benchmarks (preset bench) in $BUILD" >&2
  (cd "$repo" && cmake --preset bench -B "$BUILD" >/dev/null)
  cmake --build "$BUILD" -j 2 --target hub_bench db_bench
  echo "# building the tokio peer in $peer (offline, Debian's librust-tokio-dev)" >&2
  rm -rf "$OUT/peer" && mkdir -p "$OUT/peer"
  cp -r "$PEERS/tokio-broadcast" "$OUT/peer/" && chmod -R u+w "$OUT/peer"
  (cd "$peer" && { cargo build --offline --release -j 2 ||
                   { rm -f Cargo.lock && cargo build --offline --release -j 2; }; })
fi
BASE_DB_BIN=
if [[ -n "${BASELINE:-}" ]]; then
  base=$OUT/baseline
  BASE_DB_BIN=$base/db_bench
  if [[ -z "${SKIP_BUILD:-}" ]]; then
    echo "# building db_bench against the library of $BASELINE in $base" >&2
    rm -rf "$base" && mkdir -p "$base"
    git -C "$repo" archive "$BASELINE" include | tar -x -C "$base"
    # The flags of preset bench (Release: -O3 -DNDEBUG, CMake's default gnu++20).
    g++ -std=gnu++20 -O3 -DNDEBUG -I"$base/include" "$here/db_bench.cpp" -o "$BASE_DB_BIN" -pthread
  fi
fi
HUB_BIN=${HUB_BIN:-$BUILD/tests/bench/hub_bench}
DB_BIN=${DB_BIN:-$BUILD/tests/bench/db_bench}
TOKIO_BIN=$peer/target/release/tokio-broadcast-peer
sides=("$TOKIO_BIN:tokio" "$HUB_BIN:hub")
for extra in ${EXTRA_HUBS:-}; do sides+=("${extra#*=}:hub-${extra%%=*}"); done
for s in "${sides[@]}"; do [[ -x "${s%:*}" ]] || { echo "missing ${s%:*}" >&2; exit 1; }; done

wait_quiet() {  # the rule of run_all.sh: < 10 % of the CPUs busy over 1 s, or QUIET_WAIT_S passed
  local waited=0 a b busy tot
  while :; do
    a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
    busy=$(( (b[1]+b[2]+b[3]+b[6]+b[7]+b[8]) - (a[1]+a[2]+a[3]+a[6]+a[7]+a[8]) ))
    tot=$(( busy + (b[4]+b[5]) - (a[4]+a[5]) ))
    (( 100 * busy / (tot > 0 ? tot : 1) < 10 )) && return
    (( waited >= QUIET_WAIT_S )) && return
    sleep 4; waited=$((waited + 5))
  done
}

{
  echo "# machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "# load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# $("$(command -v g++)" --version | head -1); $(rustc --version 2>/dev/null || true)"
  echo "# nice: ${nice_cmd[*]:-none}; QUIET_WAIT_S=$QUIET_WAIT_S"
} | tee "$OUT/machine.txt" >&2

for r in $(seq 1 "$ROUNDS"); do
  # Alternate the order of the sides so that drift over the run does not favour one of them.
  order=("${sides[@]}")
  if (( r % 2 == 0 )); then order=(); for ((i = ${#sides[@]} - 1; i >= 0; i--)); do order+=("${sides[i]}"); done; fi
  for suite in $SUITES; do
    for entry in "${order[@]}"; do
      echo "# round $r/$ROUNDS, suite $suite, ${entry##*:}" >&2
      SUITE=$suite "${nice_cmd[@]}" "$peer/run_all.sh" 1 "$results/${entry##*:}.jsonl" "${entry%:*}" >/dev/null
    done
  done
  if [[ "$DB" == 1 && -x "$DB_BIN" ]]; then
    for n in 0 1 16 64; do
      echo "# round $r/$ROUNDS, db_bench vs raw ring, N=$n" >&2
      # The raw ring on the same N and M: fan-out (publisher task), or publish alone for N=0.
      if (( n == 0 )); then raw=(--workload publish --subs 0); else raw=(--workload fanout --subs "$n"); fi
      wait_quiet; "${nice_cmd[@]}" "$HUB_BIN" "${raw[@]}" --events 200000 --event-mode alloc \
        --run-id "$r" >>"$results/raw-ring.jsonl"
      for w in 1 4; do
        dbs=("$DB_BIN:db")
        if [[ -n "$BASE_DB_BIN" ]]; then
          dbs=("$DB_BIN:db" "$BASE_DB_BIN:db-baseline")
          if (( r % 2 == 0 )); then dbs=("$BASE_DB_BIN:db-baseline" "$DB_BIN:db"); fi
        fi
        for entry in "${dbs[@]}"; do
          wait_quiet; "${nice_cmd[@]}" "${entry%:*}" --writers "$w" --subs "$n" --events 200000 --run-id "$r" \
            >>"$results/${entry##*:}.jsonl"
        done
      done
    done
  fi
done

echo
echo "## Per-configuration medians (quiet runs; summarize.py)"
hub_files=()
for s in "${sides[@]:1}"; do hub_files+=("$results/${s##*:}.jsonl"); done
python3 "$peer/summarize.py" "$results/tokio.jsonl" "${hub_files[@]}"
echo
echo "## Aurora / tokio"
python3 "$here/compare_report.py" --peer "$peer" "$results/tokio.jsonl" "${hub_files[@]}" \
  $([[ -s "$results/db.jsonl" ]] && echo --db "$results/db.jsonl" --raw "$results/raw-ring.jsonl") \
  $([[ -s "$results/db-baseline.jsonl" ]] && echo --db-baseline "$results/db-baseline.jsonl" --baseline-name "$BASELINE")
for view in "--probe-below 100:cache-line hand-off < 100 ns (vCPUs placed close)" \
            "--probe-above 100:cache-line hand-off >= 100 ns (vCPUs placed apart)"; do
  echo
  echo "## Aurora / tokio, only runs with ${view#*:}"
  python3 "$here/compare_report.py" --peer "$peer" ${view%%:*} --main-only "$results/tokio.jsonl" "${hub_files[@]}"
done
cat "$OUT/machine.txt"
echo "# load after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
