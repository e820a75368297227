#include "autograd/gradcheck.h"

#include <cmath>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "core/backend.h"

namespace colt5 {

namespace {

// Storage offset (in elements) of flat row-major index i of t.
int64_t element_offset(const Tensor& t, int64_t i) {
  int64_t off = t.offset();
  for (int64_t d = t.dim() - 1; d >= 0; --d) {
    const int64_t size = t.shape()[d];
    off += (i % size) * t.strides()[d];
    i /= size;
  }
  return off;
}

double read_element(const Tensor& t, int64_t off) {
  double v = 0;
  const char* base = static_cast<const char*>(t.impl()->storage->data());
  copy_bytes(&v, kCPU, base + off * 8, t.device(), 8);
  return v;
}

void write_element(const Tensor& t, int64_t off, double v) {
  char* base = static_cast<char*>(t.impl()->storage->data());
  copy_bytes(base + off * 8, t.device(), &v, kCPU, 8);
}

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& fn, const TensorList& inputs, const GradcheckOptions& opts) {
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (!inputs[k].defined() || !inputs[k].requires_grad()) continue;
    COLT5_CHECK(inputs[k].dtype() == DType::Float64, "gradcheck: input ", k, " expected dtype float64, got ",
                dtype_name(inputs[k].dtype()));
    COLT5_CHECK(inputs[k].is_leaf(), "gradcheck: input ", k, " must be a leaf tensor");
  }
  GradcheckResult res;

  // Analytic: one backward of L = sum(f(x) * r).
  Tensor out = fn(inputs);
  COLT5_CHECK(out.defined() && out.dtype() == DType::Float64, "gradcheck: the function must return a float64 tensor");
  Generator gen(opts.seed);
  Tensor r = randn(out.shape(), DType::Float64, out.device(), &gen);
  for (const Tensor& x : inputs)
    if (x.defined() && x.requires_grad()) const_cast<Tensor&>(x).zero_grad();
  sum(out * r).backward();

  auto loss = [&]() {
    NoGradGuard ng;
    return sum(fn(inputs) * r).item<double>();
  };

  double worst_ratio = -1;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    if (!x.defined() || !x.requires_grad()) continue;
    const int64_t n = x.numel();
    Tensor grad = x.grad();
    std::vector<double> analytic = grad.defined() ? grad.to_vector<double>() : std::vector<double>(n, 0.0);
    const int64_t step = n > opts.max_elements ? (n + opts.max_elements - 1) / opts.max_elements : 1;
    for (int64_t i = 0; i < n; i += step) {
      const int64_t off = element_offset(x, i);
      const double orig = read_element(x, off);
      write_element(x, off, orig + opts.eps);
      const double plus = loss();
      write_element(x, off, orig - opts.eps);
      const double minus = loss();
      write_element(x, off, orig);
      const double numeric = (plus - minus) / (2 * opts.eps);
      const double err = std::fabs(analytic[i] - numeric);
      const double tol = opts.atol + opts.rtol * std::fabs(numeric);
      res.max_abs_error = std::max(res.max_abs_error, err);
      res.max_rel_error = std::max(res.max_rel_error, err / std::max(std::fabs(numeric), 1e-8));
      ++res.checked;
      const double ratio = std::isnan(err) ? INFINITY : err / tol;
      if (ratio > worst_ratio) {
        worst_ratio = ratio;
        res.input = int64_t(k);
        res.index = i;
        res.analytic = analytic[i];
        res.numeric = numeric;
      }
    }
  }
  res.ok = worst_ratio <= 1.0;
  res.message = str(res.ok ? "gradcheck passed" : "gradcheck FAILED", ": ", res.checked, " elements, worst at input ",
                    res.input, " index ", res.index, ": analytic ", res.analytic, " vs numeric ", res.numeric,
                    " (max abs err ", res.max_abs_error, ")");
  return res;
}

}  // namespace colt5
