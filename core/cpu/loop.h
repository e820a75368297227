// Strided loops for CPU kernels.
//
// for_each_offset<N>(shape, {strides_0, ..., strides_{N-1}}, f) visits every index of `shape`
// in row-major order and calls f(off_0, ..., off_{N-1}), where off_k = sum_d idx[d]*strides_k[d].
// Operands may be non-contiguous or broadcast (stride 0); the innermost dim is a tight loop.
#pragma once

#include <array>
#include <cstddef>
#include <tuple>
#include <vector>
#include <cstdint>
#include <utility>

#include "core/shape.h"

namespace colt5::cpu {

template <size_t N, class F>
void for_each_offset(const Shape& shape, const std::array<const Shape*, N>& strides, F&& f) {
  const int64_t total = numel(shape);
  if (total == 0) return;
  const size_t nd = shape.size();
  std::array<int64_t, N> off{};
  if (nd == 0) {
    std::apply(f, off);
    return;
  }
  const int64_t inner = shape[nd - 1];
  std::array<int64_t, N> inner_stride;
  for (size_t k = 0; k < N; ++k) inner_stride[k] = (*strides[k])[nd - 1];
  std::vector<int64_t> idx(nd, 0);
  for (int64_t done = 0; done < total; done += inner) {
    std::array<int64_t, N> o = off;
    for (int64_t i = 0; i < inner; ++i) {
      std::apply(f, o);
      for (size_t k = 0; k < N; ++k) o[k] += inner_stride[k];
    }
    // Advance the outer index like an odometer, updating the offsets incrementally.
    for (size_t d = nd - 1; d-- > 0;) {
      if (++idx[d] < shape[d]) {
        for (size_t k = 0; k < N; ++k) off[k] += (*strides[k])[d];
        break;
      }
      for (size_t k = 0; k < N; ++k) off[k] -= (*strides[k])[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}

}  // namespace colt5::cpu
