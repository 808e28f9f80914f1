// seed_dropout: overfitting and dropout (layers/experiments/dropout.h). Trains the same
// over-parameterised MLP on a small training subset with dropout p = 0, 0.3, 0.5 and plots train
// and test accuracy per epoch; compares the weight-scaled network with averages of k randomly
// masked networks; checks that inverted and vanilla dropout have the inference output as their
// expected training output. Writes dropout_*.svg and dropout_*.csv to --out.
#include <iostream>

#include "kestrel/layers/experiments/dropout.h"
#include "seed_program.h"
#include "stdout_check.h"

int main(int argc, char** argv) {
  kestrel::programs::fail_on_unwritable_stdout("seed_dropout");
  return seed::run_program(argc, argv, "seed_dropout", "overfitting, dropout and the ensemble view of dropout",
                           {"--epochs", seed::length_help("training epochs of each network", kestrel::experiments::DropoutConfig::full().epochs)},
                           [](const seed::Options& o, kestrel::Context& ctx) {
                             using kestrel::experiments::DropoutConfig;
                             DropoutConfig cfg = o.quick ? DropoutConfig::quick() : DropoutConfig::full();
                             cfg.seed = o.seed;
                             cfg.data_dir = o.data;
                             if (o.length > 0) cfg.epochs = o.length;
                             if (!o.quick && o.data.empty())
                               std::cout << "seed_dropout: note: the full mode's network learns synthetic data "
                                            "almost perfectly (test accuracy 0.99 after one epoch without "
                                            "dropout, measured on the CPU), so there is little overfitting for "
                                            "dropout to cure; give --data (CIFAR-10) to see the gap close\n";
                             // The report is rewritten as the run goes, so a run stopped early (a GPU
                             // call's time limit) keeps the parts it finished; an earlier run's files go
                             // once the data has loaded (a bad --data loses nothing), so they never pass
                             // for this run's.
                             const auto r = kestrel::experiments::run_dropout_experiment(
                                 cfg, ctx, &std::cout, [&](const kestrel::experiments::DropoutResult& so_far) {
                                   kestrel::experiments::write_dropout_report(so_far, o.out);
                                 });
                             return kestrel::experiments::write_dropout_report(r, o.out);
                           });
}
