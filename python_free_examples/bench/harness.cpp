#include "harness.h"

#include <CLI/CLI.hpp>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <utility>
#include <vector>

#include "figures.h"
#include "kestrel/core/cuda_check_internal.h"
#include "kestrel/core/tensor.h"
#include "kestrel/layers/output_files.h"

namespace kestrel::bench {

Harness::Harness(Context& ctx, Options opts) : ctx_(ctx), opts_(std::move(opts)) {
  KESTREL_CHECK(ctx.device().is_cuda(), "benchmarks need a CUDA device");
  cudaDeviceProp prop{};
  KESTREL_CUDA_CHECK(cudaGetDeviceProperties(&prop, ctx.device().index));
  device_name_ = prop.name;
  l2_bytes_ = static_cast<std::size_t>(prop.l2CacheSize);
}

double Harness::measure_copy_bandwidth() {
  const std::size_t bytes = std::size_t(1) << 30;
  Tensor a = Tensor::empty(Shape{static_cast<std::int64_t>(bytes)}, DType::kUInt8, ctx_);
  Tensor b = Tensor::empty(Shape{static_cast<std::int64_t>(bytes)}, DType::kUInt8, ctx_);
  a.zero(ctx_.stream());
  const double us = median_us([&](int) {
    KESTREL_CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice,
                                       ctx_.stream().handle()));
  });
  copy_gbps_ = gbps(2.0 * static_cast<double>(bytes), us);
  report("copy", "1 GiB device-to-device", us, 2.0 * static_cast<double>(bytes));
  return copy_gbps_;
}

int Harness::rotation_sets(std::size_t bytes_per_set) const {
  return rotation_set_count(bytes_per_set, l2_bytes_);
}

double median_event_us(Context& ctx, int warmup, int runs, const std::function<void(int)>& fn) {
  int i = 0;
  for (int w = 0; w < warmup; ++w) fn(i++);
  std::vector<Event> start, end;
  for (int r = 0; r < runs; ++r) {
    start.emplace_back(ctx.device());
    end.emplace_back(ctx.device());
  }
  for (int r = 0; r < runs; ++r) {
    start[r].record(ctx.stream());
    fn(i++);
    end[r].record(ctx.stream());
  }
  ctx.stream().synchronize();
  std::vector<double> us(static_cast<std::size_t>(runs));
  for (int r = 0; r < runs; ++r) us[static_cast<std::size_t>(r)] = 1e3 * Event::elapsed_ms(start[r], end[r]);
  return upper_median(std::move(us));
}

double Harness::median_us(const std::function<void(int)>& fn) {
  const TimedCounts n = timed_counts(opts_);
  return median_event_us(ctx_, n.warmup, n.runs, fn);
}

void Harness::print_header() const {
  std::printf("%-26s %-36s %12s %10s %8s\n", "kernel", "config", "median us", "GB/s", "% copy");
}

void Harness::report(const std::string& bench, const std::string& config, double us,
                     double bytes_moved) {
  const double rate = gbps(bytes_moved, us);
  const double pct = pct_of_copy(rate, copy_gbps_);
  std::printf("%-26s %-36s %12.1f %10.0f %7.0f%%\n", bench.c_str(), config.c_str(), us, rate, pct);
  report_json({{"bench", bench}, {"config", config}, {"median_us", us}, {"gbps", rate},
               {"pct_copy", pct}, {"copy_gbps", copy_gbps_}});
}

std::string json_line(const std::string& device, const nlohmann::ordered_json& fields) {
  KESTREL_CHECK(fields.is_object(), "a benchmark's JSON fields must be an object");
  nlohmann::ordered_json line{{"impl", "kestrel"}, {"device", device}};
  for (auto it = fields.begin(); it != fields.end(); ++it) line[it.key()] = it.value();
  // Replace invalid UTF-8 (a config string is ours, but a device name comes from the driver)
  // rather than throw; non-finite numbers are dumped as null.
  return line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

void Harness::report_json(const nlohmann::ordered_json& fields) {
  if (opts_.json_path.empty()) return;
  const std::string line = json_line(device_name_, fields);
  std::ofstream f(opts_.json_path, std::ios::app);
  KESTREL_CHECK(f.good(), "cannot append to ", opts_.json_path);
  f << line << "\n";
  f.flush();
  KESTREL_CHECK(f.good(), "cannot append to ", opts_.json_path, " (write failed)");
}

Options parse_options(int argc, char** argv, const std::string& program, const std::string& about) {
  Options o;
  CLI::App app{program + ": " + about};
  app.add_option("--json", o.json_path, "append one JSON line per measurement to this file");
  app.add_flag("--quick", o.quick, "fewer runs and sizes (smoke test)");
  app.add_option("--runs", o.runs, "timed runs per measurement (>= 20 for reported figures)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--workspace-mb", o.workspace_mb,
                 "cap on each convolution plan's cuDNN workspace in MiB (default: 256)")
      ->check(CLI::Range(1, 65536));
  if (program == "bench_resnet") {  // options of the network benchmark only
    app.add_flag("--plan-only", o.plan_only, "compile each row on the CPU and print its planned memory (no GPU needed)");
    app.add_option("--recompute-bn", o.recompute_bn,
                   "on (default) rebuilds BN+ReLU outputs in backward; off keeps them (configs then end in 'keep')")
        ->type_name("on|off")
        ->check(CLI::Validator(
            [](std::string& s) { return s == "on" || s == "off" ? std::string() : "must be on or off, got '" + s + "'"; },
            "on|off"));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::exit(app.exit(e) == 0 ? 0 : 2);
  }
  // Every row appends to --json: a file that cannot be written is found now, not after each row
  // has been measured.
  try {
    check_output_file(o.json_path, "--json");
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: %s\n", program.c_str(), e.what());
    std::exit(1);
  }
  return o;
}

}  // namespace kestrel::bench
