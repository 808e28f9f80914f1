#include <string>
#include <utility>

#include "kestrel/core/cudnn_check_internal.h"
#include "kestrel/kernels/conv_backend_internal.h"

namespace kestrel::cudnn_detail {
namespace {

// Names of the descriptor types this file builds, for error messages.
std::string type_name(cudnnBackendDescriptorType_t t) {
  switch (t) {
    case CUDNN_BACKEND_TENSOR_DESCRIPTOR: return "TENSOR";
    case CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR: return "CONVOLUTION";
    case CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR: return "CONVOLUTION_FORWARD";
    case CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR: return "CONVOLUTION_BACKWARD_DATA";
    case CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR:
      return "CONVOLUTION_BACKWARD_FILTER";
    case CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR: return "OPERATIONGRAPH";
    case CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR: return "ENGINEHEUR";
    case CUDNN_BACKEND_ENGINECFG_DESCRIPTOR: return "ENGINECFG";
    case CUDNN_BACKEND_ENGINE_DESCRIPTOR: return "ENGINE";
    case CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR: return "EXECUTION_PLAN";
    case CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR: return "VARIANT_PACK";
    default: return "type " + std::to_string(static_cast<int>(t));
  }
}

// Raises CudnnError naming the call, the descriptor and the attribute (cuDNN's text comes too).
[[noreturn]] void fail(cudnnStatus_t status, const std::string& call, int line) {
  detail::throw_cudnn_error(status, call.c_str(), detail::short_file(__FILE__), line);
}
}  // namespace

BackendDescriptor::BackendDescriptor(cudnnBackendDescriptorType_t type) : type_(type) {
  const cudnnStatus_t st = cudnnBackendCreateDescriptor(type, &desc_);
  if (st != CUDNN_STATUS_SUCCESS) {
    desc_ = nullptr;
    fail(st, "cudnnBackendCreateDescriptor(" + type_name(type) + ")", __LINE__);
  }
}

BackendDescriptor::~BackendDescriptor() {
  if (desc_ != nullptr) (void)cudnnBackendDestroyDescriptor(desc_);
}

BackendDescriptor::BackendDescriptor(BackendDescriptor&& o) noexcept
    : desc_(std::exchange(o.desc_, nullptr)), type_(o.type_) {}

BackendDescriptor& BackendDescriptor::operator=(BackendDescriptor&& o) noexcept {
  if (this != &o) {
    if (desc_ != nullptr) (void)cudnnBackendDestroyDescriptor(desc_);
    desc_ = std::exchange(o.desc_, nullptr);
    type_ = o.type_;
  }
  return *this;
}

void BackendDescriptor::set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
                            std::int64_t count, const void* values) {
  const cudnnStatus_t st = cudnnBackendSetAttribute(desc_, name, type, count, values);
  if (st != CUDNN_STATUS_SUCCESS)
    fail(st, "cudnnBackendSetAttribute(" + type_name(type_) + ", attribute " +
             std::to_string(static_cast<int>(name)) + ")", __LINE__);
}

void BackendDescriptor::set_int64(cudnnBackendAttributeName_t name, std::int64_t value) {
  set(name, CUDNN_TYPE_INT64, 1, &value);
}

void BackendDescriptor::set_int64s(cudnnBackendAttributeName_t name, std::int64_t count,
                                   const std::int64_t* values) {
  set(name, CUDNN_TYPE_INT64, count, values);
}

void BackendDescriptor::set_descriptor(cudnnBackendAttributeName_t name,
                                       const BackendDescriptor& value) {
  const cudnnBackendDescriptor_t raw = value.get();
  set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &raw);
}

void BackendDescriptor::set_handle(cudnnBackendAttributeName_t name, cudnnHandle_t handle) {
  set(name, CUDNN_TYPE_HANDLE, 1, &handle);
}

void BackendDescriptor::finalize() {
  const cudnnStatus_t st = cudnnBackendFinalize(desc_);
  if (st != CUDNN_STATUS_SUCCESS) fail(st, "cudnnBackendFinalize(" + type_name(type_) + ")", __LINE__);
}

cudnnStatus_t BackendDescriptor::try_finalize() noexcept { return cudnnBackendFinalize(desc_); }

std::string last_error_message() {
  char text[1024] = {0};
  cudnnGetLastErrorString(text, sizeof text);
  return text;
}

std::int64_t pointer_alignment(const void* p) noexcept {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  std::int64_t align = 16;
  while (align > 1 && (a % static_cast<std::uintptr_t>(align)) != 0) align /= 2;
  return align;
}

Dims4 packed_strides(Layout layout, const Dims4& d) noexcept {
  // d = {N, C, H, W} (or {K, C, R, S}); NHWC / KRSC puts C innermost.
  if (layout == Layout::kNHWC) return {d[1] * d[2] * d[3], 1, d[3] * d[1], d[1]};
  return {d[1] * d[2] * d[3], d[2] * d[3], d[3], 1};
}

Dims4 x_dims(const Conv2dDesc& d) noexcept { return {d.n, d.c, d.h, d.w}; }
Dims4 w_dims(const Conv2dDesc& d) noexcept { return {d.k, d.c, d.r, d.s}; }
Dims4 y_dims(const Conv2dDesc& d) noexcept { return {d.n, d.k, d.out_h(), d.out_w()}; }

