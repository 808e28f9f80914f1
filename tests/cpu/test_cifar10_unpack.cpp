// Unpacking and verifying cifar-10-binary.tar.gz on archives built here (there is no network):
// success, MD5 mismatch, corrupt and truncated gzip, truncated tar, unsafe paths, bad headers;
// and detail::extract_tar_gz on hand-built headers (other writers' forms, malformed fields, the
// size limit, a zlib wrapper).
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>
#include <sstream>
#include <utility>

#include "kestrel/config.h"
#include "kestrel/core/error.h"
#include "kestrel/layers/cifar10.h"
#include "kestrel/layers/cifar10_download_internal.h"
#include "kestrel/layers/file_io_internal.h"
#include "kestrel/layers/tar_gz_internal.h"
#include "tar_writer.h"
#include "error_text.h"
#include "temp_dir.h"
#include "test_support.h"

namespace kestrel {
namespace {

namespace fs = std::filesystem;
using testing::TarEntry;
using testing::TempDir;
using testing::error_of;

std::string md5_hex(const std::vector<std::uint8_t>& bytes) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EXPECT_EQ(EVP_Digest(bytes.data(), bytes.size(), d, &n, EVP_md5(), nullptr), 1);
  std::string hex;
  char buf[3];
  for (unsigned i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", d[i]);
    hex += buf;
  }
  return hex;
}

std::vector<std::uint8_t> batch_bytes(const CifarSplit& s) {
  std::vector<std::uint8_t> out;
  for (std::int64_t i = 0; i < s.count; ++i) {
    out.push_back(s.labels[i]);
    out.insert(out.end(), s.images.begin() + i * 3072, s.images.begin() + (i + 1) * 3072);
  }
  return out;
}

// The entries of a small but well-formed CIFAR-10 archive built from synthetic images.
std::vector<TarEntry> cifar_entries(const CifarDataset& d) {
  std::vector<TarEntry> e;
  e.push_back({"cifar-10-batches-bin/", {}, '5'});
  e.push_back({"cifar-10-batches-bin/batches.meta.txt", {'c', 'a', 't', '\n'}});
  for (int b = 0; b < 5; ++b) {
    CifarSplit part;
    part.count = 4;
    part.labels.assign(d.train.labels.begin() + b * 4, d.train.labels.begin() + b * 4 + 4);
    part.images.assign(d.train.images.begin() + b * 4 * 3072, d.train.images.begin() + (b + 1) * 4 * 3072);
    e.push_back({"cifar-10-batches-bin/data_batch_" + std::to_string(b + 1) + ".bin", batch_bytes(part)});
  }
  e.push_back({"test_batch.bin", batch_bytes(d.test), '0', "cifar-10-batches-bin"});  // ustar prefix
  return e;
}

struct Archive {
  std::string path, md5;
};

Archive write_archive(const TempDir& tmp, const std::vector<std::uint8_t>& gz) {
  const std::string path = tmp / "cifar-10-binary.tar.gz";
  testing::write_bytes(path, gz);
  return {path, md5_hex(gz)};
}

// After a failure the destination holds neither the batches nor the staging folder.
void expect_untouched(const std::string& dest) {
  if (!fs::exists(dest)) return;
  for (const auto& entry : fs::directory_iterator(dest)) ADD_FAILURE() << "left behind: " << entry.path();
}

class Cifar10Unpack : public ::testing::Test {
 protected:
  Cifar10Unpack() : tmp_("cifar_unpack"), data_(synthetic_cifar10(20, 3, 5)) {}
  std::string dest() const { return tmp_ / "dest"; }
  TempDir tmp_;
  CifarDataset data_;
};

TEST_F(Cifar10Unpack, UnpacksAndVerifies) {
  const Archive a = write_archive(tmp_, testing::gzip_bytes(testing::make_tar(cifar_entries(data_))));
  unpack_and_verify_cifar10(a.path, a.md5, dest());
  const CifarDataset got = load_cifar10(dest());
  EXPECT_TRUE(testing::bit_equal(got.train.images, data_.train.images));
  EXPECT_TRUE(testing::bit_equal(got.train.labels, data_.train.labels));
  EXPECT_TRUE(testing::bit_equal(got.test.images, data_.test.images));
  EXPECT_EQ(got.source, "cifar-10-batches-bin at " + (fs::path(dest()) / "cifar-10-batches-bin").string());
  EXPECT_EQ(testing::read_bytes(dest() + "/cifar-10-batches-bin/batches.meta.txt").size(), 4u);
  // Only the batches folder remains (no staging folder); the archive is kept.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dest())) names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"cifar-10-batches-bin"});
  EXPECT_TRUE(fs::exists(a.path));
  // Upper-case checksums are the same checksum; a second unpack refuses to overwrite.
  std::string upper = a.md5;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_NE(error_of([&] { unpack_and_verify_cifar10(a.path, upper, dest()); }).find("already exists"),
            std::string::npos);
}

TEST_F(Cifar10Unpack, GnuMagicAndMultiMemberGzipAreAccepted) {
  std::vector<TarEntry> entries = cifar_entries(data_);
  for (TarEntry& e : entries) {
    if (!e.prefix.empty()) e.name = e.prefix + "/" + e.name, e.prefix.clear();
    e.gnu_magic = true;
  }
  entries.insert(entries.begin() + 1, TarEntry{"cifar-10-batches-bin/old-style-dir/"});  // type '0'
  const std::vector<std::uint8_t> tar = testing::make_tar(entries);
  // Two gzip members, split inside the tar stream: a valid .gz (as `cat a.gz b.gz`).
  const std::size_t half = tar.size() / 2 + 100;
  std::vector<std::uint8_t> gz = testing::gzip_bytes({tar.begin(), tar.begin() + half});
  const std::vector<std::uint8_t> second = testing::gzip_bytes({tar.begin() + half, tar.end()});
  gz.insert(gz.end(), second.begin(), second.end());
  const Archive a = write_archive(tmp_, gz);
  unpack_and_verify_cifar10(a.path, a.md5, dest());
  EXPECT_TRUE(testing::bit_equal(load_cifar10(dest()).test.images, data_.test.images));
  EXPECT_TRUE(fs::is_directory(dest() + "/cifar-10-batches-bin/old-style-dir"));
}

TEST_F(Cifar10Unpack, Md5MismatchIsRefusedBeforeUnpacking) {
  const Archive a = write_archive(tmp_, testing::gzip_bytes(testing::make_tar(cifar_entries(data_))));
  std::string wrong = a.md5;
  wrong[0] = wrong[0] == '0' ? '1' : '0';
  const std::string e = error_of([&] { unpack_and_verify_cifar10(a.path, wrong, dest()); });
  EXPECT_NE(e.find("has MD5 " + a.md5 + " but " + wrong + " was expected"), std::string::npos) << e;
  expect_untouched(dest());
  EXPECT_NE(error_of([&] { unpack_and_verify_cifar10(a.path, "xyz", dest()); }).find("not 32 hex digits"),
            std::string::npos);
  // Hex digits, but one short (or one over) of an MD5: refused as malformed, not as a mismatch.
  for (const std::string& length : {a.md5.substr(0, 31), a.md5 + "0"})
    EXPECT_NE(error_of([&] { unpack_and_verify_cifar10(a.path, length, dest()); }).find("not 32 hex digits"),
              std::string::npos) << length;
  EXPECT_NE(error_of([&] { unpack_and_verify_cifar10(tmp_ / "none.tar.gz", a.md5, dest()); })
                .find("cannot open"),
            std::string::npos);
}

TEST_F(Cifar10Unpack, CorruptGzipIsRefused) {
  const std::vector<std::uint8_t> good = testing::gzip_bytes(testing::make_tar(cifar_entries(data_)));
  std::vector<std::uint8_t> gz = good;
  gz[2] = 9;  // compression method: only 8 (deflate) exists
  const Archive a = write_archive(tmp_, gz);
  std::string e = error_of([&] { unpack_and_verify_cifar10(a.path, a.md5, dest()); });
  EXPECT_NE(e.find("is not a valid gzip file (zlib: unknown compression method"), std::string::npos) << e;
  expect_untouched(dest());
  // Damage inside the deflate stream is caught by zlib or, when it still decodes, by the tar
  // header checksums or the gzip CRC: either way an error and nothing unpacked.
  gz = good;
  for (std::size_t i = gz.size() / 3; i < gz.size() / 3 + 64; ++i) gz[i] ^= 0x5a;
  const Archive m = write_archive(tmp_, gz);
  e = error_of([&] { unpack_and_verify_cifar10(m.path, m.md5, dest()); });
  EXPECT_TRUE(e.find("not a valid gzip file") != std::string::npos ||
              e.find("has header checksum") != std::string::npos) << e;
  expect_untouched(dest());
  // Not gzip at all.
  const Archive b = write_archive(tmp_, testing::make_tar(cifar_entries(data_)));
  EXPECT_NE(error_of([&] { unpack_and_verify_cifar10(b.path, b.md5, dest()); }).find("not a valid gzip"),
            std::string::npos);
  expect_untouched(dest());
}

TEST_F(Cifar10Unpack, DamagedTrailerIsCaught) {
  // The CRC sits in the last 8 bytes: everything unpacks, then zlib must notice.
  std::vector<std::uint8_t> gz = testing::gzip_bytes(testing::make_tar(cifar_entries(data_)));
  gz[gz.size() - 6] ^= 1;
  const Archive a = write_archive(tmp_, gz);
  EXPECT_NE(error_of([&] { unpack_and_verify_cifar10(a.path, a.md5, dest()); }).find("not a valid gzip"),
            std::string::npos);
  expect_untouched(dest());
}

TEST_F(Cifar10Unpack, TruncatedGzipAndTarAreRefused) {
  const std::vector<std::uint8_t> tar = testing::make_tar(cifar_entries(data_));
  std::vector<std::uint8_t> gz = testing::gzip_bytes(tar);
  gz.resize(gz.size() / 2);
  const Archive a = write_archive(tmp_, gz);
  std::string e = error_of([&] { unpack_and_verify_cifar10(a.path, a.md5, dest()); });
  EXPECT_NE(e.find("is truncated: the gzip stream ends"), std::string::npos) << e;
  expect_untouched(dest());
  // A complete gzip of a tar cut inside data_batch_3.bin's contents.
  const std::vector<std::uint8_t> cut(tar.begin(), tar.begin() + 512 * 2 + 512 + 3 * (512 + 12800) - 700);
  const Archive b = write_archive(tmp_, testing::gzip_bytes(cut));
  e = error_of([&] { unpack_and_verify_cifar10(b.path, b.md5, dest()); });
  EXPECT_NE(e.find("is truncated: entry cifar-10-batches-bin/data_batch_3.bin needs 12292 bytes"),
            std::string::npos) << e;
  expect_untouched(dest());
  // Cut at an entry boundary: no end-of-archive marker.
  const std::vector<std::uint8_t> no_end = testing::make_tar(cifar_entries(data_), false);
  const Archive c = write_archive(tmp_, testing::gzip_bytes(no_end));
  e = error_of([&] { unpack_and_verify_cifar10(c.path, c.md5, dest()); });
  EXPECT_NE(e.find("without its end-of-archive marker"), std::string::npos) << e;
  expect_untouched(dest());
}

TEST_F(Cifar10Unpack, PathTraversalAndAbsolutePathsAreRefused) {
  for (const std::string& bad : {std::string("../evil.bin"), std::string("cifar-10-batches-bin/../../evil.bin"),
                                 std::string("/tmp/kestrel_evil.bin")}) {
    std::vector<TarEntry> entries = cifar_entries(data_);
    entries.insert(entries.begin() + 1, TarEntry{bad, {'x'}});
    const Archive a = write_archive(tmp_, testing::gzip_bytes(testing::make_tar(entries)));
    const std::string e = error_of([&] { unpack_and_verify_cifar10(a.path, a.md5, dest()); });
    EXPECT_NE(e.find("refusing to unpack it"), std::string::npos) << e;
    EXPECT_NE(e.find(bad), std::string::npos) << e;
    EXPECT_FALSE(fs::exists(tmp_ / "evil.bin"));
    EXPECT_FALSE(fs::exists("/tmp/kestrel_evil.bin"));
    expect_untouched(dest());
  }
}

TEST_F(Cifar10Unpack, BadHeadersAndEntryTypesAreRefused) {
  std::vector<std::uint8_t> tar = testing::make_tar(cifar_entries(data_));
  tar[512 + 10] ^= 0x01;  // inside the second header's name: checksum no longer matches
  const Archive a = write_archive(tmp_, testing::gzip_bytes(tar));
  std::string e = error_of([&] { unpack_and_verify_cifar10(a.path, a.md5, dest()); });
  EXPECT_NE(e.find("has header checksum"), std::string::npos) << e;
  expect_untouched(dest());

  std::vector<TarEntry> entries = cifar_entries(data_);
  entries.insert(entries.begin() + 1, TarEntry{"cifar-10-batches-bin/link", {}, '2'});
  const Archive b = write_archive(tmp_, testing::gzip_bytes(testing::make_tar(entries)));
  e = error_of([&] { unpack_and_verify_cifar10(b.path, b.md5, dest()); });
  EXPECT_NE(e.find("has tar type '2'; only regular files and directories"), std::string::npos) << e;
  expect_untouched(dest());
}

TEST_F(Cifar10Unpack, ArchiveMustHoldLoadableBatches) {
  std::vector<TarEntry> entries = cifar_entries(data_);
  for (TarEntry& e : entries) e.name = "other/" + e.name, e.prefix.clear();
  const Archive a = write_archive(tmp_, testing::gzip_bytes(testing::make_tar(entries)));
  EXPECT_NE(error_of([&] { unpack_and_verify_cifar10(a.path, a.md5, dest()); })
                .find("holds no cifar-10-batches-bin folder"),
            std::string::npos);
  expect_untouched(dest());

  entries = cifar_entries(data_);
  entries[3].data[3073] = 77;  // record 1 of data_batch_2.bin
  const Archive b = write_archive(tmp_, testing::gzip_bytes(testing::make_tar(entries)));
  const std::string e = error_of([&] { unpack_and_verify_cifar10(b.path, b.md5, dest()); });
  EXPECT_NE(e.find("its batches do not load"), std::string::npos) << e;
  EXPECT_NE(e.find("record 1 of"), std::string::npos) << e;
  EXPECT_NE(e.find("has label 77"), std::string::npos) << e;
  expect_untouched(dest());
}

TEST(Cifar10Md5, KnownAnswer) {
  TempDir tmp("md5");
  testing::write_bytes(tmp / "abc", {'a', 'b', 'c'});
  EXPECT_EQ(detail::md5_file_hex(tmp / "abc"), "900150983cd24fb0d6963f7d28e17f72");  // RFC 1321
  testing::write_bytes(tmp / "empty", {});
  EXPECT_EQ(detail::md5_file_hex(tmp / "empty"), "d41d8cd98f00b204e9800998ecf8427e");
}

TEST(Cifar10Download, SkipsWhenPresentAndExplainsWithoutCurl) {
  TempDir tmp("download");
  const CifarDataset d = synthetic_cifar10(10, 10, 1);
  for (int b = 1; b <= 5; ++b) write_cifar10_bin(d.train, tmp / ("data_batch_" + std::to_string(b) + ".bin"));
  write_cifar10_bin(d.test, tmp / "test_batch.bin");
  std::ostringstream log;
  download_cifar10(tmp.path().string(), log);  // present: no network needed
  EXPECT_NE(log.str().find("already in"), std::string::npos) << log.str();
  // A damaged existing copy is reported before any download.
  fs::create_directories(tmp / "d2/cifar-10-batches-bin");
  EXPECT_NE(error_of([&] { download_cifar10(tmp / "d2", log); }).find("cifar-10-batches-bin exists but CIFAR-10 in"),
            std::string::npos);
#if !KESTREL_HAVE_CURL
  const std::string e = error_of([&] { download_cifar10(tmp / "empty", log); });
  EXPECT_NE(e.find("Kestrel was built without libcurl: download cifar-10-binary.tar.gz yourself"),
            std::string::npos) << e;
  EXPECT_NE(e.find("pass --data DIR"), std::string::npos) << e;
#endif
}

#if KESTREL_HAVE_CURL
// The libcurl transfer itself, through a file:// address (no network here).
TEST_F(Cifar10Unpack, DownloadsThroughLibcurl) {
  const Archive a = write_archive(tmp_, testing::gzip_bytes(testing::make_tar(cifar_entries(data_))));
  const std::string url = "file://" + fs::absolute(a.path).string();
  std::ostringstream log;
  std::string e = error_of([&] { detail::download_cifar10_from(url + ".missing", a.md5, dest(), log); });
  EXPECT_NE(e.find("downloading " + url + ".missing failed"), std::string::npos) << e;
  std::string wrong = a.md5;
  wrong[5] = wrong[5] == 'a' ? 'b' : 'a';
  e = error_of([&] { detail::download_cifar10_from(url, wrong, dest(), log); });
  EXPECT_NE(e.find("was expected"), std::string::npos) << e;
  expect_untouched(dest());  // the partial download is removed on failure
  detail::download_cifar10_from(url, a.md5, dest(), log);
  EXPECT_TRUE(testing::bit_equal(load_cifar10(dest()).train.images, data_.train.images));
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dest())) names.push_back(entry.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"cifar-10-batches-bin"}) << log.str();
}

