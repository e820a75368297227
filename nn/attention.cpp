// Heavy attention (math and shapes in nn/attention.h).
//
// Built from public differentiable ops; the backward is the chain of their rules:
//   out = softmax(S) V with S = masked_fill(Q K^T * s, ~M, -max):
//   dV = A^T G,  dA = G V^T,  dS = A * (dA - rowsum(dA * A)),  dQ = s dS K,  dK = s dS^T Q;
//   masked keys get no gradient; the scores multiply values / keys / queries, so their gradients
//   are the sums of (d value * value) etc. over the head dims (mul's broadcast backward).
// Attention::forward hands q, k, v, the null key / value, the per-route mask and scores to the
// fused `attention` op (autograd/ops/attention.h), which runs the device's fused kernel when it
// supports the arguments and the same math composed from these ops otherwise; `attend` (the
// plain dense form) is kept for tests and benchmarks.
#include "nn/attention.h"
#include "nn/rotary.h"

#include <cmath>
#include <limits>

#include "autograd/ops.h"

namespace colt5::nn {

namespace {

// A floating tensor of x's dtype and device, `name` in messages.
void check_like(const Tensor& t, const Tensor& x, const char* who, const char* name) {
  check_floating(t, who, name);
  COLT5_CHECK(t.dtype() == x.dtype(), who, ": argument '", name, "' expected dtype ", dtype_name(x.dtype()),
              " (x's), got ", dtype_name(t.dtype()));
  COLT5_CHECK(t.device() == x.device(), who, ": argument '", name, "' expected device ", x.device(),
              " (x's), got ", t.device());
}

}  // namespace

Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask) {
  const char* op = "attend";
  COLT5_CHECK(q.defined() && k.defined() && v.defined(), op, ": arguments 'q', 'k', 'v' must be defined");
  COLT5_CHECK(q.dim() >= 2, op, ": argument 'q' expected rank >= 2 ([..., i, d]), got shape ", q.shape());
  COLT5_CHECK(k.dim() >= 2, op, ": argument 'k' expected rank >= 2 ([..., j, d]), got shape ", k.shape());
  COLT5_CHECK(v.dim() >= 2, op, ": argument 'v' expected rank >= 2 ([..., j, d]), got shape ", v.shape());
  check_floating(q, op, "q");
  check_same_dtype(q, k, op, "q", "k");
  check_same_dtype(q, v, op, "q", "v");
  check_same_device({q, k, v, mask}, op);
  COLT5_CHECK(k.size(-1) == q.size(-1), op, ": argument 'k' expected last dim ", q.size(-1), " (q's), got ",
              k.size(-1));
  COLT5_CHECK(v.size(-2) == k.size(-2), op, ": argument 'v' expected ", k.size(-2), " keys (dim -2, k's), got ",
              v.size(-2));
  const double scale = 1.0 / std::sqrt(double(q.size(-1)));
  Tensor sim = mul_scalar(matmul(q, k.transpose(-1, -2)), scale);  // [..., i, j]
  if (mask.defined()) {
    check_dtype(mask, DType::Bool, op, "mask");
    sim = masked_fill(sim, logical_not(mask), max_neg_value(sim.dtype()));
  }
  return matmul(softmax(sim, -1), v);  // [..., i, d]
}

// ---------------------------------------------------------------------------------------------

Attention::Attention(const AttentionOptions& opts, Generator* gen) : opts_(opts) {
  const char* who = "Attention";
  COLT5_CHECK(opts.dim >= 1, who, ": option 'dim' expected >= 1, got ", opts.dim);
  COLT5_CHECK(opts.dim_head >= 1, who, ": option 'dim_head' expected >= 1, got ", opts.dim_head);
  COLT5_CHECK(opts.heads >= 1, who, ": option 'heads' expected >= 1, got ", opts.heads);
  const int64_t hidden = opts.dim_head * opts.heads;
  norm = register_module("norm", std::make_shared<RMSNorm>(opts.dim));
  {
    NoGradGuard ng;
    null_kv = register_parameter(
        "null_kv", randn({2, opts.heads, opts.dim_head}, DType::Float32, kCPU, gen ? gen : &default_generator()));
  }
  to_q = register_module("to_q", std::make_shared<Linear>(opts.dim, hidden, false, gen));
  to_kv = register_module("to_kv", std::make_shared<Linear>(opts.dim, hidden * 2, false, gen));
  to_out = register_module("to_out", std::make_shared<Linear>(hidden, opts.dim, false, gen));
}

