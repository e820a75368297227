// CUDA kernels of heavy attention (contract and math in core/ops/attention.h; the CPU reference
// is core/cpu/attention.cpp). Nothing of size [n, m] is ever written to global memory.
//
// Dims legend: b batch, h heads, n queries, m keys, d head dim (D when a template constant),
// r routes (head hh uses route hh / hr, hr = h / r), J = m + 1 key slots with a null key (slot
// 0 is the null key / value) or J = m without. BR rows of a block's tile (queries in the
// forward and dq kernels, key slots in the dk/dv kernel), BC columns of the tile streamed
// through shared memory (key slots, resp. queries).
//
// Scores. s_ij = scale q~_i . k~_j with q~ = score_q q, k~ = (score_kv if multiply_keys_by_score)
// k, v~ = score_kv v, applied while a tile is loaded (no scaled copies in global memory). The
// float32 kernels work in base 2: q~ is loaded times scale * log2(e), so s2 = s log2(e) and
// exp(s - x) = exp2(s2 - x log2(e)) (ex2 is one instruction); lse is stored in base e.
//
// Masking (the same rule as the CPU reference). A masked slot's score is -max; when a row has an
// unmasked slot, exp(-max - lse) is exactly 0, so masked slots (and slots / queries beyond the
// tile's end) get the score -inf and p = 0. When every slot is masked (no null key and
// mask[b, route, :] all False: a property of the block, found with __syncthreads_or) every score
// is -max, a uniform softmax: the kernels use the equivalent score 0 on every slot (p = 1/m,
// lse = log m). In the backward, ds = 0 on every masked slot.
//
// Online softmax (forward): per row a running max mx (-inf at first) and a running sum l; for a
// tile with row max t, mx' = max(mx, t), the old sum and output are scaled by exp2(mx - mx'),
// with mx' replaced by 0 while it is still -inf (so exp2(-inf - -inf) = NaN never happens:
// every p and the rescale factor are then exp2(-inf) = 0).
//
// float32 fast path, D in {32, 64, 128}: 128 threads = 16 row groups (ty) x 8 lanes (tx); the
// thread owns rows ty * R .. ty * R + R - 1 (R = BR / 16) of the tile, score columns tx + 8 c
// (c < BC / 8) and head-dim columns 4 (tx + 8 g) .. + 3 (g < D / 32). The 8 lanes of a row group
// are 8 consecutive lanes of one warp, so a row's max / sum is 3 xor-shuffles, and the p (or
// ds) tile a group writes to shared memory is read back only by the same group (__syncwarp).
// Both products are fp32 FMAs from shared memory with 16-byte loads:
//   gemm_nt: S[a][c] += A[row a] . B[row tx + 8 c]   (rows padded to D + 4 floats: the 8 rows
//            that one 8-lane phase of an LDS.128 reads start in banks 0, 4, .., 28: no conflict)
//   gemm_nn: O[a][g] += sum_k P[row a][k] X[k][4 (tx + 8 g)]   (a phase reads one 128-byte row)
//
// Backward (flash-attention-2 style, deterministic: no floating-point atomics):
//   1. delta:  D_i = g_i . out_i                                            [b, h, n]
//   2. dk/dv:  one block per (b, h, BR key slots), looping over query tiles, recomputing
//              p = exp(s - lse) and dp = g . v~:  dv~ += p^T g,  dk~ += ds^T (scale q~);
//              epilogue: dk = (score or 1) dk~, dv = score dv~, the null slot's dk~ / dv~ into
//              [b, h, d] partials, and dv~ . v (+ dk~ . k) per key into a [b, h, m] partial.
//   3. dq:     one block per (b, h, BR queries), looping over key tiles: dq~ += ds k~ (scale);
//              dq = score_q dq~, and dq~ . q per query into a [b, h, n] partial.
//   4. the partials are summed in a fixed order: dscore_kv over the route's heads, dscore_q
//      over heads, dnull_k / dnull_v over the batch.
//
// float64 (for gradcheck): simple kernels, one thread per query row (forward, dq) or key slot
// (dk/dv), any d <= 128 (register / local arrays of 128 doubles), the same rules in base e.
#include <cuda_runtime.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "core/ops/attention.h"
#include "cuda/kernels/common.cuh"

namespace colt5::cuda {

namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr int kThreads = 128;  // fast path: 16 row groups x 8 lanes
constexpr int kMaxD64 = 128;   // float64 kernels: head dims up to this

// One call's geometry and inputs (contiguous), passed by value. Pointers of absent optional
// inputs are null.
template <class T>
struct Args {
  const T* q;      // [b, h, n, d]
  const T* k;      // [b, h, m, d]
  const T* v;      // [b, h, m, d]
  const T* nk;     // [h, d] or null
  const T* nv;     // [h, d] or null
  const T* skv;    // [b, r, m] or null
  const T* sq;     // [b, n] or null
  const bool* mask;  // [b, r, m] or null
  int b, h, n, m, d, r, hr, J;
  int has_null, mkbs;
  T scale;

