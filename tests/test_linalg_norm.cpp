// Matrix products and normalisations: hand-computed values, torch's matmul shape rules, the
// OpenBLAS GEMM against the plain-loop reference, the fused norm kernels against the same
// math composed from elementwise ops, and bad inputs.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/ops/linalg.h"
#include "tests/cases/cases.h"

using namespace colt5;
using doctest::Approx;
using doctest::Contains;

namespace {

// backward keeping the graph: releasing it frees nodes that only a released node referenced
// while the release loop still visits them (autograd/engine.cpp); retaining sidesteps that.
void run_backward(const Tensor& loss) { loss.backward(Tensor(), true); }

void check_values(const Tensor& t, const std::vector<double>& expected, double eps = 1e-6) {
  std::vector<double> v = t.to(DType::Float64).to_vector<double>();
  REQUIRE(v.size() == expected.size());
  for (size_t i = 0; i < v.size(); ++i) {
    CAPTURE(i);
    CHECK(v[i] == Approx(expected[i]).epsilon(eps));
  }
}

Tensor randn_t(const Shape& s, DType dt, uint64_t seed) {
  Generator gen(seed);
  return randn(s, dt, kCPU, &gen);
}

// c = a @ b through the reference loop, for 3-D views of any strides.
Tensor reference_product(const Tensor& a, const Tensor& b) {
  Tensor c = Tensor::empty({a.size(0), a.size(1), b.size(2)}, a.dtype());
  cpu::gemm_reference(a, b, c);
  return c;
}

}  // namespace

TEST_CASE("matmul: hand-computed 2x3 @ 3x2") {
  Tensor a = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = from_vector<double>({7, 8, 9, 10, 11, 12}, {3, 2});
  Tensor c = matmul(a, b);
  CHECK(c.shape() == Shape{2, 2});
  check_values(c, {58, 64, 139, 154});
  // float32, and through transposed views of the same numbers.
  Tensor c32 = matmul(a.to(DType::Float32), b.to(DType::Float32));
  check_values(c32, {58, 64, 139, 154});
  Tensor at = from_vector<float>({1, 4, 2, 5, 3, 6}, {3, 2}).t();  // a as a transposed view
  Tensor bt = from_vector<float>({7, 9, 11, 8, 10, 12}, {2, 3}).t();
  check_values(matmul(at, bt), {58, 64, 139, 154});
}

TEST_CASE("matmul: torch's shape rules") {
  Tensor v = from_vector<double>({1, 2, 3}, {3});
  Tensor m = from_vector<double>({1, 0, 2, 1, 0, 3}, {3, 2});  // [[1,0],[2,1],[0,3]]
  Tensor vm = matmul(v, m);                                     // row vector: [5, 11]
  CHECK(vm.shape() == Shape{2});
  check_values(vm, {5, 11});
  Tensor mt = m.t();  // [2, 3]
  Tensor mv = matmul(mt, v);  // column vector: [5, 11]
  CHECK(mv.shape() == Shape{2});
  check_values(mv, {5, 11});
  Tensor dot = matmul(v, v);
  CHECK(dot.dim() == 0);
  CHECK(dot.item<double>() == 14.0);

  // Broadcast batch dims: [2,1,3,4] @ [5,4,2] -> [2,5,3,2]; each batch equals its own 2-D product.
  Tensor a = randn_t({2, 1, 3, 4}, DType::Float64, 1);
  Tensor b = randn_t({5, 4, 2}, DType::Float64, 2);
  Tensor c = matmul(a, b);
  CHECK(c.shape() == Shape{2, 5, 3, 2});
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 5; ++j) {
      Tensor want = matmul(a.select(0, i).select(0, 0), b.select(0, j));
      CHECK(cases::max_rel_diff(c.select(0, i).select(0, j), want) < 1e-14);
    }
  // A batched a with a 2-D b folds into one product; a batched b with a 1-D a keeps its batch.
  CHECK(matmul(randn_t({2, 3, 4}, DType::Float32, 3), randn_t({4, 6}, DType::Float32, 4)).shape() == Shape{2, 3, 6});
  CHECK(matmul(randn_t({4}, DType::Float32, 3), randn_t({2, 4, 6}, DType::Float32, 4)).shape() == Shape{2, 6});
  CHECK(matmul(randn_t({2, 3, 4}, DType::Float32, 3), randn_t({4}, DType::Float32, 4)).shape() == Shape{2, 3});
  // Empty inner dim: zeros; empty batch: empty result.
  Tensor z = matmul(Tensor::empty({2, 0}, DType::Float64), Tensor::empty({0, 3}, DType::Float64));
  CHECK(z.shape() == Shape{2, 3});
  check_values(z, {0, 0, 0, 0, 0, 0});
  CHECK(matmul(Tensor::empty({0, 2, 3}, DType::Float64), randn_t({3, 4}, DType::Float64, 1)).shape() ==
        Shape{0, 2, 4});
}

