// safetensors: reading the reference implementation's files, writing them byte for byte,
// every malformed-file error, atomic writes, and Tensor conversion.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <utility>

#include "kestrel/core/error.h"
#include "kestrel/core/half.h"
#include "kestrel/core/tensor.h"
#include "kestrel/layers/safetensors.h"
#include "error_text.h"
#include "temp_dir.h"
#include "test_support.h"

namespace kestrel {
namespace {

using testing::TempDir;
using testing::error_of;

std::string data_path(const std::string& name) {
  // CTest sets KESTREL_TEST_DATA; run by hand, the binary knows where its sources were.
  const char* dir = std::getenv("KESTREL_TEST_DATA");
  return std::string(dir ? dir : KESTREL_TEST_DATA_DIR) + "/" + name;
}

template <typename T>
std::vector<std::uint8_t> le_bytes(const std::vector<T>& values) {
  std::vector<std::uint8_t> out(values.size() * sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

template <typename T>
std::vector<T> values_of(const SafeTensor& t) {
  std::vector<T> out(t.data.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), t.data.data(), t.data.size());
  return out;
}

// The tensors tools/make_safetensors_fixture.py writes, from the same closed forms.
SafetensorsFile reference_tensors() {
  SafetensorsFile f;
  std::vector<float> conv;
  for (int i = 0; i < 24; ++i) conv.push_back((i - 10) * 0.25f);
  f.tensors["conv.weight"] = {"F32", {2, 3, 2, 2}, le_bytes(conv)};
  std::vector<double> stats;
  for (int i = 0; i < 3; ++i) stats.push_back(i * 0.1 - 1.0);
  f.tensors["bn.stats"] = {"F64", {3}, le_bytes(stats)};
  std::vector<std::uint16_t> bf16;
  for (int i = 0; i < 5; ++i) bf16.push_back(static_cast<std::uint16_t>(float_bits(-2.5f + 0.75f * i) >> 16));
  f.tensors["bf16.weight"] = {"BF16", {5}, le_bytes(bf16)};
  // fp16 bit patterns of -1, -0.5, 0, 0.5, 1, 1.5 (sign | exponent << 10 | mantissa).
  const std::vector<std::uint16_t> half = {0xBC00, 0xB800, 0x0000, 0x3800, 0x3C00, 0x3E00};
  f.tensors["half.bias"] = {"F16", {3, 2}, le_bytes(half)};
  f.tensors["labels"] = {"I32", {2, 2}, le_bytes(std::vector<std::int32_t>{-2000, -1000, 0, 1000})};
  std::vector<std::uint8_t> image;
  for (int i = 0; i < 12; ++i) image.push_back(static_cast<std::uint8_t>(i * 21));
  f.tensors["image"] = {"U8", {3, 4}, image};
  f.tensors["step"] = {"I64", {}, le_bytes(std::vector<std::int64_t>{12345678901})};
  f.tensors["empty"] = {"F32", {0, 4}, {}};
  f.metadata = {{"format", "pt"}, {"producer", "kestrel tools/make_safetensors_fixture.py"}};
  return f;
}

TEST(Safetensors, ReadsTheReferenceFixture) {
  const SafetensorsFile got = read_safetensors(data_path("reference.safetensors"));
  const SafetensorsFile want = reference_tensors();
  EXPECT_EQ(got.metadata, want.metadata);
  ASSERT_EQ(got.tensors.size(), want.tensors.size());
  for (const auto& [name, w] : want.tensors) {
    SCOPED_TRACE(name);
    ASSERT_EQ(got.tensors.count(name), 1u);
    const SafeTensor& g = got.tensors.at(name);
    EXPECT_EQ(g.dtype, w.dtype);
    EXPECT_EQ(g.shape, w.shape);
    EXPECT_TRUE(testing::bit_equal(g.data, w.data));
  }
  // Decoded values, spot-checked as numbers.
  EXPECT_EQ(values_of<float>(got.tensors.at("conv.weight"))[23], 3.25f);
  EXPECT_EQ(values_of<double>(got.tensors.at("bn.stats"))[1], 0.1 - 1.0);
  EXPECT_EQ(float_from_bf16_bits(values_of<std::uint16_t>(got.tensors.at("bf16.weight"))[4]), 0.5f);
  EXPECT_EQ(float_from_fp16_bits(values_of<std::uint16_t>(got.tensors.at("half.bias"))[5]), 1.5f);
  EXPECT_EQ(values_of<std::int64_t>(got.tensors.at("step")), std::vector<std::int64_t>{12345678901});
  EXPECT_EQ(got.tensors.at("step").shape.size(), 0u);
}

TEST(Safetensors, WritesTheReferenceBytesExactly) {
  const std::vector<std::uint8_t> fixture = testing::read_bytes(data_path("reference.safetensors"));
  ASSERT_GT(fixture.size(), 100u);
  EXPECT_TRUE(testing::bit_equal(serialize_safetensors(reference_tensors()), fixture));

  // Names and metadata that need JSON escaping, also written by the reference.
  SafetensorsFile odd;
  odd.tensors["we\"ird\nname\xc3\xa9/"] = {"U8", {1}, {7}};
  odd.metadata["note"] = "tab\there\x01 caf\xc3\xa9 \\ /";
  const std::vector<std::uint8_t> escaping = testing::read_bytes(data_path("escaping.safetensors"));
  EXPECT_TRUE(testing::bit_equal(serialize_safetensors(odd), escaping));
  EXPECT_EQ(read_safetensors(data_path("escaping.safetensors")).tensors.count("we\"ird\nname\xc3\xa9/"), 1u);
}

TEST(Safetensors, HeaderIsPaddedToEightBytesAndEmptyFileIsValid) {
  // The reference's own unit test: no tensors, no metadata -> "{}" + 6 spaces.
  const std::vector<std::uint8_t> want = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
  EXPECT_TRUE(testing::bit_equal(serialize_safetensors(SafetensorsFile{}), want));
  EXPECT_TRUE(parse_safetensors(want.data(), want.size(), "e").tensors.empty());
  for (int len = 0; len < 9; ++len) {
    SafetensorsFile f;
    f.tensors[std::string(static_cast<std::size_t>(len + 1), 'a')] = {"F32", {1}, {0, 0, 128, 63}};
    const std::vector<std::uint8_t> b = serialize_safetensors(f);
    std::uint64_t n = 0;
    std::memcpy(&n, b.data(), 8);
    EXPECT_EQ(n % 8, 0u);
    EXPECT_EQ(b.size(), 8 + n + 4);
  }
}

TEST(Safetensors, ReadsAnyEntryOrder) {
  // Reverse order of offsets, extra fields ignored (as the reference does), then re-serialized
  // into the canonical order.
  const std::string header =
      R"({"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6],"extra":1},"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})";
  std::vector<std::uint8_t> bytes(8, 0);
  bytes[0] = static_cast<std::uint8_t>(header.size());
  bytes.insert(bytes.end(), header.begin(), header.end());
  for (std::uint8_t v : {0, 0, 128, 63, 5, 6}) bytes.push_back(v);
  const SafetensorsFile f = parse_safetensors(bytes.data(), bytes.size(), "x");
  EXPECT_EQ(values_of<float>(f.tensors.at("a")), std::vector<float>{1.0f});
  EXPECT_EQ(f.tensors.at("b").data, (std::vector<std::uint8_t>{5, 6}));
  const SafetensorsFile again = parse_safetensors(serialize_safetensors(f).data(), serialize_safetensors(f).size(), "y");
  EXPECT_EQ(again.tensors.at("b").data, f.tensors.at("b").data);