  __device__ int64_t head(int bi, int hh) const { return int64_t(bi) * h + hh; }
  __device__ int64_t route_row(int bi, int hh) const { return (int64_t(bi) * r + hh / hr) * m; }
};

template <class T>
Args<T> make_args(const AttentionInputs& in) {
  auto p = [](const Tensor& t) { return t.defined() ? static_cast<const T*>(t.raw_data()) : nullptr; };
  Args<T> a;
  a.q = p(in.q), a.k = p(in.k), a.v = p(in.v), a.nk = p(in.null_k), a.nv = p(in.null_v);
  a.skv = p(in.score_kv), a.sq = p(in.score_q);
  a.mask = in.mask.defined() ? static_cast<const bool*>(in.mask.raw_data()) : nullptr;
  a.b = int(in.q.size(0)), a.h = int(in.q.size(1)), a.n = int(in.q.size(2)), a.d = int(in.q.size(3));
  a.m = int(in.k.size(2)), a.r = int(in.routes), a.hr = a.h / a.r;
  a.has_null = in.null_k.defined() ? 1 : 0;
  a.J = a.m + a.has_null;
  a.mkbs = in.multiply_keys_by_score ? 1 : 0;
  a.scale = T(in.scale);
  return a;
}

// True when every slot of (bi, hh) is masked (no null key, the route's keys all False). Block-
// uniform; every thread of the block must call it.
template <class T>
__device__ bool block_fully_masked(const Args<T>& a, int bi, int hh) {
  if (a.has_null || !a.mask) return false;
  const bool* mr = a.mask + a.route_row(bi, hh);
  int any = 0;
  for (int t = threadIdx.x; t < a.m; t += blockDim.x) any |= mr[t] ? 1 : 0;
  return __syncthreads_or(any) == 0;
}

// How slot j's score is formed: use = 1: the dot product; else the fill value, -inf (a masked
// slot, or j beyond the last slot) or 0 (every slot masked: the uniform softmax).
template <class T>
__device__ void slot_rule(const Args<T>& a, int bi, int hh, int j, bool full, int& use, T& fill) {
  use = 0;
  fill = -INFINITY;
  if (j >= a.J) return;
  if (full) {
    fill = 0;
    return;
  }
  const int t = j - a.has_null;  // the real key (-1: the null key, never masked)
  if (t >= 0 && a.mask && !a.mask[a.route_row(bi, hh) + t]) return;
  use = 1;
}

// ---- float32 fast path -------------------------------------------------------------------

__device__ __forceinline__ float4 ld4(const float* p, bool vec) {
  if (vec) return __ldg(reinterpret_cast<const float4*>(p));
  return make_float4(__ldg(p), __ldg(p + 1), __ldg(p + 2), __ldg(p + 3));
}
__device__ __forceinline__ void st4(float* p, float4 x, bool vec) {
  if (vec) {
    *reinterpret_cast<float4*>(p) = x;
  } else {
    p[0] = x.x, p[1] = x.y, p[2] = x.z, p[3] = x.w;
  }
}
__device__ __forceinline__ float4 scale4(float4 x, float f) { return make_float4(x.x * f, x.y * f, x.z * f, x.w * f); }
__device__ __forceinline__ float dot4(float4 x, float4 y) { return x.x * y.x + x.y * y.y + x.z * y.z + x.w * y.w; }
__device__ __forceinline__ void fma4(float4& acc, float p, float4 x) {
  acc.x = fmaf(p, x.x, acc.x), acc.y = fmaf(p, x.y, acc.y), acc.z = fmaf(p, x.z, acc.z), acc.w = fmaf(p, x.w, acc.w);
}
__device__ __forceinline__ const float4& lds4(const float* p) { return *reinterpret_cast<const float4*>(p); }

// Reductions over the 8 lanes of a row group (consecutive lanes; all 32 lanes must call).
__device__ __forceinline__ float group_max(float x) {
  for (int o = 1; o < 8; o <<= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ __forceinline__ float group_sum(float x) {
  for (int o = 1; o < 8; o <<= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// S[a][c] += A[a * lda + :D] . B[(tx + 8 c) * ldb + :D]   (A: this thread's first row)
template <int R, int C, int D>
__device__ __forceinline__ void gemm_nt(float (&S)[R][C], const float* A, int lda, const float* B, int ldb, int tx) {
#pragma unroll 2
  for (int kk = 0; kk < D; kk += 4) {
    float4 av[R], bv[C];
#pragma unroll
    for (int a = 0; a < R; ++a) av[a] = lds4(A + a * lda + kk);
#pragma unroll
    for (int c = 0; c < C; ++c) bv[c] = lds4(B + (tx + 8 * c) * ldb + kk);
#pragma unroll
    for (int a = 0; a < R; ++a)
#pragma unroll
      for (int c = 0; c < C; ++c) {
        S[a][c] = fmaf(av[a].x, bv[c].x, S[a][c]);
        S[a][c] = fmaf(av[a].y, bv[c].y, S[a][c]);
        S[a][c] = fmaf(av[a].z, bv[c].z, S[a][c]);
        S[a][c] = fmaf(av[a].w, bv[c].w, S[a][c]);
      }
  }
}

// O[a][g] += sum_{k < K} P[a * ldp + k] X[k * ldx + 4 (tx + 8 g) .. + 3]   (P: this thread's first row)
template <int R, int G, int K>
__device__ __forceinline__ void gemm_nn(float4 (&O)[R][G], const float* P, int ldp, const float* X, int ldx, int tx) {
#pragma unroll 2
  for (int kk = 0; kk < K; kk += 4) {
    float4 pv[R];
#pragma unroll
    for (int a = 0; a < R; ++a) pv[a] = lds4(P + a * ldp + kk);
#pragma unroll
    for (int t = 0; t < 4; ++t) {
      float4 xv[G];
#pragma unroll
      for (int g = 0; g < G; ++g) xv[g] = lds4(X + (kk + t) * ldx + 4 * (tx + 8 * g));
#pragma unroll
      for (int a = 0; a < R; ++a) {
        const float p = t == 0 ? pv[a].x : t == 1 ? pv[a].y : t == 2 ? pv[a].z : pv[a].w;
#pragma unroll
        for (int g = 0; g < G; ++g) fma4(O[a][g], p, xv[g]);
      }
    }
  }
}

// Qs[row][:] = f_i q~_i for queries i0 + row (row < ROWS), 0 beyond n; f = qscale (score_q).
template <int D, int ROWS>
__device__ void load_q_tile(const Args<float>& a, int bi, int hh, int i0, float qscale, float* Qs, bool vec) {
  constexpr int LD = D + 4, C4 = D / 4;
  for (int idx = threadIdx.x; idx < ROWS * C4; idx += blockDim.x) {
    const int row = idx / C4, c4 = idx % C4, i = i0 + row;
    float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
    if (i < a.n) {
      x = ld4(a.q + (a.head(bi, hh) * a.n + i) * D + 4 * c4, vec);
      x = scale4(x, a.sq ? qscale * __ldg(a.sq + int64_t(bi) * a.n + i) : qscale);
    }
    *reinterpret_cast<float4*>(Qs + row * LD + 4 * c4) = x;
  }
}

// Gs[row][:] = g_i (the output gradient) for queries i0 + row, 0 beyond n.
template <int D, int ROWS>
__device__ void load_g_tile(const Args<float>& a, const float* g, int bi, int hh, int i0, float* Gs, bool vec) {
  constexpr int LD = D + 4, C4 = D / 4;
  for (int idx = threadIdx.x; idx < ROWS * C4; idx += blockDim.x) {
    const int row = idx / C4, c4 = idx % C4, i = i0 + row;
    float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
    if (i < a.n) x = ld4(g + (a.head(bi, hh) * a.n + i) * D + 4 * c4, vec);
    *reinterpret_cast<float4*>(Gs + row * LD + 4 * c4) = x;
  }
}

// Ks[row][:] = k~, Vs[row][:] = v~ of slots j0 + row (row < ROWS; slot 0 is the null key when
// there is one), 0 beyond J; and the slots' score rules into use_s / fill_s [ROWS].
template <int D, int ROWS>
__device__ void load_kv_tile(const Args<float>& a, int bi, int hh, int j0, bool full, float* Ks, float* Vs,
                             int* use_s, float* fill_s, bool vec) {
  constexpr int LD = D + 4, C4 = D / 4;
  for (int idx = threadIdx.x; idx < ROWS * C4; idx += blockDim.x) {
    const int row = idx / C4, c4 = idx % C4, j = j0 + row;
    float4 kx = make_float4(0.f, 0.f, 0.f, 0.f), vx = kx;
    if (j < a.J) {
      const int t = j - a.has_null;
      if (t < 0) {
        kx = ld4(a.nk + int64_t(hh) * D + 4 * c4, vec);
        vx = ld4(a.nv + int64_t(hh) * D + 4 * c4, vec);
      } else {
        const int64_t off = (a.head(bi, hh) * a.m + t) * D + 4 * c4;
        kx = ld4(a.k + off, vec);
        vx = ld4(a.v + off, vec);
        if (a.skv) {
          const float s = __ldg(a.skv + a.route_row(bi, hh) + t);
          vx = scale4(vx, s);
          if (a.mkbs) kx = scale4(kx, s);
        }
      }
    }
    *reinterpret_cast<float4*>(Ks + row * LD + 4 * c4) = kx;
    *reinterpret_cast<float4*>(Vs + row * LD + 4 * c4) = vx;
  }
  for (int row = threadIdx.x; row < ROWS; row += blockDim.x) slot_rule(a, bi, hh, j0 + row, full, use_s[row], fill_s[row]);
}

// Shared memory of each kernel, in floats (every array starts at a multiple of 4 floats).
constexpr int smem_fwd(int D, int BR, int BC) { return BR * (D + 4) + 2 * BC * (D + 4) + BR * (BC + 4) + 2 * BC; }
constexpr int smem_dq(int D, int BR, int BC) { return 2 * BR * (D + 4) + 2 * BC * (D + 4) + BR * (BC + 4) + 2 * BC; }
constexpr int smem_dkdv(int D, int BR, int BC) {
  return 2 * BR * (D + 4) + 2 * BC * (D + 4) + 2 * BR * (BC + 4) + 2 * BC + 2 * BR;
}

// Forward: grid (b h, ceil(n / BR)). out [b, h, n, D], lse [b, h, n] (base e).
template <int D, int BR, int BC>
__global__ void __launch_bounds__(kThreads) attn_fwd_f32(const Args<float> a, float* out, float* lse, bool vec) {
  constexpr int R = BR / 16, C = BC / 8, G = D / 32, LD = D + 4, LP = BC + 4;
  static_assert(BR % 16 == 0 && BC % 8 == 0 && BC % 4 == 0 && D % 32 == 0, "tile shape");
  extern __shared__ float4 smem_f4[];
  float* Qs = reinterpret_cast<float*>(smem_f4);  // [BR][LD]  q~ scale log2(e)
  float* Ks = Qs + BR * LD;                         // [BC][LD]  k~ of the tile's slots
  float* Vs = Ks + BC * LD;                         // [BC][LD]  v~
  float* Ps = Vs + BC * LD;                         // [BR][LP]  p of the tile (each row group's own rows)
  float* fill_s = Ps + BR * LP;                     // [BC]
  int* use_s = reinterpret_cast<int*>(fill_s + BC); // [BC]
  const int tid = threadIdx.x, ty = tid / 8, tx = tid % 8;
  const int bh = blockIdx.x, bi = bh / a.h, hh = bh % a.h, i0 = blockIdx.y * BR;
  const bool full = block_fully_masked(a, bi, hh);
  load_q_tile<D, BR>(a, bi, hh, i0, a.scale * kLog2e, Qs, vec);

  float4 acc[R][G];
  float mx[R], l[R];  // running max (base 2) and this lane's part of the running sum
#pragma unroll
  for (int r = 0; r < R; ++r) {
    mx[r] = -INFINITY, l[r] = 0.f;
#pragma unroll
    for (int g = 0; g < G; ++g) acc[r][g] = make_float4(0.f, 0.f, 0.f, 0.f);
  }
  const float* Qrow = Qs + ty * R * LD;
  float* Prow = Ps + ty * R * LP;

  for (int j0 = 0; j0 < a.J; j0 += BC) {
    __syncthreads();  // the previous tile is no longer read (first pass: Qs is written)
    load_kv_tile<D, BC>(a, bi, hh, j0, full, Ks, Vs, use_s, fill_s, vec);
    __syncthreads();
    float s[R][C];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int c = 0; c < C; ++c) s[r][c] = 0.f;
    gemm_nt<R, C, D>(s, Qrow, LD, Ks, LD, tx);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      float t = -INFINITY;
#pragma unroll
      for (int c = 0; c < C; ++c) {
        const int col = tx + 8 * c;
        s[r][c] = use_s[col] ? s[r][c] : fill_s[col];
        t = fmaxf(t, s[r][c]);
      }
      const float mnew = fmaxf(mx[r], group_max(t));
      const float muse = mnew == -INFINITY ? 0.f : mnew;  // no NaN from (-inf) - (-inf)
      const float alpha = exp2f(mx[r] - muse);
      float sum = 0.f;
#pragma unroll
      for (int c = 0; c < C; ++c) {
        const float p = exp2f(s[r][c] - muse);
        Prow[r * LP + tx + 8 * c] = p;
        sum += p;
      }
      l[r] = l[r] * alpha + sum;
      mx[r] = mnew;
#pragma unroll
      for (int g = 0; g < G; ++g) acc[r][g] = scale4(acc[r][g], alpha);
    }
    __syncwarp();  // the row group's p tile is complete
    gemm_nn<R, G, BC>(acc, Prow, LP, Vs, LD, tx);
  }

#pragma unroll
  for (int r = 0; r < R; ++r) {
    const float lsum = group_sum(l[r]);  // > 0: some slot of every row has p = 1 at the max
    const int i = i0 + ty * R + r;
    if (i < a.n) {
      const int64_t row = a.head(bi, hh) * a.n + i;
      const float inv = 1.f / lsum;
#pragma unroll
      for (int g = 0; g < G; ++g) st4(out + row * D + 4 * (tx + 8 * g), scale4(acc[r][g], inv), vec);
      if (tx == 0) lse[row] = (mx[r] + log2f(lsum)) * kLn2;
    }
  }
}

// dq and the dscore_q partial: grid (b h, ceil(n / BR)). dq [b, h, n, D] or null, dsq_part [b, h, n] or null.
template <int D, int BR, int BC>
__global__ void __launch_bounds__(kThreads)
    attn_bwd_dq_f32(const Args<float> a, const float* g, const float* lse, const float* delta, float* dq,
                    float* dsq_part, bool vec) {
  constexpr int R = BR / 16, C = BC / 8, G = D / 32, LD = D + 4, LP = BC + 4;
  extern __shared__ float4 smem_f4[];
  float* Qs = reinterpret_cast<float*>(smem_f4);  // [BR][LD]  q~ scale log2(e)
  float* Gs = Qs + BR * LD;                         // [BR][LD]  g
  float* Ks = Gs + BR * LD;                         // [BC][LD]  k~
  float* Vs = Ks + BC * LD;                         // [BC][LD]  v~
  float* Ss = Vs + BC * LD;                         // [BR][LP]  ds of the tile
  float* fill_s = Ss + BR * LP;                     // [BC]
  int* use_s = reinterpret_cast<int*>(fill_s + BC); // [BC]
  const int tid = threadIdx.x, ty = tid / 8, tx = tid % 8;
  const int bh = blockIdx.x, bi = bh / a.h, hh = bh % a.h, i0 = blockIdx.y * BR;
  const bool full = block_fully_masked(a, bi, hh);
  load_q_tile<D, BR>(a, bi, hh, i0, a.scale * kLog2e, Qs, vec);
  load_g_tile<D, BR>(a, g, bi, hh, i0, Gs, vec);

  float lse2[R], Dr[R];  // the rows' lse (base 2) and D_i; 0 beyond n (those rows get ds = 0)
  float4 acc[R][G];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int i = i0 + ty * R + r;
    const int64_t row = a.head(bi, hh) * a.n + i;
    lse2[r] = i < a.n ? __ldg(lse + row) * kLog2e : 0.f;
    Dr[r] = i < a.n ? __ldg(delta + row) : 0.f;
#pragma unroll
    for (int gg = 0; gg < G; ++gg) acc[r][gg] = make_float4(0.f, 0.f, 0.f, 0.f);
  }
  const float* Qrow = Qs + ty * R * LD;
  const float* Grow = Gs + ty * R * LD;
  float* Srow = Ss + ty * R * LP;

  for (int j0 = 0; j0 < a.J; j0 += BC) {
    __syncthreads();
    load_kv_tile<D, BC>(a, bi, hh, j0, full, Ks, Vs, use_s, fill_s, vec);
    __syncthreads();
    float s[R][C], dp[R][C];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int c = 0; c < C; ++c) s[r][c] = 0.f, dp[r][c] = 0.f;
    gemm_nt<R, C, D>(s, Qrow, LD, Ks, LD, tx);   // s2 = scale log2(e) q~ . k~
    gemm_nt<R, C, D>(dp, Grow, LD, Vs, LD, tx);  // dp = g . v~
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int c = 0; c < C; ++c) {
        const int col = tx + 8 * c;
        const int use = use_s[col];
        const float p = exp2f((use ? s[r][c] : fill_s[col]) - lse2[r]);
        Srow[r * LP + col] = use ? p * (dp[r][c] - Dr[r]) : 0.f;  // ds, 0 on masked slots
      }
    __syncwarp();
    gemm_nn<R, G, BC>(acc, Srow, LP, Ks, LD, tx);  // sum_j ds_ij k~_j
  }

#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int i = i0 + ty * R + r;
    const int64_t row = a.head(bi, hh) * a.n + i;
    float part = 0.f;  // this lane's part of dq~ . q
    if (i < a.n) {
      const float sqi = a.sq ? __ldg(a.sq + int64_t(bi) * a.n + i) : 1.f;
#pragma unroll
      for (int gg = 0; gg < G; ++gg) {
        const float4 dqt = scale4(acc[r][gg], a.scale);  // dq~ = scale sum_j ds k~
        const int e = 4 * (tx + 8 * gg);
        if (dsq_part) part += dot4(dqt, ld4(a.q + row * D + e, vec));
        if (dq) st4(dq + row * D + e, scale4(dqt, sqi), vec);
      }
    }
    part = group_sum(part);
    if (dsq_part && i < a.n && tx == 0) dsq_part[row] = part;
  }
}

