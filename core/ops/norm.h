// Raw normalisations over the last dim (no autograd), each with a dedicated backward kernel.
//
// Dims legend: R rows (all leading dims of x flattened), D the normalised (last) dim.
//
// ---- Kernel contracts (CPU here; a CUDA kernel implements the same ones) ----
// Every tensor is contiguous and has x's floating dtype and device; outputs are freshly
// allocated and overwritten. Optional tensors (weight, bias, gamma, and the parameter
// gradients) may be undefined: an undefined weight/gamma means 1, an undefined bias 0, an
// undefined gradient output is not computed. R >= 1, D >= 1.
//
//   layer_norm_forward(x [R, D], w [D], b [D], eps, y [R, D], mean [R], rstd [R])
//     mean = sum_j x_j / D,  var = sum_j (x_j - mean)^2 / D (biased, as torch),
//     rstd = 1 / sqrt(var + eps),  y = (x - mean) * rstd * w + b.
//   layer_norm_backward(x, w, mean, rstd, g [R, D], dx [R, D], dw [D], db [D])
//     see core/cpu/norm.cpp for the math.
//
//   rms_norm_forward(x [R, D], gamma [D], eps, y [R, D], norm [R])
//     norm = ||x||_2 (unclamped),  y = x / max(norm, eps) * sqrt(D) * gamma.
//   rms_norm_backward(x, gamma, norm, eps, g [R, D], dx [R, D], dgamma [D])
//
// Parameter gradients (dw, db, dgamma) are sums over rows taken in increasing row order (no
// atomics), so they are deterministic.
#pragma once

#include "core/dispatch.h"
#include "core/tensor.h"

namespace colt5 {

namespace cpu {
void layer_norm_forward(const Tensor& x, const Tensor& w, const Tensor& b, double eps, Tensor& y, Tensor& mean,
                        Tensor& rstd);
void layer_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd, const Tensor& g,
                         Tensor& dx, Tensor& dw, Tensor& db);
void rms_norm_forward(const Tensor& x, const Tensor& gamma, double eps, Tensor& y, Tensor& norm);
void rms_norm_backward(const Tensor& x, const Tensor& gamma, const Tensor& norm, double eps, const Tensor& g,
                       Tensor& dx, Tensor& dgamma);
}  // namespace cpu

using LayerNormFwdFn = void(const Tensor& x, const Tensor& w, const Tensor& b, double eps, Tensor& y, Tensor& mean,
                            Tensor& rstd);
using LayerNormBwdFn = void(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                            const Tensor& g, Tensor& dx, Tensor& dw, Tensor& db);
using RmsNormFwdFn = void(const Tensor& x, const Tensor& gamma, double eps, Tensor& y, Tensor& norm);
using RmsNormBwdFn = void(const Tensor& x, const Tensor& gamma, const Tensor& norm, double eps, const Tensor& g,
                          Tensor& dx, Tensor& dgamma);
COLT5_KERNEL(layer_norm_forward, LayerNormFwdFn, cpu::layer_norm_forward)
COLT5_KERNEL(layer_norm_backward, LayerNormBwdFn, cpu::layer_norm_backward)
COLT5_KERNEL(rms_norm_forward, RmsNormFwdFn, cpu::rms_norm_forward)
COLT5_KERNEL(rms_norm_backward, RmsNormBwdFn, cpu::rms_norm_backward)

namespace ops {

// x [..., D] of any strides. The statistics are [R] with R = numel / D (rows in x's row-major
// order); they are what the backward needs.
struct LayerNormResult {
  Tensor y;     // [..., D]
  Tensor mean;  // [R]
  Tensor rstd;  // [R]
};
LayerNormResult layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps);

struct LayerNormGrads {
  Tensor dx;  // x's shape
  Tensor dw;  // [D], undefined unless requested (and weight defined)
  Tensor db;  // [D], undefined unless requested
};
// g has x's shape (any strides). need_w / need_b: compute dw / db.
LayerNormGrads layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                                   const Tensor& g, bool need_w, bool need_b);

struct RmsNormResult {
  Tensor y;     // [..., D]
  Tensor norm;  // [R], ||x||_2 per row before the clamp
};
RmsNormResult rms_norm(const Tensor& x, const Tensor& gamma, double eps);

struct RmsNormGrads {
  Tensor dx;      // x's shape
  Tensor dgamma;  // [D], undefined unless requested (and gamma defined)
};
RmsNormGrads rms_norm_backward(const Tensor& x, const Tensor& gamma, const Tensor& norm, double eps, const Tensor& g,
                               bool need_gamma);

}  // namespace ops
}  // namespace colt5