Tensor Attention::forward(const Tensor& x, const Tensor& context, const Tensor& mask,
                          const Tensor& normalized_scores_kv, const Tensor& normalized_scores_q,
                          const AttentionRotary& rotary) const {
  const char* who = "Attention";
  const int64_t h = opts_.heads, dim = opts_.dim;
  COLT5_CHECK(x.defined(), who, ": argument 'x' is an undefined tensor");
  COLT5_CHECK(x.dim() == 3, who, ": argument 'x' expected rank 3 ([batch, n, ", dim, "]), got shape ", x.shape());
  check_layer_input(x, dim, to_q->weight, who);
  const int64_t b = x.size(0), n = x.size(1);
  int64_t r = 1, m = n;
  if (context.defined()) {
    COLT5_CHECK(context.dim() == 3 || context.dim() == 4, who,
                ": argument 'context' expected rank 3 ([batch, m, ", dim, "]) or 4 ([batch, routes, m, ", dim,
                "]), got shape ", context.shape());
    check_like(context, x, who, "context");
    COLT5_CHECK(context.size(0) == b, who, ": argument 'context' expected batch ", b, " (x's), got shape ",
                context.shape());
    COLT5_CHECK(context.size(-1) == dim, who, ": argument 'context' expected last dim ", dim, ", got shape ",
                context.shape());
    if (context.dim() == 4) r = context.size(1);
    m = context.size(-2);
  }
  COLT5_CHECK(r >= 1 && h % r == 0, who, ": argument 'context' has ", r,
              " key/value routes (dim 1), expected a divisor of heads = ", h,
              " (heads are split evenly between the routes)");
  check_call(x, m, r, mask, normalized_scores_kv, normalized_scores_q, rotary, who);

  const Tensor xn = norm->forward(x);  // [b, n, dim]
  Tensor ctx = context.defined() ? norm->forward(context) : xn;
  if (ctx.dim() == 3) ctx = ctx.unsqueeze(1);  // [b, r, m, dim]
  return attend_projected(xn, project(ctx, r), mask, normalized_scores_kv, normalized_scores_q, rotary);
}

Tensor Attention::project_context(const Tensor& context, int64_t routes) const {
  const char* who = "Attention.project_context";
  COLT5_CHECK(context.defined() && context.dim() == 3, who, ": argument 'context' expected rank 3 ([batch, N, ",
              opts_.dim, "]), got ", context.defined() ? str(context.shape()) : std::string("an undefined tensor"));
  check_layer_input(context, opts_.dim, to_q->weight, who);
  COLT5_CHECK(routes >= 1 && opts_.heads % routes == 0, who, ": argument 'routes' expected a divisor of heads = ",
              opts_.heads, ", got ", routes);
  return project(norm->forward(context).unsqueeze(1), routes);
}

Tensor Attention::forward_projected(const Tensor& x, const Tensor& kv, const Tensor& mask,
                                    const Tensor& normalized_scores_kv, const Tensor& normalized_scores_q,
                                    const AttentionRotary& rotary) const {
  const char* who = "Attention.forward_projected";
  const int64_t h = opts_.heads, d = opts_.dim_head;
  COLT5_CHECK(x.defined() && x.dim() == 3, who, ": argument 'x' expected rank 3 ([batch, n, ", opts_.dim, "]), got ",
              x.defined() ? str(x.shape()) : std::string("an undefined tensor"));
  check_layer_input(x, opts_.dim, to_q->weight, who);
  COLT5_CHECK(kv.defined() && kv.dim() == 4 && kv.size(0) == x.size(0) && kv.size(1) >= 1 && h % kv.size(1) == 0 &&
                  kv.size(3) == h / kv.size(1) * 2 * d,
              who, ": argument 'kv' expected shape [", x.size(0), ", r, m, ", 2 * h * d,
              " / r] (rows of project_context, r dividing heads = ", h, "), got ",
              kv.defined() ? str(kv.shape()) : std::string("an undefined tensor"));
  check_like(kv, x, who, "kv");
  check_call(x, kv.size(2), kv.size(1), mask, normalized_scores_kv, normalized_scores_q, rotary, who);
  return attend_projected(norm->forward(x), kv, mask, normalized_scores_kv, normalized_scores_q, rotary);
}

// ctx [b, 1 or r, m, dim] (normed) -> [b, r, m, hr 2d]: route j's heads project route j's context
// (a single context serves every route).
Tensor Attention::project(const Tensor& ctx, int64_t r) const {
  const int64_t hr = opts_.heads / r, d = opts_.dim_head, dim = opts_.dim;
  const Tensor w_kv = to_kv->weight.reshape({r, hr * 2 * d, dim}).transpose(1, 2);  // [r, dim, hr 2d]
  return matmul(ctx, w_kv);
}

