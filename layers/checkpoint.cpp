#include "kestrel/layers/checkpoint.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <sstream>

#include "kestrel/core/error.h"
#include "kestrel/core/number_text_internal.h"
#include "kestrel/core/tensor.h"

namespace kestrel {
namespace {

constexpr const char* kBatchesTracked = ".num_batches_tracked";
constexpr const char* kOptimizerPrefix = "optimizer.";
constexpr int kMaxListed = 12;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string shape_text(const std::vector<std::int64_t>& dims) { return Shape(dims).to_string(); }

// "a, b, c (and 4 more)".
std::string list_names(const std::vector<std::string>& names) {
  std::string s;
  for (std::size_t i = 0; i < names.size() && i < kMaxListed; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > kMaxListed) s += " (and " + std::to_string(names.size() - kMaxListed) + " more)";
  return s;
}

// The host copy of a device (or host) fp32 tensor, in the same layout.
Tensor to_host(const Tensor& t, const Stream& stream) {
  Tensor h = Tensor::empty_cpu(t.shape(), t.dtype(), t.layout());
  h.copy_from(t, stream);
  return h;
}

}  // namespace

OptimizerKind parse_optimizer_kind(const std::string& name) {
  for (OptimizerKind k : {OptimizerKind::kNone, OptimizerKind::kSgd, OptimizerKind::kAdamW})
    if (name == optimizer_kind_name(k)) return k;
  KESTREL_FAIL("unknown optimizer '", name, "' (known: sgd, adamw, none)");
}

std::vector<std::string> optimizer_buffer_names(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kNone: return {};
    case OptimizerKind::kSgd: return {"momentum_buffer"};
    case OptimizerKind::kAdamW: return {"exp_avg", "exp_avg_sq"};
  }
  return {};
}

std::string optimizer_tensor_name(OptimizerKind kind, int buffer, const std::string& param) {
  const std::vector<std::string> names = optimizer_buffer_names(kind);
  KESTREL_CHECK(buffer >= 0 && buffer < static_cast<int>(names.size()), "optimizer ",
                optimizer_kind_name(kind), " has no state buffer ", buffer);
  return std::string(kOptimizerPrefix) + optimizer_kind_name(kind) + "." + names[buffer] + "." + param;
}

SafetensorsFile checkpoint_from_store(const ParameterStore& store,
                                      const std::map<std::string, std::string>& metadata) {
  const Stream& stream = store.context().stream();
  SafetensorsFile f;
  const OptimizerKind kind = store.optimizer_kind();
  const int buffers = ParameterStore::optimizer_buffers(kind);
  for (std::size_t i = 0; i < store.count(); ++i) {
    f.tensors[store.name(i)] = safetensor_from_tensor(to_host(store.value(i), stream));
    if (!store.trainable(i)) continue;
    for (int k = 0; k < buffers; ++k)
      f.tensors[optimizer_tensor_name(kind, k, store.name(i))] =
          safetensor_from_tensor(to_host(store.opt_state(k, i), stream));
  }
  const ParameterStore::Counters c = store.read_counters();
  f.metadata = {{"format", kCheckpointFormat},
                {"seed", std::to_string(store.seed())},
                {"rng_offset", std::to_string(c.rng_offset)},
                {"optimizer_step", std::to_string(c.step)},
                {"optimizer", optimizer_kind_name(kind)},
                {"lr", detail::shortest_float_text(c.learning_rate)}};
  for (const auto& [key, value] : metadata) {
    KESTREL_CHECK(f.metadata.count(key) == 0, "checkpoint metadata key '", key,
                  "' is written by the parameter store itself");
    f.metadata[key] = value;
  }
  return f;
}

void save_checkpoint(const ParameterStore& store, const std::string& path,
                     const std::map<std::string, std::string>& metadata) {
  write_safetensors_atomic(checkpoint_from_store(store, metadata), path);
}

std::string checkpoint_metadata(const SafetensorsFile& file, const std::string& key,
                                const std::string& name) {
  auto it = file.metadata.find(key);
  KESTREL_CHECK(it != file.metadata.end(), name, ": no \"", key,
                "\" in __metadata__ (not a Kestrel checkpoint? weights-only loading ignores it)");
  return it->second;
}

std::uint64_t checkpoint_metadata_u64(const SafetensorsFile& file, const std::string& key,
                                      const std::string& name) {
  const std::string v = checkpoint_metadata(file, key, name);
  // Decimal digits only: strtoull alone would take " -1" (leading space, then a sign it negates)
  // as 2^64 - 1.
  const bool digits = !v.empty() && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
  errno = 0;
  char* end = nullptr;
  const unsigned long long x = digits ? std::strtoull(v.c_str(), &end, 10) : 0;
  KESTREL_CHECK(digits && end == v.c_str() + v.size() && errno == 0, name, ": __metadata__ \"", key, "\" is \"", v,
                "\", not an unsigned integer");
  return static_cast<std::uint64_t>(x);
}

