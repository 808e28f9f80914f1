// The what() of the kestrel::Error a callable raises, or "(no error)": for tests that check
// error messages with find().
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

}  // namespace kestrel::testing
