#include "core/cpu/loop.h"
#include "core/ops/copy.h"

namespace colt5::cpu {

// Both also take the 16-bit storage dtypes (core/half.h: convert rounds to nearest even).
void copy(const Tensor& src, Tensor& dst) {
  visit_storage(src.dtype(), [&]<class S>() {
    visit_storage(dst.dtype(), [&]<class D>() {
      const S* s = static_cast<const S*>(src.raw_data());
      D* d = static_cast<D*>(dst.raw_data());
      for_each_offset<2>(dst.shape(), {&src.strides(), &dst.strides()},
                         [&](int64_t so, int64_t dof) { d[dof] = convert<D>(s[so]); });
    });
  });
}

void fill(Tensor& dst, double value) {
  visit_storage(dst.dtype(), [&]<class D>() {
    D* d = static_cast<D*>(dst.raw_data());
    const D v = convert<D>(value);
    for_each_offset<1>(dst.shape(), {&dst.strides()}, [&](int64_t o) { d[o] = v; });
  });
}

}  // namespace colt5::cpu
