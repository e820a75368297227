// Shared pieces of the CUDA kernels: tensor geometry passed by value, strided offsets, launch
// sizes, block reductions, and registration into the dispatch table.
//
// Dims legend: a tensor of up to kMaxDims dims is passed as Geom {ndim, size[], stride[]}
// (elements); offset_of(g, i) maps the row-major linear index i to the storage offset.
#pragma once

#include <cuda_runtime.h>

#include <functional>

#include <cstdint>

#include "core/dispatch.h"
#include "core/tensor.h"
#include "cuda/check.h"
#include "cuda/context.h"

namespace colt5::cuda {

constexpr int kMaxDims = 8;

struct Geom {
  int ndim;
  int64_t size[kMaxDims];
  int64_t stride[kMaxDims];
};

// Geometry of t, after merging dims that are contiguous with each other (fewer divisions).
Geom make_geom(const Tensor& t);
// Geometry of t as seen with `shape` (t's shape must equal it; strides may be 0).
Geom make_geom(const Shape& shape, const Shape& strides);

__device__ __forceinline__ int64_t offset_of(const Geom& g, int64_t i) {
  if (g.ndim == 1) return i * g.stride[0];  // dense or evenly strided: no divisions
  int64_t off = 0;
  for (int d = g.ndim - 1; d >= 0; --d) {
    const int64_t s = g.size[d];
    off += (i % s) * g.stride[d];
    i /= s;
  }
  return off;
}

// A grid of `threads`-thread blocks for n elements, used with grid-stride loops.
inline unsigned grid_for(int64_t n, int threads = 256) {
  const int64_t blocks = (n + threads - 1) / threads;
  const int64_t cap = 132 * 32;  // enough resident blocks to fill an H100 several times over
  return unsigned(blocks < 1 ? 1 : (blocks > cap ? cap : blocks));
}

// The stream of the device that holds t (sets that device current).
cudaStream_t stream_for(const Tensor& t);

template <class T> struct AccType { using type = T; };
template <> struct AccType<float> { using type = double; };  // reductions of float accumulate in double
template <> struct AccType<int32_t> { using type = int64_t; };
template <class T> using acc_t = typename AccType<T>::type;

// Block-wide reductions over blockDim.x threads (a multiple of 32, <= 1024); the result is
// returned to every thread. Within each warp a butterfly of shuffles; lane 0's value per warp
// goes to shared memory (`shared` holds at least blockDim.x / 32 entries) and every thread
// combines the warps in index order. The order is fixed, so results are deterministic. The
// second barrier lets `shared` be reused right away. MaxOp skips NaN (fmax), as std::max(m, x)
// does on the CPU.
struct MaxOp {
  template <class A>
  __device__ A operator()(A a, A b) const { return fmax(a, b); }
};
struct SumOp {
  template <class A>
  __device__ A operator()(A a, A b) const { return a + b; }
};

template <class A, class Op>
__device__ A block_reduce(A v, A* shared, Op op) {
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  const int warp = threadIdx.x / 32, warps = blockDim.x / 32;
  if (threadIdx.x % 32 == 0) shared[warp] = v;
  __syncthreads();
  A r = shared[0];
  for (int w = 1; w < warps; ++w) r = op(r, shared[w]);
  __syncthreads();
  return r;
}

template <class T>
__device__ T block_sum(T v, T* shared) { return block_reduce(v, shared, SumOp{}); }

// Device-side argument checks (an index out of range, a bad target): a kernel that finds a
// bad value calls report(flag, value). After the launch the launcher calls defer(raise): the
// verdict is read at the host's next wait on the stream (DeferredChecks in cuda/context.h), and
// if a value was reported, raise(value) throws the colt5::Error naming the op. With
// COLT5_CUDA_SYNC=1, defer waits at once, so the error comes from the op's own call. Integer
// atomics only.
class DeviceCheck {
public:
  explicit DeviceCheck(const Tensor& like);  // a cleared slot on like's device
  unsigned long long* flag() const { return flag_; }
  void defer(std::function<void(int64_t value)> raise);

private:
  int device_;
  unsigned long long* flag_ = nullptr;
};

__device__ __forceinline__ void report(unsigned long long* flag, int64_t value) {
  if (atomicCAS(flag, 0ull, 1ull) == 0ull) flag[1] = static_cast<unsigned long long>(value);
}

}  // namespace colt5::cuda

// Put a CUDA kernel launcher into a dispatch slot at load time.
#define COLT5_REGISTER_CUDA(SLOT, FN)                                                  \
  namespace {                                                                         \
  const bool colt5_registered_##SLOT = (::colt5::kernels::SLOT.set(::colt5::DeviceType::CUDA, &FN), true); \
  }
