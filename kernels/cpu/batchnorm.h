// CPU twins of kernels/batchnorm.h: same arguments and contract, no stream. The workspace is
// accepted for symmetry and ignored (it may be null).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kestrel/core/dtype.h"
#include "kestrel/kernels/batchnorm_types.h"

namespace kestrel::cpu {

std::size_t batchnorm_workspace_bytes(const BatchNormDims& d);

void batchnorm_forward_training(const void* x, const void* residual, void* y, DType dtype,
                                const BatchNormDims& d, const float* gamma, const float* beta,
                                float eps, float momentum, float* running_mean, float* running_var,
                                float* save_mean, float* save_invstd, BnActivation act,
                                void* workspace);

void batchnorm_forward_inference(const void* x, const void* residual, void* y, DType dtype,
                                 const BatchNormDims& d, const float* gamma, const float* beta,
                                 const float* running_mean, const float* running_var, float eps,
                                 BnActivation act);

void batchnorm_forward_apply(const void* x, const void* residual, void* y, DType dtype,
                             const BatchNormDims& d, const float* gamma, const float* beta,
                             const float* save_mean, const float* save_invstd, BnActivation act);

void batchnorm_backward(const void* dy, const void* x, const void* y, DType dtype,
                        const BatchNormDims& d, const float* gamma, const float* save_mean,
                        const float* save_invstd, void* dx, void* dresidual, float* dgamma,
                        float* dbeta, BnActivation act, void* workspace);

}  // namespace kestrel::cpu
