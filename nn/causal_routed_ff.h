// CausalRoutedFeedForward: a routed feedforward that is safe for autoregressive models.
//
// Why a different router. ConditionalRoutedFeedForward picks the top-k tokens of the WHOLE
// sequence (coordinate descent normalises every score against every other one), so whether token
// s goes through the heavy feedforward depends on the scores of tokens after s: in a language
// model, a future token would change the prediction at an earlier position. Here every routing
// decision depends only on the token itself and the tokens before it:
//
//   light = light_ff(x)                                       every token (FeedForward(dim, light_ff_mult))
//   s_i   = routing_token . x_i,   g_i = sigmoid(s_i)          one score per token, no normalisation
//   token i is heavy  <=>  s_i > 0  and fewer than k earlier tokens of its window (positions
//                         [w*floor(i/w), i)) are heavy        (a causal capacity of k per w tokens)
//   heavy_i = heavy_ff(x_i) * (g_i + (1 - g_i).detach())  for heavy tokens, 0 for the others
//   out = light + heavy
//
// The capacity keeps the heavy compute at most k / w of a dense heavy feedforward, as CoLT5's
// top-k does, but fills first-come-first-served: a token can only lose its place to an EARLIER
// token. The scale uses the straight-through form of CoLT5's routers: its value is 1 and its
// gradient is that of the gate g_i, which is how the router learns (tokens that are not picked
// get no routing gradient, as in CoLT5). tests/test_models.cpp checks that changing token t
// leaves every output before t bit-identical.
//
// Dims: x [b, n, dim] -> [b, n, dim]. The picks are made on the scores' device with fixed shapes
// (no host wait): each window has k slots, slot j holding the window's j-th heavy token or
// nothing (causal_slots, from a cumulative count of the positive scores per window); the heavy
// feedforward runs on the b * k * ceil(n / w) slots, an empty slot contributing exactly 0.
//
// Parameters: "routing_token" [1, dim] ~ N(0, 1), "light_ff", "heavy_ff" (FeedForward).
#pragma once

#include <cstdint>
#include <memory>

#include "nn/layers.h"
#include "nn/module.h"

namespace colt5::nn {

struct CausalRoutedFeedForwardOptions {
  int64_t num_heavy_tokens = 0;  // k, required >= 1: heavy tokens per window
  int64_t window_size = 0;       // w, required >= 1
  double light_ff_mult = 0.5;
  double heavy_ff_mult = 4.0;
  bool straight_through = true;  // false: heavy outputs are scaled by g_i itself
};

class CausalRoutedFeedForward : public Module {
public:
  CausalRoutedFeedForward(int64_t dim, const CausalRoutedFeedForwardOptions& opts, Generator* gen = nullptr);

  Tensor forward(const Tensor& x) const;  // [b, n, dim] -> [b, n, dim]
  Tensor operator()(const Tensor& x) const { return forward(x); }

  // The causal picks for router scores s [b, n] (CPU, float): flat indices b * n + i of the heavy
  // tokens, ascending. Public so tests and the walkthrough can inspect the rule.
  // causal_picks is the rule written as a loop on the host (the tests' oracle); causal_slots is
  // what forward uses, on scores' device: int64 [b, ceil(n / w) * k], slot u * k + j holding the
  // flat index of window u's j-th heavy token (ascending), or -1 when the window has fewer.
  static std::vector<int64_t> causal_picks(const Tensor& scores, int64_t num_heavy_tokens, int64_t window_size);
  static Tensor causal_slots(const Tensor& scores, int64_t num_heavy_tokens, int64_t window_size);

  int64_t dim() const { return dim_; }
  const CausalRoutedFeedForwardOptions& options() const { return opts_; }

  // false: forward returns the light branch only (the heavy-off ablation).
  bool heavy_enabled = true;

  Tensor routing_token;                   // [1, dim] "routing_token"
  std::shared_ptr<FeedForward> light_ff;  // "light_ff"
  std::shared_ptr<FeedForward> heavy_ff;  // "heavy_ff"

private:
  int64_t dim_;
  CausalRoutedFeedForwardOptions opts_;
};

}  // namespace colt5::nn
