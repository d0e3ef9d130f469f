#!/usr/bin/env python3
"""Where a traced `ecf8 run` spends its steps: GPU- or CPU-timed spans of rank 0, per lane and per span kind.

usage: trace_summary.py TRACE.json [--skip-steps N] [--top K]
  --skip-steps N   leave out the first N steps (default 1: step 0, the prefill)
  --top K          the K largest rows (default 16)

Span names lose their layer number ("compute L3 attention" counts as "compute attention"), and each kind's
total is divided by the steps counted, so the table reads as milliseconds per step. The busiest lane's
share of the step says how much of the step that lane covers; the rest is waiting or overlap elsewhere.
"""
import json
import re
import sys
from collections import defaultdict

args = sys.argv[1:]


def option(name, default):
    if name not in args:
        return default
    i = args.index(name)
    value = int(args[i + 1])
    del args[i : i + 2]
    return value


skip = option("--skip-steps", 1)
top = option("--top", 16)
if len(args) != 1:
    sys.exit(__doc__)
data = json.load(open(args[0]))
events = data["traceEvents"] if isinstance(data, dict) else data
lanes = {}
for e in events:
    if e.get("ph") == "M" and e.get("name") == "thread_name":
        lanes[(e["pid"], e["tid"])] = e["args"]["name"]
rank0 = min((p for p, _ in lanes), default=0)
spans = [e for e in events if "dur" in e and e.get("pid", 0) == rank0]
steps = sorted((e for e in spans if e["name"] == "step"), key=lambda e: e["ts"])[skip:]
if not steps:
    sys.exit(f"{args[0]}: no step spans after the first {skip}")
totals = defaultdict(float)
counts = defaultdict(int)
for e in spans:
    if e["name"] == "step" or not any(s["ts"] <= e["ts"] < s["ts"] + s["dur"] for s in steps):
        continue
    key = (lanes.get((e["pid"], e["tid"]), "?"), re.sub(r" L\d+", "", e["name"]))
    totals[key] += e["dur"]
    counts[key] += 1
n = len(steps)
step_ms = sum(s["dur"] for s in steps) / n / 1000
print(f"{args[0]}: {n} steps, {step_ms:.3f} ms per step (rank 0)")
print(f"{'lane':<10} {'span':<32} {'ms/step':>9} {'calls/step':>11} {'of step':>8}")
for (lane, name), us in sorted(totals.items(), key=lambda kv: -kv[1])[:top]:
    ms = us / n / 1000
    print(f"{lane:<10} {name:<32} {ms:9.3f} {counts[(lane, name)] / n:11.1f} {ms / step_ms:8.1%}")