// The download's file is created exclusively: links planted at the names it may take (the old
// fixed name "<...>.part.<pid>" and the next ones of the process's counter) are skipped, never
// followed, so their target is not overwritten (before, fopen followed the link).
TEST_F(Cifar10Unpack, DownloadNeverFollowsALinkPlantedAtItsFileName) {
  const Archive a = write_archive(tmp_, testing::gzip_bytes(testing::make_tar(cifar_entries(data_))));
  const std::string url = "file://" + fs::absolute(a.path).string();
  fs::create_directories(dest());
  const std::string victim = tmp_ / "victim.txt";
  testing::write_bytes(victim, {'k', 'e', 'e', 'p'});
  const std::string prefix = (fs::path(dest()) / "cifar-10-binary.tar.gz.part.").string();
  std::string probe;
  int err = 0;
  const int fd = detail::create_exclusive(prefix, 0600, &probe, &err);
  ASSERT_GE(fd, 0) << err;
  ::close(fd);
  fs::remove(probe);
  const std::string pid = std::to_string(static_cast<long long>(::getpid()));
  const long long next = std::stoll(probe.substr(prefix.size() + pid.size() + 1)) + 1;
  std::vector<std::string> links{prefix + pid};
  for (long long n = next; n < next + 3; ++n) links.push_back(prefix + pid + "." + std::to_string(n));
  for (const std::string& l : links) fs::create_symlink(victim, l);
  std::ostringstream log;
  detail::download_cifar10_from(url, a.md5, dest(), log);
  EXPECT_EQ(testing::read_bytes(victim), (std::vector<std::uint8_t>{'k', 'e', 'e', 'p'}));
  for (const std::string& l : links) EXPECT_TRUE(fs::is_symlink(l)) << l;
  EXPECT_NE(log.str().find(prefix + pid + "." + std::to_string(next + 3)), std::string::npos) << log.str();
  EXPECT_TRUE(testing::bit_equal(load_cifar10(dest()).train.images, data_.train.images));
}
#endif

