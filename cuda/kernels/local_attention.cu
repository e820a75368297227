// Fused CUDA kernels of local_attention (contract in core/ops/attention.h; the CPU reference,
// with the same slot rules written out, is core/cpu/local_attention.cpp).
//
// Dims legend: B merged batch, n queries / keys, d head dim (DMAX: the kernel's compiled bound),
// w window, W = ceil(n / w), lb / lf look back / forward, J = (lb + 1 + lf) w slots,
// BQ / BK query / key rows of a tile.
//
// Slots. Query t (window qw = t / w) sees key positions u in [(qw - lb) w, (qw + lf + 1) w)
// within [0, W w); the rest of its J slots are fillers (key / value -1, always masked). A slot
// u is masked by causal (t < u; exact: t > u + w lb), non-causal exact (u - w lf > t or
// t > u + w lb), or the key mask (u >= n or mask[row / (B / b), u] False). Keys past n (autopad)
// are zero and attendable when there is no mask. shared_qk: an unmasked u == t scores -5e4 and
// gets no score gradient. Nothing is materialised: every predicate is computed from (t, u).
// A query with no unmasked slot is uniform over its J slots: out = (sum of its in-range values
// - fillers) / J, lse = -finfo.max; in the backward it adds g / J to the dv of its in-range keys
// and nothing else.
//
// Kernels (256 threads = 16 x 16, tx = tid % 16, ty = tid / 16; a thread owns rows ty + 16 i
// and columns tx + 16 j of each BQ x BK tile, and head-dim columns tx + 16 e of the
// accumulators; the 16 threads of a row are one half-warp, so row reductions are 4 shuffles):
//   forward:  block = (query tile of BQ rows, B row). Q (pre-scaled by scale log2 e) stays in
//             shared memory; the keys / values of the tile's union key range (clipped by the
//             causal / exact-window / key-padding limits) stream through shared memory BK rows
//             at a time; online softmax in base 2 (running max from -inf, running sum, the
//             accumulator rescaled by exp2(m_old - m_new)); P goes through shared memory for
//             the P V product. Writes out and lse.
//   D:        one warp per query row, D_t = g_t . out_t.
//   dq:       block = (query tile, B row): per key tile recompute S and p = exp2(s - lse),
//             dP = G V^T, dS = p (dP - D) (0 on masked / self slots), dq += dS K (through
//             shared memory); dq = scale dq at the end.
//   dk / dv:  block = (key tile of BK keys, B row): iterate the query tiles that see it (the
//             union of windows kw - lf .. kw + lb, clipped by the limits), recompute S^T, P^T,
//             dP^T; dv += P^T G, dk += dS^T (scale Q); then the uniform pass for fully-masked
//             queries of the unclipped range. Each output element is written by one thread
//             from its registers: deterministic, no atomics.
// Shared memory rows are padded to DMAX + 1 (and BK + 1 / BQ + 1) elements so that the
// column reads of 16 different rows by a half-warp hit 16 different banks (float).
// Instantiations: float with d = 32, 64, 128 exactly (BQ = BK = 64; the fast path, float
// accumulation) and double with d <= 32 or d <= 128 (BQ = BK = 32, d a runtime bound; for
// gradcheck). local_attention_supports is true for exactly these (and sizes that fit the
// int positions and the grid); other head dims fall back to the composed version.
#include <cfloat>
#include <cmath>
#include <limits>

#include "core/ops/attention.h"
#include "cuda/kernels/common.cuh"