TEST_CASE("bmm and linear: hand-computed values") {
  Tensor a = from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2});
  Tensor b = from_vector<double>({1, 0, 0, 1, 0, 1, 1, 0}, {2, 2, 2});  // identity, swap
  Tensor c = bmm(a, b);
  CHECK(c.shape() == Shape{2, 2, 2});
  check_values(c, {1, 2, 3, 4, 6, 5, 8, 7});

  Tensor x = from_vector<double>({1, 2, 3, 4}, {2, 2});
  Tensor w = from_vector<double>({1, 0, 0, 1, 1, 1}, {3, 2});
  Tensor bias = from_vector<double>({0.5, -1, 2}, {3});
  Tensor y = linear(x, w, bias);  // x @ w^T = [[1,2,3],[3,4,7]]
  CHECK(y.shape() == Shape{2, 3});
  check_values(y, {1.5, 1, 5, 3.5, 3, 9});
  check_values(linear(x, w), {1, 2, 3, 3, 4, 7});
  Tensor y1 = linear(from_vector<double>({1, 2}, {2}), w, bias);  // 1-D x
  CHECK(y1.shape() == Shape{3});
  check_values(y1, {1.5, 1, 5});

  // Gradients by hand: L = sum(y) => dx = 1 @ w = column sums of w, dw = 1^T @ x, db = rows.
  Tensor xg = x.detach().requires_grad_(), wg = w.detach().requires_grad_(), bg = bias.detach().requires_grad_();
  run_backward(sum(linear(xg, wg, bg)));
  check_values(xg.grad(), {2, 2, 2, 2});
  check_values(wg.grad(), {4, 6, 4, 6, 4, 6});
  check_values(bg.grad(), {2, 2, 2});
}

TEST_CASE("gemm: layouts are read without copies where BLAS can") {
  // contiguous [3, 4]: row-major, ld 4
  GemmLayout l = gemm_layout(3, 4, 4, 1);
  CHECK((l.ok && !l.transposed && l.ld == 4));
  // transposed view of a contiguous [4, 3]: column-major, ld 3
  l = gemm_layout(3, 4, 1, 3);
  CHECK((l.ok && l.transposed && l.ld == 3));
  // a narrowed row-major matrix keeps its row stride as ld
  l = gemm_layout(3, 4, 10, 1);
  CHECK((l.ok && !l.transposed && l.ld == 10));
  // stride 2 in both dims (sliced) or overlapping rows (expanded): not BLAS-shaped
  CHECK_FALSE(gemm_layout(3, 4, 8, 2).ok);
  CHECK_FALSE(gemm_layout(3, 4, 0, 1).ok);
  // a single row or column: any stride on the size-1 dim
  CHECK(gemm_layout(1, 4, 123, 1).ok);
  CHECK(gemm_layout(4, 1, 1, 77).ok);
  CHECK(gemm_layout(1, 4, 0, 5).ok);  // a strided row vector read as a transposed column
}

