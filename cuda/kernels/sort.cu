// CUDA topk / sort and cumsum over the middle axis of x = [outer, n, inner] (contracts and the
// order: core/ops/sort.h). A line (o, i) is the n elements x[(o*n + j)*inner + i], j = 0..n-1.
//
// topk / sort. The order is a strict total order on (value, position):
//   before((a, ia), (b, ib)) = a above b in the value order (NaN above every number, NaNs equal;
//   reversed for ascending), or equal values and ia < ib.
// No two positions compare equal, so the sorted line is unique and a bitonic network (which is
// not stable by itself) gives exactly the CPU's values and indices. The line is padded to
// P = 2^ceil(log2 n) slots; a padding slot holds position j >= n and sorts after every element
// of the line (padding slots among themselves by position), so the first n slots of the sorted
// line are the sorted elements and the first k of those are the result.
//
// Bitonic network on P slots: for k = 2, 4, ..., P and j = k/2, ..., 1, every pair (lo, lo + j)
// with lo & j == 0 is put in order, "before" order when lo & k == 0 and reverse order
// otherwise. The pairs of one (k, j) stage are disjoint, so each is handled by one thread with
// no race; a barrier (or a kernel boundary) separates the stages.
//
//   P <= C (C: slots that fit the shared-memory budget, 8192 for every dtype at 96 KiB):
//     one block per line sorts it in shared memory and writes the first k slots out.
//   P > C: lines go in batches through a global workspace [B, P] of (value, position):
//     1. presort:  each block loads a chunk of C slots (padding included) and runs every stage
//                  with k <= C in shared memory (direction from the slot's position in the line);
//     2. for k = 2C, ..., P: the stages j = k/2, ..., C are one launch each over the workspace
//        (pairs span chunks), then the stages j = C/2, ..., 1 run per chunk in shared memory;
//     3. the first k slots of each line are written out.
//
// cumsum: one thread per (o, i) column adds the line in index order (reversed for suffix sums)
// into one accumulator (double for float32, as on the CPU), so the rounding is exactly the
// CPU's. No atomics anywhere: results are deterministic.
#include <type_traits>

#include "core/ops/sort.h"
#include "cuda/kernels/common.cuh"

namespace colt5::cuda {

namespace {

constexpr int kMaxThreads = 1024;             // threads of a shared-memory sort block (power of two)
constexpr int kSmemBudget = 96 * 1024;        // dynamic shared memory of one sort block, at most
constexpr int kDefaultSmem = 48 * 1024;       // above this a kernel must opt in
constexpr int64_t kMaxBlocks = 1 << 20;       // more lines / chunks than this: blocks loop
constexpr int64_t kWorkspaceBytes = 256 << 20;  // workspace of one batch of long lines, about

template <class T>
__device__ __forceinline__ bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>) return v != v;
  else return false;
}

// a < b in the value order with NaN largest (all NaNs equal).
template <class T>
__device__ __forceinline__ bool value_less(T a, T b) {
  if (is_nan(b)) return !is_nan(a);
  return a < b;  // false whenever a is NaN and b is not
}

// (a, ia) strictly before (b, ib) in the line's order; positions >= n are padding, last.
template <class T, class I>
__device__ __forceinline__ bool before(T a, I ia, T b, I ib, I n, bool descending) {
  if (ia >= n || ib >= n) return ia < ib;
  if (descending ? value_less(b, a) : value_less(a, b)) return true;
  if (descending ? value_less(a, b) : value_less(b, a)) return false;
  return ia < ib;
}

// One compare-exchange of slots lo < hi holding (a, ia), (b, ib); `up`: "before" order wanted.
template <class T, class I>
__device__ __forceinline__ bool out_of_order(T a, I ia, T b, I ib, I n, bool descending, bool up) {
  return up ? before(b, ib, a, ia, n, descending) : before(a, ia, b, ib, n, descending);
}

// The pair p (0 <= p < m/2) of stage j: lo has bit j clear, hi = lo + j.
__device__ __forceinline__ int64_t pair_lo(int64_t p, int64_t j) { return ((p & ~(j - 1)) << 1) | (p & (j - 1)); }

