// The five public CoLT5 modules (CoLT5-attention 0.4.8's transformer_block.py): a light branch
// that sees every token and a heavy branch that sees only the tokens a router picks.
//
// Dims legend: b batch, n sequence length, dim model width, kq / kkv routed query / key-value
// tokens per route, r key / value routes, w heavy window (autoregressive), m context length.
//
// ConditionalRoutedFeedForward (router "router", "light_ff", "heavy_ff"):
//   light = light_ff(x)                                          FeedForward(dim, light_ff_mult)
//   scores, idx = router(x, num_heavy_tokens, mask)              [b, kq]
//   heavy = route_back(zeros_like(x), heavy_ff(x[idx]) * scores[..., None], idx)
//   out = light + heavy
// ConditionalRoutedAttention ("light_attn", "null_q_token", "q_router", "kv_router", "heavy_attn"):
//   light = LocalMHA(window_size = light_window_size // 2, prenorm, non-causal, look 1 / 1)(x, mask)
//   q_router picks kq queries, kv_router (num_routed_kv routes) picks kkv keys / values per route;
//   o = heavy_attn(x[idx_q], context = x[idx_kv], mask = mask[idx_kv], normalized_scores_kv,
//                  normalized_scores_q if multiply_queries_by_score) * scores_q[..., None]
//   heavy = route_back(null_q_token broadcast to x (or zeros), o, idx_q);  out = light + heavy
// ConditionalRoutedAutoregressiveAttention (same children; causal light branch):
//   light = LocalMHA(window_size = light_window_size, causal; exact_windowsize left at LocalMHA's
//           default, true: 0.4.8 does not pass it, later releases pass False)(x)
//   x is zero-padded to a multiple of w = heavy_window_size (default light_window_size) and cut
//   into windows; the queries of window i >= 1 are routed within their window (padding masked
//   out), and attend to keys / values routed from all of windows 0 .. i-1: the reference routes
//   over an [N]-long copy of the padded sequence per query window, masked from the window start
//   on. Here the same routing is done without the copies: kv_router's logits are computed once
//   per token, repeated per query window as rows of N scalars, routed under each window's prefix
//   mask (Router::forward_logits: the same candidates, scores, mask and tie order as the copy),
//   and the heavy keys / values are projected once per token (Attention::project_context) and
//   the picked rows gathered by index, so each token is normed and projected once, not once per
//   window that picks it. Memory O(b N dim + b windows (r N + r kkv dim)) instead of
//   O(b windows N dim). Routing is skipped
//   (every token taken, scores 1) where a window has <= num_heavy_tokens_q queries, resp. the
//   padded length is <= num_heavy_tokens_kv. The outputs of windows 1.. are placed back, window
//   0 gets 0 from the heavy branch; out = light + heavy. (A sequence of at most one window has
//   no heavy part: out = light. The reference fails on a sequence shorter than one window.)
// ConditionalRoutedCrossAttention ("null_q_token", "q_router", "kv_router", "heavy_attn"):
//   queries routed from x when n > num_tokens_q, keys / values from context when
//   m > num_tokens_kv (kv_routing_tokens routes); o = heavy_attn(x', context', context_mask',
//   normalized_scores_kv); with routed queries o is scaled by their scores and put back over
//   null_q_token (or zeros); otherwise o itself is the output.
// ConditionalRoutedTransformerBlock ("conditional_ff", "conditional_attn"):
//   x = conditional_attn(x, mask) + x;  x = conditional_ff(x, mask) + x.
//
// Options structs: fields and defaults are the reference's keyword arguments. The required
// ones (num_heavy_tokens*, num_tokens_*) default to 0 and must be set (>= 1). Per-call
// overrides of the numbers of heavy tokens are std::optional arguments of forward (the
// reference's keyword arguments of the same names). Accepted with no effect here: use_triton
// (no Triton; coor_descent has its own fused backward), use_flash_attn (same math computed
// densely), num_sets_kv (unused by 0.4.8 itself).
//
// Inputs: x [b, n, dim] floating, of the parameters' dtype and device; masks bool [b, n]
// (True = keep). Invalid options or inputs throw colt5::Error naming the option / argument.
// Parameters are created float32 on the CPU (convert with Module::to); random initialisation
// draws from the Generator passed in, or the default generator.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "nn/attention.h"
#include "nn/layers.h"
#include "nn/local_attention.h"
#include "nn/module.h"
#include "nn/routers.h"

