// Whole CoLT5 models: a causal language model and an encoder with a classification head.
//
// Dims legend: b batch, n sequence length (<= max_seq_len), dim model width, V vocabulary,
// C classes.
//
// CoLT5LM (kind "lm"):
//   h = token_emb[tokens] + pos_emb[0..n)                                   [b, n, dim]
//   for each block:  h = attn(h) + h;  h = ff(h) + h
//     attn: ConditionalRoutedAutoregressiveAttention with num_heavy_tokens_q = heavy_window_size
//     ff:   CausalRoutedFeedForward (nn/causal_routed_ff.h)
//   logits = to_logits(norm(h))                                             [b, n, V]
// Why this is causal (tests/test_models.cpp changes token t and checks that every logit before t
// is bit-identical):
//   - the light attention is causal local attention;
//   - the heavy attention of a query in window i reads keys / values routed from windows
//     0 .. i-1 only (coordinate descent masks everything from the window start on, and masked
//     entries have exactly zero weight);
//   - the reference routes the QUERIES of each window among that window's tokens (a top-k within
//     the window), which would let a later token decide whether an earlier one gets heavy
//     attention; the LM sets num_heavy_tokens_q to the heavy window size, so every query of
//     windows 1.. takes the heavy branch (routing is skipped, scores 1) and only the keys /
//     values are routed: each window reads num_heavy_tokens_kv tokens chosen from its past;
//   - the feedforward's routing is causal by construction (see CausalRoutedFeedForward).
//
// CoLT5Encoder (kind "encoder"):
//   h = token_emb[tokens] + pos_emb[0..n)
//   for each block: h = ConditionalRoutedTransformerBlock(h)  (non-causal routed attention and
//                   routed feedforward, CoLT5's encoder layer, residuals inside)
//   logits = head(norm(h)[:, pool])   pool "last": the last position ([b, C]), or with num_outputs
//                                     M > 1 the last M positions ([b, M, C]); "mean": mean over
//                                     positions ([b, C])
//
// Parameters: "token_emb" [V, dim] ~ N(0, emb_init_std^2) and "pos_emb" [max_seq_len, dim]
// ~ N(0, pos_init_std^2) (learned absolute positions: the routers and the heavy attention have
// no other position signal). Positions start ten times smaller than tokens on purpose: a router
// scores routing_token . x, and routing gradients reach only the tokens it picked, so if position
// dominated the first scores, whether a given position (say, the question at the end) is ever
// picked would be a coin toss of the initialisation, and a run could stay at chance; with token
// identity dominating, every kind of token is picked somewhere and the routers can learn. "blocks.<i>.attn" and "blocks.<i>.ff" (LM) or "blocks.<i>" (encoder), "norm" (RMSNorm),
// "to_logits" (Linear dim -> V, no bias) or "head" (Linear dim -> C). Created float32 on the CPU
// from `gen` (or the default generator); move with Module::to.
//
// set_heavy_enabled(false) switches every heavy branch off (the light branches only): the
// ablation that shows what routing contributes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nn/causal_routed_ff.h"
#include "nn/layers.h"
#include "nn/module.h"
#include "nn/routed.h"

namespace colt5::nn {

// Upper bounds of a ModelConfig. A config read from a checkpoint is untrusted input: validate()
// checks every value against these before anything is allocated, so a tampered file cannot make
// a program allocate terabytes or loop for hours. They sit far above what this library trains.
struct ModelLimits {
  static constexpr int64_t kVocab = int64_t(1) << 20;   // vocab_size, num_classes
  static constexpr int64_t kSeqLen = int64_t(1) << 20;  // max_seq_len; every window and token count <= max_seq_len
  static constexpr int64_t kDim = int64_t(1) << 14;     // dim
  static constexpr int64_t kDepth = 256;
  static constexpr int64_t kHeads = 256;                // light_heads, heavy_heads
  static constexpr int64_t kDimHead = 1024;             // light_dim_head, heavy_dim_head
  static constexpr double kFFMult = 64;                 // light_ff_mult, heavy_ff_mult
  static constexpr double kInitStd = 10;                // emb_init_std, pos_init_std
  static constexpr double kParameters = double(int64_t(1) << 31);  // estimated total (8 GiB of float32)
};

struct ModelConfig {
  std::string kind = "encoder";  // "lm" | "encoder"
  int64_t vocab_size = 256;
  int64_t max_seq_len = 256;
  int64_t num_classes = 0;       // encoder: >= 2
  std::string pool = "last";     // encoder: "last" | "mean"
  int64_t num_outputs = 1;       // encoder, pool "last": classify the last num_outputs positions
  int64_t dim = 64;
  int64_t depth = 2;
  // attention
  int64_t light_window_size = 16;  // LM: causal window; encoder: the light window is this // 2
  int64_t heavy_window_size = 16;  // LM only: windows of the heavy branch
  int64_t num_heavy_tokens_q = 8;  // encoder only (the LM takes every query, see above)
  int64_t num_heavy_tokens_kv = 16;
  int64_t light_heads = 4, light_dim_head = 16;
  int64_t heavy_heads = 4, heavy_dim_head = 16;
  // Rotary positions in every light attention (LocalMHA's use_rotary_pos_emb; light_dim_head
  // even). Off by default, as in CoLT5 and in checkpoints written before it existed; the
  // training presets turn it on (it is what lets the light branch bind a token to its neighbour).
  bool light_rotary = false;
  // feedforward
  int64_t num_heavy_ff_tokens = 8;  // encoder: per sequence; LM: per ff_window_size tokens
  int64_t ff_window_size = 16;      // LM only
  double light_ff_mult = 0.5, heavy_ff_mult = 4.0;
  double emb_init_std = 0.02;  // token embeddings
  double pos_init_std = 0.002;  // position embeddings: see the file comment

