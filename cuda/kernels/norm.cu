// CUDA kernels for layer_norm and rms_norm over rows of a contiguous [R, D] x (contracts in
// core/ops/norm.h; the math, forward and backward, is written out at the top of
// core/cpu/norm.cpp and repeated briefly here).
//
// Dims legend: R rows, D the normalised (last) dim, P row chunks of the parameter-gradient pass.
//
// layer_norm:  mu = mean(x), rstd = 1/sqrt(mean((x - mu)^2) + eps), xhat = (x - mu) * rstd,
//              y = xhat * w + b.
//   backward:  dxhat = g * w,  dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),
//              dw = sum_rows g * xhat,  db = sum_rows g.
// rms_norm:    n = ||x||_2, r = 1/max(n, eps), s = sqrt(D),  y = x * r * s * gamma.
//   backward:  u = g * gamma * s,  dx = r * (u - x * r^2 (u . x))  (n >= eps),  dx = r * u (n < eps),
//              dgamma = sum_rows g * x * r * s.
//
// Row kernels (forward, and dx of the backward): one block per row (a grid-stride loop over
// rows when R exceeds the grid), threads striding over the row, so rows of any length work;
// the row sums go through block_sum's fixed tree. The block has the smallest power of two
// >= D threads, between 32 and 256.
//
// Parameter gradients (dw, db, dgamma) are sums over rows without atomics, in two passes with a
// fixed order: pass 1 has one thread per (chunk p, column j) summing its chunk's rows in
// increasing order into partial[p, j]; pass 2 has one thread per column summing the P partials
// in increasing p. P depends only on (R, D), so results are bit-identical run to run.
// Float accumulates in double throughout (as on the CPU).
#include <algorithm>
#include <cmath>

#include "core/ops/norm.h"
#include "cuda/kernels/common.cuh"

namespace colt5::cuda {

namespace {

constexpr int kMaxThreads = 256;

// Threads per row block: a power of two (block_sum needs one), >= D where possible.
int row_threads(int64_t D) {
  int t = 32;
  while (t < kMaxThreads && t < D) t *= 2;
  return t;
}

// One block per row, up to the grid cap (the kernels loop over the rest).
unsigned row_blocks(int64_t R) { return grid_for(R, 1); }

// ---- layer_norm ----

template <class T>
__global__ void layer_norm_fwd_kernel(const T* x,  // [R, D]
                                      const T* w,  // [D] or null (1)
                                      const T* b,  // [D] or null (0)
                                      acc_t<T> eps, int64_t R, int64_t D,
                                      T* y,     // [R, D]
                                      T* mean,  // [R]
                                      T* rstd)  // [R]
{
  using A = acc_t<T>;
  __shared__ A buf[kMaxThreads];
  const int tid = threadIdx.x;
  for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
    const T* xr = x + r * D;
    T* yr = y + r * D;
    A sum = 0;
    for (int64_t j = tid; j < D; j += blockDim.x) sum += A(xr[j]);
    const A mu = block_sum(sum, buf) / A(D);
    A sq = 0;  // two passes: no cancellation from E[x^2] - E[x]^2
    for (int64_t j = tid; j < D; j += blockDim.x) {
      const A d = A(xr[j]) - mu;
      sq += d * d;
    }
    const A inv = A(1) / sqrt(block_sum(sq, buf) / A(D) + eps);
    for (int64_t j = tid; j < D; j += blockDim.x) {
      A v = (A(xr[j]) - mu) * inv;
      if (w) v *= A(w[j]);
      if (b) v += A(b[j]);
      yr[j] = T(v);
    }
    if (tid == 0) {
      mean[r] = T(mu);
      rstd[r] = T(inv);
    }
  }
}

template <class T>
__global__ void layer_norm_bwd_dx_kernel(const T* x,     // [R, D]
                                         const T* w,     // [D] or null
                                         const T* mean,  // [R]
                                         const T* rstd,  // [R]
                                         const T* g,     // [R, D]
                                         int64_t R, int64_t D,
                                         T* dx)  // [R, D]
{
  using A = acc_t<T>;
  __shared__ A buf[kMaxThreads];
  const int tid = threadIdx.x;
  for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
    const T* xr = x + r * D;
    const T* gr = g + r * D;
    T* dxr = dx + r * D;
    const A mu = A(mean[r]), inv = A(rstd[r]);
    A sd = 0, sdx = 0;
    for (int64_t j = tid; j < D; j += blockDim.x) {
      const A xh = (A(xr[j]) - mu) * inv;
      const A dxh = w ? A(gr[j]) * A(w[j]) : A(gr[j]);
      sd += dxh;
      sdx += dxh * xh;
    }
    const A mean_d = block_sum(sd, buf) / A(D);
    const A mean_dx = block_sum(sdx, buf) / A(D);
    for (int64_t j = tid; j < D; j += blockDim.x) {
      const A xh = (A(xr[j]) - mu) * inv;
      const A dxh = w ? A(gr[j]) * A(w[j]) : A(gr[j]);
      dxr[j] = T(inv * (dxh - mean_d - xh * mean_dx));
    }
  }
}

