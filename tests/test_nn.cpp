// nn::Module and the basic layers: traversal names and order, state_dict round trips and strict
// loading errors, zero_grad / train / to(dtype); Linear, LayerNorm, RMSNorm, GELU and FeedForward
// against hand-computed values and the functional ops, against the PyTorch golden fixtures
// (rmsnorm, feedforward: output and every gradient within 1e-9 relative), gradcheck of each layer
// in float64, and bad inputs / options.
#include <doctest/doctest.h>

#include "tests/parity/parity.h"

#include <cmath>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "nn/layers.h"
#include "nn/safetensors.h"
#include "tests/cases/cases.h"

using namespace colt5;
using colt5::parity::golden_dir;
using colt5::parity::golden_path;
using namespace colt5::nn;
using doctest::Approx;
using doctest::Contains;

namespace {

// backward keeping the graph (see tests/test_linalg_norm.cpp for why).
void run_backward(const Tensor& loss) { loss.backward(Tensor(), true); }

void check_values(const Tensor& t, const std::vector<double>& expected, double eps = 1e-12) {
  std::vector<double> v = t.to(DType::Float64).to_vector<double>();
  REQUIRE(v.size() == expected.size());
  for (size_t i = 0; i < v.size(); ++i) {
    CAPTURE(i);
    CHECK(v[i] == Approx(expected[i]).epsilon(eps));
  }
}

std::vector<std::string> names_of(const NamedTensors& nt) {
  std::vector<std::string> out;
  for (auto& [n, t] : nt) out.push_back(n);
  return out;
}

// Overwrite a parameter's values in place (no graph).
void set_values(Tensor p, const Tensor& v) {
  NoGradGuard ng;
  ops::copy_(p, v);
}

// A small nested module: a parameter, a child with a parameter and a buffer, and a Sequential
// holding a Linear, a GELU and another child.
struct Inner : Module {
  Tensor w, running;
  Inner() {
    w = register_parameter("w", full({2}, 0.5));
    running = register_buffer("running", ones({3}));
  }
};

struct Outer : Module {
  Tensor a;
  std::shared_ptr<Inner> inner;
  std::shared_ptr<Sequential> seq;
  explicit Outer(uint64_t seed) {
    Generator gen(seed);
    a = register_parameter("a", randn({2, 2}, DType::Float32, kCPU, &gen));
    inner = register_module("inner", std::make_shared<Inner>());
    seq = register_module("seq", std::make_shared<Sequential>());
    seq->push_back(std::make_shared<Linear>(2, 3, true, &gen));
    seq->push_back(std::make_shared<GELU>());
    seq->push_back(std::make_shared<Inner>());
  }
};

// Load a golden fixture's params into `m` (float64), run forward on input.x, backward of
// sum(output * upstream_grad), compare output and every grad.* within 1e-9 relative.
template <class M>
void check_golden(M& m, const std::string& name) {
  SafetensorsFile f = read_safetensors(golden_path(name));
  m.to(DType::Float64);
  m.load_state_dict(select_prefix(f.tensors, "param."));
  Tensor x = f.tensors.at("input.x").clone().requires_grad_();
  Tensor out = m.forward(x);
  const double tol = 1e-9;
  {
    const double err = cases::max_rel_diff(out, f.tensors.at("output"));
    CAPTURE(name);
    CAPTURE(err);
    CHECK(err < tol);
  }
  run_backward(sum(mul(out, f.tensors.at("upstream_grad"))));
  auto params = m.named_parameters();
  int grads = 0;
  for (auto& [key, ref] : f.tensors) {
    if (key.rfind("grad.", 0) != 0) continue;
    CAPTURE(key);
    Tensor got;
    if (key == "grad.input.x") {
      got = x.grad();
    } else {
      const std::string pname = key.substr(std::string("grad.param.").size());
      for (auto& [n, p] : params)
        if (n == pname) got = p.grad();
    }
    REQUIRE(got.defined());
    REQUIRE(got.shape() == ref.shape());
    const double err = cases::max_rel_diff(got, ref);
    CAPTURE(err);
    CHECK(err < tol);
    ++grads;
  }
  CHECK(grads == int(params.size()) + 1);
}

}  // namespace

// ---- Module -------------------------------------------------------------------------------------

