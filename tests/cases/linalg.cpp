// Cases for the matrix products: matmul (2-D, batched with broadcast batch dims, 1-D operands,
// transposed and sliced operands, a 2-D b shared by a batched a), bmm, and linear with and
// without bias on a 3-D input. Products are bilinear, so central differences are exact up to
// rounding and the default gradcheck tolerances hold.
#include "tests/cases/cases.h"

namespace colt5::cases {

namespace {

struct Operand {
  Shape shape;
  Layout layout = Layout::Contiguous;
};

const char* layout_suffix(Layout l) {  // "", " (T)", " (sliced)" after an operand's shape
  switch (l) {
    case Layout::Contiguous: return "";
    case Layout::Transposed: return " (T)";
    case Layout::Sliced: return " (sliced)";
  }
  return "";
}

OpCase product_case(const std::string& op, Operand a, Operand b,
                    std::function<Tensor(const Tensor&, const Tensor&)> f) {
  OpCase c;
  c.op = op;
  c.variant = str(a.shape, layout_suffix(a.layout), " @ ", b.shape, layout_suffix(b.layout));
  c.inputs = [=](DType dt, Device dev, uint64_t seed) -> TensorList {
    return {leaf(a.shape, dt, dev, seed, a.layout), leaf(b.shape, dt, dev, seed + 1, b.layout)};
  };
  c.fn = [f](const TensorList& in) { return f(in[0], in[1]); };
  return c;
}

OpCase linear_case(const Shape& x, Layout lx, int64_t out, bool with_bias, Layout lw = Layout::Contiguous) {
  OpCase c;
  c.op = "linear";
  const int64_t in = x.back();
  c.variant = str("x ", x, layout_suffix(lx), " w ", Shape{out, in}, layout_suffix(lw), with_bias ? " + bias" : " no bias");
  c.inputs = [=](DType dt, Device dev, uint64_t seed) -> TensorList {
    TensorList ts = {leaf(x, dt, dev, seed, lx), leaf({out, in}, dt, dev, seed + 1, lw, 0.5)};
    if (with_bias) ts.push_back(leaf({out}, dt, dev, seed + 2));
    return ts;
  };
  c.fn = [with_bias](const TensorList& in) { return linear(in[0], in[1], with_bias ? in[2] : Tensor()); };
  return c;
}

}  // namespace

std::vector<OpCase> linalg_cases() {
  auto mm = [](const Tensor& a, const Tensor& b) { return matmul(a, b); };
  auto bm = [](const Tensor& a, const Tensor& b) { return bmm(a, b); };
  const Layout C = Layout::Contiguous, T = Layout::Transposed, S = Layout::Sliced;
  std::vector<OpCase> cs;
  // matmul
  cs.push_back(product_case("matmul", {{3, 4}, C}, {{4, 5}, C}, mm));
  cs.push_back(product_case("matmul", {{5, 3}, T}, {{3, 2}, T}, mm));               // both transposed views
  cs.push_back(product_case("matmul", {{2, 1, 3, 4}, C}, {{3, 4, 2}, C}, mm));      // batch [2,1] x [3] -> [2,3]
  cs.push_back(product_case("matmul", {{2, 3, 4}, T}, {{1, 4, 3}, C}, mm));         // broadcast batch of b
  cs.push_back(product_case("matmul", {{2, 3, 4}, S}, {{4, 5}, T}, mm));            // sliced a, 2-D b shared
  cs.push_back(product_case("matmul", {{3, 4}, C}, {{2, 4, 5}, C}, mm));            // 2-D a shared by a batch
  cs.push_back(product_case("matmul", {{4}, C}, {{4, 5}, C}, mm));                  // row vector
  cs.push_back(product_case("matmul", {{3, 4}, C}, {{4}, S}, mm));                  // column vector (strided)
  cs.push_back(product_case("matmul", {{2, 3, 4}, C}, {{4}, C}, mm));               // batch @ vector
  cs.push_back(product_case("matmul", {{4}, C}, {{2, 4, 3}, T}, mm));               // vector @ batch
  cs.push_back(product_case("matmul", {{5}, C}, {{5}, C}, mm));                     // dot -> 0-D
  // bmm
  cs.push_back(product_case("bmm", {{2, 3, 4}, C}, {{2, 4, 5}, C}, bm));
  cs.push_back(product_case("bmm", {{3, 2, 5}, T}, {{3, 5, 4}, S}, bm));
  // linear
  cs.push_back(linear_case({2, 3, 4}, C, 5, true));
  cs.push_back(linear_case({2, 3, 4}, C, 5, false));
  cs.push_back(linear_case({2, 4, 3}, T, 6, true, T));  // x transposed, w a transposed view
  cs.push_back(linear_case({4}, C, 3, true));           // 1-D x
  return cs;
}

}  // namespace colt5::cases
