// custom_training_loop: Kestrel's library API without the Trainer, as a program that brings its
// own network, data and loop would use it. Read it top to bottom; docs/LIBRARY.md walks through
// the same steps.
//
//  1. A small residual CNN from the layer builders (layers/nn.h) in the dtype and layout asked
//     for: conv, batch norm, ReLU, a residual add, max pooling, dropout, a dense layer.
//  2. A training executor (SGD with Nesterov momentum, no weight decay on BN and biases,
//     gradients clipped to a global L2 norm) and an inference executor that share one
//     ParameterStore; each graph has its own batch size.
//  3. Batches fed from host memory: normalised floats -> Tensor::from_vector (stored in the
//     graph's dtype and layout) -> Executor::bind_input; a cosine learning rate set each step;
//     on a GPU the step is captured once as a CUDA Graph and replayed.
//  4. Test accuracy from the inference executor's logits.
//  5. A safetensors checkpoint, loaded into a fresh store (another seed) behind a fresh
//     inference executor, which must give the same logits bit for bit.
//  6. How a bad input is reported: a kestrel::Error, and the executor still works.
//
// Exit status: 0 done (the reloaded network agreed), 1 runtime error or disagreement, 2 usage.
#include <CLI/CLI.hpp>
#include <kestrel/kestrel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "cli_checks.h"  // number checks whose messages name the rule
#include "stdout_check.h"

using namespace kestrel;

