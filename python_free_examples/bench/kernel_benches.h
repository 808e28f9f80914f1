// Benchmark sections of the kernel benchmark program; each times one kernel family with the
// shared harness (harness.h) and reports table rows and JSON lines.
#pragma once

#include "harness.h"

namespace kestrel::bench {

// Batch normalisation: training forward and forward + backward, plain and fused with ReLU and
// residual-add + ReLU, at 256x64x32x32 and 512x16x32x32, NCHW and NHWC, fp32 and bf16 (quick
// mode: fp32 only). Bench names bn[_relu|_add_relu]_{fwd,fwd_bwd}; configs like
// "fp32 nchw 256x64x32x32" (tools/pytorch_bn_reference.py uses the same strings).
void bench_batchnorm(Harness& h);

}  // namespace kestrel::bench
