// cuBLAS GEMM (kernels/gemm.h) against the independent double reference: every transpose
// combination, odd sizes, padded leading dimensions, alpha/beta, beta = 0 over NaN, k = 0,
// unaligned pointers, fp32 exact and TF32, bf16.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gemm_reference.h"
#include "kestrel/core/context.h"
#include "kestrel/core/error.h"
#include "kestrel/kernels/gemm.h"
#include "storage_test_util.h"
#include "test_support.h"

namespace {
using kestrel::DType;
using kestrel::testing::DeviceBuffer;
using kestrel::testing::GemmCase;
using kestrel::testing::gemm_case;
using kestrel::testing::HostBuffer;
using kestrel::testing::random_buffer;

// Runs the case on the GPU with A, B, C placed `offset` elements into their buffers.
std::vector<double> run(kestrel::Context& ctx, const GemmCase& g, DType t, const HostBuffer& a,
                        const HostBuffer& b, const HostBuffer& c, bool tf32, std::size_t offset = 0) {
  const std::size_t es = kestrel::dtype_size(t), skip = offset * es;
  DeviceBuffer da(a.bytes() + skip), db(b.bytes() + skip), dc(c.bytes() + skip);
  auto at = [&](const DeviceBuffer& d) { return static_cast<char*>(d.get()) + skip; };
  EXPECT_EQ(cudaMemcpy(at(da), a.data(), a.bytes(), cudaMemcpyHostToDevice), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(at(db), b.data(), b.bytes(), cudaMemcpyHostToDevice), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(at(dc), c.data(), c.bytes(), cudaMemcpyHostToDevice), cudaSuccess);
  // A pageable upload may return before its DMA lands; the gemm runs on a non-blocking stream.
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  kestrel::cuda::gemm(ctx.cublas(), g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, at(da), g.lda,
                      at(db), g.ldb, g.beta, at(dc), g.ldc, t, tf32,
                      static_cast<cudaStream_t>(ctx.stream().handle()));
  ctx.stream().synchronize();
  HostBuffer out(t, c.size());
  EXPECT_EQ(cudaMemcpy(out.data(), at(dc), out.bytes(), cudaMemcpyDeviceToHost), cudaSuccess);
  return out.values();
}

TEST(CudaGemm, MatchesTheDoubleReference) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context ctx(kestrel::Device::cuda(0));
  const std::int64_t sizes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 13, 1}, {64, 33, 129}, {512, 10, 64}, {128, 256, 300}};
  std::uint32_t seed = 1;
  for (const auto& s : sizes)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (DType t : {DType::kFloat32, DType::kBFloat16})
          for (bool tf32 : {false, true}) {
            if (tf32 && t == DType::kBFloat16) continue;
            const GemmCase g = gemm_case(ta, tb, s[0], s[1], s[2], ta ? 3 : 0, 0.75f, -0.5f);
            const HostBuffer a = random_buffer(t, g.a_size(), seed++);
            const HostBuffer b = random_buffer(t, g.b_size(), seed++);
            const HostBuffer c = random_buffer(t, g.c_size(), seed++);
            const auto expected = kestrel::testing::ref_gemm(g, a.values(), b.values(), c.values());
            // Typical |C| ~ sqrt(k) / 3: exact fp32 1e-5 of it, TF32 ~2^-11 per product, bf16 an
            // output ulp (2^-8 relative) plus fp32 accumulation.
            const double rel = t == DType::kBFloat16 ? 8e-3 : (tf32 ? 2e-3 : 1e-5);
            const double abs_tol = rel * (std::sqrt(static_cast<double>(g.k)) / 3.0 + 1.0);
            EXPECT_TRUE(kestrel::testing::all_close(run(ctx, g, t, a, b, c, tf32), expected, abs_tol, rel))
                << kestrel::dtype_name(t) << " ta=" << ta << " tb=" << tb << " m=" << g.m
                << " n=" << g.n << " k=" << g.k << " tf32=" << tf32;
          }
}

TEST(CudaGemm, BetaZeroIgnoresNanAndKZeroScalesC) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context ctx(kestrel::Device::cuda(0));
  GemmCase g = gemm_case(false, true, 9, 6, 5, 1, 2.f, 0.f);
  const HostBuffer a = random_buffer(DType::kFloat32, g.a_size(), 5);
  const HostBuffer b = random_buffer(DType::kFloat32, g.b_size(), 6);
  HostBuffer c(DType::kFloat32, g.c_size());
  for (std::size_t i = 0; i < c.size(); ++i) c.set(i, std::numeric_limits<float>::quiet_NaN());
  const auto got = run(ctx, g, DType::kFloat32, a, b, c, false);
  for (std::int64_t i = 0; i < g.m; ++i)
    for (std::int64_t j = 0; j < g.n; ++j)
      EXPECT_FALSE(std::isnan(got[static_cast<std::size_t>(i * g.ldc + j)])) << i << "," << j;
  g = gemm_case(false, false, 4, 3, 0, 0, 1.f, 0.5f);
  const HostBuffer c2 = random_buffer(DType::kFloat32, g.c_size(), 8);
  const HostBuffer empty(DType::kFloat32, 1);
  const auto scaled = run(ctx, g, DType::kFloat32, empty, empty, c2, false);
  for (std::size_t i = 0; i < c2.size(); ++i) EXPECT_FLOAT_EQ(scaled[i], 0.5 * c2.get(i));
}

