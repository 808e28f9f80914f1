// CPU twin of the row-major GEMM (kernels/cpu/gemm.h) against an independent double reference
// with explicit transposes: every transpose combination, odd and empty sizes, padded leading
// dimensions, alpha/beta, beta = 0 ignoring NaN in C, fp32 and bf16 storage; argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gemm_reference.h"
#include "kestrel/core/error.h"
#include "kestrel/kernels/cpu/gemm.h"
#include "storage_test_util.h"
#include "test_support.h"

namespace {
using kestrel::DType;
using kestrel::testing::GemmCase;
using kestrel::testing::gemm_case;
using kestrel::testing::HostBuffer;
using kestrel::testing::random_buffer;

std::string describe(const GemmCase& g, DType t) {
  return std::string(kestrel::dtype_name(t)) + " ta=" + std::to_string(g.trans_a) +
         " tb=" + std::to_string(g.trans_b) + " m=" + std::to_string(g.m) + " n=" +
         std::to_string(g.n) + " k=" + std::to_string(g.k) + " lda=" + std::to_string(g.lda) +
         " alpha=" + std::to_string(g.alpha) + " beta=" + std::to_string(g.beta);
}

double rel_tol(DType t) { return t == DType::kFloat32 ? std::ldexp(1.0, -23) : std::ldexp(1.0, -8) * 1.001; }

TEST(GemmCpu, MatchesExplicitTransposeReference) {
  const std::int64_t sizes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 13, 1}, {1, 9, 31}, {64, 33, 129}, {10, 1, 4}};
  std::uint32_t seed = 1;
  for (const auto& s : sizes) {
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (std::int64_t pad : {0, 3})
          for (DType t : {DType::kFloat32, DType::kBFloat16})
            for (const auto& ab : {std::pair<float, float>{1.f, 0.f}, {0.5f, -1.25f}}) {
              const GemmCase g = gemm_case(ta, tb, s[0], s[1], s[2], pad, ab.first, ab.second);
              const HostBuffer a = random_buffer(t, g.a_size(), seed++);
              const HostBuffer b = random_buffer(t, g.b_size(), seed++);
              HostBuffer c = random_buffer(t, g.c_size(), seed++);
              const auto expected = kestrel::testing::ref_gemm(g, a.values(), b.values(), c.values());
              kestrel::cpu::gemm(g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, a.data(), g.lda,
                                 b.data(), g.ldb, g.beta, c.data(), g.ldc, t, false);
              EXPECT_TRUE(kestrel::testing::all_close(c.values(), expected, 1e-12, rel_tol(t)))
                  << describe(g, t);
            }
  }
}

// Plants 2^40 at p = 0 and -2^40 at p = k - 1 in every row of op(A), and 1 in those rows of
// op(B): every output's double sum then runs 2^40 + (small terms) - 2^40, whose rounding depends
// on the order of the additions, so another order changes most float results.
void plant_cancelling_terms(const GemmCase& g, HostBuffer& a, HostBuffer& b) {
  if (g.k < 2) return;
  for (std::int64_t p : {std::int64_t{0}, g.k - 1}) {
    const float big = p == 0 ? std::ldexp(1.f, 40) : -std::ldexp(1.f, 40);
    for (std::int64_t i = 0; i < g.m; ++i)
      a.set(static_cast<std::size_t>(g.trans_a ? p * g.lda + i : i * g.lda + p), big);
    for (std::int64_t j = 0; j < g.n; ++j)
      b.set(static_cast<std::size_t>(g.trans_b ? j * g.ldb + p : p * g.ldb + j), 1.f);
  }
}

