#include "kestrel/layers/trainer_recipe_internal.h"

#include "kestrel/core/number_text_internal.h"
#include "kestrel/layers/checkpoint.h"
#include "kestrel/layers/schedule.h"

namespace kestrel::trainer_detail {
namespace {
const std::string kPrefix = "recipe.";

std::string text(float v) { return detail::shortest_float_text(v); }
std::string text(bool v) { return v ? "true" : "false"; }

std::string milestones_text(const std::vector<double>& m) {
  std::string s;
  for (double f : m) s += (s.empty() ? "" : ",") + detail::shortest_double_text(f);
  return s;
}
}  // namespace

Recipe training_recipe(const TrainerConfig& cfg) {
  Recipe r = {{"dtype", dtype_name(cfg.dtype)},
              {"layout", layout_name(cfg.layout)},
              {"epochs", std::to_string(cfg.epochs)}};
  const auto add = [&r](const std::string& name, const std::string& value) { r.emplace_back(kPrefix + name, value); };
  add("optimizer", optimizer_kind_name(cfg.optimizer));
  if (cfg.optimizer == OptimizerKind::kSgd) {
    add("momentum", text(cfg.sgd.momentum));
    add("dampening", text(cfg.sgd.dampening));
    add("weight_decay", text(cfg.sgd.weight_decay));
    add("nesterov", text(cfg.sgd.nesterov));
  } else if (cfg.optimizer == OptimizerKind::kAdamW) {
    add("beta1", text(cfg.adamw.beta1));
    add("beta2", text(cfg.adamw.beta2));
    add("eps", text(cfg.adamw.eps));
    add("weight_decay", text(cfg.adamw.weight_decay));
  }
  add("decay_bn_and_bias", text(cfg.decay_bn_and_bias));
  const LrSchedule& s = cfg.schedule;
  add("schedule", schedule_kind_name(s.kind));
  add("lr", text(s.base));
  add("warmup_steps", std::to_string(s.warmup_steps));
  add("warmup_div", text(s.warmup_div));
  switch (s.kind) {
    case LrSchedule::Kind::kStep:
      add("milestones", milestones_text(s.milestones));
      add("gamma", text(s.gamma));
      break;
    case LrSchedule::Kind::kCosine: add("min_fraction", text(s.min_fraction)); break;
    case LrSchedule::Kind::kOneCycle:
      add("pct_start", text(s.pct_start));
      add("div_factor", text(s.div_factor));
      add("final_div_factor", text(s.final_div_factor));
      break;
    case LrSchedule::Kind::kConstant: break;
  }
  add("label_smoothing", text(cfg.label_smoothing));
  add("max_grad_norm", text(cfg.max_grad_norm));
  add("dropout", text(cfg.net.dropout));
  add("random_crop", text(cfg.random_crop));
  add("random_flip", text(cfg.random_flip));
  add("pad", std::to_string(cfg.pad));
  add("nonfinite", cfg.nonfinite == NonFinitePolicy::kSkip ? "skip" : "stop");
  add("fuse", text(cfg.fuse));
  return r;
}

std::vector<std::string> recipe_differences(const std::map<std::string, std::string>& metadata,
                                            const Recipe& recipe, bool* recorded_any) {
  *recorded_any = false;
  for (const auto& [key, value] : metadata) *recorded_any = *recorded_any || key.rfind(kPrefix, 0) == 0;
  std::vector<std::string> out;
  for (const auto& [key, value] : recipe) {
    const auto it = metadata.find(key);
    if (it == metadata.end() || it->second == value) continue;
    const std::string name = key.rfind(kPrefix, 0) == 0 ? key.substr(kPrefix.size()) : key;
    out.push_back(name + " " + it->second + " (this run: " + value + ")");
  }
  return out;
}

}  // namespace kestrel::trainer_detail
