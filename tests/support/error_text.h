// The what() of the kestrel::Error a callable raises, or "(no error)": for tests that check
// error messages with find() or contains().
#pragma once

#include <string>

#include "kestrel/core/error.h"

namespace kestrel::testing {

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Whether `text` (an error message, a note) holds `part`.
inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace kestrel::testing
