#!/usr/bin/env python3
"""Prints the short table tools/gpu_check.sh ends with: every benchmark line of bench.jsonl,
joined with the PyTorch line of the same name and config from pytorch.jsonl (ratio = PyTorch
time / Kestrel time for timings, Kestrel / PyTorch for throughput: above 1 means Kestrel wins).

JSON-line schema (one object per line, written by bench_* and tools/pytorch_reference.py):
  {"bench": str, "config": str, "impl": "kestrel"|"pytorch"|..., "device": str,
   "median_us": float?, "gbps": float?, "pct_copy": float?, "images_per_s": float?,
   "peak_mem_mb": float?}

Kestrel's config may end in " graph" or " nograph" (CUDA Graph replay on or off), after " keep"
(BN+ReLU outputs kept for backward, recomputation off), where PyTorch's has no such parts: a
config without an exact PyTorch match is looked up without them. Throughput
rows (images_per_s) get a second table with torch.compile's figures and peak memory.
"""
import json
import os
import sys


NOTES = []  # what is missing or unreadable, printed under the tables


def load(path):
    rows, bad = [], 0
    if not os.path.exists(path):
        NOTES.append("%s: missing" % os.path.basename(path))
        return rows
    for line in open(path, errors="replace"):
        line = line.strip()
        try:
            r = json.loads(line) if line else None
        except json.JSONDecodeError:
            r = None
        if isinstance(r, dict):
            rows.append(r)
        elif line:
            bad += 1
    if bad:
        NOTES.append("%s: %d unreadable line(s) skipped" % (os.path.basename(path), bad))
    if not rows:
        NOTES.append("%s: no rows" % os.path.basename(path))
    return rows


def num(v):
    """A number to print, or None (absent, null, text, NaN)."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v else None


KESTREL_SUFFIXES = (" graph", " nograph", " keep")


def base_config(config):
    """The config without Kestrel's own suffixes: CUDA Graph on/off and BN+ReLU outputs kept
    instead of recomputed ("resnet20 b512 bf16 nhwc keep graph" -> "resnet20 b512 bf16 nhwc")."""
    config = str(config or "")
    stripped = True
    while stripped:
        stripped = False
        for suffix in KESTREL_SUFFIXES:
            if config.endswith(suffix):
                config = config[: -len(suffix)]
                stripped = True
    return config


def lookup(table, row):
    """The reference row of the same bench and config, else of the same bench and base config."""
    key = (row.get("bench"), row.get("config"))
    if key in table:
        return table[key]
    return table.get((row.get("bench"), base_config(row.get("config"))), {})


def throughput_table(ours, compiled, ref):
    rows = [r for r in ours if "images_per_s" in r]
    if not rows:
        return
    print("\n%-44s %11s %11s %7s %11s %7s %9s %9s %7s" % (
        "resnet_train config", "kestrel", "pytorch", "ratio", "compile", "ratio", "MB", "torch MB", "ratio"))
    for r in rows:
        p, c = lookup(ref, r), lookup(compiled, r)
        k, pv, cv = num(r.get("images_per_s")), num(p.get("images_per_s")), num(c.get("images_per_s"))
        km, pm = num(r.get("peak_mem_mb")), num(p.get("peak_mem_mb"))
        if not k:
            continue
        print("%-44s %11.0f %11s %7s %11s %7s %9s %9s %7s" % (
            str(r.get("config", ""))[:44], k, "%.0f" % pv if pv else "-", "%.2fx" % (k / pv) if pv else "-",
            "%.0f" % cv if cv else "-", "%.2fx" % (k / cv) if cv else "-",
            "%.0f" % km if km else "-", "%.0f" % pm if pm else "-",
            "%.2fx" % (pm / km) if (km and pm) else "-"))
    print("(images/s ratios: Kestrel / PyTorch; memory ratio: PyTorch / Kestrel; above 1 Kestrel wins)")
    untuned = [r for r in rows if num(r.get("untuned_conv_plans"))]
    if untuned:
        print("note: %d row(s) ran convolution plans that autotuning could not time (cuDNN's first choice; "
              "bench_resnet's output says why), e.g. %s" % (len(untuned), untuned[0].get("config")))


def main(out):
    ours = load(os.path.join(out, "bench.jsonl"))
    theirs = load(os.path.join(out, "pytorch.jsonl"))
    # Eager PyTorch is the reference of the main table; torch.compile shows in the throughput table.
    ref = {(r.get("bench"), r.get("config")): r for r in theirs if r.get("impl", "pytorch") == "pytorch"}
    compiled = {(r.get("bench"), r.get("config")): r for r in theirs if r.get("impl") == "pytorch_compile"}
    if not ours:
        print("gpu_summary: no benchmark lines" + "".join("\n  " + n for n in NOTES))
        return
    print("\n%-28s %-44s %11s %9s %7s %11s %8s" % ("bench", "config", "kestrel", "GB/s", "%copy", "pytorch", "ratio"))
    for r in ours:
        if "images_per_s" in r:
            continue  # throughput rows have their own table below
        p = lookup(ref, r)
        k, pv = num(r.get("median_us")), num(p.get("median_us"))
        ratio = pv / k if (pv and k) else None
        kv, pvs = ("%.1f us" % k if k else "-"), ("%.1f us" % pv if pv else "-")
        print("%-28s %-44s %11s %9s %7s %11s %8s" % (
            str(r.get("bench") or "?")[:28], str(r.get("config", ""))[:44], kv,
            "%.0f" % num(r.get("gbps")) if num(r.get("gbps")) else "-",
            "%.0f%%" % num(r.get("pct_copy")) if num(r.get("pct_copy")) else "-", pvs,
            "%.2fx" % ratio if ratio else "-"))
    throughput_table(ours, compiled, ref)
    # Rows on one side only (no PyTorch twin by design: bn_relu_apply, ResNet fp32 NHWC / bf16 NCHW).
    def twin_expected(r):
        base = base_config(r.get("config"))
        return r.get("bench") != "bn_relu_apply" and not base.endswith((" fp32 nhwc", " bf16 nchw"))
    no_ref = [r for r in ours if twin_expected(r) and not lookup(ref, r)]
    if theirs and no_ref:
        NOTES.append("%d Kestrel row(s) without a PyTorch row, e.g. %s %s" % (
            len(no_ref), no_ref[0].get("bench"), no_ref[0].get("config")))
    mine = {(r.get("bench"), base_config(r.get("config"))) for r in ours}
    lost = sorted({k for k in list(ref) + list(compiled) if k not in mine and (k[0], base_config(k[1])) not in mine},
                  key=lambda k: (str(k[0]), str(k[1])))
    if lost:
        NOTES.append("%d PyTorch row(s) without a Kestrel row, e.g. %s %s" % (len(lost), lost[0][0], lost[0][1]))
    dev = ours[0].get("device", "?")
    print("device: %s" % dev)
    for n in NOTES:
        print("missing: %s" % n)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out")