TEST_CASE("gemm: OpenBLAS agrees with the reference loop") {
  if (!cpu::gemm_uses_openblas()) {
    MESSAGE("skipped: this build has no OpenBLAS (cpu::gemm is the reference loop itself)");
    return;
  }
  const int64_t B = 3, n = 17, k = 33, m = 5;
  for (DType dt : {DType::Float32, DType::Float64}) {
    const double tol = dt == DType::Float32 ? 1e-5 : 1e-12;
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (int shared_b = 0; shared_b < 2; ++shared_b) {
          CAPTURE(dt);
          CAPTURE(ta);
          CAPTURE(tb);
          CAPTURE(shared_b);
          Tensor a = ta ? randn_t({B, k, n}, dt, 10).transpose(1, 2) : randn_t({B, n, k}, dt, 10);
          Tensor b = tb ? randn_t({shared_b ? 1 : B, m, k}, dt, 11).transpose(1, 2)
                        : randn_t({shared_b ? 1 : B, k, m}, dt, 11);
          if (shared_b) b = b.expand({B, k, m});  // batch stride 0
          REQUIRE(gemm_layout(n, k, a.stride(1), a.stride(2)).ok);
          CHECK(gemm_layout(n, k, a.stride(1), a.stride(2)).transposed == bool(ta));
          Tensor want = reference_product(a, b);
          Tensor got = Tensor::empty({B, n, m}, dt);
          cpu::gemm(a, b, got);  // the slot's CPU kernel, OpenBLAS in this build
          CHECK(cases::max_rel_diff(got, want) < tol);
          CHECK(cases::max_rel_diff(ops::gemm(a, b), want) < tol);
        }
  }
  // Operands that are not BLAS-shaped (stride 2 in the last dim) are made contiguous first.
  Tensor wide = randn_t({B, n, 2 * k}, DType::Float64, 12);
  Tensor a = Tensor::make_view(wide, {B, n, k}, {n * 2 * k, 2 * k, 2}, 1);
  Tensor b = randn_t({B, k, m}, DType::Float64, 13);
  CHECK(cases::max_rel_diff(ops::gemm(a, b), reference_product(a, b)) < 1e-12);
}

TEST_CASE("matmul: 64x128x96 float32 agrees with the reference to 1e-5") {
  Tensor a = randn_t({64, 128}, DType::Float32, 21);
  Tensor b = randn_t({128, 96}, DType::Float32, 22);
  Tensor c = matmul(a, b);
  Tensor want = reference_product(a.unsqueeze(0), b.unsqueeze(0)).squeeze(0);
  CHECK(c.shape() == Shape{64, 96});
  CHECK(cases::max_rel_diff(c, want) < 1e-5);
  // and through the transposed-operand path
  Tensor ct = matmul(a.t().contiguous().t(), b.t().contiguous().t());
  CHECK(cases::max_rel_diff(ct, want) < 1e-5);
}

TEST_CASE("layer_norm and rms_norm: hand-computed values") {
  Tensor x = from_vector<double>({1, 2, 3}, {3});
  check_values(layer_norm(x, Tensor(), Tensor(), 0.0), {-1.224744871391589, 0, 1.224744871391589}, 1e-12);
  Tensor w = from_vector<double>({2, 1, 0.5}, {3}), b = from_vector<double>({1, 1, 1}, {3});
  check_values(layer_norm(x, w, b, 0.0), {1 - 2 * 1.224744871391589, 1, 1 + 0.5 * 1.224744871391589}, 1e-12);
  check_values(layer_norm(x.to(DType::Float32), Tensor(), Tensor(), 0.0), {-1.2247449, 0, 1.2247449}, 1e-6);

  Tensor v = from_vector<double>({3, 4}, {2});
  Tensor gamma = from_vector<double>({1, 1}, {2});
  check_values(rms_norm(v, gamma), {3.0 / 5 * std::sqrt(2.0), 4.0 / 5 * std::sqrt(2.0)}, 1e-12);
  // Under the clamp: divided by eps, not by the norm.
  check_values(rms_norm(v, gamma, 10.0), {3.0 / 10 * std::sqrt(2.0), 4.0 / 10 * std::sqrt(2.0)}, 1e-12);
  // An all-zero row stays zero (no NaN), as F.normalize.
  check_values(rms_norm(from_vector<double>({0, 0, 0}, {3}), Tensor()), {0, 0, 0});
}

TEST_CASE("layer_norm and rms_norm: fused kernels match the composed math") {
  const Shape shape{3, 4, 6};
  Tensor x0 = randn_t(shape, DType::Float64, 31) * 2.0 + 0.3;
  Tensor w0 = randn_t({6}, DType::Float64, 32) * 0.5 + 1.0;
  Tensor b0 = randn_t({6}, DType::Float64, 33);
  Tensor proj = randn_t(shape, DType::Float64, 34);  // L = sum(y * proj)
  const double eps = 1e-5;

  auto grads = [&](const std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)>& f) {
    Tensor x = x0.detach().requires_grad_(), w = w0.detach().requires_grad_(), b = b0.detach().requires_grad_();
    Tensor y = f(x, w, b);
    run_backward(sum(y * proj));
    return TensorList{y.detach(), x.grad(), w.grad(), b.grad()};
  };
  TensorList fused = grads([&](const Tensor& x, const Tensor& w, const Tensor& b) { return layer_norm(x, w, b, eps); });
  TensorList composed = grads([&](const Tensor& x, const Tensor& w, const Tensor& b) {
    Tensor mu = mean(x, {-1}, true);
    Tensor var = mean((x - mu) * (x - mu), {-1}, true);
    return (x - mu) * rsqrt(var + eps) * w + b;
  });
  for (size_t i = 0; i < 4; ++i) {
    CAPTURE(i);
    CHECK(cases::max_rel_diff(fused[i], composed[i]) < 1e-12);
  }

  TensorList rf = grads([](const Tensor& x, const Tensor& g, const Tensor& b) { return rms_norm(x, g) + b; });
  TensorList rc = grads([](const Tensor& x, const Tensor& g, const Tensor& b) {
    Tensor n = sqrt(sum(x * x, {-1}, true));
    return x / clamp_min(n, 1e-12) * std::sqrt(6.0) * g + b;
  });
  for (size_t i = 0; i < 4; ++i) {
    CAPTURE(i);
    CHECK(cases::max_rel_diff(rf[i], rc[i]) < 1e-12);
  }
}

