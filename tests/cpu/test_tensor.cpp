// Shapes, dtypes, layouts, views and fills of host tensors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>

#include "error_text.h"
#include "kestrel/core/context.h"
#include "kestrel/core/device.h"
#include "kestrel/core/device_probe_internal.h"
#include "kestrel/core/half.h"
#include "kestrel/core/tensor.h"
#include "kestrel/kernels/cpu/fill.h"

using kestrel::DType;
using kestrel::Layout;
using kestrel::Shape;
using kestrel::Tensor;

TEST(Shape, BasicsAndErrors) {
  const Shape s{2, 3, 4, 5};
  EXPECT_EQ(s.rank(), 4);
  EXPECT_EQ(s.numel(), 120);
  EXPECT_EQ(s[-1], 5);
  EXPECT_EQ(s.to_string(), "[2, 3, 4, 5]");
  EXPECT_EQ(s.contiguous_strides(), (std::vector<std::int64_t>{60, 20, 5, 1}));
  EXPECT_EQ(Shape{}.numel(), 1);
  EXPECT_EQ((Shape{3, 0}).numel(), 0);
  EXPECT_THROW((Shape{2, -1}), kestrel::Error);
  EXPECT_THROW((void)s[4], kestrel::Error);
  EXPECT_THROW(Shape(std::vector<std::int64_t>(9, 1)), kestrel::Error);
  EXPECT_NE((Shape{2, 3}), (Shape{3, 2}));
}

TEST(DType, SizesNamesAndParsing) {
  EXPECT_EQ(kestrel::dtype_size(DType::kFloat32), 4u);
  EXPECT_EQ(kestrel::dtype_size(DType::kBFloat16), 2u);
  EXPECT_EQ(kestrel::dtype_size(DType::kFloat16), 2u);
  EXPECT_EQ(kestrel::dtype_size(DType::kInt32), 4u);
  EXPECT_EQ(kestrel::dtype_size(DType::kUInt8), 1u);
  for (DType t : {DType::kFloat32, DType::kBFloat16, DType::kFloat16, DType::kInt32, DType::kUInt8})
    EXPECT_EQ(kestrel::parse_dtype(kestrel::dtype_name(t)), t);
  try {
    (void)kestrel::parse_dtype("fp8");
    FAIL();
  } catch (const kestrel::Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown dtype 'fp8' (known: fp32, bf16, fp16, int32, uint8)"),
              std::string::npos);
  }
  EXPECT_EQ(kestrel::parse_layout("nhwc"), Layout::kNHWC);
  EXPECT_THROW(kestrel::parse_layout("chwn"), kestrel::Error);
}

// kMaxRank dimensions are a shape; one more is refused. Equality compares ranks before
// dimensions, so a shape is not equal to a longer one it prefixes (or to [] against [1]).
TEST(Shape, RankEdgeAndEqualityAcrossRanks) {
  const Shape full(std::vector<std::int64_t>(Shape::kMaxRank, 2));
  EXPECT_EQ(full.rank(), Shape::kMaxRank);
  EXPECT_EQ(full.numel(), std::int64_t{1} << Shape::kMaxRank);
  EXPECT_THROW(Shape(std::vector<std::int64_t>(Shape::kMaxRank + 1, 2)), kestrel::Error);
  EXPECT_NE((Shape{2}), (Shape{2, 3}));
  EXPECT_NE((Shape{2, 3}), (Shape{2}));
  EXPECT_NE((Shape{2, 3}), (Shape{2, 3, 1}));
  EXPECT_NE(Shape{}, (Shape{1}));
  EXPECT_EQ((Shape{2, 3, 1}), (Shape{2, 3, 1}));
}

