// Raw matrix products: validation, torch's matmul shape rules, and the bridge from arbitrary
// strided operands to the gemm slot's [B, n, k] @ [B, k, m] contract.
//
// matmul(a [..., n, k], b [..., k, m]):
//   1. a 1-D a becomes [1, k] and a 1-D b becomes [k, 1] (views);
//   2. the batch dims (all but the last two) broadcast to `batch`;
//   3. when b has no batch dims, a's batch and row dims are folded into one row dim if a's
//      strides allow it without a copy ([P, n, k] -> [P*n, k]): one large GEMM instead of P
//      small ones (this is the linear-layer case);
//   4. otherwise both operands are expanded to batch and folded into one batch dim (a view
//      whenever the strides allow; an expanded operand keeps batch stride 0);
//   5. the dims added in step 1 are dropped from the result.
#include "core/ops/linalg.h"

#include <algorithm>

#include "core/ops/copy.h"
#include "core/ops/elementwise.h"
#include "core/ops/view.h"

namespace colt5 {

DType gemm_result_dtype(DType operands) { return is_half(operands) ? DType::Float32 : operands; }

GemmLayout gemm_layout(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  GemmLayout l;
  // Row-major ("N"): elements of a row adjacent, rows at least `cols` apart. A size-1 dim's
  // stride never matters, so any value is accepted there.
  if ((cols == 1 || col_stride == 1) && (rows == 1 || row_stride >= cols)) {
    l.ok = true;
    l.transposed = false;
    l.ld = rows == 1 ? std::max<int64_t>(cols, 1) : row_stride;
    return l;
  }
  // Column-major, i.e. the transpose of a row-major [cols, rows] matrix ("T").
  if ((rows == 1 || row_stride == 1) && (cols == 1 || col_stride >= rows)) {
    l.ok = true;
    l.transposed = true;
    l.ld = cols == 1 ? std::max<int64_t>(rows, 1) : col_stride;
    return l;
  }
  return l;
}

namespace ops {

namespace {

// Operands of a product: defined, of one floating dtype (float32, float64, or a 16-bit one,
// whose product accumulates and returns float32), on one device.
void check_operands(const Tensor& a, const Tensor& b, const char* op, const char* name_a, const char* name_b) {
  COLT5_CHECK(a.defined(), op, ": argument '", name_a, "' is undefined");
  COLT5_CHECK(b.defined(), op, ": argument '", name_b, "' is undefined");
  for (const auto& [t, name] : {std::pair{&a, name_a}, std::pair{&b, name_b}})
    COLT5_CHECK(t->is_floating_point() || is_half(t->dtype()), op, ": argument '", name,
                "' expected a floating dtype (float32, float64, bfloat16 or float16), got ", dtype_name(t->dtype()));
  COLT5_CHECK(a.dtype() == b.dtype(), op, ": arguments '", name_a, "' and '", name_b,
              "' expected the same dtype, got ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype()));
  check_same_device({a, b}, op);
}

// A [B, r, c] operand the gemm slot accepts: itself when every matrix is BLAS-shaped, else a
// contiguous copy. A broadcast batch (stride 0) copies one matrix, not B of them.
Tensor blas_shaped(const Tensor& t) {
  if (gemm_layout(t.size(1), t.size(2), t.stride(1), t.stride(2)).ok) return t;
  if (t.size(0) > 1 && t.stride(0) == 0) return expand(contiguous(narrow(t, 0, 0, 1)), t.shape());
  return contiguous(t);
}

Shape batch_of(const Tensor& t) { return Shape(t.shape().begin(), t.shape().end() - 2); }

Shape concat(Shape s, std::initializer_list<int64_t> tail) {
  s.insert(s.end(), tail);
  return s;
}

}  // namespace

Tensor gemm(const Tensor& a, const Tensor& b, const char* op) {
  check_operands(a, b, op, "a", "b");
  check_dim(a, 3, op, "a");
  check_dim(b, 3, op, "b");
  COLT5_CHECK(a.size(0) == b.size(0), op, ": argument 'b' expected batch size ", a.size(0), " (to match a's), got ",
              b.size(0));
  COLT5_CHECK(a.size(2) == b.size(1), op, ": argument 'b' expected size ", a.size(2),
              " in dim 1 (to match a's size in dim 2), got ", b.size(1));
  const int64_t B = a.size(0), n = a.size(1), k = a.size(2), m = b.size(2);
  Tensor c = Tensor::empty({B, n, m}, gemm_result_dtype(a.dtype()), a.device());
  if (c.numel() == 0) return c;
  if (k == 0) {  // an empty sum
    fill_(c, 0.0);
    return c;
  }
  kernels::gemm(a.device())(blas_shaped(a), blas_shaped(b), c);
  return c;
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  const char* op = "matmul";
  check_operands(a, b, op, "a", "b");
  COLT5_CHECK(a.dim() >= 1, op, ": argument 'a' expected at least 1 dim, got a 0-D tensor");
  COLT5_CHECK(b.dim() >= 1, op, ": argument 'b' expected at least 1 dim, got a 0-D tensor");
  const Tensor a2 = a.dim() == 1 ? unsqueeze(a, 0) : a;  // [..., n, k]
  const Tensor b2 = b.dim() == 1 ? unsqueeze(b, 1) : b;  // [..., k, m]
  const int64_t n = a2.size(-2), k = a2.size(-1), m = b2.size(-1);
  COLT5_CHECK(b2.size(-2) == k, op, ": argument 'b' expected size ", k, " in dim ", b.dim() == 1 ? 0 : b.dim() - 2,
              " (to match a's size ", k, " in dim ", a.dim() - 1, "), got ", b2.size(-2), " (a ", a.shape(), ", b ",
              b.shape(), ")");
  const Shape batch = broadcast_shapes(batch_of(a2), batch_of(b2), op);
  const int64_t P = numel(batch);

  // The shape of the result before dropping the dims of 1-D operands.
  Tensor c;
  if (b2.dim() == 2 && a2.dim() > 2) {
    if (auto st = view_strides(a2.shape(), a2.strides(), {1, P * n, k})) {
      Tensor a3 = Tensor::make_view(a2, {1, P * n, k}, *st, a2.offset());  // [1, P*n, k]
      c = gemm(a3, unsqueeze(b2, 0), op);                                  // [1, P*n, m]
    }
  }
  if (!c.defined()) {
    Tensor a3 = reshape(expand(a2, concat(batch, {n, k})), {P, n, k});  // [P, n, k]
    Tensor b3 = reshape(expand(b2, concat(batch, {k, m})), {P, k, m});  // [P, k, m]
    c = gemm(a3, b3, op);                                               // [P, n, m]
  }
  Shape out = batch;
  if (a.dim() > 1) out.push_back(n);
  if (b.dim() > 1) out.push_back(m);
  return view(c, out);
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  const char* op = "bmm";
  check_operands(a, b, op, "a", "b");
  COLT5_CHECK(a.dim() == 3, op, ": argument 'a' expected 3 dims [B, n, k], got shape ", a.shape());
  COLT5_CHECK(b.dim() == 3, op, ": argument 'b' expected 3 dims [B, k, m], got shape ", b.shape());
  COLT5_CHECK(a.size(0) == b.size(0), op, ": argument 'b' expected batch size ", a.size(0),
              " in dim 0 (to match a's size in dim 0), got ", b.size(0));
  COLT5_CHECK(a.size(2) == b.size(1), op, ": argument 'b' expected size ", a.size(2),
              " in dim 1 (to match a's size ", a.size(2), " in dim 2), got ", b.size(1));
  return gemm(a, b, op);
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const char* op = "linear";
  check_operands(x, weight, op, "x", "weight");
  COLT5_CHECK(x.dim() >= 1, op, ": argument 'x' expected at least 1 dim [..., in], got a 0-D tensor");
  COLT5_CHECK(weight.dim() == 2, op, ": argument 'weight' expected 2 dims [out, in], got shape ", weight.shape());
  const int64_t in = x.size(-1), out = weight.size(0);
  COLT5_CHECK(weight.size(1) == in, op, ": argument 'weight' expected size ", in,
              " in dim 1 (to match x's size ", in, " in dim -1), got ", weight.size(1), " (weight ", weight.shape(),
              ")");
  if (bias.defined()) {
    const DType want = gemm_result_dtype(x.dtype());  // the bias is added to the float32 result of 16-bit operands
    COLT5_CHECK(bias.dtype() == want, op, ": argument 'bias' expected dtype ", dtype_name(want), " (the product's, for x ",
                dtype_name(x.dtype()), "), got ", dtype_name(bias.dtype()));
    check_same_device({x, bias}, op);
    COLT5_CHECK(bias.shape() == Shape{out}, op, ": argument 'bias' expected shape [", out,
                "] (weight's dim 0), got ", bias.shape());
  }
  Tensor y = matmul(x, transpose(weight, 0, 1));  // [..., out], contiguous
  if (bias.defined()) {
    // y += bias, in place (the same element read and written: safe for the elementwise kernel).
    Tensor bb = expand(bias, y.shape());
    kernels::binary(y.device())(BinaryOp::Add, y, bb, y);
  }
  return y;
}

}  // namespace ops
}  // namespace colt5