TEST_CASE("rms_norm: gradient with one row under the eps clamp and one above") {
  // Row 0 has norm 0.5 < eps = 1 (clamped), row 1 has norm 5 (not clamped).
  Tensor x = from_vector<double>({0.3, -0.4, 0.0, 3.0, 0.0, 4.0}, {2, 3}).requires_grad_();
  Tensor g = from_vector<double>({1.0, 0.5, 2.0}, {3}).requires_grad_();
  GradcheckResult r = gradcheck([](const TensorList& in) { return rms_norm(in[0], in[1], 1.0); }, {x, g});
  INFO(r.message);
  CHECK(r.ok);
  // Under the clamp the gradient is gamma * sqrt(D) / eps per element of dL/dy: check row 0 exactly.
  Tensor xs = x.detach().requires_grad_();
  run_backward(sum(rms_norm(xs, g.detach(), 1.0)));
  std::vector<double> dx = xs.grad().to_vector<double>();
  CHECK(dx[0] == Approx(1.0 * std::sqrt(3.0)));
  CHECK(dx[1] == Approx(0.5 * std::sqrt(3.0)));
  CHECK(dx[2] == Approx(2.0 * std::sqrt(3.0)));
}

TEST_CASE("norm parameter gradients are deterministic") {
  Tensor x = randn_t({64, 33}, DType::Float32, 41).requires_grad_();
  Tensor w = randn_t({33}, DType::Float32, 42).requires_grad_();
  Tensor b = randn_t({33}, DType::Float32, 43).requires_grad_();
  std::vector<float> first_w, first_b;
  for (int rep = 0; rep < 2; ++rep) {
    x.zero_grad(), w.zero_grad(), b.zero_grad();
    run_backward(sum(layer_norm(x, w, b) * layer_norm(x, w, b)));
    if (rep == 0) {
      first_w = w.grad().to_vector<float>();
      first_b = b.grad().to_vector<float>();
    } else {
      CHECK(w.grad().to_vector<float>() == first_w);
      CHECK(b.grad().to_vector<float>() == first_b);
    }
  }
}