// Every spelling the parsers document, and the unit roundoff of each floating dtype against the
// dtype's own rounding (core/half.h for the 16-bit ones): 1 + u is a tie that rounds to even
// (back to 1), 1 + 1.5u rounds up to 1 + 2u, the next number after 1.
TEST(DType, AliasesAndUnitRoundoff) {
  EXPECT_EQ(kestrel::parse_dtype("float32"), DType::kFloat32);
  EXPECT_EQ(kestrel::parse_dtype("bfloat16"), DType::kBFloat16);
  EXPECT_EQ(kestrel::parse_dtype("float16"), DType::kFloat16);
  EXPECT_EQ(kestrel::parse_layout("NCHW"), Layout::kNCHW);
  EXPECT_EQ(kestrel::parse_layout("NHWC"), Layout::kNHWC);
  EXPECT_EQ(kestrel::parse_layout("nchw"), Layout::kNCHW);
  EXPECT_THROW(kestrel::parse_layout("Nhwc"), kestrel::Error);
  const auto round_in = [](DType t, double v) -> double {
    const auto f = static_cast<float>(v);
    switch (t) {
      case DType::kBFloat16: return kestrel::to_float(kestrel::to_bf16(f));
      case DType::kFloat16: return kestrel::to_float(kestrel::to_fp16(f));
      default: return f;
    }
  };
  for (DType t : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    const double u = kestrel::dtype_eps(t);
    SCOPED_TRACE(kestrel::dtype_name(t));
    EXPECT_EQ(round_in(t, 1.0 + u), 1.0);
    EXPECT_EQ(round_in(t, 1.0 + 1.5 * u), 1.0 + 2.0 * u);
    EXPECT_EQ(round_in(t, 1.0 + 2.0 * u), 1.0 + 2.0 * u);
  }
  EXPECT_EQ(kestrel::dtype_eps(DType::kInt32), 0.0);
  EXPECT_EQ(kestrel::dtype_eps(DType::kUInt8), 0.0);
}

TEST(Device, ParsingAndNoGpuIsANormalState) {
  EXPECT_EQ(kestrel::parse_device("cpu"), kestrel::Device::cpu());
  EXPECT_EQ(kestrel::parse_device("cuda:1"), kestrel::Device::cuda(1));
  EXPECT_EQ(kestrel::parse_device("cuda"), kestrel::Device::cuda(0));
  EXPECT_EQ(kestrel::parse_device("cuda:0"), kestrel::Device::cuda(0));
  // "cuda:" only as the start: anything else is an unknown device, not a bad index.
  for (const std::string name : {"xcuda:1", "my-cuda:0", "CUDA:0"}) {
    const std::string e = kestrel::testing::error_of([&] { (void)kestrel::parse_device(name); });
    EXPECT_EQ(e.rfind("unknown device '" + name + "' (expected cpu, cuda or cuda:N) [at ", 0), 0u) << e;
  }
  EXPECT_THROW(kestrel::parse_device("cuda:x"), kestrel::Error);
  EXPECT_THROW(kestrel::parse_device("tpu"), kestrel::Error);
  // Too large for an int: a kestrel::Error, not std::stoi's std::out_of_range.
  EXPECT_THROW(kestrel::parse_device("cuda:99999999999"), kestrel::Error);
  EXPECT_THROW(kestrel::parse_device("cuda:"), kestrel::Error);
  EXPECT_EQ(kestrel::parse_device("cuda:9999"), kestrel::Device::cuda(9999));
  // The reasons name what to check where the runtime's own text misleads.
  EXPECT_EQ(kestrel::detail::cuda_probe_reason(cudaSuccess, 1), "");
  EXPECT_EQ(kestrel::detail::cuda_probe_reason(cudaSuccess, 0), "the CUDA runtime reports 0 devices");
  const std::string no_driver = kestrel::detail::cuda_probe_reason(cudaErrorInsufficientDriver, 0);
  EXPECT_NE(no_driver.find("cudaErrorInsufficientDriver): no NVIDIA driver is installed, or it is older than CUDA"),
            std::string::npos) << no_driver;
  EXPECT_NE(kestrel::detail::cuda_probe_reason(cudaErrorNoDevice, 0).find("check nvidia-smi and CUDA_VISIBLE_DEVICES"),
            std::string::npos);
  if (kestrel::cuda_device_count() == 0) {
    EXPECT_FALSE(kestrel::cuda_unavailable_reason().empty());
    try {
      kestrel::Context ctx(kestrel::Device::cuda(0));
      FAIL() << "a CUDA context without a device must raise";
    } catch (const kestrel::Error& e) {
      EXPECT_EQ(std::string(e.message()).rfind("no CUDA device: ", 0), 0u) << e.what();
    }
  }
}

