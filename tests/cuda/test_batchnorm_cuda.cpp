// GPU batch normalisation against the double-precision reference (tests/support/
// batchnorm_reference.h, tolerances in batchnorm_step.h): the full grid N in {1, 2, 7, 256} x
// C in {1, 3, 16, 64, 512} x H*W in {1, 49, 1024} (tensors above 64M elements skipped), both
// layouts, all activations, fp32 and bf16; then repeated calls over a garbage workspace, CUDA
// Graph replay, unaligned pointers, wide and odd shapes, in-place use, optional pointers,
// inference and a large-mean channel.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "batchnorm_step.h"
#include "storage_test_util.h"
#include "kestrel/kernels/batchnorm.h"
#include "kestrel/kernels/cpu/batchnorm.h"
#include "test_support.h"

namespace ref = kestrel::testing::bnref;
using kestrel::BatchNormDims;
using kestrel::BnActivation;
using kestrel::DType;
using kestrel::Layout;
using kestrel::testing::bit_equal;
using kestrel::testing::DeviceBuffer;

namespace {

constexpr float kEps = 1e-5f;
constexpr float kMomentum = 0.1f;
const BnActivation kActs[] = {BnActivation::kNone, BnActivation::kRelu, BnActivation::kAddRelu};

std::size_t tensor_bytes(const BatchNormDims& d, DType t) {
  return static_cast<std::size_t>(ref::numel(d)) * kestrel::dtype_size(t);
}

// A step's buffers on the device. Tensor pointers start `misalign` elements past a 256-byte
// boundary; the workspace starts full of garbage (0xFF bytes), and so does every output (NaN in
// fp32 and bf16: an element or statistic a kernel does not write, or adds to instead of
// overwriting, fails the comparison where fresh zeroed memory would pass).
struct GpuStep {
  BatchNormDims d;
  DType t;
  BnActivation act;
  float eps = kEps, momentum = kMomentum;
  DeviceBuffer x, r, y, dy, dx, dr, gamma, beta, rm, rv, sm, si, dg, db, ws;

  GpuStep(const BatchNormDims& dims, DType type, BnActivation a, const ref::Step& s,
          std::size_t misalign = 0)
      : d(dims), t(type), act(a),
        x(ref::to_storage(s.x, t), misalign * kestrel::dtype_size(t)),
        r(ref::to_storage(s.residual, t), misalign * kestrel::dtype_size(t)),
        y(tensor_bytes(d, t), misalign * kestrel::dtype_size(t)),
        dy(ref::to_storage(s.dy, t), misalign * kestrel::dtype_size(t)),
        dx(tensor_bytes(d, t), misalign * kestrel::dtype_size(t)),
        dr(tensor_bytes(d, t), misalign * kestrel::dtype_size(t)),
        gamma(s.gamma), beta(s.beta), rm(s.rm0), rv(s.rv0), sm(d.c * 4), si(d.c * 4),
        dg(d.c * 4), db(d.c * 4), ws(kestrel::cuda::batchnorm_workspace_bytes(d)) {
    ws.fill_bytes(0xff);
    for (DeviceBuffer* out : {&y, &dx, &dr, &sm, &si, &dg, &db}) out->fill_bytes(0xff);
  }
  bool add() const { return act == BnActivation::kAddRelu; }

