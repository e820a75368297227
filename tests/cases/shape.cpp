// Cases for the views (reshape, view, permute, transpose, narrow, select, expand, unsqueeze,
// squeeze, contiguous, clone, flatten) and the copying shape ops (cat, stack, pad, flip). Each
// runs at >= 2 shapes on non-contiguous inputs (transposed: last two dims swapped in memory;
// sliced: stride 2 in the last dim), so the backward has to map gradients back onto strided
// geometry. Shape ops are linear: gradcheck's finite differences are exact up to rounding.
#include "tests/cases/cases.h"

namespace colt5::cases {

namespace {

using Fn1 = std::function<Tensor(const Tensor&)>;

OpCase one(const std::string& op, const std::string& what, const Shape& shape, Layout layout, Fn1 f) {
  OpCase c;
  c.op = op;
  c.variant = str(shape, " ", layout_name(layout), what.empty() ? "" : " ", what);
  c.inputs = [=](DType dt, Device dev, uint64_t seed) -> TensorList { return {leaf(shape, dt, dev, seed, layout)}; };
  c.fn = [f](const TensorList& in) { return f(in[0]); };
  return c;
}

struct In {
  Shape shape;
  Layout layout;
};

OpCase many(const std::string& op, const std::string& what, const std::vector<In>& ins,
            std::function<Tensor(const TensorList&)> f) {
  OpCase c;
  c.op = op;
  std::string v;
  for (const In& i : ins) v += str(i.shape, " ", layout_name(i.layout), ", ");
  c.variant = v + what;
  c.inputs = [=](DType dt, Device dev, uint64_t seed) -> TensorList {
    TensorList xs;
    for (size_t k = 0; k < ins.size(); ++k) xs.push_back(leaf(ins[k].shape, dt, dev, seed + k, ins[k].layout));
    return xs;
  };
  c.fn = std::move(f);
  return c;
}

}  // namespace

std::vector<OpCase> shape_cases() {
  using L = Layout;
  std::vector<OpCase> cs;

  // ---- views ----
  cs.push_back(one("reshape", "-> [2,-1]", {3, 4}, L::Contiguous, [](const Tensor& x) { return x.reshape({2, -1}); }));
  cs.push_back(one("reshape", "-> [12] (copies)", {3, 4}, L::Transposed, [](const Tensor& x) { return x.reshape({12}); }));
  cs.push_back(one("reshape", "-> [-1,3,2]", {2, 6}, L::Sliced, [](const Tensor& x) { return x.reshape({-1, 3, 2}); }));
  cs.push_back(one("reshape", "-> [4,6] (copies)", {2, 3, 4}, L::Transposed, [](const Tensor& x) { return x.reshape({4, 6}); }));
  cs.push_back(one("view", "-> [6,4]", {2, 3, 4}, L::Contiguous, [](const Tensor& x) { return x.view({6, 4}); }));
  cs.push_back(one("view", "-> [3,2,2]", {3, 4}, L::Transposed, [](const Tensor& x) { return x.view({3, 2, 2}); }));
  cs.push_back(one("view", "-> [2,3,-1]", {2, 6}, L::Sliced, [](const Tensor& x) { return x.view({2, 3, -1}); }));
  cs.push_back(one("permute", "(2,0,1)", {2, 3, 4}, L::Transposed, [](const Tensor& x) { return x.permute({2, 0, 1}); }));
  cs.push_back(one("permute", "(1,0)", {3, 5}, L::Sliced, [](const Tensor& x) { return x.permute({1, 0}); }));
  cs.push_back(one("permute", "(-1,0,1)", {2, 3, 4}, L::Sliced, [](const Tensor& x) { return x.permute({-1, 0, 1}); }));
  cs.push_back(one("transpose", "(0,2)", {2, 3, 4}, L::Sliced, [](const Tensor& x) { return x.transpose(0, 2); }));
  cs.push_back(one("transpose", "(-1,-2)", {3, 4}, L::Transposed, [](const Tensor& x) { return x.transpose(-1, -2); }));
  cs.push_back(one("narrow", "(0,1,3)", {5, 4}, L::Transposed, [](const Tensor& x) { return x.narrow(0, 1, 3); }));
  cs.push_back(one("narrow", "(-1,2,3)", {2, 3, 6}, L::Sliced, [](const Tensor& x) { return x.narrow(-1, 2, 3); }));
  cs.push_back(one("narrow", "(1,-2,2)", {3, 5}, L::Transposed, [](const Tensor& x) { return x.narrow(1, -2, 2); }));
  cs.push_back(one("select", "(1,2)", {4, 5}, L::Transposed, [](const Tensor& x) { return x.select(1, 2); }));
  cs.push_back(one("select", "(0,-1)", {2, 3, 4}, L::Sliced, [](const Tensor& x) { return x.select(0, -1); }));
  cs.push_back(one("expand", "-> [2,3,4]", {3, 1}, L::Transposed, [](const Tensor& x) { return x.expand({2, 3, 4}); }));
  cs.push_back(one("expand", "-> [3,-1]", {1, 4}, L::Sliced, [](const Tensor& x) { return x.expand({3, -1}); }));
  cs.push_back(one("expand", "-> [2,-1,5]", {3, 1}, L::Contiguous, [](const Tensor& x) { return x.expand({2, -1, 5}); }));
  cs.push_back(one("unsqueeze", "(1)", {3, 4}, L::Transposed, [](const Tensor& x) { return x.unsqueeze(1); }));
  cs.push_back(one("unsqueeze", "(-1)", {2, 3}, L::Sliced, [](const Tensor& x) { return x.unsqueeze(-1); }));
  cs.push_back(one("squeeze", "(1)", {3, 1, 4}, L::Sliced, [](const Tensor& x) { return x.squeeze(1); }));
  cs.push_back(one("squeeze", "(-1)", {4, 1}, L::Transposed, [](const Tensor& x) { return x.squeeze(-1); }));
  cs.push_back(one("contiguous", "", {3, 4}, L::Transposed, [](const Tensor& x) { return x.contiguous(); }));
  cs.push_back(one("contiguous", "", {2, 3, 5}, L::Sliced, [](const Tensor& x) { return x.contiguous(); }));
  cs.push_back(one("clone", "", {3, 4}, L::Transposed, [](const Tensor& x) { return x.clone(); }));
  cs.push_back(one("clone", "", {2, 5}, L::Sliced, [](const Tensor& x) { return x.clone(); }));
  cs.push_back(one("flatten", "", {3, 4}, L::Transposed, [](const Tensor& x) { return x.flatten(); }));
  cs.push_back(one("flatten", "", {2, 3, 2}, L::Sliced, [](const Tensor& x) { return x.flatten(); }));
  // A chain of views whose gradient must find its way back through every geometry change.
  cs.push_back(one("view chain", "transpose.narrow.unsqueeze.expand.reshape", {4, 6}, L::Sliced, [](const Tensor& x) {
    return x.transpose(0, 1).narrow(0, 1, 4).unsqueeze(0).expand({2, 4, 4}).reshape({8, 4});
  }));

  // ---- cat / stack ----
  cs.push_back(many("cat", "dim=0", {{{2, 4}, L::Contiguous}, {{3, 4}, L::Transposed}, {{1, 4}, L::Sliced}},
                    [](const TensorList& in) { return cat(in, 0); }));
  cs.push_back(many("cat", "dim=-1", {{{3, 2}, L::Transposed}, {{3, 5}, L::Sliced}, {{3, 1}, L::Contiguous}},
                    [](const TensorList& in) { return cat(in, -1); }));
  cs.push_back(many("cat", "dim=1", {{{2, 3, 4}, L::Sliced}, {{2, 1, 4}, L::Transposed}, {{2, 2, 4}, L::Contiguous}},
                    [](const TensorList& in) { return cat(in, 1); }));
  cs.push_back(many("stack", "dim=0", {{{3, 4}, L::Contiguous}, {{3, 4}, L::Transposed}, {{3, 4}, L::Sliced}},
                    [](const TensorList& in) { return stack(in, 0); }));
  cs.push_back(many("stack", "dim=-1", {{{2, 3}, L::Sliced}, {{2, 3}, L::Transposed}},
                    [](const TensorList& in) { return stack(in, -1); }));

  // ---- pad ----
  cs.push_back(one("pad", "(1,2)", {3, 4}, L::Transposed, [](const Tensor& x) { return pad(x, {1, 2}); }));
  cs.push_back(one("pad", "(-1,-2) crops", {3, 6}, L::Sliced, [](const Tensor& x) { return pad(x, {-1, -2}); }));
  cs.push_back(one("pad", "(1,-1,2,0) value=0.5", {3, 4}, L::Transposed,
                   [](const Tensor& x) { return pad(x, {1, -1, 2, 0}, 0.5); }));
  cs.push_back(one("pad", "(0,1,-1,1,1,0)", {2, 3, 5}, L::Sliced,
                   [](const Tensor& x) { return pad(x, {0, 1, -1, 1, 1, 0}); }));

  // ---- flip ----
  cs.push_back(one("flip", "dim=0", {3, 4}, L::Transposed, [](const Tensor& x) { return flip(x, 0); }));
  cs.push_back(one("flip", "dim=-1", {2, 3, 5}, L::Sliced, [](const Tensor& x) { return flip(x, -1); }));
  cs.push_back(one("flip", "dim=1", {4, 3}, L::Contiguous, [](const Tensor& x) { return flip(x, 1); }));
  return cs;
}

}  // namespace colt5::cases