// One stage (k, j) on m slots in shared memory whose slot l is slot base + l of its line.
// Ends with a barrier, so the next stage (or the write-out) may read any slot.
template <class T, class I>
__device__ void shared_stage(T* sv, I* si, int m, int64_t base, int64_t k, int j, I n, bool descending) {
  for (int p = threadIdx.x; p < m / 2; p += blockDim.x) {
    const int lo = int(pair_lo(p, j)), hi = lo + j;
    const T a = sv[lo], b = sv[hi];
    const I ia = si[lo], ib = si[hi];
    if (out_of_order(a, ia, b, ib, n, descending, ((base + lo) & k) == 0)) {
      sv[lo] = b, sv[hi] = a;
      si[lo] = ib, si[hi] = ia;
    }
  }
  __syncthreads();
}

// Slot l of shared memory: the value and its position in the line; n <= l < P is padding.
template <class T, class I>
__device__ __forceinline__ void load_slot(const T* row, int64_t inner, int64_t n, int64_t pos, T* sv, I* si, int l) {
  sv[l] = pos < n ? row[pos * inner] : T(0);
  si[l] = I(pos);
}

// P <= C: one block per line (blocks loop over lines). Shared memory: sv[P] then si[P].
//   x [outer, n, inner] -> values, indices [outer, k, inner]
template <class T>
__global__ void __launch_bounds__(kMaxThreads)
    topk_shared_kernel(const T* x, int64_t lines, int64_t n, int64_t inner, int64_t k, int P, bool descending,
                       T* values, int64_t* indices) {
  extern __shared__ __align__(16) unsigned char smem[];
  T* sv = reinterpret_cast<T*>(smem);
  int32_t* si = reinterpret_cast<int32_t*>(sv + P);
  const int32_t n32 = int32_t(n);
  for (int64_t line = blockIdx.x; line < lines; line += gridDim.x) {  // same trip count in every thread
    const int64_t o = line / inner, i = line % inner;
    const T* row = x + o * n * inner + i;  // element j at row[j * inner]
    for (int l = threadIdx.x; l < P; l += blockDim.x) load_slot(row, inner, n, l, sv, si, l);
    __syncthreads();
    for (int kk = 2; kk <= P; kk <<= 1)
      for (int j = kk / 2; j > 0; j >>= 1) shared_stage(sv, si, P, 0, kk, j, n32, descending);
    T* vrow = values + o * k * inner + i;
    int64_t* irow = indices + o * k * inner + i;
    for (int64_t r = threadIdx.x; r < k; r += blockDim.x) {
      vrow[r * inner] = sv[r];
      irow[r * inner] = si[r];
    }
    __syncthreads();  // the next line overwrites sv / si
  }
}

// P > C, step 1: chunk c of the batch (line b = c / (P/C), slots q*C .. q*C + C - 1 with
// q = c % (P/C)) is loaded from x (padding past n), sorted through every stage k <= C, and
// stored into the workspace wv, wi [nb, P].
template <class T, class I>
__global__ void __launch_bounds__(kMaxThreads)
    presort_kernel(const T* x, int64_t line0, int64_t nb, int64_t n, int64_t inner, int64_t P, int C,
                   bool descending, T* wv, I* wi) {
  extern __shared__ __align__(16) unsigned char smem[];
  T* sv = reinterpret_cast<T*>(smem);
  I* si = reinterpret_cast<I*>(sv + C);
  const int64_t per_line = P / C;
  for (int64_t c = blockIdx.x; c < nb * per_line; c += gridDim.x) {
    const int64_t b = c / per_line, base = (c % per_line) * C;
    const int64_t line = line0 + b, o = line / inner, i = line % inner;
    const T* row = x + o * n * inner + i;
    for (int l = threadIdx.x; l < C; l += blockDim.x) load_slot(row, inner, n, base + l, sv, si, l);
    __syncthreads();
    for (int kk = 2; kk <= C; kk <<= 1)
      for (int j = kk / 2; j > 0; j >>= 1) shared_stage(sv, si, C, base, kk, j, I(n), descending);
    T* cv = wv + b * P + base;
    I* ci = wi + b * P + base;
    for (int l = threadIdx.x; l < C; l += blockDim.x) cv[l] = sv[l], ci[l] = si[l];
    __syncthreads();
  }
}

// P > C, step 2a: one stage (k, j >= C) over the workspace, one thread per pair.
template <class T, class I>
__global__ void global_stage_kernel(T* wv, I* wi, int64_t nb, int64_t P, int64_t k, int64_t j, int64_t n,
                                    bool descending) {
  const int64_t half = P / 2;
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < nb * half;
       p += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = p / half, lo = pair_lo(p % half, j), hi = lo + j;
    T* v = wv + b * P;
    I* w = wi + b * P;
    const T a = v[lo], bv = v[hi];
    const I ia = w[lo], ib = w[hi];
    if (out_of_order(a, ia, bv, ib, I(n), descending, (lo & k) == 0)) {
      v[lo] = bv, v[hi] = a;
      w[lo] = ib, w[hi] = ia;
    }
  }
}