TEST_CASE("Module: traversal names and order") {
  Outer m(1);
  CHECK(names_of(m.named_parameters()) ==
        std::vector<std::string>{"a", "inner.w", "seq.0.weight", "seq.0.bias", "seq.2.w"});
  CHECK(names_of(m.named_buffers()) == std::vector<std::string>{"inner.running", "seq.2.running"});
  auto children = m.named_children();
  REQUIRE(children.size() == 2);
  CHECK(children[0].first == "inner");
  CHECK(children[0].second == m.inner.get());
  CHECK(children[1].first == "seq");
  CHECK(names_of(m.seq->named_parameters()) == std::vector<std::string>{"0.weight", "0.bias", "2.w"});
  CHECK(m.seq->size() == 3);

  // parameters() is named_parameters() without the names: the same handles as the fields.
  TensorList ps = m.parameters();
  REQUIRE(ps.size() == 5);
  CHECK(ps[0].impl() == m.a.impl());
  CHECK(ps[1].impl() == m.inner->w.impl());
  CHECK(dynamic_cast<Linear*>(m.seq->named_children()[0].second) != nullptr);
  CHECK(ps[2].impl() == dynamic_cast<Linear*>(m.seq->named_children()[0].second)->weight.impl());
  for (const Tensor& p : ps) {
    CHECK(p.requires_grad());
    CHECK(p.is_leaf());
  }
  CHECK(m.num_parameters() == 4 + 2 + 6 + 3 + 2);
  auto sd = m.state_dict();
  CHECK(sd.size() == 7);  // parameters and buffers
  CHECK(sd.count("seq.2.running"));
  CHECK(!sd.at("a").requires_grad());  // detached copies of the handles
}

TEST_CASE("Module: state_dict round trip keeps the handles") {
  Outer src(1), dst(2);
  Tensor a_handle = dst.a;
  CHECK(cases::max_rel_diff(dst.a, src.a) > 0);
  dst.load_state_dict(src.state_dict());
  for (auto& [name, t] : src.state_dict()) {
    CAPTURE(name);
    CHECK(cases::max_rel_diff(dst.state_dict().at(name), t) == 0);
  }
  // In place: the field, the registry and any old handle see the new values.
  CHECK(a_handle.impl() == dst.a.impl());
  CHECK(cases::max_rel_diff(a_handle, src.a) == 0);
  // A copy, not an alias: changing the source afterwards leaves dst alone.
  set_values(src.a, zeros({2, 2}));
  CHECK(cases::max_rel_diff(dst.a, zeros({2, 2})) > 0);
  // dtype converted to the parameter's on load.
  StateDict sd64 = src.state_dict();
  sd64["a"] = full({2, 2}, 3.0, DType::Float64);
  dst.load_state_dict(sd64);
  CHECK(dst.a.dtype() == DType::Float32);
  check_values(dst.a, {3, 3, 3, 3});
}

TEST_CASE("Module: load_state_dict strict errors name the keys") {
  Outer m(1);
  StateDict good = Outer(2).state_dict();

  StateDict missing = good;
  missing.erase("inner.w");
  CHECK_THROWS_WITH_AS(m.load_state_dict(missing), Contains("missing keys [inner.w]"), Error);

  StateDict unexpected = good;
  unexpected["seq.9.weight"] = zeros({1});
  CHECK_THROWS_WITH_AS(m.load_state_dict(unexpected), Contains("unexpected keys [seq.9.weight]"), Error);

  StateDict wrong = good;
  wrong["seq.0.weight"] = zeros({2, 3});
  CHECK_THROWS_WITH_AS(m.load_state_dict(wrong), Contains("seq.0.weight: expected [3, 2], got [2, 3]"), Error);

  // A failed strict load changes nothing.
  Outer before(1);
  CHECK(cases::max_rel_diff(m.a, before.a) == 0);

  // Non-strict: missing and unexpected keys are fine, the rest is loaded; shapes still checked.
  StateDict partial = good;
  partial.erase("inner.w");
  partial["extra"] = zeros({4});
  set_values(m.inner->w, full({2}, 7.0));
  m.load_state_dict(partial, /*strict=*/false);
  CHECK(cases::max_rel_diff(m.a, good.at("a")) == 0);
  check_values(m.inner->w, {7, 7});
  CHECK_THROWS_WITH_AS(m.load_state_dict(wrong, false), Contains("seq.0.weight"), Error);
}

