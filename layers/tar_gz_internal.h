// Minimal .tar.gz extraction and MD5 for the CIFAR-10 download (private header).
//
// Contract: the archive is gunzipped with zlib (multi-member gzip accepted, CRC checked to the
// end of the stream) and read as ustar/GNU tar. Only regular files and directories are
// accepted; absolute paths, ".." components, bad header checksums, unsupported entry types and
// truncated archives raise kestrel::Error naming the archive and the entry. Files are written
// below `dest_dir` only. On error, what was already written stays: callers extract into a
// staging folder they remove.
#pragma once

#include <cstdint>
#include <string>

namespace kestrel::detail {

// Lower-case hex MD5 of a file (OpenSSL EVP).
std::string md5_file_hex(const std::string& path);

// Extracts `archive` (a .tar.gz) below `dest_dir`, which must exist. Raises when the entries'
// sizes add up to more than `max_total_bytes` (a guard against decompression bombs).
void extract_tar_gz(const std::string& archive, const std::string& dest_dir,
                    std::uint64_t max_total_bytes);

}  // namespace kestrel::detail
