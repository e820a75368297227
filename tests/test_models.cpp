// Whole models (nn/models.h) and the causal routed feedforward (nn/causal_routed_ff.h): the LM's
// causality, bit for bit, with two controls that show the check can fail (the reference's global
// feedforward routing and its within-window query routing both leak the future); the causal
// pick rule by hand; float64 gradcheck of the causal feedforward; config JSON; the heavy-off
// switch; bad inputs.
#include <doctest/doctest.h>

#include <algorithm>
#include <tuple>
#include <cstring>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "nn/causal_routed_ff.h"
#include "nn/models.h"

using namespace colt5;
using namespace colt5::nn;
using doctest::Contains;

namespace {

ModelConfig tiny_lm() {
  ModelConfig c;
  c.kind = "lm";
  c.vocab_size = 11;
  c.max_seq_len = 32;
  c.dim = 16;
  c.depth = 2;
  c.light_window_size = 4;
  c.heavy_window_size = 4;
  c.num_heavy_tokens_kv = 3;
  c.num_heavy_ff_tokens = 2;
  c.ff_window_size = 4;
  c.light_heads = 2, c.light_dim_head = 8, c.heavy_heads = 2, c.heavy_dim_head = 8;
  c.emb_init_std = 1.0;  // large activations: routing decisions differ between positions
  c.pos_init_std = 1.0;
  return c;
}

ModelConfig tiny_encoder() {
  ModelConfig c = tiny_lm();
  c.kind = "encoder";
  c.num_classes = 5;
  c.light_window_size = 4;
  c.num_heavy_tokens_q = 3;
  c.num_heavy_ff_tokens = 3;
  return c;
}

std::vector<float> values(const Tensor& t) { return t.contiguous().to_vector<float>(); }

// Rows [0, t) of a [1, n, d] tensor, as floats.
std::vector<float> prefix(const Tensor& x, int64_t t) { return values(x.narrow(1, 0, t)); }

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  // An empty vector's data() may be null, which memcmp must not get even for 0 bytes.
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

}  // namespace

TEST_CASE("CoLT5LM is causal: changing token t leaves every logit before t bit-identical") {
  Generator gen(3);
  CoLT5LM lm(tiny_lm(), &gen);
  NoGradGuard no_grad;
  const int64_t n = 23;  // not a multiple of the windows: padding is exercised too
  std::vector<int64_t> ids(n);
  for (int64_t i = 0; i < n; ++i) ids[i] = (i * 7 + 3) % 11;
  const Tensor base = lm(from_vector(ids, {1, n}));

  // The heavy branches are live (the check is not about a light-only model).
  lm.set_heavy_enabled(false);
  CHECK_FALSE(same_bits(values(base), values(lm(from_vector(ids, {1, n})))));
  lm.set_heavy_enabled(true);

  for (int64_t t : {0, 1, 4, 5, 9, 14, 22}) {
    CAPTURE(t);
    std::vector<int64_t> changed = ids;
    changed[t] = (changed[t] + 5) % 11;
    const Tensor out = lm(from_vector(changed, {1, n}));
    CHECK(same_bits(prefix(base, t), prefix(out, t)));
    CHECK_FALSE(same_bits(values(base.narrow(1, t, n - t)), values(out.narrow(1, t, n - t))));  // t itself changed
  }
}

