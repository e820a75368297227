// CPU reference kernels for layer_norm and rms_norm over rows of a contiguous [R, D] x
// (contracts in core/ops/norm.h). Per-row sums run in double for float inputs.
//
// layer_norm. Forward: mu = mean(x), var = mean((x - mu)^2), rstd = 1/sqrt(var + eps),
// xhat = (x - mu) * rstd, y = xhat * w + b. Backward, with g = dL/dy and dxhat = g * w:
//   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
//   dw = sum over rows of g * xhat,   db = sum over rows of g.
// (dx: xhat depends on x directly, through mu (d mu/dx_j = 1/D) and through rstd
// (d rstd/dx_j = -rstd^3 (x_j - mu)/D); collecting terms gives the three above.)
//
// rms_norm (CoLT5's RMSNorm: F.normalize, then * sqrt(D) * gamma). Forward, with
// n = ||x||_2, r = 1/max(n, eps), s = sqrt(D):   y = x * r * s * gamma.
// Backward, with u = g * gamma * s (so that y = r * x .* gamma * s and dL/dx_j = r u_j + (u.x) dr/dx_j):
//   n >= eps:  r = 1/n, dr/dx_j = -x_j / n^3 = -r^3 x_j  =>  dx = r * (u - x * r^2 * (u . x))
//   n <  eps:  r = 1/eps is constant (the clamp is active, its gradient is 0)  =>  dx = r * u
//   dgamma = sum over rows of g * x * r * s.
// (n == eps counts as unclamped, as torch's clamp_min backward.)
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/ops/norm.h"

namespace colt5::cpu {

namespace {

template <class T>
using Acc = std::conditional_t<std::is_same_v<T, float>, double, T>;

template <class T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? static_cast<const T*>(t.raw_data()) : nullptr;
}

}  // namespace

void layer_norm_forward(const Tensor& x, const Tensor& w, const Tensor& b, double eps, Tensor& y, Tensor& mean,
                        Tensor& rstd) {
  visit_floating(x.dtype(), "layer_norm", [&]<class T>() {
    const int64_t D = x.size(-1), R = x.numel() / D;
    const T* xs = static_cast<const T*>(x.raw_data());
    const T* ws = ptr_or_null<T>(w);
    const T* bs = ptr_or_null<T>(b);
    T* ys = static_cast<T*>(y.raw_data());
    T* ms = static_cast<T*>(mean.raw_data());
    T* rs = static_cast<T*>(rstd.raw_data());
    for (int64_t r = 0; r < R; ++r) {
      const T* xr = xs + r * D;
      T* yr = ys + r * D;
      Acc<T> sum = 0;
      for (int64_t j = 0; j < D; ++j) sum += xr[j];
      const Acc<T> mu = sum / Acc<T>(D);
      Acc<T> sq = 0;  // two passes: no cancellation from E[x^2] - E[x]^2
      for (int64_t j = 0; j < D; ++j) sq += (Acc<T>(xr[j]) - mu) * (Acc<T>(xr[j]) - mu);
      const Acc<T> inv = Acc<T>(1) / std::sqrt(sq / Acc<T>(D) + Acc<T>(eps));
      for (int64_t j = 0; j < D; ++j) {
        Acc<T> v = (Acc<T>(xr[j]) - mu) * inv;
        if (ws) v *= Acc<T>(ws[j]);
        if (bs) v += Acc<T>(bs[j]);
        yr[j] = T(v);
      }
      ms[r] = T(mu);
      rs[r] = T(inv);
    }
  });
}

