#!/usr/bin/env python3
"""Trains the CIFAR ResNet recipe of cifar10_train in PyTorch on the official binary CIFAR-10 files
(the same reader format as Kestrel's), so a GPU session can compare test accuracy per epoch with
Kestrel's in the same call.

The same model (tools/pytorch_resnet.py: CIFAR ResNet v1, 1x1 projection shortcuts with BN, Kestrel's
initialisation and parameter names), data (drop the last partial batch, as Kestrel), augmentation
(random crop from 4-pixel zero padding + horizontal flip, CIFAR mean/std normalisation, on the GPU),
optimizer (SGD, momentum 0.9, weight decay 1e-4 on every parameter unless --no-decay-bn-bias) and
schedule (evaluated per step as layers/schedule.h: step = /10 at 50% and 75% of all steps; cosine
to 0; constant) and batch (128) and epochs (160) as cifar10_train's GPU defaults. bf16 is autocast with
channels_last. Random draws differ from Kestrel's (PyTorch's own generators), so compare accuracy
curves, not bits.

Prints one line per epoch and, with --json FILE, appends JSON lines
  {"impl": "pytorch", "event": "epoch", "epoch", "step", "loss", "train_acc", "test_acc", "lr",
   "images_per_s", "epoch_time_s", "peak_mem_mb", "device"}
with the field names of cifar10_train --log.
"""
import argparse
import json
import math
import os
import sys
import time


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="CIFAR-10 folder (data_batch_1..5.bin, test_batch.bin)")
    p.add_argument("--model", default="resnet20", help="resnetD, D = 6n+2 (default resnet20)")
    p.add_argument("--epochs", type=int, default=160)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--schedule", choices=["step", "cosine", "constant"], default="step")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--no-decay-bn-bias", action="store_true", help="no weight decay on 1-D parameters")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--flip", choices=["on", "off"], default="on")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="FILE", help="append one JSON line per epoch to FILE")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.batch < 1 or not (args.lr > 0):
        p.error("--epochs and --batch must be >= 1 and --lr > 0")
    return args


def learning_rate(args, step, total):
    """layers/schedule.h evaluated at 0-based `step` of `total`."""
    if args.schedule == "constant":
        return args.lr
    if args.schedule == "cosine":
        t = min(step, total - 1) / max(1, total - 1)
        return args.lr * 0.5 * (1 + math.cos(math.pi * t))
    lr = args.lr
    for m in (0.5, 0.75):
        if step >= m * total:
            lr *= 0.1
    return lr


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        import torch  # lazily: --help works without PyTorch
    except ImportError as e:
        print("pytorch_train_reference: PyTorch is not installed (%s)" % e, file=sys.stderr)
        return 1
    if not torch.cuda.is_available():
        print("pytorch_train_reference: PyTorch %s sees no CUDA device" % torch.__version__, file=sys.stderr)
        return 1
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import pytorch_resnet  # noqa: E402  (a sibling module of this script)

    F = torch.nn.functional
    torch.manual_seed(args.seed)
    torch.backends.cudnn.benchmark = True
    pytorch_resnet.exact_fp32(torch)  # as Kestrel's fp32 (bf16 autocast is unaffected)
    dev = torch.device("cuda")
    device_name = torch.cuda.get_device_name(0)
    try:
        xtr, ytr, xte, yte = pytorch_resnet.load_cifar10(torch, args.data)
    except (OSError, ValueError) as e:
        print("pytorch_train_reference: %s" % e, file=sys.stderr)
        return 1
    n = xtr.shape[0]
    if n < args.batch:
        print("pytorch_train_reference: %d training images is less than one batch" % n, file=sys.stderr)
        return 1
    padded = F.pad(xtr.to(dev), (4, 4, 4, 4))  # uint8 zero padding, kept on the GPU
    ytr, xte, yte = ytr.to(dev), pytorch_resnet.normalise(torch, xte.to(dev), dev), yte.to(dev)
    memory_format = torch.channels_last if args.dtype == "bf16" else torch.contiguous_format
    amp = torch.bfloat16 if args.dtype == "bf16" else None
    model = pytorch_resnet.cifar_resnet(torch, args.model).to(dev).to(memory_format=memory_format)
    decay = [p for p in model.parameters() if p.dim() > 1 or not args.no_decay_bn_bias]
    no_decay = [p for p in model.parameters() if p.dim() <= 1 and args.no_decay_bn_bias]
    groups = [{"params": decay, "weight_decay": args.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    opt = torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum, nesterov=args.nesterov)
    net = torch.compile(model) if args.compile else model
    steps_per_epoch = n // args.batch
    total = args.epochs * steps_per_epoch
    print("pytorch_train_reference: PyTorch %s on %s: %s, %s, batch %d, %d epochs, %d train / %d test images" % (
        torch.__version__, device_name, args.model, args.dtype, args.batch, args.epochs, n, xte.shape[0]), flush=True)
    step = 0
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(n, device=dev)
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), dtype=torch.int64, device=dev)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for s in range(steps_per_epoch):
            lr = learning_rate(args, step, total)
            for g in opt.param_groups:
                g["lr"] = lr
            idx = perm[s * args.batch:(s + 1) * args.batch]
            u8 = pytorch_resnet.augment(torch, padded, idx, flip=args.flip == "on")
            x = pytorch_resnet.normalise(torch, u8, dev).contiguous(memory_format=memory_format)
            y = ytr[idx]
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=amp, enabled=amp is not None):
                out = net(x)
                loss = F.cross_entropy(out, y, label_smoothing=args.label_smoothing)
            loss.backward()
            opt.step()
            loss_sum += loss.detach().float()
            correct += (out.argmax(1) == y).sum()
            step += 1
        torch.cuda.synchronize()
        secs = time.perf_counter() - t0
        model.eval()
        test_correct = 0
        with torch.no_grad(), torch.autocast("cuda", dtype=amp, enabled=amp is not None):
            for i in range(0, xte.shape[0], 1000):
                xb = xte[i:i + 1000].contiguous(memory_format=memory_format)
                test_correct += int((net(xb).argmax(1) == yte[i:i + 1000]).sum())
        line = {"impl": "pytorch", "event": "epoch", "epoch": epoch + 1, "step": step,
                "loss": float(loss_sum) / steps_per_epoch,
                "train_acc": float(correct) / (steps_per_epoch * args.batch),
                "test_acc": test_correct / xte.shape[0], "lr": lr,
                "images_per_s": steps_per_epoch * args.batch / secs, "epoch_time_s": secs,
                "peak_mem_mb": torch.cuda.max_memory_allocated() / 1e6, "device": device_name}
        print("epoch %d/%d: loss %.4f train acc %.1f%% test acc %.2f%% lr %.4g %.0f img/s %.1f s" % (
            epoch + 1, args.epochs, line["loss"], 100 * line["train_acc"], 100 * line["test_acc"], lr,
            line["images_per_s"], secs), flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
