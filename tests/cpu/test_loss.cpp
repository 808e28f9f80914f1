// Softmax cross-entropy, softmax, arg-max and accuracy counting (CPU twins) against double
// references written here, finite differences and closed forms.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>
#include <cstdint>
#include <random>

#include "kestrel/core/error.h"
#include "kestrel/kernels/cpu/loss.h"
#include "error_text.h"
#include "storage_buffer.h"
#include "test_support.h"

using kestrel::DType;
using kestrel::testing::all_close;
using kestrel::testing::random_buffer;
using kestrel::testing::random_ints;
using kestrel::testing::StorageBuffer;

namespace {
struct CeReference {
  double loss = 0.0;
  std::vector<double> dlogits;
};

// Straight from the definition: mean_i -sum_j t_ij log softmax(z_i)_j, gradient (p - t) * scale / n.
CeReference ce_reference(const std::vector<double>& z, const std::vector<std::int32_t>& labels,
                         std::int64_t n, std::int64_t k, double eps, double scale) {
  CeReference r;
  r.dlogits.resize(z.size());
  for (std::int64_t i = 0; i < n; ++i) {
    const double* row = &z[static_cast<std::size_t>(i * k)];
    const double m = *std::max_element(row, row + k);
    double s = 0.0;
    for (std::int64_t j = 0; j < k; ++j) s += std::exp(row[j] - m);
    const double lse = m + std::log(s);
    for (std::int64_t j = 0; j < k; ++j) {
      const double t = (j == labels[i] ? 1.0 - eps : 0.0) + eps / k;
      r.loss -= t * (row[j] - lse) / n;
      r.dlogits[static_cast<std::size_t>(i * k + j)] = (std::exp(row[j] - lse) - t) * scale / n;
    }
  }
  return r;
}

double tol_eps(DType t) { return kestrel::dtype_eps(t); }
}  // namespace

TEST(CpuSoftmaxCrossEntropy, MatchesDoubleReference) {
  struct Case { std::int64_t n, k; };
  for (DType t : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    for (Case c : {Case{1, 1}, Case{3, 7}, Case{64, 10}, Case{5, 1000}}) {
      for (float eps : {0.f, 0.1f, 0.37f}) {
        const StorageBuffer z = random_buffer(t, c.n * c.k, 11, -8.f, 8.f);
        const auto labels = random_ints(c.n, 12, 0, static_cast<std::int32_t>(c.k - 1));
        StorageBuffer dz(t, c.n * c.k);
        float loss = 123.f;  // overwritten
        const float scale = 0.75f;
        kestrel::cpu::softmax_cross_entropy(z.data(), t, labels.data(), c.n, c.k, eps, &loss,
                                            dz.data(), &scale, nullptr);
        const CeReference ref = ce_reference(z.values(), labels, c.n, c.k, eps, scale);
        const std::string what = std::string(kestrel::dtype_name(t)) + " n=" + std::to_string(c.n) +
                                 " k=" + std::to_string(c.k) + " eps=" + std::to_string(eps);
        // The arithmetic is fp32 whatever the storage: the loss is good to a few fp32 ulp.
        EXPECT_NEAR(loss, ref.loss, 1e-6 + std::fabs(ref.loss) * 32 * tol_eps(DType::kFloat32)) << what;
        // dlogits: fp32 arithmetic, then one rounding to the storage dtype.
        const double unit = scale / c.n;
        EXPECT_TRUE(all_close(dz.values(), ref.dlogits, unit * 64 * tol_eps(DType::kFloat32),
                              2 * tol_eps(t) + 16 * tol_eps(DType::kFloat32))) << what;
      }
    }
  }
}

