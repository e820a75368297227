// Routers: pick, for every row of a batch, the tokens that go through a "heavy" branch, and a
// differentiable normalised score for each picked token (CoLT5, arXiv 2303.09752, section 2).
//
// Dims legend: b batch, n sequence length, d model dim, r routing tokens (independent routes),
// k tokens picked per route.
//
// Every router owns `routing_token` [r, d] (reference state_dict key "routing_token") and
//   s = einsum('b n d, r d -> b r n', x, routing_token)                            // [b, r, n]
// the routes are then handled as extra batch rows ([b * r, n]) and split again at the end:
// the outputs are [b, k] when r == 1 and [b, r, k] otherwise (as the reference's unpack).
//
//   CoordinateDescentRouter ("coor_descent", CoLT5's router):
//     scores = coor_descent(s, n_iters, k_eff = min(num_tokens * fetch_k_ratio, n), eps, mask)
//     (k_eff is a real number, not truncated, as the reference), then the num_tokens largest
//     scores with torch.topk's order (below). 0.11.1's options: eps-scaling (eps_init, eps_decay:
//     eps_t = max(eps_init decay^t, eps)), and cosine_sim_routing, which scores with unit vectors,
//     s = cosine_sim_scale * <x / |x|, routing_token / |routing_token|>. 0.11.1 also changed the
//     defaults (20 iterations, eps 0.03, eps_init 4, eps_decay 0.7: RouterKwargs::v0_11_1()).
//   DifferentiableTopKRouter ("cum_softmax"): s / temperature, masked entries set to
//     -finfo.max, sorted ascending (torch.sort's order), minus the row max (detached), then
//     cum_softmax_i = e_i / max(sum_{j <= i} e_j, 1e-6) with e = exp(.); the last num_tokens of
//     the sorted row (so the indices come in ascending score order).
//   SinkhornRouter ("sinkhorn"): s repeated num_tokens times ([b*r, k, n]), masked entries set to
//     -finfo.max, gumbel_sinkhorn(., n_iters, temperature) (random: Gumbel noise from the
//     generator), masked again, and the arg-max over n of each of the k rows (repeats possible).
//
// Straight-through (straight_through = true, the default): the selected scores become
//   sel + (1 - sel).detach()
// whose value is 1 and whose gradient is that of sel; picked positions the mask excludes then
// get 0. With it off, the scores themselves are returned (and carry the routing gradient).
//
// route_back(src, routed [b, k, d], indices [b, k]) puts each routed row back at its position
// of a copy of src [b, n, d] (torch's src[batch_range, indices] = routed); positions not picked
// keep src's value. SinkhornRouter's picks may repeat, so it averages instead, exactly as the
// reference's scatter_mean: (src + sum of routed rows at i) / max(src + count at i, 1e-5) — note
// that src enters the denominator too (the reference's behaviour, kept for parity; with a zero
// src this is the plain mean).
//
// Tie order. Scores tie exactly (coordinate descent saturates at 1.0; masked entries are all 0),
// so which of several equal scores is picked is part of a router's definition. Two orders:
//   TieOrder::Index (the default): descending score (ascending for the cum_softmax sort), equal
//     scores by lower position first. This is the library's topk / sort (core/ops/sort.h), run
//     on the scores' device: on a GPU nothing is copied to the host and the host never waits.
//     CPU and GPU give the same picks.
//   TieOrder::TorchCPU (parity mode, set with TieOrderGuard): torch's CPU algorithms, which the
//     reference's outputs — and so the golden fixtures — depend on: topk = std::nth_element then
//     std::sort of the first k-1 (std::partial_sort when k * 64 <= n), sort = std::sort, on
//     (value, index) pairs in index order. They run on the host: on a GPU the scores are copied
//     back (one device-to-host copy and a host wait per router call).
// The two pick the same tokens whenever the k-th and (k+1)-th scores differ; they can differ in
// the order the picks are listed (which changes nothing downstream but rounding: every consumer
// gathers, attends over or scatters back the picks as a set). The selected scores are gathered
// with a differentiable gather on the scores' device in both.
//
// use_triton (coordinate descent) selects the reference's Triton kernel; there is no Triton
// here, and our coor_descent op already has its own fused backward, so the option is accepted
// and has no effect.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "autograd/ops/creation.h"
#include "nn/module.h"