  // An empty tensor may start where another does ("z" at [0, 0] before "a" at [0, 4]: they are
  // ordered by begin, then end), and a name that only starts with __metadata__ is a tensor's.
  const std::string shared =
      R"({"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"z":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},)"
      R"("__metadata__x":{"dtype":"U8","shape":[1],"data_offsets":[4,5]}})";
  std::vector<std::uint8_t> b2(8, 0);
  b2[0] = static_cast<std::uint8_t>(shared.size());
  b2.insert(b2.end(), shared.begin(), shared.end());
  for (std::uint8_t v : {0, 0, 128, 63, 9}) b2.push_back(v);
  const SafetensorsFile g = parse_safetensors(b2.data(), b2.size(), "z");
  EXPECT_EQ(g.tensors.size(), 3u);
  EXPECT_TRUE(g.tensors.at("z").data.empty());
  EXPECT_EQ(g.tensors.at("__metadata__x").data, std::vector<std::uint8_t>{9});
  EXPECT_TRUE(g.metadata.empty());
}

// The writer orders tensors as the reference does - by descending dtype rank (I64, F64, F32, I32,
// BF16, F16, U8), then by name - however many there are (40 here: past the sizes that sort by
// insertion, where an unstable sort also keeps equal names in order).
TEST(Safetensors, ManyTensorsAreWrittenInTheReferenceOrder) {
  const char* dtypes[] = {"U8", "F32", "I64", "BF16", "F16", "I32", "F64"};
  const int rank[] = {0, 4, 6, 2, 1, 3, 5};
  SafetensorsFile f;
  std::vector<std::pair<int, std::string>> want;  // (-rank, name)
  for (int i = 0; i < 40; ++i) {
    const std::string name = "t" + std::to_string(10 + i);
    const int d = (i * 3) % 7;
    const std::vector<std::uint8_t> data(safetensors_dtype_size(dtypes[d]), static_cast<std::uint8_t>(i));
    f.tensors[name] = {dtypes[d], {1}, data};
    want.emplace_back(-rank[d], name);
  }
  std::sort(want.begin(), want.end());
  const std::vector<std::uint8_t> bytes = serialize_safetensors(f);
  const std::ptrdiff_t header_bytes = bytes[0] | bytes[1] << 8;  // under 64 KiB here
  const std::string header(bytes.begin() + 8, bytes.begin() + 8 + header_bytes);
  std::size_t at = 0;
  for (const auto& w : want) {
    const std::size_t next = header.find("\"" + w.second + "\"", at);
    ASSERT_NE(next, std::string::npos) << w.second << " is out of order in " << header;
    at = next;
  }
  EXPECT_EQ(parse_safetensors(bytes.data(), bytes.size(), "many").tensors.size(), 40u);
}