TEST(Tensor, FromVectorRoundTripsInEveryDtypeAndLayout) {
  std::vector<float> v(2 * 3 * 4 * 5);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 97) - 40.f;
  for (Layout l : {Layout::kNCHW, Layout::kNHWC}) {
    for (DType t : {DType::kFloat32, DType::kBFloat16, DType::kFloat16, DType::kInt32}) {
      const Tensor x = Tensor::from_vector(v, Shape{2, 3, 4, 5}, t, l);
      EXPECT_EQ(x.to_float_vector(), v) << kestrel::dtype_name(t) << " " << kestrel::layout_name(l);
    }
  }
  EXPECT_THROW(Tensor::from_vector(v, Shape{2, 3}), kestrel::Error);
}

TEST(Tensor, NhwcStridesPlaceChannelsInnermost) {
  std::vector<float> v(1 * 3 * 2 * 2);
  std::iota(v.begin(), v.end(), 0.f);  // logical NCHW order: c*4 + h*2 + w
  const Tensor x = Tensor::from_vector(v, Shape{1, 3, 2, 2}, DType::kFloat32, Layout::kNHWC);
  EXPECT_EQ(x.strides(), (std::vector<std::int64_t>{12, 1, 6, 3}));
  const float* p = x.data_as<float>();
  // Memory order is h, w, c: element (c=1, h=0, w=1) = logical 5 sits at 0*6 + 1*3 + 1 = 4.
  EXPECT_EQ(p[4], 5.f);
  EXPECT_EQ(p[11], 11.f);
  EXPECT_TRUE(x.is_contiguous());
  EXPECT_THROW((void)x.data_as<std::int32_t>(), kestrel::Error);
  EXPECT_THROW(Tensor::empty_cpu(Shape{2, 3}, DType::kFloat32, Layout::kNHWC), kestrel::Error);
}

TEST(Tensor, ViewsShareStorageAndCheckBounds) {
  std::vector<float> v(4 * 6);
  std::iota(v.begin(), v.end(), 0.f);
  Tensor x = Tensor::from_vector(v, Shape{4, 6});
  Tensor rows = x.narrow(0, 1, 2);
  EXPECT_EQ(rows.shape(), (Shape{2, 6}));
  EXPECT_TRUE(rows.is_contiguous());
  EXPECT_EQ(rows.to_float_vector()[0], 6.f);
  Tensor cols = x.narrow(1, 2, 3);
  EXPECT_FALSE(cols.is_contiguous());
  EXPECT_EQ(cols.to_float_vector(), (std::vector<float>{2, 3, 4, 8, 9, 10, 14, 15, 16, 20, 21, 22}));
  Tensor flat = x.reshape(Shape{24});
  flat.data_as<float>()[7] = 100.f;
  EXPECT_EQ(x.to_float_vector()[7], 100.f) << "views share storage";
  EXPECT_THROW(x.reshape(Shape{5, 5}), kestrel::Error);
  EXPECT_THROW(cols.reshape(Shape{12}), kestrel::Error);
  EXPECT_THROW(x.narrow(0, 3, 2), kestrel::Error);
  EXPECT_THROW(x.narrow(2, 0, 1), kestrel::Error);
  kestrel::Stream cpu;
  Tensor y = Tensor::empty_cpu(Shape{3, 6}, DType::kFloat32);
  EXPECT_THROW(y.copy_from(cols, cpu), kestrel::Error);
}