namespace colt5::nn {

// What a router returns: the normalised scores of the picked tokens and their positions.
struct RouterOutput {
  Tensor scores;   // [b, k] (r == 1) or [b, r, k]; x's dtype
  Tensor indices;  // int64, same shape, values in [0, n)
};

// The part every router shares: the routing tokens, input checks, straight-through, route_back.
class Router : public Module {
public:
  // x [b, n, d] floating (routing_token's dtype and device); mask bool [b, n] (True = keep) or
  // undefined; num_tokens >= 1 tokens per route. The same as forward_logits(logits(x), ...).
  virtual RouterOutput forward(const Tensor& x, int64_t num_tokens, const Tensor& mask = Tensor());
  RouterOutput operator()(const Tensor& x, int64_t num_tokens, const Tensor& mask = Tensor()) {
    return forward(x, num_tokens, mask);
  }

  // The two halves of forward, for a caller that routes several candidate sets of one sequence
  // (ConditionalRoutedAutoregressiveAttention: every query window routes over its prefix):
  //   logits(x [b, n, d]) = einsum('b n d, r d -> b r n', x, routing_token) as [b * r, n]
  //     (routes merged into the batch, route index fastest), checked as forward checks x;
  //   forward_logits(s [B * r, n], num_tokens, mask bool [B, n] or undefined): forward's routing
  //     of those logits (B may differ from the b they were computed for: rows may be repeated,
  //     each with its own mask). forward(x, k, mask) == forward_logits(logits(x), k, mask).
  Tensor logits(const Tensor& x) const;
  RouterOutput forward_logits(const Tensor& s, int64_t num_tokens, const Tensor& mask = Tensor());

  // src [b, n, d], routed [b, k, d], indices int64 [b, k] -> [b, n, d] (see the file comment).
  virtual Tensor route_back(const Tensor& src, const Tensor& routed, const Tensor& indices) const;

  int64_t dim() const { return dim_; }
  int64_t num_routing_tokens() const { return num_routing_tokens_; }
  bool straight_through() const { return straight_through_; }
  const std::string& name() const { return name_; }

  Tensor routing_token;  // [num_routing_tokens, dim], randn init as the reference

protected:
  // learned_routing_tokens: no "routing_token" parameter (routing_token stays undefined); the
  // caller passes the tokens with every call (CoordinateDescentRouter's RouteCallOptions).
  Router(std::string name, int64_t dim, int64_t num_routing_tokens, bool straight_through, Generator* gen,
         bool learned_routing_tokens = false);

  // Checks x and mask; returns s [b * r, n] and the mask repeated per route [b * r, n] (or
  // undefined).
  struct Prepared {
    Tensor s;     // [b * r, n]
    Tensor mask;  // bool [b * r, n] or undefined
    int64_t batch = 0, n = 0;
  };
  // tokens [b, r, d], when defined (checked by the caller), score x instead of routing_token.
  Prepared prepare(const Tensor& x, int64_t num_tokens, const Tensor& mask, const Tensor& tokens = Tensor()) const;
  // The same from logits s [b * r, n] (forward_logits's checks).
  Prepared prepare_logits(const Tensor& s, int64_t num_tokens, const Tensor& mask) const;
  // The routing proper, from prepared logits: each router's algorithm (see the file comment).
  virtual RouterOutput route(const Prepared& p, int64_t num_tokens) = 0;

  // Straight-through and masking of the picked scores [b*r, k] / indices [b*r, k], then the
  // routes split out again: [b, k] or [b, r, k].
  RouterOutput finish(Tensor selected, Tensor indices, const Prepared& p) const;
  // route_back's argument checks (messages name "<router>.route_back"); returns the shape
  // [b, k, d] that routed has and that indices are expanded to.
  Shape check_route_back(const Tensor& src, const Tensor& routed, const Tensor& indices) const;

