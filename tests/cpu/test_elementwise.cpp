// Elementwise CPU twins against double-precision references (tests/support/elementwise_cases.h)
// for fp32, bf16 and fp16; backward passes against finite differences of the forward kernels;
// casts against an independent round-to-nearest-even reference; in place, misaligned data and
// the error paths.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "dtype_buffer.h"
#include "elementwise_cases.h"
#include "error_text.h"
#include "kestrel/core/error.h"
#include "kestrel/kernels/batchnorm_math.h"
#include "kestrel/kernels/cpu/elementwise.h"
#include "kestrel/kernels/elementwise.h"
#include "test_support.h"

using kestrel::DType;
using kestrel::testing::DtypeBuffer;
using kestrel::testing::ElementwiseCase;
using kestrel::testing::random_floats;

namespace {

void run_cpu(const ElementwiseCase& c, kestrel::testing::CaseBuffers& b, DType t) {
  const auto in = b.in_ptrs();
  const auto out = b.out_ptrs();
  c.cpu(in.data(), out.data(), b.in[0].size(), t);
}
}  // namespace

TEST(Elementwise, EveryOpMatchesItsDoubleReference) {
  for (const ElementwiseCase& c : kestrel::testing::elementwise_cases()) {
    for (DType t : kestrel::testing::kFloatingDtypes) {
      for (std::int64_t n : {1, 3, 7, 8, 9, 100003}) {
        auto b = kestrel::testing::make_case_buffers(c, t, n, 0, 21);
        run_cpu(c, b, t);
        // Tolerance: the final rounding to the dtype plus the formula's fp32 roundings (and a
        // few ulps of libm); abs covers fp16 subnormal spacing.
        const double eps32 = kestrel::dtype_eps(DType::kFloat32);
        const double rel = kestrel::dtype_eps(t) + (c.roundings + (c.libm ? 8 : 0)) * eps32;
        const double abs = 1e-4 * kestrel::dtype_eps(t);
        for (int k = 0; k < c.outputs; ++k) {
          std::vector<double> want(static_cast<std::size_t>(n));
          for (std::int64_t i = 0; i < n; ++i) {
            double x[3] = {0, 0, 0}, y[2] = {0, 0};
            for (int j = 0; j < c.inputs; ++j) x[j] = b.in[j].value(i);
            c.reference(x, y);
            want[static_cast<std::size_t>(i)] = y[k];
          }
          EXPECT_TRUE(kestrel::testing::all_close(b.out[k].values(), want, abs, rel))
              << c.name << " output " << k << " " << kestrel::dtype_name(t) << " n=" << n;
        }
      }
    }
  }
}

TEST(Elementwise, InPlaceAndMisalignedDataGiveTheSameBits) {
  for (const ElementwiseCase& c : kestrel::testing::elementwise_cases()) {
    for (DType t : kestrel::testing::kFloatingDtypes) {
      const std::int64_t n = 1031;
      auto ref = kestrel::testing::make_case_buffers(c, t, n, 0, 22);
      run_cpu(c, ref, t);
      auto shifted = kestrel::testing::make_case_buffers(c, t, n, 1, 22);
      run_cpu(c, shifted, t);
      // In place: output k written over input k.
      auto inplace = kestrel::testing::make_case_buffers(c, t, n, 0, 22);
      std::vector<const void*> in = inplace.in_ptrs();
      std::vector<void*> out;
      for (int k = 0; k < c.outputs; ++k) {
        out.push_back(inplace.in[k].data());
        in[k] = out.back();
      }
      c.cpu(in.data(), out.data(), n, t);
      for (int k = 0; k < c.outputs; ++k) {
        EXPECT_EQ(shifted.out[k].all_bits(), ref.out[k].all_bits()) << c.name << " misaligned";
        EXPECT_EQ(inplace.in[k].all_bits(), ref.out[k].all_bits()) << c.name << " in place";
      }
    }
  }
}

