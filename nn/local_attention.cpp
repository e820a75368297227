// Local windowed attention (math and shapes in nn/local_attention.h).
//
// Every step is a public differentiable op, so the backward is the chain of their rules:
//   out = softmax(masked_fill(bq bk^T, M, -max)) bv
//   d bv = attn^T g,  d attn = g bv^T,  d sim = attn * (d attn - rowsum(d attn * attn)) (softmax),
//   masked entries get no gradient (masked_fill), look-around / bucketing / padding route the
//   gradients back to the positions they copied (pad / cat / narrow backward).
// The static mask M (outside the sequence, causal, exact window) depends only on sizes; it is
// built with arange / comparisons on the inputs' device, in float64 positions (exact integers).
#include "nn/local_attention.h"

#include <cmath>
#include <limits>

#include "autograd/ops.h"

namespace colt5::nn {

namespace {

// The most negative finite value of x's dtype (-torch.finfo(dtype).max).
double max_neg_value(DType dtype) {
  return dtype == DType::Float64 ? -std::numeric_limits<double>::max()
                                 : -double(std::numeric_limits<float>::max());
}

// look_around: x [N, W, w, ...] -> [N, W, (lb + 1 + lf) * w, ...]. Window i gets the windows
// i - lb, ..., i + lf concatenated along dim 2; windows outside [0, W) are filled with `value`.
Tensor look_around(const Tensor& x, int64_t lb, int64_t lf, double value) {
  const int64_t windows = x.size(1);
  Shape pads;
  for (int64_t d = 2; d < x.dim(); ++d) pads.insert(pads.end(), {0, 0});
  pads.insert(pads.end(), {lb, lf});  // the windows dim (dim 1)
  const Tensor padded = (lb == 0 && lf == 0) ? x : pad(x, pads, value);
  if (lb + lf == 0) return padded;
  TensorList parts;
  for (int64_t i = 0; i <= lb + lf; ++i) parts.push_back(padded.narrow(1, i, windows));
  return cat(parts, 2);
}

// F.normalize(t, dim = -1) = t / max(||t||, 1e-12), through the rms_norm op (which divides by
// the clamped norm and multiplies by sqrt(D) * gamma): gamma = g / sqrt(D).
Tensor l2norm_scaled(const Tensor& t, const Tensor& g) {
  const int64_t d = t.size(-1);
  return rms_norm(t, mul_scalar(g, 1.0 / std::sqrt(double(d))));
}

}  // namespace

// ---------------------------------------------------------------------------------------------

void validate(const LocalAttentionOptions& o, const char* who) {
  COLT5_CHECK(o.window_size >= 1, who, ": option 'window_size' expected >= 1, got ", o.window_size);
  COLT5_CHECK(o.look_backward >= 0, who, ": option 'look_backward' expected >= 0, got ", o.look_backward);
  const int64_t lf = o.resolved_look_forward();
  COLT5_CHECK(lf >= 0, who, ": option 'look_forward' expected >= 0, got ", lf);
  COLT5_CHECK(!(o.causal && lf > 0), who, ": option 'look_forward' must be 0 when causal (you cannot look forward if ",
              "causal), got ", lf);
  if (o.scale)
    COLT5_CHECK(std::isfinite(*o.scale) && *o.scale > 0, who, ": option 'scale' expected a finite value > 0, got ",
                *o.scale);
}

Tensor local_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                       const LocalAttentionOptions& opts) {
  const char* op = "local_attention";
  validate(opts, op);
  COLT5_CHECK(q.defined(), op, ": argument 'q' is an undefined tensor");
  COLT5_CHECK(k.defined(), op, ": argument 'k' is an undefined tensor");
  COLT5_CHECK(v.defined(), op, ": argument 'v' is an undefined tensor");
  COLT5_CHECK(q.dim() >= 2, op, ": argument 'q' expected rank >= 2 ([..., n, d]), got shape ", q.shape());
  check_floating(q, op, "q");
  check_same_dtype(q, k, op, "q", "k");
  check_same_dtype(q, v, op, "q", "v");
  check_same_device({q, k, v, mask}, op);
  COLT5_CHECK(k.shape() == q.shape(), op, ": argument 'k' expected shape ", q.shape(), " (q's), got ", k.shape());
  COLT5_CHECK(v.shape() == q.shape(), op, ": argument 'v' expected shape ", q.shape(), " (q's), got ", v.shape());

  const Shape& qs = q.shape();
  const int64_t n = qs[qs.size() - 2], d = qs.back();
  const Shape lead(qs.begin(), qs.end() - 2);
  const int64_t B = numel(lead);
  const int64_t w = opts.window_size, lb = opts.look_backward, lf = opts.resolved_look_forward();
  COLT5_CHECK(opts.autopad || n % w == 0, op, ": argument 'q' has sequence length ", n,
              ", expected a multiple of window_size ", w, " (or autopad)");

  if (mask.defined()) {
    check_dtype(mask, DType::Bool, op, "mask");
    COLT5_CHECK(mask.dim() == 2 && mask.size(1) == n && mask.size(0) >= 1 && B % mask.size(0) == 0, op,
                ": argument 'mask' expected shape [b, ", n, "] with b dividing the merged batch ", B, ", got ",
                mask.shape());
  }

  const int64_t n_pad = (n + w - 1) / w * w;
  const int64_t W = n_pad / w, J = (lb + 1 + lf) * w;
  const Device dev = q.device();
  const DType dt = q.dtype();
  if (B == 0 || n == 0 || d == 0) return zeros(qs, dt, dev);

  // [B, n_pad, d], zero-padded past n (autopad).
  auto prepare = [&](const Tensor& t) {
    Tensor t3 = t.reshape({B, n, d});
    return n_pad == n ? t3 : pad(t3, {0, 0, 0, n_pad - n}, 0.0);
  };
  Tensor q3 = prepare(q), k3 = prepare(k), v3 = prepare(v);
  const double scale = opts.scale.value_or(1.0 / std::sqrt(double(d)));
  if (opts.shared_qk) k3 = l2norm_scaled(k3, ones({d}, dt, dev));

  // bucket into windows; keys / values look around (filler -1, as the reference)
  const Tensor bq = mul_scalar(q3.reshape({B, W, w, d}), scale);        // [B, W, w, d]
  const Tensor bk = look_around(k3.reshape({B, W, w, d}), lb, lf, -1.0);  // [B, W, J, d]
  const Tensor bv = look_around(v3.reshape({B, W, w, d}), lb, lf, -1.0);  // [B, W, J, d]

  Tensor sim = matmul(bq, bk.transpose(-1, -2));  // [B, W, w, J]

  // positions: query t_q [1, W, w, 1], key t_k [1, W, 1, J] (-1 outside the sequence)
  const Tensor bt = arange(0.0, double(n_pad), 1.0, DType::Float64, dev).reshape({1, W, w});
  const Tensor tq = bt.unsqueeze(3);
  const Tensor tk = look_around(bt, lb, lf, -1.0).unsqueeze(2);
  const double back = double(w * lb), fwd = double(w * lf);

  if (opts.shared_qk) sim = masked_fill(sim, eq(tq, tk), -5e4);  // a token does not attend to itself

  Tensor fill = eq(tk, -1.0);  // [1, W, 1, J]: outside the sequence
  if (opts.causal) {
    Tensor causal = lt(tq, tk);
    if (opts.exact_windowsize) causal = logical_or(causal, gt(tq, add_scalar(tk, back)));
    fill = logical_or(fill, causal);
  } else if (opts.exact_windowsize) {
    fill = logical_or(fill, logical_or(gt(add_scalar(tk, -fwd), tq), gt(tq, add_scalar(tk, back))));
  }
  fill = fill.expand({1, W, w, J});

  const double neg = max_neg_value(dt);
  if (mask.defined()) {
    // key padding mask: [b, n] -> padded with False -> windows -> look-around (False outside)
    const int64_t b = mask.size(0), H = B / b;
    Tensor km = n_pad == n ? mask : pad(mask, {0, n_pad - n}, 0.0);
    km = look_around(km.reshape({b, W, w}), lb, lf, 0.0).reshape({b, 1, W, 1, J});
    const Tensor full_fill = logical_or(fill, logical_not(km));  // [b, 1, W, w, J]
    sim = masked_fill(sim.reshape({b, H, W, w, J}), full_fill, neg).reshape({B, W, w, J});
  } else {
    sim = masked_fill(sim, fill, neg);
  }

  const Tensor attn = softmax(sim, -1);                        // [B, W, w, J]
  Tensor out = matmul(attn, bv).reshape({B, n_pad, d});        // [B, n_pad, d]
  if (n_pad != n) out = out.narrow(1, 0, n);
  Shape out_shape = lead;
  out_shape.insert(out_shape.end(), {n, d});
  return out.reshape(out_shape);
}

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
  COLT5_CHECK(!opts.use_rotary_pos_emb, who,
              ": option 'use_rotary_pos_emb' = true is not supported (rotary embeddings are not implemented)");
  COLT5_CHECK(!opts.use_xpos, who, ": option 'use_xpos' = true is not supported (needs rotary embeddings)");
  attn_opts_ = opts.attention_options();
  validate(attn_opts_, who);

  const int64_t inner = opts.dim_head * opts.heads;
  if (opts.prenorm) norm = register_module("norm", std::make_shared<LayerNorm>(opts.dim));
  to_qkv = register_module("to_qkv", std::make_shared<Linear>(opts.dim, inner * 3, false, gen));
  if (opts.qk_rmsnorm) {
    q_scale = register_parameter("q_scale", ones({opts.dim_head}));
    k_scale = register_parameter("k_scale", ones({opts.dim_head}));
  }
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
  // chunk i of the last dim, 'b n (h d) -> b h n d'
  auto heads_of = [&](int64_t i) {
    return qkv.narrow(2, i * inner, inner).reshape({b, n, h, d}).permute({0, 2, 1, 3});
  };
  Tensor q = heads_of(0), k = heads_of(1), v = heads_of(2);
  if (opts_.qk_rmsnorm) {
    q = l2norm_scaled(q, q_scale);
    k = l2norm_scaled(k, k_scale);
  }
  const Tensor out = local_attention(q, k, v, mask, attn_opts_);  // [b, h, n, d]
  return to_out->forward(out.permute({0, 2, 1, 3}).reshape({b, n, inner}));
}

}  // namespace colt5::nn
