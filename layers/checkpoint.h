// Checkpoints: a ParameterStore <-> the safetensors format (layers/safetensors.h), readable by
// PyTorch (safetensors.torch.load_file) and able to read PyTorch's state_dict files.
//
// Contract:
// - Every parameter and state is stored under its graph name, which follows PyTorch's module
//   naming ("conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "fc.bias"), as F32 in
//   logical order (NCHW / KCRS, also for NHWC runs), so the file is a PyTorch state_dict.
// - Optimizer state is stored per parameter as "optimizer.<kind>.<buffer>.<parameter name>":
//   "optimizer.sgd.momentum_buffer.conv1.weight", "optimizer.adamw.exp_avg...",
//   "optimizer.adamw.exp_avg_sq..." (PyTorch's state keys).
// - __metadata__ holds "format" = kCheckpointFormat, the store's counters ("seed", "rng_offset",
//   "optimizer_step", "lr") and whatever the caller adds (the trainer: step, epoch, model, ...).
// - Loading validates everything before it writes anything: every expected tensor present with
//   the expected shape and a floating dtype (F32, BF16, F16; converted to the fp32 masters), no
//   unexpected tensor. The error names each missing, unexpected and mis-shaped tensor. PyTorch's
//   "<bn>.num_batches_tracked" counters are accepted and ignored. bf16 shadows are refreshed.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kestrel/core/parameter_store.h"
#include "kestrel/layers/safetensors.h"

namespace kestrel {

constexpr const char* kCheckpointFormat = "kestrel-checkpoint-1";

// optimizer_kind_name (core/parameter_store.h) back: raises for anything else, listing the known names.
OptimizerKind parse_optimizer_kind(const std::string& name);
// PyTorch's names of an optimizer's state buffers, in ParameterStore::opt_state order.
std::vector<std::string> optimizer_buffer_names(OptimizerKind kind);
// "optimizer.<kind>.<buffer>.<param>".
std::string optimizer_tensor_name(OptimizerKind kind, int buffer, const std::string& param);

// The checkpoint of `store` (synchronises its stream). `metadata` is added to __metadata__; it
// may not redefine the keys the store writes (format, seed, rng_offset, optimizer_step, lr).
SafetensorsFile checkpoint_from_store(const ParameterStore& store,
                                      const std::map<std::string, std::string>& metadata = {});
// checkpoint_from_store, written with write_safetensors_atomic (temporary file + rename).
void save_checkpoint(const ParameterStore& store, const std::string& path,
                     const std::map<std::string, std::string>& metadata = {});

struct CheckpointLoadOptions {
  // Load the optimizer state of the store's optimizer kind (required to be in the file). Off,
  // every "optimizer.*" tensor is ignored (weights-only loads). On, a file with optimizer state
  // and a store without any yet (no training Executor compiled on it) is an error: the state
  // would be dropped while the step count (bias correction) is restored. A file without
  // optimizer state (e.g. a PyTorch state_dict) loads into such a store.
  bool optimizer = true;
  // Restore the RNG offset, optimizer step and learning rate from __metadata__ (required then);
  // the store must have been built with the checkpoint's "seed".
  bool counters = true;
};

// Loads `file` into `store` (see the contract above); `name` names the file in errors.
void load_checkpoint(const SafetensorsFile& file, ParameterStore& store,
                     const CheckpointLoadOptions& options = {},
                     const std::string& name = "checkpoint");

// A metadata value, or an Error naming the file and the key when it is missing or malformed.
std::string checkpoint_metadata(const SafetensorsFile& file, const std::string& key,
                                const std::string& name = "checkpoint");
std::uint64_t checkpoint_metadata_u64(const SafetensorsFile& file, const std::string& key,
                                      const std::string& name = "checkpoint");

}  // namespace kestrel
