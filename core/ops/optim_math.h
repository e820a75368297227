// The arithmetic of one AdamW element update, shared by the CPU reference and the CUDA kernel
// (core/ops/optim.h; formulas in nn/optim.h), in double for float and double parameters:
//   p = p (1 - lr wd);  m = m + (1 - b1)(g - m);  v = b2 v + (1 - b2) g^2
//   p = p - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps),   bc1 = 1 - b1^t, bc2 = 1 - b2^t
// On the device every product and sum is rounded separately (__dmul_rn / __dadd_rn keep nvcc
// from contracting them into FMAs, which g++ does not do on x86-64 without -ffp-contract), so
// the two agree to the rounding of sqrt and pow.
#pragma once

#include <cmath>

#include "core/hd.h"

namespace colt5 {

COLT5_HD double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
COLT5_HD double add_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

// Everything of one parameter's update that is the same for all its elements.
struct AdamWScalars {
  double decay;         // 1 - lr wd
  double one_minus_b1;  // 1 - b1
  double b2, one_minus_b2;
  double step_size;     // lr / bc1
  double bc2_sqrt;      // sqrt(bc2)
  double eps;
};

COLT5_HD AdamWScalars adamw_scalars(double lr, double weight_decay, double beta1, double beta2, double eps, double t) {
  AdamWScalars s;
  s.decay = 1.0 - lr * weight_decay;
  s.one_minus_b1 = 1.0 - beta1;
  s.b2 = beta2;
  s.one_minus_b2 = 1.0 - beta2;
  s.step_size = lr / (1.0 - pow(beta1, t));
  s.bc2_sqrt = sqrt(1.0 - pow(beta2, t));
  s.eps = eps;
  return s;
}

// One element: p, m, v updated in place from the gradient g.
COLT5_HD void adamw_element(double& p, double g, double& m, double& v, const AdamWScalars& s) {
  const double pd = p * s.decay;
  m = add_rn(m, mul_rn(s.one_minus_b1, add_rn(g, -m)));
  v = add_rn(mul_rn(s.b2, v), mul_rn(mul_rn(s.one_minus_b2, g), g));
  const double denom = add_rn(sqrt(v) / s.bc2_sqrt, s.eps);
  p = add_rn(pd, -(mul_rn(s.step_size, m) / denom));
}

}  // namespace colt5
