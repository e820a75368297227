// safetensors reader and writer (format: see nn/safetensors.h).
//
// The reader validates in this order, so that each corrupt file gets the most specific message:
//   1. the 8-byte length prefix is there, the header length is <= 100 MB and inside the file;
//   2. the header is one JSON value read by parse_json_untrusted (nn/json_read.h): nesting at
//      most kSafetensorsMaxHeaderDepth (8) levels, checked before anything is built (a valid
//      header needs 3: the root, an entry, its shape); valid UTF-8; no duplicate key in any
//      object; after the value only space padding up to the header length N. Its messages give
//      offsets from the first header byte (file offset 8);
//   3. the root is an object; "__metadata__" is an object of strings; every other entry is an
//      object with exactly "dtype" (a known string), "shape" (at most kSafetensorsMaxRank (64)
//      non-negative integers) and
//      "data_offsets" ([begin, end], begin <= end <= data size);
//   4. numel = prod(shape) and numel * element size are computed with overflow checks and must
//      equal end - begin;
//   5. sorted by begin, the byte ranges tile [0, data size) exactly: no gap, no overlap, no
//      trailing bytes.
// Only then is any tensor allocated and read. Every step is linear in the header size (the sort
// of step 5: n log n), and messages quote names and values through text_excerpt / json_excerpt,
// so a hostile header cannot make them long.
#include "nn/safetensors.h"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/ops/copy.h"
#include "nn/json_read.h"

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace colt5::nn {

using json = nlohmann::json;

namespace {

// ---- dtypes ----------------------------------------------------------------------------------

enum class FileDType { F64, F32, F16, BF16, I64, I32, I16, I8, U32, U16, U8, BOOL };

struct DTypeInfo {
  const char* name;
  FileDType file;
  size_t size;    // bytes per element in the file
  DType target;   // colt5 dtype it is read as
};

constexpr DTypeInfo kDTypes[] = {
    {"F64", FileDType::F64, 8, DType::Float64}, {"F32", FileDType::F32, 4, DType::Float32},
    {"F16", FileDType::F16, 2, DType::Float32}, {"BF16", FileDType::BF16, 2, DType::Float32},
    {"I64", FileDType::I64, 8, DType::Int64},   {"I32", FileDType::I32, 4, DType::Int32},
    {"I16", FileDType::I16, 2, DType::Int32},   {"I8", FileDType::I8, 1, DType::Int32},
    {"U32", FileDType::U32, 4, DType::Int64},   {"U16", FileDType::U16, 2, DType::Int32},
    {"U8", FileDType::U8, 1, DType::Int32},     {"BOOL", FileDType::BOOL, 1, DType::Bool},
};

// Dtypes of the format that colt5 cannot hold.
constexpr const char* kUnsupported[] = {"U64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64"};

const DTypeInfo* find_dtype(const std::string& s) {
  for (const auto& d : kDTypes)
    if (s == d.name) return &d;
  return nullptr;
}

const char* file_dtype_name(DType t) {
  switch (t) {
    case DType::Float64: return "F64";
    case DType::Float32: return "F32";
    case DType::Int64: return "I64";
    case DType::Int32: return "I32";
    case DType::Bool: return "BOOL";
    case DType::BFloat16: return "BF16";
    case DType::Float16: return "F16";
  }
  return "?";
}

// ---- helpers ---------------------------------------------------------------------------------

const char* json_type(const json& j) {
  if (j.is_number_unsigned() || j.is_number_integer()) return "integer";
  if (j.is_number_float()) return "float";
  return j.type_name();
}

// A non-negative JSON integer that fits int64_t, or false.
bool as_index(const json& j, uint64_t* out) {
  if (j.is_number_unsigned()) {
    *out = j.get<uint64_t>();
    return *out <= uint64_t(std::numeric_limits<int64_t>::max());
  }
  if (j.is_number_integer() && j.get<int64_t>() >= 0) {  // e.g. "-0"
    *out = uint64_t(j.get<int64_t>());
    return true;
  }
  return false;
}

struct Entry {
  std::string name;
  const DTypeInfo* dtype;
  Shape shape;
  uint64_t begin, end;
};

// Read `n` bytes at `offset` of the data section into dst.
using DataReader = std::function<void(uint64_t offset, uint64_t n, char* dst)>;

// Steps 2-5 and the tensor reads. `header` is the N header bytes, `data_size` the size of the
// data section.
SafetensorsFile parse_impl(std::string_view header, uint64_t data_size, const std::string& src,
                           const DataReader& read) {
  auto err = [&](const auto&... pieces) { fail(str(src, ": ", pieces...)); };

  // ---- 2. UTF-8 + JSON, duplicate keys, nesting, trailing bytes ----
  const json root = parse_json_untrusted(header, str(src, ": header"), {.max_depth = kSafetensorsMaxHeaderDepth});

  // ---- 3. structure ----
  if (!root.is_object()) err("header is not a JSON object (got ", json_type(root), ")");
  SafetensorsFile out;
  std::vector<Entry> entries;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) err("'__metadata__' is not an object of strings (got ", json_type(v), ")");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          err("'__metadata__' value for key '", text_excerpt(m.key()), "' is not a string (got ", json_type(m.value()),
              ")");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto terr = [&](const auto&... pieces) { err("tensor '", text_excerpt(name), "': ", pieces...); };
    if (!v.is_object()) terr("entry is not an object (got ", json_type(v), ")");
    for (const char* field : {"dtype", "shape", "data_offsets"})
      if (!v.contains(field)) terr("missing field '", field, "'");
    for (auto f = v.begin(); f != v.end(); ++f)
      if (f.key() != "dtype" && f.key() != "shape" && f.key() != "data_offsets")
        terr("unexpected field '", text_excerpt(f.key()), "' (expected exactly dtype, shape, data_offsets)");

    Entry e;
    e.name = name;
    const json& jd = v["dtype"];
    if (!jd.is_string()) terr("'dtype' is not a string (got ", json_type(jd), ")");
    const std::string ds = jd.get<std::string>();
    e.dtype = find_dtype(ds);
    if (!e.dtype) {
      const bool known = std::find_if(std::begin(kUnsupported), std::end(kUnsupported),
                                      [&](const char* u) { return ds == u; }) != std::end(kUnsupported);
      terr(known ? "unsupported dtype '" : "unknown dtype '", text_excerpt(ds),
           "' (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U32, U16, U8, BOOL)");
    }

    // ---- 4. shape and size, overflow-checked ----
    const json& js = v["shape"];
    if (!js.is_array()) terr("'shape' is not an array (got ", json_type(js), ")");
    if (js.size() > kSafetensorsMaxRank)
      terr("shape has ", js.size(), " dims, more than the ", kSafetensorsMaxRank, " a tensor may have");
    uint64_t count = 1;
    bool overflow = false, has_zero = false;
    for (size_t k = 0; k < js.size(); ++k) {
      uint64_t d;
      if (!as_index(js[k], &d))
        terr("shape entry ", k, " is not a non-negative integer (got ", json_excerpt(js[k]), ", shape ",
             json_excerpt(js), ")");
      e.shape.push_back(int64_t(d));
      // The product skips zero dims, so that a shape whose non-zero dims overflow is rejected
      // wherever its zero dim sits (stride arithmetic on it would overflow too).
      if (d == 0) has_zero = true;
      else if (__builtin_mul_overflow(count, d, &count)) overflow = true;
    }
    uint64_t bytes = 0;
    if (!overflow && count > uint64_t(std::numeric_limits<int64_t>::max())) overflow = true;
    if (!overflow && __builtin_mul_overflow(count, uint64_t(e.dtype->size), &bytes)) overflow = true;
    if (overflow) terr("shape ", json_excerpt(js), " has an element count that overflows 64 bits");
    if (has_zero) bytes = 0;

    const json& jo = v["data_offsets"];
    if (!jo.is_array() || jo.size() != 2)
      terr("'data_offsets' is not an array of 2 integers (got ", json_excerpt(jo), ")");
    if (!as_index(jo[0], &e.begin) || !as_index(jo[1], &e.end))
      terr("'data_offsets' entries are not non-negative integers (got ", json_excerpt(jo), ")");
    if (e.begin > e.end) terr("data_offsets ", json_excerpt(jo), " has begin > end");
    if (e.end > data_size)
      terr("data_offsets ", json_excerpt(jo), " extend beyond the end of the file (the data section has ", data_size,
           " bytes)");
    if (e.end - e.begin != bytes)
      terr("data_offsets ", json_excerpt(jo), " cover ", e.end - e.begin, " bytes, but shape ", json_excerpt(js),
           " of ", ds, " needs ", bytes, " bytes");
    entries.push_back(std::move(e));
  }

  // ---- 5. the ranges tile the data section ----
  std::vector<const Entry*> order;
  for (const Entry& e : entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end != b->end ? a->end < b->end : a->name < b->name;
  });
  uint64_t pos = 0;
  const Entry* prev = nullptr;
  for (const Entry* e : order) {
    if (e->begin > pos)
      err("tensor '", text_excerpt(e->name), "': gap in the data section: bytes [", pos, ", ", e->begin,
          ") belong to no tensor", prev ? str(" (after tensor '", text_excerpt(prev->name), "')") : std::string());
    if (e->begin < pos)
      err("tensor '", text_excerpt(e->name), "': data_offsets [", e->begin, ", ", e->end, "] overlap tensor '",
          text_excerpt(prev->name), "' (which ends at ", pos, ")");
    pos = e->end;
    prev = e;
  }
  if (pos != data_size)
    err("trailing bytes after the data: the tensors end at data offset ", pos, " but the data section has ",
        data_size, " bytes");

  // ---- read and convert ----
  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype->target, kCPU);
    const uint64_t n = uint64_t(t.numel());
    const uint64_t bytes = e.end - e.begin;
    if (bytes == 0) {
      out.tensors[e.name] = t;
      continue;
    }
    const bool same = e.dtype->size == dtype_size(e.dtype->target) && e.dtype->file != FileDType::BOOL &&
                      e.dtype->file != FileDType::U32;
    if (same) {
      read(e.begin, bytes, static_cast<char*>(t.raw_data()));
      out.tensors[e.name] = t;
      continue;
    }
    std::vector<char> buf(bytes);
    read(e.begin, bytes, buf.data());
    auto load = [&]<class S>(S* /*tag*/, size_t i) {
      S s;
      std::memcpy(&s, buf.data() + i * sizeof(S), sizeof(S));
      return s;
    };
    // Integer types without a colt5 dtype of their size: exact widening, element by element.
    auto widen = [&](auto src_tag, auto dst_tag) {
      using S = decltype(src_tag);
      using D = decltype(dst_tag);
      D* d = t.data_ptr<D>();
      for (uint64_t i = 0; i < n; ++i) d[i] = static_cast<D>(load(static_cast<S*>(nullptr), i));
    };
    switch (e.dtype->file) {
      case FileDType::F16: {
        float* d = t.data_ptr<float>();
        for (uint64_t i = 0; i < n; ++i) d[i] = to_float(float16{load((uint16_t*)nullptr, i)});  // exact (core/half.h)
        break;
      }
      case FileDType::BF16: {
        float* d = t.data_ptr<float>();
        for (uint64_t i = 0; i < n; ++i) d[i] = to_float(bfloat16{load((uint16_t*)nullptr, i)});
        break;
      }
      case FileDType::I16:
        widen(int16_t{}, int32_t{});
        break;
      case FileDType::I8:
        widen(int8_t{}, int32_t{});
        break;
      case FileDType::U16:
        widen(uint16_t{}, int32_t{});
        break;
      case FileDType::U8:
        widen(uint8_t{}, int32_t{});
        break;
      case FileDType::U32:
        widen(uint32_t{}, int64_t{});
        break;
      case FileDType::BOOL: {
        // A bool object holding anything but 0 or 1 is undefined behaviour: check every byte.
        bool* d = t.data_ptr<bool>();
        for (uint64_t i = 0; i < n; ++i) {
          const uint8_t b = load((uint8_t*)nullptr, i);
          if (b > 1)
            err("tensor '", text_excerpt(e.name), "': BOOL element ", i, " has byte value ", unsigned(b),
                ", expected 0 or 1");
          d[i] = b == 1;
        }
        break;
      }
      default: err("tensor '", text_excerpt(e.name), "': internal error: no conversion for dtype ", e.dtype->name);
    }
    out.tensors[e.name] = t;
  }
  return out;
}

