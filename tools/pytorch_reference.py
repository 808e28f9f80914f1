#!/usr/bin/env python3
"""PyTorch's timings for what bench_kernels measures, as JSON lines that tools/gpu_summary.py joins
with Kestrel's by ("bench", "config"): the same sizes, dtypes and configuration strings.

Not part of the library; needs PyTorch with CUDA (2.11 on the GPU machine). Method, as in
python_free_examples/bench/harness.cpp: CUDA events around each call, median of >= 20 timed runs
after warm-up, inputs rotated over enough buffer sets that one pass exceeds 3x L2, GB/s from the
fewest bytes the operation must move (the same count Kestrel reports, so the ratios compare times).

Sections (--only): each is one function in SECTIONS taking a Bench. To add a kernel family, write
a function that times PyTorch's equivalent and calls bench.report(bench, config, us, bytes) with
the strings bench_kernels prints, and add it to SECTIONS.

JSON line: {"impl": "pytorch" (eager) | "pytorch_compile", "bench", "config", "device",
            "median_us", "gbps", "pct_copy" (when the copy section ran)}
Section "resnet" (bench_resnet's measurements) writes {"impl", "bench": "resnet_train", "config",
"device", "images_per_s", "peak_mem_mb", "step_ms"}; its configs have no " graph"/" nograph" part
(PyTorch has no such switch here): tools/gpu_summary.py joins them with both of Kestrel's rows.
"""
import argparse
import gc
import os
import json
import sys

MI = 1 << 20