TEST_CASE("Module: zero_grad, train/eval, to(dtype)") {
  Outer m(1);
  auto lin = std::make_shared<Linear>(2, 3);
  Tensor x = randn({4, 2});
  run_backward(sum(mul(lin->forward(matmul(x, m.a)), ones({4, 3}))));
  CHECK(m.a.grad().defined());
  CHECK(lin->weight.grad().defined());
  m.zero_grad();
  CHECK(!m.a.grad().defined());
  lin->zero_grad();
  CHECK(!lin->weight.grad().defined());

  CHECK(m.is_training());
  m.eval();
  CHECK(!m.is_training());
  CHECK(!m.inner->is_training());
  CHECK(!m.seq->is_training());
  for (auto& [n, c] : m.seq->named_children()) CHECK(!c->is_training());
  m.train();
  CHECK(m.seq->named_children()[2].second->is_training());

  const auto before = m.state_dict();
  Tensor handle = m.seq->named_parameters()[0].second;
  m.to(DType::Float64);
  CHECK(m.dtype() == DType::Float64);
  for (auto& [name, t] : m.state_dict()) {
    CAPTURE(name);
    CHECK(t.dtype() == DType::Float64);
    CHECK(cases::max_rel_diff(t, before.at(name).to(DType::Float64)) == 0);
  }
  for (const Tensor& p : m.parameters()) CHECK(p.requires_grad());
  CHECK(m.a.dtype() == DType::Float64);  // fields follow (same handles)
  CHECK(handle.dtype() == DType::Float64);
  CHECK(m.inner->running.dtype() == DType::Float64);
  CHECK(m.device() == kCPU);
}

// ---- layers: values -----------------------------------------------------------------------------

TEST_CASE("Linear: init, forward values, no bias") {
  Generator g1(42), g2(42), g3(43);
  Linear a(100, 50, true, &g1), b(100, 50, true, &g2), c(100, 50, true, &g3);
  CHECK(a.weight.shape() == Shape{50, 100});
  CHECK(a.bias.shape() == Shape{50});
  CHECK(a.in_features() == 100);
  CHECK(a.out_features() == 50);
  CHECK(names_of(a.named_parameters()) == std::vector<std::string>{"weight", "bias"});
  CHECK(cases::max_rel_diff(a.weight, b.weight) == 0);  // deterministic in the generator
  CHECK(cases::max_rel_diff(a.weight, c.weight) > 0);
  // U(-1/sqrt(in), 1/sqrt(in)) = U(-0.1, 0.1): in range, spread over it, mean near 0.
  for (const Tensor& t : {a.weight, a.bias}) {
    auto v = t.to_vector<float>();
    double lo = 1, hi = -1, s = 0;
    for (float e : v) lo = std::min(lo, double(e)), hi = std::max(hi, double(e)), s += e;
    CHECK(lo >= -0.1);
    CHECK(hi <= 0.1);
    CHECK(lo < -0.08);
    CHECK(hi > 0.08);
    CHECK(std::abs(s / double(v.size())) < 0.02);
  }
  Linear d(3, 2, true);  // the default generator
  CHECK(d.weight.dtype() == DType::Float32);

  // y = x W^T + b by hand.
  Linear l(3, 2);
  l.to(DType::Float64);
  set_values(l.weight, from_vector<double>({1, 2, 3, -1, 0, 1}, {2, 3}));
  set_values(l.bias, from_vector<double>({0.5, -0.5}, {2}));
  Tensor x = from_vector<double>({1, 1, 1, 2, 0, -1}, {2, 3});
  check_values(l.forward(x), {6.5, -0.5, -0.5, -3.5});
  check_values(l(x.unsqueeze(0)), {6.5, -0.5, -0.5, -3.5});  // leading dims pass through
  CHECK(l(x.unsqueeze(0)).shape() == Shape{1, 2, 2});

  Linear nb(3, 2, LinearOptions{.bias = false});
  CHECK(!nb.has_bias());
  CHECK(names_of(nb.named_parameters()) == std::vector<std::string>{"weight"});
  nb.to(DType::Float64);
  set_values(nb.weight, from_vector<double>({1, 2, 3, -1, 0, 1}, {2, 3}));
  check_values(nb(x), {6, 0, -1, -3});
}