// P > C, step 2b: the stages j = C/2, ..., 1 of one k > C, per chunk in shared memory.
template <class T, class I>
__global__ void __launch_bounds__(kMaxThreads)
    merge_chunks_kernel(T* wv, I* wi, int64_t nb, int64_t P, int C, int64_t k, int64_t n, bool descending) {
  extern __shared__ __align__(16) unsigned char smem[];
  T* sv = reinterpret_cast<T*>(smem);
  I* si = reinterpret_cast<I*>(sv + C);
  const int64_t per_line = P / C;
  for (int64_t c = blockIdx.x; c < nb * per_line; c += gridDim.x) {
    const int64_t base = (c % per_line) * C;
    T* cv = wv + (c / per_line) * P + base;
    I* ci = wi + (c / per_line) * P + base;
    for (int l = threadIdx.x; l < C; l += blockDim.x) sv[l] = cv[l], si[l] = ci[l];
    __syncthreads();
    for (int j = C / 2; j > 0; j >>= 1) shared_stage(sv, si, C, base, k, j, I(n), descending);
    for (int l = threadIdx.x; l < C; l += blockDim.x) cv[l] = sv[l], ci[l] = si[l];
    __syncthreads();
  }
}

// P > C, step 3: the first k slots of each sorted line of the batch go to the outputs.
template <class T, class I>
__global__ void write_out_kernel(const T* wv, const I* wi, int64_t line0, int64_t nb, int64_t P, int64_t k,
                                 int64_t inner, T* values, int64_t* indices) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < nb * k; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = e / k, r = e % k, line = line0 + b, o = line / inner, i = line % inner;
    const int64_t dst = (o * k + r) * inner + i;
    values[dst] = wv[b * P + r];
    indices[dst] = int64_t(wi[b * P + r]);
  }
}

// cumsum: x, out [outer, n, inner]; one thread per (o, i) column, in index order.
template <class T>
__global__ void cumsum_kernel(const T* x, int64_t outer, int64_t n, int64_t inner, bool reverse, T* out) {
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < outer * inner;
       c += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = c / inner, i = c % inner;
    const int64_t base = o * n * inner + i;  // element j at base + j * inner
    acc_t<T> s = 0;
    for (int64_t t = 0; t < n; ++t) {
      const int64_t j = reverse ? n - 1 - t : t;
      s += acc_t<T>(x[base + j * inner]);
      out[base + j * inner] = T(s);
    }
  }
}

