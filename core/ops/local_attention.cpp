// Raw local_attention ops (contract and math in core/ops/attention.h): option and argument
// validation, bringing q, k, v, mask and g into the kernels' contiguous layout, allocation of
// out / lse and the gradients, dispatch to the device's kernel.
#include <cmath>

#include "core/ops/attention.h"
#include "core/ops/copy.h"

namespace colt5 {

void validate(const LocalAttentionOptions& o, const char* who) {
  COLT5_CHECK(o.window_size >= 1, who, ": option 'window_size' expected >= 1, got ", o.window_size);
  COLT5_CHECK(o.look_backward >= 0, who, ": option 'look_backward' expected >= 0, got ", o.look_backward);
  const int64_t lf = o.resolved_look_forward();
  COLT5_CHECK(lf >= 0, who, ": option 'look_forward' expected >= 0, got ", lf);
  COLT5_CHECK(!(o.causal && lf > 0), who, ": option 'look_forward' must be 0 when causal (you cannot look forward if ",
              "causal), got ", lf);
  if (o.scale)
    COLT5_CHECK(std::isfinite(*o.scale) && *o.scale > 0, who, ": option 'scale' expected a finite value > 0, got ",
                *o.scale);
}

namespace ops {

namespace {

// Checks every input of the raw op and returns a copy with contiguous tensors.
LocalAttentionInputs checked_inputs(const LocalAttentionInputs& in, const char* op) {
  validate(in.opts, op);
  COLT5_CHECK(in.q.defined(), op, ": argument 'q' is an undefined tensor");
  COLT5_CHECK(in.k.defined(), op, ": argument 'k' is an undefined tensor");
  COLT5_CHECK(in.v.defined(), op, ": argument 'v' is an undefined tensor");
  COLT5_CHECK(in.q.dim() == 3, op, ": argument 'q' expected rank 3 ([B, n, d]), got shape ", in.q.shape());
  check_floating(in.q, op, "q");
  check_same_dtype(in.q, in.k, op, "q", "k");
  check_same_dtype(in.q, in.v, op, "q", "v");
  check_same_device({in.q, in.k, in.v, in.mask}, op);
  COLT5_CHECK(in.k.shape() == in.q.shape(), op, ": argument 'k' expected shape ", in.q.shape(), " (q's), got ",
              in.k.shape());
  COLT5_CHECK(in.v.shape() == in.q.shape(), op, ": argument 'v' expected shape ", in.q.shape(), " (q's), got ",
              in.v.shape());
  const int64_t B = in.q.size(0), n = in.q.size(1), w = in.opts.window_size;
  COLT5_CHECK(in.opts.autopad || n % w == 0, op, ": argument 'q' has sequence length ", n,
              ", expected a multiple of window_size ", w, " (or autopad)");
  if (in.mask.defined()) {
    check_dtype(in.mask, DType::Bool, op, "mask");
    COLT5_CHECK(in.mask.dim() == 2 && in.mask.size(1) == n && in.mask.size(0) >= 1 && B % in.mask.size(0) == 0, op,
                ": argument 'mask' expected shape [b, ", n, "] with b dividing the merged batch ", B, ", got ",
                in.mask.shape());
  }
  COLT5_CHECK(std::isfinite(in.scale) && in.scale > 0, op, ": argument 'scale' expected a finite value > 0, got ",
              in.scale);
  LocalAttentionInputs c = in;
  c.q = contiguous(in.q);
  c.k = contiguous(in.k);
  c.v = contiguous(in.v);
  if (in.mask.defined()) c.mask = contiguous(in.mask);
  return c;
}

}  // namespace

AttentionResult local_attention(const LocalAttentionInputs& in) {
  const char* op = "local_attention";
  const LocalAttentionInputs c = checked_inputs(in, op);
  const int64_t B = c.q.size(0), n = c.q.size(1);
  AttentionResult res;
  res.out = Tensor::empty(c.q.shape(), c.q.dtype(), c.q.device());
  res.lse = Tensor::empty({B, n}, c.q.dtype(), c.q.device());
  if (B == 0 || n == 0) return res;
  kernels::local_attention_forward(c.q.device())(c, res.out, res.lse);
  return res;
}

LocalAttentionGrads local_attention_backward(const LocalAttentionInputs& in, const AttentionResult& fwd,
                                             const Tensor& g, const bool need[3]) {
  const char* op = "local_attention_backward";
  const LocalAttentionInputs c = checked_inputs(in, op);
  const int64_t B = c.q.size(0), n = c.q.size(1);
  COLT5_CHECK(fwd.out.defined() && fwd.out.shape() == c.q.shape() && fwd.out.dtype() == c.q.dtype(), op,
              ": argument 'out' expected shape ", c.q.shape(), " of ", c.q.dtype(), " (the forward's output)");
  COLT5_CHECK(fwd.lse.defined() && fwd.lse.shape() == Shape({B, n}) && fwd.lse.dtype() == c.q.dtype(), op,
              ": argument 'lse' expected shape [", B, ", ", n, "] of ", c.q.dtype(), " (the forward's lse)");
  COLT5_CHECK(g.defined(), op, ": argument 'g' is an undefined tensor");
  check_same_dtype(c.q, g, op, "q", "g");
  check_same_device({c.q, fwd.out, fwd.lse, g}, op);
  COLT5_CHECK(g.shape() == c.q.shape(), op, ": argument 'g' expected shape ", c.q.shape(), " (q's), got ", g.shape());
  LocalAttentionGrads grads;
  if (need[0]) grads.dq = Tensor::empty(c.q.shape(), c.q.dtype(), c.q.device());
  if (need[1]) grads.dk = Tensor::empty(c.q.shape(), c.q.dtype(), c.q.device());
  if (need[2]) grads.dv = Tensor::empty(c.q.shape(), c.q.dtype(), c.q.device());
  if (!grads.dq.defined() && !grads.dk.defined() && !grads.dv.defined()) return grads;
  if (B == 0 || n == 0) return grads;
  kernels::local_attention_backward(c.q.device())(c, contiguous(fwd.out), contiguous(fwd.lse), contiguous(g), grads);
  return grads;
}

}  // namespace ops
}  // namespace colt5