  std::string name_;
  int64_t dim_, num_routing_tokens_;
  bool straight_through_;
  std::optional<double> cosine_sim_scale_;  // set: cosine-similarity logits (CoordinateDescentRouter)
};

// ---------------------------------------------------------------------------------------------
// CoordinateDescentRouter(dim, straight_through = True, n_iters = 50, fetch_k_ratio = 9 / 8,
//                         eps = 1., num_routing_tokens = 1, use_triton = False)
struct CoordinateDescentRouterOptions {
  bool straight_through = true;
  int64_t n_iters = 50;              // >= 1
  double fetch_k_ratio = 9.0 / 8.0;  // >= 1
  double eps = 1.0;                  // > 0
  std::optional<double> eps_init;    // eps-scaling's first eps (> 0); none: no scaling (0.4.8)
  double eps_decay = 1.0;            // in (0, 1]
  int64_t num_routing_tokens = 1;    // >= 1
  bool use_triton = false;           // accepted, no effect (see the file comment)
  bool cosine_sim_routing = false;   // 0.11.1: score with unit vectors, times cosine_sim_scale
  double cosine_sim_scale = 8.0;     // > 0, finite
  // 0.11.1: route evenly from blocks of this many tokens (see CoordinateDescentRouter::forward).
  std::optional<int64_t> route_block_size;
  // 0.11.1: no routing_token parameter; every forward call passes RouteCallOptions::routing_tokens
  // (for instance tokens another part of the model computes from its input).
  bool learned_routing_tokens = false;
};

// 0.11.1's per-call keyword arguments of CoordinateDescentRouter.forward.
struct RouteCallOptions {
  // The negative control: coordinate descent's scores are replaced by N(0, 1) noise (masked
  // entries -finfo.max) before the top-k, so the picks are random and the routing token gets no
  // gradient. Noise from `generator` (the default generator if null).
  bool random_route = false;
  Generator* generator = nullptr;
  // With one route, return [b, 1, k] instead of [b, k] (as with several routes).
  bool keep_one_route_dim = false;
  // The routing tokens of this call, [b, d] (one route) or [b, r, d]: s = einsum('b n d, b r d ->
  // b r n'). Required by, and only accepted by, a router built with learned_routing_tokens.
  Tensor routing_tokens;
};

// 0.11.1's RouterReturn: what its router's forward returns.
struct RouterReturn {
  Tensor indices;        // [b, k] / [b, r, k]; undefined when nothing was routed (n <= num_tokens)
  Tensor scores;         // the same shape; ones when nothing was routed ([b, n] / [b, r, n])
  Tensor routed_tokens;  // x at the indices: [b, k, d] / [b, r, k, d] (x itself, or per route, if not routed)
  Tensor routed_mask;    // the mask at the indices (undefined without a mask)
};

class CoordinateDescentRouter : public Router {
public:
  CoordinateDescentRouter(int64_t dim, const CoordinateDescentRouterOptions& opts = {}, Generator* gen = nullptr);
  // forward: num_tokens must be <= n (torch.topk's limit).
  // The same with 0.11.1's per-call options, and route_block_size: with blocks of w tokens,
  // x is cut to its first nb = n // w whole blocks (nb >= 1), each block routes ceil(num_tokens /
  // nb) tokens on its own (the same scores, eps schedule and k ratio, per block), and the picks
  // are concatenated block after block with the indices shifted to sequence positions:
  // scores / indices [b, nb ceil(num_tokens / nb)] (or [b, r, ...]).
  // forward_logits does not take route_block_size (it throws when the option is set).
  RouterOutput forward(const Tensor& x, int64_t num_tokens, const Tensor& mask = Tensor()) override {
    return forward(x, num_tokens, mask, RouteCallOptions{});
  }
  RouterOutput forward(const Tensor& x, int64_t num_tokens, const Tensor& mask, const RouteCallOptions& call);
  // 0.11.1's forward in full: no routing when n <= num_tokens (every token, scores 1, indices
  // undefined; [b, r, ...] when there are several routes or keep_one_route_dim), else forward's
  // routing, and the routed tokens and mask gathered at the indices (per route, from x's own
  // batch row: 0.11.1 gathers rows >= 1 of a multi-route batch from the wrong row).
  RouterReturn route_tokens(const Tensor& x, int64_t num_tokens, const Tensor& mask = Tensor(),
                            const RouteCallOptions& call = {});
  const CoordinateDescentRouterOptions& options() const { return opts_; }

protected:
  RouterOutput route(const Prepared& p, int64_t num_tokens) override;

private:
  RouterOutput route_scores(const Prepared& p, int64_t num_tokens, const RouteCallOptions& call);
  CoordinateDescentRouterOptions opts_;
};

// ---------------------------------------------------------------------------------------------
// DifferentiableTopKRouter(dim, straight_through = True, temperature = 1., num_routing_tokens = 1)
struct DifferentiableTopKRouterOptions {
  bool straight_through = true;
  double temperature = 1.0;        // > 0
  int64_t num_routing_tokens = 1;  // >= 1
};

class DifferentiableTopKRouter : public Router {
public:
  DifferentiableTopKRouter(int64_t dim, const DifferentiableTopKRouterOptions& opts = {}, Generator* gen = nullptr);
  // forward: num_tokens > n picks all n (the reference's t[:, -num_tokens:]).
  const DifferentiableTopKRouterOptions& options() const { return opts_; }

protected:
  RouterOutput route(const Prepared& p, int64_t num_tokens) override;

private:
  DifferentiableTopKRouterOptions opts_;
};

// ---------------------------------------------------------------------------------------------
// SinkhornRouter(dim, straight_through = True, n_iters = 8, temperature = 0.7, num_routing_tokens = 1)
struct SinkhornRouterOptions {
  bool straight_through = true;
  int64_t n_iters = 8;             // >= 0
  double temperature = 0.7;        // > 0
  int64_t num_routing_tokens = 1;  // >= 1
};

class SinkhornRouter : public Router {
public:
  SinkhornRouter(int64_t dim, const SinkhornRouterOptions& opts = {}, Generator* gen = nullptr);
  // forward: num_tokens is capped at n (as the reference). The Gumbel noise comes from
  // `noise_generator` (the default generator when null).

