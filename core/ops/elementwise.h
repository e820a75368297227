// Raw elementwise ops (no autograd): validation, broadcasting, output allocation, dispatch.
// Kernels receive inputs already broadcast to the output's shape (stride 0 on broadcast
// dims, any other strides allowed) and a fresh contiguous output.
#pragma once

#include "core/dispatch.h"
#include "core/ops/elementwise_math.h"
#include "core/tensor.h"

namespace colt5 {

namespace cpu {
void unary(UnaryOp op, const Tensor& x, Tensor& y, UnaryParams p);
void unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& g, Tensor& gx, UnaryParams p);
void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out);
void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out);
}  // namespace cpu

using UnaryFn = void(UnaryOp, const Tensor& x, Tensor& y, UnaryParams);
using UnaryBackwardFn = void(UnaryOp, const Tensor& x, const Tensor& y, const Tensor& g, Tensor& gx, UnaryParams);
using BinaryFn = void(BinaryOp, const Tensor& a, const Tensor& b, Tensor& out);
using WhereFn = void(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out);
COLT5_KERNEL(unary, UnaryFn, cpu::unary)
COLT5_KERNEL(unary_backward, UnaryBackwardFn, cpu::unary_backward)
COLT5_KERNEL(binary, BinaryFn, cpu::binary)
COLT5_KERNEL(where, WhereFn, cpu::where)

namespace ops {
Tensor unary(UnaryOp op, const Tensor& x, UnaryParams p = {});
// g * f'(x), where y = f(x) is the forward output.
Tensor unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& g, UnaryParams p = {});
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
const char* unary_name(UnaryOp op);
const char* binary_name(BinaryOp op);
}  // namespace ops

}  // namespace colt5
