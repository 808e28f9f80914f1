// Reading and writing CIFAR-10 binary batches.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "kestrel/core/error.h"
#include "kestrel/layers/cifar10.h"
#include "kestrel/layers/file_io_internal.h"

namespace kestrel {
namespace {

constexpr const char* kTrainFiles[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                       "data_batch_4.bin", "data_batch_5.bin"};
constexpr const char* kTestFile = "test_batch.bin";

// Raises unless `size` bytes hold 1..10000 whole records. Checked before a file is read, so an
// oversized file is refused without reading it.
void check_batch_size(std::uint64_t size, const std::string& name) {
  const std::uint64_t rec = kCifarRecordBytes;
  KESTREL_CHECK(size > 0, name, " is empty; a CIFAR-10 batch holds 3073-byte records");
  KESTREL_CHECK(size % rec == 0, name, " is ", size,
                " bytes, not a whole number of 3073-byte records (", size / rec, " full + 1 partial",
                " of ", size % rec, " bytes at byte offset ", size - size % rec, ")");
  KESTREL_CHECK(size / rec <= static_cast<std::uint64_t>(kCifarRecordsPerBatch), name, " holds ",
                size / rec, " records (", size, " bytes); a CIFAR-10 batch holds at most ",
                kCifarRecordsPerBatch);
}

void append(CifarSplit& into, const CifarSplit& part) {
  into.images.insert(into.images.end(), part.images.begin(), part.images.end());
  into.labels.insert(into.labels.end(), part.labels.begin(), part.labels.end());
  into.count += part.count;
}

CifarSplit read_batch_file(const std::filesystem::path& path) {
  const std::string name = path.string();
  detail::InputFile file(name);
  check_batch_size(file.size(), name);
  const std::vector<std::uint8_t> bytes = file.read_all();
  return parse_cifar10_batch(bytes.data(), bytes.size(), name);
}

// DIR itself, or DIR/cifar-10-batches-bin, whichever holds the first training batch; empty when
// neither does.
std::filesystem::path find_batches_folder(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path direct(dir);
  const fs::path nested = direct / "cifar-10-batches-bin";
  std::error_code ec;
  if (fs::exists(direct / kTrainFiles[0], ec)) return direct;
  if (fs::exists(nested / kTrainFiles[0], ec)) return nested;
  return {};
}

std::filesystem::path batches_folder(const std::string& dir) {
  namespace fs = std::filesystem;
  fs::path found = find_batches_folder(dir);
  if (!found.empty()) return found;
  const fs::path direct(dir);
  const fs::path nested = direct / "cifar-10-batches-bin";
  KESTREL_FAIL("no CIFAR-10 binary batches in ", dir, ": missing file ",
               (direct / kTrainFiles[0]).string(), " (also looked in ", nested.string(),
               "); download cifar-10-binary.tar.gz and unpack it there");
}

}  // namespace

CifarSplit parse_cifar10_batch(const std::uint8_t* bytes, std::size_t size, const std::string& name) {
  check_batch_size(size, name);
  const std::int64_t count = static_cast<std::int64_t>(size) / kCifarRecordBytes;
  CifarSplit split;
  split.count = count;
  split.labels.resize(static_cast<std::size_t>(count));
  split.images.resize(static_cast<std::size_t>(count * kCifarImageBytes));
  for (std::int64_t i = 0; i < count; ++i) {
    const std::uint8_t* rec = bytes + i * kCifarRecordBytes;
    KESTREL_CHECK(rec[0] < kCifarClasses, "record ", i, " of ", name, " has label ", +rec[0],
                  "; labels are 0..9 (byte offset ", i * kCifarRecordBytes, ")");
    split.labels[static_cast<std::size_t>(i)] = rec[0];
    std::memcpy(split.images.data() + i * kCifarImageBytes, rec + 1, kCifarImageBytes);
  }
  return split;
}

namespace {
// splitmix64's finaliser: a bijection whose every output bit depends on every input bit.
std::uint64_t avalanche(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
}  // namespace

std::string cifar10_fingerprint(const CifarSplit& split) {
  // FNV-1a's step over words, each word mixed first: a multiply only carries bits upwards, so
  // unmixed, flips of a word's top bit passed to the end and an even number of them cancelled.
  constexpr std::uint64_t kPrime = 0x100000001b3ull;
  std::uint64_t h = 0xcbf29ce484222325ull;
  // The count comes first and fixes both lengths, so a short last word needs no length tag.
  auto mix = [&](const std::uint8_t* bytes, std::size_t size) {
    for (std::size_t i = 0; i < size; i += 8) {
      std::uint64_t word = 0;
      for (std::size_t b = std::min<std::size_t>(8, size - i); b-- > 0;) word = word << 8 | bytes[i + b];
      h = (h ^ avalanche(word)) * kPrime;
    }
  };
  const auto count = static_cast<std::uint64_t>(split.count);
  std::uint8_t count_bytes[8];
  for (int b = 0; b < 8; ++b) count_bytes[b] = static_cast<std::uint8_t>(count >> (8 * b));
  mix(count_bytes, sizeof count_bytes);
  mix(split.labels.data(), split.labels.size());
  mix(split.images.data(), split.images.size());
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(avalanche(h)));
  return text;
}

bool cifar10_present(const std::string& dir) { return !find_batches_folder(dir).empty(); }

CifarDataset load_cifar10(const std::string& dir) {
  const std::filesystem::path folder = batches_folder(dir);
  CifarDataset data;
  std::vector<CifarSplit> parts;
  std::int64_t total = 0;
  for (const char* file : kTrainFiles) {
    parts.push_back(read_batch_file(folder / file));
    total += parts.back().count;
  }
  data.train.images.reserve(static_cast<std::size_t>(total * kCifarImageBytes));
  data.train.labels.reserve(static_cast<std::size_t>(total));
  for (CifarSplit& part : parts) {
    append(data.train, part);
    part = CifarSplit{};  // release each part once copied
  }
  data.test = read_batch_file(folder / kTestFile);
  data.source = "cifar-10-batches-bin at " + folder.string();
  return data;
}

namespace {
// The records of one batch file, after checking the split (`path` names it in errors).
std::vector<std::uint8_t> encode_batch(const CifarSplit& split, const std::string& path) {
  KESTREL_CHECK(split.count > 0 && split.count <= kCifarRecordsPerBatch, "write_cifar10_bin(",
                path, "): count ", split.count, " is not in 1..", kCifarRecordsPerBatch);
  const std::size_t n = static_cast<std::size_t>(split.count);
  KESTREL_CHECK(split.labels.size() == n && split.images.size() == n * kCifarImageBytes,
                "write_cifar10_bin(", path, "): count ", split.count, " but ", split.labels.size(),
                " labels and ", split.images.size(), " image bytes (want ", n * kCifarImageBytes, ")");
  std::vector<std::uint8_t> bytes(n * kCifarRecordBytes);
  for (std::size_t i = 0; i < n; ++i) {
    KESTREL_CHECK(split.labels[i] < kCifarClasses, "write_cifar10_bin(", path, "): image ", i,
                  " has label ", +split.labels[i], "; labels are 0..9");
    bytes[i * kCifarRecordBytes] = split.labels[i];
    std::memcpy(bytes.data() + i * kCifarRecordBytes + 1, split.images.data() + i * kCifarImageBytes,
                kCifarImageBytes);
  }
  return bytes;
}
}  // namespace

void write_cifar10_bin(const CifarSplit& split, const std::string& path) {
  const std::vector<std::uint8_t> bytes = encode_batch(split, path);
  detail::write_file_atomic(bytes.data(), bytes.size(), path);
}

void write_cifar10_dir(const CifarDataset& data, const std::string& dir) {
  const std::int64_t n = data.train.count;
  KESTREL_CHECK(n >= 5 && n <= 5 * kCifarRecordsPerBatch, "write_cifar10_dir(", dir, "): ", n,
                " training images; five batches need 5..", 5 * kCifarRecordsPerBatch);
  KESTREL_CHECK(data.train.labels.size() == static_cast<std::size_t>(n) &&
                    data.train.images.size() == static_cast<std::size_t>(n * kCifarImageBytes),
                "write_cifar10_dir(", dir, "): training split holds ", data.train.labels.size(),
                " labels and ", data.train.images.size(), " image bytes for count ", n);
  // Every file is encoded (and so checked) before the first is written: a bad label in the last
  // batch or an empty test split must not leave a folder of new training batches beside an old
  // test batch, which would load as one dataset.
  const std::filesystem::path folder(dir);
  std::vector<std::pair<std::string, std::vector<std::uint8_t>>> files;
  std::int64_t begin = 0;
  for (int b = 0; b < 5; ++b) {
    const std::int64_t end = n * (b + 1) / 5;
    CifarSplit part;
    part.count = end - begin;
    part.labels.assign(data.train.labels.begin() + begin, data.train.labels.begin() + end);
    part.images.assign(data.train.images.begin() + begin * kCifarImageBytes,
                       data.train.images.begin() + end * kCifarImageBytes);
    const std::string path = (folder / kTrainFiles[b]).string();
    files.emplace_back(path, encode_batch(part, path));
    begin = end;
  }
  const std::string test_path = (folder / kTestFile).string();
  files.emplace_back(test_path, encode_batch(data.test, test_path));
  detail::make_directories(dir);
  for (const auto& [path, bytes] : files) detail::write_file_atomic(bytes.data(), bytes.size(), path);
}

}  // namespace kestrel
