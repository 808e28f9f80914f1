// Checkpoints (layers/checkpoint.h): bit-exact round trips, PyTorch state_dict names and shapes in
// logical NCHW order, loading a hand-built PyTorch-style file, and errors that name the tensor.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>

#include "grad_check.h"
#include "error_text.h"
#include "temp_dir.h"
#include "test_support.h"
#include "kestrel/core/executor.h"
#include "kestrel/core/half.h"
#include "kestrel/layers/checkpoint.h"
#include "kestrel/layers/nn.h"
#include "kestrel/layers/resnet.h"

using namespace kestrel;
using kestrel::testing::error_of;

namespace {

// ResNet-8 with widths 4/8/16 on 8x8 images: every kind of tensor (conv, BN, projection
// shortcut with BN, dense) at a size the CPU runs in milliseconds.
Graph tiny_resnet(Layout layout, DType dtype = DType::kFloat32, int version = 1) {
  GraphOptions o;
  o.batch = 4;
  o.layout = layout;
  o.dtype = dtype;
  Graph g(o);
  const Value x = nn::image_input(g, "images", 3, 8, 8);
  const Value labels = nn::label_input(g, "labels");
  ResNetConfig cfg = resnet_config("resnet8", version);
  cfg.stem_width = 4;
  cfg.widths = {4, 8, 16};
  const Value logits = build_resnet(g, x, cfg);
  g.mark_output(logits, "logits");
  nn::softmax_cross_entropy(g, logits, labels);
  return g;
}

// Runs `steps` SGD (or AdamW) steps so that weights, statistics and optimizer state are all
// non-trivial.
void train_steps(Executor& ex, int steps) {
  kestrel::testing::feed_uniform(ex, "images", 5);
  kestrel::testing::feed_labels(ex, "labels", 10);
  ex.store().set_learning_rate(0.05f);
  for (int s = 0; s < steps; ++s) ex.run();
}

std::vector<float> floats(const Tensor& t) { return t.to_float_vector(); }

SafeTensor f32(const std::vector<std::int64_t>& shape, const std::vector<float>& v) {
  SafeTensor t;
  t.dtype = "F32";
  t.shape = shape;
  t.data.resize(v.size() * 4);
  std::memcpy(t.data.data(), v.data(), t.data.size());
  return t;
}

}  // namespace

TEST(Checkpoint, RoundTripIsBitExactForEveryBufferAndCounter) {
  for (OptimizerKind kind : {OptimizerKind::kSgd, OptimizerKind::kAdamW}) {
    for (Layout layout : {Layout::kNCHW, Layout::kNHWC}) {
      Context ctx;
      const Graph g = tiny_resnet(layout);
      ParameterStore a(g, ctx, 11);
      CompileOptions co;
      co.optimizer = kind;
      co.sgd.nesterov = true;
      co.sgd.weight_decay = 1e-3f;
      Executor ex(g, a, ctx, co);
      train_steps(ex, 3);
      const std::vector<std::uint8_t> bytes = serialize_safetensors(checkpoint_from_store(a, {{"epoch", "7"}}));
      const SafetensorsFile file = parse_safetensors(bytes.data(), bytes.size(), "round trip");
      EXPECT_EQ(file.metadata.at("epoch"), "7");
      EXPECT_EQ(file.metadata.at("format"), kCheckpointFormat);

      ParameterStore b(g, ctx, 11);  // the checkpoint's seed, but a's weights have moved on
      Executor ex_b(g, b, ctx, co);  // allocates b's optimizer state
      load_checkpoint(file, b, {}, "round trip");
      EXPECT_TRUE(kestrel::testing::bit_equal(floats(b.flat_params()), floats(a.flat_params())));
      EXPECT_TRUE(kestrel::testing::bit_equal(floats(b.flat_states()), floats(a.flat_states())));
      for (int k = 0; k < ParameterStore::optimizer_buffers(kind); ++k)
        EXPECT_TRUE(kestrel::testing::bit_equal(floats(b.opt_state(k)), floats(a.opt_state(k))));
      const auto ca = a.read_counters(), cb = b.read_counters();
      EXPECT_EQ(cb.rng_offset, ca.rng_offset);
      EXPECT_EQ(cb.step, 3);
      EXPECT_EQ(cb.learning_rate, ca.learning_rate);
      // The same state serialises to the same bytes.
      EXPECT_EQ(serialize_safetensors(checkpoint_from_store(b, {{"epoch", "7"}})), bytes);
      // One more step from either store gives the same parameters.
      train_steps(ex, 1);
      train_steps(ex_b, 1);
      EXPECT_TRUE(kestrel::testing::bit_equal(floats(b.flat_params()), floats(a.flat_params())));
    }
  }
}

