// Mixed precision (core/autocast.h): 16-bit products with float32 accumulation, and autocast of
// the autograd matrix products. The expected values are float64 products of the operands
// rounded to 16 bits, so each check fails if a product skipped the rounding (the autocast
// result differs from the plain float32 one by far more than the tolerance) or lost float32
// accumulation.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "autograd/ops.h"
#include "core/autocast.h"
#include "core/half.h"
#include "core/ops/linalg.h"
#include "tests/gpu/gpu.h"

using namespace colt5;
using doctest::Contains;

namespace {

// x rounded to `lowp` and widened to float64: the value a 16-bit product multiplies.
Tensor rounded(const Tensor& x, DType lowp) { return x.detach().to(lowp).to(DType::Float64); }

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const Tensor d = abs(a.detach().to(DType::Float64) - b.detach().to(DType::Float64));
  return amax(d.reshape({-1}), {0}).item_double();
}
double max_abs(const Tensor& a) { return amax(abs(a.detach().to(DType::Float64)).reshape({-1}), {0}).item_double(); }

}  // namespace

TEST_CASE("autocast: guards nest and restore; only 16-bit dtypes or float32 (off) are taken") {
  CHECK(autocast_dtype() == DType::Float32);
  {
    AutocastGuard on(DType::BFloat16);
    CHECK(autocast_dtype() == DType::BFloat16);
    {
      AutocastGuard off(DType::Float32);
      CHECK(autocast_dtype() == DType::Float32);
      AutocastGuard half(DType::Float16);
      CHECK(autocast_dtype() == DType::Float16);
    }
    CHECK(autocast_dtype() == DType::BFloat16);
  }
  CHECK(autocast_dtype() == DType::Float32);
  CHECK_THROWS_WITH_AS(AutocastGuard(DType::Float64),
                       Contains("AutocastGuard: argument 'dtype' expected bfloat16, float16 or float32 (off), got float64"),
                       Error);
  CHECK_THROWS_WITH_AS(AutocastGuard(DType::Int64), Contains("got int64"), Error);
}

TEST_CASE("autocast: a product of 16-bit operands is the float32 product of their values") {
  manual_seed(3);
  const Tensor a = randn({2, 5, 7}), b = randn({2, 7, 4});
  for (DType lowp : {DType::BFloat16, DType::Float16}) {
    CAPTURE(lowp);
    const Tensor al = a.to(lowp), bl = b.to(lowp);
    const Tensor c = ops::bmm(al, bl);
    CHECK(c.dtype() == DType::Float32);
    // The CPU widens exactly and runs the float32 product: the same bits.
    CHECK(c.to_vector<float>() == ops::bmm(al.to(DType::Float32), bl.to(DType::Float32)).to_vector<float>());
    // A transposed 16-bit operand is read with the transpose flag, as a float32 one is.
    const Tensor bt = b.transpose(1, 2).contiguous().to(lowp).transpose(1, 2);
    CHECK(max_abs_diff(ops::bmm(al, bt), c) == 0.0);
    // linear: the bias is float32, added to the float32 product.
    const Tensor w = randn({3, 7}), bias = randn({3});
    const Tensor y = ops::linear(al, w.to(lowp), bias);
    const Tensor want = linear(rounded(a, lowp), rounded(w, lowp), bias.to(DType::Float64));
    CHECK(max_abs_diff(y, want) < 1e-5);
    CHECK_THROWS_WITH_AS(ops::linear(al, w.to(lowp), bias.to(lowp)),
                         Contains("linear: argument 'bias' expected dtype float32 (the product's"), Error);
  }
  CHECK_THROWS_WITH_AS(ops::bmm(a.to(DType::BFloat16), b), Contains("expected the same dtype, got bfloat16 and float32"),
                       Error);
}