  void forward(cudaStream_t stream) {
    kestrel::cuda::batchnorm_forward_training(x.get(), add() ? r.get() : nullptr, y.get(), t, d,
                                              gamma.f32(), beta.f32(), eps, momentum, rm.f32(),
                                              rv.f32(), sm.f32(), si.f32(), act, ws.get(), stream);
  }
  void backward(cudaStream_t stream) {
    kestrel::cuda::batchnorm_backward(dy.get(), x.get(), y.get(), t, d, gamma.f32(), sm.f32(),
                                      si.f32(), dx.get(), add() ? dr.get() : nullptr, dg.f32(),
                                      db.f32(), act, ws.get(), stream);
  }
  // Copies the outputs into s.
  void read(ref::Step& s) const {
    s.y = ref::from_storage(y.download<std::uint8_t>(), t);
    s.dx = ref::from_storage(dx.download<std::uint8_t>(), t);
    if (add()) s.dresidual = ref::from_storage(dr.download<std::uint8_t>(), t);
    s.save_mean = sm.download<float>();
    s.save_invstd = si.download<float>();
    s.rm = rm.download<float>();
    s.rv = rv.download<float>();
    s.dgamma = dg.download<float>();
    s.dbeta = db.download<float>();
  }
};

// Runs one step on the GPU and compares it with the reference.
void check_gpu_step(const BatchNormDims& d, DType t, BnActivation act, std::uint32_t seed,
                    std::size_t misalign = 0) {
  ref::Step s = ref::make_step(d, t, act, seed);
  GpuStep g(d, t, act, s, misalign);
  g.forward(nullptr);
  g.backward(nullptr);
  g.read(s);
  ref::check_step(d, t, act, s, kEps, kMomentum);
}

}  // namespace

// The full grid, one test per (N, dtype) so ctest can spread them over cores.
class BnCudaSweep : public ::testing::TestWithParam<std::tuple<std::int64_t, DType>> {};

TEST_P(BnCudaSweep, TrainingStepMatchesDoubleReference) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  const auto [n, t] = GetParam();
  std::uint32_t seed = static_cast<std::uint32_t>(1000 * n) + (t == DType::kBFloat16 ? 7 : 0);
  for (std::int64_t c : {1, 3, 16, 64, 512})
    for (std::int64_t hw : {1, 49, 1024}) {
      if (n * c * hw > (std::int64_t(64) << 20) || n * hw == 1) continue;  // too big; m == 1
      for (Layout l : {Layout::kNCHW, Layout::kNHWC})
        for (BnActivation act : kActs) check_gpu_step({n, c, hw, l}, t, act, seed++);
    }
}

INSTANTIATE_TEST_SUITE_P(
    Grid, BnCudaSweep,
    ::testing::Combine(::testing::Values<std::int64_t>(1, 2, 7, 256),
                       ::testing::Values(DType::kFloat32, DType::kBFloat16)),
    [](const ::testing::TestParamInfo<BnCudaSweep::ParamType>& info) {
      return "N" + std::to_string(std::get<0>(info.param)) + "_" +
             kestrel::dtype_name(std::get<1>(info.param));
    });

// Planes longer than a block step, odd planes, channel counts past one tile of 256 vector
// columns (with a partial second tile), hw == 1 in NCHW.
TEST(BatchNormCuda, WideAndOddShapes) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  // {3, 2, 1000} and {5, 3, 4096}: NCHW planes of more vectors than a block has threads.
  const std::int64_t shapes[][3] = {{3, 2, 300}, {5, 4, 7}, {3, 6, 2}, {2, 4096, 3},
                                    {3, 1100, 2}, {2, 1032, 5}, {64, 8, 1}, {3, 2, 1000},
                                    {5, 3, 4096}};
  std::uint32_t seed = 500;
  for (const auto& sh : shapes)
    for (Layout l : {Layout::kNCHW, Layout::kNHWC})
      for (DType t : {DType::kFloat32, DType::kBFloat16})
        check_gpu_step({sh[0], sh[1], sh[2], l}, t, BnActivation::kAddRelu, seed++);
}

// Pointers one element past 16-byte alignment take the scalar path.
TEST(BatchNormCuda, UnalignedPointers) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  std::uint32_t seed = 600;
  for (Layout l : {Layout::kNCHW, Layout::kNHWC})
    for (DType t : {DType::kFloat32, DType::kBFloat16})
      for (BnActivation act : kActs) check_gpu_step({7, 16, 64, l}, t, act, seed++, 1);
}

