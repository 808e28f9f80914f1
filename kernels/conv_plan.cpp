#include <algorithm>
#include <sstream>

#include "kestrel/core/error.h"
#include "kestrel/kernels/conv_plan_internal.h"

namespace kestrel::cudnn_detail {
namespace {
constexpr int kAutotunePlans = 8;
constexpr int kReportedFailures = 4;  // plan-finalize failures quoted in the final error

// What went wrong while looking for an engine, quoted if nothing works.
struct Diagnosis {
  std::ostringstream text;
  int failures = 0;
  void failure(const std::string& what, cudnnStatus_t status) {
    const std::string msg = last_error_message();  // right after the failing call
    note(what + ": " + cudnnGetErrorString(status) + (msg.empty() ? "" : ": " + msg));
  }
  void note(const std::string& line) {
    if (failures++ < kReportedFailures) text << "\n  " << line;
  }
};

const char* mode_name(cudnnBackendHeurMode_t mode) {
  return mode == CUDNN_HEUR_MODE_A ? "heuristics mode A" : "heuristics mode FALLBACK";
}

std::vector<BackendDescriptor> heuristic_configs(const BackendDescriptor& graph,
                                                 cudnnBackendHeurMode_t mode, Diagnosis& why) {
  BackendDescriptor heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  heur.set_descriptor(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph);
  heur.set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
  cudnnStatus_t st = heur.try_finalize();
  if (st != CUDNN_STATUS_SUCCESS) {
    why.failure(std::string(mode_name(mode)) + " finalize", st);
    return {};
  }
  std::int64_t available = 0;
  st = cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &available, nullptr);
  if (st != CUDNN_STATUS_SUCCESS) {
    why.failure(std::string(mode_name(mode)) + " result count", st);
    return {};
  }
  // cuDNN fills descriptors we create; it may return fewer than it first announced.
  std::vector<BackendDescriptor> configs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (std::int64_t i = 0; i < available; ++i) {
    configs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    raw.push_back(configs.back().get());
  }
  std::int64_t returned = 0;
  if (available > 0) {
    st = cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                  CUDNN_TYPE_BACKEND_DESCRIPTOR, available, &returned, raw.data());
    if (st != CUDNN_STATUS_SUCCESS) {
      why.failure(std::string(mode_name(mode)) + " results", st);
      return {};
    }
  }
  configs.erase(configs.begin() + std::clamp<std::int64_t>(returned, 0, available), configs.end());
  why.text << "\n  " << mode_name(mode) << ": " << configs.size() << " engine configs";
  return configs;
}

EngineInfo read_engine_info(const BackendDescriptor& config) {
  EngineInfo info;
  BackendDescriptor engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
  cudnnBackendDescriptor_t raw = engine.get();
  std::int64_t count = 0;
  if (cudnnBackendGetAttribute(config.get(), CUDNN_ATTR_ENGINECFG_ENGINE,
                               CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &count, &raw) !=
          CUDNN_STATUS_SUCCESS ||
      count != 1) {
    info.readable = false;
    return info;
  }
  cudnnBackendNumericalNote_t numerical[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
  count = 0;
  if (cudnnBackendGetAttribute(engine.get(), CUDNN_ATTR_ENGINE_NUMERICAL_NOTE,
                               CUDNN_TYPE_NUMERICAL_NOTE, CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &count,
                               numerical) != CUDNN_STATUS_SUCCESS) {
    info.readable = false;
    return info;
  }
  for (std::int64_t i = 0; i < std::min<std::int64_t>(count, CUDNN_NUMERICAL_NOTE_TYPE_COUNT); ++i) {
    info.tensor_core |= numerical[i] == CUDNN_NUMERICAL_NOTE_TENSOR_CORE;
    info.down_convert_inputs |= numerical[i] == CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS;
    info.nondeterministic |= numerical[i] == CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC;
  }
  cudnnBackendBehaviorNote_t behavior[CUDNN_BEHAVIOR_NOTE_TYPE_COUNT];
  count = 0;
  if (cudnnBackendGetAttribute(engine.get(), CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE,
                               CUDNN_TYPE_BEHAVIOR_NOTE, CUDNN_BEHAVIOR_NOTE_TYPE_COUNT, &count,
                               behavior) != CUDNN_STATUS_SUCCESS) {
    info.readable = false;
    return info;
  }
  for (std::int64_t i = 0; i < std::min<std::int64_t>(count, CUDNN_BEHAVIOR_NOTE_TYPE_COUNT); ++i)
    info.runtime_compiled |= behavior[i] == CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION;
  // Both are informative only: an unreadable size is checked again on the finalized plan.
  (void)cudnnBackendGetAttribute(engine.get(), CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1,
                                 &count, &info.global_index);
  (void)cudnnBackendGetAttribute(config.get(), CUDNN_ATTR_ENGINECFG_WORKSPACE_SIZE,
                                 CUDNN_TYPE_INT64, 1, &count, &info.workspace);
  return info;
}

// A finalized plan for `config`, or nullptr (with the reason noted) when it does not build or
// needs more workspace than allowed.
std::unique_ptr<ConvPlan> try_plan(cudnnHandle_t handle, BackendDescriptor& config,
                                   const EngineInfo& info, const ConvPolicy& policy,
                                   Diagnosis& why) {
  const std::string name = "engine " + std::to_string(info.global_index);
  auto p = std::make_unique<ConvPlan>();
  p->plan = BackendDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
  try {
    p->plan.set_handle(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, handle);  // deprecated, set as 9.14 wants
    p->plan.set_descriptor(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, config);
  } catch (const CudnnError& e) {
    why.failure(name + " plan attributes", static_cast<cudnnStatus_t>(e.status()));
    return nullptr;
  }
  const cudnnStatus_t st = p->plan.try_finalize();
  if (st != CUDNN_STATUS_SUCCESS) {
    why.failure(name + " plan finalize", st);
    return nullptr;
  }
  std::int64_t count = 0;
  if (cudnnBackendGetAttribute(p->plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                               CUDNN_TYPE_INT64, 1, &count, &p->workspace) != CUDNN_STATUS_SUCCESS ||
      p->workspace < 0) {
    why.failure(name + " plan workspace size", CUDNN_STATUS_BAD_PARAM);
    return nullptr;
  }
  if (static_cast<std::uint64_t>(p->workspace) > policy.workspace_limit) {
    why.note(name + ": plan needs " + std::to_string(p->workspace) + " workspace bytes (limit " +
             std::to_string(policy.workspace_limit) + ")");
    return nullptr;
  }
  p->config = std::move(config);
  p->engine_index = info.global_index;
  return p;
}

std::string policy_text(const ConvPolicy& p) {
  std::ostringstream os;
  os << "deterministic=" << p.deterministic << " allow_tf32=" << p.allow_tf32
     << " autotune=" << p.autotune << " workspace_limit=" << p.workspace_limit;
  return os.str();
}
}  // namespace