// Pass 1 of dw / db: partial[p, j] over rows [p * rows, min(R, (p + 1) * rows)).
template <class T>
__global__ void layer_norm_param_partial_kernel(const T* x, const T* mean, const T* rstd, const T* g, int64_t R,
                                                int64_t D, int64_t rows, int64_t P,
                                                acc_t<T>* pw,  // [P, D] or null
                                                acc_t<T>* pb)  // [P, D] or null
{
  using A = acc_t<T>;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < P * D;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = idx / D, j = idx % D;
    const int64_t r0 = p * rows, r1 = min(R, r0 + rows);
    A sw = 0, sb = 0;
    for (int64_t r = r0; r < r1; ++r) {
      const A gv = A(g[r * D + j]);
      if (pw) sw += gv * ((A(x[r * D + j]) - A(mean[r])) * A(rstd[r]));
      sb += gv;
    }
    if (pw) pw[idx] = sw;
    if (pb) pb[idx] = sb;
  }
}

// ---- rms_norm ----

template <class T>
__global__ void rms_norm_fwd_kernel(const T* x,      // [R, D]
                                    const T* gamma,  // [D] or null (1)
                                    acc_t<T> eps, acc_t<T> s, int64_t R, int64_t D,
                                    T* y,     // [R, D]
                                    T* norm)  // [R]
{
  using A = acc_t<T>;
  __shared__ A buf[kMaxThreads];
  const int tid = threadIdx.x;
  for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
    const T* xr = x + r * D;
    T* yr = y + r * D;
    A sq = 0;
    for (int64_t j = tid; j < D; j += blockDim.x) sq += A(xr[j]) * A(xr[j]);
    const A n = sqrt(block_sum(sq, buf));
    const A scale = s / (n < eps ? eps : n);  // r * s = s / max(n, eps), NaN kept as on the CPU
    for (int64_t j = tid; j < D; j += blockDim.x) {
      A v = A(xr[j]) * scale;
      if (gamma) v *= A(gamma[j]);
      yr[j] = T(v);
    }
    if (tid == 0) norm[r] = T(n);
  }
}

