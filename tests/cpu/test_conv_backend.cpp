// The cuDNN graph-API pieces of the convolution path that run without a GPU (cuDNN 9.19 on the
// development machine): tensor, convolution, operation and operation-graph descriptors finalize
// for every op x layout x dtype (and fail for invalid ones) and carry every field of the
// description (read back with cudnnBackendGetAttribute), the description's bounds and text, the
// engine ranking rules, pointer alignment and the plan cache's argument checks. Heuristics and plans need a device: they are
// covered by tests/cuda/test_conv_cuda.cpp.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "error_text.h"
#include "kestrel/core/error.h"
#include "kestrel/kernels/conv.h"
#include "kestrel/kernels/conv_backend_internal.h"
#include "kestrel/kernels/conv_plan_internal.h"

namespace {
using kestrel::Conv2dDesc;
using kestrel::ConvOp;
using kestrel::ConvPolicy;
using kestrel::DType;
using kestrel::Layout;
namespace cd = kestrel::cudnn_detail;

Conv2dDesc desc(std::int64_t c, std::int64_t k, std::int64_t r, int pad, int stride, int dil) {
  Conv2dDesc d;
  d.n = 8; d.c = c; d.h = 32; d.w = 32; d.k = k; d.r = r; d.s = r;
  d.pad_h = d.pad_w = pad; d.stride_h = d.stride_w = stride; d.dil_h = d.dil_w = dil;
  return d;
}

// The shapes of CUDNN_GRAPH.md section 8 and the ResNet downsampling convolutions.
std::vector<Conv2dDesc> shapes() {
  return {desc(16, 16, 3, 1, 1, 1), desc(3, 16, 3, 1, 1, 1), desc(16, 32, 1, 0, 2, 1),
          desc(32, 32, 3, 2, 1, 2), desc(16, 32, 3, 1, 2, 1)};
}

TEST(ConvBackend, GraphsFinalizeForEveryOpLayoutAndDtype) {
  for (Conv2dDesc d : shapes()) {
    for (Layout l : {Layout::kNCHW, Layout::kNHWC}) {
      for (DType t : {DType::kFloat32, DType::kBFloat16}) {
        for (ConvOp op : {ConvOp::kForward, ConvOp::kBackwardData, ConvOp::kBackwardFilter}) {
          d.layout = l;
          d.dtype = t;
          cd::ConvGraph g;
          EXPECT_NO_THROW(g = cd::make_conv_graph(op, d, cd::ConvAlignment{}, nullptr))
              << kestrel::conv_op_name(op) << " " << kestrel::to_string(d);
          EXPECT_TRUE(g.x && g.w && g.y && g.conv && g.op && g.graph);
        }
      }
    }
  }
}

// Reads n values of an attribute back from a finalized descriptor.
template <typename T>
std::vector<T> attribute(const cd::BackendDescriptor& d, cudnnBackendAttributeName_t name,
                         cudnnBackendAttributeType_t type, std::int64_t n) {
  std::vector<T> v(static_cast<std::size_t>(n));
  std::int64_t got = -1;
  const cudnnStatus_t st = cudnnBackendGetAttribute(d.get(), name, type, n, &got, v.data());
  EXPECT_EQ(st, CUDNN_STATUS_SUCCESS) << "attribute " << static_cast<int>(name);
  EXPECT_EQ(got, n) << "attribute " << static_cast<int>(name);
  return v;
}

// Packed strides from the order of the dimensions in memory, innermost first (independent of
// packed_strides' closed forms): NCHW is W, H, C, N; NHWC (and KRSC) is C, W, H, N.
std::vector<std::int64_t> strides_by_order(const std::vector<std::int64_t>& dims, bool nhwc) {
  const int inner_first[2][4] = {{3, 2, 1, 0}, {1, 3, 2, 0}};
  std::vector<std::int64_t> st(4);
  std::int64_t acc = 1;
  for (const int i : inner_first[nhwc ? 1 : 0]) {
    st[static_cast<std::size_t>(i)] = acc;
    acc *= dims[static_cast<std::size_t>(i)];
  }
  return st;
}

// Every field of an asymmetric convolution (h != w, r != s, each of padding, stride and dilation
// different along H and W) reaches the descriptors cuDNN plans from, in each op, layout and dtype:
// the tensors' ids, types, dimensions (the output's from the closed form) and strides, the
// convolution's paddings, strides, dilations and compute type, and the operation's alpha and beta.
// A field swapped between H and W still finalizes when the shapes happen to agree, so this reads
// them back. (cuDNN 9 does not give back a tensor's byte alignment or the convolution mode; the
// CUDA tests' comparison with the CPU twin covers those.)
TEST(ConvBackend, DescriptorsCarryEveryFieldOfAnAsymmetricConvolution) {
  Conv2dDesc d;
  d.n = 3; d.c = 5; d.h = 19; d.w = 12; d.k = 7; d.r = 3; d.s = 2;
  d.pad_h = 2; d.pad_w = 1; d.stride_h = 2; d.stride_w = 3; d.dil_h = 2; d.dil_w = 1;
  const std::int64_t oh = (19 + 2 * 2 - 2 * (3 - 1) - 1) / 2 + 1;  // 10
  const std::int64_t ow = (12 + 2 * 1 - 1 * (2 - 1) - 1) / 3 + 1;  // 5
  const cd::ConvAlignment align{4, 8, 16};
  for (Layout l : {Layout::kNCHW, Layout::kNHWC}) {
    for (DType t : {DType::kFloat32, DType::kBFloat16}) {
      for (ConvOp op : {ConvOp::kForward, ConvOp::kBackwardData, ConvOp::kBackwardFilter}) {
        d.layout = l;
        d.dtype = t;
        SCOPED_TRACE(std::string(kestrel::conv_op_name(op)) + " " + kestrel::to_string(d));
        const cd::ConvGraph g = cd::make_conv_graph(op, d, align, nullptr);
        const bool nhwc = l == Layout::kNHWC;
        const cudnnDataType_t type = t == DType::kFloat32 ? CUDNN_DATA_FLOAT : CUDNN_DATA_BFLOAT16;
        const struct {
          const cd::BackendDescriptor* desc;
          std::int64_t uid;
          std::vector<std::int64_t> dims;
        } tensors[] = {{&g.x, cd::kUidX, {3, 5, 19, 12}}, {&g.w, cd::kUidW, {7, 5, 3, 2}},
                       {&g.y, cd::kUidY, {3, 7, oh, ow}}};
        for (const auto& x : tensors) {
          EXPECT_EQ(attribute<std::int64_t>(*x.desc, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1)[0], x.uid);
          EXPECT_EQ(attribute<cudnnDataType_t>(*x.desc, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1)[0], type);
          EXPECT_EQ(attribute<std::int64_t>(*x.desc, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4), x.dims);
          EXPECT_EQ(attribute<std::int64_t>(*x.desc, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4),
                    strides_by_order(x.dims, nhwc));
        }
        const std::vector<std::int64_t> pad{2, 1}, stride{2, 3}, dil{2, 1};
        EXPECT_EQ(attribute<std::int64_t>(g.conv, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2), pad);
        EXPECT_EQ(attribute<std::int64_t>(g.conv, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2), pad);
        EXPECT_EQ(attribute<std::int64_t>(g.conv, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2), stride);
        EXPECT_EQ(attribute<std::int64_t>(g.conv, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2), dil);
        EXPECT_EQ(attribute<cudnnDataType_t>(g.conv, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1)[0],
                  CUDNN_DATA_FLOAT);
        // y = 1 * op(x, w) + 0 * y: the output is overwritten, not accumulated into.
        const cudnnBackendAttributeName_t scalars[3][2] = {
            {CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA},
            {CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA},
            {CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA, CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA}};
        const int o = op == ConvOp::kForward ? 0 : (op == ConvOp::kBackwardData ? 1 : 2);
        EXPECT_EQ(attribute<float>(g.op, scalars[o][0], CUDNN_TYPE_FLOAT, 1)[0], 1.f);
        EXPECT_EQ(attribute<float>(g.op, scalars[o][1], CUDNN_TYPE_FLOAT, 1)[0], 0.f);
      }
    }
  }
}

TEST(ConvBackend, GraphsFinalizeWithSmallerPointerAlignments) {
  Conv2dDesc d = desc(16, 16, 3, 1, 1, 1);
  d.dtype = DType::kBFloat16;
  d.layout = Layout::kNHWC;
  EXPECT_NO_THROW(cd::make_conv_graph(ConvOp::kForward, d, cd::ConvAlignment{2, 4, 8}, nullptr));
  d.dtype = DType::kFloat32;
  EXPECT_NO_THROW(cd::make_conv_graph(ConvOp::kBackwardFilter, d, cd::ConvAlignment{4, 16, 4}, nullptr));
}

TEST(ConvBackend, TensorDescriptorRejectsBadAlignment) {
  const cd::Dims4 dims{2, 3, 4, 5};
  const cd::Dims4 strides = cd::packed_strides(Layout::kNCHW, dims);
  EXPECT_NO_THROW(cd::make_tensor(1, DType::kFloat32, dims, strides, 16));
  EXPECT_NO_THROW(cd::make_tensor(1, DType::kBFloat16, dims, strides, 2));
  EXPECT_THROW(cd::make_tensor(1, DType::kFloat32, dims, strides, 0), kestrel::CudnnError);
  EXPECT_THROW(cd::make_tensor(1, DType::kFloat32, dims, strides, 2), kestrel::CudnnError);
  EXPECT_THROW(cd::make_tensor(1, DType::kFloat16, dims, strides, 16), kestrel::Error);
}

TEST(ConvBackend, OperationRejectsAWrongOutputShapeWithCudnnsMessage) {
  const Conv2dDesc d = desc(16, 16, 3, 1, 1, 1);
  const cd::Dims4 xd = cd::x_dims(d), wd = cd::w_dims(d);
  cd::Dims4 yd = cd::y_dims(d);
  yd[2] += 1;  // one row too many
  const auto x = cd::make_tensor(cd::kUidX, d.dtype, xd, cd::packed_strides(d.layout, xd), 16);
  const auto w = cd::make_tensor(cd::kUidW, d.dtype, wd, cd::packed_strides(d.layout, wd), 16);
  const auto y = cd::make_tensor(cd::kUidY, d.dtype, yd, cd::packed_strides(d.layout, yd), 16);
  const auto conv = cd::make_convolution(d);
  try {
    cd::make_conv_operation(ConvOp::kForward, x, w, y, conv);
    ADD_FAILURE() << "a forward operation with a wrong y shape finalized";
  } catch (const kestrel::CudnnError& e) {
    EXPECT_NE(e.status(), 0);
    EXPECT_NE(std::string(e.what()).find("CONVOLUTION_FORWARD"), std::string::npos) << e.what();
  }
}

TEST(ConvBackend, GraphBuilderValidatesTheDescFirst) {
  Conv2dDesc d = desc(16, 16, 3, 1, 1, 1);
  d.k = 0;
  EXPECT_THROW(cd::make_conv_graph(ConvOp::kForward, d, cd::ConvAlignment{}, nullptr), kestrel::Error);
}

TEST(ConvBackend, PackedStridesPutChannelsInnermostForNhwc) {
  const cd::Dims4 d{2, 3, 4, 5};  // N C H W
  EXPECT_EQ(cd::packed_strides(Layout::kNCHW, d), (cd::Dims4{60, 20, 5, 1}));
  EXPECT_EQ(cd::packed_strides(Layout::kNHWC, d), (cd::Dims4{60, 1, 15, 3}));
  const cd::Dims4 f{7, 3, 2, 4};  // K C R S: KRSC = {C*R*S, 1, S*C, C}
  EXPECT_EQ(cd::packed_strides(Layout::kNHWC, f), (cd::Dims4{24, 1, 12, 3}));
}

TEST(ConvBackend, PointerAlignmentIsTheLargestPowerOfTwoUpTo16) {
  alignas(64) static unsigned char buf[128];
  EXPECT_EQ(cd::pointer_alignment(buf), 16);
  EXPECT_EQ(cd::pointer_alignment(buf + 1), 1);
  EXPECT_EQ(cd::pointer_alignment(buf + 2), 2);
  EXPECT_EQ(cd::pointer_alignment(buf + 4), 4);
  EXPECT_EQ(cd::pointer_alignment(buf + 12), 4);
  EXPECT_EQ(cd::pointer_alignment(buf + 8), 8);
  EXPECT_EQ(cd::pointer_alignment(buf + 32), 16);
  EXPECT_EQ(cd::pointer_alignment(nullptr), 16);
}

TEST(ConvBackend, LauncherAlignmentMapsPointersToSlotsAndChecksThem) {
  alignas(64) static unsigned char buf[256];
  Conv2dDesc d = desc(16, 16, 3, 1, 1, 1);
  d.dtype = DType::kBFloat16;
  // backward-data binds (dy, w, dx): dy is the y slot, dx the x slot.
  const cd::ConvAlignment a =
      cd::launcher_alignment(ConvOp::kBackwardData, d, buf + 2, buf + 64, buf + 136);
  EXPECT_EQ(a.y, 2);
  EXPECT_EQ(a.w, 16);
  EXPECT_EQ(a.x, 8);
  // backward-filter binds (x, dy, dw).
  const cd::ConvAlignment b =
      cd::launcher_alignment(ConvOp::kBackwardFilter, d, buf + 4, buf + 2, buf + 64);
  EXPECT_EQ(b.x, 4);
  EXPECT_EQ(b.y, 2);
  EXPECT_EQ(b.w, 16);
  EXPECT_THROW(cd::launcher_alignment(ConvOp::kForward, d, buf, nullptr, buf), kestrel::Error);
  EXPECT_THROW(cd::launcher_alignment(ConvOp::kForward, d, buf + 1, buf, buf), kestrel::Error);
  d.dtype = DType::kFloat32;
  EXPECT_THROW(cd::launcher_alignment(ConvOp::kForward, d, buf, buf, buf + 2), kestrel::Error);
}

cd::EngineInfo engine(bool tc, bool down, bool nondet, bool rtc, std::int64_t ws = 0) {
  cd::EngineInfo e;
  e.tensor_core = tc;
  e.down_convert_inputs = down;
  e.nondeterministic = nondet;
  e.runtime_compiled = rtc;
  e.workspace = ws;
  return e;
}

TEST(ConvBackend, RankingAppliesThePolicyAndPutsRuntimeCompiledEnginesLast) {
  std::vector<cd::EngineInfo> e = {
      engine(true, false, false, false),         // 0: tensor core
      engine(false, true, false, false),         // 1: down-converts inputs
      engine(false, false, true, false),         // 2: nondeterministic
      engine(false, false, false, true),         // 3: runtime compiled
      engine(false, false, false, false, 1024),  // 4: plain, 1 KiB workspace
      engine(false, false, false, false),        // 5: plain
  };
  e.push_back(cd::EngineInfo{});
  e.back().readable = false;  // 6: notes unreadable
  ConvPolicy p;
  cd::EngineRanking r = cd::rank_engines(e, DType::kFloat32, p);
  EXPECT_EQ(r.order, (std::vector<std::size_t>{2, 4, 5, 3}));
  EXPECT_EQ(r.dropped_precision, 2);
  EXPECT_EQ(r.dropped_unreadable, 1);
  // bf16 keeps tensor-core engines (never down-converting ones).
  r = cd::rank_engines(e, DType::kBFloat16, p);
  EXPECT_EQ(r.order, (std::vector<std::size_t>{0, 2, 4, 5, 3}));
  p.allow_tf32 = true;
  r = cd::rank_engines(e, DType::kFloat32, p);
  EXPECT_EQ(r.order, (std::vector<std::size_t>{0, 2, 4, 5, 3}));
  p = ConvPolicy{};
  p.deterministic = true;
  p.workspace_limit = 1023;
  r = cd::rank_engines(e, DType::kFloat32, p);
  EXPECT_EQ(r.order, (std::vector<std::size_t>{5, 3}));
  EXPECT_EQ(r.dropped_nondeterministic, 1);
  EXPECT_EQ(r.dropped_workspace, 1);
  p.workspace_limit = 0;
  r = cd::rank_engines(e, DType::kFloat32, p);
  EXPECT_EQ(r.order, (std::vector<std::size_t>{5, 3}));
}

TEST(ConvBackend, PlanCacheConstructsWithoutAGpuAndRejectsANullHandle) {
  ConvPolicy p;
  p.deterministic = true;
  kestrel::cuda::ConvPlanCache cache(p);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.hits(), 0u);
  EXPECT_EQ(cache.untuned(), 0u);
  EXPECT_EQ(cache.last_untuned(), "");
  EXPECT_TRUE(cache.policy().deterministic);
  const Conv2dDesc d = desc(16, 16, 3, 1, 1, 1);
  const std::string what =
      kestrel::testing::error_of([&] { cache.workspace_bytes(nullptr, ConvOp::kForward, d, nullptr); });
  EXPECT_NE(what.find("the cuDNN handle is null"), std::string::npos) << what;
  Conv2dDesc bad = d;
  bad.stride_h = 0;
  EXPECT_THROW(cache.workspace_bytes(nullptr, ConvOp::kForward, bad, nullptr), kestrel::Error);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(ConvBackend, PlanKeysDistinguishEveryField) {
  const Conv2dDesc d = desc(16, 16, 3, 1, 1, 1);
  const cd::ConvPlanKey base{nullptr, ConvOp::kForward, d, cd::ConvAlignment{}};
  cd::ConvPlanKeyHash hash;
  std::vector<cd::ConvPlanKey> variants(12, base);
  variants[0].op = ConvOp::kBackwardData;
  variants[1].desc.layout = Layout::kNHWC;
  variants[2].desc.dtype = DType::kBFloat16;
  variants[3].desc.pad_w = 0;
  variants[4].desc.stride_h = 2;
  variants[5].desc.dil_w = 2;
  variants[6].desc.n = 4;
  variants[7].align.y = 4;
  variants[8].desc.k = 32;
  variants[9].desc.s = 1;
  variants[10].desc.w = 31;
  variants[11].handle = reinterpret_cast<cudnnHandle_t>(std::uintptr_t{64});
  EXPECT_TRUE(base == base);
  for (const auto& v : variants) {
    EXPECT_FALSE(v == base);
    EXPECT_NE(hash(v), hash(base));
  }
}

}  // namespace

