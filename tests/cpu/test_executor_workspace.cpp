// Node workspaces planned into the executor's arena, alive during their own node only
// (Executor::plan_arena), on the CPU backend with a test op that asks for scratch memory.
//
// ScratchDouble computes y = 2 x through its workspace: it first poisons every workspace byte
// (NaN floats), then stages x there and writes y from the staged copy. A workspace that
// overlapped its node's input would destroy x before it is read; one that overlapped the output
// or any other live value would leave NaN or a wrong factor behind. Outputs are checked against
// the closed form 2^k x on random inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include "dtype_buffer.h"
#include "grad_check.h"
#include "test_support.h"
#include "kestrel/core/executor.h"
#include "kestrel/core/ops/elementwise_ops.h"

using namespace kestrel;
using kestrel::testing::inference_options;
using kestrel::testing::random_floats;

namespace {

class ScratchDouble final : public Op {
 public:
  explicit ScratchDouble(std::size_t workspace) : workspace_(workspace) {}
  std::string type() const override { return "ScratchDouble"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    expect_inputs(type(), node, in, 1);
    return {in[0]->type};
  }
  std::size_t workspace_bytes(const PlanQuery& /*q*/) const override { return workspace_; }
  void run(const OpRun& r) const override {
    KESTREL_CHECK(r.on_cpu(), "ScratchDouble runs on the CPU only");
    const std::size_t n = static_cast<std::size_t>(r.in[0].numel());
    KESTREL_CHECK(r.workspace_bytes >= workspace_ && r.workspace != nullptr, "ScratchDouble got ",
                  r.workspace_bytes, " workspace bytes, asked for ", workspace_);
    KESTREL_CHECK(workspace_ >= n * sizeof(float), "ScratchDouble's workspace cannot stage its input");
    auto* ws = static_cast<float*>(r.workspace);
    const std::size_t poison = r.workspace_bytes / sizeof(float);
    for (std::size_t i = 0; i < poison; ++i) ws[i] = std::numeric_limits<float>::quiet_NaN();
    const float* x = r.in[0].data_as<float>();
    std::memcpy(ws, x, n * sizeof(float));
    float* y = r.out[0].data_as<float>();
    for (std::size_t i = 0; i < n; ++i) y[i] = 2.f * ws[i];
  }

 private:
  std::size_t workspace_;
};

std::vector<float> scaled(const std::vector<float>& v, float s) {
  std::vector<float> r(v);
  for (float& x : r) x *= s;
  return r;
}

constexpr std::int64_t kBig = 1 << 18;    // 1 MiB of fp32 per value
constexpr std::int64_t kSmall = 16;
constexpr std::size_t kLargeWorkspace = std::size_t(2) << 20;

// A node with a large workspace on a small tensor runs first; the large values of a later chain
// are alive only after it. The separate-buffer layout would need the chain's arena plus the
// largest workspace; in the arena the workspace reuses the chain's memory.
Graph small_then_big() {
  Graph g;
  const Value xs = g.input("x_small", {Shape{1, kSmall}});
  const Value xb = g.input("x_big", {Shape{1, kBig}});
  const Value s = g.add_node1(std::make_shared<ScratchDouble>(kLargeWorkspace), "s", {xs});
  g.mark_output(s, "s");
  Value b = xb;
  for (int i = 0; i < 3; ++i)
    b = g.add_node1(std::make_shared<ScratchDouble>(kBig * sizeof(float)), "b" + std::to_string(i), {b});
  g.mark_output(b, "b");
  return g;
}

}  // namespace