cudnnDataType_t cudnn_data_type(DType t) {
  if (t == DType::kFloat32) return CUDNN_DATA_FLOAT;
  if (t == DType::kBFloat16) return CUDNN_DATA_BFLOAT16;
  KESTREL_FAIL("cuDNN convolutions take fp32 or bf16, not ", dtype_name(t));
}

BackendDescriptor make_tensor(std::int64_t uid, DType dtype, const Dims4& dims,
                              const Dims4& strides, std::int64_t alignment) {
  BackendDescriptor t(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const cudnnDataType_t type = cudnn_data_type(dtype);
  t.set_int64(CUDNN_ATTR_TENSOR_UNIQUE_ID, uid);
  t.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
  t.set_int64s(CUDNN_ATTR_TENSOR_DIMENSIONS, 4, dims.data());
  t.set_int64s(CUDNN_ATTR_TENSOR_STRIDES, 4, strides.data());
  t.set_int64(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, alignment);
  const bool is_virtual = false;
  t.set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual);
  t.finalize();
  return t;
}

BackendDescriptor make_convolution(const Conv2dDesc& d) {
  BackendDescriptor c(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
  const cudnnDataType_t compute = CUDNN_DATA_FLOAT;  // fp32 and bf16 data alike
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  const std::int64_t pad[2] = {d.pad_h, d.pad_w};
  const std::int64_t stride[2] = {d.stride_h, d.stride_w};
  const std::int64_t dil[2] = {d.dil_h, d.dil_w};
  c.set_int64(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, 2);
  c.set(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute);
  c.set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode);
  c.set_int64s(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, 2, pad);
  c.set_int64s(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, 2, pad);
  c.set_int64s(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, 2, stride);
  c.set_int64s(CUDNN_ATTR_CONVOLUTION_DILATIONS, 2, dil);
  c.finalize();
  return c;
}

BackendDescriptor make_conv_operation(ConvOp op, const BackendDescriptor& x,
                                      const BackendDescriptor& w, const BackendDescriptor& y,
                                      const BackendDescriptor& conv) {
  struct Attrs {
    cudnnBackendDescriptorType_t type;
    cudnnBackendAttributeName_t x, w, y, conv, alpha, beta;
  };
  Attrs a{};
  switch (op) {
    case ConvOp::kForward:
      a = {CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
           CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W,
           CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y,
           CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
           CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA,
           CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA};
      break;
    case ConvOp::kBackwardData:
      a = {CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
           CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W,
           CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY,
           CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC,
           CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA,
           CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA};
      break;
    case ConvOp::kBackwardFilter:
      a = {CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR,
           CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X,
           CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW,
           CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY,
           CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC,
           CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA,
           CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA};
      break;
  }
  BackendDescriptor o(a.type);
  const float alpha = 1.f, beta = 0.f;  // FLOAT compute takes float scalars
  o.set_descriptor(a.x, x);
  o.set_descriptor(a.w, w);
  o.set_descriptor(a.y, y);
  o.set_descriptor(a.conv, conv);
  o.set(a.alpha, CUDNN_TYPE_FLOAT, 1, &alpha);
  o.set(a.beta, CUDNN_TYPE_FLOAT, 1, &beta);
  o.finalize();
  return o;
}

BackendDescriptor make_operation_graph(const BackendDescriptor& op, cudnnHandle_t handle) {
  BackendDescriptor g(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  g.set_descriptor(CUDNN_ATTR_OPERATIONGRAPH_OPS, op);
  // Deprecated in the 9.19 header, yet without it 9.14's heuristics see no device.
  if (handle != nullptr) g.set_handle(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, handle);
  g.finalize();
  return g;
}

ConvGraph make_conv_graph(ConvOp op, const Conv2dDesc& d, const ConvAlignment& align,
                          cudnnHandle_t handle) {
  validate(d);
  ConvGraph g;
  g.x = make_tensor(kUidX, d.dtype, x_dims(d), packed_strides(d.layout, x_dims(d)), align.x);
  g.w = make_tensor(kUidW, d.dtype, w_dims(d), packed_strides(d.layout, w_dims(d)), align.w);
  g.y = make_tensor(kUidY, d.dtype, y_dims(d), packed_strides(d.layout, y_dims(d)), align.y);
  g.conv = make_convolution(d);
  g.op = make_conv_operation(op, g.x, g.w, g.y, g.conv);
  g.graph = make_operation_graph(g.op, handle);
  return g;
}

cudnnStatus_t execute_plan(cudnnHandle_t handle, const BackendDescriptor& plan, void* x, void* w,
                           void* y, void* workspace) {
  cudnnBackendDescriptor_t pack = nullptr;
  cudnnStatus_t st = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  const std::int64_t uids[3] = {kUidX, kUidW, kUidY};
  void* ptrs[3] = {x, w, y};
  st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 3, uids);
  if (st == CUDNN_STATUS_SUCCESS)
    st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR,
                                  3, ptrs);
  if (st == CUDNN_STATUS_SUCCESS)
    st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1,
                                  &workspace);
  if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendFinalize(pack);
  // A variant pack is only read while enqueuing, so it may go as soon as Execute returns.
  if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendExecute(handle, plan.get(), pack);
  (void)cudnnBackendDestroyDescriptor(pack);
  return st;
}

}  // namespace kestrel::cudnn_detail
