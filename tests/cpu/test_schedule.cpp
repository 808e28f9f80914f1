// Learning-rate schedules against their closed forms.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "kestrel/core/error.h"
#include "kestrel/layers/schedule.h"

using kestrel::LrSchedule;
using kestrel::learning_rate_at;

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
