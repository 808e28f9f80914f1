// Tensor: a typed, shaped view of device or host memory with shared ownership of its storage.
//
// Contract:
// - Shapes are logical (N, C, H, W for rank-4 activations); layout() is the physical order.
// - Copying a Tensor copies the view, not the data (storage is shared). Views (reshape,
//   narrow) share storage with their source.
// - Transfers between devices are explicit (copy_from, to) and take a stream; nothing copies
//   behind an accessor.
// - Memory comes from a Context's allocator, in stream order on the stream given at creation
//   (the context's stream by default); freeing happens when the last view goes away.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kestrel/core/allocator.h"
#include "kestrel/core/context.h"
#include "kestrel/core/dtype.h"
#include "kestrel/core/error.h"
#include "kestrel/core/layout.h"
#include "kestrel/core/shape.h"
#include "kestrel/core/stream.h"

namespace kestrel {

// Bytes on one device. Owning storages return their memory to the allocator they came from;
// wrapped storages (Storage::wrap) never free.
class Storage {
 public:
  Storage(std::size_t bytes, std::shared_ptr<Allocator> allocator, StreamHandle stream);
  static std::shared_ptr<Storage> wrap(void* data, std::size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const noexcept { return data_; }
  std::size_t bytes() const noexcept { return bytes_; }
  Device device() const noexcept { return device_; }

 private:
  Storage() = default;
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  Device device_;
  std::shared_ptr<Allocator> allocator_;  // null for wrapped memory
};

class Tensor {
 public:
  Tensor() = default;  // undefined: defined() is false
  // Copies share the storage. A moved-from tensor is undefined, as a default-constructed one
  // (shape and strides included, so every accessor stays safe).
  Tensor(const Tensor&) = default;
  Tensor& operator=(const Tensor&) = default;
  Tensor(Tensor&& o) noexcept;
  Tensor& operator=(Tensor&& o) noexcept;

  // Uninitialised memory for `shape` on ctx's device, allocated in order on ctx.stream().
  static Tensor empty(const Shape& shape, DType dtype, Context& ctx, Layout layout = Layout::kNCHW);
  // Uninitialised host memory.
  static Tensor empty_cpu(const Shape& shape, DType dtype, Layout layout = Layout::kNCHW);
  // A non-owning view of existing memory (the caller keeps it alive).
  static Tensor wrap(void* data, const Shape& shape, DType dtype, Device device,
                     Layout layout = Layout::kNCHW);
  // A host tensor holding `values` (given in logical row-major order), stored as `dtype`.
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape,
                            DType dtype = DType::kFloat32, Layout layout = Layout::kNCHW);
  // A host int32 tensor holding `values` (class labels, indices) in row-major order.
  static Tensor from_int32_vector(const std::vector<std::int32_t>& values, const Shape& shape);

  bool defined() const noexcept { return storage_ != nullptr; }
  const Shape& shape() const noexcept { return shape_; }
  DType dtype() const noexcept { return dtype_; }
  Layout layout() const noexcept { return layout_; }
  Device device() const noexcept { return device_; }
  std::int64_t numel() const noexcept { return shape_.numel(); }
  std::size_t nbytes() const noexcept { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }
  // Strides in elements, one per logical dimension.
  const std::vector<std::int64_t>& strides() const noexcept { return strides_; }
  // True when the elements are dense in the order of layout().
  bool is_contiguous() const noexcept;

  void* data() const noexcept;
  template <typename T>
  T* data_as() const {
    KESTREL_CHECK(dtype_of<T> == dtype_, "tensor holds ", dtype_name(dtype_), ", accessed as ",
                  dtype_name(dtype_of<T>));
    return static_cast<T*>(data());
  }

  // A view with a new shape (same number of elements). Needs a contiguous tensor whose memory
  // order is its logical order (NCHW, or NHWC of rank 4 reshaped to NHWC with the same dims).
  Tensor reshape(const Shape& shape) const;
  // A view of `length` entries of dimension `dim` starting at `start`.
  Tensor narrow(int dim, std::int64_t start, std::int64_t length) const;
  // A dense view of `shape` (stored as dtype in layout) starting `byte_offset` bytes into this
  // tensor's memory: how the executor carves values out of its arena. Needs a contiguous tensor
  // and the whole view inside it.
  Tensor view_bytes(std::size_t byte_offset, const Shape& shape, DType dtype,
                    Layout layout = Layout::kNCHW) const;

  // Copies src (same shape, dtype and layout; both contiguous) into this tensor on `stream`.
  // A copy into host memory has finished when copy_from returns; a copy from host memory may
  // reuse the host buffer as soon as copy_from returns (from page-locked or managed memory it
  // waits for the copy). On CUDA `stream` must be on the tensors' device (either one's for a copy between two).
  void copy_from(const Tensor& src, const Stream& stream);
  // A new tensor on ctx's device holding the same values (copied on `stream`). Its memory is
  // allocated in the order of ctx.stream(), so for a CUDA ctx `stream` must be ctx.stream() (else
  // a kestrel::Error: the copy could overwrite a reused block before the work queued on it there
  // has run). For a CPU ctx, `stream` is the one ordering the source's writes (any device).
  Tensor to(Context& ctx, const Stream& stream) const;

  // Fills (floating dtypes; contiguous tensors). Random fills use Philox stream (seed, offset)
  // as in kernels/fill.h, so CPU and GPU produce the same uniform values bit for bit.
  void fill(float value, const Stream& stream);
  void zero(const Stream& stream);  // any dtype
  void fill_uniform(std::uint64_t seed, float lo, float hi, const Stream& stream,
                    std::uint64_t offset = 0);
  void fill_normal(std::uint64_t seed, float mean, float stddev, const Stream& stream,
                   std::uint64_t offset = 0);

  // Values of a host tensor as floats in logical row-major order (any layout, any dtype).
  std::vector<float> to_float_vector() const;
  // The same for a tensor on any device: a device tensor (contiguous) is first copied to host
  // memory on `stream`, which this synchronises; code that reads results this way runs unchanged
  // on the CPU and on a GPU (executor.output("loss").to_float_vector(ctx.stream())).
  std::vector<float> to_float_vector(const Stream& stream) const;
  // "Tensor([2, 3, 4, 4], fp32, nchw, cuda:0)"
  std::string to_string() const;

 private:
  Tensor(std::shared_ptr<Storage> storage, std::size_t offset_bytes, const Shape& shape,
         DType dtype, Layout layout, Device device);
  void check_fillable(const char* what, const Stream& stream) const;

  std::shared_ptr<Storage> storage_;
  std::size_t offset_bytes_ = 0;
  Shape shape_;
  std::vector<std::int64_t> strides_;
  DType dtype_ = DType::kFloat32;
  Layout layout_ = Layout::kNCHW;
  Device device_;
};

// Dense strides (elements, logical order) of `shape` stored in `layout`.
std::vector<std::int64_t> layout_strides(const Shape& shape, Layout layout);

}  // namespace kestrel