uint64_t read_u64_le(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// Step 1, shared by the file and the memory readers: the header length against the file size.
uint64_t check_header_length(uint64_t file_size, const char* prefix8, const std::string& src) {
  if (file_size < 8)
    fail(str(src, ": file is truncated: ", file_size, " bytes, expected at least the 8-byte header length"));
  const uint64_t n = read_u64_le(prefix8);
  if (n > kSafetensorsMaxHeader)
    fail(str(src, ": header length ", n, " bytes exceeds the limit of ", kSafetensorsMaxHeader, " bytes"));
  if (n > file_size - 8)
    fail(str(src, ": header length ", n, " bytes exceeds the file size (", file_size, " bytes, ", file_size - 8,
             " after the length prefix): the file is truncated or corrupt"));
  return n;
}

}  // namespace

// ---- reading ---------------------------------------------------------------------------------

SafetensorsFile parse_safetensors(std::string_view bytes, const std::string& source) {
  char prefix[8] = {};
  std::memcpy(prefix, bytes.data(), std::min<size_t>(8, bytes.size()));
  const uint64_t n = check_header_length(bytes.size(), prefix, source);
  const std::string_view header = bytes.substr(8, n);
  const std::string_view data = bytes.substr(8 + n);
  return parse_impl(header, data.size(), source, [&](uint64_t off, uint64_t len, char* dst) {
    std::memcpy(dst, data.data() + off, len);
  });
}

