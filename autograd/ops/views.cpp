// Differentiable views and conversions (the Tensor methods). Each backward maps the output
// gradient back onto the input's geometry:
//   reshape/view/squeeze/unsqueeze -> reshape back;  permute -> inverse permutation;
//   narrow -> zeros with the gradient placed in the narrowed range;  expand -> sum_to;
//   contiguous/clone -> identity;  to(dtype)/to(device) -> convert back.
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/ops/view.h"

namespace colt5 {

using autograd::record;

Tensor Tensor::reshape(const Shape& shape) const {
  Shape in = this->shape();
  return record("reshape", ops::reshape(*this, shape), {*this},
                [in](const Tensor& g) -> TensorList { return {g.reshape(in)}; });
}

Tensor Tensor::view(const Shape& shape) const {
  Shape in = this->shape();
  return record("view", ops::view(*this, shape), {*this},
                [in](const Tensor& g) -> TensorList { return {g.reshape(in)}; });
}

Tensor Tensor::permute(const Shape& dims) const {
  Tensor out = ops::permute(*this, dims);
  Shape inverse(dims.size());
  for (size_t k = 0; k < dims.size(); ++k) inverse[wrap_dim(dims[k], dim(), "permute")] = int64_t(k);
  return record("permute", out, {*this}, [inverse](const Tensor& g) -> TensorList { return {g.permute(inverse)}; });
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  return record("transpose", ops::transpose(*this, d0, d1), {*this},
                [d0, d1](const Tensor& g) -> TensorList { return {g.transpose(d0, d1)}; });
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  Tensor out = ops::narrow(*this, d, start, length);
  Shape in = shape();
  DType dt = dtype();
  Device dev = device();
  int64_t wd = wrap_dim(d, dim(), "narrow");
  int64_t s = start < 0 ? start + in[wd] : start;
  return record("narrow", out, {*this}, [=](const Tensor& g) -> TensorList {
    Tensor full_grad = zeros(in, dt, dev);
    Tensor window = ops::narrow(full_grad, wd, s, length);
    ops::copy_(window, g);
    return {full_grad};
  });
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, dim(), "select");
  COLT5_CHECK(index >= -size(d) && index < size(d), "select: argument 'index' expected in [", -size(d), ", ", size(d),
              ") for dim ", d, " of shape ", shape(), ", got ", index);
  return narrow(d, index < 0 ? index + size(d) : index, 1).squeeze(d);
}

Tensor Tensor::expand(const Shape& shape) const {
  Shape in = this->shape();
  return record("expand", ops::expand(*this, shape), {*this},
                [in](const Tensor& g) -> TensorList { return {sum_to(g, in)}; });
}

Tensor Tensor::unsqueeze(int64_t d) const {
  Shape in = shape();
  return record("unsqueeze", ops::unsqueeze(*this, d), {*this},
                [in](const Tensor& g) -> TensorList { return {g.reshape(in)}; });
}

Tensor Tensor::squeeze(int64_t d) const {
  Shape in = shape();
  return record("squeeze", ops::squeeze(*this, d), {*this},
                [in](const Tensor& g) -> TensorList { return {g.reshape(in)}; });
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return record("contiguous", ops::clone(*this), {*this}, [](const Tensor& g) -> TensorList { return {g}; });
}

Tensor Tensor::clone() const {
  return record("clone", ops::clone(*this), {*this}, [](const Tensor& g) -> TensorList { return {g}; });
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
  DType in = dtype();
  Tensor out = ops::to_dtype(*this, dt);
  if (!is_floating(dt)) return out;  // integer results carry no gradient
  return record("to_dtype", out, {*this}, [in](const Tensor& g) -> TensorList { return {g.to(in)}; });
}

Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  Device in = device();
  return record("to_device", ops::to_device(*this, d), {*this},
                [in](const Tensor& g) -> TensorList { return {g.to(in)}; });
}

}  // namespace colt5
