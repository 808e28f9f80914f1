// GPU layer normalisation against the double reference (tests/support/layernorm_reference.h),
// with the tolerances of the CPU test: many rows (grid-stride, more rows than column-sum
// groups), long rows, one column (constant rows), bf16, unaligned pointers, repeated calls over a
// garbage workspace, in-place use.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "batchnorm_reference.h"
#include "storage_test_util.h"
#include "kestrel/kernels/layernorm.h"
#include "layernorm_reference.h"
#include "test_support.h"

namespace bnref = kestrel::testing::bnref;
namespace lnref = kestrel::testing::lnref;
using kestrel::DType;
using kestrel::testing::DeviceBuffer;

namespace {

constexpr float kEps = 1e-5f;

struct Result {
  std::vector<float> y, mean, rstd, dx, dgamma, dbeta;
};

struct Inputs {
  std::vector<float> x, dy, gamma, beta;
};

Inputs make_inputs(std::int64_t rows, std::int64_t cols, DType t, std::uint32_t seed) {
  return {bnref::channel_data({1, rows, cols, kestrel::Layout::kNCHW}, t, seed),
          bnref::uniform_data(rows * cols, -1.f, 1.f, t, seed + 1),
          bnref::uniform_data(cols, -1.5f, 1.5f, DType::kFloat32, seed + 2),
          bnref::uniform_data(cols, -1.f, 1.f, DType::kFloat32, seed + 3)};
}

// Forward then backward on the GPU; tensors start `misalign` elements past 256-byte alignment.
Result run(const Inputs& in, std::int64_t rows, std::int64_t cols, DType t,
           std::size_t misalign = 0, int calls = 1) {
  const std::size_t es = kestrel::dtype_size(t), off = misalign * es;
  const std::size_t bytes = static_cast<std::size_t>(rows * cols) * es;
  DeviceBuffer x(bnref::to_storage(in.x, t), off), dy(bnref::to_storage(in.dy, t), off);
  DeviceBuffer y(bytes, off), dx(bytes, off), gamma(in.gamma), beta(in.beta);
  DeviceBuffer mean(rows * 4), rstd(rows * 4), dg(cols * 4), db(cols * 4);
  DeviceBuffer ws(kestrel::cuda::layernorm_workspace_bytes(rows, cols));
  for (int c = 0; c < calls; ++c) {
    ws.fill_bytes(c == 0 ? 0xff : 0x3c);
    kestrel::cuda::layernorm_forward(x.get(), y.get(), t, rows, cols, gamma.f32(), beta.f32(),
                                     kEps, mean.f32(), rstd.f32(), nullptr);
    kestrel::cuda::layernorm_backward(dy.get(), x.get(), t, rows, cols, gamma.f32(), mean.f32(),
                                      rstd.f32(), dx.get(), dg.f32(), db.f32(), ws.get(), nullptr);
  }
  return {bnref::from_storage(y.download<std::uint8_t>(), t), mean.download<float>(),
          rstd.download<float>(), bnref::from_storage(dx.download<std::uint8_t>(), t),
          dg.download<float>(), db.download<float>()};
}

void check(std::int64_t rows, std::int64_t cols, DType t, std::uint32_t seed,
           std::size_t misalign = 0) {
  SCOPED_TRACE(::testing::Message() << rows << "x" << cols << " " << kestrel::dtype_name(t)
                                    << " misalign " << misalign);
  const bool bf16 = t == DType::kBFloat16;
  const double out_tol = bf16 ? 1e-2 : 1e-5, grad_tol = bf16 ? 1e-2 : 1e-4;
  const Inputs in = make_inputs(rows, cols, t, seed);
  const Result r = run(in, rows, cols, t, misalign);
  const lnref::Forward f = lnref::forward(in.x, rows, cols, in.gamma, in.beta, kEps);
  EXPECT_TRUE(bnref::close_to(r.y, f.y, out_tol));
  EXPECT_TRUE(bnref::close_to(r.mean, f.mean, 1e-5));
  EXPECT_TRUE(bnref::close_to(r.rstd, f.rstd, 1e-5));
  const lnref::Grads g = lnref::backward(in.dy, in.x, rows, cols, in.gamma, kEps);
  EXPECT_TRUE(bnref::within(r.dx, g.dx, g.dx_scale, grad_tol));
  EXPECT_TRUE(bnref::within(r.dgamma, g.dgamma, g.dgamma_scale, grad_tol));
  EXPECT_TRUE(bnref::within(r.dbeta, g.dbeta, g.dbeta_scale, grad_tol));
}

}  // namespace

