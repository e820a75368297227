// Cases for topk, sort and cumsum. topk and sort get distinct inputs (no two values within 0.1),
// so the finite differences of gradcheck (eps = 1e-6) never swap two elements; their int64
// index outputs are separate, non-differentiable cases (compared exactly across dtypes and,
// later, devices). cumsum is smooth and takes plain random inputs.
#include "tests/cases/cases.h"

namespace colt5::cases {

namespace {

// Distinct values (see distinct_leaf) with the given memory layout: Transposed swaps the last
// two dims in memory, Sliced takes every other element of a twice-as-long last dim.
Tensor distinct(const Shape& shape, Layout layout, DType dt, Device dev, uint64_t seed) {
  Tensor t;
  if (layout == Layout::Transposed) {
    Shape swapped = shape;
    std::swap(swapped[swapped.size() - 1], swapped[swapped.size() - 2]);
    t = distinct_leaf(swapped, dt, dev, seed, 0.1, 0.0, false).transpose(-1, -2);
  } else if (layout == Layout::Sliced) {
    Shape wide = shape;
    wide.back() *= 2;
    Tensor base = distinct_leaf(wide, dt, dev, seed, 0.1, 0.0, false);
    Shape strides = base.strides();
    strides.back() = 2;
    t = Tensor::make_view(base, shape, strides, 1);
  } else {
    t = distinct_leaf(shape, dt, dev, seed, 0.1, 0.0, false);
  }
  return t.detach().requires_grad_();
}

// Two cases per call: the values (gradchecked) and the indices (differentiable = false).
void add_order_cases(std::vector<OpCase>& cs, const std::string& op, const std::string& variant, const Shape& shape,
                     Layout layout, std::function<ValuesIndices(const Tensor&)> f) {
  OpCase c;
  c.op = op;
  c.variant = str(shape, " ", variant, " ", layout_name(layout));
  c.inputs = [=](DType dt, Device dev, uint64_t seed) -> TensorList { return {distinct(shape, layout, dt, dev, seed)}; };
  c.fn = [f](const TensorList& in) { return f(in[0]).values; };
  cs.push_back(c);

  OpCase ci = c;
  ci.variant += " indices";
  ci.fn = [f](const TensorList& in) { return f(in[0]).indices; };
  ci.differentiable = false;
  cs.push_back(ci);
}

}  // namespace

std::vector<OpCase> sort_cases() {
  std::vector<OpCase> cs;
  // topk: largest and smallest, k = 1 and k = n, dim = -1 and dim = 0, transposed and sliced input.
  add_order_cases(cs, "topk", "k=1 dim=-1 largest", {4, 6}, Layout::Contiguous,
                  [](const Tensor& x) { return topk(x, 1, -1, true); });
  add_order_cases(cs, "topk", "k=3 dim=-1 largest", {3, 7}, Layout::Transposed,
                  [](const Tensor& x) { return topk(x, 3, -1, true); });
  add_order_cases(cs, "topk", "k=5 (=n) dim=0 smallest", {5, 4}, Layout::Transposed,
                  [](const Tensor& x) { return topk(x, 5, 0, false); });
  add_order_cases(cs, "topk", "k=2 dim=1 smallest", {2, 5, 3}, Layout::Sliced,
                  [](const Tensor& x) { return topk(x, 2, 1, false); });
  add_order_cases(cs, "topk", "k=1 dim=0 smallest", {6}, Layout::Contiguous,
                  [](const Tensor& x) { return topk(x, 1, 0, false); });
  add_order_cases(cs, "topk", "k=4 (=n) dim=-1 largest", {3, 4}, Layout::Contiguous,
                  [](const Tensor& x) { return topk(x, 4, -1, true); });

  // sort: ascending and descending, along the last and a leading dim, sliced and transposed input.
  add_order_cases(cs, "sort", "dim=-1 ascending", {3, 6}, Layout::Sliced,
                  [](const Tensor& x) { return sort(x, -1, false); });
  add_order_cases(cs, "sort", "dim=-1 descending", {2, 3, 5}, Layout::Sliced,
                  [](const Tensor& x) { return sort(x, -1, true); });
  add_order_cases(cs, "sort", "dim=0 descending", {4, 5}, Layout::Transposed,
                  [](const Tensor& x) { return sort(x, 0, true); });
  add_order_cases(cs, "sort", "dim=0 ascending", {7}, Layout::Contiguous,
                  [](const Tensor& x) { return sort(x, 0, false); });

  // cumsum: 1-D, along a leading dim of a transposed input, a middle dim of a sliced one, and
  // the last dim of a transposed one.
  struct C {
    Shape shape;
    int64_t dim;
    Layout layout;
  };
  for (const C& k : {C{{7}, 0, Layout::Contiguous}, C{{3, 5}, 0, Layout::Transposed}, C{{2, 3, 5}, 1, Layout::Sliced},
                     C{{4, 6}, -1, Layout::Transposed}}) {
    OpCase c;
    c.op = "cumsum";
    c.variant = str(k.shape, " dim=", k.dim, " ", layout_name(k.layout));
    c.inputs = [k](DType dt, Device dev, uint64_t seed) -> TensorList {
      return {leaf(k.shape, dt, dev, seed, k.layout)};
    };
    const int64_t dim = k.dim;
    c.fn = [dim](const TensorList& in) { return cumsum(in[0], dim); };
    cs.push_back(c);
  }
  return cs;
}

}  // namespace colt5::cases