TEST(ExecutorWorkspace, PlannedInTheArenaPerNodeAndNeverOverlapsLiveValues) {
  const Graph g = small_then_big();
  Context ctx;
  ParameterStore store(g, ctx, 1);
  Executor ex(g, store, ctx, inference_options());
  const PlanStats& st = ex.stats();
  EXPECT_TRUE(st.workspace_in_arena);
  EXPECT_EQ(st.workspace_bytes, kLargeWorkspace);
  // Alive at once at most: two 1 MiB chain values plus a 1 MiB workspace, and the small output.
  const std::size_t mib = std::size_t(1) << 20;
  EXPECT_LE(st.arena_bytes, 3 * mib + 512);
  EXPECT_GE(st.arena_bytes, st.live_peak_bytes);
  EXPECT_GE(st.live_peak_bytes, 3 * mib);

  const std::vector<float> xs = random_floats(kSmall, 11, -3.f, 3.f), xb = random_floats(kBig, 12, -3.f, 3.f);
  ex.bind_input("x_small", Tensor::from_vector(xs, Shape{1, kSmall}));
  ex.bind_input("x_big", Tensor::from_vector(xb, Shape{1, kBig}));
  for (int run = 0; run < 2; ++run) {  // the second run reuses the arena as it was left
    ex.run();
    EXPECT_TRUE(kestrel::testing::all_close(ex.output("s").to_float_vector(), scaled(xs, 2.f), 0, 0));
    EXPECT_TRUE(kestrel::testing::all_close(ex.output("b").to_float_vector(), scaled(xb, 8.f), 0, 0));
  }
}

TEST(ExecutorWorkspace, InTheArenaIsSmallerThanASeparateBuffer) {
  const Graph g = small_then_big();
  Context ctx;
  ParameterStore store(g, ctx, 1);
  Executor shared(g, store, ctx, inference_options());
  // The same graph without the large-workspace node: its arena is what the values alone need.
  Graph values;
  const Value xb = values.input("x_big", {Shape{1, kBig}});
  Value b = xb;
  for (int i = 0; i < 3; ++i)
    b = values.add_node1(std::make_shared<ScratchDouble>(kBig * sizeof(float)), "b" + std::to_string(i), {b});
  values.mark_output(b, "b");
  ParameterStore store2(values, ctx, 1);
  Executor chain(values, store2, ctx, inference_options());
  EXPECT_TRUE(shared.stats().workspace_in_arena);
  // A separate buffer would add the 2 MiB workspace to the values' 2 MiB (and the small output);
  // in the arena it costs nothing beyond the chain's own peak: its input and output values and
  // its node's 1 MiB workspace, 3 MiB, plus the small output's 256 bytes.
  const std::size_t mib = std::size_t(1) << 20;
  EXPECT_EQ(shared.stats().arena_bytes, 3 * mib + 256);
  EXPECT_LT(shared.stats().arena_bytes, 2 * mib + kLargeWorkspace);
  EXPECT_LE(shared.stats().arena_bytes, chain.stats().arena_bytes + 256);
  // The statistics keep the values apart from the workspaces: alone they would need 2 MiB + 256
  // (b0 and b2 share a slot, b1 has its own, the small output a 256-byte one), and their sizes
  // add up to 3 MiB + 64 (three 1 MiB chain values and the 16-float output).
  EXPECT_EQ(shared.stats().values_arena_bytes, 2 * mib + 256);
  EXPECT_EQ(shared.stats().activation_bytes, 3 * mib + kSmall * sizeof(float));
  EXPECT_NE(shared.describe().find(" (per node, in the arena)\n"), std::string::npos) << shared.describe();
}

TEST(ExecutorWorkspace, NoWorkspaceMeansNoneInTheArena) {
  Graph g;
  const Value x = g.input("x", {Shape{1, kSmall}});
  g.mark_output(g.add_node1(std::make_shared<ScratchDouble>(0), "s", {x}), "s");
  Context ctx;
  ParameterStore store(g, ctx, 1);
  Executor ex(g, store, ctx, inference_options());
  EXPECT_FALSE(ex.stats().workspace_in_arena);
  EXPECT_EQ(ex.stats().workspace_bytes, 0u);
  EXPECT_EQ(ex.stats().arena_bytes, 256u);  // the one output, rounded to the arena's alignment
}