TEST(Elementwise, SigmoidSaturatesWithoutOverflow) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> xs = {-1e4f, -1e4f, -200.f, -100.f, -88.f, -20.f, 0.f,
                                 20.f,  88.f,  100.f,  1e4f,   -inf,  inf};
  for (DType t : kestrel::testing::kFloatingDtypes) {
    const DtypeBuffer x = DtypeBuffer::from(xs, t);
    DtypeBuffer y(t, x.size());
    kestrel::cpu::sigmoid(x.data(), y.data(), x.size(), t);
    const auto v = y.values();
    for (std::size_t i = 0; i < v.size(); ++i) {
      EXPECT_TRUE(std::isfinite(v[i]) && v[i] >= 0.f && v[i] <= 1.f)
          << "x=" << xs[i] << " y=" << v[i];
    }
    EXPECT_EQ(v[0], 0.f);
    EXPECT_EQ(v[6], 0.5f);
    EXPECT_EQ(v[10], 1.f);
    EXPECT_EQ(v[11], 0.f);
    EXPECT_EQ(v[12], 1.f);
  }
}

// kernels/elementwise.h: "add_relu ... NaN propagates" (fmaxf(a + b, 0) would drop it).
TEST(Elementwise, AddReluPropagatesNaN) {
  for (DType t : kestrel::testing::kFloatingDtypes) {
    const DtypeBuffer a = DtypeBuffer::from({std::nanf(""), 1.f, -3.f, 2.f}, t);
    const DtypeBuffer b = DtypeBuffer::from({1.f, std::nanf(""), 1.f, 0.5f}, t);
    DtypeBuffer y(t, 4);
    kestrel::cpu::add_relu(a.data(), b.data(), y.data(), 4, t);
    EXPECT_TRUE(std::isnan(y.value(0))) << kestrel::dtype_name(t);
    EXPECT_TRUE(std::isnan(y.value(1))) << kestrel::dtype_name(t);
    EXPECT_EQ(y.value(2), 0.f);
    EXPECT_EQ(y.value(3), 2.5f);
  }
}

TEST(Elementwise, ReluPropagatesNaN) {
  const DtypeBuffer x = DtypeBuffer::from({std::nanf(""), -1.f, 2.f}, DType::kFloat32);
  DtypeBuffer y(DType::kFloat32, 3);
  kestrel::cpu::relu(x.data(), y.data(), 3, DType::kFloat32);
  EXPECT_TRUE(std::isnan(y.value(0)));
  EXPECT_EQ(y.value(1), 0.f);
  EXPECT_EQ(y.value(2), 2.f);
}

// Backward masks where the output is <= 0 (PyTorch's threshold_backward): a NaN output passes its
// gradient on, so a unit that went NaN shows NaN gradients rather than an exact 0 (it did).
TEST(Elementwise, ReluBackwardPassesTheGradientOfANaNOutput) {
  for (DType t : kestrel::testing::kFloatingDtypes) {
    const DtypeBuffer dy = DtypeBuffer::from({1.f, 2.f, 3.f, 4.f, 5.f}, t);
    const DtypeBuffer y = DtypeBuffer::from({std::nanf(""), -1.f, 0.f, 2.f, -std::nanf("")}, t);
    for (auto* backward : {&kestrel::cpu::relu_backward, &kestrel::cpu::add_relu_backward}) {
      DtypeBuffer dx(t, 5);
      backward(dy.data(), y.data(), dx.data(), 5, t);
      EXPECT_EQ(dx.value(0), 1.f) << kestrel::dtype_name(t);
      EXPECT_EQ(dx.value(1), 0.f);
      EXPECT_EQ(dx.value(2), 0.f);
      EXPECT_EQ(dx.value(3), 4.f);
      EXPECT_EQ(dx.value(4), 5.f);
    }
  }
  // The fused batch-norm backward's mask is the same rule.
  EXPECT_EQ(kestrel::bn_detail::bn_masked_grad(1.5f, std::nanf(""), kestrel::BnActivation::kRelu), 1.5f);
  EXPECT_EQ(kestrel::bn_detail::bn_masked_grad(1.5f, 0.f, kestrel::BnActivation::kAddRelu), 0.f);
  EXPECT_EQ(kestrel::bn_detail::bn_masked_grad(1.5f, -2.f, kestrel::BnActivation::kNone), 1.5f);
}

