// A run refused part-way on the GPU (check_numerics finding the NaN that the first batch norm
// wrote, after it updated its running statistics and dropout took its offset) puts back the
// statistics and the offset with device-to-device copies in stream order, and a retry with good
// data continues the same run bit for bit: the protocol of tests/support/refused_run.h, which
// the CPU suite also runs (there also with a label out of range, which the GPU's loss turns
// into a NaN instead of an error).
#include <gtest/gtest.h>

#include "kestrel/core/context.h"
#include "refused_run.h"
#include "test_support.h"

TEST(ExecutorRollbackCuda, ARunRefusedByCheckNumericsChangesNothingAndTheRetryContinues) {
  KESTREL_REQUIRE_CUDA_OR_SKIP();
  kestrel::Context gpu(kestrel::Device::cuda(0));
  kestrel::ConvPolicy exact;  // the two stores' steps must give the same bits
  exact.deterministic = true;
  exact.allow_tf32 = false;
  gpu.set_conv_policy(exact);
  kestrel::testing::check_refused_run_changes_nothing(gpu, kestrel::testing::Refusal::kNaNImage);
}