// The twin computes in register tiles; each output must still be the plain three-loop sum (p in
// ascending order, in double, from 0.0), so the comparison here is bit for bit, on sizes that end
// mid-tile in every direction and with padded leading dimensions. (Adding the terms in reverse
// order instead makes this test fail: checked by hand.)
TEST(GemmCpu, TilingGivesThePlainLoopsResultBitForBit) {
  const std::int64_t sizes[][3] = {{37, 45, 300}, {1, 17, 1000}, {65, 3, 7}, {9, 130, 2}};
  std::uint32_t seed = 100;
  for (const auto& s : sizes)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (DType t : {DType::kFloat32, DType::kBFloat16}) {
          const GemmCase g = gemm_case(ta, tb, s[0], s[1], s[2], 2, -0.75f, 1.5f);
          HostBuffer a = random_buffer(t, g.a_size(), seed++);
          HostBuffer b = random_buffer(t, g.b_size(), seed++);
          plant_cancelling_terms(g, a, b);
          HostBuffer c = random_buffer(t, g.c_size(), seed++);
          HostBuffer expected = c;
          for (std::int64_t i = 0; i < g.m; ++i)
            for (std::int64_t j = 0; j < g.n; ++j) {
              double acc = 0.0;
              for (std::int64_t p = 0; p < g.k; ++p)
                acc += a.get(static_cast<std::size_t>(g.trans_a ? p * g.lda + i : i * g.lda + p)) *
                       b.get(static_cast<std::size_t>(g.trans_b ? j * g.ldb + p : p * g.ldb + j));
              const auto at = static_cast<std::size_t>(i * g.ldc + j);
              expected.set(at, static_cast<float>(static_cast<double>(g.alpha) * acc +
                                                  static_cast<double>(g.beta) * c.get(at)));
            }
          kestrel::cpu::gemm(g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, a.data(), g.lda,
                             b.data(), g.ldb, g.beta, c.data(), g.ldc, t, false);
          std::size_t differ = 0;
          for (std::size_t i = 0; i < c.size(); ++i) differ += c.get(i) != expected.get(i);
          EXPECT_EQ(differ, 0u) << describe(g, t);
        }
}

TEST(GemmCpu, BetaZeroIgnoresNanInC) {
  const GemmCase g = gemm_case(false, true, 4, 6, 5, 1, 2.f, 0.f);
  const HostBuffer a = random_buffer(DType::kFloat32, g.a_size(), 5);
  const HostBuffer b = random_buffer(DType::kFloat32, g.b_size(), 6);
  HostBuffer c(DType::kFloat32, g.c_size());
  for (std::size_t i = 0; i < c.size(); ++i) c.set(i, std::numeric_limits<float>::quiet_NaN());
  kestrel::cpu::gemm(g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, a.data(), g.lda, b.data(),
                     g.ldb, g.beta, c.data(), g.ldc, DType::kFloat32, false);
  for (std::int64_t i = 0; i < g.m; ++i)
    for (std::int64_t j = 0; j < g.ldc; ++j)
      EXPECT_EQ(std::isnan(c.get(static_cast<std::size_t>(i * g.ldc + j))), j >= g.n) << i << "," << j;
}

TEST(GemmCpu, EmptyKScalesCAndEmptyMOrNDoNothing) {
  HostBuffer c = random_buffer(DType::kFloat32, 12, 9);
  const std::vector<double> before = c.values();
  kestrel::cpu::gemm(false, false, 3, 4, 0, 1.f, nullptr, 1, nullptr, 4, 0.5f, c.data(), 4,
                     DType::kFloat32, false);
  for (std::size_t i = 0; i < c.size(); ++i) EXPECT_EQ(c.get(i), static_cast<float>(0.5 * before[i]));
  kestrel::cpu::gemm(false, false, 0, 4, 3, 1.f, nullptr, 3, nullptr, 4, 0.f, nullptr, 4,
                     DType::kFloat32, false);
  kestrel::cpu::gemm(false, false, 3, 0, 3, 1.f, nullptr, 3, nullptr, 1, 0.f, nullptr, 1,
                     DType::kFloat32, false);
}