// d/dx sum(w * f(x)) by central differences of the fp32 forward kernel, against backward.
TEST(Elementwise, BackwardMatchesFiniteDifferences) {
  constexpr std::int64_t kN = 2000;
  constexpr float kH = 1.0f / 128;
  const DType f32 = DType::kFloat32;
  const std::vector<float> x = random_floats(kN, 31, -3.f, 3.f);
  const std::vector<float> w = random_floats(kN, 32, -1.f, 1.f);
  std::vector<float> xp(kN), xm(kN);
  for (std::int64_t i = 0; i < kN; ++i) xp[i] = x[i] + kH, xm[i] = x[i] - kH;
  std::vector<float> fd(kN);
  const auto central = [&](const std::vector<float>& fp, const std::vector<float>& fm) {
    for (std::int64_t i = 0; i < kN; ++i) {
      fd[i] = static_cast<float>(w[i] * (static_cast<double>(fp[i]) - fm[i]) /
                                 (static_cast<double>(xp[i]) - xm[i]));
    }
  };
  std::vector<float> y(kN), yp(kN), ym(kN), dx(kN);
  // Truncation (h^2/6 |f'''| <= 1e-5) plus fp32 rounding of f over 2h (~1e-5).
  const double tol = 5e-5;

  kestrel::cpu::sigmoid(x.data(), y.data(), kN, f32);
  kestrel::cpu::sigmoid(xp.data(), yp.data(), kN, f32);
  kestrel::cpu::sigmoid(xm.data(), ym.data(), kN, f32);
  central(yp, ym);
  kestrel::cpu::sigmoid_backward(w.data(), y.data(), dx.data(), kN, f32);
  EXPECT_TRUE(kestrel::testing::all_close(dx, fd, tol, 1e-3)) << "sigmoid";

  kestrel::cpu::tanh_forward(x.data(), y.data(), kN, f32);
  kestrel::cpu::tanh_forward(xp.data(), yp.data(), kN, f32);
  kestrel::cpu::tanh_forward(xm.data(), ym.data(), kN, f32);
  central(yp, ym);
  kestrel::cpu::tanh_backward(w.data(), y.data(), dx.data(), kN, f32);
  EXPECT_TRUE(kestrel::testing::all_close(dx, fd, tol, 1e-3)) << "tanh";

  // mul: perturb a (gradient da) and b (gradient db) separately.
  const std::vector<float> b = random_floats(kN, 33, -2.f, 2.f);
  std::vector<float> da(kN), db(kN);
  kestrel::cpu::mul_backward(w.data(), x.data(), b.data(), da.data(), db.data(), kN, f32);
  kestrel::cpu::mul(xp.data(), b.data(), yp.data(), kN, f32);
  kestrel::cpu::mul(xm.data(), b.data(), ym.data(), kN, f32);
  central(yp, ym);
  EXPECT_TRUE(kestrel::testing::all_close(da, fd, tol, 1e-3)) << "mul da";
  std::vector<float> bp(kN), bm(kN);
  for (std::int64_t i = 0; i < kN; ++i) bp[i] = b[i] + kH, bm[i] = b[i] - kH;
  kestrel::cpu::mul(x.data(), bp.data(), yp.data(), kN, f32);
  kestrel::cpu::mul(x.data(), bm.data(), ym.data(), kN, f32);
  for (std::int64_t i = 0; i < kN; ++i) {
    fd[i] = static_cast<float>(w[i] * (static_cast<double>(yp[i]) - ym[i]) /
                               (static_cast<double>(bp[i]) - bm[i]));
  }
  EXPECT_TRUE(kestrel::testing::all_close(db, fd, tol, 1e-3)) << "mul db";
}

