// Rotary position embeddings (math in nn/rotary.h).
#include "nn/rotary.h"

#include <cmath>
#include <vector>

#include "autograd/ops.h"
#include "core/error.h"

namespace colt5::nn {

RotaryEmbedding::RotaryEmbedding(int64_t dim, double theta) : dim_(dim) {
  const char* who = "RotaryEmbedding";
  COLT5_CHECK(dim >= 2 && dim % 2 == 0, who, ": argument 'dim' expected an even value >= 2, got ", dim);
  COLT5_CHECK(std::isfinite(theta) && theta > 0, who, ": argument 'theta' expected a finite value > 0, got ", theta);
  // 1 / theta ** (arange(0, dim, 2).float() / dim), every step in float32 as the reference.
  std::vector<float> f(size_t(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) {
    const float e = float(2 * i) / float(dim);
    f[size_t(i)] = 1.0f / std::pow(float(theta), e);
  }
  inv_freq = register_buffer("inv_freq", from_vector(f, {dim / 2}));
}

Tensor RotaryEmbedding::angles(const Tensor& positions) const {
  const char* who = "RotaryEmbedding::angles";
  COLT5_CHECK(positions.defined(), who, ": argument 'positions' is an undefined tensor");
  check_dtype(positions, DType::Int64, who, "positions");
  check_same_device({positions, inv_freq}, who);
  // einsum('..., j -> ... j', p, inv_freq), then (f | f)
  const Tensor half = mul(positions.to(inv_freq.dtype()).unsqueeze(-1), inv_freq);
  return cat({half, half}, -1);
}

Tensor RotaryEmbedding::angles(int64_t n, int64_t offset) const {
  COLT5_CHECK(n >= 0, "RotaryEmbedding::angles: argument 'n' expected >= 0, got ", n);
  return angles(arange(double(offset), double(offset + n), 1.0, DType::Int64, inv_freq.device()));
}

Tensor rotate_half(const Tensor& t) {
  const char* who = "rotate_half";
  COLT5_CHECK(t.defined(), who, ": argument 't' is an undefined tensor");
  COLT5_CHECK(t.dim() >= 1 && t.size(-1) % 2 == 0, who, ": argument 't' expected an even last dim, got shape ",
              t.shape());
  const int64_t h = t.size(-1) / 2;
  return cat({neg(t.narrow(-1, h, h)), t.narrow(-1, 0, h)}, -1);
}

Tensor apply_rotary(const Tensor& angles, const Tensor& t) {
  const char* who = "apply_rotary";
  COLT5_CHECK(angles.defined() && t.defined(), who, ": arguments 'angles' and 't' must be defined tensors");
  COLT5_CHECK(angles.dim() >= 1 && t.dim() >= 1 && angles.size(-1) == t.size(-1), who,
              ": argument 'angles' expected the last dim of 't' (", t.dim() >= 1 ? t.size(-1) : 0, "), got shape ",
              angles.shape());
  const Tensor a = angles.dtype() == t.dtype() ? angles : angles.to(t.dtype());
  return add(mul(t, cos(a)), mul(rotate_half(t), sin(a)));
}

}  // namespace colt5::nn
