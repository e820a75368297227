// The fused local_attention op (core/cpu/local_attention.cpp through autograd/ops/local_attention.cpp)
// against its composed version (local_attention_composed, the oracle): forward and gradients in
// float64 and float32 over a random sweep of options and sizes; the raw ops' argument errors; and
// the fallback to the composed version when the device's `supports` slot says no.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "autograd/ops.h"
#include "core/ops/attention.h"
#include "tests/cases/cases.h"

using namespace colt5;
using colt5::cases::leaf;
using doctest::Contains;

namespace {

struct Setup {
  Shape shape;  // q, k, v
  Tensor mask;  // [b, n] or undefined
  LocalAttentionOptions o;
  std::string name;
};

Setup random_setup(std::mt19937& rng) {
  auto pick = [&](int lo, int hi) { return int64_t(std::uniform_int_distribution<int>(lo, hi)(rng)); };
  Setup s;
  LocalAttentionOptions& o = s.o;
  o.window_size = pick(1, 4);
  o.causal = pick(0, 1) == 1;
  o.look_backward = pick(0, 2);
  if (!o.causal && pick(0, 3) > 0) o.look_forward = pick(0, 2);
  if (o.causal && pick(0, 1)) o.look_forward = 0;
  o.exact_windowsize = pick(0, 1) == 1;
  o.autopad = pick(0, 1) == 1;
  o.shared_qk = pick(0, 3) == 0;
  if (pick(0, 3) == 0) o.scale = 0.25 * double(pick(1, 8));
  const int64_t b = pick(1, 2), h = pick(1, 3), d = pick(1, 6);
  const int64_t n = o.autopad ? pick(1, 14) : o.window_size * pick(1, 4);
  s.shape = pick(0, 1) ? Shape{b, h, n, d} : Shape{b * h, n, d};
  const int64_t mb = s.shape.size() == 4 ? b : (pick(0, 1) ? b : b * h);
  const int mask_kind = int(pick(0, 2));  // none, random, random with row 0 all off
  if (mask_kind > 0) {
    std::vector<bool> m(size_t(mb * n));
    for (int64_t i = 0; i < mb * n; ++i) m[size_t(i)] = pick(0, 3) != 0 && !(mask_kind == 2 && i < n);
    s.mask = from_vector(m, {mb, n});
  }
  s.name = str(s.shape, " w", o.window_size, " lb", o.look_backward, " lf", o.resolved_look_forward(),
               o.causal ? " causal" : "", o.exact_windowsize ? " exact" : "", o.autopad ? " autopad" : "",
               o.shared_qk ? " shared_qk" : "", o.scale ? str(" scale ", *o.scale) : std::string(),
               mask_kind == 0 ? "" : (mask_kind == 1 ? " mask" : " mask (row 0 off)"), " mask rows ", mb);
  return s;
}

struct Run {
  Tensor out, dq, dk, dv;
};

template <class F>
Run run(F&& f, const Setup& s, DType dt, uint64_t seed) {
  Tensor q = leaf(s.shape, dt, kCPU, seed), k = leaf(s.shape, dt, kCPU, seed + 1), v = leaf(s.shape, dt, kCPU, seed + 2);
  Tensor r = leaf(s.shape, dt, kCPU, seed + 3, cases::Layout::Contiguous, 1.0, 0.0, false);
  Run res;
  res.out = f(q, k, v, s.mask, s.o);
  sum(mul(res.out, r)).backward();
  res.dq = q.grad();
  res.dk = k.grad();
  res.dv = v.grad();
  return res;
}

Tensor fused(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& m, const LocalAttentionOptions& o) {
  return local_attention(q, k, v, m, o);
}
Tensor composed(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& m, const LocalAttentionOptions& o) {
  return local_attention_composed(q, k, v, m, o);
}

// max |a - b| / max(max |b|, 1): relative for O(1) and larger values, absolute below (shared_qk
// with d = 1 has dk = 0 up to rounding: the gradient of k / |k|).
double diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.defined());
  REQUIRE(b.defined());
  REQUIRE(a.shape() == b.shape());
  const std::vector<double> av = a.to(DType::Float64).to_vector<double>(), bv = b.to(DType::Float64).to_vector<double>();
  double num = 0, den = 1;
  for (size_t i = 0; i < av.size(); ++i) {
    num = std::max(num, std::abs(av[i] - bv[i]));
    den = std::max(den, std::abs(bv[i]));
  }
  return num / den;
}

