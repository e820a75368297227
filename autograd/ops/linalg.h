// Matrix products. On the CPU through OpenBLAS when the build found it (else plain loops);
// on the GPU through cuBLAS. Operands may be transposed views (no copy where possible).
#pragma once

#include "core/tensor.h"

namespace colt5 {

// matmul(a, b): a [..., n, k] @ b [..., k, m] -> [..., n, m], batch dims broadcast (as torch);
// a 1-D operand is treated as a row (a) or column (b) vector and that dim is dropped.
Tensor matmul(const Tensor& a, const Tensor& b);
// bmm(a, b): a [B, n, k] @ b [B, k, m] -> [B, n, m].
Tensor bmm(const Tensor& a, const Tensor& b);
// linear(x, w, b): x [..., in] @ w^T + b, with w [out, in] (torch layout) and b [out] or undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace colt5