// A file with the given header text (unpadded) and buffer.
std::vector<std::uint8_t> file_with(const std::string& header, std::size_t buffer_bytes) {
  const std::uint64_t n = header.size();
  std::vector<std::uint8_t> b(8 + n + buffer_bytes);
  for (int i = 0; i < 8; ++i) b[i] = static_cast<std::uint8_t>(n >> (8 * i));
  std::copy(header.begin(), header.end(), b.begin() + 8);
  for (std::size_t i = 0; i < buffer_bytes; ++i) b[8 + n + i] = static_cast<std::uint8_t>(i);
  return b;
}

std::string parse_error(const std::string& header, std::size_t buffer_bytes) {
  const std::vector<std::uint8_t> b = file_with(header, buffer_bytes);
  return error_of([&] { parse_safetensors(b.data(), b.size(), "bad.safetensors"); });
}

std::string t(const std::string& name, const std::string& body) { return "\"" + name + "\":{" + body + "}"; }

TEST(Safetensors, MalformedFilesRaiseClearErrors) {
  struct Case {
    std::string header;
    std::size_t buffer;
    std::string expect;
  };
  const std::string ok = R"("dtype":"F32","shape":[2],"data_offsets":[0,8])";
  const std::vector<Case> cases = {
      {"{nope", 0, "the header is not valid JSON"},
      {"[1,2]", 0, "the header is a JSON array, not an object"},
      {"{\"w\":3}", 0, "tensor \"w\" is a JSON number, not an object"},
      {"{" + t("w", R"("shape":[2],"data_offsets":[0,8])") + "}", 8, "tensor \"w\" has no \"dtype\""},
      {"{" + t("w", R"("dtype":"F32","data_offsets":[0,8])") + "}", 8, "tensor \"w\" has no \"shape\""},
      {"{" + t("w", R"("dtype":"F32","shape":[2])") + "}", 8, "tensor \"w\" has no \"data_offsets\""},
      {"{" + t("w", R"("dtype":5,"shape":[2],"data_offsets":[0,8])") + "}", 8, "dtype is a JSON number"},
      {"{" + t("w", R"("dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2])") + "}", 2,
       "tensor \"w\" has unsupported dtype \"F8_E4M3\""},
      {"{" + t("w", R"("dtype":"F32","shape":"2","data_offsets":[0,8])") + "}", 8, "shape is a JSON string"},
      {"{" + t("w", R"("dtype":"F32","shape":[2.0],"data_offsets":[0,8])") + "}", 8,
       "holds something other than integers"},
      {"{" + t("w", R"("dtype":"F32","shape":[-2,-1],"data_offsets":[0,8])") + "}", 8,
       "tensor \"w\" has a negative dimension"},
      {"{" + t("w", R"("dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8])") + "}", 8,
       "tensor \"w\" has shape [4294967296, 4294967296, 16] whose byte size overflows 64 bits"},
      // INT64_MAX itself is a dimension (2^63 is not: ImpossibleLengthsRaise); its bytes are not there.
      {"{" + t("w", R"("dtype":"U8","shape":[9223372036854775807],"data_offsets":[0,1])") + "}", 1,
       "(9223372036854775807 bytes) but data_offsets [0, 1] span 1 bytes"},
      {"{" + t("w", R"("dtype":"F32","shape":[1],"data_offsets":[0,8])") + "}", 8,
       "tensor \"w\" has shape [1] of F32 (4 bytes) but data_offsets [0, 8] span 8 bytes"},
      {"{" + t("w", R"("dtype":"F32","shape":[3],"data_offsets":[0,8])") + "}", 8,
       "tensor \"w\" has shape [3] of F32 (12 bytes) but data_offsets [0, 8] span 8 bytes"},
      {"{" + t("w", R"("dtype":"F32","shape":[2],"data_offsets":[0])") + "}", 8,
       "is not [begin, end] of two unsigned integers"},
      {"{" + t("w", R"("dtype":"F32","shape":[2],"data_offsets":[-8,0])") + "}", 8,
       "is not [begin, end] of two unsigned integers"},
      {"{" + t("w", R"("dtype":"F32","shape":[2],"data_offsets":[0,-8])") + "}", 8,
       "is not [begin, end] of two unsigned integers"},
      {"{" + t("w", R"("dtype":"F32","shape":[2],"data_offsets":[0,8,8])") + "}", 8,
       "is not [begin, end] of two unsigned integers"},
      {"{" + t("w", R"("dtype":null,"shape":[2],"data_offsets":[0,8])") + "}", 8, "dtype is a JSON null, not a string"},
      {"{" + t("w", R"("dtype":"F32","shape":{},"data_offsets":[0,8])") + "}", 8, "shape is a JSON object, not an array"},
      {"{\"w\":[]}", 0, "tensor \"w\" is a JSON array, not an object"},
      {"{" + t("w", R"("dtype":"F32","shape":[0],"data_offsets":[8,0])") + "}", 8, "with begin after end"},
      {"{" + t("w", ok) + "}", 4, "tensor \"w\" has data_offsets [0, 8] out of range of the 4-byte data buffer"},
      {"{" + t("w", ok) + "," + t("v", R"("dtype":"F32","shape":[2],"data_offsets":[4,12])") + "}", 12,
       "tensor \"v\" (bytes 4..12) overlaps tensor \"w\""},
      {"{" + t("w", ok) + "," + t("v", R"("dtype":"U8","shape":[4],"data_offsets":[7,11])") + "}", 11,
       "tensor \"v\" (bytes 7..11) overlaps tensor \"w\" (which ends at 8)"},  // by one byte
      {"{" + t("w", ok) + "," + t("v", R"("dtype":"U8","shape":[2],"data_offsets":[10,12])") + "}", 12,
       "bytes 8..10 of the data buffer belong to no tensor (gap before tensor \"v\")"},
      {"{" + t("w", ok) + "}", 9, "the last 1 bytes of the data buffer (from offset 8) belong to no tensor"},
      {"{\"__metadata__\":[1]," + t("w", ok) + "}", 8, "__metadata__ is a JSON array"},
      {"{\"__metadata__\":null," + t("w", ok) + "}", 8, "__metadata__ is a JSON null"},
      {"{\"__metadata__\":{\"k\":1}," + t("w", ok) + "}", 8, "__metadata__ value of \"k\" is a JSON number"},
      {"{" + t("w", ok) + "," + t("w", ok) + "}", 8, "the header has key \"w\" more than once"},
      {"{" + t("w", R"("dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8])") + "}", 8,
       "key \"dtype\" more than once"},
      {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "key \"k\" more than once"},
      {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\",\"j\":\"1\",\"j\":\"2\"}}", 0, "key \"k\" more than once"},  // the first
      {"{\"w\xff\":{}}", 0, "the header is not valid JSON"},  // invalid UTF-8
  };
  for (const Case& c : cases) {
    const std::string e = parse_error(c.header, c.buffer);
    EXPECT_NE(e.find("bad.safetensors"), std::string::npos) << c.header << "\n  -> " << e;
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.header << "\n  -> " << e;
  }
}