void Attention::check_call(const Tensor& x, int64_t m, int64_t r, const Tensor& mask, const Tensor& normalized_scores_kv,
                           const Tensor& normalized_scores_q, const AttentionRotary& rotary, const char* who) const {
  const int64_t b = x.size(0), n = x.size(1), d = opts_.dim_head;
  // [b, m] or [b, r', m] with r' = r (a 2-D tensor serves every route)
  auto check_per_key = [&](const Tensor& t, const char* name) {
    const bool ok = (t.dim() == 2 && t.shape() == Shape({b, m})) || (t.dim() == 3 && t.shape() == Shape({b, r, m}));
    COLT5_CHECK(ok, who, ": argument '", name, "' expected shape [", b, ", ", m, "] or [", b, ", ", r, ", ", m,
                "] (batch, routes, keys of the context), got ", t.shape());
  };
  if (mask.defined()) {
    check_dtype(mask, DType::Bool, who, "mask");
    check_per_key(mask, "mask");
    check_same_device({x, mask}, who);
  }
  if (normalized_scores_kv.defined()) {
    check_like(normalized_scores_kv, x, who, "normalized_scores_kv");
    check_per_key(normalized_scores_kv, "normalized_scores_kv");
  }
  if (normalized_scores_q.defined()) {
    check_like(normalized_scores_q, x, who, "normalized_scores_q");
    COLT5_CHECK(normalized_scores_q.shape() == Shape({b, n}), who,
                ": argument 'normalized_scores_q' expected shape [", b, ", ", n, "] (x's batch and length), got ",
                normalized_scores_q.shape());
  }
  if (rotary.q.defined() || rotary.kv.defined()) {
    COLT5_CHECK(rotary.q.defined() && rotary.kv.defined(), who, ": argument 'rotary' expected both angles (q and kv)");
    check_like(rotary.q, x, who, "rotary.q");
    check_like(rotary.kv, x, who, "rotary.kv");
    COLT5_CHECK(rotary.q.shape() == Shape({b, n, d}), who, ": argument 'rotary.q' expected shape [", b, ", ", n, ", ",
                d, "], got ", rotary.q.shape());
    const bool ok = rotary.kv.shape() == Shape({b, m, d}) || rotary.kv.shape() == Shape({b, r, m, d});
    COLT5_CHECK(ok, who, ": argument 'rotary.kv' expected shape [", b, ", ", m, ", ", d, "] or [", b, ", ", r, ", ", m,
                ", ", d, "], got ", rotary.kv.shape());
  }
}

Tensor Attention::attend_projected(const Tensor& xn, const Tensor& kv_rows, const Tensor& mask,
                                   const Tensor& normalized_scores_kv, const Tensor& normalized_scores_q,
                                   const AttentionRotary& rotary) const {
  const int64_t h = opts_.heads, d = opts_.dim_head;
  const int64_t b = xn.size(0), n = xn.size(1), r = kv_rows.size(1), m = kv_rows.size(2), hr = h / r;
  const bool rotate = rotary.q.defined();

  // ---- queries ----
  Tensor q = to_q->forward(xn).reshape({b, n, h, d}).permute({0, 2, 1, 3});  // [b, h, n, d]
  if (rotate) q = apply_rotary(rotary.q.unsqueeze(1), q);

  // ---- keys / values: of each head's 2d outputs the first d are the key, the last d the value ----
  const Tensor kv = kv_rows.reshape({b, r, m, hr, 2 * d}).permute({0, 1, 3, 2, 4});  // [b, r, hr, m, 2d]

  // ---- the fused op: null key / value, per-route mask and scores applied inside ----
  AttentionInputs in;
  in.q = q;
  Tensor k = kv.narrow(4, 0, d);  // [b, r, hr, m, d]
  if (rotate) {
    const Tensor a = rotary.kv.dim() == 3 ? rotary.kv.reshape({b, 1, 1, m, d}) : rotary.kv.unsqueeze(2);
    k = apply_rotary(a, k);
  }
  in.k = k.reshape({b, h, m, d});
  in.v = kv.narrow(4, d, d).reshape({b, h, m, d});
  in.null_k = null_kv.select(0, 0);  // [h, d]
  in.null_v = null_kv.select(0, 1);
  // a 2-D mask / score serves every route
  auto per_route = [&](const Tensor& t) { return t.dim() == 2 ? t.unsqueeze(1).expand({b, r, m}) : t; };
  if (mask.defined()) in.mask = per_route(mask);                          // [b, r, m]
  if (normalized_scores_kv.defined()) in.score_kv = per_route(normalized_scores_kv);  // [b, r, m]
  in.score_q = normalized_scores_q;                                       // [b, n] or undefined
  in.routes = r;
  in.multiply_keys_by_score = opts_.multiply_keys_by_score;
  in.scale = 1.0 / std::sqrt(double(d));

  const Tensor out = attention(in);  // [b, h, n, d]
  return to_out->forward(out.permute({0, 2, 1, 3}).reshape({b, n, h * d}));
}

}  // namespace colt5::nn
