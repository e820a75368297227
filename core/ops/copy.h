// Raw (non-differentiable) copies: strided -> contiguous, dtype casts, device transfers.
// The differentiable versions are Tensor::contiguous / to / clone (autograd/ops/views.cpp).
#pragma once

#include "core/dispatch.h"
#include "core/tensor.h"

namespace colt5 {

namespace cpu {
// dst[i] = cast(src[i]) for every index; same shape, same device, any strides and dtypes.
void copy(const Tensor& src, Tensor& dst);
// Every element of dst = value (cast to dst's dtype).
void fill(Tensor& dst, double value);
}  // namespace cpu

using CopyFn = void(const Tensor& src, Tensor& dst);
using FillFn = void(Tensor& dst, double value);
COLT5_KERNEL(copy, CopyFn, cpu::copy)
COLT5_KERNEL(fill, FillFn, cpu::fill)

namespace ops {
// Copy src into dst (shapes equal; src may also broadcast to dst). Casts dtype and crosses devices.
void copy_(Tensor& dst, const Tensor& src);
Tensor contiguous(const Tensor& t);                 // t itself when already contiguous
Tensor to_dtype(const Tensor& t, DType dtype);      // t itself when already that dtype
Tensor to_device(const Tensor& t, Device device);   // t itself when already there
Tensor clone(const Tensor& t);                      // always a fresh contiguous copy
void fill_(Tensor& t, double value);
}  // namespace ops

}  // namespace colt5
