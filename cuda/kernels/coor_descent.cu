// CUDA coordinate descent (contract: core/ops/coor_descent.h; math and backward derivation:
// autograd/ops/coor_descent.cpp). Dims legend: s, y, g, ds [rows, n]; a [rows, T]; logk,
// dlogk [rows]; T = n_iters.
//
// One block per row (blocks loop over rows when there are more than kMaxRowBlocks). A row that
// fits (n * 9 bytes <= kCacheBytes) is loaded once into shared memory, as float64 values plus
// keep flags; a longer row is re-read from global memory on every pass (threads stride over
// it, so any n works). Every row is computed in float64. Block reductions (max, sum) are
// common.cuh's block_reduce: a shuffle butterfly within each warp, then the warp results
// combined in index order; a fixed order, so results are deterministic. No atomics.
//
// The logsumexp of every iteration needs a shift m_t >= about max_j z_t,j so that no exp
// overflows. z_t,j = (s_j + b_t-1,j) / eps_t = min(s_j, -a_t-1) / eps_t up to rounding, and min(., c)
// and division by eps_t > 0 are monotone, so m_t = min(max_j s_j, -a_t-1) / eps_t (m_1 = 0) is the
// row's maximum up to rounding: the row max of s is reduced once, at load time, and each
// iteration needs one block reduction (a sum) instead of two. lse_t = m_t + log sum_j exp(z_t,j -
// m_t) is exact for any m_t, so this changes results by rounding only (the CPU reference takes the
// exact maximum).
//
// Forward, per iteration t: block sum of exp(z_t - m_t), a_t for every thread; thread 0 stores
// a_t. The output pass writes exp(min(s + a_T, 0) / eps_{T+1}).
//
// Backward: the CPU reference walks t = T..1 accumulating ds_j; here the walk is split so that
// ds_j lives in one register of the thread that owns j:
//   pass 1 (t = 2..T): lse_t and c_t = sum_j p_t,j h_t,j do not depend on the adjoints, so the
//          block computes them in forward order, with abar_T = sum_j gbar_j; one reduction of the
//          pair (sum_j e_j, sum_j e_j h_j), e_j = exp(z_t,j - m_t), gives both: lse_t = m_t +
//          log(first), c_t = second / first;
//   thread 0: abar_{t-1} = abar_t c_t for t = T..2, and dlogk = sum_t abar_t eps_t;
//   pass 2: ds_j = gbar_j - sum_{t=2..T} abar_t exp(z_t,j - lse_t) [s_j + a_{t-1} <= 0].
// lse_t and abar_t go through a small global scratch [blocks, 2T] (float64).
#include <cmath>

#include "core/ops/coor_descent.h"
#include "cuda/kernels/common.cuh"

namespace colt5::cuda {

namespace {

constexpr int kMaxThreads = 512;          // threads per row block (a power of two, >= 32)
constexpr int64_t kMaxRowBlocks = 65535;  // more rows than this: blocks loop over rows
constexpr int64_t kCacheBytes = 40 * 1024;  // dynamic shared memory for one cached row

// The smallest power of two >= n, between one warp and kMaxThreads.
int row_threads(int64_t n) {
  int t = 32;
  while (t < kMaxThreads && t < n) t *= 2;
  return t;
}

unsigned row_blocks(int64_t rows) { return unsigned(rows < kMaxRowBlocks ? rows : kMaxRowBlocks); }

bool fits_cache(int64_t n) { return n * int64_t(sizeof(double) + 1) <= kCacheBytes; }

// Block reductions: block_reduce / MaxOp / SumOp of common.cuh (`red` holds at least
// kMaxThreads / 32 doubles of shared memory).

// One row of s and of the mask, read from the shared-memory copy when the row is cached.
template <class T>
struct Row {
  const T* s;            // [n] in global memory
  const bool* mask;      // [n] or null
  const double* cs;      // [n] cached values, or null
  const unsigned char* ck;  // [n] cached keep flags
  double smax;           // max of the kept s_j (the same in every thread)
  __device__ double value(int64_t j) const { return cs ? cs[j] : double(s[j]); }
  __device__ bool keep(int64_t j) const { return cs ? ck[j] != 0 : (mask == nullptr || mask[j]); }
};

// Point `row` at row r, copying it into shared memory when `cache`; returns the number of kept
// entries (the same in every thread). Ends with a barrier.
template <class T>
__device__ int64_t load_row(Row<T>& row, const T* s, const bool* mask, int64_t r, int64_t n, bool cache,
                            double* smem, double* red) {
  row.s = s + r * n;
  row.mask = mask ? mask + r * n : nullptr;
  row.cs = nullptr;
  row.ck = nullptr;
  double kept = 0, m = -INFINITY;
  if (cache) {
    unsigned char* ck = reinterpret_cast<unsigned char*>(smem + n);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const double v = double(row.s[j]);
      smem[j] = v;
      ck[j] = row.mask == nullptr || row.mask[j] ? 1 : 0;
      kept += ck[j];
      if (ck[j]) m = fmax(m, v);
    }
    row.cs = smem;
    row.ck = ck;
  } else {
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      if (row.keep(j)) {
        kept += 1.0;
        m = fmax(m, row.value(j));
      }
  }
  row.smax = block_reduce(m, red, MaxOp{});
  return int64_t(block_reduce(kept, red, SumOp{}));  // its barriers publish the cache
}

// Block-wide sums of two values at once (the pair travels through one set of barriers), in
// block_reduce's fixed order; `shared` holds 2 * kMaxThreads / 32 doubles.
__device__ void block_sum2(double& x, double& y, double* shared) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    x += __shfl_xor_sync(0xffffffffu, x, offset);
    y += __shfl_xor_sync(0xffffffffu, y, offset);
  }
  const int warp = threadIdx.x / 32, warps = blockDim.x / 32;
  if (threadIdx.x % 32 == 0) {
    shared[2 * warp] = x;
    shared[2 * warp + 1] = y;
  }
  __syncthreads();
  x = shared[0];
  y = shared[1];
  for (int w = 1; w < warps; ++w) {
    x += shared[2 * w];
    y += shared[2 * w + 1];
  }
  __syncthreads();
}

