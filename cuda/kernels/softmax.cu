// CUDA softmax / log_softmax over the middle axis of [outer, n, inner] (contract and math:
// core/ops/softmax.h). For one row x_0..x_{n-1}, with m = max_j x_j and s = sum_j exp(x_j - m):
//   forward:   softmax y_j = exp(x_j - m) / s          log_softmax y_j = x_j - m - log s
//   backward:  softmax gx_j = y_j (g_j - sum_k g_k y_k) log_softmax gx_j = g_j - exp(y_j) sum_k g_k
//
// inner == 1 (the last dim): one block per row (grid-stride over rows when there are more rows
// than blocks). The threads stride over the row, so a row of any length (1M and more) is done
// by one block looping; the row max and the sums are block-wide trees in shared memory, in a
// fixed order; a row that fits in shared memory is read once and kept there. inner > 1: one thread per (outer, inner) column, looping over n in index order;
// neighbouring threads read neighbouring addresses (coalesced). Sums accumulate in double for
// float rows, as on the CPU. No atomics: results are deterministic.
#include <cmath>
#include <cstdint>

#include "core/ops/softmax.h"
#include "cuda/kernels/common.cuh"

namespace colt5::cuda {

namespace {

constexpr int kMaxThreads = 512;         // threads per row block (a power of two)
constexpr int64_t kMaxRowBlocks = 65535;  // more rows than this: blocks loop over rows

// Block reductions: block_reduce / MaxOp / SumOp in common.cuh.

// x, y: [rows, n]; one block per row.
template <class T>
__global__ void __launch_bounds__(kMaxThreads)
    softmax_rows_kernel(const T* x, T* y, int64_t rows, int64_t n, bool is_log) {
  using A = acc_t<T>;
  __shared__ A s_red[kMaxThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {  // same trip count in every thread
    const T* xr = x + r * n;
    T* yr = y + r * n;
    A local = A(-INFINITY);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) local = fmax(local, A(xr[j]));
    const A m = block_reduce(local, s_red, MaxOp{});
    local = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) local += exp(A(xr[j]) - m);
    const A s = block_reduce(local, s_red, SumOp{});
    if (is_log) {
      const A shift = m + log(s);
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = T(A(xr[j]) - shift);
    } else {
      const A inv = A(1) / s;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = T(exp(A(xr[j]) - m) * inv);
    }
  }
}

// The same for rows that fit in shared memory (the common case: attention rows of a few thousand):
// the row is read from global memory once, exp is computed once per element, and the result is
// written once — 2 bytes moved per byte of input instead of 4 (read for the max, read for the
// sum, read again to write). Loads and stores are 16-byte vectors of V = 16 / sizeof(T)
// elements (the launcher checks n % V == 0, so every row starts 16-byte aligned): one thread
// then keeps 4x more bytes in flight, which is what a memory-bound kernel needs to reach full
// bandwidth. Float rows take exp in float (within 2 ulp) and sum in double.
template <class T>
struct alignas(16) Vec16 {
  static constexpr int kSize = 16 / int(sizeof(T));
  T v[kSize];
};

template <class T>
__global__ void __launch_bounds__(kMaxThreads)
    softmax_rows_cached_kernel(const T* x, T* y, int64_t rows, int64_t n, bool is_log) {
  using A = acc_t<T>;
  using V = Vec16<T>;
  constexpr int kV = V::kSize;
  extern __shared__ __align__(16) unsigned char smem[];
  A* s_red = reinterpret_cast<A*>(smem);                          // [blockDim.x], 16-byte multiple
  V* s_row = reinterpret_cast<V*>(smem + blockDim.x * sizeof(A));  // [n / kV]
  const int64_t nv = n / kV;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const V* xr = reinterpret_cast<const V*>(x + r * n);
    V* yr = reinterpret_cast<V*>(y + r * n);
    T local_max = T(-INFINITY);
#pragma unroll 4
    for (int64_t j = threadIdx.x; j < nv; j += blockDim.x) {
      const V v = xr[j];
      s_row[j] = v;
#pragma unroll
      for (int e = 0; e < kV; ++e) local_max = fmax(local_max, v.v[e]);
    }
    const A m = block_reduce(A(local_max), s_red, MaxOp{});
    const T mt = T(m);
    A local = 0;
    for (int64_t j = threadIdx.x; j < nv; j += blockDim.x) {  // each thread touches only its own vectors
      V v = s_row[j];
#pragma unroll
      for (int e = 0; e < kV; ++e) {
        const T ex = exp(v.v[e] - mt);
        local += A(ex);
        v.v[e] = ex;
      }
      if (!is_log) s_row[j] = v;
    }
    const A sum = block_reduce(local, s_red, SumOp{});
    const T shift = T(m + log(sum)), inv = T(A(1) / sum);
#pragma unroll 4
    for (int64_t j = threadIdx.x; j < nv; j += blockDim.x) {
      V v = s_row[j];
#pragma unroll
      for (int e = 0; e < kV; ++e) v.v[e] = is_log ? v.v[e] - shift : v.v[e] * inv;
      yr[j] = v;
    }
    __syncthreads();  // s_row is reused by the next row
  }
}

// Shared memory a cached row block needs, or 0 when the row does not fit or is not a whole
// number of 16-byte vectors (the general kernel handles those).
template <class T>
size_t cached_row_bytes(int64_t n, int threads) {
  if (n % Vec16<T>::kSize != 0) return 0;
  const size_t bytes = size_t(threads) * sizeof(acc_t<T>) + size_t(n) * sizeof(T);
  return bytes <= 48 * 1024 ? bytes : 0;
}

