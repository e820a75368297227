// The autograd engine: accumulation into leaves, graphs with shared subexpressions, graph
// release and retain_graph, grad mode, detach, retain_grad, long chains — and gradcheck
// itself, which must catch a wrong backward.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "autograd/ops.h"

using namespace colt5;

namespace {

Tensor leaf64(const std::vector<double>& v, const Shape& shape) {
  Tensor t = from_vector(v, shape);
  t.requires_grad_();
  return t;
}

std::vector<double> grad_of(const Tensor& t) {
  REQUIRE(t.grad().defined());
  return t.grad().to_vector<double>();
}

}  // namespace

TEST_CASE("autograd: gradients accumulate into leaves over two backward calls") {
  Tensor x = leaf64({1, -2, 3}, {3});
  CHECK(x.is_leaf());
  CHECK(x.requires_grad());
  CHECK_FALSE(x.grad().defined());
  sum(x * x).backward();  // d/dx = 2x
  CHECK(grad_of(x) == std::vector<double>{2, -4, 6});
  sum(x * 3.0).backward();  // + 3
  CHECK(grad_of(x) == std::vector<double>{5, -1, 9});
  // A handed-out gradient is never changed in place by later backwards.
  Tensor before = x.grad();
  sum(x).backward();
  CHECK(before.to_vector<double>() == std::vector<double>{5, -1, 9});
  CHECK(grad_of(x) == std::vector<double>{6, 0, 10});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
  sum(x).backward();
  CHECK(grad_of(x) == std::vector<double>{1, 1, 1});
}

TEST_CASE("autograd: a diamond graph sums the gradients of every path") {
  // a = 2x feeds two branches: y = sum(exp(a) + a*a);  dy/dx = 2 exp(2x) + 8x.
  Tensor x = leaf64({0.5, -1.0, 0.25}, {3});
  Tensor a = x * 2.0;
  Tensor y = sum(exp(a) + a * a);
  y.backward();
  std::vector<double> g = grad_of(x);
  const std::vector<double> xs{0.5, -1.0, 0.25};
  for (size_t i = 0; i < xs.size(); ++i) CHECK(g[i] == doctest::Approx(2 * std::exp(2 * xs[i]) + 8 * xs[i]));

  // The same leaf as both operands of one op, and two leaves meeting twice.
  Tensor u = leaf64({3}, {1}), v = leaf64({-2}, {1});
  Tensor z = sum(u * v + u * u + v);  // dz/du = v + 2u = 4, dz/dv = u + 1 = 4
  z.backward();
  CHECK(grad_of(u) == std::vector<double>{4});
  CHECK(grad_of(v) == std::vector<double>{4});
}

TEST_CASE("autograd: retain_graph allows a second backward; without it the graph is freed") {
  Tensor x = leaf64({1, 2}, {2});
  Tensor y = sum(exp(x));
  y.backward(Tensor(), /*retain_graph=*/true);
  std::vector<double> once = grad_of(x);
  y.backward();  // the graph was kept: gradients add up
  std::vector<double> twice = grad_of(x);
  for (size_t i = 0; i < once.size(); ++i) CHECK(twice[i] == doctest::Approx(2 * once[i]));
  // Now the graph is freed: a third backward is an error that says how to fix it.
  CHECK_THROWS_AS(y.backward(), Error);
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("retain_graph"), Error);
  // The leaf's grad is untouched by the failed backward.
  CHECK(grad_of(x) == twice);
}

TEST_CASE("autograd: backward errors") {
  Tensor x = leaf64({1, 2, 3, 4}, {2, 2});
  Tensor y = x * 2.0;
  // A non-scalar needs its upstream gradient.
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("grad"), Error);
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("[2, 2]"), Error);
  // An upstream gradient of the wrong shape.
  CHECK_THROWS_WITH_AS(y.backward(ones({4}, DType::Float64)), doctest::Contains("grad"), Error);
  CHECK_THROWS_WITH_AS(y.backward(ones({4}, DType::Float64)), doctest::Contains("[4]"), Error);
  CHECK_THROWS_AS(y.backward(ones({2, 2, 1}, DType::Float64)), Error);
  // A tensor outside any graph.
  CHECK_THROWS_WITH_AS(ones({1}).backward(), doctest::Contains("require"), Error);
  CHECK_THROWS_AS(Tensor().backward(), Error);
  // The right upstream gradient works: d(sum(g * 2x))/dx = 2g.
  y.backward(from_vector<double>({1, 0, -1, 0.5}, {2, 2}));
  CHECK(grad_of(x) == std::vector<double>{2, 0, -2, 1});
}

