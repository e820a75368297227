// Cases for softmax and log_softmax: the first, last and a middle dim, negative dims, on
// contiguous, transposed and sliced inputs, and rows shifted far from 0 (the stable form must
// not overflow).
#include "tests/cases/cases.h"

namespace colt5::cases {

namespace {

OpCase softmax_case(bool log, const Shape& shape, int64_t dim, Layout layout, double scale = 1.0, double shift = 0.0) {
  OpCase c;
  c.op = log ? "log_softmax" : "softmax";
  c.variant = str(shape, " dim=", dim, " ", layout_name(layout), shift != 0.0 ? str(" shift=", shift) : "");
  c.inputs = [=](DType dt, Device dev, uint64_t seed) -> TensorList {
    return {leaf(shape, dt, dev, seed, layout, scale, shift)};
  };
  c.fn = [log, dim](const TensorList& in) { return log ? log_softmax(in[0], dim) : softmax(in[0], dim); };
  // Far from 0, x - max loses ~|shift| * 1e-16 to rounding; a larger step keeps that small
  // against 2 * eps (softmax is smooth, so the step's truncation error stays ~eps^2).
  if (shift != 0.0) c.grad.eps = 1e-4;
  return c;
}

}  // namespace

std::vector<OpCase> softmax_cases() {
  std::vector<OpCase> cs;
  for (bool log : {false, true}) {
    cs.push_back(softmax_case(log, {7}, 0, Layout::Contiguous));
    cs.push_back(softmax_case(log, {4, 6}, -1, Layout::Contiguous, 2.0));
    cs.push_back(softmax_case(log, {3, 5}, 0, Layout::Transposed));
    cs.push_back(softmax_case(log, {3, 5}, -1, Layout::Transposed));
    cs.push_back(softmax_case(log, {2, 3, 5}, 1, Layout::Sliced));
    cs.push_back(softmax_case(log, {2, 4, 3}, -2, Layout::Transposed));
    cs.push_back(softmax_case(log, {3, 4}, -1, Layout::Contiguous, 1.0, 1000.0));
  }
  return cs;
}

}  // namespace colt5::cases
