// Differentiable heavy attention (math in core/ops/attention.h).
//
// attention(): when the device's fused kernel supports the arguments, one forward kernel
// (out and the per-query log-sum-exp) and one graph node whose backward runs the fused backward
// kernel (nothing of size [n, m] is kept in between); otherwise attention_composed().
//
// attention_composed(): the same math from primitive differentiable ops; its backward is the
// chain of their rules. It is the fallback and the test oracle of the fused op:
//   q~ = score_q q, k~ = score_kv k (multiply_keys_by_score), v~ = score_kv v (per route),
//   S = masked_fill(scale q~ k~^T, ~mask, -max), the null key's column first,
//   out = softmax(S) [null_v; v~].
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/ops/attention.h"

namespace colt5 {

using autograd::record;

namespace {

Tensor detached(const Tensor& t) { return t.defined() ? t.detach() : t; }

}  // namespace

Tensor attention(const AttentionInputs& in) {
  validate(in, "attention");
  if (!kernels::attention_supports(in.q.device())(in)) return attention_composed(in);
  ops::AttentionResult r = ops::attention(in);
  const TensorList inputs = {in.q, in.k, in.v, in.null_k, in.null_v, in.score_kv, in.score_q};
  if (!autograd::any_requires_grad(inputs)) return r.out;
  bool need[7];
  for (int i = 0; i < 7; ++i) need[i] = inputs[size_t(i)].requires_grad();
  // Saved detached: saving the output itself would make it own its own graph node.
  AttentionInputs saved = in;
  saved.q = detached(in.q), saved.k = detached(in.k), saved.v = detached(in.v);
  saved.null_k = detached(in.null_k), saved.null_v = detached(in.null_v);
  saved.mask = detached(in.mask);
  saved.score_kv = detached(in.score_kv), saved.score_q = detached(in.score_q);
  const ops::AttentionResult fwd{r.out.detach(), r.lse};
  return record("attention", r.out, inputs, [saved, fwd, need0 = need[0], need1 = need[1], need2 = need[2],
                                             need3 = need[3], need4 = need[4], need5 = need[5],
                                             need6 = need[6]](const Tensor& g) -> TensorList {
    const bool want[7] = {need0, need1, need2, need3, need4, need5, need6};
    AttentionGrads gr = ops::attention_backward(saved, fwd, g, want);
    return {gr.dq, gr.dk, gr.dv, gr.dnull_k, gr.dnull_v, gr.dscore_kv, gr.dscore_q};
  });
}

Tensor attention_composed(const AttentionInputs& in) {
  validate(in, "attention");
  const int64_t b = in.q.size(0), h = in.q.size(1), n = in.q.size(2), d = in.q.size(3), m = in.k.size(2);
  const int64_t r = in.routes, hr = h / r;
  Tensor q = in.q, k = in.k, v = in.v;  // [b, h, n, d], [b, h, m, d]
  if (in.score_q.defined()) q = mul(q, in.score_q.reshape({b, 1, n, 1}));
  if (in.score_kv.defined()) {
    const Tensor s = in.score_kv.reshape({b, r, 1, m, 1});  // route j's score for route j's heads
    v = mul(v.reshape({b, r, hr, m, d}), s).reshape({b, h, m, d});
    if (in.multiply_keys_by_score) k = mul(k.reshape({b, r, hr, m, d}), s).reshape({b, h, m, d});
  }
  Tensor sim = mul_scalar(matmul(q, k.transpose(-1, -2)), in.scale);  // [b, h, n, m]
  if (in.mask.defined()) {
    const Tensor km = in.mask.reshape({b, r, 1, 1, m}).expand({b, r, hr, 1, m}).reshape({b, h, 1, m});
    sim = masked_fill(sim, logical_not(km), max_neg_value(sim.dtype()));
  }
  if (in.null_k.defined()) {
    const Tensor s0 = mul_scalar(matmul(q, in.null_k.reshape({1, h, d, 1})), in.scale);  // [b, h, n, 1]
    sim = cat({s0, sim}, 3);                                                             // [b, h, n, 1 + m]
    v = cat({in.null_v.reshape({1, h, 1, d}).expand({b, h, 1, d}), v}, 2);               // [b, h, 1 + m, d]
  }
  return matmul(softmax(sim, -1), v);  // [b, h, n, d]
}

}  // namespace colt5
