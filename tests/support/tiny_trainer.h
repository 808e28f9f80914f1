// A trainer configuration small enough for tests: ResNet-8 with stages of width w, 2w, 4w, two
// epochs, no flips, step schedule from 0.05, the loss read back every few steps.
#pragma once

#include <cstdint>
#include <string>

#include "kestrel/layers/trainer.h"

namespace kestrel::testing {

inline TrainerConfig tiny_trainer_config(std::int64_t width, std::int64_t batch, int log_every) {
  TrainerConfig c;
  c.net = resnet_config("resnet8");
  c.net.stem_width = width;
  c.net.widths = {width, 2 * width, 4 * width};
  c.net.name = "resnet8-w" + std::to_string(width);
  c.epochs = 2;
  c.batch = batch;
  c.schedule.base = 0.05f;
  c.log_every = log_every;
  c.random_flip = false;
  return c;
}

}  // namespace kestrel::testing
