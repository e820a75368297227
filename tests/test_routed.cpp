// Routers and the routed CoLT5 modules: float64 gradcheck of every router and module with
// straight-through off (with it on, the routed scores' value is the constant 1, so finite
// differences through them are zero by design), hand-checked values (straight-through scores,
// route_back, the cumulative softmax, torch's tie order, the autoregressive windows, per-call
// numbers of heavy tokens), fully masked rows staying finite, and bad options / inputs.
#include <doctest/doctest.h>

#include <algorithm>
#include <utility>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "autograd/ops/coor_descent.h"
#include "nn/routed.h"
#include "nn/routers.h"

using namespace colt5;
using namespace colt5::nn;
using doctest::Contains;

namespace {

Tensor randn64(const Shape& s, Generator& g) { return randn(s, DType::Float64, kCPU, &g); }

Tensor leaf(const Shape& s, Generator& g) {
  Tensor t = randn64(s, g);
  t.requires_grad_();
  return t;
}

// [b, n] bool mask from rows of 0/1.
Tensor mask_of(const std::vector<std::vector<int>>& rows) {
  std::vector<bool> v;
  for (const auto& r : rows)
    for (int x : r) v.push_back(x != 0);
  return from_vector(v, {int64_t(rows.size()), int64_t(rows[0].size())});
}

// Gradcheck of f(x) with respect to x and every parameter of m.
void gradcheck_module(Module& m, const Tensor& x, const std::function<Tensor(const Tensor&)>& f) {
  TensorList in{x};
  for (const Tensor& p : m.parameters()) in.push_back(p);
  GradcheckOptions o;
  o.max_elements = 512;
  GradcheckResult r = gradcheck([&](const TensorList& t) { return f(t[0]); }, in, o);
  INFO(r.message);
  CHECK(r.ok);
}

// The small sizes most module tests use: 2 heads of width 4 in both branches, light window 4.
void small_heads(auto& o) {
  o.light_dim_head = 4;
  o.light_heads = 2;
  o.light_window_size = 4;
  o.heavy_dim_head = 4;
  o.heavy_heads = 2;
}

bool all_finite(const Tensor& t) {
  for (double v : t.detach().to(DType::Float64).contiguous().to_vector<double>())
    if (!std::isfinite(v)) return false;
  return true;
}

// Sum of the gradient-carrying outputs, backward, and every gradient finite.
void check_finite_backward(Module& m, const Tensor& out, const TensorList& inputs) {
  CHECK(all_finite(out));
  sum(out * out).backward();
  for (const Tensor& t : inputs)
    if (t.grad().defined()) CHECK(all_finite(t.grad()));
  for (auto& [name, p] : m.named_parameters()) {
    CAPTURE(name);
    if (p.grad().defined()) CHECK(all_finite(p.grad()));
  }
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.detach().contiguous().to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Routers

TEST_CASE("routers: straight-through scores are 1, masked picks 0, indices distinct and in range") {
  Generator g(1);
  CoordinateDescentRouter r(8, {}, &g);
  r.to(DType::Float64);
  Tensor x = randn64({2, 10, 8}, g);
  Tensor mask = mask_of({{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 0, 0, 0, 0, 0, 0, 0, 0}});
  RouterOutput o = r(x, 4, mask);
  REQUIRE(o.scores.shape() == Shape({2, 4}));
  REQUIRE(o.indices.shape() == Shape({2, 4}));
  std::vector<double> s = o.scores.to_vector<double>();
  std::vector<int64_t> idx = o.indices.to_vector<int64_t>();
  for (int j = 0; j < 4; ++j) CHECK(s[size_t(j)] == doctest::Approx(1.0));
  // Row 1 has two kept tokens: they come first (score 1 > masked 0), the other picks score 0.
  int kept = 0;
  for (int j = 0; j < 4; ++j) {
    const int64_t i = idx[size_t(4 + j)];
    CHECK(i >= 0);
    CHECK(i < 10);
    if (i < 2) {
      ++kept;
      CHECK(s[size_t(4 + j)] == doctest::Approx(1.0));
    } else {
      CHECK(s[size_t(4 + j)] == 0.0);
    }
  }
  CHECK(kept == 2);
  for (int b = 0; b < 2; ++b)
    for (int j = 0; j < 4; ++j)
      for (int k = j + 1; k < 4; ++k) CHECK(idx[size_t(b * 4 + j)] != idx[size_t(b * 4 + k)]);

  // Several routes: [b, r, k].
  CoordinateDescentRouterOptions o3;
  o3.num_routing_tokens = 3;
  CoordinateDescentRouter r3(8, o3, &g);
  r3.to(DType::Float64);
  RouterOutput m = r3(x, 5);
  CHECK(m.scores.shape() == Shape({2, 3, 5}));
  CHECK(m.indices.shape() == Shape({2, 3, 5}));
  CHECK(r3.routing_token.shape() == Shape({3, 8}));
}

TEST_CASE("routers: coordinate-descent scores without straight-through are the soft top-k") {
  Generator g(2);
  CoordinateDescentRouterOptions o;
  o.straight_through = false;
  CoordinateDescentRouter r(6, o, &g);
  r.to(DType::Float64);
  Tensor x = randn64({3, 12, 6}, g);
  RouterOutput out = r(x, 4);
  std::vector<double> s = out.scores.to_vector<double>();
  for (int b = 0; b < 3; ++b)
    for (int j = 0; j < 4; ++j) {
      CHECK(s[size_t(b * 4 + j)] > 0.0);
      CHECK(s[size_t(b * 4 + j)] <= 1.0);
      if (j > 0) CHECK(s[size_t(b * 4 + j)] <= s[size_t(b * 4 + j - 1)]);  // descending
    }
}

TEST_CASE("routers: ties by lower index by default, torch's CPU order in parity mode") {
  // Five tied maxima; k = 3 takes the three lowest positions, listed in that order.
  const Tensor t = from_vector<double>({1, 0.5, 1, 1, 0.2, 1, 0.7, 1}, {1, 8});
  CHECK(tie_order() == TieOrder::Index);
  CHECK(route_topk_indices(t, 3).to_vector<int64_t>() == std::vector<int64_t>{0, 2, 3});
  CHECK(route_topk_indices(t, 6).to_vector<int64_t>() == std::vector<int64_t>{0, 2, 3, 5, 7, 6});
  CHECK(route_sort_indices(t).to_vector<int64_t>() == std::vector<int64_t>{4, 1, 6, 0, 2, 3, 5, 7});
  {
    const TieOrderGuard parity(TieOrder::TorchCPU);
    CHECK(route_topk_indices(t, 3).to_vector<int64_t>() == topk_indices_torch_order(t, 3).to_vector<int64_t>());
    CHECK(route_sort_indices(t).to_vector<int64_t>() == sort_indices_torch_order(t).to_vector<int64_t>());
    // torch's nth_element does not take the lowest tied positions here.
    CHECK(route_topk_indices(t, 3).to_vector<int64_t>() != std::vector<int64_t>{0, 2, 3});
  }
  CHECK(tie_order() == TieOrder::Index);  // the guard restores the default
  CHECK_THROWS_AS(route_topk_indices(t, 9), colt5::Error);

  // A router over a sequence of 10 tokens repeated 4 times (every score tied 4 ways): the
  // default order routes the lowest positions among the tied ones.
  Generator gen(3);
  CoordinateDescentRouterOptions o;
  o.n_iters = 50;
  CoordinateDescentRouter r(8, o, &gen);
  const Tensor x = randn({2, 1, 10, 8}, DType::Float32, kCPU, &gen).expand({2, 4, 10, 8}).reshape({2, 40, 8});
  NoGradGuard no_grad;
  const RouterOutput out = r.forward(x, 6);
  const Tensor full_scores = coor_descent(r.logits(x), 6.0 * o.fetch_k_ratio, {.n_iters = 50, .eps = 1.0});
  const std::vector<int64_t> idx = out.indices.to_vector<int64_t>();
  const std::vector<float> fs = full_scores.to_vector<float>();
  for (int64_t b = 0; b < 2; ++b) {
    std::vector<std::pair<float, int64_t>> order;
    for (int64_t j = 0; j < 40; ++j) order.push_back({-fs[size_t(b * 40 + j)], j});
    std::sort(order.begin(), order.end());  // descending score, then ascending position
    for (int64_t j = 0; j < 6; ++j) CHECK(idx[size_t(b * 6 + j)] == order[size_t(j)].second);
    CHECK(order[6].first == order[5].first);  // the 6th pick is a tie (else this tests nothing)
  }
}

TEST_CASE("routers: torch's tie order and the cumulative softmax by hand") {
  // No ties: plain descending / ascending order.
  Tensor v = from_vector<double>({0.3, 0.9, 0.1, 0.5, 0.7}, {1, 5});
  CHECK(topk_indices_torch_order(v, 3).to_vector<int64_t>() == std::vector<int64_t>{1, 4, 3});
  CHECK(sort_indices_torch_order(v).to_vector<int64_t>() == std::vector<int64_t>{2, 0, 3, 4, 1});
  // Ties: the picked values are the k largest, whichever tied index torch takes first.
  Tensor t = from_vector<double>({1, 0.5, 1, 1, 0.2, 1, 0.7, 1}, {1, 8});
  std::vector<int64_t> idx = topk_indices_torch_order(t, 6).to_vector<int64_t>();
  std::vector<double> tv = t.to_vector<double>();
  for (int j = 0; j < 5; ++j) CHECK(tv[size_t(idx[size_t(j)])] == 1.0);
  CHECK(tv[size_t(idx[5])] == 0.7);
  CHECK_THROWS_AS(topk_indices_torch_order(v, 6), colt5::Error);

  // Cumulative softmax: scores s = x . token; sorted ascending s_(1) <= ... <= s_(n);
  // out_i = e_i / sum_{j <= i} e_j with e = exp(s_(i) - s_(n)); the last k are returned.
  Generator g(3);
  DifferentiableTopKRouterOptions o;
  o.straight_through = false;
  DifferentiableTopKRouter r(1, o, &g);
  r.to(DType::Float64);
  {
    NoGradGuard ng;
    r.routing_token.set_data(from_vector<double>({1.0}, {1, 1}));
  }
  Tensor x = from_vector<double>({0.5, -1.0, 2.0, 0.0}, {1, 4, 1});
  RouterOutput out = r(x, 2);
  CHECK(out.indices.to_vector<int64_t>() == std::vector<int64_t>{0, 2});  // ascending score order
  const double e0 = std::exp(-1.0 - 2.0), e1 = std::exp(0.0 - 2.0), e2 = std::exp(0.5 - 2.0), e3 = 1.0;
  std::vector<double> s = out.scores.to_vector<double>();
  CHECK(s[0] == doctest::Approx(e2 / (e0 + e1 + e2)).epsilon(1e-14));
  CHECK(s[1] == doctest::Approx(e3 / (e0 + e1 + e2 + e3)).epsilon(1e-14));
}

TEST_CASE("routers: route_back puts rows back; the sinkhorn router averages repeated picks") {
  Generator g(4);
  CoordinateDescentRouter r(2, {}, &g);
  r.to(DType::Float64);
  Tensor src = full({1, 4, 2}, 7.0, DType::Float64);
  Tensor routed = from_vector<double>({1, 2, 3, 4}, {1, 2, 2});
  Tensor idx = from_vector<int64_t>({3, 1}, {1, 2});
  CHECK(r.route_back(src, routed, idx).to_vector<double>() == std::vector<double>{7, 7, 3, 4, 7, 7, 1, 2});

  SinkhornRouter sr(2, {}, &g);
  sr.to(DType::Float64);
  Tensor zeros_src = zeros({1, 4, 2}, DType::Float64);
  Tensor routed3 = from_vector<double>({1, 2, 3, 4, 5, 6}, {1, 3, 2});
  Tensor idx3 = from_vector<int64_t>({2, 2, 0}, {1, 3});
  std::vector<double> got = sr.route_back(zeros_src, routed3, idx3).to_vector<double>();
  const std::vector<double> want = {5, 6, 0, 0, 2, 3, 0, 0};  // position 2: mean of rows 0, 1
  for (size_t i = 0; i < want.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-4));
}

TEST_CASE("routers: gradcheck in float64 with straight-through off") {
  Generator g(5);
  Tensor x = leaf({2, 9, 6}, g);
  Tensor mask = mask_of({{1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 0, 1, 1, 0, 1, 1, 1, 1}});
  SUBCASE("coor_descent, one route, masked") {
    CoordinateDescentRouterOptions o;
    o.straight_through = false;
    CoordinateDescentRouter r(6, o, &g);
    r.to(DType::Float64);
    gradcheck_module(r, x, [&](const Tensor& t) { return r(t, 3, mask).scores; });
  }
  SUBCASE("coor_descent, two routes") {
    CoordinateDescentRouterOptions o;
    o.straight_through = false;
    o.num_routing_tokens = 2;
    o.eps = 0.5;
    CoordinateDescentRouter r(6, o, &g);
    r.to(DType::Float64);
    gradcheck_module(r, x, [&](const Tensor& t) { return r(t, 4).scores; });
  }
  SUBCASE("coor_descent, straight-through on: the gradient still flows (checked against the off case)") {
    CoordinateDescentRouterOptions o;
    CoordinateDescentRouter on(6, o, &g);
    on.to(DType::Float64);
    o.straight_through = false;
    CoordinateDescentRouter off(6, o, &g);
    off.to(DType::Float64);
    {
      NoGradGuard ng;
      off.routing_token.set_data(on.routing_token.detach().clone());
    }
    Tensor w = randn64({2, 3}, g);
    Tensor xa = x.detach().clone().requires_grad_(), xb = x.detach().clone().requires_grad_();
    RouterOutput a = on(xa, 3), b = off(xb, 3);
    CHECK(a.indices.to_vector<int64_t>() == b.indices.to_vector<int64_t>());
    sum(a.scores * w).backward();
    sum(b.scores * w).backward();
    CHECK(max_abs(xa.grad() - xb.grad()) < 1e-12);
  }
  SUBCASE("cum_softmax, masked, two routes") {
    DifferentiableTopKRouterOptions o;
    o.straight_through = false;
    o.num_routing_tokens = 2;
    o.temperature = 0.7;
    DifferentiableTopKRouter r(6, o, &g);
    r.to(DType::Float64);
    gradcheck_module(r, x, [&](const Tensor& t) { return r(t, 3, mask).scores; });
  }
  SUBCASE("sinkhorn with fixed noise") {
    SinkhornRouterOptions o;
    o.straight_through = false;
    SinkhornRouter r(6, o, &g);
    r.to(DType::Float64);
    Generator noise(11);
    r.noise_generator = &noise;
    Tensor xp = abs(x.detach()).requires_grad_();  // the reference takes log(scores)
    {
      NoGradGuard ng;
      r.routing_token.set_data(abs(r.routing_token.detach()));
    }
    gradcheck_module(r, xp, [&](const Tensor& t) {
      noise.manual_seed(11);
      return r(t, 3, mask).scores;
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Modules: gradcheck

TEST_CASE("routed modules: gradcheck in float64 with straight-through off") {
  Generator g(7);
  const int64_t dim = 8;
  Tensor mask = mask_of({{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1}});

  SUBCASE("ConditionalRoutedFeedForward") {
    ConditionalRoutedFeedForwardOptions o;
    o.num_heavy_tokens = 3;
    o.router_straight_through = false;
    o.heavy_ff_mult = 2;
    ConditionalRoutedFeedForward m(dim, o, &g);
    m.to(DType::Float64);
    Tensor x = leaf({2, 12, dim}, g);
    gradcheck_module(m, x, [&](const Tensor& t) { return m(t, mask); });
  }
  SUBCASE("ConditionalRoutedFeedForward with the cum_softmax router") {
    ConditionalRoutedFeedForwardOptions o;
    o.num_heavy_tokens = 4;
    o.router_straight_through = false;
    o.router_type = "cum_softmax";
    o.router_kwargs.temperature = 0.8;
    ConditionalRoutedFeedForward m(dim, o, &g);
    m.to(DType::Float64);
    Tensor x = leaf({2, 12, dim}, g);
    gradcheck_module(m, x, [&](const Tensor& t) { return m(t, mask); });
  }
  SUBCASE("ConditionalRoutedAttention (2 key/value routes, scores on queries and keys)") {
    ConditionalRoutedAttentionOptions o;
    o.num_heavy_tokens_q = 3;
    o.num_heavy_tokens_kv = 4;
    o.num_routed_kv = 2;
    small_heads(o);
    o.router_straight_through = false;
    o.multiply_keys_by_score = true;
    o.multiply_queries_by_score = true;
    ConditionalRoutedAttention m(dim, o, &g);
    m.to(DType::Float64);
    Tensor x = leaf({2, 12, dim}, g);
    gradcheck_module(m, x, [&](const Tensor& t) { return m(t, mask); });
  }
  SUBCASE("ConditionalRoutedAttention, 0.11.1 options: heavy rotary, no light branch, cosine eps-scaled routing") {
    ConditionalRoutedAttentionOptions o;
    o.num_heavy_tokens_q = 3;
    o.num_heavy_tokens_kv = 4;
    o.num_routed_kv = 2;
    small_heads(o);
    o.router_straight_through = false;
    o.has_light_attn = false;
    o.rotary_emb = true;
    o.router_kwargs = RouterKwargs::v0_11_1();
    o.router_kwargs.eps = 0.3;  // 0.03 makes the soft top-k too sharp for finite differences
    o.router_kwargs.cosine_sim_routing = true;
    o.router_kwargs.cosine_sim_scale = 3.0;
    ConditionalRoutedAttention m(dim, o, &g);
    CHECK_FALSE(m.light_attn);
    m.to(DType::Float64);
    Tensor x = leaf({2, 12, dim}, g);
    gradcheck_module(m, x, [&](const Tensor& t) { return m(t, mask); });
  }
  SUBCASE("ConditionalRoutedAutoregressiveAttention, 0.11.1: heavy rotary, light exact window off") {
    ConditionalRoutedAutoregressiveAttentionOptions o;
    o.num_heavy_tokens_q = 2;
    o.num_heavy_tokens_kv = 3;
    small_heads(o);
    o.router_straight_through = false;
    o.rotary_emb = true;
    o.light_exact_windowsize = false;
    ConditionalRoutedAutoregressiveAttention m(dim, o, &g);
    m.to(DType::Float64);
    Tensor x = leaf({2, 11, dim}, g);
    gradcheck_module(m, x, [&](const Tensor& t) { return m(t); });
  }
  SUBCASE("ConditionalRoutedAutoregressiveAttention") {
    ConditionalRoutedAutoregressiveAttentionOptions o;
    o.num_heavy_tokens_q = 2;
    o.num_heavy_tokens_kv = 3;
    small_heads(o);
    o.router_straight_through = false;
    ConditionalRoutedAutoregressiveAttention m(dim, o, &g);
    m.to(DType::Float64);
    Tensor x = leaf({2, 11, dim}, g);
    gradcheck_module(m, x, [&](const Tensor& t) { return m(t); });
  }
  SUBCASE("ConditionalRoutedCrossAttention (2 key/value routes, masks)") {
    ConditionalRoutedCrossAttentionOptions o;
    o.num_tokens_q = 3;
    o.num_tokens_kv = 4;
    o.dim_head = 4;
    o.heads = 2;
    o.kv_routing_tokens = 2;
    o.router_straight_through = false;
    ConditionalRoutedCrossAttention m(dim, o, &g);
    m.to(DType::Float64);
    Tensor x = leaf({2, 6, dim}, g);
    Tensor context = leaf({2, 12, dim}, g);
    Tensor xmask = mask_of({{1, 1, 1, 1, 1, 1}, {1, 0, 1, 1, 1, 1}});
    TensorList in{x, context};
    for (const Tensor& p : m.parameters()) in.push_back(p);
    GradcheckOptions go;
    go.max_elements = 512;
    GradcheckResult r =
        gradcheck([&](const TensorList& t) { return m(t[0], t[1], xmask, mask); }, in, go);
    INFO(r.message);
    CHECK(r.ok);
  }
  SUBCASE("ConditionalRoutedTransformerBlock") {
    ConditionalRoutedTransformerBlockOptions o;
    o.num_heavy_attn_tokens_q = 3;
    o.num_heavy_attn_tokens_kv = 4;
    o.num_heavy_ff_tokens = 3;
    small_heads(o);
    o.heavy_ff_mult = 2;
    o.router_straight_through = false;
    ConditionalRoutedTransformerBlock m(dim, o, &g);
    m.to(DType::Float64);
    Tensor x = leaf({2, 12, dim}, g);
    gradcheck_module(m, x, [&](const Tensor& t) { return m(t, mask); });
  }
}

// ---------------------------------------------------------------------------------------------
// Modules: values and structure

TEST_CASE("routed modules: parameter names are the reference's state_dict keys") {
  Generator g(8);
  ConditionalRoutedAttentionOptions o;
  o.num_heavy_tokens_q = 2;
  o.num_heavy_tokens_kv = 2;
  o.light_heads = 2;
  o.light_dim_head = 4;
  o.heavy_heads = 2;
  o.heavy_dim_head = 4;
  ConditionalRoutedAttention m(8, o, &g);
  std::vector<std::string> names;
  for (auto& [n, p] : m.named_parameters()) names.push_back(n);
  for (const char* want : {"light_attn.norm.weight", "light_attn.norm.bias", "light_attn.to_qkv.weight",
                           "light_attn.to_out.weight", "null_q_token", "q_router.routing_token",
                           "kv_router.routing_token", "heavy_attn.norm.gamma", "heavy_attn.null_kv",
                           "heavy_attn.to_q.weight", "heavy_attn.to_kv.weight", "heavy_attn.to_out.weight"}) {
    CAPTURE(want);
    CHECK(std::find(names.begin(), names.end(), want) != names.end());
  }
  CHECK(names.size() == 12);
  o.use_null_q_tokens = false;
  ConditionalRoutedAttention m2(8, o, &g);
  for (auto& [n, p] : m2.named_parameters()) CHECK(n != "null_q_token");
  CHECK_FALSE(m2.null_q_token.defined());

  ConditionalRoutedTransformerBlockOptions bo;
  bo.num_heavy_attn_tokens_q = bo.num_heavy_attn_tokens_kv = bo.num_heavy_ff_tokens = 2;
  ConditionalRoutedTransformerBlock block(8, bo, &g);
  auto sd = block.state_dict();
  CHECK(sd.count("conditional_ff.light_ff.1.weight"));
  CHECK(sd.count("conditional_ff.heavy_ff.3.bias"));
  CHECK(sd.count("conditional_ff.router.routing_token"));
  CHECK(sd.count("conditional_attn.kv_router.routing_token"));
  CHECK(sd.at("conditional_ff.light_ff.1.weight").shape() == Shape({4, 8}));  // int(8 * 0.5)
}

TEST_CASE("ConditionalRoutedFeedForward: the heavy branch touches exactly the routed tokens") {
  Generator g(9);
  ConditionalRoutedFeedForwardOptions o;
  o.num_heavy_tokens = 2;
  ConditionalRoutedFeedForward m(4, o, &g);
  m.to(DType::Float64);
  Tensor x = randn64({2, 7, 4}, g);
  NoGradGuard ng;
  Tensor light = m.light_ff->forward(x);
  auto changed_rows = [&](const Tensor& out) {
    std::vector<double> d = (out - light).contiguous().to_vector<double>();
    int rows = 0;
    for (int r = 0; r < 14; ++r) {
      double s = 0;
      for (int k = 0; k < 4; ++k) s += std::abs(d[size_t(r * 4 + k)]);
      rows += s > 0;
    }
    return rows;
  };
  CHECK(changed_rows(m(x)) == 2 * 2);
  CHECK(changed_rows(m(x, Tensor(), 5)) == 2 * 5);  // per-call override
  CHECK(changed_rows(m(x, Tensor(), 7)) == 2 * 7);
  // Straight-through on: the heavy branch's output is heavy_ff(x) itself at the routed rows.
  RouterOutput r = m.router->forward(x, 2);
  Tensor routed = batched_gather(x, r.indices);
  Tensor expect = m.heavy_ff->forward(routed) + batched_gather(light, r.indices);
  CHECK(max_abs(batched_gather(m(x), r.indices) - expect) < 1e-12);
}

TEST_CASE("ConditionalRoutedAutoregressiveAttention: window 0 and short sequences are light only") {
  Generator g(10);
  ConditionalRoutedAutoregressiveAttentionOptions o;
  o.num_heavy_tokens_q = 2;
  o.num_heavy_tokens_kv = 3;
  small_heads(o);
  o.heavy_window_size = 3;
  ConditionalRoutedAutoregressiveAttention m(8, o, &g);
  m.to(DType::Float64);
  CHECK(m.heavy_window_size() == 3);
  NoGradGuard ng;
  Tensor x = randn64({2, 10, 8}, g);
  Tensor out = m(x);
  Tensor light = m.light_attn->forward(x);
  CHECK(out.shape() == Shape({2, 10, 8}));
  CHECK(max_abs(out.narrow(1, 0, 3) - light.narrow(1, 0, 3)) == 0.0);
  CHECK(max_abs(out.narrow(1, 3, 7) - light.narrow(1, 3, 7)) > 0.0);
  // Causal: changing the last token leaves every earlier output unchanged.
  Tensor x2 = cat({x.narrow(1, 0, 9), randn64({2, 1, 8}, g)}, 1);
  CHECK(max_abs(m(x2).narrow(1, 0, 9) - out.narrow(1, 0, 9)) < 1e-12);
  // A sequence of at most one heavy window has no heavy part.
  Tensor xs = randn64({2, 3, 8}, g);
  CHECK(max_abs(m(xs) - m.light_attn->forward(xs)) == 0.0);
  Tensor x1 = randn64({1, 2, 8}, g);
  CHECK(m(x1).shape() == Shape({1, 2, 8}));
  // Overrides: taking every token skips routing and still runs.
  CHECK(m(x, 3, 12).shape() == Shape({2, 10, 8}));
}

TEST_CASE("ConditionalRoutedCrossAttention: unrouted queries give the heavy attention's output") {
  Generator g(11);
  ConditionalRoutedCrossAttentionOptions o;
  o.num_tokens_q = 4;
  o.num_tokens_kv = 5;
  o.dim_head = 4;
  o.heads = 2;
  ConditionalRoutedCrossAttention m(8, o, &g);
  m.to(DType::Float64);
  NoGradGuard ng;
  Tensor x = randn64({2, 4, 8}, g), context = randn64({2, 5, 8}, g);
  // n <= num_tokens_q and m <= num_tokens_kv: nothing is routed.
  CHECK(max_abs(m(x, context) - m.heavy_attn->forward(x, context)) == 0.0);
  // Routed queries: the unpicked ones get the null token.
  Tensor x6 = randn64({2, 6, 8}, g);
  Tensor out = m(x6, context, Tensor(), Tensor(), 2);
  RouterOutput r = m.q_router->forward(x6, 2);
  std::vector<int64_t> idx = r.indices.to_vector<int64_t>();
  std::vector<double> o6 = out.contiguous().to_vector<double>(), nq = m.null_q_token.detach().to_vector<double>();
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < 6; ++i) {
      if (idx[size_t(b * 2)] == i || idx[size_t(b * 2 + 1)] == i) continue;
      for (int k = 0; k < 8; ++k) CHECK(o6[size_t((b * 6 + i) * 8 + k)] == nq[size_t(k)]);
    }
}

TEST_CASE("routed modules: a batch row whose mask is all False stays finite (values and gradients)") {
  Generator g(12);
  const int64_t dim = 8;
  Tensor mask = mask_of({{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}});
  for (bool st : {true, false}) {
    CAPTURE(st);
    {
      ConditionalRoutedFeedForwardOptions o;
      o.num_heavy_tokens = 3;
      o.router_straight_through = st;
      ConditionalRoutedFeedForward m(dim, o, &g);
      m.to(DType::Float64);
      Tensor x = leaf({2, 10, dim}, g);
      check_finite_backward(m, m(x, mask), {x});
    }
    {
      ConditionalRoutedAttentionOptions o;
      o.num_heavy_tokens_q = 3;
      o.num_heavy_tokens_kv = 4;
      o.num_routed_kv = 2;
      small_heads(o);
      o.router_straight_through = st;
      ConditionalRoutedAttention m(dim, o, &g);
      m.to(DType::Float64);
      Tensor x = leaf({2, 10, dim}, g);
      check_finite_backward(m, m(x, mask), {x});
    }
    {
      ConditionalRoutedTransformerBlockOptions o;
      o.num_heavy_attn_tokens_q = 3;
      o.num_heavy_attn_tokens_kv = 4;
      o.num_heavy_ff_tokens = 3;
      small_heads(o);
      o.router_straight_through = st;
      ConditionalRoutedTransformerBlock m(dim, o, &g);
      m.to(DType::Float64);
      Tensor x = leaf({2, 10, dim}, g);
      check_finite_backward(m, m(x, mask), {x});
    }
    {
      ConditionalRoutedCrossAttentionOptions o;
      o.num_tokens_q = 2;
      o.num_tokens_kv = 3;
      o.dim_head = 4;
      o.heads = 2;
      o.router_straight_through = st;
      ConditionalRoutedCrossAttention m(dim, o, &g);
      m.to(DType::Float64);
      Tensor x = leaf({2, 5, dim}, g), context = leaf({2, 10, dim}, g);
      Tensor xmask = mask_of({{1, 1, 1, 1, 1}, {0, 0, 0, 0, 0}});
      check_finite_backward(m, m(x, context, xmask, mask), {x, context});
    }
    {
      for (const char* type : {"cum_softmax", "coor_descent"}) {
        ConditionalRoutedFeedForwardOptions o;
        o.num_heavy_tokens = 3;
        o.router_straight_through = st;
        o.router_type = type;
        ConditionalRoutedFeedForward m(dim, o, &g);
        m.to(DType::Float64);
        Tensor x = leaf({2, 10, dim}, g);
        check_finite_backward(m, m(x, mask), {x});
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Bad options and inputs

TEST_CASE("routers and routed attention: 0.11.1's options, their state_dict keys and their checks") {
  // cosine-similarity routing scores unit vectors: scaling x or the routing token changes nothing
  CoordinateDescentRouterOptions o;
  o.cosine_sim_routing = true;
  o.cosine_sim_scale = 5.0;
  Generator g(3);
  CoordinateDescentRouter r(6, o, &g);
  r.to(DType::Float64);
  Tensor x = randn64({2, 9, 6}, g);
  const Tensor s = r.logits(x);
  CHECK(max_abs(r.logits(x * 7.0) - s) < 1e-12);
  CHECK(max_abs(s) <= 5.0 + 1e-12);  // |scale * cos| <= scale
  o.cosine_sim_scale = 0;
  CHECK_THROWS_WITH_AS(CoordinateDescentRouter(6, o), Contains("'cosine_sim_scale' expected a finite value > 0"),
                       colt5::Error);
  o = {};
  o.eps_decay = 1.5;
  CHECK_THROWS_WITH_AS(CoordinateDescentRouter(6, o), Contains("'eps_decay' expected a value in (0, 1]"), colt5::Error);
  o = {};
  o.eps_init = -1.0;
  CHECK_THROWS_WITH_AS(CoordinateDescentRouter(6, o), Contains("'eps_init' expected a finite value > 0"), colt5::Error);
  // the 0.11.1 keyword arguments belong to the coordinate-descent router only
  RouterKwargs kw;
  kw.cosine_sim_routing = true;
  CHECK_THROWS_WITH_AS(make_router("cum_softmax", 6, true, 1, kw, nullptr, "test"),
                       Contains("'router_kwargs' has 'cosine_sim_routing'"), colt5::Error);
  const RouterKwargs v = RouterKwargs::v0_11_1();
  CHECK(*v.n_iters == 20);
  CHECK(*v.eps == 0.03);
  CHECK(*v.eps_init == 4.0);
  CHECK(*v.eps_decay == 0.7);

  ConditionalRoutedAttentionOptions a;
  a.num_heavy_tokens_q = 2, a.num_heavy_tokens_kv = 3;
  small_heads(a);
  a.rotary_emb = true;
  a.has_light_attn = false;
  ConditionalRoutedAttention m(8, a);
  const auto sd = m.state_dict();
  CHECK(sd.count("rotary_emb.inv_freq") == 1);
  for (const auto& [name, t] : sd) CHECK(name.rfind("light_attn.", 0) != 0);
  a.heavy_dim_head = 3;
  CHECK_THROWS_WITH_AS(ConditionalRoutedAttention(8, a), Contains("'heavy_dim_head' expected an even value with rotary_emb"),
                       colt5::Error);
}

TEST_CASE("routers: 0.11.1's route_block_size routes every block on its own; random_route; keep_one_route_dim") {
  Generator g(4);
  Tensor x = randn64({2, 14, 6}, g);
  Tensor mask = mask_of({{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1}});
  for (int64_t r : {1, 2}) {
    CAPTURE(r);
    CoordinateDescentRouterOptions o;
    o.num_routing_tokens = r;
    o.straight_through = false;
    o.eps = 0.5;
    CoordinateDescentRouter plain(6, o, &g);
    plain.to(DType::Float64);
    o.route_block_size = 4;  // 14 tokens: 3 whole blocks (the last 2 tokens are not routed)
    CoordinateDescentRouter blocks(6, o, &g);
    blocks.to(DType::Float64);
    {
      NoGradGuard ng;
      blocks.routing_token.set_data(plain.routing_token.detach().clone());
    }
    RouterOutput got = blocks(x, 5, mask);  // ceil(5 / 3) = 2 per block: 6 picks
    const Shape want_shape = r == 1 ? Shape{2, 6} : Shape{2, r, 6};
    REQUIRE(got.indices.shape() == want_shape);
    // the oracle: block i of the sequence routed alone (2 tokens), positions shifted by 4 i
    for (int64_t i = 0; i < 3; ++i) {
      RouterOutput one = plain(x.narrow(1, 4 * i, 4).contiguous(), 2, mask.narrow(1, 4 * i, 4).contiguous());
      const Tensor gi = got.indices.narrow(-1, 2 * i, 2), gs = got.scores.narrow(-1, 2 * i, 2);
      CHECK(gi.contiguous().to_vector<int64_t>() == add_scalar(one.indices, double(4 * i)).contiguous().to_vector<int64_t>());
      CHECK(max_abs(gs - one.scores) < 1e-14);
    }
  }
  // random_route: random picks, and the routing token gets no gradient from the scores
  CoordinateDescentRouter rr(6, {}, &g);
  rr.to(DType::Float64);
  Generator noise(9);
  RouteCallOptions call;
  call.random_route = true;
  call.generator = &noise;
  RouterOutput a = rr.forward(x, 4, mask, call);
  CHECK(a.indices.shape() == Shape({2, 4}));
  for (int64_t i : a.indices.select(0, 1).to_vector<int64_t>()) CHECK(mask.select(0, 1).to_vector<bool>()[size_t(i)]);
  CHECK_FALSE(a.scores.requires_grad());  // noise, not a function of x or the routing token
  call.random_route = false;
  call.keep_one_route_dim = true;
  CHECK(rr.forward(x, 4, mask, call).scores.shape() == Shape({2, 1, 4}));
  CoordinateDescentRouterOptions bad;
  bad.route_block_size = 0;
  CHECK_THROWS_WITH_AS(CoordinateDescentRouter(6, bad), Contains("'route_block_size' expected >= 1"), colt5::Error);
  bad.route_block_size = 20;
  CHECK_THROWS_WITH_AS(CoordinateDescentRouter(6, bad).forward(x.to(DType::Float32), 2), Contains("at least route_block_size = 20"),
                       colt5::Error);
}

TEST_CASE("routers: 0.11.1's RouterReturn (route_tokens) and caller-supplied routing tokens") {
  Generator g(6);
  Tensor x = randn64({2, 9, 6}, g);
  Tensor mask = mask_of({{1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 0, 1, 1, 0, 1, 1, 1, 1}});
  CoordinateDescentRouterOptions o;
  o.num_routing_tokens = 2;
  CoordinateDescentRouter r(6, o, &g);
  r.to(DType::Float64);
  // routed: the tokens at the indices, each batch row from its own row of x
  RouterReturn a = r.route_tokens(x, 3, mask);
  REQUIRE(a.indices.shape() == Shape({2, 2, 3}));
  REQUIRE(a.routed_tokens.shape() == Shape({2, 2, 3, 6}));
  const auto idx = a.indices.to_vector<int64_t>();
  for (int64_t bi = 0; bi < 2; ++bi)
    for (int64_t j = 0; j < 6; ++j)
      CHECK(max_abs(a.routed_tokens.select(0, bi).reshape({6, 6}).select(0, j) - x.select(0, bi).select(0, idx[size_t(bi * 6 + j)])) == 0.0);
  CHECK(a.routed_mask.shape() == Shape({2, 2, 3}));
  // nothing to route (n <= num_tokens): every token, scores 1, no indices
  RouterReturn all = r.route_tokens(x, 9, mask);
  CHECK_FALSE(all.indices.defined());
  CHECK(all.scores.shape() == Shape({2, 2, 9}));
  CHECK(all.routed_tokens.shape() == Shape({2, 2, 9, 6}));
  CoordinateDescentRouter one(6, {}, &g);
  one.to(DType::Float64);
  CHECK(one.route_tokens(x, 20).scores.shape() == Shape({2, 9}));
  RouteCallOptions keep;
  keep.keep_one_route_dim = true;
  CHECK(one.route_tokens(x, 20, Tensor(), keep).scores.shape() == Shape({2, 1, 9}));

  // learned_routing_tokens: no parameter; the tokens come with the call, [b, r, d]
  o.learned_routing_tokens = true;
  CoordinateDescentRouter lt(6, o, &g);
  CHECK(lt.named_parameters().empty());
  RouteCallOptions call;
  call.routing_tokens = randn64({2, 2, 6}, g);
  RouterOutput p = lt.forward(x, 3, mask, call);
  CHECK(p.indices.shape() == Shape({2, 2, 3}));
  // the same as a router whose routing_token is row 0's tokens, for batch row 0
  CoordinateDescentRouterOptions o2;
  o2.num_routing_tokens = 2;
  CoordinateDescentRouter fixed(6, o2, &g);
  fixed.to(DType::Float64);
  {
    NoGradGuard ng;
    fixed.routing_token.set_data(call.routing_tokens.select(0, 0).contiguous());
  }
  CHECK(fixed(x.narrow(0, 0, 1), 3).indices.to_vector<int64_t>() == p.indices.narrow(0, 0, 1).contiguous().to_vector<int64_t>());
  CHECK_THROWS_WITH_AS(lt.forward(x, 3), Contains("'routing_tokens' is required"), colt5::Error);
  call.routing_tokens = randn64({2, 3, 6}, g);
  CHECK_THROWS_WITH_AS(lt.forward(x, 3, mask, call), Contains("'routing_tokens' expected shape [2, 2, 6]"), colt5::Error);
  CHECK_THROWS_WITH_AS(fixed.forward(x, 3, mask, call), Contains("only for a router built with learned_routing_tokens"),
                       colt5::Error);
}

TEST_CASE("routed modules: bad options throw colt5::Error naming the option") {
  Generator g(13);
  SUBCASE("routers") {
    CoordinateDescentRouterOptions o;
    o.fetch_k_ratio = 0.9;
    CHECK_THROWS_WITH_AS(CoordinateDescentRouter(4, o, &g), Contains("fetch_k_ratio"), colt5::Error);
    o = {};
    o.eps = 0.0;
    CHECK_THROWS_WITH_AS(CoordinateDescentRouter(4, o, &g), Contains("eps"), colt5::Error);
    o = {};
    o.eps = -1.0;
    CHECK_THROWS_WITH_AS(CoordinateDescentRouter(4, o, &g), Contains("eps"), colt5::Error);
    o = {};
    o.n_iters = 0;
    CHECK_THROWS_WITH_AS(CoordinateDescentRouter(4, o, &g), Contains("n_iters"), colt5::Error);
    o = {};
    o.num_routing_tokens = 0;
    CHECK_THROWS_WITH_AS(CoordinateDescentRouter(4, o, &g), Contains("num_routing_tokens"), colt5::Error);
    DifferentiableTopKRouterOptions t;
    t.temperature = 0;
    CHECK_THROWS_WITH_AS(DifferentiableTopKRouter(4, t, &g), Contains("temperature"), colt5::Error);
    SinkhornRouterOptions s;
    s.temperature = -1;
    CHECK_THROWS_WITH_AS(SinkhornRouter(4, s, &g), Contains("temperature"), colt5::Error);
  }
  SUBCASE("feedforward") {
    ConditionalRoutedFeedForwardOptions o;  // num_heavy_tokens not set
    CHECK_THROWS_WITH_AS(ConditionalRoutedFeedForward(8, o, &g), Contains("num_heavy_tokens"), colt5::Error);
    o.num_heavy_tokens = 2;
    o.router_kwargs.fetch_k_ratio = 0.5;
    CHECK_THROWS_WITH_AS(ConditionalRoutedFeedForward(8, o, &g), Contains("fetch_k_ratio"), colt5::Error);
    o.router_kwargs = {};
    o.router_kwargs.eps = 0.0;
    CHECK_THROWS_WITH_AS(ConditionalRoutedFeedForward(8, o, &g), Contains("eps"), colt5::Error);
    o.router_kwargs = {};
    o.router_type = "mystery";
    CHECK_THROWS_WITH_AS(ConditionalRoutedFeedForward(8, o, &g), Contains("router_type"), colt5::Error);
    o.router_type = "coor_descent";
    o.router_kwargs.temperature = 0.5;  // not a coordinate-descent keyword
    CHECK_THROWS_WITH_AS(ConditionalRoutedFeedForward(8, o, &g), Contains("temperature"), colt5::Error);
    o.router_type = "cum_softmax";
    o.router_kwargs = {};
    o.router_kwargs.n_iters = 5;
    CHECK_THROWS_WITH_AS(ConditionalRoutedFeedForward(8, o, &g), Contains("n_iters"), colt5::Error);
  }
  SUBCASE("attention") {
    ConditionalRoutedAttentionOptions o;
    o.num_heavy_tokens_q = 2;
    o.num_heavy_tokens_kv = 2;
    o.light_heads = 2;
    o.light_dim_head = 4;
    o.heavy_heads = 3;
    o.num_routed_kv = 2;  // 3 heads not divisible by 2 routes
    CHECK_THROWS_WITH_AS(ConditionalRoutedAttention(8, o, &g), Contains("num_routed_kv"), colt5::Error);
    o.heavy_heads = 4;
    o.num_heavy_tokens_kv = 0;
    CHECK_THROWS_WITH_AS(ConditionalRoutedAttention(8, o, &g), Contains("num_heavy_tokens_kv"), colt5::Error);
    o.num_heavy_tokens_kv = 2;
    o.num_heavy_tokens_q = -1;
    CHECK_THROWS_WITH_AS(ConditionalRoutedAttention(8, o, &g), Contains("num_heavy_tokens_q"), colt5::Error);
    o.num_heavy_tokens_q = 2;
    o.light_window_size = 1;
    CHECK_THROWS_WITH_AS(ConditionalRoutedAttention(8, o, &g), Contains("light_window_size"), colt5::Error);
    ConditionalRoutedAutoregressiveAttentionOptions a;
    a.num_heavy_tokens_q = 2;
    a.num_heavy_tokens_kv = 2;
    a.heavy_window_size = 0;
    CHECK_THROWS_WITH_AS(ConditionalRoutedAutoregressiveAttention(8, a, &g), Contains("heavy_window_size"),
                         colt5::Error);
    ConditionalRoutedCrossAttentionOptions c;
    c.num_tokens_q = 2;
    c.num_tokens_kv = 2;
    c.heads = 4;
    c.kv_routing_tokens = 3;
    CHECK_THROWS_WITH_AS(ConditionalRoutedCrossAttention(8, c, &g), Contains("kv_routing_tokens"), colt5::Error);
    ConditionalRoutedTransformerBlockOptions b;
    b.num_heavy_attn_tokens_q = b.num_heavy_attn_tokens_kv = 2;
    CHECK_THROWS_WITH_AS(ConditionalRoutedTransformerBlock(8, b, &g), Contains("num_heavy_ff_tokens"),
                         colt5::Error);
  }
}

TEST_CASE("routed modules: bad inputs throw colt5::Error naming the argument") {
  Generator g(14);
  ConditionalRoutedFeedForwardOptions fo;
  fo.num_heavy_tokens = 2;
  ConditionalRoutedFeedForward ff(8, fo, &g);
  ff.to(DType::Float64);
  ConditionalRoutedAttentionOptions ao;
  ao.num_heavy_tokens_q = 2;
  ao.num_heavy_tokens_kv = 3;
  ao.light_heads = 2;
  ao.light_dim_head = 4;
  ao.light_window_size = 4;
  ao.heavy_heads = 2;
  ao.heavy_dim_head = 4;
  ConditionalRoutedAttention attn(8, ao, &g);
  attn.to(DType::Float64);
  Tensor x = randn64({2, 6, 8}, g);

  // rank and feature size
  CHECK_THROWS_WITH_AS(ff(randn64({6, 8}, g)), Contains("'x'"), colt5::Error);
  CHECK_THROWS_WITH_AS(ff(randn64({2, 6, 7}, g)), Contains("'x'"), colt5::Error);
  CHECK_THROWS_WITH_AS(attn(randn64({2, 6, 9}, g)), Contains("'x'"), colt5::Error);
  CHECK_THROWS_WITH_AS(attn(randn64({1, 2, 6, 8}, g)), Contains("'x'"), colt5::Error);
  // dtype differs from the parameters'
  CHECK_THROWS_WITH_AS(ff(randn({2, 6, 8}, DType::Float32, kCPU, &g)), Contains("'x'"), colt5::Error);
  // mask shape and dtype
  CHECK_THROWS_WITH_AS(ff(x, ones({2, 5}, DType::Bool)), Contains("'mask'"), colt5::Error);
  CHECK_THROWS_WITH_AS(ff(x, ones({2, 6}, DType::Float64)), Contains("'mask'"), colt5::Error);
  CHECK_THROWS_WITH_AS(attn(x, ones({6}, DType::Bool)), Contains("'mask'"), colt5::Error);
  CHECK_THROWS_WITH_AS(attn(x, ones({2, 6}, DType::Int64)), Contains("'mask'"), colt5::Error);
  // number of heavy tokens per call
  CHECK_THROWS_WITH_AS(ff(x, Tensor(), 0), Contains("num_heavy_tokens"), colt5::Error);
  CHECK_THROWS_WITH_AS(attn(x, Tensor(), 0), Contains("num_heavy_tokens_q"), colt5::Error);
  CHECK_THROWS_WITH_AS(attn(x, Tensor(), 2, -3), Contains("num_heavy_tokens_kv"), colt5::Error);
  CHECK_THROWS_WITH_AS(ff(x, Tensor(), 7), Contains("num_tokens"), colt5::Error);  // more than n
  // cross attention: context checks
  ConditionalRoutedCrossAttentionOptions co;
  co.num_tokens_q = 2;
  co.num_tokens_kv = 2;
  co.dim_head = 4;
  co.heads = 2;
  ConditionalRoutedCrossAttention cross(8, co, &g);
  cross.to(DType::Float64);
  CHECK_THROWS_WITH_AS(cross(x, randn64({3, 5, 8}, g)), Contains("'context'"), colt5::Error);
  CHECK_THROWS_WITH_AS(cross(x, randn64({2, 5, 4}, g)), Contains("'context'"), colt5::Error);
  CHECK_THROWS_WITH_AS(cross(x, randn64({2, 5, 8}, g), Tensor(), ones({2, 4}, DType::Bool)),
                       Contains("'context_mask'"), colt5::Error);
  CHECK_THROWS_WITH_AS(cross(x, randn64({2, 5, 8}, g), Tensor(), Tensor(), 0), Contains("num_tokens_q"),
                       colt5::Error);
  // routers directly
  CoordinateDescentRouter r(8, {}, &g);
  r.to(DType::Float64);
  CHECK_THROWS_WITH_AS(r(x, 0), Contains("num_tokens"), colt5::Error);
  CHECK_THROWS_WITH_AS(r(randn64({2, 6, 3}, g), 2), Contains("'x'"), colt5::Error);
  CHECK_THROWS_WITH_AS(r(x, 2, ones({2, 6}, DType::Float64)), Contains("'mask'"), colt5::Error);
  CHECK_THROWS_WITH_AS(r.route_back(zeros({2, 6, 8}, DType::Float64), zeros({2, 3, 8}, DType::Float64),
                                    zeros({2, 2}, DType::Int64)),
                       Contains("'routed'"), colt5::Error);
  CHECK_THROWS_AS(r.route_back(zeros({2, 6, 8}, DType::Float64), zeros({2, 1, 8}, DType::Float64),
                               full({2, 1}, 6.0, DType::Int64)),
                  colt5::Error);  // index out of range
}

// ---------------------------------------------------------------------------------------------
// ConditionalRoutedAutoregressiveAttention against the per-window-copy formulation

namespace {

// The formulation nn/routed.cpp used before it routed keys / values by index: for every query
// window i >= 1, a copy of the whole padded sequence masked from window i on, routed by
// kv_router->forward and gathered from that copy (O(windows * N * dim) memory). Kept here as the
// test oracle of the indexed formulation.
Tensor ar_attention_per_window_copy(const ConditionalRoutedAutoregressiveAttention& m, const Tensor& x, int64_t kq,
                                    int64_t kkv) {
  Tensor light = m.light_attn->forward(x);
  const int64_t b = x.size(0), n = x.size(1), d = m.dim(), w = m.heavy_window_size();
  const int64_t windows = (n + w - 1) / w, padded_n = windows * w;
  if (windows <= 1) return light;
  const int64_t qb = b * (windows - 1);
  Tensor xp = padded_n == n ? x : pad(x, {0, 0, 0, padded_n - n});
  Tensor q = xp.reshape({b, windows, w, d}).narrow(1, 1, windows - 1).reshape({qb, w, d});
  std::vector<bool> q_mask_v(size_t(qb * w)), kv_mask_v(size_t(qb * padded_n));
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t i = 1; i < windows; ++i) {
      const int64_t row = bi * (windows - 1) + (i - 1);
      for (int64_t j = 0; j < w; ++j) q_mask_v[size_t(row * w + j)] = i * w + j < n;
      for (int64_t t = 0; t < padded_n; ++t) kv_mask_v[size_t(row * padded_n + t)] = t / w < i;
    }
  Tensor q_mask = from_vector(q_mask_v, {qb, w});
  Tensor kv = xp.unsqueeze(1).expand({b, windows, padded_n, d}).narrow(1, 1, windows - 1).reshape({qb, padded_n, d});
  Tensor kv_mask = from_vector(kv_mask_v, {qb, padded_n});
  const bool route_q = w > kq, route_kv = padded_n > kkv;
  Tensor routed_q = q, scores_q, indices_q;
  if (route_q) {
    RouterOutput r = m.q_router->forward(q, kq, q_mask);
    scores_q = r.scores;
    indices_q = r.indices;
    routed_q = batched_gather(q, indices_q);
  }
  Tensor routed_kv = kv, routed_kv_mask = kv_mask, scores_kv;
  if (route_kv) {
    RouterOutput r = m.kv_router->forward(kv, kkv, kv_mask);
    scores_kv = r.scores;
    routed_kv = batched_gather(kv, r.indices);
    routed_kv_mask = batched_gather(kv_mask, r.indices);
  }
  Tensor out = m.heavy_attn->forward(routed_q, routed_kv, routed_kv_mask, scores_kv,
                                     m.options().multiply_queries_by_score && route_q ? scores_q : Tensor());
  Tensor heavy = out;
  if (route_q) {
    out = out * scores_q.unsqueeze(-1);
    Tensor src = m.null_q_token.defined() ? m.null_q_token.reshape({1, 1, d}).expand(q.shape()) : zeros_like(q);
    heavy = m.q_router->route_back(src, out, indices_q);
  }
  heavy = heavy.reshape({b, (windows - 1) * w, d}).narrow(1, 0, n - w);
  heavy = pad(heavy, {0, 0, w, 0});
  return light + heavy;
}

// Output, and gradients of sum(out * weights) with respect to x and every parameter.
struct OutAndGrads {
  Tensor out;
  std::vector<Tensor> grads;
};

OutAndGrads out_and_grads(Module& m, const Tensor& x, const Tensor& weights,
                          const std::function<Tensor(const Tensor&)>& f) {
  for (Tensor p : m.parameters()) p.zero_grad();
  Tensor xl = x.detach();
  xl.requires_grad_();
  OutAndGrads r;
  r.out = f(xl);
  sum(r.out * weights).backward();
  r.grads.push_back(xl.grad());
  for (const Tensor& p : m.parameters()) r.grads.push_back(p.grad());
  return r;
}

double rel_diff(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined()) return a.defined() == b.defined() ? 0.0 : 1e300;
  return max_abs(a - b) / std::max(max_abs(b), 1e-300);
}

}  // namespace

TEST_CASE("ConditionalRoutedAutoregressiveAttention: indexed routing equals the per-window copy") {
  struct Config {
    const char* name;
    int64_t batch, n, dim, window, kq, kkv, routes;
    const char* router;
    bool straight_through, keys_by_score, queries_by_score, null_q;
  };
  const Config configs[] = {
      {"coor_descent, straight-through", 2, 11, 8, 4, 2, 3, 1, "coor_descent", true, false, false, true},
      {"coor_descent, no straight-through, 2 routes, scores on keys and queries", 2, 13, 8, 3, 2, 5, 2,
       "coor_descent", false, true, true, true},
      {"coor_descent, longer (ties at 1.0), no null token", 1, 64, 8, 8, 3, 12, 2, "coor_descent", true, false, false,
       false},
      {"cum_softmax", 2, 10, 8, 4, 2, 3, 1, "cum_softmax", false, true, false, true},
      {"sinkhorn", 2, 12, 8, 4, 2, 3, 2, "sinkhorn", false, false, false, true},
      {"every key / value taken (padded length <= kkv)", 2, 7, 8, 4, 2, 8, 1, "coor_descent", false, false, false,
       true},
      {"every query taken (kq >= window)", 2, 9, 8, 3, 3, 4, 1, "coor_descent", false, false, false, true},
  };
  for (const Config& c : configs) {
    CAPTURE(c.name);
    Generator g(21);
    ConditionalRoutedAutoregressiveAttentionOptions o;
    o.num_heavy_tokens_q = c.kq;
    o.num_heavy_tokens_kv = c.kkv;
    o.num_routed_kv = c.routes;
    small_heads(o);
    o.heavy_window_size = c.window;
    o.router_type = c.router;
    o.router_straight_through = c.straight_through;
    o.multiply_keys_by_score = c.keys_by_score;
    o.multiply_queries_by_score = c.queries_by_score;
    o.use_null_q_tokens = c.null_q;
    ConditionalRoutedAutoregressiveAttention m(c.dim, o, &g);
    m.to(DType::Float64);
    Tensor x = randn64({c.batch, c.n, c.dim}, g);
    Tensor weights = randn64({c.batch, c.n, c.dim}, g);
    // Sinkhorn draws Gumbel noise: both formulations draw the same shapes in the same order.
    Generator noise(99);
    for (Router* r : {m.q_router.get(), m.kv_router.get()})
      if (auto* sr = dynamic_cast<SinkhornRouter*>(r)) sr->noise_generator = &noise;
    noise.manual_seed(99);
    OutAndGrads got = out_and_grads(m, x, weights, [&](const Tensor& t) { return m(t); });
    noise.manual_seed(99);
    OutAndGrads want =
        out_and_grads(m, x, weights, [&](const Tensor& t) { return ar_attention_per_window_copy(m, t, c.kq, c.kkv); });
    CHECK(max_abs(got.out - want.out) <= 1e-12 * std::max(1.0, max_abs(want.out)));
    REQUIRE(got.grads.size() == want.grads.size());
    for (size_t i = 0; i < got.grads.size(); ++i) {
      CAPTURE(i);
      CHECK(rel_diff(got.grads[i], want.grads[i]) <= 1e-11);
    }
  }
}

TEST_CASE("Router::forward_logits over repeated logits picks what forward picks over masked copies") {
  // The autoregressive attention's kv routing: one row of logits per sequence, repeated for every
  // query window with the window's prefix mask. Same indices (tie order included: with
  // straight-through coordinate descent many scores saturate at 1.0) and same scores.
  Generator g(22);
  const int64_t b = 2, n = 96, dim = 8, w = 8, windows = n / w, k = 20;
  for (const char* type : {"coor_descent", "cum_softmax"}) {
    CAPTURE(type);
    std::shared_ptr<Router> r = make_router(type, dim, true, 2, {}, &g, "test");
    r->to(DType::Float64);
    Tensor x = randn64({b, n, dim}, g) * 3.0;
    const int64_t qb = b * (windows - 1), routes = 2;
    std::vector<bool> mv(size_t(qb * n));
    for (int64_t bi = 0; bi < b; ++bi)
      for (int64_t i = 1; i < windows; ++i)
        for (int64_t t = 0; t < n; ++t) mv[size_t((bi * (windows - 1) + i - 1) * n + t)] = t / w < i;
    Tensor mask = from_vector(mv, {qb, n});
    NoGradGuard ng;
    Tensor copies = x.unsqueeze(1).expand({b, windows - 1, n, dim}).reshape({qb, n, dim});
    RouterOutput want = r->forward(copies, k, mask);
    Tensor s = r->logits(x).reshape({b, 1, routes, n}).expand({b, windows - 1, routes, n}).reshape({qb * routes, n});
    RouterOutput got = r->forward_logits(s, k, mask);
    CHECK(got.indices.to_vector<int64_t>() == want.indices.to_vector<int64_t>());
    CHECK(got.scores.contiguous().to_vector<double>() == want.scores.contiguous().to_vector<double>());
  }
  // forward_logits's checks
  CoordinateDescentRouter r(8, {}, &g);
  r.to(DType::Float64);
  CHECK_THROWS_WITH_AS(r.forward_logits(randn64({2, 3, 4}, g), 2), Contains("'s'"), colt5::Error);
  CHECK_THROWS_WITH_AS(r.forward_logits(randn64({2, 6}, g), 0), Contains("num_tokens"), colt5::Error);
  CHECK_THROWS_WITH_AS(r.forward_logits(randn64({2, 6}, g), 2, ones({2, 5}, DType::Bool)), Contains("'mask'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(r.logits(randn64({2, 6, 3}, g)), Contains("'x'"), colt5::Error);
}