// dk, dv and their partials: grid (b h, ceil(J / BR)). dk, dv [b, h, m, D] or null;
// dskv_part [b, h, m], dnk_part / dnv_part [b, h, D] or null.
template <int D, int BR, int BC>
__global__ void __launch_bounds__(kThreads)
    attn_bwd_dkdv_f32(const Args<float> a, const float* g, const float* lse, const float* delta, float* dk, float* dv,
                      float* dskv_part, float* dnk_part, float* dnv_part, bool vec) {
  constexpr int R = BR / 16, C = BC / 8, G = D / 32, LD = D + 4, LP = BC + 4;
  extern __shared__ float4 smem_f4[];
  float* Ks = reinterpret_cast<float*>(smem_f4);  // [BR][LD]  k~ of the block's slots
  float* Vs = Ks + BR * LD;                         // [BR][LD]  v~
  float* Qs = Vs + BR * LD;                         // [BC][LD]  q~ scale log2(e) of the query tile
  float* Gs = Qs + BC * LD;                         // [BC][LD]  g
  float* Ps = Gs + BC * LD;                         // [BR][LP]  p^T
  float* Ss = Ps + BR * LP;                         // [BR][LP]  ds^T
  float* lse_s = Ss + BR * LP;                      // [BC]  lse (base 2); +inf beyond n (p = 0)
  float* d_s = lse_s + BC;                          // [BC]  D_i
  float* fill_s = d_s + BC;                         // [BR]
  int* use_s = reinterpret_cast<int*>(fill_s + BR); // [BR]
  const int tid = threadIdx.x, ty = tid / 8, tx = tid % 8;
  const int bh = blockIdx.x, bi = bh / a.h, hh = bh % a.h, jb = blockIdx.y * BR;
  const bool full = block_fully_masked(a, bi, hh);
  load_kv_tile<D, BR>(a, bi, hh, jb, full, Ks, Vs, use_s, fill_s, vec);
  __syncthreads();
  int ruse[R];
  float rfill[R];
  float4 adk[R][G], adv[R][G];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    ruse[r] = use_s[ty * R + r], rfill[r] = fill_s[ty * R + r];
#pragma unroll
    for (int gg = 0; gg < G; ++gg) adk[r][gg] = adv[r][gg] = make_float4(0.f, 0.f, 0.f, 0.f);
  }
  const float* Krow = Ks + ty * R * LD;
  const float* Vrow = Vs + ty * R * LD;
  float* Prow = Ps + ty * R * LP;
  float* Srow = Ss + ty * R * LP;

  for (int i0 = 0; i0 < a.n; i0 += BC) {
    __syncthreads();  // the previous query tile is no longer read
    load_q_tile<D, BC>(a, bi, hh, i0, a.scale * kLog2e, Qs, vec);
    load_g_tile<D, BC>(a, g, bi, hh, i0, Gs, vec);
    for (int c = tid; c < BC; c += kThreads) {
      const int i = i0 + c;
      const int64_t row = a.head(bi, hh) * a.n + i;
      lse_s[c] = i < a.n ? __ldg(lse + row) * kLog2e : INFINITY;
      d_s[c] = i < a.n ? __ldg(delta + row) : 0.f;
    }
    __syncthreads();
    float st[R][C], dpt[R][C];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int c = 0; c < C; ++c) st[r][c] = 0.f, dpt[r][c] = 0.f;
    gemm_nt<R, C, D>(st, Krow, LD, Qs, LD, tx);   // s2^T
    gemm_nt<R, C, D>(dpt, Vrow, LD, Gs, LD, tx);  // dp^T = v~ . g
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int c = 0; c < C; ++c) {
        const int col = tx + 8 * c;
        const float p = exp2f((ruse[r] ? st[r][c] : rfill[r]) - lse_s[col]);
        Prow[r * LP + col] = p;
        Srow[r * LP + col] = ruse[r] ? p * (dpt[r][c] - d_s[col]) : 0.f;
      }
    __syncwarp();
    gemm_nn<R, G, BC>(adv, Prow, LP, Gs, LD, tx);  // dv~ += p^T g
    gemm_nn<R, G, BC>(adk, Srow, LP, Qs, LD, tx);  // dk~ += ds^T (scale log2(e) q~)
  }

