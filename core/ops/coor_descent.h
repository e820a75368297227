// Raw coordinate descent (no autograd): validation, layout, dispatch, and the per-element math
// shared by the CPU reference and the CUDA kernels. The public op and its math are described in
// autograd/ops/coor_descent.h; the backward is derived in autograd/ops/coor_descent.cpp.
//
// Dims legend: rows = the product of s's dims but the last; n = s's last dim; T = n_iters.
//
// Kernel contract (forward):
//   s     [rows, n]  float or double, contiguous
//   mask  [rows, n]  bool, contiguous, or undefined (keep all)
//   logk  [rows]     float64, contiguous: log(max(k, 1e-20)) of each row
//   y     [rows, n]  s's dtype, fresh contiguous: the output (0 at masked entries)
//   a     [rows, T]  float64, fresh contiguous: a_1..a_T of each row (the saved state)
// Kernel contract (backward), with the same s, mask, logk, a and p:
//   g     [rows, n]  s's dtype, contiguous: dL/dy
//   ds    [rows, n]  s's dtype, fresh contiguous: dL/ds (0 at masked entries)
//   dlogk [rows]     float64, fresh contiguous: dL/dlogk of each row; undefined when not needed
// A row with no kept entry gives y = 0, a = 0, ds = 0, dlogk = 0. Each row is computed in
// float64 whatever s's dtype (float rows are converted on load), in a fixed order: results are
// deterministic. Called only with rows * n > 0.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>

#include "core/dispatch.h"
#include "core/hd.h"
#include "core/tensor.h"

namespace colt5 {

// The iteration count and the eps schedule. eps_start is already max(eps_init or eps, eps).
struct CoorDescentParams {
  int64_t n_iters = 1;
  double eps = 0.1;
  double eps_start = 0.1;
  double eps_decay = 1.0;
};

// eps_{t+1} from eps_t: max(eps_t * decay, eps), as the reference updates its current_eps.
COLT5_HD double coor_descent_next_eps(double cur, const CoorDescentParams& p) {
  const double e = cur * p.eps_decay;
  return e > p.eps ? e : p.eps;
}

// s + b with b = -relu(s + a): the shifted score of one element, as the reference rounds it
// (s + a first, then s + b). Equals min(s, -a) up to rounding.
COLT5_HD double coor_descent_shift(double s, double a) {
  const double x = s + a;
  return s + (x > 0.0 ? -x : -0.0);
}

// The output element exp((s + a_T + b_T) / eps_final) with b_T = -relu(s + a_T); `x` = s + a_T.
// (x + b_T is min(x, 0); torch's relu'(0) = 0 makes the gradient at x = 0 pass through.)
COLT5_HD double coor_descent_value(double x, double eps_final) {
  using std::exp;
  return exp((x + (x > 0.0 ? -x : -0.0)) / eps_final);
}

namespace cpu {
void coor_descent_forward(const Tensor& s, const Tensor& mask, const Tensor& logk, Tensor& y, Tensor& a,
                          const CoorDescentParams& p);
void coor_descent_backward(const Tensor& s, const Tensor& mask, const Tensor& logk, const Tensor& a,
                           const Tensor& g, Tensor& ds, Tensor& dlogk, const CoorDescentParams& p);
}  // namespace cpu

using CoorDescentForwardFn = void(const Tensor& s, const Tensor& mask, const Tensor& logk, Tensor& y, Tensor& a,
                                  const CoorDescentParams& p);
using CoorDescentBackwardFn = void(const Tensor& s, const Tensor& mask, const Tensor& logk, const Tensor& a,
                                   const Tensor& g, Tensor& ds, Tensor& dlogk, const CoorDescentParams& p);
COLT5_KERNEL(coor_descent_forward, CoorDescentForwardFn, cpu::coor_descent_forward)
COLT5_KERNEL(coor_descent_backward, CoorDescentBackwardFn, cpu::coor_descent_backward)

namespace ops {

struct CoorDescentResult {
  Tensor y;  // [..., n], s's dtype
  Tensor a;  // [rows, T] float64: the only state the backward needs besides s, mask and logk
};

// Validate the schedule (n_iters >= 1, eps > 0, eps_init > 0 when given, eps_decay in (0, 1],
// all finite) and build the params; errors name `op`.
CoorDescentParams coor_descent_params(int64_t n_iters, double eps, std::optional<double> eps_init, double eps_decay,
                                      const char* op);

// s: [..., n] floating, any strides. logk: float64, a shape that broadcasts to s's shape
// without its last dim, on s's device. mask: bool of s's shape, or undefined.
CoorDescentResult coor_descent_forward(const Tensor& s, const Tensor& logk, const Tensor& mask,
                                       const CoorDescentParams& p);

struct CoorDescentGrads {
  Tensor ds;     // s's shape and dtype
  Tensor dlogk;  // float64 [...] (s's shape without its last dim); undefined unless asked for
};

// The gradients from the forward's inputs, its saved `a` and g = dL/dy (s's shape and dtype).
CoorDescentGrads coor_descent_backward(const Tensor& s, const Tensor& logk, const Tensor& mask, const Tensor& a,
                                       const Tensor& g, const CoorDescentParams& p, bool need_dlogk);

}  // namespace ops

}  // namespace colt5
