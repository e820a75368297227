// libFuzzer target: nn::parse_safetensors on arbitrary bytes.
//
// The reader's contract (nn/safetensors.h) is that every input either parses or throws
// colt5::Error. So any other exception is a finding, and this target aborts on it (libFuzzer
// saves the input); crashes, sanitizer reports, hangs (-timeout) and excessive memory
// (-rss_limit_mb / -malloc_limit_mb) are findings that libFuzzer reports itself.
//
// A file that parses must also survive a round trip: what serialize_safetensors writes for its
// tensors and metadata must parse back to the same tensors (dtype, shape, bytes) and metadata.
// The writer may refuse (colt5::Error: e.g. an empty tensor name, which the reader accepts), but
// what it writes must be readable. A mismatch is a finding too.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <typeinfo>

#include "core/error.h"
#include "nn/safetensors.h"

namespace {

[[noreturn]] void finding(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_safetensors: FINDING: %s: %s\n", what, detail.c_str());
  std::abort();
}

bool same_tensor(const colt5::Tensor& a, const colt5::Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  const size_t bytes = size_t(a.numel()) * a.element_size();
  return bytes == 0 || std::memcmp(a.raw_data(), b.raw_data(), bytes) == 0;
}

void check_round_trip(const colt5::nn::SafetensorsFile& f) {
  std::string bytes;
  try {
    bytes = colt5::nn::serialize_safetensors(f.tensors, f.metadata);
  } catch (const colt5::Error&) {
    return;  // the writer's own, stricter rules (non-empty names)
  }
  colt5::nn::SafetensorsFile g;
  try {
    g = colt5::nn::parse_safetensors(bytes, "<round trip>");
  } catch (const colt5::Error& e) {
    finding("the writer's output does not parse", e.what());
  }
  colt5::nn::Metadata want = f.metadata;
  want.emplace("format", "pt");  // the writer's default entry
  if (g.metadata != want) finding("round trip", "the metadata changed");
  if (g.tensors.size() != f.tensors.size()) finding("round trip", "the number of tensors changed");
  for (const auto& [name, t] : f.tensors) {
    auto it = g.tensors.find(name);
    if (it == g.tensors.end()) finding("round trip", "tensor '" + name + "' disappeared");
    if (!same_tensor(t, it->second)) finding("round trip", "tensor '" + name + "' changed");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const colt5::nn::SafetensorsFile f = colt5::nn::parse_safetensors(bytes, "<fuzz input>");
    check_round_trip(f);
  } catch (const colt5::Error&) {
    // Rejected with the library's error: the expected outcome for a corrupt file.
  } catch (const std::exception& e) {
    finding("an exception other than colt5::Error", std::string(typeid(e).name()) + ": " + e.what());
  } catch (...) {
    finding("an exception other than colt5::Error", "(not a std::exception)");
  }
  return 0;
}
