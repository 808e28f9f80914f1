// The command line shared by the seed experiment programs (seed_dropout, seed_degradation,
// seed_gradient_flow): --quick, --device, --out, --seed, --data, --help, and one option for the
// length of training (its flag named by the program: --steps or --epochs), so that a GPU session
// can size a full run to its time; programs that train convolutional networks on images also
// take --dtype fp32|bf16 and --layout nchw|nhwc. The experiment itself is a library function
// (layers/experiments/); this only parses, picks the device, runs and reports.
// Exit status: 0 done (or --help), 1 runtime error (one line on stderr), 2 usage error.
#pragma once

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "cli_checks.h"
#include "kestrel/core/context.h"
#include "kestrel/core/device.h"
#include "kestrel/layers/output_files.h"

namespace seed {

struct Options {
  bool quick = false;
  std::string device = "auto";
  std::string out;
  std::uint64_t seed = 1;
  std::string data;
  int length = 0;  // the program's --steps / --epochs; 0: the mode's own
  std::string dtype = "fp32";   // --dtype, for programs that train on images
  std::string layout = "nchw";  // --layout, likewise
};

// The program's training-length option: its flag and what it sets.
struct LengthOption {
  std::string flag;
  std::string help;
};

// "<what> (default: the mode's, <full> in full mode)": the help of a length option, with the
// full mode's value read from the experiment's own configuration.
inline std::string length_help(const std::string& what, int full) {
  return what + " (default: the mode's, " + std::to_string(full) + " in full mode)";
}

// Runs the experiment with the options and returns the paths of the files it wrote.
using Experiment = std::function<std::vector<std::string>(const Options&, kestrel::Context&)>;

inline std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

inline int run_program(int argc, char** argv, const std::string& name, const std::string& about,
                       const LengthOption& length, const Experiment& experiment, bool image_options = false) {
  Options o;
  o.out = name + "_results";
  CLI::App app{name + ": " + about};
  app.add_flag("--quick", o.quick, "small configuration that runs on the CPU in under a minute");
  app.add_option("--device", o.device, "auto (cuda when there is one), cpu, cuda or cuda:N");
  app.add_option("--out", o.out, "folder for the SVG charts and CSV tables (created if missing)");
  app.add_option("--seed", o.seed, "seed of data, initialisation, batch order and dropout masks")
      ->check(kestrel::programs::seed_number());
  app.add_option("--data", o.data, "CIFAR-10 folder (cifar-10-batches-bin); default: synthetic CIFAR-format data");
  app.add_option(length.flag, o.length, length.help)->check(kestrel::programs::above_zero());
  if (image_options) {
    app.add_option("--dtype", o.dtype, "fp32 or bf16: activations and weights the networks compute in (fp32 masters)")
        ->check(CLI::IsMember({"fp32", "bf16"}));
    app.add_option("--layout", o.layout, "nchw or nhwc")->check(CLI::IsMember({"nchw", "nhwc"}));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::printf("%s", app.help().c_str());
    return 0;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "%s: %s\n\n%s", name.c_str(), one_line(e.what()).c_str(), app.help().c_str());
    return 2;
  }
  kestrel::Device device;
  try {
    device = o.device == "auto" ? (kestrel::cuda_device_count() > 0 ? kestrel::Device::cuda(0) : kestrel::Device::cpu())
                                : kestrel::parse_device(o.device);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: --device: %s\n\n%s", name.c_str(), one_line(e.what()).c_str(), app.help().c_str());
    return 2;
  }
  try {
    kestrel::Context ctx(device);  // raises "no CUDA device: ..." for --device cuda without one
    kestrel::check_output_folder(o.out, "--out");  // before the experiment, not after its first part
    std::printf("%s: %s mode on %s\n", name.c_str(), o.quick ? "quick" : "full", ctx.description().c_str());
    if (!o.quick && ctx.device().is_cpu())
      std::printf("%s: note: full mode is sized for a GPU and takes from many minutes to days on a CPU "
                  "(docs/EXPERIMENTS.md); --quick runs in under a minute\n",
                  name.c_str());
    std::fflush(stdout);
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<std::string> files = experiment(o, ctx);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (const std::string& f : files) std::printf("%s: wrote %s\n", name.c_str(), f.c_str());
    std::printf("%s: done in %.1f s\n", name.c_str(), secs);
    return 0;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: %s\n", name.c_str(), one_line(e.what()).c_str());
    return 1;
  }
}

}  // namespace seed
