#include "kestrel/core/parameter_store.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "kestrel/core/cuda_check_internal.h"
#include "kestrel/core/device_guard_internal.h"
#include "kestrel/core/error.h"
#include "kestrel/kernels/cpu/elementwise.h"
#include "kestrel/kernels/cpu/fill.h"
#include "kestrel/kernels/elementwise.h"

namespace kestrel {
namespace {
constexpr std::int64_t kSlotAlign = 8;  // elements
std::int64_t align_elems(std::int64_t n) { return (n + kSlotAlign - 1) / kSlotAlign * kSlotAlign; }
constexpr std::uint64_t kInitOffsetBase = std::uint64_t(1) << 63;  // apart from dropout's offsets

// Host values of one parameter in logical order.
std::vector<float> initial_values(const ParamInfo& p, std::uint64_t seed, std::size_t index) {
  const std::int64_t n = p.type.shape.numel();
  std::vector<float> v(static_cast<std::size_t>(n));
  const std::uint64_t offset = kInitOffsetBase + index;
  const Init& init = p.init;
  auto need_fan = [&](std::int64_t fan) {
    KESTREL_CHECK(fan > 0, "parameter '", p.name, "': initialiser needs a positive fan (got ", fan, ")");
  };
  switch (init.kind) {
    case Init::Kind::kZeros: break;
    case Init::Kind::kOnes: std::fill(v.begin(), v.end(), 1.f); break;
    case Init::Kind::kConstant: std::fill(v.begin(), v.end(), init.value); break;
    case Init::Kind::kHeNormal:
      need_fan(init.fan_in);
      cpu::fill_normal(v.data(), DType::kFloat32, n, seed, offset, 0.f,
                       static_cast<float>(std::sqrt(2.0 / static_cast<double>(init.fan_in))));
      break;
    case Init::Kind::kHeUniform: {
      need_fan(init.fan_in);
      const float b = static_cast<float>(std::sqrt(6.0 / static_cast<double>(init.fan_in)));
      cpu::fill_uniform(v.data(), DType::kFloat32, n, seed, offset, -b, b);
      break;
    }
    case Init::Kind::kXavierUniform: {
      need_fan(init.fan_in + init.fan_out);
      const float b = static_cast<float>(std::sqrt(6.0 / static_cast<double>(init.fan_in + init.fan_out)));
      cpu::fill_uniform(v.data(), DType::kFloat32, n, seed, offset, -b, b);
      break;
    }
    case Init::Kind::kUniform:
      cpu::fill_uniform(v.data(), DType::kFloat32, n, seed, offset, -init.value, init.value);
      break;
  }
  if (init.range_end > init.range_begin) {
    KESTREL_CHECK(init.range_begin >= 0 && init.range_end <= n, "parameter '", p.name, "': constant range [",
                  init.range_begin, ", ", init.range_end, ") lies outside its ", n, " elements");
    std::fill(v.begin() + init.range_begin, v.begin() + init.range_end, init.range_value);
  }
  return v;
}
}  // namespace

ParameterStore::ParameterStore(const Graph& graph, Context& ctx, std::uint64_t seed)
    : ctx_(ctx), seed_(seed) {
  bool any_shadow = false;
  for (const ParamInfo& p : graph.params()) {
    Slot s{p.name, p.type, p.trainable, p.trainable && p.decay, p.shadow >= 0, 0, 0};
    const std::int64_t n = align_elems(p.type.shape.numel());
    if (p.trainable) {
      s.offset = param_elems_;
      s.shadow_offset = param_elems_;  // the bf16 buffer runs parallel to the fp32 one
      param_elems_ += n;
      any_shadow = any_shadow || s.has_shadow;
    } else {
      s.offset = state_elems_;
      state_elems_ += n;
    }
    slots_.push_back(s);
  }
  // The fused optimizer writes element i of the bf16 copy next to element i of the masters, so
  // the copy spans the whole parameter buffer as soon as one parameter has one.
  shadow_elems_ = any_shadow ? param_elems_ : 0;
  const Stream& st = ctx.stream();
  params_ = Tensor::empty(Shape{param_elems_}, DType::kFloat32, ctx);
  grads_ = Tensor::empty(Shape{param_elems_}, DType::kFloat32, ctx);
  states_ = Tensor::empty(Shape{state_elems_}, DType::kFloat32, ctx);
  shadow_ = Tensor::empty(Shape{shadow_elems_}, DType::kBFloat16, ctx);
  decay_mask_ = Tensor::empty(Shape{param_elems_}, DType::kUInt8, ctx);
  scalar_storage_ = Tensor::empty(Shape{32}, DType::kUInt8, ctx);
  for (Tensor* t : {&params_, &grads_, &states_, &shadow_, &decay_mask_, &scalar_storage_}) t->zero(st);
  auto* base = static_cast<std::uint8_t*>(scalar_storage_.data());
  scalars_.rng_offset = reinterpret_cast<std::uint64_t*>(base);
  scalars_.step = reinterpret_cast<std::int64_t*>(base + 8);
  scalars_.lr = reinterpret_cast<float*>(base + 16);
  initialise(graph);
}

int ParameterStore::index_of(const std::string& name) const {
  for (std::size_t i = 0; i < slots_.size(); ++i)
    if (slots_[i].name == name) return static_cast<int>(i);
  std::string known;
  for (std::size_t i = 0; i < slots_.size() && i < 12; ++i) known += (i ? ", " : "") + slots_[i].name;
  if (slots_.size() > 12) known += ", ...";
  KESTREL_FAIL("no parameter or state named '", name, "' (known: ", known, ")");
}

const char* optimizer_kind_name(OptimizerKind kind) noexcept {
  switch (kind) {
    case OptimizerKind::kNone: return "none";
    case OptimizerKind::kSgd: return "sgd";
    case OptimizerKind::kAdamW: return "adamw";
  }
  return "?";
}

const ParameterStore::Slot& ParameterStore::slot(std::size_t i) const {
  KESTREL_CHECK(i < slots_.size(), "parameter index ", i, " is out of range: the store holds ", slots_.size(),
                " parameters and states");
  return slots_[i];
}

Tensor ParameterStore::flat_view(const Tensor& flat, std::int64_t offset, const TypeSpec& t,
                                 DType dtype) const {
  return flat.view_bytes(static_cast<std::size_t>(offset) * dtype_size(dtype), t.shape, dtype, t.layout);
}

Tensor ParameterStore::value(std::size_t i) const {
  const Slot& s = slot(i);
  return flat_view(s.trainable ? params_ : states_, s.offset, s.type, DType::kFloat32);
}

Tensor ParameterStore::gradient(std::size_t i) const {
  const Slot& s = slot(i);
  KESTREL_CHECK(s.trainable, "'", s.name, "' is a state and has no gradient");
  return flat_view(grads_, s.offset, s.type, DType::kFloat32);
}

Tensor ParameterStore::shadow(std::size_t i) const {
  const Slot& s = slot(i);
  if (!s.has_shadow) return Tensor();
  return flat_view(shadow_, s.shadow_offset, s.type, DType::kBFloat16);
}

const Tensor& ParameterStore::opt_state(int k) const {
  KESTREL_CHECK(k >= 0 && k < 2 && opt_[k].defined(), "optimizer state ", k, " does not exist (optimizer: ",
                optimizer_kind_name(opt_kind_), ", which keeps ", optimizer_buffers(opt_kind_), ")");
  return opt_[k];
}

Tensor ParameterStore::opt_state(int k, std::size_t i) const {
  const Slot& s = slot(i);
  KESTREL_CHECK(s.trainable, "'", s.name, "' is a state and has no optimizer state");
  return flat_view(opt_state(k), s.offset, s.type, DType::kFloat32);
}

int ParameterStore::optimizer_buffers(OptimizerKind kind) noexcept {
  switch (kind) {
    case OptimizerKind::kNone: return 0;
    case OptimizerKind::kSgd: return 1;
    case OptimizerKind::kAdamW: return 2;
  }
  return 0;
}

void ParameterStore::check_optimizer(OptimizerKind kind) const {
  KESTREL_CHECK(kind == OptimizerKind::kNone || opt_kind_ == OptimizerKind::kNone || opt_kind_ == kind,
                "this parameter store already holds state for another optimizer");
}

void ParameterStore::ensure_optimizer_state(OptimizerKind kind) {
  check_optimizer(kind);
  if (kind == OptimizerKind::kNone || kind == opt_kind_) return;
  // Every buffer is made before any is kept: a failed allocation leaves the store as it was.
  Tensor fresh[2];
  for (int k = 0; k < optimizer_buffers(kind); ++k) {
    fresh[k] = Tensor::empty(Shape{param_elems_}, DType::kFloat32, ctx_);
    fresh[k].zero(ctx_.stream());
  }
  for (int k = 0; k < 2; ++k) opt_[k] = std::move(fresh[k]);
  opt_kind_ = kind;
}

void ParameterStore::exempt_1d_from_decay() {
  for (Slot& s : slots_)
    if (s.type.shape.rank() <= 1) s.decay = false;
  upload_decay_mask();
}

void ParameterStore::upload_decay_mask() {
  std::vector<std::uint8_t> mask(static_cast<std::size_t>(param_elems_), 0);
  for (const Slot& s : slots_)
    if (s.trainable && s.decay) std::fill_n(mask.begin() + s.offset, s.type.shape.numel(), 1);
  Tensor host = Tensor::wrap(mask.data(), Shape{param_elems_}, DType::kUInt8, Device::cpu());
  decay_mask_.copy_from(host, ctx_.stream());  // `mask` may go once copy_from returns
}

void ParameterStore::initialise(const Graph& graph) {
  const Stream& st = ctx_.stream();
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    const ParamInfo& p = graph.params()[i];
    const Tensor host = Tensor::from_vector(initial_values(p, seed_, i), p.type.shape,
                                            DType::kFloat32, p.type.layout);
    value(i).copy_from(host, st);  // `host` may go once copy_from returns
  }
  upload_decay_mask();
  refresh_shadows();
}