// Batches directly in DIR are the ones load_cifar10 reads first: damaged, they are reported before
// any download (before, the download went into DIR/cifar-10-batches-bin, said "ready", and
// loading DIR still failed on the old file).
TEST(Cifar10Download, DamagedBatchesDirectlyInTheFolderAreReportedFirst) {
  TempDir tmp("download_direct");
  testing::write_bytes(tmp / "data_batch_1.bin", std::vector<std::uint8_t>(15, 7));
  std::ostringstream log;
  const std::string e = error_of(
      [&] { detail::download_cifar10_from("file:///nonexistent/cifar.tar.gz", "00", tmp.path().string(), log); });
  EXPECT_NE(e.find((tmp / "data_batch_1.bin") + " exists but CIFAR-10 in"), std::string::npos) << e;
  EXPECT_NE(e.find("not a whole number of 3073-byte records"), std::string::npos) << e;
  EXPECT_EQ(log.str(), "");
}

// Tar headers as other writers make them, built byte by byte on the independent writer's
// ustar header (tests/support/tar_writer.h), unpacked with detail::extract_tar_gz itself.
enum class Seal { kSixDigitsNulSpace, kSevenDigitsNul, kSignedSum };

// Rewrites the checksum field (148..155) after other edits: the byte sum with the field counted
// as eight spaces, as "%06o" NUL space (GNU, the writer's form), "%07o" NUL, or the sum of the
// bytes as signed chars (some old tars) in the first form.
void seal(std::vector<std::uint8_t>& h, Seal how) {
  std::memset(&h[148], ' ', 8);
  long sum = 0;
  for (std::uint8_t b : h) sum += how == Seal::kSignedSum ? static_cast<signed char>(b) : b;
  char buf[32];  // a header sums to at most 512 x 255
  std::snprintf(buf, sizeof buf, how == Seal::kSevenDigitsNul ? "%07lo" : "%06lo", sum);
  std::memcpy(&h[148], buf, how == Seal::kSevenDigitsNul ? 8 : 7);
}

