// Split / Unstack and Concat / Stack along axis 1 as graph ops. They only move bytes: a value
// [N, S, rest...] is N rows of S * prod(rest) elements, and every part is one strided block of
// those rows, so one 2-D copy per part does the work (cudaMemcpy2DAsync on the GPU, which a
// CUDA Graph captures as a memcpy node; memcpy per row on the CPU). No kernel family needed.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>

#include "kestrel/core/cuda_check_internal.h"
#include "kestrel/core/error.h"
#include "kestrel/core/ops/nn_ops.h"

namespace kestrel {
namespace {
// cudaMemcpy2DAsync refuses pitches above the device's memPitch (2^31 - 1 on current GPUs).
constexpr std::size_t kMaxPitch = (std::size_t(1) << 31) - 1;

// `rows` rows of `width` bytes: src row r at src + r * src_pitch -> dst + r * dst_pitch.
void copy_rows(const OpRun& r, void* dst, std::size_t dst_pitch, const void* src, std::size_t src_pitch,
               std::size_t width, std::int64_t rows) {
  if (width == 0 || rows == 0) return;
  if (r.on_cpu()) {
    for (std::int64_t i = 0; i < rows; ++i)
      std::memcpy(static_cast<char*>(dst) + i * dst_pitch, static_cast<const char*>(src) + i * src_pitch, width);
    return;
  }
  KESTREL_CHECK(dst_pitch <= kMaxPitch && src_pitch <= kMaxPitch, "row pitch ", std::max(dst_pitch, src_pitch),
                " bytes exceeds the 2-D copy limit of ", kMaxPitch);
  KESTREL_CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, width, static_cast<std::size_t>(rows),
                                       cudaMemcpyDeviceToDevice, r.stream()));
}

void zero_rows(const OpRun& r, void* dst, std::size_t pitch, std::size_t width, std::int64_t rows) {
  if (width == 0 || rows == 0) return;
  if (r.on_cpu()) {
    for (std::int64_t i = 0; i < rows; ++i) std::memset(static_cast<char*>(dst) + i * pitch, 0, width);
    return;
  }
  KESTREL_CHECK(pitch <= kMaxPitch, "row pitch ", pitch, " bytes exceeds the 2-D copy limit of ", kMaxPitch);
  KESTREL_CUDA_CHECK(cudaMemset2DAsync(dst, pitch, 0, width, static_cast<std::size_t>(rows), r.stream()));
}

// The values split or concatenated are row-major: any rank below 4, and NCHW at rank 4.
void expect_row_major(const std::string& op, const std::string& node, const ValueInfo& v, int min_rank) {
  if (v.shape().rank() < min_rank)
    shape_error(op, node, "input " + v.describe(), "rank >= " + std::to_string(min_rank),
                "rank " + std::to_string(v.shape().rank()));
  if (v.layout() != Layout::kNCHW)
    shape_error(op, node, "input " + v.describe(), "row-major (nchw) storage", layout_name(v.layout()));
}

// Shape of part `size` along axis 1 of `whole`, axis removed when `squeeze`.
Shape part_shape(const Shape& whole, std::int64_t size, bool squeeze) {
  std::vector<std::int64_t> d = whole.dims();
  if (squeeze) d.erase(d.begin() + 1);
  else d[1] = size;
  return Shape(d);
}

// Elements per unit of axis 1 (the product of the dimensions after it).
std::int64_t inner_of(const Shape& whole) {
  std::int64_t inner = 1;
  for (int i = 2; i < whole.rank(); ++i) inner *= whole[i];
  return inner;
}

// The total size along axis 1; an Error when it passes INT64_MAX (no shape can hold it).
std::int64_t sum_of(const std::string& op, const std::string& node, const std::vector<std::int64_t>& v) {
  std::int64_t s = 0;
  for (std::int64_t x : v)
    KESTREL_CHECK(!__builtin_add_overflow(s, x, &s), op, " '", node,
                  "': the sizes along axis 1 add up to more than 2^63 - 1 (int64 overflow)");
  return s;
}

class SplitOp;