// Loading before the training Executor exists (the natural order in a custom loop: store, load,
// executor) once dropped the optimizer state silently while restoring the step count, so
// AdamW's bias correction and SGD's momentum resumed wrong. Now an error that says what to do;
// the store is untouched, and a weights-only load still works.
TEST(Checkpoint, OptimizerStateIntoAStoreWithoutAnyIsRefused) {
  Context ctx;
  const Graph g = tiny_resnet(Layout::kNCHW);
  ParameterStore a(g, ctx, 11);
  CompileOptions co;
  co.optimizer = OptimizerKind::kAdamW;
  Executor ex(g, a, ctx, co);
  train_steps(ex, 2);
  const SafetensorsFile file = checkpoint_from_store(a, {});
  ParameterStore b(g, ctx, 11);
  const std::vector<float> before = floats(b.flat_params());
  const std::string e = error_of([&] { load_checkpoint(file, b, {}, "run.safetensors"); });
  EXPECT_NE(e.find("run.safetensors holds optimizer state (\"optimizer."), std::string::npos) << e;
  EXPECT_NE(e.find("compile the training Executor on the store first"), std::string::npos) << e;
  EXPECT_TRUE(kestrel::testing::bit_equal(floats(b.flat_params()), before));
  EXPECT_EQ(b.read_counters().step, 0);
  CheckpointLoadOptions weights;
  weights.optimizer = false;
  load_checkpoint(file, b, weights, "run.safetensors");
  EXPECT_TRUE(kestrel::testing::bit_equal(floats(b.flat_params()), floats(a.flat_params())));
}

TEST(Checkpoint, Bf16ShadowsAreRefreshedAfterLoading) {
  Context ctx;
  const Graph g = tiny_resnet(Layout::kNHWC, DType::kBFloat16);
  ParameterStore a(g, ctx, 3), b(g, ctx, 4);
  load_checkpoint(checkpoint_from_store(a), b, {false, false});
  const int i = b.index_of("layer2.0.conv1.weight");
  const std::vector<float> master = floats(b.value(i)), shadow = floats(b.shadow(i));
  ASSERT_EQ(master.size(), shadow.size());
  for (std::size_t e = 0; e < master.size(); ++e)
    ASSERT_EQ(shadow[e], float_from_bf16_bits(bf16_bits_from_float(master[e]))) << e;
}