TEST_CASE("controls: routing over the whole sequence or within a window is not causal") {
  Generator gen(5);
  NoGradGuard no_grad;
  const int64_t n = 16, dim = 8;
  const Tensor x = randn({1, n, dim}, DType::Float32, kCPU, &gen);
  const int64_t t = 12;
  // Move token t far along the router's direction, so that it enters the top-k.
  auto change = [&](const Tensor& routing_token) {
    std::vector<float> v = values(x);
    const std::vector<float> r = values(routing_token);
    for (int64_t d = 0; d < dim; ++d) v[t * dim + d] += 50.0f * r[d];
    return from_vector(v, {1, n, dim});
  };

  SUBCASE("ConditionalRoutedFeedForward (top-k of the whole sequence)") {
    ConditionalRoutedFeedForwardOptions o;
    o.num_heavy_tokens = 3;
    ConditionalRoutedFeedForward ff(dim, o, &gen);
    CHECK_FALSE(same_bits(prefix(ff(x), t), prefix(ff(change(ff.router->routing_token)), t)));
    // The causal one, same change: the prefix is untouched.
    CausalRoutedFeedForwardOptions c;
    c.num_heavy_tokens = 1;
    c.window_size = 16;
    CausalRoutedFeedForward causal(dim, c, &gen);
    CHECK(same_bits(prefix(causal(x), t), prefix(causal(change(causal.routing_token)), t)));
  }
  SUBCASE("ConditionalRoutedAutoregressiveAttention with routed queries (the reference's setting)") {
    ConditionalRoutedAutoregressiveAttentionOptions o;
    o.num_heavy_tokens_q = 1;  // < the heavy window: queries compete within their window
    o.num_heavy_tokens_kv = 4;
    o.light_window_size = 8;
    o.light_heads = 2, o.light_dim_head = 4, o.heavy_heads = 2, o.heavy_dim_head = 4;
    ConditionalRoutedAutoregressiveAttention attn(dim, o, &gen);
    // Windows of 8: token 15 is the last of window 1; pulling it into the query top-1 of its
    // window takes the heavy branch away from the earlier token that had it.
    const int64_t last = 15;
    std::vector<float> v = values(x);
    const std::vector<float> r = values(attn.q_router->routing_token);
    for (int64_t d = 0; d < dim; ++d) v[last * dim + d] += 50.0f * r[d];
    CHECK_FALSE(same_bits(prefix(attn(x), last), prefix(attn(from_vector(v, {1, n, dim})), last)));
  }
}

TEST_CASE("CausalRoutedFeedForward: the pick rule") {
  // Row 0, windows of 3, capacity 2: positive scores, first come first served.
  // scores:  1  -1  2 | 3  0.5  4 | -2  0  7 | 5
  // picks:   0       2 | 3  4      |         8 | 9      (4 is taken before the larger 5: order, not size)
  const Tensor s = from_vector<float>({1, -1, 2, 3, 0.5f, 4, -2, 0, 7, 5}, {1, 10});
  CHECK(CausalRoutedFeedForward::causal_picks(s, 2, 3) == std::vector<int64_t>{0, 2, 3, 4, 8, 9});
  // Two rows: flat indices b * n + i.
  const Tensor s2 = from_vector<float>({-1, 2, 3, -4}, {2, 2});
  CHECK(CausalRoutedFeedForward::causal_picks(s2, 1, 2) == std::vector<int64_t>{1, 2});

  // causal_slots (forward's fixed-shape version) holds the same picks, window by window.
  const std::vector<int64_t> slots = CausalRoutedFeedForward::causal_slots(s, 2, 3).to_vector<int64_t>();
  CHECK(slots == std::vector<int64_t>{0, 2, 3, 4, 8, -1, 9, -1});
  Generator gen(5);
  for (auto [n, k, w] : {std::tuple<int64_t, int64_t, int64_t>{37, 3, 8}, {64, 5, 16}, {9, 4, 4}}) {
    const Tensor r = randn({3, n}, DType::Float32, kCPU, &gen);
    std::vector<int64_t> got;
    for (int64_t v : CausalRoutedFeedForward::causal_slots(r, k, w).to_vector<int64_t>())
      if (v >= 0) got.push_back(v);
    std::sort(got.begin(), got.end());
    CAPTURE(n);
    CHECK(got == CausalRoutedFeedForward::causal_picks(r, k, w));
  }
}

TEST_CASE("CausalRoutedFeedForward: float64 gradcheck, and heavy output only at the picks") {
  // Straight-through off: with it on, the scale's value is 1 while its gradient is the gate's, a
  // deliberate mismatch that finite differences cannot confirm (the routers' tests do the same).
  Generator gen(11);
  CausalRoutedFeedForwardOptions o;
  o.num_heavy_tokens = 2;
  o.window_size = 3;
  o.straight_through = false;
  CausalRoutedFeedForward ff(6, o, &gen);
  ff.to(DType::Float64);
  Tensor x = randn({2, 7, 6}, DType::Float64, kCPU, &gen);
  x.requires_grad_();
  TensorList in{x};
  for (const Tensor& p : ff.parameters()) in.push_back(p);
  GradcheckOptions go;
  go.max_elements = 256;
  const GradcheckResult r = gradcheck([&](const TensorList& t) { return ff(t[0]); }, in, go);
  INFO(r.message);
  CHECK(r.ok);

  NoGradGuard no_grad;
  const Tensor s = matmul(x, ff.routing_token.transpose(0, 1)).reshape({2, 7});
  const auto picks = CausalRoutedFeedForward::causal_picks(s, 2, 3);
  CHECK(!picks.empty());
  const Tensor heavy = ff(x) - ff.light_ff->forward(x);  // [2, 7, 6]
  const auto h = heavy.contiguous().to_vector<double>();
  for (int64_t i = 0; i < 14; ++i) {
    const bool picked = std::find(picks.begin(), picks.end(), i) != picks.end();
    double norm = 0;
    for (int64_t d = 0; d < 6; ++d) norm += h[i * 6 + d] * h[i * 6 + d];
    CAPTURE(i);
    CHECK((norm > 0) == picked);
  }
}

