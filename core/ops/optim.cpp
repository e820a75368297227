// ops::adamw_step: checks the contract (core/ops/optim.h), then the parameter's device's kernel.
#include "core/ops/optim.h"

namespace colt5 {

namespace ops {
void adamw_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamWStep& s) {
  check_floating(param, "adamw_step", "param");
  check_same_dtype(param, grad, "adamw_step", "param", "grad");
  check_same_dtype(param, exp_avg, "adamw_step", "param", "exp_avg");
  check_same_dtype(param, exp_avg_sq, "adamw_step", "param", "exp_avg_sq");
  check_same_device({param, grad, exp_avg, exp_avg_sq}, "adamw_step");
  for (const Tensor* t : {&grad, static_cast<const Tensor*>(&exp_avg), static_cast<const Tensor*>(&exp_avg_sq)})
    COLT5_CHECK(t->shape() == param.shape(), "adamw_step: state and gradient shapes must equal the param's ",
                param.shape(), ", got ", t->shape());
  COLT5_CHECK(param.is_contiguous() && grad.is_contiguous() && exp_avg.is_contiguous() && exp_avg_sq.is_contiguous(),
              "adamw_step: argument 'param' expected param, grad and states contiguous");
  if (param.numel() == 0) return;
  kernels::adamw_step(param.device())(param, grad, exp_avg, exp_avg_sq, s);
}
}  // namespace ops

}  // namespace colt5
