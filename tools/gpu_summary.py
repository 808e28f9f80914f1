#!/usr/bin/env python3
"""Prints the short table tools/gpu_check.sh ends with: every benchmark line of bench.jsonl,
joined with the PyTorch line of the same name and config from pytorch.jsonl (ratio = PyTorch
time / Kestrel time for timings, Kestrel / PyTorch for throughput: above 1 means Kestrel wins).

JSON-line schema (one object per line, written by bench_* and tools/pytorch_reference.py):
  {"bench": str, "config": str, "impl": "kestrel"|"pytorch"|..., "device": str,
   "median_us": float?, "gbps": float?, "pct_copy": float?, "images_per_s": float?,
   "peak_mem_mb": float?}
"""
import json
import os
import sys


def load(path):
    rows = []
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return rows


def main(out):
    ours = load(os.path.join(out, "bench.jsonl"))
    # Eager PyTorch is the reference; other impls (e.g. "pytorch_compile") stay in the JSON only.
    ref = {(r.get("bench"), r.get("config")): r for r in load(os.path.join(out, "pytorch.jsonl"))
           if r.get("impl", "pytorch") == "pytorch"}
    if not ours:
        print("gpu_summary: no benchmark lines")
        return
    print("\n%-28s %-34s %11s %9s %7s %11s %8s" % ("bench", "config", "kestrel", "GB/s", "%copy", "pytorch", "ratio"))
    for r in ours:
        key = (r.get("bench"), r.get("config"))
        p = ref.get(key, {})
        if "images_per_s" in r:
            k, pv = r["images_per_s"], p.get("images_per_s")
            ratio = k / pv if pv else None
            kv, pvs = "%.0f img/s" % k, ("%.0f" % pv if pv else "-")
        else:
            k, pv = r.get("median_us"), p.get("median_us")
            ratio = pv / k if (pv and k) else None
            kv, pvs = ("%.1f us" % k if k else "-"), ("%.1f us" % pv if pv else "-")
        print("%-28s %-34s %11s %9s %7s %11s %8s" % (
            r.get("bench", "?")[:28], str(r.get("config", ""))[:34], kv,
            "%.0f" % r["gbps"] if r.get("gbps") else "-",
            "%.0f%%" % r["pct_copy"] if r.get("pct_copy") else "-", pvs,
            "%.2fx" % ratio if ratio else "-"))
    dev = ours[0].get("device", "?")
    print("device: %s" % dev)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out")
