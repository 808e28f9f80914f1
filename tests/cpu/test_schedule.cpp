// Learning-rate schedules against their closed forms.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "kestrel/core/error.h"
#include "kestrel/layers/schedule.h"

using kestrel::LrSchedule;
using kestrel::Error;
using kestrel::learning_rate_at;
using kestrel::parse_schedule_kind;
using kestrel::schedule_kind_name;
using kestrel::validate;

TEST(Schedule, StepDividesByTenAtHalfAndThreeQuarters) {
  LrSchedule s;
  s.kind = LrSchedule::Kind::kStep;
  s.base = 0.1f;
  s.total_steps = 1000;
  EXPECT_FLOAT_EQ(learning_rate_at(s, 0), 0.1f);
  EXPECT_FLOAT_EQ(learning_rate_at(s, 499), 0.1f);
  EXPECT_FLOAT_EQ(learning_rate_at(s, 500), 0.01f);
  EXPECT_FLOAT_EQ(learning_rate_at(s, 749), 0.01f);
  EXPECT_FLOAT_EQ(learning_rate_at(s, 750), 0.001f);
  EXPECT_FLOAT_EQ(learning_rate_at(s, 5000), 0.001f) << "clamped to the last step";
}

TEST(Schedule, CosineFollowsHalfCosineWithWarmup) {
  LrSchedule s;
  s.kind = LrSchedule::Kind::kCosine;
  s.base = 0.4f;
  s.total_steps = 101;
  s.warmup_steps = 10;
  s.warmup_div = 4.f;
  EXPECT_FLOAT_EQ(learning_rate_at(s, 0), 0.1f);
  EXPECT_NEAR(learning_rate_at(s, 5), 0.1 + 0.3 * 0.5, 1e-7);
  EXPECT_FLOAT_EQ(learning_rate_at(s, 10), 0.4f);
  const double mid = 0.4 * 0.5 * (1 + std::cos(3.14159265358979 * 45.0 / 90.0));
  EXPECT_NEAR(learning_rate_at(s, 55), mid, 1e-6);
  EXPECT_NEAR(learning_rate_at(s, 40), 0.3, 1e-6);  // a third of the way: 0.4 (1 + cos(pi/3)) / 2
  EXPECT_NEAR(learning_rate_at(s, 100), 0.0, 1e-7);
  // Down to base * min_fraction: 0.04 at the end, halfway between at the middle.
  s.warmup_steps = 0;
  s.min_fraction = 0.1f;
  EXPECT_NEAR(learning_rate_at(s, 100), 0.04, 1e-7);
  EXPECT_NEAR(learning_rate_at(s, 50), 0.22, 1e-6);
}

TEST(Schedule, OneCycleRisesThenFallsLikePyTorch) {
  LrSchedule s;
  s.kind = LrSchedule::Kind::kOneCycle;
  s.base = 1.0f;
  s.total_steps = 100;
  s.pct_start = 0.3f;
  // PyTorch: initial = max/25, peak at step pct*total - 1 = 29, final = initial/1e4 at step 99.
  EXPECT_NEAR(learning_rate_at(s, 0), 0.04, 1e-7);
  EXPECT_NEAR(learning_rate_at(s, 29), 1.0, 1e-6);
  EXPECT_NEAR(learning_rate_at(s, 99), 0.04 / 1e4, 1e-9);
  EXPECT_LT(learning_rate_at(s, 60), learning_rate_at(s, 40));
  // Cosine annealing (PyTorch's _annealing_cos: end + (start - end) / 2 (cos(pi pct) + 1)), not
  // linear, in both phases: up from 0.04 over 29 steps, down to 4e-6 over 70.
  const double pi = 3.14159265358979;
  auto annealed = [&](double start, double end, double pct) { return end + (start - end) / 2 * (std::cos(pi * pct) + 1); };
  EXPECT_NEAR(learning_rate_at(s, 10), annealed(0.04, 1.0, 10.0 / 29), 1e-6);
  EXPECT_NEAR(learning_rate_at(s, 39), annealed(1.0, 4e-6, 10.0 / 70), 1e-6);  // linear: 0.857
}