// A header for `size` bytes of type `type`, its size field written as "%011o" NUL.
std::vector<std::uint8_t> header_for(const std::string& name, std::size_t size, char type = '0') {
  std::vector<std::uint8_t> h = testing::tar_header(TarEntry{name, std::vector<std::uint8_t>(size)});
  h[156] = static_cast<std::uint8_t>(type);
  seal(h, Seal::kSixDigitsNulSpace);
  return h;
}

void set_field(std::vector<std::uint8_t>& h, std::size_t offset, std::size_t width, const std::string& text) {
  std::memset(&h[offset], 0, width);
  std::memcpy(&h[offset], text.data(), std::min(width, text.size()));
}

// Header, data, zero padding to the next 512-byte block.
void append(std::vector<std::uint8_t>& tar, const std::vector<std::uint8_t>& header,
            const std::vector<std::uint8_t>& data = {}) {
  tar.insert(tar.end(), header.begin(), header.end());
  tar.insert(tar.end(), data.begin(), data.end());
  tar.resize((tar.size() + 511) / 512 * 512, 0);
}

void end_marker(std::vector<std::uint8_t>& tar) { tar.resize(tar.size() + 1024, 0); }

// Random non-zero bytes (fixed seed).
std::vector<std::uint8_t> payload(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint8_t> v(n);
  for (std::uint8_t& b : v) b = static_cast<std::uint8_t>(1 + rng() % 255);
  return v;
}