// Without memory reuse (a debugging mode: every value keeps bytes of its own) the workspaces stay
// in their separate buffer, out of the arena.
TEST(ExecutorWorkspace, WithoutMemoryReuseStaysOutOfTheArena) {
  const Graph g = small_then_big();
  Context ctx;
  ParameterStore store(g, ctx, 1);
  CompileOptions co = inference_options();
  co.reuse_memory = false;
  Executor ex(g, store, ctx, co);
  EXPECT_FALSE(ex.stats().workspace_in_arena);
  EXPECT_EQ(ex.stats().workspace_bytes, kLargeWorkspace);
  // Every value its own bytes: the small output and three 1 MiB chain values.
  EXPECT_EQ(ex.stats().arena_bytes, 256 + 3 * (std::size_t(1) << 20));
  const std::vector<float> xs = random_floats(kSmall, 11, -3.f, 3.f), xb = random_floats(kBig, 12, -3.f, 3.f);
  ex.bind_input("x_small", Tensor::from_vector(xs, Shape{1, kSmall}));
  ex.bind_input("x_big", Tensor::from_vector(xb, Shape{1, kBig}));
  ex.run();
  EXPECT_TRUE(kestrel::testing::all_close(ex.output("s").to_float_vector(), scaled(xs, 2.f), 0, 0));
  EXPECT_TRUE(kestrel::testing::all_close(ex.output("b").to_float_vector(), scaled(xb, 8.f), 0, 0));
}

// Workspaces planned in the arena need no separate buffer: what compiling allocates on the
// context is the arena and the inputs (in the allocator's size classes), not another 2 MiB.
TEST(ExecutorWorkspace, InTheArenaAllocatesNoSeparateBuffer) {
  const Graph g = small_then_big();
  Context ctx;
  ParameterStore store(g, ctx, 1);
  const std::size_t before = ctx.allocator()->stats().current_bytes;
  Executor ex(g, store, ctx, inference_options());
  ASSERT_TRUE(ex.stats().workspace_in_arena);
  const std::size_t used = ctx.allocator()->stats().current_bytes - before;
  // Size classes round the 3 MiB arena up by at most 512 KiB; a separate workspace adds 2 MiB.
  EXPECT_LT(used, ex.stats().arena_bytes + ex.stats().input_bytes + (std::size_t(1) << 20)) << used;
}

// The workspaces stay in the arena only when that is no larger than the values' arena plus a
// separate buffer of the largest workspace. Three 768-byte values (192 floats): a [0, 1],
// b [1, 3] (an output), c [2, 2] (never read), with workspaces of 1024 bytes at step 0 and 1280
// at step 2. The values alone fit in two 768-byte slots (1536 bytes); greedy placement of values
// and workspaces together (largest first) needs 3328 bytes, more than 1536 + 1280: the executor
// keeps the values-only arena and a separate 1280-byte workspace.
TEST(ExecutorWorkspace, StaysOutOfTheArenaWhenSharingWouldCostMore) {
  const std::int64_t n = 192;
  Graph g;
  const Value x = g.input("x", {Shape{1, n}});
  const Value a = g.add_node1(std::make_shared<ScratchDouble>(1024), "a", {x});
  const Value b = g.add_node1(make_scale_op(2.f), "d", {a});
  g.mark_output(b, "b");
  (void)g.add_node1(std::make_shared<ScratchDouble>(1280), "c", {b});
  Context ctx;
  ParameterStore store(g, ctx, 1);
  Executor ex(g, store, ctx, inference_options());
  const PlanStats& st = ex.stats();
  EXPECT_EQ(st.values_arena_bytes, 1536u);
  EXPECT_FALSE(st.workspace_in_arena);
  EXPECT_EQ(st.arena_bytes, 1536u);
  EXPECT_EQ(st.workspace_bytes, 1280u);
  const std::vector<float> xs = random_floats(n, 13, -3.f, 3.f);
  ex.bind_input("x", Tensor::from_vector(xs, Shape{1, n}));
  ex.run();
  EXPECT_TRUE(kestrel::testing::all_close(ex.output("b").to_float_vector(), scaled(xs, 4.f), 0, 0));
}
