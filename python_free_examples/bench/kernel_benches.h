// The kernel benchmark families that bench_kernels runs, one function per family, each in its own
// python_free_examples/bench/bench_<family>.cpp, each timing with the shared Harness (copy
// bandwidth already measured) and reporting bench/config names that the PyTorch reference
// scripts (tools/pytorch_reference.py, tools/pytorch_bn_reference.py) repeat exactly.
#pragma once

#include "harness.h"

namespace kestrel::bench {

// dropout_fwd, dropout_bwd, add_relu at 64M elements, fp32 and bf16 (bench_elementwise.cpp).
void bench_dropout_and_elementwise(Harness& h);

// Batch normalisation: training forward and forward + backward, plain and fused with ReLU and
// residual-add + ReLU, at 256x64x32x32 and 512x16x32x32, NCHW and NHWC, fp32 and bf16 (quick
// mode: fp32 only). Bench names bn[_relu|_add_relu]_{fwd,fwd_bwd}; configs like
// "fp32 nchw 256x64x32x32" (bench_batchnorm.cpp).
void bench_batchnorm(Harness& h);

}  // namespace kestrel::bench
