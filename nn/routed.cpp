// The CoLT5 routed modules (see nn/routed.h for the math of each).
//
// Gradients are autograd's: the routed branch is gather -> heavy module -> times the router's
// scores -> scatter back (route_back), and every piece is a differentiable op. The unpicked
// positions of route_back's source get its gradient (null_q_token collects the gradient of every
// query the router did not pick).
#include "nn/routed.h"

#include <utility>
#include <vector>

#include "autograd/ops.h"

namespace colt5::nn {

namespace {

// x [b, n, dim] floating, with `param`'s dtype and device.
void check_x(const Tensor& x, int64_t dim, const Tensor& param, const char* op, const char* arg) {
  COLT5_CHECK(x.defined(), op, ": argument '", arg, "' is undefined");
  check_floating(x, op, arg);
  COLT5_CHECK(x.dim() == 3, op, ": argument '", arg, "' expected rank 3 [batch, n, dim], got shape ", x.shape());
  COLT5_CHECK(x.size(2) == dim, op, ": argument '", arg, "' expected feature size ", dim, " in dim 2, got ",
              x.size(2));
  COLT5_CHECK(x.size(1) >= 1, op, ": argument '", arg, "' expected a sequence length >= 1, got shape ", x.shape());
  COLT5_CHECK(x.dtype() == param.dtype(), op, ": argument '", arg, "' expected dtype ", dtype_name(param.dtype()),
              " (the parameters'), got ", dtype_name(x.dtype()));
  check_same_device({param, x}, op);
}

// mask bool [b, n] matching x, or undefined.
void check_mask(const Tensor& mask, const Tensor& x, const char* op, const char* arg) {
  if (!mask.defined()) return;
  check_dtype(mask, DType::Bool, op, arg);
  const Shape want = {x.size(0), x.size(1)};
  COLT5_CHECK(mask.shape() == want, op, ": argument '", arg, "' expected shape ", want, ", got ", mask.shape());
  check_same_device({x, mask}, op);
}

int64_t tokens(std::optional<int64_t> v, int64_t fallback, const char* op, const char* name) {
  const int64_t k = v.value_or(fallback);
  COLT5_CHECK(k >= 1, op, ": argument '", name, "' expected >= 1, got ", k);
  return k;
}

}  // namespace

void check_option_min(int64_t v, int64_t lo, const char* op, const char* name) {
  COLT5_CHECK(v >= lo, op, ": option '", name, "' expected >= ", lo, ", got ", v);
}

void check_divisible(int64_t heads, const char* heads_name, int64_t routes, const char* routes_name, const char* op) {
  COLT5_CHECK(routes >= 1, op, ": option '", routes_name, "' expected >= 1, got ", routes);
  COLT5_CHECK(heads % routes == 0, op, ": option '", heads_name, "' (", heads, ") must be divisible by option '",
              routes_name, "' (", routes, ")");
}

Tensor RoutedHeavyBranch::route_back_source(const Tensor& null_q_token, const Tensor& like) {
  if (!null_q_token.defined()) return zeros_like(like);
  return null_q_token.reshape({1, 1, null_q_token.numel()}).expand(like.shape());
}

// ---------------------------------------------------------------------------------------------
// ConditionalRoutedFeedForward

ConditionalRoutedFeedForward::ConditionalRoutedFeedForward(int64_t dim, const ConditionalRoutedFeedForwardOptions& o,
                                                           Generator* gen)
    : dim_(dim), opts_(o) {
  const char* op = "ConditionalRoutedFeedForward";
  check_option_min(dim, 1, op, "dim");
  check_option_min(o.num_heavy_tokens, 1, op, "num_heavy_tokens");
  check_router_type(o.router_type, op);
  RouterKwargs kw = o.router_kwargs;
  if (o.router_type == "coor_descent" && o.use_triton) kw.use_triton = true;
  router = register_module("router", make_router(o.router_type, dim, o.router_straight_through, 1, kw, gen, op));
  FeedForwardOptions lo, ho;
  lo.mult = o.light_ff_mult;
  ho.mult = o.heavy_ff_mult;
  light_ff = register_module("light_ff", std::make_shared<FeedForward>(dim, lo, gen));
  heavy_ff = register_module("heavy_ff", std::make_shared<FeedForward>(dim, ho, gen));
}

Tensor ConditionalRoutedFeedForward::forward(const Tensor& x, const Tensor& mask,
                                             std::optional<int64_t> num_heavy_tokens) const {
  const char* op = "ConditionalRoutedFeedForward";
  check_x(x, dim_, router->routing_token, op, "x");
  check_mask(mask, x, op, "mask");
  const int64_t k = tokens(num_heavy_tokens, opts_.num_heavy_tokens, op, "num_heavy_tokens");

  Tensor light = light_ff->forward(x);  // [b, n, dim]
  if (!heavy_enabled) return light;
  RouterOutput r = router->forward(x, k, mask);
  Tensor routed = batched_gather(x, r.indices);                          // [b, k, dim]
  Tensor routed_out = heavy_ff->forward(routed) * r.scores.unsqueeze(-1);  // [b, k, dim]
  Tensor heavy = router->route_back(zeros_like(x), routed_out, r.indices);
  return light + heavy;
}

// ---------------------------------------------------------------------------------------------
// RoutedHeavyBranch

void RoutedHeavyBranch::build_heavy_branch(int64_t dim, const HeavyBranchOptions& h, Generator* gen,
                                           const char* op) {
  RouterKwargs kw = h.router_kwargs;
  if (h.router_type == "coor_descent" && h.use_triton) kw.use_triton = true;
  if (h.use_null_q_tokens) null_q_token = register_parameter("null_q_token", randn({dim}, DType::Float32, kCPU, gen));
  q_router = register_module("q_router", make_router(h.router_type, dim, h.router_straight_through, 1, kw, gen, op));
  kv_router = register_module("kv_router",
                              make_router(h.router_type, dim, h.router_straight_through, h.kv_routes, kw, gen, op));
  AttentionOptions ao;
  ao.dim = dim;
  ao.dim_head = h.dim_head;
  ao.heads = h.heads;
  ao.multiply_keys_by_score = h.multiply_keys_by_score;
  ao.use_flash = h.use_flash_attn;
  heavy_attn = register_module("heavy_attn", std::make_shared<Attention>(ao, gen));
}

template <class SelfAttentionOptions>
RoutedHeavyBranch::HeavyBranchOptions RoutedHeavyBranch::self_attention_heavy_options(const SelfAttentionOptions& o) {
  return {.router_type = o.router_type,
          .router_kwargs = o.router_kwargs,
          .use_triton = o.use_triton,
          .router_straight_through = o.router_straight_through,
          .use_null_q_tokens = o.use_null_q_tokens,
          .kv_routes = o.num_routed_kv,
          .dim_head = o.heavy_dim_head,
          .heads = o.heavy_heads,
          .multiply_keys_by_score = o.multiply_keys_by_score,
          .use_flash_attn = o.use_flash_attn};
}

// ---------------------------------------------------------------------------------------------
// ConditionalRoutedAttention

ConditionalRoutedAttention::ConditionalRoutedAttention(int64_t dim, const ConditionalRoutedAttentionOptions& o,
                                                       Generator* gen)
    : dim_(dim), opts_(o) {
  const char* op = "ConditionalRoutedAttention";
  check_option_min(dim, 1, op, "dim");
  check_option_min(o.num_heavy_tokens_q, 1, op, "num_heavy_tokens_q");
  check_option_min(o.num_heavy_tokens_kv, 1, op, "num_heavy_tokens_kv");
  COLT5_CHECK(o.light_window_size >= 2, op, ": option 'light_window_size' expected >= 2 (the light window is ",
              "light_window_size // 2), got ", o.light_window_size);
  check_option_min(o.heavy_heads, 1, op, "heavy_heads");
  check_divisible(o.heavy_heads, "heavy_heads", o.num_routed_kv, "num_routed_kv", op);
  check_router_type(o.router_type, op);

  LocalMHAOptions lo;
  lo.dim = dim;
  lo.dim_head = o.light_dim_head;
  lo.heads = o.light_heads;
  lo.window_size = o.light_window_size / 2;
  lo.prenorm = true;
  lo.causal = false;
  lo.use_rotary_pos_emb = o.light_use_rotary_pos_emb;
  lo.look_backward = 1;
  lo.look_forward = 1;
  if (o.has_light_attn) light_attn = register_module("light_attn", std::make_shared<LocalMHA>(lo, gen));
  build_heavy_branch(dim, self_attention_heavy_options(o), gen, op);
  if (o.rotary_emb) {
    COLT5_CHECK(o.heavy_dim_head % 2 == 0, op, ": option 'heavy_dim_head' expected an even value with rotary_emb, got ",
                o.heavy_dim_head);
    rotary_emb = register_module("rotary_emb", std::make_shared<RotaryEmbedding>(o.heavy_dim_head));
  }
}

Tensor ConditionalRoutedAttention::forward(const Tensor& x, const Tensor& mask,
                                           std::optional<int64_t> num_heavy_tokens_q,
                                           std::optional<int64_t> num_heavy_tokens_kv) const {
  const char* op = "ConditionalRoutedAttention";
  check_x(x, dim_, q_router->routing_token, op, "x");
  check_mask(mask, x, op, "mask");
  const int64_t kq = tokens(num_heavy_tokens_q, opts_.num_heavy_tokens_q, op, "num_heavy_tokens_q");
  const int64_t kkv = tokens(num_heavy_tokens_kv, opts_.num_heavy_tokens_kv, op, "num_heavy_tokens_kv");

  Tensor light = light_attn ? light_attn->forward(x, mask) : Tensor();  // [b, n, dim]
  if (!heavy_enabled) return light.defined() ? light : zeros_like(x);

  RouterOutput q = q_router->forward(x, kq, mask);     // [b, kq]
  RouterOutput kv = kv_router->forward(x, kkv, mask);  // [b, kkv] or [b, r, kkv]
  Tensor routed_q = batched_gather(x, q.indices);      // [b, kq, dim]
  Tensor routed_kv = batched_gather(x, kv.indices);    // [b, kkv, dim] or [b, r, kkv, dim]
  Tensor routed_kv_mask = mask.defined() ? batched_gather(mask, kv.indices) : Tensor();
  // rotary: every routed token at its own position (the indices), as 0.11.1 gathers them
  AttentionRotary rot;
  if (rotary_emb) rot = {rotary_emb->angles(q.indices), rotary_emb->angles(kv.indices)};

  Tensor out = heavy_attn->forward(routed_q, routed_kv, routed_kv_mask, kv.scores,
                                   opts_.multiply_queries_by_score ? q.scores : Tensor(), rot);
  out = out * q.scores.unsqueeze(-1);
  Tensor heavy = q_router->route_back(route_back_source(null_q_token, x), out, q.indices);
  return light.defined() ? light + heavy : heavy;
}

// ---------------------------------------------------------------------------------------------
// ConditionalRoutedAutoregressiveAttention

ConditionalRoutedAutoregressiveAttention::ConditionalRoutedAutoregressiveAttention(
    int64_t dim, const ConditionalRoutedAutoregressiveAttentionOptions& o, Generator* gen)
    : dim_(dim), heavy_window_size_(o.heavy_window_size.value_or(o.light_window_size)), opts_(o) {
  const char* op = "ConditionalRoutedAutoregressiveAttention";
  check_option_min(dim, 1, op, "dim");
  check_option_min(o.num_heavy_tokens_q, 1, op, "num_heavy_tokens_q");
  check_option_min(o.num_heavy_tokens_kv, 1, op, "num_heavy_tokens_kv");
  check_option_min(o.light_window_size, 1, op, "light_window_size");
  if (o.heavy_window_size) check_option_min(*o.heavy_window_size, 1, op, "heavy_window_size");
  check_option_min(o.heavy_heads, 1, op, "heavy_heads");
  check_divisible(o.heavy_heads, "heavy_heads", o.num_routed_kv, "num_routed_kv", op);
  check_router_type(o.router_type, op);

  LocalMHAOptions lo;
  lo.dim = dim;
  lo.dim_head = o.light_dim_head;
  lo.heads = o.light_heads;
  lo.window_size = o.light_window_size;
  lo.prenorm = true;
  lo.causal = true;
  // exact_windowsize: LocalMHA's default (true) unless light_exact_windowsize says otherwise; 0.4.8
  // does not pass it (and the golden fixture agrees), 0.11.1 passes False.
  lo.exact_windowsize = o.light_exact_windowsize;
  lo.use_rotary_pos_emb = o.light_use_rotary_pos_emb;
  light_attn = register_module("light_attn", std::make_shared<LocalMHA>(lo, gen));
  build_heavy_branch(dim, self_attention_heavy_options(o), gen, op);
  if (o.rotary_emb) {
    COLT5_CHECK(o.heavy_dim_head % 2 == 0, op, ": option 'heavy_dim_head' expected an even value with rotary_emb, got ",
                o.heavy_dim_head);
    rotary_emb = register_module("rotary_emb", std::make_shared<RotaryEmbedding>(o.heavy_dim_head));
  }
}

Tensor ConditionalRoutedAutoregressiveAttention::forward(const Tensor& x, std::optional<int64_t> num_heavy_tokens_q,
                                                         std::optional<int64_t> num_heavy_tokens_kv) const {
  const char* op = "ConditionalRoutedAutoregressiveAttention";
  check_x(x, dim_, q_router->routing_token, op, "x");
  const int64_t kq = tokens(num_heavy_tokens_q, opts_.num_heavy_tokens_q, op, "num_heavy_tokens_q");
  const int64_t kkv = tokens(num_heavy_tokens_kv, opts_.num_heavy_tokens_kv, op, "num_heavy_tokens_kv");

  Tensor light = light_attn->forward(x);  // causal local attention, [b, n, dim]

  const int64_t b = x.size(0), n = x.size(1), d = dim_, w = heavy_window_size_;
  const int64_t windows = (n + w - 1) / w, padded_n = windows * w;
  if (windows <= 1 || !heavy_enabled) return light;  // no window has an earlier one to attend to
  const int64_t qb = b * (windows - 1);  // query windows 1 .. windows-1 merged into the batch
  const Device dev = x.device();

  Tensor xp = padded_n == n ? x : pad(x, {0, 0, 0, padded_n - n});  // [b, N, dim]

  // Queries: windows 1.. of the padded sequence, [qb, w, dim]; the padding is masked out.
  Tensor q = xp.reshape({b, windows, w, d}).narrow(1, 1, windows - 1).reshape({qb, w, d});
  // Masks, made on the device. Row bi (windows - 1) + (i - 1) is query window i, which starts at
  // i w: its token j is real iff i w + j < n, and it sees the positions t < i w (the windows
  // strictly before it: tril(-1) repeated over each window's w).
  const Tensor start = mul_scalar(arange(1, windows, 1, DType::Int64, dev), double(w)).unsqueeze(1);  // [windows-1, 1]
  const auto per_batch_row = [&](const Tensor& m) {  // [windows - 1, L] -> [qb, L]
    return m.unsqueeze(0).expand({b, windows - 1, m.size(1)}).reshape({qb, m.size(1)});
  };
  const Tensor q_mask = per_batch_row(lt(add(start, arange(w, DType::Int64, dev).unsqueeze(0)), double(n)));
  const Tensor kv_mask = per_batch_row(lt(arange(padded_n, DType::Int64, dev).unsqueeze(0), start));  // [qb, N]

  const bool route_q = w > kq, route_kv = padded_n > kkv;
  Tensor routed_q = q, scores_q, indices_q;
  if (route_q) {
    RouterOutput r = q_router->forward(q, kq, q_mask);
    scores_q = r.scores;
    indices_q = r.indices;
    routed_q = batched_gather(q, indices_q);
  }
  Tensor routed_kv, routed_kv_mask = kv_mask, scores_kv;
  Tensor kv_positions;  // the routed keys' positions in xp (rotary only)
  if (route_kv) {
    // Keys / values, routed for every query window over its prefix without copying the
    // sequence: the router's logits once per token ([b * r, N]), repeated per query window
    // ([qb * r, N] scalars), routed under each window's prefix mask (the same routing as over a
    // masked copy of xp per window), then the picked rows gathered from xp itself by index.
    const int64_t r = kv_router->num_routing_tokens();
    Tensor s = kv_router->logits(xp).reshape({b, 1, r, padded_n});
    s = s.expand({b, windows - 1, r, padded_n}).reshape({qb * r, padded_n});
    RouterOutput ro = kv_router->forward_logits(s, kkv, kv_mask);  // [qb, kkv] or [qb, r, kkv]
    scores_kv = ro.scores;
    kv_positions = ro.indices;
    // The heavy keys / values of every token, normed and projected once ([b, r, N, E], E = the
    // route's heads' 2d), then gathered: row bi (windows - 1) + (i - 1) of the indices points
    // into batch row bi, so per batch row the windows' picks line up as [W-1, kkv] per route.
    const Tensor kv_all = heavy_attn->project_context(xp, r);
    const int64_t E = kv_all.size(3);
    const Tensor idx = ro.indices.reshape({b, windows - 1, r, kkv}).permute({0, 2, 1, 3}).reshape({b, r, (windows - 1) * kkv});
    routed_kv = gather(kv_all, 2, idx.unsqueeze(-1).expand({b, r, (windows - 1) * kkv, E}))  // [b, r, (W-1) kkv, E]
                    .reshape({b, r, windows - 1, kkv, E})
                    .permute({0, 2, 1, 3, 4})
                    .reshape({qb, r, kkv, E});
    routed_kv_mask = batched_gather(kv_mask, ro.indices);
  } else {
    // Every key / value taken (padded_n <= kkv): the whole padded sequence per query window.
    routed_kv = xp.unsqueeze(1).expand({b, windows - 1, padded_n, d}).reshape({qb, padded_n, d});
  }

  // Rotary (0.11.1): every query and key at its position in the padded sequence. Row
  // bi (windows - 1) + (i - 1) holds window i, whose token j sits at i w + j; the routed keys'
  // indices are positions already.
  AttentionRotary rot;
  if (rotary_emb) {
    const Tensor offset = per_batch_row(start);  // [qb, 1]
    const Tensor pos_q = route_q ? add(indices_q, offset) : add(arange(double(w), DType::Int64, dev).unsqueeze(0), offset);
    const Tensor pos_kv =
        route_kv ? kv_positions : arange(double(padded_n), DType::Int64, dev).unsqueeze(0).expand({qb, padded_n});
    rot = {rotary_emb->angles(pos_q), rotary_emb->angles(pos_kv)};
  }

  const Tensor q_scores = opts_.multiply_queries_by_score && route_q ? scores_q : Tensor();
  Tensor out = route_kv ? heavy_attn->forward_projected(routed_q, routed_kv, routed_kv_mask, scores_kv, q_scores, rot)
                        : heavy_attn->forward(routed_q, routed_kv, routed_kv_mask, scores_kv, q_scores, rot);
  Tensor heavy = out;  // [qb, w or kq, dim]
  if (route_q) {
    out = out * scores_q.unsqueeze(-1);
    heavy = q_router->route_back(route_back_source(null_q_token, q), out, indices_q);  // [qb, w, dim]
  }
  // Un-window, keep positions w .. n-1 and put window 0's zeros in front.
  heavy = heavy.reshape({b, (windows - 1) * w, d}).narrow(1, 0, n - w);
  heavy = pad(heavy, {0, 0, w, 0});
  return light + heavy;
}

// ---------------------------------------------------------------------------------------------
// ConditionalRoutedCrossAttention

ConditionalRoutedCrossAttention::ConditionalRoutedCrossAttention(int64_t dim,
                                                                 const ConditionalRoutedCrossAttentionOptions& o,
                                                                 Generator* gen)
    : dim_(dim), opts_(o) {
  const char* op = "ConditionalRoutedCrossAttention";
  check_option_min(dim, 1, op, "dim");
  check_option_min(o.num_tokens_q, 1, op, "num_tokens_q");
  check_option_min(o.num_tokens_kv, 1, op, "num_tokens_kv");
  check_option_min(o.num_sets_kv, 1, op, "num_sets_kv");
  check_option_min(o.heads, 1, op, "heads");
  check_divisible(o.heads, "heads", o.kv_routing_tokens, "kv_routing_tokens", op);
  check_router_type(o.router_type, op);

  build_heavy_branch(dim,
                     {.router_type = o.router_type,
                      .router_kwargs = o.router_kwargs,
                      .use_triton = o.use_triton,
                      .router_straight_through = o.router_straight_through,
                      .use_null_q_tokens = o.use_null_q_tokens,
                      .kv_routes = o.kv_routing_tokens,
                      .dim_head = o.dim_head,
                      .heads = o.heads,
                      .multiply_keys_by_score = o.multiply_keys_by_score,
                      .use_flash_attn = o.use_flash_attn},
                     gen, op);
}

Tensor ConditionalRoutedCrossAttention::forward(const Tensor& x, const Tensor& context, const Tensor& mask,
                                                const Tensor& context_mask, std::optional<int64_t> num_tokens_q,
                                                std::optional<int64_t> num_tokens_kv) const {
  const char* op = "ConditionalRoutedCrossAttention";
  check_x(x, dim_, q_router->routing_token, op, "x");
  check_x(context, dim_, q_router->routing_token, op, "context");
  COLT5_CHECK(context.size(0) == x.size(0), op, ": argument 'context' expected batch size ", x.size(0), ", got ",
              context.size(0));
  check_mask(mask, x, op, "mask");
  check_mask(context_mask, context, op, "context_mask");
  const int64_t kq = tokens(num_tokens_q, opts_.num_tokens_q, op, "num_tokens_q");
  const int64_t kkv = tokens(num_tokens_kv, opts_.num_tokens_kv, op, "num_tokens_kv");

  // Queries, routed when there are more than num_tokens_q of them.
  const bool route_q = x.size(1) > kq;
  Tensor routed_q = x, scores_q, indices_q;
  if (route_q) {
    RouterOutput r = q_router->forward(x, kq, mask);
    scores_q = r.scores;
    indices_q = r.indices;
    routed_q = batched_gather(x, indices_q);
  }
  // Keys / values from the (long) context.
  const bool route_kv = context.size(1) > kkv;
  Tensor routed_kv = context, routed_kv_mask = context_mask, scores_kv;
  if (route_kv) {
    RouterOutput r = kv_router->forward(context, kkv, context_mask);
    scores_kv = r.scores;
    routed_kv = batched_gather(context, r.indices);
    routed_kv_mask = context_mask.defined() ? batched_gather(context_mask, r.indices) : Tensor();
  }

  Tensor out = heavy_attn->forward(routed_q, routed_kv, routed_kv_mask, scores_kv);
  if (!route_q) return out;
  out = out * scores_q.unsqueeze(-1);
  return q_router->route_back(route_back_source(null_q_token, x), out, indices_q);
}

// ---------------------------------------------------------------------------------------------
// ConditionalRoutedTransformerBlock

ConditionalRoutedTransformerBlock::ConditionalRoutedTransformerBlock(
    int64_t dim, const ConditionalRoutedTransformerBlockOptions& o, Generator* gen)
    : dim_(dim), opts_(o) {
  const char* op = "ConditionalRoutedTransformerBlock";
  check_option_min(dim, 1, op, "dim");
  check_option_min(o.num_heavy_attn_tokens_q, 1, op, "num_heavy_attn_tokens_q");
  check_option_min(o.num_heavy_attn_tokens_kv, 1, op, "num_heavy_attn_tokens_kv");
  check_option_min(o.num_heavy_ff_tokens, 1, op, "num_heavy_ff_tokens");

  ConditionalRoutedFeedForwardOptions fo;
  fo.num_heavy_tokens = o.num_heavy_ff_tokens;
  fo.light_ff_mult = o.light_ff_mult;
  fo.heavy_ff_mult = o.heavy_ff_mult;
  fo.router_straight_through = o.router_straight_through;
  fo.router_type = o.router_type;
  fo.router_kwargs = o.router_kwargs;
  fo.use_triton = o.use_triton;
  conditional_ff = register_module("conditional_ff", std::make_shared<ConditionalRoutedFeedForward>(dim, fo, gen));

  ConditionalRoutedAttentionOptions ao;
  ao.num_heavy_tokens_q = o.num_heavy_attn_tokens_q;
  ao.num_heavy_tokens_kv = o.num_heavy_attn_tokens_kv;
  ao.num_routed_kv = o.num_routed_kv;
  ao.light_dim_head = o.light_dim_head;
  ao.light_heads = o.light_heads;
  ao.light_window_size = o.light_window_size;
  ao.heavy_dim_head = o.heavy_dim_head;
  ao.heavy_heads = o.heavy_heads;
  ao.router_straight_through = o.router_straight_through;
  ao.router_type = o.router_type;
  ao.router_kwargs = o.router_kwargs;
  ao.multiply_keys_by_score = o.multiply_keys_by_score;
  ao.multiply_queries_by_score = o.multiply_queries_by_score;
  ao.use_triton = o.use_triton;
  ao.use_null_q_tokens = o.use_null_q_tokens;
  ao.use_flash_attn = o.use_flash_attn;
  ao.light_use_rotary_pos_emb = o.light_use_rotary_pos_emb;
  conditional_attn = register_module("conditional_attn", std::make_shared<ConditionalRoutedAttention>(dim, ao, gen));
}

Tensor ConditionalRoutedTransformerBlock::forward(const Tensor& x, const Tensor& mask,
                                                  std::optional<int64_t> num_heavy_attn_tokens_q,
                                                  std::optional<int64_t> num_heavy_attn_tokens_kv,
                                                  std::optional<int64_t> num_heavy_ff_tokens) const {
  const char* op = "ConditionalRoutedTransformerBlock";
  check_x(x, dim_, conditional_ff->router->routing_token, op, "x");
  check_mask(mask, x, op, "mask");
  const int64_t kq = tokens(num_heavy_attn_tokens_q, opts_.num_heavy_attn_tokens_q, op, "num_heavy_attn_tokens_q");
  const int64_t kkv =
      tokens(num_heavy_attn_tokens_kv, opts_.num_heavy_attn_tokens_kv, op, "num_heavy_attn_tokens_kv");
  const int64_t kff = tokens(num_heavy_ff_tokens, opts_.num_heavy_ff_tokens, op, "num_heavy_ff_tokens");
  Tensor h = conditional_attn->forward(x, mask, kq, kkv) + x;
  return conditional_ff->forward(h, mask, kff) + h;
}

}  // namespace colt5::nn
