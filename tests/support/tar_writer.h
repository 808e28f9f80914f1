// A minimal ustar writer and gzip compressor for tests that need archives (written
// independently of the library's reader, from the POSIX ustar layout).
#pragma once

#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace kestrel::testing {

struct TarEntry {
  TarEntry(std::string name_, std::vector<std::uint8_t> data_ = {}, char type_ = '0',
           std::string prefix_ = {})
      : name(std::move(name_)), data(std::move(data_)), type(type_), prefix(std::move(prefix_)) {}
  std::string name;                 // up to 100 bytes
  std::vector<std::uint8_t> data;   // regular files only
  char type = '0';                  // '0' file, '5' directory, '2' symlink, ...
  std::string prefix;               // POSIX ustar path prefix (joined with '/')
  bool gnu_magic = false;           // "ustar  \0" (GNU) instead of "ustar\0" "00" (POSIX)
};

inline std::vector<std::uint8_t> tar_header(const TarEntry& e) {
  std::vector<std::uint8_t> h(512, 0);
  auto put = [&](std::size_t off, const std::string& s) { std::memcpy(&h[off], s.data(), s.size()); };
  auto octal = [&](std::size_t off, std::size_t width, unsigned long long v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%0*llo", static_cast<int>(width - 1), v);
    put(off, std::string(buf, width - 1));  // NUL-terminated by the zero fill
  };
  put(0, e.name.substr(0, 100));
  octal(100, 8, e.type == '5' ? 0755 : 0644);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, e.type == '0' ? e.data.size() : 0);
  octal(136, 12, 1700000000);
  h[156] = static_cast<std::uint8_t>(e.type);
  if (e.gnu_magic) {
    put(257, std::string("ustar  \0", 8));
  } else {
    put(257, std::string("ustar\0", 6));
    put(263, "00");
    put(345, e.prefix.substr(0, 155));
  }
  std::memset(&h[148], ' ', 8);
  unsigned sum = 0;
  for (std::uint8_t b : h) sum += b;
  char chk[8];
  std::snprintf(chk, sizeof chk, "%06o", sum);
  std::memcpy(&h[148], chk, 7);  // six digits, NUL, then the space already there
  return h;
}

// The archive: a header and zero-padded data per entry, then two zero blocks (if end_marker).
inline std::vector<std::uint8_t> make_tar(const std::vector<TarEntry>& entries, bool end_marker = true) {
  std::vector<std::uint8_t> out;
  for (const TarEntry& e : entries) {
    const std::vector<std::uint8_t> h = tar_header(e);
    out.insert(out.end(), h.begin(), h.end());
    if (e.type == '0') {
      out.insert(out.end(), e.data.begin(), e.data.end());
      out.resize((out.size() + 511) / 512 * 512, 0);
    }
  }
  if (end_marker) out.resize(out.size() + 1024, 0);
  return out;
}

inline std::vector<std::uint8_t> gzip_bytes(const std::vector<std::uint8_t>& raw) {
  z_stream z{};
  if (deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("deflateInit2 failed");
  std::vector<std::uint8_t> out(deflateBound(&z, raw.size()) + 64);
  z.next_in = const_cast<Bytef*>(raw.data());
  z.avail_in = static_cast<uInt>(raw.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate did not finish");
  out.resize(z.total_out);
  return out;
}

}  // namespace kestrel::testing
