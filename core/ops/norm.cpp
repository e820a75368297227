// Raw layer_norm / rms_norm: validation, bringing x (and g) into the kernels' contiguous
// [R, D] layout, output and statistics allocation, dispatch.
#include "core/ops/norm.h"

#include <cmath>

#include "core/ops/copy.h"

namespace colt5::ops {

namespace {

void check_x(const Tensor& x, const char* op) {
  COLT5_CHECK(x.defined(), op, ": argument 'x' is undefined");
  check_floating(x, op, "x");
  COLT5_CHECK(x.dim() >= 1, op, ": argument 'x' expected at least 1 dim [..., D], got a 0-D tensor");
  COLT5_CHECK(x.size(-1) >= 1, op, ": argument 'x' expected a non-empty last dim, got shape ", x.shape());
}

// An optional per-feature parameter: undefined, or [D] with x's dtype and device.
void check_param(const Tensor& p, const Tensor& x, const char* op, const char* arg) {
  if (!p.defined()) return;
  check_same_dtype(x, p, op, "x", arg);
  check_same_device({x, p}, op);
  COLT5_CHECK(p.dim() == 1 && p.size(0) == x.size(-1), op, ": argument '", arg, "' expected shape [", x.size(-1),
              "] (x's last dim), got ", p.shape());
}

void check_eps(double eps, const char* op) {
  COLT5_CHECK(std::isfinite(eps) && eps >= 0, op, ": argument 'eps' expected a finite value >= 0, got ", eps);
}

Tensor maybe_contiguous(const Tensor& t) { return t.defined() ? contiguous(t) : t; }

// g must have x's shape.
Tensor checked_grad(const Tensor& g, const Tensor& x, const char* op) {
  COLT5_CHECK(g.defined(), op, ": argument 'g' is undefined");
  check_same_dtype(x, g, op, "x", "g");
  check_same_device({x, g}, op);
  COLT5_CHECK(g.shape() == x.shape(), op, ": argument 'g' expected shape ", x.shape(), " (x's), got ", g.shape());
  return contiguous(g);
}

void check_stats(const Tensor& s, const Tensor& x, int64_t R, const char* op, const char* arg) {
  COLT5_CHECK(s.defined() && s.numel() == R && s.dtype() == x.dtype(), op, ": argument '", arg, "' expected ", R,
              " elements of ", x.dtype(), " (one per row of x)");
  check_same_device({x, s}, op);
}

}  // namespace

LayerNormResult layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  const char* op = "layer_norm";
  check_x(x, op);
  check_param(weight, x, op, "weight");
  check_param(bias, x, op, "bias");
  check_eps(eps, op);
  const int64_t D = x.size(-1), R = x.numel() / D;
  LayerNormResult res;
  res.y = Tensor::empty(x.shape(), x.dtype(), x.device());
  res.mean = Tensor::empty({R}, x.dtype(), x.device());
  res.rstd = Tensor::empty({R}, x.dtype(), x.device());
  if (R == 0) return res;
  kernels::layer_norm_forward(x.device())(contiguous(x), maybe_contiguous(weight), maybe_contiguous(bias), eps, res.y,
                                          res.mean, res.rstd);
  return res;
}

LayerNormGrads layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                                   const Tensor& g, bool need_w, bool need_b) {
  const char* op = "layer_norm_backward";
  check_x(x, op);
  check_param(weight, x, op, "weight");
  const int64_t D = x.size(-1), R = x.numel() / D;
  check_stats(mean, x, R, op, "mean");
  check_stats(rstd, x, R, op, "rstd");
  Tensor gc = checked_grad(g, x, op);
  LayerNormGrads res;
  res.dx = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (need_w && weight.defined()) res.dw = Tensor::empty({D}, x.dtype(), x.device());
  if (need_b) res.db = Tensor::empty({D}, x.dtype(), x.device());
  if (R == 0) {
    if (res.dw.defined()) fill_(res.dw, 0.0);
    if (res.db.defined()) fill_(res.db, 0.0);
    return res;
  }
  kernels::layer_norm_backward(x.device())(contiguous(x), maybe_contiguous(weight), contiguous(mean), contiguous(rstd),
                                           gc, res.dx, res.dw, res.db);
  return res;
}

RmsNormResult rms_norm(const Tensor& x, const Tensor& gamma, double eps) {
  const char* op = "rms_norm";
  check_x(x, op);
  check_param(gamma, x, op, "gamma");
  check_eps(eps, op);
  const int64_t D = x.size(-1), R = x.numel() / D;
  RmsNormResult res;
  res.y = Tensor::empty(x.shape(), x.dtype(), x.device());
  res.norm = Tensor::empty({R}, x.dtype(), x.device());
  if (R == 0) return res;
  kernels::rms_norm_forward(x.device())(contiguous(x), maybe_contiguous(gamma), eps, res.y, res.norm);
  return res;
}

RmsNormGrads rms_norm_backward(const Tensor& x, const Tensor& gamma, const Tensor& norm, double eps, const Tensor& g,
                               bool need_gamma) {
  const char* op = "rms_norm_backward";
  check_x(x, op);
  check_param(gamma, x, op, "gamma");
  check_eps(eps, op);
  const int64_t D = x.size(-1), R = x.numel() / D;
  check_stats(norm, x, R, op, "norm");
  Tensor gc = checked_grad(g, x, op);
  RmsNormGrads res;
  res.dx = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (need_gamma && gamma.defined()) res.dgamma = Tensor::empty({D}, x.dtype(), x.device());
  if (R == 0) {
    if (res.dgamma.defined()) fill_(res.dgamma, 0.0);
    return res;
  }
  kernels::rms_norm_backward(x.device())(contiguous(x), maybe_contiguous(gamma), contiguous(norm), eps, gc, res.dx,
                                         res.dgamma);
  return res;
}

}  // namespace colt5::ops
