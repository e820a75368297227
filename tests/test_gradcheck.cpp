// Every case of the op list: gradcheck in float64 on the CPU, and a float32 forward that agrees
// with the float64 one (catches kernels that only work for one instantiation).
#include <doctest/doctest.h>

#include "tests/cases/cases.h"

using namespace colt5;

TEST_CASE("gradcheck: every op of the case list, float64, CPU") {
  auto all = cases::all_cases();
  REQUIRE(!all.empty());
  for (const cases::OpCase& c : all) {
    if (!c.differentiable) continue;
    CAPTURE(c.name());
    TensorList in = c.inputs(DType::Float64, kCPU, 7);
    GradcheckResult r = gradcheck(c.fn, in, c.grad);
    INFO(r.message);
    CHECK(r.ok);
  }
}

TEST_CASE("forward: float32 agrees with float64 for every case") {
  for (const cases::OpCase& c : cases::all_cases()) {
    CAPTURE(c.name());
    NoGradGuard ng;
    Tensor y64 = c.fn(c.inputs(DType::Float64, kCPU, 11));
    Tensor y32 = c.fn(c.inputs(DType::Float32, kCPU, 11));
    REQUIRE(y32.shape() == y64.shape());
    if (!y64.is_floating_point()) {
      CHECK(cases::max_rel_diff(y32, y64) == 0.0);
      continue;
    }
    CHECK(cases::max_rel_diff(y32, y64) < 1e-4);
  }
}

TEST_CASE("graphs free themselves: forward + backward of every case leaves no tensor alive") {
  for (const cases::OpCase& c : cases::all_cases()) {
    CAPTURE(c.name());
    const int64_t before = live_tensor_count();
    {
      TensorList in = c.inputs(DType::Float64, kCPU, 3);
      Tensor out = c.fn(in);
      if (c.differentiable && out.requires_grad()) sum(out * out).backward();
      // A forward whose graph is never run backward must also be freed when dropped.
      Tensor unused = c.fn(in);
    }
    CHECK(live_tensor_count() == before);
  }
}
