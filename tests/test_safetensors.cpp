// safetensors I/O: round trips of every dtype (contiguous and strided sources), the golden
// fixtures, the writer's layout (8-byte aligned header, format "pt"), the widening reads
// (F16, BF16, I8, I16, U8, U16, U32), one corrupt file per validation rule, each of which must
// throw colt5::Error naming the file and the problem, and hostile headers (200k-deep nesting,
// 100,000 tensors, bytes after the JSON, duplicate keys, huge names), which must give short
// messages (or, for the large header, a fast read).
#include <doctest/doctest.h>

#include "tests/parity/parity.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "autograd/ops.h"
#include "nn/layers.h"
#include "nn/safetensors.h"

using namespace colt5;
using colt5::parity::golden_dir;
using colt5::parity::golden_path;
using namespace colt5::nn;
using doctest::Contains;
namespace fs = std::filesystem;

namespace {

// A per-process scratch directory under the system temp dir, removed at exit.
struct ScratchDir {
  fs::path path = fs::temp_directory_path() / ("colt5_safetensors_test_" + std::to_string(::getpid()));
  ScratchDir() { fs::create_directories(path); }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

fs::path scratch_dir() {
  static const ScratchDir dir;
  return dir.path;
}

std::string u64_le(uint64_t n) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &n, 8);
  return s;
}

// A file image: the length prefix, `header` as is, then `data`.
std::string image(const std::string& header, const std::string& data = "") { return u64_le(header.size()) + header + data; }

std::string write_file(const std::string& name, const std::string& bytes) {
  const fs::path p = scratch_dir() / name;
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  return p.string();
}

// Same dtype, shape and values (bitwise for floats via their double value; NaN == NaN).
void check_same(const Tensor& a, const Tensor& b) {
  REQUIRE(a.dtype() == b.dtype());
  REQUIRE(a.shape() == b.shape());
  switch (a.dtype()) {
    case DType::Int64: CHECK(a.to_vector<int64_t>() == b.to_vector<int64_t>()); break;
    case DType::Int32: CHECK(a.to_vector<int32_t>() == b.to_vector<int32_t>()); break;
    case DType::Bool: CHECK(a.to_vector<bool>() == b.to_vector<bool>()); break;
    default: {
      auto va = a.to(DType::Float64).to_vector<double>(), vb = b.to(DType::Float64).to_vector<double>();
      REQUIRE(va.size() == vb.size());
      for (size_t i = 0; i < va.size(); ++i) CHECK(std::memcmp(&va[i], &vb[i], sizeof(double)) == 0);
    }
  }
}

StateDict every_dtype() {
  Generator gen(7);
  StateDict sd;
  sd["f64"] = randn({3, 4}, DType::Float64, kCPU, &gen);
  sd["f32"] = randn({2, 3, 2}, DType::Float32, kCPU, &gen);
  sd["i64"] = from_vector<int64_t>({-5, 0, 7, int64_t(1) << 40, -(int64_t(1) << 50), 3}, {2, 3});
  sd["i32"] = from_vector<int32_t>({-2147483647 - 1, 2147483647, 0, 1}, {4});
  sd["bool"] = from_vector<bool>({true, false, false, true, true}, {5});
  // Non-contiguous sources: a transpose and a stride-2 slice.
  sd["f64_t"] = randn({4, 3}, DType::Float64, kCPU, &gen).t();
  sd["f32_sliced"] = randn({3, 8}, DType::Float32, kCPU, &gen).narrow(1, 1, 5);
  sd["i64_t"] = from_vector<int64_t>({1, 2, 3, 4, 5, 6}, {2, 3}).t();
  sd["bool_t"] = from_vector<bool>({true, false, true, true, false, false}, {3, 2}).t();
  // Degenerate shapes: a scalar and an empty tensor.
  sd["scalar"] = scalar_tensor(2.5, DType::Float64);
  sd["empty"] = Tensor::empty({0, 3}, DType::Float32);
  return sd;
}

}  // namespace

// ---- round trips ---------------------------------------------------------------------------------