class TarGzExtract : public ::testing::Test {
 protected:
  TarGzExtract() : tmp_("tar_gz_extract") {}
  // Gzips `tar` (or writes `raw` as is) to a fresh archive, extracts it into a fresh folder and
  // returns the error text, or "(no error)"; dest() is the folder.
  std::string extract(const std::vector<std::uint8_t>& tar, std::uint64_t limit = 1 << 20, bool raw = false) {
    ++n_;
    archive_ = tmp_ / ("a" + std::to_string(n_) + ".tar.gz");
    testing::write_bytes(archive_, raw ? tar : testing::gzip_bytes(tar));
    fs::create_directories(dest());
    return error_of([&] { detail::extract_tar_gz(archive_, dest(), limit); });
  }
  std::string dest() const { return tmp_ / ("out" + std::to_string(n_)); }
  TempDir tmp_;
  std::string archive_;
  int n_ = 0;
};

TEST_F(TarGzExtract, HeaderFormsOfOtherWritersAreRead) {
  std::vector<std::uint8_t> tar;
  std::vector<std::pair<std::string, std::vector<std::uint8_t>>> files;
  auto add = [&](const std::string& path, std::vector<std::uint8_t> h, const std::vector<std::uint8_t>& data) {
    append(tar, h, data);
    files.emplace_back(path, data);
  };
  // Size right-aligned after spaces (old tars: "%11o " style without zero fill).
  std::vector<std::uint8_t> h = header_for("spaces.bin", 5);
  set_field(h, 124, 12, "         5 ");
  seal(h, Seal::kSixDigitsNulSpace);
  add("spaces.bin", h, payload(5, 1));
  // Checksum as seven digits and a NUL (no trailing space).
  h = header_for("seven.bin", 7);
  seal(h, Seal::kSevenDigitsNul);
  add("seven.bin", h, payload(7, 2));
  // Names with bytes >= 0x80: the signed-char sum and the unsigned sum differ; both are accepted.
  h = header_for("signed\xe9\xe9.bin", 3);
  seal(h, Seal::kSignedSum);
  add("signed\xe9\xe9.bin", h, payload(3, 3));
  add("unsigned\xe9\xe9.bin", header_for("unsigned\xe9\xe9.bin", 4), payload(4, 4));
  // Pre-POSIX regular files (type NUL) and contiguous files (type '7') are regular files.
  add("nul_type.bin", header_for("nul_type.bin", 9, '\0'), payload(9, 5));
  add("contiguous.bin", header_for("contiguous.bin", 11, '7'), payload(11, 6));
  // A pre-POSIX directory: type NUL, size 0, a trailing slash.
  append(tar, header_for("old_dir/", 0, '\0'));
  // A file of exactly one block: no padding after it.
  add("block.bin", header_for("block.bin", 512), payload(512, 7));
  // A POSIX prefix longer than the name field (120 characters of the 155).
  const std::string prefix = "p" + std::string(119, 'x');
  h = testing::tar_header(TarEntry{"deep.bin", payload(6, 8), '0', prefix});
  add(prefix + "/deep.bin", h, payload(6, 8));
  // GNU magic: bytes 345.. hold atime, not a prefix.
  TarEntry gnu{"gnu.bin", payload(2, 9)};
  gnu.gnu_magic = true;
  h = testing::tar_header(gnu);
  set_field(h, 345, 12, "14574541110");
  seal(h, Seal::kSixDigitsNulSpace);
  add("gnu.bin", h, payload(2, 9));
  end_marker(tar);

  ASSERT_EQ(extract(tar), "(no error)");
  for (const auto& [path, data] : files) {
    ASSERT_TRUE(fs::is_regular_file(dest() + "/" + path)) << path;
    EXPECT_EQ(testing::read_bytes(dest() + "/" + path), data) << path;
  }
  EXPECT_TRUE(fs::is_directory(dest() + "/old_dir"));
  EXPECT_FALSE(fs::exists(dest() + "/14574541110")) << "GNU atime taken for a path prefix";
}

