// Rotary position embeddings (RoPE; Su et al., "RoFormer", arXiv 2104.09864), as local-attention's
// SinusoidalEmbeddings and CoLT5-attention 0.11.1's RotaryEmbedding compute them.
//
// Dims legend: d the rotated width (a head's dim_head, even), n positions.
//
// Frequencies f_i = theta^(-2i/d), i = 0 .. d/2 - 1 (buffer "inv_freq" [d/2]; theta = 10000).
// A vector t = (t1 | t2) [..., d] at position p, with halves t1, t2 [..., d/2], becomes
//   rotary(t, p) = t * cos(p F) + rotate_half(t) * sin(p F),   F = (f | f) [d],
//   rotate_half(t) = (-t2 | t1),
// which turns each pair (t1_i, t2_i) by the angle p f_i. Rotations compose, R(a)^T R(b) = R(b - a),
// so a score between a query at position a and a key at position b,
//   <rotary(q, a), rotary(k, b)> = <q, R((b - a) F) k>,
// depends on the offset b - a alone: a relative position signal that is the same in every window
// of a local attention and for every routed token of a heavy attention. The angles are constants
// of the positions (no gradient flows into them); the gradient of t is the transposed rotation,
//   dL/dt = g * cos(p F) + rotate_half^T(g * sin(p F)),  rotate_half^T(u) = (u2 | -u1),
// which autograd derives from the ops below (mul, cat, neg, narrow).
//
// inv_freq is computed in float32 as the reference computes it (then converted with the module),
// so that a checkpoint's buffer and a fresh module's agree bit for bit in every dtype.
#pragma once

#include <cstdint>

#include "nn/module.h"

namespace colt5::nn {

class RotaryEmbedding : public Module {
public:
  // dim >= 2 and even; theta > 0 and finite.
  explicit RotaryEmbedding(int64_t dim, double theta = 10000.0);

  // The angles p F of integer positions: positions [...] (int64, on the module's device) ->
  // [..., dim] in the module's dtype. Positions may be any values (routed indices, offsets).
  Tensor angles(const Tensor& positions) const;
  // The angles of the positions offset, offset + 1, ..., offset + n - 1: [n, dim].
  Tensor angles(int64_t n, int64_t offset = 0) const;

  int64_t dim() const { return dim_; }

  Tensor inv_freq;  // "inv_freq" [dim / 2] buffer

private:
  int64_t dim_;
};

// (-t2 | t1) for t = (t1 | t2) along the last dim (even).
Tensor rotate_half(const Tensor& t);

// t * cos(angles) + rotate_half(t) * sin(angles); angles broadcast against t ([n, d] against
// [b, h, n, d], or [b, 1, n, d] for per-batch positions).
Tensor apply_rotary(const Tensor& angles, const Tensor& t);

}  // namespace colt5::nn
