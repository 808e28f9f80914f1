// Parsing and writing safetensors files (no Tensor here: the fuzz target builds this file alone).
#include "kestrel/layers/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "kestrel/core/error.h"
#include "kestrel/layers/file_io_internal.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this code copies it as host bytes"
#endif

namespace kestrel {
namespace {

using nlohmann::json;

constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;  // the reference's limit
constexpr const char* kMetadataKey = "__metadata__";

struct DTypeInfo {
  const char* name;
  std::size_t size;
  int rank;  // the reference writer orders tensors by descending rank, then by name
};
// Ranks follow the order of the reference's Dtype enum (U8 < F16 < BF16 < I32 < F32 < F64 < I64).
constexpr DTypeInfo kDTypes[] = {{"U8", 1, 0},  {"F16", 2, 1}, {"BF16", 2, 2}, {"I32", 4, 3},
                                 {"F32", 4, 4}, {"F64", 8, 5}, {"I64", 8, 6}};

const DTypeInfo* find_dtype(const std::string& name) {
  for (const DTypeInfo& d : kDTypes)
    if (name == d.name) return &d;
  return nullptr;
}

// product(shape) * element_size, or false on overflow.
bool byte_size(const std::vector<std::int64_t>& shape, std::size_t element, std::uint64_t& bytes) {
  std::uint64_t n = element;
  for (std::int64_t d : shape)
    if (__builtin_mul_overflow(n, static_cast<std::uint64_t>(d), &n)) return false;
  bytes = n;
  return true;
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A tensor entry of a header, checked against its dtype and shape.
struct Entry {
  std::string name;
  SafeTensor tensor;  // data filled in last
  std::uint64_t begin = 0, end = 0;
};

Entry parse_entry(const std::string& file, const std::string& name, const json& value) {
  const std::string where = file + ": tensor \"" + name + "\"";
  KESTREL_CHECK(value.is_object(), where, " is a JSON ", value.type_name(), ", not an object");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    KESTREL_CHECK(value.contains(field), where, " has no \"", field, "\"");
  Entry e;
  e.name = name;
  const json& dtype = value.at("dtype");
  KESTREL_CHECK(dtype.is_string(), where, ": dtype is a JSON ", dtype.type_name(), ", not a string");
  e.tensor.dtype = dtype.get<std::string>();
  const DTypeInfo* info = find_dtype(e.tensor.dtype);
  KESTREL_CHECK(info != nullptr, where, " has unsupported dtype \"", e.tensor.dtype,
                "\" (supported: F32, BF16, F16, I32, U8, I64, F64)");
  const json& shape = value.at("shape");
  KESTREL_CHECK(shape.is_array(), where, ": shape is a JSON ", shape.type_name(), ", not an array");
  for (const json& d : shape) {
    KESTREL_CHECK(d.is_number_integer(), where, ": shape ", shape.dump(),
                  " holds something other than integers");
    KESTREL_CHECK(d.is_number_unsigned(), where, " has a negative dimension in shape ", shape.dump());
    const std::uint64_t v = d.get<std::uint64_t>();
    KESTREL_CHECK(v <= static_cast<std::uint64_t>(INT64_MAX), where, ": dimension ", v,
                  " is too large");
    e.tensor.shape.push_back(static_cast<std::int64_t>(v));
  }
  const json& offsets = value.at("data_offsets");
  KESTREL_CHECK(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
                    offsets[1].is_number_unsigned(),
                where, ": data_offsets ", offsets.dump(), " is not [begin, end] of two unsigned integers");
  e.begin = offsets[0].get<std::uint64_t>();
  e.end = offsets[1].get<std::uint64_t>();
  KESTREL_CHECK(e.begin <= e.end, where, " has data_offsets [", e.begin, ", ", e.end,
                "] with begin after end");
  std::uint64_t bytes = 0;
  KESTREL_CHECK(byte_size(e.tensor.shape, info->size, bytes), where, " has shape ",
                shape_text(e.tensor.shape), " whose byte size overflows 64 bits");
  KESTREL_CHECK(e.end - e.begin == bytes, where, " has shape ", shape_text(e.tensor.shape), " of ",
                e.tensor.dtype, " (", bytes, " bytes) but data_offsets [", e.begin, ", ", e.end,
                "] span ", e.end - e.begin, " bytes");
  return e;
}

std::map<std::string, std::string> parse_metadata(const std::string& file, const json& value) {
  KESTREL_CHECK(value.is_object(), file, ": __metadata__ is a JSON ", value.type_name(),
                ", not an object of strings");
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : value.items()) {
    KESTREL_CHECK(v.is_string(), file, ": __metadata__ value of \"", k, "\" is a JSON ",
                  v.type_name(), "; metadata values must be strings");
    out[k] = v.get<std::string>();
  }
  return out;
}

// Parses the header, raising on duplicate keys at any level (nlohmann would keep the last one).
json parse_header(const std::string& file, const std::uint8_t* begin, const std::uint8_t* end) {
  std::vector<std::set<std::string>> open;  // keys seen in each enclosing object
  std::string duplicate;
  json header;
  try {
    header = json::parse(begin, end, [&](int, json::parse_event_t event, json& parsed) {
      if (event == json::parse_event_t::object_start) {
        open.emplace_back();
      } else if (event == json::parse_event_t::object_end) {
        open.pop_back();
      } else if (event == json::parse_event_t::key && !open.empty()) {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (!open.back().insert(key).second && duplicate.empty()) duplicate = key;
      }
      return true;
    });
  } catch (const json::exception& e) {
    KESTREL_FAIL(file, ": the header is not valid JSON (", e.what(), ")");
  }
  KESTREL_CHECK(duplicate.empty(), file, ": the header has key \"", duplicate, "\" more than once");
  KESTREL_CHECK(header.is_object(), file, ": the header is a JSON ", header.type_name(),
                ", not an object");
  return header;
}

// `s` as a JSON string literal (serde_json and nlohmann escape identically: \" \\ \b \f \n \r \t,
// other control characters as \u00xx, everything else, UTF-8 included, as is).
std::string json_string(const std::string& s, const char* what) {
  try {
    return json(s).dump();
  } catch (const json::exception&) {
    KESTREL_FAIL("safetensors: ", what, " \"", s, "\" is not valid UTF-8");
  }
}

}  // namespace

std::size_t safetensors_dtype_size(const std::string& dtype) {
  const DTypeInfo* info = find_dtype(dtype);
  KESTREL_CHECK(info != nullptr, "unsupported safetensors dtype \"", dtype,
                "\" (supported: F32, BF16, F16, I32, U8, I64, F64)");
  return info->size;
}

SafetensorsFile parse_safetensors(const std::uint8_t* bytes, std::size_t size,
                                  const std::string& name_for_errors) {
  const std::string& file = name_for_errors;
  KESTREL_CHECK(size >= 8, file, " is ", size,
                " bytes, shorter than the 8-byte header length of a safetensors file");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  KESTREL_CHECK(n <= kMaxHeaderBytes, file, ": header length ", n, " is over the ",
                kMaxHeaderBytes, "-byte limit (not a safetensors file?)");
  KESTREL_CHECK(n <= size - 8, file, ": header length ", n, " is impossible: only ", size - 8,
                " bytes follow the length (truncated file?)");
  const json header = parse_header(file, bytes + 8, bytes + 8 + n);
  const std::uint64_t buffer_size = size - 8 - n;
  const std::uint8_t* buffer = bytes + 8 + n;

  SafetensorsFile out;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      out.metadata = parse_metadata(file, value);
      continue;
    }
    entries.push_back(parse_entry(file, key, value));
    const Entry& e = entries.back();
    KESTREL_CHECK(e.end <= buffer_size, file, ": tensor \"", key, "\" has data_offsets [", e.begin,
                  ", ", e.end, "] out of range of the ", buffer_size, "-byte data buffer");
  }
  // The spec requires the tensors to tile the buffer: no overlaps, no gaps, no unused tail.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  std::uint64_t covered = 0;
  const std::string* previous = nullptr;
  for (const Entry& e : entries) {
    KESTREL_CHECK(e.begin >= covered, file, ": tensor \"", e.name, "\" (bytes ", e.begin, "..",
                  e.end, ") overlaps tensor \"", previous ? *previous : std::string(),
                  "\" (which ends at ", covered, ")");
    KESTREL_CHECK(e.begin == covered, file, ": bytes ", covered, "..", e.begin,
                  " of the data buffer belong to no tensor (gap before tensor \"", e.name, "\")");
    covered = e.end;
    previous = &e.name;
  }
  KESTREL_CHECK(covered == buffer_size, file, ": the last ", buffer_size - covered,
                " bytes of the data buffer (from offset ", covered,
                ") belong to no tensor (unused bytes or trailing data)");
  for (Entry& e : entries) {
    e.tensor.data.assign(buffer + e.begin, buffer + e.end);
    out.tensors.emplace(std::move(e.name), std::move(e.tensor));
  }
  return out;
}

