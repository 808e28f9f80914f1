// Number checks for the programs' options whose failure says what is wanted: CLI11's
// PositiveNumber / NonNegativeNumber print their range with a 309-digit upper bound ("Value 0 not
// in range 0.000000 to 17976931348623157..."), which names neither the rule nor the value well.
#pragma once

#include <CLI/CLI.hpp>

#include <cerrno>
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

// A whole number in [0, 2^64 - 1] written in decimal digits (a seed): "1e3", "-1" and numbers
// past 2^64 - 1 are refused (CLI11's own conversion would cap those at 2^64 - 1, silently).
inline CLI::Validator seed_number() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        const bool digits = !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
        errno = 0;
        if (digits) (void)std::strtoull(s.c_str(), nullptr, 10);
        if (digits && errno != ERANGE) return {};
        return "must be a whole number from 0 to 18446744073709551615, got '" + s + "'";
      },
      "INTEGER in [0, 2^64)");
}

}  // namespace kestrel::programs
