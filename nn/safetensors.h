// safetensors I/O: the checkpoint format of the PyTorch reference and of tests/golden/.
//
// File layout (https://github.com/huggingface/safetensors, format description):
//   [8 bytes]  N, the header length, unsigned 64-bit little-endian
//   [N bytes]  a UTF-8 JSON object:
//                { "__metadata__": {"k": "v", ...},                       (optional, strings only)
//                  "<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ... }
//   [rest]     the tensors' bytes, row-major little-endian; data_offsets are relative to the
//              start of this section, the tensors tile it exactly (no gap, no overlap, nothing
//              after the last one).
//
// Reading treats the file as untrusted: the header length is bounded (<= 100 MB) and must lie
// inside the file; the header goes through parse_json_untrusted (nn/json_read.h), so it must be
// valid UTF-8, one JSON object nested at most 8 levels deep (a valid header needs 3), without
// duplicate keys in any object, followed only by spaces (0x20) up to the header length — a NUL or
// any other byte after the object is an error, not ignored; every entry must have exactly the
// three fields with the right JSON types, shapes are non-negative integers whose element count
// (overflow-checked) matches the byte range, and the byte ranges tile the data section exactly.
// Parsing takes time linear in the header size (plus a sort of the entries), so a header of
// 100,000 tensors reads in a fraction of a second. Every problem throws colt5::Error naming the
// file, the tensor and what is wrong; names and values are quoted as short excerpts (at most 60
// bytes, then "..."), and JSON errors give the offset from the first header byte (file offset
// 8), e.g. "m.safetensors: header: duplicate key 'dtype' at offset 20 in the object at /a".
//
// dtypes on read (colt5 has float32, float64, int64, int32, bool):
//   F64 -> float64, F32 -> float32, F16 / BF16 -> float32 (exact widening),
//   I64 -> int64, I32 -> int32, I16 / I8 / U16 / U8 -> int32 (exact widening; there is no uint8),
//   U32 -> int64, BOOL -> bool (bytes must be 0 or 1).
//   Other dtypes of the format (U64, F8_*) are rejected as unsupported.
// dtypes on write: float64 -> F64, float32 -> F32, int64 -> I64, int32 -> I32, bool -> BOOL.
//
// Writing: tensors in name order (the StateDict's order) packed back to back, the header padded
// with spaces to a multiple of 8 bytes, "__metadata__" = {"format": "pt"} plus the caller's
// metadata — so safetensors.torch.load_file reads our files. The file is written to
// "<path>.tmp.<pid>" and renamed into place.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "nn/module.h"

namespace colt5::nn {

using Metadata = std::map<std::string, std::string>;

struct SafetensorsFile {
  StateDict tensors;  // name -> CPU tensor (contiguous)
  Metadata metadata;  // "__metadata__" (empty when absent)
};

// Largest header accepted by the reader, in bytes.
inline constexpr uint64_t kSafetensorsMaxHeader = 100ull * 1024 * 1024;
// Deepest nesting of arrays / objects accepted in a header (the root object counts 1). A valid
// header needs 3 (root, entry, shape); the slack lets a wrong-typed field be reported as such.
inline constexpr size_t kSafetensorsMaxHeaderDepth = 8;
// Most dims a tensor may have (PyTorch allows 64 too); a longer shape is refused before it is read.
inline constexpr size_t kSafetensorsMaxRank = 64;

// Read a file; `path` appears in every error message.
SafetensorsFile read_safetensors(const std::string& path);
// Parse an in-memory image of a file (same checks); `source` names it in error messages.
SafetensorsFile parse_safetensors(std::string_view bytes, const std::string& source = "<memory>");

// Write `tensors` (any device, any layout; copied to contiguous CPU data) and `metadata`.
// Tensor names must be non-empty and not "__metadata__"; names and metadata must be valid UTF-8.
// A caller's "format" entry replaces the default "pt".
void write_safetensors(const std::string& path, const StateDict& tensors, const Metadata& metadata = {});
// The bytes write_safetensors would write.
std::string serialize_safetensors(const StateDict& tensors, const Metadata& metadata = {});
// Write `bytes` to "<path>.tmp.<pid>" and rename it to `path`, so a reader never sees half a file (the
// temporary is removed on failure). Errors are colt5::Error messages starting with `op`.
void write_file_atomically(const std::string& path, std::string_view bytes, const char* op);

// The entries of `sd` whose names start with `prefix`, with the prefix removed
// (e.g. prefix "param." turns a golden fixture's "param.1.weight" into "1.weight").
StateDict select_prefix(const StateDict& sd, const std::string& prefix);

// Load a file's tensors into a module (Module::load_state_dict semantics: dtypes converted to the
// parameters', strict reports missing / unexpected keys and wrong shapes). With a non-empty
// `prefix`, only the entries starting with it are used, with it removed. Returns the metadata.
Metadata load_safetensors_into(Module& module, const std::string& path, bool strict = true,
                               const std::string& prefix = "");
// Save module.state_dict() (parameters and buffers under their full names).
void save_module(const Module& module, const std::string& path, const Metadata& metadata = {});

}  // namespace colt5::nn
