// differentiable_topk: a top-k on the last dim (CoLT5-attention 0.11.1's topk.py): coordinate descent
// gives every entry a soft selection weight, the straight-through trick turns it into a gate
// whose value is 1 and whose gradient is the weight's, and the hard top-k is taken of x * gate.
//
// Dims legend: [..., n] the input, k the entries kept per row.
//
//   c     = coor_descent(x, k_eff = min(k * coor_descent_k_ratio, n), n_iters, eps, eps_init,
//                        eps_decay, mask)                                      [..., n]
//   gates = c + (1 - c).detach()       (value 1 up to rounding, gradient dc)
//   values, indices = topk(x * gates, k)  (the routers' tie order, nn/routers.h)  [..., k]
//   coor_descent_values = c[indices],  gates = gates[indices]
// So values carry x's gradient plus, through the gates, the coordinate-descent gradient (how a
// change of x would change which entries are selected). As the reference, the mask enters only
// the coordinate descent: a masked entry gets c = 0 but can still be among the top k of x.
// non_differentiable: plain top-k of x (values = x[indices], differentiable as a gather; the
// coordinate-descent outputs are undefined). fused: accepted (the reference's Triton kernel);
// coor_descent is one fused op here on both devices.
#pragma once

#include <cstdint>
#include <optional>

#include "core/tensor.h"

namespace colt5::nn {

struct TopkOptions {
  double coor_descent_k_ratio = 9.0 / 8.0;  // >= 1
  int64_t n_iters = 20;                     // >= 1
  double eps = 0.1;                         // > 0
  std::optional<double> eps_init;           // eps-scaling's first eps; none: no scaling
  double eps_decay = 1.0;                   // in (0, 1]
  bool fused = false;                       // accepted, no effect (see above)
  bool non_differentiable = false;
};

struct TopkResult {
  Tensor values;               // [..., k]
  Tensor indices;              // int64 [..., k]
  Tensor coor_descent_values;  // [..., k] (undefined with non_differentiable)
  Tensor gates;                // [..., k] (undefined with non_differentiable)
};

// x [..., n] floating (n >= 1), 1 <= k <= n, mask bool of x's shape or undefined.
TopkResult differentiable_topk(const Tensor& x, int64_t k, const TopkOptions& opts = {}, const Tensor& mask = Tensor());

}  // namespace colt5::nn
