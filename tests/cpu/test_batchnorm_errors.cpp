// Batch normalisation's argument checks (the CPU twin and the CUDA launchers share them; the
// CUDA launchers raise before touching the device, so these run without a GPU too).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kestrel/core/error.h"
#include "kestrel/kernels/batchnorm.h"
#include "kestrel/kernels/cpu/batchnorm.h"

using kestrel::BatchNormDims;
using kestrel::BnActivation;
using kestrel::DType;
using kestrel::Layout;

namespace {

// 0.25, 0.5, ..., 16: unequal values, so a call that ran would change its outputs.
std::vector<float> ramp(std::size_t n) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = 0.25f * static_cast<float>(i + 1);
  return v;
}

// Buffers big enough for every call below (n*c*hw <= 64).
struct Bufs {
  std::vector<float> x = ramp(64), r = x, y = x, dy = x, dx = x, dr = x;
  std::vector<float> g = std::vector<float>(8, 1.f), b = g, rm = g, rv = g, sm = g, si = g, dg = g,
                     db = g;
  std::vector<float> ws = std::vector<float>(1 << 16);
  // The bytes of everything a call may write: a refused call must leave all of them as they were
  // (bytes, so that a NaN one call wrote still equals itself for the next).
  std::vector<std::uint8_t> outputs() const {
    std::vector<std::uint8_t> bytes;
    for (const std::vector<float>* v : {&y, &dx, &dr, &rm, &rv, &sm, &si, &dg, &db}) {
      const auto* p = reinterpret_cast<const std::uint8_t*>(v->data());
      bytes.insert(bytes.end(), p, p + v->size() * sizeof(float));
    }
    return bytes;
  }
};