TEST_F(TarGzExtract, MalformedHeadersAreRefusedNamingTheEntry) {
  // Size fields with a digit that is not octal, trailing garbage, or no digits at all.
  for (const std::string& size : {std::string("00000000009"), std::string("0000000001x"), std::string()}) {
    std::vector<std::uint8_t> h = header_for("bad.bin", 1);
    set_field(h, 124, 12, size);
    seal(h, Seal::kSixDigitsNulSpace);
    std::vector<std::uint8_t> tar;
    append(tar, h, payload(9, 10));
    end_marker(tar);
    const std::string e = extract(tar);
    EXPECT_NE(e.find(archive_ + ": entry bad.bin has a size field that is not octal"), std::string::npos)
        << "size field '" << size << "': " << e;
  }
  // An entry with an empty name (and data) is an error, not the end of the archive.
  std::vector<std::uint8_t> tar;
  append(tar, header_for("", 1), payload(1, 11));
  end_marker(tar);
  std::string e = extract(tar);
  EXPECT_NE(e.find(archive_ + " has an entry with an empty name"), std::string::npos) << e;
  // A damaged second header: its offset, the stored checksum and the bytes' sum.
  tar.clear();
  append(tar, header_for("first.bin", 10), payload(10, 12));
  std::vector<std::uint8_t> h = header_for("second.bin", 0);
  const long stored = std::stol(std::string(reinterpret_cast<const char*>(&h[148]), 6), nullptr, 8);
  h[3] ^= 0x01;  // 'o' -> 'n': the sum drops by one
  append(tar, h);
  end_marker(tar);
  e = extract(tar);
  EXPECT_NE(e.find("entry 1 at byte 1024 has header checksum " + std::to_string(stored) + " but its bytes sum to " +
                   std::to_string(stored - 1)),
            std::string::npos)
      << e;
  // A tar stream that stops 100 bytes into a header.
  tar.clear();
  append(tar, header_for("only.bin", 10), payload(10, 13));
  tar.resize(tar.size() + 100, 0);
  e = extract(tar);
  EXPECT_NE(e.find("the tar stream ends at byte 1124 without its end-of-archive marker"), std::string::npos) << e;
}