int64_t next_pow2(int64_t n) {
  int64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

// Slots of one shared-memory sort block: the largest power of two whose (value, position)
// pairs fit the budget and the device's per-block limit.
int chunk_slots(size_t slot_bytes) {
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  int optin = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  const size_t budget = size_t(optin > kSmemBudget ? kSmemBudget : (optin > kDefaultSmem ? optin : kDefaultSmem));
  int c = 2;
  while (size_t(2 * c) * slot_bytes <= budget) c *= 2;
  return c;
}

// Lets `kernel` use `bytes` of dynamic shared memory (needed above 48 KiB).
template <class K>
void allow_smem(K kernel, size_t bytes) {
  if (bytes > size_t(kDefaultSmem))
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

// Threads of a block sorting m slots in shared memory: one per pair, within [32, kMaxThreads].
int sort_threads(int64_t m) {
  int64_t t = m / 2;
  return int(t < 32 ? 32 : (t > kMaxThreads ? kMaxThreads : t));
}

unsigned blocks_for(int64_t units) { return unsigned(units < 1 ? 1 : (units > kMaxBlocks ? kMaxBlocks : units)); }

// P > C: batches of long lines through the workspace (I: the position type of the workspace).
template <class T, class I>
void topk_long_lines(const T* xs, int64_t lines, int64_t n, int64_t inner, int64_t k, int64_t P, bool descending,
                     T* vs, int64_t* is, const Tensor& like, cudaStream_t s) {
  const int C = chunk_slots(sizeof(T) + sizeof(I));
  const size_t smem = size_t(C) * (sizeof(T) + sizeof(I));
  allow_smem(presort_kernel<T, I>, smem);
  allow_smem(merge_chunks_kernel<T, I>, smem);
  const int64_t line_bytes = P * int64_t(sizeof(T) + sizeof(I));
  int64_t batch = kWorkspaceBytes / line_bytes;
  batch = batch < 1 ? 1 : (batch > lines ? lines : batch);
  // [batch, P] values and positions of the lines of one batch
  Tensor ws_v = Tensor::empty({batch * P}, like.dtype(), like.device());
  Tensor ws_i = Tensor::empty({batch * P}, sizeof(I) == 4 ? DType::Int32 : DType::Int64, like.device());
  T* wv = static_cast<T*>(ws_v.raw_data());
  I* wi = static_cast<I*>(ws_i.raw_data());
  const int threads = sort_threads(C);
  for (int64_t line0 = 0; line0 < lines; line0 += batch) {
    const int64_t nb = lines - line0 < batch ? lines - line0 : batch;
    const int64_t chunks = nb * (P / C);
    presort_kernel<T, I><<<blocks_for(chunks), threads, smem, s>>>(xs, line0, nb, n, inner, P, C, descending, wv, wi);
    COLT5_CHECK_LAUNCH("topk_presort_kernel", s);
    for (int64_t kk = 2 * int64_t(C); kk <= P; kk <<= 1) {
      for (int64_t j = kk / 2; j >= C; j >>= 1) {
        global_stage_kernel<T, I><<<grid_for(nb * (P / 2)), 256, 0, s>>>(wv, wi, nb, P, kk, j, n, descending);
        COLT5_CHECK_LAUNCH("topk_global_stage_kernel", s);
      }
      merge_chunks_kernel<T, I><<<blocks_for(chunks), threads, smem, s>>>(wv, wi, nb, P, C, kk, n, descending);
      COLT5_CHECK_LAUNCH("topk_merge_chunks_kernel", s);
    }
    write_out_kernel<T, I><<<grid_for(nb * k), 256, 0, s>>>(wv, wi, line0, nb, P, k, inner, vs, is);
    COLT5_CHECK_LAUNCH("topk_write_out_kernel", s);
  }
}

}  // namespace

void topk(const Tensor& x, int64_t outer, int64_t n, int64_t inner, int64_t k, bool descending, Tensor& values,
          Tensor& indices) {
  const int64_t lines = outer * inner;
  if (lines == 0 || k == 0 || n == 0) return;
  cudaStream_t s = stream_for(values);
  const int64_t P = next_pow2(n);
  visit_numeric(x.dtype(), "topk", [&]<class T>() {
    const T* xs = static_cast<const T*>(x.raw_data());
    T* vs = static_cast<T*>(values.raw_data());
    int64_t* is = indices.data_ptr<int64_t>();
    if (P <= chunk_slots(sizeof(T) + sizeof(int32_t))) {
      const size_t smem = size_t(P) * (sizeof(T) + sizeof(int32_t));
      allow_smem(topk_shared_kernel<T>, smem);
      topk_shared_kernel<T><<<blocks_for(lines), sort_threads(P), smem, s>>>(xs, lines, n, inner, k, int(P),
                                                                               descending, vs, is);
      COLT5_CHECK_LAUNCH("topk_shared_kernel", s);
    } else if (P <= (int64_t(1) << 30)) {
      topk_long_lines<T, int32_t>(xs, lines, n, inner, k, P, descending, vs, is, values, s);
    } else {
      topk_long_lines<T, int64_t>(xs, lines, n, inner, k, P, descending, vs, is, values, s);
    }
  });
}

void cumsum(const Tensor& x, int64_t outer, int64_t n, int64_t inner, bool reverse, Tensor& out) {
  const int64_t columns = outer * inner;
  if (columns == 0 || n == 0) return;
  cudaStream_t s = stream_for(out);
  auto run = [&]<class T>() {
    cumsum_kernel<T><<<grid_for(columns), 256, 0, s>>>(static_cast<const T*>(x.raw_data()), outer, n, inner, reverse,
                                                      static_cast<T*>(out.raw_data()));
  };
  switch (x.dtype()) {
    case DType::Float32: run.template operator()<float>(); break;
    case DType::Float64: run.template operator()<double>(); break;
    case DType::Int64: run.template operator()<int64_t>(); break;
    default: fail(str("cumsum: expected dtype float32, float64 or int64, got ", dtype_name(x.dtype())));
  }
  COLT5_CHECK_LAUNCH("cumsum_kernel", s);
}

}  // namespace colt5::cuda

COLT5_REGISTER_CUDA(topk, colt5::cuda::topk)
COLT5_REGISTER_CUDA(cumsum, colt5::cuda::cumsum)
