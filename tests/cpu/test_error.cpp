// Error formatting and the typed error tree.
#include <gtest/gtest.h>

#include <string>

#include "kestrel/core/cuda_check_internal.h"
#include "kestrel/core/error.h"

TEST(Error, CheckNamesConditionMessageFileAndLine) {
  try {
    const int got = 7;
    KESTREL_CHECK(got == 3, "expected 3 things, got ", got);
    FAIL() << "no throw";
  } catch (const kestrel::Error& e) {
    const std::string w = e.what();
    EXPECT_EQ(e.message(), "expected 3 things, got 7");
    EXPECT_NE(w.find("expected 3 things, got 7 [at tests/cpu/test_error.cpp:"), std::string::npos) << w;
    EXPECT_STREQ(e.file(), "tests/cpu/test_error.cpp");
    EXPECT_GT(e.line(), 0);
    EXPECT_TRUE(e.call().empty());
  }
}

TEST(Error, VendorErrorsCarryCallAndCodeAndAreKestrelErrors) {
  const kestrel::CudaError cuda(2, "CUDA error cudaErrorMemoryAllocation (2): out of memory",
                                "cudaMalloc(&p, n)", "core/x.cpp", 12);
  EXPECT_EQ(std::string(cuda.what()),
            "CUDA error cudaErrorMemoryAllocation (2): out of memory in `cudaMalloc(&p, n)` [at core/x.cpp:12]");
  EXPECT_EQ(cuda.code(), 2);
  const kestrel::Error& base = cuda;
  EXPECT_EQ(base.call(), "cudaMalloc(&p, n)");
  const kestrel::CudnnError dnn(3000, "cuDNN error CUDNN_STATUS_NOT_SUPPORTED (3000)", "cudnnBackendFinalize(plan)", "core/c.cpp", 5);
  EXPECT_EQ(dnn.status(), 3000);
  const kestrel::CublasError blas(13, "cuBLAS error CUBLAS_STATUS_EXECUTION_FAILED (13)", "cublasSgemm(...)", "core/b.cpp", 9);
  EXPECT_EQ(blas.status(), 13);
  EXPECT_NE(std::string(blas.what()).find("in `cublasSgemm(...)`"), std::string::npos);
}

TEST(Error, ShortFileKeepsTheProjectRelativePart) {
  EXPECT_STREQ(kestrel::detail::short_file("/home/x/kestrel/core/tensor.cpp"), "core/tensor.cpp");
  EXPECT_STREQ(kestrel::detail::short_file("/a/core/b/kernels/cpu/fill.cpp"), "kernels/cpu/fill.cpp");
  EXPECT_STREQ(kestrel::detail::short_file("plain.cpp"), "plain.cpp");
  // The last occurrence of the same root (a checkout under a folder named like one of them), and
  // every root the project has.
  EXPECT_STREQ(kestrel::detail::short_file("/srv/core/kestrel/core/tensor.cpp"), "core/tensor.cpp");
  EXPECT_STREQ(kestrel::detail::short_file("/w/tools/k/tools/gpu_check.sh"), "tools/gpu_check.sh");
  EXPECT_STREQ(kestrel::detail::short_file("/w/k/tests/cpu/test_error.cpp"), "tests/cpu/test_error.cpp");
  EXPECT_STREQ(kestrel::detail::short_file("/w/k/layers/trainer.cpp"), "layers/trainer.cpp");
  EXPECT_STREQ(kestrel::detail::short_file("/w/k/python_free_examples/cifar10_train.cpp"),
               "python_free_examples/cifar10_train.cpp");
  EXPECT_EQ(kestrel::detail::short_file(nullptr), nullptr);
}

TEST(Error, FailAlwaysThrowsKestrelError) {
  EXPECT_THROW(KESTREL_FAIL("boom ", 1), kestrel::Error);
  EXPECT_THROW(KESTREL_FAIL("boom"), std::runtime_error);
}

// Floats in messages read back as the value checked: 1.0000001f printed as "1" (six digits) made
// "p must lie in [0, 1], got 1" look like a bug in the check.
TEST(Error, FloatsInMessagesKeepTheirDigits) {
  const auto message = [](auto v) {
    try {
      KESTREL_CHECK(false, "got ", v);
    } catch (const kestrel::Error& e) {
      return std::string(e.message());
    }
    return std::string();
  };
  EXPECT_EQ(message(1.0000001f), "got 1.0000001");
  EXPECT_EQ(message(0.1f), "got 0.1");
  EXPECT_EQ(message(3), "got 3");
  EXPECT_EQ(message(1.4142135623730951), "got 1.4142135623730951");
  EXPECT_EQ(message(1e-5f), "got 1e-05");
  EXPECT_EQ(message(std::string("text")), "got text");
}

// A CUDA status becomes a CudaError naming the status, its number and the runtime's text (these
// string functions need no device), with the call that failed.
TEST(Error, CudaStatusesBecomeCudaErrorsNamingTheStatus) {
  try {
    kestrel::detail::throw_cuda_error(cudaErrorInvalidValue, "cudaMemcpy(a, b)", "core/x.cpp", 12);
  } catch (const kestrel::CudaError& e) {
    EXPECT_EQ(e.code(), static_cast<int>(cudaErrorInvalidValue));
    EXPECT_EQ(e.message(), std::string("CUDA error cudaErrorInvalidValue (1): ") + cudaGetErrorString(cudaErrorInvalidValue));
    EXPECT_EQ(e.call(), "cudaMemcpy(a, b)");
  }
}
