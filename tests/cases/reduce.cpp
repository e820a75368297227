// Cases for the reductions: sum and mean over all dims, one dim, non-adjacent dims, keepdim;
// max / amax / argmax on distinct values (no ties, where the gradient is not defined);
// logsumexp; sum_to (the adjoint of broadcasting). Inputs are contiguous, transposed and sliced.
#include "tests/cases/cases.h"

namespace colt5::cases {

namespace {

// Distinct values (see distinct_leaf) with the given memory layout.
Tensor distinct_input(const Shape& shape, DType dt, Device dev, uint64_t seed, Layout layout) {
  Tensor t;
  if (layout == Layout::Sliced) {
    Shape wide = shape;
    wide.back() *= 2;
    Tensor base = distinct_leaf(wide, DType::Float64, kCPU, seed, 0.1, 0.0, false).to(dt).to(dev);
    Shape strides = base.strides();
    strides.back() = 2;
    t = Tensor::make_view(base, shape, strides, 1);
  } else {
    t = distinct_leaf(shape, DType::Float64, kCPU, seed, 0.1, 0.0, false).to(dt).to(dev);
    if (layout == Layout::Transposed) t = t.transpose(-1, -2).contiguous().transpose(-1, -2);
  }
  return t.detach().requires_grad_();
}

using Fn = std::function<Tensor(const Tensor&)>;

OpCase make_case(const std::string& op, const std::string& what, const Shape& shape, Layout layout, Fn f,
                 bool distinct = false, bool differentiable = true) {
  OpCase c;
  c.op = op;
  c.variant = str(shape, " ", what, " ", layout_name(layout));
  c.inputs = [=](DType dt, Device dev, uint64_t seed) -> TensorList {
    if (distinct) return {distinct_input(shape, dt, dev, seed, layout)};
    return {leaf(shape, dt, dev, seed, layout)};
  };
  c.fn = [f](const TensorList& in) { return f(in[0]); };
  c.differentiable = differentiable;
  return c;
}

}  // namespace

std::vector<OpCase> reduce_cases() {
  std::vector<OpCase> cs;
  // ---- sum ----
  cs.push_back(make_case("sum", "all", {3, 4}, Layout::Contiguous, [](const Tensor& x) { return sum(x); }));
  cs.push_back(make_case("sum", "all", {2, 3, 5}, Layout::Sliced, [](const Tensor& x) { return sum(x); }));
  cs.push_back(make_case("sum", "dims={1}", {3, 4, 5}, Layout::Contiguous,
                         [](const Tensor& x) { return sum(x, {1}); }));
  cs.push_back(make_case("sum", "dims={0,2}", {3, 4, 5}, Layout::Transposed,
                         [](const Tensor& x) { return sum(x, {0, 2}); }));
  cs.push_back(make_case("sum", "dims={-1} keepdim", {4, 5}, Layout::Sliced,
                         [](const Tensor& x) { return sum(x, {-1}, true); }));
  cs.push_back(make_case("sum", "dims={0} keepdim", {3, 5}, Layout::Transposed,
                         [](const Tensor& x) { return sum(x, {0}, true); }));
  cs.push_back(make_case("sum", "dims={0,1}", {2, 3, 5}, Layout::Sliced,
                         [](const Tensor& x) { return sum(x, {0, 1}); }));
  // ---- mean ----
  cs.push_back(make_case("mean", "all", {3, 4}, Layout::Transposed, [](const Tensor& x) { return mean(x); }));
  cs.push_back(make_case("mean", "dims={0} keepdim", {4, 5}, Layout::Sliced,
                         [](const Tensor& x) { return mean(x, {0}, true); }));
  cs.push_back(make_case("mean", "dims={0,2}", {2, 3, 4}, Layout::Contiguous,
                         [](const Tensor& x) { return mean(x, {0, 2}); }));
  // ---- max (values) ----
  cs.push_back(make_case("max", "dim=1", {4, 6}, Layout::Contiguous,
                         [](const Tensor& x) { return max(x, 1).values; }, true));
  cs.push_back(make_case("max", "dim=0 keepdim", {3, 4, 5}, Layout::Transposed,
                         [](const Tensor& x) { return max(x, 0, true).values; }, true));
  cs.push_back(make_case("max", "dim=-1", {3, 5}, Layout::Sliced,
                         [](const Tensor& x) { return max(x, -1).values; }, true));
  // ---- amax ----
  cs.push_back(make_case("amax", "dims={-1}", {4, 6}, Layout::Contiguous,
                         [](const Tensor& x) { return amax(x, {-1}); }, true));
  cs.push_back(make_case("amax", "dims={0,2} keepdim", {3, 4, 5}, Layout::Transposed,
                         [](const Tensor& x) { return amax(x, {0, 2}, true); }, true));
  cs.push_back(make_case("amax", "all", {3, 5}, Layout::Sliced,
                         [](const Tensor& x) { return amax(x, {}); }, true));
  // ---- logsumexp ----
  cs.push_back(make_case("logsumexp", "dim=1", {4, 6}, Layout::Contiguous,
                         [](const Tensor& x) { return logsumexp(x, 1); }));
  cs.push_back(make_case("logsumexp", "dim=0", {3, 5}, Layout::Transposed,
                         [](const Tensor& x) { return logsumexp(x, 0); }));
  cs.push_back(make_case("logsumexp", "dim=1 keepdim", {2, 3, 5}, Layout::Sliced,
                         [](const Tensor& x) { return logsumexp(x, 1, true); }));
  // ---- sum_to ----
  cs.push_back(make_case("sum_to", "-> [4,1]", {3, 4, 5}, Layout::Contiguous,
                         [](const Tensor& x) { return sum_to(x, {4, 1}); }));
  cs.push_back(make_case("sum_to", "-> [3]", {2, 3}, Layout::Transposed,
                         [](const Tensor& x) { return sum_to(x, {3}); }));
  cs.push_back(make_case("sum_to", "-> [1,1]", {4, 5}, Layout::Sliced,
                         [](const Tensor& x) { return sum_to(x, {1, 1}); }));
  // ---- argmax (indices, not differentiable) ----
  cs.push_back(make_case("argmax", "dim=1", {4, 6}, Layout::Contiguous,
                         [](const Tensor& x) { return argmax(x, 1); }, true, false));
  cs.push_back(make_case("argmax", "dim=0 keepdim", {3, 4, 5}, Layout::Transposed,
                         [](const Tensor& x) { return argmax(x, 0, true); }, true, false));
  return cs;
}

}  // namespace colt5::cases
