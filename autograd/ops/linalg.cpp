// Differentiable matrix products. With C = A @ B (per batch) and g = dL/dC:
//   dA = g @ B^T        dB = A^T @ g
// summed over the batch dims that broadcasting added or stretched (sum_to). Transposes are
// views: the gemm slot reads them with the transpose flag, no copy. 1-D operands are handled
// by viewing them as [1, k] / [k, 1] and putting the dropped dims back on g first.
// linear(x, W, b) = x @ W^T + b with x [..., in], W [out, in]:
//   dx = g @ W          dW = g^T @ x   (over all rows of x at once)   db = sum of g over all but the last dim
// Under autocast (core/autocast.h) the same formulas run with every product's operands rounded
// to the 16-bit dtype (the saved A and B are kept as 16-bit copies, g is rounded when the
// backward runs), results and gradients in float32. `Product` says which way an op goes.
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/autocast.h"
#include "core/ops/copy.h"
#include "core/ops/linalg.h"

namespace colt5 {

using autograd::record;

namespace {

Tensor as_matrix_a(const Tensor& a) { return a.dim() == 1 ? a.unsqueeze(0) : a; }  // [..., n, k]
Tensor as_matrix_b(const Tensor& b) { return b.dim() == 1 ? b.unsqueeze(1) : b; }  // [..., k, m]

// g [..., (n), (m)] -> [batch..., n, m]: put back the dims that 1-D operands dropped.
Tensor full_grad(const Tensor& g, bool a_vec, bool b_vec) {
  Shape s = g.shape();
  if (a_vec) s.insert(s.end() - (b_vec ? 0 : 1), 1);
  if (b_vec) s.push_back(1);
  return g.reshape(s);
}

// How an op's products run: in the operands' own dtype (lowp == Float32 here meaning "as they
// are", the backward's products differentiable, for higher-order gradients) or under autocast
// (lowp a 16-bit dtype: operands rounded, raw float32-accumulating products).
struct Product {
  DType lowp = DType::Float32;

  // Autocast applies to products of float32 operands while a guard is on.
  static Product for_operands(std::initializer_list<Tensor> ts) {
    Product p;
    const DType d = autocast_dtype();
    if (d == DType::Float32) return p;
    for (const Tensor& t : ts)
      if (t.defined() && t.dtype() != DType::Float32) return p;
    p.lowp = d;
    return p;
  }
  bool autocast() const { return lowp != DType::Float32; }
  const char* name(const char* op, const char* autocast_name) const { return autocast() ? autocast_name : op; }
  // What the op computes with and the backward keeps: a detached (16-bit) copy.
  Tensor operand(const Tensor& t) const { return autocast() ? ops::to_dtype(t, lowp) : t.detach(); }
  Tensor matmul(const Tensor& x, const Tensor& y) const {
    if (!autocast()) {
      AutocastGuard off(DType::Float32);  // a float32 forward keeps a float32 backward
      return colt5::matmul(x, y);
    }
    return ops::matmul(ops::to_dtype(x, lowp), ops::to_dtype(y, lowp));
  }
  Tensor bmm(const Tensor& x, const Tensor& y) const {
    if (!autocast()) {
      AutocastGuard off(DType::Float32);
      return colt5::bmm(x, y);
    }
    return ops::bmm(ops::to_dtype(x, lowp), ops::to_dtype(y, lowp));
  }
};

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  const Product p = Product::for_operands({a, b});
  const Tensor ad = p.operand(a), bd = p.operand(b);
  Tensor out = ops::matmul(ad, bd);
  Tensor a2 = as_matrix_a(ad), b2 = as_matrix_b(bd);
  if (!autograd::any_requires_grad({a, b})) return out;
  const bool need_a = a.requires_grad(), need_b = b.requires_grad();
  const bool a_vec = a.dim() == 1, b_vec = b.dim() == 1;
  Shape sa = a.shape(), sb = b.shape();
  return record(p.name("matmul", "matmul (autocast)"), out, {a, b}, [=](const Tensor& grad) -> TensorList {
    Tensor g = full_grad(grad, a_vec, b_vec);  // [batch..., n, m]
    Tensor ga, gb;
    if (need_a) ga = sum_to(p.matmul(g, b2.transpose(-1, -2)), a2.shape()).reshape(sa);
    if (need_b) {
      if (b2.dim() == 2 && g.dim() > 2) {
        // b shared by every batch (so a has g's batch dims): one GEMM over all rows,
        // [k, P*n] @ [P*n, m], instead of P products summed afterwards.
        const int64_t k = a2.size(-1), m = b2.size(-1);
        gb = p.matmul(a2.reshape({-1, k}).t(), g.reshape({-1, m})).reshape(sb);
      } else {
        gb = sum_to(p.matmul(a2.transpose(-1, -2), g), b2.shape()).reshape(sb);
      }
    }
    return {ga, gb};
  });
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  const Product p = Product::for_operands({a, b});
  Tensor ad = p.operand(a), bd = p.operand(b);
  Tensor out = ops::bmm(ad, bd);
  if (!autograd::any_requires_grad({a, b})) return out;
  const bool need_a = a.requires_grad(), need_b = b.requires_grad();
  return record(p.name("bmm", "bmm (autocast)"), out, {a, b}, [=](const Tensor& g) -> TensorList {
    return {need_a ? p.bmm(g, bd.transpose(1, 2)) : Tensor(), need_b ? p.bmm(ad.transpose(1, 2), g) : Tensor()};
  });
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const Product p = Product::for_operands({x, weight, bias});
  Tensor xd = p.operand(x), wd = p.operand(weight);
  Tensor out = ops::linear(xd, wd, bias);
  if (!autograd::any_requires_grad({x, weight, bias})) return out;
  const bool need_x = x.requires_grad(), need_w = weight.requires_grad(), need_b = bias.requires_grad();
  const int64_t in = weight.size(1), nout = weight.size(0);
  return record(p.name("linear", "linear (autocast)"), out, {x, weight, bias}, [=](const Tensor& g) -> TensorList {
    // g [..., out]
    Tensor gx, gw, gb;
    if (need_x) gx = p.matmul(g, wd);  // [..., in]
    Tensor g_rows = g.reshape({-1, nout});  // [rows, out]
    if (need_w) gw = p.matmul(g_rows.t(), xd.reshape({-1, in}));  // [out, in]
    if (need_b) gb = sum(g_rows, {0});  // [out]
    return {gx, gw, gb};
  });
}

}  // namespace colt5