TEST_CASE("safetensors: round trip of every dtype, incl. non-contiguous sources") {
  StateDict sd = every_dtype();
  CHECK(!sd["f64_t"].is_contiguous());
  CHECK(!sd["f32_sliced"].is_contiguous());
  const std::string path = (scratch_dir() / "roundtrip.safetensors").string();
  write_safetensors(path, sd, {{"note", "hello"}, {"unicode", "h\xc3\xa9llo \xe2\x9c\x93"}});
  CHECK(!fs::exists(path + ".tmp." + std::to_string(::getpid())));
  SafetensorsFile f = read_safetensors(path);
  REQUIRE(f.tensors.size() == sd.size());
  for (auto& [name, t] : sd) {
    CAPTURE(name);
    REQUIRE(f.tensors.count(name));
    check_same(f.tensors[name], t);
    CHECK(f.tensors[name].is_contiguous());
  }
  CHECK(f.metadata.at("format") == "pt");
  CHECK(f.metadata.at("note") == "hello");
  CHECK(f.metadata.at("unicode") == "h\xc3\xa9llo \xe2\x9c\x93");
  // The in-memory parser agrees with the file reader.
  SafetensorsFile g = parse_safetensors(serialize_safetensors(sd, {{"note", "hello"}}), "mem");
  for (auto& [name, t] : sd) check_same(g.tensors[name], t);
}

TEST_CASE("safetensors: writer layout — 8-byte aligned header, format pt, sorted packed tensors") {
  StateDict sd = every_dtype();
  const std::string bytes = serialize_safetensors(sd, {{"k", "v"}});
  REQUIRE(bytes.size() >= 8);
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  CHECK((8 + n) % 8 == 0);
  const std::string header = bytes.substr(8, n);
  CHECK(header.front() == '{');
  CHECK(header.find("\"__metadata__\":{\"format\":\"pt\",\"k\":\"v\"}") != std::string::npos);
  // Padding is spaces only, after the closing brace.
  const size_t close = header.find_last_of('}');
  CHECK(header.find_first_not_of(' ', close + 1) == std::string::npos);
  // Tensors in name order: each one's data_offsets begin where the previous ended.
  uint64_t total = 0;
  for (auto& [name, t] : sd) {
    const std::string key = "\"" + name + "\":{";
    const size_t at = header.find(key);
    REQUIRE(at != std::string::npos);
    const std::string offs = "\"data_offsets\":[" + std::to_string(total) + ",";
    CHECK(header.find(offs, at) != std::string::npos);
    total += uint64_t(t.numel()) * t.element_size();
  }
  CHECK(bytes.size() == 8 + n + total);
  // No tensors at all: still a valid file with only the metadata.
  SafetensorsFile e = parse_safetensors(serialize_safetensors({}), "empty");
  CHECK(e.tensors.empty());
  CHECK(e.metadata.at("format") == "pt");
}

TEST_CASE("safetensors: writer rejects bad names and tensors") {
  CHECK_THROWS_WITH_AS(serialize_safetensors({{"__metadata__", zeros({2})}}), Contains("reserved"), Error);
  CHECK_THROWS_WITH_AS(serialize_safetensors({{"", zeros({2})}}), Contains("non-empty"), Error);
  CHECK_THROWS_WITH_AS(serialize_safetensors({{"x", Tensor()}}), Contains("'x' is undefined"), Error);
  CHECK_THROWS_WITH_AS(serialize_safetensors({{"bad\xff", zeros({2})}}), Contains("UTF-8"), Error);
  CHECK_THROWS_WITH_AS(serialize_safetensors({}, {{"k", "v\xc0\xaf"}}), Contains("UTF-8"), Error);
  CHECK_THROWS_WITH_AS(write_safetensors((scratch_dir() / "no_such_dir" / "x.safetensors").string(), {}),
                       Contains("cannot open"), Error);
}

