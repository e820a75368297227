// Differentiable local (windowed) attention (math in core/ops/attention.h and nn/local_attention.h).
//
// local_attention() runs the fused op (ops::local_attention, one graph node whose backward is
// ops::local_attention_backward) when the device's `supports` slot accepts the arguments, and
// local_attention_composed() otherwise. The composed version is built from public
// differentiable ops, so its backward is the chain of their rules:
//   out = softmax(masked_fill(bq bk^T, M, -max)) bv
//   d bv = attn^T g,  d attn = g bv^T,  d sim = attn * (d attn - rowsum(d attn * attn)) (softmax),
//   masked entries get no gradient (masked_fill), look-around / bucketing / padding route the
//   gradients back to the positions they copied (pad / cat / narrow backward).
// The static mask M (outside the sequence, causal, exact window) depends only on sizes; it is
// built with arange / comparisons on the inputs' device, in float64 positions (exact integers).
// It is the oracle of the fused kernels' tests.
#include <cmath>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/ops/attention.h"

namespace colt5 {

using autograd::record;

namespace {

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

// The checks shared by the fused and composed paths; returns the merged batch B.
int64_t check_args(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                   const LocalAttentionOptions& opts, const char* op) {
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
  const int64_t n = qs[qs.size() - 2];
  const int64_t B = numel(Shape(qs.begin(), qs.end() - 2));
  const int64_t w = opts.window_size;
  COLT5_CHECK(opts.autopad || n % w == 0, op, ": argument 'q' has sequence length ", n,
              ", expected a multiple of window_size ", w, " (or autopad)");
  if (mask.defined()) {
    check_dtype(mask, DType::Bool, op, "mask");
    COLT5_CHECK(mask.dim() == 2 && mask.size(1) == n && mask.size(0) >= 1 && B % mask.size(0) == 0, op,
                ": argument 'mask' expected shape [b, ", n, "] with b dividing the merged batch ", B, ", got ",
                mask.shape());
  }
  return B;
}

}  // namespace

Tensor local_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                       const LocalAttentionOptions& opts) {
  const char* op = "local_attention";
  const int64_t B = check_args(q, k, v, mask, opts, op);
  const Shape& qs = q.shape();
  const int64_t n = qs[qs.size() - 2], d = qs.back();
  if (B == 0 || n == 0 || d == 0) return zeros(qs, q.dtype(), q.device());

  LocalAttentionInputs in;
  in.q = q.reshape({B, n, d});
  in.k = k.reshape({B, n, d});
  in.v = v.reshape({B, n, d});
  if (opts.shared_qk) in.k = l2norm(in.k);
  in.mask = mask;
  in.opts = opts;
  in.scale = opts.scale.value_or(1.0 / std::sqrt(double(d)));
  if (!kernels::local_attention_supports(q.device())(in)) return local_attention_composed(q, k, v, mask, opts);

  const Tensor q3 = in.q, k3 = in.k, v3 = in.v;  // the graph inputs
  in.q = q3.detach();
  in.k = k3.detach();
  in.v = v3.detach();
  ops::AttentionResult r = ops::local_attention(in);
  Tensor out = r.out;
  if (autograd::any_requires_grad({q3, k3, v3})) {
    const bool need[3] = {q3.requires_grad(), k3.requires_grad(), v3.requires_grad()};
    // out saved detached: r.out itself becomes the node's output, and a node that held its own
    // output would keep itself alive (a reference cycle).
    ops::AttentionResult saved{r.out.detach(), r.lse};
    out = record("local_attention", r.out, {q3, k3, v3}, [=](const Tensor& g) -> TensorList {
      LocalAttentionGrads gr = ops::local_attention_backward(in, saved, g, need);
      return {gr.dq, gr.dk, gr.dv};
    });
  }
  return out.reshape(qs);
}

Tensor local_attention_composed(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                const LocalAttentionOptions& opts) {
  const char* op = "local_attention";
  const int64_t B = check_args(q, k, v, mask, opts, op);
  const Shape& qs = q.shape();
  const int64_t n = qs[qs.size() - 2], d = qs.back();
  const Shape lead(qs.begin(), qs.end() - 2);
  const int64_t w = opts.window_size, lb = opts.look_backward, lf = opts.resolved_look_forward();

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
  if (opts.shared_qk) k3 = l2norm(k3);

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

  const Tensor attn = softmax(sim, -1);                  // [B, W, w, J]
  Tensor out = matmul(attn, bv).reshape({B, n_pad, d});  // [B, n_pad, d]
  if (n_pad != n) out = out.narrow(1, 0, n);
  Shape out_shape = lead;
  out_shape.insert(out_shape.end(), {n, d});
  return out.reshape(out_shape);
}

}  // namespace colt5
