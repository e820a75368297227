// The fused AdamW update as a raw op (no autograd): one kernel slot, a CPU reference in
// core/cpu/optim.cpp and a CUDA kernel in cuda/kernels/optim.cu. nn::AdamW (nn/optim.h) calls
// ops::adamw_step once per parameter; the update formulas are at the top of nn/optim.h.
#pragma once

#include "core/dispatch.h"
#include "core/tensor.h"

namespace colt5 {

// Scalars of one AdamW update (bias corrections already computed for this step).
struct AdamWStep {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double bias_correction1 = 1.0;  // 1 - beta1^t
  double bias_correction2 = 1.0;  // 1 - beta2^t
};

namespace cpu {
// Contract: param, grad, exp_avg, exp_avg_sq have the same shape, the same floating dtype
// (float32 or float64) and device, and are all contiguous; param, exp_avg and exp_avg_sq are
// updated in place, elementwise (one independent update per element).
void adamw_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamWStep& s);
}  // namespace cpu

using AdamWStepFn = void(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamWStep& s);
COLT5_KERNEL(adamw_step, AdamWStepFn, cpu::adamw_step)

namespace ops {
// Validates the contract above and dispatches to the parameter's device.
void adamw_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamWStep& s);
}  // namespace ops

}  // namespace colt5