TEST_CASE("autocast: linear, matmul and bmm round their operands, return float32 and pass float32 gradients") {
  manual_seed(4);
  for (DType lowp : {DType::BFloat16, DType::Float16}) {
    CAPTURE(lowp);
    // linear x [3, 5, 16] W [8, 16] b [8]; the loss sum(y * gy) makes dL/dy = gy.
    const Tensor x = randn({3, 5, 16}).requires_grad_(true), w = randn({8, 16}).requires_grad_(true);
    const Tensor b = randn({8}).requires_grad_(true), gy = randn({3, 5, 8});
    Tensor y;
    {
      AutocastGuard guard(lowp);
      y = linear(x, w, b);
    }
    CHECK(y.dtype() == DType::Float32);
    sum(y * gy).backward();  // outside the guard: the op kept its dtype
    const Tensor xr = rounded(x, lowp), wr = rounded(w, lowp), gr = rounded(gy, lowp);
    const Tensor y64 = linear(xr, wr, b.detach().to(DType::Float64));
    CHECK(max_abs_diff(y, y64) < 1e-5 * max_abs(y64));
    // It did round: the float32 product is much farther from the rounded one.
    CHECK(max_abs_diff(linear(x, w, b), y64) > 100 * max_abs_diff(y, y64));
    REQUIRE(x.grad().dtype() == DType::Float32);
    REQUIRE(w.grad().dtype() == DType::Float32);
    CHECK(max_abs_diff(x.grad(), matmul(gr, wr)) < 1e-5 * max_abs(x.grad()));
    CHECK(max_abs_diff(w.grad(), matmul(gr.reshape({-1, 8}).t(), xr.reshape({-1, 16}))) < 1e-5 * max_abs(w.grad()));
    CHECK(max_abs_diff(b.grad(), sum(gy.reshape({-1, 8}), {0})) < 1e-5);

    // matmul with broadcast batch dims and with 1-D operands; bmm.
    const Tensor a = randn({2, 3, 4, 6}).requires_grad_(true), m = randn({6, 5}).requires_grad_(true);
    const Tensor v = randn({6}).requires_grad_(true);
    Tensor c, cv;
    {
      AutocastGuard guard(lowp);
      c = matmul(a, m);
      cv = matmul(a, v);
    }
    const Tensor gc = randn({2, 3, 4, 5}), gv = randn({2, 3, 4});
    (sum(c * gc) + sum(cv * gv)).backward();
    const Tensor ar = rounded(a, lowp), mr = rounded(m, lowp), vr = rounded(v, lowp);
    CHECK(max_abs_diff(c, matmul(ar, mr)) < 1e-5 * max_abs(c));
    CHECK(max_abs_diff(cv, matmul(ar, vr)) < 1e-5 * max_abs(cv));
    const Tensor ga = matmul(rounded(gc, lowp), mr.t()) + matmul(rounded(gv, lowp).unsqueeze(-1), vr.unsqueeze(0));
    CHECK(max_abs_diff(a.grad(), ga) < 1e-5 * max_abs(ga));
    const Tensor gm = matmul(ar.reshape({-1, 6}).t(), rounded(gc, lowp).reshape({-1, 5}));
    CHECK(max_abs_diff(m.grad(), gm) < 1e-5 * max_abs(gm));

    const Tensor p = randn({4, 3, 7}).requires_grad_(true), q = randn({4, 7, 2}).requires_grad_(true);
    Tensor r;
    {
      AutocastGuard guard(lowp);
      r = bmm(p, q);
    }
    const Tensor gr2 = randn({4, 3, 2});
    sum(r * gr2).backward();
    const Tensor pr = rounded(p, lowp), qr = rounded(q, lowp), g2 = rounded(gr2, lowp);
    CHECK(max_abs_diff(r, bmm(pr, qr)) < 1e-5 * max_abs(r));
    CHECK(max_abs_diff(p.grad(), bmm(g2, qr.transpose(1, 2))) < 1e-5 * max_abs(p.grad()));
    CHECK(max_abs_diff(q.grad(), bmm(pr.transpose(1, 2), g2)) < 1e-5 * max_abs(q.grad()));
  }
}

TEST_CASE("autocast: float64 products, and a float32 forward's backward, are left alone") {
  manual_seed(5);
  const Tensor a = randn({4, 6}, DType::Float64), b = randn({6, 3}, DType::Float64);
  const Tensor plain = matmul(a, b);
  {
    AutocastGuard guard(DType::BFloat16);
    CHECK(max_abs_diff(matmul(a, b), plain) == 0.0);
  }
  // A float32 forward outside a guard, its backward inside one: still float32 throughout.
  const Tensor x = randn({5, 8}).requires_grad_(true), w = randn({4, 8});
  const Tensor gy = randn({5, 4});
  const Tensor y = linear(x, w, Tensor());
  {
    AutocastGuard guard(DType::BFloat16);
    sum(y * gy).backward();
  }
  CHECK(max_abs_diff(x.grad(), matmul(gy, w)) == 0.0);
}

