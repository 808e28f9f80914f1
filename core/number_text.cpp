#include "kestrel/core/number_text_internal.h"

#include <charconv>
#include <system_error>

namespace kestrel::detail {
namespace {
std::string to_text(double v, std::chars_format format, int digits) {
  char buf[400];  // fixed notation of 1e308 with a few decimals fits
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof buf, v, format, digits);
  if (r.ec != std::errc()) return general_text(v, 17);  // too long for fixed notation
  return std::string(buf, r.ptr);
}

template <typename T>
bool parse(const std::string& s, T* out) {
  if (s.empty()) return false;
  const char* first = s.data();
  const char* last = first + s.size();
  // strtod accepts one leading '+' (not followed by a '-'); from_chars accepts neither.
  if (*first == '+' && s.size() > 1 && s[1] != '-') ++first;
  T v{};
  const std::from_chars_result r = std::from_chars(first, last, v);
  if (r.ec != std::errc() || r.ptr != last) return false;
  *out = v;
  return true;
}
}  // namespace

std::string general_text(double v, int digits) { return to_text(v, std::chars_format::general, digits); }

std::string fixed_text(double v, int digits) { return to_text(v, std::chars_format::fixed, digits); }

std::string shortest_float_text(float v) {
  for (int digits = 6; digits < 9; ++digits) {
    const std::string s = general_text(static_cast<double>(v), digits);
    float back = 0.f;
    if (parse_float(s, &back) && back == v) return s;
  }
  return general_text(static_cast<double>(v), 9);  // 9 significant digits always read back
}

std::string shortest_double_text(double v) {
  for (int digits = 1; digits < 17; ++digits) {
    const std::string s = general_text(v, digits);
    double back = 0.0;
    if (parse_double(s, &back) && back == v) return s;
  }
  return general_text(v, 17);  // 17 significant digits always read back
}

bool parse_float(const std::string& s, float* out) { return parse(s, out); }
bool parse_double(const std::string& s, double* out) { return parse(s, out); }

}  // namespace kestrel::detail
