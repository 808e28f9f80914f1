#include <cstdint>

#include "kestrel/core/device_guard_internal.h"
#include "kestrel/core/nonfinite_internal.h"
#include "kestrel/kernels/cpu/reduce.h"
#include "kestrel/kernels/reduce.h"

namespace kestrel {

std::int64_t count_nonfinite(Context& ctx, const Tensor& x, Tensor& scratch) {
  std::int32_t bad = 0;
  if (ctx.device().is_cpu()) {
    cpu::count_nonfinite(x.data(), x.dtype(), x.numel(), &bad, nullptr, 0);
    return bad;
  }
  DeviceGuard guard(ctx.device());  // launches on the context's device
  const std::size_t ws = cuda::reduce_workspace_bytes(x.numel());
  const std::size_t need = ws + 256;  // the int32 result lives in the first 256 bytes
  if (!scratch.defined() || scratch.nbytes() < need)
    scratch = Tensor::empty(Shape{static_cast<std::int64_t>(need)}, DType::kUInt8, ctx);
  auto* base = static_cast<std::uint8_t*>(scratch.data());
  cuda::count_nonfinite(x.data(), x.dtype(), x.numel(), reinterpret_cast<std::int32_t*>(base),
                        base + 256, ws, ctx.stream().handle());
  Tensor host = Tensor::empty_cpu(Shape{1}, DType::kInt32);
  host.copy_from(scratch.view_bytes(0, Shape{1}, DType::kInt32), ctx.stream());
  return host.data_as<std::int32_t>()[0];
}

}  // namespace kestrel
