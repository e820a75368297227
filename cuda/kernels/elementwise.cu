// CUDA kernels for the elementwise ops: the same math as the CPU reference
// (core/ops/elementwise_math.h), one grid-stride loop per op. Contract: core/ops/elementwise.h
// (inputs already broadcast to the output's shape, output contiguous).
#include <type_traits>

#include "core/ops/elementwise.h"
#include "cuda/kernels/common.cuh"

namespace colt5::cuda {

namespace {

#define COLT5_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

template <UnaryOp OP, class T>
__global__ void unary_kernel(const T* x, Geom gx, T* y, int64_t n, UnaryParams p) {
  COLT5_GRID_LOOP(i, n) y[i] = unary_fwd<OP, T>(x[offset_of(gx, i)], p);
}

template <UnaryOp OP, class T>
__global__ void unary_backward_kernel(const T* x, Geom gx, const T* y, Geom gy, const T* g, Geom gg, T* gx_out,
                                      int64_t n, UnaryParams p) {
  COLT5_GRID_LOOP(i, n) gx_out[i] = unary_bwd<OP, T>(x[offset_of(gx, i)], y[offset_of(gy, i)], g[offset_of(gg, i)], p);
}

template <BinaryOp OP, class T, class R>
__global__ void binary_kernel(const T* a, Geom ga, const T* b, Geom gb, R* out, int64_t n) {
  COLT5_GRID_LOOP(i, n) out[i] = binary_fwd<OP, T>(a[offset_of(ga, i)], b[offset_of(gb, i)]);
}

template <class T>
__global__ void where_kernel(const bool* c, Geom gc, const T* a, Geom ga, const T* b, Geom gb, T* out, int64_t n) {
  COLT5_GRID_LOOP(i, n) out[i] = c[offset_of(gc, i)] ? a[offset_of(ga, i)] : b[offset_of(gb, i)];
}

// Geometry of an input seen in the output's shape.
Geom in_shape_of(const Tensor& t, const Tensor& out) { return make_geom(out.shape(), t.strides()); }

}  // namespace

void unary(UnaryOp op, const Tensor& x, Tensor& y, UnaryParams p) {
  const int64_t n = y.numel();
  if (n == 0) return;
  cudaStream_t s = stream_for(y);
  Geom gx = in_shape_of(x, y);
  visit_all(x.dtype(), [&]<class T>() {
    visit_unary(op, [&]<UnaryOp OP>() {
      if constexpr (std::is_same_v<T, bool> == (OP == UnaryOp::LogicalNot)) {
        unary_kernel<OP, T><<<grid_for(n), 256, 0, s>>>(static_cast<const T*>(x.raw_data()), gx,
                                                        static_cast<T*>(y.raw_data()), n, p);
      }
    });
  });
  COLT5_CHECK_LAUNCH("unary_kernel", s);
}

void unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& g, Tensor& gx, UnaryParams p) {
  const int64_t n = gx.numel();
  if (n == 0) return;
  cudaStream_t s = stream_for(gx);
  Geom g_x = in_shape_of(x, gx), g_y = in_shape_of(y, gx), g_g = in_shape_of(g, gx);
  visit_floating(x.dtype(), "unary_backward", [&]<class T>() {
    visit_unary(op, [&]<UnaryOp OP>() {
      unary_backward_kernel<OP, T><<<grid_for(n), 256, 0, s>>>(
          static_cast<const T*>(x.raw_data()), g_x, static_cast<const T*>(y.raw_data()), g_y,
          static_cast<const T*>(g.raw_data()), g_g, static_cast<T*>(gx.raw_data()), n, p);
    });
  });
  COLT5_CHECK_LAUNCH("unary_backward_kernel", s);
}

void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  const int64_t n = out.numel();
  if (n == 0) return;
  cudaStream_t s = stream_for(out);
  Geom ga = in_shape_of(a, out), gb = in_shape_of(b, out);
  visit_all(a.dtype(), [&]<class T>() {
    visit_binary(op, [&]<BinaryOp OP>() {
      using R = decltype(binary_fwd<OP, T>(T{}, T{}));
      binary_kernel<OP, T, R><<<grid_for(n), 256, 0, s>>>(static_cast<const T*>(a.raw_data()), ga,
                                                          static_cast<const T*>(b.raw_data()), gb,
                                                          static_cast<R*>(out.raw_data()), n);
    });
  });
  COLT5_CHECK_LAUNCH("binary_kernel", s);
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  const int64_t n = out.numel();
  if (n == 0) return;
  cudaStream_t s = stream_for(out);
  Geom gc = in_shape_of(cond, out), ga = in_shape_of(a, out), gb = in_shape_of(b, out);
  visit_all(a.dtype(), [&]<class T>() {
    where_kernel<T><<<grid_for(n), 256, 0, s>>>(static_cast<const bool*>(cond.raw_data()), gc,
                                                 static_cast<const T*>(a.raw_data()), ga,
                                                 static_cast<const T*>(b.raw_data()), gb,
                                                 static_cast<T*>(out.raw_data()), n);
  });
  COLT5_CHECK_LAUNCH("where_kernel", s);
}

}  // namespace colt5::cuda

COLT5_REGISTER_CUDA(unary, colt5::cuda::unary)
COLT5_REGISTER_CUDA(unary_backward, colt5::cuda::unary_backward)
COLT5_REGISTER_CUDA(binary, colt5::cuda::binary)
COLT5_REGISTER_CUDA(where, colt5::cuda::where)
