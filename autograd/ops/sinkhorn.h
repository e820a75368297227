// Sinkhorn normalisation in the log domain (Sinkhorn 1964; Mena et al. 2018, "Gumbel-Sinkhorn"),
// as CoLT5-attention's sinkhorn.py: for n_iters rounds, subtract the logsumexp over the last
// dim, then the logsumexp over the second-to-last dim; return exp. Every round ends with the
// columns normalised, so the result's columns sum to 1 and its rows approach it.
//
// Composed from differentiable ops (logsumexp, sub, exp, log, clamp_min): its gradient is the
// autograd of those.
#pragma once

#include <cstdint>

#include "autograd/ops/creation.h"
#include "core/tensor.h"

namespace colt5 {

// r: [..., rows, cols] log-weights (floating, >= 2 dims; the reference's [b, n, m] uses dims
// 2 then 1, which are the last two). n_iters >= 0. Returns exp of the normalised r, r's shape.
Tensor sinkhorn(const Tensor& r, int64_t n_iters = 8);

// Gumbel-Sinkhorn: r holds non-negative weights (not logs). With u ~ U[0, 1) drawn from `gen`
// (the default generator when null) and log(x) = log(max(x, 1e-20)):
//   sinkhorn((log(r) - log(-log(u))) / temperature, n_iters)
// temperature > 0. The noise is a constant: gradients flow to r only.
Tensor gumbel_sinkhorn(const Tensor& r, int64_t n_iters = 8, double temperature = 0.7, Generator* gen = nullptr);

}  // namespace colt5
