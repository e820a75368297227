// Tensor: a cheap, shared handle to (storage, shape, strides, offset, dtype) plus the autograd
// fields. Copying a Tensor copies the handle, not the data (like torch.Tensor in Python).
//
// Views (reshape of a contiguous tensor, permute, transpose, narrow, expand, unsqueeze, squeeze)
// share storage and only change shape/strides/offset. Differentiable operations live in
// autograd/ and are declared in "autograd/ops.h"; the methods below that build graph nodes are
// defined there too.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/shape.h"
#include "core/storage.h"

namespace colt5 {

namespace autograd {
class Node;
}

struct TensorImpl {
  // Live TensorImpls in the process (see live_tensor_count): tests use it to prove that a
  // graph does not keep itself alive through a reference cycle.
  TensorImpl();
  ~TensorImpl();
  TensorImpl(const TensorImpl&) = delete;
  TensorImpl& operator=(const TensorImpl&) = delete;

  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;       // in elements, not bytes
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;

  // Autograd. A leaf is a tensor with no grad_fn. requires_grad on a leaf means "accumulate
  // into grad during backward"; on a non-leaf it means "some input requires grad".
  bool requires_grad = false;
  bool retains_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<autograd::Node> grad_fn;
  std::weak_ptr<autograd::Node> grad_accumulator;  // the leaf's AccumulateGrad node, made lazily
};

class Tensor {
public:
  Tensor() = default;  // undefined tensor (e.g. "no gradient")
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Fresh, uninitialised, contiguous tensor.
  static Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = kCPU);
  // A view over `base`'s storage with new geometry (no autograd; see autograd for the
  // differentiable views).
  static Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset);

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  // ---- geometry ----
  const Shape& shape() const { return checked().shape; }
  const Shape& strides() const { return checked().strides; }
  int64_t offset() const { return checked().offset; }
  int64_t dim() const { return int64_t(shape().size()); }
  int64_t size(int64_t d) const;    // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t numel() const { return colt5::numel(shape()); }
  DType dtype() const { return checked().dtype; }
  Device device() const { return checked().storage->device(); }
  bool is_cuda() const { return device().is_cuda(); }
  bool is_contiguous() const;
  bool is_floating_point() const { return is_floating(dtype()); }
  size_t element_size() const { return dtype_size(dtype()); }

  // Pointer to element (0, ..., 0). T must match the dtype.
  template <class T>
  T* data_ptr() const {
    COLT5_CHECK(dtype_v<T> == dtype(), "data_ptr: expected dtype ", dtype_name(dtype_v<T>), ", tensor has ",
                dtype_name(dtype()));
    return static_cast<T*>(raw_data());
  }
  void* raw_data() const;  // untyped pointer to element (0, ..., 0)

  // ---- host access (copies from the GPU where needed) ----
  template <class T> T item() const;              // the single element of a one-element tensor
  template <class T> std::vector<T> to_vector() const;  // all elements, row-major
  double item_double() const;                     // item() converted to double, any dtype

  // ---- conversions (not differentiable across dtypes; differentiable across devices) ----
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  Tensor cpu() const { return to(kCPU); }
  Tensor cuda(int index = 0) const { return to(Device(DeviceType::CUDA, index)); }

  // ---- views (differentiable) ----
  Tensor reshape(const Shape& shape) const;  // a view when possible, else a copy; -1 infers
  Tensor view(const Shape& shape) const;     // must be expressible as a view
  Tensor permute(const Shape& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const { return transpose(0, 1); }
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor select(int64_t dim, int64_t index) const;  // narrow + squeeze
  Tensor expand(const Shape& shape) const;          // -1 keeps a size
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor flatten() const { return reshape({numel()}); }

  // ---- autograd ----
  bool requires_grad() const { return defined() && impl_->requires_grad; }
  Tensor& requires_grad_(bool on = true);  // leaves only
  bool is_leaf() const { return !impl_->grad_fn; }
  Tensor grad() const { return impl_->grad ? Tensor(impl_->grad) : Tensor(); }
  void set_grad(const Tensor& g) { impl_->grad = g.impl_; }
  void zero_grad() { impl_->grad.reset(); }
  void retain_grad();
  const std::shared_ptr<autograd::Node>& grad_fn() const { return impl_->grad_fn; }
  // Backpropagate from this tensor. A non-scalar tensor needs an explicit `grad`.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;
  Tensor detach() const;  // same storage, no history
  // Replace this tensor's data (storage, geometry, dtype) by other's, keeping the handle and the
  // autograd flags: every copy of this handle sees the new data (like torch's `p.data = other`).
  void set_data(const Tensor& other);

  std::string to_string() const;  // see core/format.h for the fmt formatter

private:
  const TensorImpl& checked() const {
    COLT5_CHECK(impl_ != nullptr, "tensor: operation on an undefined tensor");
    return *impl_;
  }
  std::shared_ptr<TensorImpl> impl_;
};

using TensorList = std::vector<Tensor>;

// Number of TensorImpls alive right now (all threads).
int64_t live_tensor_count();

// ---- construction from host data (defined in core/creation.cpp) ----
// from_vector({1,2,3,4,5,6}, {2,3}) -> a 2x3 tensor of the vector's element type.
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device = kCPU);
Tensor scalar_tensor(double value, DType dtype = DType::Float32, Device device = kCPU);

// Throws naming `op`/`arg` unless every defined tensor of `ts` is on `ts[0]`'s device.
void check_same_device(const TensorList& ts, const char* op);
void check_dtype(const Tensor& t, DType expected, const char* op, const char* arg);
void check_floating(const Tensor& t, const char* op, const char* arg);
void check_dim(const Tensor& t, int64_t ndim, const char* op, const char* arg);
void check_same_dtype(const Tensor& a, const Tensor& b, const char* op, const char* arg_a, const char* arg_b);
// The 16-bit storage dtypes (core/half.h) are refused by the ops that compute, naming the argument.
void check_not_half(const Tensor& t, const char* op, const char* arg);

}  // namespace colt5
