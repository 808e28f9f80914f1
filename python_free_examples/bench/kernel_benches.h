// The kernel benchmark families that bench_kernels runs, one function per family, each in its own
// python_free_examples/bench/bench_<family>.cpp, each timing with the shared Harness (copy
// bandwidth already measured) and reporting bench/config names that tools/pytorch_reference.py
// repeats exactly:
//   bench_dropout_and_elementwise  dropout_fwd, dropout_bwd, add_relu    (bench_elementwise.cpp)
//   bench_batchnorm                batch norm forward/backward and fusions (to be added)
#pragma once

#include "harness.h"

void bench_dropout_and_elementwise(kestrel::bench::Harness& h);