#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int j = jb + ty * R + r;
    const int t = j - a.has_null;  // real key; -1 = the null slot
    const bool valid = j < a.J;
    float part = 0.f;  // this lane's part of dv~ . v (+ dk~ . k)
    if (valid && t < 0) {
#pragma unroll
      for (int gg = 0; gg < G; ++gg) {
        const int e = 4 * (tx + 8 * gg);
        if (dnk_part) st4(dnk_part + a.head(bi, hh) * D + e, scale4(adk[r][gg], kLn2), true);
        if (dnv_part) st4(dnv_part + a.head(bi, hh) * D + e, adv[r][gg], true);
      }
    } else if (valid) {
      const int64_t krow = (a.head(bi, hh) * a.m + t) * D;
      const float sc = a.skv ? __ldg(a.skv + a.route_row(bi, hh) + t) : 1.f;
#pragma unroll
      for (int gg = 0; gg < G; ++gg) {
        const int e = 4 * (tx + 8 * gg);
        const float4 dkt = scale4(adk[r][gg], kLn2);  // scale sum_i ds q~
        const float4 dvt = adv[r][gg];
        if (dk) st4(dk + krow + e, a.mkbs ? scale4(dkt, sc) : dkt, vec);
        if (dv) st4(dv + krow + e, scale4(dvt, sc), vec);
        if (dskv_part) {
          part += dot4(dvt, ld4(a.v + krow + e, vec));
          if (a.mkbs) part += dot4(dkt, ld4(a.k + krow + e, vec));
        }
      }
    }
    part = group_sum(part);
    if (dskv_part && valid && t >= 0 && tx == 0) dskv_part[a.head(bi, hh) * a.m + t] = part;
  }
}