namespace colt5::nn {

// Option checks of the routed modules (here and in nn/image.h): `op` names the module, `name`
// the option, in the Error's message.
void check_option_min(int64_t v, int64_t lo, const char* op, const char* name);
// routes >= 1 and heads divisible by routes (heads are split evenly between key/value routes).
void check_divisible(int64_t heads, const char* heads_name, int64_t routes, const char* routes_name, const char* op);

// ---------------------------------------------------------------------------------------------
struct ConditionalRoutedFeedForwardOptions {
  int64_t num_heavy_tokens = 0;  // required, >= 1
  double light_ff_mult = 0.5;
  double heavy_ff_mult = 4.0;
  bool router_straight_through = true;
  std::string router_type = "coor_descent";
  RouterKwargs router_kwargs = {};
  bool use_triton = false;
};

class ConditionalRoutedFeedForward : public Module {
public:
  ConditionalRoutedFeedForward(int64_t dim, const ConditionalRoutedFeedForwardOptions& opts,
                               Generator* gen = nullptr);

  // x [b, n, dim], mask [b, n] or undefined -> [b, n, dim].
  Tensor forward(const Tensor& x, const Tensor& mask = Tensor(),
                 std::optional<int64_t> num_heavy_tokens = std::nullopt) const;
  Tensor operator()(const Tensor& x, const Tensor& mask = Tensor(),
                    std::optional<int64_t> num_heavy_tokens = std::nullopt) const {
    return forward(x, mask, num_heavy_tokens);
  }

  int64_t dim() const { return dim_; }
  const ConditionalRoutedFeedForwardOptions& options() const { return opts_; }

  // false: forward returns the light branch only (the heavy-off ablation; not in the reference).
  bool heavy_enabled = true;

  std::shared_ptr<Router> router;         // "router"
  std::shared_ptr<FeedForward> light_ff;  // "light_ff"
  std::shared_ptr<FeedForward> heavy_ff;  // "heavy_ff"

private:
  int64_t dim_;
  ConditionalRoutedFeedForwardOptions opts_;
};

// ---------------------------------------------------------------------------------------------
struct ConditionalRoutedAttentionOptions {
  int64_t num_heavy_tokens_q = 0;   // required, >= 1
  int64_t num_heavy_tokens_kv = 0;  // required, >= 1
  int64_t num_routed_kv = 1;        // key / value routes; heavy_heads must be divisible by it
  int64_t light_dim_head = 64;
  int64_t light_heads = 8;
  int64_t light_window_size = 128;  // the light LocalMHA's window is light_window_size // 2 (>= 1)
  int64_t heavy_dim_head = 64;
  int64_t heavy_heads = 8;
  bool router_straight_through = true;
  std::string router_type = "coor_descent";
  RouterKwargs router_kwargs = {};
  bool multiply_keys_by_score = false;
  bool multiply_queries_by_score = false;
  bool use_triton = false;
  bool use_null_q_tokens = true;
  bool use_flash_attn = false;
  // Not a reference option: rotary positions in the light LocalMHA (its use_rotary_pos_emb, which
  // every CoLT5 release passes as False), a relative position signal for the light branch; see
  // nn/local_attention.h and nn/rotary.h. Needs an even light_dim_head.
  bool light_use_rotary_pos_emb = false;
  // 0.11.1: has_light_attn = false drops the light branch (out = heavy); rotary_emb = true rotates
  // the heavy queries and keys at their positions in the sequence (the routed indices gathered
  // from RotaryEmbedding(heavy_dim_head), buffer "rotary_emb.inv_freq"; heavy_dim_head even).
  bool has_light_attn = true;
  bool rotary_emb = false;
};

// The heavy half shared by the three routed attentions: an optional learned null query token
// (what routed-out positions read before the heavy output is scattered back), a router for the
// queries and one for the keys/values, and the heavy Attention — registered in this order, after
// whatever the derived class registered first (the light branch), as in the reference.
class RoutedHeavyBranch : public Module {
public:
  // false: the routed self-attentions return their light branch only (the heavy-off ablation;
  // not in the reference; the cross attention, which has no light branch, ignores it).
  bool heavy_enabled = true;

  Tensor null_q_token;                    // [dim] "null_q_token" (use_null_q_tokens only)
  std::shared_ptr<Router> q_router;       // "q_router"
  std::shared_ptr<Router> kv_router;      // "kv_router"
  std::shared_ptr<Attention> heavy_attn;  // "heavy_attn"

protected:
  struct HeavyBranchOptions {
    std::string router_type;
    RouterKwargs router_kwargs;
    bool use_triton = false;
    bool router_straight_through = true;
    bool use_null_q_tokens = true;
    int64_t kv_routes = 1;  // routing tokens of the kv router (heads are split between them)
    int64_t dim_head = 64;
    int64_t heads = 8;
    bool multiply_keys_by_score = false;
    bool use_flash_attn = false;
  };
  void build_heavy_branch(int64_t dim, const HeavyBranchOptions& h, Generator* gen, const char* op);
  // The source route_back writes into: null_q_token broadcast to `like` [.., .., dim], or zeros.
  static Tensor route_back_source(const Tensor& null_q_token, const Tensor& like);
  // The heavy-branch part of ConditionalRoutedAttentionOptions or
  // ConditionalRoutedAutoregressiveAttentionOptions (the two name these fields alike).
  template <class SelfAttentionOptions>
  static HeavyBranchOptions self_attention_heavy_options(const SelfAttentionOptions& o);
};

class ConditionalRoutedAttention : public RoutedHeavyBranch {
public:
  ConditionalRoutedAttention(int64_t dim, const ConditionalRoutedAttentionOptions& opts, Generator* gen = nullptr);

