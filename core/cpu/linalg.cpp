// CPU batched GEMM: c[p] = a[p] @ b[p] for a [B, n, k], b [B, k, m], c [B, n, m] (contract in
// core/ops/linalg.h).
//
// With OpenBLAS, each batch is one cblas_?gemm call in row-major order: an operand that is a
// transposed view is passed with CblasTrans and its column stride as the leading dimension, so
// nothing is copied. The reference kernel is a plain triple loop over any strides, summing
// c[p, i, j] = sum_q a[p, i, q] * b[p, q, j] in increasing q (in double for float inputs); it is
// what the build falls back to without OpenBLAS, and what the tests compare OpenBLAS against.
#include <climits>
#include <type_traits>

#include "core/ops/copy.h"
#include "core/ops/linalg.h"

#ifdef COLT5_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace colt5::cpu {

namespace {

template <class T>
void gemm_reference_t(const Tensor& a, const Tensor& b, Tensor& c) {
  using Acc = std::conditional_t<std::is_same_v<T, float>, double, T>;
  const int64_t B = c.size(0), n = c.size(1), m = c.size(2), k = a.size(2);
  const T* as = static_cast<const T*>(a.raw_data());
  const T* bs = static_cast<const T*>(b.raw_data());
  T* cs = static_cast<T*>(c.raw_data());
  const int64_t a0 = a.stride(0), a1 = a.stride(1), a2 = a.stride(2);
  const int64_t b0 = b.stride(0), b1 = b.stride(1), b2 = b.stride(2);
  const int64_t c0 = c.stride(0), c1 = c.stride(1), c2 = c.stride(2);
  for (int64_t p = 0; p < B; ++p)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) {
        const T* arow = as + p * a0 + i * a1;  // a[p, i, :]
        const T* bcol = bs + p * b0 + j * b2;  // b[p, :, j]
        Acc s = 0;
        for (int64_t q = 0; q < k; ++q) s += Acc(arow[q * a2]) * Acc(bcol[q * b1]);
        cs[p * c0 + i * c1 + j * c2] = T(s);
      }
}

#ifdef COLT5_HAVE_OPENBLAS
// cblas takes int sizes and leading dimensions.
bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

template <class T>
void gemm_blas_t(const Tensor& a, const Tensor& b, Tensor& c, const GemmLayout& la, const GemmLayout& lb) {
  const int n = int(c.size(1)), m = int(c.size(2)), k = int(a.size(2));
  const T* as = static_cast<const T*>(a.raw_data());
  const T* bs = static_cast<const T*>(b.raw_data());
  T* cs = static_cast<T*>(c.raw_data());
  const CBLAS_TRANSPOSE ta = la.transposed ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = lb.transposed ? CblasTrans : CblasNoTrans;
  for (int64_t p = 0; p < c.size(0); ++p) {
    const T* ap = as + p * a.stride(0);  // stride 0: the same matrix for every batch
    const T* bp = bs + p * b.stride(0);
    T* cp = cs + p * int64_t(n) * m;
    if constexpr (std::is_same_v<T, float>)
      cblas_sgemm(CblasRowMajor, ta, tb, n, m, k, 1.0f, ap, int(la.ld), bp, int(lb.ld), 0.0f, cp, m);
    else
      cblas_dgemm(CblasRowMajor, ta, tb, n, m, k, 1.0, ap, int(la.ld), bp, int(lb.ld), 0.0, cp, m);
  }
}
#endif

// 16-bit operands, widened to float32 (exact): the product is then the float32 one.
Tensor widened(const Tensor& t) { return is_half(t.dtype()) ? ops::to_dtype(t, DType::Float32) : t; }

}  // namespace

void gemm_reference(const Tensor& a, const Tensor& b, Tensor& c) {
  const Tensor aw = widened(a), bw = widened(b);
  visit_floating(c.dtype(), "gemm_reference", [&]<class T>() { gemm_reference_t<T>(aw, bw, c); });
}

bool gemm_uses_openblas() {
#ifdef COLT5_HAVE_OPENBLAS
  return true;
#else
  return false;
#endif
}

void gemm(const Tensor& a_in, const Tensor& b_in, Tensor& c) {
  const Tensor a = widened(a_in), b = widened(b_in);
#ifdef COLT5_HAVE_OPENBLAS
  const int64_t n = c.size(1), m = c.size(2), k = a.size(2);
  const GemmLayout la = gemm_layout(n, k, a.stride(1), a.stride(2));
  const GemmLayout lb = gemm_layout(k, m, b.stride(1), b.stride(2));
  // ops::gemm guarantees BLAS-shaped operands; sizes beyond int range take the loop instead.
  if (la.ok && lb.ok && c.is_contiguous() && fits_int(n) && fits_int(m) && fits_int(k) && fits_int(la.ld) &&
      fits_int(lb.ld) && n > 0 && m > 0 && k > 0) {
    visit_floating(c.dtype(), "gemm", [&]<class T>() { gemm_blas_t<T>(a, b, c, la, lb); });
    return;
  }
#endif
  gemm_reference(a, b, c);
}

}  // namespace colt5::cpu