namespace {
// validate() bounds each tensor's element count at 4e18 / 16 = 2.5e17 (inclusive), the filter's
// with both of its spatial sizes and the output's with both of its own, and names the tensor.
TEST(ConvBackend, ElementBoundsAreInclusiveAndNameTheTensorOverThem) {
  Conv2dDesc d;  // x = 5e8 * 5e8 * 1 * 1 = 2.5e17 exactly
  d.n = 500000000; d.c = 500000000; d.h = 1; d.w = 1; d.k = 1; d.r = 1; d.s = 1;
  EXPECT_NO_THROW(kestrel::validate(d));
  d.n += 1;
  std::string e = kestrel::testing::error_of([&] { kestrel::validate(d); });
  EXPECT_NE(e.find("the input x has too many elements"), std::string::npos) << e;
  // The filter: 1e9 x 1 x 1 x 1e9 = 1e18 (an input 1 x 1 x 1 x 1e9 and an output of 1e9 are fine).
  d = Conv2dDesc{};
  d.n = 1; d.c = 1; d.h = 1; d.w = 1000000000; d.k = 1000000000; d.r = 1; d.s = 1000000000;
  e = kestrel::testing::error_of([&] { kestrel::validate(d); });
  EXPECT_NE(e.find("the filter w has too many elements"), std::string::npos) << e;
  // The output: 1 x (2^31 - 1) x 1 x (2^31 - 1) from a 1 x 1 x 1 x (2^31 - 1) input and 1x1 filters.
  d = Conv2dDesc{};
  d.n = 1; d.c = 1; d.h = 1; d.w = INT32_MAX; d.k = INT32_MAX; d.r = 1; d.s = 1;
  e = kestrel::testing::error_of([&] { kestrel::validate(d); });
  EXPECT_NE(e.find("the output y has too many elements"), std::string::npos) << e;
}

TEST(ConvBackend, DescriptionsAndOpNamesSayEveryField) {
  Conv2dDesc d;
  d.n = 3; d.c = 5; d.h = 19; d.w = 12; d.k = 7; d.r = 3; d.s = 2;
  d.pad_h = 2; d.pad_w = 1; d.stride_h = 2; d.stride_w = 3; d.dil_h = 4; d.dil_w = 1;
  d.dtype = DType::kBFloat16;
  d.layout = Layout::kNHWC;
  EXPECT_EQ(kestrel::to_string(d), "conv2d n=3 c=5 h=19 w=12 k=7 r=3 s=2 pad=2x1 stride=2x3 dil=4x1 bf16 nhwc");
  EXPECT_STREQ(kestrel::conv_op_name(ConvOp::kForward), "forward");
  EXPECT_STREQ(kestrel::conv_op_name(ConvOp::kBackwardData), "backward-data");
  EXPECT_STREQ(kestrel::conv_op_name(ConvOp::kBackwardFilter), "backward-filter");
}

// A workspace exactly at the policy's limit fits; the slot names in backward-filter's messages
// are its own (x, dw, dy).
TEST(ConvBackend, AWorkspaceAtTheLimitIsKeptAndBackwardFilterNamesItsSlots) {
  ConvPolicy p;
  p.workspace_limit = 4096;
  const cd::EngineRanking r =
      cd::rank_engines({engine(false, false, false, false, 4096), engine(false, false, false, false, 4097)},
                       DType::kFloat32, p);
  EXPECT_EQ(r.order, (std::vector<std::size_t>{0}));
  EXPECT_EQ(r.dropped_workspace, 1);
  alignas(64) static unsigned char buf[256];
  const Conv2dDesc d = desc(16, 16, 3, 1, 1, 1);
  std::string e = kestrel::testing::error_of(
      [&] { (void)cd::launcher_alignment(ConvOp::kBackwardFilter, d, buf, buf + 64, nullptr); });
  EXPECT_NE(e.find("conv2d backward-filter: dw is a null pointer"), std::string::npos) << e;
  e = kestrel::testing::error_of(
      [&] { (void)cd::launcher_alignment(ConvOp::kBackwardFilter, d, buf, buf + 66, buf + 128); });
  EXPECT_NE(e.find("conv2d backward-filter: dy ("), std::string::npos) << e;
  e = kestrel::testing::error_of(
      [&] { (void)cd::launcher_alignment(ConvOp::kBackwardData, d, buf + 2, buf + 64, buf + 128); });
  EXPECT_NE(e.find("conv2d backward-data: dy ("), std::string::npos) << e;
}
}  // namespace
