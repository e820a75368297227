// Cases for the elementwise ops: every unary op on contiguous, transposed and sliced inputs;
// every binary op with broadcasting; where / masked_fill. Kinked ops (relu, abs, clamp,
// maximum, minimum) get inputs that keep away from their kinks.
#include "tests/cases/cases.h"

namespace colt5::cases {

namespace {

using UnaryFnPtr = Tensor (*)(const Tensor&);

struct Domain {
  double scale, shift;  // x = N(0,1) * scale + shift
};

// Kinked ops use distinct values (no element within 0.05 of the kink at 0).
OpCase unary_case(const std::string& name, std::function<Tensor(const Tensor&)> f, const Shape& shape, Layout layout,
                  Domain dom, bool kinked) {
  OpCase c;
  c.op = name;
  c.variant = str(shape, " ", layout_name(layout));
  c.inputs = [=](DType dt, Device dev, uint64_t seed) -> TensorList {
    if (kinked) {
      // distinct values, none at 0 (the kink of relu and abs), none near clamp's bounds
      Tensor base = distinct_leaf(shape, DType::Float64, kCPU, seed, 0.1, 0.0, false);
      if (layout == Layout::Transposed) base = base.transpose(-1, -2).contiguous().transpose(-1, -2);
      return {base.to(dt).to(dev).detach().requires_grad_()};
    }
    return {leaf(shape, dt, dev, seed, layout, dom.scale, dom.shift)};
  };
  c.fn = [f](const TensorList& in) { return f(in[0]); };
  return c;
}

OpCase binary_case(const std::string& name, std::function<Tensor(const Tensor&, const Tensor&)> f, const Shape& sa,
                   const Shape& sb, Layout la, double shift_b = 0.0, bool distinct = false) {
  OpCase c;
  c.op = name;
  c.variant = str(sa, " ", sb, la == Layout::Transposed ? " a transposed" : "");
  c.inputs = [=](DType dt, Device dev, uint64_t seed) -> TensorList {
    if (distinct) {  // maximum/minimum: no ties between a and b
      Tensor both = distinct_leaf({numel(sa) + numel(sb)}, DType::Float64, kCPU, seed, 0.1, 0.0, false);
      Tensor a = both.narrow(0, 0, numel(sa)).reshape(sa).to(dt).to(dev).detach().requires_grad_();
      Tensor b = both.narrow(0, numel(sa), numel(sb)).reshape(sb).to(dt).to(dev).detach().requires_grad_();
      return {a, b};
    }
    return {leaf(sa, dt, dev, seed, la), leaf(sb, dt, dev, seed + 1, Layout::Contiguous, 0.5, shift_b)};
  };
  c.fn = [f](const TensorList& in) { return f(in[0], in[1]); };
  return c;
}

}  // namespace

std::vector<OpCase> elementwise_cases() {
  std::vector<OpCase> cs;
  struct U {
    const char* name;
    std::function<Tensor(const Tensor&)> f;
    Domain dom;
    bool kinked;
  };
  const std::vector<U> unary = {
      {"neg", [](const Tensor& x) { return neg(x); }, {1, 0}, false},
      {"exp", [](const Tensor& x) { return exp(x); }, {1, 0}, false},
      {"log", [](const Tensor& x) { return log(x); }, {0.2, 2}, false},
      {"relu", [](const Tensor& x) { return relu(x); }, {1, 0}, true},
      {"gelu", [](const Tensor& x) { return gelu(x); }, {1.5, 0}, false},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, {0.2, 2}, false},
      {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, {0.2, 2}, false},
      {"abs", [](const Tensor& x) { return abs(x); }, {1, 0}, true},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, {2, 0}, false},
      {"tanh", [](const Tensor& x) { return tanh(x); }, {1, 0}, false},
      {"sin", [](const Tensor& x) { return sin(x); }, {3, 0}, false},
      {"cos", [](const Tensor& x) { return cos(x); }, {3, 0}, false},
      {"pow", [](const Tensor& x) { return pow(x, 3.0); }, {1, 0}, false},
      {"pow", [](const Tensor& x) { return pow(x, -1.5); }, {0.2, 2}, false},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.52, 0.73); }, {1, 0}, true},
      {"add_scalar", [](const Tensor& x) { return x + 2.5; }, {1, 0}, false},
      {"mul_scalar", [](const Tensor& x) { return x * -1.5; }, {1, 0}, false},
  };
  for (const U& u : unary) {
    cs.push_back(unary_case(u.name, u.f, {7}, Layout::Contiguous, u.dom, u.kinked));
    cs.push_back(unary_case(u.name, u.f, {3, 5}, Layout::Transposed, u.dom, u.kinked));
    cs.push_back(unary_case(u.name, u.f, {2, 3, 5}, Layout::Sliced, u.dom, u.kinked));
  }

  struct B {
    const char* name;
    std::function<Tensor(const Tensor&, const Tensor&)> f;
    double shift_b;
    bool distinct;
  };
  const std::vector<B> binary = {
      {"add", [](const Tensor& a, const Tensor& b) { return a + b; }, 0, false},
      {"sub", [](const Tensor& a, const Tensor& b) { return a - b; }, 0, false},
      {"mul", [](const Tensor& a, const Tensor& b) { return a * b; }, 0, false},
      {"div", [](const Tensor& a, const Tensor& b) { return a / b; }, 2.0, false},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); }, 0, true},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); }, 0, true},
  };
  for (const B& b : binary) {
    cs.push_back(binary_case(b.name, b.f, {4, 5}, {4, 5}, Layout::Contiguous, b.shift_b, b.distinct));
    cs.push_back(binary_case(b.name, b.f, {3, 4}, {4}, Layout::Transposed, b.shift_b, b.distinct));
    cs.push_back(binary_case(b.name, b.f, {2, 1, 5}, {3, 1}, Layout::Contiguous, b.shift_b, b.distinct));
  }

  for (Shape sc : {Shape{4, 5}, Shape{1, 5}}) {
    OpCase c;
    c.op = "where";
    c.variant = str("cond ", sc, " a [4,5] b [5]");
    c.inputs = [sc](DType dt, Device dev, uint64_t seed) -> TensorList {
      Generator gen(seed);
      Tensor cond = gt(rand(sc, DType::Float64, kCPU, &gen), 0.5).to(dev);
      return {leaf({4, 5}, dt, dev, seed + 1), leaf({5}, dt, dev, seed + 2), cond};
    };
    c.fn = [](const TensorList& in) { return where(in[2], in[0], in[1]); };
    cs.push_back(c);
  }
  {
    OpCase c;
    c.op = "masked_fill";
    c.variant = "x [3,4,6] transposed, mask [4,1]";
    c.inputs = [](DType dt, Device dev, uint64_t seed) -> TensorList {
      Generator gen(seed);
      Tensor mask = gt(rand({4, 1}, DType::Float64, kCPU, &gen), 0.5).to(dev);
      return {leaf({3, 4, 6}, dt, dev, seed + 1, Layout::Transposed), mask};
    };
    c.fn = [](const TensorList& in) { return masked_fill(in[0], in[1], -3.5); };
    cs.push_back(c);
  }
  return cs;
}

}  // namespace colt5::cases
