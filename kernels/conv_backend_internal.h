// cuDNN graph-API building blocks of the convolution path (kernels/conv.h), internal. They are
// declared here, not hidden in a .cpp, so that the CPU tests check the descriptor code: tensor,
// convolution, operation and operation-graph descriptors finalize without a GPU (cuDNN 9.19,
// see shared/CUDNN_GRAPH.md section 6); heuristics and plans need a handle, so a device.
//
// Facts followed (CUDNN_GRAPH.md): INT64 unique ids; dims always logical NCHW / KCRS with strides
// giving the layout; a byte alignment on every tensor; FLOAT compute and CROSS_CORRELATION for
// fp32 and bf16; alpha/beta as float; the graph's and the plan's HANDLE set when there is one.
#pragma once

#include <cudnn.h>

#include <array>
#include <cstdint>
#include <string>

#include "kestrel/kernels/conv_desc.h"

namespace kestrel::cudnn_detail {

// Move-only owner of one cudnnBackendDescriptor_t. Setters and finalize() raise
// kestrel::CudnnError with cuDNN's message; the destructor never throws.
class BackendDescriptor {
 public:
  BackendDescriptor() noexcept = default;
  explicit BackendDescriptor(cudnnBackendDescriptorType_t type);
  ~BackendDescriptor();
  BackendDescriptor(BackendDescriptor&& o) noexcept;
  BackendDescriptor& operator=(BackendDescriptor&& o) noexcept;
  BackendDescriptor(const BackendDescriptor&) = delete;
  BackendDescriptor& operator=(const BackendDescriptor&) = delete;

  cudnnBackendDescriptor_t get() const noexcept { return desc_; }
  explicit operator bool() const noexcept { return desc_ != nullptr; }

  void set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, std::int64_t count,
           const void* values);
  void set_int64(cudnnBackendAttributeName_t name, std::int64_t value);
  void set_int64s(cudnnBackendAttributeName_t name, std::int64_t count, const std::int64_t* values);
  void set_descriptor(cudnnBackendAttributeName_t name, const BackendDescriptor& value);
  void set_handle(cudnnBackendAttributeName_t name, cudnnHandle_t handle);
  void finalize();
  // finalize() that reports instead of raising (for trying engine configs one after another).
  cudnnStatus_t try_finalize() noexcept;

 private:
  cudnnBackendDescriptor_t desc_ = nullptr;
  cudnnBackendDescriptorType_t type_ = CUDNN_BACKEND_TENSOR_DESCRIPTOR;  // for messages
};

// cuDNN's message for the last failure ("" when none); read it right after the failing call.
std::string last_error_message();

// Unique ids of the three tensors of a convolution graph. In backward-data the x slot holds dx
// and the y slot dy; in backward-filter the w slot holds dw.
constexpr std::int64_t kUidX = 1, kUidW = 2, kUidY = 3;

// Per-tensor byte alignment declared to cuDNN, by slot (x, w, y as above).
struct ConvAlignment {
  std::int64_t x = 16, w = 16, y = 16;
  bool operator==(const ConvAlignment& o) const { return x == o.x && w == o.w && y == o.y; }
};

// Largest power of two <= 16 that divides the address (16 for nullptr).
std::int64_t pointer_alignment(const void* p) noexcept;

using Dims4 = std::array<std::int64_t, 4>;
// Packed strides of a logical NCHW (or KCRS) tensor stored as `layout` (NHWC / KRSC for kNHWC).
Dims4 packed_strides(Layout layout, const Dims4& dims) noexcept;
// Logical dims of the three slots.
Dims4 x_dims(const Conv2dDesc& d) noexcept;
Dims4 w_dims(const Conv2dDesc& d) noexcept;
Dims4 y_dims(const Conv2dDesc& d) noexcept;

cudnnDataType_t cudnn_data_type(DType t);  // fp32 -> FLOAT, bf16 -> BFLOAT16; raises otherwise

// Finalized descriptors. make_operation_graph sets the graph's HANDLE when `handle` is not null
// (required for heuristics to see the device on cuDNN 9.14).
BackendDescriptor make_tensor(std::int64_t uid, DType dtype, const Dims4& dims,
                              const Dims4& strides, std::int64_t alignment);
BackendDescriptor make_convolution(const Conv2dDesc& d);
BackendDescriptor make_conv_operation(ConvOp op, const BackendDescriptor& x,
                                      const BackendDescriptor& w, const BackendDescriptor& y,
                                      const BackendDescriptor& conv);
BackendDescriptor make_operation_graph(const BackendDescriptor& op, cudnnHandle_t handle);

// The whole one-operation graph of `op` for `d` (validated first). Members are declared in
// creation order so that they are destroyed graph first, tensors last.
struct ConvGraph {
  BackendDescriptor x, w, y, conv, op, graph;
};
ConvGraph make_conv_graph(ConvOp op, const Conv2dDesc& d, const ConvAlignment& align,
                          cudnnHandle_t handle);

// Binds the three slot pointers and the workspace in a variant pack and enqueues the plan on the
// handle's stream. Returns cuDNN's status (the caller decides whether a failure is fatal).
cudnnStatus_t execute_plan(cudnnHandle_t handle, const BackendDescriptor& plan, void* x, void* w,
                           void* y, void* workspace);

}  // namespace kestrel::cudnn_detail
