// CUDA reductions over the middle axis of x = [outer, n, inner] (contract: core/ops/reduce.h).
//
// inner == 1 (reducing the last dim): one block per row, each thread strides over the row,
// then a fixed-order tree in shared memory. Rows of any length (1M and more) work: a block
// loops. inner > 1: one thread per (outer, inner) column, looping over n; neighbouring threads
// read neighbouring addresses (coalesced). A sum over few long columns (a bias gradient: 128
// columns of 16384 rows) would leave the GPU nearly idle that way, so there the columns are cut
// into S pieces: one thread per (piece, column) sums its piece, then one per column adds the S
// partial sums in order. No atomics anywhere: results are deterministic.
// Float accumulates in double (as on the CPU).
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/ops/reduce.h"
#include "cuda/kernels/common.cuh"

namespace colt5::cuda {

namespace {

constexpr int kThreads = 256;

// (value, index) of the running extreme; NaN wins, then the larger (or smaller), then the lower index.
template <class T>
struct Extreme {
  T v;
  int64_t i;
};

template <class T>
__device__ __forceinline__ bool better(T a, int64_t ia, T b, int64_t ib, bool is_min) {
  const bool a_nan = a != a, b_nan = b != b;
  if (a_nan || b_nan) return a_nan && (!b_nan || ia < ib);
  if (a == b) return ia < ib;
  return is_min ? a < b : a > b;
}

template <class T>
__global__ void reduce_rows_kernel(ReduceOp op, const T* x, int64_t n, T* out, int64_t* out_idx) {
  using A = acc_t<T>;
  __shared__ A s_acc[kThreads];
  __shared__ T s_val[kThreads];
  __shared__ int64_t s_idx[kThreads];
  const T* row = x + blockIdx.x * n;
  const int tid = threadIdx.x;
  if constexpr (!std::is_floating_point_v<T>) {  // integers: sum only (checked by ops::reduce)
    A local = 0;
    for (int64_t j = tid; j < n; j += blockDim.x) local += A(row[j]);
    A total = block_sum(local, s_acc);
    if (tid == 0) out[blockIdx.x] = T(total);
    return;
  } else {
  if (op == ReduceOp::Sum || op == ReduceOp::LogSumExp) {
    A m = 0;
    if (op == ReduceOp::LogSumExp) {
      // pass 1: the row max (block-wide), so that exp never overflows
      T local = -INFINITY;
      for (int64_t j = tid; j < n; j += blockDim.x) local = fmax(local, row[j]);
      s_val[tid] = local;
      __syncthreads();
      for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (tid < s) s_val[tid] = fmax(s_val[tid], s_val[tid + s]);
        __syncthreads();
      }
      m = s_val[0];
      __syncthreads();
      if (isinf(double(m))) {
        if (tid == 0) out[blockIdx.x] = T(m);
        return;
      }
    }
    A local = 0;
    for (int64_t j = tid; j < n; j += blockDim.x)
      local += op == ReduceOp::Sum ? A(row[j]) : A(exp(double(row[j]) - double(m)));
    A total = block_sum(local, s_acc);
    if (tid == 0) out[blockIdx.x] = op == ReduceOp::Sum ? T(total) : T(m + log(double(total)));
    return;
  }
  const bool is_min = op == ReduceOp::Min;
  T bv = row[0];
  int64_t bi = 0;
  for (int64_t j = tid; j < n; j += blockDim.x)
    if (better(row[j], j, bv, bi, is_min)) bv = row[j], bi = j;
  s_val[tid] = bv;
  s_idx[tid] = bi;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (tid < s && better(s_val[tid + s], s_idx[tid + s], s_val[tid], s_idx[tid], is_min)) {
      s_val[tid] = s_val[tid + s];
      s_idx[tid] = s_idx[tid + s];
    }
    __syncthreads();
  }
  if (tid == 0) {
    if (op == ReduceOp::ArgMax) out_idx[blockIdx.x] = s_idx[0];
    else out[blockIdx.x] = s_val[0];
  }
  }
}

