// Reductions, softmax / log_softmax and cross_entropy: forward values worked out by hand, the
// gradients where a finite-difference check cannot go (ties, -inf), edge shapes (empty and
// size-1 dims, very long rows) and bad inputs. The gradchecks of every op are in the case list
// (tests/cases/reduce.cpp, softmax.cpp, loss.cpp).
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "autograd/ops.h"
#include "core/ops/loss.h"
#include "core/ops/softmax.h"

using namespace colt5;

namespace {

Tensor dvec(const std::vector<double>& v, const Shape& shape, bool requires_grad = false) {
  Tensor t = from_vector(v, shape);
  if (requires_grad) t.requires_grad_();
  return t;
}

Tensor ivec(const std::vector<int64_t>& v) { return from_vector(v, {int64_t(v.size())}); }

void check_close(const Tensor& t, const std::vector<double>& expected, double tol = 1e-12) {
  std::vector<double> got = t.to(DType::Float64).to_vector<double>();
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i] == doctest::Approx(expected[i]).epsilon(tol));
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------------------------

TEST_CASE("reduce: sum / mean / max / amax / argmax / logsumexp of a known tensor") {
  // x = [[1, 2, 3],
  //      [4, 5, 6]]
  Tensor x = dvec({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(sum(x).item<double>() == 21.0);
  CHECK(sum(x).dim() == 0);
  check_close(sum(x, {0}), {5, 7, 9});
  check_close(sum(x, {1}), {6, 15});
  check_close(sum(x, {-1}), {6, 15});
  CHECK(sum(x, {1}, true).shape() == Shape{2, 1});
  CHECK(sum(x, {0, 1}).item<double>() == 21.0);
  CHECK(mean(x).item<double>() == doctest::Approx(3.5));
  check_close(mean(x, {1}), {2, 5});
  check_close(mean(x, {0}, true), {2.5, 3.5, 4.5});
  CHECK(mean(x, {0}, true).shape() == Shape{1, 3});

  ValuesIndices m = max(x, 1);
  check_close(m.values, {3, 6});
  CHECK(m.indices.dtype() == DType::Int64);
  CHECK(m.indices.to_vector<int64_t>() == std::vector<int64_t>{2, 2});
  check_close(amax(x, {0}), {4, 5, 6});
  CHECK(amax(x, {}).item<double>() == 6.0);
  CHECK(argmax(x, 0).to_vector<int64_t>() == std::vector<int64_t>{1, 1, 1});
  CHECK(argmax(x, 1, true).shape() == Shape{2, 1});

  // logsumexp of [0, ln 2, ln 3] = ln(1 + 2 + 3) = ln 6
  Tensor r = dvec({0, std::log(2.0), std::log(3.0)}, {1, 3});
  check_close(logsumexp(r, 1), {std::log(6.0)});
  // and far from 0: the max is subtracted, nothing overflows
  check_close(logsumexp(r + 1000.0, 1), {1000.0 + std::log(6.0)});

  // sum of a transposed and of a sliced view
  check_close(sum(x.t(), {1}), {5, 7, 9});
  check_close(sum(x.narrow(1, 1, 2), {0}), {7, 9});

  // float32 sums accumulate in double
  Tensor xf = x.to(DType::Float32);
  CHECK(sum(xf).dtype() == DType::Float32);
  CHECK(sum(xf).item<float>() == 21.0f);
}

TEST_CASE("reduce: sum over two non-adjacent dims and its gradient") {
  // x[i, j, k] = 100 i + 10 j + k, shape [2, 3, 2]; sum over dims {0, 2} -> [3]
  std::vector<double> v;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 2; ++k) v.push_back(100 * i + 10 * j + k);
  Tensor x = dvec(v, {2, 3, 2}, true);
  Tensor s = sum(x, {0, 2});
  // sum_{i,k} (100 i + 10 j + k) = 200 + 40 j + 2
  check_close(s, {202, 242, 282});
  sum(s * dvec({1, 2, 3}, {3})).backward();
  std::vector<double> expect;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 2; ++k) expect.push_back(j + 1);
  check_close(x.grad(), expect);
}

