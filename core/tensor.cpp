#include "kestrel/core/tensor.h"

#include <cuda_runtime.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>

#include "kestrel/core/cuda_check_internal.h"
#include "kestrel/core/device_guard_internal.h"
#include "kestrel/kernels/cpu/fill.h"
#include "kestrel/kernels/fill.h"

namespace kestrel {
namespace {
// Page-locked host memory (cudaHostAlloc, cudaHostRegister) and managed memory
// (cudaMallocManaged) wrapped as a CPU tensor: an async copy from either returns at once and
// reads it later, so copy_from waits to keep its promise that the source may be reused on
// return. A copy from pageable memory returns once the driver has staged it.
bool copy_reads_source_later(const void* host) {
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, host) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return attr.type == cudaMemoryTypeHost || attr.type == cudaMemoryTypeManaged;
}
}  // namespace

Storage::Storage(std::size_t bytes, std::shared_ptr<Allocator> allocator, StreamHandle stream)
    : bytes_(bytes), device_(allocator->device()), allocator_(std::move(allocator)) {
  data_ = allocator_->allocate(bytes, stream);
}

std::shared_ptr<Storage> Storage::wrap(void* data, std::size_t bytes, Device device) {
  std::shared_ptr<Storage> s(new Storage());
  s->data_ = data;
  s->bytes_ = bytes;
  s->device_ = device;
  return s;
}

Storage::~Storage() {
  if (allocator_) allocator_->deallocate(data_);
}

namespace {
// layout_strides into `out` (shape.rank() elements), without allocating: is_contiguous is
// noexcept and a std::bad_alloc there ended the program.
void dense_strides(const Shape& shape, Layout layout, std::int64_t* out) noexcept {
  if (layout == Layout::kNHWC && shape.rank() == 4) {
    const std::int64_t c = shape[1], h = shape[2], w = shape[3];
    out[0] = h * w * c, out[1] = 1, out[2] = w * c, out[3] = c;
    return;
  }
  shape.contiguous_strides(out);
}
}  // namespace

std::vector<std::int64_t> layout_strides(const Shape& shape, Layout layout) {
  std::vector<std::int64_t> s(static_cast<std::size_t>(shape.rank()));
  dense_strides(shape, layout, s.data());
  return s;
}

namespace {
void check_layout(const Shape& shape, Layout layout) {
  KESTREL_CHECK(layout == Layout::kNCHW || shape.rank() == 4,
                "layout nhwc needs a rank-4 shape, got ", shape.to_string());
}
}  // namespace

Tensor::Tensor(std::shared_ptr<Storage> storage, std::size_t offset_bytes, const Shape& shape,
               DType dtype, Layout layout, Device device)
    : storage_(std::move(storage)),
      offset_bytes_(offset_bytes),
      shape_(shape),
      strides_(layout_strides(shape, layout)),
      dtype_(dtype),
      layout_(layout),
      device_(device) {}

