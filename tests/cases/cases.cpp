#include "tests/cases/cases.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace colt5::cases {

Tensor leaf(const Shape& shape, DType dtype, Device device, uint64_t seed, Layout layout, double scale, double shift,
            bool requires_grad) {
  Generator gen(seed);
  Tensor t;
  if (layout == Layout::Transposed) {
    COLT5_CHECK(shape.size() >= 2, "cases::leaf: a transposed leaf needs >= 2 dims, got ", shape);
    Shape swapped = shape;
    std::swap(swapped[swapped.size() - 1], swapped[swapped.size() - 2]);
    t = (randn(swapped, DType::Float64, kCPU, &gen) * scale + shift).to(dtype).to(device).transpose(-1, -2);
  } else if (layout == Layout::Sliced) {
    COLT5_CHECK(!shape.empty(), "cases::leaf: a sliced leaf needs >= 1 dim");
    Shape wide = shape;
    wide.back() *= 2;
    Tensor base = (randn(wide, DType::Float64, kCPU, &gen) * scale + shift).to(dtype).to(device);
    Shape strides = base.strides();
    strides.back() = 2;
    t = Tensor::make_view(base, shape, strides, 1);
  } else {
    t = (randn(shape, DType::Float64, kCPU, &gen) * scale + shift).to(dtype).to(device);
  }
  t = t.detach();
  if (requires_grad) t.requires_grad_();
  return t;
}

Tensor distinct_leaf(const Shape& shape, DType dtype, Device device, uint64_t seed, double gap, double shift,
                     bool requires_grad) {
  const int64_t n = numel(shape);
  std::vector<double> v(n);
  std::iota(v.begin(), v.end(), 0.0);
  // Fisher–Yates with Philox draws: deterministic in seed on every platform.
  Generator gen(seed);
  std::vector<int64_t> r = randint(0, 1 << 30, {std::max<int64_t>(n, 1)}, DType::Int64, kCPU, &gen).to_vector<int64_t>();
  for (int64_t i = n - 1; i > 0; --i) std::swap(v[i], v[r[i] % (i + 1)]);
  // Centred on `shift`, half a gap off it: (k + 1/2) * gap + shift for k = -n/2 .. n/2.
  for (double& x : v) x = (x - double(n / 2) + 0.5) * gap + shift;
  Tensor t = from_vector(v, shape).to(dtype).to(device).detach();
  if (requires_grad) t.requires_grad_();
  return t;
}

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::Contiguous: return "contiguous";
    case Layout::Transposed: return "transposed";
    case Layout::Sliced: return "sliced";
  }
  return "";
}

std::vector<OpCase> all_cases() {
  std::vector<OpCase> all;
  for (auto group : {elementwise_cases, reduce_cases, softmax_cases, loss_cases, linalg_cases, norm_cases, shape_cases,
                     indexing_cases, sort_cases, routing_cases, attention_cases, local_attention_cases,
                     rotary_cases}) {
    auto cs = group();
    all.insert(all.end(), cs.begin(), cs.end());
  }
  return all;
}

double max_rel_diff(const Tensor& a, const Tensor& b) {
  COLT5_CHECK(a.shape() == b.shape(), "max_rel_diff: shapes differ: ", a.shape(), " vs ", b.shape());
  std::vector<double> x = a.to(DType::Float64).to_vector<double>();
  std::vector<double> y = b.to(DType::Float64).to_vector<double>();
  double scale = 0, err = 0;
  for (size_t i = 0; i < y.size(); ++i)
    if (std::isfinite(y[i])) scale = std::max(scale, std::fabs(y[i]));
  for (size_t i = 0; i < y.size(); ++i) {
    if (std::isnan(x[i]) != std::isnan(y[i]) || (std::isinf(y[i]) && x[i] != y[i])) return INFINITY;
    if (std::isfinite(y[i])) err = std::max(err, std::fabs(x[i] - y[i]));
  }
  return err / std::max(scale, 1e-300);
}

}  // namespace colt5::cases