TEST_CASE("safetensors: widening reads of F16, BF16, I8, I16, U8, U16, U32") {
  auto raw = [](std::initializer_list<uint16_t> v) {
    std::string s;
    for (uint16_t x : v) s.append(reinterpret_cast<const char*>(&x), 2);
    return s;
  };
  // F16: 1, -2, 2^-24 (smallest subnormal), 65504 (largest), +inf, 1/3 rounded.
  const std::string f16 = raw({0x3C00, 0xC000, 0x0001, 0x7BFF, 0x7C00, 0x3555});
  // BF16: 1, -3, 2^-133 (subnormal), -inf.
  const std::string bf16 = raw({0x3F80, 0xC040, 0x0001, 0xFF80});
  const std::string i8 = std::string("\x80\x7f\x00\xff", 4);          // -128 127 0 -1
  const std::string u8 = std::string("\x00\xff\x07", 3);              // 0 255 7
  const std::string i16 = raw({0x8000, 0x7FFF, 0xFFFF});              // -32768 32767 -1
  const std::string u16 = raw({0xFFFF, 0x0001});                      // 65535 1
  std::string u32(8, '\0');
  const uint32_t u32v[2] = {4294967295u, 5u};
  std::memcpy(u32.data(), u32v, 8);
  std::string data = f16 + bf16 + i8 + u8 + i16 + u16 + u32;
  std::string header = R"({"a":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},)"
                       R"("b":{"dtype":"BF16","shape":[4],"data_offsets":[12,20]},)"
                       R"("c":{"dtype":"I8","shape":[4],"data_offsets":[20,24]},)"
                       R"("d":{"dtype":"U8","shape":[3],"data_offsets":[24,27]},)"
                       R"("e":{"dtype":"I16","shape":[3],"data_offsets":[27,33]},)"
                       R"("f":{"dtype":"U16","shape":[2],"data_offsets":[33,37]},)"
                       R"("g":{"dtype":"U32","shape":[2],"data_offsets":[37,45]}})";
  SafetensorsFile f = read_safetensors(write_file("widen.safetensors", image(header, data)));
  CHECK(f.metadata.empty());
  Tensor a = f.tensors.at("a");
  CHECK(a.dtype() == DType::Float32);
  CHECK(a.shape() == Shape{2, 3});
  auto av = a.to_vector<float>();
  CHECK(av[0] == 1.0f);
  CHECK(av[1] == -2.0f);
  CHECK(av[2] == std::ldexp(1.0f, -24));
  CHECK(av[3] == 65504.0f);
  CHECK(std::isinf(av[4]));
  CHECK(av[5] == 0.333251953125f);
  auto bv = f.tensors.at("b").to_vector<float>();
  CHECK(bv[0] == 1.0f);
  CHECK(bv[1] == -3.0f);
  CHECK(bv[2] == std::ldexp(1.0f, -133));
  CHECK((std::isinf(bv[3]) && bv[3] < 0));
  CHECK(f.tensors.at("c").dtype() == DType::Int32);
  CHECK(f.tensors.at("c").to_vector<int32_t>() == std::vector<int32_t>{-128, 127, 0, -1});
  CHECK(f.tensors.at("d").to_vector<int32_t>() == std::vector<int32_t>{0, 255, 7});
  CHECK(f.tensors.at("e").to_vector<int32_t>() == std::vector<int32_t>{-32768, 32767, -1});
  CHECK(f.tensors.at("f").to_vector<int32_t>() == std::vector<int32_t>{65535, 1});
  CHECK(f.tensors.at("g").dtype() == DType::Int64);
  CHECK(f.tensors.at("g").to_vector<int64_t>() == std::vector<int64_t>{4294967295LL, 5});
}

// ---- golden fixtures -----------------------------------------------------------------------------