TEST(Safetensors, ImpossibleLengthsRaise) {
  // Eight bytes hold a length (0): the empty header is then not JSON.
  const std::vector<std::uint8_t> eight(8, 0);
  const std::string empty_header = error_of([&] { parse_safetensors(eight.data(), eight.size(), "eight.st"); });
  EXPECT_NE(empty_header.find("the header is not valid JSON"), std::string::npos) << empty_header;
  for (std::size_t size : {0, 1, 7}) {
    const std::vector<std::uint8_t> b(size, 0);
    EXPECT_NE(error_of([&] { parse_safetensors(b.data(), b.size(), "short.st"); })
                  .find("short.st is " + std::to_string(size) + " bytes, shorter than the 8-byte"),
              std::string::npos);
  }
  std::vector<std::uint8_t> b = file_with("{}", 0);
  b[0] = 3;  // header says 3 bytes: "{}" and nothing -> not JSON, but first: length fits
  b.resize(8 + 2);
  EXPECT_NE(error_of([&] { parse_safetensors(b.data(), b.size(), "f"); }).find("header length 3 is impossible: only 2 bytes"),
            std::string::npos);
  // The limit itself is a length (refused here only because the bytes are not there); one more is not.
  for (std::uint64_t n : {100'000'000ull, 100'000'001ull}) {
    for (int i = 0; i < 8; ++i) b[i] = static_cast<std::uint8_t>(n >> (8 * i));
    const std::string e = error_of([&] { parse_safetensors(b.data(), b.size(), "f"); });
    EXPECT_NE(e.find(n == 100'000'000 ? "header length 100000000 is impossible" : "over the 100000000-byte limit"),
              std::string::npos) << e;
  }
  b[5] = 1;  // 2^40
  EXPECT_NE(error_of([&] { parse_safetensors(b.data(), b.size(), "f"); }).find("over the 100000000-byte limit"),
            std::string::npos);
  b.assign(8, 0xff);  // 2^64 - 1: no overflow in the checks
  EXPECT_THROW(parse_safetensors(b.data(), b.size(), "f"), Error);
  // The length is all eight little-endian bytes: a valid file whose top byte is set says 2^56 + n.
  b = file_with("{}", 0);
  b[7] = 1;
  EXPECT_NE(error_of([&] { parse_safetensors(b.data(), b.size(), "f"); }).find("over the 100000000-byte limit"),
            std::string::npos);
  // A dimension above INT64_MAX (2^63) is refused as such, not read as a negative int64.
  const std::string huge = parse_error(
      "{" + t("w", R"("dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,0])") + "}", 0);
  EXPECT_NE(huge.find("tensor \"w\": dimension 9223372036854775808 is too large"), std::string::npos) << huge;
}

