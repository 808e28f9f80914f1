// Independent double reference of the row-major GEMM of kernels/gemm_args.h: op(A) and op(B) are
// materialised as explicit matrices first. Header-only, shared by the CPU and CUDA suites.
#pragma once

#include <cstdint>
#include <vector>

namespace kestrel::testing {

struct GemmCase {
  bool trans_a, trans_b;
  std::int64_t m, n, k, lda, ldb, ldc;
  float alpha, beta;
  // Stored sizes (rows x leading dimension) of A, B and C.
  std::size_t a_size() const { return static_cast<std::size_t>((trans_a ? k : m) * lda); }
  std::size_t b_size() const { return static_cast<std::size_t>((trans_b ? n : k) * ldb); }
  std::size_t c_size() const { return static_cast<std::size_t>(m * ldc); }
};

// GemmCase with leading dimensions = row length + pad.
inline GemmCase gemm_case(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k,
                          std::int64_t pad, float alpha, float beta) {
  const auto at_least_1 = [](std::int64_t v) { return v < 1 ? std::int64_t{1} : v; };
  return {ta, tb, m, n, k, at_least_1((ta ? m : k) + pad), at_least_1((tb ? k : n) + pad),
          at_least_1(n + pad), alpha, beta};
}

// Expected stored C (entries outside the m x n window keep their value).
inline std::vector<double> ref_gemm(const GemmCase& g, const std::vector<double>& a,
                                    const std::vector<double>& b, const std::vector<double>& c) {
  std::vector<double> opa(static_cast<std::size_t>(g.m * g.k)), opb(static_cast<std::size_t>(g.k * g.n));
  for (std::int64_t i = 0; i < g.m; ++i)
    for (std::int64_t p = 0; p < g.k; ++p)
      opa[static_cast<std::size_t>(i * g.k + p)] =
          g.trans_a ? a[static_cast<std::size_t>(p * g.lda + i)] : a[static_cast<std::size_t>(i * g.lda + p)];
  for (std::int64_t p = 0; p < g.k; ++p)
    for (std::int64_t j = 0; j < g.n; ++j)
      opb[static_cast<std::size_t>(p * g.n + j)] =
          g.trans_b ? b[static_cast<std::size_t>(j * g.ldb + p)] : b[static_cast<std::size_t>(p * g.ldb + j)];
  std::vector<double> out = c;
  for (std::int64_t i = 0; i < g.m; ++i)
    for (std::int64_t j = 0; j < g.n; ++j) {
      double acc = 0.0;
      for (std::int64_t p = 0; p < g.k; ++p)
        acc += opa[static_cast<std::size_t>(i * g.k + p)] * opb[static_cast<std::size_t>(p * g.n + j)];
      const std::size_t at = static_cast<std::size_t>(i * g.ldc + j);
      out[at] = g.alpha * acc + (g.beta == 0.f ? 0.0 : g.beta * c[at]);
    }
  return out;
}

}  // namespace kestrel::testing