namespace {
// numel x element size, which must fit in size_t.
std::size_t byte_size(const Shape& shape, DType dtype) {
  const auto n = static_cast<std::uint64_t>(shape.numel());
  KESTREL_CHECK(n <= std::numeric_limits<std::size_t>::max() / dtype_size(dtype), "a tensor of shape ",
                shape.to_string(), " in ", dtype_name(dtype), " would need more than 2^64 bytes");
  return static_cast<std::size_t>(n) * dtype_size(dtype);
}

// A float as an int32 or uint8 element: finite, whole and in the type's range, or an Error (a
// plain cast is undefined outside the range and truncates fractions: labels would come out wrong).
template <typename I>
I integral_from_float(float v, std::int64_t i) {
  KESTREL_CHECK(std::isfinite(v) && std::trunc(v) == v && v >= static_cast<float>(std::numeric_limits<I>::min()) &&
                    static_cast<double>(v) <= static_cast<double>(std::numeric_limits<I>::max()),
                "from_vector: element ", i, " (", v, ") is not a whole number in ", +std::numeric_limits<I>::min(), "..",
                +std::numeric_limits<I>::max());
  return static_cast<I>(v);
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Context& ctx, Layout layout) {
  check_layout(shape, layout);
  const std::size_t bytes = byte_size(shape, dtype);
  auto storage = std::make_shared<Storage>(bytes, ctx.allocator(), ctx.stream().handle());
  return Tensor(std::move(storage), 0, shape, dtype, layout, ctx.device());
}

Tensor Tensor::empty_cpu(const Shape& shape, DType dtype, Layout layout) {
  check_layout(shape, layout);
  const std::size_t bytes = byte_size(shape, dtype);
  auto storage = std::make_shared<Storage>(bytes, cpu_allocator(), nullptr);
  return Tensor(std::move(storage), 0, shape, dtype, layout, Device::cpu());
}

Tensor Tensor::wrap(void* data, const Shape& shape, DType dtype, Device device, Layout layout) {
  check_layout(shape, layout);
  const std::size_t bytes = byte_size(shape, dtype);
  return Tensor(Storage::wrap(data, bytes, device), 0, shape, dtype, layout, device);
}

Tensor Tensor::from_int32_vector(const std::vector<std::int32_t>& values, const Shape& shape) {
  KESTREL_CHECK(static_cast<std::int64_t>(values.size()) == shape.numel(), "from_int32_vector: ",
                values.size(), " values for shape ", shape.to_string(), " (", shape.numel(), " elements)");
  Tensor t = empty_cpu(shape, DType::kInt32);
  if (!values.empty()) std::memcpy(t.data(), values.data(), values.size() * sizeof(std::int32_t));
  return t;
}

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape, DType dtype,
                           Layout layout) {
  KESTREL_CHECK(static_cast<std::int64_t>(values.size()) == shape.numel(), "from_vector: ",
                values.size(), " values for shape ", shape.to_string(), " (", shape.numel(),
                " elements)");
  KESTREL_CHECK(is_floating(dtype) || dtype == DType::kInt32 || dtype == DType::kUInt8,
                "from_vector: unsupported dtype ", dtype_name(dtype));
  Tensor t = empty_cpu(shape, dtype, layout);
  const std::vector<std::int64_t> logical = shape.contiguous_strides();
  const int rank = shape.rank();
  for (std::int64_t i = 0; i < shape.numel(); ++i) {
    std::int64_t rem = i, phys = 0;
    for (int d = 0; d < rank; ++d) {
      phys += (rem / logical[d]) * t.strides_[d];
      rem %= logical[d];
    }
    const float v = values[i];
    switch (dtype) {
      case DType::kFloat32: static_cast<float*>(t.data())[phys] = v; break;
      case DType::kBFloat16: static_cast<bfloat16*>(t.data())[phys] = to_bf16(v); break;
      case DType::kFloat16: static_cast<float16*>(t.data())[phys] = to_fp16(v); break;
      case DType::kInt32: static_cast<std::int32_t*>(t.data())[phys] = integral_from_float<std::int32_t>(v, i); break;
      case DType::kUInt8: static_cast<std::uint8_t*>(t.data())[phys] = integral_from_float<std::uint8_t>(v, i); break;
    }
  }
  return t;
}

Tensor::Tensor(Tensor&& o) noexcept { *this = std::move(o); }

Tensor& Tensor::operator=(Tensor&& o) noexcept {
  if (this == &o) return *this;
  storage_ = std::move(o.storage_);
  offset_bytes_ = std::exchange(o.offset_bytes_, 0);
  shape_ = std::exchange(o.shape_, Shape{});
  strides_ = std::move(o.strides_);
  o.strides_.clear();
  dtype_ = std::exchange(o.dtype_, DType::kFloat32);
  layout_ = std::exchange(o.layout_, Layout::kNCHW);
  device_ = std::exchange(o.device_, Device{});
  return *this;
}

bool Tensor::is_contiguous() const noexcept {
  std::array<std::int64_t, Shape::kMaxRank> dense;
  dense_strides(shape_, layout_, dense.data());
  for (int d = 0; d < shape_.rank(); ++d)
    if (shape_[d] > 1 && strides_[d] != dense[d]) return false;
  return true;
}

void* Tensor::data() const noexcept {
  if (!storage_ || storage_->data() == nullptr) return nullptr;
  return static_cast<char*>(storage_->data()) + offset_bytes_;
}

