// Dropout forward/backward and fused add+ReLU at 64M elements (quick: 4M), fp32 and bf16.
// Bench/config strings (tools/pytorch_reference.py writes the same):
//   dropout_fwd, dropout_bwd  "<dtype> <n>M p=0.5"   bytes: read x + write y
//   add_relu                  "<dtype> <n>M"         bytes: read a, b + write y
#include <cstdint>
#include <string>
#include <vector>

#include "kernel_benches.h"
#include "kestrel/core/tensor.h"
#include "kestrel/kernels/dropout.h"
#include "kestrel/kernels/elementwise.h"

namespace {
using kestrel::DType;
using kestrel::Shape;
using kestrel::Tensor;
using kestrel::bench::Harness;

constexpr std::int64_t kMi = std::int64_t(1) << 20;

std::string size_config(DType t, std::int64_t n) {
  return std::string(kestrel::dtype_name(t)) + " " + std::to_string(n / kMi) + "M";
}

// `count` buffers of n elements per rotation set, filled with uniform values in [-1, 1).
std::vector<std::vector<Tensor>> rotation_buffers(Harness& h, DType t, std::int64_t n, int count) {
  const std::size_t bytes = static_cast<std::size_t>(n) * kestrel::dtype_size(t) * count;
  std::vector<std::vector<Tensor>> sets(static_cast<std::size_t>(h.rotation_sets(bytes)));
  std::uint64_t seed = 1;
  for (auto& set : sets) {
    for (int k = 0; k < count; ++k) {
      set.push_back(Tensor::empty(Shape{n}, t, h.context()));
      set.back().fill_uniform(seed++, -1.f, 1.f, h.context().stream());
    }
  }
  return sets;
}

void bench_dropout(Harness& h, DType t, std::int64_t n) {
  const auto sets = rotation_buffers(h, t, n, 2);
  const cudaStream_t stream = h.context().stream().handle();
  // The offset comes from device memory, as in a training step replayed as a CUDA Graph.
  Tensor counter = Tensor::empty(Shape{2}, DType::kInt32, h.context());
  counter.zero(h.context().stream());
  kestrel::DropoutParams p;
  p.p = 0.5f;
  p.seed = 2026;
  p.offset_ptr = static_cast<const std::uint64_t*>(counter.data());
  const std::string config = size_config(t, n) + " p=0.5";
  const double bytes = 2.0 * static_cast<double>(n) * static_cast<double>(kestrel::dtype_size(t));
  const std::size_t count = sets.size();
  double us = h.median_us([&](int i) {
    const auto& s = sets[static_cast<std::size_t>(i) % count];
    kestrel::cuda::dropout_forward(s[0].data(), s[1].data(), n, t, p, stream);
  });
  h.report("dropout_fwd", config, us, bytes);
  us = h.median_us([&](int i) {
    const auto& s = sets[static_cast<std::size_t>(i) % count];
    kestrel::cuda::dropout_backward(s[1].data(), s[0].data(), n, t, p, stream);
  });
  h.report("dropout_bwd", config, us, bytes);
}

void bench_add_relu(Harness& h, DType t, std::int64_t n) {
  const auto sets = rotation_buffers(h, t, n, 3);
  const cudaStream_t stream = h.context().stream().handle();
  const std::size_t count = sets.size();
  const double us = h.median_us([&](int i) {
    const auto& s = sets[static_cast<std::size_t>(i) % count];
    kestrel::cuda::add_relu(s[0].data(), s[1].data(), s[2].data(), n, t, stream);
  });
  h.report("add_relu", size_config(t, n), us,
           3.0 * static_cast<double>(n) * static_cast<double>(kestrel::dtype_size(t)));
}
}  // namespace

namespace kestrel::bench {
void bench_dropout_and_elementwise(Harness& h) {
  const std::int64_t n = h.options().quick ? 4 * kMi : 64 * kMi;
  for (DType t : {DType::kFloat32, DType::kBFloat16}) {
    bench_dropout(h, t, n);
    bench_add_relu(h, t, n);
  }
}
}  // namespace kestrel::bench
