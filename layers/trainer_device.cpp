#include <cstring>

#include "kestrel/core/device_guard_internal.h"
#include "kestrel/core/error.h"
#include "kestrel/kernels/augment.h"
#include "kestrel/kernels/cpu/augment.h"
#include "kestrel/kernels/cpu/loss.h"
#include "kestrel/kernels/loss.h"
#include "kestrel/layers/trainer_device_internal.h"

namespace kestrel::trainer_detail {

void augment(Context& ctx, const Tensor& images, const Tensor& labels, const std::int32_t* indices,
             std::int64_t count, const Tensor& out_images, const Tensor& out_labels,
             const AugmentParams& p) {
  const auto* data = static_cast<const std::uint8_t*>(images.data());
  const auto* lab = static_cast<const std::uint8_t*>(labels.data());
  const std::int64_t num = images.shape()[0];
  auto* out_lab = out_labels.data_as<std::int32_t>();
  // Kernel launches go to the current device: it must be the context's (cuda:N, N > 0), whose
  // stream they use.
  DeviceGuard guard(ctx.device());
  if (ctx.device().is_cpu())
    cpu::augment_batch(data, num, lab, indices, count, out_images.data(), out_images.dtype(),
                       out_images.layout(), out_lab, p);
  else
    cuda::augment_batch(data, num, lab, indices, count, out_images.data(), out_images.dtype(),
                        out_images.layout(), out_lab, p, ctx.stream().handle());
}

void count_correct(Context& ctx, const Tensor& logits, const Tensor& labels, std::int64_t rows,
                   std::int64_t* correct) {
  KESTREL_CHECK(rows >= 0 && rows <= logits.shape()[0], "count_correct: ", rows, " rows of ",
                logits.to_string());
  const std::int64_t k = logits.shape()[1];
  const auto* lab = labels.data_as<std::int32_t>();
  DeviceGuard guard(ctx.device());  // launches on the context's device (see augment)
  if (ctx.device().is_cpu())
    cpu::count_correct(logits.data(), logits.dtype(), lab, rows, k, correct);
  else
    cuda::count_correct(logits.data(), logits.dtype(), lab, rows, k, correct, ctx.stream().handle());
}

void copy_bytes(Context& ctx, void* dst, const void* src, std::size_t bytes) {
  const auto n = static_cast<std::int64_t>(bytes);
  Tensor d = Tensor::wrap(dst, Shape{n}, DType::kUInt8, ctx.device());
  const Tensor s = Tensor::wrap(const_cast<void*>(src), Shape{n}, DType::kUInt8, ctx.device());
  d.copy_from(s, ctx.stream());
}

void read_int64(Context& ctx, const void* src, std::int64_t* dst, std::int64_t count) {
  const std::int64_t bytes = count * 8;
  Tensor d = Tensor::wrap(dst, Shape{bytes}, DType::kUInt8, Device::cpu());
  d.copy_from(Tensor::wrap(const_cast<void*>(src), Shape{bytes}, DType::kUInt8, ctx.device()),
              ctx.stream());
}

void write_int64(Context& ctx, void* dst, const std::int64_t* src, std::int64_t count) {
  const std::int64_t bytes = count * 8;
  Tensor d = Tensor::wrap(dst, Shape{bytes}, DType::kUInt8, ctx.device());
  d.copy_from(Tensor::wrap(const_cast<std::int64_t*>(src), Shape{bytes}, DType::kUInt8, Device::cpu()),
              ctx.stream());
  ctx.stream().synchronize();  // `src` may be a local of the caller
}

double peak_memory_mb(const Context& ctx) {
  return static_cast<double>(ctx.allocator()->stats().peak_bytes) / 1e6;
}

}  // namespace kestrel::trainer_detail
