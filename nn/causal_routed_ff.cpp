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

Tensor CausalRoutedFeedForward::causal_slots(const Tensor& scores, int64_t k, int64_t w) {
  const char* op = "CausalRoutedFeedForward::causal_slots";
  COLT5_CHECK(scores.defined() && scores.dim() == 2, op, ": argument 'scores' expected rank 2 [b, n], got ",
              scores.defined() ? str(scores.shape()) : std::string("an undefined tensor"));
  COLT5_CHECK(k >= 1 && w >= 1, op, ": arguments 'num_heavy_tokens' and 'window_size' expected >= 1, got ", k, " and ",
              w);
  NoGradGuard no_grad;
  const int64_t b = scores.size(0), n = scores.size(1), W = (n + w - 1) / w, np = W * w;
  const Device dev = scores.device();
  // c_i = heavy candidates (s > 0) in window u = floor(i / w) up to and including i: the rule
  // picks i iff s_i > 0 and c_i <= k, and then i is the window's (c_i - 1)-th heavy token.
  const Tensor positive = pad(gt(scores.detach(), 0.0).to(DType::Int64), {0, np - n}).reshape({b, W, w});
  const Tensor c = cumsum(positive, -1);
  const Tensor picked = logical_and(eq(positive, 1.0), le(c, double(k)));
  const Tensor window_start = mul_scalar(arange(W, DType::Int64, dev), double(k)).reshape({1, W, 1});
  const Tensor trash = full({1, 1, 1}, double(W * k), DType::Int64, dev);  // one extra slot for the rest
  const Tensor slot = where(picked, add(window_start, add_scalar(c, -1.0)), trash).reshape({b, np});
  // Each picked token writes its flat index b * n + i into its slot (one writer per slot).
  const Tensor flat = add(mul_scalar(arange(b, DType::Int64, dev), double(n)).unsqueeze(1),
                          arange(np, DType::Int64, dev).unsqueeze(0));  // [b, np]
  const Tensor slots = scatter(full({b, W * k + 1}, -1.0, DType::Int64, dev), 1, slot, flat);
  return slots.narrow(1, 0, W * k).contiguous();
}

Tensor CausalRoutedFeedForward::forward(const Tensor& x) const {
  const char* op = "CausalRoutedFeedForward";
  check_layer_input(x, dim_, routing_token, op);
  COLT5_CHECK(x.dim() == 3, op, ": argument 'x' expected rank 3 [batch, n, dim], got shape ", x.shape());
  const int64_t b = x.size(0), n = x.size(1);

  Tensor light = light_ff->forward(x);  // [b, n, dim]
  if (!heavy_enabled) return light;

  // Fixed shapes, no host wait: every window has k slots; an empty slot (-1) reads row 0 and
  // adds exactly 0 (its scale is 0), so the result is the same as over the picked rows alone.
  Tensor s = matmul(x, routing_token.transpose(0, 1)).reshape({b * n});  // [b n]
  const Tensor slots = causal_slots(s.reshape({b, n}), opts_.num_heavy_tokens, opts_.window_size).reshape({-1});
  const int64_t m = slots.size(0);
  const Tensor filled = ge(slots, 0.0);                                 // [m]
  const Tensor idx = where(filled, slots, zeros({1}, DType::Int64, x.device()));
  const Tensor rows = index_select(x.reshape({b * n, dim_}), 0, idx);  // [m, dim]
  Tensor g = sigmoid(index_select(s, 0, idx));                          // [m]
  if (opts_.straight_through) g = g + (1.0 - g).detach();               // value 1, gradient of g
  g = g * filled.to(x.dtype());
  const Tensor out = heavy_ff->forward(rows) * g.unsqueeze(-1);  // [m, dim]
  const Tensor heavy = scatter_add(zeros({b * n, dim_}, x.dtype(), x.device()), 0,
                                   idx.unsqueeze(-1).expand({m, dim_}).contiguous(), out);
  return light + heavy.reshape({b, n, dim_});
}

}  // namespace colt5::nn