Tensor Tensor::reshape(const Shape& shape) const {
  KESTREL_CHECK(shape.numel() == numel(), "reshape ", shape_.to_string(), " -> ", shape.to_string(),
                ": element counts differ (", numel(), " vs ", shape.numel(), ")");
  KESTREL_CHECK(is_contiguous(), "reshape needs a contiguous tensor, got ", to_string());
  Layout out_layout = Layout::kNCHW;
  if (layout_ == Layout::kNHWC && shape_.rank() == 4) {
    // Memory order is N,H,W,C: only an NHWC view of the same shape, or a shape that keeps the
    // batch and flattens the rest when C or H*W is 1 (then both orders agree), is meaningful.
    const bool same = shape == shape_;
    const bool trivially_ordered = shape_[1] == 1 || shape_[2] * shape_[3] == 1;
    KESTREL_CHECK(same || trivially_ordered, "reshape of an nhwc tensor ", shape_.to_string(),
                  " to ", shape.to_string(), " would reorder elements; convert the layout first");
    if (same) out_layout = Layout::kNHWC;
  }
  Tensor t(storage_, offset_bytes_, shape, dtype_, out_layout, device_);
  return t;
}

Tensor Tensor::narrow(int dim, std::int64_t start, std::int64_t length) const {
  const int d = dim < 0 ? dim + shape_.rank() : dim;
  KESTREL_CHECK(d >= 0 && d < shape_.rank(), "narrow: dimension ", dim, " out of range for ",
                to_string());
  KESTREL_CHECK(start >= 0 && length >= 0 && start <= shape_[d] && length <= shape_[d] - start, "narrow: ", length,
                " elements from ", start, " are out of bounds for dimension ", d, " of size ", shape_[d]);
  std::vector<std::int64_t> dims = shape_.dims();
  dims[d] = length;
  Tensor t = *this;
  t.shape_ = Shape(dims);
  t.offset_bytes_ = offset_bytes_ + static_cast<std::size_t>(start * strides_[d]) * dtype_size(dtype_);
  return t;  // strides unchanged
}

Tensor Tensor::view_bytes(std::size_t byte_offset, const Shape& shape, DType dtype,
                          Layout layout) const {
  KESTREL_CHECK(defined(), "view_bytes of an undefined tensor");
  check_layout(shape, layout);
  KESTREL_CHECK(is_contiguous(), "view_bytes needs a contiguous tensor, got ", to_string());
  const std::size_t bytes = byte_size(shape, dtype);
  KESTREL_CHECK(byte_offset <= nbytes() && bytes <= nbytes() - byte_offset, "view_bytes: ", bytes,
                " bytes at offset ", byte_offset, " do not fit in ", to_string(), " (", nbytes(), " bytes)");
  return Tensor(storage_, offset_bytes_ + byte_offset, shape, dtype, layout, device_);
}

void Tensor::copy_from(const Tensor& src, const Stream& stream) {
  KESTREL_CHECK(defined() && src.defined(), "copy_from: ", defined() ? "the source" : "the destination",
                " is an undefined tensor");
  KESTREL_CHECK(src.shape_ == shape_ && src.dtype_ == dtype_ && src.layout_ == layout_,
                "copy_from: source ", src.to_string(), " does not match destination ", to_string());
  KESTREL_CHECK(is_contiguous() && src.is_contiguous(),
                "copy_from needs contiguous tensors (got ", src.to_string(), " -> ", to_string(), ")");
  if (nbytes() == 0) return;
  if (device_.is_cpu() && src.device_.is_cpu()) {
    std::memcpy(data(), src.data(), nbytes());
    return;
  }
  const Device gpu = device_.is_cuda() ? device_ : src.device_;
  // A CPU stream has no handle: the copy would go to the legacy default stream, unordered with
  // the contexts' non-blocking streams.
  KESTREL_CHECK(stream.device() == gpu || (src.device_.is_cuda() && stream.device() == src.device_),
                "copy_from: stream is on ", stream.device().to_string(), " but the copy involves ",
                gpu.to_string());
  DeviceGuard guard(gpu);
  KESTREL_CUDA_CHECK(cudaMemcpyAsync(data(), src.data(), nbytes(), cudaMemcpyDefault, stream.handle()));
  if (device_.is_cpu() || (src.device_.is_cpu() && copy_reads_source_later(src.data()))) stream.synchronize();
}

Tensor Tensor::to(Context& ctx, const Stream& stream) const {
  // The caching allocator hands the new block out for use on ctx's stream: a copy on another
  // stream could run before work still queued there on the block's last user.
  KESTREL_CHECK(!ctx.device().is_cuda() || stream.handle() == ctx.stream().handle(),
                "Tensor::to: a tensor made on ", ctx.device().to_string(),
                " is written on that context's stream; pass ctx.stream()");
  Tensor t = empty(shape_, dtype_, ctx, layout_);
  t.copy_from(*this, stream);
  return t;
}

