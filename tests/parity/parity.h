// Golden parity runner: replays one fixture of the PyTorch reference (a .safetensors file, format
// in tests/golden/README.md) through our implementation and measures how far we are.
//
// For one file:
//   1. read __metadata__.config (JSON): {"op": name} or {"module": name} plus the constructor
//      arguments under the reference's names (and, for routers, the forward argument
//      num_tokens; for the routed modules an optional "forward" object with per-call overrides
//      such as {"num_heavy_tokens_q": 4}). Every key must be understood: an unknown key, a value
//      of the wrong JSON type or an unsupported value is a FAILURE of the case, never ignored.
//      "reference" (a string saying where the fixture came from) is accepted anywhere.
//   2. build the op / module, convert it to the requested dtype and device, and load every
//      param.<key> through Module::load_state_dict (strict: missing, unexpected or misshapen keys
//      fail the case).
//   3. convert input.<name> (floating inputs to the dtype, all to the device; masks stay bool),
//      make the floating ones leaves that require grad, and call forward with them mapped to the
//      op's / module's arguments (an input name the op does not take fails the case).
//   4. backward of loss = sum(output * upstream_grad).
//   5. error of the output and of every grad.input.<name> and grad.param.<key> in the file:
//        err = max|ours - ref| / max|ref|     (max|ours - ref| when ref is all zeros)
//      computed in float64 on the CPU; a NaN in ours where ref has none counts as infinite. A
//      gradient our backward did not produce (undefined) is compared as zeros.
//   6. routers: aux.indices must equal our indices exactly.
// A case passes when it ran, every error is <= tol and the indices (if any) match.
//
// Supported kinds: ops coor_descent, sinkhorn; modules RMSNorm, FeedForward, LocalMHA, Attention,
// CoordinateDescentRouter, DifferentiableTopKRouter, SinkhornRouter and the five routed modules.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"

namespace colt5::parity {

struct ParityOptions {
  Device device = kCPU;
  DType dtype = DType::Float64;  // float64 or float32
  std::optional<double> tol;     // default: default_tolerance(dtype)
};

// 1e-9 for float64, 1e-4 for float32.
double default_tolerance(DType dtype);

struct TensorError {
  std::string name;  // "output", "grad.input.x", "grad.param.routing_token"
  double err = 0;
};

struct CaseResult {
  std::string name;  // the file name without ".safetensors"
  std::string path;
  std::string kind;  // "op coor_descent", "module ConditionalRoutedAttention", or "" if unread
  bool ran = false;  // the case ran to the end (no exception, config understood)
  bool ok = false;   // ran, every error <= tol, indices match
  std::string failure;  // why not ok (empty when ok)
  double tol = 0;
  std::vector<TensorError> errors;  // output first, then the gradients in name order
  bool has_indices = false;
  bool indices_ok = false;
  double max_error() const;  // over `errors` (0 if none)
};

// Run one fixture. Never throws for a bad fixture or a failing implementation: the result says.
// Runs in parity mode (nn::TieOrder::TorchCPU: the routers break ties as torch on the CPU did
// when the fixture was made).
CaseResult run_case(const std::string& path, const ParityOptions& opts = {});

// The *.safetensors files of a folder, sorted by name. Throws colt5::Error if dir is unreadable.
std::vector<std::string> list_fixtures(const std::string& dir);

// run_case on every fixture of dir.
std::vector<CaseResult> run_dir(const std::string& dir, const ParityOptions& opts = {});

// One line: PASS|FAIL, name, every error, indices, and the failure reason.
std::string format_result(const CaseResult& r);

// The fixture folder of the test suites: $COLT5_GOLDEN_DIR if set, else tests/golden relative
// to the repository root (the tests' working directory) or to a build folder below it.
std::string golden_dir();
// golden_dir() + "/" + name + ".safetensors".
std::string golden_path(const std::string& name);

}  // namespace colt5::parity