TEST(Safetensors, SerializerRejectsInconsistentTensors) {
  SafetensorsFile f;
  f.tensors["w"] = {"F32", {3}, std::vector<std::uint8_t>(8)};
  EXPECT_NE(error_of([&] { serialize_safetensors(f); }).find("tensor \"w\" has 8 bytes of data for shape [3] of F32"),
            std::string::npos);
  f.tensors["w"] = {"F32", {1}, std::vector<std::uint8_t>(8)};  // more bytes than the shape holds
  EXPECT_NE(error_of([&] { serialize_safetensors(f); }).find("tensor \"w\" has 8 bytes of data for shape [1] of F32"),
            std::string::npos);
  f.tensors["w"] = {"Q8", {1}, {1}};
  EXPECT_NE(error_of([&] { serialize_safetensors(f); }).find("unsupported dtype \"Q8\""), std::string::npos);
  f.tensors["w"] = {"U8", {-1}, {}};
  EXPECT_NE(error_of([&] { serialize_safetensors(f); }).find("negative dimension"), std::string::npos);
  f.tensors.clear();
  f.tensors["__metadata__"] = {"U8", {1}, {1}};
  EXPECT_THROW(serialize_safetensors(f), Error);
  f.tensors.clear();
  f.tensors["bad\xff"] = {"U8", {1}, {1}};
  EXPECT_NE(error_of([&] { serialize_safetensors(f); }).find("not valid UTF-8"), std::string::npos);
  f.tensors.clear();
  f.metadata["key\xff"] = "value";
  EXPECT_NE(error_of([&] { serialize_safetensors(f); }).find("metadata key \"key\xff\" is not valid UTF-8"), std::string::npos);
  EXPECT_NE(error_of([&] { safetensors_dtype_size(""); }).find("unsupported safetensors dtype \"\""), std::string::npos);
}

TEST(Safetensors, AtomicWriteReplacesAndReadsBack) {
  TempDir tmp("st_write");
  const std::string path = tmp / "ckpt.safetensors";
  write_safetensors_atomic(reference_tensors(), path);
  EXPECT_TRUE(testing::bit_equal(testing::read_bytes(path), testing::read_bytes(data_path("reference.safetensors"))));
  SafetensorsFile small;
  small.tensors["x"] = {"I32", {1}, le_bytes(std::vector<std::int32_t>{42})};
  write_safetensors_atomic(small, path);
  EXPECT_EQ(values_of<std::int32_t>(read_safetensors(path).tensors.at("x")), std::vector<std::int32_t>{42});
  EXPECT_EQ(tmp.entries(), std::vector<std::string>{"ckpt.safetensors"});
}