// Misuse raises kestrel::Error, never a crash: an undefined tensor (its rank-0 shape counts one
// element but it has no memory: these calls wrote through a null pointer), sizes whose element
// or byte counts overflow (they allocated nothing and then claimed 2^62 elements), a byte
// offset so large that offset + bytes wraps around (a view before the buffer), and integer
// tensors from floats they cannot hold.
TEST(Tensor, MisuseRaisesInsteadOfCrashing) {
  kestrel::Stream cpu;
  Tensor undefined;
  Tensor a = Tensor::empty_cpu(Shape{4}, DType::kFloat32);
  a.fill(1.f, cpu);
  EXPECT_THROW(undefined.zero(cpu), kestrel::Error);
  EXPECT_THROW(undefined.fill(2.f, cpu), kestrel::Error);
  EXPECT_THROW(undefined.fill_uniform(1, 0.f, 1.f, cpu), kestrel::Error);
  EXPECT_THROW(undefined.to_float_vector(), kestrel::Error);
  EXPECT_THROW(Tensor().copy_from(Tensor(), cpu), kestrel::Error);
  EXPECT_THROW(undefined.view_bytes(0, Shape{}, DType::kFloat32), kestrel::Error);
  EXPECT_THROW(Tensor::empty_cpu(Shape{std::int64_t{1} << 62}, DType::kFloat32), kestrel::Error) << "2^64 bytes";
  EXPECT_THROW(Shape({std::int64_t{1} << 32, std::int64_t{1} << 32}), kestrel::Error) << "2^64 elements";
  EXPECT_NO_THROW(Shape({0, std::int64_t{1} << 40, std::int64_t{1} << 20})) << "zero elements, strides still fit";
  EXPECT_THROW(Shape({0, std::int64_t{1} << 40, std::int64_t{1} << 40}), kestrel::Error) << "strides would overflow";
  EXPECT_THROW(a.view_bytes(std::numeric_limits<std::size_t>::max() - 7, Shape{4}, DType::kFloat32), kestrel::Error);
  EXPECT_THROW(a.view_bytes(16, Shape{1}, DType::kFloat32), kestrel::Error);
  EXPECT_EQ(a.view_bytes(12, Shape{1}, DType::kFloat32).to_float_vector(), std::vector<float>{1.f});
  EXPECT_THROW(a.narrow(0, std::numeric_limits<std::int64_t>::max(), 2), kestrel::Error);
  EXPECT_EQ(a.to_float_vector(), (std::vector<float>{1.f, 1.f, 1.f, 1.f})) << "refused calls wrote nothing";
  // Integers from floats: whole values in range are exact; the rest are errors naming the value.
  EXPECT_EQ(Tensor::from_vector({-3.f, 2.f, 2147483520.f}, Shape{3}, DType::kInt32).to_float_vector(),
            (std::vector<float>{-3.f, 2.f, 2147483520.f}));
  EXPECT_EQ(Tensor::from_vector({0.f, 255.f}, Shape{2}, DType::kUInt8).to_float_vector(), (std::vector<float>{0.f, 255.f}));
  for (float bad : {-1.f, 256.f, 0.5f, NAN, INFINITY})
    EXPECT_THROW(Tensor::from_vector({bad}, Shape{1}, DType::kUInt8), kestrel::Error) << bad;
  for (float bad : {3e9f, -3e9f, 2147483648.f, 1.5f, NAN})
    EXPECT_THROW(Tensor::from_vector({bad}, Shape{1}, DType::kInt32), kestrel::Error) << bad;
}

TEST(Tensor, NhwcReshapeRefusesToReorder) {
  const Tensor x = Tensor::empty_cpu(Shape{2, 3, 4, 4}, DType::kFloat32, Layout::kNHWC);
  EXPECT_THROW(x.reshape(Shape{2, 48}), kestrel::Error);
  const Tensor pooled = Tensor::empty_cpu(Shape{2, 3, 1, 1}, DType::kFloat32, Layout::kNHWC);
  EXPECT_EQ(pooled.reshape(Shape{2, 3}).shape(), (Shape{2, 3}));
}

