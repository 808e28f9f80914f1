// CIFAR residual networks built from layers/nn.h.
//
// Block v1 (He et al. 2015, post-activation): conv3x3-BN-ReLU-conv3x3-BN, + shortcut, ReLU.
// Block v2 (He et al. 2016, pre-activation):  BN-ReLU-conv3x3-BN-ReLU-conv3x3, + shortcut.
// Shortcut: identity when shapes match, else a strided 1x1 convolution (followed by BN in v1;
// in v2 it reads the block's pre-activated input): He et al. 2015's option B. Their CIFAR
// networks used option A (identity with zero-padded channels, no parameters): ResNet-20 has
// 272,474 parameters here against 269,722 with option A; torchvision-style CIFAR code also uses
// B. Optional dropout between the two convolutions (Wide-ResNet style: BN-ReLU-conv-BN-ReLU-
// dropout-conv, as the authors' code; for width factor 1 the first block's identity shortcut
// takes the pre-activated input, where their code takes the raw one). Plain networks are the
// same stacks without shortcuts.
//
// CIFAR ResNet-(6n+2): conv3x3(16) -> 3 stages of n blocks (16, 32, 64 channels, stride 2 at the
// start of stages 2 and 3) -> global average pooling -> dense(classes). v1 puts BN-ReLU after
// the first conv; v2 shares the first block's BN-ReLU between its branch and its shortcut (the
// "first activation" of He et al. 2016) and puts a final BN-ReLU before the pooling.
// Initialisation: convolutions He normal with fan_in = C*R*S (He et al. 2015's derivation for the
// forward pass; torchvision and He's Torch code use fan_out), BN gamma 1 / beta 0, the dense
// layer Xavier uniform (He normal in the seed net) with a U(+-1/sqrt(fan_in)) bias.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kestrel/core/graph.h"

namespace kestrel {

struct ResNetConfig {
  std::string name = "resnet20";
  int version = 1;                      // 1: post-activation, 2: pre-activation
  int blocks_per_stage = 3;             // n: depth 6n + 2
  std::vector<std::int64_t> widths = {16, 32, 64};
  std::int64_t stem_width = 16;
  bool shortcuts = true;                // false: plain network
  float dropout = 0.f;                  // between the two convolutions of each block
  bool zero_init_last_bn = false;       // each residual branch starts as zero: v1 zeroes the
                                        // gamma of the block's last BN, v2 its last convolution
  std::int64_t classes = 10;
  bool flatten_head = false;            // seed net: BN -> flatten -> dense instead of pooling
  std::int64_t depth() const { return 6 * blocks_per_stage + 2; }
};

// "resnet20|32|44|56|110" and "plain20|32|44|56|110" (any 6n+2 depth), "seed-resnet-v2"
// (conv16 -> v2 block 16->16 -> v2 block 16->32 (stride 2) -> BN -> flatten -> dense), and
// "wrn" / "wrn-D-K" (Wide-ResNet, v2 blocks, widths 16K/32K/64K, depth D = 6n+4; default
// WRN-16-4 with dropout 0.3). `version` applies to resnet/plain names. Raises kestrel::Error for
// unknown names, listing the known ones.
ResNetConfig resnet_config(const std::string& model, int version = 1);
std::vector<std::string> known_models();

// Appends the network to g reading `images` ([N, 3, H, W]); returns the logits [N, classes].
Value build_resnet(Graph& g, Value images, const ResNetConfig& cfg);

// One residual (or plain) block; `stride` applies to the first convolution and the shortcut.
// `after_stem`: the block reads the stem convolution's output, not an earlier block's; in v2 its
// identity shortcut then takes the pre-activated input, as the branch does (He et al. 2016, sec. 4;
// build_resnet sets it for the first block). Raises kestrel::Error for zero_init_last_bn without
// shortcuts (the plain block would start, and stay, at zero).
Value residual_block(Graph& g, const std::string& name, Value x, std::int64_t out_channels, int stride,
                     const ResNetConfig& cfg, bool after_stem = false);

}  // namespace kestrel