namespace colt5::cuda {

namespace {

constexpr int kThreads = 256;
constexpr double kSelfScore = -5e4;

struct LocalGeom {
  int n, W, w, lb, lf, J, d, Hm;
  bool causal, exact, shared_qk;
};

template <class T> struct Consts;
template <> struct Consts<float> {
  static constexpr float log2e = 1.4426950408889634f, ln2 = 0.6931471805599453f;
};
template <> struct Consts<double> {
  static constexpr double log2e = 1.4426950408889634, ln2 = 0.6931471805599453;
};

__device__ __forceinline__ float ex2(float x) { return exp2f(x); }
__device__ __forceinline__ double ex2(double x) { return exp2(x); }
__device__ __forceinline__ float lg2(float x) { return log2f(x); }
__device__ __forceinline__ double lg2(double x) { return log2(x); }

// Whether slot u of query t is unmasked (u in [0, W w); the window range is checked too).
__device__ __forceinline__ bool slot_ok(const LocalGeom& g, const bool* mrow, int t, int u) {
  const int qw = t / g.w;
  if (u < (qw - g.lb) * g.w || u >= (qw + g.lf + 1) * g.w) return false;
  if (g.causal) {
    if (t < u) return false;
    if (g.exact && t > u + g.w * g.lb) return false;
  } else if (g.exact) {
    if (u - g.w * g.lf > t || t > u + g.w * g.lb) return false;
  }
  if (mrow != nullptr && (u >= g.n || !mrow[u])) return false;
  return true;
}

// Rows [r0, r0 + R) of src [n, d] into dst [R][DMAX + 1] times `mul`; rows past `rows_end`
// and columns past d are zero.
template <class T, int DMAX, int R>
__device__ __forceinline__ void load_rows(T* dst, const T* __restrict__ src, int r0, int rows_end, int d, T mul) {
  for (int idx = threadIdx.x; idx < R * DMAX; idx += kThreads) {
    const int r = idx / DMAX, c = idx % DMAX, row = r0 + r;
    dst[r * (DMAX + 1) + c] = (row < rows_end && c < d) ? src[int64_t(row) * d + c] * mul : T(0);
  }
}

template <class T>
__device__ __forceinline__ T half_warp_max(T v) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
template <class T>
__device__ __forceinline__ T half_warp_sum(T v) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The key range [lo, hi) that can hold an unmasked slot of the queries [t0, t1).
__device__ __forceinline__ void key_range(const LocalGeom& g, bool has_mask, int t0, int t1, int& lo, int& hi) {
  lo = max(0, (t0 / g.w - g.lb) * g.w);
  hi = min(g.W, (t1 - 1) / g.w + g.lf + 1) * g.w;
  if (g.causal) hi = min(hi, t1);
  if (g.exact) lo = max(lo, t0 - g.w * g.lb);
  if (g.exact && !g.causal) hi = min(hi, t1 + g.w * g.lf);
  if (has_mask) hi = min(hi, g.n);
}

// ---- forward ----

template <class T, int DMAX, int BQ, int BK, bool FIXED>
__global__ void __launch_bounds__(kThreads, 2) local_fwd_kernel(const T* __restrict__ q, const T* __restrict__ k,
                                                             const T* __restrict__ v, const bool* __restrict__ mask,
                                                             LocalGeom g, T scale, T* __restrict__ out,
                                                             T* __restrict__ lse) {
  constexpr int RQ = BQ / 16, RK = BK / 16, RD = DMAX / 16, DP = DMAX + 1, PP = BK + 1;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sQ = reinterpret_cast<T*>(smem_raw);
  T* sK = sQ + BQ * DP;
  T* sV = sK + BK * DP;
  T* sP = sV + BK * DP;
  const int d = FIXED ? DMAX : g.d;
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int64_t base = int64_t(blockIdx.y) * g.n * d;
  const T* qb = q + base;
  const T* kb = k + base;
  const T* vb = v + base;
  const bool* mrow = mask ? mask + int64_t(blockIdx.y / g.Hm) * g.n : nullptr;
  const int t0 = blockIdx.x * BQ, t1 = min(t0 + BQ, g.n);
  const T ninf = -INFINITY;

  load_rows<T, DMAX, BQ>(sQ, qb, t0, t1, d, scale * Consts<T>::log2e);
  int lo, hi;
  key_range(g, mrow != nullptr, t0, t1, lo, hi);

  T m[RQ], l[RQ], acc[RQ][RD];
#pragma unroll
  for (int i = 0; i < RQ; ++i) {
    m[i] = ninf;
    l[i] = T(0);
#pragma unroll
    for (int e = 0; e < RD; ++e) acc[i][e] = T(0);
  }

  for (int u0 = lo; u0 < hi; u0 += BK) {
    __syncthreads();  // the previous tile's sK / sV / sP are consumed
    load_rows<T, DMAX, BK>(sK, kb, u0, g.n, d, T(1));
    load_rows<T, DMAX, BK>(sV, vb, u0, g.n, d, T(1));
    __syncthreads();

    T s[RQ][RK];
#pragma unroll
    for (int i = 0; i < RQ; ++i)
#pragma unroll
      for (int j = 0; j < RK; ++j) s[i][j] = T(0);
#pragma unroll 4
    for (int c = 0; c < d; ++c) {
      T qv[RQ], kv[RK];
#pragma unroll
      for (int i = 0; i < RQ; ++i) qv[i] = sQ[(ty + 16 * i) * DP + c];
#pragma unroll
      for (int j = 0; j < RK; ++j) kv[j] = sK[(tx + 16 * j) * DP + c];
#pragma unroll
      for (int i = 0; i < RQ; ++i)
#pragma unroll
        for (int j = 0; j < RK; ++j) s[i][j] = fma(qv[i], kv[j], s[i][j]);
    }

#pragma unroll
    for (int i = 0; i < RQ; ++i) {
      const int t = t0 + ty + 16 * i;
      T mx = ninf;
#pragma unroll
      for (int j = 0; j < RK; ++j) {
        const int u = u0 + tx + 16 * j;
        const bool ok = t < t1 && u < hi && slot_ok(g, mrow, t, u);
        if (ok && g.shared_qk && u == t) s[i][j] = T(kSelfScore) * Consts<T>::log2e;
        s[i][j] = ok ? s[i][j] : ninf;
        mx = fmax(mx, s[i][j]);
      }
      mx = half_warp_max(mx);
      const T m_new = fmax(m[i], mx);
      const T mref = m_new == ninf ? T(0) : m_new;  // no unmasked slot yet: everything stays 0
      const T alpha = ex2(m[i] - mref);
      T rs = T(0);
#pragma unroll
      for (int j = 0; j < RK; ++j) {
        const T p = ex2(s[i][j] - mref);  // exp2(-inf) = 0 on masked slots
        rs += p;
        sP[(ty + 16 * i) * PP + tx + 16 * j] = p;
      }
      rs = half_warp_sum(rs);
      l[i] = l[i] * alpha + rs;
      m[i] = m_new;
#pragma unroll
      for (int e = 0; e < RD; ++e) acc[i][e] *= alpha;
    }
    __syncthreads();

#pragma unroll 4
    for (int j = 0; j < BK; ++j) {
      T pv[RQ], vv[RD];
#pragma unroll
      for (int i = 0; i < RQ; ++i) pv[i] = sP[(ty + 16 * i) * PP + j];
#pragma unroll
      for (int e = 0; e < RD; ++e) vv[e] = sV[j * DP + tx + 16 * e];
#pragma unroll
      for (int i = 0; i < RQ; ++i)
#pragma unroll
        for (int e = 0; e < RD; ++e) acc[i][e] = fma(pv[i], vv[e], acc[i][e]);
    }
  }

#pragma unroll
  for (int i = 0; i < RQ; ++i) {
    const int t = t0 + ty + 16 * i;
    if (t >= t1) continue;
    T* orow = out + base + int64_t(t) * d;
    if (l[i] > T(0)) {
      const T inv = T(1) / l[i];
#pragma unroll
      for (int e = 0; e < RD; ++e)
        if (tx + 16 * e < d) orow[tx + 16 * e] = acc[i][e] * inv;
      if (tx == 0) lse[int64_t(blockIdx.y) * g.n + t] = (m[i] + lg2(l[i])) * Consts<T>::ln2;
    } else {  // every slot masked: uniform over the J slots (fillers -1, padding 0)
      const int qw = t / g.w;
      const int k0 = max(0, qw - g.lb) * g.w, k1 = min(g.W, qw + g.lf + 1) * g.w;
      const T fillers = T(g.J - (k1 - k0));
#pragma unroll
      for (int e = 0; e < RD; ++e) {
        const int c = tx + 16 * e;
        if (c >= d) continue;
        T sum = T(0);
        for (int u = k0; u < min(k1, g.n); ++u) sum += vb[int64_t(u) * d + c];
        orow[c] = (sum - fillers) / T(g.J);
      }
      if (tx == 0) lse[int64_t(blockIdx.y) * g.n + t] = -std::numeric_limits<T>::max();
    }
  }
}

// ---- backward ----

template <class T>
__global__ void local_bwd_delta_kernel(const T* __restrict__ g, const T* __restrict__ out, int64_t rows, int d,
                                       T* __restrict__ delta) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  for (int64_t r = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; r < rows; r += warps) {
    T s = T(0);
    for (int c = lane; c < d; c += 32) s += g[r * d + c] * out[r * d + c];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) delta[r] = s;
  }
}

