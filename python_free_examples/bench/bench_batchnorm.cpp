// Batch-normalisation benchmark section (see kernel_benches.h).
//
// Bytes counted are the passes over the tensor the algorithm must make (the mask of the ReLU
// variants comes from y, so backward reads y in both of its passes):
//   forward:            read x twice, write y                          3 passes (+1 residual read)
//   forward + backward: none 3 + 2 + 3 = 8; relu 3 + 3 + 4 = 10; add_relu 4 + 3 + 5 = 12
//   bn_relu_apply (the normalise pass alone, kernels/batchnorm.h batchnorm_forward_apply): 2
// and the target line compares with 1.25x those passes at the copy bandwidth of this run.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "figures.h"
#include "harness.h"
#include "kernel_benches.h"
#include "kestrel/core/tensor.h"
#include "kestrel/kernels/batchnorm.h"

namespace kestrel::bench {
namespace {

struct BnShape {
  std::int64_t n, c, h, w;
  std::string name() const {
    return std::to_string(n) + "x" + std::to_string(c) + "x" + std::to_string(h) + "x" +
           std::to_string(w);
  }
};

// The tensors of one rotation set.
struct BnBuffers {
  Tensor x, r, y, dy, dx, dr;
};

struct Variant {
  BnActivation act;
  const char* name;
  int fwd_passes, fwd_bwd_passes;
};

void print_target(const Harness& h, const std::string& bench, double us, double bytes,
                  int passes) {
  if (h.copy_gbps() <= 0) return;
  const double target = target_us(bytes, h.copy_gbps(), 1.25);
  std::printf("  %-24s target <= %.1f us (1.25x %d passes at copy bandwidth): %s\n",
              bench.c_str(), target, passes, us <= target ? "PASS" : "FAIL");
}

void run_config(Harness& h, DType t, Layout l, const BnShape& s) {
  Context& ctx = h.context();
  const Stream& stream = ctx.stream();
  const BatchNormDims d{s.n, s.c, s.h * s.w, l};
  const Shape shape{s.n, s.c, s.h, s.w};
  const double tensor = static_cast<double>(shape.numel() * dtype_size(t));
  // At least two sets, so consecutive calls never share buffers, and enough to exceed 3x L2.
  const int sets = std::max(2, h.rotation_sets(static_cast<std::size_t>(6 * tensor)));
  std::vector<BnBuffers> bufs;
  for (int i = 0; i < sets; ++i) {
    BnBuffers b{Tensor::empty(shape, t, ctx, l), Tensor::empty(shape, t, ctx, l),
                Tensor::empty(shape, t, ctx, l), Tensor::empty(shape, t, ctx, l),
                Tensor::empty(shape, t, ctx, l), Tensor::empty(shape, t, ctx, l)};
    b.x.fill_uniform(10 + i, -1.f, 3.f, stream);
    b.r.fill_uniform(20 + i, -1.f, 1.f, stream);
    b.dy.fill_uniform(30 + i, -1.f, 1.f, stream);
    bufs.push_back(std::move(b));
  }
  auto channel = [&](float v) {
    Tensor p = Tensor::empty(Shape{s.c}, DType::kFloat32, ctx);
    p.fill(v, stream);
    return p;
  };
  Tensor gamma = channel(1.f), beta = channel(0.f), rm = channel(0.f), rv = channel(1.f);
  Tensor sm = channel(0.f), si = channel(1.f), dg = channel(0.f), db = channel(0.f);
  Tensor ws = Tensor::empty(Shape{static_cast<std::int64_t>(cuda::batchnorm_workspace_bytes(d))},
                            DType::kUInt8, ctx);
  const std::string config =
      std::string(dtype_name(t)) + " " + layout_name(l) + " " + s.name();

  const Variant variants[] = {{BnActivation::kNone, "bn", 3, 8},
                              {BnActivation::kRelu, "bn_relu", 3, 10},
                              {BnActivation::kAddRelu, "bn_add_relu", 4, 12}};
  for (const Variant& v : variants) {
    const bool add = v.act == BnActivation::kAddRelu;
    auto forward = [&](const BnBuffers& b) {
      cuda::batchnorm_forward_training(b.x.data(), add ? b.r.data() : nullptr, b.y.data(), t, d,
                                       gamma.data_as<float>(), beta.data_as<float>(), 1e-5f, 0.1f,
                                       rm.data_as<float>(), rv.data_as<float>(),
                                       sm.data_as<float>(), si.data_as<float>(), v.act, ws.data(),
                                       stream.handle());
    };
    auto backward = [&](const BnBuffers& b) {
      cuda::batchnorm_backward(b.dy.data(), b.x.data(), b.y.data(), t, d, gamma.data_as<float>(),
                               sm.data_as<float>(), si.data_as<float>(), b.dx.data(),
                               add ? b.dr.data() : nullptr, dg.data_as<float>(),
                               db.data_as<float>(), v.act, ws.data(), stream.handle());
    };
    const std::string fwd = std::string(v.name) + "_fwd", fwd_bwd = std::string(v.name) + "_fwd_bwd";
    const double us_f = h.median_us([&](int i) { forward(bufs[i % sets]); });
    h.report(fwd, config, us_f, v.fwd_passes * tensor);
    print_target(h, fwd, us_f, v.fwd_passes * tensor, v.fwd_passes);
    const double us_fb = h.median_us([&](int i) {
      forward(bufs[i % sets]);
      backward(bufs[i % sets]);
    });
    h.report(fwd_bwd, config, us_fb, v.fwd_bwd_passes * tensor);
    print_target(h, fwd_bwd, us_fb, v.fwd_bwd_passes * tensor, v.fwd_bwd_passes);
  }
  // The normalise pass of the training forward alone (read x, write y: 2 passes), as BN+ReLU
  // recomputation runs it: bn_fwd minus this is the statistics reduction's share.
  const double us_a = h.median_us([&](int i) {
    const BnBuffers& b = bufs[i % sets];
    cuda::batchnorm_forward_apply(b.x.data(), nullptr, b.y.data(), t, d, gamma.data_as<float>(),
                                  beta.data_as<float>(), sm.data_as<float>(), si.data_as<float>(),
                                  BnActivation::kRelu, stream.handle());
  });
  h.report("bn_relu_apply", config, us_a, 2 * tensor);
}

}  // namespace

void bench_batchnorm(Harness& h) {
  const BnShape shapes[] = {{256, 64, 32, 32}, {512, 16, 32, 32}};
  std::vector<DType> dtypes{DType::kFloat32};
  if (!h.options().quick) dtypes.push_back(DType::kBFloat16);
  for (DType t : dtypes)
    for (Layout l : {Layout::kNCHW, Layout::kNHWC})
      for (const BnShape& s : shapes) run_config(h, t, l, s);
}

}  // namespace kestrel::bench