TEST(Safetensors, FailedWritesLeaveTheOldFileAndNoTempFile) {
  TempDir tmp("st_fail");
  const std::string path = tmp / "ckpt.safetensors";
  write_safetensors_atomic(reference_tensors(), path);
  const std::vector<std::uint8_t> before = testing::read_bytes(path);

  // 1. The data cannot be written (file size limit, as on a full disk): EFBIG, not a signal.
  SafetensorsFile big;
  big.tensors["w"] = {"U8", {1 << 16}, std::vector<std::uint8_t>(1 << 16, 7)};
  struct rlimit old_limit {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  const auto old_handler = signal(SIGXFSZ, SIG_IGN);
  struct rlimit small_limit = old_limit;
  small_limit.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small_limit), 0);
  const std::string e1 = error_of([&] { write_safetensors_atomic(big, path); });
  setrlimit(RLIMIT_FSIZE, &old_limit);
  signal(SIGXFSZ, old_handler);
  EXPECT_NE(e1.find("cannot write " + path), std::string::npos) << e1;
  EXPECT_TRUE(testing::bit_equal(testing::read_bytes(path), before));
  EXPECT_EQ(tmp.entries(), std::vector<std::string>{"ckpt.safetensors"});

  // 2. The target is a folder: refused before any temporary file is made, the folder untouched.
  std::filesystem::create_directories(tmp / "dir.safetensors/inside");
  EXPECT_NE(error_of([&] { write_safetensors_atomic(big, tmp / "dir.safetensors"); }).find("is a folder, not a file"),
            std::string::npos);
  EXPECT_TRUE(std::filesystem::is_directory(tmp / "dir.safetensors/inside"));

  // 3. Inconsistent tensors fail before anything touches the disk.
  SafetensorsFile bad;
  bad.tensors["w"] = {"F32", {2}, {1, 2, 3}};
  EXPECT_THROW(write_safetensors_atomic(bad, path), Error);
  EXPECT_TRUE(testing::bit_equal(testing::read_bytes(path), before));

  // 4. The directory cannot hold files: missing, or a regular file (chmod does not stop root).
  const std::string e4 = error_of([&] { write_safetensors_atomic(big, tmp / "missing/ckpt.safetensors"); });
  EXPECT_NE(e4.find("is directory " + (tmp / "missing") + " there and writable?"), std::string::npos) << e4;
  const std::string e5 = error_of([&] { write_safetensors_atomic(big, path + "/ckpt.safetensors"); });
  EXPECT_NE(e5.find("Not a directory"), std::string::npos) << e5;
  EXPECT_TRUE(testing::bit_equal(testing::read_bytes(path), before));
  std::vector<std::string> names = tmp.entries();
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"ckpt.safetensors", "dir.safetensors"}));
}

// The temporary file is created exclusively: symbolic links planted at the names it could take
// (someone else's, in a shared folder) are never followed, so the file they point to keeps its
// bytes and the checkpoint never becomes a link. With every name taken the write fails cleanly.
TEST(Safetensors, AtomicWriteNeverFollowsALinkPlantedAtItsTemporaryName) {
  TempDir tmp("st_links");
  const std::string path = tmp / "ckpt.safetensors", victim = tmp / "victim.txt";
  {
    std::FILE* f = std::fopen(victim.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fputs("not yours", f);
    std::fclose(f);
  }
  const std::vector<std::uint8_t> victim_bytes = testing::read_bytes(victim);
  const std::string stem = path + ".tmp." + std::to_string(static_cast<long long>(::getpid()));
  std::vector<std::string> links = {stem};
  for (int n = 0; n < 2000; ++n) links.push_back(stem + "." + std::to_string(n));
  for (const std::string& l : links) std::filesystem::create_symlink(victim, l);
  const std::string e = error_of([&] { write_safetensors_atomic(reference_tensors(), path); });
  EXPECT_NE(e.find("cannot write " + path), std::string::npos) << e;
  EXPECT_NE(e.find("File exists"), std::string::npos) << e;
  EXPECT_TRUE(testing::bit_equal(testing::read_bytes(victim), victim_bytes)) << "a planted link was followed";
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(path)));
  for (const std::string& l : links) EXPECT_TRUE(std::filesystem::is_symlink(l)) << l << " was replaced";
  // With the names free again the write goes through.
  for (const std::string& l : links) std::filesystem::remove(l);
  write_safetensors_atomic(reference_tensors(), path);
  EXPECT_FALSE(std::filesystem::is_symlink(path));
  EXPECT_TRUE(testing::bit_equal(testing::read_bytes(path), testing::read_bytes(data_path("reference.safetensors"))));
  std::vector<std::string> names = tmp.entries();
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"ckpt.safetensors", "victim.txt"}));
}