TEST_CASE("safetensors: every golden fixture reads, with the expected tensors") {
  const fs::path dir = golden_dir();
  REQUIRE_MESSAGE(fs::is_directory(dir), "golden dir not found: ", dir.string(),
                  " (run from the repo root or set COLT5_GOLDEN_DIR)");
  int files = 0;
  for (const auto& ent : fs::directory_iterator(dir)) {
    if (ent.path().extension() != ".safetensors") continue;
    CAPTURE(ent.path().string());
    ++files;
    SafetensorsFile f = read_safetensors(ent.path().string());
    REQUIRE(f.tensors.count("output"));
    CHECK(f.tensors.at("output").dtype() == DType::Float64);
    CHECK(f.metadata.count("config"));
    CHECK(f.metadata.count("reference"));
    for (auto& [name, t] : f.tensors) {
      CAPTURE(name);
      if (name.find("mask") != std::string::npos) CHECK(t.dtype() == DType::Bool);
      else if (name == "aux.indices") CHECK(t.dtype() == DType::Int64);
      else CHECK(t.dtype() == DType::Float64);
    }
    // Our writer reproduces the tensors bit for bit.
    SafetensorsFile g = parse_safetensors(serialize_safetensors(f.tensors, f.metadata), "re-serialised");
    for (auto& [name, t] : f.tensors) check_same(g.tensors.at(name), t);
  }
  CHECK(files >= 18);

  SafetensorsFile ff = read_safetensors(golden_dir() + "/feedforward.safetensors");
  CHECK(ff.tensors.size() == 14);
  CHECK(ff.tensors.at("input.x").shape() == Shape{2, 5, 16});
  CHECK(ff.tensors.at("param.1.weight").shape() == Shape{32, 16});
  CHECK(ff.tensors.at("param.3.weight").shape() == Shape{16, 32});
  CHECK(ff.tensors.at("grad.param.0.gamma").shape() == Shape{16});
  auto out = ff.tensors.at("output").to_vector<double>();
  CHECK(out[0] == 0.3310503984298892);  // read with Python's struct module
  CHECK(out[1] == 0.051345621027016716);
  CHECK(out.back() == 0.24714723200782338);
  CHECK(ff.metadata.at("config").find("\"FeedForward\"") != std::string::npos);
  CHECK(select_prefix(ff.tensors, "param.").size() == 5);
  CHECK(select_prefix(ff.tensors, "param.").count("1.weight"));

  SafetensorsFile rt = read_safetensors(golden_dir() + "/router_coor_descent_0.safetensors");
  CHECK(rt.tensors.at("aux.indices").to_vector<int64_t>() == std::vector<int64_t>{5, 4, 20, 13, 16, 8, 6, 0, 2, 21});
  Tensor mask = rt.tensors.at("input.mask");
  CHECK(mask.shape() == Shape{2, 24});
  auto mv = mask.to_vector<bool>();
  CHECK(mv[0]);
  CHECK(!mv[2]);
  CHECK(mv.back());
}

// ---- corrupt files -------------------------------------------------------------------------------

namespace {
// A valid two-tensor header with placeholders, for the packing cases.
std::string two(const std::string& a_offsets, const std::string& b_offsets) {
  return R"({"a":{"dtype":"F32","shape":[2],"data_offsets":)" + a_offsets +
         R"(},"b":{"dtype":"F32","shape":[2],"data_offsets":)" + b_offsets + "}}";
}

void expect_error(const std::string& name, const std::string& bytes, const std::string& what) {
  CAPTURE(name);
  const std::string path = write_file(name + ".safetensors", bytes);
  try {
    read_safetensors(path);
    FAIL("no error for ", name);
  } catch (const Error& e) {
    const std::string msg = e.what();
    CAPTURE(msg);
    CHECK(msg.find(path) != std::string::npos);  // names the file
    CHECK(msg.find(what) != std::string::npos);  // and the problem
  }
  // The in-memory parser gives the same verdict.
  CHECK_THROWS_WITH_AS(parse_safetensors(bytes, name), Contains(what.c_str()), Error);
}
}  // namespace

