// CPU reference kernels for gather and scatter / scatter_add (contracts in
// core/ops/indexing.h). One strided loop over the index's positions each. x's strides with
// the stride at dim zeroed give the offset of a position's column; the index then adds
// index * stride[dim]. Positions are visited in row-major order, so within a column the
// writes happen in increasing j, the order the contract fixes for every device.
#include <type_traits>

#include "core/cpu/loop.h"
#include "core/ops/indexing.h"

namespace colt5::cpu {

namespace {

Shape zero_at(const Shape& strides, int64_t dim) {
  Shape s = strides;
  s[dim] = 0;
  return s;
}

[[noreturn]] void out_of_range(const char* op, const char* arg, int64_t value, int64_t size, int64_t dim) {
  fail(str(op, ": argument '", arg, "' holds the index ", value, ", expected a value in [0, ", size, ") (dim ", dim,
           " has size ", size, ")"));
}

}  // namespace

void gather(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out, const char* op, const char* arg) {
  const int64_t size = x.shape()[dim], step = x.strides()[dim];
  const Shape column = zero_at(x.strides(), dim);
  const int64_t* is = index.data_ptr<int64_t>();
  visit_all(x.dtype(), [&]<class T>() {
    const T* xs = static_cast<const T*>(x.raw_data());
    T* os = static_cast<T*>(out.raw_data());
    for_each_offset<3>(index.shape(), {&index.strides(), &column, &out.strides()},
                       [&](int64_t io, int64_t xo, int64_t oo) {
                         const int64_t i = is[io];
                         if (i < 0 || i >= size) out_of_range(op, arg, i, size, dim);
                         os[oo] = xs[xo + i * step];
                       });
  });
}

void scatter(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, bool accumulate, const char* op,
             const char* arg) {
  const int64_t size = out.shape()[dim], step = out.strides()[dim];
  const Shape column = zero_at(out.strides(), dim);
  const int64_t* is = index.data_ptr<int64_t>();
  visit_all(out.dtype(), [&]<class T>() {
    const T* ss = static_cast<const T*>(src.raw_data());
    T* os = static_cast<T*>(out.raw_data());
    for_each_offset<3>(index.shape(), {&index.strides(), &src.strides(), &column},
                       [&](int64_t io, int64_t so, int64_t oo) {
                         const int64_t i = is[io];
                         if (i < 0 || i >= size) out_of_range(op, arg, i, size, dim);
                         T& dst = os[oo + i * step];
                         if constexpr (std::is_same_v<T, bool>)
                           dst = ss[so];  // the raw op never accumulates bool
                         else if (accumulate)
                           dst += ss[so];
                         else
                           dst = ss[so];
                       });
  });
}

}  // namespace colt5::cpu
