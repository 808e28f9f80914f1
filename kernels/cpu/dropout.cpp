#include "kestrel/kernels/cpu/dropout.h"

#include <cstring>

#include "kestrel/core/error.h"
#include "kestrel/kernels/cpu/elementwise.h"
#include "kestrel/kernels/element_io.h"

namespace kestrel::cpu {
namespace {

template <typename T>
void apply_mask(const T* x, T* y, std::int64_t n, std::uint64_t seed, std::uint64_t offset,
                const dropout_detail::Plan& plan) {
  constexpr int kE = dropout_detail::kElementsPerBlock;
  for (std::int64_t base = 0; base < n; base += kE) {
    const Philox4x32 r = philox_block(seed, offset, static_cast<std::uint64_t>(base / kE));
    for (int j = 0; j < kE && base + j < n; ++j) {
      const float v = element_io::load(x, base + j);
      element_io::store(y, base + j,
                        dropout_detail::apply(v, dropout_detail::mask_bits(r, j), plan.threshold, plan.factor));
    }
  }
}

// Forward and backward are the same map (backward applies forward's factor and mask to dy).
void run(const char* what, const void* x, void* y, std::int64_t n, DType dtype,
         const DropoutParams& p) {
  using dropout_detail::Action;
  dropout_detail::dispatch(what, x, y, n, dtype, p, [&](auto tag, const auto& plan) {
    using T = decltype(tag);
    const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(T);
    switch (plan.action) {
      case Action::kCopy:
        if (x != y) std::memmove(y, x, bytes);
        return;
      case Action::kZero:
        std::memset(y, 0, bytes);  // +0 in every dtype
        return;
      case Action::kScale:
        scale(x, y, n, dtype, plan.factor);
        return;
      case Action::kMask:
        apply_mask(static_cast<const T*>(x), static_cast<T*>(y), n, p.seed,
                   dropout_detail::effective_offset(p), plan);
        return;
    }
  });
}
}  // namespace

void dropout_forward(const void* x, void* y, std::int64_t n, DType dtype, const DropoutParams& p) {
  run("dropout_forward", x, y, n, dtype, p);
}

void dropout_backward(const void* dy, void* dx, std::int64_t n, DType dtype,
                      const DropoutParams& p) {
  run("dropout_backward", dy, dx, n, dtype, p);
}

void advance_offset(std::uint64_t* offset_ptr, std::uint64_t increment) {
  KESTREL_CHECK(offset_ptr != nullptr, "advance_offset: null offset pointer");
  *offset_ptr += increment;
}

}  // namespace kestrel::cpu