  // Throws colt5::Error naming the first field out of range (ModelLimits above).
  void validate() const;
  // The number of parameters the model will have, estimated from the config alone (in double, so
  // that absurd values cannot overflow); validate() bounds it by ModelLimits::kParameters.
  double parameter_estimate() const;
  // Calls f(name, field) for every field, in declaration order: one list for to_json and from_json.
  template <class Self, class F>
  static void for_each_field(Self& c, F&& f) {
    f("kind", c.kind), f("vocab_size", c.vocab_size), f("max_seq_len", c.max_seq_len);
    f("num_classes", c.num_classes), f("pool", c.pool), f("num_outputs", c.num_outputs), f("dim", c.dim);
    f("depth", c.depth);
    f("light_window_size", c.light_window_size), f("heavy_window_size", c.heavy_window_size);
    f("num_heavy_tokens_q", c.num_heavy_tokens_q), f("num_heavy_tokens_kv", c.num_heavy_tokens_kv);
    f("light_heads", c.light_heads), f("light_dim_head", c.light_dim_head);
    f("heavy_heads", c.heavy_heads), f("heavy_dim_head", c.heavy_dim_head);
    f("num_heavy_ff_tokens", c.num_heavy_ff_tokens), f("ff_window_size", c.ff_window_size);
    f("light_ff_mult", c.light_ff_mult), f("heavy_ff_mult", c.heavy_ff_mult), f("emb_init_std", c.emb_init_std);
    f("pos_init_std", c.pos_init_std), f("light_rotary", c.light_rotary);
  }
  nlohmann::json to_json() const;
  // Unknown keys and wrong types are errors (a checkpoint from another program is rejected).
  static ModelConfig from_json(const nlohmann::json& j);
};

// The interface the trainer uses: tokens int64 [b, n] -> logits.
class Model : public Module {
public:
  virtual Tensor forward(const Tensor& tokens) const = 0;
  Tensor operator()(const Tensor& tokens) const { return forward(tokens); }
  virtual void set_heavy_enabled(bool on) = 0;
  const ModelConfig& config() const { return cfg_; }

protected:
  Model(const ModelConfig& cfg, Generator* gen);
  // token_emb[tokens] + pos_emb[0..n), after checking tokens.
  Tensor embed(const Tensor& tokens) const;
  ModelConfig cfg_;

public:
  Tensor token_emb;  // [V, dim]
  Tensor pos_emb;    // [max_seq_len, dim]
};

class CoLT5LM : public Model {
public:
  explicit CoLT5LM(const ModelConfig& cfg, Generator* gen = nullptr);
  Tensor forward(const Tensor& tokens) const override;  // [b, n] -> [b, n, V]
  void set_heavy_enabled(bool on) override;

  struct Block : public Module {
    std::shared_ptr<ConditionalRoutedAutoregressiveAttention> attn;  // "attn"
    std::shared_ptr<CausalRoutedFeedForward> ff;                     // "ff"
    Block(const ModelConfig& cfg, Generator* gen);
  };
  std::vector<std::shared_ptr<Block>> blocks;  // "blocks.<i>"
  std::shared_ptr<RMSNorm> norm;               // "norm"
  std::shared_ptr<Linear> to_logits;           // "to_logits"
};

class CoLT5Encoder : public Model {
public:
  explicit CoLT5Encoder(const ModelConfig& cfg, Generator* gen = nullptr);
  Tensor forward(const Tensor& tokens) const override;  // [b, n] -> [b, C]
  void set_heavy_enabled(bool on) override;

  std::vector<std::shared_ptr<ConditionalRoutedTransformerBlock>> blocks;  // "blocks.<i>"
  std::shared_ptr<RMSNorm> norm;                                           // "norm"
  std::shared_ptr<Linear> head;                                            // "head"
};

// A model of cfg.kind.
std::unique_ptr<Model> make_model(const ModelConfig& cfg, Generator* gen = nullptr);

}  // namespace colt5::nn
