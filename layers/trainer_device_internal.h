// The trainer's few device operations outside the executor, each dispatched to the CUDA kernel
// or its CPU twin by the context's device (private header of layers/trainer.cpp).
#pragma once

#include <cstdint>

#include "kestrel/core/context.h"
#include "kestrel/core/tensor.h"
#include "kestrel/kernels/augment_math.h"

namespace kestrel::trainer_detail {

// augment_batch from a uint8 dataset [num, 3, 32, 32] (+ uint8 labels) into an executor's
// "images" and "labels" inputs; `indices` points to `count` int32 positions in device memory.
void augment(Context& ctx, const Tensor& images, const Tensor& labels,
             const std::int32_t* indices, std::int64_t count, const Tensor& out_images,
             const Tensor& out_labels, const AugmentParams& p);

// *correct (device int64) += rows among the first `rows` of logits whose arg-max is the label.
void count_correct(Context& ctx, const Tensor& logits, const Tensor& labels, std::int64_t rows,
                   std::int64_t* correct);

// Copies `bytes` bytes between two places of the context's device, in stream order.
void copy_bytes(Context& ctx, void* dst, const void* src, std::size_t bytes);

// Reads `count` int64 values from device memory into host memory (synchronises).
void read_int64(Context& ctx, const void* src, std::int64_t* dst, std::int64_t count);
void write_int64(Context& ctx, void* dst, const std::int64_t* src, std::int64_t count);

// Peak bytes handed out by the context's allocator since it was created, in MB (1e6 bytes).
double peak_memory_mb(const Context& ctx);

}  // namespace kestrel::trainer_detail
