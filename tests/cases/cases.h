// The op case list: one entry per (op, variant) with a way to make its inputs and the function
// under test. The same list drives
//   - the CPU gradcheck suite (tests/test_gradcheck.cpp),
//   - the GPU suite: CUDA vs CPU on the same inputs, and gradcheck on the GPU,
//   - the main job's table (examples/gradcheck_all.cpp).
// Each group of ops keeps its cases in tests/cases/<group>.cpp.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"

namespace colt5::cases {

enum class Layout { Contiguous, Transposed, Sliced };
const char* layout_name(Layout l);  // "contiguous", "transposed", "sliced"

// A random float leaf of `shape`, made with the given layout:
//   Contiguous: plain;  Transposed: the transpose of a contiguous [.., b, a] tensor (last two
//   dims swapped in memory; needs >= 2 dims);  Sliced: every other element of a twice-as-long
//   last dim (stride 2). Values are N(0,1) * scale + shift, from Philox(seed).
Tensor leaf(const Shape& shape, DType dtype, Device device, uint64_t seed, Layout layout = Layout::Contiguous,
            double scale = 1.0, double shift = 0.0, bool requires_grad = true);
// Values spread so that no two are within `gap` of each other (for max/topk/sort/relu kinks):
// a random permutation of (k + 1/2) * gap + shift for k = -n/2 .. n/2, reshaped. With shift 0
// no value is 0 (the kink of relu and abs).
Tensor distinct_leaf(const Shape& shape, DType dtype, Device device, uint64_t seed, double gap = 0.1,
                     double shift = 0.0, bool requires_grad = true);

struct OpCase {
  std::string op;       // the op's public name, e.g. "softmax"
  std::string variant;  // shapes and layout, e.g. "[3,5] dim=0 transposed"
  // Inputs for (dtype, device); must be deterministic in `seed`. Leaves that require grad are
  // gradchecked; others (indices, masks) are constants.
  std::function<TensorList(DType, Device, uint64_t seed)> inputs;
  std::function<Tensor(const TensorList&)> fn;
  bool differentiable = true;
  GradcheckOptions grad{};
  // Output tolerance of CUDA vs CPU (relative to max |cpu|).
  double rtol_f32 = 1e-5, rtol_f64 = 1e-12;

  std::string name() const { return op + " " + variant; }
};

std::vector<OpCase> elementwise_cases();
std::vector<OpCase> reduce_cases();
std::vector<OpCase> softmax_cases();
std::vector<OpCase> loss_cases();
std::vector<OpCase> linalg_cases();
std::vector<OpCase> norm_cases();
std::vector<OpCase> shape_cases();     // views, cat, stack, pad, flip, contiguous
std::vector<OpCase> indexing_cases();
std::vector<OpCase> sort_cases();
std::vector<OpCase> routing_cases();  // coor_descent, sinkhorn, gumbel_sinkhorn
std::vector<OpCase> attention_cases();        // attention (heavy)
std::vector<OpCase> local_attention_cases();  // local_attention
std::vector<OpCase> rotary_cases();           // apply_rotary (nn/rotary.h)

std::vector<OpCase> all_cases();

// Max |a - b| / max(max |b|, tiny) over two tensors of the same shape (any device/dtype).
double max_rel_diff(const Tensor& a, const Tensor& b);

}  // namespace colt5::cases
