// CPU reference kernels for the elementwise ops: one strided loop each, the math from
// elementwise_math.h.
#include <type_traits>

#include "core/cpu/loop.h"
#include "core/ops/elementwise.h"

namespace colt5::cpu {

void unary(UnaryOp op, const Tensor& x, Tensor& y, UnaryParams p) {
  visit_all(x.dtype(), [&]<class T>() {
    visit_unary(op, [&]<UnaryOp OP>() {
      // logical_not is the only unary op on bool, and applies to nothing else (checked by ops::unary).
      if constexpr (std::is_same_v<T, bool> == (OP == UnaryOp::LogicalNot)) {
        const T* xs = static_cast<const T*>(x.raw_data());
        T* ys = static_cast<T*>(y.raw_data());
        for_each_offset<2>(y.shape(), {&x.strides(), &y.strides()},
                           [&](int64_t xo, int64_t yo) { ys[yo] = unary_fwd<OP, T>(xs[xo], p); });
      }
    });
  });
}

void unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& g, Tensor& gx, UnaryParams p) {
  visit_floating(x.dtype(), "unary_backward", [&]<class T>() {
    visit_unary(op, [&]<UnaryOp OP>() {
      const T* xs = static_cast<const T*>(x.raw_data());
      const T* ys = static_cast<const T*>(y.raw_data());
      const T* gs = static_cast<const T*>(g.raw_data());
      T* out = static_cast<T*>(gx.raw_data());
      for_each_offset<4>(gx.shape(), {&x.strides(), &y.strides(), &g.strides(), &gx.strides()},
                         [&](int64_t xo, int64_t yo, int64_t go, int64_t oo) {
                           out[oo] = unary_bwd<OP, T>(xs[xo], ys[yo], gs[go], p);
                         });
    });
  });
}

void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  visit_all(a.dtype(), [&]<class T>() {
    visit_binary(op, [&]<BinaryOp OP>() {
      using R = decltype(binary_fwd<OP, T>(T{}, T{}));
      const T* as = static_cast<const T*>(a.raw_data());
      const T* bs = static_cast<const T*>(b.raw_data());
      R* os = static_cast<R*>(out.raw_data());
      for_each_offset<3>(out.shape(), {&a.strides(), &b.strides(), &out.strides()},
                         [&](int64_t ao, int64_t bo, int64_t oo) { os[oo] = binary_fwd<OP, T>(as[ao], bs[bo]); });
    });
  });
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  visit_all(a.dtype(), [&]<class T>() {
    const bool* cs = static_cast<const bool*>(cond.raw_data());
    const T* as = static_cast<const T*>(a.raw_data());
    const T* bs = static_cast<const T*>(b.raw_data());
    T* os = static_cast<T*>(out.raw_data());
    for_each_offset<4>(out.shape(), {&cond.strides(), &a.strides(), &b.strides(), &out.strides()},
                       [&](int64_t co, int64_t ao, int64_t bo, int64_t oo) { os[oo] = cs[co] ? as[ao] : bs[bo]; });
  });
}

}  // namespace colt5::cpu
