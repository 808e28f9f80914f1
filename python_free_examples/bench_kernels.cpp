// bench_kernels: times Kestrel's custom kernels (dropout, elementwise, batch norm;
// see bench/kernel_benches.h)
// against the device's own copy bandwidth, measured first in the same run. Prints a table and,
// with --json FILE, appends one JSON line per measurement for tools/gpu_summary.py.
// Exit status: 0 done, 1 no CUDA device or a failure, 2 usage error.
#include <cstdio>
#include <exception>

#include "kernel_benches.h"
#include "kestrel/core/context.h"
#include "kestrel/core/device.h"
#include "stdout_check.h"

int main(int argc, char** argv) {
  kestrel::programs::fail_on_unwritable_stdout("bench_kernels");
  const kestrel::bench::Options opts = kestrel::bench::parse_options(
      argc, argv, "bench_kernels", "time Kestrel's kernels against the device's copy bandwidth");
  if (kestrel::cuda_device_count() == 0) {
    std::fprintf(stderr, "bench_kernels: no CUDA device: %s\n",
                 kestrel::cuda_unavailable_reason().c_str());
    return 1;
  }
  try {
    kestrel::Context ctx(kestrel::Device::cuda(0));
    kestrel::bench::Harness h(ctx, opts);
    std::printf("bench_kernels: %s%s\n", ctx.description().c_str(), opts.quick ? " (quick)" : "");
    h.print_header();
    h.measure_copy_bandwidth();
    kestrel::bench::bench_dropout_and_elementwise(h);
    kestrel::bench::bench_batchnorm(h);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_kernels: %s\n", e.what());
    return 1;
  }
}
