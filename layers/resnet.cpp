#include "kestrel/layers/resnet.h"

#include <cstdlib>

#include "kestrel/core/error.h"
#include "kestrel/layers/nn.h"

namespace kestrel {
namespace {
nn::Conv2dOptions conv3x3(int stride) {
  nn::Conv2dOptions o;
  o.stride = stride;
  o.padding = 1;
  return o;
}

// Parses the integer after `prefix` in `s`; -1 when s does not start with prefix + digits.
int suffix_number(const std::string& s, const std::string& prefix) {
  if (s.rfind(prefix, 0) != 0) return -1;
  const std::string rest = s.substr(prefix.size());
  if (rest.empty() || rest.find_first_not_of("0123456789") != std::string::npos || rest.size() > 4) return -1;
  return std::atoi(rest.c_str());
}

std::string known_list() {
  std::string s;
  for (const auto& m : known_models()) s += (s.empty() ? "" : ", ") + m;
  return s;
}

// What every block checks before adding anything to the graph.
void check_block_options(const ResNetConfig& cfg, const std::string& where) {
  KESTREL_CHECK(cfg.version == 1 || cfg.version == 2, where, ": block version must be 1 or 2, got ", cfg.version);
  KESTREL_CHECK(cfg.dropout >= 0.f && cfg.dropout < 1.f, where, ": dropout must be in [0, 1), got ", cfg.dropout);
  // Without a shortcut around it a zeroed branch zeroes the whole signal, and its gradient with it.
  KESTREL_CHECK(!cfg.zero_init_last_bn || cfg.shortcuts, where,
                ": zero_init_last_bn needs residual shortcuts (a plain network would start, and stay, at zero)");
}

Value block_v1(Graph& g, Value x, std::int64_t out, int stride, const ResNetConfig& cfg) {
  Value h = nn::conv2d(g, "conv1", x, out, 3, conv3x3(stride));
  h = nn::relu(g, nn::batch_norm(g, "bn1", h));
  if (cfg.dropout > 0.f) h = nn::dropout(g, "dropout", h, cfg.dropout);
  h = nn::conv2d(g, "conv2", h, out, 3, conv3x3(1));
  nn::BatchNormOptions last;
  last.zero_init_gamma = cfg.zero_init_last_bn;
  h = nn::batch_norm(g, "bn2", h, last);
  if (!cfg.shortcuts) return nn::relu(g, h);
  Value shortcut = x;
  if (stride != 1 || g.info(x).shape()[1] != out) {
    nn::Conv2dOptions proj;
    proj.stride = stride;
    Graph::Scope s(g, "shortcut");
    shortcut = nn::batch_norm(g, "1", nn::conv2d(g, "0", x, out, 1, proj));
  }
  return nn::relu(g, nn::add(g, h, shortcut));  // the fusion pass makes this BN+Add+ReLU
}

Value block_v2(Graph& g, Value x, std::int64_t out, int stride, const ResNetConfig& cfg, bool after_stem) {
  const Value pre = nn::relu(g, nn::batch_norm(g, "bn1", x));
  Value h = nn::conv2d(g, "conv1", pre, out, 3, conv3x3(stride));
  h = nn::relu(g, nn::batch_norm(g, "bn2", h));
  if (cfg.dropout > 0.f) h = nn::dropout(g, "dropout", h, cfg.dropout);
  // A v2 block ends in a convolution, not a BN: "zero the last BN" zeroes that convolution
  // instead (a zeroed bn2 before the ReLU would pass no gradient back to its own gamma).
  nn::Conv2dOptions last = conv3x3(1);
  if (cfg.zero_init_last_bn) last.init = Init::zeros();
  h = nn::conv2d(g, "conv2", h, out, 3, last);
  if (!cfg.shortcuts) return h;
  // The block after the stem convolution shares its first activation with the shortcut (He et al.
  // 2016, sec. 4: "we adopt the first activation right after conv1 and before splitting into two
  // paths"); later identity shortcuts carry the residual stream as it is.
  Value shortcut = after_stem ? pre : x;
  if (stride != 1 || g.info(x).shape()[1] != out) {
    nn::Conv2dOptions proj;
    proj.stride = stride;
    Graph::Scope s(g, "shortcut");
    shortcut = nn::conv2d(g, "0", pre, out, 1, proj);
  }
  return nn::add(g, h, shortcut);
}
}  // namespace

std::vector<std::string> known_models() {
  return {"resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "plain20", "plain32",
          "plain44",  "plain56",  "plain110", "seed-resnet-v2", "wrn (wrn-16-4)", "resnetD / plainD / wrn-D-K for D = 6n+2 (wrn: 6n+4)"};
}

ResNetConfig resnet_config(const std::string& model, int version) {
  KESTREL_CHECK(version == 1 || version == 2, "ResNet version must be 1 (post-activation) or 2 (pre-activation), got ",
                version);
  ResNetConfig c;
  c.name = model;
  c.version = version;
  if (model == "seed-resnet-v2") {
    c.version = 2;
    c.blocks_per_stage = 1;
    c.widths = {16, 32};
    c.flatten_head = true;
    return c;
  }
  if (model == "wrn" || model.rfind("wrn-", 0) == 0) {
    int depth = 16, k = 4;
    if (model != "wrn") {
      const std::size_t dash = model.find('-', 4);
      KESTREL_CHECK(dash != std::string::npos, "bad model '", model, "': expected wrn-DEPTH-WIDTH (e.g. wrn-16-4)");
      depth = suffix_number(model.substr(0, dash), "wrn-");
      k = suffix_number(model.substr(dash), "-");
    }
    KESTREL_CHECK(depth >= 10 && (depth - 4) % 6 == 0 && k >= 1 && k <= 16, "bad model '", model,
                  "': Wide-ResNet depth must be 6n+4 (>= 10) and width 1..16");
    c.version = 2;
    c.blocks_per_stage = (depth - 4) / 6;
    c.widths = {16LL * k, 32LL * k, 64LL * k};
    c.dropout = 0.3f;
    return c;
  }
  int depth = suffix_number(model, "resnet");
  if (depth < 0) {
    depth = suffix_number(model, "plain");
    c.shortcuts = false;
  }
  KESTREL_CHECK(depth > 0, "unknown model '", model, "' (known: ", known_list(), ")");
  KESTREL_CHECK(depth >= 8 && (depth - 2) % 6 == 0, "bad model '", model, "': CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110, ...)");
  c.blocks_per_stage = (depth - 2) / 6;
  return c;
}

Value residual_block(Graph& g, const std::string& name, Value x, std::int64_t out_channels, int stride,
                     const ResNetConfig& cfg, bool after_stem) {
  check_block_options(cfg, g.scoped(name));
  Graph::Transaction tx(g);  // a refused layer inside takes the block's earlier layers with it
  Value y;
  {
    Graph::Scope s(g, name);
    y = cfg.version == 1 ? block_v1(g, x, out_channels, stride, cfg)
                         : block_v2(g, x, out_channels, stride, cfg, after_stem);
  }
  tx.commit();
  return y;
}

Value build_resnet(Graph& g, Value images, const ResNetConfig& cfg) {
  KESTREL_CHECK(!cfg.widths.empty() && cfg.blocks_per_stage >= 1, "ResNet config needs stages and blocks");
  // Widths, classes and block options are checked by the layers and blocks that use them; refused
  // part-way, the network is rolled back.
  Graph::Transaction tx(g);
  Value h = nn::conv2d(g, "conv1", images, cfg.stem_width, 3, conv3x3(1));
  if (cfg.version == 1) h = nn::relu(g, nn::batch_norm(g, "bn1", h));
  for (std::size_t stage = 0; stage < cfg.widths.size(); ++stage) {
    Graph::Scope s(g, "layer" + std::to_string(stage + 1));
    for (int b = 0; b < cfg.blocks_per_stage; ++b) {
      const int stride = (stage > 0 && b == 0) ? 2 : 1;
      h = residual_block(g, std::to_string(b), h, cfg.widths[stage], stride, cfg, stage == 0 && b == 0);
    }
  }
  if (cfg.version == 2) {
    h = nn::batch_norm(g, "bn_final", h);
    if (!cfg.flatten_head) h = nn::relu(g, h);
  }
  h = cfg.flatten_head ? nn::flatten(g, h) : nn::global_avg_pool(g, h);
  nn::LinearOptions fc;
  if (cfg.flatten_head) fc.init = Init::he_normal(0);  // the seed net: He-normal throughout
  const Value logits = nn::linear(g, "fc", h, cfg.classes, fc);
  tx.commit();
  return logits;
}

}  // namespace kestrel