TEST(Safetensors, TensorConversionKeepsLogicalOrder) {
  // Random-ish values, not zeros; NHWC tensors are written in logical NCHW order.
  std::vector<float> values(2 * 3 * 2 * 5);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>((i * 37) % 23) - 11.5f;
  for (DType dt : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    for (Layout layout : {Layout::kNCHW, Layout::kNHWC}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " " + layout_name(layout));
      const Tensor t = Tensor::from_vector(values, Shape{2, 3, 2, 5}, dt, layout);
      const SafeTensor st = safetensor_from_tensor(t);
      EXPECT_EQ(st.dtype, safetensors_dtype_name(dt));
      EXPECT_EQ(st.shape, (std::vector<std::int64_t>{2, 3, 2, 5}));
      ASSERT_EQ(st.data.size(), values.size() * dtype_size(dt));
      for (std::size_t i = 0; i < values.size(); ++i) {  // element i is logical index i
        float v = 0;
        if (dt == DType::kFloat32) std::memcpy(&v, &st.data[i * 4], 4);
        std::uint16_t h = 0;
        if (dt != DType::kFloat32) std::memcpy(&h, &st.data[i * 2], 2);
        if (dt == DType::kBFloat16) v = float_from_bf16_bits(h);
        if (dt == DType::kFloat16) v = float_from_fp16_bits(h);
        ASSERT_EQ(v, values[i]) << i;  // these values are exact in all three types
      }
      for (Layout back : {Layout::kNCHW, Layout::kNHWC}) {
        const Tensor r = tensor_from_safetensor(st, back);
        EXPECT_EQ(r.layout(), back);
        EXPECT_EQ(r.to_float_vector(), values);
      }
    }
  }
  const Tensor ints = Tensor::from_vector({-3, 7, 100}, Shape{3}, DType::kInt32);
  EXPECT_EQ(values_of<std::int32_t>(safetensor_from_tensor(ints)), (std::vector<std::int32_t>{-3, 7, 100}));
  const Tensor bytes = Tensor::from_vector({1, 255}, Shape{1, 2}, DType::kUInt8);
  EXPECT_EQ(safetensor_from_tensor(bytes).data, (std::vector<std::uint8_t>{1, 255}));
  // A narrowed (strided) view is gathered in logical order.
  const Tensor full = Tensor::from_vector({0, 1, 2, 3, 4, 5}, Shape{2, 3});
  EXPECT_EQ(values_of<float>(safetensor_from_tensor(full.narrow(1, 1, 2))), (std::vector<float>{1, 2, 4, 5}));
  // Scalars and empty tensors.
  const SafetensorsFile ref = read_safetensors(data_path("reference.safetensors"));
  EXPECT_EQ(tensor_from_safetensor(ref.tensors.at("empty")).numel(), 0);
  const Tensor scalar = tensor_from_safetensor(SafeTensor{"F32", {}, le_bytes(std::vector<float>{2.5f})});
  EXPECT_EQ(scalar.shape().rank(), 0);
  EXPECT_EQ(scalar.to_float_vector(), std::vector<float>{2.5f});
  EXPECT_EQ(safetensor_from_tensor(scalar).shape.size(), 0u);
  EXPECT_EQ(tensor_from_safetensor(ref.tensors.at("conv.weight")).to_float_vector()[0], -2.5f);
  const std::string e = error_of([&] { tensor_from_safetensor(ref.tensors.at("step"), Layout::kNCHW, "step"); });
  EXPECT_NE(e.find("tensor \"step\": safetensors dtype \"I64\" has no Kestrel dtype"), std::string::npos) << e;
  EXPECT_THROW(tensor_from_safetensor(ref.tensors.at("labels"), Layout::kNHWC), Error);  // rank 2
  SafeTensor wrong = ref.tensors.at("labels");
  wrong.data.pop_back();
  EXPECT_THROW(tensor_from_safetensor(wrong), Error);
  EXPECT_EQ(dtype_from_safetensors("BF16"), DType::kBFloat16);
}

// Only a rank-4 tensor has an NHWC layout: a vector asked for in NHWC is refused, naming it.
TEST(Safetensors, AnNhwcTensorMustHaveRankFour) {
  SafeTensor st;
  st.dtype = "F32";
  st.shape = {3};
  st.data.assign(12, 0);
  EXPECT_NE(error_of([&] { tensor_from_safetensor(st, Layout::kNHWC, "w"); })
                .find("tensor \"w\": layout nhwc needs a rank-4 shape, got [3]"),
            std::string::npos);
  EXPECT_NO_THROW(tensor_from_safetensor(st, Layout::kNCHW, "w"));
}

// The header is padded with the fewest spaces that make it a multiple of 8 (0..7): the
// reference writer's padding. Unpadded, {"a..a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}
// is 53 + L bytes for a name of L characters.
TEST(Safetensors, HeaderPaddingIsMinimal) {
  for (std::size_t len = 1; len <= 24; ++len) {
    SafetensorsFile f;
    f.tensors[std::string(len, 'a')] = {"F32", {1}, {0, 0, 128, 63}};
    const std::vector<std::uint8_t> b = serialize_safetensors(f);
    std::uint64_t n = 0;
    std::memcpy(&n, b.data(), 8);
    const std::uint64_t unpadded = 53 + len;
    EXPECT_EQ(n, (unpadded + 7) / 8 * 8) << "name length " << len;
    EXPECT_EQ(b.size(), 8 + n + 4);
  }
}