TEST_CASE("LayerNorm, RMSNorm, GELU: hand-computed values") {
  LayerNorm ln(3);
  ln.to(DType::Float64);
  CHECK(names_of(ln.named_parameters()) == std::vector<std::string>{"weight", "bias"});
  check_values(ln.weight, {1, 1, 1});
  check_values(ln.bias, {0, 0, 0});
  CHECK(ln.eps() == 1e-5);
  // x = [1, 2, 3]: mean 2, biased var 2/3.
  Tensor x = from_vector<double>({1, 2, 3}, {1, 3});
  const double s = 1.0 / std::sqrt(2.0 / 3.0 + 1e-5);
  check_values(ln(x), {-s, 0, s});
  set_values(ln.weight, from_vector<double>({2, 3, 4}, {3}));
  set_values(ln.bias, from_vector<double>({1, 1, 1}, {3}));
  check_values(ln(x), {1 - 2 * s, 1, 1 + 4 * s});
  LayerNorm ln2(3, {.eps = 0.5});
  ln2.to(DType::Float64);
  const double s2 = 1.0 / std::sqrt(2.0 / 3.0 + 0.5);
  check_values(ln2(x), {-s2, 0, s2});

  // RMSNorm: [3, 4] / 5 * sqrt(2) * gamma.
  RMSNorm rn(2);
  rn.to(DType::Float64);
  CHECK(names_of(rn.named_parameters()) == std::vector<std::string>{"gamma"});
  Tensor y = from_vector<double>({3, 4, 0, 0}, {2, 2});
  const double r2 = std::sqrt(2.0);
  check_values(rn(y), {0.6 * r2, 0.8 * r2, 0, 0});  // a zero row stays 0 (norm clamped at 1e-12)
  set_values(rn.gamma, from_vector<double>({2, -1}, {2}));
  check_values(rn(y), {1.2 * r2, -0.8 * r2, 0, 0});

  GELU g;
  CHECK(g.named_parameters().empty());
  check_values(g(from_vector<double>({1, -1, 0, 3}, {4})),
               {0.8413447460685429, -0.15865525393145707, 0, 2.99595030590511});
}

TEST_CASE("FeedForward: structure, keys and hidden size") {
  FeedForward ff(16, {.mult = 2});
  CHECK(names_of(ff.named_parameters()) ==
        std::vector<std::string>{"0.gamma", "1.weight", "1.bias", "3.weight", "3.bias"});
  CHECK(ff.dim_hidden() == 32);
  CHECK(ff.size() == 4);
  CHECK(ff.proj_in->weight.shape() == Shape{32, 16});
  CHECK(ff.proj_out->weight.shape() == Shape{16, 32});
  CHECK(FeedForward(8).dim_hidden() == 32);            // default mult 4
  CHECK(FeedForward(16, {.mult = 0.5}).dim_hidden() == 8);
  CHECK(FeedForward(10, {.mult = 0.25}).dim_hidden() == 2);  // int(2.5)
  CHECK(FeedForward(3, {.mult = 1.5}).dim_hidden() == 4);    // int(4.5)
  CHECK(feedforward_hidden_dim(7, 0.3) == 2);

  // Forward = the functional composition.
  Generator gen(5);
  FeedForward f(6, {.mult = 1.5}, &gen);
  f.to(DType::Float64);
  set_values(f.norm->gamma, randn({6}, DType::Float64, kCPU, &gen));
  Tensor x = randn({2, 3, 6}, DType::Float64, kCPU, &gen);
  Tensor ref = linear(gelu(linear(rms_norm(x, f.norm->gamma), f.proj_in->weight, f.proj_in->bias)),
                      f.proj_out->weight, f.proj_out->bias);
  CHECK(cases::max_rel_diff(f(x), ref) == 0);
  CHECK(f(x).shape() == Shape{2, 3, 6});
}

// ---- golden parity --------------------------------------------------------------------------------

TEST_CASE("RMSNorm: golden parity with the PyTorch reference (float64)") {
  RMSNorm m(16);
  check_golden(m, "rmsnorm");
}

TEST_CASE("FeedForward: golden parity with the PyTorch reference (float64)") {
  FeedForward m(16, {.mult = 2});
  check_golden(m, "feedforward");
}

// ---- gradcheck ------------------------------------------------------------------------------------

