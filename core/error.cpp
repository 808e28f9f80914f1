#include "kestrel/core/error.h"

#include <charconv>
#include <cstring>

namespace kestrel {
namespace {
std::string format_what(const std::string& message, const std::string& call, const char* file,
                        int line) {
  std::string s = message;
  if (!call.empty()) s += " in `" + call + "`";
  if (file != nullptr) s += " [at " + std::string(file) + ":" + std::to_string(line) + "]";
  return s;
}
}  // namespace

Error::Error(std::string message, std::string call, const char* file, int line)
    : std::runtime_error(format_what(message, call, file, line)),
      message_(std::move(message)),
      call_(std::move(call)),
      file_(file),
      line_(line) {}

namespace detail {
namespace {
template <typename F>
std::string shortest_text(F v) {
  char buf[64];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof buf, v);  // shortest round trip
  return r.ec == std::errc() ? std::string(buf, r.ptr) : std::string("?");
}
}  // namespace

std::string message_float(float v) { return shortest_text(v); }
std::string message_float(double v) { return shortest_text(v); }

const char* short_file(const char* file) noexcept {
  if (file == nullptr) return nullptr;
  static const char* const kRoots[] = {"/core/", "/kernels/", "/layers/", "/python_free_examples/",
                                       "/tests/", "/tools/"};
  const char* best = nullptr;
  for (const char* root : kRoots) {
    // The last occurrence wins so that a checkout path containing e.g. "/core/" still works.
    for (const char* p = std::strstr(file, root); p != nullptr; p = std::strstr(p + 1, root)) {
      if (best == nullptr || p > best) best = p;
    }
  }
  return best != nullptr ? best + 1 : file;
}
}  // namespace detail
}  // namespace kestrel