void layer_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd, const Tensor& g,
                         Tensor& dx, Tensor& dw, Tensor& db) {
  visit_floating(x.dtype(), "layer_norm_backward", [&]<class T>() {
    const int64_t D = x.size(-1), R = x.numel() / D;
    const T* xs = static_cast<const T*>(x.raw_data());
    const T* ws = ptr_or_null<T>(w);
    const T* ms = static_cast<const T*>(mean.raw_data());
    const T* rs = static_cast<const T*>(rstd.raw_data());
    const T* gs = static_cast<const T*>(g.raw_data());
    T* dxs = static_cast<T*>(dx.raw_data());
    std::vector<Acc<T>> dw_acc(dw.defined() ? D : 0, 0), db_acc(db.defined() ? D : 0, 0);
    std::vector<Acc<T>> xhat(D), dxhat(D);
    for (int64_t r = 0; r < R; ++r) {
      const T* xr = xs + r * D;
      const T* gr = gs + r * D;
      const Acc<T> mu = ms[r], inv = rs[r];
      Acc<T> mean_d = 0, mean_dx = 0;
      for (int64_t j = 0; j < D; ++j) {
        xhat[j] = (Acc<T>(xr[j]) - mu) * inv;
        dxhat[j] = ws ? Acc<T>(gr[j]) * Acc<T>(ws[j]) : Acc<T>(gr[j]);
        mean_d += dxhat[j];
        mean_dx += dxhat[j] * xhat[j];
      }
      mean_d /= Acc<T>(D);
      mean_dx /= Acc<T>(D);
      for (int64_t j = 0; j < D; ++j) dxs[r * D + j] = T(inv * (dxhat[j] - mean_d - xhat[j] * mean_dx));
      if (dw.defined())
        for (int64_t j = 0; j < D; ++j) dw_acc[j] += Acc<T>(gr[j]) * xhat[j];
      if (db.defined())
        for (int64_t j = 0; j < D; ++j) db_acc[j] += Acc<T>(gr[j]);
    }
    if (dw.defined())
      for (int64_t j = 0; j < D; ++j) static_cast<T*>(dw.raw_data())[j] = T(dw_acc[j]);
    if (db.defined())
      for (int64_t j = 0; j < D; ++j) static_cast<T*>(db.raw_data())[j] = T(db_acc[j]);
  });
}

void rms_norm_forward(const Tensor& x, const Tensor& gamma, double eps, Tensor& y, Tensor& norm) {
  visit_floating(x.dtype(), "rms_norm", [&]<class T>() {
    const int64_t D = x.size(-1), R = x.numel() / D;
    const T* xs = static_cast<const T*>(x.raw_data());
    const T* gam = ptr_or_null<T>(gamma);
    T* ys = static_cast<T*>(y.raw_data());
    T* ns = static_cast<T*>(norm.raw_data());
    const Acc<T> s = std::sqrt(Acc<T>(D));
    for (int64_t r = 0; r < R; ++r) {
      const T* xr = xs + r * D;
      Acc<T> sq = 0;
      for (int64_t j = 0; j < D; ++j) sq += Acc<T>(xr[j]) * Acc<T>(xr[j]);
      const Acc<T> n = std::sqrt(sq);
      const Acc<T> scale = s / std::max(n, Acc<T>(eps));  // r * s
      for (int64_t j = 0; j < D; ++j) {
        Acc<T> v = Acc<T>(xr[j]) * scale;
        if (gam) v *= Acc<T>(gam[j]);
        ys[r * D + j] = T(v);
      }
      ns[r] = T(n);
    }
  });
}

void rms_norm_backward(const Tensor& x, const Tensor& gamma, const Tensor& norm, double eps, const Tensor& g,
                       Tensor& dx, Tensor& dgamma) {
  visit_floating(x.dtype(), "rms_norm_backward", [&]<class T>() {
    const int64_t D = x.size(-1), R = x.numel() / D;
    const T* xs = static_cast<const T*>(x.raw_data());
    const T* gam = ptr_or_null<T>(gamma);
    const T* ns = static_cast<const T*>(norm.raw_data());
    const T* gs = static_cast<const T*>(g.raw_data());
    T* dxs = static_cast<T*>(dx.raw_data());
    const Acc<T> s = std::sqrt(Acc<T>(D));
    std::vector<Acc<T>> dg_acc(dgamma.defined() ? D : 0, 0);
    std::vector<Acc<T>> u(D);
    for (int64_t r = 0; r < R; ++r) {
      const T* xr = xs + r * D;
      const T* gr = gs + r * D;
      const Acc<T> n = ns[r];
      const bool clamped = n < Acc<T>(eps);
      const Acc<T> inv = Acc<T>(1) / (clamped ? Acc<T>(eps) : n);  // r
      Acc<T> ux = 0;
      for (int64_t j = 0; j < D; ++j) {
        u[j] = Acc<T>(gr[j]) * s * (gam ? Acc<T>(gam[j]) : Acc<T>(1));
        ux += u[j] * Acc<T>(xr[j]);
      }
      const Acc<T> k = clamped ? Acc<T>(0) : inv * inv * ux;  // r^2 (u . x), 0 under the clamp
      for (int64_t j = 0; j < D; ++j) dxs[r * D + j] = T(inv * (u[j] - Acc<T>(xr[j]) * k));
      if (dgamma.defined())
        for (int64_t j = 0; j < D; ++j) dg_acc[j] += Acc<T>(gr[j]) * Acc<T>(xr[j]) * inv * s;
    }
    if (dgamma.defined())
      for (int64_t j = 0; j < D; ++j) static_cast<T*>(dgamma.raw_data())[j] = T(dg_acc[j]);
  });
}

}  // namespace colt5::cpu