TEST_CASE("reduce: amax splits the gradient evenly between tied maxima (as torch)") {
  Tensor x = dvec({1, 3, 3, 2}, {4}, true);
  Tensor m = amax(x, {0});
  CHECK(m.item<double>() == 3.0);
  m.backward();
  check_close(x.grad(), {0, 0.5, 0.5, 0});

  // three-way tie over a 2-D reduction, keepdim
  Tensor y = dvec({5, 1, 5, 5, 0, 2}, {2, 3}, true);
  Tensor my = amax(y, {0, 1}, true);
  CHECK(my.shape() == Shape{1, 1});
  sum(my * 6.0).backward();
  check_close(y.grad(), {2, 0, 2, 2, 0, 0});

  // per row: row 0 has a tie, row 1 does not
  Tensor z = dvec({7, 7, 1, 0, 4, 2}, {2, 3}, true);
  sum(amax(z, {1})).backward();
  check_close(z.grad(), {0.5, 0.5, 0, 0, 1, 0});
}

TEST_CASE("reduce: logsumexp of an all -inf row is -inf with a zero gradient") {
  const double inf = INFINITY;
  Tensor x = dvec({-inf, -inf, -inf, 0, 0, 0}, {2, 3}, true);
  Tensor lse = logsumexp(x, 1);
  std::vector<double> v = lse.to_vector<double>();
  CHECK(std::isinf(v[0]));
  CHECK(v[0] < 0);
  CHECK(v[1] == doctest::Approx(std::log(3.0)));
  sum(lse * dvec({2, 3}, {2})).backward();
  std::vector<double> g = x.grad().to_vector<double>();
  for (double e : g) CHECK(std::isfinite(e));
  check_close(x.grad(), {0, 0, 0, 1, 1, 1});
  // one -inf element in a finite row: it gets weight exp(-inf) = 0
  Tensor y = dvec({-inf, 0}, {2}, true);
  Tensor ly = logsumexp(y, 0);
  CHECK(ly.item<double>() == doctest::Approx(0.0));
  ly.backward();
  check_close(y.grad(), {0, 1});
}

TEST_CASE("reduce: empty dims and size-1 dims") {
  Tensor e = zeros({3, 0}, DType::Float64);
  Tensor s1 = sum(e, {1});
  CHECK(s1.shape() == Shape{3});
  check_close(s1, {0, 0, 0});
  CHECK(sum(e, {0}).shape() == Shape{0});
  CHECK(sum(e).item<double>() == 0.0);
  CHECK(sum(e, {1}, true).shape() == Shape{3, 1});
  CHECK(std::isnan(mean(e).item<double>()));  // 0/0, as torch
  // the gradient of an empty sum is an empty tensor of the input's shape
  Tensor el = zeros({3, 0}, DType::Float64).requires_grad_();
  sum(sum(el, {1})).backward();
  CHECK(el.grad().shape() == Shape{3, 0});
  // max over an empty dim has no value
  CHECK_THROWS_AS(max(e, 1), colt5::Error);
  CHECK_THROWS_AS(amax(e, {1}), colt5::Error);
  CHECK_THROWS_AS(argmax(e, 1), colt5::Error);
  // logsumexp over an empty dim is log(0) = -inf (as torch)
  std::vector<double> l = logsumexp(e, 1).to_vector<double>();
  for (double v : l) CHECK((std::isinf(v) && v < 0));

  // size-1 dims
  Tensor x = dvec({1, 2, 3, 4}, {1, 4, 1}, true);
  CHECK(sum(x, {0}).shape() == Shape{4, 1});
  check_close(sum(x, {2}), {1, 2, 3, 4});
  check_close(sum(x, {0, 2}, true), {1, 2, 3, 4});
  CHECK(sum(x, {0, 2}, true).shape() == Shape{1, 4, 1});
  check_close(amax(x, {0}), {1, 2, 3, 4});
  check_close(max(x, 2).values, {1, 2, 3, 4});
  CHECK(argmax(x, 0).to_vector<int64_t>() == std::vector<int64_t>{0, 0, 0, 0});
  check_close(logsumexp(x, 2), {1, 2, 3, 4});
  check_close(mean(x, {1}), {2.5});
  sum(logsumexp(x, 0)).backward();
  check_close(x.grad(), {1, 1, 1, 1});
  // a 0-dim tensor reduces to itself
  Tensor sc = scalar_tensor(2.5, DType::Float64);
  CHECK(sum(sc).item<double>() == 2.5);
}

