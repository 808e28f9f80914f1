// bench_resnet: training throughput and peak device memory of CIFAR ResNets (v1) on the GPU.
//
// For ResNet-20, -56 and -110 at batch 128 and 512, fp32 (NCHW and NHWC) and bf16 (NCHW and
// NHWC), each step eager and replayed as one CUDA Graph: images/s from the median of the timed
// training steps (forward, backward, SGD Nesterov update; CUDA events) after warm-up, and the
// allocator's peak bytes over the timed steps (parameters, gradients, optimizer state,
// activations, workspace: what torch.cuda.max_memory_allocated counts; "peak_with_setup_mb" also
// counts the executor's compile, with its convolution autotuning, and the first step). Each
// model/batch/dtype/layout gets a fresh Context (peaks and cuDNN choices do not leak between
// rows), timed eagerly and then as a CUDA Graph. A fixed random batch: no data pipeline, as in
// tools/pytorch_reference.py's "resnet" section, whose bench/config strings are the same:
// bench "resnet_train", config "resnet20 b512 bf16 nhwc graph" (with --recompute-bn off:
// "resnet20 b512 bf16 nhwc keep graph", BN+ReLU outputs kept for backward, not rebuilt).
// Convolutions: fastest engines (autotune, non-deterministic allowed), exact fp32 (no TF32).
// Exit status: 0 done, 1 no CUDA device or a failure, 2 usage error.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "harness.h"
#include "kestrel/core/context.h"
#include "kestrel/core/device.h"
#include "kestrel/core/error.h"
#include "kestrel/core/executor.h"
#include "kestrel/kernels/conv.h"
#include "kestrel/layers/trainer.h"
#include "stdout_check.h"

namespace {
using namespace kestrel;

struct Row {
  std::string model;
  std::int64_t batch;
  DType dtype;
  Layout layout;
  bool recompute;
  // "resnet20 b512 bf16 nhwc" (+ " keep" with recomputation off); config() adds the CUDA Graph part.
  std::string base() const {
    return model + " b" + std::to_string(batch) + " " + dtype_name(dtype) + " " + layout_name(layout) +
           (recompute ? "" : " keep");
  }
  std::string config(bool graph) const { return base() + (graph ? " graph" : " nograph"); }
};

std::vector<Row> rows(bool quick, bool recompute) {
  std::vector<Row> r;
  const std::vector<std::string> models = quick ? std::vector<std::string>{"resnet20"}
                                                : std::vector<std::string>{"resnet20", "resnet56", "resnet110"};
  const std::vector<std::int64_t> batches = quick ? std::vector<std::int64_t>{512} : std::vector<std::int64_t>{128, 512};
  for (const std::string& m : models)
    for (std::int64_t b : batches)
      for (DType t : {DType::kFloat32, DType::kBFloat16})
        for (Layout l : {Layout::kNCHW, Layout::kNHWC}) {
          // Quick mode: the exact path and the fast path only.
          if (quick && ((t == DType::kFloat32) != (l == Layout::kNCHW))) continue;
          r.push_back({m, b, t, l, recompute});
        }
  return r;
}

// The training graph and compile options of one row (v1 blocks; SGD, Nesterov momentum 0.9,
// weight decay 5e-4).
Graph row_graph(const Row& row) {
  TrainerConfig cfg;
  cfg.net = resnet_config(row.model, 1);
  cfg.dtype = row.dtype;
  cfg.layout = row.layout;
  return build_training_graph(cfg, row.batch);
}

CompileOptions row_options(const Row& row) {
  CompileOptions co;
  co.optimizer = OptimizerKind::kSgd;
  co.sgd.momentum = 0.9f;
  co.sgd.nesterov = true;
  co.sgd.weight_decay = 5e-4f;
  co.recompute_bn_relu = row.recompute;
  return co;
}

// Median milliseconds of `runs` training steps after `warmup` more.
double median_step_ms(Executor& ex, Context& ctx, int warmup, int runs) {
  return 1e-3 * bench::median_event_us(ctx, warmup, runs, [&](int) { ex.run(); });
}

struct Measured {
  double eager_ms, graph_ms;
  double peak_mb;        // over the timed steps: what a training step needs
  double setup_peak_mb;  // from the context's creation on (autotuning's trial workspaces too)
  PlanStats plan;  // the executor's memory plan: where the peak comes from
  std::size_t untuned = 0;    // convolution plans autotuning could not time (cuDNN's first choice)
  std::string last_untuned;   // which, and why
};

// One model, batch, dtype and layout in a fresh context: eager steps first, then the same
// executor captured as a CUDA Graph (capturing allocates nothing from the allocator, so one peak
// serves both rows).
Measured measure(const Row& row, const bench::Options& o) {
  Context ctx(Device::cuda(0));
  ConvPolicy policy;
  policy.autotune = true;
  if (o.workspace_mb > 0) policy.workspace_limit = static_cast<std::size_t>(o.workspace_mb) << 20;
  ctx.set_conv_policy(policy);
  const Graph g = row_graph(row);
  ParameterStore store(g, ctx, 1);
  const CompileOptions co = row_options(row);
  Executor ex(g, store, ctx, co);
  store.set_learning_rate(0.01f);  // small: the weights stay finite over the timed steps
  ex.input("images").fill_uniform(7, -2.f, 2.f, ctx.stream());
  Tensor labels = Tensor::empty_cpu(Shape{row.batch}, DType::kInt32);
  for (std::int64_t i = 0; i < row.batch; ++i) labels.data_as<std::int32_t>()[i] = static_cast<std::int32_t>((i * 7) % 10);
  ex.input("labels").copy_from(labels, ctx.stream());
  ex.run();  // eager: the first step initialises cuBLAS
  // The step's peak is measured from here, as tools/pytorch_reference.py measures PyTorch's after
  // its first step (whose cuDNN algorithm search only some of its rows pay for); the peak with the
  // setup is reported beside it: it includes the autotuning of every convolution plan, whose
  // trial tensors and workspace come from the context's allocator while the executor compiles.
  const double setup_peak_mb = static_cast<double>(ctx.allocator()->stats().peak_bytes) / 1e6;
  ctx.allocator()->reset_peak();
  const int warmup = o.quick ? 3 : o.warmup;
  const int runs = std::max(o.quick ? 10 : o.runs, 5);
  Measured m{};
  m.eager_ms = median_step_ms(ex, ctx, warmup, runs);
  ex.capture_cuda_graph();
  m.graph_ms = median_step_ms(ex, ctx, warmup, runs);
  Tensor loss = Tensor::empty_cpu(Shape{1}, DType::kFloat32);
  loss.copy_from(ex.output("loss"), ctx.stream());
  KESTREL_CHECK(std::isfinite(loss.data_as<float>()[0]), "the loss is not finite after the timed steps");
  m.peak_mb = static_cast<double>(ctx.allocator()->stats().peak_bytes) / 1e6;
  m.setup_peak_mb = std::max(setup_peak_mb, m.peak_mb);
  m.plan = ex.stats();
  m.untuned = ctx.conv_plans().untuned();
  m.last_untuned = ctx.conv_plans().last_untuned();
  return m;
}

void report(bench::Harness& h, const std::string& config, std::int64_t batch, double step_ms,
            const Measured& m) {
  const double ips = 1e3 * static_cast<double>(batch) / step_ms;
  std::printf("%-44s %10.3f %12.0f %12.1f %10.1f %8.1f%s\n", config.c_str(), step_ms, ips, m.peak_mb,
              static_cast<double>(m.plan.arena_bytes) / 1e6, static_cast<double>(m.plan.workspace_bytes) / 1e6,
              m.plan.workspace_in_arena ? " (in arena)" : "");
  if (m.untuned > 0)  // timings with untuned plans would otherwise read as slow engines
    std::printf("  note: autotuning could not time %zu convolution plan(s), which run cuDNN's first choice; "
                "the latest: %s\n", m.untuned, m.last_untuned.c_str());
  h.report_json({{"bench", "resnet_train"}, {"config", config}, {"images_per_s", ips},
                 {"peak_mem_mb", m.peak_mb}, {"peak_with_setup_mb", m.setup_peak_mb}, {"step_ms", step_ms},
                 {"arena_mb", static_cast<double>(m.plan.arena_bytes) / 1e6},
                 {"max_workspace_mb", static_cast<double>(m.plan.workspace_bytes) / 1e6},
                 {"workspace_in_arena", m.plan.workspace_in_arena}, {"untuned_conv_plans", m.untuned}});
}

}  // namespace

