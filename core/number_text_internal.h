// Numbers as text for files other programs read (checkpoint metadata, JSON logs, CSV tables, SVG
// coordinates; private header): always with a '.' decimal point, whatever locale the linking program has set with
// setlocale (printf and strtod follow LC_NUMERIC: under de_DE they write and expect "0,1").
// Built on std::to_chars / std::from_chars, which never consult the locale.
#pragma once

#include <string>

namespace kestrel::detail {

// printf's "%.<digits>g" (general) and "%.<digits>f" (fixed); "nan", "inf", "-inf" as printf.
std::string general_text(double v, int digits);
std::string fixed_text(double v, int digits);
// The shortest of "%.6g" ... "%.9g" that reads back as the same float (0.3f -> "0.3").
std::string shortest_float_text(float v);
// The shortest "%.<d>g" that reads back as the same double (0.9 -> "0.9", not 0.90000000000000002).
std::string shortest_double_text(double v);

// The whole of `s` as a number ('.' decimal point, optional exponent, "nan" / "inf" accepted);
// false, with *out untouched, when `s` is empty, has anything else, or is out of range.
bool parse_float(const std::string& s, float* out);
bool parse_double(const std::string& s, double* out);

}  // namespace kestrel::detail
