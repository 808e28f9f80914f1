// Shared pieces of the seed experiments (layers/experiments/*.h): image data as float features,
// moving batches in and out of an executor on either backend, accuracy evaluation, gradient
// norms, and the CSV tables the programs write next to their charts.
//
// Contract: everything raises kestrel::Error on bad input (never exits); host <-> device copies
// are explicit and ordered on the context's stream.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "kestrel/core/executor.h"
#include "kestrel/layers/cifar10.h"

namespace kestrel::experiments {

// Philox offsets of the experiments' own draws (inputs, labels): a tag in the high bits keeps
// them apart from the small offsets that parameter initialisation (parameter index) and dropout
// (step counter) use with the same seed. Use experiment_stream(k) for draw k.
constexpr std::uint64_t experiment_stream(std::uint64_t k) { return 0x4558505400000000ull | k; }  // "EXPT"

// Images as floats: [count, 3, side, side] in logical NCHW order, normalised per channel with
// the training split's mean and standard deviation; labels as int32.
struct FloatImages {
  std::vector<float> x;
  std::vector<std::int32_t> y;
  std::int64_t count = 0, side = 0;
  std::int64_t features() const { return 3 * side * side; }
};

struct FloatDataset {
  FloatImages train, test;
  std::string source;
};

// The first n_train / n_test images of `data`, cut to the centre `crop` x `crop` pixels and then
// averaged over `pool` x `pool` blocks (side = crop / pool). Raises when the splits are too small
// or crop is not in 1..32 and a multiple of pool.
FloatDataset to_float_dataset(const CifarDataset& data, std::int64_t n_train, std::int64_t n_test, int crop,
                              int pool);

// The synthetic stand-in (synthetic_cifar10) when `dir` is empty, else load_cifar10(dir).
CifarDataset load_or_synthesise(const std::string& dir, std::int64_t n_train, std::int64_t n_test,
                                std::uint64_t seed);

// Copies rows order[first .. first + batch) of `src` (wrapping around the end of `order`) into
// the executor's inputs `x_name` (shape [batch, ...] matching the images) and `y_name`.
void feed_batch(Executor& ex, const FloatImages& src, const std::vector<std::int32_t>& order, std::int64_t first,
                const std::string& x_name, const std::string& y_name);

// A split resident on a context's device, uploaded once: images [count, 3, side, side] in a
// graph's dtype and layout (each image is contiguous: the batch index is outermost in NCHW and
// NHWC alike), labels int32 on the device and on the host.
struct DeviceImages {
  Tensor x, y;
  std::vector<std::int32_t> labels;
  std::int64_t count = 0;
};
DeviceImages upload_images(const FloatImages& src, DType dtype, Layout layout, Context& ctx);

// int32 values on the context's device (a batch order, labels).
Tensor device_ints(const std::vector<std::int32_t>& values, Context& ctx);

// Gathers images order[first .. first + batch) into the executor's inputs on the device (no host
// round trip, so a training loop can run ahead of the host). `order` is int32 on the context's
// device with at least first + batch entries; the inputs must have src's dtype and layout.
void feed_batch(Executor& ex, const DeviceImages& src, const Tensor& order, std::int64_t first,
                const std::string& x_name, const std::string& y_name);

// Host floats of any tensor (copied from the device when needed), in logical order.
std::vector<float> to_host(const Tensor& t, Context& ctx);
// Writes host floats (logical order) into a tensor of the same element count on any device.
void from_host(Tensor& t, const std::vector<float>& values, Context& ctx);

// Top-1 accuracy of an executor's output `logits` over the whole split, batch by batch (the last
// batch is filled up with repeated images that are not counted).
double accuracy(Executor& ex, const FloatImages& data, const std::string& x_name, const std::string& y_name,
                const std::string& logits_name);

// The same over a device-resident split: the same batches in the same order, so the same result.
double accuracy(Executor& ex, const DeviceImages& data, const std::string& x_name, const std::string& y_name,
                const std::string& logits_name);

// Euclidean norm in double precision.
double l2_norm(const std::vector<float>& v);

// Total variation distance between two distributions over n outcomes: half their L1 distance,
// in [0, 1] (0: the same, 1: disjoint supports).
double total_variation(const double* p, const double* q, std::int64_t n);

// The shortest decimal (%g with 6 to 9 digits) that reads back as the same float: 0.3f is "0.3",
// where its widened double prints as 0.30000001. "nan", "inf", "-inf" when not finite.
std::string float_text(float v);

// A CSV table of numbers (and text cells) with a header row.
class CsvTable {
 public:
  explicit CsvTable(std::vector<std::string> header);
  // Cells as text; doubles are written with %.8g, floats with float_text ("nan", "inf", "-inf"
  // when not finite).
  void add_row(const std::vector<std::string>& cells);
  static std::string cell(double v);
  static std::string cell(float v) { return float_text(v); }
  std::string text() const;
  // Writes text() to `path` atomically.
  void write(const std::string& path) const;
  std::size_t rows() const noexcept { return rows_.size(); }

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// The folder a report is written to, for reports that may be partial (a run rewrites its report
// after each part, so a run stopped early keeps what it finished). file(name, present) returns
// the path to write `name` to when its part is present; when it is not, it removes any copy left
// by an earlier run (so a folder never mixes two runs' parts) and returns "". written() lists the
// paths handed out, in order. The folder is created on construction.
class ReportFolder {
 public:
  explicit ReportFolder(std::string dir);
  std::string file(const std::string& name, bool present);
  const std::vector<std::string>& written() const noexcept { return written_; }

 private:
  std::string dir_;
  std::vector<std::string> written_;
};

// "name: message" progress lines, or nothing when log is null.
void log_line(std::ostream* log, const std::string& text);

}  // namespace kestrel::experiments
