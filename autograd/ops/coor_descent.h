// coor_descent: the soft top-k of CoLT5's router, by coordinate descent on the dual of an
// entropy-regularised "pick k of n" problem (Wright 2015; CoLT5, arXiv 2303.09752), with the
// eps-scaling schedule of arXiv 2304.04947.
//
// For every row s_0..s_{n-1} (the last dim of s; masked-out entries take no part):
//   b_0 = -s
//   for t = 1..T:  a_t = eps_t (log k - logsumexp_j((s_j + b_{t-1,j}) / eps_t))
//                  b_t = -relu(s + a_t)
//   y = exp((s + a_T + b_T) / eps_{T+1})          (masked entries: 0)
// with eps_1 = max(eps_init or eps, eps) and eps_{t+1} = max(eps_t * eps_decay, eps): the
// schedule advances after every iteration, so the output uses the value after the last one.
// log k is log(max(k, 1e-20)). Outputs lie in (0, 1] and each row sums to about k.
//
// One op with its own backward: the forward keeps only the T scalars a_t of each row, and the
// backward recomputes every iteration from them (O(T) extra memory per row, O(T n) time); the
// T iterations are never recorded in the autograd graph. Gradients flow to s and, when k is a
// tensor that requires grad, to k.
#pragma once

#include <cstdint>
#include <optional>

#include "core/tensor.h"

namespace colt5 {

// The keyword arguments of the reference's coor_descent(s, *, n_iters, k, eps, eps_init,
// eps_decay, mask), minus the tensors. Usable with designated initialisers:
//   coor_descent(s, 6.75, {.n_iters = 50, .eps = 1.0}, mask)
struct CoorDescentOptions {
  int64_t n_iters = 0;               // number of iterations T; required (>= 1), no default
  double eps = 0.1;                  // final entropy weight, > 0
  std::optional<double> eps_init{};  // first eps (> 0) of the eps-scaling schedule; none: start at eps
  double eps_decay = 1.0;            // per-iteration factor of the schedule, in (0, 1]
};

// s: [..., n] floating, any strides. k: the target number of selected entries per row (> 0,
// finite). mask: bool [..., n] (s's shape), True = keep, or undefined for none. A row whose
// mask is all False gives zeros (and zero gradients). Returns [..., n] of s's dtype.
Tensor coor_descent(const Tensor& s, double k, const CoorDescentOptions& options, const Tensor& mask = Tensor());
// k as a tensor: one value per row, of any shape that broadcasts to s's shape without its last
// dim ([...], [1] or [] for all rows); floating or integral, on s's device. Its values are
// clamped to >= 1e-20 before the log (as the reference does) rather than checked, so that no
// device-to-host copy is needed. Differentiable in k when k requires grad.
Tensor coor_descent(const Tensor& s, const Tensor& k, const CoorDescentOptions& options, const Tensor& mask = Tensor());

}  // namespace colt5
