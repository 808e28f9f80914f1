// Every kernel entry point that takes a buffer typed by a DType refuses a pointer off that type's
// element boundary before touching anything: on the GPU such an access faults, and the fault ends
// the CUDA context. Both twins share the checks (kernels/*_math.h, element_io.h), so the CPU twins
// prove them here. Each call first runs with aligned pointers (it must succeed, so the refusal is
// the alignment's), then once for each data pointer moved by half an element (2 bytes for fp32,
// 1 for bf16) and once for each required one made null; the error must name the call (and the
// alignment), and no byte may change. The CUDA launcher gets the same refused calls: its checks
// run on the host before any CUDA call, so this proves, without a GPU, that every launcher makes
// them.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "error_text.h"
#include "kestrel/kernels/cpu/augment.h"
#include "kestrel/kernels/cpu/batchnorm.h"
#include "kestrel/kernels/cpu/bias.h"
#include "kestrel/kernels/cpu/dropout.h"
#include "kestrel/kernels/cpu/elementwise.h"
#include "kestrel/kernels/cpu/fill.h"
#include "kestrel/kernels/cpu/gemm.h"
#include "kestrel/kernels/cpu/layernorm.h"
#include "kestrel/kernels/cpu/layout_convert.h"
#include "kestrel/kernels/cpu/loss.h"
#include "kestrel/kernels/cpu/pooling.h"
#include "kestrel/kernels/cpu/reduce.h"
#include "kestrel/kernels/augment.h"
#include "kestrel/kernels/batchnorm.h"
#include "kestrel/kernels/bias.h"
#include "kestrel/kernels/dropout.h"
#include "kestrel/kernels/elementwise.h"
#include "kestrel/kernels/fill.h"
#include "kestrel/kernels/gemm.h"
#include "kestrel/kernels/layernorm.h"
#include "kestrel/kernels/layout_convert.h"
#include "kestrel/kernels/loss.h"
#include "kestrel/kernels/pooling.h"
#include "kestrel/kernels/reduce.h"

using namespace kestrel;
using kestrel::testing::error_of;

namespace {

constexpr std::size_t kSlotBytes = 65536;  // room for every buffer below, plus a shift
constexpr int kSlots = 8;

constexpr std::size_t kNull = SIZE_MAX;   // a shift that makes the slot's pointer null

// Random bytes in kSlots 16-byte aligned slots; slot k's pointer moves by shift[k] bytes (or is
// null for kNull).
class Slots {
 public:
  Slots() : words_(kSlots * kSlotBytes / 8) {
    std::mt19937_64 rng(20261127);
    for (auto& w : words_) w = rng();
  }
  std::uint8_t* at(int k, const std::vector<std::size_t>& shift) {
    if (shift.at(k) == kNull) return nullptr;
    return reinterpret_cast<std::uint8_t*>(words_.data()) + k * kSlotBytes + shift.at(k);
  }
  // Slot k holds `values` at its start (labels, indices: contents a call checks).
  template <typename T>
  void put(int k, const std::vector<T>& values) {
    std::memcpy(reinterpret_cast<std::uint8_t*>(words_.data()) + k * kSlotBytes, values.data(),
                values.size() * sizeof(T));
  }
  const std::vector<std::uint64_t>& words() const { return words_; }

