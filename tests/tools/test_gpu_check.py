"""tools/gpu_check.sh's final status, run here with stand-in programs (no GPU): a stage that was
asked for and skipped for lack of time must not read as a success in the 'result:' line and the
exit status (a GPU session reads them to decide what to rerun).

Run by CTest (test gpu_check_status, label cpu): python3 -m unittest test_gpu_check
"""
import os
import shutil
import stat
import subprocess
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def write_exec(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


class GpuCheckStatus(unittest.TestCase):
    def setUp(self):
        # A checkout-like tree: the script and the summary it ends with, a carried build-gpu of
        # stand-ins made "at this path", CIFAR-10 already converted, and nvidia-smi on PATH.
        self.root = os.path.realpath(tempfile.mkdtemp(prefix="gpu_check_"))
        os.makedirs(os.path.join(self.root, "tools"))
        for name in ("gpu_check.sh", "gpu_summary.py"):
            shutil.copy(os.path.join(ROOT, "tools", name), os.path.join(self.root, "tools", name))
        binary = os.path.join(self.root, "build-gpu", "bin")
        os.makedirs(binary)
        with open(os.path.join(self.root, "build-gpu", "CMakeCache.txt"), "w") as f:
            f.write("CMAKE_HOME_DIRECTORY:INTERNAL=%s\n" % self.root)
        write_exec(os.path.join(binary, "kestrel_cuda_tests"), "#!/bin/sh\nexit 0\n")
        write_exec(os.path.join(binary, "cifar10_train"),
                   "#!/bin/sh\necho \"stand-in cifar10_train $*\"\necho 'epoch 1/1: loss 2.0000'\n")
        self.tools = os.path.join(self.root, "stand-ins")
        os.makedirs(self.tools)
        write_exec(os.path.join(self.tools, "nvidia-smi"), "#!/bin/sh\necho 'NVIDIA H200, 580.00, 143771 MiB'\n")
        self.cifar = os.path.join(self.root, "cifar")
        os.makedirs(self.cifar)
        open(os.path.join(self.cifar, "test_batch.bin"), "w").close()
        self.out = os.path.join(self.root, "out")

    def tearDown(self):
        shutil.rmtree(self.root)

    def run_check(self, *args):
        env = dict(os.environ, OUT=self.out, KESTREL_CIFAR_DIR=self.cifar,
                   PATH=self.tools + os.pathsep + os.environ.get("PATH", ""))
        r = subprocess.run(["bash", os.path.join(self.root, "tools", "gpu_check.sh"), "--no-build", "--no-tests",
                            "--no-bench", "--no-sanitizer", "--no-pytorch"] + list(args),
                           env=env, capture_output=True, text=True, timeout=120)
        result = [l for l in r.stderr.splitlines() if l.startswith("gpu_check: result:")]
        self.assertEqual(len(result), 1, r.stdout + r.stderr)
        return r.returncode, result[0], r.stderr

    def test_training_that_ran_reads_as_done(self):
        code, result, log = self.run_check("--train=1")
        self.assertIn("training rc=0", result, log)
        self.assertEqual(code, 0, log)
        with open(os.path.join(self.out, "train.log")) as f:
            self.assertIn("stand-in cifar10_train", f.read())

    def test_training_skipped_for_time_is_not_a_success(self):
        # 80 s: 50 s left for training after the 30 s kept for the rest, under the 60 s it needs.
        code, result, log = self.run_check("--train=1", "--deadline=80")
        self.assertIn("cifar10_train: skipped", log)
        self.assertNotIn("training rc=0", result, log)
        self.assertNotEqual(code, 0, log)
        with open(os.path.join(self.out, "train.log")) as f:
            self.assertNotIn("stand-in cifar10_train", f.read())


if __name__ == "__main__":
    unittest.main()
