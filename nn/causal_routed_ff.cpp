// CausalRoutedFeedForward (the math and the causality argument are in nn/causal_routed_ff.h).
#include "nn/causal_routed_ff.h"

#include <vector>

#include "autograd/ops.h"

namespace colt5::nn {

CausalRoutedFeedForward::CausalRoutedFeedForward(int64_t dim, const CausalRoutedFeedForwardOptions& o, Generator* gen)
    : dim_(dim), opts_(o) {
  const char* op = "CausalRoutedFeedForward";
  COLT5_CHECK(dim >= 1, op, ": option 'dim' expected >= 1, got ", dim);
  COLT5_CHECK(o.num_heavy_tokens >= 1, op, ": option 'num_heavy_tokens' expected >= 1, got ", o.num_heavy_tokens);
  COLT5_CHECK(o.window_size >= 1, op, ": option 'window_size' expected >= 1, got ", o.window_size);
  routing_token = register_parameter("routing_token", randn({1, dim}, DType::Float32, kCPU, gen));
  FeedForwardOptions lo, ho;
  lo.mult = o.light_ff_mult;
  ho.mult = o.heavy_ff_mult;
  light_ff = register_module("light_ff", std::make_shared<FeedForward>(dim, lo, gen));
  heavy_ff = register_module("heavy_ff", std::make_shared<FeedForward>(dim, ho, gen));
}

std::vector<int64_t> CausalRoutedFeedForward::causal_picks(const Tensor& scores, int64_t k, int64_t w) {
  COLT5_CHECK(scores.dim() == 2, "CausalRoutedFeedForward::causal_picks: argument 'scores' expected rank 2 [b, n], ",
              "got shape ", scores.shape());
  const int64_t b = scores.size(0), n = scores.size(1);
  const std::vector<double> s = scores.detach().to(kCPU).to(DType::Float64).contiguous().to_vector<double>();
  std::vector<int64_t> picks;
  for (int64_t row = 0; row < b; ++row)
    for (int64_t start = 0; start < n; start += w) {
      int64_t taken = 0;  // heavy tokens so far in this window: only earlier positions count
      for (int64_t i = start; i < std::min(start + w, n) && taken < k; ++i)
        if (s[row * n + i] > 0.0) {
          picks.push_back(row * n + i);
          ++taken;
        }
    }
  return picks;
}

Tensor CausalRoutedFeedForward::forward(const Tensor& x) const {
  const char* op = "CausalRoutedFeedForward";
  check_layer_input(x, dim_, routing_token, op);
  COLT5_CHECK(x.dim() == 3, op, ": argument 'x' expected rank 3 [batch, n, dim], got shape ", x.shape());
  const int64_t b = x.size(0), n = x.size(1);

  Tensor light = light_ff->forward(x);  // [b, n, dim]
  if (!heavy_enabled) return light;

  Tensor s = matmul(x, routing_token.transpose(0, 1)).reshape({b * n});  // [b n]
  const std::vector<int64_t> picks = causal_picks(s.reshape({b, n}), opts_.num_heavy_tokens, opts_.window_size);
  if (picks.empty()) return light;
  const int64_t m = static_cast<int64_t>(picks.size());

  const Tensor idx = from_vector(picks, {m}, x.device());              // [m]
  const Tensor rows = index_select(x.reshape({b * n, dim_}), 0, idx);  // [m, dim]
  Tensor g = sigmoid(index_select(s, 0, idx));                          // [m]
  if (opts_.straight_through) g = g + (1.0 - g).detach();               // value 1, gradient of g
  const Tensor out = heavy_ff->forward(rows) * g.unsqueeze(-1);         // [m, dim]
  const Tensor heavy = scatter_add(zeros({b * n, dim_}, x.dtype(), x.device()), 0,
                                   idx.unsqueeze(-1).expand({m, dim_}).contiguous(), out);
  return light + heavy.reshape({b, n, dim_});
}

}  // namespace colt5::nn
