// Engine choice and the plan cache behind kernels/conv.h, internal. The ranking of engine
// configs is a pure function so that the CPU tests check the policy rules; reading configs,
// building plans and timing them need a cuDNN handle, so a device.
#pragma once

#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "kestrel/kernels/conv.h"
#include "kestrel/kernels/conv_backend_internal.h"

namespace kestrel::cudnn_detail {

// What cuDNN says about one engine config (CUDNN_ATTR_ENGINE_*_NOTE, ENGINECFG_WORKSPACE_SIZE).
struct EngineInfo {
  bool readable = true;  // false when the notes could not be read: never tried
  bool tensor_core = false;
  bool down_convert_inputs = false;
  bool nondeterministic = false;
  bool runtime_compiled = false;
  std::int64_t workspace = 0;
  std::int64_t global_index = -1;
};

// Indices of the configs worth trying, in order, and why the others were dropped. Rules: drop
// DOWN_CONVERT_INPUTS always, TENSOR_CORE for fp32 unless allow_tf32, NONDETERMINISTIC when
// deterministic, unreadable configs, and workspace above the limit; keep cuDNN's order but put
// runtime-compiled (NVRTC) engines after all others.
struct EngineRanking {
  std::vector<std::size_t> order;
  int dropped_precision = 0, dropped_nondeterministic = 0, dropped_workspace = 0,
      dropped_unreadable = 0;
};
EngineRanking rank_engines(const std::vector<EngineInfo>& engines, DType dtype,
                           const ConvPolicy& policy);

// One ready plan and everything it was built from (kept alive: the conservative choice).
struct ConvPlan {
  ConvGraph graph;
  BackendDescriptor config;
  BackendDescriptor plan;
  std::int64_t workspace = 0;
  std::int64_t engine_index = -1;  // cuDNN's global engine index, for logs
  // Why autotuning, asked for and with several candidates, did not choose this plan by timing
  // (null when it did, or was not asked): the plan is then cuDNN's first choice.
  const char* untuned = nullptr;
};

// Heuristics (mode A, then FALLBACK), ranking, plan finalize (first success, or the fastest of up
// to 8 under policy.autotune). Raises kestrel::Error naming the op, the desc and cuDNN's
// messages when no engine builds.
std::unique_ptr<ConvPlan> build_conv_plan(cudnnHandle_t handle, ConvOp op, const Conv2dDesc& d,
                                          const ConvAlignment& align, const ConvPolicy& policy,
                                          Allocator* scratch);

// Index of the fastest plan, each run on zeroed scratch tensors (best of 3 timed runs after a
// warm-up, on the handle's stream) taken from `scratch` (null: cudaMalloc). Plans that fail to
// run are passed over. When nothing could be timed (no scratch memory, the stream being captured
// into a CUDA graph, no candidate ran, ...) the index is 0, cuDNN's first choice, and `skipped`
// says why; it is null when the index came from timing.
struct Autotuned {
  std::size_t best = 0;
  const char* skipped = nullptr;
};
Autotuned fastest_plan(cudnnHandle_t handle, const Conv2dDesc& d,
                       const std::vector<std::unique_ptr<ConvPlan>>& plans, Allocator* scratch);

// The launchers' pointers (a, b, c) by slot: forward (x, w, y), backward-data (dy, w, dx),
// backward-filter (x, dy, dw).
struct ConvSlots {
  void* x;
  void* w;
  void* y;
  const char* names[3];  // the launcher's names of x, w, y for messages
};
ConvSlots slots_of(ConvOp op, const void* a, const void* b, const void* c) noexcept;

// Slot alignments of the launcher-order pointers (a, b, c) of `op`; raises when a pointer is
// null or not aligned to the element size.
ConvAlignment launcher_alignment(ConvOp op, const Conv2dDesc& d, const void* a, const void* b,
                                 const void* c);

struct ConvPlanKey {
  cudnnHandle_t handle;
  ConvOp op;
  Conv2dDesc desc;
  ConvAlignment align;
  bool operator==(const ConvPlanKey& o) const;
};
struct ConvPlanKeyHash {
  std::size_t operator()(const ConvPlanKey& k) const noexcept;
};

}  // namespace kestrel::cudnn_detail

namespace kestrel::cuda {
struct ConvPlanCache::Impl {
  ConvPolicy policy;
  Allocator* scratch = nullptr;  // autotuning's trial memory (null: cudaMalloc)
  std::unordered_map<cudnn_detail::ConvPlanKey, std::unique_ptr<cudnn_detail::ConvPlan>,
                     cudnn_detail::ConvPlanKeyHash>
      plans;
  std::size_t hits = 0;
  std::size_t untuned = 0;        // plans cached whose autotuning was skipped (ConvPlan::untuned)
  std::string last_untuned;       // the latest such plan: op, desc and why

  // The cached plan, built on a miss.
  const cudnn_detail::ConvPlan& get(cudnnHandle_t handle, ConvOp op, const Conv2dDesc& d,
                                    const cudnn_detail::ConvAlignment& align);
};
}  // namespace kestrel::cuda
