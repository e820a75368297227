// The math of every elementwise op, shared by the CPU reference and the CUDA kernels.
//
//   unary_fwd<OP>(x, p)        y = f(x)
//   unary_bwd<OP>(x, y, g, p)  g * f'(x)   (y = f(x) is passed when f' is cheaper from y)
//   binary_fwd<OP>(a, b)       y = a (op) b
// p holds the scalar parameters: pow's exponent (p.a), clamp's bounds (p.a, p.b), the
// scalar of add_scalar / mul_scalar (p.a).
#pragma once

#include <cmath>
#include <cstdint>

#include "core/hd.h"

namespace colt5 {

enum class UnaryOp : uint8_t {
  Neg, Exp, Log, Relu, Gelu, Sqrt, Rsqrt, Abs, Sigmoid, Tanh, Sin, Cos, Pow, Clamp, AddScalar, MulScalar, LogicalNot,
};
constexpr int kUnaryOpCount = 17;

enum class BinaryOp : uint8_t {
  Add, Sub, Mul, Div, Maximum, Minimum, Eq, Ne, Lt, Le, Gt, Ge, LogicalAnd, LogicalOr,
};
constexpr int kBinaryOpCount = 14;

constexpr bool is_comparison(BinaryOp op) { return op >= BinaryOp::Eq; }

struct UnaryParams {
  double a = 0;
  double b = 0;
};

template <UnaryOp OP, class T>
COLT5_HD T unary_fwd(T x, UnaryParams p) {
  using std::erf; using std::exp; using std::log; using std::sqrt; using std::tanh; using std::pow; using std::fabs;
  using std::sin; using std::cos;
  if constexpr (OP == UnaryOp::Neg) return -x;
  else if constexpr (OP == UnaryOp::Exp) return exp(x);
  else if constexpr (OP == UnaryOp::Log) return log(x);
  else if constexpr (OP == UnaryOp::Relu) return x > T(0) ? x : T(0);
  // gelu(x) = x * Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2 (the exact form, not the tanh one)
  else if constexpr (OP == UnaryOp::Gelu) return T(0.5) * x * (T(1) + erf(x * T(0.70710678118654752440)));
  else if constexpr (OP == UnaryOp::Sqrt) return sqrt(x);
  else if constexpr (OP == UnaryOp::Rsqrt) return T(1) / sqrt(x);
  else if constexpr (OP == UnaryOp::Abs) return fabs(x);
  else if constexpr (OP == UnaryOp::Sigmoid) return T(1) / (T(1) + exp(-x));
  else if constexpr (OP == UnaryOp::Tanh) return tanh(x);
  else if constexpr (OP == UnaryOp::Sin) return sin(x);
  else if constexpr (OP == UnaryOp::Cos) return cos(x);
  else if constexpr (OP == UnaryOp::Pow) return pow(x, T(p.a));
  else if constexpr (OP == UnaryOp::Clamp) return x < T(p.a) ? T(p.a) : (x > T(p.b) ? T(p.b) : x);
  else if constexpr (OP == UnaryOp::AddScalar) return x + T(p.a);
  else if constexpr (OP == UnaryOp::MulScalar) return x * T(p.a);
  else return !x;  // LogicalNot (bool)
}

template <UnaryOp OP, class T>
COLT5_HD T unary_bwd(T x, T y, T g, UnaryParams p) {
  using std::exp; using std::pow; using std::sqrt; using std::sin; using std::cos;
  if constexpr (OP == UnaryOp::Neg) return -g;
  else if constexpr (OP == UnaryOp::Exp) return g * y;
  else if constexpr (OP == UnaryOp::Log) return g / x;
  else if constexpr (OP == UnaryOp::Relu) return x > T(0) ? g : T(0);
  // d/dx x*Phi(x) = Phi(x) + x * phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi)
  else if constexpr (OP == UnaryOp::Gelu) {
    using std::erf;
    T cdf = T(0.5) * (T(1) + erf(x * T(0.70710678118654752440)));
    T pdf = exp(T(-0.5) * x * x) * T(0.39894228040143267794);
    return g * (cdf + x * pdf);
  }
  else if constexpr (OP == UnaryOp::Sqrt) return g * T(0.5) / y;
  else if constexpr (OP == UnaryOp::Rsqrt) return g * T(-0.5) * y * y * y;   // d x^{-1/2} = -x^{-3/2}/2
  else if constexpr (OP == UnaryOp::Abs) return x > T(0) ? g : (x < T(0) ? -g : T(0));
  else if constexpr (OP == UnaryOp::Sigmoid) return g * y * (T(1) - y);
  else if constexpr (OP == UnaryOp::Tanh) return g * (T(1) - y * y);
  else if constexpr (OP == UnaryOp::Sin) return g * cos(x);
  else if constexpr (OP == UnaryOp::Cos) return -g * sin(x);
  else if constexpr (OP == UnaryOp::Pow) return p.a == 0 ? T(0) : g * T(p.a) * pow(x, T(p.a - 1));
  else if constexpr (OP == UnaryOp::Clamp) return (x >= T(p.a) && x <= T(p.b)) ? g : T(0);
  else if constexpr (OP == UnaryOp::AddScalar) return g;
  else if constexpr (OP == UnaryOp::MulScalar) return g * T(p.a);
  else return T(0);
}

template <BinaryOp OP, class T>
COLT5_HD auto binary_fwd(T a, T b) {
  if constexpr (OP == BinaryOp::Add) return T(a + b);
  else if constexpr (OP == BinaryOp::Sub) return T(a - b);
  else if constexpr (OP == BinaryOp::Mul) return T(a * b);
  else if constexpr (OP == BinaryOp::Div) return T(a / b);
  // NaN propagates like torch.maximum / minimum
  else if constexpr (OP == BinaryOp::Maximum) return (a != a) ? a : ((b != b) ? b : (a >= b ? a : b));
  else if constexpr (OP == BinaryOp::Minimum) return (a != a) ? a : ((b != b) ? b : (a <= b ? a : b));
  else if constexpr (OP == BinaryOp::Eq) return bool(a == b);
  else if constexpr (OP == BinaryOp::Ne) return bool(a != b);
  else if constexpr (OP == BinaryOp::Lt) return bool(a < b);
  else if constexpr (OP == BinaryOp::Le) return bool(a <= b);
  else if constexpr (OP == BinaryOp::Gt) return bool(a > b);
  else if constexpr (OP == BinaryOp::Ge) return bool(a >= b);
  else if constexpr (OP == BinaryOp::LogicalAnd) return bool(a && b);
  else return bool(a || b);  // LogicalOr
}

// Turn a runtime op into a compile-time one: visit_unary(op, [&]<UnaryOp OP>() { ... }).
template <class F>
COLT5_HD void visit_unary(UnaryOp op, F&& f) {
  switch (op) {
#define COLT5_CASE(N) case UnaryOp::N: f.template operator()<UnaryOp::N>(); break;
    COLT5_CASE(Neg) COLT5_CASE(Exp) COLT5_CASE(Log) COLT5_CASE(Relu) COLT5_CASE(Gelu) COLT5_CASE(Sqrt)
    COLT5_CASE(Rsqrt) COLT5_CASE(Abs) COLT5_CASE(Sigmoid) COLT5_CASE(Tanh) COLT5_CASE(Sin) COLT5_CASE(Cos) COLT5_CASE(Pow) COLT5_CASE(Clamp)
    COLT5_CASE(AddScalar) COLT5_CASE(MulScalar) COLT5_CASE(LogicalNot)
#undef COLT5_CASE
  }
}
static_assert(kUnaryOpCount == int(UnaryOp::LogicalNot) + 1, "visit_unary must list every UnaryOp");

template <class F>
COLT5_HD void visit_binary(BinaryOp op, F&& f) {
  switch (op) {
#define COLT5_CASE(N) case BinaryOp::N: f.template operator()<BinaryOp::N>(); break;
    COLT5_CASE(Add) COLT5_CASE(Sub) COLT5_CASE(Mul) COLT5_CASE(Div) COLT5_CASE(Maximum) COLT5_CASE(Minimum)
    COLT5_CASE(Eq) COLT5_CASE(Ne) COLT5_CASE(Lt) COLT5_CASE(Le) COLT5_CASE(Gt) COLT5_CASE(Ge)
    COLT5_CASE(LogicalAnd) COLT5_CASE(LogicalOr)
#undef COLT5_CASE
  }
}
static_assert(kBinaryOpCount == int(BinaryOp::LogicalOr) + 1, "visit_binary must list every BinaryOp");

}  // namespace colt5