TEST_CASE("safetensors: corrupt files throw colt5::Error naming the file and the problem") {
  const std::string d8(8, '\0');
  const std::string ok_a = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

  expect_error("truncated", std::string("\x10\x00\x00", 3), "file is truncated: 3 bytes");
  expect_error("empty_file", "", "file is truncated: 0 bytes");
  expect_error("header_past_eof", u64_le(1000) + "{}", "header length 1000 bytes exceeds the file size");
  expect_error("header_too_big", u64_le(200ull << 20) + "{}", "exceeds the limit of 104857600 bytes");
  expect_error("header_huge", u64_le(~0ull) + "{}", "exceeds the limit");
  expect_error("invalid_json", image(R"({"a": {"dtype": )"), "header: not valid JSON at offset 16");
  expect_error("trailing_json", image(R"({} x)"), "header: only spaces may follow the JSON value");
  expect_error("invalid_utf8", image("{\"\xff\": 1}"), "header: not valid UTF-8 (bad byte 0xff at offset 2)");
  expect_error("overlong_utf8", image("{\"__metadata__\":{\"k\":\"\xc0\xaf\"}}"), "not valid UTF-8");
  expect_error("surrogate_utf8", image("{\"\xed\xa0\x80\":1}"), "not valid UTF-8");
  expect_error("not_object", image("[1, 2, 3]"), "header is not a JSON object (got array)");
  {  // a shape of 65 dims (of size 1: 4 bytes of data) is refused before it is read
    std::string shape = "[1";
    for (int i = 1; i < 65; ++i) shape += ",1";
    expect_error("rank_65", image(R"({"a":{"dtype":"F32","shape":)" + shape + R"(],"data_offsets":[0,4]}})", std::string(4, '\0')),
                 "shape has 65 dims, more than the 64 a tensor may have");
  }
  expect_error("not_object_str", image("\"x\""), "header is not a JSON object (got string)");
  expect_error("duplicate_key",
               image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                     R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                     d8),
               "header: duplicate key 'a' at offset 54 in the top-level object");
  expect_error("duplicate_field", image(R"({"a":{"dtype":"F32","dtype":"F64","shape":[2],"data_offsets":[0,8]}})", d8),
               "header: duplicate key 'dtype' at offset 20 in the object at /a");
  expect_error("metadata_not_string", image(R"({"__metadata__":{"format":"pt","n":1}})"),
               "'__metadata__' value for key 'n' is not a string (got integer)");
  expect_error("metadata_not_object", image(R"({"__metadata__":["pt"]})"), "'__metadata__' is not an object");
  expect_error("entry_not_object", image(R"({"a":[1]})"), "tensor 'a': entry is not an object");
  expect_error("missing_field", image(R"({"a":{"dtype":"F32","shape":[2]}})", d8), "tensor 'a': missing field 'data_offsets'");
  expect_error("extra_field", image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", d8),
               "tensor 'a': unexpected field 'x'");
  expect_error("dtype_not_string", image(R"({"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", d8),
               "tensor 'a': 'dtype' is not a string");
  expect_error("unknown_dtype", image(R"({"a":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}})", d8),
               "tensor 'a': unknown dtype 'F17'");
  expect_error("unsupported_dtype", image(R"({"a":{"dtype":"U64","shape":[1],"data_offsets":[0,8]}})", d8),
               "tensor 'a': unsupported dtype 'U64'");
  expect_error("shape_not_array", image(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", d8),
               "tensor 'a': 'shape' is not an array");
  expect_error("negative_shape", image(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", d8),
               "tensor 'a': shape entry 0 is not a non-negative integer (got -2");
  expect_error("float_shape", image(R"({"a":{"dtype":"F32","shape":[1,2.0],"data_offsets":[0,8]}})", d8),
               "tensor 'a': shape entry 1 is not a non-negative integer (got 2.0");
  expect_error("string_shape", image(R"({"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})", d8),
               "shape entry 0 is not a non-negative integer");
  expect_error("shape_beyond_int64", image(R"({"a":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,8]}})", d8),
               "shape entry 0 is not a non-negative integer");
  expect_error("shape_overflow",
               image(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,8]}})", d8),
               "tensor 'a': shape [4294967296,4294967296,2] has an element count that overflows 64 bits");
  expect_error("overflow_with_zero",
               image(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}})"),
               "overflows 64 bits");
  expect_error("bytes_overflow",
               image(R"({"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}})", d8),
               "overflows 64 bits");
  expect_error("offsets_vs_shape", image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}})", std::string(12, '\0')),
               "tensor 'a': data_offsets [0,12] cover 12 bytes, but shape [2] of F32 needs 8 bytes");
  expect_error("offsets_not_pair", image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", d8),
               "'data_offsets' is not an array of 2 integers");
  expect_error("offsets_negative", image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", d8),
               "'data_offsets' entries are not non-negative integers");
  expect_error("offsets_reversed", image(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", d8),
               "has begin > end");
  expect_error("gap", image(two("[0,8]", "[12,20]"), std::string(20, '\0')),
               "tensor 'b': gap in the data section: bytes [8, 12) belong to no tensor (after tensor 'a')");
  expect_error("gap_at_start", image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", std::string(12, '\0')),
               "gap in the data section: bytes [0, 4)");
  expect_error("overlap", image(two("[0,8]", "[4,12]"), std::string(12, '\0')),
               "tensor 'b': data_offsets [4, 12] overlap tensor 'a'");
  expect_error("same_range", image(two("[0,8]", "[0,8]"), d8), "overlap tensor 'a'");
  expect_error("trailing_bytes", image(ok_a, std::string(12, '\0')),
               "trailing bytes after the data: the tensors end at data offset 8 but the data section has 12 bytes");
  expect_error("trailing_no_tensors", image("{}", "xx"), "trailing bytes after the data");
  expect_error("offsets_beyond_file", image(ok_a, std::string(4, '\0')),
               "tensor 'a': data_offsets [0,8] extend beyond the end of the file (the data section has 4 bytes)");
  expect_error("bool_value", image(R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})", std::string("\x01\x02\x00", 3)),
               "tensor 'm': BOOL element 1 has byte value 2, expected 0 or 1");

  // Sanity: the valid variants of the above read fine (header padded with spaces, zero-size
  // tensors at any point of the packing, "-0" as a shape entry).
  CHECK_NOTHROW(parse_safetensors(image(ok_a + "      ", d8)));
  CHECK_NOTHROW(parse_safetensors(image(
      R"({"z":{"dtype":"F32","shape":[0,5],"data_offsets":[8,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", d8)));
  CHECK_NOTHROW(parse_safetensors(image(R"({"a":{"dtype":"F32","shape":[-0, 2],"data_offsets":[0,0]}})")));
  CHECK_THROWS_WITH_AS(read_safetensors((scratch_dir() / "does_not_exist.safetensors").string()),
                       Contains("cannot open"), Error);
}