TEST_CASE("reduce: rows longer than 100k elements") {
  const int64_t n = 123457;
  Tensor ones_f = ones({2, n}, DType::Float32);
  // every partial sum is an integer < 2^24: exact
  CHECK(sum(ones_f, {1}).to_vector<float>() == std::vector<float>{float(n), float(n)});
  Tensor tenth = full({n}, 0.1, DType::Float32);
  // float(0.1) * n summed in double, rounded once to float (a float accumulator would drift far more)
  CHECK(sum(tenth).item<float>() == doctest::Approx(double(0.1f) * n).epsilon(1e-7));
  CHECK(mean(tenth).item<float>() == doctest::Approx(0.1).epsilon(1e-6));
  // long row along dim 0 of a transposed view
  Tensor col = ones({n, 3}, DType::Float64).t();
  check_close(sum(col, {1}), {double(n), double(n), double(n)});
  check_close(logsumexp(zeros({1, n}, DType::Float64), 1), {std::log(double(n))});
  Tensor sm = softmax(zeros({n}, DType::Float32), 0);
  CHECK(sum(sm).item<float>() == doctest::Approx(1.0).epsilon(1e-5));
  CHECK(sm.to_vector<float>()[n - 1] == doctest::Approx(1.0 / double(n)).epsilon(1e-6));
}

TEST_CASE("reduce: sum_to is the adjoint of broadcasting") {
  Tensor x = dvec({1, 2, 3, 4, 5, 6}, {2, 3});
  check_close(sum_to(x, {3}), {5, 7, 9});
  check_close(sum_to(x, {2, 1}), {6, 15});
  check_close(sum_to(x, {1, 1}), {21});
  CHECK(sum_to(x, {2, 3}).shape() == Shape{2, 3});
  CHECK_THROWS_WITH_AS(sum_to(x, {4}), doctest::Contains("sum_to"), colt5::Error);
}

// ---------------------------------------------------------------------------------------------
// softmax / log_softmax
// ---------------------------------------------------------------------------------------------

TEST_CASE("softmax: [0, ln 2, ln 3] -> [1/6, 2/6, 3/6]") {
  const std::vector<double> row = {0, std::log(2.0), std::log(3.0)};
  Tensor x = dvec(row, {3});
  check_close(softmax(x, 0), {1.0 / 6, 2.0 / 6, 3.0 / 6});
  check_close(softmax(x, -1), {1.0 / 6, 2.0 / 6, 3.0 / 6});
  check_close(log_softmax(x, 0), {std::log(1.0 / 6), std::log(2.0 / 6), std::log(3.0 / 6)});
  // float32
  check_close(softmax(x.to(DType::Float32), 0), {1.0 / 6, 2.0 / 6, 3.0 / 6}, 1e-6);
  CHECK(softmax(x.to(DType::Float32), 0).dtype() == DType::Float32);
  // stable: shifting the row by 1000 changes nothing
  check_close(softmax(x + 1000.0, 0), {1.0 / 6, 2.0 / 6, 3.0 / 6});
  check_close(log_softmax(x - 1000.0, 0), {std::log(1.0 / 6), std::log(2.0 / 6), std::log(3.0 / 6)});
  // along dim 0 of a column, along the middle dim of a 3-D tensor, and of a transposed view
  Tensor col = dvec(row, {3, 1});
  check_close(softmax(col, 0), {1.0 / 6, 2.0 / 6, 3.0 / 6});
  check_close(softmax(col, 1), {1, 1, 1});
  Tensor mid = dvec(row, {1, 3, 1});
  check_close(softmax(mid, 1), {1.0 / 6, 2.0 / 6, 3.0 / 6});
  // rows of t are the columns of [[0, 0], [ln 2, 0], [ln 3, 0]]
  Tensor t = dvec({0, 0, std::log(2.0), 0, std::log(3.0), 0}, {3, 2}).t();
  check_close(softmax(t, 1), {1.0 / 6, 2.0 / 6, 3.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 3});
  // a 0-dim tensor is a row of one
  CHECK(softmax(scalar_tensor(4.0, DType::Float64), 0).item<double>() == 1.0);
  CHECK(log_softmax(scalar_tensor(4.0, DType::Float64), -1).item<double>() == 0.0);
}

