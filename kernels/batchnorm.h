// Batch normalisation on the GPU (training forward, inference forward, backward), with the fused
// ReLU and residual-add + ReLU variants. CPU twins: kernels/cpu/batchnorm.h.
//
// Semantics are PyTorch's (nn.BatchNorm2d): per channel, over the m = n * hw values of the batch,
//   mean, var = biased variance, save_invstd = 1 / sqrt(var + eps),
//   y = act(gamma * (x - mean) * invstd + beta [+ residual]),
//   running_mean = (1 - momentum) * running_mean + momentum * mean,
//   running_var  = (1 - momentum) * running_var  + momentum * var * m / (m - 1)   (unbiased).
// Inference uses running_mean / running_var in place of the batch statistics.
// Backward: g = (y <= 0) ? 0 : dy for the ReLU variants (dy otherwise: a NaN output passes its
//   gradient, as PyTorch's relu backward does); dresidual = g (kAddRelu);
//   dbeta = sum g, dgamma = sum g * xhat, dx = gamma * invstd * (g - dbeta/m - xhat * dgamma/m),
//   xhat = (x - save_mean) * save_invstd. dgamma and dbeta are overwritten, not accumulated.
//
// Storage: x, residual, y, dy, dx, dresidual are fp32 or bf16 (`dtype`, all the same), dense in
// d.layout; gamma, beta, statistics and running statistics are fp32 [c]. Arithmetic is fp32;
// the variance is accumulated as shifted sums per thread combined with Chan's formula, so a
// channel with mean 1e4 and std 1 still gets its variance to about 2e-5 relative (the CPU twin's
// save_invstd, 65536 values against long double: mean 1e6, 3e-4 relative; 1e7, 8e-3;
// docs/ARCHITECTURE.md has the error model). The sums of squared deviations are fp32: a channel
// with std 1e18 (4096 values; or bf16 values near bf16's largest) overflows them and its
// statistics are NaN.
//
// Pointers: gamma / beta may be null (affine-free: 1 and 0); dgamma / dbeta may be null (not
//   written). running_mean / running_var are both null (no update) or both set. residual is set
//   exactly when act == kAddRelu; so is dresidual. y is needed by backward only for the ReLU
//   variants (may be null for kNone). An output may be the same pointer as an input of the same
//   shape (y == x or y == residual in forward, dx == dy or dx == x in backward): each element is
//   read before it is written. Partial overlaps are not allowed. After an in-place forward x is
//   gone, so backward cannot run on it.
// Workspace: batchnorm_workspace_bytes(d) bytes, 16-byte aligned, any contents (scratch for the
//   partial sums; nothing has to be zeroed and nothing persists between calls, so any shared
//   scratch buffer and CUDA Graph replay are fine). Reductions run in a fixed order: results are
//   bitwise reproducible from run to run and do not depend on the device.
// Errors (kestrel::Error, before any launch): n, c or hw <= 0; a dtype other than fp32 / bf16;
//   eps <= 0 or not finite; momentum outside [0, 1]; training with m == 1 ("Expected more than 1
//   value per channel when training"); missing required pointers.
// Launches (all on `stream`): training forward and backward are three kernels each (partial
//   reduction over many blocks per channel, per-channel combine, elementwise pass); inference is
//   one elementwise kernel.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kestrel/core/dtype.h"
#include "kestrel/kernels/batchnorm_types.h"

namespace kestrel::cuda {

std::size_t batchnorm_workspace_bytes(const BatchNormDims& d);

void batchnorm_forward_training(const void* x, const void* residual, void* y, DType dtype,
                                const BatchNormDims& d, const float* gamma, const float* beta,
                                float eps, float momentum, float* running_mean, float* running_var,
                                float* save_mean, float* save_invstd, BnActivation act,
                                void* workspace, cudaStream_t stream);

void batchnorm_forward_inference(const void* x, const void* residual, void* y, DType dtype,
                                 const BatchNormDims& d, const float* gamma, const float* beta,
                                 const float* running_mean, const float* running_var, float eps,
                                 BnActivation act, cudaStream_t stream);

// The normalise pass of a training forward alone: y = act(gamma * (x - save_mean) * save_invstd
// + beta [+ residual]) with the statistics that forward saved, bit-identical to the y it wrote
// (the same elementwise kernel). Used to recompute a BN+ReLU output for backward instead of
// keeping it alive from forward to backward (CompileOptions::recompute_bn_relu, the default).
// One kernel, no workspace.
void batchnorm_forward_apply(const void* x, const void* residual, void* y, DType dtype,
                             const BatchNormDims& d, const float* gamma, const float* beta,
                             const float* save_mean, const float* save_invstd, BnActivation act,
                             cudaStream_t stream);

void batchnorm_backward(const void* dy, const void* x, const void* y, DType dtype,
                        const BatchNormDims& d, const float* gamma, const float* save_mean,
                        const float* save_invstd, void* dx, void* dresidual, float* dgamma,
                        float* dbeta, BnActivation act, void* workspace, cudaStream_t stream);

}  // namespace kestrel::cuda
