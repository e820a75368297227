#include "core/ops/copy.h"

#include "core/backend.h"

namespace colt5::ops {

void copy_(Tensor& dst, const Tensor& src) {
  COLT5_CHECK(dst.defined() && src.defined(), "copy_: undefined tensor");
  Tensor s = src;
  if (s.shape() != dst.shape()) {
    COLT5_CHECK(broadcast_shapes(s.shape(), dst.shape(), "copy_") == dst.shape(), "copy_: argument 'src' of shape ",
                s.shape(), " does not broadcast to dst's shape ", dst.shape());
    s = Tensor::make_view(s, dst.shape(), broadcast_strides(s.shape(), s.strides(), dst.shape()), s.offset());
  }
  if (s.device() != dst.device()) {
    // Cross-device: make a contiguous copy of src's bytes on dst's device, then copy locally.
    Tensor packed = contiguous(s);
    Tensor staged = Tensor::empty(packed.shape(), packed.dtype(), dst.device());
    copy_bytes(staged.raw_data(), dst.device(), packed.raw_data(), packed.device(),
               size_t(packed.numel()) * packed.element_size());
    s = staged;
  }
  kernels::copy(dst.device())(s, dst);
}

Tensor contiguous(const Tensor& t) {
  if (t.is_contiguous()) return t;
  return clone(t);
}

Tensor clone(const Tensor& t) {
  Tensor out = Tensor::empty(t.shape(), t.dtype(), t.device());
  copy_(out, t);
  return out;
}

Tensor to_dtype(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  Tensor out = Tensor::empty(t.shape(), dtype, t.device());
  copy_(out, t);
  return out;
}

Tensor to_device(const Tensor& t, Device device) {
  if (t.device() == device) return t;
  Tensor out = Tensor::empty(t.shape(), t.dtype(), device);
  copy_(out, t);
  return out;
}

void fill_(Tensor& t, double value) { kernels::fill(t.device())(t, value); }

}  // namespace colt5::ops
