#include "kestrel/layers/schedule.h"

#include <algorithm>
#include <cmath>

#include "kestrel/core/error.h"

namespace kestrel {
namespace {
constexpr double kPi = 3.14159265358979323846;
double cosine_between(double from, double to, double t) { return to + (from - to) * 0.5 * (1.0 + std::cos(kPi * t)); }

// A step schedule's decay of `lr` at step t: gamma for each milestone passed, counted from step 0,
// warm-up included (MultiStepLR chained with LinearLR multiplies both factors).
double after_milestones(const LrSchedule& s, double lr, std::int64_t t) {
  if (s.kind != LrSchedule::Kind::kStep) return lr;
  for (double m : s.milestones)
    if (static_cast<double>(t) >= m * s.total_steps) lr *= s.gamma;
  return lr;
}
}  // namespace

void validate(const LrSchedule& s) {
  KESTREL_CHECK(s.total_steps >= 1, "schedule: total steps must be >= 1, got ", s.total_steps);
  KESTREL_CHECK(std::isfinite(s.base) && s.base >= 0.f, "schedule: learning rate must be finite and >= 0, got ", s.base);
  KESTREL_CHECK(s.warmup_steps >= 0, "schedule: warm-up steps must be >= 0, got ", s.warmup_steps);
  KESTREL_CHECK(s.warmup_steps == 0 || s.warmup_steps < s.total_steps,
                "schedule: warm-up steps (", s.warmup_steps, ") must be below the total (", s.total_steps, ")");
  KESTREL_CHECK(s.kind != LrSchedule::Kind::kOneCycle || s.warmup_steps == 0,
                "schedule: warm-up does not apply to the one-cycle schedule (its own warm-up is pct_start)");
  KESTREL_CHECK(s.warmup_div >= 1.f, "schedule: warm-up divisor must be >= 1, got ", s.warmup_div);
  KESTREL_CHECK(s.gamma > 0.f && s.gamma <= 1.f, "schedule: step gamma must be in (0, 1], got ", s.gamma);
  for (std::size_t i = 0; i < s.milestones.size(); ++i) {
    KESTREL_CHECK(s.milestones[i] >= 0.0 && s.milestones[i] <= 1.0, "schedule: milestone ", s.milestones[i],
                  " is not a fraction of training in [0, 1]");
    KESTREL_CHECK(i == 0 || s.milestones[i] >= s.milestones[i - 1], "schedule: milestones must be sorted");
  }
  KESTREL_CHECK(s.min_fraction >= 0.f && s.min_fraction <= 1.f, "schedule: cosine minimum fraction must be in [0, 1]");
  KESTREL_CHECK(s.pct_start > 0.f && s.pct_start < 1.f && s.div_factor >= 1.f && s.final_div_factor >= 1.f,
                "schedule: one-cycle needs pct_start in (0, 1) and divisors >= 1");
}

float learning_rate_at(const LrSchedule& s, std::int64_t step) {
  validate(s);
  const std::int64_t t = std::clamp<std::int64_t>(step, 0, s.total_steps - 1);
  const double base = s.base;
  if (s.kind == LrSchedule::Kind::kOneCycle) {
    const double initial = base / s.div_factor;
    const double final_lr = initial / s.final_div_factor;
    const double up = std::max(1.0, static_cast<double>(s.pct_start) * s.total_steps - 1.0);
    const double down = std::max(1.0, static_cast<double>(s.total_steps - 1) - up);
    if (t <= up) return static_cast<float>(cosine_between(initial, base, t / up));
    return static_cast<float>(cosine_between(base, final_lr, std::min(1.0, (t - up) / down)));
  }
  if (t < s.warmup_steps) {
    const double start = base / s.warmup_div;
    return static_cast<float>(after_milestones(s, start + (base - start) * static_cast<double>(t) / s.warmup_steps, t));
  }
  switch (s.kind) {
    case LrSchedule::Kind::kConstant: return s.base;
    case LrSchedule::Kind::kStep: return static_cast<float>(after_milestones(s, base, t));
    case LrSchedule::Kind::kCosine: {
      const double span = std::max<std::int64_t>(1, s.total_steps - 1 - s.warmup_steps);
      return static_cast<float>(cosine_between(base, base * s.min_fraction, (t - s.warmup_steps) / span));
    }
    case LrSchedule::Kind::kOneCycle: break;
  }
  return s.base;
}

LrSchedule::Kind parse_schedule_kind(const std::string& name) {
  if (name == "step") return LrSchedule::Kind::kStep;
  if (name == "cosine") return LrSchedule::Kind::kCosine;
  if (name == "onecycle" || name == "one-cycle") return LrSchedule::Kind::kOneCycle;
  if (name == "constant") return LrSchedule::Kind::kConstant;
  KESTREL_FAIL("unknown schedule '", name, "' (known: step, cosine, onecycle, constant)");
}

const char* schedule_kind_name(LrSchedule::Kind k) {
  switch (k) {
    case LrSchedule::Kind::kConstant: return "constant";
    case LrSchedule::Kind::kStep: return "step";
    case LrSchedule::Kind::kCosine: return "cosine";
    case LrSchedule::Kind::kOneCycle: return "onecycle";
  }
  return "?";
}

}  // namespace kestrel