TEST_CASE("softmax: -inf entries, all -inf rows, size-1 and empty dims") {
  const double inf = INFINITY;
  Tensor x = dvec({0, -inf, 0}, {3}, true);
  check_close(softmax(x, 0), {0.5, 0, 0.5});
  std::vector<double> ls = log_softmax(x, 0).to_vector<double>();
  CHECK(ls[0] == doctest::Approx(std::log(0.5)));
  CHECK((std::isinf(ls[1]) && ls[1] < 0));
  sum(softmax(x, 0) * dvec({1, 2, 3}, {3})).backward();
  // y * (g - y.g) with y = [1/2, 0, 1/2], y.g = 2: [-1/2, 0, 1/2]
  check_close(x.grad(), {-0.5, 0, 0.5});
  // an all -inf row: NaN, as torch (documented in autograd/ops/softmax.h)
  std::vector<double> nan_row = softmax(dvec({-inf, -inf}, {2}), 0).to_vector<double>();
  CHECK(std::isnan(nan_row[0]));
  // size-1 softmax dim: 1, log 0, zero gradient
  Tensor one = dvec({3, -2}, {2, 1}, true);
  check_close(softmax(one, 1), {1, 1});
  check_close(log_softmax(one, 1), {0, 0});
  sum(softmax(one, 1) * 5.0).backward();
  check_close(one.grad(), {0, 0});
  // empty tensors give empty outputs
  CHECK(softmax(zeros({0, 4}, DType::Float64), 1).shape() == Shape{0, 4});
  CHECK(log_softmax(zeros({3, 0}, DType::Float64), 1).shape() == Shape{3, 0});
}

TEST_CASE("softmax: backward kernels agree with the formulas") {
  // x = [0, ln 2, ln 3], y = [1, 2, 3] / 6, g = [1, 0, -1]
  Tensor x = dvec({0, std::log(2.0), std::log(3.0)}, {3}, true);
  Tensor g = dvec({1, 0, -1}, {3});
  softmax(x, 0).backward(g);
  // y.g = (1 - 3) / 6 = -1/3; gx = y * (g + 1/3)
  check_close(x.grad(), {1.0 / 6 * (4.0 / 3), 2.0 / 6 * (1.0 / 3), 3.0 / 6 * (-2.0 / 3)});
  Tensor x2 = dvec({0, std::log(2.0), std::log(3.0)}, {3}, true);
  log_softmax(x2, 0).backward(dvec({1, 1, 2}, {3}));
  // g - softmax * sum(g) = [1, 1, 2] - [1, 2, 3] / 6 * 4
  check_close(x2.grad(), {1 - 4.0 / 6, 1 - 8.0 / 6, 2 - 12.0 / 6});
  // a non-contiguous upstream gradient (expanded) is handled
  Tensor x3 = dvec({0, std::log(2.0), std::log(3.0)}, {1, 3}, true);
  Tensor gexp = dvec({2}, {1, 1}).expand({1, 3});
  log_softmax(x3, 1).backward(gexp);
  check_close(x3.grad(), {2 - 6.0 / 6, 2 - 12.0 / 6, 2 - 18.0 / 6});
}

// ---------------------------------------------------------------------------------------------
// cross_entropy
// ---------------------------------------------------------------------------------------------

