// Elementwise kernels and casts on the GPU against their CPU twins: bit-identical (sigmoid and
// tanh within a few fp32 ulps: device and host libm differ), for every dtype, odd sizes that
// exercise the partial last vector, misaligned pointers (all, or only the output), in place.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "device_dtype_buffer.h"
#include "dtype_buffer.h"
#include "elementwise_cases.h"
#include "kestrel/core/context.h"
#include "kestrel/kernels/cpu/elementwise.h"
#include "kestrel/kernels/elementwise.h"
#include "test_support.h"

using kestrel::DType;
using kestrel::testing::DeviceDtypeBuffer;
using kestrel::testing::DtypeBuffer;
using kestrel::testing::ElementwiseCase;

namespace {

// GPU result of one case vs the CPU twin. `out_lead` may differ from the inputs' lead.
void expect_gpu_matches_cpu(kestrel::Context& gpu, const ElementwiseCase& c, DType t,
                            std::int64_t n, std::int64_t lead, std::int64_t out_lead) {
  auto host = kestrel::testing::make_case_buffers(c, t, n, lead, 51);
  std::vector<DeviceDtypeBuffer> din, dout;
  std::vector<const void*> in;
  std::vector<void*> out;
  for (const DtypeBuffer& b : host.in) din.emplace_back(b, gpu);
  for (const DtypeBuffer& b : host.out) {
    DtypeBuffer start(t, n, out_lead);
    for (std::int64_t i = 0; i < n; ++i) start.set(i, b.value(i));  // accumulate reads it
    dout.emplace_back(start, gpu);
  }
  for (const auto& d : din) in.push_back(d.data());
  for (const auto& d : dout) out.push_back(d.data());
  c.cuda(in.data(), out.data(), n, t, gpu.stream().handle());
  const auto hin = host.in_ptrs();
  const auto hout = host.out_ptrs();
  c.cpu(hin.data(), hout.data(), n, t);
  for (int k = 0; k < c.outputs; ++k) {
    const DtypeBuffer got = dout[k].to_host();
    if (c.libm) {
      // Device expf/tanhf are within 2 ulps, glibc's within 1-2: a few fp32 ulps apart before
      // rounding to the dtype; for 16-bit dtypes that can move the result by one ulp of the dtype.
      // Below fp16's smallest normal (6.1e-5; sigmoid(x) for x < -9.7) that ulp is the fixed
      // subnormal step 2^-24, up to 1% of the value: allow it as an absolute tolerance.
      const double rel = 16 * kestrel::dtype_eps(DType::kFloat32) +
                         2 * kestrel::dtype_eps(t) * (t != DType::kFloat32);
      const double abs = t == DType::kFloat16 ? 5.9604644775390625e-8 : 1e-30;  // 2^-24
      EXPECT_TRUE(kestrel::testing::all_close(got.values(), host.out[k].values(), abs, rel))
          << c.name << " " << kestrel::dtype_name(t) << " n=" << n << " lead=" << lead;
    } else {
      EXPECT_TRUE(kestrel::testing::bit_equal(got.all_bits(), host.out[k].all_bits()))
          << c.name << " " << kestrel::dtype_name(t) << " n=" << n << " lead=" << lead
          << " out_lead=" << out_lead;
    }
  }
}
}  // namespace

TEST(CudaElementwise, EveryOpMatchesTheCpuTwinForEverySizeAndAlignment) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  for (const ElementwiseCase& c : kestrel::testing::elementwise_cases()) {
    for (DType t : kestrel::testing::kFloatingDtypes) {
      for (std::int64_t n : {1, 3, 7, 8, 9, 15, 17, 1000003}) {
        expect_gpu_matches_cpu(gpu, c, t, n, 0, 0);
        expect_gpu_matches_cpu(gpu, c, t, n, 1, 1);
      }
      expect_gpu_matches_cpu(gpu, c, t, 4099, 0, 1);  // aligned inputs, misaligned output
      expect_gpu_matches_cpu(gpu, c, t, 4099, 3, 0);
    }
  }
}