// ---- hostile headers -----------------------------------------------------------------------------
// Files a hostile-but-honest user would try: nesting that overflowed the stack, a header that took
// quadratic time, bytes after the JSON that were ignored. Each must be a short colt5::Error (or,
// for the large header, a fast successful read).

namespace {
// The message parse_safetensors(bytes) throws, which must be a short colt5::Error.
std::string short_error(const std::string& bytes, const std::string& source) {
  std::string msg;
  try {
    parse_safetensors(bytes, source);
    FAIL_CHECK("no error for " << source);
  } catch (const Error& e) {
    msg = e.what();
  }
  CAPTURE(msg);
  CHECK(msg.rfind(source + ": header: ", 0) == 0);
  CHECK(msg.size() < 300);
  return msg;
}
// The message parse_safetensors throws for `bytes`: a short colt5::Error.
std::string short_error_any(const std::string& bytes) {
  std::string msg;
  try {
    parse_safetensors(bytes, "src");
    FAIL_CHECK("no error");
  } catch (const Error& e) {
    msg = e.what();
  }
  CAPTURE(msg);
  CHECK(msg.rfind("src: ", 0) == 0);
  CHECK(msg.size() < 300);
  return msg;
}
}  // namespace

TEST_CASE("safetensors: 200k-deep nesting in shape, data_offsets or the header object is a short error") {
  const std::string deep(200000, '[');
  // In "shape": the entry is at depth 2, so the 7th '[' opens level 9 (offset 28 + 6).
  std::string msg = short_error(image(R"({"a":{"dtype":"F32","shape":)" + deep), "deep_shape");
  CHECK(msg.find("nesting deeper than 8 levels at offset 34 ('[[[[") != std::string::npos);
  // Closed, and the rest of the entry valid: only the depth is wrong.
  msg = short_error(image(R"({"a":{"dtype":"F32","shape":)" + deep + "2" + std::string(200000, ']') +
                          R"(,"data_offsets":[0,8]}})", std::string(8, '\0')),
                    "deep_shape_closed");
  CHECK(msg.find("nesting deeper than 8 levels") != std::string::npos);
  // In "data_offsets".
  msg = short_error(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":)" + deep + "0,8" + std::string(200000, ']') + "}}",
                          std::string(8, '\0')),
                    "deep_offsets");
  CHECK(msg.find("nesting deeper than 8 levels at offset 53") != std::string::npos);
  // The header object itself: {"a":{"a":...}}, no tensors, no metadata.
  std::string objs;
  for (int i = 0; i < 200000; ++i) objs += "{\"a\":";
  msg = short_error(image(objs + "1" + std::string(200000, '}')), "deep_object");
  CHECK(msg.find("nesting deeper than 8 levels at offset 40 ('{\"a\":{\"a\":") != std::string::npos);
  // In the metadata.
  msg = short_error(image(R"({"__metadata__":{"k":)" + deep), "deep_metadata");
  CHECK(msg.find("nesting deeper than 8 levels") != std::string::npos);
  // Up to the limit the nesting is allowed, and reported by the structure checks as a wrong type.
  const std::string depth8 = R"({"a":{"dtype":"F32","shape":[[[[[[2]]]]]],"data_offsets":[0,8]}})";
  CHECK_THROWS_WITH_AS(parse_safetensors(image(depth8, std::string(8, '\0'))),
                       Contains("tensor 'a': shape entry 0 is not a non-negative integer (got [[[[[2]]]]], "
                                "shape [[[[[[2]]]]]])"),
                       Error);
}