void expect_error(const std::function<void()>& fn, const std::string& fragment) {
  try {
    fn();
    ADD_FAILURE() << "no kestrel::Error, expected one mentioning '" << fragment << "'";
  } catch (const kestrel::Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

// Training forward on the CPU twin and on the CUDA launcher (null stream: it must raise before
// launching).
void train_both(Bufs& b, const BatchNormDims& d, DType t, float eps, float momentum,
                BnActivation act, bool residual, bool running, const std::string& fragment) {
  const void* r = residual ? b.r.data() : nullptr;
  float* rm = running ? b.rm.data() : nullptr;
  auto before = b.outputs();
  expect_error([&] {
    kestrel::cpu::batchnorm_forward_training(b.x.data(), r, b.y.data(), t, d, b.g.data(),
                                             b.b.data(), eps, momentum, rm, b.rv.data(),
                                             b.sm.data(), b.si.data(), act, nullptr);
  }, fragment);
  EXPECT_TRUE(b.outputs() == before) << "the refused call ('" << fragment << "') wrote an output";
  before = b.outputs();
  expect_error([&] {
    kestrel::cuda::batchnorm_forward_training(b.x.data(), r, b.y.data(), t, d, b.g.data(),
                                              b.b.data(), eps, momentum, rm, b.rv.data(),
                                              b.sm.data(), b.si.data(), act, b.ws.data(), nullptr);
  }, fragment);
  EXPECT_TRUE(b.outputs() == before) << "the refused launch ('" << fragment << "') wrote an output";
}

}  // namespace

TEST(BatchNormErrors, TrainingForward) {
  Bufs b;
  const BatchNormDims ok{2, 4, 8, Layout::kNCHW};
  const DType f = DType::kFloat32;
  const BnActivation none = BnActivation::kNone, add = BnActivation::kAddRelu;
  train_both(b, {0, 4, 8, Layout::kNCHW}, f, 1e-5f, 0.1f, none, false, true, "positive");
  train_both(b, {2, 0, 8, Layout::kNHWC}, f, 1e-5f, 0.1f, none, false, true, "positive");
  train_both(b, {2, 4, -1, Layout::kNCHW}, f, 1e-5f, 0.1f, none, false, true, "positive");
  train_both(b, {2, 4, 8, static_cast<Layout>(7)}, f, 1e-5f, 0.1f, none, false, true, "layout");
  train_both(b, ok, DType::kFloat16, 1e-5f, 0.1f, none, false, true, "fp32 or bf16");
  train_both(b, ok, DType::kInt32, 1e-5f, 0.1f, none, false, true, "fp32 or bf16");
  train_both(b, ok, f, 0.f, 0.1f, none, false, true, "eps");
  train_both(b, ok, f, -1e-5f, 0.1f, none, false, true, "eps");
  train_both(b, ok, f, NAN, 0.1f, none, false, true, "eps");
  train_both(b, ok, f, 1e-5f, -0.01f, none, false, true, "momentum");
  train_both(b, ok, f, 1e-5f, 1.01f, none, false, true, "momentum");
  train_both(b, ok, f, 1e-5f, NAN, none, false, true, "momentum");
  train_both(b, {1, 4, 1, Layout::kNCHW}, f, 1e-5f, 0.1f, none, false, true,
             "Expected more than 1 value per channel when training");
  train_both(b, ok, f, 1e-5f, 0.1f, add, false, true, "residual is required");
  train_both(b, ok, f, 1e-5f, 0.1f, BnActivation::kRelu, true, true, "residual must be null");
  train_both(b, ok, f, 1e-5f, 0.1f, static_cast<BnActivation>(9), false, true, "activation");
  train_both(b, ok, f, 1e-5f, 0.1f, none, false, false, "both");  // running_var without mean
  expect_error([&] {
    kestrel::cpu::batchnorm_forward_training(b.x.data(), nullptr, b.y.data(), f, ok, nullptr,
                                             nullptr, 1e-5f, 0.1f, nullptr, nullptr, nullptr,
                                             b.si.data(), none, nullptr);
  }, "save_mean");
  expect_error([&] {
    kestrel::cuda::batchnorm_forward_training(b.x.data(), nullptr, b.y.data(), f, ok, nullptr,
                                              nullptr, 1e-5f, 0.1f, nullptr, nullptr, b.sm.data(),
                                              b.si.data(), none, nullptr, nullptr);
  }, "workspace");
  expect_error([&] {
    kestrel::cuda::batchnorm_forward_training(
        b.x.data(), nullptr, b.y.data(), f, ok, nullptr, nullptr, 1e-5f, 0.1f, nullptr, nullptr,
        b.sm.data(), b.si.data(), none, reinterpret_cast<char*>(b.ws.data()) + 4, nullptr);
  }, "aligned");
}

TEST(BatchNormErrors, InferenceAndBackward) {
  Bufs b;
  const BatchNormDims ok{2, 4, 8, Layout::kNHWC};
  const DType f = DType::kFloat32;
  for (bool gpu : {false, true}) {
    const auto before = b.outputs();
    auto infer = [&](const BatchNormDims& d, float eps, const float* rm, BnActivation act,
                     const void* r) {
      if (gpu) {
        kestrel::cuda::batchnorm_forward_inference(b.x.data(), r, b.y.data(), f, d, nullptr,
                                                   nullptr, rm, b.rv.data(), eps, act, nullptr);
      } else {
        kestrel::cpu::batchnorm_forward_inference(b.x.data(), r, b.y.data(), f, d, nullptr,
                                                  nullptr, rm, b.rv.data(), eps, act);
      }
    };
    expect_error([&] { infer({2, 4, 0, Layout::kNHWC}, 1e-5f, b.rm.data(), BnActivation::kNone, nullptr); },
                 "positive");
    expect_error([&] { infer(ok, 0.f, b.rm.data(), BnActivation::kNone, nullptr); }, "eps");
    expect_error([&] { infer(ok, 1e-5f, nullptr, BnActivation::kNone, nullptr); }, "running");
    expect_error([&] { infer(ok, 1e-5f, b.rm.data(), BnActivation::kAddRelu, nullptr); },
                 "residual");
    EXPECT_TRUE(b.outputs() == before) << "a refused inference wrote an output (gpu " << gpu << ")";
    // Inference with a single value per channel is fine.
    if (!gpu) infer({1, 4, 1, Layout::kNCHW}, 1e-5f, b.rm.data(), BnActivation::kNone, nullptr);

    const auto before_back = b.outputs();
    auto back = [&](const BatchNormDims& d, const void* y, void* dr, BnActivation act,
                    const float* sm) {
      if (gpu) {
        kestrel::cuda::batchnorm_backward(b.dy.data(), b.x.data(), y, f, d, nullptr, sm,
                                          b.si.data(), b.dx.data(), dr, nullptr, nullptr, act,
                                          b.ws.data(), nullptr);
      } else {
        kestrel::cpu::batchnorm_backward(b.dy.data(), b.x.data(), y, f, d, nullptr, sm,
                                         b.si.data(), b.dx.data(), dr, nullptr, nullptr, act,
                                         nullptr);
      }
    };
    expect_error([&] { back({-2, 4, 8, Layout::kNCHW}, nullptr, nullptr, BnActivation::kNone, b.sm.data()); },
                 "positive");
    expect_error([&] { back(ok, nullptr, nullptr, BnActivation::kRelu, b.sm.data()); },
                 "y (the forward output) is required");
    expect_error([&] { back(ok, b.y.data(), nullptr, BnActivation::kAddRelu, b.sm.data()); },
                 "dresidual is required");
    expect_error([&] { back(ok, b.y.data(), b.dr.data(), BnActivation::kRelu, b.sm.data()); },
                 "dresidual must be null");
    expect_error([&] { back(ok, nullptr, nullptr, BnActivation::kNone, nullptr); }, "save_mean");
    EXPECT_TRUE(b.outputs() == before_back) << "a refused backward wrote an output (gpu " << gpu << ")";
  }
}
