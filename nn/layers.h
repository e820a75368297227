// Basic layers: Linear, LayerNorm, RMSNorm, GELU and CoLT5's FeedForward.
//
// Dims legend: x is [..., D] (any number of leading dims, usually [batch, n, dim]); every layer
// works on the last dim. Parameter names equal the PyTorch reference's state_dict keys:
//   Linear      weight [out, in], bias [out]          (torch.nn.Linear; y = x W^T + b)
//   LayerNorm   weight [D] = 1, bias [D] = 0          (torch.nn.LayerNorm, biased variance)
//   RMSNorm     gamma [D] = 1                         (CoLT5: F.normalize(x) * sqrt(D) * gamma)
//   FeedForward 0.gamma, 1.weight, 1.bias, 3.weight, 3.bias
//               (nn.Sequential(RMSNorm(dim), Linear(dim, h), GELU(), Linear(h, dim)),
//                h = int(dim * mult), truncated toward zero as Python's int())
//
// Construction: parameters are created float32 on the CPU; convert a whole module with
// Module::to(DType) / Module::to(Device). Random initialisation (Linear) draws from the
// Generator passed in, or colt5::default_generator() when it is null.
//
// Forward functions check that x is floating, has rank >= 1, has last dim equal to the layer's
// feature size and matches the parameters' dtype and device; otherwise they throw colt5::Error
// naming the layer, the argument 'x', what was expected and what it got.
#pragma once

#include <cstdint>
#include <memory>

#include "autograd/ops/creation.h"
#include "nn/module.h"

namespace colt5::nn {

// ---------------------------------------------------------------------------------------------
// Linear: y = x W^T + b.  W: [out_features, in_features], b: [out_features].
// Init as torch.nn.Linear.reset_parameters: kaiming_uniform(a = sqrt(5)) on W, which is
// U(-1/sqrt(in), 1/sqrt(in)), and the same bound for b.
struct LinearOptions {
  bool bias = true;
};

class Linear : public Module {
public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Generator* gen = nullptr);
  Linear(int64_t in_features, int64_t out_features, const LinearOptions& opts, Generator* gen = nullptr);

  // x [..., in] -> [..., out]
  Tensor forward(const Tensor& x) const;
  Tensor operator()(const Tensor& x) const { return forward(x); }

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  bool has_bias() const { return bias.defined(); }

  Tensor weight;  // [out, in]
  Tensor bias;    // [out], undefined when bias = false

private:
  int64_t in_features_, out_features_;
};

// ---------------------------------------------------------------------------------------------
// LayerNorm: (x - mean) / sqrt(var + eps) * weight + bias over the last dim (biased var).
struct LayerNormOptions {
  double eps = 1e-5;  // must be > 0
};

class LayerNorm : public Module {
public:
  explicit LayerNorm(int64_t dim, const LayerNormOptions& opts = {});

  Tensor forward(const Tensor& x) const;  // [..., dim] -> [..., dim]
  Tensor operator()(const Tensor& x) const { return forward(x); }

  int64_t dim() const { return dim_; }
  double eps() const { return eps_; }

  Tensor weight;  // [dim], ones
  Tensor bias;    // [dim], zeros

private:
  int64_t dim_;
  double eps_;
};

// ---------------------------------------------------------------------------------------------
// RMSNorm (CoLT5's): x / max(||x||_2, 1e-12) * sqrt(dim) * gamma over the last dim.
class RMSNorm : public Module {
public:
  explicit RMSNorm(int64_t dim);

  Tensor forward(const Tensor& x) const;  // [..., dim] -> [..., dim]
  Tensor operator()(const Tensor& x) const { return forward(x); }

  int64_t dim() const { return dim_; }

  Tensor gamma;  // [dim], ones

private:
  int64_t dim_;
};

// ---------------------------------------------------------------------------------------------
// GELU, exact erf form: x/2 * (1 + erf(x / sqrt(2))). No parameters.
class GELU : public Module {
public:
  Tensor forward(const Tensor& x) const;
  Tensor operator()(const Tensor& x) const { return forward(x); }
};

// ---------------------------------------------------------------------------------------------
// FeedForward(dim, mult): the Sequential
//   "0" RMSNorm(dim) -> "1" Linear(dim, h) -> "2" GELU -> "3" Linear(h, dim),  h = int(dim * mult)
// so the state_dict keys are 0.gamma, 1.weight, 1.bias, 3.weight, 3.bias (as the reference).
struct FeedForwardOptions {
  double mult = 4.0;  // hidden size h = int(dim * mult) must be >= 1
};

class FeedForward : public Sequential {
public:
  explicit FeedForward(int64_t dim, const FeedForwardOptions& opts = {}, Generator* gen = nullptr);

  Tensor forward(const Tensor& x) const;  // [..., dim] -> [..., dim]
  Tensor operator()(const Tensor& x) const { return forward(x); }

  int64_t dim() const { return dim_; }
  int64_t dim_hidden() const { return dim_hidden_; }

  std::shared_ptr<RMSNorm> norm;    // "0"
  std::shared_ptr<Linear> proj_in;  // "1": dim -> h
  std::shared_ptr<GELU> act;        // "2"
  std::shared_ptr<Linear> proj_out; // "3": h -> dim

private:
  int64_t dim_, dim_hidden_;
};

// h = int(dim * mult) as the reference computes it (truncation toward zero).
int64_t feedforward_hidden_dim(int64_t dim, double mult);

// Shared input check of the layers: x defined, floating, rank >= 1, x.size(-1) == features,
// same dtype and device as `param` (when defined). `layer` names the caller in the message.
void check_layer_input(const Tensor& x, int64_t features, const Tensor& param, const char* layer);

// Part i (0 = q, 1 = k, 2 = v) of a fused projection qkv [b, n, 3 h d] (torch's chunk(3, -1)),
// split into heads: 'b n (h d) -> b h n d', [b, h, n, d] (a view).
Tensor qkv_heads(const Tensor& qkv, int64_t i, int64_t heads);

}  // namespace colt5::nn