TEST_CASE("safetensors: a header of 100,000 empty tensors parses in linear time") {
  // 100,000 entries (5.8 MB): nlohmann's callback parser, used before, walked the whole root
  // object after each entry (O(n^2): minutes at this size); the SAX build is linear (a fraction of
  // a second). No timing assert: the size is what keeps this test meaningful.
  const int n = 100000;
  std::string header = "{";
  for (int i = 0; i < n; ++i) {
    if (i) header += ',';
    header += "\"t" + std::to_string(i) + R"(":{"dtype":"F32","shape":[0],"data_offsets":[0,0]})";
  }
  header += '}';
  CHECK(header.size() > 5000000);
  const SafetensorsFile f = parse_safetensors(image(header), "many");
  REQUIRE(f.tensors.size() == size_t(n));
  CHECK(f.tensors.at("t0").shape() == Shape{0});
  CHECK(f.tensors.at("t99999").numel() == 0);
  // A duplicate at the very end is still found (a key set per object, not a scan).
  const std::string dup = header.substr(0, header.size() - 1) + R"(,"t5":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})";
  CHECK_THROWS_WITH_AS(parse_safetensors(image(dup), "many_dup"), Contains("header: duplicate key 't5' at offset"), Error);
}

TEST_CASE("safetensors: only spaces may follow the header's JSON object, up to the header length") {
  const std::string d8(8, '\0');
  const std::string ok_a = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";  // 54 bytes
  REQUIRE(ok_a.size() == 54);
  // NUL and garbage (the bytes the old reader ignored).
  expect_error("nul_garbage", image(ok_a + std::string("\0garbage", 8), d8),
               "header: only spaces may follow the JSON value (which ends at offset 54); found byte 0x00 at offset 54 "
               "('\\x00garbage')");
  expect_error("nul_padding", image(ok_a + std::string(5, '\0'), d8), "found byte 0x00 at offset 54");
  expect_error("spaces_then_nul", image(ok_a + "   " + std::string(1, '\0'), d8), "found byte 0x00 at offset 57");
  // A second JSON value: another object, or a second copy of the header.
  expect_error("second_value", image(ok_a + R"({"b":1})", d8), "found byte 0x7b at offset 54");
  expect_error("second_header", image(ok_a + " " + ok_a, d8), "found byte 0x7b at offset 55");
  // Other whitespace is not padding.
  expect_error("newline", image(ok_a + "\n", d8), "found byte 0x0a at offset 54");
  expect_error("tab", image(ok_a + "  \t", d8), "found byte 0x09 at offset 56");
  // Spaces are: any number of them, up to the header length.
  CHECK(parse_safetensors(image(ok_a + std::string(1, ' '), d8)).tensors.size() == 1);
  CHECK(parse_safetensors(image(ok_a + std::string(1001, ' '), d8)).tensors.size() == 1);
  // The tensors' bytes after the header are data, not trailing header bytes.
  CHECK(parse_safetensors(image(ok_a, "\x01\x02\x03\x04\x05\x06\x07\x08")).tensors.at("a").numel() == 2);
}