// Repeated calls over a garbage workspace give the same bits (nothing persists in the
// workspace; reductions run in a fixed order); the running statistics take both updates.
TEST(BatchNormCuda, RepeatedCallsAreBitIdentical) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  for (Layout l : {Layout::kNCHW, Layout::kNHWC}) {
    const BatchNormDims d{16, 64, 256, l};
    ref::Step s = ref::make_step(d, DType::kFloat32, BnActivation::kRelu, 700);
    GpuStep g(d, DType::kFloat32, BnActivation::kRelu, s);
    g.forward(nullptr);
    g.backward(nullptr);
    ref::Step first = s;
    g.read(first);
    g.ws.fill_bytes(0x00);
    g.forward(nullptr);
    g.ws.fill_bytes(0x7f);
    g.backward(nullptr);
    ref::Step second = s;
    g.read(second);
    EXPECT_TRUE(bit_equal(first.y, second.y));
    EXPECT_TRUE(bit_equal(first.save_mean, second.save_mean));
    EXPECT_TRUE(bit_equal(first.save_invstd, second.save_invstd));
    EXPECT_TRUE(bit_equal(first.dx, second.dx));
    EXPECT_TRUE(bit_equal(first.dgamma, second.dgamma));
    EXPECT_TRUE(bit_equal(first.dbeta, second.dbeta));
    const ref::Stats st = ref::batch_stats(d, s.x);
    const double m = static_cast<double>(d.n * d.hw), keep = 1.0 - kMomentum;
    std::vector<double> rm(d.c), rv(d.c);
    for (std::int64_t ch = 0; ch < d.c; ++ch) {
      rm[ch] = keep * keep * s.rm0[ch] + (keep + 1.0) * kMomentum * st.mean[ch];
      rv[ch] = keep * keep * s.rv0[ch] + (keep + 1.0) * kMomentum * st.var[ch] * m / (m - 1);
    }
    EXPECT_TRUE(ref::close_to(second.rm, rm, 1e-5));
    EXPECT_TRUE(ref::close_to(second.rv, rv, 1e-5));
  }
}

// Forward + backward captured once into a CUDA Graph and replayed twice gives the direct
// calls' bits (no synchronisation, allocation or host work inside the launchers).
TEST(BatchNormCuda, CudaGraphReplayMatchesDirectCalls) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  for (Layout l : {Layout::kNCHW, Layout::kNHWC}) {
    const BatchNormDims d{8, 32, 196, l};
    const DType t = DType::kBFloat16;
    ref::Step s = ref::make_step(d, t, BnActivation::kAddRelu, 800);
    GpuStep direct(d, t, BnActivation::kAddRelu, s), graphed(d, t, BnActivation::kAddRelu, s);
    direct.forward(nullptr);
    direct.backward(nullptr);
    direct.forward(nullptr);
    direct.backward(nullptr);

    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // the legacy-stream work above is done
    cudaStream_t stream;
    ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    graphed.forward(stream);
    graphed.backward(stream);
    ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaStreamDestroy(stream);

    ref::Step a = s, b = s;
    direct.read(a);
    graphed.read(b);
    EXPECT_TRUE(bit_equal(a.y, b.y));
    EXPECT_TRUE(bit_equal(a.dx, b.dx));
    EXPECT_TRUE(bit_equal(a.dresidual, b.dresidual));
    EXPECT_TRUE(bit_equal(a.rm, b.rm));  // two momentum updates each
    EXPECT_TRUE(bit_equal(a.rv, b.rv));
    EXPECT_TRUE(bit_equal(a.dgamma, b.dgamma));
  }
}