  // scatter_mean, see the file comment.
  Tensor route_back(const Tensor& src, const Tensor& routed, const Tensor& indices) const override;
  const SinkhornRouterOptions& options() const { return opts_; }

  Generator* noise_generator = nullptr;

protected:
  RouterOutput route(const Prepared& p, int64_t num_tokens) override;

private:
  SinkhornRouterOptions opts_;
};

// ---------------------------------------------------------------------------------------------
// The routed modules' `router_type` + `router_kwargs`. Each router accepts only its own keyword
// arguments (as Python would raise a TypeError): coor_descent takes n_iters, fetch_k_ratio, eps,
// use_triton; cum_softmax takes temperature; sinkhorn takes n_iters, temperature. Anything else
// set here is an Error naming the keyword. straight_through and num_routing_tokens come from the
// module's own options.
struct RouterKwargs {
  std::optional<int64_t> n_iters;
  std::optional<double> fetch_k_ratio;
  std::optional<double> eps;
  std::optional<double> temperature;
  std::optional<bool> use_triton;
  // 0.11.1's CoordinateDescentRouter keyword arguments
  std::optional<double> eps_init;
  std::optional<double> eps_decay;
  std::optional<bool> cosine_sim_routing;
  std::optional<double> cosine_sim_scale;
  std::optional<int64_t> route_block_size;

  // CoLT5-attention 0.11.1's CoordinateDescentRouter defaults: n_iters 20, eps 0.03, eps_init 4,
  // eps_decay 0.7 (0.4.8's, the defaults here, are 50 iterations at eps 1).
  static RouterKwargs v0_11_1() {
    RouterKwargs k;
    k.n_iters = 20, k.eps = 0.03, k.eps_init = 4.0, k.eps_decay = 0.7;
    return k;
  }
  // Every field of *this that is set, the others from `defaults` (Python's {**defaults, **this}).
  RouterKwargs or_defaults(const RouterKwargs& defaults) const;
};

// router_type: "coor_descent", "cum_softmax" or "sinkhorn" (the reference's ROUTERS keys).
// `owner` names the module in error messages.
std::shared_ptr<Router> make_router(const std::string& router_type, int64_t dim, bool straight_through,
                                    int64_t num_routing_tokens, const RouterKwargs& kwargs, Generator* gen,
                                    const char* owner);

// Throws unless router_type is one of the three names.
void check_router_type(const std::string& router_type, const char* owner);

// ---------------------------------------------------------------------------------------------
// Tie order (see "Tie order" above). Thread-local, like grad mode; TieOrder::Index by default.
enum class TieOrder { Index, TorchCPU };
TieOrder tie_order();
void set_tie_order(TieOrder order);

// Parity mode in a scope: `TieOrderGuard parity(TieOrder::TorchCPU);` (golden_parity, the
// fixture tests, the benchmark's check against the reference).
class TieOrderGuard {
public:
  explicit TieOrderGuard(TieOrder order) : prev_(tie_order()) { set_tie_order(order); }
  ~TieOrderGuard() { set_tie_order(prev_); }
  TieOrderGuard(const TieOrderGuard&) = delete;
  TieOrderGuard& operator=(const TieOrderGuard&) = delete;

private:
  TieOrder prev_;
};

// What the routers call: values [R, n] floating -> int64 [R, k] (the k largest, descending) /
// [R, n] (ascending), on values' device, in the current tie order.
Tensor route_topk_indices(const Tensor& values, int64_t k);
Tensor route_sort_indices(const Tensor& values);

// torch's CPU orders (TieOrder::TorchCPU), computed on the host; results are int64 on values'
// device. values: [R, n] floating.
//   topk_indices_torch_order: the k largest per row, as torch.topk(values, k, dim=-1).indices
//   sort_indices_torch_order: ascending, as torch.sort(values, dim=-1).indices (stable=False)
Tensor topk_indices_torch_order(const Tensor& values, int64_t k);
Tensor sort_indices_torch_order(const Tensor& values);

// x [b, n, d], indices int64 [b, k] or [b, r, k] -> x[batch_range, indices]: [b, k, d] or
// [b, r, k, d] (differentiable in x). Also works for x [b, n] (masks): [b, k] / [b, r, k].
Tensor batched_gather(const Tensor& x, const Tensor& indices);

}  // namespace colt5::nn