template <class T>
__global__ void rms_norm_bwd_dx_kernel(const T* x,      // [R, D]
                                       const T* gamma,  // [D] or null
                                       const T* norm,   // [R]
                                       const T* g,      // [R, D]
                                       acc_t<T> eps, acc_t<T> s, int64_t R, int64_t D,
                                       T* dx)  // [R, D]
{
  using A = acc_t<T>;
  __shared__ A buf[kMaxThreads];
  const int tid = threadIdx.x;
  for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
    const T* xr = x + r * D;
    const T* gr = g + r * D;
    T* dxr = dx + r * D;
    const A n = A(norm[r]);
    const bool clamped = n < eps;
    const A inv = A(1) / (clamped ? eps : n);  // r
    A ux = 0;
    for (int64_t j = tid; j < D; j += blockDim.x) {
      const A u = A(gr[j]) * s * (gamma ? A(gamma[j]) : A(1));
      ux += u * A(xr[j]);
    }
    const A total = block_sum(ux, buf);
    const A k = clamped ? A(0) : inv * inv * total;  // r^2 (u . x), 0 under the clamp
    for (int64_t j = tid; j < D; j += blockDim.x) {
      const A u = A(gr[j]) * s * (gamma ? A(gamma[j]) : A(1));
      dxr[j] = T(inv * (u - A(xr[j]) * k));
    }
  }
}

// Pass 1 of dgamma: partial[p, j] over the rows of chunk p.
template <class T>
__global__ void rms_norm_param_partial_kernel(const T* x, const T* norm, const T* g, acc_t<T> eps, acc_t<T> s,
                                              int64_t R, int64_t D, int64_t rows, int64_t P,
                                              acc_t<T>* pg)  // [P, D]
{
  using A = acc_t<T>;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < P * D;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = idx / D, j = idx % D;
    const int64_t r0 = p * rows, r1 = min(R, r0 + rows);
    A acc = 0;
    for (int64_t r = r0; r < r1; ++r) {
      const A n = A(norm[r]);
      const A inv = A(1) / (n < eps ? eps : n);
      acc += A(g[r * D + j]) * A(x[r * D + j]) * inv * s;
    }
    pg[idx] = acc;
  }
}

// Pass 2: out[j] = sum_p partial[p, j], one warp per column: lane l sums p = l, l + 32, ... in
// increasing p, then the 32 lane sums are combined by a shuffle butterfly (a fixed order, so the
// result is deterministic). A thread per column walking all P partials serially took 39 us for
// P = 1024 at D = 128; a warp's lanes walk P / 32 each.
template <class T>
__global__ void param_finish_kernel(const acc_t<T>* partial,  // [P, D]
                                    int64_t P, int64_t D,
                                    T* out)  // [D]
{
  using A = acc_t<T>;
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  for (int64_t j = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32; j < D; j += warps) {
    A acc = 0;
    for (int64_t p = lane; p < P; p += 32) acc += partial[p * D + j];
    for (int offset = 16; offset > 0; offset >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, offset);
    if (lane == 0) out[j] = T(acc);
  }
}

// Row chunking of the parameter-gradient pass: about sqrt(R) chunks of about sqrt(R) rows
// (balancing the two passes' serial loops), but at least enough chunks for ~2^17 (chunk, column)
// threads in pass 1 when the rows allow (a narrow D, as in a small model's [16384, 128], would
// otherwise run 16k threads, each walking 128 rows: 30 us where 5 will do), and at most ~2^18.
// Depends only on (R, D). Returns {P, rows per chunk}; every chunk is non-empty.
struct Chunks {
  int64_t P, rows;
};
Chunks param_chunks(int64_t R, int64_t D) {
  const int64_t by_threads = std::max<int64_t>(1, (int64_t(1) << 18) / D);
  const int64_t fill = std::max<int64_t>(1, (int64_t(1) << 17) / D);
  const int64_t by_rows = std::max<int64_t>(1, int64_t(std::ceil(std::sqrt(double(R)))));
  int64_t P = std::min({by_threads, std::max(by_rows, std::min(fill, R / 16)), R});
  P = std::max<int64_t>(P, 1);
  const int64_t rows = (R + P - 1) / P;
  P = (R + rows - 1) / rows;
  return {P, rows};
}

// Scratch for partial sums [P, D] in the accumulation type (double for both dtypes).
Tensor partial_buffer(const Chunks& c, int64_t D, const Tensor& like) {
  return Tensor::empty({c.P, D}, DType::Float64, like.device());
}