TEST(CpuSoftmaxCrossEntropy, GradientMatchesCentralDifferences) {
  const std::int64_t n = 3, k = 7;
  StorageBuffer z = random_buffer(DType::kFloat32, n * k, 21, -3.f, 3.f);
  const std::vector<std::int32_t> labels = {4, 0, 6};
  const float eps = 0.1f, scale = 2.5f;
  StorageBuffer dz(DType::kFloat32, n * k);
  float loss = 123.f;  // overwritten
  kestrel::cpu::softmax_cross_entropy(z.data(), DType::kFloat32, labels.data(), n, k, eps, &loss,
                                      dz.data(), &scale, nullptr);
  const double h = 1e-2;
  std::vector<double> fd(static_cast<std::size_t>(n * k));
  for (std::int64_t e = 0; e < n * k; ++e) {
    const float saved = z.at(e);
    float up = 0.f, down = 0.f;
    z.set(e, static_cast<float>(saved + h));
    kestrel::cpu::softmax_cross_entropy(z.data(), DType::kFloat32, labels.data(), n, k, eps, &up,
                                        nullptr, nullptr, nullptr);
    z.set(e, static_cast<float>(saved - h));
    kestrel::cpu::softmax_cross_entropy(z.data(), DType::kFloat32, labels.data(), n, k, eps, &down,
                                        nullptr, nullptr, nullptr);
    z.set(e, saved);
    fd[static_cast<std::size_t>(e)] = scale * (up - down) / (2 * h);
  }
  // fp32 loss rounding (~1e-7) over 2h, times the scale, plus O(h^2) truncation.
  EXPECT_TRUE(all_close(dz.values(), fd, 2e-4, 1e-3));
}

TEST(CpuSoftmaxCrossEntropy, LabelSmoothingClosedForm) {
  // Label logit a, all others b: lse = log(e^a + (k-1) e^b), loss = lse - (1-eps) a - eps mean(z).
  const std::int64_t k = 9;
  const double a = 2.25, b = 0.75;
  for (float eps : {0.f, 0.05f, 0.5f, 0.9f}) {
    std::vector<float> z(k, static_cast<float>(b));
    z[3] = static_cast<float>(a);
    const std::int32_t label = 3;
    float loss = 123.f;  // overwritten
    kestrel::cpu::softmax_cross_entropy(z.data(), DType::kFloat32, &label, 1, k, eps, &loss,
                                        nullptr, nullptr, nullptr);
    const double lse = std::log(std::exp(a) + (k - 1) * std::exp(b));
    const double expected = lse - (1 - eps) * a - eps * (a + (k - 1) * b) / k;
    EXPECT_NEAR(loss, expected, 4e-7 * std::fabs(expected) + 1e-7) << "eps=" << eps;
  }
  // Equal logits: softmax is uniform, the loss is log k for every eps.
  std::vector<float> flat(k, 1.375f);
  const std::int32_t label = 8;
  float loss = 123.f;  // overwritten
  kestrel::cpu::softmax_cross_entropy(flat.data(), DType::kFloat32, &label, 1, k, 0.3f, &loss,
                                      nullptr, nullptr, nullptr);
  EXPECT_NEAR(loss, std::log(9.0), 1e-6);
}

TEST(CpuSoftmaxCrossEntropy, LogitsOfMagnitude1e4StayFinite) {
  const std::int64_t n = 16, k = 10;
  const StorageBuffer z = random_buffer(DType::kFloat32, n * k, 31, -1e4f, 1e4f);
  const auto labels = random_ints(n, 32, 0, static_cast<std::int32_t>(k - 1));
  StorageBuffer dz(DType::kFloat32, n * k);
  float loss = 123.f;  // overwritten
  kestrel::cpu::softmax_cross_entropy(z.data(), DType::kFloat32, labels.data(), n, k, 0.1f, &loss,
                                      dz.data(), nullptr, nullptr);
  ASSERT_TRUE(std::isfinite(loss));
  const CeReference ref = ce_reference(z.values(), labels, n, k, 0.1, 1.0);
  EXPECT_NEAR(loss, ref.loss, std::fabs(ref.loss) * 1e-6);
  for (std::int64_t e = 0; e < n * k; ++e) ASSERT_TRUE(std::isfinite(dz.at(e))) << e;
  EXPECT_TRUE(all_close(dz.values(), ref.dlogits, 1e-8, 1e-6));
}

