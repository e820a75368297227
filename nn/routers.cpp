// Routers (see nn/routers.h for the math and the tie-order contract).
//
// Gradients. Everything below is composed from differentiable ops, so the backward is autograd:
//   scores -> gather(scores, indices): the picked scores' gradient is scattered back to the
//     picked positions (as torch.topk / sort's backward);
//   straight-through: sel + (1 - sel.detach()) has value ~1 and d/dsel = 1;
//   masked_fill(., ~picked_mask, 0): zero gradient at masked picks;
//   coor_descent: its own fused backward (autograd/ops/coor_descent.h).
#include "nn/routers.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "autograd/ops.h"
#include "autograd/ops/coor_descent.h"
#include "autograd/ops/sinkhorn.h"

namespace colt5::nn {

namespace {

// -torch.finfo(dtype).max: the reference's mask value.
double lowest_finite(DType dt) {
  return dt == DType::Float32 ? -double(std::numeric_limits<float>::max()) : -std::numeric_limits<double>::max();
}

using Pair = std::pair<double, int64_t>;

// torch's comparators (NaN counts as the largest value).
bool greater_nan_first(const Pair& x, const Pair& y) {
  return (std::isnan(x.first) && !std::isnan(y.first)) || (x.first > y.first);
}
bool less_nan_last(const Pair& x, const Pair& y) {
  return (!std::isnan(x.first) && std::isnan(y.first)) || (x.first < y.first);
}

// The argument every top-k / sort of the routers takes: a defined [R, n] floating tensor.
void check_rows(const Tensor& values, const char* op) {
  COLT5_CHECK(values.defined(), op, ": argument 'values' is undefined");
  check_floating(values, op, "values");
  check_dim(values, 2, op, "values");
}

// The rows of a [R, n] floating tensor as host doubles (exact for float32 too).
std::vector<double> host_rows(const Tensor& values, const char* op) {
  check_rows(values, op);
  Tensor v = values.detach();
  if (v.device() != kCPU) v = v.cpu();
  if (v.dtype() != DType::Float64) v = v.to(DType::Float64);
  return v.to_vector<double>();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// torch's CPU orders

Tensor topk_indices_torch_order(const Tensor& values, int64_t k) {
  const char* op = "topk_indices_torch_order";
  std::vector<double> data = host_rows(values, op);
  const int64_t rows = values.size(0), n = values.size(1);
  COLT5_CHECK(k >= 0 && k <= n, op, ": argument 'k' expected in [0, ", n, "], got ", k);
  std::vector<int64_t> out(static_cast<size_t>(rows * k));
  std::vector<Pair> queue(static_cast<size_t>(n));
  for (int64_t r = 0; r < rows && k > 0; ++r) {
    for (int64_t j = 0; j < n; ++j) queue[size_t(j)] = {data[size_t(r * n + j)], j};
    // As aten/src/ATen/native/TopKImpl.h (largest = true, sorted = true).
    if (k * 64 <= n) {
      std::partial_sort(queue.begin(), queue.begin() + k, queue.end(), greater_nan_first);
    } else {
      std::nth_element(queue.begin(), queue.begin() + (k - 1), queue.end(), greater_nan_first);
      std::sort(queue.begin(), queue.begin() + (k - 1), greater_nan_first);
    }
    for (int64_t j = 0; j < k; ++j) out[size_t(r * k + j)] = queue[size_t(j)].second;
  }
  return from_vector<int64_t>(out, {rows, k}, values.device());
}

Tensor sort_indices_torch_order(const Tensor& values) {
  const char* op = "sort_indices_torch_order";
  std::vector<double> data = host_rows(values, op);
  const int64_t rows = values.size(0), n = values.size(1);
  std::vector<int64_t> out(static_cast<size_t>(rows * n));
  std::vector<Pair> queue(static_cast<size_t>(n));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < n; ++j) queue[size_t(j)] = {data[size_t(r * n + j)], j};
    // As aten/src/ATen/native/cpu/SortingKernel.cpp (stable = false, ascending): std::sort.
    std::sort(queue.begin(), queue.end(), less_nan_last);
    for (int64_t j = 0; j < n; ++j) out[size_t(r * n + j)] = queue[size_t(j)].second;
  }
  return from_vector<int64_t>(out, {rows, n}, values.device());
}

// ---------------------------------------------------------------------------------------------
// The tie order in force

namespace {
thread_local TieOrder current_tie_order = TieOrder::Index;
}  // namespace

TieOrder tie_order() { return current_tie_order; }
void set_tie_order(TieOrder order) { current_tie_order = order; }

Tensor route_topk_indices(const Tensor& values, int64_t k) {
  if (current_tie_order == TieOrder::TorchCPU) return topk_indices_torch_order(values, k);
  const char* op = "route_topk_indices";
  check_rows(values, op);
  COLT5_CHECK(k >= 0 && k <= values.size(1), op, ": argument 'k' expected in [0, ", values.size(1), "], got ", k);
  NoGradGuard no_grad;
  return topk(values.detach(), k, 1, true).indices;
}

Tensor route_sort_indices(const Tensor& values) {
  if (current_tie_order == TieOrder::TorchCPU) return sort_indices_torch_order(values);
  check_rows(values, "route_sort_indices");
  NoGradGuard no_grad;
  return sort(values.detach(), 1, false).indices;
}

Tensor batched_gather(const Tensor& x, const Tensor& indices) {
  const char* op = "batched_gather";
  COLT5_CHECK(x.defined() && indices.defined(), op, ": arguments 'x' and 'indices' must be defined");
  check_dtype(indices, DType::Int64, op, "indices");
  COLT5_CHECK(x.dim() == 2 || x.dim() == 3, op, ": argument 'x' expected rank 2 or 3, got shape ", x.shape());
  COLT5_CHECK(indices.dim() == 2 || indices.dim() == 3, op, ": argument 'indices' expected rank 2 or 3, got shape ",
              indices.shape());
  COLT5_CHECK(indices.size(0) == x.size(0), op, ": argument 'indices' expected batch size ", x.size(0), ", got ",
              indices.size(0));
  const int64_t b = x.size(0);
  const int64_t m = indices.numel() / std::max<int64_t>(b, 1);
  Tensor flat = indices.reshape({b, m});  // [b, r * k]
  Shape out_shape = indices.shape();
  if (x.dim() == 2) return gather(x, 1, flat).reshape(out_shape);
  const int64_t d = x.size(2);
  out_shape.push_back(d);
  return gather(x, 1, flat.unsqueeze(-1).expand({b, m, d})).reshape(out_shape);
}

// ---------------------------------------------------------------------------------------------
// Router base

Router::Router(std::string name, int64_t dim, int64_t num_routing_tokens, bool straight_through, Generator* gen,
               bool learned_routing_tokens)
    : name_(std::move(name)), dim_(dim), num_routing_tokens_(num_routing_tokens), straight_through_(straight_through) {
  COLT5_CHECK(dim >= 1, name_, ": option 'dim' expected >= 1, got ", dim);
  COLT5_CHECK(num_routing_tokens >= 1, name_, ": option 'num_routing_tokens' expected >= 1, got ",
              num_routing_tokens);
  if (!learned_routing_tokens)
    routing_token = register_parameter("routing_token",
                                       randn({num_routing_tokens, dim}, DType::Float32, kCPU, gen));
}

namespace {

// The checks of x shared by forward and logits.
void check_router_x(const Tensor& x, int64_t dim, const Tensor& routing_token, const char* op) {
  COLT5_CHECK(routing_token.defined(), op, ": this router has no routing_token (learned_routing_tokens): pass ",
              "RouteCallOptions::routing_tokens to CoordinateDescentRouter::forward");
  COLT5_CHECK(x.defined(), op, ": argument 'x' is undefined");
  check_floating(x, op, "x");
  COLT5_CHECK(x.dim() == 3, op, ": argument 'x' expected rank 3 [batch, n, dim], got shape ", x.shape());
  COLT5_CHECK(x.size(2) == dim, op, ": argument 'x' expected feature size ", dim, " in dim 2, got ", x.size(2));
  COLT5_CHECK(x.dtype() == routing_token.dtype(), op, ": argument 'x' expected dtype ",
              dtype_name(routing_token.dtype()), " (the parameters'), got ", dtype_name(x.dtype()));
  check_same_device({routing_token, x}, op);
}

// s = einsum('b n d, r d -> b r n'): [r, d] @ [b, d, n] -> [b, r, n], routes merged into batch;
// per-row tokens [b, r, d] (einsum 'b n d, b r d -> b r n') broadcast the same way.
// With a cosine scale: scale * einsum of the l2-normalised x and routing tokens.
Tensor router_logits(const Tensor& x, const Tensor& routing_token, std::optional<double> cosine_scale) {
  const int64_t b = x.size(0), n = x.size(1), r = routing_token.size(-2);
  if (!cosine_scale) return matmul(routing_token, x.transpose(1, 2)).reshape({b * r, n});
  const Tensor s = matmul(l2norm(routing_token), l2norm(x).transpose(1, 2)).reshape({b * r, n});
  return mul_scalar(s, *cosine_scale);
}

// mask bool [b, n] (checked against `like`'s device) repeated per route: [b * r, n].
Tensor route_mask(const Tensor& mask, int64_t b, int64_t n, int64_t r, const Tensor& like, const char* op) {
  if (!mask.defined()) return Tensor();
  check_dtype(mask, DType::Bool, op, "mask");
  COLT5_CHECK(mask.shape() == Shape({b, n}), op, ": argument 'mask' expected shape ", Shape({b, n}), ", got ",
              mask.shape());
  check_same_device({like, mask}, op);
  return r == 1 ? mask : mask.unsqueeze(1).expand({b, r, n}).reshape({b * r, n});
}

}  // namespace

Router::Prepared Router::prepare(const Tensor& x, int64_t num_tokens, const Tensor& mask, const Tensor& tokens) const {
  const char* op = name_.c_str();
  if (!tokens.defined()) check_router_x(x, dim_, routing_token, op);
  COLT5_CHECK(num_tokens >= 1, op, ": argument 'num_tokens' expected >= 1, got ", num_tokens);
  const int64_t b = x.size(0), n = x.size(1), r = num_routing_tokens_;
  COLT5_CHECK(n >= 1, op, ": argument 'x' expected a sequence length >= 1, got shape ", x.shape());
  Prepared p;
  p.batch = b;
  p.n = n;
  p.mask = route_mask(mask, b, n, r, x, op);
  p.s = router_logits(x, tokens.defined() ? tokens : routing_token, cosine_sim_scale_);
  return p;
}

Router::Prepared Router::prepare_logits(const Tensor& s, int64_t num_tokens, const Tensor& mask) const {
  const std::string opname = name_ + ".forward_logits";
  const char* op = opname.c_str();
  const int64_t r = num_routing_tokens_;
  COLT5_CHECK(s.defined(), op, ": argument 's' is undefined");
  check_floating(s, op, "s");
  COLT5_CHECK(s.dim() == 2 && s.size(0) % r == 0 && s.size(1) >= 1, op,
              ": argument 's' expected shape [batch * ", r, ", n] with n >= 1, got ", s.shape());
  COLT5_CHECK(s.dtype() == routing_token.dtype(), op, ": argument 's' expected dtype ",
              dtype_name(routing_token.dtype()), " (the parameters'), got ", dtype_name(s.dtype()));
  check_same_device({routing_token, s}, op);
  COLT5_CHECK(num_tokens >= 1, op, ": argument 'num_tokens' expected >= 1, got ", num_tokens);
  Prepared p;
  p.batch = s.size(0) / r;
  p.n = s.size(1);
  p.mask = route_mask(mask, p.batch, p.n, r, s, op);
  p.s = s;
  return p;
}

Tensor Router::logits(const Tensor& x) const {
  check_router_x(x, dim_, routing_token, name_.c_str());
  return router_logits(x, routing_token, cosine_sim_scale_);
}

RouterOutput Router::forward(const Tensor& x, int64_t num_tokens, const Tensor& mask) {
  return route(prepare(x, num_tokens, mask), num_tokens);
}

RouterOutput Router::forward_logits(const Tensor& s, int64_t num_tokens, const Tensor& mask) {
  return route(prepare_logits(s, num_tokens, mask), num_tokens);
}

RouterOutput Router::finish(Tensor selected, Tensor indices, const Prepared& p) const {
  if (straight_through_) {
    // Value 1, gradient of `selected`: sel + (1 - sel).detach().
    selected = selected + (1.0 - selected.detach());
    if (p.mask.defined()) selected = masked_fill(selected, logical_not(gather(p.mask, 1, indices)), 0.0);
  }
  if (num_routing_tokens_ > 1) {
    const int64_t k = indices.size(1);
    selected = selected.reshape({p.batch, num_routing_tokens_, k});
    indices = indices.reshape({p.batch, num_routing_tokens_, k});
  }
  return {selected, indices};
}

Shape Router::check_route_back(const Tensor& src, const Tensor& routed, const Tensor& indices) const {
  std::string opname = name_ + ".route_back";
  const char* op = opname.c_str();
  COLT5_CHECK(src.defined() && routed.defined() && indices.defined(), op,
              ": arguments 'src', 'routed' and 'indices' must be defined");
  COLT5_CHECK(src.dim() == 3, op, ": argument 'src' expected rank 3 [batch, n, dim], got shape ", src.shape());
  check_dtype(indices, DType::Int64, op, "indices");
  COLT5_CHECK(indices.dim() == 2 && indices.size(0) == src.size(0), op, ": argument 'indices' expected shape [",
              src.size(0), ", k], got ", indices.shape());
  const Shape want = {src.size(0), indices.size(1), src.size(2)};
  COLT5_CHECK(routed.shape() == want, op, ": argument 'routed' expected shape ", want, ", got ", routed.shape());
  return want;
}

Tensor Router::route_back(const Tensor& src, const Tensor& routed, const Tensor& indices) const {
  const Shape want = check_route_back(src, routed, indices);
  return scatter(src, 1, indices.unsqueeze(-1).expand(want), routed);
}

// ---------------------------------------------------------------------------------------------
// CoordinateDescentRouter

CoordinateDescentRouter::CoordinateDescentRouter(int64_t dim, const CoordinateDescentRouterOptions& opts,
                                                 Generator* gen)
    : Router("CoordinateDescentRouter", dim, opts.num_routing_tokens, opts.straight_through, gen,
             opts.learned_routing_tokens),
      opts_(opts) {
  COLT5_CHECK(opts.n_iters >= 1, name_, ": option 'n_iters' expected >= 1, got ", opts.n_iters);
  COLT5_CHECK(opts.fetch_k_ratio >= 1.0 && std::isfinite(opts.fetch_k_ratio), name_,
              ": option 'fetch_k_ratio' expected a finite value >= 1, got ", opts.fetch_k_ratio);
  COLT5_CHECK(opts.eps > 0.0 && std::isfinite(opts.eps), name_, ": option 'eps' expected a finite value > 0, got ",
              opts.eps);
  COLT5_CHECK(!opts.eps_init || (*opts.eps_init > 0.0 && std::isfinite(*opts.eps_init)), name_,
              ": option 'eps_init' expected a finite value > 0, got ", opts.eps_init.value_or(0.0));
  COLT5_CHECK(opts.eps_decay > 0.0 && opts.eps_decay <= 1.0, name_, ": option 'eps_decay' expected a value in (0, 1], got ",
              opts.eps_decay);
  COLT5_CHECK(opts.cosine_sim_scale > 0.0 && std::isfinite(opts.cosine_sim_scale), name_,
              ": option 'cosine_sim_scale' expected a finite value > 0, got ", opts.cosine_sim_scale);
  if (opts.cosine_sim_routing) cosine_sim_scale_ = opts.cosine_sim_scale;
  COLT5_CHECK(!opts.route_block_size || *opts.route_block_size >= 1, name_,
              ": option 'route_block_size' expected >= 1, got ", opts.route_block_size.value_or(0));
}

RouterOutput CoordinateDescentRouter::route(const Prepared& p, int64_t num_tokens) {
  // Only forward_logits comes here (forward calls route_scores itself).
  COLT5_CHECK(!opts_.route_block_size, name_,
              ".forward_logits: option 'route_block_size' is not supported here (route with forward)");
  return route_scores(p, num_tokens, {});
}

RouterOutput CoordinateDescentRouter::forward(const Tensor& x, int64_t num_tokens, const Tensor& mask,
                                              const RouteCallOptions& call) {
  const char* op = name_.c_str();
  const int64_t r = num_routing_tokens_;
  Tensor tokens = call.routing_tokens;  // [b, r, d] when given
  if (opts_.learned_routing_tokens) {
    COLT5_CHECK(tokens.defined(), op, ": argument 'routing_tokens' is required (the router was built with ",
                "learned_routing_tokens)");
    COLT5_CHECK(x.defined() && x.dim() == 3 && x.size(2) == dim_, op, ": argument 'x' expected shape [batch, n, ",
                dim_, "], got ", x.defined() ? str(x.shape()) : std::string("an undefined tensor"));
    check_floating(x, op, "x");
    const int64_t b0 = x.size(0);
    const bool ok = (tokens.dim() == 2 && r == 1 && tokens.shape() == Shape({b0, dim_})) ||
                    (tokens.dim() == 3 && tokens.shape() == Shape({b0, r, dim_}));
    COLT5_CHECK(ok, op, ": argument 'routing_tokens' expected shape [", b0, ", ", r, ", ", dim_, "]",
                r == 1 ? str(" or [", b0, ", ", dim_, "]") : std::string(), ", got ", tokens.shape());
    COLT5_CHECK(tokens.dtype() == x.dtype() && tokens.device() == x.device(), op,
                ": argument 'routing_tokens' expected x's dtype and device (", dtype_name(x.dtype()), ", ", x.device(),
                "), got ", dtype_name(tokens.dtype()), ", ", tokens.device());
    if (tokens.dim() == 2) tokens = tokens.unsqueeze(1);
  } else {
    COLT5_CHECK(!tokens.defined(), op, ": argument 'routing_tokens' is only for a router built with ",
                "learned_routing_tokens (this one has its own routing_token)");
    check_router_x(x, dim_, routing_token, op);
  }
  const int64_t b = x.size(0), n = x.size(1);
  RouterOutput out;
  if (!opts_.route_block_size) {
    out = route_scores(prepare(x, num_tokens, mask, tokens), num_tokens, call);
  } else {
    // 'b (nb w) d -> (b nb) w d' over the whole blocks, routed as a batch of b nb rows
    const int64_t w = *opts_.route_block_size, nb = n / w;
    COLT5_CHECK(nb >= 1, op, ": argument 'x' expected at least route_block_size = ", w, " tokens, got ", n);
    COLT5_CHECK(num_tokens >= 1, op, ": argument 'num_tokens' expected >= 1, got ", num_tokens);
    const int64_t kb = (num_tokens + nb - 1) / nb;
    const Tensor xb = x.narrow(1, 0, nb * w).reshape({b * nb, w, dim_});
    const Tensor mb = mask.defined() ? mask.narrow(1, 0, nb * w).reshape({b * nb, w}) : Tensor();
    const Tensor tb = tokens.defined() ? tokens.unsqueeze(1).expand({b, nb, r, dim_}).reshape({b * nb, r, dim_}) : tokens;
    RouterOutput o = route_scores(prepare(xb, kb, mb, tb), kb, call);  // [b nb, kb] or [b nb, r, kb]
    // '(b nb) r kb -> b r (nb kb)', the indices shifted by each block's start
    const Tensor offset = mul_scalar(arange(double(nb), DType::Int64, x.device()), double(w))  // [nb]
                              .reshape({1, nb, 1, 1});
    Tensor s = o.scores.reshape({b, nb, r, kb}), idx = add(o.indices.reshape({b, nb, r, kb}), offset);
    s = s.permute({0, 2, 1, 3}).reshape({b, r, nb * kb});
    idx = idx.permute({0, 2, 1, 3}).reshape({b, r, nb * kb});
    out = r == 1 ? RouterOutput{s.reshape({b, nb * kb}), idx.reshape({b, nb * kb})} : RouterOutput{s, idx};
  }
  if (call.keep_one_route_dim && r == 1) out = {out.scores.unsqueeze(1), out.indices.unsqueeze(1)};
  return out;
}

RouterReturn CoordinateDescentRouter::route_tokens(const Tensor& x, int64_t num_tokens, const Tensor& mask,
                                                  const RouteCallOptions& call) {
  const char* op = name_.c_str();
  COLT5_CHECK(x.defined() && x.dim() == 3, op, ": argument 'x' expected rank 3 [batch, n, dim], got ",
              x.defined() ? str(x.shape()) : std::string("an undefined tensor"));
  COLT5_CHECK(num_tokens >= 1, op, ": argument 'num_tokens' expected >= 1, got ", num_tokens);
  const int64_t b = x.size(0), n = x.size(1), r = num_routing_tokens_;
  const bool route_dim = call.keep_one_route_dim || r > 1;
  RouterReturn out;
  if (n <= num_tokens) {  // nothing to choose: every token, score 1
    out.scores = route_dim ? ones({b, r, n}, x.dtype(), x.device()) : ones({b, n}, x.dtype(), x.device());
    out.routed_tokens = route_dim ? x.unsqueeze(1).expand({b, r, n, x.size(2)}) : x;
    if (mask.defined()) out.routed_mask = route_dim ? mask.unsqueeze(1).expand({b, r, n}) : mask;
    return out;
  }
  RouterOutput o = forward(x, num_tokens, mask, call);
  out.indices = o.indices;
  out.scores = o.scores;
  out.routed_tokens = batched_gather(x, o.indices);
  if (mask.defined()) out.routed_mask = batched_gather(mask, o.indices);
  return out;
}

RouterOutput CoordinateDescentRouter::route_scores(const Prepared& p, int64_t num_tokens, const RouteCallOptions& call) {
  COLT5_CHECK(num_tokens <= p.n, name_, ": argument 'num_tokens' expected <= the sequence length ", p.n, ", got ",
              num_tokens);
  // effective_k = min(num_tokens * fetch_k_ratio, n): a real number, as the reference.
  const double k_eff = std::min(double(num_tokens) * opts_.fetch_k_ratio, double(p.n));
  CoorDescentOptions co;
  co.n_iters = opts_.n_iters;
  co.eps = opts_.eps;
  co.eps_init = opts_.eps_init;
  co.eps_decay = opts_.eps_decay;
  Tensor scores = coor_descent(p.s, k_eff, co, p.mask);  // [b*r, n]
  if (call.random_route) {
    Generator& g = call.generator ? *call.generator : default_generator();
    scores = randn(scores.shape(), scores.dtype(), scores.device(), &g);
    if (p.mask.defined()) scores = masked_fill(scores, logical_not(p.mask), lowest_finite(scores.dtype()));
  }
  Tensor indices = route_topk_indices(scores, num_tokens);
  return finish(gather(scores, 1, indices), indices, p);
}

// ---------------------------------------------------------------------------------------------
// DifferentiableTopKRouter

DifferentiableTopKRouter::DifferentiableTopKRouter(int64_t dim, const DifferentiableTopKRouterOptions& opts,
                                                   Generator* gen)
    : Router("DifferentiableTopKRouter", dim, opts.num_routing_tokens, opts.straight_through, gen), opts_(opts) {
  COLT5_CHECK(opts.temperature > 0.0 && std::isfinite(opts.temperature), name_,
              ": option 'temperature' expected a finite value > 0, got ", opts.temperature);
}

RouterOutput DifferentiableTopKRouter::route(const Prepared& p, int64_t num_tokens) {
  const int64_t n = p.n, k = std::min(num_tokens, n);
  Tensor scores = div(p.s, scalar_tensor(opts_.temperature, p.s.dtype(), p.s.device()));
  if (p.mask.defined()) scores = masked_fill(scores, logical_not(p.mask), lowest_finite(scores.dtype()));
  Tensor order = route_sort_indices(scores);  // ascending
  Tensor sorted = gather(scores, 1, order);
  sorted = sorted - amax(sorted, {-1}, true).detach();
  Tensor e = exp(sorted);
  // cum_softmax_i = e_i / max(sum_{j <= i} e_j, 1e-6)
  Tensor cum_softmax = e / clamp_min(cumsum(e, -1), 1e-6);
  Tensor selected = cum_softmax.narrow(1, n - k, k);
  Tensor indices = order.narrow(1, n - k, k).contiguous();
  return finish(selected, indices, p);
}

// ---------------------------------------------------------------------------------------------
// SinkhornRouter

SinkhornRouter::SinkhornRouter(int64_t dim, const SinkhornRouterOptions& opts, Generator* gen)
    : Router("SinkhornRouter", dim, opts.num_routing_tokens, opts.straight_through, gen), opts_(opts) {
  COLT5_CHECK(opts.n_iters >= 0, name_, ": option 'n_iters' expected >= 0, got ", opts.n_iters);
  COLT5_CHECK(opts.temperature > 0.0 && std::isfinite(opts.temperature), name_,
              ": option 'temperature' expected a finite value > 0, got ", opts.temperature);
}

RouterOutput SinkhornRouter::route(const Prepared& p, int64_t num_tokens) {
  const int64_t n = p.n, k = std::min(num_tokens, n), rows = p.s.size(0);
  const double mask_value = lowest_finite(p.s.dtype());
  // Every one of the k picks sees the whole row: [rows, k, n].
  Tensor scores = p.s.unsqueeze(1).expand({rows, k, n});
  Tensor excluded;  // bool [rows, 1, n]
  if (p.mask.defined()) {
    excluded = logical_not(p.mask).unsqueeze(1);
    scores = masked_fill(scores, excluded, mask_value);
  }
  scores = gumbel_sinkhorn(scores, opts_.n_iters, opts_.temperature, noise_generator);
  if (excluded.defined()) scores = masked_fill(scores, excluded, mask_value);
  // topk(1) over n for each pick.
  Tensor flat = scores.reshape({rows * k, n});
  Tensor idx = route_topk_indices(flat, 1);  // [rows * k, 1]
  Tensor selected = gather(flat, 1, idx).reshape({rows, k});
  return finish(selected, idx.reshape({rows, k}), p);
}

Tensor SinkhornRouter::route_back(const Tensor& src, const Tensor& routed, const Tensor& indices) const {
  const Shape want = check_route_back(src, routed, indices);
  // scatter_mean as the reference: (src + sum routed) / max(src + count, 1e-5).
  Tensor idx = indices.unsqueeze(-1).expand(want);
  Tensor numer = scatter_add(src, 1, idx, routed);
  Tensor denom = scatter_add(src, 1, idx, ones_like(routed));
  return numer / clamp_min(denom, 1e-5);
}

// ---------------------------------------------------------------------------------------------
// make_router

RouterKwargs RouterKwargs::or_defaults(const RouterKwargs& d) const {
  RouterKwargs k = *this;
  auto fill = [](auto& field, const auto& dflt) {
    if (!field) field = dflt;
  };
  fill(k.n_iters, d.n_iters), fill(k.fetch_k_ratio, d.fetch_k_ratio), fill(k.eps, d.eps);
  fill(k.temperature, d.temperature), fill(k.use_triton, d.use_triton), fill(k.eps_init, d.eps_init);
  fill(k.eps_decay, d.eps_decay), fill(k.cosine_sim_routing, d.cosine_sim_routing);
  fill(k.cosine_sim_scale, d.cosine_sim_scale), fill(k.route_block_size, d.route_block_size);
  return k;
}

void check_router_type(const std::string& router_type, const char* owner) {
  COLT5_CHECK(router_type == "coor_descent" || router_type == "cum_softmax" || router_type == "sinkhorn", owner,
              ": option 'router_type' expected one of coor_descent, cum_softmax, sinkhorn, got '", router_type, "'");
}

std::shared_ptr<Router> make_router(const std::string& router_type, int64_t dim, bool straight_through,
                                    int64_t num_routing_tokens, const RouterKwargs& kw, Generator* gen,
                                    const char* owner) {
  check_router_type(router_type, owner);
  auto reject = [&](bool set, const char* key) {
    COLT5_CHECK(!set, owner, ": option 'router_kwargs' has '", key, "', which router_type '", router_type,
                "' does not take");
  };
  if (router_type == "coor_descent") {
    reject(kw.temperature.has_value(), "temperature");
    CoordinateDescentRouterOptions o;
    o.straight_through = straight_through;
    o.num_routing_tokens = num_routing_tokens;
    if (kw.n_iters) o.n_iters = *kw.n_iters;
    if (kw.fetch_k_ratio) o.fetch_k_ratio = *kw.fetch_k_ratio;
    if (kw.eps) o.eps = *kw.eps;
    if (kw.use_triton) o.use_triton = *kw.use_triton;
    if (kw.eps_init) o.eps_init = *kw.eps_init;
    if (kw.eps_decay) o.eps_decay = *kw.eps_decay;
    if (kw.cosine_sim_routing) o.cosine_sim_routing = *kw.cosine_sim_routing;
    if (kw.cosine_sim_scale) o.cosine_sim_scale = *kw.cosine_sim_scale;
    if (kw.route_block_size) o.route_block_size = *kw.route_block_size;
    return std::make_shared<CoordinateDescentRouter>(dim, o, gen);
  }
  if (router_type == "cum_softmax") {
    reject(kw.n_iters.has_value(), "n_iters");
    reject(kw.fetch_k_ratio.has_value(), "fetch_k_ratio");
    reject(kw.eps.has_value(), "eps");
    reject(kw.use_triton.has_value(), "use_triton");
    reject(kw.eps_init.has_value(), "eps_init");
    reject(kw.eps_decay.has_value(), "eps_decay");
    reject(kw.cosine_sim_routing.has_value(), "cosine_sim_routing");
    reject(kw.cosine_sim_scale.has_value(), "cosine_sim_scale");
    reject(kw.route_block_size.has_value(), "route_block_size");
    DifferentiableTopKRouterOptions o;
    o.straight_through = straight_through;
    o.num_routing_tokens = num_routing_tokens;
    if (kw.temperature) o.temperature = *kw.temperature;
    return std::make_shared<DifferentiableTopKRouter>(dim, o, gen);
  }
  reject(kw.fetch_k_ratio.has_value(), "fetch_k_ratio");
  reject(kw.eps.has_value(), "eps");
  reject(kw.use_triton.has_value(), "use_triton");
  reject(kw.eps_init.has_value(), "eps_init");
  reject(kw.eps_decay.has_value(), "eps_decay");
  reject(kw.cosine_sim_routing.has_value(), "cosine_sim_routing");
  reject(kw.cosine_sim_scale.has_value(), "cosine_sim_scale");
  reject(kw.route_block_size.has_value(), "route_block_size");
  SinkhornRouterOptions o;
  o.straight_through = straight_through;
  o.num_routing_tokens = num_routing_tokens;
  if (kw.n_iters) o.n_iters = *kw.n_iters;
  if (kw.temperature) o.temperature = *kw.temperature;
  return std::make_shared<SinkhornRouter>(dim, o, gen);
}

}  // namespace colt5::nn
