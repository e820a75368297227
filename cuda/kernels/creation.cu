// CUDA kernels for arange and the Philox draws: the same counter-based formulas as the CPU
// (core/philox.h), so a seed gives bit-identical numbers on either device.
#include <type_traits>

#include "core/ops/creation.h"
#include "core/philox.h"
#include "cuda/kernels/common.cuh"

namespace colt5::cuda {

namespace {

template <class T>
__global__ void arange_kernel(T* out, int64_t n, double start, double step) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = static_cast<T>(start + double(i) * step);
}

template <class T>
__global__ void random_kernel(T* out, int64_t n, RandomKind kind, uint64_t seed, uint64_t offset, int64_t low,
                              uint64_t range) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const Philox4 r = philox4x32_10(offset + uint64_t(i), seed);
    if (kind == RandomKind::Uniform) {
      if constexpr (std::is_same_v<T, float>) out[i] = philox_uniform<float>(r.w[0], r.w[1]);
      else out[i] = static_cast<T>(philox_uniform<double>(r.w[0], r.w[1]));
    } else if (kind == RandomKind::Normal) {
      out[i] = static_cast<T>(philox_normal<double>(r));
    } else {
      out[i] = static_cast<T>(low + int64_t(((uint64_t(r.w[0]) << 32) | r.w[1]) % range));
    }
  }
}

}  // namespace

void arange(Tensor& out, double start, double step) {
  cudaStream_t s = stream_for(out);
  const int64_t n = out.numel();
  visit_numeric(out.dtype(), "arange", [&]<class T>() {
    arange_kernel<T><<<grid_for(n), 256, 0, s>>>(static_cast<T*>(out.raw_data()), n, start, step);
  });
  COLT5_CHECK_LAUNCH("arange_kernel", s);
}

void random(Tensor& out, RandomKind kind, uint64_t seed, uint64_t offset, int64_t low, int64_t high) {
  cudaStream_t s = stream_for(out);
  const int64_t n = out.numel();
  visit_numeric(out.dtype(), "random", [&]<class T>() {
    random_kernel<T><<<grid_for(n), 256, 0, s>>>(static_cast<T*>(out.raw_data()), n, kind, seed, offset, low,
                                                 uint64_t(high - low));
  });
  COLT5_CHECK_LAUNCH("random_kernel", s);
}

}  // namespace colt5::cuda

COLT5_REGISTER_CUDA(arange, colt5::cuda::arange)
COLT5_REGISTER_CUDA(random, colt5::cuda::random)