// --plan-only: the memory plan of each row, compiled on the CPU backend (the plan does not depend
// on the device; only the cuDNN workspaces, which CPU ops do not have, are missing).
int print_plans(const bench::Options& o) {
  std::printf("bench_resnet --plan-only: memory plans on the CPU (no cuDNN workspaces)\n");
  std::printf("%-38s %12s %12s %16s %10s\n", "config", "arena MB", "live peak MB", "values total MB",
              "recomputed");
  for (const Row& row : rows(o.quick, o.recompute_bn)) {
    Context ctx(Device::cpu());
    const Graph g = row_graph(row);
    ParameterStore store(g, ctx, 1);
    const PlanStats s = Executor(g, store, ctx, row_options(row)).stats();
    std::printf("%-38s %12.1f %12.1f %16.1f %10d\n", row.base().c_str(), static_cast<double>(s.arena_bytes) / 1e6,
                static_cast<double>(s.live_peak_bytes) / 1e6, static_cast<double>(s.activation_bytes) / 1e6,
                s.recomputed);
    std::fflush(stdout);
  }
  return 0;
}

int main(int argc, char** argv) {
  kestrel::programs::fail_on_unwritable_stdout("bench_resnet");
  const bench::Options opts = bench::parse_options(
      argc, argv, "bench_resnet", "training throughput and peak memory of CIFAR ResNets (v1)");
  if (opts.plan_only) {
    try {
      return print_plans(opts);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_resnet: %s\n", e.what());
      return 1;
    }
  }
  if (cuda_device_count() == 0) {
    std::fprintf(stderr, "bench_resnet: no CUDA device: %s\n", cuda_unavailable_reason().c_str());
    return 1;
  }
  int failures = 0;
  try {
    Context main_ctx(Device::cuda(0));
    bench::Harness h(main_ctx, opts);
    std::printf("bench_resnet: %s%s\n", main_ctx.description().c_str(), opts.quick ? " (quick)" : "");
    std::printf("%-44s %10s %12s %12s %10s %8s\n", "config", "step ms", "images/s", "peak MB", "arena MB",
                "max ws MB");
    for (const Row& row : rows(opts.quick, opts.recompute_bn)) {
      try {
        const Measured m = measure(row, opts);
        report(h, row.config(false), row.batch, m.eager_ms, m);
        report(h, row.config(true), row.batch, m.graph_ms, m);
      } catch (const std::exception& e) {
        std::printf("%-44s failed: %s\n", row.config(false).c_str(), e.what());
        ++failures;
      }
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_resnet: %s\n", e.what());
    return 1;
  }
  return failures == 0 ? 0 : 1;
}