SafetensorsFile read_safetensors(const std::string& path) {
  detail::InputFile file(path);
  const std::vector<std::uint8_t> bytes = file.read_all();
  return parse_safetensors(bytes.data(), bytes.size(), path);
}

std::vector<std::uint8_t> serialize_safetensors(const SafetensorsFile& file) {
  struct Item {
    const std::string* name;
    const SafeTensor* tensor;
    const DTypeInfo* info;
  };
  std::vector<Item> items;
  for (const auto& [name, t] : file.tensors) {
    KESTREL_CHECK(name != kMetadataKey, "safetensors: a tensor cannot be named ", kMetadataKey);
    const DTypeInfo* info = find_dtype(t.dtype);
    KESTREL_CHECK(info != nullptr, "safetensors: tensor \"", name, "\" has unsupported dtype \"",
                  t.dtype, "\" (supported: F32, BF16, F16, I32, U8, I64, F64)");
    for (std::int64_t d : t.shape)
      KESTREL_CHECK(d >= 0, "safetensors: tensor \"", name, "\" has a negative dimension in shape ",
                    shape_text(t.shape));
    std::uint64_t bytes = 0;
    KESTREL_CHECK(byte_size(t.shape, info->size, bytes) && bytes == t.data.size(),
                  "safetensors: tensor \"", name, "\" has ", t.data.size(), " bytes of data for shape ",
                  shape_text(t.shape), " of ", t.dtype);
    items.push_back({&name, &t, info});
  }
  // std::map already orders names bytewise, as Rust's String ordering does; a stable sort by
  // descending dtype rank gives the reference's (dtype, name) order.
  std::stable_sort(items.begin(), items.end(),
                   [](const Item& a, const Item& b) { return a.info->rank > b.info->rank; });

  std::string header = "{";
  if (!file.metadata.empty()) {
    header += std::string("\"") + kMetadataKey + "\":{";
    bool first = true;
    for (const auto& [k, v] : file.metadata) {
      header += (first ? "" : ",") + json_string(k, "metadata key") + ":" +
                json_string(v, "metadata value");
      first = false;
    }
    header += "}";
  }
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const SafeTensor& t = *items[i].tensor;
    if (i > 0 || !file.metadata.empty()) header += ",";
    header += json_string(*items[i].name, "tensor name") + ":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
    for (std::size_t d = 0; d < t.shape.size(); ++d) header += (d ? "," : "") + std::to_string(t.shape[d]);
    header += "],\"data_offsets\":[" + std::to_string(offset) + ",";
    offset += t.data.size();
    header += std::to_string(offset) + "]}";
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');  // the buffer starts 8-byte aligned

  std::vector<std::uint8_t> out;
  out.reserve(8 + header.size() + offset);
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  for (const Item& item : items) out.insert(out.end(), item.tensor->data.begin(), item.tensor->data.end());
  return out;
}

void write_safetensors_atomic(const SafetensorsFile& file, const std::string& path) {
  const std::vector<std::uint8_t> bytes = serialize_safetensors(file);  // before touching disk
  detail::write_file_atomic(bytes.data(), bytes.size(), path);
}

}  // namespace kestrel
