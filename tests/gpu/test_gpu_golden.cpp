// Golden parity on the GPU: every fixture of tests/golden (or of $COLT5_GOLDEN_DIR) replayed on
// CUDA through the parity runner — in float64 within 1e-9 relative error (the same arithmetic as
// the CPU reference), and in float32 within 1e-4 (inputs and parameters rounded to float32, the
// errors measured against the float64 reference). Router indices must match exactly in both.
// Without a CUDA device each test says it was skipped.
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/gpu/gpu.h"
#include "tests/parity/parity.h"

using namespace colt5;
using colt5::parity::golden_dir;
using colt5::parity::golden_path;

namespace {

void run_all(DType dtype, double tol) {
  const std::string dir = golden_dir();
  INFO("fixtures from " << dir << " on " << gputest::gpu().name() << " in " << dtype_name(dtype));
  std::vector<parity::CaseResult> results = parity::run_dir(dir, {gputest::gpu(), dtype, tol});
  REQUIRE(results.size() >= 18);
  for (const auto& r : results) {
    INFO(parity::format_result(r));
    MESSAGE(parity::format_result(r));
    CHECK(r.ran);
    CHECK(r.ok);
    if (r.has_indices) CHECK(r.indices_ok);
  }
}

}  // namespace

TEST_CASE("gpu golden: every fixture on CUDA in float64 within 1e-9") {
  COLT5_REQUIRE_GPU();
  run_all(DType::Float64, 1e-9);
}

TEST_CASE("gpu golden: every fixture on CUDA in float32 within 1e-4") {
  COLT5_REQUIRE_GPU();
  run_all(DType::Float32, 1e-4);
}