void check_close(const Run& a, const Run& b, double tol, const std::string& name) {
  INFO(name);
  CHECK(diff(a.out, b.out) < tol);
  CHECK(diff(a.dq, b.dq) < tol);
  CHECK(diff(a.dk, b.dk) < tol);
  CHECK(diff(a.dv, b.dv) < tol);
}

}  // namespace

TEST_CASE("local_attention: fused matches composed, random option sweep, float64 and float32") {
  std::mt19937 rng(20261202);
  for (int it = 0; it < 300; ++it) {
    const Setup s = random_setup(rng);
    const uint64_t seed = 100 + 7 * uint64_t(it);
    check_close(run(fused, s, DType::Float64, seed), run(composed, s, DType::Float64, seed), 1e-12, s.name + " f64");
    check_close(run(fused, s, DType::Float32, seed), run(composed, s, DType::Float32, seed), 2e-5, s.name + " f32");
  }
}

TEST_CASE("local_attention: fused matches composed at CoLT5's light-branch shapes") {
  struct C {
    int64_t w, lb;
    std::optional<int64_t> lf;
    bool causal, exact;
    int64_t n, d;
  };
  for (const C& c : {C{8, 1, 1, false, true, 37, 16}, C{16, 1, std::nullopt, true, false, 50, 32},
                     C{4, 2, 2, false, false, 24, 8}}) {
    Setup s;
    s.o.window_size = c.w;
    s.o.look_backward = c.lb;
    s.o.look_forward = c.lf;
    s.o.causal = c.causal;
    s.o.exact_windowsize = c.exact;
    s.o.autopad = true;
    s.shape = {2, 3, c.n, c.d};
    std::vector<bool> m(size_t(2 * c.n));
    for (int64_t i = 0; i < 2 * c.n; ++i) m[size_t(i)] = i % 7 != 3;
    s.mask = from_vector(m, {2, c.n});
    s.name = str(s.shape, " w", c.w);
    check_close(run(fused, s, DType::Float64, 5), run(composed, s, DType::Float64, 5), 1e-12, s.name);
    check_close(run(fused, s, DType::Float32, 5), run(composed, s, DType::Float32, 5), 2e-5, s.name);
    s.mask = Tensor();
    check_close(run(fused, s, DType::Float64, 6), run(composed, s, DType::Float64, 6), 1e-12, s.name + " no mask");
  }
}

TEST_CASE("local_attention: a fully-masked query averages every slot, fillers and padding included") {
  // n = 3, w = 2 (autopad to 4), look +-1: window 0 sees [filler x2, 0, 1, 2, pad]; all masked.
  LocalAttentionOptions o;
  o.window_size = 2;
  o.autopad = true;
  Tensor q = leaf({1, 3, 2}, DType::Float64, kCPU, 1), k = leaf({1, 3, 2}, DType::Float64, kCPU, 2);
  Tensor v = leaf({1, 3, 2}, DType::Float64, kCPU, 3);
  const Tensor mask = from_vector(std::vector<bool>{false, false, false}, {1, 3});
  const Tensor out = local_attention(q, k, v, mask, o);
  const std::vector<double> vv = v.to_vector<double>(), ov = out.to_vector<double>();
  for (int c = 0; c < 2; ++c) {
    const double w0 = (vv[0 + c] + vv[2 + c] + vv[4 + c] - 2.0) / 6.0;  // window 0: fillers, keys 0..2, pad
    const double w1 = (vv[0 + c] + vv[2 + c] + vv[4 + c] - 2.0) / 6.0;  // window 1: keys 0..2, pad, fillers
    CHECK(ov[size_t(0 + c)] == doctest::Approx(w0).epsilon(1e-14));
    CHECK(ov[size_t(4 + c)] == doctest::Approx(w1).epsilon(1e-14));
  }
}