TEST_CASE("autograd: NoGradGuard stops recording and restores the mode") {
  Tensor x = leaf64({1, 2}, {2});
  CHECK(grad_enabled());
  {
    NoGradGuard ng;
    CHECK_FALSE(grad_enabled());
    Tensor y = x * 2.0;
    CHECK_FALSE(y.requires_grad());
    CHECK_FALSE(y.grad_fn());
    CHECK(y.is_leaf());
    {
      NoGradGuard inner;
      CHECK_FALSE(grad_enabled());
    }
    CHECK_FALSE(grad_enabled());  // the inner guard restores "off", not "on"
  }
  CHECK(grad_enabled());
  Tensor z = x * 2.0;
  CHECK(z.requires_grad());
  CHECK(z.grad_fn());
  CHECK(z.grad_fn()->name() == "mul_scalar");
  // The mode is restored when the scope is left by an exception too.
  try {
    NoGradGuard ng;
    throw Error("leaving the scope");
  } catch (const Error&) {
  }
  CHECK(grad_enabled());
  set_grad_enabled(false);
  CHECK_FALSE((x * 2.0).requires_grad());
  set_grad_enabled(true);
}

TEST_CASE("autograd: detach shares storage and has no history") {
  Tensor x = leaf64({1, 2, 3, 4}, {2, 2});
  Tensor y = (x * 3.0).t();
  Tensor d = y.detach();
  CHECK(d.impl()->storage == y.impl()->storage);
  CHECK(d.shape() == y.shape());
  CHECK(d.strides() == y.strides());
  CHECK(d.offset() == y.offset());
  CHECK_FALSE(d.requires_grad());
  CHECK_FALSE(d.grad_fn());
  CHECK(d.is_leaf());
  CHECK(y.requires_grad());  // the original keeps its history
  // A write through the detached tensor is seen by the original.
  ops::fill_(d, 0.0);
  CHECK(y.to_vector<double>() == std::vector<double>(4, 0.0));
  // Nothing flows through detach.
  Tensor z = sum(x * x.detach());  // d/dx = x (not 2x)
  z.backward();
  CHECK(grad_of(x) == std::vector<double>{1, 2, 3, 4});
}

TEST_CASE("autograd: requires_grad_ rules") {
  Tensor x = leaf64({1, 2}, {2});
  Tensor y = x * 2.0;
  CHECK_FALSE(y.is_leaf());
  CHECK_THROWS_WITH_AS(y.requires_grad_(), doctest::Contains("leaf"), Error);
  CHECK_THROWS_WITH_AS(y.requires_grad_(false), doctest::Contains("leaf"), Error);
  Tensor i = arange(3);
  CHECK_THROWS_WITH_AS(i.requires_grad_(), doctest::Contains("int64"), Error);
  CHECK_THROWS_AS(from_vector<bool>({true}, {1}).requires_grad_(), Error);
  CHECK_NOTHROW(i.requires_grad_(false));
  Tensor f = ones({2}, DType::Float32);
  f.requires_grad_();
  CHECK(f.requires_grad());
  f.requires_grad_(false);
  CHECK_FALSE(f.requires_grad());
  // An op on inputs that need no grad records nothing.
  CHECK_FALSE((f * 2.0).grad_fn());
}

TEST_CASE("autograd: retain_grad keeps a non-leaf's gradient") {
  Tensor x = leaf64({1, -2, 3}, {3});
  Tensor a = x * 2.0;
  a.retain_grad();
  Tensor b = x + 1.0;  // no retain_grad: no grad kept
  Tensor y = sum(a * a + b);
  y.backward();
  CHECK(grad_of(a) == std::vector<double>{4, -8, 12});  // 2a
  CHECK_FALSE(b.grad().defined());
  CHECK(grad_of(x) == std::vector<double>{9, -15, 25});  // 8x + 1
  // retain_grad on something that needs no grad is an error; on a leaf it is a no-op.
  CHECK_THROWS_AS(ones({2}).retain_grad(), Error);
  CHECK_NOTHROW(x.retain_grad());
}

