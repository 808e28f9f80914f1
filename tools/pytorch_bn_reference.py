"""PyTorch timings for the batch-norm section of Kestrel's kernel benchmark
(python_free_examples/bench/bench_batchnorm.cpp): the same bench names, configs, shapes,
layouts (channels_last for nhwc), dtypes and byte counts, so tools/gpu_summary.py can join them.

  bn_fwd / bn_fwd_bwd                   nn.BatchNorm2d in training mode
  bn_relu_fwd / bn_relu_fwd_bwd         relu_(bn(x))            (torchvision's BasicBlock style)
  bn_add_relu_fwd / bn_add_relu_fwd_bwd relu_(bn(x) += r)       (r receives a gradient too)

Timed with tools/pytorch_reference.py's Bench (the CUDA-event median of Kestrel's harness),
buffers rotated over >= 2 sets that together exceed 3x L2, gradients of x (and r) reset every
run so backward writes rather than accumulates. Run through `pytorch_reference.py --only
batchnorm`; this module holds the batch-norm section: bench_batchnorm(b) with that Bench.
"""

SHAPES = [(256, 64, 32, 32), (512, 16, 32, 32)]
# bench prefix, activation, forward passes, forward + backward passes (as bench_batchnorm.cpp)
VARIANTS = [("bn", "none", 3, 8), ("bn_relu", "relu", 3, 10), ("bn_add_relu", "add_relu", 4, 12)]


def bench_batchnorm(b):
    """b: pytorch_reference.Bench (torch, quick, rotation_sets, median_us, report)."""
    torch = b.torch
    dev = torch.device("cuda")
    dtypes = [("fp32", torch.float32)] + ([] if b.quick else [("bf16", torch.bfloat16)])
    for dname, dt in dtypes:
        for layout in ("nchw", "nhwc"):
            fmt = torch.channels_last if layout == "nhwc" else torch.contiguous_format
            for (n, c, h, w) in SHAPES:
                config = "%s %s %dx%dx%dx%d" % (dname, layout, n, c, h, w)
                tensor = n * c * h * w * torch.finfo(dt).bits // 8
                sets = max(2, b.rotation_sets(6 * tensor))

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
                    def forward(buf, act=act):
                        y = bn(buf["x"])
                        if act == "add_relu":
                            y += buf["r"]
                        if act != "none":
                            y = torch.relu_(y)
                        return y

                    def fwd(i):
                        forward(bufs[i % sets])

                    def fwd_bwd(i):
                        buf = bufs[i % sets]
                        buf["x"].grad = None
                        buf["r"].grad = None
                        bn.weight.grad = None
                        bn.bias.grad = None
                        forward(buf).backward(buf["dy"])

                    b.report(prefix + "_fwd", config, b.median_us(fwd), fwd_passes * tensor)
                    b.report(prefix + "_fwd_bwd", config, b.median_us(fwd_bwd), fb_passes * tensor)
                del bufs, bn
                torch.cuda.empty_cache()
