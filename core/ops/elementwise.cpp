#include "core/ops/elementwise.h"

namespace colt5::ops {

const char* unary_name(UnaryOp op) {
  static const char* names[] = {"neg",  "exp",     "log",  "relu", "gelu",       "sqrt",       "rsqrt",      "abs",
                                "sigmoid", "tanh", "sin", "cos", "pow", "clamp", "add_scalar", "mul_scalar", "logical_not"};
  static_assert(sizeof(names) / sizeof(names[0]) == kUnaryOpCount);
  return names[int(op)];
}

const char* binary_name(BinaryOp op) {
  static const char* names[] = {"add", "sub", "mul", "div", "maximum", "minimum", "eq",
                                "ne",  "lt",  "le",  "gt",  "ge",      "logical_and", "logical_or"};
  static_assert(sizeof(names) / sizeof(names[0]) == kBinaryOpCount);
  return names[int(op)];
}

namespace {
Tensor broadcast_to(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  return Tensor::make_view(t, shape, broadcast_strides(t.shape(), t.strides(), shape), t.offset());
}
}  // namespace

Tensor unary(UnaryOp op, const Tensor& x, UnaryParams p) {
  const char* name = unary_name(op);
  COLT5_CHECK(x.defined(), name, ": argument 'x' is undefined");
  if (op == UnaryOp::LogicalNot)
    check_dtype(x, DType::Bool, name, "x");
  else if (op == UnaryOp::Neg || op == UnaryOp::AddScalar || op == UnaryOp::MulScalar || op == UnaryOp::Abs)
    COLT5_CHECK(x.dtype() != DType::Bool, name, ": argument 'x' expected a numeric dtype, got bool");
  else
    check_floating(x, name, "x");
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  kernels::unary(x.device())(op, x, y, p);
  return y;
}

Tensor unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& g, UnaryParams p) {
  check_same_device({x, y, g}, "unary_backward");
  Tensor gx = Tensor::empty(x.shape(), x.dtype(), x.device());
  kernels::unary_backward(x.device())(op, x, y, g, gx, p);
  return gx;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  COLT5_CHECK(a.defined() && b.defined(), name, ": undefined argument");
  check_same_device({a, b}, name);
  check_same_dtype(a, b, name, "a", "b");
  if (op == BinaryOp::LogicalAnd || op == BinaryOp::LogicalOr)
    check_dtype(a, DType::Bool, name, "a");
  else if (!is_comparison(op))
    COLT5_CHECK(a.dtype() != DType::Bool, name, ": argument 'a' expected a numeric dtype, got bool");
  Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = Tensor::empty(shape, is_comparison(op) ? DType::Bool : a.dtype(), a.device());
  kernels::binary(a.device())(op, broadcast_to(a, shape), broadcast_to(b, shape), out);
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  COLT5_CHECK(cond.defined() && a.defined() && b.defined(), "where: undefined argument");
  check_same_device({cond, a, b}, "where");
  check_dtype(cond, DType::Bool, "where", "cond");
  check_same_dtype(a, b, "where", "a", "b");
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  kernels::where(a.device())(broadcast_to(cond, shape), broadcast_to(a, shape), broadcast_to(b, shape), out);
  return out;
}

}  // namespace colt5::ops