TEST_CASE("cross_entropy: a tiny known case with ignore_index") {
  // row 0: softmax [1, 2, 3]/6, target 2 -> -log(1/2) = ln 2
  // row 1: softmax [1, 1, 1]/3, target 0 -> ln 3
  // row 2: ignored
  const double l2 = std::log(2.0), l3 = std::log(3.0);
  Tensor logits = dvec({0, l2, l3, 1, 1, 1, 5, 0, 0}, {3, 3}, true);
  Tensor targets = ivec({2, 0, -100});
  Tensor loss = cross_entropy(logits, targets);
  CHECK(loss.dim() == 0);
  CHECK(loss.item<double>() == doctest::Approx((l2 + l3) / 2));
  loss.backward();
  // (softmax - onehot) / count, count = 2; zero on the ignored row
  check_close(logits.grad(), {1.0 / 12, 1.0 / 6, -1.0 / 4, -1.0 / 3, 1.0 / 6, 1.0 / 6, 0, 0, 0});

  // float32 agrees
  Tensor lf = logits.detach().to(DType::Float32);
  CHECK(cross_entropy(lf, targets).item<float>() == doctest::Approx((l2 + l3) / 2).epsilon(1e-6));
  // a custom ignore_index (here a valid class: rows with target 0 are skipped)
  CHECK(cross_entropy(logits.detach(), ivec({2, 0, 1}), 0).item<double>() ==
        doctest::Approx((l2 + (5 + std::log(1 + 2 * std::exp(-5.0)))) / 2));
  // stable for large logits
  Tensor big = dvec({1000, 1000 + l2, 1000 + l3}, {1, 3});
  CHECK(cross_entropy(big, ivec({2})).item<double>() == doctest::Approx(l2));
  CHECK(cross_entropy(-big, ivec({0})).item<double>() == doctest::Approx(std::log(11.0 / 6)));
}

TEST_CASE("cross_entropy: every row ignored gives NaN (0/0, as torch) and a zero gradient") {
  Tensor logits = dvec({1, 2, 3, 4}, {2, 2}, true);
  Tensor loss = cross_entropy(logits, ivec({-100, -100}));
  CHECK(std::isnan(loss.item<double>()));
  loss.backward();
  check_close(logits.grad(), {0, 0, 0, 0});
  // no rows at all
  CHECK(std::isnan(cross_entropy(zeros({0, 3}, DType::Float64), from_vector(std::vector<int64_t>{}, {0}))
                       .item<double>()));
}

TEST_CASE("cross_entropy: equals -mean(log_softmax[n, t_n]) on a transposed input") {
  Generator gen(3);
  Tensor base = randn({7, 5}, DType::Float64, kCPU, &gen);  // [C, N]
  Tensor logits = base.t();                                 // [N=5, C=7], transposed in memory
  std::vector<int64_t> t = {3, -100, 0, 6, 2};
  Tensor loss = cross_entropy(logits, ivec(t));
  std::vector<double> ls = log_softmax(logits, 1).to_vector<double>();
  double acc = 0;
  int count = 0;
  for (size_t n = 0; n < t.size(); ++n)
    if (t[n] != -100) acc -= ls[n * 7 + size_t(t[n])], ++count;
  CHECK(loss.item<double>() == doctest::Approx(acc / count).epsilon(1e-12));
}

// ---------------------------------------------------------------------------------------------
// Bad inputs
// ---------------------------------------------------------------------------------------------

TEST_CASE("bad input: reductions") {
  Tensor x = zeros({2, 3}, DType::Float64);
  CHECK_THROWS_WITH_AS(sum(x, {2}), doctest::Contains("sum: argument 'dims'"), colt5::Error);
  CHECK_THROWS_WITH_AS(sum(x, {1, -1}), doctest::Contains("twice"), colt5::Error);
  CHECK_THROWS_WITH_AS(mean(x, {-3}), doctest::Contains("mean: argument 'dims'"), colt5::Error);
  CHECK_THROWS_WITH_AS(max(x, 5), doctest::Contains("max: argument"), colt5::Error);
  CHECK_THROWS_WITH_AS(argmax(x, -3), doctest::Contains("argmax: argument"), colt5::Error);
  CHECK_THROWS_WITH_AS(logsumexp(x, 2), doctest::Contains("logsumexp: argument"), colt5::Error);
  Tensor ix = zeros({2, 3}, DType::Int64);
  CHECK_THROWS_WITH_AS(logsumexp(ix, 0), doctest::Contains("argument 'x'"), colt5::Error);
  CHECK_THROWS_WITH_AS(mean(ix), doctest::Contains("argument 'x'"), colt5::Error);
  CHECK_THROWS_AS(sum(zeros({2}, DType::Bool)), colt5::Error);
  CHECK_THROWS_AS(sum(Tensor()), colt5::Error);
}

