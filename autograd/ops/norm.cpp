// Differentiable layer_norm and rms_norm. The forward saves per-row statistics (mean and rstd
// for layer_norm, the L2 norm for rms_norm) and the backward runs the dedicated backward kernel
// (math in core/cpu/norm.cpp), which returns dx and the parameter gradients in one pass.
#include <cmath>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/ops/norm.h"

namespace colt5 {

using autograd::record;

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  ops::LayerNormResult r = ops::layer_norm(x, weight, bias, eps);
  if (!autograd::any_requires_grad({x, weight, bias})) return r.y;
  const bool need_w = weight.requires_grad(), need_b = bias.requires_grad();
  Tensor xd = x.detach(), wd = weight.defined() ? weight.detach() : Tensor();
  Tensor mean = r.mean, rstd = r.rstd;  // [R], not part of any graph
  return record("layer_norm", r.y, {x, weight, bias}, [=](const Tensor& g) -> TensorList {
    ops::LayerNormGrads gr = ops::layer_norm_backward(xd, wd, mean, rstd, g, need_w, need_b);
    return {gr.dx, gr.dw, gr.db};
  });
}

Tensor rms_norm(const Tensor& x, const Tensor& gamma, double eps) {
  ops::RmsNormResult r = ops::rms_norm(x, gamma, eps);
  if (!autograd::any_requires_grad({x, gamma})) return r.y;
  const bool need_gamma = gamma.requires_grad();
  Tensor xd = x.detach(), gd = gamma.defined() ? gamma.detach() : Tensor();
  Tensor norm = r.norm;  // [R]
  return record("rms_norm", r.y, {x, gamma}, [=](const Tensor& g) -> TensorList {
    ops::RmsNormGrads gr = ops::rms_norm_backward(xd, gd, norm, eps, g, need_gamma);
    return {gr.dx, gr.dgamma};
  });
}

Tensor l2norm(const Tensor& x) {
  COLT5_CHECK(x.defined() && x.dim() >= 1, "l2norm: argument 'x' expected a tensor of rank >= 1");
  const int64_t d = x.size(-1);
  return rms_norm(x, full({d}, 1.0 / std::sqrt(double(d)), x.dtype(), x.device()));
}

}  // namespace colt5
