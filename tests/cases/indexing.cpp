// Cases for gather, scatter, scatter_add, index_select and embedding. The index tensors are
// constant int64 inputs drawn from the seed (randint with a Generator), so every dtype and
// device sees the same indices. scatter cases keep the destinations of each column distinct
// (with duplicates the overwritten src values have no gradient and the last write would
// decide the value); scatter_add, gather, index_select and embedding cases do repeat indices,
// which is what makes their backward accumulate.
#include "tests/cases/cases.h"

namespace colt5::cases {

namespace {

// Indices uniform in [0, high), repeats allowed.
Tensor random_index(const Shape& shape, int64_t high, uint64_t seed, Device dev) {
  Generator gen(seed);
  return randint(0, high, shape, DType::Int64, kCPU, &gen).to(dev);
}

// Indices in [0, high) that never repeat along dim: position p gets (r + p[dim]) % high with r
// drawn once per column (the positions that differ only in p[dim]). Needs shape[dim] <= high.
Tensor distinct_index(const Shape& shape, int64_t dim, int64_t high, uint64_t seed, Device dev) {
  Generator gen(seed);
  std::vector<int64_t> r = randint(0, high, shape, DType::Int64, kCPU, &gen).to_vector<int64_t>();
  const Shape st = contiguous_strides(shape);
  std::vector<int64_t> v(r.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const int64_t j = (int64_t(i) / st[dim]) % shape[dim];
    v[i] = (r[i - j * st[dim]] + j) % high;  // r of the column's first position
  }
  return from_vector(v, shape, dev);
}

int64_t size_at(const Shape& shape, int64_t dim) { return shape[dim < 0 ? dim + int64_t(shape.size()) : dim]; }

OpCase gather_case(const Shape& xs, Layout lx, int64_t dim, const Shape& is) {
  OpCase c;
  c.op = "gather";
  c.variant = str("x ", xs, " ", layout_name(lx), " dim=", dim, " index ", is);
  c.inputs = [=](DType dt, Device dev, uint64_t seed) -> TensorList {
    return {leaf(xs, dt, dev, seed, lx), random_index(is, size_at(xs, dim), seed + 100, dev)};
  };
  c.fn = [dim](const TensorList& in) { return gather(in[0], dim, in[1]); };
  return c;
}

OpCase scatter_case(bool add, const Shape& xs, Layout lx, int64_t dim, const Shape& is, const Shape& ss, Layout ls) {
  OpCase c;
  c.op = add ? "scatter_add" : "scatter";
  c.variant = str("x ", xs, " ", layout_name(lx), " dim=", dim, " index ", is, " src ", ss, " ", layout_name(ls),
                  add ? " (repeated indices)" : "");
  c.inputs = [=](DType dt, Device dev, uint64_t seed) -> TensorList {
    const int64_t size = size_at(xs, dim);
    Tensor index = add ? random_index(is, size, seed + 100, dev) : distinct_index(is, dim, size, seed + 100, dev);
    return {leaf(xs, dt, dev, seed, lx), leaf(ss, dt, dev, seed + 1, ls), index};
  };
  c.fn = [add, dim](const TensorList& in) {
    return add ? scatter_add(in[0], dim, in[2], in[1]) : scatter(in[0], dim, in[2], in[1]);
  };
  return c;
}

}  // namespace

std::vector<OpCase> indexing_cases() {
  using L = Layout;
  std::vector<OpCase> cs;

  cs.push_back(gather_case({4, 5}, L::Transposed, 1, {4, 7}));
  cs.push_back(gather_case({3, 6, 4}, L::Sliced, 0, {5, 4, 4}));
  cs.push_back(gather_case({3, 6, 4}, L::Contiguous, -2, {2, 3, 3}));

  cs.push_back(scatter_case(false, {4, 5}, L::Transposed, 1, {4, 3}, {4, 3}, L::Sliced));
  cs.push_back(scatter_case(false, {5, 3, 4}, L::Sliced, 0, {3, 2, 4}, {4, 3, 4}, L::Transposed));
  cs.push_back(scatter_case(true, {3, 4}, L::Contiguous, 1, {3, 6}, {3, 6}, L::Transposed));
  cs.push_back(scatter_case(true, {4, 3, 2}, L::Sliced, 0, {5, 3, 2}, {6, 3, 3}, L::Sliced));

  struct Sel {
    Shape xs;
    Layout lx;
    int64_t dim, k;
  };
  for (const Sel& sel : {Sel{{5, 4}, L::Transposed, 0, 6}, Sel{{2, 5, 3}, L::Sliced, 1, 3}, Sel{{3, 4}, L::Sliced, -1, 5}}) {
    const Shape xs = sel.xs;
    const Layout lx = sel.lx;
    const int64_t dim = sel.dim, k = sel.k;
    OpCase c;
    c.op = "index_select";
    c.variant = str("x ", xs, " ", layout_name(lx), " dim=", dim, " index [", k, "]");
    c.inputs = [=](DType dt, Device dev, uint64_t seed) -> TensorList {
      return {leaf(xs, dt, dev, seed, lx), random_index({k}, size_at(xs, dim), seed + 100, dev)};
    };
    c.fn = [dim](const TensorList& in) { return index_select(in[0], dim, in[1]); };
    cs.push_back(c);
  }

  // More ids than rows, so some ids repeat whatever the draw.
  struct Emb {
    Shape ws;
    Layout lw;
    Shape ids;
  };
  for (const Emb& e : {Emb{{4, 3}, L::Transposed, {2, 5}}, Emb{{5, 6}, L::Sliced, {7}}}) {
    const Shape ws = e.ws, ids = e.ids;
    const Layout lw = e.lw;
    OpCase c;
    c.op = "embedding";
    c.variant = str("weight ", ws, " ", layout_name(lw), " ids ", ids, " (repeated ids)");
    c.inputs = [=](DType dt, Device dev, uint64_t seed) -> TensorList {
      return {leaf(ws, dt, dev, seed, lw), random_index(ids, ws[0], seed + 100, dev)};
    };
    c.fn = [](const TensorList& in) { return embedding(in[0], in[1]); };
    cs.push_back(c);
  }
  return cs;
}

}  // namespace colt5::cases
