// gradcheck: compare the analytic gradient (backward) with central finite differences.
//
// For a function f of float64 inputs, draw a fixed random projection r of its output and
// check the gradient of L(x) = sum(f(x) * r). (Projecting on random weights rather than a plain
// sum exercises every output element; the gradient of sum(softmax(x)) would be identically 0.)
//   numeric_i  = (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)
//   analytic_i = dL/dx_i from backward()
// and require |analytic - numeric| <= atol + rtol * |numeric| for every checked element.
// Inputs are perturbed in place through their own strides, so non-contiguous inputs (views of
// a larger buffer) are checked as such. Works for CPU and CUDA tensors.
#pragma once

#include <functional>
#include <string>

#include "core/tensor.h"

namespace colt5 {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-7;
  double rtol = 1e-5;
  int64_t max_elements = 4096;  // per input; beyond that a strided sample of elements is checked
  uint64_t seed = 1234;         // of the random projection
};

struct GradcheckResult {
  bool ok = true;
  // The worst element over all inputs (largest error relative to tolerance).
  int64_t input = -1;
  int64_t index = -1;  // flat, row-major index into that input
  double analytic = 0, numeric = 0;
  double max_abs_error = 0;    // over every checked element
  double max_rel_error = 0;    // |a - n| / max(|n|, 1e-12... ) over every checked element
  int64_t checked = 0;
  std::string message;         // one line: pass, or the worst failure
};

using GradcheckFn = std::function<Tensor(const TensorList&)>;

// Inputs must be float64 leaves; those that require grad are checked.
GradcheckResult gradcheck(const GradcheckFn& fn, const TensorList& inputs, const GradcheckOptions& opts = {});

}  // namespace colt5