template <class T>
__global__ void reduce_columns_kernel(ReduceOp op, const T* x, int64_t outer, int64_t n, int64_t inner, T* out,
                                      int64_t* out_idx) {
  using A = acc_t<T>;
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < outer * inner;
       c += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = c / inner, i = c % inner;
    const T* col = x + o * n * inner + i;  // element j at col[j * inner]
    if constexpr (!std::is_floating_point_v<T>) {
      A s = 0;
      for (int64_t j = 0; j < n; ++j) s += A(col[j * inner]);
      out[c] = T(s);
    } else if (op == ReduceOp::Sum) {
      A s = 0;
      for (int64_t j = 0; j < n; ++j) s += A(col[j * inner]);
      out[c] = T(s);
    } else if (op == ReduceOp::LogSumExp) {
      T m = col[0];
      for (int64_t j = 1; j < n; ++j) m = fmax(m, col[j * inner]);
      if (isinf(double(m))) {
        out[c] = m;
        continue;
      }
      A s = 0;
      for (int64_t j = 0; j < n; ++j) s += A(exp(double(col[j * inner]) - double(m)));
      out[c] = T(double(m) + log(double(s)));
    } else {
      const bool is_min = op == ReduceOp::Min;
      T bv = col[0];
      int64_t bi = 0;
      for (int64_t j = 1; j < n; ++j)
        if (better(col[j * inner], j, bv, bi, is_min)) bv = col[j * inner], bi = j;
      if (op == ReduceOp::ArgMax) out_idx[c] = bi;
      else out[c] = bv;
    }
  }
}

// Sums of columns in pieces: partial[s, c] = sum of column c over rows [s*piece, (s+1)*piece).
template <class T>
__global__ void sum_pieces_kernel(const T* x, int64_t outer, int64_t n, int64_t inner, int64_t piece, int64_t pieces,
                                  acc_t<T>* partial) {
  using A = acc_t<T>;
  const int64_t cols = outer * inner;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < cols * pieces;
       t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = t % cols, sidx = t / cols;
    const int64_t o = c / inner, i = c % inner;
    const T* col = x + o * n * inner + i;
    const int64_t end = (sidx + 1) * piece < n ? (sidx + 1) * piece : n;
    A acc = 0;
    for (int64_t j = sidx * piece; j < end; ++j) acc += A(col[j * inner]);
    partial[t] = acc;
  }
}

template <class T>
__global__ void sum_partials_columns_kernel(const acc_t<T>* partial, int64_t cols, int64_t pieces, T* out) {
  using A = acc_t<T>;
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < cols; c += int64_t(gridDim.x) * blockDim.x) {
    A acc = 0;
    for (int64_t sidx = 0; sidx < pieces; ++sidx) acc += partial[sidx * cols + c];
    out[c] = T(acc);
  }
}

}  // namespace

void reduce(ReduceOp op, const Tensor& x, int64_t outer, int64_t n, int64_t inner, Tensor& out) {
  cudaStream_t s = stream_for(out);
  visit_numeric(x.dtype(), "reduce", [&]<class T>() {
    const T* xs = static_cast<const T*>(x.raw_data());
    T* o = op == ReduceOp::ArgMax ? nullptr : static_cast<T*>(out.raw_data());
    int64_t* oi = op == ReduceOp::ArgMax ? static_cast<int64_t*>(out.raw_data()) : nullptr;
    if (inner == 1) {
      COLT5_CHECK(outer <= 0x7fffffff, "reduce: too many rows (", outer, ") for one launch");
      reduce_rows_kernel<T><<<unsigned(outer), kThreads, 0, s>>>(op, xs, n, o, oi);
    } else if (op == ReduceOp::Sum && outer * inner < (int64_t(1) << 15) && n >= 512) {
      // Few long columns: pieces of >= 64 rows, enough of them for ~2^17 threads in all.
      const int64_t cols = outer * inner;
      const int64_t pieces = std::max<int64_t>(1, std::min<int64_t>(n / 64, (int64_t(1) << 17) / cols));
      const int64_t piece = (n + pieces - 1) / pieces;
      const DType acc_dtype = std::is_floating_point_v<T> ? DType::Float64 : DType::Int64;
      Tensor partial = Tensor::empty({pieces * cols}, acc_dtype, out.device());
      auto* ps = static_cast<acc_t<T>*>(partial.raw_data());
      sum_pieces_kernel<T><<<grid_for(pieces * cols), kThreads, 0, s>>>(xs, outer, n, inner, piece, pieces, ps);
      COLT5_CHECK_LAUNCH("sum_pieces_kernel", s);
      sum_partials_columns_kernel<T><<<grid_for(cols), kThreads, 0, s>>>(ps, cols, pieces, o);
    } else {
      reduce_columns_kernel<T><<<grid_for(outer * inner), kThreads, 0, s>>>(op, xs, outer, n, inner, o, oi);
    }
  });
  COLT5_CHECK_LAUNCH("reduce_kernel", s);
}

}  // namespace colt5::cuda

COLT5_REGISTER_CUDA(reduce, colt5::cuda::reduce)
