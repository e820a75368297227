// Raw matrix products (no autograd): validation, batch broadcasting, output allocation and
// dispatch to the batched GEMM slot.
//
// Dims legend: B batch, n rows of a and c, k inner size, m columns of b and c.
//
// ---- The gemm slot contract (CPU here; a cuBLAS kernel implements the same one) ----
//   gemm(a, b, c):  c[p] = a[p] @ b[p]  for p < B, row-major,
//     a: [B, n, k]   b: [B, k, m]   c: [B, n, m] contiguous, freshly allocated (overwritten)
//     a and b of one floating dtype, same device; n, m, k >= 1, B >= 1. c is of that dtype for
//     float32 and float64; for bfloat16 / float16 operands c is float32 and the products are
//     accumulated in float32 at least (mixed precision: what autocast uses, core/autocast.h).
//   The batch dim of a and b may have any stride, 0 included (one matrix shared by every batch).
//   Each matrix of a and b is "BLAS-shaped" (see gemm_layout): unit stride in one of its last
//   two dims and a leading dimension that keeps rows (or columns) apart. A matrix with unit
//   stride in its last dim is passed as-is ("N", ld = stride of dim -2); one with unit stride in
//   dim -2 (a transposed view) is passed with the transpose flag ("T", ld = stride of dim -1):
//   transposed operands are never copied. ops::gemm makes any other operand contiguous before
//   calling the slot, so kernels may rely on gemm_layout(...).ok for both operands.
//   A column-major library (cuBLAS) computes the same row-major product as c^T = b^T @ a^T:
//   swap the operands and (n, m), keep each operand's flag and ld.
//   Result order: every c element is one dot product over k in a fixed order per kernel (no
//   atomics), so results are deterministic for a given kernel and build.
//
// 16-bit operands: the CPU widens them to float32 (exactly) and multiplies in float32; cuBLAS
// takes them as they are (cublasGemmEx, CUBLAS_COMPUTE_32F, tensor cores).
// cpu::gemm calls cblas_sgemm / cblas_dgemm once per batch when the build found OpenBLAS
// (COLT5_HAVE_OPENBLAS), else cpu::gemm_reference. cpu::gemm_reference is the always-compiled
// triple loop (float accumulated in double) that the tests compare OpenBLAS against; it accepts
// any strides for a, b and c.
#pragma once

#include "core/dispatch.h"
#include "core/tensor.h"

namespace colt5 {

// How one [rows, cols] matrix with strides (row_stride, col_stride) is handed to a row-major
// BLAS call: as-is (transposed = false, element (i, j) at i * ld + j) or as the transpose of a
// row-major [cols, rows] matrix (transposed = true, element (i, j) at j * ld + i).
// ok = false when neither fits (no unit stride, or rows overlapping / too close for a valid ld).
struct GemmLayout {
  bool ok = false;
  bool transposed = false;
  int64_t ld = 1;
};
GemmLayout gemm_layout(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride);

// The dtype of a product of two `operands` tensors: float32 for the 16-bit dtypes, else the same.
DType gemm_result_dtype(DType operands);

namespace cpu {
void gemm(const Tensor& a, const Tensor& b, Tensor& c);
// Plain triple loop, any strides for a, b, c (3-D, batch stride may be 0); same shapes as gemm.
void gemm_reference(const Tensor& a, const Tensor& b, Tensor& c);
// True when cpu::gemm goes through OpenBLAS in this build.
bool gemm_uses_openblas();
}  // namespace cpu

using GemmFn = void(const Tensor& a, const Tensor& b, Tensor& c);
COLT5_KERNEL(gemm, GemmFn, cpu::gemm)

namespace ops {

// c = a @ b for 3-D a [B, n, k] and b [B, k, m] with equal B (either may be an expanded view
// with batch stride 0). Operands that are not BLAS-shaped are made contiguous first.
// Returns a fresh contiguous [B, n, m]. `op` names the caller in errors.
Tensor gemm(const Tensor& a, const Tensor& b, const char* op = "gemm");

// matmul with torch's rules: a [..., n, k] @ b [..., k, m] -> [..., n, m], batch dims
// broadcast; a 1-D a is a row vector [1, k] and a 1-D b a column vector [k, 1], and that dim is
// dropped from the result (1-D @ 1-D is a 0-D dot product).
Tensor matmul(const Tensor& a, const Tensor& b);
// bmm: a [B, n, k] @ b [B, k, m] -> [B, n, m] (no broadcasting).
Tensor bmm(const Tensor& a, const Tensor& b);
// linear: x [..., in] @ w^T + bias, with w [out, in] (read as a transposed view, not copied)
// and bias [out] or undefined. x may be 1-D.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

}  // namespace ops
}  // namespace colt5