// A masked class (logit -Inf) or a row spanning more than fp32's range leaves the unsmoothed
// loss finite, as in PyTorch: 0 * Inf of the absent smoothing term made it NaN and stopped
// training (the non-finite check) on a good step. With smoothing, a -Inf logit gives +Inf (the
// smoothing term's -log p of that class), as PyTorch's. Reference: long-double log-sum-exp.
TEST(CpuSoftmaxCrossEntropy, AMaskedClassLeavesTheUnsmoothedLossFinite) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> z = {2.f, 1.f, -inf, 3e38f, -3e38f, 0.f};
  const std::vector<std::int32_t> labels = {0, 0};
  float loss = 0.f;
  std::vector<float> dz(6);
  kestrel::cpu::softmax_cross_entropy(z.data(), DType::kFloat32, labels.data(), 2, 3, 0.f, &loss, dz.data(),
                                      nullptr, nullptr);
  const long double row0 = std::log(1.0L + std::exp(-1.0L));  // -log softmax(z)_0 of [2, 1, -inf]
  EXPECT_NEAR(loss, static_cast<double>(row0 / 2), 1e-7);       // row 1's loss is 0
  for (float g : dz) EXPECT_TRUE(std::isfinite(g)) << g;
  kestrel::cpu::softmax_cross_entropy(z.data(), DType::kFloat32, labels.data(), 2, 3, 0.1f, &loss, dz.data(),
                                      nullptr, nullptr);
  EXPECT_EQ(loss, inf);
}

TEST(CpuSoftmaxCrossEntropy, LabelOutsideRangeRaisesNamingTheRow) {
  const std::int64_t n = 4, k = 5;
  const StorageBuffer z = random_buffer(DType::kFloat32, n * k, 41, -1.f, 1.f);
  for (std::int32_t bad : {-1, 5}) {
    const std::vector<std::int32_t> labels = {0, 4, bad, 1};
    float loss = 123.f;
    try {
      kestrel::cpu::softmax_cross_entropy(z.data(), DType::kFloat32, labels.data(), n, k, 0.f,
                                          &loss, nullptr, nullptr, nullptr);
      FAIL() << "expected kestrel::Error for label " << bad;
    } catch (const kestrel::Error& e) {
      EXPECT_NE(std::string(e.what()).find("row 2"), std::string::npos) << e.what();
    }
    EXPECT_EQ(loss, 123.f) << "nothing written";
    std::int64_t correct = 0;
    EXPECT_THROW(kestrel::cpu::count_correct(z.data(), DType::kFloat32, labels.data(), n, k, &correct),
                 kestrel::Error);
  }
}

TEST(CpuSoftmaxCrossEntropy, RejectsBadArguments) {
  const std::vector<float> z(6, 0.5f);
  const std::vector<std::int32_t> labels = {0, 1};
  float loss = 123.f;  // overwritten
  auto call = [&](DType t, std::int64_t n, std::int64_t k, float eps) {
    kestrel::cpu::softmax_cross_entropy(z.data(), t, labels.data(), n, k, eps, &loss, nullptr,
                                        nullptr, nullptr);
  };
  EXPECT_THROW(call(DType::kFloat32, 2, 3, 1.f), kestrel::Error);
  EXPECT_THROW(call(DType::kFloat32, 2, 3, -0.1f), kestrel::Error);
  EXPECT_THROW(call(DType::kFloat32, 0, 3, 0.f), kestrel::Error);
  EXPECT_THROW(call(DType::kFloat32, 2, 0, 0.f), kestrel::Error);
  EXPECT_THROW(call(DType::kInt32, 2, 3, 0.f), kestrel::Error);
  EXPECT_NO_THROW(call(DType::kFloat32, 2, 3, 0.f));
}