TEST(Checkpoint, NamesAndShapesAreThoseOfAPyTorchStateDictInLogicalOrder) {
  Context ctx;
  const Graph nchw = tiny_resnet(Layout::kNCHW), nhwc = tiny_resnet(Layout::kNHWC);
  ParameterStore a(nchw, ctx, 5), b(nhwc, ctx, 5);
  CompileOptions co;
  Executor ex(nchw, a, ctx, co);  // SGD state
  const SafetensorsFile f = checkpoint_from_store(a);
  const std::map<std::string, std::vector<std::int64_t>> expected = {
      {"conv1.weight", {4, 3, 3, 3}},
      {"bn1.weight", {4}},
      {"bn1.running_mean", {4}},
      {"bn1.running_var", {4}},
      {"layer1.0.conv1.weight", {4, 4, 3, 3}},
      {"layer1.0.bn2.bias", {4}},
      {"layer2.0.conv1.weight", {8, 4, 3, 3}},
      {"layer2.0.shortcut.0.weight", {8, 4, 1, 1}},
      {"layer2.0.shortcut.1.running_var", {8}},
      {"layer3.0.conv2.weight", {16, 16, 3, 3}},
      {"fc.weight", {10, 16}},
      {"fc.bias", {10}},
      {"optimizer.sgd.momentum_buffer.conv1.weight", {4, 3, 3, 3}},
      {"optimizer.sgd.momentum_buffer.fc.bias", {10}},
  };
  for (const auto& [name, shape] : expected) {
    ASSERT_EQ(f.tensors.count(name), 1u) << name;
    EXPECT_EQ(f.tensors.at(name).shape, shape) << name;
    EXPECT_EQ(f.tensors.at(name).dtype, "F32") << name;
  }
  EXPECT_EQ(f.tensors.count("optimizer.sgd.momentum_buffer.bn1.running_mean"), 0u) << "states have no optimizer state";
  // Same seed, same logical weights: the NHWC store's file holds the same bytes as the NCHW one's
  // (a KRSC weight is written as KCRS).
  const SafetensorsFile g = checkpoint_from_store(b);
  for (const auto& [name, t] : g.tensors) EXPECT_EQ(t.data, f.tensors.at(name).data) << name;
  // Element (k, c, r, s) of a conv weight sits at ((k*C + c)*R + r)*S + s of the file.
  const Tensor w = b.value("layer2.0.conv1.weight");  // [8, 4, 3, 3] stored KRSC
  ASSERT_EQ(w.layout(), Layout::kNHWC);
  const float* phys = w.data_as<float>();
  std::vector<float> file_values(8 * 4 * 9);
  std::memcpy(file_values.data(), g.tensors.at("layer2.0.conv1.weight").data.data(), file_values.size() * 4);
  for (int k = 0; k < 8; ++k)
    for (int c = 0; c < 4; ++c)
      for (int r = 0; r < 3; ++r)
        for (int s = 0; s < 3; ++s)
          ASSERT_EQ(file_values[((k * 4 + c) * 3 + r) * 3 + s], phys[((k * 3 + r) * 3 + s) * 4 + c]);
}

TEST(Checkpoint, LoadsAHandBuiltPyTorchStyleStateDict) {
  // What torch's state_dict of the same module tree holds: every weight and BN buffer, plus
  // num_batches_tracked counters (I64 scalars), BF16 where the user saved half precision.
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> named = {
      {"conv1.weight", {4, 3, 3, 3}}, {"fc.weight", {10, 16}}, {"fc.bias", {10}}};
  const std::vector<std::pair<std::string, std::int64_t>> bns = {
      {"bn1", 4},         {"layer1.0.bn1", 4}, {"layer1.0.bn2", 4},         {"layer2.0.bn1", 8},
      {"layer2.0.bn2", 8}, {"layer2.0.shortcut.1", 8}, {"layer3.0.bn1", 16}, {"layer3.0.bn2", 16},
      {"layer3.0.shortcut.1", 16}};
  for (const auto& [p, c] : bns)
    for (const char* s : {".weight", ".bias", ".running_mean", ".running_var"}) named.push_back({p + s, {c}});
  const std::vector<std::pair<std::string, std::vector<std::int64_t>>> convs = {
      {"layer1.0.conv1.weight", {4, 4, 3, 3}},   {"layer1.0.conv2.weight", {4, 4, 3, 3}},
      {"layer2.0.conv1.weight", {8, 4, 3, 3}},   {"layer2.0.conv2.weight", {8, 8, 3, 3}},
      {"layer2.0.shortcut.0.weight", {8, 4, 1, 1}}, {"layer3.0.conv1.weight", {16, 8, 3, 3}},
      {"layer3.0.conv2.weight", {16, 16, 3, 3}}, {"layer3.0.shortcut.0.weight", {16, 8, 1, 1}}};
  named.insert(named.end(), convs.begin(), convs.end());

  SafetensorsFile f;
  std::map<std::string, std::vector<float>> values;
  int salt = 0;
  for (const auto& [name, shape] : named) {
    std::int64_t n = 1;
    for (std::int64_t d : shape) n *= d;
    std::vector<float> v(static_cast<std::size_t>(n));
    ++salt;
    for (std::int64_t i = 0; i < n; ++i) v[i] = std::sin(0.37f * static_cast<float>(i) + static_cast<float>(salt));
    if (name.find("running_var") != std::string::npos)
      for (float& x : v) x = 1.5f + x;
    if (name == "fc.bias") {  // saved as BF16: exactly representable values
      for (float& x : v) x = float_from_bf16_bits(bf16_bits_from_float(x));
      SafeTensor t;
      t.dtype = "BF16";
      t.shape = shape;
      for (float x : v) {
        const std::uint16_t b = bf16_bits_from_float(x);
        t.data.push_back(static_cast<std::uint8_t>(b & 0xff));
        t.data.push_back(static_cast<std::uint8_t>(b >> 8));
      }
      f.tensors[name] = t;
    } else {
      f.tensors[name] = f32(shape, v);
    }
    values[name] = v;
  }
  for (const auto& [p, c] : bns) {
    SafeTensor t;
    t.dtype = "I64";
    t.data.assign(8, 0);
    t.data[0] = 3;
    f.tensors[p + ".num_batches_tracked"] = t;
  }
  // Through the file format, as PyTorch's safetensors.torch.save_file would write it.
  const std::vector<std::uint8_t> bytes = serialize_safetensors(f);
  const SafetensorsFile parsed = parse_safetensors(bytes.data(), bytes.size(), "torch.safetensors");
  for (Layout layout : {Layout::kNCHW, Layout::kNHWC}) {
    Context ctx;
    const Graph g = tiny_resnet(layout);
    ParameterStore store(g, ctx, 1);
    ASSERT_EQ(store.count(), named.size()) << "the hand-written list covers the whole model";
    load_checkpoint(parsed, store, {false, false}, "torch.safetensors");
    for (const auto& [name, v] : values) EXPECT_EQ(floats(store.value(name)), v) << name;
  }
}

