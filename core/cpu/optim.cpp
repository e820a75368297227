// CPU reference of the fused AdamW update (contract in core/ops/optim.h): one element at a time,
// in double for float and double parameters, the arithmetic the CUDA kernel repeats.
#include <cmath>

#include "core/ops/optim.h"

namespace colt5 {

namespace cpu {
void adamw_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamWStep& s) {
  const int64_t n = param.numel();
  const double decay = 1.0 - s.lr * s.weight_decay;
  const double step_size = s.lr / s.bias_correction1;
  const double bc2_sqrt = std::sqrt(s.bias_correction2);
  visit_floating(param.dtype(), "adamw_step", [&]<class T>() {
    T* p = param.data_ptr<T>();
    const T* g = grad.data_ptr<T>();
    T* m = exp_avg.data_ptr<T>();
    T* v = exp_avg_sq.data_ptr<T>();
    for (int64_t i = 0; i < n; ++i) {
      const double gi = double(g[i]);
      const double pi = double(p[i]) * decay;
      const double mi = double(m[i]) + (1.0 - s.beta1) * (gi - double(m[i]));
      const double vi = s.beta2 * double(v[i]) + (1.0 - s.beta2) * gi * gi;
      const double denom = std::sqrt(vi) / bc2_sqrt + s.eps;
      m[i] = T(mi);
      v[i] = T(vi);
      p[i] = T(pi - step_size * mi / denom);
    }
  });
}
}  // namespace cpu


}  // namespace colt5