TEST(Tensor, UniformFillIsSeededAndInRange) {
  kestrel::Context ctx;
  Tensor a = Tensor::empty(Shape{1000}, DType::kFloat32, ctx);
  Tensor b = Tensor::empty(Shape{1000}, DType::kFloat32, ctx);
  a.fill_uniform(7, -2.f, 3.f, ctx.stream());
  b.fill_uniform(7, -2.f, 3.f, ctx.stream());
  EXPECT_EQ(a.to_float_vector(), b.to_float_vector());
  b.fill_uniform(8, -2.f, 3.f, ctx.stream());
  EXPECT_NE(a.to_float_vector(), b.to_float_vector());
  b.fill_uniform(7, -2.f, 3.f, ctx.stream(), /*offset=*/1);
  EXPECT_NE(a.to_float_vector(), b.to_float_vector());
  double mean = 0;
  for (float x : a.to_float_vector()) {
    EXPECT_GT(x, -2.f);
    EXPECT_LE(x, 3.f);
    mean += x / 1000.0;
  }
  EXPECT_NEAR(mean, 0.5, 5 * 5.0 / std::sqrt(12.0 * 1000));
}

TEST(Tensor, NormalFillHasTheRequestedMoments) {
  kestrel::Context ctx;
  Tensor a = Tensor::empty(Shape{200000}, DType::kFloat32, ctx);
  a.fill_normal(3, 1.5f, 2.f, ctx.stream());
  double m = 0, m2 = 0;
  const auto v = a.to_float_vector();
  for (float x : v) m += x;
  m /= v.size();
  for (float x : v) m2 += (x - m) * (x - m);
  const double sd = std::sqrt(m2 / (v.size() - 1));
  EXPECT_NEAR(m, 1.5, 5 * 2.0 / std::sqrt(200000.0));
  EXPECT_NEAR(sd, 2.0, 0.02);
}

TEST(Tensor, Bf16FillRoundsTheFp32Values) {
  kestrel::Context ctx;
  Tensor a = Tensor::empty(Shape{999}, DType::kFloat32, ctx);
  Tensor b = Tensor::empty(Shape{999}, DType::kBFloat16, ctx);
  a.fill_uniform(11, -1.f, 1.f, ctx.stream());
  b.fill_uniform(11, -1.f, 1.f, ctx.stream());
  const auto fa = a.to_float_vector(), fb = b.to_float_vector();
  for (std::size_t i = 0; i < fa.size(); ++i) ASSERT_EQ(fb[i], kestrel::round_to_bf16(fa[i])) << i;
  Tensor i32 = Tensor::empty(Shape{4}, DType::kInt32, ctx);
  for (std::int64_t i = 0; i < 4; ++i) i32.data_as<std::int32_t>()[i] = -7;  // zero() must clear them
  EXPECT_THROW(i32.fill(1.f, ctx.stream()), kestrel::Error);
  EXPECT_EQ(i32.to_float_vector(), (std::vector<float>{-7, -7, -7, -7})) << "a refused fill writes nothing";
  i32.zero(ctx.stream());
  EXPECT_EQ(i32.to_float_vector(), (std::vector<float>{0, 0, 0, 0}));
}

TEST(Tensor, CpuCopiesAndContextStats) {
  kestrel::Context ctx;
  Tensor a = Tensor::from_vector({1, 2, 3, 4, 5, 6}, Shape{2, 3});
  Tensor b = a.to(ctx, ctx.stream());
  EXPECT_EQ(b.to_float_vector(), a.to_float_vector());
  EXPECT_NE(b.data(), a.data());
  EXPECT_EQ(b.to_string(), "Tensor([2, 3], fp32, nchw, cpu)");
  EXPECT_GE(ctx.allocator()->stats().current_bytes, 24u);
  EXPECT_THROW((void)ctx.cudnn(), kestrel::Error);
}

// to_float_vector(stream) reads a tensor on any device: host tensors directly (any layout and
// dtype), device ones through a host copy on the stream; the host-only form names the other.
TEST(Tensor, ToFloatVectorWithAStreamReadsAnyDevice) {
  const Tensor t = Tensor::from_vector({1.f, -2.5f, 3.f, 0.25f, 5.f, 6.f, -7.f, 8.f}, Shape{1, 2, 2, 2},
                                       DType::kBFloat16, Layout::kNHWC);
  const kestrel::Stream cpu;
  EXPECT_EQ(t.to_float_vector(cpu), t.to_float_vector());
  EXPECT_EQ(t.to_float_vector(cpu), (std::vector<float>{1.f, -2.5f, 3.f, 0.25f, 5.f, 6.f, -7.f, 8.f}));
  float fake[2] = {0.f, 0.f};  // never read: both reads are refused before touching it
  const Tensor on_gpu = Tensor::wrap(fake, Shape{2}, DType::kFloat32, kestrel::Device::cuda(0));
  EXPECT_NE(kestrel::testing::error_of([&] { (void)on_gpu.to_float_vector(); }).find("to_float_vector(stream)"),
            std::string::npos);
  EXPECT_NE(kestrel::testing::error_of([&] { (void)on_gpu.to_float_vector(cpu); }).find("stream is on cpu"),
            std::string::npos);
}