template <class T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? static_cast<const T*>(t.raw_data()) : nullptr;
}

template <class T>
T* mut_or_null(const Tensor& t) {
  return t.defined() ? static_cast<T*>(t.raw_data()) : nullptr;
}

// Sums partial [P, D] over P into out [D].
template <class T>
void finish_param(const Tensor& partial, const Chunks& c, int64_t D, Tensor& out, cudaStream_t s) {
  param_finish_kernel<T><<<grid_for(D * 32), 256, 0, s>>>(static_cast<const acc_t<T>*>(partial.raw_data()), c.P, D,
                                                     static_cast<T*>(out.raw_data()));
  COLT5_CHECK_LAUNCH("norm_param_finish_kernel", s);
}

void zero_fill(Tensor& t, cudaStream_t s) {
  if (t.defined() && t.numel() > 0)
    CUDA_CHECK(cudaMemsetAsync(t.raw_data(), 0, size_t(t.numel()) * t.element_size(), s));
}

void check_rows(const Tensor& x, const Tensor& g, const char* op) {
  COLT5_CHECK(x.is_contiguous(), op, ": argument 'x' expected a contiguous [R, D] tensor, got strides ", x.strides());
  if (g.defined())
    COLT5_CHECK(g.is_contiguous(), op, ": argument 'g' expected a contiguous [R, D] tensor, got strides ",
                g.strides());
}

}  // namespace

void layer_norm_forward(const Tensor& x, const Tensor& w, const Tensor& b, double eps, Tensor& y, Tensor& mean,
                        Tensor& rstd) {
  check_rows(x, Tensor(), "layer_norm");
  const int64_t D = x.dim() == 0 ? 1 : x.size(-1);
  if (D == 0 || x.numel() == 0) return;
  const int64_t R = x.numel() / D;
  cudaStream_t s = stream_for(y);
  visit_floating(x.dtype(), "layer_norm", [&]<class T>() {
    layer_norm_fwd_kernel<T><<<row_blocks(R), row_threads(D), 0, s>>>(
        static_cast<const T*>(x.raw_data()), ptr_or_null<T>(w), ptr_or_null<T>(b), acc_t<T>(eps), R, D,
        static_cast<T*>(y.raw_data()), static_cast<T*>(mean.raw_data()), static_cast<T*>(rstd.raw_data()));
  });
  COLT5_CHECK_LAUNCH("layer_norm_fwd_kernel", s);
}

void layer_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd, const Tensor& g,
                         Tensor& dx, Tensor& dw, Tensor& db) {
  check_rows(x, g, "layer_norm_backward");
  const int64_t D = x.dim() == 0 ? 1 : x.size(-1);
  if (D == 0) return;
  const int64_t R = x.numel() / D;
  cudaStream_t s = stream_for(dx);
  if (R == 0) {  // empty sums
    zero_fill(dw, s);
    zero_fill(db, s);
    return;
  }
  visit_floating(x.dtype(), "layer_norm_backward", [&]<class T>() {
    const T* xs = static_cast<const T*>(x.raw_data());
    const T* ms = static_cast<const T*>(mean.raw_data());
    const T* rs = static_cast<const T*>(rstd.raw_data());
    const T* gs = static_cast<const T*>(g.raw_data());
    layer_norm_bwd_dx_kernel<T><<<row_blocks(R), row_threads(D), 0, s>>>(xs, ptr_or_null<T>(w), ms, rs, gs, R, D,
                                                                        static_cast<T*>(dx.raw_data()));
    COLT5_CHECK_LAUNCH("layer_norm_bwd_dx_kernel", s);
    if (!dw.defined() && !db.defined()) return;
    const Chunks c = param_chunks(R, D);
    Tensor pw = dw.defined() ? partial_buffer(c, D, x) : Tensor();  // [P, D]
    Tensor pb = db.defined() ? partial_buffer(c, D, x) : Tensor();  // [P, D]
    layer_norm_param_partial_kernel<T><<<grid_for(c.P * D), 256, 0, s>>>(
        xs, ms, rs, gs, R, D, c.rows, c.P, mut_or_null<acc_t<T>>(pw), mut_or_null<acc_t<T>>(pb));
    COLT5_CHECK_LAUNCH("layer_norm_param_partial_kernel", s);
    if (dw.defined()) finish_param<T>(pw, c, D, dw, s);
    if (db.defined()) finish_param<T>(pb, c, D, db, s);
  });
}

