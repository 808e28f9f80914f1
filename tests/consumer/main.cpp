// Links against the installed libkestrel.so through find_package(Kestrel) and uses the public
// API as a user would: builds a small network, trains it for a few steps on the CPU backend,
// and reports an error the library raised.
#include <kestrel/kestrel.h>

#include <cstdio>

int main() {
  using namespace kestrel;
  GraphOptions opts;
  opts.batch = 8;
  Graph g(opts);
  const Value x = nn::image_input(g, "images", 3, 8, 8);
  const Value labels = nn::label_input(g, "labels");
  Value h = nn::relu(g, nn::batch_norm(g, "bn1", nn::conv2d(g, "conv1", x, 8, 3, {1, 1, 1, false})));
  nn::softmax_cross_entropy(g, nn::linear(g, "fc", nn::global_avg_pool(g, h), 4), labels);

  Context ctx(Device::cpu());
  ParameterStore store(g, ctx, /*seed=*/42);
  Executor ex(g, store, ctx);
  store.set_learning_rate(0.1f);
  ex.input("images").fill_uniform(7, -1.f, 1.f, ctx.stream());
  auto* lab = ex.input("labels").data_as<std::int32_t>();
  for (int i = 0; i < 8; ++i) lab[i] = i % 4;
  float first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    ex.run();
    last = ex.output("loss").to_float_vector()[0];
    if (step == 0) first = last;
  }
  std::printf("consumer: Kestrel %s, loss %.4f -> %.4f over 20 steps (arena %zu bytes)\n",
              KESTREL_VERSION_STRING, first, last, ex.stats().arena_bytes);
  try {
    (void)parse_dtype("float128");
    std::printf("consumer: expected an error\n");
    return 1;
  } catch (const Error& e) {
    std::printf("consumer: error reported as expected: %s\n", e.what());
  }
  std::printf("consumer: CUDA devices visible: %d\n", cuda_device_count());
  return last < first ? 0 : 1;
}