// from_int32_vector stores labels without a trip through float (exact beyond 2^24, where floats
// are not); from_vector's error names the element's index as such.
TEST(Tensor, FromInt32VectorKeepsEveryValue) {
  const std::vector<std::int32_t> v{0, 9, -3, 16777217, std::numeric_limits<std::int32_t>::max()};
  const Tensor t = Tensor::from_int32_vector(v, Shape{5});
  EXPECT_EQ(t.dtype(), DType::kInt32);
  EXPECT_EQ(std::vector<std::int32_t>(t.data_as<std::int32_t>(), t.data_as<std::int32_t>() + 5), v);
  EXPECT_THROW(Tensor::from_int32_vector(v, Shape{2, 2}), kestrel::Error);
  const std::string e = kestrel::testing::error_of(
      [] { (void)Tensor::from_vector({1.f, 1.5f}, Shape{2}, DType::kInt32); });
  EXPECT_NE(e.find("element 1 (1.5) is not a whole number"), std::string::npos) << e;
}

// A dimension of size 1 has no step to take, so its stride does not decide contiguity: columns
// 1..3 of a [1, 5] matrix are contiguous (stride 5 on the size-1 rows), and copy and reshape
// accept them.
TEST(Tensor, ASizeOneDimensionsStrideDoesNotBreakContiguity) {
  const Tensor a = Tensor::from_vector({0, 1, 2, 3, 4}, Shape{1, 5});
  const Tensor cols = a.narrow(1, 1, 3);
  EXPECT_EQ(cols.strides()[0], 5);
  EXPECT_TRUE(cols.is_contiguous());
  Tensor dst = Tensor::empty_cpu(Shape{1, 3}, DType::kFloat32);
  kestrel::Stream s;
  dst.copy_from(cols, s);
  EXPECT_EQ(dst.to_float_vector(), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(cols.reshape(Shape{3}).to_float_vector(), (std::vector<float>{1, 2, 3}));
}

// The edges of the views' bounds, each inclusive: a narrow to the end of a dimension, an empty
// narrow at its end, a zero-byte view at the end of the buffer; a negative length is refused by
// narrow itself. A view of a wrapped null pointer stays null (no arithmetic on it).
TEST(Tensor, ViewBoundsAreInclusiveAtTheEnd) {
  std::vector<float> v(4 * 6);
  std::iota(v.begin(), v.end(), 0.f);
  const Tensor x = Tensor::from_vector(v, Shape{4, 6});
  EXPECT_EQ(x.narrow(1, 2, 4).to_float_vector(),
            (std::vector<float>{2, 3, 4, 5, 8, 9, 10, 11, 14, 15, 16, 17, 20, 21, 22, 23}));
  EXPECT_EQ(x.narrow(0, 4, 0).shape(), (Shape{0, 6}));
  const std::string negative = kestrel::testing::error_of([&] { (void)x.narrow(0, 1, -1); });
  EXPECT_NE(negative.find("narrow: -1 elements from 1 are out of bounds for dimension 0 of size 4"), std::string::npos)
      << negative;
  EXPECT_EQ(x.view_bytes(96, Shape{0}, DType::kFloat32).numel(), 0);
  EXPECT_EQ(Tensor::wrap(nullptr, Shape{4}, DType::kFloat32, kestrel::Device::cpu()).narrow(0, 2, 2).data(), nullptr);
  // The byte-size limit is inclusive too: 2^62 - 1 floats (2^64 - 4 bytes) can be described
  // (wrap allocates nothing), 2^62 cannot.
  float one = 0.f;
  EXPECT_NO_THROW(Tensor::wrap(&one, Shape{(std::int64_t{1} << 62) - 1}, DType::kFloat32, kestrel::Device::cpu()));
  EXPECT_THROW(Tensor::wrap(&one, Shape{std::int64_t{1} << 62}, DType::kFloat32, kestrel::Device::cpu()), kestrel::Error);
}

// An NHWC tensor reshapes without reordering when C is 1 or H*W is 1 (both memory orders
// agree), and a reshape to its own shape stays NHWC with its values in place.
TEST(Tensor, NhwcReshapeKeepsTheLayoutForItsOwnShapeAndFlattensASingleChannel) {
  std::vector<float> v(2 * 3 * 2 * 2);
  std::iota(v.begin(), v.end(), 0.f);
  const Tensor x = Tensor::from_vector(v, Shape{2, 3, 2, 2}, DType::kFloat32, Layout::kNHWC);
  const Tensor same = x.reshape(Shape{2, 3, 2, 2});
  EXPECT_EQ(same.layout(), Layout::kNHWC);
  EXPECT_EQ(same.to_float_vector(), v);
  const Tensor one_channel = Tensor::from_vector(std::vector<float>(v.begin(), v.begin() + 8), Shape{2, 1, 2, 2},
                                                 DType::kFloat32, Layout::kNHWC);
  EXPECT_EQ(one_channel.reshape(Shape{2, 4}).to_float_vector(), (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7}));
}