void load_checkpoint(const SafetensorsFile& file, ParameterStore& store,
                     const CheckpointLoadOptions& options, const std::string& name) {
  const Stream& stream = store.context().stream();
  const OptimizerKind kind = options.optimizer ? store.optimizer_kind() : OptimizerKind::kNone;
  if (options.optimizer && kind == OptimizerKind::kNone) {
    const auto with_state = std::find_if(file.tensors.begin(), file.tensors.end(), [](const auto& t) {
      return t.first.rfind(kOptimizerPrefix, 0) == 0;
    });
    KESTREL_CHECK(with_state == file.tensors.end(), name, " holds optimizer state (\"", with_state->first,
                  "\") but the parameter store has none yet: compile the training Executor on the store "
                  "first (it creates the state), or load with CheckpointLoadOptions::optimizer = false "
                  "for the weights alone");
  }
  const int buffers = ParameterStore::optimizer_buffers(kind);
  std::map<std::string, Tensor> expected;  // name -> destination in the store
  for (std::size_t i = 0; i < store.count(); ++i) {
    expected[store.name(i)] = store.value(i);
    if (store.trainable(i))
      for (int k = 0; k < buffers; ++k)
        expected[optimizer_tensor_name(kind, k, store.name(i))] = store.opt_state(k, i);
  }
  std::vector<std::string> missing, unexpected, problems;
  std::map<std::string, Tensor> staged;  // host fp32 tensors in the destination's layout
  for (const auto& [tname, st] : file.tensors) {
    auto it = expected.find(tname);
    if (it == expected.end()) {
      const bool ignored = ends_with(tname, kBatchesTracked) ||
                           (kind == OptimizerKind::kNone && tname.rfind(kOptimizerPrefix, 0) == 0);
      if (!ignored) unexpected.push_back(tname);
      continue;
    }
    const Tensor& dst = it->second;
    if (st.shape != dst.shape().dims()) {
      problems.push_back("\"" + tname + "\" has shape " + shape_text(st.shape) + ", expected " +
                         dst.shape().to_string());
      continue;
    }
    if (st.dtype != "F32" && st.dtype != "BF16" && st.dtype != "F16") {
      problems.push_back("\"" + tname + "\" is " + st.dtype + ", expected F32 (or BF16, F16)");
      continue;
    }
    Tensor host = tensor_from_safetensor(st, dst.layout(), tname);
    if (host.dtype() != DType::kFloat32)
      host = Tensor::from_vector(host.to_float_vector(), host.shape(), DType::kFloat32, dst.layout());
    staged[tname] = host;
  }
  for (const auto& [ename, dst] : expected)
    if (file.tensors.count(ename) == 0) missing.push_back(ename);
  std::ostringstream err;
  if (!missing.empty()) err << "; missing tensors: " << list_names(missing);
  if (!unexpected.empty()) err << "; unexpected tensors: " << list_names(unexpected);
  for (const std::string& p : problems) err << "; " << p;
  const std::string what = err.str();
  KESTREL_CHECK(what.empty(), name, " does not match the model", what);

  ParameterStore::Counters counters = store.read_counters();
  if (options.counters) {
    const std::string format = checkpoint_metadata(file, "format", name);
    KESTREL_CHECK(format == kCheckpointFormat, name, ": format \"", format, "\", expected \"",
                  kCheckpointFormat, "\"");
    // Dropout draws from (seed, offset): restoring the offset under another seed would not
    // continue the same run.
    const std::uint64_t seed = checkpoint_metadata_u64(file, "seed", name);
    KESTREL_CHECK(seed == store.seed(), name, " was written with seed ", seed,
                  " but the parameter store was built with seed ", store.seed(),
                  ": build it with the checkpoint's seed");
    counters.rng_offset = checkpoint_metadata_u64(file, "rng_offset", name);
    const std::uint64_t optimizer_step = checkpoint_metadata_u64(file, "optimizer_step", name);
    KESTREL_CHECK(optimizer_step <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()), name,
                  ": __metadata__ \"optimizer_step\" is ", optimizer_step, ", beyond a step count");
    counters.step = static_cast<std::int64_t>(optimizer_step);
    const std::string lr = checkpoint_metadata(file, "lr", name);
    float rate = -1.f;
    KESTREL_CHECK(detail::parse_float(lr, &rate) && std::isfinite(rate) && rate >= 0.f,
                  name, ": __metadata__ \"lr\" is \"", lr, "\", not a finite non-negative number");
    counters.learning_rate = rate;
  }
  // Everything is validated: write. Of the writes only the counters' allocates (a host tensor),
  // so it goes first; the copies take their destinations by reference and allocate nothing. A
  // std::bad_alloc cannot leave the store half loaded (tests/host_faults: AllocationSweeps).
  if (options.counters) store.write_counters(counters);
  for (const auto& [tname, host] : staged) expected.at(tname).copy_from(host, stream);
  stream.synchronize();  // the staged host tensors go out of scope
  store.refresh_shadows();
}

}  // namespace kestrel
