// CPU reference kernels for topk / sort and cumsum over the middle axis of [outer, n, inner]
// (contracts in core/ops/sort.h).
//
// topk: each line is ordered by one strict total order, `before(i, j)` on positions:
//   value order first (NaN above every number, NaNs equal), the lower index on equal values.
// Since no two positions are equal under it, std::partial_sort (not stable by itself) yields
// exactly the stable order, and the first k positions are unique.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <type_traits>
#include <vector>

#include "core/ops/sort.h"

namespace colt5::cpu {

namespace {

template <class T>
bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>) return std::isnan(v);
  else return false;
}

// a < b in the value order with NaN largest (all NaNs equal).
template <class T>
bool value_less(T a, T b) {
  if (is_nan(b)) return !is_nan(a);
  return a < b;  // false whenever a is NaN and b is not
}

template <class T> struct Acc { using type = T; };
template <> struct Acc<float> { using type = double; };  // float prefix sums accumulate in double

}  // namespace

void topk(const Tensor& x, int64_t outer, int64_t n, int64_t inner, int64_t k, bool descending, Tensor& values,
          Tensor& indices) {
  visit_numeric(x.dtype(), "topk", [&]<class T>() {
    const T* xs = static_cast<const T*>(x.raw_data());
    T* vs = static_cast<T*>(values.raw_data());
    int64_t* is = indices.data_ptr<int64_t>();
    std::vector<T> line(n);       // [n] the current line, gathered
    std::vector<int64_t> pos(n);  // [n] positions 0..n-1, reordered
    auto before = [&](int64_t i, int64_t j) {
      T a = line[i], b = line[j];
      if (descending) std::swap(a, b);
      if (value_less(a, b)) return true;
      if (value_less(b, a)) return false;
      return i < j;
    };
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        const T* row = xs + o * n * inner + i;  // element j at row[j * inner]
        for (int64_t j = 0; j < n; ++j) line[j] = row[j * inner];
        std::iota(pos.begin(), pos.end(), int64_t(0));
        if (k == n) std::sort(pos.begin(), pos.end(), before);
        else std::partial_sort(pos.begin(), pos.begin() + k, pos.end(), before);
        T* vrow = vs + o * k * inner + i;
        int64_t* irow = is + o * k * inner + i;
        for (int64_t r = 0; r < k; ++r) {
          vrow[r * inner] = line[pos[r]];
          irow[r * inner] = pos[r];
        }
      }
    }
  });
}

void cumsum(const Tensor& x, int64_t outer, int64_t n, int64_t inner, bool reverse, Tensor& out) {
  auto run = [&]<class T>() {
    const T* xs = static_cast<const T*>(x.raw_data());
    T* ys = static_cast<T*>(out.raw_data());
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t base = o * n * inner + i;  // element j at base + j * inner
        typename Acc<T>::type s = 0;
        for (int64_t t = 0; t < n; ++t) {
          const int64_t j = reverse ? n - 1 - t : t;
          s += xs[base + j * inner];
          ys[base + j * inner] = static_cast<T>(s);
        }
      }
    }
  };
  switch (x.dtype()) {
    case DType::Float32: run.template operator()<float>(); return;
    case DType::Float64: run.template operator()<double>(); return;
    case DType::Int64: run.template operator()<int64_t>(); return;
    default: fail(str("cumsum: expected dtype float32, float64 or int64, got ", dtype_name(x.dtype())));
  }
}

}  // namespace colt5::cpu
