// Printing tensors, NumPy/torch style:
//
//   tensor([[1.0000, 2.0000],
//           [3.0000, 4.0000]], shape=[2, 2], dtype=float32, device=cpu)
//
// fmt::format("{}", t) and t.to_string() give the same text. Rules:
//   - floats: fixed with 4 decimals, or scientific (1.2346e-05) when some finite non-zero value
//     has |x| >= 1e8 or |x| < 1e-4; nan / inf / -inf as such. Integers as integers, bools as
//     True / False. Every element is right-aligned to the widest printed one.
//   - large tensors (more than `threshold` elements) are summarised: a dim longer than
//     2 * edgeitems shows its first and last `edgeitems` entries around "...".
//   - the suffix always names shape, dtype and device; then requires_grad=True for a leaf that
//     requires grad, or grad_fn=<name> for a recorded result.
//   - CUDA tensors are copied to the host first; 0-d tensors print their single value;
//     empty tensors print "[]".
//
// Include this header only where printing is needed: it pulls in fmt, which is heavy to compile.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/core.h>

#include "core/tensor.h"

namespace colt5 {

struct PrintOptions {
  int precision = 4;         // digits after the decimal point
  int64_t threshold = 1000;  // summarise tensors with more elements than this
  int64_t edgeitems = 3;     // entries kept at each end of a summarised dim
};

std::string format_tensor(const Tensor& t, const PrintOptions& options = {});

}  // namespace colt5

// fmt::format("{}", tensor). Width/fill/alignment specs apply to the whole text, as for strings.
template <>
struct fmt::formatter<colt5::Tensor> : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(const colt5::Tensor& t, FormatContext& ctx) const {
    const std::string text = colt5::format_tensor(t);
    return fmt::formatter<std::string_view>::format(std::string_view(text), ctx);
  }
};
