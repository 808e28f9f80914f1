#include "kestrel/core/number_text_internal.h"

#include <charconv>
#include <system_error>

#include "kestrel/core/error.h"

namespace kestrel::detail {
namespace {
std::string to_text(double v, std::chars_format format, int digits) {
  char buf[400];  // fixed notation of 1e308 with a few decimals fits
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof buf, v, format, digits);
  if (r.ec == std::errc()) return std::string(buf, r.ptr);
  // Longer (the largest doubles with many decimals): a buffer with room for any double in either
  // notation (a sign, 309 integer digits, the point, `digits` more, an exponent), so the text is
  // still printf's.
  std::string big(std::size_t{320} + static_cast<std::size_t>(digits > 0 ? digits : 0), '\0');
  const std::to_chars_result rb = std::to_chars(big.data(), big.data() + big.size(), v, format, digits);
  KESTREL_CHECK(rb.ec == std::errc(), "number text: no room for ", digits, " digits of ", v);  // cannot happen
  big.resize(static_cast<std::size_t>(rb.ptr - big.data()));
  return big;
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