TEST(CudaElementwise, InPlaceMatchesTheCpuTwin) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  for (const ElementwiseCase& c : kestrel::testing::elementwise_cases()) {
    if (c.libm) continue;  // bit comparison below
    for (DType t : kestrel::testing::kFloatingDtypes) {
      const std::int64_t n = 100003;
      auto host = kestrel::testing::make_case_buffers(c, t, n, 0, 52);
      std::vector<DeviceDtypeBuffer> din;
      for (const DtypeBuffer& b : host.in) din.emplace_back(b, gpu);
      std::vector<const void*> in, hin = host.in_ptrs();
      std::vector<void*> out, hout;
      for (const auto& d : din) in.push_back(d.data());
      for (int k = 0; k < c.outputs; ++k) {  // output k over input k
        out.push_back(din[k].data());
        hout.push_back(host.in[k].data());
        hin[k] = hout.back();
      }
      c.cuda(in.data(), out.data(), n, t, gpu.stream().handle());
      c.cpu(hin.data(), hout.data(), n, t);
      for (int k = 0; k < c.outputs; ++k) {
        EXPECT_TRUE(kestrel::testing::bit_equal(din[k].to_host().all_bits(), host.in[k].all_bits()))
            << c.name << " " << kestrel::dtype_name(t);
      }
    }
  }
}

TEST(CudaElementwise, CastsMatchTheCpuTwinBitForBit) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  std::mt19937 gen(53);
  for (DType from : kestrel::testing::kFloatingDtypes) {
    for (DType to : kestrel::testing::kFloatingDtypes) {
      for (std::int64_t lead : {0, 1}) {
        // Random bit patterns: every exponent, subnormals, infinities and NaNs.
        const std::int64_t n = 200003;
        DtypeBuffer x(from, n, lead);
        for (std::int64_t i = 0; i < n; ++i) {
          const std::uint32_t u = gen();
          std::memcpy(static_cast<char*>(x.data()) + i * kestrel::dtype_size(from), &u,
                      kestrel::dtype_size(from));
        }
        // fp32 classes that random patterns almost never hit (about 2 in 2^32 each): signed zeros
        // and infinities, the largest finite values, fp16's overflow edge (65504, 65519.996,
        // 65520), bf16's halfway-to-infinity, halfway ties (to even, both directions) in bf16 and
        // at fp16's subnormal scale, NaNs with payloads and signalling.
        if (from == DType::kFloat32) {
          const std::uint32_t specials[] = {
              0x00000000u, 0x80000000u, 0x7F800000u, 0xFF800000u, 0x7F7FFFFFu, 0xFF7FFFFFu,
              0x477FE000u, 0x477FEFFFu, 0x477FF000u, 0xC77FF000u, 0x7F7F8000u, 0x7F7F7FFFu,
              0x3F808000u, 0x3F818000u, 0xBF808000u, 0x33000000u, 0x33C00000u, 0x33A00000u,
              0x387FC000u, 0x00400000u, 0x7FC12345u, 0xFFC00001u, 0x7F800001u, 0x7FFFFFFFu};
          std::memcpy(x.data(), specials, sizeof specials);
        }
        DtypeBuffer y(to, n, lead);
        kestrel::cpu::cast(x.data(), from, y.data(), to, n);
        DeviceDtypeBuffer dx(x, gpu), dy(DtypeBuffer(to, n, lead), gpu);
        kestrel::cuda::cast(dx.data(), from, dy.data(), to, n, gpu.stream().handle());
        EXPECT_TRUE(kestrel::testing::bit_equal(dy.to_host().all_bits(), y.all_bits()))
            << kestrel::dtype_name(from) << "->" << kestrel::dtype_name(to) << " lead=" << lead;
      }
    }
  }
}