// The dtype names are the safetensors format's own (F32, BF16, F16, I32, U8) both ways, and the
// integer dtypes convert in either layout: random values land at the NHWC physical offset
// ((n*H + h)*W + w)*C + c of logical element (n, c, h, w), worked out here, and come back in
// logical order with their dtype's name.
TEST(Safetensors, DtypeNamesAreTheFormatsAndIntegerTensorsConvertInBothLayouts) {
  const std::pair<DType, const char*> names[] = {{DType::kFloat32, "F32"}, {DType::kBFloat16, "BF16"},
                                                 {DType::kFloat16, "F16"}, {DType::kInt32, "I32"},
                                                 {DType::kUInt8, "U8"}};
  for (const auto& [dt, name] : names) {
    EXPECT_STREQ(safetensors_dtype_name(dt), name);
    EXPECT_EQ(dtype_from_safetensors(name), dt) << name;
  }
  const std::int64_t N = 2, C = 3, H = 4, W = 5;
  std::mt19937 rng(77);
  std::vector<std::int32_t> ints(static_cast<std::size_t>(N * C * H * W));
  for (std::int32_t& v : ints) v = static_cast<std::int32_t>(rng());
  std::vector<std::uint8_t> bytes(ints.size());
  for (std::uint8_t& v : bytes) v = static_cast<std::uint8_t>(rng());
  const SafeTensor si{"I32", {N, C, H, W}, le_bytes(ints)}, su{"U8", {N, C, H, W}, bytes};
  for (Layout layout : {Layout::kNCHW, Layout::kNHWC}) {
    SCOPED_TRACE(layout_name(layout));
    const Tensor ti = tensor_from_safetensor(si, layout, "i"), tu = tensor_from_safetensor(su, layout, "u");
    ASSERT_EQ(ti.dtype(), DType::kInt32);
    ASSERT_EQ(tu.dtype(), DType::kUInt8);
    const auto* pi = static_cast<const std::int32_t*>(ti.data());
    const auto* pu = static_cast<const std::uint8_t*>(tu.data());
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t c = 0; c < C; ++c)
        for (std::int64_t h = 0; h < H; ++h)
          for (std::int64_t w = 0; w < W; ++w) {
            const std::int64_t logical = ((n * C + c) * H + h) * W + w;
            const std::int64_t phys = layout == Layout::kNCHW ? logical : ((n * H + h) * W + w) * C + c;
            ASSERT_EQ(pi[phys], ints[static_cast<std::size_t>(logical)]) << logical;
            ASSERT_EQ(pu[phys], bytes[static_cast<std::size_t>(logical)]) << logical;
          }
    const SafeTensor bi = safetensor_from_tensor(ti), bu = safetensor_from_tensor(tu);
    EXPECT_EQ(bi.dtype, "I32");
    EXPECT_EQ(bu.dtype, "U8");
    EXPECT_EQ(bi.shape, si.shape);
    EXPECT_EQ(bi.data, si.data);
    EXPECT_EQ(bu.data, su.data);
  }
}

// Data of any other length than the shape needs is refused, one byte more as well as one
// fewer; so is a shape that is no shape, and an undefined tensor; the tensor's name is given.
TEST(Safetensors, MalformedTensorsAreRefusedNamingThem) {
  std::vector<float> values(24);
  std::mt19937 rng(5);
  for (float& v : values) v = static_cast<float>(rng() % 1000) / 8.f - 60.f;
  SafeTensor st{"F32", {4, 6}, le_bytes(values)};
  EXPECT_EQ(tensor_from_safetensor(st, Layout::kNCHW, "w").to_float_vector(), values);
  for (int extra : {1, -1}) {
    SafeTensor bad = st;
    if (extra > 0) bad.data.push_back(0x3f);
    else bad.data.pop_back();
    const std::string e = error_of([&] { tensor_from_safetensor(bad, Layout::kNCHW, "w"); });
    EXPECT_NE(e.find("tensor \"w\": " + std::to_string(96 + extra) + " bytes of data for shape "), std::string::npos) << e;
  }
  SafeTensor negative{"F32", {4, -6}, le_bytes(values)};
  const std::string shape_error = error_of([&] { tensor_from_safetensor(negative, Layout::kNCHW, "w"); });
  EXPECT_EQ(shape_error.rfind("tensor \"w\": ", 0), 0u) << shape_error;
  const std::string undefined = error_of([] { safetensor_from_tensor(Tensor()); });
  EXPECT_NE(undefined.find("safetensor_from_tensor: the tensor is undefined"), std::string::npos) << undefined;
}

}  // namespace
}  // namespace kestrel