void rms_norm_forward(const Tensor& x, const Tensor& gamma, double eps, Tensor& y, Tensor& norm) {
  check_rows(x, Tensor(), "rms_norm");
  const int64_t D = x.dim() == 0 ? 1 : x.size(-1);
  if (D == 0 || x.numel() == 0) return;
  const int64_t R = x.numel() / D;
  cudaStream_t s = stream_for(y);
  visit_floating(x.dtype(), "rms_norm", [&]<class T>() {
    using A = acc_t<T>;
    rms_norm_fwd_kernel<T><<<row_blocks(R), row_threads(D), 0, s>>>(
        static_cast<const T*>(x.raw_data()), ptr_or_null<T>(gamma), A(eps), std::sqrt(A(D)), R, D,
        static_cast<T*>(y.raw_data()), static_cast<T*>(norm.raw_data()));
  });
  COLT5_CHECK_LAUNCH("rms_norm_fwd_kernel", s);
}

void rms_norm_backward(const Tensor& x, const Tensor& gamma, const Tensor& norm, double eps, const Tensor& g,
                       Tensor& dx, Tensor& dgamma) {
  check_rows(x, g, "rms_norm_backward");
  const int64_t D = x.dim() == 0 ? 1 : x.size(-1);
  if (D == 0) return;
  const int64_t R = x.numel() / D;
  cudaStream_t s = stream_for(dx);
  if (R == 0) {  // an empty sum
    zero_fill(dgamma, s);
    return;
  }
  visit_floating(x.dtype(), "rms_norm_backward", [&]<class T>() {
    using A = acc_t<T>;
    const T* xs = static_cast<const T*>(x.raw_data());
    const T* ns = static_cast<const T*>(norm.raw_data());
    const T* gs = static_cast<const T*>(g.raw_data());
    const A sD = std::sqrt(A(D));
    rms_norm_bwd_dx_kernel<T><<<row_blocks(R), row_threads(D), 0, s>>>(xs, ptr_or_null<T>(gamma), ns, gs, A(eps), sD,
                                                                      R, D, static_cast<T*>(dx.raw_data()));
    COLT5_CHECK_LAUNCH("rms_norm_bwd_dx_kernel", s);
    if (!dgamma.defined()) return;
    const Chunks c = param_chunks(R, D);
    Tensor pg = partial_buffer(c, D, x);  // [P, D]
    rms_norm_param_partial_kernel<T><<<grid_for(c.P * D), 256, 0, s>>>(xs, ns, gs, A(eps), sD, R, D, c.rows, c.P,
                                                                       static_cast<A*>(pg.raw_data()));
    COLT5_CHECK_LAUNCH("rms_norm_param_partial_kernel", s);
    finish_param<T>(pg, c, D, dgamma, s);
  });
}

}  // namespace colt5::cuda

COLT5_REGISTER_CUDA(layer_norm_forward, colt5::cuda::layer_norm_forward)
COLT5_REGISTER_CUDA(layer_norm_backward, colt5::cuda::layer_norm_backward)
COLT5_REGISTER_CUDA(rms_norm_forward, colt5::cuda::rms_norm_forward)
COLT5_REGISTER_CUDA(rms_norm_backward, colt5::cuda::rms_norm_backward)
