// Cases for cross_entropy: logits are the gradchecked leaf (contiguous, transposed, sliced);
// targets are constant int64 inputs with some rows set to ignore_index.
#include "tests/cases/cases.h"

namespace colt5::cases {

namespace {

// Random targets in [0, C) for N rows; the rows listed in `ignored` get ignore_index.
Tensor make_targets(int64_t N, int64_t C, const std::vector<int64_t>& ignored, int64_t ignore_index, Device dev,
                    uint64_t seed) {
  Generator gen(seed);
  std::vector<int64_t> t = randint(0, C, {N}, DType::Int64, kCPU, &gen).to_vector<int64_t>();
  for (int64_t n : ignored) t[size_t(n)] = ignore_index;
  return from_vector(t, {N}, dev);
}

OpCase ce_case(int64_t N, int64_t C, Layout layout, std::vector<int64_t> ignored, int64_t ignore_index = -100) {
  OpCase c;
  c.op = "cross_entropy";
  c.variant = str("logits [", N, ", ", C, "] ", layout_name(layout), ", rows ", ignored,
                  " set to ignore_index ", ignore_index);
  c.inputs = [=](DType dt, Device dev, uint64_t seed) -> TensorList {
    return {leaf({N, C}, dt, dev, seed, layout, 1.5), make_targets(N, C, ignored, ignore_index, dev, seed + 1)};
  };
  c.fn = [ignore_index](const TensorList& in) { return cross_entropy(in[0], in[1], ignore_index); };
  return c;
}

}  // namespace

std::vector<OpCase> loss_cases() {
  return {
      ce_case(5, 4, Layout::Contiguous, {}),
      ce_case(6, 7, Layout::Transposed, {1, 4}),
      ce_case(4, 9, Layout::Sliced, {0}),
      ce_case(8, 3, Layout::Contiguous, {2, 3, 7}, 1),  // an ignore_index inside [0, C)
  };
}

}  // namespace colt5::cases
