#!/usr/bin/env python3
"""drill-summary.py DIR... - p50/p95 over repeated drills (make bench-drill).

Each DIR holds one drill's report.json (haagent drill --mode both). Prints, per mode, the
median and 95th percentile over the runs of what the client saw (the published experiment's
table: RTT before/during/after, the longest gap, HTTP latency, host CPU), the live
migrations' downtime, and how often the migrate target held (longest gap <= downtime + 2
probe intervals for every guest, no HTTP request lost). Nearest-rank percentiles.
"""
import json
import math
import sys


def pct(values, p):
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)]


def fmt(x, unit=""):
    return "-" if x is None else ("%.2f%s" % (x, unit) if abs(x) < 10 else "%.1f%s" % (x, unit))


runs = [json.load(open(d + "/report.json")) for d in sys.argv[1:]]
if not runs:
    sys.exit("drill-summary: no report given")
modes = [r["mode"] for r in runs[0]["runs"]]
node = runs[0]["node"]
rows = [
    ("RTT before p50 (ms)", lambda r: [r["overall"]["before"]["rtt"]["p50_ms"]]),
    ("RTT during p50 (ms)", lambda r: [r["overall"]["during"]["rtt"]["p50_ms"]]),
    ("RTT during p99 (ms)", lambda r: [r["overall"]["during"]["rtt"]["p99_ms"]]),
    ("RTT after p50 (ms)", lambda r: [r["overall"]["after"]["rtt"]["p50_ms"]]),
    ("longest gap, any guest (ms)", lambda r: [r["overall"]["max_gap_ms"]]),
    ("gap per guest (ms)", lambda r: [g["max_gap_ms"] for g in r["guests"]]),
    ("downtime per guest (ms)", lambda r: [g["downtime_ms"] for g in r["guests"]]),
    ("probes lost per guest", lambda r: [g["probes_lost"] for g in r["guests"]]),
    ("HTTP latency during p99 (ms)",
     lambda r: [g["phases"]["during"]["http"]["latency"]["p99_ms"] for g in r["guests"]]),
    ("HTTP errors", lambda r: [r["overall"]["http_errors"]]),
    ("mark to empty (ms)", lambda r: [r["mark_to_empty_ms"]]),
    ("CPU %s during (%% of a CPU)" % node, lambda r: [r["cpu_percent"].get(node, {}).get("during")]),
    ("CPU others during (%)", lambda r: [v.get("during") for n, v in r["cpu_percent"].items() if n != node]),
]
print("== %d drills of node %s, %s; p50 / p95 over the runs (per guest: over every guest of every run)"
      % (len(runs), node, " then ".join(modes)))
print("   %-30s" % "measure" + "".join("%-24s" % m for m in modes))
for name, get in rows:
    cells = []
    for i, _ in enumerate(modes):
        vals = [x for rep in runs if i < len(rep["runs"]) for x in get(rep["runs"][i])]
        cells.append("%s / %s" % (fmt(pct(vals, 50)), fmt(pct(vals, 95))))
    print("   %-30s" % name + "".join("%-24s" % c for c in cells))
if "migrate" in modes and "stopstart" in modes:
    mi, si = modes.index("migrate"), modes.index("stopstart")
    ratios = [pct([g["max_gap_ms"] for g in rep["runs"][si]["guests"]], 50) /
              max(pct([g["max_gap_ms"] for g in rep["runs"][mi]["guests"]], 50), 1e-9)
              for rep in runs if len(rep["runs"]) > max(mi, si)]
    print("   the client's gap, stop/start over live migration (median guest): p50 %.1fx, p95 %.1fx"
          % (pct(ratios, 50), pct(ratios, 95)))
if "migrate" in modes:
    mi = modes.index("migrate")
    met = sum(1 for rep in runs if all(g.get("gap_target_met") for g in rep["runs"][mi]["guests"]))
    nolost = sum(1 for rep in runs if rep["runs"][mi]["overall"]["http_errors"] == 0)
    print("   target (migrate): longest gap <= downtime + 2 probe intervals for every guest: %s (met in %d of %d runs)"
          % ("MET" if met == len(runs) else "MISSED", met, len(runs)))
    print("   target (migrate): no HTTP request lost: %s (met in %d of %d runs)"
          % ("MET" if nolost == len(runs) else "MISSED", nolost, len(runs)))
