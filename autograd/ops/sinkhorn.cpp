// Log-domain Sinkhorn and Gumbel-Sinkhorn, composed from differentiable ops (see
// autograd/ops/sinkhorn.h). For r [..., rows, cols] and each of n_iters rounds:
//   r <- r - logsumexp(r, -1)    (each row of exp(r) sums to 1)
//   r <- r - logsumexp(r, -2)    (each column of exp(r) sums to 1)
// then exp(r). Subtracting a logsumexp keeps every step finite for finite r; gradients come
// from the ops' own backward rules (logsumexp's is softmax).
#include "autograd/ops/sinkhorn.h"

#include <cmath>

#include "autograd/ops.h"

namespace colt5 {

namespace {

void check_common(const Tensor& r, int64_t n_iters, const char* op) {
  COLT5_CHECK(r.defined(), op, ": argument 'r' is undefined");
  check_floating(r, op, "r");
  COLT5_CHECK(r.dim() >= 2, op, ": argument 'r' expected at least 2 dims ([..., rows, cols]), got shape ", r.shape());
  COLT5_CHECK(n_iters >= 0, op, ": argument 'n_iters' expected >= 0, got ", n_iters);
}

// log(max(x, 1e-20)), the reference's safe log.
Tensor safe_log(const Tensor& x) { return log(clamp_min(x, 1e-20)); }

Tensor sinkhorn_rounds(Tensor r, int64_t n_iters) {
  for (int64_t i = 0; i < n_iters; ++i) {
    r = r - logsumexp(r, -1, true);
    r = r - logsumexp(r, -2, true);
  }
  return exp(r);
}

}  // namespace

Tensor sinkhorn(const Tensor& r, int64_t n_iters) {
  check_common(r, n_iters, "sinkhorn");
  return sinkhorn_rounds(r, n_iters);
}

Tensor gumbel_sinkhorn(const Tensor& r, int64_t n_iters, double temperature, Generator* gen) {
  check_common(r, n_iters, "gumbel_sinkhorn");
  COLT5_CHECK(std::isfinite(temperature) && temperature > 0,
              "gumbel_sinkhorn: argument 'temperature' expected a finite value > 0, got ", temperature);
  // Gumbel(0, 1) noise -log(-log(u)), u ~ U[0, 1), with the safe log at both steps (u = 0 gives
  // a large finite negative value instead of -inf). A constant: drawn without history.
  Tensor gumbel;
  {
    NoGradGuard no_grad;
    Tensor u = rand(r.shape(), r.dtype(), r.device(), gen);
    gumbel = -safe_log(-safe_log(u));
  }
  // Divide (rather than multiply by 1/temperature) to round as the reference does.
  const Tensor temp = scalar_tensor(temperature, r.dtype(), r.device());
  return sinkhorn_rounds((safe_log(r) + gumbel) / temp, n_iters);
}

}  // namespace colt5