// z_t,j = (s_j + b_{t-1,j}) / eps_t (s + b_0 = 0).
__device__ __forceinline__ double shifted(double s, int64_t t, double a_prev, double eps_t) {
  return (t == 1 ? 0.0 : coor_descent_shift(s, a_prev)) / eps_t;
}

// The shift m_t of iteration t's logsumexp (see the top of the file).
template <class T>
__device__ double row_shift(const Row<T>& row, int64_t t, double a_prev, double eps_t) {
  return t == 1 ? 0.0 : fmin(row.smax, -a_prev) / eps_t;
}

// logsumexp over the kept z_t,j of the row: one block sum of exp(z - m_t).
template <class T>
__device__ double row_lse(const Row<T>& row, int64_t n, int64_t t, double a_prev, double eps_t, double* red) {
  const double m = row_shift(row, t, a_prev, eps_t);
  double sum = 0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
    if (row.keep(j)) sum += exp(shifted(row.value(j), t, a_prev, eps_t) - m);
  sum = block_reduce(sum, red, SumOp{});
  return m + log(sum);
}

template <class T>
__global__ void __launch_bounds__(kMaxThreads)
    coor_descent_forward_kernel(const T* s, const bool* mask, const double* logk, T* y, double* a, int64_t rows,
                                int64_t n, CoorDescentParams p, bool cache) {
  extern __shared__ double smem[];
  __shared__ double red[kMaxThreads / 32];
  const int64_t iters = p.n_iters;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {  // same trip count in every thread
    Row<T> row;
    const int64_t kept = load_row(row, s, mask, r, n, cache, smem, red);
    T* yr = y + r * n;
    double* ar = a + r * iters;
    if (kept == 0) {  // nothing to select: zeros
      for (int64_t t = threadIdx.x; t < iters; t += blockDim.x) ar[t] = 0.0;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = T(0);
      continue;
    }
    const double lk = logk[r];
    double a_prev = 0.0, eps_t = p.eps_start;
    for (int64_t t = 1; t <= iters; ++t) {
      a_prev = eps_t * (lk - row_lse(row, n, t, a_prev, eps_t, red));
      if (threadIdx.x == 0) ar[t - 1] = a_prev;
      eps_t = coor_descent_next_eps(eps_t, p);
    }
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      yr[j] = row.keep(j) ? T(coor_descent_value(row.value(j) + a_prev, eps_t)) : T(0);
    __syncthreads();  // the next row overwrites the cache
  }
}

// gbar_j = g_j y_j / eps_f [x_j <= 0], x_j = s_j + a_T.
__device__ __forceinline__ double output_adjoint(double s, double a_last, double g, double eps_final) {
  const double x = s + a_last;
  return x > 0.0 ? 0.0 : g * coor_descent_value(x, eps_final) / eps_final;
}

