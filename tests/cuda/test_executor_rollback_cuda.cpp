// A run refused part-way on the GPU (check_numerics finding the NaN that the first batch norm
// wrote, after that batch norm updated its running statistics and dropout took its offset)
// puts back the statistics and the offset, and a retry with good data continues the same run bit
// for bit: the CUDA side of RefusedRun.ChangesNothingInTheStoreAndTheRetryContinuesTheSameRun
// (tests/cpu/test_executor_options.cpp), where the snapshot and the restore are device-to-device
// copies in stream order.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "device_copy.h"
#include "error_text.h"
#include "kestrel/core/executor.h"
#include "refusable_net.h"
#include "test_support.h"

using namespace kestrel;
using kestrel::testing::host_floats;

namespace {
// Images from the host (a NaN at element 7 when asked) and fixed labels.
void feed(Executor& ex, Context& ctx, bool with_nan) {
  Tensor host = Tensor::empty_cpu(ex.input("images").shape(), DType::kFloat32);
  Stream cpu;
  host.fill_uniform(5, -1.f, 1.f, cpu);
  if (with_nan) host.data_as<float>()[7] = std::nanf("");
  ex.bind_input("images", host);
  Tensor labels = Tensor::empty_cpu(ex.input("labels").shape(), DType::kInt32);
  for (std::int64_t i = 0; i < labels.numel(); ++i) labels.data_as<std::int32_t>()[i] = static_cast<std::int32_t>((i * 3) % 10);
  ex.bind_input("labels", labels);
  ctx.stream().synchronize();
}
}  // namespace

TEST(ExecutorRollbackCuda, ARunRefusedByCheckNumericsChangesNothingAndTheRetryContinues) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  const Graph g = kestrel::testing::refusable_net(4);
  Context gpu(Device::cuda(0));
  ConvPolicy exact;
  exact.deterministic = true;
  exact.allow_tf32 = false;
  gpu.set_conv_policy(exact);
  ParameterStore a(g, gpu, 3), b(g, gpu, 3);
  CompileOptions co;
  co.check_numerics = true;
  Executor ea(g, a, gpu, co), eb(g, b, gpu, co);
  for (Executor* e : {&ea, &eb}) {
    e->store().set_learning_rate(0.1f);
    feed(*e, gpu, false);
    e->run();
  }
  const std::vector<float> states = host_floats(a.flat_states(), gpu);
  const std::uint64_t offset = a.read_counters().rng_offset;
  feed(ea, gpu, true);
  const std::string refused = kestrel::testing::error_of([&] { ea.run(); });
  EXPECT_NE(refused.find("bn0"), std::string::npos) << refused;
  EXPECT_TRUE(kestrel::testing::bit_equal(host_floats(a.flat_states(), gpu), states));
  EXPECT_EQ(a.read_counters().rng_offset, offset);
  feed(ea, gpu, false);
  ea.run();
  eb.run();
  gpu.stream().synchronize();
  EXPECT_TRUE(kestrel::testing::bit_equal(host_floats(a.flat_params(), gpu), host_floats(b.flat_params(), gpu)));
  EXPECT_TRUE(kestrel::testing::bit_equal(host_floats(a.flat_states(), gpu), host_floats(b.flat_states(), gpu)));
  EXPECT_EQ(a.read_counters().rng_offset, b.read_counters().rng_offset);
}
