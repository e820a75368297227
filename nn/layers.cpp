// Basic layers. Each forward is one or a few public differentiable ops, so the gradients come
// from those ops' backward rules:
//   Linear      y = x W^T + b                                  (linear)
//   LayerNorm   y = (x - mu) / sqrt(var + eps) * w + b          (layer_norm)
//   RMSNorm     y = x / max(||x||, 1e-12) * sqrt(D) * gamma     (rms_norm)
//   GELU        y = x/2 * (1 + erf(x / sqrt 2))                 (gelu)
//   FeedForward y = L3(gelu(L1(rmsnorm(x))))
#include "nn/layers.h"

#include <cmath>

#include "autograd/ops.h"

namespace colt5::nn {

void check_layer_input(const Tensor& x, int64_t features, const Tensor& param, const char* layer) {
  COLT5_CHECK(x.defined(), layer, ": argument 'x' is an undefined tensor");
  COLT5_CHECK(x.dim() >= 1, layer, ": argument 'x' expected a tensor of rank >= 1 ([..., ", features,
              "]), got rank 0");
  check_floating(x, layer, "x");
  COLT5_CHECK(x.size(-1) == features, layer, ": argument 'x' expected last dim ", features, ", got ",
              x.size(-1), " (shape ", x.shape(), ")");
  if (param.defined()) {
    COLT5_CHECK(x.dtype() == param.dtype(), layer, ": argument 'x' expected dtype ", dtype_name(param.dtype()),
                " (the parameters' dtype), got ", dtype_name(x.dtype()));
    COLT5_CHECK(x.device() == param.device(), layer, ": argument 'x' expected device ", param.device(),
                " (the parameters' device), got ", x.device());
  }
}

// ---------------------------------------------------------------------------------------------

namespace {
// U(-bound, bound) of the given shape from `gen` (the default generator when null).
Tensor uniform(const Shape& shape, double bound, Generator* gen) {
  NoGradGuard ng;
  Tensor u = rand(shape, DType::Float32, kCPU, gen ? gen : &default_generator());
  return mul_scalar(add_scalar(mul_scalar(u, 2.0), -1.0), bound);  // 2u - 1 in [-1, 1)
}
}  // namespace

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, Generator* gen)
    : Linear(in_features, out_features, LinearOptions{bias}, gen) {}

Linear::Linear(int64_t in_features, int64_t out_features, const LinearOptions& opts, Generator* gen)
    : in_features_(in_features), out_features_(out_features) {
  COLT5_CHECK(in_features >= 1, "Linear: option 'in_features' expected >= 1, got ", in_features);
  COLT5_CHECK(out_features >= 1, "Linear: option 'out_features' expected >= 1, got ", out_features);
  // torch: kaiming_uniform_(W, a=sqrt(5)) -> bound = sqrt(6 / ((1 + a^2) fan_in)) = 1/sqrt(fan_in);
  // bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  const double bound = 1.0 / std::sqrt(double(in_features));
  weight = register_parameter("weight", uniform({out_features, in_features}, bound, gen));
  if (opts.bias) bias = register_parameter("bias", uniform({out_features}, bound, gen));
}

Tensor Linear::forward(const Tensor& x) const {
  check_layer_input(x, in_features_, weight, "Linear");
  return linear(x, weight, bias);
}

// ---------------------------------------------------------------------------------------------

LayerNorm::LayerNorm(int64_t dim, const LayerNormOptions& opts) : dim_(dim), eps_(opts.eps) {
  COLT5_CHECK(dim >= 1, "LayerNorm: option 'dim' expected >= 1, got ", dim);
  COLT5_CHECK(opts.eps > 0 && std::isfinite(opts.eps), "LayerNorm: option 'eps' expected a finite value > 0, got ",
              opts.eps);
  weight = register_parameter("weight", ones({dim}));
  bias = register_parameter("bias", zeros({dim}));
}

Tensor LayerNorm::forward(const Tensor& x) const {
  check_layer_input(x, dim_, weight, "LayerNorm");
  return layer_norm(x, weight, bias, eps_);
}

// ---------------------------------------------------------------------------------------------

RMSNorm::RMSNorm(int64_t dim) : dim_(dim) {
  COLT5_CHECK(dim >= 1, "RMSNorm: option 'dim' expected >= 1, got ", dim);
  gamma = register_parameter("gamma", ones({dim}));
}

Tensor RMSNorm::forward(const Tensor& x) const {
  check_layer_input(x, dim_, gamma, "RMSNorm");
  return rms_norm(x, gamma);
}

// ---------------------------------------------------------------------------------------------

Tensor GELU::forward(const Tensor& x) const {
  COLT5_CHECK(x.defined(), "GELU: argument 'x' is an undefined tensor");
  check_floating(x, "GELU", "x");
  return gelu(x);
}

// ---------------------------------------------------------------------------------------------

int64_t feedforward_hidden_dim(int64_t dim, double mult) {
  COLT5_CHECK(std::isfinite(mult) && mult > 0, "FeedForward: option 'mult' expected a finite value > 0, got ",
              mult);
  const double h = std::trunc(double(dim) * mult);  // Python int(dim * mult)
  COLT5_CHECK(h >= 1 && h <= 9.0e15, "FeedForward: option 'mult' gives hidden size int(", dim, " * ", mult,
              ") = ", h, ", expected >= 1");
  return int64_t(h);
}

FeedForward::FeedForward(int64_t dim, const FeedForwardOptions& opts, Generator* gen) : dim_(dim) {
  COLT5_CHECK(dim >= 1, "FeedForward: option 'dim' expected >= 1, got ", dim);
  dim_hidden_ = feedforward_hidden_dim(dim, opts.mult);
  norm = push_back(std::make_shared<RMSNorm>(dim));
  proj_in = push_back(std::make_shared<Linear>(dim, dim_hidden_, true, gen));
  act = push_back(std::make_shared<GELU>());
  proj_out = push_back(std::make_shared<Linear>(dim_hidden_, dim, true, gen));
}

Tensor qkv_heads(const Tensor& qkv, int64_t i, int64_t heads) {
  const int64_t b = qkv.size(0), n = qkv.size(1), inner = qkv.size(2) / 3, d = inner / heads;
  return qkv.narrow(2, i * inner, inner).reshape({b, n, heads, d}).permute({0, 2, 1, 3});
}

Tensor FeedForward::forward(const Tensor& x) const {
  check_layer_input(x, dim_, norm->gamma, "FeedForward");
  return proj_out->forward(act->forward(proj_in->forward(norm->forward(x))));
}

}  // namespace colt5::nn
