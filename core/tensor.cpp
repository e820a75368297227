// The non-differentiable half of Tensor: construction, geometry, host access.
#include "core/tensor.h"

#include <atomic>

#include "core/backend.h"
#include "core/ops/copy.h"

namespace colt5 {

namespace {
std::atomic<int64_t> g_live_tensors{0};
}
TensorImpl::TensorImpl() { g_live_tensors.fetch_add(1, std::memory_order_relaxed); }
TensorImpl::~TensorImpl() { g_live_tensors.fetch_sub(1, std::memory_order_relaxed); }
int64_t live_tensor_count() { return g_live_tensors.load(); }

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (size_t k = 0; k < shape.size(); ++k)
    COLT5_CHECK(shape[k] >= 0, "empty: argument 'shape' expected non-negative sizes, got ", shape);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(size_t(colt5::numel(shape)) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl()->storage;
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

void Tensor::set_data(const Tensor& other) {
  COLT5_CHECK(defined() && other.defined(), "set_data: undefined tensor");
  TensorImpl& t = *impl_;
  t.storage = other.impl()->storage;
  t.shape = other.shape();
  t.strides = other.strides();
  t.offset = other.offset();
  t.dtype = other.dtype();
}

int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, dim(), "stride")]; }

bool Tensor::is_contiguous() const {
  const Shape& sh = shape();
  const Shape& st = strides();
  int64_t expected = 1;
  for (size_t k = sh.size(); k-- > 0;) {
    if (sh[k] == 1) continue;  // the stride of a size-1 dim never matters
    if (st[k] != expected) return false;
    expected *= sh[k];
  }
  return true;
}

void* Tensor::raw_data() const {
  const TensorImpl& t = checked();
  return static_cast<char*>(t.storage->data()) + t.offset * int64_t(dtype_size(t.dtype));
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  COLT5_CHECK(dtype_v<T> == dtype(), "to_vector: expected dtype ", dtype_name(dtype_v<T>), ", tensor has ",
              dtype_name(dtype()));
  Tensor host = ops::contiguous(ops::to_device(*this, kCPU));
  const T* p = static_cast<const T*>(host.raw_data());
  return std::vector<T>(p, p + host.numel());
}

template <class T>
T Tensor::item() const {
  COLT5_CHECK(numel() == 1, "item: expected a tensor with one element, got shape ", shape());
  return to_vector<T>()[0];
}

double Tensor::item_double() const {
  double v = 0;
  visit_all(dtype(), [&]<class T>() { v = static_cast<double>(item<T>()); });
  return v;
}

#define COLT5_INSTANTIATE_HOST_ACCESS(T)               \
  template std::vector<T> Tensor::to_vector<T>() const; \
  template T Tensor::item<T>() const;
COLT5_INSTANTIATE_HOST_ACCESS(float)
COLT5_INSTANTIATE_HOST_ACCESS(double)
COLT5_INSTANTIATE_HOST_ACCESS(int64_t)
COLT5_INSTANTIATE_HOST_ACCESS(int32_t)
COLT5_INSTANTIATE_HOST_ACCESS(bool)
#undef COLT5_INSTANTIATE_HOST_ACCESS

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device) {
  COLT5_CHECK(int64_t(values.size()) == colt5::numel(shape), "from_vector: argument 'values' has ", values.size(),
              " elements, shape ", shape, " needs ", colt5::numel(shape));
  Tensor host = Tensor::empty(shape, dtype_v<T>, kCPU);
  T* p = static_cast<T*>(host.raw_data());
  for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  return ops::to_device(host, device);
}
template Tensor from_vector(const std::vector<float>&, const Shape&, Device);
template Tensor from_vector(const std::vector<double>&, const Shape&, Device);
template Tensor from_vector(const std::vector<int64_t>&, const Shape&, Device);
template Tensor from_vector(const std::vector<int32_t>&, const Shape&, Device);
// std::vector<bool> is bit-packed, so bool tensors are made element by element.
template <>
Tensor from_vector(const std::vector<bool>& values, const Shape& shape, Device device) {
  COLT5_CHECK(int64_t(values.size()) == colt5::numel(shape), "from_vector: argument 'values' has ", values.size(),
              " elements, shape ", shape, " needs ", colt5::numel(shape));
  Tensor host = Tensor::empty(shape, DType::Bool, kCPU);
  bool* p = static_cast<bool*>(host.raw_data());
  for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  return ops::to_device(host, device);
}

Tensor scalar_tensor(double value, DType dtype, Device device) {
  Tensor t = Tensor::empty({}, dtype, device);
  ops::fill_(t, value);
  return t;
}

void check_same_device(const TensorList& ts, const char* op) {
  const Tensor* first = nullptr;
  for (size_t i = 0; i < ts.size(); ++i) {
    if (!ts[i].defined()) continue;
    if (!first) {
      first = &ts[i];
      continue;
    }
    COLT5_CHECK(ts[i].device() == first->device(), op, ": expected all tensors on one device, got ",
                first->device(), " and ", ts[i].device(), " (argument ", i, ")");
  }
}

void check_dtype(const Tensor& t, DType expected, const char* op, const char* arg) {
  COLT5_CHECK(t.dtype() == expected, op, ": argument '", arg, "' expected dtype ", dtype_name(expected), ", got ",
              dtype_name(t.dtype()));
}

void check_floating(const Tensor& t, const char* op, const char* arg) {
  COLT5_CHECK(t.is_floating_point(), op, ": argument '", arg, "' expected a floating dtype (float32 or float64), got ",
              dtype_name(t.dtype()));
}

void check_dim(const Tensor& t, int64_t ndim, const char* op, const char* arg) {
  COLT5_CHECK(t.dim() == ndim, op, ": argument '", arg, "' expected ", ndim, " dims, got ", t.dim(), " (shape ",
              t.shape(), ")");
}

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op, const char* arg_a, const char* arg_b) {
  COLT5_CHECK(a.dtype() == b.dtype(), op, ": arguments '", arg_a, "' and '", arg_b, "' expected the same dtype, got ",
              dtype_name(a.dtype()), " and ", dtype_name(b.dtype()));
  check_not_half(a, op, arg_a);
}

void check_not_half(const Tensor& t, const char* op, const char* arg) {
  COLT5_CHECK(!is_half(t.dtype()), op, ": argument '", arg, "' expected a float32, float64, integer or bool tensor, got ",
              dtype_name(t.dtype()), " (a storage dtype: convert it with .to(DType::Float32) first)");
}

}  // namespace colt5