  // x [b, n, dim], mask [b, n] or undefined -> [b, n, dim].
  Tensor forward(const Tensor& x, const Tensor& mask = Tensor(),
                 std::optional<int64_t> num_heavy_tokens_q = std::nullopt,
                 std::optional<int64_t> num_heavy_tokens_kv = std::nullopt) const;
  Tensor operator()(const Tensor& x, const Tensor& mask = Tensor(),
                    std::optional<int64_t> num_heavy_tokens_q = std::nullopt,
                    std::optional<int64_t> num_heavy_tokens_kv = std::nullopt) const {
    return forward(x, mask, num_heavy_tokens_q, num_heavy_tokens_kv);
  }

  int64_t dim() const { return dim_; }
  const ConditionalRoutedAttentionOptions& options() const { return opts_; }

  std::shared_ptr<LocalMHA> light_attn;         // "light_attn" (has_light_attn only)
  std::shared_ptr<RotaryEmbedding> rotary_emb;  // "rotary_emb" (rotary_emb only)

private:
  int64_t dim_;
  ConditionalRoutedAttentionOptions opts_;
};

// ---------------------------------------------------------------------------------------------
struct ConditionalRoutedAutoregressiveAttentionOptions {
  int64_t num_heavy_tokens_q = 0;   // required, >= 1
  int64_t num_heavy_tokens_kv = 0;  // required, >= 1
  int64_t num_routed_kv = 1;
  int64_t light_dim_head = 64;
  int64_t light_heads = 8;
  int64_t light_window_size = 128;
  std::optional<int64_t> heavy_window_size;  // default: light_window_size; >= 1
  int64_t heavy_dim_head = 64;
  int64_t heavy_heads = 8;
  bool router_straight_through = true;
  std::string router_type = "coor_descent";
  RouterKwargs router_kwargs = {};
  bool multiply_keys_by_score = false;
  bool multiply_queries_by_score = false;
  bool use_triton = false;
  bool use_null_q_tokens = true;
  bool use_flash_attn = false;
  // Not a reference option: rotary positions in the light LocalMHA (its use_rotary_pos_emb, which
  // every CoLT5 release passes as False), a relative position signal for the light branch; see
  // nn/local_attention.h and nn/rotary.h. Needs an even light_dim_head.
  bool light_use_rotary_pos_emb = false;
  // The light LocalMHA's exact_windowsize: 0.4.8 leaves LocalMHA's default (true), 0.11.1 passes
  // False (a causal query then also sees the whole window lb windows back).
  bool light_exact_windowsize = true;
  // 0.11.1: rotate the heavy queries and keys at their sequence positions (RotaryEmbedding(
  // heavy_dim_head), buffer "rotary_emb.inv_freq"; heavy_dim_head even).
  bool rotary_emb = false;
};

class ConditionalRoutedAutoregressiveAttention : public RoutedHeavyBranch {
public:
  ConditionalRoutedAutoregressiveAttention(int64_t dim, const ConditionalRoutedAutoregressiveAttentionOptions& opts,
                                           Generator* gen = nullptr);

  // x [b, n, dim] -> [b, n, dim] (no mask, as the reference).
  Tensor forward(const Tensor& x, std::optional<int64_t> num_heavy_tokens_q = std::nullopt,
                 std::optional<int64_t> num_heavy_tokens_kv = std::nullopt) const;
  Tensor operator()(const Tensor& x, std::optional<int64_t> num_heavy_tokens_q = std::nullopt,
                    std::optional<int64_t> num_heavy_tokens_kv = std::nullopt) const {
    return forward(x, num_heavy_tokens_q, num_heavy_tokens_kv);
  }

  int64_t dim() const { return dim_; }
  int64_t heavy_window_size() const { return heavy_window_size_; }
  const ConditionalRoutedAutoregressiveAttentionOptions& options() const { return opts_; }

