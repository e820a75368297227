// Raw fused attention ops (no autograd): heavy softmax attention with CoLT5's options, and
// windowed local attention. Each has a forward kernel that also returns the log-sum-exp of every
// query's scores, a backward kernel that recomputes the probabilities from it (nothing of size
// [.., queries, keys] is kept between the two), and a `supports` slot that says whether a
// device's fused kernel covers the arguments; when it does not, the autograd op
// (autograd/ops/attention.h) runs the composed version built from primitive ops instead.
//
// Dims legend
//   b  batch      h  heads      n  queries      m  keys / values      d  head dim
//   r  key / value routes (h divisible by r; head i belongs to route i / (h / r))
//   B  merged batch of local attention (b * h), w window size, W windows = ceil(n / w)
//
// ---- attention (heavy branch) ----
// Inputs (AttentionInputs; every tensor contiguous, one floating dtype and device):
//   q [b, h, n, d], k [b, h, m, d], v [b, h, m, d]
//   null_k, null_v [h, d] or both undefined: a key / value prepended to every head's keys
//   mask     [b, r, m] bool or undefined (False = the key is ignored; the null key never is)
//   score_kv [b, r, m] or undefined: v_j (and k_j when multiply_keys_by_score) times score_kv[.., j]
//   score_q  [b, n] or undefined: q_i times score_q[.., i]
// With q~ = score_q * q, k~ = (multiply_keys_by_score ? score_kv : 1) * k, v~ = score_kv * v and
// the null pair as slot 0 (when present):
//   s_ij = scale * q~_i . k~_j, or -finfo(dtype).max where mask is False
//   lse_i = log sum_j exp(s_ij),  p_ij = exp(s_ij - lse_i),  out_i = sum_j p_ij v~_j
// A row whose every key is masked (no null key) has all s_ij = -max: a uniform p over its keys,
// finite as in the reference. Outputs: out [b, h, n, d], lse [b, h, n] (q's dtype).
// (-max + log m is not representable, so for such a row the kernels use the equivalent zero
// scores: p = 1/m and lse = log m; the backward recomputes p = exp(0 - lse) there.)
// Backward (AttentionGrads, each defined output is filled, undefined ones are not computed):
//   D_i = g_i . out_i,  dp_ij = g_i . v~_j,  ds_ij = p_ij (dp_ij - D_i), 0 where masked
//   dq~_i = scale sum_j ds_ij k~_j,   dk~_j = scale sum_i ds_ij q~_i,   dv~_j = sum_i p_ij g_i
//   dq = score_q dq~, dscore_q[b, i] = sum_{h, d} dq~ q;  dk = (score or 1) dk~, dv = score_kv dv~,
//   dscore_kv[b, route, j] = sum over the route's heads and d of dv~ v (+ dk~ k when keys are
//   scaled);  dnull_k, dnull_v [h, d] = the null slot's dk~, dv~ summed over b.
//
// ---- local_attention ----
// Inputs (LocalAttentionInputs): q, k, v [B, n, d] contiguous (k already l2-normalised when
// shared_qk; the autograd op does that), mask [b, n] bool or undefined with B % b == 0 (row i
// of the mask serves merged rows i * (B / b) .. (i + 1) * (B / b) - 1), the options, scale.
// The math is local-attention 1.8.6's, written out in nn/local_attention.h: n is padded to a
// multiple of w with zero keys / values (masked only when a mask is given), window i sees the
// keys of windows i - lb .. i + lf (J = (lb + 1 + lf) w slots; slots outside [0, W w) hold the
// filler key / value -1 and are always masked), the causal / exact-window / shared_qk / key
// padding rules mask slots with -finfo(dtype).max (shared_qk: a query's own key gets -5e4).
// A query whose J slots are all masked averages all J slot values, fillers included (as the
// reference). Outputs: out [B, n, d], lse [B, n]. Backward: dq, dk, dv [B, n, d] with the same
// ds rule as above (masked slots get no gradient; filler and padding slots none either).
#pragma once

#include <cstdint>
#include <optional>

#include "core/dispatch.h"
#include "core/tensor.h"