// ---- shared pieces of both dtypes ----------------------------------------------------------

// D_i = g_i . out_i: one warp per row (lanes stride d, a fixed shuffle tree).
template <class T>
__global__ void attn_delta_kernel(const T* out, const T* g, int64_t rows, int d, T* delta) {
  const int lane = threadIdx.x % 32;
  for (int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; row < rows;
       row += int64_t(gridDim.x) * blockDim.x / 32) {
    T s = 0;
    for (int e = lane; e < d; e += 32) s += out[row * d + e] * g[row * d + e];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) delta[row] = s;
  }
}

// out[x, z] = sum_{y < Y} part[x, y, z] in increasing y (accumulating in double for float).
template <class T>
__global__ void sum_middle_kernel(const T* part, int64_t X, int64_t Y, int64_t Z, T* out) {
  for (int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; o < X * Z; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t x = o / Z, z = o % Z;
    acc_t<T> s = 0;
    for (int64_t y = 0; y < Y; ++y) s += acc_t<T>(part[(x * Y + y) * Z + z]);
    out[o] = T(s);
  }
}

// ---- float64 kernels (gradcheck) -----------------------------------------------------------

// k~ / v~ element e of slot j; q~ element e of query i.
__device__ double key64(const Args<double>& a, int bi, int hh, int j, int e) {
  const int t = j - a.has_null;
  if (t < 0) return a.nk[int64_t(hh) * a.d + e];
  const double x = a.k[(a.head(bi, hh) * a.m + t) * a.d + e];
  return a.skv && a.mkbs ? x * a.skv[a.route_row(bi, hh) + t] : x;
}
__device__ double value64(const Args<double>& a, int bi, int hh, int j, int e) {
  const int t = j - a.has_null;
  if (t < 0) return a.nv[int64_t(hh) * a.d + e];
  const double x = a.v[(a.head(bi, hh) * a.m + t) * a.d + e];
  return a.skv ? x * a.skv[a.route_row(bi, hh) + t] : x;
}