template <class T, int DMAX, int BQ, int BK, bool FIXED>
__global__ void __launch_bounds__(kThreads) local_bwd_dq_kernel(const T* __restrict__ q, const T* __restrict__ k,
                                                                const T* __restrict__ v, const bool* __restrict__ mask,
                                                                const T* __restrict__ lse, const T* __restrict__ delta,
                                                                const T* __restrict__ gout, LocalGeom g, T scale,
                                                                T* __restrict__ dq) {
  constexpr int RQ = BQ / 16, RK = BK / 16, RD = DMAX / 16, DP = DMAX + 1, PP = BK + 1;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sQ = reinterpret_cast<T*>(smem_raw);
  T* sG = sQ + BQ * DP;
  T* sK = sG + BQ * DP;
  T* sV = sK + BK * DP;
  T* sS = sV + BK * DP;
  const int d = FIXED ? DMAX : g.d;
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int64_t row = blockIdx.y, base = row * g.n * d;
  const bool* mrow = mask ? mask + int64_t(row / g.Hm) * g.n : nullptr;
  const int t0 = blockIdx.x * BQ, t1 = min(t0 + BQ, g.n);
  const T ninf = -INFINITY;

  load_rows<T, DMAX, BQ>(sQ, q + base, t0, t1, d, scale * Consts<T>::log2e);
  load_rows<T, DMAX, BQ>(sG, gout + base, t0, t1, d, T(1));
  T lse2[RQ], dl[RQ], acc[RQ][RD];
#pragma unroll
  for (int i = 0; i < RQ; ++i) {
    const int t = t0 + ty + 16 * i;
    lse2[i] = t < t1 ? lse[row * g.n + t] * Consts<T>::log2e : T(0);
    dl[i] = t < t1 ? delta[row * g.n + t] : T(0);
#pragma unroll
    for (int e = 0; e < RD; ++e) acc[i][e] = T(0);
  }
  int lo, hi;
  key_range(g, mrow != nullptr, t0, t1, lo, hi);

  for (int u0 = lo; u0 < hi; u0 += BK) {
    __syncthreads();
    load_rows<T, DMAX, BK>(sK, k + base, u0, g.n, d, T(1));
    load_rows<T, DMAX, BK>(sV, v + base, u0, g.n, d, T(1));
    __syncthreads();
    T s[RQ][RK], dp[RQ][RK];
#pragma unroll
    for (int i = 0; i < RQ; ++i)
#pragma unroll
      for (int j = 0; j < RK; ++j) s[i][j] = dp[i][j] = T(0);
#pragma unroll 2
    for (int c = 0; c < d; ++c) {
      T qv[RQ], gv[RQ], kv[RK], vv[RK];
#pragma unroll
      for (int i = 0; i < RQ; ++i) {
        qv[i] = sQ[(ty + 16 * i) * DP + c];
        gv[i] = sG[(ty + 16 * i) * DP + c];
      }
#pragma unroll
      for (int j = 0; j < RK; ++j) {
        kv[j] = sK[(tx + 16 * j) * DP + c];
        vv[j] = sV[(tx + 16 * j) * DP + c];
      }
#pragma unroll
      for (int i = 0; i < RQ; ++i)
#pragma unroll
        for (int j = 0; j < RK; ++j) {
          s[i][j] = fma(qv[i], kv[j], s[i][j]);
          dp[i][j] = fma(gv[i], vv[j], dp[i][j]);
        }
    }
#pragma unroll
    for (int i = 0; i < RQ; ++i) {
      const int t = t0 + ty + 16 * i;
#pragma unroll
      for (int j = 0; j < RK; ++j) {
        const int u = u0 + tx + 16 * j;
        const bool ok = t < t1 && u < hi && slot_ok(g, mrow, t, u) && !(g.shared_qk && u == t);
        const T p = ok ? ex2(s[i][j] - lse2[i]) : T(0);
        sS[(ty + 16 * i) * PP + tx + 16 * j] = ok ? p * (dp[i][j] - dl[i]) : T(0);
      }
    }
    __syncthreads();
#pragma unroll 4
    for (int j = 0; j < BK; ++j) {
      T sv[RQ], kv[RD];
#pragma unroll
      for (int i = 0; i < RQ; ++i) sv[i] = sS[(ty + 16 * i) * PP + j];
#pragma unroll
      for (int e = 0; e < RD; ++e) kv[e] = sK[j * DP + tx + 16 * e];
#pragma unroll
      for (int i = 0; i < RQ; ++i)
#pragma unroll
        for (int e = 0; e < RD; ++e) acc[i][e] = fma(sv[i], kv[e], acc[i][e]);
    }
  }
#pragma unroll
  for (int i = 0; i < RQ; ++i) {
    const int t = t0 + ty + 16 * i;
    if (t >= t1) continue;
#pragma unroll
    for (int e = 0; e < RD; ++e)
      if (tx + 16 * e < d) dq[base + int64_t(t) * d + tx + 16 * e] = acc[i][e] * scale;
  }
}