// y == x in forward and dx == dy in backward; gamma / beta null (= 1 / 0); dgamma / dbeta null.
TEST(BatchNormCuda, InPlaceAndOptionalPointersGiveTheSameBits) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  for (Layout l : {Layout::kNCHW, Layout::kNHWC}) {
    const BatchNormDims d{4, 24, 100, l};
    const DType t = DType::kFloat32;
    ref::Step s = ref::make_step(d, t, BnActivation::kRelu, 900);
    s.gamma.assign(d.c, 1.f);
    s.beta.assign(d.c, 0.f);
    GpuStep g(d, t, BnActivation::kRelu, s);
    g.forward(nullptr);
    g.backward(nullptr);
    ref::Step plain = s;
    g.read(plain);

    DeviceBuffer inplace(ref::to_storage(s.x, t)), grad(ref::to_storage(s.dy, t));
    kestrel::cuda::batchnorm_forward_training(inplace.get(), nullptr, inplace.get(), t, d,
                                              nullptr, nullptr, kEps, kMomentum, nullptr, nullptr,
                                              g.sm.f32(), g.si.f32(), BnActivation::kRelu,
                                              g.ws.get(), nullptr);
    kestrel::cuda::batchnorm_backward(grad.get(), g.x.get(), inplace.get(), t, d, nullptr,
                                      g.sm.f32(), g.si.f32(), grad.get(), nullptr, nullptr,
                                      nullptr, BnActivation::kRelu, g.ws.get(), nullptr);
    EXPECT_TRUE(bit_equal(ref::from_storage(inplace.download<std::uint8_t>(), t), plain.y));
    EXPECT_TRUE(bit_equal(ref::from_storage(grad.download<std::uint8_t>(), t), plain.dx));
  }
}

namespace {
// Inference forward on the GPU with the running statistics g holds (rm, rv: the same values on
// the host) against the double-precision reference; y is filled with 0xFF first, so an
// unwritten output fails.
void expect_inference_matches(GpuStep& g, const BatchNormDims& d, DType t, BnActivation act, const ref::Step& s,
                              const std::vector<float>& rm, const std::vector<float>& rv, float eps) {
  g.y.fill_bytes(0xff);
  kestrel::cuda::batchnorm_forward_inference(g.x.get(), g.add() ? g.r.get() : nullptr, g.y.get(), t, d,
                                             g.gamma.f32(), g.beta.f32(), g.rm.f32(), g.rv.f32(), eps, act,
                                             nullptr);
  const std::vector<double> mean(rm.begin(), rm.end()), var(rv.begin(), rv.end());
  EXPECT_TRUE(ref::close_to(ref::from_storage(g.y.download<std::uint8_t>(), t),
                            ref::normalise(d, s.x, g.add() ? &s.residual : nullptr, mean, var, s.gamma,
                                           s.beta, eps, act),
                            t == DType::kBFloat16 ? 1e-2 : 1e-5));
}
}  // namespace

TEST(BatchNormCuda, InferenceUsesRunningStatistics) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  std::uint32_t seed = 1100;
  for (Layout l : {Layout::kNCHW, Layout::kNHWC})
    for (DType t : {DType::kFloat32, DType::kBFloat16})
      for (BnActivation act : kActs) {
        const BatchNormDims d{7, 64, 49, l};
        SCOPED_TRACE(ref::describe(d, t, act));
        ref::Step s = ref::make_step(d, t, act, seed++);
        s.rv0 = ref::uniform_data(d.c, 0.25f, 4.f, DType::kFloat32, seed++);
        GpuStep g(d, t, act, s);
        expect_inference_matches(g, d, t, act, s, s.rm0, s.rv0, kEps);
      }
}

// eps of the order of the variances and a momentum other than 0.1: a launcher that drops either
// or passes a fixed value is off by far more than the tolerance.
TEST(BatchNormCuda, EpsAndMomentumAreHonoured) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  const float eps = 0.5f, momentum = 0.7f;
  std::uint32_t seed = 1300;
  for (Layout l : {Layout::kNCHW, Layout::kNHWC})
    for (DType t : {DType::kFloat32, DType::kBFloat16})
      for (BnActivation act : kActs) {
        const BatchNormDims d{7, 16, 49, l};
        ref::Step s = ref::make_step(d, t, act, seed++);
        GpuStep g(d, t, act, s);
        g.eps = eps;
        g.momentum = momentum;
        g.forward(nullptr);
        g.backward(nullptr);
        g.read(s);
        ref::check_step(d, t, act, s, eps, momentum);

        SCOPED_TRACE("inference, " + ref::describe(d, t, act));
        expect_inference_matches(g, d, t, act, s, s.rm, s.rv, eps);
      }
}

