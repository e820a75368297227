// Cases for the routers' normalisations: coor_descent (scalar k: unmasked, masked with a dead
// row, eps-scaling, transposed and sliced s; a per-row k tensor that is gradchecked too) and
// sinkhorn / gumbel_sinkhorn. Masks are constant inputs, made on the case's device. The shapes
// and options are those of tests/test_coor_descent.cpp's gradchecks; at these sizes no s_j + a_t
// lies near coor_descent's relu kink, so finite differences stay on one side of it.
#include "tests/cases/cases.h"

#include <string>
#include <vector>

#include "autograd/ops/coor_descent.h"
#include "autograd/ops/sinkhorn.h"

namespace colt5::cases {

namespace {

// A fixed keep pattern of `shape` (about 3 in 4 kept), row `dead` all False (-1: none).
Tensor pattern_mask(const Shape& shape, Device dev, int64_t dead) {
  const int64_t n = shape.back(), total = numel(shape);
  std::vector<bool> v(static_cast<size_t>(total));
  for (int64_t i = 0; i < total; ++i) v[size_t(i)] = (i * 7 + i / n) % 4 != 0 && i / n != dead;
  return from_vector(v, shape).to(dev);
}

std::string options_name(double k, const CoorDescentOptions& o) {
  std::string s = str("k=", k, " n_iters=", o.n_iters, " eps=", o.eps);
  if (o.eps_init) s += str(" eps_init=", *o.eps_init, " eps_decay=", o.eps_decay);
  return s;
}

// mask_dead: -2 no mask, -1 masked (no dead row), >= 0 masked with that row all False.
OpCase coor_descent_case(const Shape& shape, Layout layout, double k, CoorDescentOptions o, int64_t mask_dead = -2) {
  OpCase c;
  c.op = "coor_descent";
  const bool masked = mask_dead >= -1;
  c.variant = str(shape, " ", layout_name(layout), " ", options_name(k, o),
                  masked ? (mask_dead >= 0 ? " masked, dead row" : " masked") : "");
  c.inputs = [=](DType dt, Device dev, uint64_t seed) -> TensorList {
    TensorList ts = {leaf(shape, dt, dev, seed, layout)};
    if (masked) ts.push_back(pattern_mask(shape, dev, mask_dead));
    return ts;
  };
  c.fn = [k, o, masked](const TensorList& in) { return coor_descent(in[0], k, o, masked ? in[1] : Tensor()); };
  c.rtol_f64 = 1e-10;  // CUDA's block reductions sum in another order than the CPU's loop
  return c;
}

// k as a tensor, one value per row (gradchecked too): 1.25, 2, 2.75, 3.5, 1.25, ...
OpCase coor_descent_tensor_k_case(const Shape& shape, CoorDescentOptions o) {
  OpCase c;
  c.op = "coor_descent";
  c.variant = str(shape, " per-row k tensor (differentiable) n_iters=", o.n_iters, " eps=", o.eps, " masked");
  c.inputs = [=](DType dt, Device dev, uint64_t seed) -> TensorList {
    const Shape rows(shape.begin(), shape.end() - 1);
    std::vector<double> kv(size_t(numel(rows)));
    for (size_t i = 0; i < kv.size(); ++i) kv[i] = 1.25 + 0.75 * double(i % 4);
    Tensor k = from_vector(kv, rows).to(dt).to(dev).detach();
    k.requires_grad_();
    return {leaf(shape, dt, dev, seed), k, pattern_mask(shape, dev, -1)};
  };
  c.fn = [o](const TensorList& in) { return coor_descent(in[0], in[1], o, in[2]); };
  c.rtol_f64 = 1e-10;
  return c;
}

OpCase sinkhorn_case(const Shape& shape, Layout layout, int64_t n_iters) {
  OpCase c;
  c.op = "sinkhorn";
  c.variant = str(shape, " ", layout_name(layout), " n_iters=", n_iters);
  c.inputs = [=](DType dt, Device dev, uint64_t seed) -> TensorList { return {leaf(shape, dt, dev, seed, layout)}; };
  c.fn = [n_iters](const TensorList& in) { return sinkhorn(in[0], n_iters); };
  return c;
}

// gumbel_sinkhorn of exp(x) (positive weights), the same noise at every evaluation.
OpCase gumbel_sinkhorn_case(const Shape& shape, int64_t n_iters, double temperature) {
  OpCase c;
  c.op = "gumbel_sinkhorn";
  c.variant = str(shape, " n_iters=", n_iters, " temperature=", temperature, " of exp(x), fixed noise seed");
  c.inputs = [=](DType dt, Device dev, uint64_t seed) -> TensorList { return {leaf(shape, dt, dev, seed, Layout::Contiguous, 0.5)}; };
  c.fn = [n_iters, temperature](const TensorList& in) {
    Generator fixed(5);
    return gumbel_sinkhorn(exp(in[0]), n_iters, temperature, &fixed);
  };
  return c;
}

}  // namespace

std::vector<OpCase> routing_cases() {
  std::vector<OpCase> cs;
  cs.push_back(coor_descent_case({2, 7}, Layout::Contiguous, 3.0, {.n_iters = 10, .eps = 0.5}));
  cs.push_back(coor_descent_case({3, 9}, Layout::Contiguous, 2.0, {.n_iters = 12, .eps = 0.4}, 1));
  cs.push_back(coor_descent_case({2, 3, 8}, Layout::Contiguous, 3.0,
                                 {.n_iters = 15, .eps = 0.2, .eps_init = 2.0, .eps_decay = 0.7}, -1));
  cs.push_back(coor_descent_case({4, 6}, Layout::Transposed, 2.5,
                                 {.n_iters = 8, .eps = 0.3, .eps_init = 1.5, .eps_decay = 0.8}));
  cs.push_back(coor_descent_case({3, 10}, Layout::Sliced, 4.0, {.n_iters = 20, .eps = 0.6}, -1));
  cs.push_back(coor_descent_tensor_k_case({3, 8}, {.n_iters = 10, .eps = 0.5, .eps_init = 1.0, .eps_decay = 0.9}));
  cs.push_back(sinkhorn_case({3, 5}, Layout::Transposed, 4));
  cs.push_back(sinkhorn_case({2, 3, 4}, Layout::Contiguous, 8));
  cs.push_back(sinkhorn_case({2, 4, 6}, Layout::Sliced, 0));
  cs.push_back(gumbel_sinkhorn_case({2, 4, 4}, 5, 0.9));
  return cs;
}

}  // namespace colt5::cases
