"""tools/gpu_summary.py, the table tools/gpu_check.sh ends a GPU call with, run on the JSON lines
recorded on the H200 (docs/measurements/2026-11-26-h200) and on made-up damaged files. The
expected ratios are computed here from the input lines, not copied from an earlier output.

Run by CTest (test gpu_summary, label cpu): python3 -m unittest test_gpu_summary
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "tools", "gpu_summary.py")
H200 = os.path.join(ROOT, "docs", "measurements", "2026-11-26-h200")


def read_lines(path, impl=None):
    with open(path) as f:
        rows = [json.loads(l) for l in f if l.strip()]
    return [r for r in rows if impl is None or r.get("impl") == impl]


class GpuSummary(unittest.TestCase):
    def setUp(self):
        self.out = tempfile.mkdtemp(prefix="gpu_summary_")

    def tearDown(self):
        shutil.rmtree(self.out)

    def write(self, name, lines):
        with open(os.path.join(self.out, name), "w") as f:
            f.write("".join(l if isinstance(l, str) else json.dumps(l) + "\n" for l in lines))

    def run_summary(self):
        r = subprocess.run([sys.executable, SCRIPT, self.out], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def row(self, text, *needles):
        rows = [l for l in text.splitlines() if all(n in l for n in needles)]
        self.assertEqual(len(rows), 1, "one row with %s in:\n%s" % (needles, text))
        return rows[0]

    def test_kernel_rows_show_pytorch_time_over_kestrels(self):
        shutil.copy(os.path.join(H200, "call1-bench.jsonl"), os.path.join(self.out, "bench.jsonl"))
        shutil.copy(os.path.join(H200, "call1-pytorch.jsonl"), os.path.join(self.out, "pytorch.jsonl"))
        text = self.run_summary()
        ours = read_lines(os.path.join(self.out, "bench.jsonl"))
        # eager PyTorch is the reference; torch.compile's lines (impl pytorch_compile) are not
        theirs = {(r["bench"], r["config"]): r
                  for r in read_lines(os.path.join(self.out, "pytorch.jsonl"), impl="pytorch")}
        checked = 0
        for r in ours:
            if "median_us" not in r or (r["bench"], r["config"]) not in theirs:
                continue
            ratio = theirs[(r["bench"], r["config"])]["median_us"] / r["median_us"]
            line = self.row(text, r["bench"] + " ", " " + r["config"] + " ")
            self.assertTrue(line.rstrip().endswith("%.2fx" % ratio), line)
            self.assertIn("%.1f us" % r["median_us"], line)
            checked += 1
        self.assertGreater(checked, 40)
        self.assertIn("device: NVIDIA H200", text)

    def test_throughput_rows_find_pytorch_without_the_graph_suffix(self):
        shutil.copy(os.path.join(H200, "call3-bench.jsonl"), os.path.join(self.out, "bench.jsonl"))
        shutil.copy(os.path.join(H200, "call3-pytorch.jsonl"), os.path.join(self.out, "pytorch.jsonl"))
        text = self.run_summary()
        ours = {r["config"]: r for r in read_lines(os.path.join(self.out, "bench.jsonl"))}
        theirs = {r["config"]: r for r in read_lines(os.path.join(self.out, "pytorch.jsonl"), impl="pytorch")}
        k, p = ours["resnet20 b512 fp32 nchw graph"], theirs["resnet20 b512 fp32 nchw"]
        line = self.row(text, "resnet20 b512 fp32 nchw graph ")
        fields = line.split()
        self.assertIn("%.2fx" % (k["images_per_s"] / p["images_per_s"]), fields)
        self.assertIn("%.2fx" % (p["peak_mem_mb"] / k["peak_mem_mb"]), fields)
        # fp32 NHWC has no PyTorch twin by design: dashes, and no "without a PyTorch row" note for it
        self.assertIn(" - ", self.row(text, "resnet20 b512 fp32 nhwc graph "))

    def test_nulls_unreadable_lines_and_missing_files_are_said_not_fatal(self):
        self.write("bench.jsonl", [
            {"impl": "kestrel", "device": "GPU X", "bench": "add_relu", "config": "fp32 1", "median_us": 0.0,
             "gbps": None, "pct_copy": None},
            '{"impl": "kestrel", "bench": "dropout_fwd", "median_us": 1.0, "gbps": inf}\n',
            {"impl": "kestrel", "device": "GPU X", "bench": "resnet_train", "config": "resnet20 b512 bf16 nhwc graph",
             "images_per_s": 1000.0, "peak_mem_mb": 10.0, "untuned_conv_plans": 2},
        ])
        text = self.run_summary()
        self.assertIn("bench.jsonl: 1 unreadable line(s) skipped", text)
        self.assertIn("pytorch.jsonl: missing", text)
        self.assertEqual(self.row(text, "add_relu ").split()[3:], ["-", "-", "-", "-", "-"])
        self.assertIn("note: 1 row(s) ran convolution plans that autotuning could not time", text)
        self.assertIn("device: GPU X", text)

    def test_no_benchmark_lines_is_said(self):
        self.write("bench.jsonl", ["not json\n"])
        self.assertIn("gpu_summary: no benchmark lines", self.run_summary())


if __name__ == "__main__":
    unittest.main()
