// CoLT5 on images: SelfAttention, ConditionalRoutedImageAttention, ConditionalRoutedViT (math
// and state_dict keys in nn/image.h).
#include "nn/image.h"

#include <cmath>
#include <vector>

#include "autograd/ops.h"
#include "core/ops/attention.h"

namespace colt5::nn {

namespace {

// A module that only names its children (torch's nn.Module holding submodules, e.g. vit.py's
// Transformer, whose one child is "layers").
class Holder : public Module {
public:
  template <class M>
  std::shared_ptr<M> add(const std::string& name, std::shared_ptr<M> m) {
    return register_module(name, std::move(m));
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// SelfAttention

SelfAttention::SelfAttention(const SelfAttentionOptions& o, Generator* gen) : opts_(o) {
  const char* who = "SelfAttention";
  check_option_min(o.dim, 1, who, "dim");
  check_option_min(o.dim_head, 1, who, "dim_head");
  check_option_min(o.heads, 1, who, "heads");
  const int64_t inner = o.dim_head * o.heads;
  if (o.prenorm) norm = register_module("norm", std::make_shared<RMSNorm>(o.dim));
  to_qkv = register_module("to_qkv", std::make_shared<Linear>(o.dim, 3 * inner, false, gen));
  to_out = register_module("to_out", std::make_shared<Linear>(inner, o.dim, false, gen));
}

Tensor SelfAttention::forward(const Tensor& x) const {
  const char* who = "SelfAttention";
  COLT5_CHECK(x.defined() && x.dim() == 3, who, ": argument 'x' expected rank 3 ([batch, n, ", opts_.dim, "]), got ",
              x.defined() ? str(x.shape()) : std::string("an undefined tensor"));
  check_layer_input(x, opts_.dim, to_qkv->weight, who);
  const int64_t b = x.size(0), n = x.size(1), h = opts_.heads, d = opts_.dim_head, inner = h * d;
  const Tensor qkv = to_qkv->forward(norm ? norm->forward(x) : x);  // [b, n, 3 h d]
  AttentionInputs in;
  in.q = qkv_heads(qkv, 0, h), in.k = qkv_heads(qkv, 1, h), in.v = qkv_heads(qkv, 2, h);
  in.scale = 1.0 / std::sqrt(double(d));
  const Tensor out = attention(in);  // [b, h, n, d]
  return to_out->forward(out.permute({0, 2, 1, 3}).reshape({b, n, inner}));
}

// ---------------------------------------------------------------------------------------------
// ConditionalRoutedImageAttention

ConditionalRoutedImageAttention::ConditionalRoutedImageAttention(int64_t dim,
                                                                 const ConditionalRoutedImageAttentionOptions& o,
                                                                 Generator* gen)
    : dim_(dim), opts_(o) {
  const char* who = "ConditionalRoutedImageAttention";
  check_option_min(dim, 1, who, "dim");
  check_option_min(o.num_heavy_tokens_q, 1, who, "num_heavy_tokens_q");
  check_option_min(o.num_heavy_tokens_kv, 1, who, "num_heavy_tokens_kv");
  check_option_min(o.light_window_size, 1, who, "light_window_size");
  const int64_t N = o.light_window_size * o.light_window_size;
  // 0.11.1 cannot run a window of at most k tokens (its router returns no indices to put back).
  COLT5_CHECK(o.num_heavy_tokens_q < N && o.num_heavy_tokens_kv < N, who,
              ": options 'num_heavy_tokens_q' and 'num_heavy_tokens_kv' expected < light_window_size^2 = ", N,
              " (the tokens of a window), got ", o.num_heavy_tokens_q, " and ", o.num_heavy_tokens_kv);
  light_attn = register_module(
      "light_attn",
      std::make_shared<SelfAttention>(
          SelfAttentionOptions{.dim = dim, .dim_head = o.light_dim_head, .heads = o.light_heads, .prenorm = true},
          gen));
  check_divisible(o.heavy_heads, "heavy_heads", o.num_routed_kv, "num_routed_kv", who);
  build_heavy_branch(dim,
                     {.router_type = "coor_descent",
                      .router_kwargs = o.router_kwargs.or_defaults(RouterKwargs::v0_11_1()),
                      .use_triton = o.use_triton,
                      .router_straight_through = o.router_straight_through,
                      .use_null_q_tokens = o.use_null_q_tokens,
                      .kv_routes = o.num_routed_kv,
                      .dim_head = o.heavy_dim_head,
                      .heads = o.heavy_heads,
                      .multiply_keys_by_score = o.multiply_keys_by_score,
                      .use_flash_attn = o.use_flash_attn},
                     gen, who);
}

Tensor ConditionalRoutedImageAttention::forward(const Tensor& x) const {
  const char* who = "ConditionalRoutedImageAttention";
  COLT5_CHECK(x.defined() && x.dim() == 4, who, ": argument 'x' expected rank 4 (", opts_.channel_first ? "[b, dim, H, W]" : "[b, H, W, dim]",
              "), got ", x.defined() ? str(x.shape()) : std::string("an undefined tensor"));
  const Tensor m = opts_.channel_first ? x.permute({0, 2, 3, 1}) : x;  // [b, H, W, dim]
  check_layer_input(m, dim_, heavy_attn->to_q->weight, who);
  const int64_t b = m.size(0), H = m.size(1), W = m.size(2), w = opts_.light_window_size;
  COLT5_CHECK(H % w == 0 && W % w == 0, who, ": argument 'x' expected a map whose sides are multiples of light_window_size = ",
              w, ", got ", H, " x ", W);
  const int64_t gh = H / w, gw = W / w, B = b * gh * gw, N = w * w;
  // 'b (gh w1) (gw w2) dim -> (b gh gw) (w1 w2) dim'
  const Tensor xw = m.reshape({b, gh, w, gw, w, dim_}).permute({0, 1, 3, 2, 4, 5}).reshape({B, N, dim_});

  Tensor y = light_attn->forward(xw);  // [B, N, dim]
  if (heavy_enabled) {
    RouterOutput q = q_router->forward(xw, opts_.num_heavy_tokens_q);
    RouterOutput kv = kv_router->forward(xw, opts_.num_heavy_tokens_kv);
    Tensor out = heavy_attn->forward(batched_gather(xw, q.indices), batched_gather(xw, kv.indices), Tensor(), kv.scores,
                                     opts_.multiply_queries_by_score ? q.scores : Tensor());
    out = out * q.scores.unsqueeze(-1);
    y = y + q_router->route_back(route_back_source(null_q_token, xw), out, q.indices);
  }
  // and back: '(b gh gw) (w1 w2) dim -> b (gh w1) (gw w2) dim'
  y = y.reshape({b, gh, gw, w, w, dim_}).permute({0, 1, 3, 2, 4, 5}).reshape({b, H, W, dim_});
  return opts_.channel_first ? y.permute({0, 3, 1, 2}) : y;
}

// ---------------------------------------------------------------------------------------------
// ConditionalRoutedViT

Tensor posemb_sincos_2d(int64_t H, int64_t W, int64_t dim, DType dtype, Device device) {
  COLT5_CHECK(dim % 4 == 0 && dim >= 8, "posemb_sincos_2d: argument 'dim' expected a multiple of 4 that is >= 8, got ",
              dim);
  const int64_t q = dim / 4;
  std::vector<double> pe(size_t(H * W * dim));
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      double* row = pe.data() + (y * W + x) * dim;
      for (int64_t i = 0; i < q; ++i) {
        const double omega = 1.0 / std::pow(10000.0, double(i) / double(q - 1));
        row[i] = std::sin(double(x) * omega);
        row[q + i] = std::cos(double(x) * omega);
        row[2 * q + i] = std::sin(double(y) * omega);
        row[3 * q + i] = std::cos(double(y) * omega);
      }
    }
  return from_vector(pe, {H, W, dim}, device).to(dtype);
}

ConditionalRoutedViT::ConditionalRoutedViT(const ConditionalRoutedViTOptions& o, Generator* gen) : opts_(o) {
  const char* who = "ConditionalRoutedViT";
  check_option_min(o.image_size, 1, who, "image_size");
  check_option_min(o.patch_size, 1, who, "patch_size");
  check_option_min(o.num_classes, 1, who, "num_classes");
  check_option_min(o.depth, 1, who, "depth");
  check_option_min(o.channels, 1, who, "channels");
  check_option_min(o.ff_num_heavy_tokens, 1, who, "ff_num_heavy_tokens");
  COLT5_CHECK(o.image_size % o.patch_size == 0, who, ": option 'image_size' (", o.image_size,
              ") expected divisible by patch_size (", o.patch_size, ")");
  COLT5_CHECK(o.dim % 4 == 0 && o.dim >= 8, who, ": option 'dim' expected a multiple of 4 that is >= 8 (the sin-cos ",
              "position embedding), got ", o.dim);
  const int64_t patch_dim = o.channels * o.patch_size * o.patch_size;

  auto embed = register_module("to_patch_embedding", std::make_shared<Sequential>());
  embed->push_back(std::make_shared<Module>());  // "0": the rearrangement, no parameters
  patch_norm_in = embed->push_back(std::make_shared<LayerNorm>(patch_dim));
  patch_proj = embed->push_back(std::make_shared<Linear>(patch_dim, o.dim, true, gen));
  patch_norm_out = embed->push_back(std::make_shared<LayerNorm>(o.dim));

  RouterKwargs kw = o.router_kwargs;
  if (!kw.eps) kw.eps = o.default_coor_descent_eps;
  kw = kw.or_defaults(RouterKwargs::v0_11_1());
  auto transformer = register_module("transformer", std::make_shared<Holder>());
  auto layers = transformer->add("layers", std::make_shared<Sequential>());
  for (int64_t i = 0; i < o.depth; ++i) {
    auto layer = layers->push_back(std::make_shared<Sequential>());
    ConditionalRoutedImageAttentionOptions ao;
    ao.num_heavy_tokens_q = o.attn_num_heavy_tokens_q;
    ao.num_heavy_tokens_kv = o.attn_num_heavy_tokens_kv;
    ao.num_routed_kv = o.attn_num_routed_kv;
    ao.light_dim_head = o.attn_light_dim_head;
    ao.light_heads = o.attn_light_heads;
    ao.light_window_size = o.attn_light_window_size;
    ao.heavy_dim_head = o.attn_heavy_dim_head;
    ao.heavy_heads = o.attn_heavy_heads;
    ao.router_straight_through = o.router_straight_through;
    ao.router_kwargs = kw;
    ao.use_flash_attn = o.flash_attn;
    attn.push_back(layer->push_back(std::make_shared<ConditionalRoutedImageAttention>(o.dim, ao, gen)));
    ConditionalRoutedFeedForwardOptions fo;
    fo.num_heavy_tokens = o.ff_num_heavy_tokens;
    fo.light_ff_mult = o.ff_light_mult;
    fo.heavy_ff_mult = o.ff_heavy_mult;
    fo.router_straight_through = o.router_straight_through;
    fo.router_kwargs = kw;
    ff.push_back(layer->push_back(std::make_shared<ConditionalRoutedFeedForward>(o.dim, fo, gen)));
  }
  auto head_seq = register_module("linear_head", std::make_shared<Sequential>());
  head_seq->push_back(std::make_shared<Module>());  // "0": the mean over the map
  head_norm = head_seq->push_back(std::make_shared<LayerNorm>(o.dim));
  head = head_seq->push_back(std::make_shared<Linear>(o.dim, o.num_classes, true, gen));
}

Tensor ConditionalRoutedViT::forward(const Tensor& img) const {
  const char* who = "ConditionalRoutedViT";
  const int64_t c = opts_.channels, S = opts_.image_size, p = opts_.patch_size, G = S / p, dim = opts_.dim;
  COLT5_CHECK(img.defined() && img.dim() == 4 && img.size(1) == c && img.size(2) == S && img.size(3) == S, who,
              ": argument 'img' expected shape [batch, ", c, ", ", S, ", ", S, "], got ",
              img.defined() ? str(img.shape()) : std::string("an undefined tensor"));
  check_floating(img, who, "img");
  const Tensor& w0 = patch_proj->weight;
  COLT5_CHECK(img.dtype() == w0.dtype() && img.device() == w0.device(), who, ": argument 'img' expected dtype ",
              dtype_name(w0.dtype()), " on ", w0.device(), " (the parameters'), got ", dtype_name(img.dtype()), " on ",
              img.device());
  const int64_t b = img.size(0);
  // 'b c (G p1) (G p2) -> b G G (p1 p2 c)'
  Tensor x = img.reshape({b, c, G, p, G, p}).permute({0, 2, 4, 3, 5, 1}).reshape({b, G, G, p * p * c});
  x = patch_norm_out->forward(patch_proj->forward(patch_norm_in->forward(x)));  // [b, G, G, dim]
  if (!posemb_.defined() || posemb_.dtype() != x.dtype() || posemb_.device() != x.device())
    posemb_ = posemb_sincos_2d(G, G, dim, x.dtype(), x.device());
  x = x + posemb_;
  for (size_t i = 0; i < attn.size(); ++i) {
    x = attn[i]->forward(x) + x;
    const Tensor flat = x.reshape({b, G * G, dim});
    x = (ff[i]->forward(flat) + flat).reshape({b, G, G, dim});
  }
  return head->forward(head_norm->forward(mean(x, {1, 2})));  // [b, C]
}

void ConditionalRoutedViT::set_heavy_enabled(bool on) {
  for (auto& a : attn) a->heavy_enabled = on;
  for (auto& f : ff) f->heavy_enabled = on;
}

}  // namespace colt5::nn
