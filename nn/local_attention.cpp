// LocalMHA (math and shapes in nn/local_attention.h); the windowed attention core is the
// local_attention op (autograd/ops/local_attention.cpp).
#include "nn/local_attention.h"

#include <cmath>

#include "autograd/ops.h"

namespace colt5::nn {

namespace {

// F.normalize(t, dim = -1) * g = t / max(||t||, 1e-12) * g, through the rms_norm op (which
// divides by the clamped norm and multiplies by sqrt(D) * gamma): gamma = g / sqrt(D).
Tensor l2norm_scaled(const Tensor& t, const Tensor& g) {
  const int64_t d = t.size(-1);
  return rms_norm(t, mul_scalar(g, 1.0 / std::sqrt(double(d))));
}

}  // namespace

// ---------------------------------------------------------------------------------------------

LocalAttentionOptions LocalMHAOptions::attention_options() const {
  LocalAttentionOptions o;
  o.window_size = window_size;
  o.causal = causal;
  o.look_backward = look_backward;
  o.look_forward = look_forward;
  o.shared_qk = shared_qk;
  o.autopad = true;
  o.exact_windowsize = exact_windowsize.value_or(true);
  if (qk_rmsnorm) o.scale = qk_scale;
  return o;
}

LocalMHA::LocalMHA(const LocalMHAOptions& opts, Generator* gen) : opts_(opts) {
  const char* who = "LocalMHA";
  COLT5_CHECK(opts.dim >= 1, who, ": option 'dim' expected >= 1, got ", opts.dim);
  COLT5_CHECK(opts.dim_head >= 1, who, ": option 'dim_head' expected >= 1, got ", opts.dim_head);
  COLT5_CHECK(opts.heads >= 1, who, ": option 'heads' expected >= 1, got ", opts.heads);
  COLT5_CHECK(opts.dropout == 0.0, who, ": option 'dropout' expected 0 (attention dropout is not supported), got ",
              opts.dropout);
  COLT5_CHECK(std::isfinite(opts.qk_scale) && opts.qk_scale > 0, who,
              ": option 'qk_scale' expected a finite value > 0, got ", opts.qk_scale);
  COLT5_CHECK(!opts.use_rotary_pos_emb || opts.dim_head % 2 == 0, who,
              ": option 'dim_head' expected an even value with use_rotary_pos_emb (rotary turns pairs), got ",
              opts.dim_head);
  COLT5_CHECK(!opts.use_xpos, who, ": option 'use_xpos' = true is not supported (xpos is not implemented)");
  attn_opts_ = opts.attention_options();
  validate(attn_opts_, who);

  const int64_t inner = opts.dim_head * opts.heads;
  if (opts.prenorm) norm = register_module("norm", std::make_shared<LayerNorm>(opts.dim));
  to_qkv = register_module("to_qkv", std::make_shared<Linear>(opts.dim, inner * 3, false, gen));
  if (opts.qk_rmsnorm) {
    q_scale = register_parameter("q_scale", ones({opts.dim_head}));
    k_scale = register_parameter("k_scale", ones({opts.dim_head}));
  }
  if (opts.use_rotary_pos_emb) attn_fn = register_module("attn_fn", std::make_shared<LocalAttentionPositions>(opts.dim_head));
  to_out = register_module("to_out", std::make_shared<Linear>(inner, opts.dim, false, gen));
}

Tensor LocalMHA::forward(const Tensor& x, const Tensor& mask) const {
  const char* who = "LocalMHA";
  COLT5_CHECK(x.defined(), who, ": argument 'x' is an undefined tensor");
  COLT5_CHECK(x.dim() == 3, who, ": argument 'x' expected rank 3 ([batch, n, ", opts_.dim, "]), got shape ",
              x.shape());
  check_layer_input(x, opts_.dim, to_qkv->weight, who);
  const int64_t b = x.size(0), n = x.size(1);
  if (mask.defined()) {
    check_dtype(mask, DType::Bool, who, "mask");
    COLT5_CHECK(mask.shape() == Shape({b, n}), who, ": argument 'mask' expected shape [", b, ", ", n,
                "] (x's batch and length), got ", mask.shape());
    check_same_device({x, mask}, who);
  }

  const int64_t h = opts_.heads, d = opts_.dim_head, inner = h * d;
  const Tensor xn = opts_.prenorm ? norm->forward(x) : x;
  const Tensor qkv = to_qkv->forward(xn);  // [b, n, 3 h d]
  Tensor q = qkv_heads(qkv, 0, h), k = qkv_heads(qkv, 1, h), v = qkv_heads(qkv, 2, h);
  if (opts_.qk_rmsnorm) {
    q = l2norm_scaled(q, q_scale);
    k = l2norm_scaled(k, k_scale);
  }
  if (attn_fn) {
    // Keys at their positions t, queries at t + lf w: the reference's in-frame offsets (header).
    const int64_t lf = attn_opts_.look_forward.value_or(opts_.causal ? 0 : 1);
    const RotaryEmbedding& rope = *attn_fn->rel_pos;
    q = apply_rotary(rope.angles(n, lf * opts_.window_size), q);
    k = apply_rotary(rope.angles(n, 0), k);
  }
  const Tensor out = local_attention(q, k, v, mask, attn_opts_);  // [b, h, n, d]
  return to_out->forward(out.permute({0, 2, 1, 3}).reshape({b, n, inner}));
}

}  // namespace colt5::nn