TEST_CASE("safetensors: duplicate keys at the top level and inside an entry") {
  const std::string d8(8, '\0');
  const std::string e = R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  expect_error("dup_top", image(R"({"x":)" + e + R"(,"y":)" + e + R"(,"x":)" + e + "}", d8),
               "header: duplicate key 'x' at offset 107 in the top-level object");
  expect_error("dup_shape", image(R"({"a":{"dtype":"F32","shape":[2],"shape":[2],"data_offsets":[0,8]}})", d8),
               "header: duplicate key 'shape' at offset 32 in the object at /a");
  expect_error("dup_offsets", image(R"({"a":{"dtype":"F32","data_offsets":[0,8],"shape":[2],"data_offsets":[0,8]}})", d8),
               "header: duplicate key 'data_offsets' at offset 53 in the object at /a");
  expect_error("dup_metadata", image(R"({"__metadata__":{"k":"1","k":"2"}})"),
               "header: duplicate key 'k' at offset 25 in the object at /__metadata__");
  expect_error("dup_metadata_object", image(R"({"__metadata__":{},"__metadata__":{}})"),
               "header: duplicate key '__metadata__' at offset 19 in the top-level object");
}

TEST_CASE("safetensors: names and values in messages are excerpts") {
  const std::string d8(8, '\0');
  const std::string big(100000, 'n');
  // A long tensor name, a long unknown dtype, a long shape and a long unexpected field.
  std::string msg = short_error_any(image("{\"" + big + R"(":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", d8));
  CHECK(msg.find("tensor 'nnnn") != std::string::npos);
  CHECK(msg.find("...': data_offsets [0,8] cover 8 bytes, but shape [3] of F32 needs 12 bytes") != std::string::npos);
  msg = short_error_any(image(R"({"a":{"dtype":")" + big + R"(","shape":[2],"data_offsets":[0,8]}})", d8));
  CHECK(msg.find("unknown dtype 'nnnn") != std::string::npos);
  std::string shape = "[1";  // 64 dims, the most a shape may have: longer than an excerpt
  for (int i = 0; i < 62; ++i) shape += ",1";
  shape += ",-1]";
  msg = short_error_any(image(R"({"a":{"dtype":"F32","shape":)" + shape + R"(,"data_offsets":[0,4]}})", std::string(4, '\0')));
  CHECK(msg.find("shape entry 63 is not a non-negative integer (got -1, shape [1,1,1,") != std::string::npos);
  CHECK(msg.find("...)") != std::string::npos);
  msg = short_error_any(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],")" + big + R"(":1}})", d8));
  CHECK(msg.find("unexpected field 'nnnn") != std::string::npos);
  msg = short_error_any(image(R"({"__metadata__":{")" + big + R"(":1}})"));
  CHECK(msg.find("'__metadata__' value for key 'nnnn") != std::string::npos);
}

// ---- modules -------------------------------------------------------------------------------------

TEST_CASE("safetensors: save_module / load_safetensors_into") {
  Generator gen(3);
  FeedForward a(8, {.mult = 2}, &gen);
  const std::string path = (scratch_dir() / "ff.safetensors").string();
  save_module(a, path, {{"what", "ff"}});
  SafetensorsFile f = read_safetensors(path);
  CHECK(f.tensors.size() == 5);
  CHECK(f.tensors.count("0.gamma"));
  CHECK(f.tensors.count("3.bias"));

  FeedForward b(8, {.mult = 2}, &gen);  // different init
  Metadata m = load_safetensors_into(b, path);
  CHECK(m.at("what") == "ff");
  for (auto& [name, t] : a.state_dict()) check_same(b.state_dict().at(name), t);

  // Golden fixture keys with a prefix, and strict errors naming the file.
  FeedForward c(16, {.mult = 2});
  c.to(DType::Float64);
  load_safetensors_into(c, golden_dir() + "/feedforward.safetensors", true, "param.");
  check_same(c.proj_in->weight.detach(),
             read_safetensors(golden_dir() + "/feedforward.safetensors").tensors.at("param.1.weight"));
  CHECK_THROWS_WITH_AS(load_safetensors_into(c, golden_dir() + "/feedforward.safetensors"),
                       Contains("feedforward.safetensors"), Error);
  FeedForward wrong(8, {.mult = 2});
  CHECK_THROWS_WITH_AS(load_safetensors_into(wrong, golden_dir() + "/feedforward.safetensors", true, "param."),
                       Contains("1.weight: expected [16, 8], got [32, 16]"), Error);
}
