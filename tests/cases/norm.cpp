// Cases for layer_norm and rms_norm: with and without parameters, contiguous, transposed and
// sliced x, and an rms_norm whose rows all sit under the eps clamp (gradient of the clamp 0).
// Parameters are drawn around 1 (scale 0.5, shift 1) as trained gains are.
#include "tests/cases/cases.h"

namespace colt5::cases {

namespace {

OpCase layer_norm_case(const Shape& shape, Layout layout, bool affine, double eps = 1e-5) {
  OpCase c;
  c.op = "layer_norm";
  c.variant = str(shape, " ", layout_name(layout), affine ? " weight+bias" : " no weight/bias");
  const int64_t D = shape.back();
  c.inputs = [=](DType dt, Device dev, uint64_t seed) -> TensorList {
    TensorList ts = {leaf(shape, dt, dev, seed, layout, 2.0, 0.5)};
    if (affine) {
      ts.push_back(leaf({D}, dt, dev, seed + 1, Layout::Contiguous, 0.5, 1.0));
      ts.push_back(leaf({D}, dt, dev, seed + 2));
    }
    return ts;
  };
  c.fn = [affine, eps](const TensorList& in) {
    return affine ? layer_norm(in[0], in[1], in[2], eps) : layer_norm(in[0], Tensor(), Tensor(), eps);
  };
  return c;
}

OpCase rms_norm_case(const Shape& shape, Layout layout, double scale = 1.0, double eps = 1e-12) {
  OpCase c;
  c.op = "rms_norm";
  c.variant = str(shape, " ", layout_name(layout), eps != 1e-12 ? str(" eps ", eps, " (clamped)") : "");
  const int64_t D = shape.back();
  c.inputs = [=](DType dt, Device dev, uint64_t seed) -> TensorList {
    return {leaf(shape, dt, dev, seed, layout, scale), leaf({D}, dt, dev, seed + 1, Layout::Contiguous, 0.5, 1.0)};
  };
  c.fn = [eps](const TensorList& in) { return rms_norm(in[0], in[1], eps); };
  return c;
}

}  // namespace

std::vector<OpCase> norm_cases() {
  std::vector<OpCase> cs;
  cs.push_back(layer_norm_case({3, 5}, Layout::Contiguous, true));
  cs.push_back(layer_norm_case({2, 3, 6}, Layout::Transposed, true));
  cs.push_back(layer_norm_case({4, 7}, Layout::Contiguous, false));
  cs.push_back(layer_norm_case({2, 3, 5}, Layout::Sliced, false));
  cs.push_back(layer_norm_case({3, 4}, Layout::Sliced, true, 0.0));
  cs.push_back(rms_norm_case({3, 5}, Layout::Contiguous));
  cs.push_back(rms_norm_case({2, 4, 6}, Layout::Transposed));
  cs.push_back(rms_norm_case({3, 6}, Layout::Sliced));
  // ||x|| ~ 0.1 * sqrt(5) << eps = 3: every row divides by eps, not by its norm.
  cs.push_back(rms_norm_case({4, 5}, Layout::Contiguous, 0.1, 3.0));
  return cs;
}

}  // namespace colt5::cases