TEST(LayerNormCuda, MatchesDoubleReference) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  const std::int64_t shapes[][2] = {{1, 1},     {3, 7},    {64, 256}, {513, 1000},
                                    {70000, 3}, {9000, 1}, {3, 65537}, {257, 96}};
  std::uint32_t seed = 1;
  for (const auto& s : shapes)
    for (DType t : {DType::kFloat32, DType::kBFloat16}) check(s[0], s[1], t, seed += 10);
}

TEST(LayerNormCuda, UnalignedPointers) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  check(33, 129, DType::kFloat32, 300, 1);
  check(33, 129, DType::kBFloat16, 301, 1);
}

TEST(LayerNormCuda, RepeatedCallsAreBitIdentical) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  const Inputs in = make_inputs(700, 300, DType::kFloat32, 400);
  const Result a = run(in, 700, 300, DType::kFloat32, 0, 1);
  const Result b = run(in, 700, 300, DType::kFloat32, 0, 3);
  EXPECT_TRUE(kestrel::testing::bit_equal(a.y, b.y));
  EXPECT_TRUE(kestrel::testing::bit_equal(a.dx, b.dx));
  EXPECT_TRUE(kestrel::testing::bit_equal(a.dgamma, b.dgamma));
  EXPECT_TRUE(kestrel::testing::bit_equal(a.dbeta, b.dbeta));
}

TEST(LayerNormCuda, InPlaceAndOptionalPointers) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  const std::int64_t rows = 40, cols = 300;
  Inputs in = make_inputs(rows, cols, DType::kFloat32, 500);
  in.gamma.assign(cols, 1.f);
  in.beta.assign(cols, 0.f);
  const Result plain = run(in, rows, cols, DType::kFloat32);
  DeviceBuffer buf(in.x), grad(in.dy), x(in.x), mean(rows * 4), rstd(rows * 4);
  DeviceBuffer ws(kestrel::cuda::layernorm_workspace_bytes(rows, cols));
  kestrel::cuda::layernorm_forward(buf.get(), buf.get(), DType::kFloat32, rows, cols, nullptr,
                                   nullptr, kEps, mean.f32(), rstd.f32(), nullptr);
  kestrel::cuda::layernorm_backward(grad.get(), x.get(), DType::kFloat32, rows, cols, nullptr,
                                    mean.f32(), rstd.f32(), grad.get(), nullptr, nullptr, ws.get(),
                                    nullptr);
  EXPECT_TRUE(kestrel::testing::bit_equal(buf.download<float>(), plain.y));
  EXPECT_TRUE(kestrel::testing::bit_equal(grad.download<float>(), plain.dx));
}

// Constant rows: y = beta, finite gradients.
TEST(LayerNormCuda, ConstantRowsStayFinite) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  const std::int64_t rows = 300, cols = 70;
  Inputs in = make_inputs(rows, cols, DType::kFloat32, 600);
  for (std::int64_t i = 0; i < rows * cols; ++i) in.x[i] = static_cast<float>(i / cols) * 0.25f;
  const Result r = run(in, rows, cols, DType::kFloat32);
  for (std::int64_t i = 0; i < rows * cols; ++i) {
    ASSERT_EQ(r.y[i], in.beta[i % cols]) << i;
    ASSERT_TRUE(std::isfinite(r.dx[i])) << i;
  }
  for (std::int64_t j = 0; j < cols; ++j) EXPECT_EQ(r.dgamma[j], 0.f);
}
