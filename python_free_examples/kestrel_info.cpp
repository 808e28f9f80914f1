// kestrel_info: what Kestrel sees on this machine (build, devices, libraries).
#include <CLI/CLI.hpp>
#include <kestrel/kestrel.h>

#include <cstdio>

#include "stdout_check.h"

int main(int argc, char** argv) {
  kestrel::programs::fail_on_unwritable_stdout("kestrel_info");
  CLI::App app{"kestrel_info: print Kestrel's build and the devices it can use"};
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help: 0; a usage error: 2
  }
  try {
    std::printf("Kestrel %s (CUDA architectures %s)\n", KESTREL_VERSION_STRING, KESTREL_CUDA_ARCHITECTURES);
    const int n = kestrel::cuda_device_count();
    if (n == 0) {
      std::printf("CUDA devices: none (%s); the CPU backend is used\n",
                  kestrel::cuda_unavailable_reason().c_str());
    }
    for (int i = 0; i < n; ++i)
      std::printf("cuda:%d %s\n", i, kestrel::device_description(kestrel::Device::cuda(i)).c_str());
    std::printf("cuDNN runtime %zu\n", kestrel::cudnn_runtime_version());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kestrel_info: %s\n", e.what());
    return 1;
  }
}
