#!/usr/bin/env python3
"""Aurora / tokio ratios per workload, from the JSON lines of compare.sh.

Usage: compare_report.py --peer PEER_DIR TOKIO.jsonl HUB.jsonl [HUB2.jsonl ...]
                         [--db DB.jsonl --raw RAW.jsonl] [--db-baseline BASE.jsonl --baseline-name REV]
Each HUB file is one build of hub_bench (e.g. the current headers and a proposed change), run in
the same interleaved rounds; each gets a column and a ratio to tokio.
--probe-below NS / --probe-above NS keep only the runs whose probe_c2c_oneway_ns is below / at
or above NS: on a VM whose two vCPUs are sometimes placed close (c2c ~25 ns) and sometimes far
apart (~200 ns) the multi-thread numbers are bimodal, and a ratio should compare like with like.
--main-only prints the first table alone.
--db-baseline: db_bench runs of the same benchmark source built against another revision's
library (compare.sh BASELINE=REV), from the same rounds: a table of this tree over that one.

Medians of quiet runs (the peer's summarize.noisy() decides; when a configuration has no quiet
run, the median of all its runs is shown and marked "noisy"). Ratios compare medians of the
same run, never numbers from different runs. "better" says which way is good.
"""
import argparse
import json
import os
import statistics
from collections import defaultdict

ap = argparse.ArgumentParser()
ap.add_argument("--peer", required=True)
ap.add_argument("tokio")
ap.add_argument("hub", nargs="+")
ap.add_argument("--db")
ap.add_argument("--raw")
ap.add_argument("--db-baseline")
ap.add_argument("--baseline-name", default="baseline")
ap.add_argument("--probe-below", type=float)
ap.add_argument("--probe-above", type=float)
ap.add_argument("--main-only", action="store_true")
args = ap.parse_args()

# The peer's definition of a noisy run (summarize.py, the part before its main loop).
src = open(os.path.join(args.peer, "summarize.py")).read().split("rows = defaultdict(list)")[0]
ns = {}
exec(src, ns)
noisy = ns["noisy"]


def load(path):
    if not path or not os.path.exists(path):
        return []
    runs = [json.loads(l) for l in open(path) if l.startswith("{")]
    if args.probe_below is not None:
        runs = [d for d in runs if d.get("probe_c2c_oneway_ns", 0) < args.probe_below]
    if args.probe_above is not None:
        runs = [d for d in runs if d.get("probe_c2c_oneway_ns", 0) >= args.probe_above]
    return runs


def key(d):
    w = d["workload"]
    if w == "publish":
        return ("publish", d["subs"], d["event_mode"], d["threads"])
    if w == "fanout":
        return ("fanout", d["subs"], d["event_mode"], d["threads"], d.get("idle_subs", 0))
    if w == "latency":
        return ("latency", d["subs"], d["publisher"], d["threads"])
    return (w, d.get("subs"), d["threads"])


def group(runs):
    g = defaultdict(list)
    for d in runs:
        g[key(d)].append(d)
    return g


def median(ds, metric):
    """(median, quiet runs used, all runs) of metric over the quiet runs (all runs if none)."""
    quiet = [d[metric] for d in ds if not noisy(d) and metric in d]
    vals = quiet or [d[metric] for d in ds if metric in d]
    if not vals:
        return None, 0, len(ds)
    return statistics.median(vals), len(quiet), len(ds)


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.2f}M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:.1f}k"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"


def cell(ds, metric):
    m, q, n = median(ds, metric)
    return m, fmt(m) + ("" if q == n else f" ({q}/{n} quiet)" if q else " (noisy)")


tokio_runs = load(args.tokio)
tokio = group(tokio_runs)
hubs = []  # (column name, grouped runs)
for path in args.hub:
    runs = load(path)
    # The side's name (hub, hub-NAME of EXTRA_HUBS) first: two builds may report the same lock.
    side = os.path.splitext(os.path.basename(path))[0]
    name = f"{side}: {runs[0]['impl']}/{runs[0].get('lock', '')}" if runs else side
    hubs.append((name, group(runs)))
tokio_name = tokio_runs[0]["impl_version"] if tokio_runs else "tokio"
print(f"| workload | configuration | metric | better | {tokio_name} | "
      + " | ".join(f"{n} | ratio to tokio" for n, _ in hubs) + " | target |")
print("|---|---|---|---|---|" + "---|---|" * len(hubs) + "---|")


def row(k, label, metric, better, target=""):
    if k not in tokio and not any(k in h for _, h in hubs):
        return
    t, ts = cell(tokio.get(k, []), metric)
    cells = []
    for _, hub in hubs:
        h, hs = cell(hub.get(k, []), metric)
        ratio = f"{h / t:.2f}" if t and h is not None else "-"
        if target and t and h is not None:
            op, bound = target.split()
            ok = h / t >= float(bound) if op == ">=" else h / t <= float(bound)
            ratio += " (met)" if ok else " (NOT met)"
        cells.append(f"{hs} | {ratio}")
    print(f"| {k[0]} | {label} | {metric} | {better} | {ts} | " + " | ".join(cells) + f" | {target} |")


threads = sorted({k[-1] for g in [tokio] + [h for _, h in hubs] for k in g if k[0] == "publish"} or [2])
for th in threads:
    for subs in (0, 1):
        for mode in ("alloc", "pool"):
            row(("publish", subs, mode, th), f"subs={subs} {mode} {th}t", "events_per_s", "higher",
                ">= 1" if subs == 0 else "")
