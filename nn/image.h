// CoLT5 on images (CoLT5-attention 0.11.1's ConditionalRoutedImageAttention and vit.py's
// ConditionalRoutedViT).
//
// Dims legend: b batch, H x W the feature map (patches), dim model width, w the light window
// side (H and W multiples of w), N = w * w tokens per window, B = b (H / w) (W / w) windows,
// h heads, d dim_head, C classes, c image channels, p the patch side.
//
// SelfAttention (prenorm: "norm", RMSNorm; "to_qkv" dim -> 3 h d; "to_out" h d -> dim; no biases):
//   full softmax attention of every token over every token of its sequence, scale d^-0.5.
//
// ConditionalRoutedImageAttention (x [b, H, W, dim], or [b, dim, H, W] with channel_first):
//   the map is cut into w x w windows, 'b (H w1) (W w2) dim -> (b H W) (w1 w2) dim': [B, N, dim];
//   light = SelfAttention over each window (every token sees its window);
//   in each window the q_router picks num_heavy_tokens_q queries and the kv_router
//   num_heavy_tokens_kv keys / values (both < N), the heavy Attention runs on them (null key /
//   value, scores on the values), its output times the query scores is put back over
//   null_q_token (or zeros), and out = light + heavy, folded back to the map's layout.
//   (0.11.1 routes inside each window, not over the whole map; so does this.)
//
// ConditionalRoutedViT (img [b, c, image_size, image_size] -> logits [b, C]):
//   to_patch_embedding: 'b c (H p1) (W p2) -> b H W (p1 p2 c)', LayerNorm(p p c), Linear(p p c,
//     dim), LayerNorm(dim)  ("to_patch_embedding.1/.2/.3"; index 0 is the rearrangement);
//   + the fixed 2-D sin-cos position embedding: with q = dim / 4 and omega_i = 10000^(-i / (q - 1)),
//     pe(y, x) = (sin(x omega) | cos(x omega) | sin(y omega) | cos(y omega))  (dim % 4 == 0);
//   transformer.layers.<i>: "0" ConditionalRoutedImageAttention, "1" ConditionalRoutedFeedForward
//     over the flattened map ([b, H W, dim], routing over the whole image), each residual;
//   linear_head: mean over H, W, LayerNorm(dim), Linear(dim, C)  ("linear_head.1/.2").
// The routers take 0.11.1's defaults with eps = default_coor_descent_eps (1) unless router_kwargs
// say otherwise: 20 iterations, eps from 4 down to 1 by 0.7 per iteration.
//
// set_heavy_enabled(false) switches every heavy branch off (the ablation of examples).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "nn/attention.h"
#include "nn/layers.h"
#include "nn/module.h"
#include "nn/routed.h"
#include "nn/routers.h"

namespace colt5::nn {

struct SelfAttentionOptions {
  int64_t dim = 0;  // required: >= 1
  int64_t dim_head = 64;
  int64_t heads = 8;
  bool prenorm = false;
};

class SelfAttention : public Module {
public:
  explicit SelfAttention(const SelfAttentionOptions& opts, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) const;  // [b, n, dim] -> [b, n, dim]
  Tensor operator()(const Tensor& x) const { return forward(x); }