TEST_CASE("layers: gradcheck in float64 (input and every parameter)") {
  auto run = [](Module& m, auto forward, const Tensor& x, const char* what) {
    m.to(DType::Float64);
    // Random parameters (the ones / zeros defaults would hide terms of the gradient).
    uint64_t seed = 100;
    for (Tensor& p : m.parameters()) set_values(p, cases::leaf(p.shape(), DType::Float64, kCPU, seed++, cases::Layout::Contiguous, 0.5, 0.5, false));
    TensorList inputs{x};
    for (const Tensor& p : m.parameters()) inputs.push_back(p);
    GradcheckResult r = gradcheck([&](const TensorList& in) { return forward(in[0]); }, inputs);
    CAPTURE(what);
    CAPTURE(r.message);
    CHECK(r.ok);
  };
  using cases::Layout;
  {
    Linear m(4, 3);
    run(m, [&](const Tensor& x) { return m(x); }, cases::leaf({2, 5, 4}, DType::Float64, kCPU, 1), "Linear");
    Linear nb(4, 3, false);
    run(nb, [&](const Tensor& x) { return nb(x); }, cases::leaf({3, 4}, DType::Float64, kCPU, 2, Layout::Transposed),
        "Linear without bias, transposed x");
  }
  {
    LayerNorm m(5);
    run(m, [&](const Tensor& x) { return m(x); }, cases::leaf({3, 5}, DType::Float64, kCPU, 3), "LayerNorm");
    LayerNorm m2(4);
    run(m2, [&](const Tensor& x) { return m2(x); }, cases::leaf({2, 3, 4}, DType::Float64, kCPU, 4, Layout::Sliced),
        "LayerNorm, sliced x");
  }
  {
    RMSNorm m(5);
    run(m, [&](const Tensor& x) { return m(x); }, cases::leaf({2, 3, 5}, DType::Float64, kCPU, 5), "RMSNorm");
    RMSNorm m2(3);
    run(m2, [&](const Tensor& x) { return m2(x); }, cases::leaf({3, 3}, DType::Float64, kCPU, 6, Layout::Transposed),
        "RMSNorm, transposed x");
  }
  {
    GELU m;
    run(m, [&](const Tensor& x) { return m(x); }, cases::leaf({3, 4}, DType::Float64, kCPU, 7), "GELU");
  }
  {
    FeedForward m(4, {.mult = 1.5});
    run(m, [&](const Tensor& x) { return m(x); }, cases::leaf({2, 3, 4}, DType::Float64, kCPU, 8), "FeedForward");
  }
}

// ---- bad inputs and options -----------------------------------------------------------------------

TEST_CASE("layers: bad inputs and options throw colt5::Error naming the argument") {
  Linear lin(3, 2);
  CHECK_THROWS_WITH_AS(lin(zeros({2, 4})), Contains("Linear: argument 'x' expected last dim 3, got 4"), Error);
  CHECK_THROWS_WITH_AS(lin(scalar_tensor(1.0)), Contains("Linear: argument 'x' expected a tensor of rank >= 1"), Error);
  CHECK_THROWS_WITH_AS(lin(zeros({2, 3}, DType::Int64)), Contains("'x'"), Error);
  CHECK_THROWS_WITH_AS(lin(zeros({2, 3}, DType::Float64)), Contains("argument 'x' expected dtype float32"), Error);
  CHECK_THROWS_WITH_AS(lin(Tensor()), Contains("undefined"), Error);

  LayerNorm ln(4);
  CHECK_THROWS_WITH_AS(ln(zeros({2, 3})), Contains("LayerNorm: argument 'x' expected last dim 4, got 3"), Error);
  CHECK_THROWS_WITH_AS(ln(scalar_tensor(1.0)), Contains("rank"), Error);

  RMSNorm rn(4);
  CHECK_THROWS_WITH_AS(rn(zeros({2, 5})), Contains("RMSNorm: argument 'x' expected last dim 4, got 5"), Error);
  CHECK_THROWS_WITH_AS(rn(scalar_tensor(1.0)), Contains("rank"), Error);

  FeedForward ff(4, {.mult = 2});
  CHECK_THROWS_WITH_AS(ff(zeros({2, 3, 5})), Contains("FeedForward: argument 'x' expected last dim 4, got 5"), Error);
  CHECK_THROWS_WITH_AS(ff(scalar_tensor(1.0)), Contains("rank"), Error);
  CHECK_THROWS_WITH_AS(ff(zeros({4}, DType::Float64)), Contains("dtype"), Error);

  GELU g;
  CHECK_THROWS_AS(g(zeros({2}, DType::Int32)), Error);

  CHECK_THROWS_WITH_AS(Linear(0, 3), Contains("option 'in_features'"), Error);
  CHECK_THROWS_WITH_AS(Linear(3, -1), Contains("option 'out_features'"), Error);
  CHECK_THROWS_WITH_AS(LayerNorm(0), Contains("option 'dim'"), Error);
  CHECK_THROWS_WITH_AS(LayerNorm(3, {.eps = 0}), Contains("option 'eps'"), Error);
  CHECK_THROWS_WITH_AS(LayerNorm(3, {.eps = -1e-5}), Contains("option 'eps'"), Error);
  CHECK_THROWS_WITH_AS(RMSNorm(0), Contains("option 'dim'"), Error);
  CHECK_THROWS_WITH_AS(FeedForward(0), Contains("option 'dim'"), Error);
  CHECK_THROWS_WITH_AS(FeedForward(8, {.mult = 0.1}), Contains("option 'mult'"), Error);  // int(0.8) = 0
  CHECK_THROWS_WITH_AS(FeedForward(8, {.mult = -2}), Contains("option 'mult'"), Error);
  CHECK_THROWS_WITH_AS(FeedForward(8, {.mult = std::nan("")}), Contains("option 'mult'"), Error);
}