TEST(CpuSoftmaxCrossEntropy, RefusesAGradientBufferOverlappingTheLogits) {
  // The CUDA kernel cannot run in place (a warp stores gradients while one lane still reads the
  // label's logit), so both launchers refuse any overlap, and a refusal writes nothing.
  std::mt19937 gen(5);
  std::uniform_real_distribution<float> dist(-2.f, 2.f);
  std::vector<float> z(12);  // 2 rows of 3 logits, then room for a gradient beside them
  for (float& v : z) v = dist(gen);
  const std::vector<float> before = z;
  const std::vector<std::int32_t> labels = {2, 0};
  float loss = 123.f;
  for (std::size_t shift : {0, 1, 3, 5}) {  // in place, partial, and ending inside the logits
    const std::string what = kestrel::testing::error_of([&] {
      kestrel::cpu::softmax_cross_entropy(z.data(), DType::kFloat32, labels.data(), 2, 3, 0.f, &loss,
                                          z.data() + shift, nullptr, nullptr);
    });
    EXPECT_NE(what.find("dlogits"), std::string::npos) << "shift " << shift << ": " << what;
    EXPECT_NE(what.find("overlaps logits"), std::string::npos) << what;
  }
  EXPECT_EQ(loss, 123.f);
  EXPECT_TRUE(kestrel::testing::bit_equal(z, before));
  EXPECT_NO_THROW(kestrel::cpu::softmax_cross_entropy(z.data(), DType::kFloat32, labels.data(), 2, 3, 0.f,
                                                      &loss, z.data() + 6, nullptr, nullptr))
      << "adjacent, not overlapping";
}

TEST(CpuSoftmax, ForwardAndBackwardMatchDoubleReference) {
  struct Case { std::int64_t rows, cols; };
  for (DType t : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    for (Case c : {Case{1, 1}, Case{7, 3}, Case{5, 333}}) {
      const std::int64_t e = c.rows * c.cols;
      const StorageBuffer x = random_buffer(t, e, 51, -20.f, 20.f);
      const StorageBuffer dy = random_buffer(t, e, 52, -1.f, 1.f);
      StorageBuffer y(t, e), dx(t, e);
      kestrel::cpu::softmax_forward(x.data(), y.data(), t, c.rows, c.cols);
      kestrel::cpu::softmax_backward(dy.data(), y.data(), dx.data(), t, c.rows, c.cols);
      std::vector<double> y_ref(static_cast<std::size_t>(e)), dx_ref(static_cast<std::size_t>(e));
      for (std::int64_t i = 0; i < c.rows; ++i) {
        double m = -INFINITY, s = 0.0, dot = 0.0;
        for (std::int64_t j = 0; j < c.cols; ++j) m = std::max<double>(m, x.at(i * c.cols + j));
        for (std::int64_t j = 0; j < c.cols; ++j) s += std::exp(x.at(i * c.cols + j) - m);
        for (std::int64_t j = 0; j < c.cols; ++j) {
          y_ref[static_cast<std::size_t>(i * c.cols + j)] = std::exp(x.at(i * c.cols + j) - m) / s;
          dot += static_cast<double>(dy.at(i * c.cols + j)) * y.at(i * c.cols + j);
        }
        // Backward is checked on the stored y (its own input), not on y_ref.
        for (std::int64_t j = 0; j < c.cols; ++j) {
          const std::int64_t q = i * c.cols + j;
          dx_ref[static_cast<std::size_t>(q)] = y.at(q) * (dy.at(q) - dot);
        }
      }
      const double eps = tol_eps(t);
      // exp(x - m) in fp32: x - m (|x - m| <= 40) rounds by up to 40 ulp(1), which exp turns into
      // a relative error; plus the final rounding to the storage dtype.
      // Near zero (e^-40 and below) fp16 stores subnormals spaced 2^-24 apart: the final rounding
      // there errs by up to half of that, plus the fp32 error before it; one spacing bounds both
      // (fp32 and bf16 reach no subnormals here).
      const double tiny = t == DType::kFloat16 ? std::ldexp(1.0, -24) : 1e-30;
      EXPECT_TRUE(all_close(y.values(), y_ref, tiny, 2 * eps + 56 * tol_eps(DType::kFloat32)))
          << kestrel::dtype_name(t) << " " << c.rows << "x" << c.cols;
      EXPECT_TRUE(all_close(dx.values(), dx_ref, 1e-7, 2 * eps + 16 * tol_eps(DType::kFloat32)))
          << kestrel::dtype_name(t) << " " << c.rows << "x" << c.cols;
    }
  }
}

