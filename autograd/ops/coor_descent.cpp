// Differentiable coor_descent: one graph node whose backward runs the dedicated kernel
// (core/ops/coor_descent.h). The forward's T iterations are not recorded; the node saves s, the
// mask, log k and the T scalars a_t of each row ([rows, T] float64): O(T) state per row beyond
// the input itself, independent of how the iterations are written.
//
// Backward derivation (one row; K = kept entries; eps_t constants; L = log k; p_t = softmax(z_t)
// over K; h_t,j = [s_j + a_{t-1} > 0], torch's convention relu'(0) = 0).
// Forward:
//   z_t,j = (s_j + b_{t-1,j}) / eps_t,   b_0 = -s,   b_t = -relu(s + a_t)
//   a_t   = eps_t (L - LSE_j z_t,j)
//   y_j   = exp(u_j / eps_f),  u_j = s_j + a_T + b_T,j = min(s_j + a_T, 0),  eps_f = eps_{T+1}
// Local derivatives:
//   d a_t / d z_t,j           = -eps_t p_t,j
//   d z_t,j / d s_j           = (1 - h_t,j) / eps_t      (t >= 2; for t = 1, s + b_0 = s - s: 0)
//   d z_t,j / d a_{t-1}       = -h_t,j / eps_t
//   d a_t / d L               = eps_t
//   d y_j / d s_j = d y_j / d a_T = y_j / eps_f [s_j + a_T <= 0]
// Hence, with g = dL/dy (adjoints written with a bar), walking t = T..1:
//   gbar_j  = g_j y_j / eps_f [s_j + a_T <= 0]
//   ds_j    = gbar_j,          abar_T = sum_j gbar_j
//   for t = T..2:
//     ds_j       -= abar_t p_t,j (1 - h_t,j)        (= abar_t * (-eps_t p_t,j) * (1 - h_t,j) / eps_t)
//     abar_{t-1}  = abar_t sum_j p_t,j h_t,j        (= abar_t * sum_j (-eps_t p_t,j)(-h_t,j / eps_t))
//   dL = sum_{t=1..T} abar_t eps_t
// p_t needs z_t, a function of s and a_{t-1} alone (b_{t-1} = -relu(s + a_{t-1})), so the saved
// a_t recompute every iteration exactly; nothing else is kept. ds_j = 0 for masked j, and a row
// with no kept entry has y = 0 and zero gradients. For a tensor k, dL/dk = dL * [k >= 1e-20] / k
// follows by autograd through log(clamp_min(k, 1e-20)), summed over the rows k was broadcast to.
#include "autograd/ops/coor_descent.h"

#include <cmath>
#include <limits>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/ops/coor_descent.h"

namespace colt5 {

namespace {

constexpr const char* kOp = "coor_descent";

CoorDescentParams params_of(const CoorDescentOptions& o) {
  return ops::coor_descent_params(o.n_iters, o.eps, o.eps_init, o.eps_decay, kOp);
}

// y = coor_descent(s) with log k given as `logk` (any floating dtype, a shape that broadcasts to
// s's rows); both s and logk may require grad.
Tensor coor_descent_logk(const Tensor& s, const Tensor& logk, const CoorDescentParams& p, const Tensor& mask) {
  const Tensor lk64 = ops::to_dtype(logk.detach(), DType::Float64);
  ops::CoorDescentResult r = ops::coor_descent_forward(s, lk64, mask, p);
  if (!autograd::any_requires_grad({s, logk})) return r.y;
  const Tensor sd = s.detach(), md = mask.defined() ? mask.detach() : Tensor(), a = r.a;
  const Shape logk_shape = logk.shape();
  const DType logk_dtype = logk.dtype();
  const bool need_dlogk = logk.requires_grad();
  return autograd::record(kOp, r.y, {s, logk}, [=](const Tensor& g) -> TensorList {
    ops::CoorDescentGrads gr = ops::coor_descent_backward(sd, lk64, md, a, ops::contiguous(g), p, need_dlogk);
    Tensor dlogk;
    if (need_dlogk) dlogk = ops::to_dtype(sum_to(gr.dlogk, logk_shape), logk_dtype);
    return {gr.ds, dlogk};
  });
}

void check_s(const Tensor& s) {
  COLT5_CHECK(s.defined(), kOp, ": argument 's' is undefined");
  check_floating(s, kOp, "s");
  COLT5_CHECK(s.dim() >= 1, kOp, ": argument 's' expected at least 1 dim ([..., n]), got shape ", s.shape());
}

}  // namespace

Tensor coor_descent(const Tensor& s, double k, const CoorDescentOptions& options, const Tensor& mask) {
  check_s(s);
  COLT5_CHECK(std::isfinite(k) && k > 0, kOp, ": argument 'k' expected a finite value > 0, got ", k);
  const CoorDescentParams p = params_of(options);
  // log(max(k, 1e-20)) in s's precision, as the reference's torch.Tensor([k]).to(s).
  double logk = 0;
  visit_floating(s.dtype(), kOp, [&]<class T>() { logk = double(std::log(std::max(T(k), T(1e-20)))); });
  return coor_descent_logk(s, scalar_tensor(logk, DType::Float64, s.device()), p, mask);
}

Tensor coor_descent(const Tensor& s, const Tensor& k, const CoorDescentOptions& options, const Tensor& mask) {
  check_s(s);
  COLT5_CHECK(k.defined(), kOp, ": argument 'k' is undefined");
  COLT5_CHECK(k.dtype() != DType::Bool, kOp, ": argument 'k' expected a floating or integral dtype, got bool");
  check_same_device({s, k}, kOp);
  const Shape rows(s.shape().begin(), s.shape().end() - 1);
  bool fits = k.dim() <= int64_t(rows.size());
  for (int64_t d = 0; fits && d < k.dim(); ++d) {
    const int64_t want = rows[rows.size() - k.dim() + d], have = k.shape()[d];
    fits = have == 1 || have == want;
  }
  COLT5_CHECK(fits, kOp, ": argument 'k' expected a shape that broadcasts to ", rows,
              " (s's shape without its last dim), got ", k.shape());
  const CoorDescentParams p = params_of(options);
  // The reference takes log(k.clamp(min = 1e-20)) in k's own dtype (an integral k becomes s's).
  const Tensor kf = k.is_floating_point() ? k : k.to(s.dtype());
  return coor_descent_logk(s, log(clamp_min(kf, 1e-20)), p, mask);
}

}  // namespace colt5