 private:
  std::vector<std::uint64_t> words_;
};

// call(slots, shift, gpu) runs one entry point, the CPU twin or (gpu) the CUDA launcher on the
// default stream, with its first `typed` slots holding `dtype` data.
using Call = std::function<void(Slots&, const std::vector<std::size_t>&, bool)>;

// A Call of both twins of `fn` with the same arguments (the CUDA one gains the stream).
#define BOTH(fn, ...)                                                           \
  [=](Slots& s, const std::vector<std::size_t>& sh, bool gpu) {                 \
    if (gpu) {                                                                  \
      cuda::fn(__VA_ARGS__, nullptr);                                           \
    } else {                                                                    \
      cpu::fn(__VA_ARGS__);                                                     \
    }                                                                           \
  }

// Runs `call` on both twins with pointers moved by `shift`; each must raise an error that names
// the call and contains `text`, and write nothing.
void expect_refused(Slots& slots, const char* name, const Call& call, const std::vector<std::size_t>& shift,
                    const std::string& text, const std::string& what) {
  for (bool gpu : {false, true}) {
    const std::vector<std::uint64_t> before = slots.words();
    const std::string err = error_of([&] { call(slots, shift, gpu); });
    const char* twin = gpu ? "CUDA" : "CPU";
    EXPECT_NE(err.find(name), std::string::npos) << twin << ", " << what << ": " << err;
    EXPECT_NE(err.find(text), std::string::npos) << twin << ", " << what << ": " << err;
    EXPECT_EQ(slots.words(), before) << twin << ", " << what << ": a refused call wrote";
  }
}

// The aligned call runs (CPU twin); each of the first `typed` pointers, moved by half an element,
// is refused, and so is each made null, except the slots in the bit mask `optional` (null is a
// valid choice there).
void expect_refuses_misaligned(const char* name, DType dtype, int typed, const Call& call,
                               const std::function<void(Slots&)>& prepare = {}, unsigned optional = 0) {
  SCOPED_TRACE(std::string(name) + " " + dtype_name(dtype));
  Slots slots;
  if (prepare) prepare(slots);
  const std::vector<std::size_t> aligned(kSlots, 0);
  ASSERT_EQ(error_of([&] { call(slots, aligned, false); }), "(no error)") << "the aligned call must run";
  const std::string alignment = "is not aligned to its " + std::to_string(dtype_size(dtype)) + "-byte elements";
  for (int k = 0; k < typed; ++k) {
    std::vector<std::size_t> shift = aligned;
    shift[static_cast<std::size_t>(k)] = dtype_size(dtype) / 2;
    expect_refused(slots, name, call, shift, alignment, "pointer " + std::to_string(k));
    if ((optional >> k) & 1u) continue;
    shift[static_cast<std::size_t>(k)] = kNull;
    expect_refused(slots, name, call, shift, "", "null pointer " + std::to_string(k));
  }
}

const DType kDtypes[] = {DType::kFloat32, DType::kBFloat16};
constexpr std::int64_t kN = 37;  // elements of the elementwise calls

// fp32 data that is not the dtype under test (statistics, biases, results) at slot k, element i.
float* f32(Slots& s, int k, const std::vector<std::size_t>& shift, int i = 0) {
  return reinterpret_cast<float*>(s.at(k, shift)) + i;
}
std::int32_t* i32(Slots& s, int k, const std::vector<std::size_t>& shift) {
  return reinterpret_cast<std::int32_t*>(s.at(k, shift));
}
// Slot 7 is never moved: the workspace the CUDA launchers require (16-byte aligned; the CPU
// twins take none and ignore it).
void* workspace(Slots& s, const std::vector<std::size_t>& shift) { return s.at(7, shift); }

}  // namespace

TEST(ElementAlignment, ElementwiseDropoutFillAndCastRefuseMisalignedData) {
  for (DType t : kDtypes) {
    expect_refuses_misaligned("add_relu", t, 3, BOTH(add_relu, s.at(0, sh), s.at(1, sh), s.at(2, sh), kN, t));
    expect_refuses_misaligned("mul_backward", t, 5,
                              BOTH(mul_backward, s.at(0, sh), s.at(1, sh), s.at(2, sh), s.at(3, sh), s.at(4, sh), kN, t));
    expect_refuses_misaligned("dropout_forward", t, 2,
                              BOTH(dropout_forward, s.at(0, sh), s.at(1, sh), kN, t, DropoutParams{}));
    expect_refuses_misaligned("fill", t, 1, BOTH(fill_uniform, s.at(0, sh), t, kN, 7, 0, -1.f, 1.f));
    // cast: slot 0 holds x in `t`, slot 1 the result in the other dtype (each pointer is checked
    // against its own element size; the result's check is below).
    const DType other = t == DType::kFloat32 ? DType::kBFloat16 : DType::kFloat32;
    expect_refuses_misaligned("cast", t, 1, BOTH(cast, s.at(0, sh), t, s.at(1, sh), other, kN));
  }
  // The cast's destination: slot 1 is the bf16 source, slot 0 the fp32 destination.
  expect_refuses_misaligned("cast", DType::kFloat32, 1,
                            BOTH(cast, s.at(1, sh), DType::kBFloat16, s.at(0, sh), DType::kFloat32, kN));
}

