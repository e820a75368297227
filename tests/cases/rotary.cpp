// Cases for the rotary position embedding (nn/rotary.h): apply_rotary at a run of positions
// (broadcast [n, d] angles over [b, h, n, d], as LocalMHA uses it, with an offset), at per-batch
// gathered positions ([b, 1, n, d] angles, as a routed heavy branch uses them), and on a
// transposed input. Inputs: t (gradchecked), then the angles (a constant).
#include "nn/rotary.h"
#include "tests/cases/cases.h"

namespace colt5::cases {

namespace {

OpCase rotary_case(const std::string& variant, const Shape& shape, Layout layout, int64_t offset, bool gathered) {
  OpCase c;
  c.op = "apply_rotary";
  c.variant = variant;
  c.inputs = [=](DType dt, Device dev, uint64_t seed) -> TensorList {
    nn::RotaryEmbedding rope(shape.back());
    rope.to(dt);
    rope.to(dev);
    const int64_t b = shape[0], n = shape[shape.size() - 2];
    Tensor angles;
    if (gathered) {
      // positions 3 t + 7 b (not a run: what routed indices look like)
      std::vector<int64_t> pos(size_t(b * n));
      for (int64_t i = 0; i < b; ++i)
        for (int64_t t = 0; t < n; ++t) pos[size_t(i * n + t)] = 3 * t + 7 * i;
      angles = rope.angles(from_vector(pos, {b, n}, dev)).unsqueeze(1);  // [b, 1, n, d]
    } else {
      angles = rope.angles(n, offset);  // [n, d]
    }
    return {leaf(shape, dt, dev, seed, layout), angles};
  };
  c.fn = [](const TensorList& in) { return nn::apply_rotary(in[1], in[0]); };
  return c;
}

}  // namespace

std::vector<OpCase> rotary_cases() {
  return {
      rotary_case("[2,2,5,4] positions 0..4", {2, 2, 5, 4}, Layout::Contiguous, 0, false),
      rotary_case("[1,3,6,8] positions 4..9 transposed", {1, 3, 6, 8}, Layout::Transposed, 4, false),
      rotary_case("[2,2,5,6] gathered positions", {2, 2, 5, 6}, Layout::Contiguous, 0, true),
  };
}

}  // namespace colt5::cases
