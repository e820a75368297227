// Optimizers: AdamW and SGD against updates computed here in plain double arithmetic (torch's
// formulas, see nn/optim.h), the param-group rule on a small module, clip_grad_norm, the
// warm-up + cosine schedule, gradient accumulation, a least-squares regression that each
// optimizer solves, state save/load round trips, bad inputs; on a GPU, the fused CUDA AdamW step
// against the CPU one.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "nn/layers.h"
#include "nn/optim.h"
#include "tests/gpu/gpu.h"

using namespace colt5;
using namespace colt5::nn;
using doctest::Approx;
using doctest::Contains;

namespace {

Tensor leaf(const std::vector<double>& v, const Shape& shape, Device d = kCPU) {
  Tensor t = from_vector<double>(v, shape, d);
  t.requires_grad_();
  return t;
}

void set_grad(Tensor& p, const std::vector<double>& g) {
  p.set_grad(from_vector<double>(g, p.shape(), p.device()).to(p.dtype()));
}

void check_close(const Tensor& t, const std::vector<double>& expected, double eps = 1e-12) {
  std::vector<double> v = t.detach().to(DType::Float64).to_vector<double>();
  REQUIRE(v.size() == expected.size());
  for (size_t i = 0; i < v.size(); ++i) {
    CAPTURE(i);
    CHECK(v[i] == Approx(expected[i]).epsilon(eps));
  }
}

std::vector<double> values(const Tensor& t) { return t.detach().to(DType::Float64).to_vector<double>(); }

// Per-step gradients used by the hand-computed checks: [step][element].
const std::vector<std::vector<double>> kGrads = {{0.3, -0.2, 1.5}, {-0.7, 0.1, 0.4}, {0.05, -1.2, 0.9}};
const std::vector<double> kInit = {0.5, -1.0, 2.0};

// torch.optim.AdamW, one scalar at a time.
std::vector<double> adamw_reference(double lr, double b1, double b2, double eps, double wd, int steps) {
  std::vector<double> p = kInit, m(3, 0.0), v(3, 0.0);
  for (int t = 1; t <= steps; ++t) {
    for (int i = 0; i < 3; ++i) {
      const double g = kGrads[t - 1][i];
      p[i] -= lr * wd * p[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      const double m_hat = m[i] / (1 - std::pow(b1, t));
      const double v_hat = v[i] / (1 - std::pow(b2, t));
      p[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  }
  return p;
}

// torch.optim.SGD, one scalar at a time.
std::vector<double> sgd_reference(double lr, double mu, double damp, double wd, bool nesterov, int steps) {
  std::vector<double> p = kInit, buf(3, 0.0);
  for (int t = 1; t <= steps; ++t) {
    for (int i = 0; i < 3; ++i) {
      double d = kGrads[t - 1][i] + wd * p[i];
      if (mu != 0) {
        buf[i] = t == 1 ? d : mu * buf[i] + (1 - damp) * d;
        d = nesterov ? d + mu * buf[i] : buf[i];
      }
      p[i] -= lr * d;
    }
  }
  return p;
}

NamedTensors deep_copy(const NamedTensors& s) {
  NamedTensors out;
  for (const auto& [n, t] : s) out.emplace_back(n, t.detach().clone());
  return out;
}

// A module whose names exercise every branch of the param-group rule.
class ToyBlock : public Module {
public:
  ToyBlock() {
    weight = register_parameter("weight", zeros({3, 4}, DType::Float64));
    bias = register_parameter("bias", zeros({3}, DType::Float64));
    null_kv = register_parameter("null_kv", zeros({2, 4}, DType::Float64));
    routing_token = register_parameter("routing_token", zeros({1, 4}, DType::Float64));
    scale = register_parameter("scale", ones({}, DType::Float64));
    norm = register_module("norm", std::make_shared<LayerNorm>(4));
    proj = register_module("proj", std::make_shared<Linear>(4, 2));
  }
  Tensor weight, bias, null_kv, routing_token, scale;
  std::shared_ptr<LayerNorm> norm;
  std::shared_ptr<Linear> proj;
};

// loss = sum((W x - y)^2) / n for W [2, 3], x [3, n], y [2, n].
Tensor lsq_loss(const Tensor& w, const Tensor& x, const Tensor& y) {
  Tensor r = matmul(w, x) - y;
  return sum(r * r) / double(x.size(1));
}

}  // namespace

TEST_CASE("optim: AdamW matches torch's update for 3 steps (float64 and float32)") {
  for (double wd : {0.0, 0.01, 0.5}) {
    CAPTURE(wd);
    Tensor p = leaf(kInit, {3});
    AdamWOptions o;
    o.lr = 0.1;
    o.weight_decay = wd;
    AdamW opt({p}, o);
    for (int t = 1; t <= 3; ++t) {
      set_grad(p, kGrads[t - 1]);
      opt.step();
      check_close(p, adamw_reference(0.1, 0.9, 0.999, 1e-8, wd, t));
    }
    CHECK(opt.steps() == 3);
  }
  // non-default betas / eps, float32
  Tensor p = from_vector<float>({0.5f, -1.0f, 2.0f}, {3});
  p.requires_grad_();
  AdamW opt({p}, AdamWOptions{0.05, 0.8, 0.99, 1e-3, 0.1});
  for (int t = 1; t <= 3; ++t) {
    set_grad(p, kGrads[t - 1]);
    opt.step();
    check_close(p, adamw_reference(0.05, 0.8, 0.99, 1e-3, 0.1, t), 1e-6);
  }
  CHECK(p.dtype() == DType::Float32);
}

TEST_CASE("optim: SGD matches torch's update (plain, momentum + dampening + decay, nesterov)") {
  struct Cfg {
    double mu, damp, wd;
    bool nesterov;
  };
  for (Cfg c : {Cfg{0.0, 0.0, 0.0, false}, Cfg{0.9, 0.1, 0.05, false}, Cfg{0.9, 0.0, 0.01, true}}) {
    CAPTURE(c.mu);
    CAPTURE(c.nesterov);
    Tensor p = leaf(kInit, {3});
    SGD opt({p}, SGDOptions{0.1, c.mu, c.damp, c.wd, c.nesterov});
    for (int t = 1; t <= 3; ++t) {
      set_grad(p, kGrads[t - 1]);
      opt.step();
      check_close(p, sgd_reference(0.1, c.mu, c.damp, c.wd, c.nesterov, t));
    }
  }
}

TEST_CASE("optim: a parameter without a gradient is left alone; zero_grad drops gradients") {
  Tensor a = leaf(kInit, {3}), b = leaf({1.0, 2.0}, {2});
  AdamW opt({a, b});
  set_grad(a, kGrads[0]);
  opt.step();
  check_close(b, {1.0, 2.0}, 1e-15);
  CHECK(values(a) != kInit);
  opt.zero_grad();
  CHECK(!a.grad().defined());
  // b has no state yet: only a's entries (and "step") are listed
  std::set<std::string> names;
  for (const auto& [n, t] : opt.state()) names.insert(n);
  CHECK(names == std::set<std::string>{"step", "state.0.step", "state.0.exp_avg", "state.0.exp_avg_sq"});
}

TEST_CASE("optim: param_groups_for puts norms, biases, null/routing tokens and 1-D params out of decay") {
  ToyBlock m;
  auto groups = param_groups_for(m, 0.1);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].weight_decay == 0.1);
  CHECK(groups[1].weight_decay == 0.0);
  CHECK(groups[0].names == std::vector<std::string>{"weight", "proj.weight"});
  CHECK(groups[1].names ==
        std::vector<std::string>{"bias", "null_kv", "routing_token", "scale", "norm.weight", "norm.bias", "proj.bias"});
  CHECK(groups[0].params[1].impl() == m.proj->weight.impl());
  // name rule alone
  CHECK(is_no_decay_name("layers.0.attn_norm.weight", 2));
  CHECK(is_no_decay_name("heavy_attn.null_q_token", 3));
  CHECK(is_no_decay_name("q_router.routing_token", 2));
  CHECK_FALSE(is_no_decay_name("light_ff.1.weight", 2));
  CHECK_FALSE(is_no_decay_name("normalizer", 2));  // a last component is not a module name
  // the optimizer's lr fills the groups' unset lr; each group keeps its decay
  AdamW opt(groups, AdamWOptions{0.02, 0.9, 0.999, 1e-8, 0.3});
  CHECK(opt.lr(0) == 0.02);
  CHECK(opt.lr(1) == 0.02);
  CHECK(opt.groups()[0].weight_decay == 0.1);
  opt.set_lr(1, 0.5);
  CHECK(opt.lr(1) == 0.5);
  CHECK(opt.lr(0) == 0.02);
  opt.set_lr(0.25);
  CHECK(opt.lr(0) == 0.25);
  CHECK(opt.lr(1) == 0.25);
}

TEST_CASE("optim: decayed and undecayed groups get different updates") {
  // Zero gradient: AdamW's Adam part is 0, so only the decoupled decay moves the parameter.
  Tensor a = leaf({1.0, 2.0}, {2}), b = leaf({1.0, 2.0}, {2});
  ParamGroup ga, gb;
  ga.params = {a};
  ga.weight_decay = 0.5;
  gb.params = {b};
  AdamW opt({ga, gb}, AdamWOptions{0.1, 0.9, 0.999, 1e-8, 0.0});
  set_grad(a, {0.0, 0.0});
  set_grad(b, {0.0, 0.0});
  opt.step();
  check_close(a, {0.95, 1.9});
  check_close(b, {1.0, 2.0});
}

TEST_CASE("optim: clip_grad_norm returns the global norm and scales as torch") {
  Tensor a = leaf({0, 0, 0, 0}, {2, 2}), b = leaf({0, 0}, {2}), c = leaf({5.0}, {1});
  set_grad(a, {3.0, 0.0, 0.0, 4.0});
  set_grad(b, {0.0, 12.0});
  // c has no gradient: skipped
  CHECK(clip_grad_norm({a, b, c}, 20.0) == Approx(13.0).epsilon(1e-15));
  check_close(a.grad(), {3.0, 0.0, 0.0, 4.0}, 1e-15);  // below max_norm: unchanged
  const double coef = 6.5 / (13.0 + 1e-6);
  CHECK(clip_grad_norm({a, b, c}, 6.5) == Approx(13.0).epsilon(1e-15));
  check_close(a.grad(), {3.0 * coef, 0.0, 0.0, 4.0 * coef});
  check_close(b.grad(), {0.0, 12.0 * coef});
  CHECK(clip_grad_norm({a, b}, 100.0) == Approx(13.0 * coef).epsilon(1e-12));
  CHECK(clip_grad_norm({c}, 1.0) == 0.0);
  // float32 gradients
  Tensor f = from_vector<float>({0.f, 0.f}, {2});
  f.requires_grad_();
  f.set_grad(from_vector<float>({6.f, 8.f}, {2}));
  CHECK(clip_grad_norm({f}, 5.0) == Approx(10.0).epsilon(1e-12));
  check_close(f.grad(), {6.0 * 5.0 / (10.0 + 1e-6), 8.0 * 5.0 / (10.0 + 1e-6)}, 1e-6);
}

TEST_CASE("optim: warmup_cosine_lr at key steps") {
  const double pi = std::acos(-1.0);
  // warmup 10, total 110, base 1, min 0.1
  CHECK(warmup_cosine_lr(0, 10, 110, 1.0, 0.1) == Approx(0.1));
  CHECK(warmup_cosine_lr(4, 10, 110, 1.0, 0.1) == Approx(0.5));
  CHECK(warmup_cosine_lr(9, 10, 110, 1.0, 0.1) == Approx(1.0));
  CHECK(warmup_cosine_lr(10, 10, 110, 1.0, 0.1) == Approx(1.0));
  CHECK(warmup_cosine_lr(35, 10, 110, 1.0, 0.1) == Approx(0.1 + 0.9 * 0.5 * (1 + std::cos(pi * 0.25))));
  CHECK(warmup_cosine_lr(60, 10, 110, 1.0, 0.1) == Approx(0.55));
  CHECK(warmup_cosine_lr(109, 10, 110, 1.0, 0.1) == Approx(0.1 + 0.45 * (1 + std::cos(pi * 0.99))));
  CHECK(warmup_cosine_lr(110, 10, 110, 1.0, 0.1) == Approx(0.1));
  CHECK(warmup_cosine_lr(1000, 10, 110, 1.0, 0.1) == Approx(0.1));
  // no warm-up: cosine from the start
  CHECK(warmup_cosine_lr(0, 0, 100, 3e-4, 0.0) == Approx(3e-4));
  CHECK(warmup_cosine_lr(50, 0, 100, 3e-4, 0.0) == Approx(1.5e-4));
  // monotone: up during warm-up, down after
  for (int64_t s = 1; s < 10; ++s) CHECK(warmup_cosine_lr(s, 10, 110, 1.0, 0.1) > warmup_cosine_lr(s - 1, 10, 110, 1.0, 0.1));
  for (int64_t s = 11; s <= 110; ++s) CHECK(warmup_cosine_lr(s, 10, 110, 1.0, 0.1) < warmup_cosine_lr(s - 1, 10, 110, 1.0, 0.1));
}

TEST_CASE("optim: gradient accumulation of two half-batches equals one full batch") {
  manual_seed(7);
  Tensor x = randn({3, 8}, DType::Float64), y = randn({2, 8}, DType::Float64);
  Tensor w0 = randn({2, 3}, DType::Float64);
  auto run = [&](bool halves) {
    Tensor w = w0.clone().detach();
    w.requires_grad_();
    AdamW opt({w}, AdamWOptions{0.01, 0.9, 0.999, 1e-8, 0.01});
    for (int step = 0; step < 2; ++step) {
      opt.zero_grad();
      if (halves) {
        // the full loss is the sum over columns / 8: each half contributes its sum / 8
        for (int64_t start : {0, 4}) {
          Tensor xs = x.narrow(1, start, 4), ys = y.narrow(1, start, 4);
          Tensor r = matmul(w, xs) - ys;
          (sum(r * r) / 8.0).backward();
        }
      } else {
        lsq_loss(w, x, y).backward();
      }
      if (step == 0) opt.step();
    }
    std::vector<double> out = values(w), g = values(w.grad());
    out.insert(out.end(), g.begin(), g.end());
    return out;
  };
  const std::vector<double> full = run(false), acc = run(true);
  REQUIRE(full.size() == acc.size());
  for (size_t i = 0; i < full.size(); ++i) CHECK(acc[i] == Approx(full[i]).epsilon(1e-12));
}

TEST_CASE("optim: least squares regression: the loss falls with SGD and AdamW") {
  manual_seed(3);
  Tensor x = randn({3, 16}, DType::Float64);
  Tensor w_true = from_vector<double>({1.0, -2.0, 0.5, 0.3, 0.7, -1.1}, {2, 3});
  Tensor y = matmul(w_true, x).detach();
  for (int which = 0; which < 3; ++which) {
    CAPTURE(which);
    Tensor w = zeros({2, 3}, DType::Float64);
    w.requires_grad_();
    std::unique_ptr<Optimizer> opt;
    if (which == 0) opt = std::make_unique<SGD>(TensorList{w}, SGDOptions{0.05});
    if (which == 1) opt = std::make_unique<SGD>(TensorList{w}, SGDOptions{0.02, 0.9});
    if (which == 2) opt = std::make_unique<AdamW>(TensorList{w}, AdamWOptions{0.05, 0.9, 0.999, 1e-8, 0.0});
    double first = 0, last = 0, at10 = 0;
    for (int s = 0; s < 200; ++s) {
      opt->zero_grad();
      Tensor loss = lsq_loss(w, x, y);
      const double l = loss.item_double();
      if (s == 0) first = l;
      if (s == 10) at10 = l;
      last = l;
      loss.backward();
      opt->step();
    }
    CHECK(at10 < first);
    CHECK(last < 1e-3 * first);
  }
}

TEST_CASE("optim: state save / load gives identical subsequent steps") {
  auto round_trip = [](auto make) {
    Tensor p1 = leaf(kInit, {3});
    auto opt1 = make(TensorList{p1});
    for (int t = 0; t < 2; ++t) {
      set_grad(p1, kGrads[t]);
      opt1->step();
    }
    const NamedTensors saved = deep_copy(opt1->state());
    Tensor p2 = p1.detach().clone();
    p2.requires_grad_();
    auto opt2 = make(TensorList{p2});
    opt2->load_state(saved);
    CHECK(opt2->steps() == 2);
    for (int t = 0; t < 2; ++t) {
      set_grad(p1, kGrads[2 - t]);
      set_grad(p2, kGrads[2 - t]);
      opt1->step();
      opt2->step();
      CHECK(values(p1) == values(p2));  // bit-identical
    }
    // every saved state tensor is restored too
    const NamedTensors s1 = opt1->state(), s2 = opt2->state();
    REQUIRE(s1.size() == s2.size());
    for (size_t i = 0; i < s1.size(); ++i) {
      CHECK(s1[i].first == s2[i].first);
      CHECK(values(s1[i].second) == values(s2[i].second));
    }
    return saved;
  };
  const NamedTensors adam_state =
      round_trip([](TensorList ps) { return std::make_unique<AdamW>(ps, AdamWOptions{0.1, 0.9, 0.999, 1e-8, 0.01}); });
  CHECK(adam_state.size() == 4);
  const NamedTensors sgd_state =
      round_trip([](TensorList ps) { return std::make_unique<SGD>(ps, SGDOptions{0.1, 0.9, 0.0, 0.01, true}); });
  CHECK(sgd_state.size() == 2);

  // bad state: unknown key, wrong shape, missing key (strict)
  Tensor p = leaf(kInit, {3});
  AdamW opt({p});
  NamedTensors bad = adam_state;
  bad.emplace_back("state.0.momentum_buffer", zeros({3}, DType::Float64));
  CHECK_THROWS_WITH_AS(opt.load_state(bad), Contains("unexpected key 'state.0.momentum_buffer'"), colt5::Error);
  bad = adam_state;
  bad[2].second = zeros({4}, DType::Float64);
  CHECK_THROWS_WITH_AS(opt.load_state(bad), Contains("of shape"), colt5::Error);
  bad = adam_state;
  bad.emplace_back("state.5.exp_avg", zeros({3}, DType::Float64));
  CHECK_THROWS_AS(opt.load_state(bad), colt5::Error);
  bad = {adam_state[0]};
  set_grad(p, kGrads[0]);
  opt.step();  // now the optimizer has state for parameter 0, which `bad` lacks
  CHECK_THROWS_WITH_AS(opt.load_state(bad), Contains("missing"), colt5::Error);
  CHECK_NOTHROW(opt.load_state(bad, /*strict=*/false));
}

TEST_CASE("optim: bad inputs throw naming the argument") {
  Tensor p = leaf(kInit, {3});
  CHECK_THROWS_WITH_AS(AdamW({p}, AdamWOptions{-0.1}), Contains("'lr'"), colt5::Error);
  CHECK_THROWS_WITH_AS(AdamW({p}, AdamWOptions{0.1, 1.0}), Contains("'beta1'"), colt5::Error);
  CHECK_THROWS_WITH_AS(AdamW({p}, AdamWOptions{0.1, -0.1}), Contains("'beta1'"), colt5::Error);
  CHECK_THROWS_WITH_AS(AdamW({p}, AdamWOptions{0.1, 0.9, 1.0}), Contains("'beta2'"), colt5::Error);
  CHECK_THROWS_WITH_AS(AdamW({p}, AdamWOptions{0.1, 0.9, 0.999, 0.0}), Contains("'eps'"), colt5::Error);
  CHECK_THROWS_WITH_AS(AdamW({p}, AdamWOptions{0.1, 0.9, 0.999, -1e-8}), Contains("'eps'"), colt5::Error);
  CHECK_THROWS_WITH_AS(AdamW({p}, AdamWOptions{0.1, 0.9, 0.999, 1e-8, -0.01}), Contains("'weight_decay'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(SGD({p}, SGDOptions{-1.0}), Contains("'lr'"), colt5::Error);
  CHECK_THROWS_WITH_AS(SGD({p}, SGDOptions{0.1, -0.5}), Contains("'momentum'"), colt5::Error);
  CHECK_THROWS_WITH_AS(SGD({p}, SGDOptions{0.1, 0.0, 0.0, 0.0, true}), Contains("'nesterov'"), colt5::Error);
  CHECK_THROWS_WITH_AS(SGD({p, p}, SGDOptions{0.1}), Contains("'params'"), colt5::Error);
  CHECK_THROWS_WITH_AS(SGD({Tensor()}, SGDOptions{0.1}), Contains("'params'"), colt5::Error);
  CHECK_THROWS_WITH_AS(SGD({arange(3)}, SGDOptions{0.1}), Contains("'params'"), colt5::Error);
  AdamW opt({p});
  CHECK_THROWS_WITH_AS(opt.set_lr(-1.0), Contains("'lr'"), colt5::Error);
  CHECK_THROWS_WITH_AS(opt.set_lr(3, 0.1), Contains("'group'"), colt5::Error);
  CHECK_THROWS_WITH_AS(clip_grad_norm({p}, 0.0), Contains("'max_norm'"), colt5::Error);
  CHECK_THROWS_WITH_AS(clip_grad_norm({p}, -1.0), Contains("'max_norm'"), colt5::Error);
  CHECK_THROWS_WITH_AS(warmup_cosine_lr(-1, 10, 100, 1.0, 0.0), Contains("'step'"), colt5::Error);
  CHECK_THROWS_WITH_AS(warmup_cosine_lr(0, -1, 100, 1.0, 0.0), Contains("'warmup'"), colt5::Error);
  CHECK_THROWS_WITH_AS(warmup_cosine_lr(0, 10, 5, 1.0, 0.0), Contains("'total'"), colt5::Error);
  CHECK_THROWS_WITH_AS(warmup_cosine_lr(0, 10, 100, -1.0, 0.0), Contains("'lr'"), colt5::Error);
  CHECK_THROWS_WITH_AS(warmup_cosine_lr(0, 10, 100, 1.0, 2.0), Contains("'min_lr'"), colt5::Error);
  CHECK_THROWS_WITH_AS(param_groups_for(ToyBlock(), -0.1), Contains("'weight_decay'"), colt5::Error);
  // the raw list ops check their contracts, naming the argument
  Tensor q = zeros({3}, DType::Float64), g = zeros({4}, DType::Float64), m = zeros({3}, DType::Float64),
         v = zeros({3}, DType::Float32);
  Tensor lr = zeros({1}, DType::Float64), steps = zeros({2}, DType::Int64);
  auto lists = [&](Tensor grad, Tensor sq, int64_t lr_i, int64_t step_i) {
    AdamWLists l;
    l.params = {q}, l.grads = {grad}, l.exp_avg = {m}, l.exp_avg_sq = {sq};
    l.lr_index = {lr_i}, l.step_index = {step_i}, l.weight_decay = {0.0};
    return l;
  };
  AdamWLists l1 = lists(g, m, 0, 0), l2 = lists(m, v, 0, 0), l3 = lists(m, m, 1, 0), l4 = lists(m, m, 0, 2);
  CHECK_THROWS_WITH_AS(ops::adamw_multi(l1, lr, steps, {}), Contains("shapes must equal"), colt5::Error);
  CHECK_THROWS_WITH_AS(ops::adamw_multi(l2, lr, steps, {}), Contains("expected the same dtype"), colt5::Error);
  CHECK_THROWS_WITH_AS(ops::adamw_multi(l3, lr, steps, {}), Contains("'lr_index'"), colt5::Error);
  CHECK_THROWS_WITH_AS(ops::adamw_multi(l4, lr, steps, {}), Contains("'step_index'"), colt5::Error);
  AdamWLists l5 = lists(m, m, 0, 0);
  l5.weight_decay.clear();
  CHECK_THROWS_WITH_AS(ops::adamw_multi(l5, lr, steps, {}), Contains("argument 'l' expected lists of one length"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(ops::adamw_multi(l1 = lists(m, m, 0, 0), zeros({1}), steps, {}), Contains("'lr'"), colt5::Error);
  TensorList strided = {zeros({4, 4}, DType::Float64).transpose(0, 1)};
  CHECK_THROWS_WITH_AS(ops::sum_of_squares_multi(strided), Contains("argument 'xs' expected contiguous"), colt5::Error);
  TensorList xs = {q};
  CHECK_THROWS_WITH_AS(ops::scale_multi_(xs, zeros({2}, DType::Float64)), Contains("'factor'"), colt5::Error);
}

TEST_CASE("optim: the list ops over many tensors equal one tensor at a time") {
  // 40 float32 tensors of mixed sizes in two lr groups; AdamW through the lists vs the scalar
  // formula of nn/optim.h applied by hand, element by element.
  manual_seed(5);
  const std::vector<int64_t> sizes = {1, 7, 64, 3, 1000, 2, 5, 70000};
  TensorList ps, gs;
  for (int i = 0; i < 40; ++i) {
    ps.push_back(randn({sizes[i % sizes.size()]}));
    gs.push_back(randn({sizes[i % sizes.size()]}));
  }
  // sum of squares and scaling
  double want = 0;
  for (const Tensor& g : gs)
    for (float x : g.to_vector<float>()) want += double(x) * double(x);
  CHECK(ops::sum_of_squares_multi(gs).item_double() == Approx(want).epsilon(1e-13));
  TensorList scaled;
  for (const Tensor& g : gs) scaled.push_back(ops::clone(g));
  ops::scale_multi_(scaled, from_vector<double>({0.25}, {}));
  for (size_t i = 0; i < gs.size(); ++i) CHECK(scaled[i].to_vector<float>() == (gs[i] * 0.25).to_vector<float>());

  AdamWLists l;
  std::vector<std::vector<double>> p0, m0(ps.size()), v0(ps.size());
  for (size_t i = 0; i < ps.size(); ++i) {
    l.params.push_back(ops::clone(ps[i]));
    l.grads.push_back(gs[i]);
    l.exp_avg.push_back(zeros(ps[i].shape()));
    l.exp_avg_sq.push_back(zeros(ps[i].shape()));
    l.lr_index.push_back(int64_t(i % 2));
    l.step_index.push_back(int64_t(ps.size() - 1 - i));
    l.weight_decay.push_back(i % 2 ? 0.0 : 0.1);
  }
  const Tensor lr = from_vector<double>({0.01, 0.002}, {2});
  Tensor steps = zeros({int64_t(ps.size())}, DType::Int64);
  ops::adamw_multi(l, lr, steps, AdamWConsts{0.9, 0.99, 1e-8});
  ops::adamw_multi(l, lr, steps, AdamWConsts{0.9, 0.99, 1e-8});
  for (int64_t s : steps.to_vector<int64_t>()) CHECK(s == 2);
  for (size_t i = 0; i < ps.size(); ++i) {
    const std::vector<float> p = ps[i].to_vector<float>(), g = gs[i].to_vector<float>();
    const std::vector<float> got = l.params[i].to_vector<float>();
    const double lri = i % 2 ? 0.002 : 0.01, wd = i % 2 ? 0.0 : 0.1;
    for (size_t k = 0; k < p.size(); ++k) {
      double pk = p[k], mk = 0, vk = 0;
      for (int t = 1; t <= 2; ++t) {
        pk = double(float(pk)) * (1 - lri * wd);
        mk = double(float(mk + 0.1 * (g[k] - mk)));
        vk = double(float(0.99 * vk + 0.01 * double(g[k]) * g[k]));
        const double denom = std::sqrt(vk) / std::sqrt(1 - std::pow(0.99, t)) + 1e-8;
        pk = pk - lri / (1 - std::pow(0.9, t)) * mk / denom;
      }
      CHECK(got[k] == doctest::Approx(float(pk)).epsilon(1e-6));
    }
  }
}

// ---- GPU: the fused CUDA AdamW step against the CPU reference ----

TEST_CASE("gpu optim: fused AdamW step on CUDA matches the CPU (float32 1e-6, float64 1e-12)") {
  COLT5_REQUIRE_GPU();
  for (DType dt : {DType::Float32, DType::Float64}) {
    CAPTURE(dt);
    const double tol = dt == DType::Float32 ? 1e-6 : 1e-12;
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(1000), int64_t(70000)}) {
      CAPTURE(n);
      manual_seed(11);
      const std::vector<double> init = randn({n}, DType::Float64).to_vector<double>();
      std::vector<std::vector<double>> grads;
      for (int t = 0; t < 3; ++t) grads.push_back(randn({n}, DType::Float64).to_vector<double>());
      Tensor pc = from_vector<double>(init, {n}).to(dt), pg = from_vector<double>(init, {n}, gputest::gpu()).to(dt);
      pc.requires_grad_();
      pg.requires_grad_();
      AdamW oc({pc}, AdamWOptions{0.01, 0.9, 0.999, 1e-8, 0.05}), og({pg}, AdamWOptions{0.01, 0.9, 0.999, 1e-8, 0.05});
      for (int t = 0; t < 3; ++t) {
        set_grad(pc, grads[t]);
        set_grad(pg, grads[t]);
        oc.step();
        og.step();
      }
      CHECK(pg.device().is_cuda());
      const NamedTensors sc = oc.state(), sg = og.state();
      std::vector<std::pair<Tensor, Tensor>> pairs = {{pc, pg}};
      for (size_t i = 0; i < sc.size(); ++i) pairs.emplace_back(sc[i].second, sg[i].second);
      for (const auto& [c, g] : pairs) {
        const std::vector<double> a = values(c), b = values(g.cpu());
        REQUIRE(a.size() == b.size());
        double worst = 0;
        for (size_t i = 0; i < a.size(); ++i)
          worst = std::max(worst, std::abs(a[i] - b[i]) / std::max(std::abs(a[i]), 1e-30));
        CHECK(worst <= tol);
      }
    }
  }
}

TEST_CASE("gpu optim: SGD and clip_grad_norm on CUDA match the CPU") {
  COLT5_REQUIRE_GPU();
  Tensor pc = leaf(kInit, {3}), pg = leaf(kInit, {3}, gputest::gpu());
  SGD oc({pc}, SGDOptions{0.1, 0.9, 0.0, 0.01, true}), og({pg}, SGDOptions{0.1, 0.9, 0.0, 0.01, true});
  for (int t = 0; t < 3; ++t) {
    set_grad(pc, kGrads[t]);
    set_grad(pg, kGrads[t]);
    CHECK(clip_grad_norm({pg}, 0.5) == Approx(clip_grad_norm({pc}, 0.5)).epsilon(1e-12));
    oc.step();
    og.step();
  }
  check_close(pg.cpu(), values(pc));
}

TEST_CASE("gpu optim: the list ops on CUDA match the CPU, across tables and a tensor split between two") {
  COLT5_REQUIRE_GPU();
  // 40 tensors (more than one table of 32) and one of 256 chunks + 3 elements (more blocks than a
  // table holds, so it continues in the next one), float32 and float64.
  for (DType dt : {DType::Float32, DType::Float64}) {
    CAPTURE(dt);
    manual_seed(21);
    std::vector<int64_t> sizes;
    for (int i = 0; i < 40; ++i) sizes.push_back(std::vector<int64_t>{1, 33, 4096, 70000, 5}[i % 5]);
    sizes.insert(sizes.begin() + 7, 256 * 65536 + 3);
    TensorList pc, gc, pg, gg;
    for (int64_t n : sizes) {
      pc.push_back(randn({n}, dt)), gc.push_back(randn({n}, dt));
      pg.push_back(pc.back().to(gputest::gpu())), gg.push_back(gc.back().to(gputest::gpu()));
    }
    const double ssc = ops::sum_of_squares_multi(gc).item_double(), ssg = ops::sum_of_squares_multi(gg).item_double();
    CHECK(ssg == Approx(ssc).epsilon(1e-12));
    const double rel = dt == DType::Float32 ? 1e-6 : 1e-12;
    auto make = [&](const TensorList& ps, const TensorList& gs) {
      AdamWLists l;
      for (size_t i = 0; i < ps.size(); ++i) {
        l.params.push_back(ops::clone(ps[i])), l.grads.push_back(gs[i]);
        l.exp_avg.push_back(zeros(ps[i].shape(), dt, ps[i].device()));
        l.exp_avg_sq.push_back(zeros(ps[i].shape(), dt, ps[i].device()));
        l.lr_index.push_back(int64_t(i % 2)), l.step_index.push_back(int64_t(i)), l.weight_decay.push_back(0.01 * (i % 3));
      }
      return l;
    };
    AdamWLists lc = make(pc, gc), lg = make(pg, gg);
    const Tensor lrc = from_vector<double>({1e-3, 3e-4}, {2}), lrg = lrc.to(gputest::gpu());
    Tensor sc = zeros({int64_t(sizes.size())}, DType::Int64), sg = sc.to(gputest::gpu());
    for (int t = 0; t < 3; ++t) {
      ops::adamw_multi(lc, lrc, sc, AdamWConsts{0.9, 0.99, 1e-8});
      ops::adamw_multi(lg, lrg, sg, AdamWConsts{0.9, 0.99, 1e-8});
    }
    CHECK(sg.cpu().to_vector<int64_t>() == std::vector<int64_t>(sizes.size(), 3));
    for (size_t i = 0; i < sizes.size(); ++i) {
      CAPTURE(i);
      const std::vector<double> a = values(lc.params[i]), b = values(lg.params[i].cpu());
      double worst = 0;
      for (size_t k = 0; k < a.size(); ++k) worst = std::max(worst, std::abs(a[k] - b[k]) / std::max(std::abs(a[k]), 1e-3));
      CHECK(worst <= rel);
    }
    TensorList sgl = gg;
    ops::scale_multi_(sgl, from_vector<double>({0.5}, {}, gputest::gpu()));
    for (size_t i = 0; i < sizes.size(); i += 9) CHECK(values(sgl[i].cpu()) == values(gc[i] * 0.5));
  }
}
