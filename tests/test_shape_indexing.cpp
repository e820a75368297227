// Shape ops, views and indexing: hand-computed forward values, storage sharing of views,
// hand-computed gradients, and bad inputs (each a colt5::Error whose message names the
// argument). Gradients against finite differences are in the case list (tests/cases/).
#include <doctest/doctest.h>

#include "autograd/ops.h"
#include "core/ops/copy.h"

using namespace colt5;

namespace {

using V = std::vector<double>;

Tensor t(const V& v, const Shape& shape) { return from_vector(v, shape); }
Tensor idx(const std::vector<int64_t>& v, const Shape& shape) { return from_vector(v, shape); }
V vals(const Tensor& x) { return x.to(DType::Float64).to_vector<double>(); }

}  // namespace

// ---------------------------------------------------------------- forward values

TEST_CASE("cat: values along dim 0 and dim 1, non-contiguous input") {
  Tensor a = t({1, 2, 3, 4}, {2, 2});
  Tensor b = t({5, 6}, {1, 2});
  Tensor r0 = cat({a, b, a}, 0);
  CHECK(r0.shape() == Shape{5, 2});
  CHECK(vals(r0) == V{1, 2, 3, 4, 5, 6, 1, 2, 3, 4});
  Tensor r1 = cat({a, a.t()}, -1);  // a.t() = [[1,3],[2,4]]
  CHECK(r1.shape() == Shape{2, 4});
  CHECK(vals(r1) == V{1, 2, 1, 3, 3, 4, 2, 4});
  // An input with 0 rows contributes nothing.
  CHECK(vals(cat({a, zeros({0, 2}, DType::Float64)}, 0)) == V{1, 2, 3, 4});
}

TEST_CASE("stack: values along a new first and last dim") {
  Tensor a = t({1, 2}, {2}), b = t({3, 4}, {2});
  Tensor s0 = stack({a, b}, 0);
  CHECK(s0.shape() == Shape{2, 2});
  CHECK(vals(s0) == V{1, 2, 3, 4});
  Tensor s1 = stack({a, b}, -1);
  CHECK(s1.shape() == Shape{2, 2});
  CHECK(vals(s1) == V{1, 3, 2, 4});
}

TEST_CASE("pad: positive, negative (cropping), mixed, two dims, as torch constant mode") {
  Tensor x = t({1, 2, 3}, {1, 3});
  Tensor p = pad(x, {1, 2}, 9.0);
  CHECK(p.shape() == Shape{1, 6});
  CHECK(vals(p) == V{9, 1, 2, 3, 9, 9});
  CHECK(vals(pad(x, {-1, 0})) == V{2, 3});
  CHECK(vals(pad(x, {-1, -2})).empty());  // cropping everything leaves size 0
  CHECK(vals(pad(x, {-1, 1})) == V{2, 3, 0});
  Tensor y = t({1, 2, 3, 4}, {2, 2});
  Tensor q = pad(y, {0, 1, 1, 0});  // last dim: 0 left, 1 right; first dim: 1 before
  CHECK(q.shape() == Shape{3, 3});
  CHECK(vals(q) == V{0, 0, 0, 1, 2, 0, 3, 4, 0});
  Tensor r = pad(y.t(), {0, 0, -1, 0});  // y.t() = [[1,3],[2,4]]; drop its first row
  CHECK(r.shape() == Shape{1, 2});
  CHECK(vals(r) == V{2, 4});
}

