// CPU reference reductions over the middle axis of [outer, n, inner].
#include <cmath>
#include <limits>

#include "core/ops/reduce.h"

namespace colt5::cpu {

namespace {
template <class T> struct Acc { using type = T; };
template <> struct Acc<float> { using type = double; };  // sum floats in double on the CPU
template <> struct Acc<int32_t> { using type = int64_t; };
}  // namespace

void reduce(ReduceOp op, const Tensor& x, int64_t outer, int64_t n, int64_t inner, Tensor& out) {
  visit_numeric(x.dtype(), "reduce", [&]<class T>() {
    const T* xs = static_cast<const T*>(x.raw_data());
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        const T* row = xs + o * n * inner + i;  // element j at row[j * inner]
        const int64_t at = o * inner + i;
        if (op == ReduceOp::Sum) {
          typename Acc<T>::type s = 0;
          for (int64_t j = 0; j < n; ++j) s += row[j * inner];
          static_cast<T*>(out.raw_data())[at] = static_cast<T>(s);
        } else if (op == ReduceOp::Max || op == ReduceOp::Min || op == ReduceOp::ArgMax) {
          // NaN wins (as torch); the first extreme wins ties.
          T best = row[0];
          int64_t arg = 0;
          for (int64_t j = 1; j < n && best == best; ++j) {
            T v = row[j * inner];
            bool better = op == ReduceOp::Min ? v < best : v > best;
            if (better || v != v) best = v, arg = j;
          }
          if (op == ReduceOp::ArgMax) static_cast<int64_t*>(out.raw_data())[at] = arg;
          else static_cast<T*>(out.raw_data())[at] = best;
        } else {  // LogSumExp: m + log(sum exp(x - m)); m = max (an all -inf row gives -inf)
          T m = row[0];
          for (int64_t j = 1; j < n; ++j) m = std::max(m, row[j * inner]);
          if (std::isinf(m)) {
            static_cast<T*>(out.raw_data())[at] = m;
            continue;
          }
          typename Acc<T>::type s = 0;
          for (int64_t j = 0; j < n; ++j) s += std::exp(row[j * inner] - m);
          static_cast<T*>(out.raw_data())[at] = static_cast<T>(m + std::log(s));
        }
      }
    }
  });
}

}  // namespace colt5::cpu