TEST_CASE("local_attention: raw ops name the bad argument") {
  LocalAttentionInputs in;
  in.opts.window_size = 2;
  in.q = zeros({2, 4, 3}, DType::Float64);
  in.k = zeros({2, 4, 3}, DType::Float64);
  in.v = zeros({2, 4, 3}, DType::Float64);
  in.scale = 0.5;
  CHECK_NOTHROW(ops::local_attention(in));
  {
    LocalAttentionInputs b = in;
    b.q = zeros({8, 3}, DType::Float64);
    CHECK_THROWS_WITH_AS(ops::local_attention(b), Contains("local_attention: argument 'q' expected rank 3"),
                         colt5::Error);
  }
  {
    LocalAttentionInputs b = in;
    b.k = zeros({2, 4, 3}, DType::Float32);
    CHECK_THROWS_WITH_AS(ops::local_attention(b), Contains("'k'"), colt5::Error);
  }
  {
    LocalAttentionInputs b = in;
    b.v = zeros({2, 4, 2}, DType::Float64);
    CHECK_THROWS_WITH_AS(ops::local_attention(b), Contains("argument 'v' expected shape"), colt5::Error);
  }
  {
    LocalAttentionInputs b = in;
    b.mask = ones({3, 4}, DType::Bool);
    CHECK_THROWS_WITH_AS(ops::local_attention(b), Contains("argument 'mask' expected shape [b, 4]"), colt5::Error);
    b.mask = ones({2, 4}, DType::Float64);
    CHECK_THROWS_WITH_AS(ops::local_attention(b), Contains("'mask'"), colt5::Error);
  }
  {
    LocalAttentionInputs b = in;
    b.q = zeros({2, 5, 3}, DType::Float64);
    b.k = b.v = b.q;
    CHECK_THROWS_WITH_AS(ops::local_attention(b), Contains("expected a multiple of window_size 2"), colt5::Error);
    b.opts.autopad = true;
    CHECK_NOTHROW(ops::local_attention(b));
  }
  {
    LocalAttentionInputs b = in;
    b.scale = -1;
    CHECK_THROWS_WITH_AS(ops::local_attention(b), Contains("argument 'scale'"), colt5::Error);
    b = in;
    b.opts.window_size = 0;
    CHECK_THROWS_WITH_AS(ops::local_attention(b), Contains("option 'window_size'"), colt5::Error);
    b = in;
    b.opts.causal = true;
    b.opts.look_forward = 1;
    CHECK_THROWS_WITH_AS(ops::local_attention(b), Contains("option 'look_forward' must be 0 when causal"),
                         colt5::Error);
  }
  const ops::AttentionResult fwd = ops::local_attention(in);
  const bool need[3] = {true, true, true};
  CHECK_NOTHROW(ops::local_attention_backward(in, fwd, zeros({2, 4, 3}, DType::Float64), need));
  CHECK_THROWS_WITH_AS(ops::local_attention_backward(in, fwd, zeros({2, 4, 2}, DType::Float64), need),
                       Contains("local_attention_backward: argument 'g' expected shape"), colt5::Error);
  CHECK_THROWS_WITH_AS(ops::local_attention_backward(in, {fwd.out, zeros({2, 3}, DType::Float64)},
                                                     zeros({2, 4, 3}, DType::Float64), need),
                       Contains("argument 'lse'"), colt5::Error);
  const bool none[3] = {false, false, false};
  const LocalAttentionGrads g = ops::local_attention_backward(in, fwd, zeros({2, 4, 3}, DType::Float64), none);
  CHECK(!g.dq.defined());
  CHECK(!g.dk.defined());
  CHECK(!g.dv.defined());
}

namespace {
int g_forward_calls = 0;
LocalAttentionFwdFn* g_real_forward = nullptr;
void counting_forward(const LocalAttentionInputs& in, Tensor& out, Tensor& lse) {
  ++g_forward_calls;
  g_real_forward(in, out, lse);
}
bool never_supported(const LocalAttentionInputs&) { return false; }
}  // namespace

TEST_CASE("local_attention: the composed version runs when the device's supports() says no") {
  LocalAttentionSupportsFn* real_supports = kernels::local_attention_supports(kCPU);
  g_real_forward = kernels::local_attention_forward(kCPU);
  kernels::local_attention_forward.set(DeviceType::CPU, &counting_forward);
  struct Restore {
    LocalAttentionSupportsFn* s;
    ~Restore() {
      kernels::local_attention_supports.set(DeviceType::CPU, s);
      kernels::local_attention_forward.set(DeviceType::CPU, g_real_forward);
    }
  } restore{real_supports};

  std::mt19937 rng(7);
  for (int it = 0; it < 20; ++it) {
    const Setup s = random_setup(rng);
    const Run ref = run(composed, s, DType::Float64, 40 + uint64_t(it));
    g_forward_calls = 0;
    kernels::local_attention_supports.set(DeviceType::CPU, &never_supported);
    const Run fb = run(fused, s, DType::Float64, 40 + uint64_t(it));
    CHECK(g_forward_calls == 0);
    check_close(fb, ref, 1e-15, s.name + " (fallback)");
    kernels::local_attention_supports.set(DeviceType::CPU, real_supports);
    const Run fu = run(fused, s, DType::Float64, 40 + uint64_t(it));
    CHECK(g_forward_calls == 1);
    check_close(fu, ref, 1e-12, s.name + " (fused)");
  }
}