template <class T>
__global__ void __launch_bounds__(kMaxThreads)
    coor_descent_backward_kernel(const T* s, const bool* mask, const double* a, const T* g, T* ds, double* dlogk,
                                 double* work, int64_t rows, int64_t n, CoorDescentParams p, bool cache) {
  extern __shared__ double smem[];
  __shared__ double red[2 * kMaxThreads / 32];
  const int64_t iters = p.n_iters;
  double* lse = work + int64_t(blockIdx.x) * 2 * iters;  // lse[t - 1] = lse_t
  double* abar = lse + iters;                            // abar[t - 1] = c_t, then dL/da_t
  double eps_final = p.eps_start;
  for (int64_t t = 1; t <= iters; ++t) eps_final = coor_descent_next_eps(eps_final, p);
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    Row<T> row;
    const int64_t kept = load_row(row, s, mask, r, n, cache, smem, red);
    const T* gr = g + r * n;
    T* dr = ds + r * n;
    const double* ar = a + r * iters;  // ar[t - 1] = a_t
    if (kept == 0) {
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) dr[j] = T(0);
      if (dlogk && threadIdx.x == 0) dlogk[r] = 0.0;
      continue;
    }
    const double a_last = ar[iters - 1];
    double local = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      if (row.keep(j)) local += output_adjoint(row.value(j), a_last, double(gr[j]), eps_final);
    const double abar_last = block_reduce(local, red, SumOp{});
    // Pass 1: lse_t and c_t for t = 2..T.
    double eps_t = p.eps_start;
    for (int64_t t = 2; t <= iters; ++t) {
      eps_t = coor_descent_next_eps(eps_t, p);
      const double a_prev = ar[t - 2];
      const double m = row_shift(row, t, a_prev, eps_t);
      double sum = 0, c = 0;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        if (!row.keep(j)) continue;
        const double v = row.value(j);
        const double e = exp(shifted(v, t, a_prev, eps_t) - m);
        sum += e;
        if (v + a_prev > 0.0) c += e;
      }
      block_sum2(sum, c, red);
      if (threadIdx.x == 0) {
        lse[t - 1] = m + log(sum);
        abar[t - 1] = c / sum;
      }
    }
    // The adjoints of a_T..a_1, and of log k.
    if (threadIdx.x == 0) {
      double ab = abar_last;
      for (int64_t t = iters; t >= 2; --t) {
        const double c = abar[t - 1];
        abar[t - 1] = ab;
        ab *= c;
      }
      abar[0] = ab;
      if (dlogk) {
        double dl = 0, e = p.eps_start;
        for (int64_t t = 1; t <= iters; ++t) {
          dl += abar[t - 1] * e;
          e = coor_descent_next_eps(e, p);
        }
        dlogk[r] = dl;
      }
    }
    __syncthreads();  // publishes lse and abar to the block
    // Pass 2: each thread owns its j and sums over t in a register.
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      if (!row.keep(j)) {
        dr[j] = T(0);
        continue;
      }
      const double v = row.value(j);
      double acc = output_adjoint(v, a_last, double(gr[j]), eps_final);
      double e = p.eps_start;
      for (int64_t t = 2; t <= iters; ++t) {
        e = coor_descent_next_eps(e, p);
        const double a_prev = ar[t - 2];
        if (v + a_prev > 0.0) continue;
        acc -= abar[t - 1] * exp(shifted(v, t, a_prev, e) - lse[t - 1]);
      }
      dr[j] = T(acc);
    }
    __syncthreads();  // the next row overwrites the cache and the scratch
  }
}

size_t cache_bytes(int64_t n) { return fits_cache(n) ? size_t(n) * (sizeof(double) + 1) : 0; }

}  // namespace

void coor_descent_forward(const Tensor& s, const Tensor& mask, const Tensor& logk, Tensor& y, Tensor& a,
                          const CoorDescentParams& p) {
  const int64_t rows = s.size(0), n = s.size(1);
  if (rows * n == 0) return;
  cudaStream_t st = stream_for(y);
  const bool cache = fits_cache(n);
  visit_floating(s.dtype(), "coor_descent", [&]<class T>() {
    coor_descent_forward_kernel<T><<<row_blocks(rows), row_threads(n), cache_bytes(n), st>>>(
        static_cast<const T*>(s.raw_data()), mask.defined() ? static_cast<const bool*>(mask.raw_data()) : nullptr,
        static_cast<const double*>(logk.raw_data()), static_cast<T*>(y.raw_data()),
        static_cast<double*>(a.raw_data()), rows, n, p, cache);
  });
  COLT5_CHECK_LAUNCH("coor_descent_forward_kernel", st);
}

void coor_descent_backward(const Tensor& s, const Tensor& mask, const Tensor& logk, const Tensor& a,
                           const Tensor& g, Tensor& ds, Tensor& dlogk, const CoorDescentParams& p) {
  (void)logk;  // the gradient depends on log k only through the saved a_t
  const int64_t rows = s.size(0), n = s.size(1);
  if (rows * n == 0) return;
  cudaStream_t st = stream_for(ds);
  const bool cache = fits_cache(n);
  const unsigned blocks = row_blocks(rows);
  // Per-block scratch; freed into the stream-ordered cache when this returns, which later work
  // on the same stream may reuse only after this kernel.
  Tensor work = Tensor::empty({int64_t(blocks), 2 * p.n_iters}, DType::Float64, s.device());
  visit_floating(s.dtype(), "coor_descent_backward", [&]<class T>() {
    coor_descent_backward_kernel<T><<<blocks, row_threads(n), cache_bytes(n), st>>>(
        static_cast<const T*>(s.raw_data()), mask.defined() ? static_cast<const bool*>(mask.raw_data()) : nullptr,
        static_cast<const double*>(a.raw_data()), static_cast<const T*>(g.raw_data()),
        static_cast<T*>(ds.raw_data()), dlogk.defined() ? static_cast<double*>(dlogk.raw_data()) : nullptr,
        static_cast<double*>(work.raw_data()), rows, n, p, cache);
  });
  COLT5_CHECK_LAUNCH("coor_descent_backward_kernel", st);
}

}  // namespace colt5::cuda

COLT5_REGISTER_CUDA(coor_descent_forward, colt5::cuda::coor_descent_forward)
COLT5_REGISTER_CUDA(coor_descent_backward, colt5::cuda::coor_descent_backward)