EngineRanking rank_engines(const std::vector<EngineInfo>& engines, DType dtype,
                           const ConvPolicy& policy) {
  EngineRanking r;
  std::vector<std::size_t> compiled;
  for (std::size_t i = 0; i < engines.size(); ++i) {
    const EngineInfo& e = engines[i];
    if (!e.readable) {
      ++r.dropped_unreadable;
    } else if (e.down_convert_inputs ||
               (e.tensor_core && dtype == DType::kFloat32 && !policy.allow_tf32)) {
      ++r.dropped_precision;
    } else if (e.nondeterministic && policy.deterministic) {
      ++r.dropped_nondeterministic;
    } else if (e.workspace > 0 && static_cast<std::uint64_t>(e.workspace) > policy.workspace_limit) {
      ++r.dropped_workspace;
    } else {
      (e.runtime_compiled ? compiled : r.order).push_back(i);
    }
  }
  r.order.insert(r.order.end(), compiled.begin(), compiled.end());
  return r;
}

std::unique_ptr<ConvPlan> build_conv_plan(cudnnHandle_t handle, ConvOp op, const Conv2dDesc& d,
                                          const ConvAlignment& align, const ConvPolicy& policy,
                                          Allocator* scratch) {
  KESTREL_CHECK(handle != nullptr, "conv2d ", conv_op_name(op), ": the cuDNN handle is null");
  const std::size_t version = cudnnGetVersion();
  KESTREL_CHECK(version >= 90200, "cuDNN ", version,
                " is too old for Kestrel's graph-API convolutions: 9.2 or newer is needed");
  ConvGraph graph = make_conv_graph(op, d, align, handle);
  Diagnosis why;
  std::vector<std::unique_ptr<ConvPlan>> built;
  const std::size_t wanted = policy.autotune ? kAutotunePlans : 1;
  for (const cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    std::vector<BackendDescriptor> configs = heuristic_configs(graph.graph, mode, why);
    std::vector<EngineInfo> infos;
    for (const BackendDescriptor& c : configs) infos.push_back(read_engine_info(c));
    const EngineRanking rank = rank_engines(infos, d.dtype, policy);
    why.text << " (dropped: " << rank.dropped_precision << " TF32/down-converting, "
             << rank.dropped_nondeterministic << " nondeterministic, " << rank.dropped_workspace
             << " over the workspace limit, " << rank.dropped_unreadable << " unreadable)";
    for (const std::size_t i : rank.order) {
      // Runtime-compiled engines come last and only when nothing else built (NVRTC is slow).
      if (built.size() >= wanted || (infos[i].runtime_compiled && !built.empty())) break;
      if (auto p = try_plan(handle, configs[i], infos[i], policy, why)) built.push_back(std::move(p));
    }
    if (!built.empty()) break;
  }
  KESTREL_CHECK(!built.empty(), "cuDNN found no working engine for conv2d ", conv_op_name(op),
                " of ", to_string(d), " (alignments x=", align.x, " w=", align.w, " y=", align.y,
                "; policy ", policy_text(policy), "):", why.text.str());
  const Autotuned tuned = built.size() > 1 ? fastest_plan(handle, d, built, scratch) : Autotuned{};
  std::unique_ptr<ConvPlan> plan = std::move(built[tuned.best]);
  plan->graph = std::move(graph);
  plan->untuned = tuned.skipped;
  return plan;
}