namespace colt5 {

// -finfo(dtype).max: the value a masked score is set to (the reference's max_neg_value).
double max_neg_value(DType dtype);

// ---- attention ----

struct AttentionInputs {
  Tensor q, k, v;          // [b, h, n, d], [b, h, m, d], [b, h, m, d]
  Tensor null_k, null_v;   // [h, d] or undefined
  Tensor mask;             // [b, r, m] bool or undefined
  Tensor score_kv;         // [b, r, m] or undefined
  Tensor score_q;          // [b, n] or undefined
  int64_t routes = 1;      // r
  bool multiply_keys_by_score = false;
  double scale = 1.0;      // applied to q~ . k~
};

struct AttentionGrads {    // defined = wanted (allocated by the caller, overwritten by the kernel)
  Tensor dq, dk, dv, dnull_k, dnull_v, dscore_kv, dscore_q;
};

// Throws colt5::Error naming the argument (`who` names the caller) unless `in` is well formed:
// the shapes, dtypes and devices above, routes >= 1 dividing h, null_k / null_v both or
// neither, at least one key (m >= 1 or a null key), d >= 1 and a finite scale. Tensors may
// have any strides (ops::attention makes them contiguous).
void validate(const AttentionInputs& in, const char* who = "attention");

// ---- local_attention ----

// local-attention's LocalAttention options; fields and defaults are its keyword arguments.
struct LocalAttentionOptions {
  int64_t window_size = 0;  // w, required: >= 1
  bool causal = false;
  int64_t look_backward = 1;  // >= 0
  // default (nullopt): 0 if causal else 1; must be 0 when causal
  std::optional<int64_t> look_forward = std::nullopt;
  bool shared_qk = false;
  bool autopad = false;  // pad n to a multiple of w (else n % w must be 0)
  bool exact_windowsize = false;
  std::optional<double> scale = std::nullopt;  // default (nullopt): d^-0.5

  int64_t resolved_look_forward() const { return look_forward.value_or(causal ? 0 : 1); }
};

// Throws colt5::Error naming the option (`who` names the caller) when an option is out of range.
void validate(const LocalAttentionOptions& opts, const char* who = "local_attention");

struct LocalAttentionInputs {
  Tensor q, k, v;  // [B, n, d]
  Tensor mask;     // [b, n] bool or undefined
  LocalAttentionOptions opts;
  double scale = 1.0;  // resolved: opts.scale or d^-0.5
};

struct LocalAttentionGrads {  // defined = wanted
  Tensor dq, dk, dv;
};

namespace cpu {
void attention_forward(const AttentionInputs& in, Tensor& out, Tensor& lse);
void attention_backward(const AttentionInputs& in, const Tensor& out, const Tensor& lse, const Tensor& g,
                        AttentionGrads& grads);
bool attention_supports(const AttentionInputs& in);
void local_attention_forward(const LocalAttentionInputs& in, Tensor& out, Tensor& lse);
void local_attention_backward(const LocalAttentionInputs& in, const Tensor& out, const Tensor& lse, const Tensor& g,
                              LocalAttentionGrads& grads);
bool local_attention_supports(const LocalAttentionInputs& in);
}  // namespace cpu

using AttentionFwdFn = void(const AttentionInputs& in, Tensor& out, Tensor& lse);
using AttentionBwdFn = void(const AttentionInputs& in, const Tensor& out, const Tensor& lse, const Tensor& g,
                            AttentionGrads& grads);
using AttentionSupportsFn = bool(const AttentionInputs& in);
using LocalAttentionFwdFn = void(const LocalAttentionInputs& in, Tensor& out, Tensor& lse);
using LocalAttentionBwdFn = void(const LocalAttentionInputs& in, const Tensor& out, const Tensor& lse,
                                 const Tensor& g, LocalAttentionGrads& grads);
using LocalAttentionSupportsFn = bool(const LocalAttentionInputs& in);
COLT5_KERNEL(attention_forward, AttentionFwdFn, cpu::attention_forward)
COLT5_KERNEL(attention_backward, AttentionBwdFn, cpu::attention_backward)
COLT5_KERNEL(attention_supports, AttentionSupportsFn, cpu::attention_supports)
COLT5_KERNEL(local_attention_forward, LocalAttentionFwdFn, cpu::local_attention_forward)
COLT5_KERNEL(local_attention_backward, LocalAttentionBwdFn, cpu::local_attention_backward)
COLT5_KERNEL(local_attention_supports, LocalAttentionSupportsFn, cpu::local_attention_supports)

namespace ops {

// Validate (every argument named in the message), make the inputs contiguous, allocate and
// run the device's kernel. The caller checks `supports` first (the autograd op does).
struct AttentionResult {
  Tensor out;  // [b, h, n, d] / [B, n, d]
  Tensor lse;  // [b, h, n] / [B, n]
};
AttentionResult attention(const AttentionInputs& in);
// need[i] for dq, dk, dv, dnull_k, dnull_v, dscore_kv, dscore_q.
AttentionGrads attention_backward(const AttentionInputs& in, const AttentionResult& fwd, const Tensor& g,
                                  const bool need[7]);
AttentionResult local_attention(const LocalAttentionInputs& in);
LocalAttentionGrads local_attention_backward(const LocalAttentionInputs& in, const AttentionResult& fwd,
                                             const Tensor& g, const bool need[3]);

}  // namespace ops
}  // namespace colt5
