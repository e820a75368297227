// Hand-computed forward values of the elementwise ops (the gradients are gradchecked through
// tests/cases/elementwise.cpp): unary math, comparisons and logical ops (bool results),
// where / masked_fill, NaN propagation of maximum / minimum, broadcasting, int64 arithmetic,
// and the errors for bad arguments.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "autograd/ops.h"

using namespace colt5;

namespace {

using V = std::vector<double>;
using B = std::vector<bool>;
using I = std::vector<int64_t>;

Tensor vec(const V& v, const Shape& shape) { return from_vector(v, shape); }
Tensor vec(const V& v) { return from_vector(v, {int64_t(v.size())}); }
Tensor bools(const B& v, const Shape& shape) { return from_vector(v, shape); }

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Element-by-element comparison with a relative tolerance.
void check_close(const Tensor& t, const V& expected, double eps = 1e-14) {
  std::vector<double> got = t.to(DType::Float64).to_vector<double>();
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i] == doctest::Approx(expected[i]).epsilon(eps));
  }
}

}  // namespace

TEST_CASE("elementwise values: gelu (erf form), sigmoid, tanh, exp, log") {
  check_close(gelu(vec({1.0})), {0.8413447460685429});
  check_close(gelu(vec({-1.0})), {-0.15865525393145707});
  check_close(gelu(vec({0.0, 3.0})), {0.0, 2.99595030590511});
  check_close(sigmoid(vec({0.0, 2.0, -2.0})), {0.5, 0.8807970779778823, 0.11920292202211755});
  check_close(tanh(vec({0.0, 0.5})), {0.0, 0.46211715726000974});
  check_close(exp(vec({0.0, 1.0})), {1.0, 2.718281828459045});
  check_close(log(vec({1.0, 2.718281828459045})), {0.0, 1.0});
  // float32 instantiation of the same math
  Tensor g32 = gelu(from_vector(std::vector<float>{1.0f}, {1}));
  CHECK(g32.dtype() == DType::Float32);
  CHECK(g32.item<float>() == doctest::Approx(0.8413447460685429).epsilon(1e-6));
}

TEST_CASE("elementwise values: pow, sqrt, rsqrt, clamp, relu, abs, neg, scalars") {
  check_close(pow(vec({2.0, 9.0, -3.0}), 3.0), {8.0, 729.0, -27.0});
  check_close(pow(vec({4.0, 9.0}), 0.5), {2.0, 3.0});
  check_close(pow(vec({4.0}), -1.5), {0.125});
  check_close(sqrt(vec({4.0, 2.25, 0.0})), {2.0, 1.5, 0.0});
  check_close(rsqrt(vec({4.0, 0.25})), {0.5, 2.0});
  check_close(clamp(vec({-2.0, -1.0, 0.5, 1.0, 3.0}), -1.0, 1.0), {-1.0, -1.0, 0.5, 1.0, 1.0});
  check_close(clamp_min(vec({-2.0, 0.5}), 0.0), {0.0, 0.5});
  check_close(clamp_max(vec({-2.0, 0.5}), 0.0), {-2.0, 0.0});
  check_close(relu(vec({-1.5, 0.0, 2.5})), {0.0, 0.0, 2.5});
  check_close(abs(vec({-1.5, 0.0, 2.5})), {1.5, 0.0, 2.5});
  check_close(neg(vec({-1.5, 2.5})), {1.5, -2.5});
  check_close(vec({1.0, 2.0}) + 0.5, {1.5, 2.5});
  check_close(3.0 - vec({1.0, 2.0}), {2.0, 1.0});
  check_close(vec({1.0, 2.0}) * -2.0, {-2.0, -4.0});
  check_close(vec({1.0, 2.0}) / 4.0, {0.25, 0.5});
  check_close(vec({1.0, 6.0}) / vec({4.0, -3.0}), {0.25, -2.0});
}

TEST_CASE("comparisons: bool results, with broadcasting and with a scalar") {
  Tensor a = vec({1, 2, 3}), b = vec({2, 2, 2});
  Tensor r = eq(a, b);
  CHECK(r.dtype() == DType::Bool);
  CHECK(r.shape() == Shape{3});
  CHECK(r.to_vector<bool>() == B{false, true, false});
  CHECK(ne(a, b).to_vector<bool>() == B{true, false, true});
  CHECK(lt(a, b).to_vector<bool>() == B{true, false, false});
  CHECK(le(a, b).to_vector<bool>() == B{true, true, false});
  CHECK(gt(a, b).to_vector<bool>() == B{false, false, true});
  CHECK(ge(a, b).to_vector<bool>() == B{false, true, true});

  // [2, 1] vs [3] -> [2, 3]
  Tensor col = vec({1, 3}, {2, 1}), row = vec({1, 2, 3});
  Tensor lt_b = lt(col, row);
  CHECK(lt_b.shape() == Shape{2, 3});
  CHECK(lt_b.to_vector<bool>() == B{false, true, true, false, false, false});
  CHECK(eq(col, row).to_vector<bool>() == B{true, false, false, false, false, true});

  // against a scalar
  CHECK(gt(a, 1.5).to_vector<bool>() == B{false, true, true});
  CHECK(ge(a, 2.0).to_vector<bool>() == B{false, true, true});
  CHECK(lt(a, 2.0).to_vector<bool>() == B{true, false, false});
  CHECK(le(a, 2.0).to_vector<bool>() == B{true, true, false});
  CHECK(eq(a, 3.0).to_vector<bool>() == B{false, false, true});

  // NaN compares unequal to everything, itself included
  Tensor n = vec({kNaN, 1.0});
  CHECK(eq(n, n).to_vector<bool>() == B{false, true});
  CHECK(ne(n, n).to_vector<bool>() == B{true, false});
  CHECK(lt(n, 2.0).to_vector<bool>() == B{false, true});

  // int64 comparisons
  CHECK(lt(from_vector(I{1, 5}, {2}), from_vector(I{3, 3}, {2})).to_vector<bool>() == B{true, false});
}

