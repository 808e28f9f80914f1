#!/usr/bin/env python3
"""PyTorch timings for the batch-norm section of Kestrel's kernel benchmark
(python_free_examples/bench/bench_batchnorm.cpp): the same bench names, configs, shapes,
layouts (channels_last for nhwc), dtypes and byte counts, so tools/gpu_summary.py can join them.

  bn_fwd / bn_fwd_bwd                   nn.BatchNorm2d in training mode
  bn_relu_fwd / bn_relu_fwd_bwd         relu_(bn(x))            (torchvision's BasicBlock style)
  bn_add_relu_fwd / bn_add_relu_fwd_bwd relu_(bn(x) += r)       (r receives a gradient too)

CUDA-event medians of >= 20 runs after warm-up, buffers rotated over >= 2 sets that together
exceed 3x L2, gradients of x (and r) reset every run so backward writes rather than accumulates.

As a module: bench_batchnorm(args, emit) with args.quick / args.runs (optional) and
emit(bench, config, median_us, bytes). Standalone: pytorch_bn_reference.py [--json FILE] [--quick].
torch is imported only when the benchmark runs.
"""
import argparse
import json
import statistics
import sys

SHAPES = [(256, 64, 32, 32), (512, 16, 32, 32)]
# bench prefix, activation, forward passes, forward + backward passes (as bench_batchnorm.cpp)
VARIANTS = [("bn", "none", 3, 8), ("bn_relu", "relu", 3, 10), ("bn_add_relu", "add_relu", 4, 12)]


def _median_us(torch, fn, runs, warmup):
    for i in range(warmup):
        fn(i)
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
    for r in range(runs):
        starts[r].record()
        fn(warmup + r)
        ends[r].record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) * 1e3 for s, e in zip(starts, ends))


def bench_batchnorm(args, emit):
    import torch

    quick = bool(getattr(args, "quick", False))
    runs = max(20, int(getattr(args, "runs", 20) or 20))
    warmup = 5
    dev = torch.device("cuda")
    l2 = int(getattr(torch.cuda.get_device_properties(dev), "L2_cache_size", 60 << 20))
    dtypes = [("fp32", torch.float32)] + ([] if quick else [("bf16", torch.bfloat16)])
    for dname, dt in dtypes:
        for layout in ("nchw", "nhwc"):
            fmt = torch.channels_last if layout == "nhwc" else torch.contiguous_format
            for (n, c, h, w) in SHAPES:
                config = "%s %s %dx%dx%dx%d" % (dname, layout, n, c, h, w)
                tensor = n * c * h * w * torch.finfo(dt).bits // 8
                sets = max(2, -(-3 * l2 // (6 * tensor)))

                def make(lo, hi):
                    t = torch.empty((n, c, h, w), device=dev, dtype=dt).uniform_(lo, hi)
                    return t.contiguous(memory_format=fmt)

                bufs = [dict(x=make(-1, 3).requires_grad_(), r=make(-1, 1).requires_grad_(),
                             dy=make(-1, 1)) for _ in range(sets)]
                bn = torch.nn.BatchNorm2d(c).to(dev).train()  # fp32 parameters, as Kestrel's
                try:
                    bn(bufs[0]["x"])
                except RuntimeError:  # a build without mixed-dtype batch norm
                    bn = bn.to(dt)

                for prefix, act, fwd_passes, fb_passes in VARIANTS:
                    def forward(b, act=act):
                        y = bn(b["x"])
                        if act == "add_relu":
                            y += b["r"]
                        if act != "none":
                            y = torch.relu_(y)
                        return y

                    def fwd(i):
                        forward(bufs[i % sets])

                    def fwd_bwd(i):
                        b = bufs[i % sets]
                        b["x"].grad = None
                        b["r"].grad = None
                        bn.weight.grad = None
                        bn.bias.grad = None
                        forward(b).backward(b["dy"])

                    us = _median_us(torch, fwd, runs, warmup)
                    emit(prefix + "_fwd", config, us, fwd_passes * tensor)
                    us = _median_us(torch, fwd_bwd, runs, warmup)
                    emit(prefix + "_fwd_bwd", config, us, fb_passes * tensor)
                del bufs, bn
                torch.cuda.empty_cache()


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", default="", help="append one JSON line per measurement here")
    p.add_argument("--quick", action="store_true", help="fp32 only")
    p.add_argument("--runs", type=int, default=20, help="timed runs (>= 20)")
    args = p.parse_args(argv)
    import torch

    device = torch.cuda.get_device_name(0)

    def emit(bench, config, median_us, nbytes):
        gbps = nbytes / (median_us * 1e3) if median_us > 0 else 0.0
        line = json.dumps({"bench": bench, "config": config, "impl": "pytorch", "device": device,
                           "median_us": round(median_us, 3), "gbps": round(gbps, 1)})
        print("%-24s %-28s %10.1f us %8.0f GB/s" % (bench, config, median_us, gbps))
        if args.json:
            with open(args.json, "a") as f:
                f.write(line + "\n")

    bench_batchnorm(args, emit)


if __name__ == "__main__":
    main(sys.argv[1:])