TEST(GemmCpu, UnalignedPointersWork) {
  const GemmCase g = gemm_case(true, false, 7, 5, 3, 0, 1.f, 0.f);
  const HostBuffer a = random_buffer(DType::kBFloat16, g.a_size() + 1, 11);
  const HostBuffer b = random_buffer(DType::kBFloat16, g.b_size() + 1, 12);
  HostBuffer c(DType::kBFloat16, g.c_size() + 1);
  const auto* a1 = static_cast<const std::uint16_t*>(a.data()) + 1;
  const auto* b1 = static_cast<const std::uint16_t*>(b.data()) + 1;
  auto* c1 = static_cast<std::uint16_t*>(c.data()) + 1;
  kestrel::cpu::gemm(g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, a1, g.lda, b1, g.ldb, g.beta,
                     c1, g.ldc, DType::kBFloat16, false);
  const std::vector<double> a_all = a.values(), b_all = b.values(), c_all = c.values();
  const std::vector<double> av(a_all.begin() + 1, a_all.end()), bv(b_all.begin() + 1, b_all.end());
  const std::vector<double> got(c_all.begin() + 1, c_all.end());
  const auto expected = kestrel::testing::ref_gemm(g, av, bv, std::vector<double>(g.c_size(), 0.0));
  EXPECT_TRUE(kestrel::testing::all_close(got, expected, 1e-12, rel_tol(DType::kBFloat16)));
}

void expect_error(const std::string& needle, bool ta, bool tb, std::int64_t m, std::int64_t n,
                  std::int64_t k, std::int64_t lda, std::int64_t ldb, std::int64_t ldc,
                  DType t = DType::kFloat32) {
  std::vector<float> buf(64);
  try {
    kestrel::cpu::gemm(ta, tb, m, n, k, 1.f, buf.data(), lda, buf.data(), ldb, 0.f, buf.data(),
                       ldc, t, false);
    ADD_FAILURE() << "accepted: expected an error about " << needle;
  } catch (const kestrel::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(GemmCpu, RejectsBadArguments) {
  expect_error("m must be >= 0", false, false, -1, 2, 2, 2, 2, 2);
  expect_error("k must be >= 0", false, false, 2, 2, -3, 2, 2, 2);
  expect_error("lda", false, false, 2, 3, 4, 3, 3, 3);   // A is 2 x 4: lda >= 4
  expect_error("lda", true, false, 5, 3, 2, 4, 3, 3);    // A is 2 x 5: lda >= 5
  expect_error("ldb", false, false, 2, 3, 4, 4, 2, 3);   // B is 4 x 3: ldb >= 3
  expect_error("ldb", false, true, 2, 3, 4, 4, 3, 3);    // B is 3 x 4: ldb >= 4
  expect_error("ldc", false, false, 2, 3, 4, 4, 3, 2);
  expect_error("ldc", false, false, 2, 0, 4, 4, 1, 0);   // leading dimensions are >= 1
  expect_error("32-bit", false, false, std::int64_t(1) << 31, 2, 2, 2, 2, 2);
  expect_error("fp32 or bf16", false, false, 2, 2, 2, 2, 2, 2, DType::kFloat16);
  expect_error("lda = 2147483648 exceeds cuBLAS's 32-bit range", false, false, 2, 2, 2, std::int64_t(1) << 31, 2, 2);
  expect_error("ldc = 2147483648 exceeds cuBLAS's 32-bit range", false, false, 2, 2, 2, 2, 2, std::int64_t(1) << 31);
  // k = 1 multiplies (a single product a row): A and B must exist; with k = 0, C = beta * C alone.
  std::vector<float> a(2, 1.5f), b(2, -0.5f), c(4, 1.f);
  EXPECT_THROW(kestrel::cpu::gemm(false, false, 2, 2, 1, 1.f, nullptr, 1, b.data(), 2, 0.f, c.data(), 2,
                                  DType::kFloat32, false),
               kestrel::Error);
  EXPECT_THROW(kestrel::cpu::gemm(false, false, 2, 2, 1, 1.f, a.data(), 1, nullptr, 2, 0.f, c.data(), 2,
                                  DType::kFloat32, false),
               kestrel::Error);
  kestrel::cpu::gemm(false, false, 2, 2, 1, 1.f, a.data(), 1, b.data(), 2, 0.f, c.data(), 2, DType::kFloat32, false);
  EXPECT_EQ(c, std::vector<float>(4, -0.75f));
  EXPECT_THROW(kestrel::cpu::gemm(false, false, 2, 2, 2, 1.f, nullptr, 2, nullptr, 2, 0.f,
                                  nullptr, 2, DType::kFloat32, false),
               kestrel::Error);
}

}  // namespace
