// The differentiable top-k (math in nn/topk.h).
#include "nn/topk.h"

#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "nn/routers.h"

namespace colt5::nn {

namespace {

// Indices of the k largest entries of each row of v [..., n], in the routers' tie order
// (nn/routers.h): [..., k].
Tensor topk_indices(const Tensor& v, int64_t k) {
  Shape lead(v.shape().begin(), v.shape().end() - 1);
  const int64_t n = v.size(-1);
  Tensor idx = route_topk_indices(v.reshape({-1, n}), k);  // [R, k]
  lead.push_back(k);
  return idx.reshape(lead);
}

}  // namespace

TopkResult differentiable_topk(const Tensor& x, int64_t k, const TopkOptions& o, const Tensor& mask) {
  const char* op = "differentiable_topk";
  COLT5_CHECK(x.defined(), op, ": argument 'x' is an undefined tensor");
  check_floating(x, op, "x");
  COLT5_CHECK(x.dim() >= 1 && x.size(-1) >= 1, op, ": argument 'x' expected shape [..., n] with n >= 1, got ",
              x.shape());
  const int64_t n = x.size(-1);
  COLT5_CHECK(k >= 1 && k <= n, op, ": argument 'k' expected in [1, ", n, "] (the last dim of x), got ", k);
  TopkResult r;
  if (o.non_differentiable) {
    r.indices = topk_indices(x, k);
    r.values = gather(x, x.dim() - 1, r.indices);
    return r;
  }
  COLT5_CHECK(o.coor_descent_k_ratio >= 1.0 && std::isfinite(o.coor_descent_k_ratio), op,
              ": option 'coor_descent_k_ratio' expected a finite value >= 1, got ", o.coor_descent_k_ratio);
  CoorDescentOptions co;
  co.n_iters = o.n_iters;
  co.eps = o.eps;
  co.eps_init = o.eps_init;
  co.eps_decay = o.eps_decay;
  const double k_eff = std::min(double(k) * o.coor_descent_k_ratio, double(n));
  const Tensor c = coor_descent(x, k_eff, co, mask);  // checks its own options and the mask
  const Tensor gates = c + (1.0 - c.detach());
  const Tensor xg = x * gates;
  r.indices = topk_indices(xg, k);
  r.values = gather(xg, x.dim() - 1, r.indices);
  r.coor_descent_values = gather(c, x.dim() - 1, r.indices);
  r.gates = gather(gates, x.dim() - 1, r.indices);
  return r;
}

}  // namespace colt5::nn
