#include "kestrel/layers/tar_gz_internal.h"

#include <openssl/evp.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "kestrel/core/error.h"
#include "kestrel/layers/file_io_internal.h"

namespace kestrel::detail {
namespace {

namespace fs = std::filesystem;

struct FileCloser {
  void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

FilePtr open_for_reading(const std::string& path) {
  FilePtr f(std::fopen(path.c_str(), "rb"));
  KESTREL_CHECK(f != nullptr, "cannot open ", path, ": ", errno_text(errno));
  return f;
}

// Streams the decompressed bytes of a gzip file.
class GzipReader {
 public:
  explicit GzipReader(const std::string& path) : path_(path), file_(open_for_reading(path)) {
    // 16 + MAX_WBITS: gzip wrapper only (no raw deflate, no zlib wrapper).
    KESTREL_CHECK(inflateInit2(&z_, 16 + MAX_WBITS) == Z_OK, "zlib inflateInit2 failed for ", path);
  }
  ~GzipReader() { inflateEnd(&z_); }
  GzipReader(const GzipReader&) = delete;
  GzipReader& operator=(const GzipReader&) = delete;

  // Up to `n` decompressed bytes; fewer only at the end of the last gzip member.
  std::size_t read(std::uint8_t* out, std::size_t n) {
    z_.next_out = out;
    z_.avail_out = static_cast<uInt>(n);
    while (z_.avail_out > 0 && !finished_) {
      if (z_.avail_in == 0 && !fill()) {
        KESTREL_CHECK(member_done_, path_, " is truncated: the gzip stream ends after ", file_bytes_,
                      " bytes, inside a compressed member");
        finished_ = true;
        break;
      }
      if (member_done_) {  // more input after a complete member: another member follows
        KESTREL_CHECK(inflateReset(&z_) == Z_OK, "zlib inflateReset failed for ", path_);
        member_done_ = false;
      }
      const int rc = inflate(&z_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        member_done_ = true;
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        KESTREL_FAIL(path_, " is not a valid gzip file (zlib: ", z_.msg ? z_.msg : zError(rc),
                     ", at compressed byte ", file_bytes_ - z_.avail_in, ")");
      }
    }
    return n - z_.avail_out;
  }

 private:
  bool fill() {
    const std::size_t got = std::fread(in_.data(), 1, in_.size(), file_.get());
    KESTREL_CHECK(!std::ferror(file_.get()), "read failure in ", path_, ": ", errno_text(errno));
    z_.next_in = in_.data();
    z_.avail_in = static_cast<uInt>(got);
    file_bytes_ += got;
    return got > 0;
  }