namespace {

struct Options {
  std::string device = "auto";
  std::string data = "synthetic";
  std::string dtype = "fp32";
  std::string layout = "nchw";
  std::string checkpoint = "custom_training_loop.safetensors";
  std::int64_t steps = 300;
  std::int64_t batch = 32;
  float lr = 0.05f;
  std::uint64_t seed = 1;
};

// The network: stem conv -> residual block -> max pool -> conv -> residual block -> global
// average pool -> dropout -> dense 10. Parameters are named by the scope stack
// (Graph::Scope), as PyTorch names a module's: "block1.conv1.weight", "block1.bn2.running_var",
// "fc.bias"; that is what the checkpoint stores.
Value conv_bn_relu(Graph& g, const std::string& name, Value x, std::int64_t channels) {
  Graph::Scope scope(g, name);
  return nn::relu(g, nn::batch_norm(g, "bn", nn::conv2d(g, "conv", x, channels, 3, {1, 1})));  // BN + ReLU: fused
}

Value residual_block(Graph& g, const std::string& name, Value x, std::int64_t channels) {
  Graph::Scope scope(g, name);
  const nn::Conv2dOptions same{1, 1};  // stride 1, padding 1
  Value h = nn::relu(g, nn::batch_norm(g, "bn1", nn::conv2d(g, "conv1", x, channels, 3, same)));
  nn::BatchNormOptions last;
  last.zero_init_gamma = true;  // the block starts as the identity
  h = nn::batch_norm(g, "bn2", nn::conv2d(g, "conv2", h, channels, 3, same), last);
  return nn::relu(g, nn::add(g, h, x));  // BN + Add + ReLU: one fused kernel
}

Graph build_net(const Options& o, std::int64_t batch) {
  GraphOptions go;
  go.batch = batch;
  go.dtype = parse_dtype(o.dtype);
  go.layout = parse_layout(o.layout);
  Graph g(go);
  const Value images = nn::image_input(g, "images", 3, 32, 32);
  const Value labels = nn::label_input(g, "labels");
  Value h = conv_bn_relu(g, "stem", images, 8);
  h = residual_block(g, "block1", h, 8);
  h = nn::max_pool2x2(g, h);  // 16 x 16
  h = conv_bn_relu(g, "widen", h, 16);
  h = residual_block(g, "block2", h, 16);
  h = nn::dropout(g, "dropout", nn::global_avg_pool(g, h), 0.2f);
  const Value logits = nn::linear(g, "fc", h, kCifarClasses);
  g.mark_output(logits, "logits");
  nn::softmax_cross_entropy(g, logits, labels);
  return g;
}

// Images `idx[0..count)` of `split` as floats normalised with CIFAR-10's channel statistics, in
// logical NCHW order, then stored in the graph's dtype and layout (rows past `count`: zeros).
Tensor image_batch(const CifarSplit& split, const std::int32_t* idx, std::int64_t count,
                   const Graph& g) {
  const std::int64_t batch = g.options().batch;
  std::vector<float> v(static_cast<std::size_t>(batch * kCifarImageBytes), 0.f);
  for (std::int64_t i = 0; i < count; ++i)
    for (std::int64_t k = 0; k < kCifarImageBytes; ++k) {
      const int ch = static_cast<int>(k / 1024);
      const float x = split.images[static_cast<std::size_t>(idx[i] * kCifarImageBytes + k)] / 255.f;
      v[static_cast<std::size_t>(i * kCifarImageBytes + k)] = (x - kCifarMean[ch]) / kCifarStd[ch];
    }
  return Tensor::from_vector(v, Shape{batch, 3, 32, 32}, g.options().dtype, g.options().layout);
}

Tensor label_batch(const CifarSplit& split, const std::int32_t* idx, std::int64_t count,
                   std::int64_t batch) {
  Tensor t = Tensor::empty_cpu(Shape{batch}, DType::kInt32);
  std::int32_t* p = t.data_as<std::int32_t>();
  for (std::int64_t i = 0; i < batch; ++i)
    p[i] = i < count ? split.labels[static_cast<std::size_t>(idx[i])] : 0;
  return t;
}

// The predicted class of one row of a batch's logits (copied to the host with
// to_float_vector(stream), which has finished when it returns).
std::int64_t argmax_row(const std::vector<float>& logits, std::int64_t row) {
  const auto* r = logits.data() + row * kCifarClasses;
  return std::max_element(r, r + kCifarClasses) - r;
}

// Test accuracy with the inference executor `ev` (its graph's batch at a time).
double test_accuracy(Executor& ev, const CifarSplit& test, Context& ctx) {
  const std::int64_t batch = ev.compiled_graph().options().batch;
  std::vector<std::int32_t> idx(static_cast<std::size_t>(test.count));
  for (std::int64_t i = 0; i < test.count; ++i) idx[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i);
  std::int64_t correct = 0;
  for (std::int64_t start = 0; start < test.count; start += batch) {
    const std::int64_t count = std::min(batch, test.count - start);
    ev.bind_input("images", image_batch(test, idx.data() + start, count, ev.compiled_graph()));
    ev.bind_input("labels", label_batch(test, idx.data() + start, count, batch));
    ev.run();
    const std::vector<float> logits = ev.output("logits").to_float_vector(ctx.stream());
    for (std::int64_t i = 0; i < count; ++i)
      correct += argmax_row(logits, i) == test.labels[static_cast<std::size_t>(start + i)];
  }
  return static_cast<double>(correct) / static_cast<double>(test.count);
}

int run(const Options& o, Device device) {
  // Data: CIFAR-10 from a folder, or the synthetic stand-in (no download needed).
  const CifarDataset data = o.data == "synthetic" ? synthetic_cifar10(4096, 1000, o.seed) : load_cifar10(o.data);
  Context ctx(device);
  std::printf("custom_training_loop: %s; data: %s (%lld train, %lld test images)\n",
              ctx.description().c_str(), data.source.c_str(), static_cast<long long>(data.train.count),
              static_cast<long long>(data.test.count));

  // Two graphs of the same network, one per batch size; one store holds their parameters.
  const Graph train_graph = build_net(o, o.batch);
  const Graph eval_graph = build_net(o, 250);
  ParameterStore store(train_graph, ctx, o.seed);
  store.exempt_1d_from_decay();  // BN weights and biases: no weight decay

  CompileOptions co;  // training is the default
  co.sgd = SgdConfig{0.9f, 0.f, 5e-4f, /*nesterov=*/true};
  co.max_grad_norm = 5.f;  // as torch.nn.utils.clip_grad_norm_(params, 5) before each step
  Executor train(train_graph, store, ctx, co);
  CompileOptions eo;
  eo.training = false;  // batch norm uses running statistics; dropout is the identity
  Executor eval(eval_graph, store, ctx, eo);
  std::printf("custom_training_loop: %d forward + %d backward nodes, %d fusions; activations %.1f MB "
              "(%.1f MB without reuse)\n",
              train.stats().forward_nodes, train.stats().backward_nodes, train.stats().fusions,
              train.stats().arena_bytes / 1e6, train.stats().activation_bytes / 1e6);

  LrSchedule schedule;
  schedule.kind = LrSchedule::Kind::kCosine;
  schedule.base = o.lr;
  schedule.total_steps = o.steps;
  schedule.warmup_steps = std::min<std::int64_t>(20, o.steps / 10);
  if (o.batch > data.train.count)
    throw Error("--batch " + std::to_string(o.batch) + " is larger than the training set (" +
                std::to_string(data.train.count) + " images)");
  const std::int64_t per_epoch = data.train.count / o.batch;  // the last partial batch is dropped
  std::vector<std::int32_t> order;
  for (std::int64_t step = 0; step < o.steps; ++step) {
    if (step % per_epoch == 0) order = epoch_permutation(data.train.count, o.seed, step / per_epoch);
    const std::int32_t* idx = order.data() + (step % per_epoch) * o.batch;
    train.bind_input("images", image_batch(data.train, idx, o.batch, train_graph));
    train.bind_input("labels", label_batch(data.train, idx, o.batch, o.batch));
    store.set_learning_rate(learning_rate_at(schedule, step));
    train.run();  // forward, backward, clipped SGD update
    if (step == 0 && device.is_cuda()) train.capture_cuda_graph();  // later runs replay it
    if ((step + 1) % 50 == 0 || step + 1 == o.steps) {
      const float loss = train.output("loss").to_float_vector(ctx.stream())[0];
      std::printf("step %lld/%lld: loss %.4f, gradient norm %.3f, lr %.4f\n", static_cast<long long>(step + 1),
                  static_cast<long long>(o.steps), loss, train.grad_norm(), learning_rate_at(schedule, step));
      if (!std::isfinite(loss)) throw Error("the loss became " + std::to_string(loss) + " at step " + std::to_string(step + 1));
    }
  }
  const double accuracy = test_accuracy(eval, data.test, ctx);
  std::printf("custom_training_loop: test accuracy %.2f%%\n", 100.0 * accuracy);

  // Checkpoint: written to a temporary file and renamed; PyTorch reads it as a state_dict.
  save_checkpoint(store, o.checkpoint, {{"example", "custom_training_loop"}});
  ParameterStore fresh(eval_graph, ctx, o.seed + 1);  // other initial weights
  CheckpointLoadOptions weights_only;
  weights_only.optimizer = false;  // an inference store has no optimizer state
  weights_only.counters = false;   // nor the training run's seed
  load_checkpoint(read_safetensors(o.checkpoint), fresh, weights_only, o.checkpoint);
  Executor reloaded(eval_graph, fresh, ctx, eo);
  for (Executor* ex : {&eval, &reloaded}) {
    std::vector<std::int32_t> first(250);
    for (int i = 0; i < 250; ++i) first[static_cast<std::size_t>(i)] = i % static_cast<int>(data.test.count);
    ex->bind_input("images", image_batch(data.test, first.data(), 250, eval_graph));
    ex->bind_input("labels", label_batch(data.test, first.data(), 250, 250));
    ex->run();
  }
  const std::vector<float> a = eval.output("logits").to_float_vector(ctx.stream());
  const std::vector<float> b = reloaded.output("logits").to_float_vector(ctx.stream());
  const bool same = a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  std::printf("custom_training_loop: wrote %s; reloaded into a fresh store: %s logits\n", o.checkpoint.c_str(),
              same ? "the same" : "DIFFERENT");

  // Bad input: a kestrel::Error that names the problem, and nothing is lost.
  try {
    train.bind_input("images", Tensor::from_vector(std::vector<float>(12, 0.f), Shape{12}));
    std::printf("custom_training_loop: a wrongly shaped input was accepted\n");
    return 1;
  } catch (const Error& e) {
    std::printf("custom_training_loop: a wrongly shaped input is reported: %s\n", e.what());
  }
  return same ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  kestrel::programs::fail_on_unwritable_stdout("custom_training_loop");
  Options o;
  CLI::App app{"custom_training_loop: a network, data feed and training loop of your own on Kestrel's library API"};
  app.add_option("--device", o.device, "auto (cuda when there is one), cpu, cuda or cuda:N");
  app.add_option("--data", o.data, "CIFAR-10 folder (cifar-10-batches-bin), or synthetic (default)");
  app.add_option("--dtype", o.dtype, "fp32 or bf16")->check(CLI::IsMember({"fp32", "bf16"}));
  app.add_option("--layout", o.layout, "nchw or nhwc")->check(CLI::IsMember({"nchw", "nhwc"}));
  app.add_option("--steps", o.steps, "training steps (default 300)")->check(kestrel::programs::above_zero());
  app.add_option("--batch", o.batch, "training batch (default 32)")->check(CLI::Range(1, 4096));
  app.add_option("--lr", o.lr, "peak learning rate of the cosine schedule (default 0.05)");  // checked below
  app.add_option("--seed", o.seed, "seed of initialisation, batch order and dropout masks")->check(kestrel::programs::seed_number());
  app.add_option("--checkpoint", o.checkpoint, "where to write the checkpoint (default ./custom_training_loop.safetensors)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help: 0; a usage error: 2
  }
  Device device;
  try {
    device = o.device == "auto" ? (cuda_device_count() > 0 ? Device::cuda(0) : Device::cpu()) : parse_device(o.device);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "custom_training_loop: --device: %s\n\n%s", e.what(), app.help().c_str());
    return 2;
  }
  // CLI11's range check compares doubles (NaN passes it) and the option is a float (1e39 becomes
  // inf, 1e-50 becomes 0): check the value as it will be used.
  if (!(std::isfinite(o.lr) && o.lr > 0.f && o.lr <= 10.f)) {
    std::fprintf(stderr, "custom_training_loop: --lr must be a number in (0, 10], got %g\n\n%s", static_cast<double>(o.lr),
                 app.help().c_str());
    return 2;
  }
  if (o.checkpoint.empty()) {  // this program always writes one: an empty name would fail after training
    std::fprintf(stderr, "custom_training_loop: --checkpoint needs a file name\n\n%s", app.help().c_str());
    return 2;
  }
  if (o.device == "auto" && device.is_cpu())
    std::printf("custom_training_loop: no CUDA device (%s): running on the CPU backend\n",
                cuda_unavailable_reason().c_str());
  try {
    check_output_file(o.checkpoint, "--checkpoint");  // before training, not after it
    return run(o, device);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "custom_training_loop: %s\n", e.what());
    return 1;
  }
}
