// Differentiable cross_entropy, the mean over rows not ignored of
//   loss_n = logsumexp(logits[n]) - logits[n, targets[n]].
// Forward: per-row losses from the kernel, summed, divided by the count of rows not ignored
// (0/0 = NaN when every row is ignored, as torch). Backward: the dedicated kernel
//   d logits[n] = (g / count) * (softmax(logits[n]) - onehot(targets[n]))   (0 for ignored rows)
// with g / count kept on the device as a one-element tensor. targets get no gradient.
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/ops/elementwise.h"
#include "core/ops/loss.h"
#include "core/ops/reduce.h"

namespace colt5 {

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  ops::check_cross_entropy_args(logits, targets, "cross_entropy");
  Tensor rows = ops::cross_entropy_rows(logits, targets, ignore_index);  // [N]
  Tensor count = ops::cross_entropy_count(targets, ignore_index, logits.dtype());  // []
  Tensor total = ops::reduce(ReduceOp::Sum, rows, {true}, false, "cross_entropy");  // []
  Tensor loss = ops::binary(BinaryOp::Div, total, count);
  if (!autograd::any_requires_grad({logits})) return loss;
  Tensor ld = logits.detach(), td = targets.detach();
  return autograd::record("cross_entropy", loss, {logits, targets},
                          [ld, td, count, ignore_index](const Tensor& g) -> TensorList {
                            Tensor scale = ops::binary(BinaryOp::Div, g, count);
                            return {ops::cross_entropy_backward(ld, td, scale, ignore_index), Tensor()};
                          });
}

}  // namespace colt5
