// Hand-computed values for topk, sort and cumsum: the tie rule (lower index first), NaN
// placement, stability, the cumsum gradient, and the errors for bad arguments. Gradients on
// random inputs are covered by the gradcheck cases in tests/cases/sort.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "autograd/ops.h"

using namespace colt5;

namespace {

using V = std::vector<double>;
using I = std::vector<int64_t>;

Tensor vec(const V& v, const Shape& shape) { return from_vector(v, shape); }
Tensor vec(const V& v) { return from_vector(v, {int64_t(v.size())}); }

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace

TEST_CASE("topk: largest first, ties broken by the lower index") {
  ValuesIndices r = topk(vec({1, 3, 2, 3}), 2);
  CHECK(r.values.shape() == Shape{2});
  CHECK(r.values.dtype() == DType::Float64);
  CHECK(r.indices.dtype() == DType::Int64);
  CHECK(r.values.to_vector<double>() == V{3, 3});
  CHECK(r.indices.to_vector<int64_t>() == I{1, 3});

  ValuesIndices all = topk(vec({1, 3, 2, 3}), 4);
  CHECK(all.values.to_vector<double>() == V{3, 3, 2, 1});
  CHECK(all.indices.to_vector<int64_t>() == I{1, 3, 2, 0});
}

TEST_CASE("topk: smallest first, ties broken by the lower index") {
  ValuesIndices r = topk(vec({1, 3, 2, 3, 1}), 3, -1, /*largest=*/false);
  CHECK(r.values.to_vector<double>() == V{1, 1, 2});
  CHECK(r.indices.to_vector<int64_t>() == I{0, 4, 2});

  ValuesIndices one = topk(vec({4, -2, 7, -2}), 1, 0, false);
  CHECK(one.values.to_vector<double>() == V{-2});
  CHECK(one.indices.to_vector<int64_t>() == I{1});
}

TEST_CASE("topk: float32 gives the same order as float64") {
  Tensor x = from_vector(std::vector<float>{0.5f, -1.f, 2.f, 0.5f, 3.f}, {5});
  ValuesIndices r = topk(x, 3);
  CHECK(r.values.dtype() == DType::Float32);
  CHECK(r.values.to_vector<float>() == std::vector<float>{3.f, 2.f, 0.5f});
  CHECK(r.indices.to_vector<int64_t>() == I{4, 2, 0});
}

TEST_CASE("topk along the middle dim of a 3-D tensor, and its gradient") {
  // x[o][j][i], shape [2, 3, 2]; lines run over j.
  Tensor x = vec({0, 5, 1, 4, 2, 3,  //
                  9, 6, 7, 8, 8, 7},
                 {2, 3, 2})
                 .requires_grad_();
  ValuesIndices r = topk(x, 2, 1);
  CHECK(r.values.shape() == Shape{2, 2, 2});
  CHECK(r.indices.shape() == Shape{2, 2, 2});
  // o = 0: line i=0 is [0, 1, 2] -> 2 (j=2), 1 (j=1); line i=1 is [5, 4, 3] -> 5 (j=0), 4 (j=1)
  // o = 1: line i=0 is [9, 7, 8] -> 9 (j=0), 8 (j=2); line i=1 is [6, 8, 7] -> 8 (j=1), 7 (j=2)
  CHECK(r.values.to_vector<double>() == V{2, 5, 1, 4, 9, 8, 8, 7});
  CHECK(r.indices.to_vector<int64_t>() == I{2, 0, 1, 1, 0, 1, 2, 2});
  CHECK(r.values.requires_grad());
  CHECK_FALSE(r.indices.requires_grad());

  // g = [10, 20, 30, 40, 50, 60, 70, 80] on the values goes back to the picked positions.
  sum(r.values * vec({10, 20, 30, 40, 50, 60, 70, 80}, {2, 2, 2})).backward();
  REQUIRE(x.grad().defined());
  CHECK(x.grad().to_vector<double>() == V{0, 20, 30, 40, 10, 0,  //
                                          50, 0, 0, 60, 70, 80});
}

TEST_CASE("topk along dim 0 of a transposed input") {
  Tensor base = vec({3, 1, 4, 1, 5, 9}, {2, 3});  // [[3, 1, 4], [1, 5, 9]]
  Tensor x = base.t();                            // [3, 2]: [[3, 1], [1, 5], [4, 9]]
  ValuesIndices r = topk(x, 2, 0);
  CHECK(r.values.shape() == Shape{2, 2});
  CHECK(r.values.to_vector<double>() == V{4, 9, 3, 5});
  CHECK(r.indices.to_vector<int64_t>() == I{2, 2, 0, 1});
}

TEST_CASE("topk: k = 0 gives empty outputs (and a zero gradient)") {
  Tensor x = vec({1, 2, 3, 4, 5, 6}, {2, 3}).requires_grad_();
  ValuesIndices r = topk(x, 0);
  CHECK(r.values.shape() == Shape{2, 0});
  CHECK(r.indices.shape() == Shape{2, 0});
  CHECK(r.indices.dtype() == DType::Int64);
  CHECK(r.values.numel() == 0);
  sum(r.values).backward();
  REQUIRE(x.grad().defined());
  CHECK(x.grad().to_vector<double>() == V(6, 0.0));
}

TEST_CASE("topk and sort of a 0-dim tensor") {
  Tensor x = scalar_tensor(2.5, DType::Float64);
  ValuesIndices r = topk(x, 1);
  CHECK(r.values.dim() == 0);
  CHECK(r.values.item<double>() == 2.5);
  CHECK(r.indices.item<int64_t>() == 0);
  ValuesIndices s = sort(x, 0);
  CHECK(s.values.item<double>() == 2.5);
  CHECK(s.indices.item<int64_t>() == 0);
}

TEST_CASE("topk agrees with the first k of a descending sort (with many ties)") {
  Generator gen(5);
  // Values from {0, ..., 4}: lots of ties across 9 elements per line.
  Tensor x = randint(0, 5, {4, 9, 3}, DType::Int64, kCPU, &gen).to(DType::Float64).transpose(0, 2);  // [3, 9, 4]
  for (int64_t k : {1, 4, 9}) {
    for (bool largest : {true, false}) {
      CAPTURE(k);
      CAPTURE(largest);
      ValuesIndices t = topk(x, k, 1, largest);
      ValuesIndices s = sort(x, 1, largest);
      CHECK(t.values.to_vector<double>() == s.values.narrow(1, 0, k).to_vector<double>());
      CHECK(t.indices.to_vector<int64_t>() == s.indices.narrow(1, 0, k).to_vector<int64_t>());
    }
  }
}

TEST_CASE("sort is stable in both directions") {
  Tensor x = vec({2, 1, 2, 1, 0});
  ValuesIndices up = sort(x);
  CHECK(up.values.to_vector<double>() == V{0, 1, 1, 2, 2});
  CHECK(up.indices.to_vector<int64_t>() == I{4, 1, 3, 0, 2});
  ValuesIndices down = sort(x, -1, /*descending=*/true);
  CHECK(down.values.to_vector<double>() == V{2, 2, 1, 1, 0});
  CHECK(down.indices.to_vector<int64_t>() == I{0, 2, 1, 3, 4});
}

TEST_CASE("sort of a sliced input along dim 0, and of int64") {
  Tensor base = vec({5, 0, 3, 0, 4, 0, 3, 0}, {8});
  Tensor strided = Tensor::make_view(base, {4}, {2}, 0);  // every other element: [5, 3, 4, 3]
  ValuesIndices s = sort(strided, 0);
  CHECK(s.values.to_vector<double>() == V{3, 3, 4, 5});
  CHECK(s.indices.to_vector<int64_t>() == I{1, 3, 2, 0});

  ValuesIndices si = sort(from_vector(I{7, -3, 7, 0}, {4}), 0, true);
  CHECK(si.values.dtype() == DType::Int64);
  CHECK(si.values.to_vector<int64_t>() == I{7, 7, 0, -3});
  CHECK(si.indices.to_vector<int64_t>() == I{0, 2, 3, 1});
}

TEST_CASE("sort and topk: NaN is larger than every number") {
  Tensor x = vec({1, kNaN, -INFINITY, 0, kNaN});
  ValuesIndices up = sort(x);
  std::vector<double> v = up.values.to_vector<double>();
  CHECK(v[0] == -INFINITY);
  CHECK(v[1] == 0);
  CHECK(v[2] == 1);
  CHECK(std::isnan(v[3]));
  CHECK(std::isnan(v[4]));
  CHECK(up.indices.to_vector<int64_t>() == I{2, 3, 0, 1, 4});

  ValuesIndices down = sort(x, 0, true);
  CHECK(down.indices.to_vector<int64_t>() == I{1, 4, 0, 3, 2});

  ValuesIndices t = topk(x, 1);
  CHECK(std::isnan(t.values.item<double>()));
  CHECK(t.indices.item<int64_t>() == 1);
  ValuesIndices small = topk(x, 2, 0, false);
  CHECK(small.indices.to_vector<int64_t>() == I{2, 3});
}

TEST_CASE("sort gradient: each sorted value's gradient returns to its source") {
  Tensor x = vec({0.3, -1.0, 2.0}).requires_grad_();
  ValuesIndices s = sort(x);  // [-1, 0.3, 2], indices [1, 0, 2]
  sum(s.values * vec({1, 2, 3})).backward();
  CHECK(x.grad().to_vector<double>() == V{2, 1, 3});
}

TEST_CASE("cumsum: prefix sums and the reverse-cumsum gradient") {
  Tensor x = vec({1, 2, 3}).requires_grad_();
  Tensor y = cumsum(x, 0);
  CHECK(y.to_vector<double>() == V{1, 3, 6});
  sum(y).backward();
  CHECK(x.grad().to_vector<double>() == V{3, 2, 1});

  // dx_i = sum_{j >= i} g_j
  Tensor x2 = vec({1, 2, 3}).requires_grad_();
  cumsum(x2, -1).backward(vec({1, 10, 100}));
  CHECK(x2.grad().to_vector<double>() == V{111, 110, 100});
}

TEST_CASE("cumsum along each dim, of a transposed input, and of int64 / float32") {
  Tensor x = vec({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(cumsum(x, 0).to_vector<double>() == V{1, 2, 3, 5, 7, 9});
  CHECK(cumsum(x, 1).to_vector<double>() == V{1, 3, 6, 4, 9, 15});
  // x.t() = [[1, 4], [2, 5], [3, 6]]
  CHECK(cumsum(x.t(), 0).to_vector<double>() == V{1, 4, 3, 9, 6, 15});
  CHECK(cumsum(x.t(), 1).to_vector<double>() == V{1, 5, 2, 7, 3, 9});

  Tensor xi = from_vector(I{5, -2, 10}, {3});
  Tensor yi = cumsum(xi, 0);
  CHECK(yi.dtype() == DType::Int64);
  CHECK(yi.to_vector<int64_t>() == I{5, 3, 13});

  Tensor xf = from_vector(std::vector<float>{0.5f, 0.25f, 1.f}, {3});
  CHECK(cumsum(xf, 0).to_vector<float>() == std::vector<float>{0.5f, 0.75f, 1.75f});

  // Along a middle dim of a 3-D tensor: [2, 2, 2], lines over dim 1.
  Tensor x3 = vec({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2});
  CHECK(cumsum(x3, 1).to_vector<double>() == V{1, 2, 4, 6, 5, 6, 12, 14});
  CHECK(cumsum(vec({}, {0}), 0).numel() == 0);
}

TEST_CASE("topk / sort / cumsum: bad arguments") {
  Tensor x = vec({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK_THROWS_AS(topk(x, 4), colt5::Error);
  CHECK_THROWS_WITH_AS(topk(x, 4), doctest::Contains("topk: argument 'k'"), colt5::Error);
  CHECK_THROWS_WITH_AS(topk(x, -1), doctest::Contains("topk: argument 'k'"), colt5::Error);
  CHECK_THROWS_WITH_AS(topk(x, 3, 0), doctest::Contains("argument 'k'"), colt5::Error);  // dim 0 has 2
  CHECK_NOTHROW(topk(x, 2, 0));
  CHECK_THROWS_WITH_AS(topk(x, 1, 2), doctest::Contains("topk: argument 'dim'"), colt5::Error);
  CHECK_THROWS_WITH_AS(topk(x, 1, -3), doctest::Contains("topk: argument 'dim'"), colt5::Error);
  CHECK_THROWS_WITH_AS(topk(from_vector(I{1, 2, 3}, {3}), 1), doctest::Contains("topk: argument 'x'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(topk(Tensor(), 1), doctest::Contains("topk: argument 'x'"), colt5::Error);

  CHECK_THROWS_WITH_AS(sort(x, 2), doctest::Contains("sort: argument 'dim'"), colt5::Error);
  CHECK_THROWS_WITH_AS(sort(from_vector(std::vector<bool>{true, false}, {2})), doctest::Contains("sort: argument 'x'"),
                       colt5::Error);

  CHECK_THROWS_WITH_AS(cumsum(x, 2), doctest::Contains("cumsum: argument 'dim'"), colt5::Error);
  CHECK_THROWS_WITH_AS(cumsum(x, -3), doctest::Contains("cumsum: argument 'dim'"), colt5::Error);
  CHECK_THROWS_WITH_AS(cumsum(from_vector(std::vector<bool>{true, false}, {2}), 0),
                       doctest::Contains("cumsum: argument 'x'"), colt5::Error);
  CHECK_THROWS_WITH_AS(cumsum(from_vector(std::vector<int32_t>{1, 2}, {2}), 0),
                       doctest::Contains("cumsum: argument 'x'"), colt5::Error);
}
