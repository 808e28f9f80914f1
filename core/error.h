// kestrel::Error and its subtypes; the checked-call macros that raise them.
//
// Contract: every failure inside Kestrel surfaces as a kestrel::Error (or subtype) whose what()
// names what failed and where ("<message> [at core/tensor.cpp:42]"). The library never calls
// exit() or abort(). Leaf header: kernels/ may include it (it knows nothing of Tensor).
#pragma once

#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace kestrel {

// Base of all Kestrel errors. `message` is the human part; `call` is the source text of the
// failing call when there is one (CUDA/cuDNN/cuBLAS checks), `file`/`line` where it was raised.
class Error : public std::runtime_error {
 public:
  Error(std::string message, std::string call = {}, const char* file = nullptr, int line = 0);
  const std::string& message() const noexcept { return message_; }
  const std::string& call() const noexcept { return call_; }
  const char* file() const noexcept { return file_; }
  int line() const noexcept { return line_; }

 private:
  std::string message_;
  std::string call_;
  const char* file_;
  int line_;
};

// A CUDA runtime call failed. `code` is the cudaError_t value.
class CudaError : public Error {
 public:
  CudaError(int code, std::string message, std::string call, const char* file, int line)
      : Error(std::move(message), std::move(call), file, line), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

// A cuDNN call failed. `status` is the cudnnStatus_t value.
class CudnnError : public Error {
 public:
  CudnnError(int status, std::string message, std::string call, const char* file, int line)
      : Error(std::move(message), std::move(call), file, line), status_(status) {}
  int status() const noexcept { return status_; }

 private:
  int status_;
};

// A cuBLAS call failed. `status` is the cublasStatus_t value.
class CublasError : public Error {
 public:
  CublasError(int status, std::string message, std::string call, const char* file, int line)
      : Error(std::move(message), std::move(call), file, line), status_(status) {}
  int status() const noexcept { return status_; }

 private:
  int status_;
};

// An allocation failed. The message states the requested bytes and what the device had free.
class OutOfMemoryError : public Error {
 public:
  OutOfMemoryError(std::string message, std::size_t requested, std::size_t free_bytes,
                   const char* file, int line)
      : Error(std::move(message), {}, file, line), requested_(requested), free_(free_bytes) {}
  std::size_t requested_bytes() const noexcept { return requested_; }
  std::size_t free_bytes() const noexcept { return free_; }

 private:
  std::size_t requested_;
  std::size_t free_;
};

namespace detail {
// A float or double in a message: the shortest text that reads back as it (p = 1.0000001f
// prints as "1.0000001", where the stream's six digits gave "1" in "must lie in [0, 1], got 1").
std::string message_float(float v);
std::string message_float(double v);
template <typename T>
decltype(auto) message_arg(const T& v) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    return message_float(v);
  } else {
    return (v);
  }
}
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << message_arg(args));
  return os.str();
}
// Shortens an absolute __FILE__ to the part from the project's top-level folders on.
const char* short_file(const char* file) noexcept;
}  // namespace detail

}  // namespace kestrel

// Raises kestrel::Error with a message built from the arguments when `cond` is false.
#define KESTREL_CHECK(cond, ...)                                                           \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      throw ::kestrel::Error(::kestrel::detail::concat(__VA_ARGS__), {},                   \
                             ::kestrel::detail::short_file(__FILE__), __LINE__);           \
    }                                                                                      \
  } while (0)

// Raises kestrel::Error unconditionally.
#define KESTREL_FAIL(...)                                                                  \
  throw ::kestrel::Error(::kestrel::detail::concat(__VA_ARGS__), {},                       \
                         ::kestrel::detail::short_file(__FILE__), __LINE__)
