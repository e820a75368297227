// CPU reference cross-entropy (contract and math in core/ops/loss.h). Each row: the max m, then
// lse = m + log sum_c exp(logits[c] - m); float rows accumulate in double. Targets are checked
// row by row before they are used as an index.
#include <cmath>
#include <limits>

#include "core/ops/loss.h"

namespace colt5::cpu {

namespace {

template <class T> struct Acc { using type = T; };
template <> struct Acc<float> { using type = double; };

// The target of row n, or -1 for an ignored row; throws for one out of range.
int64_t checked_target(const int64_t* ts, int64_t n, int64_t C, int64_t ignore_index) {
  const int64_t t = ts[n];
  if (t == ignore_index) return -1;
  COLT5_CHECK(t >= 0 && t < C, "cross_entropy: argument 'targets' expected class indices in [0, ", C,
              ") or ignore_index (", ignore_index, "), got ", t, " at row ", n);
  return t;
}

// logsumexp of row[0..C) in A; -inf for an empty row.
template <class A, class T>
A row_logsumexp(const T* row, int64_t C) {
  A m = -std::numeric_limits<A>::infinity();
  for (int64_t c = 0; c < C; ++c) m = std::max(m, A(row[c]));
  if (std::isinf(m) && m < 0) return m;
  A s = 0;
  for (int64_t c = 0; c < C; ++c) s += std::exp(A(row[c]) - m);
  return m + std::log(s);
}

}  // namespace

void cross_entropy_forward(const Tensor& logits, const Tensor& targets, Tensor& loss, int64_t ignore_index) {
  const int64_t N = logits.size(0), C = logits.size(1);
  const int64_t* ts = static_cast<const int64_t*>(targets.raw_data());
  visit_floating(logits.dtype(), "cross_entropy", [&]<class T>() {
    using A = typename Acc<T>::type;
    const T* ls = static_cast<const T*>(logits.raw_data());  // [N, C]
    T* out = static_cast<T*>(loss.raw_data());                // [N]
    for (int64_t n = 0; n < N; ++n) {
      const int64_t t = checked_target(ts, n, C, ignore_index);
      if (t < 0) {
        out[n] = T(0);
        continue;
      }
      const T* row = ls + n * C;
      out[n] = T(row_logsumexp<A>(row, C) - A(row[t]));
    }
  });
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& scale, Tensor& glogits,
                            int64_t ignore_index) {
  const int64_t N = logits.size(0), C = logits.size(1);
  const int64_t* ts = static_cast<const int64_t*>(targets.raw_data());
  visit_floating(logits.dtype(), "cross_entropy_backward", [&]<class T>() {
    using A = typename Acc<T>::type;
    const T* ls = static_cast<const T*>(logits.raw_data());  // [N, C]
    const A k = A(*static_cast<const T*>(scale.raw_data()));  // g / count
    T* out = static_cast<T*>(glogits.raw_data());             // [N, C]
    for (int64_t n = 0; n < N; ++n) {
      const int64_t t = checked_target(ts, n, C, ignore_index);
      T* grow = out + n * C;
      if (t < 0) {
        for (int64_t c = 0; c < C; ++c) grow[c] = T(0);
        continue;
      }
      const T* row = ls + n * C;
      const A lse = row_logsumexp<A>(row, C);
      for (int64_t c = 0; c < C; ++c) grow[c] = T(k * (std::exp(A(row[c]) - lse) - (c == t ? A(1) : A(0))));
    }
  });
}

}  // namespace colt5::cpu