TEST(CudaGemm, UnalignedPointersWork) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context ctx(kestrel::Device::cuda(0));
  for (DType t : {DType::kFloat32, DType::kBFloat16}) {
    const GemmCase g = gemm_case(true, false, 31, 17, 45, 1, 1.f, 0.f);
    const HostBuffer a = random_buffer(t, g.a_size(), 21);
    const HostBuffer b = random_buffer(t, g.b_size(), 22);
    const HostBuffer c(t, g.c_size());
    const auto expected = kestrel::testing::ref_gemm(g, a.values(), b.values(), c.values());
    const double rel = t == DType::kBFloat16 ? 8e-3 : 1e-5;
    EXPECT_TRUE(kestrel::testing::all_close(run(ctx, g, t, a, b, c, false, 1), expected, rel * 4, rel))
        << kestrel::dtype_name(t);
  }
}

// The caller's workspace survives cublasSetStream (which resets the handle to cuBLAS's pool) and
// a gemm captured into a CUDA Graph then needs no allocation: no memory-allocation nodes, and the
// replay computes the product. Bad workspaces raise before cuBLAS is called.
TEST(CudaGemm, CallerWorkspaceCapturesWithoutAllocations) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context ctx(kestrel::Device::cuda(0));
  cudaStream_t s = static_cast<cudaStream_t>(ctx.stream().handle());
  const GemmCase g = gemm_case(false, true, 96, 160, 200, 0, 1.f, 0.f);
  const HostBuffer a = random_buffer(DType::kFloat32, g.a_size(), 41);
  const HostBuffer b = random_buffer(DType::kFloat32, g.b_size(), 42);
  const HostBuffer c(DType::kFloat32, g.c_size());
  const auto expected = kestrel::testing::ref_gemm(g, a.values(), b.values(), c.values());
  DeviceBuffer da(a), db(b), dc(c.bytes()), ws(std::size_t(4) << 20);
  auto product = [&] {
    kestrel::cuda::gemm(ctx.cublas(), g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, da.get(), g.lda,
                        db.get(), g.ldb, g.beta, dc.get(), g.ldc, DType::kFloat32, false, ws.get(),
                        ws.bytes(), s);
  };
  auto check = [&](const char* what) {
    ctx.stream().synchronize();
    HostBuffer out(DType::kFloat32, c.size());
    dc.download(out);
    const double abs_tol = 1e-5 * (std::sqrt(static_cast<double>(g.k)) / 3.0 + 1.0);
    EXPECT_TRUE(kestrel::testing::all_close(out.values(), expected, abs_tol, 1e-5)) << what;
  };
  product();  // warm-up: cuBLAS initialises lazily, outside the capture
  check("eager");
  ASSERT_EQ(cudaMemsetAsync(dc.get(), 0xff, dc.bytes(), s), cudaSuccess);  // NaN until replayed
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  try {
    product();
  } catch (...) {
    (void)cudaStreamEndCapture(s, &graph);
    throw;
  }
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  std::size_t count = 0;
  ASSERT_EQ(cudaGraphGetNodes(graph, nullptr, &count), cudaSuccess);
  std::vector<cudaGraphNode_t> nodes(count);
  ASSERT_EQ(cudaGraphGetNodes(graph, nodes.data(), &count), cudaSuccess);
  for (cudaGraphNode_t node : nodes) {
    cudaGraphNodeType type{};
    ASSERT_EQ(cudaGraphNodeGetType(node, &type), cudaSuccess);
    EXPECT_NE(type, cudaGraphNodeTypeMemAlloc) << "cuBLAS allocated inside the capture";
    EXPECT_NE(type, cudaGraphNodeTypeMemFree) << "cuBLAS freed inside the capture";
  }
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
  check("graph replay");
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);

  char* base = static_cast<char*>(ws.get());
  auto with_workspace = [&](void* w, std::size_t bytes) {
    kestrel::cuda::gemm(ctx.cublas(), false, false, 4, 4, 4, 1.f, da.get(), 4, db.get(), 4, 0.f,
                        dc.get(), 4, DType::kFloat32, false, w, bytes, s);
  };
  EXPECT_THROW(with_workspace(base + 16, ws.bytes() - 16), kestrel::Error);  // not 256-aligned
  EXPECT_THROW(with_workspace(base, 0), kestrel::Error);
  EXPECT_THROW(with_workspace(nullptr, 1024), kestrel::Error);
  EXPECT_NO_THROW(with_workspace(nullptr, 0));  // cuBLAS's own pool
  ctx.stream().synchronize();
}

TEST(CudaGemm, RejectsBadArgumentsBeforeCallingCublas) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context ctx(kestrel::Device::cuda(0));
  DeviceBuffer buf(1024);
  cudaStream_t s = static_cast<cudaStream_t>(ctx.stream().handle());
  EXPECT_THROW(kestrel::cuda::gemm(ctx.cublas(), false, false, 4, 4, 4, 1.f, buf.get(), 3, buf.get(), 4,
                                   0.f, buf.get(), 4, DType::kFloat32, false, s),
               kestrel::Error);
  EXPECT_THROW(kestrel::cuda::gemm(nullptr, false, false, 4, 4, 4, 1.f, buf.get(), 4, buf.get(), 4,
                                   0.f, buf.get(), 4, DType::kFloat32, false, s),
               kestrel::Error);
  EXPECT_THROW(kestrel::cuda::gemm(ctx.cublas(), false, false, 4, 4, 4, 1.f, buf.get(), 4, buf.get(), 4,
                                   0.f, buf.get(), 4, DType::kFloat16, false, s),
               kestrel::Error);
}

}  // namespace