  std::shared_ptr<LocalMHA> light_attn;   // "light_attn"
  std::shared_ptr<RotaryEmbedding> rotary_emb;  // "rotary_emb" (rotary_emb only)

private:
  int64_t dim_, heavy_window_size_;
  ConditionalRoutedAutoregressiveAttentionOptions opts_;
};

// ---------------------------------------------------------------------------------------------
struct ConditionalRoutedCrossAttentionOptions {
  int64_t num_tokens_q = 0;   // required, >= 1
  int64_t num_tokens_kv = 0;  // required, >= 1
  int64_t num_sets_kv = 1;    // accepted (>= 1); 0.4.8 does not use it
  int64_t dim_head = 64;
  int64_t heads = 8;
  bool router_straight_through = true;
  std::string router_type = "coor_descent";
  RouterKwargs router_kwargs = {};
  int64_t kv_routing_tokens = 1;  // key / value routes; heads must be divisible by it
  bool multiply_keys_by_score = false;
  bool use_triton = false;
  bool use_null_q_tokens = true;
  bool use_flash_attn = false;
};

class ConditionalRoutedCrossAttention : public RoutedHeavyBranch {
public:
  ConditionalRoutedCrossAttention(int64_t dim, const ConditionalRoutedCrossAttentionOptions& opts,
                                  Generator* gen = nullptr);

  // x [b, n, dim], context [b, m, dim], mask [b, n], context_mask [b, m] -> [b, n, dim].
  Tensor forward(const Tensor& x, const Tensor& context, const Tensor& mask = Tensor(),
                 const Tensor& context_mask = Tensor(), std::optional<int64_t> num_tokens_q = std::nullopt,
                 std::optional<int64_t> num_tokens_kv = std::nullopt) const;
  Tensor operator()(const Tensor& x, const Tensor& context, const Tensor& mask = Tensor(),
                    const Tensor& context_mask = Tensor(), std::optional<int64_t> num_tokens_q = std::nullopt,
                    std::optional<int64_t> num_tokens_kv = std::nullopt) const {
    return forward(x, context, mask, context_mask, num_tokens_q, num_tokens_kv);
  }

  int64_t dim() const { return dim_; }
  const ConditionalRoutedCrossAttentionOptions& options() const { return opts_; }


private:
  int64_t dim_;
  ConditionalRoutedCrossAttentionOptions opts_;
};

// ---------------------------------------------------------------------------------------------
struct ConditionalRoutedTransformerBlockOptions {
  int64_t num_heavy_attn_tokens_q = 0;   // required, >= 1
  int64_t num_heavy_attn_tokens_kv = 0;  // required, >= 1
  int64_t num_routed_kv = 1;
  int64_t num_heavy_ff_tokens = 0;       // required, >= 1
  int64_t light_dim_head = 64;
  int64_t light_heads = 8;
  int64_t light_window_size = 128;
  int64_t heavy_dim_head = 64;
  int64_t heavy_heads = 8;
  double light_ff_mult = 0.5;
  double heavy_ff_mult = 4.0;
  bool router_straight_through = true;
  std::string router_type = "coor_descent";
  RouterKwargs router_kwargs = {};
  bool multiply_keys_by_score = false;
  bool multiply_queries_by_score = false;
  bool use_triton = false;
  bool use_null_q_tokens = true;
  bool use_flash_attn = false;
  // Not a reference option: rotary positions in the light LocalMHA (its use_rotary_pos_emb, which
  // every CoLT5 release passes as False), a relative position signal for the light branch; see
  // nn/local_attention.h and nn/rotary.h. Needs an even light_dim_head.
  bool light_use_rotary_pos_emb = false;
};

class ConditionalRoutedTransformerBlock : public Module {
public:
  ConditionalRoutedTransformerBlock(int64_t dim, const ConditionalRoutedTransformerBlockOptions& opts,
                                    Generator* gen = nullptr);

  // x [b, n, dim], mask [b, n] or undefined -> [b, n, dim].
  Tensor forward(const Tensor& x, const Tensor& mask = Tensor(),
                 std::optional<int64_t> num_heavy_attn_tokens_q = std::nullopt,
                 std::optional<int64_t> num_heavy_attn_tokens_kv = std::nullopt,
                 std::optional<int64_t> num_heavy_ff_tokens = std::nullopt) const;
  Tensor operator()(const Tensor& x, const Tensor& mask = Tensor(),
                    std::optional<int64_t> num_heavy_attn_tokens_q = std::nullopt,
                    std::optional<int64_t> num_heavy_attn_tokens_kv = std::nullopt,
                    std::optional<int64_t> num_heavy_ff_tokens = std::nullopt) const {
    return forward(x, mask, num_heavy_attn_tokens_q, num_heavy_attn_tokens_kv, num_heavy_ff_tokens);
  }

  int64_t dim() const { return dim_; }
  const ConditionalRoutedTransformerBlockOptions& options() const { return opts_; }

  std::shared_ptr<ConditionalRoutedFeedForward> conditional_ff;  // "conditional_ff"
  std::shared_ptr<ConditionalRoutedAttention> conditional_attn;  // "conditional_attn"

private:
  int64_t dim_;
  ConditionalRoutedTransformerBlockOptions opts_;
};

}  // namespace colt5::nn
