// The CIFAR-10 data pipeline on the host: the official binary batches, a synthetic stand-in with
// the same format, epoch shuffling, and the optional download.
//
// Contract:
// - Images are kept exactly as the files hold them: uint8, [count, 3, 32, 32], planar RGB
//   (1024 R, then 1024 G, then 1024 B bytes per image). Labels are 0..9.
// - Every failure is a kestrel::Error naming the file and, where it applies, the record index
//   and byte offset. Nothing partially loaded is ever returned.
// - Everything random (synthetic images, permutations) comes from Philox streams
//   (kernels/philox.h), so it is the same on every machine for the same seed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace kestrel {

constexpr std::int64_t kCifarImageBytes = 3 * 32 * 32;             // 3072
constexpr std::int64_t kCifarRecordBytes = 1 + kCifarImageBytes;   // 3073: label byte + image
constexpr std::int64_t kCifarRecordsPerBatch = 10000;              // per official file
constexpr int kCifarClasses = 10;
// MD5 of https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz.
constexpr const char* kCifar10BinaryUrl = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
constexpr const char* kCifar10BinaryMd5 = "c32a1d4ab5d03f1284b67883e8d87530";

// One split: `count` images of [3, 32, 32] bytes (planar RGB, as in the files) and their labels.
struct CifarSplit {
  std::vector<std::uint8_t> images;  // count * 3072 bytes
  std::vector<std::uint8_t> labels;  // count bytes, each 0..9
  std::int64_t count = 0;
};

struct CifarDataset {
  CifarSplit train, test;
  // "cifar-10-batches-bin at DIR" or "synthetic (seed S)".
  std::string source;
};

// Parses one batch file's bytes (3073-byte records: label byte 0..9, then 1024 R, 1024 G,
// 1024 B). Accepts 1..10000 whole records; `name` is used in error messages.
CifarSplit parse_cifar10_batch(const std::uint8_t* bytes, std::size_t size, const std::string& name);

// Reads data_batch_1..5.bin (train) and test_batch.bin (test) from `dir` or from
// `dir`/cifar-10-batches-bin.
CifarDataset load_cifar10(const std::string& dir);
// Whether load_cifar10(dir) finds the batches to read (dir or dir/cifar-10-batches-bin holds
// data_batch_1.bin); it may still fail on a missing or malformed file.
bool cifar10_present(const std::string& dir);

// Writes `split` as one batch file in the official format. Raises on an inconsistent split
// (sizes that do not match `count`, labels above 9) before touching the file.
void write_cifar10_bin(const CifarSplit& split, const std::string& path);

// Writes `data` in the official layout: `dir`/data_batch_1..5.bin (the training split cut into
// five near-equal consecutive batches) and `dir`/test_batch.bin, so that load_cifar10(dir) reads
// it back. Needs 5..50000 training and 1..10000 test images. Creates `dir` if needed. Both
// splits are checked completely before any file is written, so a refused dataset leaves the
// folder as it was.
void write_cifar10_dir(const CifarDataset& data, const std::string& dir);

// A labelled stand-in for CIFAR-10 with learnable, class-dependent structure: each class is
// one of five stripe/ring patterns (orientation and frequency) in one of two colour schemes,
// drawn with random phase, position, frequency, contrast, colour jitter and per-pixel noise.
// A pattern detector (a small conv net) learns it; no single pixel separates the classes.
// Deterministic in `seed`; labels are balanced (label of image i is i % 10 before a seeded
// shuffle). Train and test draw from disjoint Philox streams.
CifarDataset synthetic_cifar10(std::int64_t n_train, std::int64_t n_test, std::uint64_t seed);

// A fingerprint of a split's contents (count, labels and image bytes; FNV-1a's step over 8-byte
// little-endian words, each mixed by splitmix64's finaliser) as 16 hex digits: what a checkpoint
// records of the data it was trained on, so that a resume on other data (synthetic instead of
// CIFAR-10, another copy or subset) is refused. Not a cryptographic hash.
std::string cifar10_fingerprint(const CifarSplit& split);

// A uniformly random permutation of 0..count-1 (Fisher-Yates), drawn from Philox stream
// (seed, offset = a "SHUF" tag | epoch), apart from the initialisation and dropout streams of the
// same seed: the same arguments give the same permutation everywhere.
std::vector<std::int32_t> epoch_permutation(std::int64_t count, std::uint64_t seed,
                                            std::int64_t epoch);

// Unpacks a cifar-10-binary.tar.gz into `dir` (making `dir`/cifar-10-batches-bin) after
// checking the archive's MD5 against `expected_md5` (32 hex digits), and verifies the result
// with load_cifar10. The archive is read with zlib and a minimal ustar reader (regular files and
// directories only; absolute paths and ".." are refused). The batches are unpacked into a
// staging folder inside `dir` and moved into place only once they load, so a failure leaves
// `dir` as it was. Raises if `dir`/cifar-10-batches-bin already exists. The archive itself is
// never removed.
void unpack_and_verify_cifar10(const std::string& tar_gz_path, const std::string& expected_md5,
                               const std::string& dir);

// Fetches kCifar10BinaryUrl with libcurl into a temporary file in `dir`, then
// unpack_and_verify_cifar10 with kCifar10BinaryMd5; the temporary file is removed whatever
// happens. Does nothing (but say so on `log`) when load_cifar10(dir) already succeeds. Without
// libcurl (KESTREL_HAVE_CURL == 0) raises an Error saying how to get the data by hand.
void download_cifar10(const std::string& dir, std::ostream& log);

}  // namespace kestrel