// copy_from and the fills take contiguous tensors of one layout: a strided view as source or
// destination, an NHWC source for an NCHW destination of the same shape, and a fill of a strided
// view are refused, and nothing is written.
TEST(Tensor, CopiesAndFillsRefuseStridedViewsAndAnotherLayout) {
  kestrel::Stream cpu;
  std::vector<float> v(4 * 6);
  std::iota(v.begin(), v.end(), 0.f);
  Tensor x = Tensor::from_vector(v, Shape{4, 6});
  Tensor cols = x.narrow(1, 2, 3);  // [4, 3], row stride 6
  Tensor dense = Tensor::from_vector(std::vector<float>(12, -1.f), Shape{4, 3});
  const std::string from_view = kestrel::testing::error_of([&] { dense.copy_from(cols, cpu); });
  EXPECT_NE(from_view.find("copy_from needs contiguous tensors"), std::string::npos) << from_view;
  const std::string into_view = kestrel::testing::error_of([&] { cols.copy_from(dense, cpu); });
  EXPECT_NE(into_view.find("copy_from needs contiguous tensors"), std::string::npos) << into_view;
  const std::string fill = kestrel::testing::error_of([&] { cols.fill(7.f, cpu); });
  EXPECT_NE(fill.find("fill needs a contiguous tensor"), std::string::npos) << fill;
  EXPECT_EQ(x.to_float_vector(), v);
  EXPECT_EQ(dense.to_float_vector(), std::vector<float>(12, -1.f));
  const Tensor nhwc = Tensor::from_vector(std::vector<float>(8, 2.f), Shape{1, 2, 2, 2}, DType::kFloat32, Layout::kNHWC);
  Tensor nchw = Tensor::empty_cpu(Shape{1, 2, 2, 2}, DType::kFloat32);
  EXPECT_THROW(nchw.copy_from(nhwc, cpu), kestrel::Error);
}

// fill_normal draws from the Philox stream at the offset it is given, as fill_uniform does.
TEST(Tensor, NormalFillTakesItsOffset) {
  kestrel::Context ctx;
  Tensor a = Tensor::empty(Shape{64}, DType::kFloat32, ctx), b = Tensor::empty(Shape{64}, DType::kFloat32, ctx);
  a.fill_normal(5, 0.f, 1.f, ctx.stream());
  b.fill_normal(5, 0.f, 1.f, ctx.stream(), /*offset=*/0);
  EXPECT_EQ(a.to_float_vector(), b.to_float_vector());
  b.fill_normal(5, 0.f, 1.f, ctx.stream(), /*offset=*/1);
  EXPECT_NE(a.to_float_vector(), b.to_float_vector());
}
