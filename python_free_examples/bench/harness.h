// The one benchmark harness for Kestrel's kernels (STYLE.md: warm-up, CUDA events, median,
// L2 defeated by rotating buffers, GB/s from counted bytes, a table for people and JSON lines
// for machines).
//
// Usage: Harness h(ctx, opts); h.measure_copy_bandwidth(); then for each kernel
//   auto sets = h.rotation_sets(bytes_one_call);       // buffers to rotate through
//   double us = h.median_us([&](int i) { launch(set[i % sets]); });
//   h.report("dropout_fwd", "fp32 64M p=0.5", us, bytes_moved);
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "kestrel/core/context.h"

namespace kestrel::bench {

struct Options {
  bool quick = false;      // fewer runs, smaller sizes where the program allows
  std::string json_path;   // append one JSON line per report here ("" = stdout only)
  int warmup = 5;
  int runs = 20;           // timed runs (>= 20 for reported figures)
  int workspace_mb = 0;    // > 0: cap on a convolution plan's cuDNN workspace (bench_resnet)
  bool recompute_bn = true;   // CompileOptions::recompute_bn_relu (bench_resnet)
  bool plan_only = false;     // bench_resnet: print the planned memory of each row, on the CPU
};

// One JSON line of a benchmark row: {"impl": "kestrel", "device": device, then fields in their
// order}. Strings are escaped, and a number that is not finite (a rate from a 0 us median) is
// written as null, so every line parses as JSON (printf's "inf" would not).
std::string json_line(const std::string& device, const nlohmann::ordered_json& fields);

// Runs fn(i) `warmup` times, then times `runs` more calls each between two CUDA events on
// ctx.stream(); returns the median in microseconds (the upper one of an even count). fn must
// enqueue its work on ctx.stream().
double median_event_us(Context& ctx, int warmup, int runs, const std::function<void(int)>& fn);

class Harness {
 public:
  Harness(Context& ctx, Options opts);

  // Median device-to-device cudaMemcpyAsync bandwidth over a 1 GiB buffer, counting bytes read
  // plus written (2 GiB per copy). Reported as the "copy" row and used for %-of-copy figures.
  double measure_copy_bandwidth();
  double copy_gbps() const noexcept { return copy_gbps_; }

  // How many independent buffer sets of `bytes_per_set` to rotate through so that one pass over
  // them exceeds 3x the device's L2 (so no call finds its inputs in L2).
  int rotation_sets(std::size_t bytes_per_set) const;

  // median_event_us on this harness' context with its warm-up and run counts (fewer in quick).
  double median_us(const std::function<void(int)>& fn);

  // Prints a table row and appends a JSON line {"bench","config","impl":"kestrel","device",
  // "median_us","gbps","pct_copy"} (bytes_moved = the fewest bytes the kernel must move; 0 to
  // omit bandwidth figures).
  void report(const std::string& bench, const std::string& config, double median_us,
              double bytes_moved);
  // Appends json_line(device, fields) to --json, if given (for throughput benchmarks).
  void report_json(const nlohmann::ordered_json& fields);
  void print_header() const;

  Context& context() noexcept { return ctx_; }
  const Options& options() const noexcept { return opts_; }
  const std::string& device_name() const noexcept { return device_name_; }

 private:
  Context& ctx_;
  Options opts_;
  std::string device_name_;
  std::size_t l2_bytes_ = 0;
  double copy_gbps_ = 0.0;
};

// Parses --json FILE, --quick, --runs N, --workspace-mb N, --help, and for bench_resnet
// --plan-only and --recompute-bn on|off; exits with usage on bad flags (programs only).
Options parse_options(int argc, char** argv, const std::string& program, const std::string& about);

}  // namespace kestrel::bench
