// The CIFAR networks of layers/resnet.h against the literature: trainable parameter counts
// computed by hand from the architectures (He et al. 2015 table 6: ResNet-20/32/44/56/110 have
// 0.27M/0.46M/0.66M/0.85M/1.7M; Zagoruyko & Komodakis: WRN-16-4 2.7M), where the shortcuts are
// and what they read, and the options that only make sense with shortcuts.
#include <gtest/gtest.h>

#include <string>

#include "error_text.h"
#include "kestrel/layers/nn.h"
#include "kestrel/layers/resnet.h"

using namespace kestrel;
using kestrel::testing::error_of;

namespace {
Graph build(const ResNetConfig& cfg) {
  Graph g;
  build_resnet(g, nn::image_input(g, "images", 3, 32, 32), cfg);
  return g;
}

std::int64_t trainable_parameters(const Graph& g) {
  std::int64_t n = 0;
  for (const ParamInfo& p : g.params())
    if (p.trainable) n += p.type.shape.numel();
  return n;
}

const Node* find_node(const Graph& g, const std::string& name) {
  for (const Node& n : g.nodes())
    if (n.name == name) return &n;
  return nullptr;
}

int count_ops(const Graph& g, const std::string& prefix) {
  int k = 0;
  for (const Node& n : g.nodes()) k += n.name.rfind(prefix, 0) == 0 ? 1 : 0;
  return k;
}
}  // namespace

// By hand, v1 with 1x1 projection + BN shortcuts (option B): stem 3*16*9 + 2*16 = 464; a block of
// width w from width v: 9*v*w + 9*w*w + 4*w (+ v*w + 2*w with a projection); fc 64*10 + 10.
// ResNet-20: 464 + 3*4672 + (14528 + 2*18560) + (57728 + 2*73984) + 650 = 272,474.
TEST(ResNet, ParameterCountsMatchTheArchitectures) {
  const struct {
    const char* model;
    int version;
    std::int64_t count;
  } cases[] = {{"resnet20", 1, 272474}, {"resnet32", 1, 466906}, {"resnet44", 1, 661338},
               {"resnet56", 1, 855770}, {"resnet110", 1, 1730714},
               {"plain20", 1, 269722},   // no projections: 272,474 - (16*32+64) - (32*64+128)
               {"resnet20", 2, 272282},  // v2: projections without BN (-192), final BN (+128), no stem BN (-32)
               {"wrn-16-4", 2, 2748890}, {"seed-resnet-v2", 2, 101530}};
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.model) + " v" + std::to_string(c.version));
    EXPECT_EQ(trainable_parameters(build(resnet_config(c.model, c.version))), c.count);
  }
}

TEST(ResNet, PlainNetworksHaveNoShortcutAnywhere) {
  for (int version : {1, 2}) {
    const Graph plain = build(resnet_config("plain20", version));
    const Graph res = build(resnet_config("resnet20", version));
    int plain_adds = 0, res_adds = 0;
    for (const Node& n : plain.nodes()) plain_adds += n.name.find(".add") != std::string::npos ? 1 : 0;
    for (const Node& n : res.nodes()) res_adds += n.name.find(".add") != std::string::npos ? 1 : 0;
    EXPECT_EQ(plain_adds, 0) << "v" << version;
    EXPECT_EQ(res_adds, 9) << "v" << version;
    EXPECT_EQ(count_ops(plain, "layer2.0.shortcut"), 0);
    EXPECT_GT(count_ops(res, "layer2.0.shortcut"), 0);
  }
}

// He et al. 2016, sec. 4: the first pre-activation unit shares the activation after conv1 between
// its two paths; later identity shortcuts carry the stream as it is. (The first block's identity
// shortcut read the stem convolution's raw output.)
TEST(ResNet, V2FirstBlockShortcutTakesThePreActivatedStem) {
  for (const char* model : {"resnet20", "seed-resnet-v2"}) {
    SCOPED_TRACE(model);
    const Graph g = build(resnet_config(model, 2));
    const Node* first = find_node(g, "layer1.0.add");
    ASSERT_NE(first, nullptr);
    ASSERT_EQ(first->inputs.size(), 2u);
    EXPECT_EQ(g.info(first->inputs[1]).name, "layer1.0.relu:y");
    if (std::string(model) == "resnet20") {
      const Node* second = find_node(g, "layer1.1.add");
      ASSERT_NE(second, nullptr);
      EXPECT_EQ(g.info(second->inputs[1]).name, "layer1.0.add:y");
    }
  }
  // v1 keeps its stem BN-ReLU, so its first shortcut reads that.
  const Graph v1 = build(resnet_config("resnet20", 1));
  EXPECT_EQ(v1.info(find_node(v1, "layer1.0.add")->inputs[1]).name, "relu:y");
}

