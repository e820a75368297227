// Normalisations over the last dim, with dedicated backward kernels.
#pragma once

#include "core/tensor.h"

namespace colt5 {

// layer_norm(x, w, b, eps): (x - mean) / sqrt(var + eps) * w + b over the last dim (biased
// variance, as torch). w, b: [D] or undefined.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
// rms_norm(x, gamma): x / max(||x||_2, eps) * sqrt(D) * gamma over the last dim — CoLT5's
// RMSNorm (F.normalize then scale), eps = 1e-12 as F.normalize. gamma: [D].
Tensor rms_norm(const Tensor& x, const Tensor& gamma, double eps = 1e-12);
// l2norm(x) = F.normalize(x, dim = -1) = x / max(||x||_2, 1e-12): rms_norm with gamma = 1 / sqrt(D).
Tensor l2norm(const Tensor& x);

}  // namespace colt5