ConvSlots slots_of(ConvOp op, const void* a, const void* b, const void* c) noexcept {
  void* pa = const_cast<void*>(a);  // cuDNN's variant pack takes void* for inputs too
  void* pb = const_cast<void*>(b);
  void* pc = const_cast<void*>(c);
  switch (op) {
    case ConvOp::kBackwardData: return {pc, pb, pa, {"dx", "w", "dy"}};
    case ConvOp::kBackwardFilter: return {pa, pc, pb, {"x", "dw", "dy"}};
    case ConvOp::kForward: break;
  }
  return {pa, pb, pc, {"x", "w", "y"}};
}

ConvAlignment launcher_alignment(ConvOp op, const Conv2dDesc& d, const void* a, const void* b,
                                 const void* c) {
  const ConvSlots s = slots_of(op, a, b, c);
  const void* ptrs[3] = {s.x, s.w, s.y};
  std::int64_t align[3];
  const auto element = static_cast<std::int64_t>(dtype_size(d.dtype));
  for (int i = 0; i < 3; ++i) {
    KESTREL_CHECK(ptrs[i] != nullptr, "conv2d ", conv_op_name(op), ": ", s.names[i],
                  " is a null pointer");
    align[i] = pointer_alignment(ptrs[i]);
    KESTREL_CHECK(align[i] >= element, "conv2d ", conv_op_name(op), ": ", s.names[i], " (",
                  ptrs[i], ") is not aligned to its ", element, "-byte elements");
  }
  return {align[0], align[1], align[2]};
}

bool ConvPlanKey::operator==(const ConvPlanKey& o) const {
  const Conv2dDesc& a = desc;
  const Conv2dDesc& b = o.desc;
  return handle == o.handle && op == o.op && align == o.align && a.n == b.n && a.c == b.c &&
         a.h == b.h && a.w == b.w && a.k == b.k && a.r == b.r && a.s == b.s &&
         a.pad_h == b.pad_h && a.pad_w == b.pad_w && a.stride_h == b.stride_h &&
         a.stride_w == b.stride_w && a.dil_h == b.dil_h && a.dil_w == b.dil_w &&
         a.dtype == b.dtype && a.layout == b.layout;
}

std::size_t ConvPlanKeyHash::operator()(const ConvPlanKey& k) const noexcept {
  const Conv2dDesc& d = k.desc;
  const std::int64_t fields[] = {
      static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(k.handle)),
      static_cast<std::int64_t>(k.op), d.n, d.c, d.h, d.w, d.k, d.r, d.s, d.pad_h, d.pad_w,
      d.stride_h, d.stride_w, d.dil_h, d.dil_w, static_cast<std::int64_t>(d.dtype),
      static_cast<std::int64_t>(d.layout), k.align.x, k.align.w, k.align.y};
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const std::int64_t f : fields) {
    h ^= static_cast<std::uint64_t>(f) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  }
  return static_cast<std::size_t>(h);
}

}  // namespace kestrel::cudnn_detail

namespace kestrel::cuda {

const cudnn_detail::ConvPlan& ConvPlanCache::Impl::get(cudnnHandle_t handle, ConvOp op,
                                                       const Conv2dDesc& d,
                                                       const cudnn_detail::ConvAlignment& align) {
  KESTREL_CHECK(handle != nullptr, "conv2d ", conv_op_name(op), ": the cuDNN handle is null");
  const cudnn_detail::ConvPlanKey key{handle, op, d, align};
  const auto it = plans.find(key);
  if (it != plans.end()) {
    ++hits;
    return *it->second;
  }
  std::unique_ptr<cudnn_detail::ConvPlan> plan =
      cudnn_detail::build_conv_plan(handle, op, d, align, policy, scratch);
  const cudnn_detail::ConvPlan& ref = *plan;
  plans.emplace(key, std::move(plan));
  if (ref.untuned != nullptr) {
    ++untuned;
    last_untuned = std::string(conv_op_name(op)) + " of " + to_string(d) + ": " + ref.untuned;
  }
  return ref;
}

}  // namespace kestrel::cuda
