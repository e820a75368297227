// Raw heavy attention (math and shapes in core/ops/attention.h): validation naming every
// argument, bringing the inputs into the kernels' contiguous layout, output / gradient
// allocation, dispatch. The kernels may assume b, h, n, d >= 1 and m + (null key) >= 1; empty
// batches / query sets are handled here (zero gradients).
#include "core/ops/attention.h"

#include <cmath>
#include <limits>

#include "core/ops/copy.h"

namespace colt5 {

double max_neg_value(DType dtype) {
  return dtype == DType::Float64 ? -std::numeric_limits<double>::max() : -double(std::numeric_limits<float>::max());
}

namespace {

// A floating tensor of q's dtype and device, `name` in messages.
void check_like_q(const Tensor& t, const Tensor& q, const char* who, const char* name) {
  check_floating(t, who, name);
  COLT5_CHECK(t.dtype() == q.dtype(), who, ": argument '", name, "' expected dtype ", dtype_name(q.dtype()),
              " (q's), got ", dtype_name(t.dtype()));
  COLT5_CHECK(t.device() == q.device(), who, ": argument '", name, "' expected device ", q.device(), " (q's), got ",
              t.device());
}

Tensor maybe_contiguous(const Tensor& t) { return t.defined() ? ops::contiguous(t) : t; }

AttentionInputs contiguous_inputs(const AttentionInputs& in) {
  AttentionInputs c = in;
  c.q = ops::contiguous(in.q);
  c.k = ops::contiguous(in.k);
  c.v = ops::contiguous(in.v);
  c.null_k = maybe_contiguous(in.null_k);
  c.null_v = maybe_contiguous(in.null_v);
  c.mask = maybe_contiguous(in.mask);
  c.score_kv = maybe_contiguous(in.score_kv);
  c.score_q = maybe_contiguous(in.score_q);
  return c;
}

}  // namespace

void validate(const AttentionInputs& in, const char* who) {
  COLT5_CHECK(in.q.defined(), who, ": argument 'q' is undefined");
  COLT5_CHECK(in.k.defined(), who, ": argument 'k' is undefined");
  COLT5_CHECK(in.v.defined(), who, ": argument 'v' is undefined");
  check_floating(in.q, who, "q");
  COLT5_CHECK(in.q.dim() == 4, who, ": argument 'q' expected rank 4 ([b, h, n, d]), got shape ", in.q.shape());
  const int64_t b = in.q.size(0), h = in.q.size(1), n = in.q.size(2), d = in.q.size(3);
  COLT5_CHECK(h >= 1, who, ": argument 'q' expected at least one head (dim 1), got shape ", in.q.shape());
  COLT5_CHECK(d >= 1, who, ": argument 'q' expected a head dim (dim 3) >= 1, got shape ", in.q.shape());
  check_like_q(in.k, in.q, who, "k");
  check_like_q(in.v, in.q, who, "v");
  COLT5_CHECK(in.k.dim() == 4 && in.k.size(0) == b && in.k.size(1) == h && in.k.size(3) == d, who,
              ": argument 'k' expected shape [", b, ", ", h, ", m, ", d, "] (q's batch, heads and head dim), got ",
              in.k.shape());
  const int64_t m = in.k.size(2);
  COLT5_CHECK(in.v.shape() == in.k.shape(), who, ": argument 'v' expected shape ", in.k.shape(), " (k's), got ",
              in.v.shape());
  COLT5_CHECK(in.null_k.defined() == in.null_v.defined(), who, ": arguments 'null_k' and 'null_v' must be both ",
              "defined or both undefined, got ", in.null_k.defined() ? "null_k only" : "null_v only");
  const bool has_null = in.null_k.defined();
  if (has_null) {
    check_like_q(in.null_k, in.q, who, "null_k");
    check_like_q(in.null_v, in.q, who, "null_v");
    COLT5_CHECK(in.null_k.shape() == Shape({h, d}), who, ": argument 'null_k' expected shape [", h, ", ", d,
                "] (heads, head dim), got ", in.null_k.shape());
    COLT5_CHECK(in.null_v.shape() == Shape({h, d}), who, ": argument 'null_v' expected shape [", h, ", ", d,
                "] (heads, head dim), got ", in.null_v.shape());
  }
  COLT5_CHECK(m >= 1 || has_null, who, ": argument 'k' expected at least one key (dim 2) when there is no null key, ",
              "got shape ", in.k.shape());
  const int64_t r = in.routes;
  COLT5_CHECK(r >= 1 && h % r == 0, who, ": argument 'routes' expected a divisor of heads = ", h, ", got ", r);
  COLT5_CHECK(std::isfinite(in.scale), who, ": argument 'scale' expected a finite value, got ", in.scale);
  if (in.mask.defined()) {
    check_dtype(in.mask, DType::Bool, who, "mask");
    COLT5_CHECK(in.mask.device() == in.q.device(), who, ": argument 'mask' expected device ", in.q.device(),
                " (q's), got ", in.mask.device());
    COLT5_CHECK(in.mask.shape() == Shape({b, r, m}), who, ": argument 'mask' expected shape [", b, ", ", r, ", ", m,
                "] (batch, routes, keys), got ", in.mask.shape());
  }
  if (in.score_kv.defined()) {
    check_like_q(in.score_kv, in.q, who, "score_kv");
    COLT5_CHECK(in.score_kv.shape() == Shape({b, r, m}), who, ": argument 'score_kv' expected shape [", b, ", ", r,
                ", ", m, "] (batch, routes, keys), got ", in.score_kv.shape());
  }
  if (in.score_q.defined()) {
    check_like_q(in.score_q, in.q, who, "score_q");
    COLT5_CHECK(in.score_q.shape() == Shape({b, n}), who, ": argument 'score_q' expected shape [", b, ", ", n,
                "] (batch, queries), got ", in.score_q.shape());
  }
}

namespace ops {

AttentionResult attention(const AttentionInputs& in) {
  validate(in, "attention");
  const Tensor& q = in.q;
  AttentionResult res;
  res.out = Tensor::empty(q.shape(), q.dtype(), q.device());
  res.lse = Tensor::empty({q.size(0), q.size(1), q.size(2)}, q.dtype(), q.device());
  if (res.out.numel() == 0) return res;  // no batch or no queries
  const AttentionInputs c = contiguous_inputs(in);
  kernels::attention_forward(q.device())(c, res.out, res.lse);
  return res;
}

AttentionGrads attention_backward(const AttentionInputs& in, const AttentionResult& fwd, const Tensor& g,
                                  const bool need[7]) {
  const char* op = "attention_backward";
  validate(in, op);
  const Tensor& q = in.q;
  const Shape lse_shape{q.size(0), q.size(1), q.size(2)};
  COLT5_CHECK(fwd.out.defined() && fwd.out.shape() == q.shape() && fwd.out.dtype() == q.dtype() &&
                  fwd.out.device() == q.device(),
              op, ": argument 'out' expected shape ", q.shape(), " of q's dtype and device");
  COLT5_CHECK(fwd.lse.defined() && fwd.lse.shape() == lse_shape && fwd.lse.dtype() == q.dtype() &&
                  fwd.lse.device() == q.device(),
              op, ": argument 'lse' expected shape ", lse_shape, " of q's dtype and device");
  COLT5_CHECK(g.defined(), op, ": argument 'g' is undefined");
  check_like_q(g, q, op, "g");
  COLT5_CHECK(g.shape() == q.shape(), op, ": argument 'g' expected shape ", q.shape(), " (out's), got ", g.shape());

  AttentionGrads gr;
  auto alloc = [&](bool want, const Tensor& like) {
    return want && like.defined() ? Tensor::empty(like.shape(), like.dtype(), like.device()) : Tensor();
  };
  gr.dq = alloc(need[0], in.q);
  gr.dk = alloc(need[1], in.k);
  gr.dv = alloc(need[2], in.v);
  gr.dnull_k = alloc(need[3], in.null_k);
  gr.dnull_v = alloc(need[4], in.null_v);
  gr.dscore_kv = alloc(need[5], in.score_kv);
  gr.dscore_q = alloc(need[6], in.score_q);
  if (q.numel() == 0) {  // no batch or no queries: every gradient is an empty sum
    for (Tensor* t : {&gr.dq, &gr.dk, &gr.dv, &gr.dnull_k, &gr.dnull_v, &gr.dscore_kv, &gr.dscore_q})
      if (t->defined()) fill_(*t, 0.0);
    return gr;
  }
  const bool any = gr.dq.defined() || gr.dk.defined() || gr.dv.defined() || gr.dnull_k.defined() ||
                   gr.dnull_v.defined() || gr.dscore_kv.defined() || gr.dscore_q.defined();
  if (!any) return gr;
  const AttentionInputs c = contiguous_inputs(in);
  kernels::attention_backward(q.device())(c, contiguous(fwd.out), contiguous(fwd.lse), contiguous(g), gr);
  return gr;
}

}  // namespace ops
}  // namespace colt5
