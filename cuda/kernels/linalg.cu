// CUDA batched GEMM through cuBLAS: c[p] = a[p] @ b[p] for a [B, n, k], b [B, k, m],
// c [B, n, m] contiguous (contract in core/ops/linalg.h).
//
// Dims legend: B batch, n rows of a and c, k inner size, m columns of b and c.
//
// cuBLAS is column-major. A row-major [r, c] matrix with leading dimension ld is, read
// column-major, its own transpose [c, r] with the same ld. So the row-major product
// c = a @ b is computed as the column-major product c^T = b^T @ a^T:
//   cuBLAS A := b's memory, op from b's layout;  cuBLAS B := a's memory, op from a's layout;
//   (M, N, K) := (m, n, k);  ldc := m (c is contiguous).
// An operand that is a transposed view (unit stride in dim -2, gemm_layout(...).transposed)
// reads as the untransposed matrix column-major, so it gets CUBLAS_OP_T with ld = its dim -1
// stride; nothing is copied. Batch strides are passed as they are, 0 included (one matrix
// shared by every batch); a single batch uses the plain (non-batched) call.
//
// Precision: float32 products use full float32 arithmetic unless colt5::allow_tf32() is on, in
// which case the handle's math mode is switched to TF32 tensor cores for the call (and restored
// afterwards). float64 always runs in float64. bfloat16 / float16 operands run on tensor cores
// with float32 accumulation and a float32 result. cuBLAS gives bit-identical results run to run for
// the same problem on the same GPU (its default atomics mode is off), so this is deterministic.
#include <type_traits>

#include "core/backend.h"
#include "core/ops/linalg.h"
#include "cuda/kernels/common.cuh"