for th in (2, 1):
    for n in (1, 4, 16, 64):
        for mode in ("alloc", "pool"):
            row(("fanout", n, mode, th, 0), f"N={n} {mode} {th}t", "deliveries_per_s", "higher",
                ">= 3" if n in (4, 16, 64) and th == 2 else "")
row(("fanout", 16, "alloc", 2, 1), "N=16 alloc +1 stalled", "deliveries_per_s", "higher")
for n in (1, 16):
    for pub in ("task", "thread"):
        k = ("latency", n, pub, 2)
        row(k, f"N={n} publisher={pub}", "lat_p50_ns", "lower")
        row(k, f"N={n} publisher={pub}", "lat_p99_ns", "lower", "<= 1")
        row(k, f"N={n} publisher={pub}", "all_p99_ns", "lower")
        row(k, f"N={n} publisher={pub}", "roundtrips_per_s", "higher")

if args.main_only:
    raise SystemExit(0)

# A stalled subscriber's cost to the others: 1 - deliveries/s(16 + 1 idle) / deliveries/s(16).
print()
print("| stalled subscriber (N=16 alloc, 2 threads) | tokio | " + " | ".join(n for n, _ in hubs) + " | target |")
print("|---|---|" + "---|" * len(hubs) + "---|")
costs = []
for g in [tokio] + [h for _, h in hubs]:
    base, _ = cell(g.get(("fanout", 16, "alloc", 2, 0), []), "deliveries_per_s")
    stalled, _ = cell(g.get(("fanout", 16, "alloc", 2, 1), []), "deliveries_per_s")
    costs.append(f"{(1 - stalled / base) * 100:+.1f} %" if base and stalled else "-")
print("| cost to the 16 readers | " + " | ".join(costs) + " | Aurora < 10 % |")

# Lag arithmetic: exact for the hub (capacity exactly 10,000), power of two for tokio.
print()
print("| lag, 100,000 events to an idle reader | tokio | " + " | ".join(n for n, _ in hubs) + " | Aurora expected |")
print("|---|---|" + "---|" * len(hubs) + "---|")
for metric, want in (("lagged_n", 90000), ("resume_seq", 90000), ("retained_after_lag", 10000)):
    seen = [sorted({d[metric] for d in g.get(("lag", 1, 2), [])}) for g in [tokio] + [h for _, h in hubs]]
    ok = "exact" if all(v == [want] for v in seen[1:]) else "NOT exact"
    print(f"| {metric} | " + " | ".join(",".join(map(str, v)) or "-" for v in seen) + f" | {want} ({ok}) |")

# The database path against the raw ring (hub_bench fanout, alloc events, same N and M).
db, raw = load(args.db), load(args.raw)
if db:
    print()
    print("| db_bench | writers | subs (filtered) | inserts/s | events/s | deliveries/s | p50 | p99 | VmHWM | "
          "raw ring events/s | db/raw |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    dbg = defaultdict(list)
    for d in db:
        dbg[(d["writers"], d["subs"])].append(d)
    rawg = defaultdict(list)
    for d in raw:
        rawg[d["subs"]].append(d)
    for (w, n) in sorted(dbg):
        ds = dbg[(w, n)]
        ev, evs = cell(ds, "events_per_s")
        rv, rvs = cell(rawg.get(n, []), "events_per_s")
        ratio = f"{ev / rv:.2f}" if ev and rv else "-"
        hwm, _, _ = median(ds, "vm_hwm_kib")
        print(f"| | {w} | {n} ({ds[0].get('filtered_subs', 0)}) | {cell(ds, 'inserts_per_s')[1]} | {evs} | "
              f"{cell(ds, 'deliveries_per_s')[1]} | {fmt(median(ds, 'lat_p50_ns')[0] / 1e3)} us | "
              f"{fmt(median(ds, 'lat_p99_ns')[0] / 1e3)} us | {hwm / 1024:.0f} MiB | {rvs} | {ratio} |")
    print("\n(db/raw: events/s of the database path over the raw ring's at the same N (hub_bench fanout, "
          "alloc events, publisher task; N=0: hub_bench publish); target >= 0.5. subs 0: the write path "
          "alone, no channel exists.)")

# The same db_bench source against another revision's library, from the same rounds.
base = load(args.db_baseline)
if db and base:
    name = args.baseline_name
    print()
    print(f"| db_bench | writers | subs | inserts/s {name} | inserts/s now | now/{name} | "
          f"deliveries/s {name} | deliveries/s now | now/{name} |")
    print("|---|---|---|---|---|---|---|---|---|")
    baseg = defaultdict(list)
    for d in base:
        baseg[(d["writers"], d["subs"])].append(d)
    for (w, n) in sorted(dbg):
        if (w, n) not in baseg:
            continue
        cells = []
        for metric in ("inserts_per_s", "deliveries_per_s"):
            old_v, old_s = cell(baseg[(w, n)], metric)
            new_v, new_s = cell(dbg[(w, n)], metric)
            cells += [old_s, new_s, f"{new_v / old_v:.2f}" if old_v and new_v else "-"]
        print(f"| | {w} | {n} | " + " | ".join(cells) + " |")
    print(f"\n(now/{name} above 1: this tree is faster. Both sides are db_bench from this tree's source; "
          "only the library differs.)")
