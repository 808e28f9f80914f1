#include "kestrel/kernels/cpu/layernorm.h"

#include <algorithm>
#include <vector>

#include "kestrel/kernels/batchnorm_math.h"
#include "kestrel/kernels/element_io.h"
#include "kestrel/kernels/layernorm_math.h"

namespace kestrel::cpu {
namespace {

bn_detail::Welford row_stats(const void* x, DType dtype, std::int64_t row, std::int64_t cols) {
  bn_detail::RunStats stats;
  for (std::int64_t j = 0; j < cols; ++j) stats.add(element_io::load_float(x, dtype, row * cols + j));
  return stats.result();
}
}  // namespace

void layernorm_forward(const void* x, void* y, DType dtype, std::int64_t rows, std::int64_t cols,
                       const float* gamma, const float* beta, float eps, float* save_mean,
                       float* save_rstd) {
  ln_detail::check_forward(x, y, dtype, rows, cols, eps);
  for (std::int64_t row = 0; row < rows; ++row) {
    float mean, rstd;
    ln_detail::ln_finalize(row_stats(x, dtype, row, cols), static_cast<float>(cols), eps, mean,
                           rstd);
    if (save_mean != nullptr) save_mean[row] = mean;
    if (save_rstd != nullptr) save_rstd[row] = rstd;
    for (std::int64_t j = 0; j < cols; ++j) {
      const std::int64_t i = row * cols + j;
      element_io::store_float(y, dtype, i,
                            ln_detail::ln_forward_element(element_io::load_float(x, dtype, i), mean, rstd,
                                                          gamma, beta, j));
    }
  }
}

std::size_t layernorm_workspace_bytes(std::int64_t rows, std::int64_t cols) {
  ln_detail::check_shape("layernorm_workspace_bytes", rows, cols, DType::kFloat32);
  return 0;
}

void layernorm_backward(const void* dy, const void* x, DType dtype, std::int64_t rows,
                        std::int64_t cols, const float* gamma, const float* save_mean,
                        const float* save_rstd, void* dx, float* dgamma, float* dbeta,
                        void* /*workspace*/) {
  ln_detail::check_backward(dy, x, dtype, rows, cols, save_mean, save_rstd, dx);
  // Column sums in the GPU's order: group k sums rows k, k + groups, ... into one partial, and
  // the groups are added in order (a serial chain over every row drifts with the row count).
  const std::int64_t groups = rows < ln_detail::kGroups ? rows : ln_detail::kGroups;
  const auto width = static_cast<std::size_t>(cols);
  std::vector<float> part_g(width), part_b(width), sum_g(width, 0.f), sum_b(width, 0.f);
  // A row's sums in runs merged pairwise, as the GPU's block reduction merges.
  bn_detail::RunSums<ln_detail::RowSums> sums{ln_detail::RowSums{0.f, 0.f, 0.f}, ln_detail::row_sums_combine};
  for (std::int64_t group = 0; group < groups; ++group) {
    std::fill(part_g.begin(), part_g.end(), 0.f);
    std::fill(part_b.begin(), part_b.end(), 0.f);
    for (std::int64_t row = group; row < rows; row += groups) {
      const float mean = save_mean[row], rstd = save_rstd[row];
      sums.clear();
      for (std::int64_t j = 0; j < cols; ++j) {
        const std::int64_t i = row * cols + j;
        sums.add([&](ln_detail::RowSums& run) {
          ln_detail::row_sums_add(run, element_io::load_float(dy, dtype, i),
                                  element_io::load_float(x, dtype, i), mean, gamma, j);
        });
      }
      const ln_detail::BackwardCoeffs k =
          ln_detail::backward_coeffs(sums.result(), mean, rstd, static_cast<float>(cols));
      for (std::int64_t j = 0; j < cols; ++j) {
        const std::int64_t i = row * cols + j;
        const float dyv = element_io::load_float(dy, dtype, i), xv = element_io::load_float(x, dtype, i);
        part_g[static_cast<std::size_t>(j)] =
            ln_detail::accumulate_dgamma(part_g[static_cast<std::size_t>(j)], dyv, xv, mean, rstd);
        part_b[static_cast<std::size_t>(j)] += dyv;
        element_io::store_float(dx, dtype, i, ln_detail::backward_element(dyv, xv, gamma, j, k));
      }
    }
    for (std::size_t j = 0; j < width; ++j) {
      sum_g[j] += part_g[j];
      sum_b[j] += part_b[j];
    }
  }
  for (std::size_t j = 0; j < width; ++j) {
    if (dgamma != nullptr) dgamma[j] = sum_g[j];
    if (dbeta != nullptr) dbeta[j] = sum_b[j];
  }
}

}  // namespace kestrel::cpu
