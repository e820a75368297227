// CoLT5LM and CoLT5Encoder (the math and the causality argument are in nn/models.h).
#include "nn/models.h"

#include <cmath>

#include "autograd/ops.h"
#include "nn/json_fields.h"

namespace colt5::nn {

namespace {

void check_range(int64_t v, int64_t lo, int64_t hi, const char* name) {
  COLT5_CHECK(v >= lo && v <= hi, "ModelConfig: '", name, "' expected in [", lo, ", ", hi, "], got ", v);
}

void check_real(double v, double lo, double hi, bool lo_open, const char* name) {
  COLT5_CHECK(std::isfinite(v) && (lo_open ? v > lo : v >= lo) && v <= hi, "ModelConfig: '", name, "' expected in ",
              lo_open ? "(" : "[", lo, ", ", hi, "], got ", v);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ModelConfig

void ModelConfig::validate() const {
  using L = ModelLimits;
  COLT5_CHECK(kind == "lm" || kind == "encoder", "ModelConfig: 'kind' expected \"lm\" or \"encoder\", got \"", kind,
              "\"");
  check_range(vocab_size, 1, L::kVocab, "vocab_size");
  check_range(max_seq_len, 1, L::kSeqLen, "max_seq_len");
  check_range(dim, 1, L::kDim, "dim");
  check_range(depth, 1, L::kDepth, "depth");
  // Windows and routed-token counts never need to exceed the sequence (a larger window would only
  // pad every sequence up to it).
  check_range(light_window_size, kind == "encoder" ? 2 : 1, max_seq_len, "light_window_size");
  check_range(heavy_window_size, 1, max_seq_len, "heavy_window_size");
  check_range(num_heavy_tokens_q, 1, max_seq_len, "num_heavy_tokens_q");
  check_range(num_heavy_tokens_kv, 1, max_seq_len, "num_heavy_tokens_kv");
  check_range(light_heads, 1, L::kHeads, "light_heads");
  check_range(light_dim_head, 1, L::kDimHead, "light_dim_head");
  COLT5_CHECK(!light_rotary || light_dim_head % 2 == 0, "ModelConfig: 'light_dim_head' expected an even value with ",
              "'light_rotary' (rotary turns pairs of dims), got ", light_dim_head);
  check_range(heavy_heads, 1, L::kHeads, "heavy_heads");
  check_range(heavy_dim_head, 1, L::kDimHead, "heavy_dim_head");
  check_range(num_heavy_ff_tokens, 1, max_seq_len, "num_heavy_ff_tokens");
  check_range(ff_window_size, 1, max_seq_len, "ff_window_size");
  check_real(light_ff_mult, 0, L::kFFMult, true, "light_ff_mult");
  check_real(heavy_ff_mult, 0, L::kFFMult, true, "heavy_ff_mult");
  check_real(emb_init_std, 0, L::kInitStd, true, "emb_init_std");
  check_real(pos_init_std, 0, L::kInitStd, false, "pos_init_std");
  if (kind == "encoder") {
    check_range(num_classes, 2, L::kVocab, "num_classes");
    COLT5_CHECK(pool == "last" || pool == "mean", "ModelConfig: 'pool' expected \"last\" or \"mean\", got \"", pool,
                "\"");
    check_range(num_outputs, 1, max_seq_len, "num_outputs");
    COLT5_CHECK(num_outputs == 1 || pool == "last", "ModelConfig: 'num_outputs' > 1 needs pool \"last\", got pool \"",
                pool, "\"");
  }
  const double params = parameter_estimate();
  COLT5_CHECK(params <= L::kParameters, "ModelConfig: about ", params, " parameters (dim ", dim, ", depth ", depth,
              ", vocab_size ", vocab_size, ", max_seq_len ", max_seq_len, "), more than the limit of ", L::kParameters);
}

double ModelConfig::parameter_estimate() const {
  const double d = static_cast<double>(dim);
  const double light = d * 4.0 * static_cast<double>(light_heads * light_dim_head) + 2 * d;  // to_qkv, to_out, norm
  const double heavy = d * 4.0 * static_cast<double>(heavy_heads * heavy_dim_head) + 2 * d   // to_q, to_kv, to_out
                       + 2.0 * static_cast<double>(heavy_heads * heavy_dim_head) + 4 * d;     // null kv, tokens
  auto feedforward = [&](double mult) { return 2 * d * std::trunc(d * mult) + 3 * d; };  // 2 Linear, norm, biases
  const double ff = feedforward(light_ff_mult) + feedforward(heavy_ff_mult);
  const double head = kind == "lm" ? d * static_cast<double>(vocab_size) : (d + 1) * static_cast<double>(num_classes);
  return d * static_cast<double>(vocab_size + max_seq_len) + static_cast<double>(depth) * (light + heavy + ff) + head + d;
}

nlohmann::json ModelConfig::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for_each_field(*this, [&](const char* name, const auto& field) { j[name] = field; });
  return j;
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j) {
  ModelConfig c;
  read_json_fields(j, "ModelConfig", c);
  c.validate();
  return c;
}

// ---------------------------------------------------------------------------------------------
// Model

Model::Model(const ModelConfig& cfg, Generator* gen) : cfg_(cfg) {
  cfg_.validate();
  token_emb = register_parameter("token_emb", randn({cfg.vocab_size, cfg.dim}, DType::Float32, kCPU, gen) * cfg.emb_init_std);
  pos_emb = register_parameter("pos_emb", randn({cfg.max_seq_len, cfg.dim}, DType::Float32, kCPU, gen) * cfg.pos_init_std);
}

Tensor Model::embed(const Tensor& tokens) const {
  const char* op = cfg_.kind == "lm" ? "CoLT5LM" : "CoLT5Encoder";
  COLT5_CHECK(tokens.defined(), op, ": argument 'tokens' is undefined");
  check_dtype(tokens, DType::Int64, op, "tokens");
  COLT5_CHECK(tokens.dim() == 2, op, ": argument 'tokens' expected rank 2 [batch, n], got shape ", tokens.shape());
  const int64_t n = tokens.size(1);
  COLT5_CHECK(n >= 1 && n <= cfg_.max_seq_len, op, ": argument 'tokens' expected a sequence length in [1, ",
              cfg_.max_seq_len, "] (max_seq_len), got ", n);
  check_same_device({token_emb, tokens}, op);
  // embedding() checks the token ids against the vocabulary.
  return embedding(token_emb, tokens) + pos_emb.narrow(0, 0, n).unsqueeze(0);
}

// ---------------------------------------------------------------------------------------------
// CoLT5LM

CoLT5LM::Block::Block(const ModelConfig& c, Generator* gen) {
  ConditionalRoutedAutoregressiveAttentionOptions a;
  a.num_heavy_tokens_q = c.heavy_window_size;  // every query of windows 1..: see nn/models.h
  a.num_heavy_tokens_kv = c.num_heavy_tokens_kv;
  a.light_window_size = c.light_window_size;
  a.heavy_window_size = c.heavy_window_size;
  a.light_heads = c.light_heads;
  a.light_dim_head = c.light_dim_head;
  a.heavy_heads = c.heavy_heads;
  a.heavy_dim_head = c.heavy_dim_head;
  a.light_use_rotary_pos_emb = c.light_rotary;
  attn = register_module("attn", std::make_shared<ConditionalRoutedAutoregressiveAttention>(c.dim, a, gen));
  CausalRoutedFeedForwardOptions f;
  f.num_heavy_tokens = c.num_heavy_ff_tokens;
  f.window_size = c.ff_window_size;
  f.light_ff_mult = c.light_ff_mult;
  f.heavy_ff_mult = c.heavy_ff_mult;
  ff = register_module("ff", std::make_shared<CausalRoutedFeedForward>(c.dim, f, gen));
}

CoLT5LM::CoLT5LM(const ModelConfig& cfg, Generator* gen) : Model(cfg, gen) {
  COLT5_CHECK(cfg.kind == "lm", "CoLT5LM: config 'kind' expected \"lm\", got \"", cfg.kind, "\"");
  auto seq = register_module("blocks", std::make_shared<Sequential>());
  for (int64_t i = 0; i < cfg.depth; ++i) blocks.push_back(seq->push_back(std::make_shared<Block>(cfg, gen)));
  norm = register_module("norm", std::make_shared<RMSNorm>(cfg.dim));
  to_logits = register_module("to_logits", std::make_shared<Linear>(cfg.dim, cfg.vocab_size, false, gen));
}

Tensor CoLT5LM::forward(const Tensor& tokens) const {
  Tensor h = embed(tokens);
  for (const auto& blk : blocks) {
    h = blk->attn->forward(h) + h;
    h = blk->ff->forward(h) + h;
  }
  return to_logits->forward(norm->forward(h));
}

void CoLT5LM::set_heavy_enabled(bool on) {
  for (auto& blk : blocks) {
    blk->attn->heavy_enabled = on;
    blk->ff->heavy_enabled = on;
  }
}

// ---------------------------------------------------------------------------------------------
// CoLT5Encoder

CoLT5Encoder::CoLT5Encoder(const ModelConfig& cfg, Generator* gen) : Model(cfg, gen) {
  COLT5_CHECK(cfg.kind == "encoder", "CoLT5Encoder: config 'kind' expected \"encoder\", got \"", cfg.kind, "\"");
  ConditionalRoutedTransformerBlockOptions o;
  o.num_heavy_attn_tokens_q = cfg.num_heavy_tokens_q;
  o.num_heavy_attn_tokens_kv = cfg.num_heavy_tokens_kv;
  o.num_heavy_ff_tokens = cfg.num_heavy_ff_tokens;
  o.light_window_size = cfg.light_window_size;
  o.light_heads = cfg.light_heads;
  o.light_dim_head = cfg.light_dim_head;
  o.heavy_heads = cfg.heavy_heads;
  o.heavy_dim_head = cfg.heavy_dim_head;
  o.light_use_rotary_pos_emb = cfg.light_rotary;
  o.light_ff_mult = cfg.light_ff_mult;
  o.heavy_ff_mult = cfg.heavy_ff_mult;
  auto seq = register_module("blocks", std::make_shared<Sequential>());
  for (int64_t i = 0; i < cfg.depth; ++i)
    blocks.push_back(seq->push_back(std::make_shared<ConditionalRoutedTransformerBlock>(cfg.dim, o, gen)));
  norm = register_module("norm", std::make_shared<RMSNorm>(cfg.dim));
  head = register_module("head", std::make_shared<Linear>(cfg.dim, cfg.num_classes, true, gen));
}

Tensor CoLT5Encoder::forward(const Tensor& tokens) const {
  Tensor h = embed(tokens);
  for (const auto& blk : blocks) h = blk->forward(h);
  h = norm->forward(h);  // [b, n, dim]
  if (cfg_.pool == "mean") return head->forward(mean(h, {1}));  // [b, C]
  const int64_t m = cfg_.num_outputs, n = h.size(1);
  COLT5_CHECK(n >= m, "CoLT5Encoder: argument 'tokens' expected at least num_outputs = ", m, " positions, got ", n);
  if (m == 1) return head->forward(h.select(1, n - 1));  // [b, C]
  return head->forward(h.narrow(1, n - m, m));            // [b, M, C]
}

void CoLT5Encoder::set_heavy_enabled(bool on) {
  for (auto& blk : blocks) {
    blk->conditional_attn->heavy_enabled = on;
    blk->conditional_ff->heavy_enabled = on;
  }
}

std::unique_ptr<Model> make_model(const ModelConfig& cfg, Generator* gen) {
  // Model's constructor validates cfg (kind included) before anything else is built.
  if (cfg.kind == "lm") return std::make_unique<CoLT5LM>(cfg, gen);
  return std::make_unique<CoLT5Encoder>(cfg, gen);
}

}  // namespace colt5::nn