TEST_CASE("logical_and / logical_or / logical_not") {
  Tensor p = bools({true, true, false, false}, {4}), q = bools({true, false, true, false}, {4});
  CHECK(logical_and(p, q).to_vector<bool>() == B{true, false, false, false});
  CHECK(logical_or(p, q).to_vector<bool>() == B{true, true, true, false});
  CHECK(logical_not(p).to_vector<bool>() == B{false, false, true, true});
  CHECK(logical_and(p, q).dtype() == DType::Bool);
  // broadcasting: [2, 1] and [2] -> [2, 2]
  Tensor c = bools({true, false}, {2, 1}), r = bools({true, false}, {2});
  Tensor both = logical_and(c, r);
  CHECK(both.shape() == Shape{2, 2});
  CHECK(both.to_vector<bool>() == B{true, false, false, false});
  CHECK(logical_or(c, r).to_vector<bool>() == B{true, true, true, false});
}

TEST_CASE("where broadcasts cond, a and b together") {
  Tensor cond = bools({true, false}, {2, 1});  // [2, 1]
  Tensor a = vec({1, 2, 3}, {1, 3});             // [1, 3]
  Tensor b = vec({-1});                           // [1]
  Tensor out = where(cond, a, b);
  CHECK(out.shape() == Shape{2, 3});
  CHECK(out.to_vector<double>() == V{1, 2, 3, -1, -1, -1});

  // cond [3] against a [2, 1] and b [2, 3]
  Tensor c3 = bools({false, true, false}, {3});
  Tensor out2 = where(c3, vec({10, 20}, {2, 1}), vec({1, 2, 3, 4, 5, 6}, {2, 3}));
  CHECK(out2.to_vector<double>() == V{1, 10, 3, 4, 20, 6});
}

