// Differentiable elementwise ops. Unary backward runs the fused kernel g * f'(x); binary
// backward composes other ops, and sum_to undoes broadcasting:
//   add: (g, g)   sub: (g, -g)   mul: (g*b, g*a)   div: (g/b, -g*a/b^2)
//   maximum/minimum/where: the gradient goes to whichever input was picked.
#include <cmath>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/ops/elementwise.h"

namespace colt5 {

using autograd::record;

namespace {

Tensor unary_op(UnaryOp op, const Tensor& x, UnaryParams p = {}) {
  Tensor y = ops::unary(op, x, p);
  if (!autograd::any_requires_grad({x})) return y;
  // Save x and y detached: saving y itself would make the output own its own graph node.
  Tensor xs = x.detach(), ys = y.detach();
  return record(ops::unary_name(op), y, {x},
                [op, p, xs, ys](const Tensor& g) -> TensorList { return {ops::unary_backward(op, xs, ys, g, p)}; });
}

Tensor scalar_like(const Tensor& t, double v) { return scalar_tensor(v, t.dtype(), t.device()); }

}  // namespace

Tensor neg(const Tensor& x) { return unary_op(UnaryOp::Neg, x); }
Tensor exp(const Tensor& x) { return unary_op(UnaryOp::Exp, x); }
Tensor log(const Tensor& x) { return unary_op(UnaryOp::Log, x); }
Tensor relu(const Tensor& x) { return unary_op(UnaryOp::Relu, x); }
Tensor gelu(const Tensor& x) { return unary_op(UnaryOp::Gelu, x); }
Tensor sqrt(const Tensor& x) { return unary_op(UnaryOp::Sqrt, x); }
Tensor rsqrt(const Tensor& x) { return unary_op(UnaryOp::Rsqrt, x); }
Tensor abs(const Tensor& x) { return unary_op(UnaryOp::Abs, x); }
Tensor sigmoid(const Tensor& x) { return unary_op(UnaryOp::Sigmoid, x); }
Tensor tanh(const Tensor& x) { return unary_op(UnaryOp::Tanh, x); }
Tensor sin(const Tensor& x) { return unary_op(UnaryOp::Sin, x); }
Tensor cos(const Tensor& x) { return unary_op(UnaryOp::Cos, x); }
Tensor pow(const Tensor& x, double p) { return unary_op(UnaryOp::Pow, x, {p, 0}); }
Tensor clamp(const Tensor& x, double lo, double hi) {
  COLT5_CHECK(lo <= hi, "clamp: argument 'lo' (", lo, ") expected <= 'hi' (", hi, ")");
  return unary_op(UnaryOp::Clamp, x, {lo, hi});
}
Tensor clamp_min(const Tensor& x, double lo) { return unary_op(UnaryOp::Clamp, x, {lo, INFINITY}); }
Tensor clamp_max(const Tensor& x, double hi) { return unary_op(UnaryOp::Clamp, x, {-INFINITY, hi}); }
Tensor add_scalar(const Tensor& x, double c) { return unary_op(UnaryOp::AddScalar, x, {c, 0}); }
Tensor mul_scalar(const Tensor& x, double c) { return unary_op(UnaryOp::MulScalar, x, {c, 0}); }

Tensor add(const Tensor& a, const Tensor& b) {
  Shape sa = a.shape(), sb = b.shape();
  return record("add", ops::binary(BinaryOp::Add, a, b), {a, b},
                [sa, sb](const Tensor& g) -> TensorList { return {sum_to(g, sa), sum_to(g, sb)}; });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Shape sa = a.shape(), sb = b.shape();
  return record("sub", ops::binary(BinaryOp::Sub, a, b), {a, b},
                [sa, sb](const Tensor& g) -> TensorList { return {sum_to(g, sa), sum_to(neg(g), sb)}; });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor ad = a.detach(), bd = b.detach();
  bool need_a = a.requires_grad(), need_b = b.requires_grad();
  return record("mul", ops::binary(BinaryOp::Mul, a, b), {a, b}, [=](const Tensor& g) -> TensorList {
    return {need_a ? sum_to(g * bd, ad.shape()) : Tensor(), need_b ? sum_to(g * ad, bd.shape()) : Tensor()};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor ad = a.detach(), bd = b.detach();
  bool need_b = b.requires_grad();
  return record("div", ops::binary(BinaryOp::Div, a, b), {a, b}, [=](const Tensor& g) -> TensorList {
    Tensor ga = g / bd;
    return {sum_to(ga, ad.shape()), need_b ? sum_to(neg(ga * ad / bd), bd.shape()) : Tensor()};
  });
}

namespace {
// maximum/minimum: the gradient goes to a where a was picked (ties go to a), else to b.
Tensor pick_op(BinaryOp op, BinaryOp a_wins, const Tensor& a, const Tensor& b) {
  Tensor out = ops::binary(op, a, b);
  if (!autograd::any_requires_grad({a, b})) return out;  // the mask is for the backward only
  Tensor picked_a = ops::binary(a_wins, a, b);
  Shape sa = a.shape(), sb = b.shape();
  return record(ops::binary_name(op), out, {a, b}, [=](const Tensor& g) -> TensorList {
    Tensor zero = scalar_like(g, 0);
    return {sum_to(where(picked_a, g, zero), sa), sum_to(where(picked_a, zero, g), sb)};
  });
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return pick_op(BinaryOp::Maximum, BinaryOp::Ge, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return pick_op(BinaryOp::Minimum, BinaryOp::Le, a, b); }

Tensor eq(const Tensor& a, const Tensor& b) { return ops::binary(BinaryOp::Eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return ops::binary(BinaryOp::Ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return ops::binary(BinaryOp::Lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return ops::binary(BinaryOp::Le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return ops::binary(BinaryOp::Gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return ops::binary(BinaryOp::Ge, a, b); }
Tensor eq(const Tensor& a, double b) { return ops::binary(BinaryOp::Eq, a, scalar_like(a, b)); }
Tensor lt(const Tensor& a, double b) { return ops::binary(BinaryOp::Lt, a, scalar_like(a, b)); }
Tensor le(const Tensor& a, double b) { return ops::binary(BinaryOp::Le, a, scalar_like(a, b)); }
Tensor gt(const Tensor& a, double b) { return ops::binary(BinaryOp::Gt, a, scalar_like(a, b)); }
Tensor ge(const Tensor& a, double b) { return ops::binary(BinaryOp::Ge, a, scalar_like(a, b)); }
Tensor logical_and(const Tensor& a, const Tensor& b) { return ops::binary(BinaryOp::LogicalAnd, a, b); }
Tensor logical_or(const Tensor& a, const Tensor& b) { return ops::binary(BinaryOp::LogicalOr, a, b); }
Tensor logical_not(const Tensor& a) { return ops::unary(UnaryOp::LogicalNot, a); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  Tensor c = cond.detach();
  Shape sa = a.shape(), sb = b.shape();
  return record("where", ops::where(cond, a, b), {a, b}, [=](const Tensor& g) -> TensorList {
    Tensor zero = scalar_like(g, 0);
    return {sum_to(where(c, g, zero), sa), sum_to(where(c, zero, g), sb)};
  });
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  COLT5_CHECK(mask.defined(), "masked_fill: argument 'mask' is undefined");
  check_dtype(mask, DType::Bool, "masked_fill", "mask");
  Shape out = broadcast_shapes(x.shape(), mask.shape(), "masked_fill");
  COLT5_CHECK(out == x.shape(), "masked_fill: argument 'mask' of shape ", mask.shape(),
              " must broadcast to x's shape ", x.shape());
  return where(mask, scalar_like(x, value), x);
}

}  // namespace colt5
