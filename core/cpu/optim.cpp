// CPU reference kernels of the optimizer's list ops (contracts in core/ops/optim.h): plain loops,
// one tensor after another, in double for float and double tensors; the AdamW arithmetic is
// core/ops/optim_math.h, which the CUDA kernel shares.
#include "core/ops/optim.h"
#include "core/ops/optim_math.h"

namespace colt5 {

namespace cpu {

void adamw_multi(AdamWLists& l, const Tensor& lr, Tensor& steps, const AdamWConsts& c) {
  const double* lrs = lr.data_ptr<double>();
  int64_t* count = steps.data_ptr<int64_t>();
  for (size_t i = 0; i < l.params.size(); ++i) {
    const double t = double(count[l.step_index[i]] + 1);
    const AdamWScalars s = adamw_scalars(lrs[l.lr_index[i]], l.weight_decay[i], c.beta1, c.beta2, c.eps, t);
    visit_floating(l.params[i].dtype(), "adamw_multi", [&]<class T>() {
      T* p = l.params[i].data_ptr<T>();
      const T* g = l.grads[i].data_ptr<T>();
      T* m = l.exp_avg[i].data_ptr<T>();
      T* v = l.exp_avg_sq[i].data_ptr<T>();
      for (int64_t k = 0, n = l.params[i].numel(); k < n; ++k) {
        double pk = double(p[k]), mk = double(m[k]), vk = double(v[k]);
        adamw_element(pk, double(g[k]), mk, vk, s);
        p[k] = T(pk), m[k] = T(mk), v[k] = T(vk);
      }
    });
  }
  for (size_t i = 0; i < l.params.size(); ++i) ++count[l.step_index[i]];
}

void sum_of_squares_multi(const TensorList& xs, Tensor& out) {
  double total = 0.0;
  for (const Tensor& x : xs)
    visit_floating(x.dtype(), "sum_of_squares_multi", [&]<class T>() {
      const T* p = x.data_ptr<T>();
      for (int64_t k = 0, n = x.numel(); k < n; ++k) total += double(p[k]) * double(p[k]);
    });
  out.data_ptr<double>()[0] = total;
}

void scale_multi(TensorList& xs, const Tensor& factor) {
  const double f = factor.data_ptr<double>()[0];
  for (Tensor& x : xs)
    visit_floating(x.dtype(), "scale_multi", [&]<class T>() {
      T* p = x.data_ptr<T>();
      for (int64_t k = 0, n = x.numel(); k < n; ++k) p[k] = T(double(p[k]) * f);
    });
}

}  // namespace cpu

}  // namespace colt5
