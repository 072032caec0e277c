#!/usr/bin/env bash
# ws_compare.sh: Aurora's FeedServer beside a Node.js `ws` server (tests/bench/ws-peer), both
# broadcasting the same event messages to the same C++ client (ws_bench --role client: 64
# WebSockets on one thread), interleaved round by round, then the medians as one JSON line.
# Aurora runs twice per round: on one thread without strands (FeedServerOptions::single_threaded,
# like Node's one event loop) and with a strand per connection (`aurora-strands`, what a server
# on a multi-threaded context pays).
#
# Usage: tests/bench/ws_compare.sh [ROUNDS=3] [OUT=/tmp/aurora-ws-compare]
# Environment:
#   BUILD=build/bench    Aurora's build directory (preset `bench`: g++ 12, -O3 -DNDEBUG); built
#                        here (target ws_bench) unless SKIP_BUILD=1
#   CLIENTS=64 EVENTS=20000   throughput runs: EVENTS events as fast as each server can
#   RATE=1000 RATE_EVENTS=5000 latency runs: RATE_EVENTS events at RATE per second (p99 of
#                        insert-to-client latency is meaningful only below saturation)
#   NICE=-15             servers and client run at this nice level (needs root, ignored
#                        otherwise), so that builds sharing the machine take less of their CPU
#
# Per run ws_bench prints {"server":..,"deliveries_per_s":..,"latency_p99_us":..,"ok":..}, to which
# the script adds the server's CPU time (user + system, the server reports it as it exits); the
# lines go to $OUT/results.jsonl. On 2 cores the client takes a core's share too, so deliveries/s
# is bounded by both processes; server CPU per delivery is what the server alone costs. Needs node and npm (the peer is installed with `npm ci` from its
# committed package-lock.json into $OUT/ws-peer).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
ROUNDS=${1:-3}
OUT=$(mkdir -p "${2:-/tmp/aurora-ws-compare}" && cd "${2:-/tmp/aurora-ws-compare}" && pwd)
BUILD=${BUILD:-$repo/build/bench}
CLIENTS=${CLIENTS:-64}
EVENTS=${EVENTS:-20000}
RATE=${RATE:-1000}
RATE_EVENTS=${RATE_EVENTS:-5000}
NICE=${NICE:--15}
nice_cmd=()
if [[ "$NICE" != 0 ]] && nice -n "$NICE" true 2> /dev/null; then nice_cmd=(nice -n "$NICE"); fi

if [[ -z "${SKIP_BUILD:-}" ]]; then
  (cd "$repo" && cmake --preset bench -B "$BUILD" > /dev/null)
  cmake --build "$BUILD" -j 2 --target ws_bench
fi
bench=$BUILD/tests/bench/ws_bench
mkdir -p "$OUT/ws-peer"
cp "$here/ws-peer/package.json" "$here/ws-peer/package-lock.json" "$here/ws-peer/server.js" "$OUT/ws-peer/"
(cd "$OUT/ws-peer" && npm ci --no-audit --no-fund --silent)
results=$OUT/results.jsonl
: > "$results"

# run LABEL RATE EVENTS SERVER-COMMAND...: starts the server, reads its port, runs the client.
run() {
  local label=$1 rate=$2 events=$3
  shift 3
  coproc server { exec "${nice_cmd[@]}" "$@" --clients "$CLIENTS" --events "$events" --rate "$rate"; }
  # A copy of the server's output: bash closes the coproc's own descriptors when it exits, and
  # its last line (its CPU time) is read after that.
  local server_pid=$server_PID word port server_out
  exec {server_out}<&"${server[0]}"
  read -r word port <&"$server_out"
  [[ "$word" == listening ]] || { echo "ws_compare: $label did not start" >&2; exit 1; }
  local result cpu_word cpu
  result=$("${nice_cmd[@]}" "$bench" --role client --url "ws://127.0.0.1:$port/feed" --clients "$CLIENTS" \
             --events "$events" --rate "$rate" --label "$label")
  # The client run is over: end the server's standard input (ws_bench's server stops then; the
  # Node peer stops when its clients are gone).
  local server_in=${server[1]}
  exec {server_in}>&-
  read -r cpu_word cpu <&"$server_out" || true
  exec {server_out}<&-
  wait "$server_pid"
  [[ "$cpu_word" == cpu ]] || { echo "ws_compare: $label did not report its CPU time" >&2; exit 1; }
  echo "${result%\}},\"server_cpu_s\":$cpu}" | tee -a "$results"
}

for ((round = 1; round <= ROUNDS; ++round)); do
  echo "# round $round of $ROUNDS" >&2
  run aurora 0 "$EVENTS" "$bench" --role server
  run aurora-strands 0 "$EVENTS" "$bench" --role server --strands 1
  run node 0 "$EVENTS" node "$OUT/ws-peer/server.js"
  run aurora "$RATE" "$RATE_EVENTS" "$bench" --role server
  run node "$RATE" "$RATE_EVENTS" node "$OUT/ws-peer/server.js"
done

python3 - "$results" <<'EOF'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
assert all(r["ok"] for r in runs), "a run lost or missed events"
def median(server, rate, key):
    return statistics.median(r[key] for r in runs if r["server"] == server and (r["rate"] > 0) == rate)
out = {"bench": "ws_fanout_compare", "rounds": len(runs) // 5, "clients": runs[0]["clients"]}
for r in runs:
    r["server_cpu_ns_per_delivery"] = r["server_cpu_s"] * 1e9 / r["deliveries"]
for s in ("aurora", "aurora-strands", "node"):
    out[s + "_deliveries_per_s"] = round(median(s, False, "deliveries_per_s"))
    out[s + "_server_cpu_ns_per_delivery"] = round(median(s, False, "server_cpu_ns_per_delivery"))
for s in ("aurora", "node"):
    out[s + "_latency_p50_us_at_rate"] = round(median(s, True, "latency_p50_us"), 1)
    out[s + "_latency_p99_us_at_rate"] = round(median(s, True, "latency_p99_us"), 1)
out["rate_per_s"] = next(r["rate"] for r in runs if r["rate"] > 0)
out["throughput_ratio_aurora_over_node"] = round(out["aurora_deliveries_per_s"] / out["node_deliveries_per_s"], 3)
out["throughput_ratio_aurora_strands_over_node"] = round(
    out["aurora-strands_deliveries_per_s"] / out["node_deliveries_per_s"], 3)
out["server_cpu_ratio_node_over_aurora"] = round(
    out["node_server_cpu_ns_per_delivery"] / out["aurora_server_cpu_ns_per_delivery"], 3)
out["server_cpu_ratio_node_over_aurora_strands"] = round(
    out["node_server_cpu_ns_per_delivery"] / out["aurora-strands_server_cpu_ns_per_delivery"], 3)
print(json.dumps(out))
EOF