// Warm-up from base / warmup_div applies before the constant and step schedules too; the
// milestones count from step 0, warm-up included.
TEST(Schedule, ConstantAndStepFollowTheirWarmup) {
  LrSchedule s;
  s.kind = LrSchedule::Kind::kConstant;
  s.base = 0.2f;
  s.total_steps = 100;
  EXPECT_FLOAT_EQ(learning_rate_at(s, 0), 0.2f);
  EXPECT_FLOAT_EQ(learning_rate_at(s, 99), 0.2f);
  s.warmup_steps = 10;
  s.warmup_div = 5.f;
  EXPECT_NEAR(learning_rate_at(s, 0), 0.04, 1e-7);
  EXPECT_NEAR(learning_rate_at(s, 5), 0.04 + 0.16 * 0.5, 1e-7);
  EXPECT_FLOAT_EQ(learning_rate_at(s, 10), 0.2f);
  s.kind = LrSchedule::Kind::kStep;
  EXPECT_NEAR(learning_rate_at(s, 5), 0.12, 1e-7);
  EXPECT_FLOAT_EQ(learning_rate_at(s, 49), 0.2f);
  EXPECT_NEAR(learning_rate_at(s, 50), 0.02, 1e-8);
  EXPECT_NEAR(learning_rate_at(s, 75), 0.002, 1e-9);
}