TEST_CASE("gpu autocast: 16-bit conversions give the CPU's bits; products and gradients match the CPU") {
  COLT5_REQUIRE_GPU();
  const Device gpu = gputest::gpu();
  // Every 16-bit pattern widened on the GPU, and floats around every rounding edge narrowed.
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = uint16_t(i);
  const Tensor bits = from_vector(std::vector<int32_t>(all.begin(), all.end()), {65536});
  manual_seed(6);
  std::vector<float> edges;
  for (uint32_t i = 0; i < 65536; ++i) {
    const float f = to_float(bfloat16{uint16_t(i)});
    edges.push_back(f);
    edges.push_back(std::nextafter(f, INFINITY));
    edges.push_back(to_float(float16{uint16_t(i)}) * 1.00048828125f);  // near float16 midpoints
  }
  const Tensor f = from_vector(edges, {int64_t(edges.size())});
  const Tensor fg = f.to(gpu);
  for (DType lowp : {DType::BFloat16, DType::Float16}) {
    CAPTURE(lowp);
    const Tensor cpu_bits = f.to(lowp), gpu_bits = fg.to(lowp).to(kCPU);
    const auto* cb = static_cast<const uint16_t*>(cpu_bits.raw_data());
    const auto* gb = static_cast<const uint16_t*>(gpu_bits.raw_data());
    int64_t differ = 0;
    for (int64_t i = 0; i < f.numel(); ++i) differ += cb[i] != gb[i];
    CHECK(differ == 0);
    // Widening: the 16-bit tensor made on the CPU, moved as bytes, widened on each device.
    const Tensor wide_cpu = cpu_bits.to(DType::Float64), wide_gpu = cpu_bits.to(gpu).to(DType::Float64).to(kCPU);
    const std::vector<double> wc = wide_cpu.to_vector<double>(), wg = wide_gpu.to_vector<double>();
    int64_t wdiff = 0;
    for (size_t i = 0; i < wc.size(); ++i) wdiff += !(wc[i] == wg[i] || (std::isnan(wc[i]) && std::isnan(wg[i])));
    CHECK(wdiff == 0);
    CHECK(full({3}, 0.1, lowp, gpu).to(DType::Float32).to(kCPU).to_vector<float>() ==
          full({3}, 0.1, lowp).to(DType::Float32).to_vector<float>());

    // Products on the tensor cores against the CPU's float32 product of the same 16-bit values.
    const Tensor a = randn({3, 64, 96}), b = randn({3, 96, 80});
    const Tensor al = a.to(lowp), bl = b.to(lowp);
    const Tensor c_cpu = ops::bmm(al, bl), c_gpu = ops::bmm(al.to(gpu), bl.to(gpu)).to(kCPU);
    CHECK(c_gpu.dtype() == DType::Float32);
    CHECK(max_abs_diff(c_gpu, c_cpu) < 1e-5 * max_abs(c_cpu));
    const Tensor single = ops::matmul(al.select(0, 0).to(gpu), bl.select(0, 1).transpose(0, 1).contiguous().to(gpu).t());
    CHECK(max_abs_diff(single.to(kCPU), ops::matmul(al.select(0, 0), bl.select(0, 1))) < 1e-5 * max_abs(c_cpu));

    // Autocast linear forward + backward on both devices.
    auto run = [&](Device d) {
      manual_seed(7);
      const Tensor x = randn({4, 33, 48}).to(d).requires_grad_(true), w = randn({40, 48}).to(d).requires_grad_(true);
      const Tensor bias = randn({40}).to(d).requires_grad_(true), gy = randn({4, 33, 40}).to(d);
      Tensor y;
      {
        AutocastGuard guard(lowp);
        y = linear(x, w, bias);
      }
      sum(y * gy).backward();
      return std::vector<Tensor>{y.detach().to(kCPU), x.grad().to(kCPU), w.grad().to(kCPU), bias.grad().to(kCPU)};
    };
    const std::vector<Tensor> on_cpu = run(kCPU), on_gpu = run(gpu);
    for (size_t i = 0; i < on_cpu.size(); ++i) {
      CAPTURE(i);
      CHECK(on_gpu[i].dtype() == DType::Float32);
      CHECK(max_abs_diff(on_gpu[i], on_cpu[i]) < 1e-5 * max_abs(on_cpu[i]));
    }
  }
}