TEST_CASE("CoLT5Encoder: logits per sequence, heavy switch, backward reaches every parameter") {
  Generator gen(2);
  CoLT5Encoder enc(tiny_encoder(), &gen);
  const Tensor ids = randint(0, 11, {3, 20}, DType::Int64, kCPU, &gen);
  const Tensor logits = enc(ids);
  CHECK(logits.shape() == Shape{3, 5});
  sum(logits * logits).backward();
  for (const auto& [name, p] : enc.named_parameters()) {
    CAPTURE(name);
    CHECK(p.grad().defined());
  }
  NoGradGuard no_grad;
  enc.set_heavy_enabled(false);
  CHECK_FALSE(same_bits(values(logits.detach()), values(enc(ids))));
  CHECK(enc.state_dict().count("blocks.1.conditional_attn.q_router.routing_token") == 1);
}

TEST_CASE("ModelConfig: JSON round trip and rejected configs") {
  const ModelConfig c = tiny_encoder();
  CHECK(ModelConfig::from_json(c.to_json()).to_json() == c.to_json());
  nlohmann::json j = c.to_json();
  j["dimm"] = 3;
  CHECK_THROWS_WITH_AS(ModelConfig::from_json(j), Contains("unknown key 'dimm'"), Error);
  j = c.to_json();
  j["dim"] = "wide";
  CHECK_THROWS_WITH_AS(ModelConfig::from_json(j), Contains("key 'dim' has the wrong type"), Error);
  j = c.to_json();
  j["depth"] = 0;
  CHECK_THROWS_WITH_AS(ModelConfig::from_json(j), Contains("'depth' expected in [1, 256], got 0"), Error);
  // A config read from a file is untrusted: upper bounds too, before anything is allocated.
  for (const char* key : {"dim", "depth", "max_seq_len", "vocab_size", "light_heads", "heavy_dim_head"}) {
    CAPTURE(key);
    j = c.to_json();
    j[key] = int64_t(1) << 40;
    CHECK_THROWS_WITH_AS(ModelConfig::from_json(j), Contains((std::string("'") + key + "' expected in [1, ").c_str()), Error);
  }
  j = c.to_json();
  j["light_window_size"] = j["max_seq_len"].get<int64_t>() + 1;
  CHECK_THROWS_WITH_AS(ModelConfig::from_json(j), Contains("'light_window_size' expected in [2, "), Error);
  j = c.to_json();
  j["heavy_ff_mult"] = 1e300;
  CHECK_THROWS_WITH_AS(ModelConfig::from_json(j), Contains("'heavy_ff_mult' expected in (0, 64]"), Error);
  j = c.to_json();  // each field within its bound, the whole far too large
  j["dim"] = 16384, j["depth"] = 256, j["max_seq_len"] = 1 << 20, j["vocab_size"] = 1 << 20;
  CHECK_THROWS_WITH_AS(ModelConfig::from_json(j), Contains("parameters"), Error);
  j = c.to_json();
  j["kind"] = "decoder";
  CHECK_THROWS_WITH_AS(ModelConfig::from_json(j), Contains("'kind' expected \"lm\" or \"encoder\""), Error);
  ModelConfig e = tiny_encoder();
  e.num_classes = 1;
  CHECK_THROWS_WITH_AS(e.validate(), Contains("'num_classes' expected in [2, 1048576]"), Error);
}

TEST_CASE("models: bad token inputs") {
  Generator gen(1);
  CoLT5LM lm(tiny_lm(), &gen);
  CHECK_THROWS_WITH_AS(lm(from_vector<int64_t>({1, 2, 11}, {1, 3})), Contains("expected a value in [0, 11)"), Error);
  CHECK_THROWS_WITH_AS(lm(zeros({1, 33}, DType::Int64)), Contains("sequence length in [1, 32]"), Error);
  CHECK_THROWS_WITH_AS(lm(zeros({1, 3}, DType::Float32)), Contains("'tokens'"), Error);
  CHECK_THROWS_WITH_AS(lm(zeros({3}, DType::Int64)), Contains("rank 2"), Error);
}