SafetensorsFile read_safetensors(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(str(path, ": cannot open the file for reading"));
  f.seekg(0, std::ios::end);
  const std::streamoff end = f.tellg();
  if (end < 0) fail(str(path, ": cannot determine the file size"));
  const uint64_t file_size = uint64_t(end);
  f.seekg(0);
  char prefix[8] = {};
  f.read(prefix, std::streamsize(std::min<uint64_t>(8, file_size)));
  const uint64_t n = check_header_length(file_size, prefix, path);
  std::string header(n, '\0');
  f.read(header.data(), std::streamsize(n));
  if (!f) fail(str(path, ": read error in the header"));
  const uint64_t data_start = 8 + n;
  return parse_impl(header, file_size - data_start, path, [&](uint64_t off, uint64_t len, char* dst) {
    f.seekg(std::streamoff(data_start + off));
    f.read(dst, std::streamsize(len));
    if (!f) fail(str(path, ": read error at byte ", data_start + off));
  });
}

// ---- writing ---------------------------------------------------------------------------------

std::string serialize_safetensors(const StateDict& tensors, const Metadata& metadata) {
  const char* op = "write_safetensors";
  json meta = json::object();
  meta["format"] = "pt";
  for (const auto& [k, v] : metadata) meta[k] = v;
  json header = json::object();
  header["__metadata__"] = meta;

  std::vector<Tensor> data;  // contiguous CPU copies, in name order
  uint64_t pos = 0;
  for (const auto& [name, t] : tensors) {
    COLT5_CHECK(!name.empty(), op, ": tensor names must be non-empty");
    COLT5_CHECK(name != "__metadata__", op, ": tensor name '__metadata__' is reserved by the format");
    COLT5_CHECK(t.defined(), op, ": tensor '", name, "' is undefined");
    Tensor c = ops::contiguous(ops::to_device(t.detach(), kCPU));
    const uint64_t bytes = uint64_t(c.numel()) * c.element_size();
    header[name] = {{"dtype", file_dtype_name(c.dtype())}, {"shape", c.shape()}, {"data_offsets", {pos, pos + bytes}}};
    pos += bytes;
    data.push_back(c);
  }
  std::string text;
  try {
    text = header.dump();  // strict: throws on invalid UTF-8 in names or metadata
  } catch (const json::exception& e) {
    fail(str(op, ": tensor names and metadata must be valid UTF-8: ", e.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // 8 + header length is a multiple of 8

  std::string out;
  out.reserve(8 + text.size() + pos);
  const uint64_t n = text.size();
  out.append(reinterpret_cast<const char*>(&n), 8);
  out += text;
  for (const Tensor& c : data)
    if (c.numel() > 0) out.append(static_cast<const char*>(c.raw_data()), uint64_t(c.numel()) * c.element_size());
  return out;
}

void write_file_atomically(const std::string& path, std::string_view bytes, const char* op) {
  // The temporary is this process's own, so two writers of one path never write into each other.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    COLT5_CHECK(bool(f), op, ": cannot open '", tmp, "' for writing");
    f.write(bytes.data(), std::streamsize(bytes.size()));
    f.close();
    if (!f) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      fail(str(op, ": write error on '", tmp, "'"));
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    fail(str(op, ": cannot rename '", tmp, "' to '", path, "'"));
  }
}

void write_safetensors(const std::string& path, const StateDict& tensors, const Metadata& metadata) {
  write_file_atomically(path, serialize_safetensors(tensors, metadata), "write_safetensors");
}

// ---- modules ---------------------------------------------------------------------------------

StateDict select_prefix(const StateDict& sd, const std::string& prefix) {
  StateDict out;
  for (auto it = sd.lower_bound(prefix); it != sd.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
    out[it->first.substr(prefix.size())] = it->second;
  return out;
}

Metadata load_safetensors_into(Module& module, const std::string& path, bool strict, const std::string& prefix) {
  SafetensorsFile file = read_safetensors(path);
  StateDict sd = prefix.empty() ? std::move(file.tensors) : select_prefix(file.tensors, prefix);
  try {
    module.load_state_dict(sd, strict);
  } catch (const Error& e) {
    fail(str(path, prefix.empty() ? std::string() : str(" (prefix '", prefix, "')"), ": ", e.what()));
  }
  return file.metadata;
}

void save_module(const Module& module, const std::string& path, const Metadata& metadata) {
  write_safetensors(path, module.state_dict(), metadata);
}

}  // namespace colt5::nn