TEST_CASE("bad input: softmax / log_softmax") {
  Tensor ix = zeros({2, 3}, DType::Int64);
  CHECK_THROWS_WITH_AS(softmax(ix, 1), doctest::Contains("softmax: argument 'x'"), colt5::Error);
  CHECK_THROWS_WITH_AS(log_softmax(ix, 1), doctest::Contains("log_softmax: argument 'x'"), colt5::Error);
  CHECK_THROWS_AS(softmax(zeros({2}, DType::Bool), 0), colt5::Error);
  Tensor x = zeros({2, 3}, DType::Float64);
  CHECK_THROWS_WITH_AS(softmax(x, 2), doctest::Contains("softmax: argument 'dim'"), colt5::Error);
  CHECK_THROWS_WITH_AS(log_softmax(x, -3), doctest::Contains("log_softmax: argument 'dim'"), colt5::Error);
  CHECK_THROWS_AS(softmax(Tensor(), 0), colt5::Error);
  // the raw backward checks g against y
  Tensor y = ops::softmax(x, 1, false);
  CHECK_THROWS_WITH_AS(ops::softmax_backward(y, zeros({3, 2}, DType::Float64), 1, false),
                       doctest::Contains("argument 'g'"), colt5::Error);
  CHECK_THROWS_AS(ops::softmax_backward(y, zeros({2, 3}, DType::Float32), 1, false), colt5::Error);
}

TEST_CASE("bad input: cross_entropy") {
  Tensor logits = zeros({3, 4}, DType::Float64);
  Tensor targets = ivec({0, 1, 2});
  CHECK_NOTHROW(cross_entropy(logits, targets));
  // logits: floating, 2-D
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({3, 4}, DType::Int64), targets), doctest::Contains("argument 'logits'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({12}, DType::Float64), targets), doctest::Contains("argument 'logits'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({3, 4, 1}, DType::Float64), targets),
                       doctest::Contains("argument 'logits'"), colt5::Error);
  // targets: int64, [N]
  CHECK_THROWS_WITH_AS(cross_entropy(logits, zeros({3}, DType::Float64)), doctest::Contains("argument 'targets'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, zeros({3}, DType::Int32)), doctest::Contains("argument 'targets'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, ivec({0, 1})), doctest::Contains("argument 'targets'"), colt5::Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, zeros({3, 1}, DType::Int64)), doctest::Contains("argument 'targets'"),
                       colt5::Error);
  CHECK_THROWS_AS(cross_entropy(logits, Tensor()), colt5::Error);
  // targets outside [0, C) that are not ignore_index name the row and the value
  CHECK_THROWS_WITH_AS(cross_entropy(logits, ivec({0, 4, 1})), doctest::Contains("got 4 at row 1"), colt5::Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, ivec({0, 1, -1})), doctest::Contains("got -1 at row 2"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, ivec({-100, 1, 2}), -1), doctest::Contains("got -100 at row 0"),
                       colt5::Error);
  // also with grad on (the backward kernel checks too, through the raw op)
  Tensor lg = zeros({3, 4}, DType::Float64).requires_grad_();
  CHECK_THROWS_AS(cross_entropy(lg, ivec({7, 0, 0})), colt5::Error);
  CHECK_THROWS_WITH_AS(ops::cross_entropy_backward(logits, ivec({0, 9, 0}), scalar_tensor(1.0, DType::Float64), -100),
                       doctest::Contains("got 9 at row 1"), colt5::Error);
  CHECK_THROWS_WITH_AS(ops::cross_entropy_backward(logits, targets, scalar_tensor(1.0, DType::Float32), -100),
                       doctest::Contains("'scale'"), colt5::Error);
}