template <class T, int DMAX, int BQ, int BK, bool FIXED>
__global__ void __launch_bounds__(kThreads) local_bwd_dkdv_kernel(
    const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, const bool* __restrict__ mask,
    const T* __restrict__ lse, const T* __restrict__ delta, const T* __restrict__ gout, LocalGeom g, T scale,
    T* __restrict__ dk, T* __restrict__ dv) {
  constexpr int RQ = BQ / 16, RK = BK / 16, RD = DMAX / 16, DP = DMAX + 1, QP = BQ + 1;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sK = reinterpret_cast<T*>(smem_raw);
  T* sV = sK + BK * DP;
  T* sQ = sV + BK * DP;
  T* sG = sQ + BQ * DP;
  T* sP = sG + BQ * DP;   // [BK][QP]
  T* sS = sP + BK * QP;   // [BK][QP]
  T* sL = sS + BK * QP;   // [BQ] lse in base 2
  T* sD = sL + BQ;        // [BQ]
  const int d = FIXED ? DMAX : g.d;
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int64_t row = blockIdx.y, base = row * g.n * d;
  const bool* mrow = mask ? mask + int64_t(row / g.Hm) * g.n : nullptr;
  const int u0 = blockIdx.x * BK, u1 = min(u0 + BK, g.n);

  load_rows<T, DMAX, BK>(sK, k + base, u0, u1, d, T(1));
  load_rows<T, DMAX, BK>(sV, v + base, u0, u1, d, T(1));
  // queries that see a key of [u0, u1): windows (u0 / w - lf) .. ((u1 - 1) / w + lb)
  const int qlo_all = max(0, (u0 / g.w - g.lf) * g.w);
  const int qhi_all = min(g.n, ((u1 - 1) / g.w + g.lb + 1) * g.w);
  int qlo = qlo_all, qhi = qhi_all;
  if (g.causal) qlo = max(qlo, u0);
  if (g.exact) qhi = min(qhi, u1 + g.w * g.lb);
  if (g.exact && !g.causal) qlo = max(qlo, u0 - g.w * g.lf);

  T adk[RK][RD], adv[RK][RD];
#pragma unroll
  for (int i = 0; i < RK; ++i)
#pragma unroll
    for (int e = 0; e < RD; ++e) adk[i][e] = adv[i][e] = T(0);

  for (int t0 = qlo; t0 < qhi; t0 += BQ) {
    __syncthreads();
    load_rows<T, DMAX, BQ>(sQ, q + base, t0, qhi, d, scale);
    load_rows<T, DMAX, BQ>(sG, gout + base, t0, qhi, d, T(1));
    if (tid < BQ) {
      const int t = t0 + tid;
      sL[tid] = t < qhi ? lse[row * g.n + t] * Consts<T>::log2e : T(0);
      sD[tid] = t < qhi ? delta[row * g.n + t] : T(0);
    }
    __syncthreads();
    T s[RK][RQ], dp[RK][RQ];
#pragma unroll
    for (int i = 0; i < RK; ++i)
#pragma unroll
      for (int j = 0; j < RQ; ++j) s[i][j] = dp[i][j] = T(0);
#pragma unroll 2
    for (int c = 0; c < d; ++c) {
      T kv[RK], vv[RK], qv[RQ], gv[RQ];
#pragma unroll
      for (int i = 0; i < RK; ++i) {
        kv[i] = sK[(ty + 16 * i) * DP + c];
        vv[i] = sV[(ty + 16 * i) * DP + c];
      }
#pragma unroll
      for (int j = 0; j < RQ; ++j) {
        qv[j] = sQ[(tx + 16 * j) * DP + c];
        gv[j] = sG[(tx + 16 * j) * DP + c];
      }
#pragma unroll
      for (int i = 0; i < RK; ++i)
#pragma unroll
        for (int j = 0; j < RQ; ++j) {
          s[i][j] = fma(kv[i], qv[j], s[i][j]);
          dp[i][j] = fma(vv[i], gv[j], dp[i][j]);
        }
    }
#pragma unroll
    for (int i = 0; i < RK; ++i) {
      const int u = u0 + ty + 16 * i;
#pragma unroll
      for (int j = 0; j < RQ; ++j) {
        const int jq = tx + 16 * j, t = t0 + jq;
        const bool ok = u < u1 && t < qhi && slot_ok(g, mrow, t, u);
        const bool self = g.shared_qk && u == t;
        const T p = ok ? ex2((self ? T(kSelfScore) : s[i][j]) * Consts<T>::log2e - sL[jq]) : T(0);
        sP[(ty + 16 * i) * QP + jq] = p;
        sS[(ty + 16 * i) * QP + jq] = (ok && !self) ? p * (dp[i][j] - sD[jq]) : T(0);
      }
    }
    __syncthreads();
#pragma unroll 4
    for (int j = 0; j < BQ; ++j) {
      T pv[RK], sv[RK], gv[RD], qv[RD];
#pragma unroll
      for (int i = 0; i < RK; ++i) {
        pv[i] = sP[(ty + 16 * i) * QP + j];
        sv[i] = sS[(ty + 16 * i) * QP + j];
      }
#pragma unroll
      for (int e = 0; e < RD; ++e) {
        gv[e] = sG[j * DP + tx + 16 * e];
        qv[e] = sQ[j * DP + tx + 16 * e];
      }
#pragma unroll
      for (int i = 0; i < RK; ++i)
#pragma unroll
        for (int e = 0; e < RD; ++e) {
          adv[i][e] = fma(pv[i], gv[e], adv[i][e]);
          adk[i][e] = fma(sv[i], qv[e], adk[i][e]);
        }
    }
  }

  // Fully-masked queries (lse = -finfo.max) are uniform over their J slots: dv += g / J on
  // their in-range keys. They may lie outside [qlo, qhi), so the whole range is scanned.
  const T thresh = T(-0.5) * std::numeric_limits<T>::max();
  const T invJ = T(1) / T(g.J);
  for (int t = qlo_all; t < qhi_all; ++t) {
    if (!(lse[row * g.n + t] <= thresh)) continue;  // uniform across the block
    const int qw = t / g.w;
    const int k0 = (qw - g.lb) * g.w, k1 = (qw + g.lf + 1) * g.w;
    const T* grow = gout + base + int64_t(t) * d;
#pragma unroll
    for (int e = 0; e < RD; ++e) {
      const int c = tx + 16 * e;
      const T gc = c < d ? grow[c] * invJ : T(0);
#pragma unroll
      for (int i = 0; i < RK; ++i) {
        const int u = u0 + ty + 16 * i;
        if (u >= k0 && u < k1) adv[i][e] += gc;
      }
    }
  }

#pragma unroll
  for (int i = 0; i < RK; ++i) {
    const int u = u0 + ty + 16 * i;
    if (u >= u1) continue;
#pragma unroll
    for (int e = 0; e < RD; ++e) {
      const int c = tx + 16 * e;
      if (c >= d) continue;
      if (dk) dk[base + int64_t(u) * d + c] = adk[i][e];
      if (dv) dv[base + int64_t(u) * d + c] = adv[i][e];
    }
  }
}