void Tensor::check_fillable(const char* what, const Stream& stream) const {
  KESTREL_CHECK(defined(), what, " of an undefined tensor");
  KESTREL_CHECK(is_contiguous(), what, " needs a contiguous tensor, got ", to_string());
  // As in copy_from: a CPU stream (or another device's) would not order the work with this
  // tensor's users.
  KESTREL_CHECK(device_.is_cpu() || stream.device() == device_, what, ": stream is on ",
                stream.device().to_string(), " but the tensor is on ", device_.to_string());
}

void Tensor::fill(float value, const Stream& stream) {
  check_fillable("fill", stream);
  if (device_.is_cpu()) return cpu::fill_constant(data(), dtype_, numel(), value);
  DeviceGuard guard(device_);
  cuda::fill_constant(data(), dtype_, numel(), value, stream.handle());
}

void Tensor::zero(const Stream& stream) {
  check_fillable("zero", stream);
  if (nbytes() == 0) return;
  if (device_.is_cpu()) {
    std::memset(data(), 0, nbytes());
    return;
  }
  DeviceGuard guard(device_);
  KESTREL_CUDA_CHECK(cudaMemsetAsync(data(), 0, nbytes(), stream.handle()));
}

void Tensor::fill_uniform(std::uint64_t seed, float lo, float hi, const Stream& stream,
                          std::uint64_t offset) {
  check_fillable("fill_uniform", stream);
  if (device_.is_cpu()) return cpu::fill_uniform(data(), dtype_, numel(), seed, offset, lo, hi);
  DeviceGuard guard(device_);
  cuda::fill_uniform(data(), dtype_, numel(), seed, offset, lo, hi, stream.handle());
}

void Tensor::fill_normal(std::uint64_t seed, float mean, float stddev, const Stream& stream,
                         std::uint64_t offset) {
  check_fillable("fill_normal", stream);
  if (device_.is_cpu()) return cpu::fill_normal(data(), dtype_, numel(), seed, offset, mean, stddev);
  DeviceGuard guard(device_);
  cuda::fill_normal(data(), dtype_, numel(), seed, offset, mean, stddev, stream.handle());
}

std::vector<float> Tensor::to_float_vector(const Stream& stream) const {
  if (!defined() || device_.is_cpu()) return to_float_vector();
  Tensor host = empty_cpu(shape_, dtype_, layout_);
  host.copy_from(*this, stream);  // device to host: synchronises the stream
  return host.to_float_vector();
}

std::vector<float> Tensor::to_float_vector() const {
  KESTREL_CHECK(defined(), "to_float_vector of an undefined tensor");
  KESTREL_CHECK(device_.is_cpu(), "to_float_vector() reads host memory; for ", to_string(),
                " pass the stream that orders its writes: to_float_vector(stream)");
  std::vector<float> out(static_cast<std::size_t>(numel()));
  const std::vector<std::int64_t> logical = shape_.contiguous_strides();
  const int rank = shape_.rank();
  for (std::int64_t i = 0; i < numel(); ++i) {
    std::int64_t rem = i, phys = 0;
    for (int d = 0; d < rank; ++d) {
      phys += (rem / logical[d]) * strides_[d];
      rem %= logical[d];
    }
    switch (dtype_) {
      case DType::kFloat32: out[i] = static_cast<const float*>(data())[phys]; break;
      case DType::kBFloat16: out[i] = to_float(static_cast<const bfloat16*>(data())[phys]); break;
      case DType::kFloat16: out[i] = to_float(static_cast<const float16*>(data())[phys]); break;
      case DType::kInt32: out[i] = static_cast<float>(static_cast<const std::int32_t*>(data())[phys]); break;
      case DType::kUInt8: out[i] = static_cast<float>(static_cast<const std::uint8_t*>(data())[phys]); break;
    }
  }
  return out;
}

std::string Tensor::to_string() const {
  return "Tensor(" + shape_.to_string() + ", " + dtype_name(dtype_) + ", " + layout_name(layout_) +
         ", " + device_.to_string() + ")";
}

}  // namespace kestrel