TEST_CASE("flip: values along each dim, non-contiguous input") {
  Tensor x = t({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(vals(flip(x, 1)) == V{3, 2, 1, 6, 5, 4});
  CHECK(vals(flip(x, 0)) == V{4, 5, 6, 1, 2, 3});
  CHECK(vals(flip(x.t(), -1)) == V{4, 1, 5, 2, 6, 3});
  CHECK(vals(flip(t({7}, {1}), 0)) == V{7});
}

TEST_CASE("gather: values along dim 1 and dim 0, index smaller than x") {
  Tensor x = t({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor g1 = gather(x, 1, idx({2, 0, 1, 1}, {2, 2}));
  CHECK(g1.shape() == Shape{2, 2});
  CHECK(vals(g1) == V{3, 1, 5, 5});
  CHECK(vals(gather(x, 0, idx({1, 0, 1}, {1, 3}))) == V{4, 2, 6});
  CHECK(vals(gather(x.t(), 0, idx({2, 0}, {1, 2}))) == V{3, 4});  // x.t() = [[1,4],[2,5],[3,6]]
  // Integer tensors gather too.
  CHECK(gather(idx({10, 20, 30}, {3}), 0, idx({2, 2, 0}, {3})).to_vector<int64_t>() == std::vector<int64_t>{30, 30, 10});
}

TEST_CASE("scatter / scatter_add: values; duplicates accumulate in scatter_add") {
  Tensor x = zeros({2, 3}, DType::Float64);
  Tensor s = scatter(x, 1, idx({2, 0}, {1, 2}), t({7, 8}, {1, 2}));
  CHECK(vals(s) == V{8, 0, 7, 0, 0, 0});
  CHECK(vals(x) == V{0, 0, 0, 0, 0, 0});  // out of place
  Tensor a = scatter_add(t({1, 1, 1}, {1, 3}), 1, idx({1, 1, 0}, {1, 3}), t({1, 2, 3}, {1, 3}));
  CHECK(vals(a) == V{4, 4, 1});
  // src larger than index: only index's positions of src are read.
  Tensor b = scatter_add(zeros({3, 2}, DType::Float64), 0, idx({2, 2}, {1, 2}), t({5, 6, 7, 8}, {2, 2}));
  CHECK(vals(b) == V{0, 0, 0, 0, 5, 6});
}

TEST_CASE("index_select and embedding: values, repeated indices") {
  Tensor x = t({1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor r = index_select(x, 0, idx({2, 0, 2}, {3}));
  CHECK(r.shape() == Shape{3, 2});
  CHECK(vals(r) == V{5, 6, 1, 2, 5, 6});
  Tensor c = index_select(x, -1, idx({1}, {1}));
  CHECK(c.shape() == Shape{3, 1});
  CHECK(vals(c) == V{2, 4, 6});
  Tensor e = embedding(x, idx({0, 2, 2, 1}, {2, 2}));
  CHECK(e.shape() == Shape{2, 2, 2});
  CHECK(vals(e) == V{1, 2, 5, 6, 5, 6, 3, 4});
  // Non-contiguous index tensors: a transposed ids tensor, a stride-2 index.
  CHECK(vals(embedding(x, idx({0, 2, 1, 1}, {2, 2}).t())) == V{1, 2, 3, 4, 5, 6, 3, 4});  // ids [[0,1],[2,1]]
  CHECK(vals(index_select(x, 0, idx({2, 9, 1, 9}, {4}).narrow(0, 0, 4).reshape({2, 2}).select(1, 0))) ==
        V{5, 6, 3, 4});
  Tensor e0 = embedding(x, idx({1}, {}));  // a 0-dim id gives one row
  CHECK(e0.shape() == Shape{2});
  CHECK(vals(e0) == V{3, 4});
}

// ---------------------------------------------------------------- views share storage

TEST_CASE("views share storage; reshape copies only when it must") {
  Tensor x = zeros({3, 4}, DType::Float64);
  Tensor window = x.narrow(1, 1, 2);
  ops::fill_(window, 5.0);
  CHECK(vals(x) == V{0, 5, 5, 0, 0, 5, 5, 0, 0, 5, 5, 0});
  Tensor row = x.select(0, 2);
  ops::fill_(row, 1.0);
  CHECK(vals(x) == V{0, 5, 5, 0, 0, 5, 5, 0, 1, 1, 1, 1});

  Tensor flat = x.reshape({-1});
  CHECK(flat.impl()->storage == x.impl()->storage);  // contiguous: a view
  CHECK(x.view({2, 6}).impl()->storage == x.impl()->storage);
  CHECK(x.t().impl()->storage == x.impl()->storage);
  CHECK(x.unsqueeze(0).expand({2, 3, 4}).impl()->storage == x.impl()->storage);
  Tensor copied = x.t().reshape({12});
  CHECK(copied.impl()->storage != x.impl()->storage);  // transposed: a copy
  CHECK(vals(copied) == V{0, 0, 1, 5, 5, 1, 5, 5, 1, 0, 0, 1});
  CHECK_THROWS_AS(x.t().view({12}), colt5::Error);  // not expressible as a view
  CHECK(x.t().contiguous().impl()->storage != x.impl()->storage);
  CHECK(x.contiguous().impl()->storage == x.impl()->storage);
  CHECK(x.clone().impl()->storage != x.impl()->storage);
  CHECK(x.squeeze(0).impl() == x.impl());  // squeezing a dim of size 3: a no-op, as torch
}

// ---------------------------------------------------------------- gradients by hand

TEST_CASE("gradient of a view chain lands on the right elements") {
  Tensor x = t({1, 2, 3, 4, 5, 6}, {2, 3}).requires_grad_();
  // x.t() lists x00, x10, x01, x11, x02, x12; elements 1..3 are x10, x01, x11.
  Tensor xt = x.t();
  Tensor flat = xt.reshape({6});  // a copy: xt is not contiguous
  Tensor y = flat.narrow(0, 1, 3);
  CHECK(vals(y) == V{4, 2, 5});
  sum(y * t({1, 2, 3}, {3})).backward();
  CHECK(vals(x.grad()) == V{0, 2, 0, 1, 3, 0});

  Tensor z = t({1, 2}, {2, 1}).requires_grad_();
  sum(z.expand({3, 2, 4}).permute({2, 0, 1}).select(0, 1)).backward();  // each element used 3 times
  CHECK(vals(z.grad()) == V{3, 3});
}

TEST_CASE("gradients of cat, stack, pad, flip") {
  Tensor a = t({1, 2}, {1, 2}).requires_grad_(), b = t({3, 4, 5, 6}, {2, 2}).requires_grad_();
  sum(cat({a, b}, 0) * t({1, 2, 3, 4, 5, 6}, {3, 2})).backward();
  CHECK(vals(a.grad()) == V{1, 2});
  CHECK(vals(b.grad()) == V{3, 4, 5, 6});

  Tensor c = t({1, 2}, {2}).requires_grad_(), d = t({3, 4}, {2}).requires_grad_();
  sum(stack({c, d}, 1) * t({1, 2, 3, 4}, {2, 2})).backward();  // [[c0,d0],[c1,d1]]
  CHECK(vals(c.grad()) == V{1, 3});
  CHECK(vals(d.grad()) == V{2, 4});

  Tensor x = t({1, 2, 3}, {3}).requires_grad_();
  sum(pad(x, {-1, 2}, 7.0) * t({1, 2, 3, 4}, {4})).backward();  // [x1, x2, 7, 7]
  CHECK(vals(x.grad()) == V{0, 1, 2});

  Tensor f = t({1, 2, 3}, {3}).requires_grad_();
  sum(flip(f, 0) * t({1, 2, 3}, {3})).backward();
  CHECK(vals(f.grad()) == V{3, 2, 1});
}

TEST_CASE("gradients of gather, scatter, scatter_add, index_select, embedding") {
  Tensor x = t({1, 2, 3, 4, 5, 6}, {2, 3}).requires_grad_();
  sum(gather(x, 1, idx({2, 2, 0, 1}, {2, 2}))).backward();  // x02 twice, x10, x11 once
  CHECK(vals(x.grad()) == V{0, 0, 2, 1, 1, 0});

  Tensor base = t({1, 2, 3}, {1, 3}).requires_grad_(), src = t({7, 8}, {1, 2}).requires_grad_();
  sum(scatter(base, 1, idx({2, 0}, {1, 2}), src) * t({1, 2, 3}, {1, 3})).backward();
  CHECK(vals(base.grad()) == V{0, 2, 0});  // overwritten positions get no gradient
  CHECK(vals(src.grad()) == V{3, 1});

  Tensor base2 = t({1, 2, 3}, {1, 3}).requires_grad_(), src2 = t({7, 8, 9}, {1, 3}).requires_grad_();
  sum(scatter_add(base2, 1, idx({1, 1, 0}, {1, 3}), src2) * t({1, 2, 3}, {1, 3})).backward();
  CHECK(vals(base2.grad()) == V{1, 2, 3});
  CHECK(vals(src2.grad()) == V{2, 2, 1});

  Tensor w = t({1, 2, 3, 4, 5, 6}, {3, 2}).requires_grad_();
  sum(index_select(w, 0, idx({2, 0, 2}, {3}))).backward();
  CHECK(vals(w.grad()) == V{1, 1, 0, 0, 2, 2});

  Tensor emb = t({1, 2, 3, 4, 5, 6}, {3, 2}).requires_grad_();
  sum(embedding(emb, idx({0, 2, 2, 2}, {2, 2})) * t({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2})).backward();
  CHECK(vals(emb.grad()) == V{1, 2, 0, 0, 15, 18});  // row 2 = [3,4] + [5,6] + [7,8]
}

TEST_CASE("max's backward goes through scatter_add") {
  Tensor x = t({1, 5, 2, 7, 3, 0}, {2, 3}).requires_grad_();
  sum(max(x, 1, false).values).backward();
  CHECK(vals(x.grad()) == V{0, 1, 0, 1, 0, 0});
}

// ---------------------------------------------------------------- bad inputs

TEST_CASE("indexing: out-of-range indices (too big and negative) throw naming the argument and value") {
  using doctest::Contains;
  Tensor x = t({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK_THROWS_WITH_AS(gather(x, 1, idx({0, 3}, {1, 2})), Contains("gather: argument 'index' holds the index 3"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(gather(x, 1, idx({-1, 0}, {1, 2})), Contains("index -1, expected a value in [0, 3)"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(scatter(x, 0, idx({2}, {1, 1}), t({1}, {1, 1})),
                       Contains("scatter: argument 'index' holds the index 2, expected a value in [0, 2)"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(scatter_add(x, 1, idx({-4}, {1, 1}), t({1}, {1, 1})),
                       Contains("scatter_add: argument 'index' holds the index -4"), colt5::Error);
  CHECK_THROWS_WITH_AS(index_select(x, 0, idx({0, 2}, {2})),
                       Contains("index_select: argument 'index' holds the index 2, expected a value in [0, 2)"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(index_select(x, 1, idx({-1}, {1})), Contains("argument 'index' holds the index -1"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(embedding(x, idx({0, 2}, {2})),
                       Contains("embedding: argument 'ids' holds the index 2, expected a value in [0, 2)"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(embedding(x, idx({-2}, {1})), Contains("embedding: argument 'ids' holds the index -2"),
                       colt5::Error);
  // Out of range on an empty dim, and an error during backward-free use leaves x untouched.
  CHECK_THROWS_AS(gather(zeros({2, 0}), 1, idx({0}, {1, 1})), colt5::Error);
  CHECK(vals(x) == V{1, 2, 3, 4, 5, 6});
}

TEST_CASE("indexing: index tensors must be int64, on x's device, with torch's shape rules") {
  using doctest::Contains;
  Tensor x = t({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor i32 = from_vector(std::vector<int32_t>{0, 1}, {1, 2});
  CHECK_THROWS_WITH_AS(gather(x, 1, i32), Contains("gather: argument 'index' expected dtype int64"), colt5::Error);
  CHECK_THROWS_WITH_AS(scatter(x, 1, i32, x), Contains("argument 'index' expected dtype int64"), colt5::Error);
  CHECK_THROWS_WITH_AS(scatter_add(x, 1, x, x), Contains("argument 'index' expected dtype int64"), colt5::Error);
  CHECK_THROWS_WITH_AS(index_select(x, 0, t({0}, {1})), Contains("argument 'index' expected dtype int64"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(embedding(x, from_vector(std::vector<int32_t>{0}, {1})),
                       Contains("embedding: argument 'ids' expected dtype int64"), colt5::Error);
  // rank and size rules
  CHECK_THROWS_WITH_AS(gather(x, 1, idx({0, 1}, {2})), Contains("argument 'index' expected 2 dims"), colt5::Error);
  CHECK_THROWS_WITH_AS(gather(x, 1, idx({0, 0, 0}, {3, 1})), Contains("argument 'index' of shape [3, 1]"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(scatter(x, 1, idx({0, 1}, {1, 2}), t({1}, {1, 1})), Contains("argument 'src'"), colt5::Error);
  CHECK_THROWS_WITH_AS(scatter(x, 1, idx({0}, {1, 1}), t({1}, {1, 1}).to(DType::Float32)),
                       Contains("'x' and 'src' expected the same dtype"), colt5::Error);
  CHECK_THROWS_WITH_AS(index_select(x, 0, idx({0, 1}, {1, 2})), Contains("argument 'index' expected 1 dim"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(embedding(t({1, 2}, {2}), idx({0}, {1})), Contains("argument 'weight' expected 2 dims"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(gather(x, 2, idx({0}, {1, 1})), Contains("argument 'dim'"), colt5::Error);
  CHECK_THROWS_AS(scatter_add(from_vector(std::vector<int32_t>{0}, {1}).to(DType::Bool), 0, idx({0}, {1}),
                              from_vector(std::vector<int32_t>{1}, {1}).to(DType::Bool)),
                  colt5::Error);
}

TEST_CASE("shape ops: bad inputs throw naming the argument") {
  using doctest::Contains;
  Tensor x = t({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK_THROWS_WITH_AS(cat({}, 0), Contains("cat: argument 'xs' expected a non-empty list"), colt5::Error);
  CHECK_THROWS_WITH_AS(cat({x, t({1, 2}, {1, 2})}, 0), Contains("argument 'xs[1]' expected size 3 in dim 1"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(cat({x, t({1, 2, 3}, {3})}, 0), Contains("argument 'xs[1]' expected 2 dims"), colt5::Error);
  CHECK_THROWS_WITH_AS(cat({x, x.to(DType::Float32)}, 0), Contains("argument 'xs[1]' expected dtype float64"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(cat({x, x}, 2), Contains("argument 'dim'"), colt5::Error);
  CHECK_THROWS_WITH_AS(stack({x, x.t()}, 0), Contains("argument 'xs[1]' expected shape [2, 3]"), colt5::Error);
  CHECK_THROWS_WITH_AS(stack({}, 0), Contains("argument 'xs'"), colt5::Error);
  CHECK_THROWS_WITH_AS(x.reshape({4}), Contains("reshape: shape [4] is invalid for a tensor of 6 elements"),
                       colt5::Error);
  CHECK_THROWS_AS(x.reshape({-1, -1}), colt5::Error);
  CHECK_THROWS_AS(x.reshape({4, -1}), colt5::Error);
  CHECK_THROWS_WITH_AS(x.narrow(1, 2, 2), Contains("narrow: arguments 'start'=2 and 'length'=2"), colt5::Error);
  CHECK_THROWS_AS(x.narrow(0, -3, 1), colt5::Error);
  CHECK_THROWS_AS(x.narrow(2, 0, 1), colt5::Error);
  CHECK_THROWS_WITH_AS(pad(x, {-2, -2}), Contains("pad: argument 'pads' crops 4 elements from dim 1 of size 3"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(pad(x, {-4, 4}), Contains("argument 'pads' crops 4"), colt5::Error);
  CHECK_THROWS_WITH_AS(pad(x, {1}), Contains("argument 'pads' expected an even number"), colt5::Error);
  CHECK_THROWS_WITH_AS(pad(x, {1, 1, 1, 1, 1, 1}), Contains("argument 'pads' expected at most 4"), colt5::Error);
  CHECK_THROWS_WITH_AS(x.permute({1, 1}), Contains("permute: argument 'dims' expected a permutation"), colt5::Error);
  CHECK_THROWS_WITH_AS(x.permute({0}), Contains("argument 'dims'"), colt5::Error);
  CHECK_THROWS_WITH_AS(flip(x, 3), Contains("argument 'dim'"), colt5::Error);
  CHECK_THROWS_AS(x.expand({3, 3}), colt5::Error);
  CHECK_THROWS_AS(x.select(0, 2), colt5::Error);
}