// Forward, one thread per (b h, query): grid (b h, ceil(n / 128)).
__global__ void attn_fwd_f64(const Args<double> a, double* out, double* lse) {
  const int bh = blockIdx.x, bi = bh / a.h, hh = bh % a.h;
  const bool full = block_fully_masked(a, bi, hh);
  const int i = blockIdx.y * blockDim.x + threadIdx.x;
  if (i >= a.n) return;
  const int64_t row = a.head(bi, hh) * a.n + i;
  double qv[kMaxD64], acc[kMaxD64];
  const double f = a.scale * (a.sq ? a.sq[int64_t(bi) * a.n + i] : 1.0);
  for (int e = 0; e < a.d; ++e) qv[e] = f * a.q[row * a.d + e], acc[e] = 0;
  double mx = -INFINITY, l = 0;
  for (int j = 0; j < a.J; ++j) {
    int use;
    double s;
    slot_rule(a, bi, hh, j, full, use, s);
    if (use) {
      s = 0;
      for (int e = 0; e < a.d; ++e) s += qv[e] * key64(a, bi, hh, j, e);
    } else if (s == -INFINITY) {
      continue;  // p = 0
    }
    if (s > mx) {  // rescale: exp(-inf) = 0 on the first slot (l and acc are 0 then)
      const double alpha = exp(mx - s);
      l *= alpha;
      for (int e = 0; e < a.d; ++e) acc[e] *= alpha;
      mx = s;
    }
    const double p = exp(s - mx);
    l += p;
    for (int e = 0; e < a.d; ++e) acc[e] += p * value64(a, bi, hh, j, e);
  }
  for (int e = 0; e < a.d; ++e) out[row * a.d + e] = acc[e] / l;
  lse[row] = mx + log(l);
}

// dq and the dscore_q partial, one thread per (b h, query).
__global__ void attn_bwd_dq_f64(const Args<double> a, const double* g, const double* lse, const double* delta,
                                double* dq, double* dsq_part) {
  const int bh = blockIdx.x, bi = bh / a.h, hh = bh % a.h;
  const bool full = block_fully_masked(a, bi, hh);
  const int i = blockIdx.y * blockDim.x + threadIdx.x;
  if (i >= a.n) return;
  const int64_t row = a.head(bi, hh) * a.n + i;
  const double sqi = a.sq ? a.sq[int64_t(bi) * a.n + i] : 1.0;
  double qv[kMaxD64], acc[kMaxD64];
  for (int e = 0; e < a.d; ++e) qv[e] = a.scale * sqi * a.q[row * a.d + e], acc[e] = 0;
  const double L = lse[row], Di = delta[row];
  for (int j = 0; j < a.J; ++j) {
    int use;
    double fill;
    slot_rule(a, bi, hh, j, full, use, fill);
    if (!use) continue;  // ds = 0 on masked slots
    double s = 0, dp = 0;
    for (int e = 0; e < a.d; ++e) {
      s += qv[e] * key64(a, bi, hh, j, e);
      dp += g[row * a.d + e] * value64(a, bi, hh, j, e);
    }
    const double ds = exp(s - L) * (dp - Di);
    for (int e = 0; e < a.d; ++e) acc[e] += ds * key64(a, bi, hh, j, e);
  }
  double part = 0;
  for (int e = 0; e < a.d; ++e) {
    const double dqt = a.scale * acc[e];
    part += dqt * a.q[row * a.d + e];
    if (dq) dq[row * a.d + e] = sqi * dqt;
  }
  if (dsq_part) dsq_part[row] = part;
}

// dk, dv and their partials, one thread per (b h, key slot): grid (b h, ceil(J / 128)).
__global__ void attn_bwd_dkdv_f64(const Args<double> a, const double* g, const double* lse, const double* delta,
                                  double* dk, double* dv, double* dskv_part, double* dnk_part, double* dnv_part) {
  const int bh = blockIdx.x, bi = bh / a.h, hh = bh % a.h;
  const bool full = block_fully_masked(a, bi, hh);
  const int j = blockIdx.y * blockDim.x + threadIdx.x;
  if (j >= a.J) return;
  int use;
  double fill;
  slot_rule(a, bi, hh, j, full, use, fill);
  double kv[kMaxD64], vv[kMaxD64], adk[kMaxD64], adv[kMaxD64];
  for (int e = 0; e < a.d; ++e) kv[e] = key64(a, bi, hh, j, e), vv[e] = value64(a, bi, hh, j, e), adk[e] = adv[e] = 0;
  if (use || fill == 0.0) {  // a masked slot of a row with unmasked slots has p = 0: no gradient
    for (int i = 0; i < a.n; ++i) {
      const int64_t row = a.head(bi, hh) * a.n + i;
      const double f = a.scale * (a.sq ? a.sq[int64_t(bi) * a.n + i] : 1.0);  // scale q~ = f q
      double s = 0, dp = 0;
      if (use)
        for (int e = 0; e < a.d; ++e) s += f * a.q[row * a.d + e] * kv[e], dp += g[row * a.d + e] * vv[e];
      const double p = exp(s - lse[row]);  // s = 0 on a fully masked row
      for (int e = 0; e < a.d; ++e) adv[e] += p * g[row * a.d + e];
      if (use) {
        const double ds = p * (dp - delta[row]);
        for (int e = 0; e < a.d; ++e) adk[e] += ds * f * a.q[row * a.d + e];
      }
    }
  }
  const int t = j - a.has_null;
  if (t < 0) {
    for (int e = 0; e < a.d; ++e) {
      if (dnk_part) dnk_part[a.head(bi, hh) * a.d + e] = adk[e];
      if (dnv_part) dnv_part[a.head(bi, hh) * a.d + e] = adv[e];
    }
    return;
  }
  const int64_t krow = (a.head(bi, hh) * a.m + t) * a.d;
  const double sc = a.skv ? a.skv[a.route_row(bi, hh) + t] : 1.0;
  double part = 0;
  for (int e = 0; e < a.d; ++e) {
    if (dk) dk[krow + e] = (a.mkbs ? sc : 1.0) * adk[e];
    if (dv) dv[krow + e] = sc * adv[e];
    part += adv[e] * a.v[krow + e];
    if (a.mkbs) part += adk[e] * a.k[krow + e];
  }
  if (dskv_part) dskv_part[a.head(bi, hh) * a.m + t] = part;
}