// Concatenation along axis 1 (stack: inputs [N, rest...] become parts of size 1 of a new axis 1).
// `sizes` (empty: taken from the inputs) and `present` (empty: all) describe every part of the
// output; absent parts have no input and are zero-filled (how Split's backward handles outputs
// that receive no gradient).
class ConcatOp final : public Op {
 public:
  ConcatOp(std::vector<std::int64_t> sizes, std::vector<bool> present, bool stack)
      : sizes_(std::move(sizes)), present_(std::move(present)), stack_(stack) {
    KESTREL_CHECK(present_.empty() || present_.size() == sizes_.size(), "concat: ", present_.size(),
                  " presence flags for ", sizes_.size(), " parts");
  }
  std::string type() const override { return stack_ ? "Stack" : "Concat"; }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    if (in.empty()) shape_error(type(), node, "number of inputs", "at least 1", "0");
    const std::vector<std::int64_t> sizes = part_sizes(in);
    if (!sizes_.empty()) expect_inputs(type(), node, in, present_count());
    const ValueInfo& first = *in[0];
    expect_row_major(type(), node, first, stack_ ? 1 : 2);
    for (std::size_t i = 0; i < in.size(); ++i) {
      const ValueInfo& v = *in[i];
      expect_row_major(type(), node, v, stack_ ? 1 : 2);
      if (v.dtype() != first.dtype())
        shape_error(type(), node, "input " + std::to_string(i) + " " + v.describe(),
                    std::string("dtype ") + dtype_name(first.dtype()), dtype_name(v.dtype()));
      // Every dimension but axis 1 (all of them when stacking) must match the first input's.
      Shape want = stack_ ? first.shape() : part_shape(first.shape(), v.shape()[1], false);
      if (!stack_ && !sizes_.empty()) want = part_shape(first.shape(), sizes_[input_part(i)], false);
      if (v.shape() != want)
        shape_error(type(), node, "input " + std::to_string(i) + " " + v.describe(), want.to_string(),
                    v.shape().to_string());
    }
    std::vector<std::int64_t> d = first.shape().dims();
    if (stack_) d.insert(d.begin() + 1, static_cast<std::int64_t>(sizes.size()));
    else d[1] = sum_of(type(), node, sizes);
    return {TypeSpec{Shape(d), first.dtype(), Layout::kNCHW}};
  }
  void run(const OpRun& r) const override {
    const Tensor& y = r.out[0];
    const std::size_t es = dtype_size(y.dtype());
    const std::int64_t rows = y.shape()[0];
    const std::int64_t inner = inner_of(y.shape());
    const std::int64_t total = y.shape()[1];
    std::int64_t at = 0;
    std::size_t next_input = 0;
    const std::int64_t parts = sizes_.empty() ? static_cast<std::int64_t>(r.in.size()) : static_cast<std::int64_t>(sizes_.size());
    for (std::int64_t p = 0; p < parts; ++p) {
      const std::int64_t size = sizes_.empty() ? (stack_ ? 1 : r.in[p].shape()[1]) : sizes_[p];
      const std::size_t width = static_cast<std::size_t>(size * inner) * es;
      char* dst = static_cast<char*>(y.data()) + static_cast<std::size_t>(at * inner) * es;
      const std::size_t pitch = static_cast<std::size_t>(total * inner) * es;
      if (present_.empty() || present_[p]) copy_rows(r, dst, pitch, r.in[next_input++].data(), width, width, rows);
      else zero_rows(r, dst, pitch, width, rows);
      at += size;
    }
  }
  std::vector<Value> backward(Graph& g, const Node& n, const std::vector<Value>& grad_out,
                              const std::vector<bool>&) const override;

 private:
  std::size_t present_count() const {
    std::size_t c = 0;
    for (std::size_t p = 0; p < sizes_.size(); ++p) c += present_.empty() || present_[p];
    return c;
  }
  // The part that input i fills.
  std::size_t input_part(std::size_t i) const {
    for (std::size_t p = 0, seen = 0; p < sizes_.size(); ++p)
      if (present_.empty() || present_[p]) {
        if (seen++ == i) return p;
      }
    return sizes_.size();
  }
  std::vector<std::int64_t> part_sizes(const std::vector<const ValueInfo*>& in) const {
    if (!sizes_.empty()) return sizes_;
    std::vector<std::int64_t> s;
    for (const ValueInfo* v : in) s.push_back(stack_ || v->shape().rank() < 2 ? 1 : v->shape()[1]);
    return s;
  }

  std::vector<std::int64_t> sizes_;
  std::vector<bool> present_;
  bool stack_;
};