// ---- launchers ----

LocalGeom geom_of(const LocalAttentionInputs& in) {
  LocalGeom g;
  g.n = int(in.q.size(1));
  g.d = int(in.q.size(2));
  g.w = int(in.opts.window_size);
  g.W = (g.n + g.w - 1) / g.w;
  g.lb = int(in.opts.look_backward);
  g.lf = int(in.opts.resolved_look_forward());
  g.J = (g.lb + 1 + g.lf) * g.w;
  g.Hm = in.mask.defined() ? int(in.q.size(0) / in.mask.size(0)) : 1;
  g.causal = in.opts.causal;
  g.exact = in.opts.exact_windowsize;
  g.shared_qk = in.opts.shared_qk;
  return g;
}

template <class Kernel>
void set_smem(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

template <class T> const T* cptr(const Tensor& t) { return static_cast<const T*>(t.raw_data()); }
template <class T> T* mptr(const Tensor& t) { return t.defined() ? static_cast<T*>(t.raw_data()) : nullptr; }
const bool* mask_ptr(const Tensor& m) { return m.defined() ? static_cast<const bool*>(m.raw_data()) : nullptr; }

template <class T, int DMAX, int BQ, int BK, bool FIXED>
void forward_launch(const LocalAttentionInputs& in, Tensor& out, Tensor& lse) {
  const LocalGeom g = geom_of(in);
  constexpr int DP = DMAX + 1;
  const size_t bytes = sizeof(T) * size_t((BQ + 2 * BK) * DP + BQ * (BK + 1));
  auto kernel = local_fwd_kernel<T, DMAX, BQ, BK, FIXED>;
  set_smem(kernel, bytes);
  cudaStream_t s = stream_for(out);
  const dim3 grid(unsigned((g.n + BQ - 1) / BQ), unsigned(in.q.size(0)));
  kernel<<<grid, kThreads, bytes, s>>>(cptr<T>(in.q), cptr<T>(in.k), cptr<T>(in.v), mask_ptr(in.mask), g,
                                       T(in.scale), mptr<T>(out), mptr<T>(lse));
  COLT5_CHECK_LAUNCH("local_fwd_kernel", s);
}

template <class T, int DMAX, int BQ, int BK, bool FIXED>
void backward_launch(const LocalAttentionInputs& in, const Tensor& out, const Tensor& lse, const Tensor& gout,
                     LocalAttentionGrads& grads) {
  const LocalGeom g = geom_of(in);
  constexpr int DP = DMAX + 1;
  const int64_t B = in.q.size(0), rows = B * g.n;
  cudaStream_t s = stream_for(gout);
  Tensor delta = Tensor::empty({B, g.n}, in.q.dtype(), in.q.device());
  local_bwd_delta_kernel<T><<<grid_for(rows * 32, 256), 256, 0, s>>>(cptr<T>(gout), cptr<T>(out), rows, g.d,
                                                                     mptr<T>(delta));
  COLT5_CHECK_LAUNCH("local_bwd_delta_kernel", s);
  const dim3 qgrid(unsigned((g.n + BQ - 1) / BQ), unsigned(B));
  if (grads.dq.defined()) {
    const size_t bytes = sizeof(T) * size_t((2 * BQ + 2 * BK) * DP + BQ * (BK + 1));
    auto kernel = local_bwd_dq_kernel<T, DMAX, BQ, BK, FIXED>;
    set_smem(kernel, bytes);
    kernel<<<qgrid, kThreads, bytes, s>>>(cptr<T>(in.q), cptr<T>(in.k), cptr<T>(in.v), mask_ptr(in.mask),
                                          cptr<T>(lse), cptr<T>(delta), cptr<T>(gout), g, T(in.scale),
                                          mptr<T>(grads.dq));
    COLT5_CHECK_LAUNCH("local_bwd_dq_kernel", s);
  }
  if (grads.dk.defined() || grads.dv.defined()) {
    const size_t bytes = sizeof(T) * size_t((2 * BK + 2 * BQ) * DP + 2 * BK * (BQ + 1) + 2 * BQ);
    auto kernel = local_bwd_dkdv_kernel<T, DMAX, BQ, BK, FIXED>;
    set_smem(kernel, bytes);
    const dim3 kgrid(unsigned((g.n + BK - 1) / BK), unsigned(B));
    kernel<<<kgrid, kThreads, bytes, s>>>(cptr<T>(in.q), cptr<T>(in.k), cptr<T>(in.v), mask_ptr(in.mask),
                                          cptr<T>(lse), cptr<T>(delta), cptr<T>(gout), g, T(in.scale),
                                          mptr<T>(grads.dk), mptr<T>(grads.dv));
    COLT5_CHECK_LAUNCH("local_bwd_dkdv_kernel", s);
  }
}

}  // namespace

