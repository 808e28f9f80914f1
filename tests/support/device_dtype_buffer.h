// A device copy of a DtypeBuffer with the same dtype, size and misalignment (`lead` elements
// after a 256-byte aligned allocation), for comparing CUDA kernels with their CPU twins.
// Transfers run on the context's stream and have finished when the calls return.
#pragma once

#include <cuda_runtime.h>

#include "dtype_buffer.h"
#include "kestrel/core/context.h"
#include "kestrel/core/cuda_check_internal.h"
#include "kestrel/core/tensor.h"

namespace kestrel::testing {

class DeviceDtypeBuffer {
 public:
  DeviceDtypeBuffer(const DtypeBuffer& host, Context& gpu)
      : gpu_(gpu),
        n_(host.size()),
        lead_(host.lead()),
        dtype_(host.dtype()),
        storage_(Tensor::empty(Shape{host.size() + host.lead()}, host.dtype(), gpu)) {
    KESTREL_CUDA_CHECK(cudaMemcpyAsync(data(), host.data(), host.nbytes(), cudaMemcpyHostToDevice,
                                       gpu_.stream().handle()));
    gpu_.stream().synchronize();
  }

  void* data() const noexcept {
    return static_cast<char*>(storage_.data()) +
           lead_ * static_cast<std::int64_t>(dtype_size(dtype_));
  }

  // The device contents as a host buffer with the same lead (waits for the stream first).
  DtypeBuffer to_host() const {
    DtypeBuffer h(dtype_, n_, lead_);
    KESTREL_CUDA_CHECK(cudaMemcpyAsync(h.data(), data(), h.nbytes(), cudaMemcpyDeviceToHost,
                                       gpu_.stream().handle()));
    gpu_.stream().synchronize();
    return h;
  }

 private:
  Context& gpu_;
  std::int64_t n_;
  std::int64_t lead_;
  DType dtype_;
  Tensor storage_;
};

}  // namespace kestrel::testing