namespace {
// Random bit patterns of `t` (all exponents, subnormals, infinities, NaNs) plus exact ties of
// the 16-bit formats and overflow boundaries.
DtypeBuffer cast_inputs(DType t, std::int64_t lead) {
  std::mt19937 gen(41);
  std::vector<std::uint32_t> bits;
  for (int i = 0; i < 20000; ++i) bits.push_back(gen());
  if (t == DType::kFloat32) {
    for (std::uint32_t hi = 0; hi < 0x10000u; hi += 97) {
      bits.push_back((hi << 16) | 0x8000u);             // bf16 tie
      bits.push_back((hi << 16) | 0x7fffu);             // just below a tie
      bits.push_back((gen() & 0xffffe000u) | 0x1000u);  // fp16 tie (normal range)
    }
    for (float f : {65504.f, 65519.f, 65520.f, 3.0e38f, 3.4e38f, 5.96e-8f, 2.98e-8f, 2.99e-8f,
                    6.1e-5f, 1e-40f, -0.f, 0.f}) {
      std::uint32_t u;
      std::memcpy(&u, &f, 4);
      bits.push_back(u);
    }
  }
  DtypeBuffer b(t, static_cast<std::int64_t>(bits.size()), lead);
  for (std::size_t i = 0; i < bits.size(); ++i) {
    const std::uint32_t u = t == DType::kFloat32 ? bits[i] : (bits[i] & 0xffffu);
    std::memcpy(static_cast<char*>(b.data()) + i * kestrel::dtype_size(t), &u,
                kestrel::dtype_size(t));
  }
  return b;
}
}  // namespace

TEST(Elementwise, CastsRoundToNearestEvenAndCopySameDtypeBits) {
  for (DType from : kestrel::testing::kFloatingDtypes) {
    for (DType to : kestrel::testing::kFloatingDtypes) {
      for (std::int64_t lead : {0, 1}) {
        const DtypeBuffer x = cast_inputs(from, lead);
        DtypeBuffer y(to, x.size(), lead);
        kestrel::cpu::cast(x.data(), from, y.data(), to, x.size());
        if (from == to) {
          EXPECT_EQ(y.all_bits(), x.all_bits()) << kestrel::dtype_name(from);
          continue;
        }
        std::int64_t bad = 0;
        for (std::int64_t i = 0; i < x.size(); ++i) {
          const double want = kestrel::testing::round_to_dtype(x.value(i), to);
          const double got = y.value(i);
          const bool ok = std::isnan(want)
                              ? std::isnan(got)
                              : (got == want && std::signbit(got) == std::signbit(want));
          if (!ok && ++bad <= 5) {
            ADD_FAILURE() << kestrel::dtype_name(from) << "->" << kestrel::dtype_name(to) << " ["
                          << i << "] " << x.value(i) << " -> " << got << ", want " << want;
          }
        }
        EXPECT_EQ(bad, 0);
      }
    }
  }
}

