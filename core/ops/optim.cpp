// ops::adamw_multi, sum_of_squares_multi, scale_multi_: check the contracts (core/ops/optim.h),
// then call the tensors' device's kernel.
#include "core/ops/optim.h"

#include <set>

namespace colt5 {

namespace {

// xs: contiguous, one floating dtype (the first one's), one device. `what` names the list.
void check_list(const TensorList& xs, const char* op, const char* what) {
  for (size_t i = 0; i < xs.size(); ++i) {
    COLT5_CHECK(xs[i].defined(), op, ": argument '", what, "' expected defined tensors, got an undefined one at ", i);
    check_floating(xs[i], op, what);
    check_same_dtype(xs[0], xs[i], op, what, what);
    COLT5_CHECK(xs[i].is_contiguous(), op, ": argument '", what, "' expected contiguous tensors, got a strided one at ",
                i, " (shape ", xs[i].shape(), ", strides ", xs[i].strides(), ")");
  }
  if (!xs.empty()) check_same_device(xs, op);
}

}  // namespace

namespace ops {

void adamw_multi(AdamWLists& l, const Tensor& lr, Tensor& steps, const AdamWConsts& c) {
  const size_t n = l.params.size();
  COLT5_CHECK(l.grads.size() == n && l.exp_avg.size() == n && l.exp_avg_sq.size() == n && l.lr_index.size() == n &&
                  l.step_index.size() == n && l.weight_decay.size() == n,
              "adamw_multi: argument 'l' expected lists of one length (", n, " params), got ", l.grads.size(),
              " grads, ", l.exp_avg.size(), " exp_avg, ", l.exp_avg_sq.size(), " exp_avg_sq, ", l.lr_index.size(),
              " lr indices, ", l.step_index.size(), " step indices, ", l.weight_decay.size(), " weight decays");
  if (n == 0) return;
  check_list(l.params, "adamw_multi", "params");
  for (const TensorList* xs : {&l.grads, &l.exp_avg, &l.exp_avg_sq}) {
    check_list(*xs, "adamw_multi", "grads/exp_avg/exp_avg_sq");
    check_same_dtype(l.params[0], (*xs)[0], "adamw_multi", "params", "grads/exp_avg/exp_avg_sq");
  }
  check_same_device({l.params[0], l.grads[0], l.exp_avg[0], l.exp_avg_sq[0], lr, steps}, "adamw_multi");
  COLT5_CHECK(lr.dtype() == DType::Float64 && lr.dim() == 1 && lr.is_contiguous(),
              "adamw_multi: argument 'lr' expected a contiguous float64 vector, got ", dtype_name(lr.dtype()), " ",
              lr.shape());
  COLT5_CHECK(steps.dtype() == DType::Int64 && steps.dim() == 1 && steps.is_contiguous(),
              "adamw_multi: argument 'steps' expected a contiguous int64 vector, got ", dtype_name(steps.dtype()), " ",
              steps.shape());
  std::set<int64_t> seen;
  for (size_t i = 0; i < n; ++i) {
    for (const Tensor* t : {&l.grads[i], &l.exp_avg[i], &l.exp_avg_sq[i]})
      COLT5_CHECK(t->shape() == l.params[i].shape(), "adamw_multi: parameter ", i, ": state and gradient shapes must ",
                  "equal the param's ", l.params[i].shape(), ", got ", t->shape());
    COLT5_CHECK(l.lr_index[i] >= 0 && l.lr_index[i] < lr.numel(), "adamw_multi: argument 'lr_index' expected values in [0, ",
                lr.numel(), "), got ", l.lr_index[i], " at ", i);
    COLT5_CHECK(l.step_index[i] >= 0 && l.step_index[i] < steps.numel(), "adamw_multi: argument 'step_index' expected ",
                "values in [0, ", steps.numel(), "), got ", l.step_index[i], " at ", i);
    COLT5_CHECK(seen.insert(l.step_index[i]).second, "adamw_multi: argument 'step_index' expected distinct values, got ",
                l.step_index[i], " twice");
  }
  kernels::adamw_multi(l.params[0].device())(l, lr, steps, c);
}

Tensor sum_of_squares_multi(const TensorList& xs) {
  check_list(xs, "sum_of_squares_multi", "xs");
  if (xs.empty()) {
    Tensor zero = Tensor::empty({}, DType::Float64, kCPU);
    zero.data_ptr<double>()[0] = 0.0;
    return zero;
  }
  Tensor out = Tensor::empty({}, DType::Float64, xs[0].device());
  kernels::sum_of_squares_multi(xs[0].device())(xs, out);
  return out;
}

void scale_multi_(TensorList& xs, const Tensor& factor) {
  check_list(xs, "scale_multi_", "xs");
  if (xs.empty()) return;
  COLT5_CHECK(factor.dtype() == DType::Float64 && factor.numel() == 1, "scale_multi_: argument 'factor' expected one ",
              "float64 element, got ", dtype_name(factor.dtype()), " ", factor.shape());
  check_same_device({xs[0], factor}, "scale_multi_");
  kernels::scale_multi(xs[0].device())(xs, factor);
}

}  // namespace ops

}  // namespace colt5