// mean 1e4, std 1 per channel: the variance survives (a naive fp32 sum of squares loses it).
TEST(BatchNormCuda, LargeMeanSmallSpread) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  for (Layout l : {Layout::kNCHW, Layout::kNHWC}) {
    const BatchNormDims d{64, 4, 1024, l};
    ref::Step s = ref::make_step(d, DType::kFloat32, BnActivation::kNone, 1200);
    s.x = ref::channel_data(d, DType::kFloat32, 1201, 0.0);
    for (float& v : s.x) v += 1e4f;
    GpuStep g(d, DType::kFloat32, BnActivation::kNone, s);
    g.forward(nullptr);
    const auto si = g.si.download<float>();
    const ref::Stats st = ref::batch_stats(d, s.x);
    for (std::int64_t ch = 0; ch < d.c; ++ch) {
      const double var = 1.0 / (static_cast<double>(si[ch]) * si[ch]) - kEps;
      EXPECT_NEAR(var, st.var[ch], 1e-4 * st.var[ch]) << kestrel::layout_name(l) << " ch " << ch;
    }
  }
}

// The NaN rule of the fused activations on the device (the CPU twin's test:
// BatchNormCpu.FusedReluKeepsNaNFromTheInputAndTheResidual): a NaN in x or in the residual reaches
// y as NaN, not 0 (an fmaxf-based ReLU would drop it), and every other element has the CPU
// twin's bits (the same shared formulas, no contraction on either side).
TEST(BatchNormCuda, FusedReluKeepsNaNFromTheInputAndTheResidual) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (Layout l : {Layout::kNCHW, Layout::kNHWC}) {
    const BatchNormDims d{2, 3, 4, l};
    std::vector<float> x(24), r(24, 0.25f);
    for (int i = 0; i < 24; ++i) x[static_cast<std::size_t>(i)] = 0.1f * static_cast<float>(i % 7) - 0.3f;
    x[5] = nan;
    r[9] = nan;
    const std::vector<float> gamma{1.f, 0.5f, 2.f}, beta{0.f, 0.1f, -0.2f}, rm{0.f, 0.1f, -0.1f},
        rv{1.f, 2.f, 0.5f};
    const DeviceBuffer dx(x), dr(r), dgamma(gamma), dbeta(beta), drm(rm), drv(rv);
    for (BnActivation act : {BnActivation::kRelu, BnActivation::kAddRelu}) {
      const bool add = act == BnActivation::kAddRelu;
      DeviceBuffer dy(24 * sizeof(float));
      dy.fill_bytes(0);
      kestrel::cuda::batchnorm_forward_inference(dx.get(), add ? dr.get() : nullptr, dy.get(), DType::kFloat32, d,
                                                 dgamma.f32(), dbeta.f32(), drm.f32(), drv.f32(), kEps, act,
                                                 nullptr);
      std::vector<float> want(24);
      kestrel::cpu::batchnorm_forward_inference(x.data(), add ? r.data() : nullptr, want.data(), DType::kFloat32,
                                                d, gamma.data(), beta.data(), rm.data(), rv.data(), kEps, act);
      const std::vector<float> got = dy.download<float>();
      for (std::size_t i = 0; i < 24; ++i) {
        const bool nan_expected = i == 5 || (add && i == 9);
        EXPECT_EQ(std::isnan(got[i]), nan_expected) << "element " << i << ", act " << static_cast<int>(act);
        if (!nan_expected) {
          EXPECT_EQ(got[i], want[i]) << "element " << i << ", act " << static_cast<int>(act);
        }
      }
    }
  }
}
