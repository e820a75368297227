// The optimizer's raw ops (no autograd), each over a whole list of tensors at once: the fused
// AdamW update, the squared global norm of a list, and the in-place scaling of a list by a
// scalar that lives on the device (clip_grad_norm is the last two). nn::AdamW and
// nn::clip_grad_norm_ (nn/optim.h) call them; the update formulas are at the top of nn/optim.h.
//
// Why lists: a model has tens to hundreds of parameters, most of them small; one launch per
// parameter costs more than its arithmetic. On CUDA each op is one launch per table of up to
// 32 tensors and 256 chunks of 8192 elements (cuda/kernels/multi_tensor.cuh; the table is a
// kernel argument, as in apex's multi_tensor_apply), so an AdamW step is a few launches.
// Why device scalars: the learning rates, step counts and clipping factor are read by the
// kernels from device memory, so a CUDA graph that captured the step stays right when they
// change, and nothing has to come back to the host to decide whether to clip.
//
// CPU reference kernels in core/cpu/optim.cpp, CUDA kernels in cuda/kernels/optim.cu; the
// per-element AdamW arithmetic is one shared function (core/ops/optim_math.h).
#pragma once

#include <vector>

#include "core/dispatch.h"
#include "core/tensor.h"

namespace colt5 {

// Constants of one AdamW optimizer.
struct AdamWConsts {
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
};

// The parameters of one AdamW update and their state, parallel lists (entry i is parameter i).
struct AdamWLists {
  TensorList params, grads, exp_avg, exp_avg_sq;
  std::vector<int64_t> lr_index;     // the element of `lr` that is parameter i's learning rate
  std::vector<int64_t> step_index;   // the element of `steps` that counts parameter i's updates
  std::vector<double> weight_decay;  // parameter i's (decoupled) weight decay
};

namespace cpu {
// Contracts (checked by ops:: below):
// adamw_multi: params[i], grads[i], exp_avg[i], exp_avg_sq[i] have one shape; all tensors are
//   contiguous, of one floating dtype (float32 or float64) and on one device; `lr` is float64
//   [G] and `steps` int64 [S] on that device; lr_index[i] < G, step_index[i] < S, the step
//   indices distinct. For each i, with t = steps[step_index[i]] + 1 and lr = lr[lr_index[i]],
//   params[i], exp_avg[i], exp_avg_sq[i] get the update of nn/optim.h in place (bias
//   corrections 1 - beta^t in double); then steps[step_index[i]] = t.
void adamw_multi(AdamWLists& l, const Tensor& lr, Tensor& steps, const AdamWConsts& c);
// sum_of_squares_multi: xs contiguous, of one floating dtype, on one device, not empty; out a
//   float64 scalar on that device: the sum of x^2 over every element of every x, in double.
void sum_of_squares_multi(const TensorList& xs, Tensor& out);
// scale_multi: xs as above, factor one float64 element on their device; every x is multiplied
//   by it in place (in double, rounded to x's dtype).
void scale_multi(TensorList& xs, const Tensor& factor);
}  // namespace cpu

using AdamWMultiFn = void(AdamWLists& l, const Tensor& lr, Tensor& steps, const AdamWConsts& c);
using SumOfSquaresMultiFn = void(const TensorList& xs, Tensor& out);
using ScaleMultiFn = void(TensorList& xs, const Tensor& factor);
COLT5_KERNEL(adamw_multi, AdamWMultiFn, cpu::adamw_multi)
COLT5_KERNEL(sum_of_squares_multi, SumOfSquaresMultiFn, cpu::sum_of_squares_multi)
COLT5_KERNEL(scale_multi, ScaleMultiFn, cpu::scale_multi)

namespace ops {
// Validate the contracts above and dispatch to the tensors' device.
void adamw_multi(AdamWLists& l, const Tensor& lr, Tensor& steps, const AdamWConsts& c);
Tensor sum_of_squares_multi(const TensorList& xs);  // float64 scalar; 0 (on the CPU) for an empty list
void scale_multi_(TensorList& xs, const Tensor& factor);
}  // namespace ops

}  // namespace colt5
