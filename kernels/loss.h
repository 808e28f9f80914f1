// Softmax, softmax cross-entropy (fused with its gradient), arg-max and accuracy counting on the
// GPU. CPU twins: kernels/cpu/loss.h. Row formulas: kernels/loss_math.h.
//
// Logits, probabilities and their gradients are [rows, cols] row-major in `dtype` (fp32, bf16
// or fp16), arithmetic in fp32. Every row is reduced relative to its maximum (log-sum-exp), so
// logits of magnitude 1e4 give finite results. One warp works on one row (cub::WarpReduce); the
// batch mean of the loss is a cub::DeviceReduce::Sum over per-row values (deterministic run to
// run on one device).
//
// Labels outside [0, k): the GPU cannot raise, and clamping would hide the bug, so such a row's
// loss is NaN (the mean becomes NaN and the trainer's non-finite check stops) and its dlogits row
// is NaN; count_correct counts such a row as wrong. The CPU twins raise kestrel::Error naming
// the row instead.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kestrel/core/dtype.h"

namespace kestrel::cuda {

// Device bytes softmax_cross_entropy needs as `workspace` (per-row losses + CUB's scratch).
// Asks CUB for its scratch size, so it needs a CUDA device.
std::size_t softmax_cross_entropy_workspace_bytes(std::int64_t n, std::int64_t k);

// *loss = mean over the n rows of -sum_j t_ij log softmax(z_i)_j, t = (1 - eps) onehot(label_i)
// + eps / k, eps = label_smoothing in [0, 1) (PyTorch also takes 1, which ignores the labels).
// loss is one float in device memory (overwritten).
// dlogits (may be null; same dtype as logits): (softmax - t) * (scale / n), scale = *dloss_scale
// (device memory, read when the kernel runs) or 1 when dloss_scale is null. n, k >= 1. dlogits
// overlapping logits is refused (kestrel::Error), by the CPU twin too.
// workspace: at least softmax_cross_entropy_workspace_bytes(n, k) device bytes.
void softmax_cross_entropy(const void* logits, DType dtype, const std::int32_t* labels,
                           std::int64_t n, std::int64_t k, float label_smoothing, float* loss,
                           void* dlogits, const float* dloss_scale, void* workspace,
                           cudaStream_t stream);

// y = softmax(x) along each row.
void softmax_forward(const void* x, void* y, DType dtype, std::int64_t rows, std::int64_t cols,
                     cudaStream_t stream);
// dx = y * (dy - sum_j dy_j y_j) along each row (y is softmax_forward's output).
void softmax_backward(const void* dy, const void* y, void* dx, DType dtype, std::int64_t rows,
                      std::int64_t cols, cudaStream_t stream);

// Adds to *correct (device int64, not reset, so it accumulates over an epoch) the number of rows
// whose arg-max equals the label.
void count_correct(const void* logits, DType dtype, const std::int32_t* labels, std::int64_t n,
                   std::int64_t k, std::int64_t* correct, cudaStream_t stream);

// out[r] = index of the maximum of row r: the first maximum on ties; NaN counts as greater than
// every number (as torch.argmax). cols <= INT32_MAX.
void argmax_rows(const void* x, DType dtype, std::int64_t rows, std::int64_t cols,
                 std::int32_t* out, cudaStream_t stream);

}  // namespace kestrel::cuda
