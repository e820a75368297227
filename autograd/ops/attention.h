// Differentiable fused attention ops (kernels and math in core/ops/attention.h).
//
// attention() and local_attention() run the device's fused kernel when its `supports` slot
// accepts the arguments, and otherwise the composed version (*_composed: the same math built
// from primitive differentiable ops: matmul, masked_fill, softmax, ...). The composed versions
// are also the test oracle of the fused ones.
#pragma once

#include "core/ops/attention.h"
#include "core/tensor.h"

namespace colt5 {

// Heavy attention. `in`'s tensors may require grad (q, k, v, null_k, null_v, score_kv,
// score_q); mask is a constant. Returns out [b, h, n, d].
Tensor attention(const AttentionInputs& in);
Tensor attention_composed(const AttentionInputs& in);

// Local attention of q, k, v [..., n, d] (same shape; the leading dims are merged into B),
// mask [b, n] bool or undefined with B divisible by b. Returns [..., n, d].
Tensor local_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                       const LocalAttentionOptions& opts);
Tensor local_attention_composed(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                const LocalAttentionOptions& opts);

}  // namespace colt5