TEST(ElementAlignment, NormalisationsRefuseMisalignedTensors) {
  const BatchNormDims d{2, 3, 5, Layout::kNCHW};
  // Slot 4: gamma, beta at 0 and 8; running or saved mean and variance at 16 and 24 (finite, > 0).
  const auto statistics = [](Slots& s) { s.put(4, std::vector<float>(48, 0.5f)); };
  for (DType t : kDtypes) {
    expect_refuses_misaligned(
        "batchnorm_forward_training", t, 3,
        BOTH(batchnorm_forward_training, s.at(0, sh), s.at(1, sh), s.at(2, sh), t, d, f32(s, 4, sh), f32(s, 4, sh, 8),
             1e-5f, 0.1f, f32(s, 5, sh), f32(s, 5, sh, 8), f32(s, 5, sh, 16), f32(s, 5, sh, 24), BnActivation::kAddRelu,
             workspace(s, sh)),
        statistics);
    expect_refuses_misaligned(
        "batchnorm_forward_inference", t, 3,
        BOTH(batchnorm_forward_inference, s.at(0, sh), s.at(1, sh), s.at(2, sh), t, d, f32(s, 4, sh), f32(s, 4, sh, 8),
             f32(s, 4, sh, 16), f32(s, 4, sh, 24), 1e-5f, BnActivation::kAddRelu),
        statistics);
    expect_refuses_misaligned(
        "batchnorm_forward_apply", t, 3,
        BOTH(batchnorm_forward_apply, s.at(0, sh), s.at(1, sh), s.at(2, sh), t, d, f32(s, 4, sh), f32(s, 4, sh, 8),
             f32(s, 4, sh, 16), f32(s, 4, sh, 24), BnActivation::kAddRelu),
        statistics);
    expect_refuses_misaligned(
        "batchnorm_backward", t, 5,
        BOTH(batchnorm_backward, s.at(0, sh), s.at(1, sh), s.at(2, sh), t, d, f32(s, 5, sh), f32(s, 5, sh, 16),
             f32(s, 5, sh, 24), s.at(3, sh), s.at(4, sh), f32(s, 6, sh), f32(s, 6, sh, 8), BnActivation::kAddRelu,
             workspace(s, sh)),
        [](Slots& s) { s.put(5, std::vector<float>(48, 0.5f)); });
    expect_refuses_misaligned("layernorm_forward", t, 2,
                              BOTH(layernorm_forward, s.at(0, sh), s.at(1, sh), t, 3, 7, f32(s, 4, sh), f32(s, 4, sh, 8),
                                   1e-5f, f32(s, 5, sh), f32(s, 5, sh, 8)));
    expect_refuses_misaligned(
        "layernorm_backward", t, 3,
        BOTH(layernorm_backward, s.at(0, sh), s.at(1, sh), t, 3, 7, f32(s, 4, sh), f32(s, 4, sh, 16), f32(s, 4, sh, 24),
             s.at(2, sh), f32(s, 5, sh), f32(s, 5, sh, 8), workspace(s, sh)),
        statistics);
  }
}