// Split along axis 1 into parts of `sizes`; squeeze (unstack; all sizes 1) drops axis 1.
class SplitOp final : public Op {
 public:
  SplitOp(std::vector<std::int64_t> sizes, bool squeeze) : sizes_(std::move(sizes)), squeeze_(squeeze) {
    KESTREL_CHECK(!sizes_.empty(), "split into no parts");
    for (std::int64_t s : sizes_) {
      KESTREL_CHECK(s > 0, "split: part sizes must be positive, got ", s);
      KESTREL_CHECK(!squeeze_ || s == 1, "unstack: every part has size 1, got ", s);
    }
  }
  std::string type() const override { return squeeze_ ? "Unstack" : "Split"; }
  std::vector<std::string> output_names() const override {
    std::vector<std::string> names;
    for (std::size_t i = 0; i < sizes_.size(); ++i) names.push_back((squeeze_ ? "t" : "y") + std::to_string(i));
    return names;
  }
  std::vector<TypeSpec> infer(const std::vector<const ValueInfo*>& in, const std::string& node) const override {
    expect_inputs(type(), node, in, 1);
    const ValueInfo& x = *in[0];
    expect_row_major(type(), node, x, 2);
    if (x.shape()[1] != sum_of(type(), node, sizes_))
      shape_error(type(), node, "input " + x.describe(),
                  "axis 1 of size " + std::to_string(sum_of(type(), node, sizes_)) + " (the sum of the parts)",
                  std::to_string(x.shape()[1]));
    std::vector<TypeSpec> out;
    for (std::int64_t s : sizes_) out.push_back(TypeSpec{part_shape(x.shape(), s, squeeze_), x.dtype(), Layout::kNCHW});
    return out;
  }
  void run(const OpRun& r) const override {
    const Tensor& x = r.in[0];
    const std::size_t es = dtype_size(x.dtype());
    const std::int64_t rows = x.shape()[0];
    const std::int64_t inner = inner_of(x.shape());
    const std::size_t pitch = static_cast<std::size_t>(x.shape()[1] * inner) * es;
    std::int64_t at = 0;
    for (std::size_t p = 0; p < sizes_.size(); ++p) {
      const std::size_t width = static_cast<std::size_t>(sizes_[p] * inner) * es;
      const char* src = static_cast<const char*>(x.data()) + static_cast<std::size_t>(at * inner) * es;
      copy_rows(r, r.out[p].data(), width, src, pitch, width, rows);
      at += sizes_[p];
    }
  }
  std::vector<Value> backward(Graph& g, const Node& n, const std::vector<Value>& grad_out,
                              const std::vector<bool>&) const override {
    std::vector<bool> present;
    std::vector<Value> parts;
    for (const Value& v : grad_out) {
      KESTREL_CHECK(!v.is_seed(), type(), " '", n.name, "': an output of a split cannot be the loss");
      present.push_back(v.valid());
      if (v.valid()) parts.push_back(v);
    }
    return g.append_node(std::make_shared<ConcatOp>(sizes_, present, squeeze_), n.name + ".backward", parts, true);
  }

 private:
  std::vector<std::int64_t> sizes_;
  bool squeeze_;
};

std::vector<Value> ConcatOp::backward(Graph& g, const Node& n, const std::vector<Value>& grad_out,
                                      const std::vector<bool>& needs) const {
  KESTREL_CHECK(present_.empty(), type(), " '", n.name, "': a zero-filling concat is not differentiable");
  KESTREL_CHECK(!grad_out[0].is_seed(), type(), " '", n.name, "': a concatenation cannot be the loss");
  std::vector<const ValueInfo*> in;
  for (int i : n.inputs) in.push_back(&g.info(i));
  std::vector<Value> grads =
      g.append_node(std::make_shared<SplitOp>(part_sizes(in), stack_), n.name + ".backward", {grad_out[0]}, true);
  for (std::size_t i = 0; i < grads.size(); ++i)
    if (!needs[i]) grads[i] = Value{};
  return grads;
}
}  // namespace

std::shared_ptr<const Op> make_split_op(std::vector<std::int64_t> sizes) {
  return std::make_shared<SplitOp>(std::move(sizes), false);
}
std::shared_ptr<const Op> make_unstack_op(std::int64_t steps) {
  KESTREL_CHECK(steps > 0, "unstack into ", steps, " steps");
  return std::make_shared<SplitOp>(std::vector<std::int64_t>(static_cast<std::size_t>(steps), 1), true);
}
std::shared_ptr<const Op> make_concat_op() { return std::make_shared<ConcatOp>(std::vector<std::int64_t>{}, std::vector<bool>{}, false); }
std::shared_ptr<const Op> make_stack_op() { return std::make_shared<ConcatOp>(std::vector<std::int64_t>{}, std::vector<bool>{}, true); }

}  // namespace kestrel