TEST_CASE("linalg and norm: bad inputs name the argument") {
  Tensor a23 = randn_t({2, 3}, DType::Float32, 1);
  Tensor a45 = randn_t({4, 5}, DType::Float32, 2);
  Tensor i22 = zeros({2, 2}, DType::Int64);
  Tensor d32 = randn_t({3, 2}, DType::Float64, 3);
  Tensor s0 = scalar_tensor(1.0);

  // inner size mismatch: the message names both sizes
  CHECK_THROWS_WITH_AS(matmul(a23, a45), Contains("argument 'b' expected size 3"), colt5::Error);
  CHECK_THROWS_WITH_AS(matmul(a23, a45), Contains("got 4"), colt5::Error);
  CHECK_THROWS_AS(matmul(randn_t({3}, DType::Float32, 1), randn_t({4}, DType::Float32, 1)), colt5::Error);
  CHECK_THROWS_AS(matmul(randn_t({2, 2, 3}, DType::Float32, 1), randn_t({3, 2, 2}, DType::Float32, 1)),
                  colt5::Error);  // batch 2 vs 3 does not broadcast
  // int dtype
  CHECK_THROWS_WITH_AS(matmul(i22, i22), Contains("argument 'a' expected a floating dtype"), colt5::Error);
  CHECK_THROWS_WITH_AS(matmul(a23.narrow(1, 0, 2), i22), Contains("argument 'b'"), colt5::Error);
  // 0-D operands
  CHECK_THROWS_WITH_AS(matmul(s0, a23), Contains("argument 'a' expected at least 1 dim"), colt5::Error);
  CHECK_THROWS_WITH_AS(matmul(a23, s0), Contains("argument 'b' expected at least 1 dim"), colt5::Error);
  // mixed dtypes
  CHECK_THROWS_WITH_AS(matmul(a23, d32), Contains("'a' and 'b'"), colt5::Error);
  // undefined
  CHECK_THROWS_AS(matmul(Tensor(), a23), colt5::Error);

  // bmm: 3-D only, equal batch, matching inner size
  CHECK_THROWS_WITH_AS(bmm(a23, a45), Contains("argument 'a' expected 3 dims"), colt5::Error);
  CHECK_THROWS_WITH_AS(bmm(randn_t({2, 2, 3}, DType::Float32, 1), randn_t({3, 3, 2}, DType::Float32, 1)),
                       Contains("batch size"), colt5::Error);
  CHECK_THROWS_WITH_AS(bmm(randn_t({2, 2, 3}, DType::Float32, 1), randn_t({2, 4, 2}, DType::Float32, 1)),
                       Contains("argument 'b' expected size 3"), colt5::Error);
  CHECK_THROWS_AS(bmm(randn_t({2, 2, 3}, DType::Float32, 1), randn_t({2, 3, 2}, DType::Float64, 1)), colt5::Error);

  // linear
  Tensor x = randn_t({2, 4}, DType::Float32, 5);
  CHECK_THROWS_WITH_AS(linear(x, randn_t({5, 3}, DType::Float32, 1)), Contains("argument 'weight' expected size 4"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(linear(x, randn_t({4}, DType::Float32, 1)), Contains("argument 'weight' expected 2 dims"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(linear(x, randn_t({5, 4}, DType::Float32, 1), randn_t({4}, DType::Float32, 1)),
                       Contains("argument 'bias' expected shape [5]"), colt5::Error);
  CHECK_THROWS_WITH_AS(linear(x, randn_t({5, 4}, DType::Float64, 1)), Contains("'x' and 'weight'"), colt5::Error);
  CHECK_THROWS_WITH_AS(linear(x, randn_t({5, 4}, DType::Float32, 1), randn_t({5}, DType::Float64, 1)),
                       Contains("linear: argument 'bias' expected dtype float32 (the product's, for x float32), got float64"), colt5::Error);
  CHECK_THROWS_WITH_AS(linear(s0, randn_t({5, 1}, DType::Float32, 1)), Contains("argument 'x'"), colt5::Error);
  CHECK_THROWS_WITH_AS(linear(zeros({2, 4}, DType::Int64), zeros({5, 4}, DType::Int64)), Contains("argument 'x'"),
                       colt5::Error);

  // layer_norm
  Tensor h = randn_t({3, 6}, DType::Float32, 6);
  CHECK_THROWS_WITH_AS(layer_norm(h, randn_t({5}, DType::Float32, 1), Tensor()),
                       Contains("argument 'weight' expected shape [6]"), colt5::Error);
  CHECK_THROWS_WITH_AS(layer_norm(h, Tensor(), randn_t({6, 1}, DType::Float32, 1)),
                       Contains("argument 'bias' expected shape [6]"), colt5::Error);
  CHECK_THROWS_WITH_AS(layer_norm(h, randn_t({6}, DType::Float64, 1), Tensor()), Contains("'x' and 'weight'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(layer_norm(h, Tensor(), Tensor(), -1.0), Contains("argument 'eps'"), colt5::Error);
  CHECK_THROWS_WITH_AS(layer_norm(zeros({3, 6}, DType::Int64), Tensor(), Tensor()), Contains("argument 'x'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(layer_norm(s0, Tensor(), Tensor()), Contains("argument 'x'"), colt5::Error);

  // rms_norm
  CHECK_THROWS_WITH_AS(rms_norm(h, randn_t({7}, DType::Float32, 1)), Contains("argument 'gamma' expected shape [6]"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(rms_norm(h, randn_t({6}, DType::Float64, 1)), Contains("'x' and 'gamma'"), colt5::Error);
  CHECK_THROWS_WITH_AS(rms_norm(zeros({3, 6}, DType::Int32), zeros({6}, DType::Int32)), Contains("argument 'x'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(rms_norm(h, ones({6}), NAN), Contains("argument 'eps'"), colt5::Error);
}
