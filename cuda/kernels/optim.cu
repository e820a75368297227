// CUDA kernel of the fused AdamW step: one thread per element (grid-stride loop), the same
// arithmetic as the CPU reference cpu::adamw_step (in double for float and double parameters):
//   p = p (1 - lr wd);  m = m + (1 - b1)(g - m);  v = b2 v + (1 - b2) g^2
//   p = p - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)
// Contract (core/ops/optim.h): param, grad, exp_avg, exp_avg_sq contiguous, same shape/dtype/device;
// param, exp_avg, exp_avg_sq updated in place. Elements are independent: no races, no atomics.
#include <cmath>

#include "cuda/kernels/common.cuh"
#include "core/ops/optim.h"

namespace colt5::cuda {

namespace {

template <class T>
__global__ void adamw_step_kernel(T* p, const T* g, T* m, T* v, int64_t n, double decay, double one_minus_b1,
                                  double b2, double one_minus_b2, double step_size, double bc2_sqrt, double eps) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const double gi = double(g[i]);
    const double mi_old = double(m[i]);
    const double pi = double(p[i]) * decay;
    // __dmul_rn/__dadd_rn keep nvcc from contracting into FMAs, so results match the CPU's rounding
    const double mi = __dadd_rn(mi_old, __dmul_rn(one_minus_b1, __dadd_rn(gi, -mi_old)));
    const double vi = __dadd_rn(__dmul_rn(b2, double(v[i])), __dmul_rn(__dmul_rn(one_minus_b2, gi), gi));
    const double denom = __dadd_rn(::sqrt(vi) / bc2_sqrt, eps);
    m[i] = T(mi);
    v[i] = T(vi);
    p[i] = T(__dadd_rn(pi, -(__dmul_rn(step_size, mi) / denom)));
  }
}

}  // namespace

void adamw_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamWStep& s) {
  const int64_t n = param.numel();
  if (n == 0) return;
  cudaStream_t stream = stream_for(param);
  const double decay = 1.0 - s.lr * s.weight_decay;
  const double step_size = s.lr / s.bias_correction1;
  const double bc2_sqrt = std::sqrt(s.bias_correction2);
  visit_floating(param.dtype(), "adamw_step", [&]<class T>() {
    adamw_step_kernel<T><<<grid_for(n), 256, 0, stream>>>(
        static_cast<T*>(param.raw_data()), static_cast<const T*>(grad.raw_data()), static_cast<T*>(exp_avg.raw_data()),
        static_cast<T*>(exp_avg_sq.raw_data()), n, decay, 1.0 - s.beta1, s.beta2, 1.0 - s.beta2, step_size, bc2_sqrt,
        s.eps);
  });
  COLT5_CHECK_LAUNCH("adamw_step_kernel", stream);
}

}  // namespace colt5::cuda

COLT5_REGISTER_CUDA(adamw_step, colt5::cuda::adamw_step)