TEST_CASE("masked_fill with a broadcast mask") {
  Tensor x = vec({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor out = masked_fill(x, bools({true, false, true}, {3}), -5.0);
  CHECK(out.shape() == Shape{2, 3});
  CHECK(out.to_vector<double>() == V{-5, 1, -5, -5, 4, -5});
  Tensor rows = masked_fill(x, bools({false, true}, {2, 1}), 9.0);
  CHECK(rows.to_vector<double>() == V{0, 1, 2, 9, 9, 9});
  CHECK(masked_fill(x, bools({false, true}, {2, 1}), -INFINITY).to_vector<double>()[3] == -INFINITY);
}

TEST_CASE("maximum / minimum, NaN propagates") {
  Tensor a = vec({1, kNaN, 3, 5}), b = vec({2, 0, kNaN, 5});
  std::vector<double> mx = maximum(a, b).to_vector<double>();
  CHECK(mx[0] == 2);
  CHECK(std::isnan(mx[1]));
  CHECK(std::isnan(mx[2]));
  CHECK(mx[3] == 5);
  std::vector<double> mn = minimum(a, b).to_vector<double>();
  CHECK(mn[0] == 1);
  CHECK(std::isnan(mn[1]));
  CHECK(std::isnan(mn[2]));
  CHECK(mn[3] == 5);
  // broadcasting [2, 1] and [3]
  CHECK(maximum(vec({0, 2}, {2, 1}), vec({1, 2, 3})).to_vector<double>() == V{1, 2, 3, 2, 2, 3});
  CHECK(minimum(vec({0, 2}, {2, 1}), vec({1, 2, 3})).to_vector<double>() == V{0, 0, 0, 1, 2, 2});
}

TEST_CASE("broadcasting [2, 1, 3] + [4, 1] -> [2, 4, 3]") {
  // a[i][0][k] = 10 i + k, b[j][0] = 100 j  =>  out[i][j][k] = 100 j + 10 i + k
  Tensor a = vec({0, 1, 2, 10, 11, 12}, {2, 1, 3});
  Tensor b = vec({0, 100, 200, 300}, {4, 1});
  Tensor out = a + b;
  CHECK(out.shape() == Shape{2, 4, 3});
  V expected;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 3; ++k) expected.push_back(100.0 * j + 10.0 * i + k);
  CHECK(out.to_vector<double>() == expected);
  // the same with the operands swapped, and with mul / sub
  CHECK((b + a).to_vector<double>() == expected);
  Tensor prod = a * b;
  CHECK(prod.shape() == Shape{2, 4, 3});
  CHECK(prod.to_vector<double>()[3 * 1 + 1] == 100.0 * 1);     // [0][1][1]: (0 + 1) * 100
  CHECK(prod.to_vector<double>()[12 + 3 * 3 + 2] == 12 * 300.0);  // [1][3][2]: 12 * 300
  CHECK((a - b).to_vector<double>()[12 + 3 * 2 + 0] == 10.0 - 200.0);
  // a transposed (non-contiguous) operand: [3, 2]^T -> [2, 3] plus [3]
  Tensor t = vec({1, 2, 3, 4, 5, 6}, {3, 2}).t();  // [[1, 3, 5], [2, 4, 6]]
  CHECK((t + vec({10, 20, 30})).to_vector<double>() == V{11, 23, 35, 12, 24, 36});
}

TEST_CASE("int64 arithmetic") {
  Tensor a = from_vector(I{1, 2, 3}, {3}), b = from_vector(I{10, 20, 30}, {3});
  Tensor s = a + b;
  CHECK(s.dtype() == DType::Int64);
  CHECK(s.to_vector<int64_t>() == I{11, 22, 33});
  CHECK((a * b).to_vector<int64_t>() == I{10, 40, 90});
  CHECK((b - a).to_vector<int64_t>() == I{9, 18, 27});
  // broadcasting [3, 1] * [3]
  CHECK((from_vector(I{1, 2, 3}, {3, 1}) * b).to_vector<int64_t>() == I{10, 20, 30, 20, 40, 60, 30, 60, 90});
  CHECK(neg(a).to_vector<int64_t>() == I{-1, -2, -3});
}

TEST_CASE("elementwise: bad arguments") {
  Tensor a = vec({1, 2, 3, 4, 5, 6}, {2, 3});
  // impossible broadcast: the message names both shapes
  CHECK_THROWS_AS(a + vec({1, 2, 3, 4}), colt5::Error);
  CHECK_THROWS_WITH_AS(a + vec({1, 2, 3, 4}), doctest::Contains("[2, 3]"), colt5::Error);
  CHECK_THROWS_WITH_AS(a + vec({1, 2, 3, 4}), doctest::Contains("[4]"), colt5::Error);
  CHECK_THROWS_WITH_AS(where(bools({true, false}, {2}), a, a), doctest::Contains("where"), colt5::Error);

  // float ops on int64
  Tensor ints = from_vector(I{1, 2}, {2});
  CHECK_THROWS_WITH_AS(exp(ints), doctest::Contains("exp: argument 'x'"), colt5::Error);
  CHECK_THROWS_WITH_AS(sqrt(ints), doctest::Contains("argument 'x'"), colt5::Error);
  CHECK_THROWS_WITH_AS(gelu(ints), doctest::Contains("int64"), colt5::Error);
  CHECK_THROWS_AS(exp(bools({true}, {1})), colt5::Error);

  // bool masks expected
  CHECK_THROWS_WITH_AS(where(vec({1, 0, 1}), a, a), doctest::Contains("where: argument 'cond'"), colt5::Error);
  CHECK_THROWS_WITH_AS(masked_fill(a, from_vector(I{1, 0, 1}, {3}), 0.0), doctest::Contains("argument 'mask'"),
                       colt5::Error);
  // a mask that does not broadcast to x's shape (it would grow x)
  CHECK_THROWS_WITH_AS(masked_fill(vec({1, 2, 3}), bools({true, false, true, false, true, false}, {2, 3}), 0.0),
                       doctest::Contains("'mask'"), colt5::Error);

  // mixed dtypes
  Tensor f32 = from_vector(std::vector<float>{1, 2}, {2});
  Tensor f64 = vec({1, 2});
  CHECK_THROWS_WITH_AS(f32 + f64, doctest::Contains("float32"), colt5::Error);
  CHECK_THROWS_WITH_AS(f32 + f64, doctest::Contains("float64"), colt5::Error);
  CHECK_THROWS_AS(maximum(f32, f64), colt5::Error);
  CHECK_THROWS_AS(where(bools({true, false}, {2}), f32, f64), colt5::Error);
  CHECK_THROWS_AS(lt(f64, ints), colt5::Error);

  // logical ops want bool
  CHECK_THROWS_WITH_AS(logical_and(f64, f64), doctest::Contains("logical_and: argument 'a'"), colt5::Error);
  CHECK_THROWS_AS(logical_or(f64, f64), colt5::Error);
  CHECK_THROWS_WITH_AS(logical_not(f64), doctest::Contains("argument 'x'"), colt5::Error);
  // arithmetic refuses bool
  CHECK_THROWS_AS(bools({true}, {1}) + bools({false}, {1}), colt5::Error);

  // clamp bounds in the wrong order
  CHECK_THROWS_WITH_AS(clamp(f64, 1.0, -1.0), doctest::Contains("'lo'"), colt5::Error);
  // undefined operand
  CHECK_THROWS_AS(add(Tensor(), f64), colt5::Error);
}