TEST(ElementAlignment, LayoutPoolingBiasAndReductionsRefuseMisalignedData) {
  for (DType t : kDtypes) {
    expect_refuses_misaligned("layout conversion", t, 2, BOTH(nchw_to_nhwc, s.at(0, sh), s.at(1, sh), t, 2, 3, 4, 5));
    expect_refuses_misaligned("global_avg_pool_forward", t, 2,
                              BOTH(global_avg_pool_forward, s.at(0, sh), s.at(1, sh), t, 2, 3, 20, Layout::kNHWC));
    expect_refuses_misaligned(
        "max_pool2x2_backward", t, 3,
        BOTH(max_pool2x2_backward, s.at(0, sh), s.at(1, sh), s.at(2, sh), t, 2, 3, 4, 6, Layout::kNCHW));
    expect_refuses_misaligned("channel_bias_add", t, 1,
                              BOTH(channel_bias_add, s.at(0, sh), f32(s, 1, sh), t, 2, 3, 5, Layout::kNCHW));
    expect_refuses_misaligned("bias_backward_rows", t, 1, BOTH(bias_backward_rows, s.at(0, sh), f32(s, 1, sh), 4, 9, t));
    expect_refuses_misaligned("count_nonfinite", t, 1,
                              BOTH(count_nonfinite, s.at(0, sh), t, kN, i32(s, 6, sh), workspace(s, sh), kSlotBytes));
  }
  // gemm: C[4, 6] = A[4, 5] B[5, 6] + C; the CUDA launcher validates before it looks at the handle.
  for (DType t : kDtypes) {
    expect_refuses_misaligned("gemm", t, 3, [t](Slots& s, const std::vector<std::size_t>& sh, bool gpu) {
      if (gpu) {
        cuda::gemm(nullptr, false, false, 4, 6, 5, 1.f, s.at(0, sh), 5, s.at(1, sh), 6, 1.f, s.at(2, sh), 6, t,
                   false, nullptr);
      } else {
        cpu::gemm(false, false, 4, 6, 5, 1.f, s.at(0, sh), 5, s.at(1, sh), 6, 1.f, s.at(2, sh), 6, t, false);
      }
    });
  }
  expect_refuses_misaligned("sum_squares", DType::kFloat32, 1,
                            BOTH(sum_squares, f32(s, 0, sh), kN, f32(s, 6, sh), workspace(s, sh), kSlotBytes));
}

TEST(ElementAlignment, LossesAndAugmentationRefuseMisalignedData) {
  const std::int64_t n = 6, k = 5;
  // Slot 6: valid labels (or, for augment_batch, image indices into its two images).
  const auto labels = [](Slots& s) { s.put(6, std::vector<std::int32_t>{0, 3, 1, 4, 2, 0}); };
  for (DType t : kDtypes) {
    expect_refuses_misaligned("softmax_cross_entropy", t, 2,
                              BOTH(softmax_cross_entropy, s.at(0, sh), t, i32(s, 6, sh), n, k, 0.1f, f32(s, 5, sh),
                                   s.at(1, sh), nullptr, workspace(s, sh)),
                              labels, 1u << 1);  // dlogits may be null (the loss alone)
    expect_refuses_misaligned("softmax_backward", t, 3,
                              BOTH(softmax_backward, s.at(0, sh), s.at(1, sh), s.at(2, sh), t, n, k));
    expect_refuses_misaligned(
        "count_correct", t, 1,
        BOTH(count_correct, s.at(0, sh), t, i32(s, 6, sh), n, k, reinterpret_cast<std::int64_t*>(s.at(5, sh))),
        labels);
    expect_refuses_misaligned("argmax_rows", t, 1, BOTH(argmax_rows, s.at(0, sh), t, n, k, i32(s, 5, sh)));
    // augment_batch: slot 0 the output, slot 1 two uint8 images.
    expect_refuses_misaligned("augment_batch", t, 1,
                              BOTH(augment_batch, s.at(1, sh), 2, nullptr, i32(s, 6, sh), 3, s.at(0, sh), t,
                                   Layout::kNHWC, nullptr, AugmentParams{}),
                              [](Slots& s) { s.put(6, std::vector<std::int32_t>{1, 0, 1}); });
  }
}