// A cast between dtypes of different sizes cannot run in place: any overlap of the source's and
// destination's bytes raises, on both backends (the CUDA launcher checks on the host, before any
// CUDA call, so this runs without a GPU), and leaves the bytes as they were. Same-size casts may
// run in place.
TEST(Elementwise, CastBetweenSizesRefusesOverlapAndSameSizeRunsInPlace) {
  std::vector<float> buf(16);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = 1.5f + static_cast<float>(i);
  const std::vector<float> before = buf;
  char* base = reinterpret_cast<char*>(buf.data());
  struct Overlap {
    const void* x;
    DType from;
    void* y;
    DType to;
  };
  // 4 fp32 at base+16 against 4 bf16 at: the same address, inside, overlapping only x's first
  // element (4 fp16 at base+10: bytes 10..17), and 4 bf16 at base read into 4 fp32 at base+4.
  const Overlap refused[] = {{base + 16, DType::kFloat32, base + 16, DType::kBFloat16},
                             {base + 16, DType::kFloat32, base + 20, DType::kBFloat16},
                             {base + 16, DType::kFloat32, base + 10, DType::kFloat16},
                             {base, DType::kBFloat16, base + 4, DType::kFloat32}};
  for (const Overlap& o : refused) {
    const std::string cpu_error = kestrel::testing::error_of(
        [&] { kestrel::cpu::cast(o.x, o.from, o.y, o.to, 4); });
    EXPECT_NE(cpu_error.find("cannot run in place"), std::string::npos) << cpu_error;
    EXPECT_NE(cpu_error.find("overlap"), std::string::npos) << cpu_error;
    EXPECT_THROW(kestrel::cuda::cast(o.x, o.from, o.y, o.to, 4, nullptr), kestrel::Error);
  }
  EXPECT_TRUE(kestrel::testing::bit_equal(buf, before)) << "a refused cast wrote";
  // Adjacent, not overlapping: 4 fp32 at base+16 (bytes 16..31) to 4 bf16 at base+32 and at base+8.
  kestrel::cpu::cast(base + 16, DType::kFloat32, base + 32, DType::kBFloat16, 4);
  kestrel::cpu::cast(base + 16, DType::kFloat32, base + 8, DType::kBFloat16, 4);
  // In place between same-size dtypes: bf16 -> fp16 -> bf16 of small integers is exact.
  std::vector<std::uint16_t> h(8);
  for (std::size_t i = 0; i < h.size(); ++i) h[i] = kestrel::to_bf16(static_cast<float>(i) - 3.f).bits;
  const std::vector<std::uint16_t> h0 = h;
  kestrel::cpu::cast(h.data(), DType::kBFloat16, h.data(), DType::kFloat16, 8);
  EXPECT_EQ(kestrel::float16{h[7]}.bits, kestrel::to_fp16(4.f).bits);
  kestrel::cpu::cast(h.data(), DType::kFloat16, h.data(), DType::kBFloat16, 8);
  EXPECT_EQ(h, h0);
  // Same size but shifted by one element: partly in place, which the GPU would race on.
  const std::string shifted = kestrel::testing::error_of(
      [&] { kestrel::cpu::cast(h.data(), DType::kBFloat16, h.data() + 1, DType::kFloat16, 4); });
  EXPECT_NE(shifted.find("only at the same address"), std::string::npos) << shifted;
  EXPECT_THROW(kestrel::cuda::cast(h.data(), DType::kBFloat16, h.data() + 1, DType::kFloat16, 4, nullptr),
               kestrel::Error);
  EXPECT_EQ(h, h0);
}

TEST(Elementwise, InvalidArgumentsRaiseBeforeTouchingData) {
  float a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 4}, y[4];
  EXPECT_THROW(kestrel::cpu::add(a, b, y, 4, DType::kInt32), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::add(a, b, y, -1, DType::kFloat32), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::relu(nullptr, y, 4, DType::kFloat32), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::mul_backward(a, a, b, y, y, 4, DType::kFloat32), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::cast(a, DType::kFloat32, y, DType::kUInt8, 4), kestrel::Error);
  EXPECT_THROW(kestrel::cpu::cast(a, DType::kInt32, y, DType::kFloat32, 4), kestrel::Error);
  EXPECT_NO_THROW(kestrel::cpu::add(nullptr, nullptr, nullptr, 0, DType::kFloat32)) << "n = 0";
  // The CUDA launchers validate on the host before any CUDA call (runs without a GPU).
  EXPECT_THROW(kestrel::cuda::add(a, b, y, 4, DType::kInt32, nullptr), kestrel::Error);
  EXPECT_THROW(kestrel::cuda::sigmoid(a, nullptr, 4, DType::kFloat32, nullptr), kestrel::Error);
  EXPECT_THROW(kestrel::cuda::scale(a, y, -3, DType::kBFloat16, 2.f, nullptr), kestrel::Error);
  EXPECT_THROW(kestrel::cuda::mul_backward(a, a, b, y, y, 4, DType::kFloat32, nullptr),
               kestrel::Error);
  EXPECT_THROW(kestrel::cuda::cast(a, DType::kFloat32, y, DType::kInt32, 4, nullptr),
               kestrel::Error);
}