TEST_CASE("autograd: leaves' gradients are contiguous and owned") {
  // A leaf that is itself a strided view, and gradients that arrive through a transpose.
  Tensor base = arange(12).to(DType::Float64).reshape({3, 4});
  Tensor x = base.t().detach();  // [4, 3], strides [1, 4]
  x.requires_grad_();
  CHECK_FALSE(x.is_contiguous());
  Tensor w = arange(12).to(DType::Float64).reshape({3, 4});
  sum(x.t() * w).backward();  // the gradient reaches x as w.t(): non-contiguous
  Tensor g = x.grad();
  REQUIRE(g.defined());
  CHECK(g.is_contiguous());
  CHECK(g.shape() == Shape{4, 3});
  CHECK(g.to_vector<double>() == w.t().contiguous().to_vector<double>());
  CHECK(g.impl()->storage != w.impl()->storage);

  // Broadcasting: the gradient of a broadcast leaf is summed back to its shape.
  Tensor b = leaf64({1, 2, 3}, {3});
  sum(ones({4, 3}, DType::Float64) * b).backward();
  CHECK(b.grad().shape() == Shape{3});
  CHECK(grad_of(b) == std::vector<double>{4, 4, 4});
  CHECK(b.grad().is_contiguous());
}

TEST_CASE("autograd: a deep chain (10k ops) backward works") {
  Tensor x = leaf64({1.0, 2.0}, {2});
  Tensor y = x;
  const int n = 10000;
  for (int i = 0; i < n; ++i) y = y * 1.0001;
  sum(y).backward();
  const double expected = std::pow(1.0001, n);
  std::vector<double> g = grad_of(x);
  CHECK(g[0] == doctest::Approx(expected).epsilon(1e-10));
  CHECK(g[1] == doctest::Approx(expected).epsilon(1e-10));

  // A deep chain that is dropped without a backward.
  {
    Tensor z = x;
    for (int i = 0; i < n; ++i) z = z + 1.0;
    CHECK(z.requires_grad());
  }
  // And a wide fan-in: one leaf used by 1000 branches.
  Tensor acc = zeros({2}, DType::Float64);
  for (int i = 0; i < 1000; ++i) acc = acc + x;
  x.zero_grad();
  sum(acc).backward();
  CHECK(grad_of(x) == std::vector<double>{1000, 1000});
}

TEST_CASE("gradcheck: passes a correct backward and reports a wrong one") {
  // square(x) = x * x computed without recording, then recorded by hand with a backward of
  // grad * k * x: k = 2 is right, k = 3 is wrong by half of the analytic value everywhere.
  auto square_with_backward = [](double k) {
    return [k](const TensorList& in) -> Tensor {
      const Tensor& x = in[0];
      Tensor out;
      {
        NoGradGuard ng;
        out = x * x;
      }
      Tensor xd = x.detach();
      return autograd::record("square", out, {x},
                              [xd, k](const Tensor& g) -> TensorList { return {g * xd * k}; });
    };
  };
  Generator gen(31);
  Tensor x = randn({3, 4}, DType::Float64, kCPU, &gen);
  x.requires_grad_();

  GradcheckResult good = gradcheck(square_with_backward(2.0), {x});
  INFO(good.message);
  CHECK(good.ok);
  CHECK(good.checked == 12);
  CHECK(good.max_abs_error < 1e-7);
  CHECK(good.message.find("passed") != std::string::npos);

  GradcheckResult bad = gradcheck(square_with_backward(3.0), {x});
  INFO(bad.message);
  CHECK_FALSE(bad.ok);
  CHECK(bad.checked == 12);
  CHECK(bad.input == 0);
  REQUIRE(bad.index >= 0);
  REQUIRE(bad.index < 12);
  // analytic = 3 x r, numeric = 2 x r (r the random projection): ratio 3/2 at every element.
  CHECK(bad.analytic / bad.numeric == doctest::Approx(1.5).epsilon(1e-6));
  // The worst element is the one with the largest error, and it is reported as such.
  CHECK(std::fabs(bad.analytic - bad.numeric) == doctest::Approx(bad.max_abs_error));
  CHECK(bad.max_rel_error == doctest::Approx(0.5).epsilon(1e-6));
  CHECK(bad.message.find("FAILED") != std::string::npos);

  // Only inputs that require grad are checked; constants are left alone.
  Tensor c = randn({3, 4}, DType::Float64, kCPU, &gen);
  GradcheckResult two = gradcheck([](const TensorList& in) { return in[0] * in[1]; }, {x, c});
  CHECK(two.ok);
  CHECK(two.checked == 12);

  // gradcheck wants float64 leaves.
  Tensor x32 = randn({3}, DType::Float32, kCPU, &gen);
  x32.requires_grad_();
  CHECK_THROWS_WITH_AS(gradcheck([](const TensorList& in) { return in[0] * 2.0; }, {x32}),
                       doctest::Contains("float64"), Error);
}
