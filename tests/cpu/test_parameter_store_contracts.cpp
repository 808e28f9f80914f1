// ParameterStore's contracts at their edges (second mutation round on core/parameter_store.cpp,
// docs/RELIABILITY.md): where each initial value comes from, which fans and ranges an initialiser
// accepts, the slot layout for sizes that are multiples of 8, the bf16 buffer only when a
// parameter has a copy, and the index and name errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "error_text.h"
#include "kestrel/core/executor.h"
#include "kestrel/kernels/cpu/fill.h"

using namespace kestrel;
using kestrel::testing::contains;
using kestrel::testing::error_of;

namespace {
// The values fill_normal draws from stream (seed, offset): tests/cpu/test_fill.cpp checks it
// against the documented Box-Muller convention in double precision.
std::vector<float> normal_draws(std::int64_t n, std::uint64_t seed, std::uint64_t offset, float sd) {
  std::vector<float> v(static_cast<std::size_t>(n));
  cpu::fill_normal(v.data(), DType::kFloat32, n, seed, offset, 0.f, sd);
  return v;
}

std::string store_error(const Graph& g) {
  Context ctx;
  return error_of([&] { ParameterStore store(g, ctx, 1); });
}
}  // namespace

// Parameter or state i of the graph draws Philox stream (seed, 2^63 + i): the same weights on
// every device and in every release, and offsets far from the ones dropout counts up from 0.
TEST(ParameterStoreContracts, EachParameterDrawsTheStreamOfItsIndexAboveTwoToThe63) {
  Graph g;
  g.parameter("a", {Shape{40}}, Init::he_normal(8), true);
  g.state("s", {Shape{3}}, Init::zeros());
  g.parameter("b", {Shape{24}}, Init::he_normal(18), true);
  Context ctx;
  const std::uint64_t seed = 977;
  ParameterStore store(g, ctx, seed);
  const std::uint64_t base = std::uint64_t(1) << 63;
  const float third = static_cast<float>(std::sqrt(2.0 / 18.0));  // He normal's sd for fan_in 18
  EXPECT_EQ(store.value("a").to_float_vector(), normal_draws(40, seed, base + 0, 0.5f));
  EXPECT_EQ(store.value("b").to_float_vector(), normal_draws(24, seed, base + 2, third));
  EXPECT_NE(store.value("b").to_float_vector(), normal_draws(24, seed, 2, third));
}

// A fan the initialiser divides by must be positive: He's fan_in, Xavier's fan_in + fan_out (a
// zero fan_in beside a positive fan_out is a usable bound).
TEST(ParameterStoreContracts, InitialisersNeedAPositiveFan) {
  for (const Init& init : {Init::he_normal(0), Init::he_uniform(0), Init::xavier_uniform(10, -10)}) {
    Graph g;
    g.parameter("w", {Shape{4}}, init, true);
    const std::string e = store_error(g);
    EXPECT_TRUE(contains(e, "parameter 'w': initialiser needs a positive fan (got 0)")) << e;
  }
  Graph g;
  g.parameter("w", {Shape{4000}}, Init::xavier_uniform(0, 24), true);
  Context ctx;
  ParameterStore store(g, ctx, 1);
  double largest = 0.0;
  for (float x : store.value("w").to_float_vector()) largest = std::max(largest, std::fabs(double{x}));
  EXPECT_LE(largest, 0.5);  // sqrt(6 / 24)
  EXPECT_GT(largest, 0.49);
}

// A constant range of one element is applied; one that starts before the first element is
// refused like one that ends past the last.
TEST(ParameterStoreContracts, ConstantRangesOfOneElementAndNegativeStarts) {
  Graph g;
  g.parameter("b", {Shape{6}}, Init::constant(0.5f).with_range(3, 4, -1.f), true);
  Context ctx;
  ParameterStore store(g, ctx, 1);
  EXPECT_EQ(store.value("b").to_float_vector(), (std::vector<float>{0.5f, 0.5f, 0.5f, -1.f, 0.5f, 0.5f}));
  Graph bad;
  bad.parameter("b", {Shape{6}}, Init::zeros().with_range(-1, 2, 1.f), true);
  const std::string e = store_error(bad);
  EXPECT_TRUE(contains(e, "parameter 'b': constant range [-1, 2) lies outside its 6 elements")) << e;
}

// Sizes that are already multiples of 8 take no padding; the bf16 buffer exists only when some
// parameter has a bf16 copy.
TEST(ParameterStoreContracts, MultiplesOfEightTakeNoPaddingAndFp32ModelsNoBf16Buffer) {
  Graph g;
  g.parameter("a", {Shape{8}}, Init::ones(), true);
  g.parameter("b", {Shape{2, 8}}, Init::ones(), true);
  g.state("s", {Shape{16}}, Init::zeros());
  Context ctx;
  ParameterStore store(g, ctx, 1);
  EXPECT_EQ(store.flat_params().numel(), 24);
  EXPECT_EQ(store.flat_states().numel(), 16);
  EXPECT_EQ(store.flat_shadow().numel(), 0);
  EXPECT_FALSE(store.shadow(0).defined());

  Graph mixed;
  mixed.parameter("a", {Shape{8}}, Init::ones(), true);
  mixed.parameter("b", {Shape{8}}, Init::ones(), true, DType::kBFloat16);
  ParameterStore with_copy(mixed, ctx, 1);
  EXPECT_EQ(with_copy.flat_shadow().numel(), 16);  // parallel to the whole fp32 buffer
}

// count() itself is past the end; a state has no gradient; an unknown name lists at most 12 of
// the known ones, then "...".
TEST(ParameterStoreContracts, IndexAndNameErrors) {
  Graph g;
  for (int i = 0; i < 12; ++i) g.parameter("p" + std::to_string(i), {Shape{2}}, Init::ones(), true);
  g.state("s", {Shape{2}}, Init::zeros());
  Context ctx;
  ParameterStore store(g, ctx, 1);
  EXPECT_TRUE(contains(error_of([&] { store.name(13); }), "parameter index 13 is out of range: the store holds 13"));
  EXPECT_TRUE(contains(error_of([&] { store.gradient(12); }), "'s' is a state and has no gradient"));
  const std::string many = error_of([&] { store.value("q"); });
  EXPECT_TRUE(contains(many, "no parameter or state named 'q' (known: p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, "
                             "p10, p11, ...)")) << many;

  Graph twelve;
  for (int i = 0; i < 12; ++i) twelve.parameter("p" + std::to_string(i), {Shape{2}}, Init::ones(), true);
  ParameterStore all_listed(twelve, ctx, 1);
  const std::string exact = error_of([&] { all_listed.value("q"); });
  EXPECT_TRUE(contains(exact, "(known: p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11)")) << exact;
}