// The size limit counts every entry's size together, and the limit itself is allowed.
TEST_F(TarGzExtract, SizeLimitCountsAllEntries) {
  std::vector<std::uint8_t> tar;
  append(tar, header_for("a.bin", 1000), payload(1000, 14));
  append(tar, header_for("b.bin", 600), payload(600, 15));
  end_marker(tar);
  EXPECT_EQ(extract(tar, 1600), "(no error)");
  EXPECT_EQ(testing::read_bytes(dest() + "/b.bin"), payload(600, 15));
  const std::string e = extract(tar, 1599);
  EXPECT_NE(e.find("unpacks to more than 1599 bytes (at entry b.bin)"), std::string::npos) << e;
}

// Only the gzip wrapper is accepted: a zlib-wrapped (RFC 1950) tar is refused.
TEST_F(TarGzExtract, ZlibWrappedTarIsNotGzip) {
  std::vector<std::uint8_t> tar;
  append(tar, header_for("a.bin", 10), payload(10, 16));
  end_marker(tar);
  uLongf len = compressBound(static_cast<uLong>(tar.size()));
  std::vector<std::uint8_t> z(len);
  ASSERT_EQ(compress2(z.data(), &len, tar.data(), static_cast<uLong>(tar.size()), 6), Z_OK);
  z.resize(len);
  const std::string e = extract(z, 1 << 20, /*raw=*/true);
  EXPECT_NE(e.find("is not a valid gzip file"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(dest() + "/a.bin"));
}

}  // namespace
}  // namespace kestrel