TEST(CpuArgmax, FirstMaximumOnTiesAndNanIsGreatest) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = INFINITY;
  const std::vector<float> x = {1, 3, 3, 2,  nan, 5, 7, 7,  2, 2, nan, nan,  -inf, -inf, -inf, -inf,
                                -0.f, 0.f, -1, -2};
  std::vector<std::int32_t> out(5, -7);
  kestrel::cpu::argmax_rows(x.data(), DType::kFloat32, 5, 4, out.data());
  EXPECT_EQ(out, (std::vector<std::int32_t>{1, 0, 2, 0, 0}));
}

TEST(CpuCountCorrect, AddsHitsToTheRunningCount) {
  const std::int64_t n = 200, k = 10;
  for (DType t : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    const StorageBuffer z = random_buffer(t, n * k, 61, -4.f, 4.f);
    const auto labels = random_ints(n, 62, 0, static_cast<std::int32_t>(k - 1));
    std::int64_t expected = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      std::int64_t best = 0;
      for (std::int64_t j = 1; j < k; ++j)
        if (z.at(i * k + j) > z.at(i * k + best)) best = j;
      expected += best == labels[static_cast<std::size_t>(i)];
    }
    ASSERT_GT(expected, 0);
    std::int64_t correct = 1000;
    kestrel::cpu::count_correct(z.data(), t, labels.data(), n, k, &correct);
    kestrel::cpu::count_correct(z.data(), t, labels.data(), n, k, &correct);
    EXPECT_EQ(correct, 1000 + 2 * expected) << kestrel::dtype_name(t);
  }
}

// Softmax cross-entropy over a very wide row: the row sums are accumulated in double (loss.cpp),
// so the gradient keeps fp32 accuracy at k = 2^18 classes (float sums: 2.5e-4 off). Reference:
// the definition in double. Bounds: loss 1e-5 relative; gradient 1e-5 relative + 2e-11.
TEST(CpuSoftmaxCrossEntropy, GradientStaysAccurateOnAWideRow) {
  const std::int64_t n = 2, k = std::int64_t{1} << 18;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-8.f, 8.f);
  std::vector<float> z(n * k), dz(n * k);
  for (float& v : z) v = u(rng);
  const std::vector<std::int32_t> labels{7, 123456};
  float loss = 0.f;
  kestrel::cpu::softmax_cross_entropy(z.data(), DType::kFloat32, labels.data(), n, k, 0.1f, &loss,
                                      dz.data(), nullptr, nullptr);
  std::vector<double> ref(n * k);
  double ref_loss = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    const float* row = &z[i * k];
    double m = -INFINITY, s = 0.0, mean = 0.0;
    for (std::int64_t j = 0; j < k; ++j) m = std::max(m, static_cast<double>(row[j]));
    for (std::int64_t j = 0; j < k; ++j) s += std::exp(row[j] - m), mean += row[j];
    mean /= static_cast<double>(k);
    const double lse = m + std::log(s);
    ref_loss += (0.9 * (lse - row[labels[i]]) + 0.1 * (lse - mean)) / n;
    for (std::int64_t j = 0; j < k; ++j) {
      const double t = (j == labels[i] ? 0.9 : 0.0) + 0.1 / static_cast<double>(k);
      ref[i * k + j] = (std::exp(row[j] - lse) - t) / n;
    }
  }
  EXPECT_NEAR(loss, ref_loss, 1e-5 * std::fabs(ref_loss));
  EXPECT_TRUE(kestrel::testing::all_close(dz, ref, 2e-11, 1e-5));
}
