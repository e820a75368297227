// CPU reference softmax / log_softmax over the middle axis of [outer, n, inner] (contract and
// math in core/ops/softmax.h). One pass for the max, one for sum exp(x - m), one to write;
// float rows accumulate in double.
#include <cmath>
#include <limits>

#include "core/ops/softmax.h"

namespace colt5::cpu {

namespace {
template <class T> struct Acc { using type = T; };
template <> struct Acc<float> { using type = double; };
}  // namespace

void softmax_forward(const Tensor& x, Tensor& y, int64_t outer, int64_t n, int64_t inner, bool log) {
  visit_floating(x.dtype(), log ? "log_softmax" : "softmax", [&]<class T>() {
    using A = typename Acc<T>::type;
    const T* xs = static_cast<const T*>(x.raw_data());
    T* ys = static_cast<T*>(y.raw_data());
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t base = o * n * inner + i;  // element j at base + j * inner
        A m = -std::numeric_limits<A>::infinity();
        for (int64_t j = 0; j < n; ++j) m = std::max(m, A(xs[base + j * inner]));
        A s = 0;
        for (int64_t j = 0; j < n; ++j) s += std::exp(A(xs[base + j * inner]) - m);
        if (log) {
          const A shift = m + std::log(s);
          for (int64_t j = 0; j < n; ++j) ys[base + j * inner] = T(A(xs[base + j * inner]) - shift);
        } else {
          const A inv = A(1) / s;
          for (int64_t j = 0; j < n; ++j) ys[base + j * inner] = T(std::exp(A(xs[base + j * inner]) - m) * inv);
        }
      }
    }
  });
}

void softmax_backward(const Tensor& y, const Tensor& g, Tensor& gx, int64_t outer, int64_t n, int64_t inner,
                      bool log) {
  visit_floating(y.dtype(), log ? "log_softmax_backward" : "softmax_backward", [&]<class T>() {
    using A = typename Acc<T>::type;
    const T* ys = static_cast<const T*>(y.raw_data());
    const T* gs = static_cast<const T*>(g.raw_data());
    T* out = static_cast<T*>(gx.raw_data());
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t base = o * n * inner + i;
        A s = 0;  // softmax: sum_k g_k y_k;  log_softmax: sum_k g_k
        for (int64_t j = 0; j < n; ++j) {
          const int64_t at = base + j * inner;
          s += log ? A(gs[at]) : A(gs[at]) * A(ys[at]);
        }
        for (int64_t j = 0; j < n; ++j) {
          const int64_t at = base + j * inner;
          out[at] = log ? T(A(gs[at]) - std::exp(A(ys[at])) * s) : T(A(ys[at]) * (A(gs[at]) - s));
        }
      }
    }
  });
}

}  // namespace colt5::cpu
