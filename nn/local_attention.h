// Local (windowed) attention: local-attention's LocalAttention core and its LocalMHA wrapper,
// the light attention branch of CoLT5.
//
// Dims legend
//   b  batch             n  sequence length        dim  model width
//   h  heads             d  dim_head               B    b * h (heads merged into the batch)
//   w  window_size       W  number of windows = ceil(n / w) (after autopad)
//   lb look_backward     lf look_forward           J    (lb + 1 + lf) * w keys seen by a window
//
// The core, for queries / keys / values [B, n, d]:
//   1. autopad: n is padded with zeros up to a multiple of w (the padded queries are cut off at
//      the end; the padded keys are masked out by the key padding mask, padded with False).
//   2. bucket: q, k, v -> [B, W, w, d]; q is multiplied by scale (default d^-0.5).
//   3. look-around: window i sees the windows i - lb .. i + lf, concatenated along the key axis:
//      keys [B, W, J, d]. Windows before the first / after the last are filled with the value
//      -1 (keys, values and their positions alike).
//   4. sim = q k^T [B, W, w, J]; masked_fill with -finfo(dtype).max where
//        the key position is -1 (outside the sequence);
//        causal:  key after query (t_q < t_k), and with exact_windowsize also t_q > t_k + w*lb;
//        non-causal with exact_windowsize: t_k - w*lf > t_q or t_q > t_k + w*lb;
//        the key padding mask is False at the key (queries are not masked).
//      (shared_qk first sets each query's own key to -5e4, and normalises k.)
//   5. attn = softmax(sim), out = attn v, un-bucketed and cut to n.
// A query whose every key is masked gets sim = -max everywhere, hence a uniform softmax over all
// J slots (the -1 fillers included), exactly as the reference: finite, never NaN.
//
// LocalMHA (x [b, n, dim], mask [b, n] bool, True = keep):
//   x' = LayerNorm(x) (prenorm)  ->  q | k | v = to_qkv(x') split in three, each 'b n (h d) -> b h n d'
//   (qk_rmsnorm: q, k l2-normalised and scaled by the learned q_scale / k_scale, scale = qk_scale)
//   (use_rotary_pos_emb: q and k rotated, see below) -> the core with heads merged into the batch
//   -> 'b h n d -> b n (h d)' -> to_out.
// Rotary positions (nn/rotary.h). local-attention rotates inside each window's frame of
// J = (lb + 1 + lf) w keys: key slot j at angle j F, and the w queries as the frame's LAST w
// slots, J - w + i (for causal attention that is the query window; for look_forward > 0 it is a
// fixed shift). Only offsets matter (R(a)^T R(b) = R(b - a)): for a query at sequence position
// t_q and a key at t_k the frame offset is
//   (t_k - (W_q - lb) w) - (J - w + t_q - W_q w) = t_k - t_q - lf w,
// the same in every window, so rotating every query once at t_q + lf w and every key at t_k,
// before the fused core, gives the reference's scores (to rounding) with no per-window copy.
// (The -1 fillers outside the sequence, which the reference also rotates, are masked.)
// xpos (a per-frame decaying scale on top of the rotation) is not implemented.
// Parameters (the reference's state_dict keys): norm.weight, norm.bias (prenorm), to_qkv.weight
// [3 h d, dim], q_scale, k_scale [d] (qk_rmsnorm), attn_fn.rel_pos.inv_freq [d / 2] (a buffer;
// use_rotary_pos_emb), to_out.weight [dim, h d]; no biases.
//
// The core is the local_attention op: a fused kernel (CPU, CUDA) with its own backward, or the
// composed version built from public differentiable ops where the kernel does not apply.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "autograd/ops/attention.h"
#include "nn/layers.h"
#include "nn/module.h"
#include "nn/rotary.h"