  std::shared_ptr<RMSNorm> norm;   // "norm" (prenorm only)
  std::shared_ptr<Linear> to_qkv;  // "to_qkv"
  std::shared_ptr<Linear> to_out;  // "to_out"

private:
  SelfAttentionOptions opts_;
};

struct ConditionalRoutedImageAttentionOptions {
  int64_t num_heavy_tokens_q = 0;   // required: 1 .. N - 1
  int64_t num_heavy_tokens_kv = 0;  // required: 1 .. N - 1
  int64_t num_routed_kv = 1;
  int64_t light_dim_head = 64;
  int64_t light_heads = 8;
  int64_t light_window_size = 128;  // w: the side of a window
  int64_t heavy_dim_head = 64;
  int64_t heavy_heads = 8;
  bool router_straight_through = true;
  // The coordinate-descent router's keyword arguments (0.11.1 has no other router); what is not
  // set takes 0.11.1's defaults (RouterKwargs::v0_11_1()), as this is a 0.11.1 module.
  RouterKwargs router_kwargs = {};
  bool multiply_keys_by_score = false;
  bool multiply_queries_by_score = false;
  bool use_triton = false;          // accepted, no effect
  bool use_null_q_tokens = true;
  bool use_flash_attn = false;      // accepted: the heavy attention is the fused op anyway
  bool channel_first = false;
};

// The heavy half (null_q_token, q_router, kv_router, heavy_attn, heavy_enabled) is the routed
// attentions' RoutedHeavyBranch (nn/routed.h), built with coordinate-descent routers.
class ConditionalRoutedImageAttention : public RoutedHeavyBranch {
public:
  ConditionalRoutedImageAttention(int64_t dim, const ConditionalRoutedImageAttentionOptions& opts,
                                  Generator* gen = nullptr);
  // x [b, H, W, dim] (channel_first: [b, dim, H, W]) -> the same shape.
  Tensor forward(const Tensor& x) const;
  Tensor operator()(const Tensor& x) const { return forward(x); }

  std::shared_ptr<SelfAttention> light_attn;  // "light_attn"

private:
  int64_t dim_;
  ConditionalRoutedImageAttentionOptions opts_;
};

struct ConditionalRoutedViTOptions {
  int64_t image_size = 0, patch_size = 0, num_classes = 0, dim = 0, depth = 0;  // required
  int64_t attn_num_heavy_tokens_q = 0, attn_num_heavy_tokens_kv = 0;            // required
  int64_t attn_heavy_dim_head = 64, attn_heavy_heads = 8;
  int64_t attn_light_dim_head = 64, attn_light_heads = 8, attn_light_window_size = 0;  // window required
  int64_t ff_num_heavy_tokens = 0;                                              // required
  double ff_heavy_mult = 4, ff_light_mult = 0.5;
  int64_t channels = 3;
  bool router_straight_through = true;
  RouterKwargs router_kwargs = {};
  bool router_use_triton = false;  // accepted, no effect
  bool flash_attn = true;          // accepted, no effect
  int64_t attn_num_routed_kv = 1;
  double default_coor_descent_eps = 1.0;
};

class ConditionalRoutedViT : public Module {
public:
  explicit ConditionalRoutedViT(const ConditionalRoutedViTOptions& opts, Generator* gen = nullptr);
  // img [b, channels, image_size, image_size] -> logits [b, num_classes].
  Tensor forward(const Tensor& img) const;
  Tensor operator()(const Tensor& img) const { return forward(img); }
  void set_heavy_enabled(bool on);
  const ConditionalRoutedViTOptions& options() const { return opts_; }

  std::shared_ptr<LayerNorm> patch_norm_in, patch_norm_out;  // "to_patch_embedding.1", ".3"
  std::shared_ptr<Linear> patch_proj;                        // "to_patch_embedding.2"
  std::vector<std::shared_ptr<ConditionalRoutedImageAttention>> attn;  // "transformer.layers.<i>.0"
  std::vector<std::shared_ptr<ConditionalRoutedFeedForward>> ff;       // "transformer.layers.<i>.1"
  std::shared_ptr<LayerNorm> head_norm;                      // "linear_head.1"
  std::shared_ptr<Linear> head;                              // "linear_head.2"

private:
  ConditionalRoutedViTOptions opts_;
  // posemb_sincos_2d of the patch map, made on the host once per dtype and device (not a buffer:
  // vit.py computes it in forward, so it is not in the state_dict).
  mutable Tensor posemb_;
};

// The fixed 2-D sin-cos position embedding of vit.py: [H, W, dim] (dim % 4 == 0, dim >= 8).
Tensor posemb_sincos_2d(int64_t H, int64_t W, int64_t dim, DType dtype, Device device);

}  // namespace colt5::nn
