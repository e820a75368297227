// Differentiable elementwise ops with NumPy broadcasting. Inputs may be non-contiguous.
// Backward of a broadcast input sums the gradient over the broadcast dims (sum_to).
#pragma once

#include "core/tensor.h"

namespace colt5 {

// ---- unary (floating inputs) ----
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor relu(const Tensor& x);      // d/dx = 1 where x > 0, else 0
Tensor gelu(const Tensor& x);      // exact form: x * Phi(x) = x/2 * (1 + erf(x/sqrt(2)))
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);     // 1/sqrt(x)
Tensor abs(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor pow(const Tensor& x, double p);            // x^p
Tensor clamp(const Tensor& x, double lo, double hi);  // gradient 1 strictly inside [lo, hi]
Tensor clamp_min(const Tensor& x, double lo);
Tensor clamp_max(const Tensor& x, double hi);
Tensor add_scalar(const Tensor& x, double c);     // x + c
Tensor mul_scalar(const Tensor& x, double c);     // x * c

// ---- binary (same dtype; floating for the differentiable ones) ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);  // gradient to a where a >= b, else to b
Tensor minimum(const Tensor& a, const Tensor& b);

// ---- comparisons and masks (not differentiable; result is bool) ----
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, double b);
Tensor lt(const Tensor& a, double b);
Tensor le(const Tensor& a, double b);
Tensor gt(const Tensor& a, double b);
Tensor ge(const Tensor& a, double b);
Tensor logical_and(const Tensor& a, const Tensor& b);  // bool inputs
Tensor logical_or(const Tensor& a, const Tensor& b);
Tensor logical_not(const Tensor& a);

// where(cond, a, b): a where cond (bool) is true, else b; all three broadcast together.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// masked_fill(x, mask, value): value where mask (bool, broadcast to x) is true, else x.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);

// ---- operators ----
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator+(const Tensor& a, double c) { return add_scalar(a, c); }
inline Tensor operator+(double c, const Tensor& a) { return add_scalar(a, c); }
inline Tensor operator-(const Tensor& a, double c) { return add_scalar(a, -c); }
inline Tensor operator-(double c, const Tensor& a) { return add_scalar(neg(a), c); }
inline Tensor operator*(const Tensor& a, double c) { return mul_scalar(a, c); }
inline Tensor operator*(double c, const Tensor& a) { return mul_scalar(a, c); }
inline Tensor operator/(const Tensor& a, double c) { return mul_scalar(a, 1.0 / c); }

}  // namespace colt5
