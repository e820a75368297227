// Heavy attention: CoLT5's `Attention`, full softmax attention of the routed queries over one or
// more routed sets of keys / values, with a learned null key / value per head.
//
// Dims legend
//   b  batch      n  routed queries      m  routed keys / values per route     dim  model width
//   h  heads      d  dim_head            r  key / value routes (h divisible by r, hr = h / r)
//
// forward(x [b, n, dim], context [b, m, dim] | [b, r, m, dim] | undefined,
//         mask [b, m] | [b, r, m] bool | undefined, normalized_scores_kv [b, m] | [b, r, m] | undefined,
//         normalized_scores_q [b, n] | undefined):
//   x = RMSNorm(x); context = RMSNorm(context) with the SAME norm (or the normed x when absent);
//   a 3-D context is one route.
//   q = to_q(x) 'b n (h d) -> b h n d', times normalized_scores_q (per query) when given.
//   Keys / values: to_kv.weight [r * hr * 2d, dim] is read as [r, hr, 2d, dim]: route j's
//   heads project route j's context only; of each head's 2d outputs the first d are the key,
//   the last d the value:  kv[b, j, i, t, :] = W[j, i] context[b, j, t]   ([b, r, hr, m, 2d]).
//   v (and k with multiply_keys_by_score) times normalized_scores_kv (per key); then
//   'b r hr m d -> b (r hr) m d' and the null key / value (null_kv[0], null_kv[1], [h, d]) is
//   prepended: k, v [b, h, 1 + m, d].
//   sim = (q k^T) * d^-0.5 [b, h, n, 1 + m]; the key padding mask (route j's mask for route j's
//   heads, a 2-D mask for every head; the null key always True) sets masked keys to
//   -finfo(dtype).max; attn = softmax(sim); out = attn v 'b h n d -> b n (h d)' -> to_out.
// Rotary positions (0.11.1's rotary_emb argument; nn/rotary.h): angles for the queries [b, n, d]
// and for the keys [b, m, d] (every route) or [b, r, m, d] rotate q (after its score) and k
// (after its score, before the null key is prepended; the null key is not rotated). Scores are
// scalars per token, so the order of scaling and rotating does not matter.
// The null key is always attendable, so a row whose mask is all False is still finite.
// (0.4.8 builds this mask but never passes it on; it is applied here, as later releases and the
// golden fixtures do.)
//
// Parameters (the reference's state_dict keys): norm.gamma [dim], null_kv [2, h, d],
// to_q.weight [h d, dim], to_kv.weight [2 h d, dim], to_out.weight [dim, h d]; no biases.
#pragma once

#include <cstdint>
#include <memory>

#include "nn/layers.h"
#include "nn/module.h"

namespace colt5::nn {

// Softmax attention of q [..., i, d] over k, v [..., j, d] (leading dims broadcast as matmul's):
// softmax(masked_fill(q k^T * d^-0.5, ~mask, -max)) v, with mask bool broadcastable to
// [..., i, j] or undefined (= the reference's Attend without flash, dropout or causal mask).
Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask = Tensor());

// The rotary angles of Attention::forward (both defined, or both undefined: no rotation).
struct AttentionRotary {
  Tensor q;   // [b, n, d]
  Tensor kv;  // [b, m, d] or [b, r, m, d]
};

// Fields and defaults are the reference's keyword arguments.
struct AttentionOptions {
  int64_t dim = 0;  // required: >= 1
  int64_t dim_head = 64;
  int64_t heads = 8;
  bool multiply_keys_by_score = false;
  // The reference's fused-kernel switch, accepted for its API; it changes nothing here: the fused
  // attention op (online softmax, no [n, m] scores kept) runs whenever the device's kernel
  // supports the arguments (always on the CPU; float32 d in {32, 64, 128} and float64 on CUDA).
  bool use_flash = false;
};

class Attention : public Module {
public:
  // Parameters are created float32 on the CPU (Linear's init; null_kv ~ N(0, 1)), drawing from
  // `gen` or the default generator; convert with Module::to.
  explicit Attention(const AttentionOptions& opts, Generator* gen = nullptr);

  // Shapes in the file comment; optional pieces are undefined Tensors. Returns [b, n, dim].
  Tensor forward(const Tensor& x, const Tensor& context = Tensor(), const Tensor& mask = Tensor(),
                 const Tensor& normalized_scores_kv = Tensor(), const Tensor& normalized_scores_q = Tensor(),
                 const AttentionRotary& rotary = {}) const;
  Tensor operator()(const Tensor& x, const Tensor& context = Tensor(), const Tensor& mask = Tensor(),
                    const Tensor& normalized_scores_kv = Tensor(),
                    const Tensor& normalized_scores_q = Tensor()) const {
    return forward(x, context, mask, normalized_scores_kv, normalized_scores_q);
  }

  // Keys / values projected once per token, for a caller that routes many key sets out of one
  // sequence (ConditionalRoutedAutoregressiveAttention: a set per query window). Projection and
  // row gathering commute (each row is W * RMSNorm(row)), so
  //   forward(x, batched_gather(c, idx) [b, r, m, dim], ...)
  //     == forward_projected(x, rows idx of project_context(c, r) [b, r, m, hr 2d], ...)
  // with every row projected once instead of once per set that holds it.
  //   project_context(context [b, N, dim], r) -> [b, r, N, hr 2d]: RMSNorm, then route j's heads'
  //     keys and values (head-major; a head's key then its value) for every token;
  //   forward_projected(x [b, n, dim], kv [b, r, m, hr 2d], mask, scores...): forward with those
  //     keys / values (shapes of the other arguments as forward's, m = kv's dim 2).
  Tensor project_context(const Tensor& context, int64_t routes) const;
  Tensor forward_projected(const Tensor& x, const Tensor& kv, const Tensor& mask = Tensor(),
                           const Tensor& normalized_scores_kv = Tensor(), const Tensor& normalized_scores_q = Tensor(),
                           const AttentionRotary& rotary = {}) const;

  const AttentionOptions& options() const { return opts_; }

  std::shared_ptr<RMSNorm> norm;  // "norm": on x and on the context
  Tensor null_kv;                 // [2, h, d]: null key (0) and value (1) per head
  std::shared_ptr<Linear> to_q;   // "to_q": dim -> h d
  std::shared_ptr<Linear> to_kv;  // "to_kv": dim -> 2 h d (layout above)
  std::shared_ptr<Linear> to_out; // "to_out": h d -> dim

private:
  Tensor project(const Tensor& ctx, int64_t routes) const;
  void check_call(const Tensor& x, int64_t m, int64_t r, const Tensor& mask, const Tensor& normalized_scores_kv,
                  const Tensor& normalized_scores_q, const AttentionRotary& rotary, const char* who) const;
  Tensor attend_projected(const Tensor& xn, const Tensor& kv_rows, const Tensor& mask,
                          const Tensor& normalized_scores_kv, const Tensor& normalized_scores_q,
                          const AttentionRotary& rotary) const;
  AttentionOptions opts_;
};

}  // namespace colt5::nn
