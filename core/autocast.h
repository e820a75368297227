// Autocast: mixed precision chosen at the level of the autograd ops, as torch.autocast does.
//
//   { AutocastGuard guard(DType::BFloat16);  y = model.forward(x); }  loss.backward();
//
// While a guard for bfloat16 (or float16) is alive on a thread, the matrix products of float32
// tensors — matmul, bmm, linear (autograd/ops/linalg.h) — round their operands to that 16-bit
// dtype and run on the tensor cores with float32 accumulation. Their results are float32, and so
// are the gradients they pass back: dA = bf16(g) @ bf16(B)^T is accumulated in float32 and handed
// to A's float32 master copy without being rounded to 16 bits again (torch's autocast rounds the
// product and the gradient of its 16-bit operand copy to bfloat16). The 16-bit copies of the
// operands are what the backward keeps, half the bytes of the float32 ones.
// Everything else runs as without the guard, in float32 or float64: norms, softmax, attention,
// coordinate descent (float64 inside), losses and reductions. float64 tensors are never cast.
// The dtype is captured when the op runs forward, so backward may run inside or outside a guard.
// Gradients through an autocast product are first-order only (create_graph does not see the
// rounding).
//
// AutocastGuard(DType::Float32) turns autocast off inside its scope; guards nest and restore.
#pragma once

#include "core/dtype.h"

namespace colt5 {

class AutocastGuard {
public:
  // dtype: BFloat16 or Float16 (on), Float32 (off); anything else throws colt5::Error.
  explicit AutocastGuard(DType dtype);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

private:
  DType previous_;
};

// The products' 16-bit dtype on this thread, or Float32 when autocast is off.
DType autocast_dtype();

}  // namespace colt5