// x, y: [outer, n, inner]; one thread per column (o, i).
template <class T>
__global__ void softmax_columns_kernel(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, bool is_log) {
  using A = acc_t<T>;
  const int64_t cols = outer * inner;
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < cols; c += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = (c / inner) * n * inner + c % inner;  // element j at base + j * inner
    const T* xc = x + base;
    T* yc = y + base;
    A m = A(-INFINITY);
    for (int64_t j = 0; j < n; ++j) m = fmax(m, A(xc[j * inner]));
    A s = 0;
    for (int64_t j = 0; j < n; ++j) s += exp(A(xc[j * inner]) - m);
    if (is_log) {
      const A shift = m + log(s);
      for (int64_t j = 0; j < n; ++j) yc[j * inner] = T(A(xc[j * inner]) - shift);
    } else {
      const A inv = A(1) / s;
      for (int64_t j = 0; j < n; ++j) yc[j * inner] = T(exp(A(xc[j * inner]) - m) * inv);
    }
  }
}

// y, g, gx: [rows, n]; one block per row.
template <class T>
__global__ void __launch_bounds__(kMaxThreads)
    softmax_backward_rows_kernel(const T* y, const T* g, T* gx, int64_t rows, int64_t n, bool is_log) {
  using A = acc_t<T>;
  __shared__ A s_red[kMaxThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* yr = y + r * n;
    const T* gr = g + r * n;
    T* out = gx + r * n;
    A local = 0;  // softmax: sum_k g_k y_k;  log_softmax: sum_k g_k
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) local += is_log ? A(gr[j]) : A(gr[j]) * A(yr[j]);
    const A s = block_reduce(local, s_red, SumOp{});
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      out[j] = is_log ? T(A(gr[j]) - exp(A(yr[j])) * s) : T(A(yr[j]) * (A(gr[j]) - s));
  }
}

// y, g, gx: [outer, n, inner]; one thread per column (o, i).
template <class T>
__global__ void softmax_backward_columns_kernel(const T* y, const T* g, T* gx, int64_t outer, int64_t n,
                                                int64_t inner, bool is_log) {
  using A = acc_t<T>;
  const int64_t cols = outer * inner;
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < cols; c += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = (c / inner) * n * inner + c % inner;
    A s = 0;
    for (int64_t j = 0; j < n; ++j) {
      const int64_t at = base + j * inner;
      s += is_log ? A(g[at]) : A(g[at]) * A(y[at]);
    }
    for (int64_t j = 0; j < n; ++j) {
      const int64_t at = base + j * inner;
      gx[at] = is_log ? T(A(g[at]) - exp(A(y[at])) * s) : T(A(y[at]) * (A(g[at]) - s));
    }
  }
}

// The smallest power of two >= n, between one warp and kMaxThreads: short rows get small blocks.
int row_threads(int64_t n) {
  int t = 32;
  while (t < kMaxThreads && t < n) t *= 2;
  return t;
}

unsigned row_blocks(int64_t rows) { return unsigned(rows < kMaxRowBlocks ? rows : kMaxRowBlocks); }

}  // namespace

void softmax_forward(const Tensor& x, Tensor& y, int64_t outer, int64_t n, int64_t inner, bool is_log) {
  if (outer * n * inner == 0) return;
  cudaStream_t s = stream_for(y);
  visit_floating(x.dtype(), is_log ? "log_softmax" : "softmax", [&]<class T>() {
    const T* xs = static_cast<const T*>(x.raw_data());
    T* ys = static_cast<T*>(y.raw_data());
    if (inner == 1) {
      const int threads = row_threads(n);
      const bool aligned = reinterpret_cast<uintptr_t>(xs) % 16 == 0 && reinterpret_cast<uintptr_t>(ys) % 16 == 0;
      if (const size_t smem = aligned ? cached_row_bytes<T>(n, threads) : 0)
        softmax_rows_cached_kernel<T><<<row_blocks(outer), threads, smem, s>>>(xs, ys, outer, n, is_log);
      else
        softmax_rows_kernel<T><<<row_blocks(outer), threads, 0, s>>>(xs, ys, outer, n, is_log);
    } else {
      softmax_columns_kernel<T><<<grid_for(outer * inner), 256, 0, s>>>(xs, ys, outer, n, inner, is_log);
    }
  });
  COLT5_CHECK_LAUNCH(inner == 1 ? "softmax_rows_kernel" : "softmax_columns_kernel", s);
}

void softmax_backward(const Tensor& y, const Tensor& g, Tensor& gx, int64_t outer, int64_t n, int64_t inner,
                      bool is_log) {
  if (outer * n * inner == 0) return;
  cudaStream_t s = stream_for(gx);
  visit_floating(y.dtype(), is_log ? "log_softmax_backward" : "softmax_backward", [&]<class T>() {
    const T* ys = static_cast<const T*>(y.raw_data());
    const T* gs = static_cast<const T*>(g.raw_data());
    T* out = static_cast<T*>(gx.raw_data());
    if (inner == 1) {
      softmax_backward_rows_kernel<T><<<row_blocks(outer), row_threads(n), 0, s>>>(ys, gs, out, outer, n, is_log);
    } else {
      softmax_backward_columns_kernel<T><<<grid_for(outer * inner), 256, 0, s>>>(ys, gs, out, outer, n, inner,
                                                                                 is_log);
    }
  });
  COLT5_CHECK_LAUNCH(inner == 1 ? "softmax_backward_rows_kernel" : "softmax_backward_columns_kernel", s);
}

}  // namespace colt5::cuda

COLT5_REGISTER_CUDA(softmax_forward, colt5::cuda::softmax_forward)
COLT5_REGISTER_CUDA(softmax_backward, colt5::cuda::softmax_backward)