TEST(ResNet, ZeroedLastBnNeedsShortcuts) {
  ResNetConfig c = resnet_config("plain20");
  c.zero_init_last_bn = true;
  const std::string e = error_of([&] { build(c); });
  EXPECT_NE(e.find("zero_init_last_bn needs residual shortcuts"), std::string::npos) << e;
  c = resnet_config("resnet20");
  c.zero_init_last_bn = true;
  const Graph g = build(c);
  int zeroed = 0;
  for (const ParamInfo& p : g.params()) {
    if (p.name.find(".bn2.weight") == std::string::npos) continue;
    EXPECT_EQ(p.init.kind, Init::Kind::kZeros) << p.name;
    ++zeroed;
  }
  EXPECT_EQ(zeroed, 9);
}

// The seed net: "... -> BN -> flatten -> dense 10, He-normal init".
TEST(ResNet, SeedNetIsHeNormalThroughout) {
  const Graph g = build(resnet_config("seed-resnet-v2"));
  int weights = 0;
  for (const ParamInfo& p : g.params()) {
    if (p.name.size() < 7 || p.name.compare(p.name.size() - 7, 7, ".weight") != 0 || p.name.find("bn") != std::string::npos)
      continue;
    EXPECT_EQ(p.init.kind, Init::Kind::kHeNormal) << p.name;
    ++weights;
  }
  EXPECT_EQ(weights, 7);  // conv1, two convolutions in each of the two blocks, the projection, fc
  EXPECT_EQ(count_ops(g, "global_avg_pool"), 0);
}

// The smallest depths and the widest Wide-ResNet the documented rules allow (6n+2 >= 8; WRN
// 6n+4 >= 10, width 1..16).
TEST(ResNet, ConfigAcceptsTheBoundaryDepthsAndWidths) {
  const ResNetConfig r8 = resnet_config("resnet8");
  EXPECT_EQ(r8.blocks_per_stage, 1);
  EXPECT_TRUE(r8.shortcuts);
  EXPECT_FALSE(resnet_config("plain8").shortcuts);
  const ResNetConfig w10 = resnet_config("wrn-10-1");
  EXPECT_EQ(w10.blocks_per_stage, 1);
  EXPECT_EQ(w10.widths, (std::vector<std::int64_t>{16, 32, 64}));
  const ResNetConfig w16 = resnet_config("wrn-16-16");
  EXPECT_EQ(w16.blocks_per_stage, 2);
  EXPECT_EQ(w16.widths, (std::vector<std::int64_t>{256, 512, 1024}));
  EXPECT_THROW(resnet_config("wrn-16-17"), Error);
  EXPECT_THROW(resnet_config("wrn-4-1"), Error);
  EXPECT_THROW(resnet_config("resnet2"), Error);
  // The library's message names the setting, not a program's flag.
  const std::string v3 = error_of([] { resnet_config("resnet20", 3); });
  EXPECT_NE(v3.find("ResNet version must be 1 (post-activation) or 2 (pre-activation), got 3"), std::string::npos) << v3;
}

// A v1 block whose width changes at stride 1 (a stem narrower than the first stage) needs a
// projection shortcut; the blocks that keep their width use the identity.
TEST(ResNet, V1ProjectionShortcutWhenOnlyTheWidthChanges) {
  ResNetConfig c = resnet_config("resnet8");
  c.stem_width = 8;
  c.widths = {16, 32};
  Graph g;
  build_resnet(g, nn::image_input(g, "images", 3, 32, 32), c);
  int proj_first = 0, proj_second = 0;
  for (const Node& n : g.nodes()) {
    proj_first += n.name.rfind("layer1.0.shortcut", 0) == 0 ? 1 : 0;
    proj_second += n.name.rfind("layer2.0.shortcut", 0) == 0 ? 1 : 0;
  }
  EXPECT_GT(proj_first, 0);
  EXPECT_GT(proj_second, 0);
  bool has_proj_weight = false;
  for (const ParamInfo& p : g.params()) has_proj_weight = has_proj_weight || p.name == "layer1.0.shortcut.0.weight";
  EXPECT_TRUE(has_proj_weight);
  // Same width at stride 1: identity.
  Graph same;
  build_resnet(same, nn::image_input(same, "images", 3, 32, 32), resnet_config("resnet8"));
  for (const Node& n : same.nodes()) EXPECT_NE(n.name.rfind("layer1.0.shortcut", 0), 0u) << n.name;
}

// He et al. 2016 (and PyTorch's pre-activation reference blocks): a v2 projection shortcut is
// applied to the block's pre-activation relu(bn1(x)), as the residual branch is, not to the raw
// residual stream x.
TEST(ResNet, V2ProjectionShortcutReadsThePreActivation) {
  const Graph g = build(resnet_config("resnet20", 2));
  for (const char* block : {"layer2.0", "layer3.0"}) {
    SCOPED_TRACE(block);
    const Node* proj = find_node(g, std::string(block) + ".shortcut.0");
    ASSERT_NE(proj, nullptr);
    EXPECT_EQ(g.info(proj->inputs[0]).name, std::string(block) + ".relu:y");
    const Node* conv1 = find_node(g, std::string(block) + ".conv1");
    ASSERT_NE(conv1, nullptr);
    EXPECT_EQ(proj->inputs[0], conv1->inputs[0]) << "the shortcut and the branch read the same activation";
  }
}

