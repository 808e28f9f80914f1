// Number checks for the programs' options whose failure says what is wanted: CLI11's
// PositiveNumber / NonNegativeNumber print their range with a 309-digit upper bound ("Value 0 not
// in range 0.000000 to 17976931348623157..."), which names neither the rule nor the value well.
#pragma once

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdlib>
#include <string>

namespace kestrel::programs {

// Accepts numbers above 0 (or at least 0 with `or_zero`); the message reads "--steps: must be > 0,
// got 0" after CLI11's option prefix.
inline CLI::Validator above_zero(bool or_zero = false) {
  return CLI::Validator(
      [or_zero](std::string& s) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v))
          return "must be a finite number, got '" + s + "'";
        if (or_zero ? v >= 0.0 : v > 0.0) return {};
        return std::string("must be ") + (or_zero ? ">= 0" : "> 0") + ", got " + s;
      },
      or_zero ? "NUMBER >= 0" : "NUMBER > 0");
}

inline CLI::Validator at_least_zero() { return above_zero(true); }

}  // namespace kestrel::programs