namespace colt5::cuda {

namespace {

// Sets the handle's math mode for one call and puts the previous one back on scope exit
// (also when the call throws).
class MathModeScope {
public:
  MathModeScope(cublasHandle_t h, cublasMath_t mode) : h_(h) {
    CUBLAS_CHECK(cublasGetMathMode(h_, &saved_));
    if (saved_ != mode) {
      CUBLAS_CHECK(cublasSetMathMode(h_, mode));
      changed_ = true;
    }
  }
  ~MathModeScope() {
    if (changed_) cublasSetMathMode(h_, saved_);  // best effort: a destructor must not throw
  }
  MathModeScope(const MathModeScope&) = delete;
  MathModeScope& operator=(const MathModeScope&) = delete;

private:
  cublasHandle_t h_;
  cublasMath_t saved_ = CUBLAS_DEFAULT_MATH;
  bool changed_ = false;
};

cublasOperation_t op_of(const GemmLayout& l) { return l.transposed ? CUBLAS_OP_T : CUBLAS_OP_N; }

template <class T>
void gemm_t(cublasHandle_t h, const Tensor& a, const Tensor& b, Tensor& c, const GemmLayout& la,
            const GemmLayout& lb) {
  const int64_t B = c.size(0), n = c.size(1), m = c.size(2), k = a.size(2);
  const T* as = static_cast<const T*>(a.raw_data());  // [B, n, k]
  const T* bs = static_cast<const T*>(b.raw_data());  // [B, k, m]
  T* cs = static_cast<T*>(c.raw_data());              // [B, n, m]
  const T one = T(1), zero = T(0);
  const cublasOperation_t opa = op_of(lb), opb = op_of(la);  // cuBLAS operands: b first, then a
  if (B == 1) {
    if constexpr (std::is_same_v<T, float>)
      CUBLAS_CHECK(cublasSgemm_64(h, opa, opb, m, n, k, &one, bs, lb.ld, as, la.ld, &zero, cs, m));
    else
      CUBLAS_CHECK(cublasDgemm_64(h, opa, opb, m, n, k, &one, bs, lb.ld, as, la.ld, &zero, cs, m));
    return;
  }
  const long long sa = a.stride(0), sb = b.stride(0), sc = n * m;
  if constexpr (std::is_same_v<T, float>)
    CUBLAS_CHECK(cublasSgemmStridedBatched_64(h, opa, opb, m, n, k, &one, bs, lb.ld, sb, as, la.ld, sa, &zero, cs, m,
                                              sc, B));
  else
    CUBLAS_CHECK(cublasDgemmStridedBatched_64(h, opa, opb, m, n, k, &one, bs, lb.ld, sb, as, la.ld, sa, &zero, cs, m,
                                              sc, B));
}

// 16-bit operands, float32 result: cublasGemmEx with float32 compute (the tensor cores
// multiply the 16-bit values exactly and accumulate in float32).
void gemm_half(cublasHandle_t h, const Tensor& a, const Tensor& b, Tensor& c, const GemmLayout& la,
               const GemmLayout& lb) {
  const int64_t B = c.size(0), n = c.size(1), m = c.size(2), k = a.size(2);
  const cudaDataType_t t = a.dtype() == DType::BFloat16 ? CUDA_R_16BF : CUDA_R_16F;
  const float one = 1.0f, zero = 0.0f;
  const cublasOperation_t opa = op_of(lb), opb = op_of(la);  // cuBLAS operands: b first, then a
  if (B == 1) {
    CUBLAS_CHECK(cublasGemmEx_64(h, opa, opb, m, n, k, &one, b.raw_data(), t, lb.ld, a.raw_data(), t, la.ld, &zero,
                                 c.raw_data(), CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return;
  }
  const long long sa = a.stride(0), sb = b.stride(0), sc = n * m;
  CUBLAS_CHECK(cublasGemmStridedBatchedEx_64(h, opa, opb, m, n, k, &one, b.raw_data(), t, lb.ld, sb, a.raw_data(), t,
                                             la.ld, sa, &zero, c.raw_data(), CUDA_R_32F, m, sc, B, CUBLAS_COMPUTE_32F,
                                             CUBLAS_GEMM_DEFAULT));
}

}  // namespace

void gemm(const Tensor& a, const Tensor& b, Tensor& c) {
  const char* op = "gemm";
  COLT5_CHECK(a.dim() == 3 && b.dim() == 3 && c.dim() == 3, op, ": expected 3-D a, b, c, got ", a.shape(), ", ",
              b.shape(), ", ", c.shape());
  const int64_t B = c.size(0), n = c.size(1), m = c.size(2), k = a.size(2);
  COLT5_CHECK(a.size(0) == B && a.size(1) == n && b.size(0) == B && b.size(1) == k && b.size(2) == m, op,
              ": expected a [", B, ", ", n, ", ", k, "] and b [", B, ", ", k, ", ", m, "], got ", a.shape(), " and ",
              b.shape());
  COLT5_CHECK(c.is_contiguous(), op, ": argument 'c' expected a contiguous output, got strides ", c.strides());
  cudaStream_t s = stream_for(c);
  if (B == 0 || n == 0 || m == 0) return;  // nothing to write
  if (k == 0) {                            // an empty sum: all-zero bits are 0.0 in float and double
    CUDA_CHECK(cudaMemsetAsync(c.raw_data(), 0, size_t(c.numel()) * c.element_size(), s));
    return;
  }
  const GemmLayout la = gemm_layout(n, k, a.stride(1), a.stride(2));
  const GemmLayout lb = gemm_layout(k, m, b.stride(1), b.stride(2));
  COLT5_CHECK(la.ok, op, ": argument 'a' expected a BLAS-shaped operand (unit stride in one of its last two dims), "
                         "got strides ", a.strides());
  COLT5_CHECK(lb.ok, op, ": argument 'b' expected a BLAS-shaped operand (unit stride in one of its last two dims), "
                         "got strides ", b.strides());
  cublasHandle_t h = context(c.device().index).cublas;  // bound to the device's stream s
  if (is_half(a.dtype())) {
    COLT5_CHECK(c.dtype() == DType::Float32, op, ": argument 'c' expected float32 for ", dtype_name(a.dtype()),
                " operands, got ", dtype_name(c.dtype()));
    gemm_half(h, a, b, c, la, lb);
    profile_mark("cublas gemm (16-bit)", s);
    return;
  }
  visit_floating(c.dtype(), op, [&]<class T>() {
    if constexpr (std::is_same_v<T, float>) {
      MathModeScope mode(h, allow_tf32() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
      gemm_t<T>(h, a, b, c, la, lb);
    } else {
      gemm_t<T>(h, a, b, c, la, lb);
    }
  });
  profile_mark(B == 1 ? "cublas gemm" : "cublas gemm (strided batched)", s);
}

}  // namespace colt5::cuda

COLT5_REGISTER_CUDA(gemm, colt5::cuda::gemm)
