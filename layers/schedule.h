// Learning-rate schedules, evaluated on the host once per step (the executor reads the rate
// from device memory, so a replayed CUDA Graph picks up each new value).
//
// kConstant: base.  kStep: base * gamma^(number of milestones passed), milestones given as
// fractions of the total steps (He et al.: 0.5 and 0.75, gamma 0.1).  kCosine: from base down
// to base * min_fraction along half a cosine.  kOneCycle: PyTorch's OneCycleLR (cos annealing):
// base/div_factor up to base over pct_start of the steps, then down to base/(div*final_div).
// A linear warm-up over warmup_steps (from base/warmup_div) applies before step, cosine and
// constant schedules (one-cycle has its own).
//
// Against PyTorch's schedulers stepped once per batch (what each schedule equals, and where it
// differs):
// - kStep: MultiStepLR with milestones at those fractions; a warm-up does not shift them
//   (milestones count from step 0, warm-up included: LinearLR chained with MultiStepLR, whose
//   factors multiply, so a milestone inside the warm-up scales the rest of the warm-up too).
// - kCosine: CosineAnnealingLR(T_max = total_steps - 1 - warmup_steps, eta_min = base *
//   min_fraction), so the last step's rate is exactly eta_min (0 by default: the last step does
//   not move); CosineAnnealingLR(T_max = total_steps) would stop one step short of it. With a
//   single step after the warm-up (T_max = 0, where PyTorch would divide by zero; total_steps 1
//   included) that step runs at base: one step has no room to descend.
// - kOneCycle: the learning rate of OneCycleLR(max_lr = base, anneal_strategy='cos',
//   three_phase=False), to fp32 rounding; momentum is not cycled (PyTorch's default cycle_momentum=True
//   also moves SGD's momentum / Adam's beta1 between 0.95 and 0.85): OneCycleLR with
//   cycle_momentum=False. Under 2 / pct_start steps the rise takes at least one step, where
//   PyTorch's formula would divide by (almost) zero.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kestrel {

struct LrSchedule {
  enum class Kind : std::uint8_t { kConstant, kStep, kCosine, kOneCycle };
  Kind kind = Kind::kStep;
  float base = 0.1f;
  std::int64_t total_steps = 1;
  std::int64_t warmup_steps = 0;
  float warmup_div = 10.f;
  std::vector<double> milestones = {0.5, 0.75};  // kStep, fractions of total_steps
  float gamma = 0.1f;                           // kStep
  float min_fraction = 0.f;                     // kCosine
  float pct_start = 0.3f, div_factor = 25.f, final_div_factor = 1e4f;  // kOneCycle
};

// The rate for 0-based step `step` (clamped to [0, total_steps - 1]). Raises kestrel::Error for
// invalid settings (total_steps < 1, negative base, milestones outside [0, 1] or unsorted, ...).
float learning_rate_at(const LrSchedule& s, std::int64_t step);
void validate(const LrSchedule& s);
LrSchedule::Kind parse_schedule_kind(const std::string& name);  // step, cosine, onecycle, constant
const char* schedule_kind_name(LrSchedule::Kind k);

}  // namespace kestrel