// Pre-activation networks end in BN-ReLU before the pooling (He et al. 2016, fig. 4e / the
// reference implementations); zero_init_last_bn zeroes each v2 block's last convolution (its
// branch ends there); depths are not limited to three digits (He et al. trained ResNet-1202).
TEST(ResNet, V2HeadZeroInitAndFourDigitDepths) {
  const Graph g = build(resnet_config("resnet20", 2));
  const Node* pool = find_node(g, "avgpool");
  ASSERT_NE(pool, nullptr);
  const std::string pooled = g.info(pool->inputs[0]).name;
  EXPECT_EQ(pooled.rfind("relu", 0), 0u) << pooled;
  ResNetConfig z = resnet_config("resnet20", 2);
  z.zero_init_last_bn = true;
  const Graph zg = build(z);
  int zeroed = 0;
  for (const ParamInfo& p : zg.params()) {
    if (p.name.find(".conv2.weight") == std::string::npos) continue;
    EXPECT_EQ(p.init.kind, Init::Kind::kZeros) << p.name;
    ++zeroed;
  }
  EXPECT_EQ(zeroed, 9);
  EXPECT_EQ(resnet_config("resnet1202").blocks_per_stage, 200);  // (1202 - 2) / 6
  // Block dropout is in [0, 1): p = 1 would zero every residual branch.
  ResNetConfig d = resnet_config("resnet20");
  d.dropout = 1.f;
  EXPECT_NE(error_of([&] { build(d); }).find("dropout must be in [0, 1)"), std::string::npos);
}

// Model names are read whole: a prefix with one to four digits and nothing after them, "wrn" only
// at the start (WRN-16-4 by default, always pre-activation, as the seed net is), widths from 1.
// The blocks check their version and dropout, and a network needs stages and blocks.
TEST(ResNet, ModelNamesAndBlockOptionsAreReadWhole) {
  for (const char* unknown : {"resnet20x", "resnet00020", "xwrn-16-4", "resnet"}) {
    const std::string e = error_of([&] { resnet_config(unknown); });
    EXPECT_NE(e.find(std::string("unknown model '") + unknown + "'"), std::string::npos) << e;
  }
  EXPECT_NE(error_of([] { resnet_config("wrn-16-0"); }).find("width 1..16"), std::string::npos);
  const ResNetConfig wrn = resnet_config("wrn");
  EXPECT_EQ(wrn.widths, (std::vector<std::int64_t>{64, 128, 256}));
  EXPECT_EQ(wrn.blocks_per_stage, 2);
  for (const char* model : {"wrn", "wrn-16-4", "seed-resnet-v2"})
    EXPECT_EQ(resnet_config(model, 1).version, 2) << model;

  struct Case {
    void (*set)(ResNetConfig&);
    const char* error;
  };
  const Case cases[] = {
      {[](ResNetConfig& c) { c.version = 0; }, "layer1.0: block version must be 1 or 2, got 0"},
      {[](ResNetConfig& c) { c.dropout = -0.1f; }, "layer1.0: dropout must be in [0, 1), got -0.1"},
      {[](ResNetConfig& c) { c.widths.clear(); }, "ResNet config needs stages and blocks"},
      {[](ResNetConfig& c) { c.blocks_per_stage = 0; }, "ResNet config needs stages and blocks"},
  };
  for (const Case& k : cases) {
    ResNetConfig c = resnet_config("resnet8");
    k.set(c);
    const std::string e = error_of([&] { build(c); });
    EXPECT_NE(e.find(k.error), std::string::npos) << e;
  }
}

// What each block ends in: a plain v1 block in its ReLU (no shortcut to add first), a plain v2
// block in its second convolution (the next block's BN-ReLU follows); the seed net's head is BN
// then flatten, with no ReLU between; block dropout (0.3, as WRN has) is in the blocks of
// both versions.
TEST(ResNet, BlocksEndAsTheirVersionSays) {
  const Graph v1 = build(resnet_config("plain8", 1));
  const Node* next1 = find_node(v1, "layer2.0.conv1");
  ASSERT_NE(next1, nullptr);
  const std::string into_next = v1.info(next1->inputs[0]).name;
  EXPECT_EQ(into_next.rfind("layer1.0.relu", 0), 0u) << into_next;
  const Graph v2 = build(resnet_config("plain8", 2));
  const Node* next2 = find_node(v2, "layer2.0.bn1");
  ASSERT_NE(next2, nullptr);
  EXPECT_EQ(v2.info(next2->inputs[0]).name, "layer1.0.conv2:y");
  const Graph seed = build(resnet_config("seed-resnet-v2"));
  const Node* flatten = nullptr;
  for (const Node& n : seed.nodes())
    if (n.name.rfind("flatten", 0) == 0) flatten = &n;
  ASSERT_NE(flatten, nullptr);
  EXPECT_EQ(seed.info(flatten->inputs[0]).name.rfind("bn_final", 0), 0u) << seed.info(flatten->inputs[0]).name;
  for (int version : {1, 2}) {
    ResNetConfig d = resnet_config("resnet8", version);
    d.dropout = 0.3f;
    EXPECT_EQ(count_ops(build(d), "layer1.0.dropout"), 1) << "v" << version;
  }
}