void ParameterStore::refresh_shadows() {
  if (shadow_elems_ == 0) return;
  // The shadow mirrors the whole trainable buffer (shadow_elems_ == param_elems_): one cast.
  if (ctx_.device().is_cpu()) {
    cpu::cast(params_.data(), DType::kFloat32, shadow_.data(), DType::kBFloat16, shadow_elems_);
  } else {
    DeviceGuard guard(ctx_.device());
    cuda::cast(params_.data(), DType::kFloat32, shadow_.data(), DType::kBFloat16, shadow_elems_,
               ctx_.stream().handle());
  }
}

void ParameterStore::set_learning_rate(float lr) {
  KESTREL_CHECK(std::isfinite(lr) && lr >= 0.f, "learning rate must be finite and >= 0, got ", lr);
  if (ctx_.device().is_cpu()) {
    *scalars_.lr = lr;
    return;
  }
  // Pageable source: the copy is staged before cudaMemcpyAsync returns, so `lr` may go.
  DeviceGuard guard(ctx_.device());  // the stream belongs to the context's device
  KESTREL_CUDA_CHECK(cudaMemcpyAsync(scalars_.lr, &lr, sizeof lr, cudaMemcpyHostToDevice,
                                     ctx_.stream().handle()));
}

ParameterStore::Counters ParameterStore::read_counters() const {
  Tensor host = Tensor::empty_cpu(Shape{32}, DType::kUInt8);
  host.copy_from(scalar_storage_, ctx_.stream());
  const auto* b = static_cast<const std::uint8_t*>(host.data());
  Counters c{};
  std::memcpy(&c.rng_offset, b, 8);
  std::memcpy(&c.step, b + 8, 8);
  std::memcpy(&c.learning_rate, b + 16, 4);
  return c;
}

void ParameterStore::write_counters(const Counters& c) {
  std::uint8_t b[32] = {0};
  std::memcpy(b, &c.rng_offset, 8);
  std::memcpy(b + 8, &c.step, 8);
  std::memcpy(b + 16, &c.learning_rate, 4);
  Tensor h = Tensor::wrap(b, Shape{32}, DType::kUInt8, Device::cpu());
  scalar_storage_.copy_from(h, ctx_.stream());
  ctx_.stream().synchronize();
}

}  // namespace kestrel