TEST(Checkpoint, ErrorsNameEveryMissingUnexpectedAndMisShapedTensorAndChangeNothing) {
  Context ctx;
  const Graph g = tiny_resnet(Layout::kNCHW);
  ParameterStore a(g, ctx, 1), b(g, ctx, 2);
  Executor ex_a(g, a, ctx), ex_b(g, b, ctx);
  const SafetensorsFile good = checkpoint_from_store(a);
  const std::vector<float> before = floats(b.flat_params());

  SafetensorsFile f = good;
  f.tensors.erase("layer1.0.bn1.running_var");
  f.tensors.erase("optimizer.sgd.momentum_buffer.fc.weight");
  f.tensors["layer9.conv.weight"] = f32({1}, {1.f});
  f.tensors["fc.weight"] = f32({10, 15}, std::vector<float>(150, 0.5f));
  f.tensors["fc.bias"].dtype = "I32";
  const std::string msg = error_of([&] { load_checkpoint(f, b, {}, "ck.safetensors"); });
  EXPECT_NE(msg.find("ck.safetensors does not match the model"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing tensors: layer1.0.bn1.running_var, optimizer.sgd.momentum_buffer.fc.weight"),
            std::string::npos) << msg;
  EXPECT_NE(msg.find("unexpected tensors: layer9.conv.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"fc.weight\" has shape [10, 15], expected [10, 16]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"fc.bias\" is I32"), std::string::npos) << msg;
  EXPECT_EQ(floats(b.flat_params()), before) << "a failed load writes nothing";

  // Optimizer state of another optimizer: its tensors are unexpected, SGD's are missing.
  SafetensorsFile adam = good;
  for (auto it = adam.tensors.begin(); it != adam.tensors.end();)
    it = it->first.rfind("optimizer.", 0) == 0 ? adam.tensors.erase(it) : std::next(it);
  adam.tensors["optimizer.adamw.exp_avg.fc.bias"] = f32({10}, std::vector<float>(10, 0.f));
  const std::string m2 = error_of([&] { load_checkpoint(adam, b); });
  EXPECT_NE(m2.find("missing tensors: optimizer.sgd.momentum_buffer."), std::string::npos) << m2;
  EXPECT_NE(m2.find("(and "), std::string::npos) << "long lists are cut: " << m2;
  EXPECT_NE(m2.find("unexpected tensors: optimizer.adamw.exp_avg.fc.bias"), std::string::npos) << m2;
  // Weights-only loading ignores optimizer tensors and counters.
  EXPECT_NO_THROW(load_checkpoint(adam, b, {false, false}));

  SafetensorsFile no_meta = good;
  no_meta.metadata.erase("rng_offset");
  const std::string m3 = error_of([&] { load_checkpoint(no_meta, a, {}, "old.safetensors"); });
  EXPECT_NE(m3.find("old.safetensors: no \"rng_offset\" in __metadata__"), std::string::npos) << m3;
  no_meta.metadata["rng_offset"] = "-4";
  const std::string m4 = error_of([&] { load_checkpoint(no_meta, a); });
  EXPECT_NE(m4.find("\"rng_offset\" is \"-4\", not an unsigned integer"), std::string::npos) << m4;
  const std::string m5 = error_of([&] { load_checkpoint(good, b, {}, "s.safetensors"); });
  EXPECT_NE(m5.find("s.safetensors was written with seed 1 but the parameter store was built with seed 2"),
            std::string::npos) << m5;
  EXPECT_NE(error_of([&] { checkpoint_from_store(a, {{"seed", "3"}}); }).find("written by the parameter store"),
            std::string::npos);
}

// A learning rate of exactly 0 (a cosine schedule's last step) is a valid counter: saved and
// loaded back as 0. Error lists name up to 12 tensors in full and cut longer ones with
// "(and N more)": 12 missing are all named, 13 end in "(and 1 more)".
TEST(Checkpoint, AZeroRateLoadsAndTwelveNamesAreListedInFull) {
  Context ctx;
  const Graph g = tiny_resnet(Layout::kNCHW);
  ParameterStore a(g, ctx, 1), b(g, ctx, 1);
  Executor ex_a(g, a, ctx), ex_b(g, b, ctx);
  a.set_learning_rate(0.f);
  b.set_learning_rate(0.5f);
  const SafetensorsFile good = checkpoint_from_store(a);
  EXPECT_EQ(good.metadata.at("lr"), "0");
  EXPECT_NO_THROW(load_checkpoint(good, b));
  EXPECT_EQ(b.read_counters().learning_rate, 0.f);
  // The step count is an int64: INT64_MAX itself loads, one more is refused. Another format is refused.
  SafetensorsFile edge = good;
  edge.metadata["optimizer_step"] = "9223372036854775807";
  EXPECT_NO_THROW(load_checkpoint(edge, b));
  EXPECT_EQ(b.read_counters().step, std::numeric_limits<std::int64_t>::max());
  edge.metadata["optimizer_step"] = "9223372036854775808";
  EXPECT_NE(error_of([&] { load_checkpoint(edge, b); }).find("beyond a step count"), std::string::npos);
  edge = good;
  edge.metadata["format"] = "kestrel-checkpoint-0";
  EXPECT_NE(error_of([&] { load_checkpoint(edge, b, {}, "x.safetensors"); })
                .find("x.safetensors: format \"kestrel-checkpoint-0\", expected \"kestrel-checkpoint-1\""),
            std::string::npos);

  std::vector<std::string> optimizer_names;
  for (const auto& [name, t] : good.tensors)
    if (name.rfind("optimizer.", 0) == 0) optimizer_names.push_back(name);
  ASSERT_GE(optimizer_names.size(), 13u);
  for (const std::size_t n : {std::size_t{12}, std::size_t{13}}) {
    SafetensorsFile f = good;
    for (std::size_t i = 0; i < n; ++i) f.tensors.erase(optimizer_names[i]);
    const std::string msg = error_of([&] { load_checkpoint(f, b); });
    EXPECT_NE(msg.find(optimizer_names[11]), std::string::npos) << msg;  // the 12th is named
    if (n == 12) {
      EXPECT_EQ(msg.find("(and "), std::string::npos) << msg;
    } else {
      EXPECT_EQ(msg.find(optimizer_names[12]), std::string::npos) << msg;
      EXPECT_NE(msg.find("(and 1 more)"), std::string::npos) << msg;
    }
  }
}

TEST(Checkpoint, SavedAtomicallyAndReadBack) {
  Context ctx;
  const Graph g = tiny_resnet(Layout::kNCHW);
  ParameterStore a(g, ctx, 8);
  const std::string path = ::testing::TempDir() + "kestrel_checkpoint_test.safetensors";
  save_checkpoint(a, path, {{"step", "12"}});
  const SafetensorsFile f = read_safetensors(path);
  EXPECT_EQ(checkpoint_metadata_u64(f, "step"), 12u);
  EXPECT_EQ(checkpoint_metadata_u64(f, "seed"), 8u);
  EXPECT_EQ(checkpoint_metadata(f, "optimizer"), "none");
  std::remove(path.c_str());
}

// Read with nothing of Kestrel's parser: the layout of the safetensors specification, checked by
// hand on the file save_checkpoint writes for an NHWC run.
TEST(Checkpoint, TheFileIsPlainSafetensors) {
  Context ctx;
  const Graph g = tiny_resnet(Layout::kNHWC);
  ParameterStore a(g, ctx, 8);
  Executor ex(g, a, ctx);
  train_steps(ex, 1);
  const kestrel::testing::TempDir dir("checkpoint_plain");
  const std::string path = dir / "plain.safetensors";
  save_checkpoint(a, path, {{"epoch", "1"}});
  const std::vector<std::uint8_t> bytes = kestrel::testing::read_bytes(path);
  ASSERT_GT(bytes.size(), 8u);
  std::uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ(header_len % 8, 0u);
  ASSERT_LE(8 + header_len, bytes.size());
  const nlohmann::json header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + header_len);
  const std::size_t buffer = bytes.size() - 8 - header_len;
  ASSERT_TRUE(header.contains("__metadata__"));
  for (const auto& [k, v] : header["__metadata__"].items()) EXPECT_TRUE(v.is_string()) << k;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> spans;
  for (const auto& [name, e] : header.items()) {
    if (name == "__metadata__") continue;
    EXPECT_EQ(e["dtype"], "F32") << name;
    std::uint64_t n = 4;
    for (const auto& d : e["shape"]) n *= d.get<std::uint64_t>();
    const auto b = e["data_offsets"][0].get<std::uint64_t>(), end = e["data_offsets"][1].get<std::uint64_t>();
    EXPECT_EQ(end - b, n) << name;
    spans.push_back({b, end});
  }
  std::sort(spans.begin(), spans.end());
  std::uint64_t at = 0;
  for (const auto& [b, end] : spans) {
    EXPECT_EQ(b, at);
    at = end;
  }
  EXPECT_EQ(at, buffer) << "the tensors cover the byte buffer exactly";
  // conv weights in logical KCRS order, little-endian fp32.
  const nlohmann::json& w = header["layer2.0.conv1.weight"];
  EXPECT_EQ(w["shape"], nlohmann::json({8, 4, 3, 3}));
  const std::vector<float> logical = a.value("layer2.0.conv1.weight").to_float_vector();
  std::vector<float> stored(logical.size());
  std::memcpy(stored.data(), bytes.data() + 8 + header_len + w["data_offsets"][0].get<std::size_t>(), stored.size() * 4);
  EXPECT_TRUE(kestrel::testing::bit_equal(stored, logical));
}

TEST(Checkpoint, OptimizerNames) {
  EXPECT_EQ(optimizer_tensor_name(OptimizerKind::kAdamW, 1, "fc.weight"), "optimizer.adamw.exp_avg_sq.fc.weight");
  EXPECT_EQ(parse_optimizer_kind("sgd"), OptimizerKind::kSgd);
  EXPECT_NE(error_of([] { parse_optimizer_kind("lion"); }).find("unknown optimizer 'lion' (known: sgd, adamw, none)"),
            std::string::npos);
}