TEST(Schedule, RejectsBadSettings) {
  LrSchedule s;
  s.total_steps = 0;
  EXPECT_THROW(learning_rate_at(s, 0), kestrel::Error);
  s.total_steps = 10;
  s.base = -1.f;
  EXPECT_THROW(learning_rate_at(s, 0), kestrel::Error);
  s.base = 0.1f;
  s.milestones = {0.75, 0.5};
  EXPECT_THROW(learning_rate_at(s, 0), kestrel::Error);
  s.milestones = {0.5, 1.5};
  EXPECT_THROW(learning_rate_at(s, 0), kestrel::Error);
  s.milestones = {-0.1};
  EXPECT_THROW(learning_rate_at(s, 0), kestrel::Error);
  s.milestones = {0.5};
  // Warm-up: not negative, shorter than the run, and none for one-cycle, which warms up on its
  // own (learning_rate_at would ignore it).
  const auto message = [&] {
    try {
      kestrel::validate(s);
    } catch (const kestrel::Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  s.warmup_steps = -3;
  EXPECT_NE(message().find("warm-up steps must be >= 0, got -3"), std::string::npos) << message();
  s.warmup_steps = 10;
  EXPECT_NE(message().find("warm-up steps (10) must be below the total (10)"), std::string::npos) << message();
  s.warmup_steps = 5;
  kestrel::validate(s);
  s.kind = LrSchedule::Kind::kOneCycle;
  EXPECT_NE(message().find("warm-up does not apply to the one-cycle schedule"), std::string::npos) << message();
  EXPECT_THROW(kestrel::parse_schedule_kind("exp"), kestrel::Error);
  EXPECT_EQ(kestrel::parse_schedule_kind("cosine"), LrSchedule::Kind::kCosine);
}

// Past the last step every schedule holds its final value (learning_rate_at clamps the step to
// total_steps - 1): the cosine must not come back up after reaching base * min_fraction.
TEST(Schedule, EveryKindHoldsItsLastValuePastTheEnd) {
  using kestrel::LrSchedule;
  for (LrSchedule::Kind k : {LrSchedule::Kind::kStep, LrSchedule::Kind::kCosine,
                             LrSchedule::Kind::kOneCycle, LrSchedule::Kind::kConstant}) {
    LrSchedule s;
    s.kind = k;
    s.base = 0.4f;
    s.total_steps = 101;
    s.min_fraction = 0.1f;
    const float last = kestrel::learning_rate_at(s, 100);
    EXPECT_EQ(kestrel::learning_rate_at(s, 101), last) << kestrel::schedule_kind_name(k);
    EXPECT_EQ(kestrel::learning_rate_at(s, 1000000), last) << kestrel::schedule_kind_name(k);
  }
}

// Documented ranges are inclusive where schedule.h / validate() say so: gamma in (0, 1],
// warm-up divisor >= 1, milestones sorted (equal ones allowed: both apply at that step).
TEST(Schedule, AcceptsItsInclusiveBoundaries) {
  LrSchedule s;
  s.kind = LrSchedule::Kind::kStep;
  s.base = 0.3f;
  s.total_steps = 40;
  s.gamma = 1.0f;  // no decay at all
  EXPECT_NO_THROW(validate(s));
  for (std::int64_t t : {0, 19, 20, 30, 39}) EXPECT_FLOAT_EQ(learning_rate_at(s, t), 0.3f) << t;

  // Two milestones at the same fraction: gamma twice at step 20, from step 20 on.
  s.gamma = 0.5f;
  s.milestones = {0.5, 0.5};
  EXPECT_NO_THROW(validate(s));
  EXPECT_NEAR(learning_rate_at(s, 19), 0.3, 1e-7);
  EXPECT_NEAR(learning_rate_at(s, 20), 0.3 * 0.25, 1e-7);
  EXPECT_NEAR(learning_rate_at(s, 39), 0.3 * 0.25, 1e-7);

  // A warm-up divisor of exactly 1 starts the warm-up at the base rate: flat.
  LrSchedule c;
  c.kind = LrSchedule::Kind::kConstant;
  c.base = 0.2f;
  c.total_steps = 30;
  c.warmup_steps = 10;
  c.warmup_div = 1.0f;
  EXPECT_NO_THROW(validate(c));
  for (std::int64_t t : {0, 3, 9, 10, 29}) EXPECT_FLOAT_EQ(learning_rate_at(c, t), 0.2f) << t;
  // Milestones at 0 and 1 are fractions of training too: the first decays from step 0, the
  // second never (the last step is total - 1).
  s.milestones = {0.0, 1.0};
  EXPECT_NO_THROW(validate(s));
  for (std::int64_t t : {0, 39}) EXPECT_NEAR(learning_rate_at(s, t), 0.3 * 0.5, 1e-7) << t;
  s.milestones.clear();
  // Below the boundaries: refused.
  c.warmup_div = 0.99f;
  EXPECT_THROW(validate(c), Error);
  s.gamma = 1.01f;
  EXPECT_THROW(validate(s), Error);
}

// A one-cycle run shorter than 2 / pct_start steps: the rise takes one step (schedule.h), then
// the cosine descends over the remaining total - 2 steps to base / (div * final_div).
// Hand-computed for total 5, pct_start 0.3 (pct * total - 1 = 0.5 < 1, so up = 1, down = 3).
TEST(Schedule, OneCycleShortRunRisesInOneStep) {
  LrSchedule s;
  s.kind = LrSchedule::Kind::kOneCycle;
  s.base = 1.0f;
  s.total_steps = 5;
  s.pct_start = 0.3f;
  s.div_factor = 10.f;
  s.final_div_factor = 100.f;
  const double pi = 3.14159265358979323846;
  const double initial = 0.1, final_lr = 0.001;
  const auto cos_anneal = [&](double from, double to, double pct) { return to + (from - to) / 2 * (1 + std::cos(pi * pct)); };
  EXPECT_NEAR(learning_rate_at(s, 0), initial, 1e-7);
  EXPECT_NEAR(learning_rate_at(s, 1), 1.0, 1e-6);
  EXPECT_NEAR(learning_rate_at(s, 2), cos_anneal(1.0, final_lr, 1.0 / 3), 1e-6);
  EXPECT_NEAR(learning_rate_at(s, 3), cos_anneal(1.0, final_lr, 2.0 / 3), 1e-6);
  EXPECT_NEAR(learning_rate_at(s, 4), final_lr, 1e-7);
  // Two steps: up one step, and nothing left to descend.
  s.total_steps = 2;
  EXPECT_NEAR(learning_rate_at(s, 0), initial, 1e-7);
  EXPECT_NEAR(learning_rate_at(s, 1), 1.0, 1e-6);
  for (std::int64_t t = 0; t < 2; ++t) EXPECT_TRUE(std::isfinite(learning_rate_at(s, t)));
}

TEST(Schedule, NamesParseWithTheirAliases) {
  EXPECT_EQ(parse_schedule_kind("onecycle"), LrSchedule::Kind::kOneCycle);
  EXPECT_EQ(parse_schedule_kind("one-cycle"), LrSchedule::Kind::kOneCycle);
  EXPECT_EQ(parse_schedule_kind("step"), LrSchedule::Kind::kStep);
  EXPECT_EQ(parse_schedule_kind("constant"), LrSchedule::Kind::kConstant);
  for (LrSchedule::Kind k : {LrSchedule::Kind::kConstant, LrSchedule::Kind::kStep, LrSchedule::Kind::kCosine,
                             LrSchedule::Kind::kOneCycle})
    EXPECT_EQ(parse_schedule_kind(schedule_kind_name(k)), k);
}

// PyTorch's LinearLR chained with MultiStepLR multiplies both factors, so a milestone inside the
// warm-up scales the rest of the warm-up: base 1, 100 steps, warm-up 20 from 0.1, milestone at
// step 10, gamma 0.1: lr(t) = (0.1 + 0.9 t / 20) * (t >= 10 ? 0.1 : 1), then 0.1 from step 20.
TEST(Schedule, AMilestoneInsideTheWarmupScalesTheRestOfIt) {
  LrSchedule s;
  s.kind = LrSchedule::Kind::kStep;
  s.base = 1.f;
  s.total_steps = 100;
  s.warmup_steps = 20;
  s.warmup_div = 10.f;
  s.milestones = {0.1};
  s.gamma = 0.1f;
  for (std::int64_t t = 0; t < 100; ++t) {
    const double warm = t < 20 ? 0.1 + 0.9 * static_cast<double>(t) / 20 : 1.0;
    EXPECT_NEAR(learning_rate_at(s, t), warm * (t >= 10 ? 0.1 : 1.0), 1e-7) << "step " << t;
  }
}

// One step after the warm-up (and a one-step run): a cosine has no room to descend, and that step
// runs at base; with two it goes from base to base * min_fraction.
TEST(Schedule, CosineWithOneStepAfterTheWarmupRunsItAtBase) {
  LrSchedule s;
  s.kind = LrSchedule::Kind::kCosine;
  s.base = 0.5f;
  s.min_fraction = 0.1f;
  s.total_steps = 10;
  s.warmup_steps = 9;
  EXPECT_FLOAT_EQ(learning_rate_at(s, 9), 0.5f);
  s.total_steps = 1;
  s.warmup_steps = 0;
  EXPECT_FLOAT_EQ(learning_rate_at(s, 0), 0.5f);
  s.total_steps = 2;
  EXPECT_FLOAT_EQ(learning_rate_at(s, 0), 0.5f);
  EXPECT_FLOAT_EQ(learning_rate_at(s, 1), 0.05f);
}

// The documented ranges at their edges (schedule.h, validate()): a rate of exactly 0 is a valid
// (frozen) schedule, a non-finite one is not; gamma is in (0, 1]; min_fraction in [0, 1]; pct_start
// in (0, 1); both one-cycle divisors >= 1; warm-up steps >= 0.
TEST(Schedule, ValidatesEveryRangeAtItsEdges) {
  LrSchedule s;
  s.kind = LrSchedule::Kind::kStep;
  s.total_steps = 20;
  s.base = 0.f;  // allowed: every step runs at 0
  EXPECT_NO_THROW(validate(s));
  for (std::int64_t t : {0, 10, 19}) EXPECT_EQ(learning_rate_at(s, t), 0.f) << t;
  for (float bad : {std::nanf(""), INFINITY}) {
    s.base = bad;
    EXPECT_THROW(validate(s), Error) << bad;
  }
  s.base = 0.1f;
  s.gamma = 0.f;  // gamma must be > 0
  EXPECT_THROW(validate(s), Error);
  s.gamma = 0.1f;
  s.warmup_steps = -1;
  EXPECT_THROW(validate(s), Error);
  s.warmup_steps = 0;

  // min_fraction 1: the cosine stays at base (closed form: base + 0 * cos(...)).
  LrSchedule c;
  c.kind = LrSchedule::Kind::kCosine;
  c.base = 0.3f;
  c.total_steps = 11;
  c.min_fraction = 1.f;
  EXPECT_NO_THROW(validate(c));
  for (std::int64_t t : {0, 5, 10}) EXPECT_FLOAT_EQ(learning_rate_at(c, t), 0.3f) << t;
  c.min_fraction = -0.01f;
  EXPECT_THROW(validate(c), Error);
  c.min_fraction = 1.01f;
  EXPECT_THROW(validate(c), Error);

  // One-cycle: div_factor 1 starts at base itself (PyTorch: initial_lr = max_lr / div_factor).
  LrSchedule o;
  o.kind = LrSchedule::Kind::kOneCycle;
  o.base = 0.5f;
  o.total_steps = 100;
  o.div_factor = 1.f;
  o.final_div_factor = 1.f;
  EXPECT_NO_THROW(validate(o));
  EXPECT_FLOAT_EQ(learning_rate_at(o, 0), 0.5f);
  EXPECT_FLOAT_EQ(learning_rate_at(o, 99), 0.5f);  // final = initial / 1 = base
  o.final_div_factor = 0.5f;
  EXPECT_THROW(validate(o), Error);
  o.final_div_factor = 1e4f;
  o.div_factor = 0.5f;
  EXPECT_THROW(validate(o), Error);
  o.div_factor = 25.f;
  for (float bad : {0.f, 1.f}) {
    o.pct_start = bad;
    EXPECT_THROW(validate(o), Error) << bad;
  }
}
