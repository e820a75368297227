// coor_descent and sinkhorn: golden parity with the PyTorch reference (float64, output and input
// gradient within 1e-9 relative), the fused op against the same iterations composed from public
// ops (autograd through all T steps), float64 gradchecks (masks, eps-scaling, batch dims,
// non-contiguous s, a fully masked row, a tensor k with gradient), the O(T) saved state, empty
// and degenerate shapes, and bad inputs. GPU tests at the end compare CUDA with the CPU and
// skip without a device.
#include <doctest/doctest.h>

#include "tests/parity/parity.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/ops/coor_descent.h"
#include "nn/safetensors.h"
#include "tests/cases/cases.h"
#include "tests/gpu/gpu.h"

using namespace colt5;
using colt5::parity::golden_dir;
using colt5::parity::golden_path;
using doctest::Contains;

namespace {

// ---- fixtures ---------------------------------------------------------------------------------

// The JSON text of `key`'s value in a flat JSON object (numbers, booleans, strings); nullopt if
// absent. Enough for the fixtures' "config" metadata.
std::optional<std::string> config_value(const std::string& json, const std::string& key) {
  const std::string quoted = "\"" + key + "\"";
  size_t at = json.find(quoted);
  if (at == std::string::npos) return std::nullopt;
  at = json.find(':', at + quoted.size());
  REQUIRE(at != std::string::npos);
  ++at;
  while (at < json.size() && json[at] == ' ') ++at;
  size_t end = at;
  if (json[at] == '"') {
    end = json.find('"', at + 1);
    return json.substr(at + 1, end - at - 1);
  }
  while (end < json.size() && json[end] != ',' && json[end] != '}') ++end;
  std::string v = json.substr(at, end - at);
  while (!v.empty() && v.back() == ' ') v.pop_back();
  return v;
}

double config_number(const std::string& json, const std::string& key) {
  auto v = config_value(json, key);
  REQUIRE_MESSAGE(v.has_value(), "config has no '", key, "': ", json);
  return std::stod(*v);
}

// max |a - ref| / max |ref| (max |a - ref| when ref is all zeros); infinite for a NaN.
double rel_error(const Tensor& a, const Tensor& ref) {
  REQUIRE(a.defined());
  REQUIRE(a.shape() == ref.shape());
  const std::vector<double> x = a.to(DType::Float64).cpu().to_vector<double>();
  const std::vector<double> y = ref.to(DType::Float64).cpu().to_vector<double>();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i]) != std::isnan(y[i])) return INFINITY;
    diff = std::max(diff, std::abs(x[i] - y[i]));
    scale = std::max(scale, std::abs(y[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

bool all_finite(const Tensor& t) {
  for (double v : t.to(DType::Float64).cpu().to_vector<double>())
    if (!std::isfinite(v)) return false;
  return true;
}

Tensor leaf64(const Tensor& t) {
  Tensor l = t.to(DType::Float64).detach().contiguous();
  l.requires_grad_();
  return l;
}

// ---- the reference's iterations, composed from public ops (autograd through every step) ----

Tensor coor_descent_composed(Tensor s, double k, const CoorDescentOptions& o, const Tensor& mask) {
  const double mask_value = -std::numeric_limits<double>::max();
  const Tensor drop = mask.defined() ? logical_not(mask) : Tensor();
  if (mask.defined()) s = masked_fill(s, drop, mask_value);
  const double logk = std::log(std::max(k, 1e-20));
  auto scalar = [&](double v) { return scalar_tensor(v, s.dtype(), s.device()); };
  Tensor a, b = -s;
  double cur = std::max(o.eps_init.value_or(o.eps), o.eps);
  for (int64_t i = 0; i < o.n_iters; ++i) {
    Tensor sb = (s + b) / scalar(cur);
    if (mask.defined()) sb = masked_fill(sb, drop, mask_value);
    a = scalar(cur) * (scalar(logk) - logsumexp(sb, -1, true));
    b = -relu(s + a);
    cur = std::max(cur * o.eps_decay, o.eps);
  }
  Tensor scores = exp((s + a + b) / scalar(cur));
  if (mask.defined()) scores = masked_fill(scores, drop, 0.0);
  return scores;
}

// The smallest |s_j + a_t| over kept j and every t: how far the inputs are from a relu kink,
// where finite differences are not valid. s: float64 [rows, n] contiguous.
double kink_margin(const Tensor& s, double k, const CoorDescentOptions& o, const Tensor& mask) {
  NoGradGuard ng;
  const CoorDescentParams p = ops::coor_descent_params(o.n_iters, o.eps, o.eps_init, o.eps_decay, "test");
  Tensor s2 = s.detach().reshape({-1, s.size(-1)}).contiguous();
  Tensor m2 = mask.defined() ? mask.reshape({-1, s.size(-1)}).contiguous() : Tensor();
  ops::CoorDescentResult r =
      ops::coor_descent_forward(s2, scalar_tensor(std::log(k), DType::Float64), m2, p);
  const int64_t rows = s2.size(0), n = s2.size(1);
  std::vector<double> sv = s2.to_vector<double>(), av = r.a.to_vector<double>();
  std::vector<bool> keep(sv.size(), true);
  if (m2.defined()) {
    std::vector<int64_t> mv = m2.to(DType::Int64).to_vector<int64_t>();
    for (size_t i = 0; i < mv.size(); ++i) keep[i] = mv[i] != 0;
  }
  double margin = INFINITY;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < n; ++j)
      if (keep[i * n + j])
        for (int64_t t = 0; t < o.n_iters; ++t) margin = std::min(margin, std::abs(sv[i * n + j] + av[i * o.n_iters + t]));
  return margin;
}

// A bool mask from a list of 0/1.
Tensor mask_of(const std::vector<int>& v, const Shape& shape, Device dev = kCPU) {
  std::vector<bool> b(v.begin(), v.end());
  return from_vector(b, shape, dev);
}

// A random mask of `shape` keeping about 3/4 of the entries; row `dead` (if >= 0) all False.
Tensor random_mask(const Shape& shape, uint64_t seed, int64_t dead = -1) {
  Generator gen(seed);
  std::vector<double> u = rand(shape, DType::Float64, kCPU, &gen).to_vector<double>();
  const int64_t n = shape.back();
  std::vector<bool> b(u.size());
  for (size_t i = 0; i < u.size(); ++i) b[i] = u[i] < 0.75 && int64_t(i) / n != dead;
  return from_vector(b, shape);
}

}  // namespace

// ---- golden parity ------------------------------------------------------------------------------

TEST_CASE("coor_descent: golden parity with the reference (coor_descent_0, _1, eps_scaling)") {
  for (const std::string name : {"coor_descent_0", "coor_descent_1", "coor_descent_eps_scaling"}) {
    CAPTURE(name);
    const nn::SafetensorsFile f = nn::read_safetensors(golden_path(name));
    const std::string cfg = f.metadata.at("config");
    CAPTURE(cfg);
    REQUIRE(*config_value(cfg, "op") == "coor_descent");
    CoorDescentOptions o;
    o.n_iters = int64_t(config_number(cfg, "n_iters"));
    o.eps = config_number(cfg, "eps");
    if (config_value(cfg, "eps_init")) o.eps_init = config_number(cfg, "eps_init");
    if (config_value(cfg, "eps_decay")) o.eps_decay = config_number(cfg, "eps_decay");
    const double k = config_number(cfg, "k");
    const bool masked = *config_value(cfg, "masked") == "true";
    REQUIRE(f.tensors.count("input.mask") == size_t(masked));

    Tensor s = leaf64(f.tensors.at("input.s"));
    Tensor mask = masked ? f.tensors.at("input.mask") : Tensor();
    Tensor y = coor_descent(s, k, o, mask);
    const double out_err = rel_error(y, f.tensors.at("output"));
    sum(y * f.tensors.at("upstream_grad")).backward();
    const double grad_err = rel_error(s.grad(), f.tensors.at("grad.input.s"));
    MESSAGE(name, ": output rel error ", out_err, ", grad.input.s rel error ", grad_err);
    CHECK(out_err <= 1e-9);
    CHECK(grad_err <= 1e-9);
  }
}

TEST_CASE("sinkhorn: golden parity with the reference") {
  const nn::SafetensorsFile f = nn::read_safetensors(golden_path("sinkhorn"));
  const std::string cfg = f.metadata.at("config");
  CAPTURE(cfg);
  REQUIRE(*config_value(cfg, "op") == "sinkhorn");
  Tensor r = leaf64(f.tensors.at("input.r"));
  Tensor y = sinkhorn(r, int64_t(config_number(cfg, "n_iters")));
  const double out_err = rel_error(y, f.tensors.at("output"));
  sum(y * f.tensors.at("upstream_grad")).backward();
  const double grad_err = rel_error(r.grad(), f.tensors.at("grad.input.r"));
  MESSAGE("sinkhorn: output rel error ", out_err, ", grad.input.r rel error ", grad_err);
  CHECK(out_err <= 1e-9);
  CHECK(grad_err <= 1e-9);
}

// ---- the fused op against its composed form ------------------------------------------------------

TEST_CASE("coor_descent: equals the iterations composed from public ops, forward and backward") {
  struct Variant {
    Shape shape;
    double k;
    CoorDescentOptions o;
    bool masked;
  };
  const std::vector<Variant> variants = {
      {{3, 17}, 4.0, {.n_iters = 30, .eps = 0.5}, true},
      {{2, 3, 11}, 2.5, {.n_iters = 20, .eps = 0.05, .eps_init = 3.0, .eps_decay = 0.8}, true},
      {{4, 9}, 3.0, {.n_iters = 5, .eps = 1.0}, false},
      {{25}, 7.0, {.n_iters = 1, .eps = 0.3}, false},
  };
  uint64_t seed = 3;
  for (const Variant& v : variants) {
    CAPTURE(v.shape);
    CAPTURE(v.o.n_iters);
    Generator gen(seed++);
    Tensor base = randn(v.shape, DType::Float64, kCPU, &gen) * 1.5;
    Tensor mask = v.masked ? random_mask(v.shape, seed++) : Tensor();
    Tensor g = randn(v.shape, DType::Float64, kCPU, &gen);

    Tensor s1 = leaf64(base), s2 = leaf64(base);
    Tensor y1 = coor_descent(s1, v.k, v.o, mask);
    Tensor y2 = coor_descent_composed(s2, v.k, v.o, mask);
    CHECK(rel_error(y1, y2) <= 1e-11);
    sum(y1 * g).backward();
    sum(y2 * g).backward();
    CHECK(rel_error(s1.grad(), s2.grad()) <= 1e-10);
  }
}

TEST_CASE("coor_descent: forward values by hand (one iteration, two entries)") {
  // One iteration: a_1 = eps (log k - log n) whatever s is; y_j = exp(min(s_j + a_1, 0) / eps).
  Tensor s = from_vector<double>({0.3, -0.2}, {2});
  const double eps = 0.5, k = 1.0;
  Tensor y = coor_descent(s, k, {.n_iters = 1, .eps = eps});
  const double a1 = eps * (std::log(k) - std::log(2.0));
  std::vector<double> got = y.to_vector<double>();
  CHECK(got[0] == doctest::Approx(std::exp(std::min(0.3 + a1, 0.0) / eps)).epsilon(1e-14));
  CHECK(got[1] == doctest::Approx(std::exp(std::min(-0.2 + a1, 0.0) / eps)).epsilon(1e-14));
  // eps-scaling: the output divides by the eps after the last update, max(eps_init * decay, eps).
  Tensor y2 = coor_descent(s, k, {.n_iters = 1, .eps = 0.1, .eps_init = 2.0, .eps_decay = 0.5});
  const double b1 = 2.0 * (std::log(k) - std::log(2.0));
  CHECK(y2.to_vector<double>()[1] == doctest::Approx(std::exp(std::min(-0.2 + b1, 0.0) / 1.0)).epsilon(1e-14));
}

TEST_CASE("coor_descent: outputs in [0, 1], rows sum to about k after convergence") {
  Generator gen(5);
  Tensor s = randn({4, 64}, DType::Float64, kCPU, &gen);
  Tensor y = coor_descent(s, 8.0, {.n_iters = 200, .eps = 0.1});
  for (double v : y.to_vector<double>()) {
    CHECK(v >= 0.0);
    CHECK(v <= 1.0);
  }
  for (double r : sum(y, {-1}).to_vector<double>()) CHECK(r == doctest::Approx(8.0).epsilon(1e-2));
}

// ---- gradcheck -----------------------------------------------------------------------------------

TEST_CASE("coor_descent: gradcheck float64 (masks, eps-scaling, batch dims, non-contiguous, dead row)") {
  struct Variant {
    std::string name;
    Shape shape;
    double k;
    CoorDescentOptions o;
    bool masked;
    int64_t dead_row;  // a row whose mask is all False (-1: none)
    cases::Layout layout;
  };
  const std::vector<Variant> variants = {
      {"[2,7] unmasked", {2, 7}, 3.0, {.n_iters = 10, .eps = 0.5}, false, -1, cases::Layout::Contiguous},
      {"[3,9] masked, dead row", {3, 9}, 2.0, {.n_iters = 12, .eps = 0.4}, true, 1, cases::Layout::Contiguous},
      {"[2,3,8] masked eps-scaling", {2, 3, 8}, 3.0,
       {.n_iters = 15, .eps = 0.2, .eps_init = 2.0, .eps_decay = 0.7}, true, 4, cases::Layout::Contiguous},
      {"[4,6] transposed eps-scaling", {4, 6}, 2.5,
       {.n_iters = 8, .eps = 0.3, .eps_init = 1.5, .eps_decay = 0.8}, false, -1, cases::Layout::Transposed},
      {"[3,10] sliced masked", {3, 10}, 4.0, {.n_iters = 20, .eps = 0.6}, true, -1, cases::Layout::Sliced},
  };
  uint64_t seed = 11;
  for (const Variant& v : variants) {
    CAPTURE(v.name);
    Tensor s = cases::leaf(v.shape, DType::Float64, kCPU, seed++, v.layout);
    Tensor mask = v.masked ? random_mask(v.shape, seed++, v.dead_row) : Tensor();
    const double margin = kink_margin(s.contiguous(), v.k, v.o, mask);
    CAPTURE(margin);
    REQUIRE(margin > 1e-4);  // finite differences stay on one side of every relu kink
    GradcheckResult r = gradcheck([&](const TensorList& in) { return coor_descent(in[0], v.k, v.o, mask); }, {s});
    INFO(r.message);
    CHECK(r.ok);
  }
}

TEST_CASE("coor_descent: tensor k (per row, broadcast, integral) and its gradient") {
  Generator gen(21);
  const CoorDescentOptions o{.n_iters = 10, .eps = 0.5, .eps_init = 1.0, .eps_decay = 0.9};
  Tensor s0 = randn({3, 8}, DType::Float64, kCPU, &gen);
  Tensor mask = random_mask({3, 8}, 4);
  SUBCASE("a constant k tensor equals the scalar k, row by row") {
    Tensor k = from_vector<double>({2.0, 3.5, 1.25}, {3});
    Tensor y = coor_descent(s0, k, o, mask);
    const std::vector<double> ks = {2.0, 3.5, 1.25};
    for (int64_t r = 0; r < 3; ++r) {
      Tensor yr = coor_descent(s0.narrow(0, r, 1), ks[r], o, mask.narrow(0, r, 1));
      CHECK(rel_error(y.narrow(0, r, 1), yr) == 0.0);
    }
    // [1] and [] broadcast to every row; an integral k is converted.
    Tensor y1 = coor_descent(s0, from_vector<double>({3.0}, {1}), o, mask);
    Tensor y0 = coor_descent(s0, scalar_tensor(3.0, DType::Float64), o, mask);
    Tensor yi = coor_descent(s0, from_vector<int64_t>({3, 3, 3}, {3}), o, mask);
    Tensor ys = coor_descent(s0, 3.0, o, mask);
    CHECK(rel_error(y1, ys) == 0.0);
    CHECK(rel_error(y0, ys) == 0.0);
    CHECK(rel_error(yi, ys) == 0.0);
  }
  SUBCASE("gradcheck in s and k, per-row k") {
    Tensor s = leaf64(s0);
    Tensor k = from_vector<double>({2.0, 3.5, 1.25}, {3}).requires_grad_();
    REQUIRE(kink_margin(s0, 2.0, o, mask) > 1e-4);
    GradcheckResult r = gradcheck([&](const TensorList& in) { return coor_descent(in[0], in[1], o, mask); }, {s, k});
    INFO(r.message);
    CHECK(r.ok);
  }
  SUBCASE("gradcheck in k broadcast over rows ([1] to [2, 3])") {
    Tensor s = leaf64(randn({2, 3, 7}, DType::Float64, kCPU, &gen));
    Tensor k = from_vector<double>({2.5}, {1}).requires_grad_();
    GradcheckResult r = gradcheck([&](const TensorList& in) { return coor_descent(in[0], in[1], o); }, {s, k});
    INFO(r.message);
    CHECK(r.ok);
    // the k gradient is the sum of the per-row ones
    Tensor kr = from_vector<double>({2.5, 2.5, 2.5, 2.5, 2.5, 2.5}, {2, 3}).requires_grad_();
    Tensor k1 = from_vector<double>({2.5}, {1}).requires_grad_();
    Tensor g = randn({2, 3, 7}, DType::Float64, kCPU, &gen);
    sum(coor_descent(s.detach(), kr, o) * g).backward();
    sum(coor_descent(s.detach(), k1, o) * g).backward();
    CHECK(k1.grad().item<double>() == doctest::Approx(sum(kr.grad()).item<double>()).epsilon(1e-13));
  }
}

// ---- masks, degenerate shapes, saved state ------------------------------------------------------------

TEST_CASE("coor_descent: an all-False mask row gives finite zeros and zero gradients") {
  Generator gen(8);
  Tensor s = leaf64(randn({3, 6}, DType::Float64, kCPU, &gen));
  Tensor mask = mask_of({1, 0, 1, 1, 0, 1,  //
                         0, 0, 0, 0, 0, 0,  //
                         1, 1, 1, 1, 1, 0},
                        {3, 6});
  const CoorDescentOptions o{.n_iters = 50, .eps = 0.03, .eps_init = 4.0, .eps_decay = 0.7};
  Tensor y = coor_descent(s, 2.0, o, mask);
  Tensor g = randn({3, 6}, DType::Float64, kCPU, &gen);
  sum(y * g).backward();
  CHECK(all_finite(y));
  CHECK(all_finite(s.grad()));
  for (double v : y.narrow(0, 1, 1).to_vector<double>()) CHECK(v == 0.0);
  for (double v : s.grad().narrow(0, 1, 1).to_vector<double>()) CHECK(v == 0.0);
  // masked entries: output 0, gradient 0
  CHECK(y.to_vector<double>()[1] == 0.0);
  CHECK(s.grad().to_vector<double>()[4] == 0.0);
  // the other rows are as if computed alone
  Tensor y0 = coor_descent(s.detach().narrow(0, 0, 1), 2.0, o, mask.narrow(0, 0, 1));
  CHECK(rel_error(y.narrow(0, 0, 1), y0) == 0.0);
  // a tensor k that requires grad gets 0 from the dead row
  Tensor k = from_vector<double>({2.0, 2.0, 2.0}, {3}).requires_grad_();
  sum(coor_descent(s.detach(), k, o, mask) * g).backward();
  CHECK(k.grad().to_vector<double>()[1] == 0.0);
  CHECK(all_finite(k.grad()));
  // an entirely masked input
  Tensor none = mask_of(std::vector<int>(18, 0), {3, 6});
  Tensor s2 = leaf64(s.detach());
  Tensor y2 = coor_descent(s2, 2.0, o, none);
  sum(y2 * g).backward();
  for (double v : y2.to_vector<double>()) CHECK(v == 0.0);
  for (double v : s2.grad().to_vector<double>()) CHECK(v == 0.0);
}

TEST_CASE("coor_descent: saved state is T float64 scalars per row; one graph node") {
  Generator gen(9);
  Tensor s = randn({2, 5, 33}, DType::Float32, kCPU, &gen);
  const CoorDescentParams p = ops::coor_descent_params(17, 0.1, std::nullopt, 1.0, "test");
  ops::CoorDescentResult r = ops::coor_descent_forward(s, scalar_tensor(std::log(4.0), DType::Float64), Tensor(), p);
  CHECK(r.y.shape() == Shape{2, 5, 33});
  CHECK(r.a.shape() == Shape{10, 17});  // [rows, T]: O(T) per row, independent of n
  CHECK(r.a.dtype() == DType::Float64);
  // The differentiable op records one node with edges to s and log k, not T iterations.
  Tensor sl = s.detach().requires_grad_();
  Tensor y = coor_descent(sl, 4.0, {.n_iters = 17, .eps = 0.1});
  REQUIRE(y.grad_fn() != nullptr);
  CHECK(y.grad_fn()->name() == "coor_descent");
  CHECK(y.grad_fn()->next().size() == 2);
  CHECK(y.grad_fn()->next()[0] == autograd::gradient_edge(sl));
  // and no graph at all without grad
  CHECK(coor_descent(s, 4.0, {.n_iters = 17, .eps = 0.1}).grad_fn() == nullptr);
}

TEST_CASE("coor_descent: float32 agrees with float64; empty and size-1 shapes") {
  Generator gen(12);
  Tensor s = randn({5, 40}, DType::Float64, kCPU, &gen);
  Tensor mask = random_mask({5, 40}, 13, 2);
  const CoorDescentOptions o{.n_iters = 50, .eps = 0.1, .eps_init = 2.0, .eps_decay = 0.8};
  Tensor y64 = coor_descent(s, 6.0, o, mask);
  Tensor y32 = coor_descent(s.to(DType::Float32), 6.0, o, mask);
  CHECK(y32.dtype() == DType::Float32);
  CHECK(rel_error(y32, y64) < 1e-5);

  for (const Shape& shape : {Shape{0, 5}, Shape{3, 0}, Shape{0}, Shape{2, 0, 4}}) {
    CAPTURE(shape);
    Tensor e = zeros(shape, DType::Float64).requires_grad_();
    Tensor y = coor_descent(e, 2.0, {.n_iters = 3});
    CHECK(y.shape() == shape);
    sum(y).backward();
    REQUIRE(e.grad().defined());
    CHECK(e.grad().shape() == shape);
  }
  // n = 1 and k = n: the single entry is selected fully
  Tensor one = from_vector<double>({0.7, -1.3}, {2, 1});
  for (double v : coor_descent(one, 1.0, {.n_iters = 5, .eps = 0.2}).to_vector<double>())
    CHECK(v == doctest::Approx(1.0).epsilon(1e-12));
}

// ---- sinkhorn ------------------------------------------------------------------------------------

TEST_CASE("sinkhorn: columns sum to 1, gradcheck, gumbel variant") {
  Generator gen(31);
  Tensor r = randn({2, 4, 6}, DType::Float64, kCPU, &gen);
  Tensor y = sinkhorn(r, 8);
  for (double c : sum(y, {-2}).to_vector<double>()) CHECK(c == doctest::Approx(1.0).epsilon(1e-12));
  // n_iters = 0 is exp(r)
  CHECK(rel_error(sinkhorn(r, 0), exp(r)) == 0.0);

  Tensor rl = cases::leaf({3, 5}, DType::Float64, kCPU, 32, cases::Layout::Transposed);
  GradcheckResult g1 = gradcheck([](const TensorList& in) { return sinkhorn(in[0], 4); }, {rl});
  INFO(g1.message);
  CHECK(g1.ok);
  Tensor rb = cases::leaf({2, 3, 4}, DType::Float64, kCPU, 33);
  GradcheckResult g2 = gradcheck([](const TensorList& in) { return sinkhorn(in[0]); }, {rb});
  INFO(g2.message);
  CHECK(g2.ok);

  // gumbel: deterministic for a seeded generator, columns sum to 1, differentiable in r > 0
  Tensor w = exp(randn({2, 4, 4}, DType::Float64, kCPU, &gen));
  Generator ga(77), gb(77);
  Tensor ya = gumbel_sinkhorn(w, 8, 0.7, &ga), yb = gumbel_sinkhorn(w, 8, 0.7, &gb);
  CHECK(rel_error(ya, yb) == 0.0);
  for (double c : sum(ya, {-2}).to_vector<double>()) CHECK(c == doctest::Approx(1.0).epsilon(1e-12));
  Generator gc(78);
  CHECK(rel_error(gumbel_sinkhorn(w, 8, 0.7, &gc), ya) > 0.0);
  Tensor wl = leaf64(w);
  GradcheckResult g3 = gradcheck(
      [](const TensorList& in) {
        Generator fixed(5);  // the same noise at every evaluation
        return gumbel_sinkhorn(in[0], 5, 0.9, &fixed);
      },
      {wl});
  INFO(g3.message);
  CHECK(g3.ok);
}

// ---- bad inputs ----------------------------------------------------------------------------------

TEST_CASE("coor_descent / sinkhorn: bad inputs throw colt5::Error naming the argument") {
  Tensor s = randn({2, 5}, DType::Float64);
  const CoorDescentOptions ok{.n_iters = 3, .eps = 0.5};
  CHECK_NOTHROW(coor_descent(s, 2.0, ok));
  auto with = [&](auto change) {
    CoorDescentOptions o = ok;
    change(o);
    return o;
  };
  CHECK_THROWS_WITH_AS(coor_descent(s, 2.0, CoorDescentOptions{}), Contains("argument 'n_iters'"), colt5::Error);
  CHECK_THROWS_WITH_AS(coor_descent(s, 2.0, with([](auto& o) { o.n_iters = 0; })), Contains("argument 'n_iters'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(coor_descent(s, 2.0, with([](auto& o) { o.n_iters = -4; })), Contains("argument 'n_iters'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(coor_descent(s, 2.0, with([](auto& o) { o.eps = 0; })), Contains("argument 'eps'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(coor_descent(s, 2.0, with([](auto& o) { o.eps = -1; })), Contains("argument 'eps'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(coor_descent(s, 2.0, with([](auto& o) { o.eps = NAN; })), Contains("argument 'eps'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(coor_descent(s, 2.0, with([](auto& o) { o.eps_init = 0.0; })), Contains("argument 'eps_init'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(coor_descent(s, 2.0, with([](auto& o) { o.eps_decay = 0.0; })),
                       Contains("argument 'eps_decay'"), colt5::Error);
  CHECK_THROWS_WITH_AS(coor_descent(s, 2.0, with([](auto& o) { o.eps_decay = 1.5; })),
                       Contains("argument 'eps_decay'"), colt5::Error);
  // k
  CHECK_THROWS_WITH_AS(coor_descent(s, 0.0, ok), Contains("argument 'k'"), colt5::Error);
  CHECK_THROWS_WITH_AS(coor_descent(s, -2.0, ok), Contains("argument 'k'"), colt5::Error);
  CHECK_THROWS_WITH_AS(coor_descent(s, INFINITY, ok), Contains("argument 'k'"), colt5::Error);
  CHECK_THROWS_WITH_AS(coor_descent(s, from_vector<double>({1, 2, 3}, {3}), ok), Contains("argument 'k'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(coor_descent(s, from_vector<double>({1, 2}, {2, 1}), ok), Contains("argument 'k'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(coor_descent(s, mask_of({1, 0}, {2}), ok), Contains("argument 'k'"), colt5::Error);
  CHECK_THROWS_WITH_AS(coor_descent(s, Tensor(), ok), Contains("argument 'k'"), colt5::Error);
  // mask
  CHECK_THROWS_WITH_AS(coor_descent(s, 2.0, ok, mask_of({1, 0, 1, 1, 1}, {5})), Contains("argument 'mask'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(coor_descent(s, 2.0, ok, ones({2, 5}, DType::Float64)), Contains("argument 'mask'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(coor_descent(s, 2.0, ok, ones({2, 5}, DType::Int64)), Contains("argument 'mask'"),
                       colt5::Error);
  // s
  CHECK_THROWS_WITH_AS(coor_descent(ones({2, 5}, DType::Int64), 2.0, ok), Contains("argument 's'"), colt5::Error);
  CHECK_THROWS_WITH_AS(coor_descent(scalar_tensor(1.0, DType::Float64), 2.0, ok), Contains("argument 's'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(coor_descent(Tensor(), 2.0, ok), Contains("argument 's'"), colt5::Error);
  // sinkhorn
  CHECK_THROWS_WITH_AS(sinkhorn(randn({5}, DType::Float64)), Contains("argument 'r'"), colt5::Error);
  CHECK_THROWS_WITH_AS(sinkhorn(ones({2, 2}, DType::Int64)), Contains("argument 'r'"), colt5::Error);
  CHECK_THROWS_WITH_AS(sinkhorn(s, -1), Contains("argument 'n_iters'"), colt5::Error);
  CHECK_THROWS_WITH_AS(gumbel_sinkhorn(s, 8, 0.0), Contains("argument 'temperature'"), colt5::Error);
  CHECK_THROWS_WITH_AS(gumbel_sinkhorn(s, 8, -1.0), Contains("argument 'temperature'"), colt5::Error);
}

// ---- GPU: CUDA kernels against the CPU reference (skipped without a device) ---------------------

TEST_CASE("gpu: coor_descent matches the CPU, forward and backward, float32 and float64") {
  COLT5_REQUIRE_GPU();
  using colt5::gputest::gpu;
  struct Variant {
    Shape shape;
    bool masked;
    int64_t dead_row;
    CoorDescentOptions o;
  };
  const std::vector<Variant> variants = {
      {{3, 40}, true, 1, {.n_iters = 50, .eps = 1.0}},
      {{2, 33}, false, -1, {.n_iters = 50, .eps = 0.5}},
      {{4, 50}, true, -1, {.n_iters = 20, .eps = 0.03, .eps_init = 4.0, .eps_decay = 0.7}},
      {{5, 1}, false, -1, {.n_iters = 3, .eps = 0.2}},
      {{2, 7000}, true, 0, {.n_iters = 10, .eps = 0.1}},  // longer than the shared-memory row cache
      {{70000, 3}, true, -1, {.n_iters = 4, .eps = 0.5}},  // more rows than blocks
      {{2, 3, 700}, false, -1, {.n_iters = 30, .eps = 0.1, .eps_init = 1.0, .eps_decay = 0.9}},
  };
  uint64_t seed = 40;
  for (const Variant& v : variants) {
    for (DType dt : {DType::Float64, DType::Float32}) {
      CAPTURE(v.shape);
      CAPTURE(dtype_name(dt));
      Generator gen(seed++);
      Tensor s = (randn(v.shape, DType::Float64, kCPU, &gen) * 2.0).to(dt);
      Tensor g = randn(v.shape, DType::Float64, kCPU, &gen).to(dt);
      Tensor mask = v.masked ? random_mask(v.shape, seed++, v.dead_row) : Tensor();
      Tensor k = (rand(Shape(v.shape.begin(), v.shape.end() - 1), DType::Float64, kCPU, &gen) * 3.0 + 1.0).to(dt);
      Tensor sc = s.detach().requires_grad_(), kc = k.detach().requires_grad_();
      Tensor yc = coor_descent(sc, kc, v.o, mask);
      sum(yc * g).backward();
      Tensor sg = s.to(gpu()).detach().requires_grad_(), kg = k.to(gpu()).detach().requires_grad_();
      Tensor yg = coor_descent(sg, kg, v.o, mask.defined() ? mask.to(gpu()) : Tensor());
      REQUIRE(yg.device() == gpu());
      sum(yg * g.to(gpu())).backward();
      const double tol = dt == DType::Float64 ? 1e-10 : 1e-5;
      CHECK(rel_error(yg, yc) <= tol);
      CHECK(rel_error(sg.grad(), sc.grad()) <= tol * 10);
      CHECK(rel_error(kg.grad(), kc.grad()) <= tol * 10);
    }
  }
}

TEST_CASE("gpu: coor_descent gradcheck float64 on the GPU, deterministic backward") {
  COLT5_REQUIRE_GPU();
  using colt5::gputest::gpu;
  const CoorDescentOptions o{.n_iters = 15, .eps = 0.2, .eps_init = 2.0, .eps_decay = 0.7};
  Tensor mask = random_mask({3, 8}, 50, 1);
  Tensor s = cases::leaf({3, 8}, DType::Float64, kCPU, 51);
  REQUIRE(kink_margin(s.detach(), 3.0, o, mask) > 1e-4);
  Tensor sg = s.detach().to(gpu()).requires_grad_();
  Tensor mg = mask.to(gpu());
  GradcheckResult r = gradcheck([&](const TensorList& in) { return coor_descent(in[0], 3.0, o, mg); }, {sg});
  INFO(r.message);
  CHECK(r.ok);

  Generator gen(52);
  Tensor big = randn({6, 3000}, DType::Float32, kCPU, &gen).to(gpu());
  Tensor gb = randn({6, 3000}, DType::Float32, kCPU, &gen).to(gpu());
  std::vector<float> first;
  for (int rep = 0; rep < 2; ++rep) {
    Tensor x = big.detach().requires_grad_();
    sum(coor_descent(x, 100.0, o) * gb).backward();
    std::vector<float> got = x.grad().cpu().to_vector<float>();
    if (rep == 0) first = got;
    else CHECK(got == first);
  }
}
