// coor_descent: validate, bring every tensor into the contiguous [rows, n] / [rows] / [rows, T]
// layout of the kernel contract (core/ops/coor_descent.h), allocate, dispatch.
#include "core/ops/coor_descent.h"

#include <cmath>

#include "core/ops/copy.h"
#include "core/ops/view.h"

namespace colt5::ops {

namespace {

constexpr const char* kOp = "coor_descent";

// s's shape without its last dim: one entry per row.
Shape batch_shape(const Tensor& s) { return Shape(s.shape().begin(), s.shape().end() - 1); }

// Does `shape` broadcast to `target` without growing it (NumPy rules, aligned on the right)?
bool broadcasts_to(const Shape& shape, const Shape& target) {
  if (shape.size() > target.size()) return false;
  const size_t lead = target.size() - shape.size();
  for (size_t k = 0; k < shape.size(); ++k)
    if (shape[k] != 1 && shape[k] != target[lead + k]) return false;
  return true;
}

void check_s(const Tensor& s) {
  COLT5_CHECK(s.defined(), kOp, ": argument 's' is undefined");
  check_floating(s, kOp, "s");
  COLT5_CHECK(s.dim() >= 1, kOp, ": argument 's' expected at least 1 dim ([..., n]), got shape ", s.shape());
}

void check_mask(const Tensor& s, const Tensor& mask) {
  if (!mask.defined()) return;
  check_dtype(mask, DType::Bool, kOp, "mask");
  COLT5_CHECK(mask.shape() == s.shape(), kOp, ": argument 'mask' expected shape ", s.shape(), " (s's shape), got ",
              mask.shape());
  check_same_device({s, mask}, kOp);
}

void check_logk(const Tensor& s, const Tensor& logk) {
  COLT5_CHECK(logk.defined(), kOp, ": argument 'logk' is undefined");
  check_dtype(logk, DType::Float64, kOp, "logk");
  check_same_device({s, logk}, kOp);
  COLT5_CHECK(broadcasts_to(logk.shape(), batch_shape(s)), kOp, ": argument 'k' expected a shape that broadcasts to ",
              batch_shape(s), " (s's shape without its last dim), got ", logk.shape());
}

// logk broadcast to one contiguous value per row: [rows].
Tensor logk_rows(const Tensor& logk, const Shape& batch, int64_t rows) {
  return reshape(contiguous(expand(logk, batch)), {rows});
}

}  // namespace

CoorDescentParams coor_descent_params(int64_t n_iters, double eps, std::optional<double> eps_init, double eps_decay,
                                      const char* op) {
  COLT5_CHECK(n_iters >= 1, op, ": argument 'n_iters' expected >= 1, got ", n_iters);
  COLT5_CHECK(std::isfinite(eps) && eps > 0, op, ": argument 'eps' expected a finite value > 0, got ", eps);
  COLT5_CHECK(std::isfinite(eps_decay) && eps_decay > 0 && eps_decay <= 1, op,
              ": argument 'eps_decay' expected a value in (0, 1], got ", eps_decay);
  if (eps_init)
    COLT5_CHECK(std::isfinite(*eps_init) && *eps_init > 0, op, ": argument 'eps_init' expected a finite value > 0, got ",
                *eps_init);
  CoorDescentParams p;
  p.n_iters = n_iters;
  p.eps = eps;
  p.eps_start = std::max(eps_init.value_or(eps), eps);
  p.eps_decay = eps_decay;
  return p;
}

CoorDescentResult coor_descent_forward(const Tensor& s, const Tensor& logk, const Tensor& mask,
                                       const CoorDescentParams& p) {
  check_s(s);
  check_logk(s, logk);
  check_mask(s, mask);
  COLT5_CHECK(p.n_iters >= 1, kOp, ": argument 'n_iters' expected >= 1, got ", p.n_iters);
  const Shape batch = batch_shape(s);
  const int64_t rows = numel(batch), n = s.shape().back();
  CoorDescentResult r;
  r.y = Tensor::empty(s.shape(), s.dtype(), s.device());
  r.a = Tensor::empty({rows, p.n_iters}, DType::Float64, s.device());
  if (rows * n == 0) {  // no rows, or rows of no entries (nothing kept: a = 0)
    if (r.a.numel() > 0) fill_(r.a, 0.0);
    return r;
  }
  Tensor src = reshape(contiguous(s), {rows, n});
  Tensor m = mask.defined() ? reshape(contiguous(mask), {rows, n}) : Tensor();
  Tensor lk = logk_rows(logk, batch, rows);
  Tensor y = reshape(r.y, {rows, n});  // a view of the fresh output
  kernels::coor_descent_forward(s.device())(src, m, lk, y, r.a, p);
  return r;
}

CoorDescentGrads coor_descent_backward(const Tensor& s, const Tensor& logk, const Tensor& mask, const Tensor& a,
                                       const Tensor& g, const CoorDescentParams& p, bool need_dlogk) {
  check_s(s);
  check_logk(s, logk);
  check_mask(s, mask);
  const Shape batch = batch_shape(s);
  const int64_t rows = numel(batch), n = s.shape().back();
  COLT5_CHECK(a.defined() && a.dtype() == DType::Float64 && a.shape() == Shape({rows, p.n_iters}), kOp,
              ": argument 'a' expected float64 [", rows, ", ", p.n_iters, "] (the saved state), got ",
              a.defined() ? str(dtype_name(a.dtype()), " ", a.shape()) : std::string("undefined"));
  COLT5_CHECK(g.defined(), kOp, ": argument 'g' is undefined");
  check_same_dtype(s, g, kOp, "s", "g");
  COLT5_CHECK(g.shape() == s.shape(), kOp, ": argument 'g' expected shape ", s.shape(), ", got ", g.shape());
  check_same_device({s, a, g}, kOp);
  CoorDescentGrads r;
  r.ds = Tensor::empty(s.shape(), s.dtype(), s.device());
  if (need_dlogk) r.dlogk = Tensor::empty(batch, DType::Float64, s.device());
  if (rows * n == 0) {
    if (r.dlogk.defined() && rows > 0) fill_(r.dlogk, 0.0);
    return r;
  }
  Tensor src = reshape(contiguous(s), {rows, n});
  Tensor m = mask.defined() ? reshape(contiguous(mask), {rows, n}) : Tensor();
  Tensor lk = logk_rows(logk, batch, rows);
  Tensor as = contiguous(a);
  Tensor gs = reshape(contiguous(g), {rows, n});
  Tensor ds = reshape(r.ds, {rows, n});
  Tensor dl = need_dlogk ? reshape(r.dlogk, {rows}) : Tensor();
  kernels::coor_descent_backward(s.device())(src, m, lk, as, gs, ds, dl, p);
  return r;
}

}  // namespace colt5::ops
