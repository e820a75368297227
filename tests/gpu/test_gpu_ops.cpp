// Every case of the op list (tests/cases/) on the GPU:
//   1. forward and backward on CUDA agree with the CPU reference on the same inputs
//      (float32 within 1e-5, float64 within 1e-12 of the output's scale, or the case's own
//      tolerance), and the allocator's live bytes return to where they were;
//   2. gradcheck in float64 on the GPU;
//   3. backward run twice gives bit-identical gradients (no floating-point atomics).
// COLT5_CASES=a,b (environment) keeps the cases whose name contains a or b: the sanitizer runs
// use it to cover a few kernels' cases without the whole list's ~100x slowdown.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "tests/cases/cases.h"
#include "tests/gpu/gpu.h"

using namespace colt5;
using colt5::gputest::gpu;

namespace {

// The case list, filtered by COLT5_CASES (see the file comment).
std::vector<cases::OpCase> selected_cases() {
  std::vector<cases::OpCase> all = cases::all_cases();
  const char* env = std::getenv("COLT5_CASES");
  if (!env || !*env) return all;
  std::vector<std::string> keys;
  std::stringstream ss(env);
  for (std::string k; std::getline(ss, k, ',');)
    if (!k.empty()) keys.push_back(k);
  std::vector<cases::OpCase> kept;
  for (const cases::OpCase& c : all)
    for (const std::string& k : keys)
      if (c.name().find(k) != std::string::npos) {
        kept.push_back(c);
        break;
      }
  return kept;
}

std::string fmt_sci(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2e", v);
  return buf;
}

struct Run {
  Tensor out;
  TensorList grads;  // one per input that requires grad
};

// Forward, then backward of sum(out * g) with g drawn from `seed` (the same on both devices).
Run run_case(const cases::OpCase& c, const TensorList& in, uint64_t seed) {
  Run r;
  r.out = c.fn(in);
  if (c.differentiable && r.out.requires_grad()) {
    Generator gen(seed);
    Tensor g = randn(r.out.shape(), DType::Float64, kCPU, &gen).to(r.out.dtype()).to(r.out.device());
    sum(r.out * g).backward();
    for (const Tensor& x : in)
      if (x.defined() && x.requires_grad()) r.grads.push_back(x.grad());
  }
  r.out = r.out.detach();
  return r;
}

}  // namespace

TEST_CASE("gpu: every op matches the CPU reference, forward and backward, float32 and float64") {
  COLT5_REQUIRE_GPU();
  for (DType dt : {DType::Float32, DType::Float64}) {
    double worst_out = 0, worst_grad = 0;  // reported at the end, for the record
    for (const cases::OpCase& c : selected_cases()) {
      CAPTURE(c.name());
      CAPTURE(std::string(dtype_name(dt)));
      const size_t live_before = memory_allocated(gpu());
      try {
        Run cpu = run_case(c, c.inputs(dt, kCPU, 21), 5);
        Run cu = run_case(c, c.inputs(dt, gpu(), 21), 5);
        REQUIRE(cu.out.device() == gpu());
        const double tol = dt == DType::Float32 ? c.rtol_f32 : c.rtol_f64;
        REQUIRE(cu.out.shape() == cpu.out.shape());
        const double out_err = cases::max_rel_diff(cu.out, cpu.out);
        worst_out = std::max(worst_out, out_err);
        CHECK(out_err <= tol);
        REQUIRE(cu.grads.size() == cpu.grads.size());
        for (size_t k = 0; k < cpu.grads.size(); ++k) {
          CAPTURE(k);
          REQUIRE(cu.grads[k].defined() == cpu.grads[k].defined());
          if (!cpu.grads[k].defined()) continue;
          const double grad_err = cases::max_rel_diff(cu.grads[k], cpu.grads[k]);
          worst_grad = std::max(worst_grad, grad_err);
          CHECK(grad_err <= tol);
        }
      } catch (const std::exception& e) {  // report and go on with the next case
        FAIL_CHECK("threw: " << e.what());
      }
      synchronize(gpu());
      CHECK(memory_allocated(gpu()) == live_before);
    }
    const std::string summary = std::string(dtype_name(dt)) + ": worst CUDA-vs-CPU relative difference " +
                                fmt_sci(worst_out) + " (outputs), " + fmt_sci(worst_grad) + " (gradients)";
    MESSAGE(summary);
  }
}

TEST_CASE("gpu: gradcheck in float64 on the GPU for every differentiable op") {
  COLT5_REQUIRE_GPU();
  for (const cases::OpCase& c : selected_cases()) {
    if (!c.differentiable) continue;
    CAPTURE(c.name());
    try {
      TensorList in = c.inputs(DType::Float64, gpu(), 7);
      GradcheckResult r = gradcheck(c.fn, in, c.grad);
      INFO(r.message);
      CHECK(r.ok);
    } catch (const std::exception& e) {
      FAIL_CHECK("threw: " << e.what());
    }
  }
}

TEST_CASE("gpu: backward is deterministic (bit-identical gradients on a second run)") {
  COLT5_REQUIRE_GPU();
  for (const cases::OpCase& c : selected_cases()) {
    if (!c.differentiable) continue;
    CAPTURE(c.name());
    try {
      Run a = run_case(c, c.inputs(DType::Float32, gpu(), 3), 4);
      Run b = run_case(c, c.inputs(DType::Float32, gpu(), 3), 4);
      REQUIRE(a.grads.size() == b.grads.size());
      for (size_t k = 0; k < a.grads.size(); ++k)
        if (a.grads[k].defined()) CHECK(a.grads[k].to_vector<float>() == b.grads[k].to_vector<float>());
    } catch (const std::exception& e) {
      FAIL_CHECK("threw: " << e.what());
    }
  }
}