// ---- launchers -------------------------------------------------------------------------------

template <class T>
T* mut_or_null(Tensor& t) {
  return t.defined() && t.numel() > 0 ? static_cast<T*>(t.raw_data()) : nullptr;
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
bool aligned16(const Tensor& t) { return !t.defined() || t.numel() == 0 || aligned16(t.raw_data()); }

// Every global row the fast path reads or writes with float4 starts 16-byte aligned.
bool all_aligned(std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (!aligned16(*t)) return false;
  return true;
}

void check_sizes(const AttentionInputs& in, const char* op) {
  COLT5_CHECK(in.q.numel() < INT_MAX && in.k.numel() < INT_MAX && in.q.size(0) * in.q.size(1) < INT_MAX, op,
              ": tensors of 2^31 or more elements are not supported by the CUDA kernels");
  COLT5_CHECK(in.q.size(2) <= 65535LL * 32 && in.k.size(2) <= 65535LL * 32, op,
              ": too many queries or keys for the CUDA kernels' grid");
}

template <class K>
void allow_smem(K kernel, int bytes) {
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

unsigned tiles(int64_t count, int per) { return unsigned(count <= 0 ? 1 : (count + per - 1) / per); }

template <int D, int BR, int BC>
void launch_fwd_f32(const Args<float>& a, float* out, float* lse, bool vec, cudaStream_t s) {
  const int bytes = smem_fwd(D, BR, BC) * int(sizeof(float));
  allow_smem(attn_fwd_f32<D, BR, BC>, bytes);
  attn_fwd_f32<D, BR, BC><<<dim3(unsigned(a.b * a.h), tiles(a.n, BR)), kThreads, bytes, s>>>(a, out, lse, vec);
  COLT5_CHECK_LAUNCH("attn_fwd_f32", s);
}

template <int D, int BR, int BC>
void launch_dq_f32(const Args<float>& a, const float* g, const float* lse, const float* delta, float* dq,
                   float* dsq_part, bool vec, cudaStream_t s) {
  const int bytes = smem_dq(D, BR, BC) * int(sizeof(float));
  allow_smem(attn_bwd_dq_f32<D, BR, BC>, bytes);
  attn_bwd_dq_f32<D, BR, BC><<<dim3(unsigned(a.b * a.h), tiles(a.n, BR)), kThreads, bytes, s>>>(a, g, lse, delta, dq,
                                                                                                 dsq_part, vec);
  COLT5_CHECK_LAUNCH("attn_bwd_dq_f32", s);
}

template <int D, int BR, int BC>
void launch_dkdv_f32(const Args<float>& a, const float* g, const float* lse, const float* delta, float* dk, float* dv,
                     float* dskv_part, float* dnk_part, float* dnv_part, bool vec, cudaStream_t s) {
  const int bytes = smem_dkdv(D, BR, BC) * int(sizeof(float));
  allow_smem(attn_bwd_dkdv_f32<D, BR, BC>, bytes);
  attn_bwd_dkdv_f32<D, BR, BC><<<dim3(unsigned(a.b * a.h), tiles(a.J, BR)), kThreads, bytes, s>>>(
      a, g, lse, delta, dk, dv, dskv_part, dnk_part, dnv_part, vec);
  COLT5_CHECK_LAUNCH("attn_bwd_dkdv_f32", s);
}

// Tile shapes (BR, BC) per head dim, chosen for <= ~110 KB of shared memory (two blocks per SM)
// and no register spills; see the file comment for the thread layout.
//   forward, dq:  D 32, 64: 64 x 64;  D 128: fwd 64 x 32, dq 32 x 32
//   dk/dv:        D 32: 64 x 64;  D 64: 64 x 32;  D 128: 32 x 32
bool fast_path(const AttentionInputs& in) {
  const int64_t d = in.q.size(3);
  return in.q.dtype() == DType::Float32 && (d == 32 || d == 64 || d == 128);
}

void attention_forward_cuda(const AttentionInputs& in, Tensor& out, Tensor& lse) {
  const char* op = "attention";
  check_sizes(in, op);
  cudaStream_t s = stream_for(out);
  const int64_t d = in.q.size(3);
  if (in.q.dtype() == DType::Float32) {
    COLT5_CHECK(fast_path(in), op, ": the CUDA float32 kernel covers head dims 32, 64 and 128, got ", d);
    const Args<float> a = make_args<float>(in);
    const bool vec = all_aligned({&in.q, &in.k, &in.v, &in.null_k, &in.null_v, &out});
    float* o = static_cast<float*>(out.raw_data());
    float* l = static_cast<float*>(lse.raw_data());
    if (d == 32) launch_fwd_f32<32, 64, 64>(a, o, l, vec, s);
    else if (d == 64) launch_fwd_f32<64, 64, 64>(a, o, l, vec, s);
    else launch_fwd_f32<128, 64, 32>(a, o, l, vec, s);
    return;
  }
  COLT5_CHECK(in.q.dtype() == DType::Float64 && d <= kMaxD64, op,
              ": the CUDA kernels cover float32 (d 32, 64, 128) and float64 (d <= 128), got ", dtype_name(in.q.dtype()),
              " d ", d);
  const Args<double> a = make_args<double>(in);
  attn_fwd_f64<<<dim3(unsigned(a.b * a.h), tiles(a.n, 128)), 128, 0, s>>>(a, static_cast<double*>(out.raw_data()),
                                                                          static_cast<double*>(lse.raw_data()));
  COLT5_CHECK_LAUNCH("attn_fwd_f64", s);
}

void attention_backward_cuda(const AttentionInputs& in, const Tensor& out, const Tensor& lse, const Tensor& g,
                             AttentionGrads& grads) {
  const char* op = "attention_backward";
  check_sizes(in, op);
  cudaStream_t s = stream_for(g);
  const int64_t b = in.q.size(0), h = in.q.size(1), n = in.q.size(2), d = in.q.size(3), m = in.k.size(2);
  const int64_t r = in.routes;
  const bool fp32 = in.q.dtype() == DType::Float32;
  COLT5_CHECK(fp32 ? fast_path(in) : (in.q.dtype() == DType::Float64 && d <= kMaxD64), op,
              ": the CUDA kernels cover float32 (d 32, 64, 128) and float64 (d <= 128), got ",
              dtype_name(in.q.dtype()), " d ", d);
  const Device dev = in.q.device();
  const DType dt = in.q.dtype();
  // per-head partials, summed below in a fixed order
  Tensor delta = Tensor::empty({b, h, n}, dt, dev);
  Tensor dsq_part = grads.dscore_q.defined() ? Tensor::empty({b, h, n}, dt, dev) : Tensor();
  Tensor dskv_part = grads.dscore_kv.defined() && m > 0 ? Tensor::empty({b, h, m}, dt, dev) : Tensor();
  Tensor dnk_part = grads.dnull_k.defined() ? Tensor::empty({b, h, d}, dt, dev) : Tensor();
  Tensor dnv_part = grads.dnull_v.defined() ? Tensor::empty({b, h, d}, dt, dev) : Tensor();
  const bool want_q = grads.dq.defined() || dsq_part.defined();
  const bool want_kv = grads.dk.defined() || grads.dv.defined() || dskv_part.defined() || dnk_part.defined() ||
                       dnv_part.defined();

  visit_floating(dt, op, [&]<class T>() {
    const T* gp = static_cast<const T*>(g.raw_data());
    const T* lp = static_cast<const T*>(lse.raw_data());
    T* dp = static_cast<T*>(delta.raw_data());
    const int64_t rows = b * h * n;
    attn_delta_kernel<T><<<grid_for(rows * 32, 256), 256, 0, s>>>(static_cast<const T*>(out.raw_data()), gp, rows,
                                                                  int(d), dp);
    COLT5_CHECK_LAUNCH("attn_delta_kernel", s);
    const Args<T> a = make_args<T>(in);
    T *dq = mut_or_null<T>(grads.dq), *dk = mut_or_null<T>(grads.dk), *dv = mut_or_null<T>(grads.dv);
    T *sqp = mut_or_null<T>(dsq_part), *skp = mut_or_null<T>(dskv_part);
    T *nkp = mut_or_null<T>(dnk_part), *nvp = mut_or_null<T>(dnv_part);
    if constexpr (std::is_same_v<T, float>) {
      const bool vec = all_aligned({&in.q, &in.k, &in.v, &in.null_k, &in.null_v, &g, &grads.dq, &grads.dk, &grads.dv});
      if (want_q) {
        if (d == 32) launch_dq_f32<32, 64, 64>(a, gp, lp, dp, dq, sqp, vec, s);
        else if (d == 64) launch_dq_f32<64, 64, 64>(a, gp, lp, dp, dq, sqp, vec, s);
        else launch_dq_f32<128, 32, 32>(a, gp, lp, dp, dq, sqp, vec, s);
      }
      if (want_kv) {
        if (d == 32) launch_dkdv_f32<32, 64, 64>(a, gp, lp, dp, dk, dv, skp, nkp, nvp, vec, s);
        else if (d == 64) launch_dkdv_f32<64, 64, 32>(a, gp, lp, dp, dk, dv, skp, nkp, nvp, vec, s);
        else launch_dkdv_f32<128, 32, 32>(a, gp, lp, dp, dk, dv, skp, nkp, nvp, vec, s);
      }
    } else {
      if (want_q) {
        attn_bwd_dq_f64<<<dim3(unsigned(b * h), tiles(n, 128)), 128, 0, s>>>(a, gp, lp, dp, dq, sqp);
        COLT5_CHECK_LAUNCH("attn_bwd_dq_f64", s);
      }
      if (want_kv) {
        attn_bwd_dkdv_f64<<<dim3(unsigned(b * h), tiles(a.J, 128)), 128, 0, s>>>(a, gp, lp, dp, dk, dv, skp, nkp, nvp);
        COLT5_CHECK_LAUNCH("attn_bwd_dkdv_f64", s);
      }
    }
    // fixed-order sums of the partials
    auto finish = [&](const Tensor& part, int64_t X, int64_t Y, int64_t Z, Tensor& dst) {
      if (!dst.defined() || dst.numel() == 0) return;
      sum_middle_kernel<T><<<grid_for(X * Z), 256, 0, s>>>(static_cast<const T*>(part.raw_data()), X, Y, Z,
                                                           static_cast<T*>(dst.raw_data()));
      COLT5_CHECK_LAUNCH("attn_sum_middle_kernel", s);
    };
    if (sqp) finish(dsq_part, b, h, n, grads.dscore_q);         // over heads
    if (skp) finish(dskv_part, b * r, h / r, m, grads.dscore_kv);  // over the route's heads
    if (nkp) finish(dnk_part, 1, b, h * d, grads.dnull_k);       // over the batch
    if (nvp) finish(dnv_part, 1, b, h * d, grads.dnull_v);
  });
}

bool attention_supports_cuda(const AttentionInputs& in) {
  if (!in.q.defined() || in.q.dim() != 4 || !in.k.defined() || in.k.dim() != 4) return false;
  if (in.q.numel() >= INT_MAX || in.k.numel() >= INT_MAX) return false;
  const int64_t d = in.q.size(3);
  if (in.q.dtype() == DType::Float32) return d == 32 || d == 64 || d == 128;
  if (in.q.dtype() == DType::Float64) return d >= 1 && d <= kMaxD64;
  return false;
}

}  // namespace

}  // namespace colt5::cuda

COLT5_REGISTER_CUDA(attention_forward, colt5::cuda::attention_forward_cuda)
COLT5_REGISTER_CUDA(attention_backward, colt5::cuda::attention_backward_cuda)
COLT5_REGISTER_CUDA(attention_supports, colt5::cuda::attention_supports_cuda)
