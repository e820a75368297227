// Differentiable matrix products. With C = A @ B (per batch) and g = dL/dC:
//   dA = g @ B^T        dB = A^T @ g
// summed over the batch dims that broadcasting added or stretched (sum_to). Transposes are
// views: the gemm slot reads them with the transpose flag, no copy. 1-D operands are handled
// by viewing them as [1, k] / [k, 1] and putting the dropped dims back on g first.
// linear(x, W, b) = x @ W^T + b with x [..., in], W [out, in]:
//   dx = g @ W          dW = g^T @ x   (over all rows of x at once)   db = sum of g over all but the last dim
#include "autograd/node.h"
#include "autograd/ops.h"
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

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  Tensor out = ops::matmul(a, b);
  if (!autograd::any_requires_grad({a, b})) return out;
  const bool need_a = a.requires_grad(), need_b = b.requires_grad();
  const bool a_vec = a.dim() == 1, b_vec = b.dim() == 1;
  Tensor a2 = as_matrix_a(a.detach()), b2 = as_matrix_b(b.detach());
  Shape sa = a.shape(), sb = b.shape();
  return record("matmul", out, {a, b}, [=](const Tensor& grad) -> TensorList {
    Tensor g = full_grad(grad, a_vec, b_vec);  // [batch..., n, m]
    Tensor ga, gb;
    if (need_a) ga = sum_to(matmul(g, b2.transpose(-1, -2)), a2.shape()).reshape(sa);
    if (need_b) {
      if (b2.dim() == 2 && g.dim() > 2) {
        // b shared by every batch (so a has g's batch dims): one GEMM over all rows,
        // [k, P*n] @ [P*n, m], instead of P products summed afterwards.
        const int64_t k = a2.size(-1), m = b2.size(-1);
        gb = matmul(a2.reshape({-1, k}).t(), g.reshape({-1, m})).reshape(sb);
      } else {
        gb = sum_to(matmul(a2.transpose(-1, -2), g), b2.shape()).reshape(sb);
      }
    }
    return {ga, gb};
  });
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  Tensor out = ops::bmm(a, b);
  if (!autograd::any_requires_grad({a, b})) return out;
  const bool need_a = a.requires_grad(), need_b = b.requires_grad();
  Tensor ad = a.detach(), bd = b.detach();
  return record("bmm", out, {a, b}, [=](const Tensor& g) -> TensorList {
    return {need_a ? bmm(g, bd.transpose(1, 2)) : Tensor(), need_b ? bmm(ad.transpose(1, 2), g) : Tensor()};
  });
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  Tensor out = ops::linear(x, weight, bias);
  if (!autograd::any_requires_grad({x, weight, bias})) return out;
  const bool need_x = x.requires_grad(), need_w = weight.requires_grad(), need_b = bias.requires_grad();
  Tensor xd = x.detach(), wd = weight.detach();
  const int64_t in = weight.size(1), nout = weight.size(0);
  return record("linear", out, {x, weight, bias}, [=](const Tensor& g) -> TensorList {
    // g [..., out]
    Tensor gx, gw, gb;
    if (need_x) gx = matmul(g, wd);  // [..., in]
    Tensor g_rows = g.reshape({-1, nout});  // [rows, out]
    if (need_w) gw = matmul(g_rows.t(), xd.reshape({-1, in}));  // [out, in]
    if (need_b) gb = sum(g_rows, {0});  // [out]
    return {gx, gw, gb};
  });
}

}  // namespace colt5