bool local_attention_supports(const LocalAttentionInputs& in) {
  const int64_t B = in.q.size(0), n = in.q.size(1), d = in.q.size(2);
  const int64_t w = in.opts.window_size, lb = in.opts.look_backward, lf = in.opts.resolved_look_forward();
  if (B < 1 || B > 65535 || n < 1 || d < 1 || d > 128) return false;
  // positions, (W + lf + 1) w and t d stay well inside int
  if (n > (int64_t(1) << 24) || w > (int64_t(1) << 24) || lb > (int64_t(1) << 20) || lf > (int64_t(1) << 20) ||
      (lb + 1 + lf) * w > (int64_t(1) << 28))
    return false;
  if (in.q.dtype() == DType::Float32) return d == 32 || d == 64 || d == 128;
  return in.q.dtype() == DType::Float64;
}

void local_attention_forward(const LocalAttentionInputs& in, Tensor& out, Tensor& lse) {
  const int64_t d = in.q.size(2);
  COLT5_CHECK(local_attention_supports(in), "local_attention: the CUDA kernel does not cover these arguments");
  if (in.q.dtype() == DType::Float32) {
    if (d == 32) forward_launch<float, 32, 64, 64, true>(in, out, lse);
    else if (d == 64) forward_launch<float, 64, 64, 64, true>(in, out, lse);
    else forward_launch<float, 128, 64, 64, true>(in, out, lse);
  } else {
    if (d <= 32) forward_launch<double, 32, 32, 32, false>(in, out, lse);
    else forward_launch<double, 128, 32, 32, false>(in, out, lse);
  }
}

void local_attention_backward(const LocalAttentionInputs& in, const Tensor& out, const Tensor& lse, const Tensor& g,
                              LocalAttentionGrads& grads) {
  const int64_t d = in.q.size(2);
  COLT5_CHECK(local_attention_supports(in), "local_attention_backward: the CUDA kernel does not cover these arguments");
  if (in.q.dtype() == DType::Float32) {
    if (d == 32) backward_launch<float, 32, 64, 64, true>(in, out, lse, g, grads);
    else if (d == 64) backward_launch<float, 64, 64, 64, true>(in, out, lse, g, grads);
    else backward_launch<float, 128, 64, 64, true>(in, out, lse, g, grads);
  } else {
    if (d <= 32) backward_launch<double, 32, 32, 32, false>(in, out, lse, g, grads);
    else backward_launch<double, 128, 32, 32, false>(in, out, lse, g, grads);
  }
}

}  // namespace colt5::cuda

COLT5_REGISTER_CUDA(local_attention_forward, colt5::cuda::local_attention_forward)
COLT5_REGISTER_CUDA(local_attention_backward, colt5::cuda::local_attention_backward)
COLT5_REGISTER_CUDA(local_attention_supports, colt5::cuda::local_attention_supports)
