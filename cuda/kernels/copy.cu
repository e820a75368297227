// CUDA kernels for copy (strided, with dtype cast) and fill. Contract: core/ops/copy.h.
// Every dtype, the 16-bit ones included: conversions go through core/half.h's convert, the same
// code the CPU kernels use, so both give the same bits.
#include "core/half.h"
#include "core/ops/copy.h"
#include "cuda/kernels/common.cuh"

namespace colt5::cuda {

namespace {

template <class S, class D>
__global__ void copy_kernel(const S* src, Geom gs, D* dst, Geom gd, int64_t n, bool contiguous) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t so = contiguous ? i : offset_of(gs, i);
    const int64_t d = contiguous ? i : offset_of(gd, i);
    dst[d] = convert<D>(src[so]);
  }
}

template <class D>
__global__ void fill_kernel(D* dst, Geom g, int64_t n, D v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[offset_of(g, i)] = v;
}

}  // namespace

void copy(const Tensor& src, Tensor& dst) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  cudaStream_t s = stream_for(dst);
  const bool contiguous = src.is_contiguous() && dst.is_contiguous();
  // Geometry of both in dst's shape (src may be broadcast with stride 0).
  Geom gs = make_geom(dst.shape(), src.strides()), gd = make_geom(dst.shape(), dst.strides());
  if (gs.ndim == 1 && gd.ndim == 1 && gs.stride[0] == 1 && gd.stride[0] == 1) {
    // Same dtype and both dense: a plain device copy.
    if (src.dtype() == dst.dtype()) {
      CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), size_t(n) * dst.element_size(),
                                 cudaMemcpyDeviceToDevice, s));
      return;
    }
  }
  visit_storage(src.dtype(), [&]<class S>() {
    visit_storage(dst.dtype(), [&]<class D>() {
      copy_kernel<S, D><<<grid_for(n), 256, 0, s>>>(static_cast<const S*>(src.raw_data()), gs,
                                                    static_cast<D*>(dst.raw_data()), gd, n, contiguous);
    });
  });
  COLT5_CHECK_LAUNCH("copy_kernel", s);
}

void fill(Tensor& dst, double value) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  cudaStream_t s = stream_for(dst);
  Geom g = make_geom(dst);
  visit_storage(dst.dtype(), [&]<class D>() {
    fill_kernel<D><<<grid_for(n), 256, 0, s>>>(static_cast<D*>(dst.raw_data()), g, n, convert<D>(value));
  });
  COLT5_CHECK_LAUNCH("fill_kernel", s);
}

}  // namespace colt5::cuda

COLT5_REGISTER_CUDA(copy, colt5::cuda::copy)
COLT5_REGISTER_CUDA(fill, colt5::cuda::fill)