class Bench:
    def __init__(self, torch, quick, json_path):
        self.torch = torch
        self.quick = quick
        self.json_path = json_path
        self.device = torch.cuda.get_device_name(0)
        props = torch.cuda.get_device_properties(0)
        self.l2_bytes = int(getattr(props, "L2_cache_size", 0) or 50 * MI)
        self.warmup = 2 if quick else 5
        self.runs = 20
        self.copy_gbps = None
        # Elements of the streaming-kernel benchmarks (bench_elementwise.cpp: 64M, quick 4M).
        self.elements = (4 if quick else 64) * MI

    def rotation_sets(self, bytes_per_set):
        """Buffer sets to rotate through so that one pass exceeds 3x L2 (harness.cpp)."""
        return max(1, -(-3 * max(self.l2_bytes, 1) // max(bytes_per_set, 1)))

    def median_us(self, fn):
        """fn(i) enqueues one call on the current stream; median microseconds of the timed runs."""
        torch = self.torch
        i = 0
        for _ in range(self.warmup):
            fn(i)
            i += 1
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(self.runs)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(self.runs)]
        for r in range(self.runs):
            starts[r].record()
            fn(i)
            i += 1
            ends[r].record()
        torch.cuda.synchronize()
        us = sorted(1e3 * s.elapsed_time(e) for s, e in zip(starts, ends))
        return us[len(us) // 2]  # the element harness.cpp's nth_element picks

    def report(self, bench, config, us, bytes_moved, impl="pytorch"):
        gbps = bytes_moved / (us * 1e3) if bytes_moved else 0.0
        pct = 100.0 * gbps / self.copy_gbps if (gbps and self.copy_gbps) else 0.0
        print("%-16s %-22s %-28s %12.1f %10.0f %7s" % (
            impl, bench, config, us, gbps, ("%.0f%%" % pct) if pct else "-"), flush=True)
        line = {"impl": impl, "bench": bench, "config": config, "device": self.device,
                "median_us": round(us, 3), "gbps": round(gbps, 1)}
        if pct:
            line["pct_copy"] = round(pct, 1)
        if self.json_path:
            with open(self.json_path, "a") as f:
                f.write(json.dumps(line) + "\n")

    def report_throughput(self, bench, config, images_per_s, peak_mem_mb, step_ms, impl="pytorch",
                          peak_with_setup_mb=None):
        """A training-throughput line (bench_resnet's fields)."""
        print("%-16s %-22s %-28s %12.3f ms %9.0f img/s %8.1f MB" % (
            impl, bench, config, step_ms, images_per_s, peak_mem_mb), flush=True)
        line = {"impl": impl, "bench": bench, "config": config, "device": self.device,
                "images_per_s": round(images_per_s, 1), "peak_mem_mb": round(peak_mem_mb, 1),
                "step_ms": round(step_ms, 4)}
        if peak_with_setup_mb is not None:
            line["peak_with_setup_mb"] = round(peak_with_setup_mb, 1)
        if self.json_path:
            with open(self.json_path, "a") as f:
                f.write(json.dumps(line) + "\n")

    def dtypes(self):
        t = self.torch
        return [("fp32", t.float32), ("bf16", t.bfloat16)]

    def size_label(self, n):
        return "%dM" % (n // MI)

    def uniform(self, n, dtype, count):
        return [self.torch.empty(n, device="cuda", dtype=dtype).uniform_(-1, 1) for _ in range(count)]


def bench_copy(b):
    """copy, "1 GiB device-to-device": bytes read + written, as Harness::measure_copy_bandwidth."""
    torch = b.torch
    nbytes = 1 << 30
    src = torch.zeros(nbytes, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    us = b.median_us(lambda i: dst.copy_(src))
    b.copy_gbps = 2.0 * nbytes / (us * 1e3)
    b.report("copy", "1 GiB device-to-device", us, 2.0 * nbytes)


def bench_dropout(b):
    """dropout_fwd / dropout_bwd, "<dtype> <n>M p=0.5". Forward is F.dropout (which also writes
    PyTorch's bool mask); backward is PyTorch's own dropout backward, grad * mask * scale through
    the stored mask (aten.native_dropout_backward). Bytes: x read + y written, as for Kestrel."""
    torch = b.torch
    F = torch.nn.functional
    n = b.elements
    for name, dt in b.dtypes():
        esize = torch.empty(0, dtype=dt).element_size()
        config = "%s %s p=0.5" % (name, b.size_label(n))
        sets = b.rotation_sets(2 * n * esize)
        xs = b.uniform(n, dt, sets)
        us = b.median_us(lambda i: F.dropout(xs[i % sets], p=0.5, training=True))
        b.report("dropout_fwd", config, us, 2.0 * n * esize)
        masks = [torch.ops.aten.native_dropout(x, 0.5, True)[1] for x in xs]
        us = b.median_us(lambda i: torch.ops.aten.native_dropout_backward(xs[i % sets], masks[i % sets], 2.0))
        b.report("dropout_bwd", config, us, 2.0 * n * esize)
        del xs, masks


def bench_add_relu(b):
    """add_relu, "<dtype> <n>M": relu(a + b) eager (two kernels) and torch.compile (fused).
    Bytes: a, b read + y written."""
    torch = b.torch
    n = b.elements
    fused = None
    try:
        fused = torch.compile(lambda x, y: torch.relu(x + y), dynamic=False)
    except Exception as e:  # noqa: BLE001 - report and keep the eager figures
        print("pytorch_reference: torch.compile unavailable: %s" % e, file=sys.stderr)
    for name, dt in b.dtypes():
        esize = torch.empty(0, dtype=dt).element_size()
        config = "%s %s" % (name, b.size_label(n))
        sets = b.rotation_sets(3 * n * esize)
        xs, ys = b.uniform(n, dt, sets), b.uniform(n, dt, sets)
        us = b.median_us(lambda i: torch.relu(xs[i % sets] + ys[i % sets]))
        b.report("add_relu", config, us, 3.0 * n * esize)
        if fused is not None:
            try:
                fused(xs[0], ys[0])  # compile outside the timing
                us = b.median_us(lambda i: fused(xs[i % sets], ys[i % sets]))
                b.report("add_relu", config, us, 3.0 * n * esize, impl="pytorch_compile")
            except Exception as e:  # noqa: BLE001
                print("pytorch_reference: torch.compile failed: %s" % e, file=sys.stderr)
        del xs, ys


def bench_batchnorm(b):
    """Batch-norm section: tools/pytorch_bn_reference.py holds the measurements."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import pytorch_bn_reference  # noqa: E402  (a sibling module of this script)

    pytorch_bn_reference.bench_batchnorm(b)


def bench_resnet(b):
    """resnet_train, "resnet20 b512 bf16 nhwc" (bench_resnet.cpp without its graph/nograph part):
    training steps of the CIFAR ResNet v1 of tools/pytorch_resnet.py (the same architecture as
    Kestrel's: 1x1 projection shortcuts with BN), SGD Nesterov (momentum 0.9, weight decay 5e-4,
    lr 0.01), a fixed random batch on the GPU, cuDNN benchmark mode, exact fp32 (TF32 off, as
    Kestrel's fp32). fp32 NCHW and bf16 autocast + channels_last; eager for every model and batch,
    torch.compile for batch 512 of ResNet-20 and -56 (compiling takes ~30-60 s a model; ResNet-110's
    longest, so it has eager figures only).
    images/s from the median step time (CUDA events) after warm-up. Peak memory is
    torch.cuda.max_memory_allocated over the timed steps (peak_mem_mb: what a training step needs,
    as bench_resnet's), and over everything from building the model on (peak_with_setup_mb). The
    first excludes the cuDNN algorithm search of step 0: its cache is process-wide, so only the
    first row of each convolution shape paid for it (ResNet-20's peaks came out ~380 MB above the
    line through ResNet-56's and -110's at batch 512 fp32; Kestrel autotunes every row)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import pytorch_resnet  # noqa: E402  (a sibling module of this script)

    torch = b.torch
    F = torch.nn.functional
    torch.backends.cudnn.benchmark = True
    pytorch_resnet.exact_fp32(torch)  # Kestrel's fp32 excludes TF32
    models = ["resnet20"] if b.quick else ["resnet20", "resnet56", "resnet110"]
    batches = [512] if b.quick else [128, 512]
    variants = [("fp32", "nchw", None, torch.contiguous_format), ("bf16", "nhwc", torch.bfloat16, torch.channels_last)]
    for model_name in models:
        for batch in batches:
            for dname, lname, amp, memory_format in variants:
                # torch.compile costs a minute a model; KESTREL_PYTORCH_COMPILE=0 skips it.
                compiled = (batch == 512 and model_name != "resnet110"
                            and os.environ.get("KESTREL_PYTORCH_COMPILE", "1") != "0")
                impls = ["pytorch"] + (["pytorch_compile"] if compiled else [])
                for impl in impls:
                    config = "%s b%d %s %s" % (model_name, batch, dname, lname)
                    gc.collect()  # the previous row's model and optimizer state must be gone first
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                    try:
                        torch.manual_seed(1)
                        model = pytorch_resnet.cifar_resnet(torch, model_name).cuda().to(memory_format=memory_format)
                        opt_kwargs = dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
                        params = list(model.parameters())
                        try:
                            opt = torch.optim.SGD(params, fused=True, **opt_kwargs)
                        except (TypeError, RuntimeError):  # older PyTorch: no fused SGD
                            opt = torch.optim.SGD(params, **opt_kwargs)
                        x = torch.empty(batch, 3, 32, 32, device="cuda").uniform_(-2, 2)
                        x = x.contiguous(memory_format=memory_format)
                        y = (torch.arange(batch, device="cuda") * 7) % 10
                        net = torch.compile(model) if impl == "pytorch_compile" else model

                        def step(i, net=net, opt=opt, x=x, y=y, amp=amp):
                            opt.zero_grad(set_to_none=True)
                            with torch.autocast("cuda", dtype=amp, enabled=amp is not None):
                                loss = F.cross_entropy(net(x), y)
                            loss.backward()
                            opt.step()

                        step(0)  # compiles (torch.compile) and picks cuDNN algorithms outside the timing
                        setup_peak = torch.cuda.max_memory_allocated() / 1e6
                        torch.cuda.reset_peak_memory_stats()
                        us = b.median_us(step)
                        peak = torch.cuda.max_memory_allocated() / 1e6
                        b.report_throughput("resnet_train", config, batch * 1e6 / us, peak, us / 1e3, impl,
                                            peak_with_setup_mb=max(peak, setup_peak))
                    except Exception as e:  # noqa: BLE001 - report and go on with the next row
                        print("pytorch_reference: resnet %s %s failed: %s" % (impl, config, e), file=sys.stderr)
                    finally:
                        # step's default arguments hold the model, optimizer, x and y: without
                        # dropping it they stayed allocated into the next row's peak memory.
                        model = opt = x = y = net = params = step = None


SECTIONS = {
    "copy": bench_copy,
    "dropout": bench_dropout,
    "add_relu": bench_add_relu,
    "batchnorm": bench_batchnorm,
    "resnet": bench_resnet,
}


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Time PyTorch's equivalents of bench_kernels' measurements (same bench/config "
                    "names) and write JSON lines for tools/gpu_summary.py.")
    p.add_argument("--json", metavar="FILE", help="append one JSON line per measurement to FILE")
    p.add_argument("--quick", action="store_true", help="smaller sizes, as bench_kernels --quick")
    p.add_argument("--only", metavar="SECTION[,SECTION]",
                   help="run only these sections (known: %s)" % ", ".join(SECTIONS))
    args = p.parse_args(argv)
    args.sections = list(SECTIONS)
    if args.only:
        wanted = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in SECTIONS]
        if unknown or not wanted:
            p.error("unknown section(s) %s in --only (known: %s)" % (", ".join(unknown) or "''", ", ".join(SECTIONS)))
        args.sections = wanted
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        import torch  # lazily: --help works without PyTorch
    except ImportError as e:
        print("pytorch_reference: PyTorch is not installed (%s); nothing measured" % e, file=sys.stderr)
        return 1
    if not torch.cuda.is_available():
        print("pytorch_reference: PyTorch %s sees no CUDA device; nothing measured" % torch.__version__,
              file=sys.stderr)
        return 1
    b = Bench(torch, args.quick, args.json)
    print("pytorch_reference: PyTorch %s on %s%s" % (torch.__version__, b.device, " (quick)" if args.quick else ""))
    print("%-16s %-22s %-28s %12s %10s %7s" % ("impl", "bench", "config", "median us", "GB/s", "% copy"))
    failed = []
    for name in args.sections:
        # One section's failure (new code never run on a GPU) does not lose the others' rows.
        try:
            SECTIONS[name](b)
        except Exception as e:  # noqa: BLE001 - report it, go on with the next section
            print("pytorch_reference: section %s failed: %s: %s" % (name, type(e).__name__, e), file=sys.stderr)
            failed.append(name)
        torch.cuda.empty_cache()
    if failed:
        print("pytorch_reference: failed sections: %s" % ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