  std::string path_;
  FilePtr file_;
  z_stream z_{};
  std::vector<Bytef> in_ = std::vector<Bytef>(1 << 16);
  std::uint64_t file_bytes_ = 0;  // compressed bytes read from the file so far
  bool member_done_ = false;
  bool finished_ = false;
};

constexpr std::size_t kBlock = 512;

// Parses a NUL/space-terminated octal field; false on anything else (incl. base-256 numbers).
bool parse_octal(const std::uint8_t* field, std::size_t len, std::uint64_t& value) {
  std::size_t i = 0;
  while (i < len && field[i] == ' ') ++i;
  bool any = false;
  value = 0;
  for (; i < len && field[i] >= '0' && field[i] <= '7'; ++i) {
    if (value > (UINT64_MAX >> 3)) return false;
    value = value * 8 + (field[i] - '0');
    any = true;
  }
  for (; i < len; ++i)
    if (field[i] != ' ' && field[i] != '\0') return false;
  return any;
}

std::string field_string(const std::uint8_t* field, std::size_t len) {
  const auto* end = static_cast<const std::uint8_t*>(std::memchr(field, 0, len));
  return std::string(reinterpret_cast<const char*>(field),
                     end ? static_cast<std::size_t>(end - field) : len);
}

// The entry's path below the destination, or an error for absolute paths and "..".
fs::path safe_relative_path(const std::string& name, const std::string& archive) {
  KESTREL_CHECK(!name.empty(), archive, " has an entry with an empty name");
  KESTREL_CHECK(name[0] != '/', archive, " has an entry with an absolute path (", name,
                "); refusing to unpack it");
  fs::path rel;
  for (const fs::path& part : fs::path(name)) {
    const std::string p = part.string();
    KESTREL_CHECK(p != "..", archive, " has an entry whose path leaves the folder (", name,
                  "); refusing to unpack it");
    if (p.empty() || p == ".") continue;
    rel /= part;
  }
  return rel;
}

}  // namespace

std::string md5_file_hex(const std::string& path) {
  FilePtr f = open_for_reading(path);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  KESTREL_CHECK(ctx != nullptr && EVP_DigestInit_ex(ctx.get(), EVP_md5(), nullptr) == 1,
                "OpenSSL could not start an MD5 digest (MD5 disabled in this OpenSSL?)");
  std::vector<unsigned char> buf(1 << 16);
  for (;;) {
    const std::size_t got = std::fread(buf.data(), 1, buf.size(), f.get());
    KESTREL_CHECK(!std::ferror(f.get()), "read failure in ", path, ": ", errno_text(errno));
    if (got == 0) break;
    KESTREL_CHECK(EVP_DigestUpdate(ctx.get(), buf.data(), got) == 1, "OpenSSL MD5 update failed");
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  KESTREL_CHECK(EVP_DigestFinal_ex(ctx.get(), digest, &len) == 1, "OpenSSL MD5 final failed");
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

void extract_tar_gz(const std::string& archive, const std::string& dest_dir,
                    std::uint64_t max_total_bytes) {
  GzipReader gz(archive);
  std::uint8_t header[kBlock];
  std::vector<std::uint8_t> chunk(1 << 16);
  std::uint64_t total = 0, offset = 0;
  for (std::int64_t entry = 0;; ++entry) {
    const std::size_t got = gz.read(header, kBlock);
    KESTREL_CHECK(got == kBlock, archive, " is truncated: the tar stream ends at byte ", offset + got,
                  " without its end-of-archive marker");
    offset += kBlock;
    if (std::all_of(header, header + kBlock, [](std::uint8_t b) { return b == 0; })) break;

    std::string name = field_string(header, 100);
    std::uint64_t stored = 0;
    KESTREL_CHECK(parse_octal(header + 148, 8, stored), archive, ": entry ", entry, " (",
                  name, ") at byte ", offset - kBlock, " has an unreadable header checksum");
    std::uint64_t unsigned_sum = 0;
    std::int64_t signed_sum = 0;  // some old tars summed signed chars
    for (std::size_t i = 0; i < kBlock; ++i) {
      const std::uint8_t b = (i >= 148 && i < 156) ? ' ' : header[i];
      unsigned_sum += b;
      signed_sum += static_cast<signed char>(b);
    }
    KESTREL_CHECK(stored == unsigned_sum || static_cast<std::int64_t>(stored) == signed_sum, archive,
                  ": entry ", entry, " at byte ", offset - kBlock, " has header checksum ", stored,
                  " but its bytes sum to ", unsigned_sum, " (corrupt archive)");
    // POSIX ustar keeps a path prefix; GNU's "ustar  " magic uses that space for other fields.
    if (std::memcmp(header + 257, "ustar\0", 6) == 0) {
      const std::string prefix = field_string(header + 345, 155);
      if (!prefix.empty()) name = prefix + "/" + name;
    }
    std::uint64_t size = 0;
    KESTREL_CHECK(parse_octal(header + 124, 12, size), archive, ": entry ", name,
                  " has a size field that is not octal (base-256 sizes are not supported)");
    char type = static_cast<char>(header[156]);
    // Pre-POSIX tars mark directories only by a trailing slash.
    if ((type == '0' || type == '\0') && size == 0 && !name.empty() && name.back() == '/') type = '5';
    const fs::path target = fs::path(dest_dir) / safe_relative_path(name, archive);
    std::error_code ec;
    if (type == '5') {
      fs::create_directories(target, ec);
      KESTREL_CHECK(!ec, "cannot create folder ", target.string(), " from ", archive, ": ",
                    ec.message());
      continue;
    }
    KESTREL_CHECK(type == '0' || type == '\0' || type == '7', archive, ": entry ", name,
                  " has tar type '", type, "'; only regular files and directories are supported");
    KESTREL_CHECK(size <= max_total_bytes - total, archive, " unpacks to more than ",
                  max_total_bytes, " bytes (at entry ", name, "); this is not the expected archive");
    total += size;
    fs::create_directories(target.parent_path(), ec);
    KESTREL_CHECK(!ec, "cannot create folder ", target.parent_path().string(), " from ", archive,
                  ": ", ec.message());
    std::ofstream out(target, std::ios::binary | std::ios::trunc);
    KESTREL_CHECK(out.good(), "cannot create ", target.string(), " from ", archive, ": ",
                  errno_text(errno));
    const std::uint64_t padded = (size + kBlock - 1) / kBlock * kBlock;
    for (std::uint64_t done = 0; done < padded;) {
      const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), padded - done));
      const std::size_t n = gz.read(chunk.data(), want);
      KESTREL_CHECK(n == want, archive, " is truncated: entry ", name, " needs ", size,
                    " bytes but the archive ends after ", std::min(size, done + n));
      if (done < size) {
        const std::size_t data = static_cast<std::size_t>(std::min<std::uint64_t>(n, size - done));
        out.write(reinterpret_cast<const char*>(chunk.data()), static_cast<std::streamsize>(data));
      }
      done += n;
    }
    offset += padded;
    out.close();
    KESTREL_CHECK(!out.fail(), "writing ", target.string(), " from ", archive, " failed: ",
                  errno_text(errno));
  }
  // Read to the end so that zlib checks the CRC and length of every member.
  while (gz.read(chunk.data(), chunk.size()) > 0) {
  }
}

}  // namespace kestrel::detail
