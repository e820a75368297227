// The differentiable top-k (nn/topk.h): what it returns, its gradient (float64 gradcheck), the
// non-differentiable mode and its argument checks. Parity with 0.11.1's topk.py is in the golden
// fixtures topk_0111*.
#include <doctest/doctest.h>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "nn/routers.h"
#include "nn/topk.h"
#include "tests/cases/cases.h"

using namespace colt5;
using doctest::Contains;

TEST_CASE("differentiable_topk: the hard top-k of x, gates of value 1, the soft selection beside it") {
  const Tensor x = cases::distinct_leaf({2, 7}, DType::Float64, kCPU, 3, 0.3);
  nn::TopkOptions o;
  o.eps = 0.5;
  const nn::TopkResult r = nn::differentiable_topk(x, 3, o);
  REQUIRE(r.indices.shape() == Shape({2, 3}));
  // the same indices as a plain top-k, in torch's order, and the values are x's
  CHECK(r.indices.to_vector<int64_t>() == nn::topk_indices_torch_order(x.detach(), 3).to_vector<int64_t>());
  CHECK(cases::max_rel_diff(r.values, gather(x, 1, r.indices)) < 1e-15);
  for (double g : r.gates.to_vector<double>()) CHECK(g == doctest::Approx(1.0).epsilon(1e-15));
  for (double c : r.coor_descent_values.to_vector<double>()) CHECK((c > 0.0 && c <= 1.0));
  // The gradient of the values is the straight-through surrogate's, which finite differences
  // cannot see (the gates are 1 in value): d values = d x[idx] + x[idx] d c[idx], c the
  // coordinate descent (itself gradchecked in tests/test_coor_descent.cpp). Checked against that
  // sum built from the plain ops, with a random upstream gradient.
  const Tensor w = cases::leaf({2, 3}, DType::Float64, kCPU, 8, cases::Layout::Contiguous, 1, 0, false);
  Tensor xa = x.detach().clone().requires_grad_();
  sum(nn::differentiable_topk(xa, 3, o).values * w).backward();
  Tensor xb = x.detach().clone().requires_grad_();
  CoorDescentOptions co;
  co.n_iters = o.n_iters, co.eps = o.eps;
  const Tensor c = coor_descent(xb, 3 * 9.0 / 8.0, co);
  sum((gather(xb, 1, r.indices) + gather(xb.detach() * c, 1, r.indices)) * w).backward();
  CHECK(cases::max_rel_diff(xa.grad(), xb.grad()) < 1e-13);
  Tensor xc = x.detach().clone().requires_grad_();
  sum(gather(xc, 1, r.indices) * w).backward();
  CHECK(cases::max_rel_diff(xa.grad(), xc.grad()) > 1e-3);  // the coordinate-descent term is there
}

TEST_CASE("differentiable_topk: non_differentiable is a plain top-k; bad arguments") {
  const Tensor x = cases::distinct_leaf({3, 5}, DType::Float64, kCPU, 4, 0.3);
  nn::TopkOptions o;
  o.non_differentiable = true;
  const nn::TopkResult r = nn::differentiable_topk(x, 2, o);
  CHECK_FALSE(r.gates.defined());
  CHECK_FALSE(r.coor_descent_values.defined());
  GradcheckResult g = gradcheck([&](const TensorList& in) { return nn::differentiable_topk(in[0], 2, o).values; }, {x});
  CHECK(g.ok);
  CHECK_THROWS_WITH_AS(nn::differentiable_topk(x, 6), Contains("'k' expected in [1, 5]"), Error);
  CHECK_THROWS_WITH_AS(nn::differentiable_topk(x, 0), Contains("'k' expected in [1, 5]"), Error);
  nn::TopkOptions bad;
  bad.coor_descent_k_ratio = 0.5;
  CHECK_THROWS_WITH_AS(nn::differentiable_topk(x, 2, bad), Contains("'coor_descent_k_ratio'"), Error);
  CHECK_THROWS_WITH_AS(nn::differentiable_topk(ones({3, 5}, DType::Int64), 2), Contains("argument 'x'"), Error);
}