namespace colt5::nn {

// ---------------------------------------------------------------------------------------------
// The windowed attention core (local-attention's LocalAttention without rotary embeddings and
// dropout) is the op colt5::local_attention (autograd/ops/attention.h: a fused kernel where the
// device has one, else the composed version); its options are colt5::LocalAttentionOptions
// (core/ops/attention.h), whose fields and defaults are the reference's keyword arguments.
// q, k, v [..., n, d] (same shape; the leading dims are merged into B), mask [b, n] bool or
// undefined, with B divisible by b: mask row i serves the rows i*(B/b) .. (i+1)*(B/b) - 1 of the
// merged batch (as [b, h, n, d] merges). Returns [..., n, d].
using colt5::LocalAttentionOptions;
using colt5::local_attention;
using colt5::validate;

// ---------------------------------------------------------------------------------------------
// LocalMHA. Fields and defaults are the reference's keyword arguments (LocalMHA's own, then
// the ones it forwards to LocalAttention). CoLT5 0.4.8 builds its light branch as
//   non-causal: {dim, dim_head, heads, window_size = light_window_size / 2, prenorm = true,
//                causal = false, use_rotary_pos_emb = false, look_backward = 1, look_forward = 1}
//   autoregressive: {dim, dim_head, heads, window_size = light_window_size, prenorm = true,
//                causal = true, exact_windowsize = false, use_rotary_pos_emb = false}
struct LocalMHAOptions {
  int64_t dim = 0;          // required: >= 1
  int64_t window_size = 0;  // required: >= 1
  int64_t dim_head = 64;
  int64_t heads = 8;
  double dropout = 0.0;     // attention dropout; only 0 is supported (deterministic library)
  bool causal = false;
  bool prenorm = false;     // LayerNorm(dim) on the input ("norm.weight", "norm.bias")
  bool qk_rmsnorm = false;  // l2-normalise q and k, learned q_scale / k_scale, scale = qk_scale
  double qk_scale = 8.0;
  bool use_xpos = false;                                 // not supported (xpos is not implemented)
  std::optional<double> xpos_scale_base = std::nullopt;  // only meaningful with use_xpos
  std::optional<bool> exact_windowsize = std::nullopt;   // default (nullopt): true, LocalMHA's default
  // forwarded to LocalAttention
  int64_t look_backward = 1;
  std::optional<int64_t> look_forward = std::nullopt;  // default (nullopt): 0 if causal else 1
  bool shared_qk = false;
  // Rotary positions on q and k (dim_head even). The reference's LocalAttention defaults this to
  // True, but CoLT5 always passes False for its light branch, so false is the default here.
  bool use_rotary_pos_emb = false;

  // The core's options as LocalMHA builds them (autopad on, scale = qk_scale with qk_rmsnorm).
  LocalAttentionOptions attention_options() const;
};

// local-attention keeps the rotary frequencies at LocalMHA.attn_fn.rel_pos; this module holds
// them under that name, so that state_dict keys are the reference's.
class LocalAttentionPositions : public Module {
public:
  explicit LocalAttentionPositions(int64_t dim_head) {
    rel_pos = register_module("rel_pos", std::make_shared<RotaryEmbedding>(dim_head));
  }
  std::shared_ptr<RotaryEmbedding> rel_pos;  // "rel_pos"
};

class LocalMHA : public Module {
public:
  // Parameters are created float32 on the CPU (Linear's init, drawing from `gen` or the default
  // generator); convert with Module::to.
  explicit LocalMHA(const LocalMHAOptions& opts, Generator* gen = nullptr);

  // x [b, n, dim], mask [b, n] bool (True = keep) or undefined -> [b, n, dim].
  Tensor forward(const Tensor& x, const Tensor& mask = Tensor()) const;
  Tensor operator()(const Tensor& x, const Tensor& mask = Tensor()) const { return forward(x, mask); }

  const LocalMHAOptions& options() const { return opts_; }

  std::shared_ptr<LayerNorm> norm;  // "norm" (prenorm only)
  std::shared_ptr<Linear> to_qkv;   // "to_qkv": dim -> 3 h d, no bias
  Tensor q_scale, k_scale;          // [d] ones (qk_rmsnorm only)
  std::shared_ptr<LocalAttentionPositions> attn_fn;  // "attn_fn" (use_rotary_pos_emb only)
  std::shared_ptr<Linear> to_out;   // "to_out": h d -> dim, no bias

private:
  LocalMHAOptions opts_;
  LocalAttentionOptions attn_opts_;
};

}  // namespace colt5::nn
