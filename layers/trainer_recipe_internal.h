// Private to the trainer: the recipe a checkpoint records and a resumed run must repeat.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kestrel/layers/trainer.h"

namespace kestrel::trainer_detail {

// What training depends on besides the model, batch, data and seed (which the trainer checks on
// their own): dtype, layout, epochs, the optimizer and its settings, the schedule as the trainer
// runs it (warm-up epochs folded into its steps), weight decay on 1-D parameters, label
// smoothing, clipping, dropout, augmentation, the non-finite policy and fusion. Settings that
// change no bit of training (logging, checkpoint cadence, CUDA Graphs, BN recomputation, the
// evaluation batch) are left out. Keys are the checkpoint's metadata keys: "dtype", "layout",
// "epochs" (recorded before recipes were) and "recipe.<name>"; values are exact text.
using Recipe = std::vector<std::pair<std::string, std::string>>;
Recipe training_recipe(const TrainerConfig& cfg);

// The entries of `recipe` that `metadata` records with another value, each as
// "<name> <recorded> (this run: <value>)"; *recorded_any says whether it records any
// "recipe." key (checkpoints of Kestrel before 2026-11-27 record none).
std::vector<std::string> recipe_differences(const std::map<std::string, std::string>& metadata,
                                            const Recipe& recipe, bool* recorded_any);

}  // namespace kestrel::trainer_detail
