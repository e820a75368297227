// cross_entropy: validate, make logits [N, C] and targets [N] contiguous (the kernel contract
// of core/ops/loss.h), allocate, dispatch. The row count is computed with the elementwise and
// reduction kernels, so it stays on the tensors' device.
#include "core/ops/loss.h"

#include "core/ops/copy.h"
#include "core/ops/elementwise.h"
#include "core/ops/reduce.h"

namespace colt5::ops {

void check_cross_entropy_args(const Tensor& logits, const Tensor& targets, const char* op) {
  COLT5_CHECK(logits.defined(), op, ": argument 'logits' is undefined");
  COLT5_CHECK(targets.defined(), op, ": argument 'targets' is undefined");
  check_floating(logits, op, "logits");
  COLT5_CHECK(logits.dim() == 2, op, ": argument 'logits' expected 2 dims [N, C], got ", logits.dim(), " (shape ",
              logits.shape(), ")");
  check_dtype(targets, DType::Int64, op, "targets");
  COLT5_CHECK(targets.dim() == 1 && targets.size(0) == logits.size(0), op, ": argument 'targets' expected shape [",
              logits.size(0), "] (one class index per row of logits ", logits.shape(), "), got ", targets.shape());
  check_same_device({logits, targets}, op);
}

Tensor cross_entropy_rows(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  check_cross_entropy_args(logits, targets, "cross_entropy");
  Tensor l = contiguous(logits), t = contiguous(targets);
  Tensor loss = Tensor::empty({logits.size(0)}, logits.dtype(), logits.device());
  if (loss.numel() == 0) return loss;
  kernels::cross_entropy_forward(logits.device())(l, t, loss, ignore_index);
  return loss;
}

Tensor cross_entropy_count(const Tensor& targets, int64_t ignore_index, DType dtype) {
  COLT5_CHECK(targets.defined(), "cross_entropy: argument 'targets' is undefined");
  check_dtype(targets, DType::Int64, "cross_entropy", "targets");
  Tensor ignore = Tensor::empty({}, DType::Int64, targets.device());  // filled on the device: no host copy
  fill_(ignore, double(ignore_index));
  Tensor kept = to_dtype(binary(BinaryOp::Ne, targets, ignore), dtype);
  return reduce(ReduceOp::Sum, kept, std::vector<bool>(size_t(kept.dim()), true), false, "cross_entropy");
}

Tensor cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& scale,
                              int64_t ignore_index) {
  const char* op = "cross_entropy_backward";
  check_cross_entropy_args(logits, targets, op);
  COLT5_CHECK(scale.defined() && scale.numel() == 1, op, ": argument 'scale' expected one element");
  check_same_dtype(logits, scale, op, "logits", "scale");
  check_same_device({logits, scale}, op);
  Tensor l = contiguous(logits), t = contiguous(targets), s = contiguous(scale);
  Tensor gl = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
  if (gl.numel() == 0) return gl;
  kernels::cross_entropy_backward(logits.device())(l, t, s, gl, ignore_index);
  return gl;
}

}  // namespace colt5::ops
